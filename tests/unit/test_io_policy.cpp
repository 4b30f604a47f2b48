// The io= policy: which transfer mode one command gets.
#include "io_policy.hpp"

#include <doctest/doctest.h>
#include <string>

using namespace sgfs;

TEST_CASE("fixed modes ignore size and alignment")
{
    for (IoMode mode : {IoMode::indirect, IoMode::direct, IoMode::mmap}) {
        const IoPolicy policy{mode, std::size_t{64} * 1024, true};
        const auto expected = static_cast<TransferMode>(static_cast<int>(mode) - 1);
        CHECK(policy.choose(512, false) == expected);
        CHECK(policy.choose(1 << 20, true) == expected);
    }
}

TEST_CASE("auto: small IO is indirect")
{
    const IoPolicy policy{IoMode::automatic, std::size_t{64} * 1024, true};
    CHECK(policy.choose(std::size_t{64} * 1024 - 512, true) == TransferMode::indirect);
}

TEST_CASE("auto: large aligned IO is direct when the driver allows it, else mmap")
{
    CHECK(IoPolicy{IoMode::automatic, std::size_t{64} * 1024, true}.choose(
              std::size_t{64} * 1024, true) == TransferMode::direct);
    CHECK(IoPolicy{IoMode::automatic, std::size_t{64} * 1024, false}.choose(
              std::size_t{64} * 1024, true) == TransferMode::mmap);
    CHECK(IoPolicy{IoMode::automatic, std::size_t{64} * 1024, true}.choose(1 << 20, false) ==
          TransferMode::mmap);
}

TEST_CASE("parse_io_mode and to_string round-trip")
{
    for (IoMode mode : {IoMode::automatic, IoMode::indirect, IoMode::direct, IoMode::mmap})
        CHECK(parse_io_mode(to_string(mode)) == mode);
    CHECK_FALSE(parse_io_mode("fast").has_value());
    CHECK_FALSE(parse_io_mode("").has_value());
}

TEST_CASE("only auto and mmap need mmap fds")
{
    CHECK(IoPolicy{IoMode::automatic}.uses_mmap());
    CHECK(IoPolicy{IoMode::mmap}.uses_mmap());
    CHECK_FALSE(IoPolicy{IoMode::direct}.uses_mmap());
    CHECK_FALSE(IoPolicy{IoMode::indirect}.uses_mmap());
}

TEST_CASE("only an explicit io=direct without allow_dio is a fallback worth a warning")
{
    const std::string why = io_mode_fallback(IoMode::direct, false);
    CHECK(why.find("/sys/module/sg/parameters/allow_dio is 0") != std::string::npos);
    CHECK(why.find("indirect") != std::string::npos);
    CHECK(io_mode_fallback(IoMode::direct, true).empty());
    // auto picks direct IO only where it works; mmap and indirect never ask for it.
    CHECK(io_mode_fallback(IoMode::automatic, false).empty());
    CHECK(io_mode_fallback(IoMode::mmap, false).empty());
    CHECK(io_mode_fallback(IoMode::indirect, false).empty());
}

TEST_CASE("transfer mode names, and a name for a value that is none of them")
{
    CHECK(std::string(to_string(TransferMode::indirect)) == "indirect");
    CHECK(std::string(to_string(TransferMode::direct)) == "direct");
    CHECK(std::string(to_string(TransferMode::mmap)) == "mmap");
    CHECK(std::string(to_string(static_cast<TransferMode>(transfer_mode_count))) == "?");
    CHECK(std::string(to_string(static_cast<IoMode>(4))) == "?");
}

TEST_CASE("where a command's data lives: the caller's buffer unless the mode needs ours")
{
    const IoPolicy dio{IoMode::automatic, std::size_t{64} * 1024, true};
    // Small: indirect from the caller's buffer, the driver copies.
    CHECK(dio.place(4096, false).mode == TransferMode::indirect);
    CHECK(dio.place(4096, false).home == DataHome::caller);
    CHECK_FALSE(dio.place(4096, false).staged());
    // Large and aligned: direct IO into the caller's buffer.
    CHECK(dio.place(1 << 20, true).mode == TransferMode::direct);
    CHECK(dio.place(1 << 20, true).home == DataHome::caller);
    // Large, unaligned: mmap (auto never asks for direct IO it cannot do in place).
    CHECK(dio.place(1 << 20, false).mode == TransferMode::mmap);
    CHECK(dio.place(1 << 20, false).home == DataHome::mmap_area);
    CHECK(dio.place(1 << 20, false).staged());
    // io=direct with an unaligned buffer: direct IO through our aligned bounce buffer.
    const IoPolicy direct{IoMode::direct, std::size_t{64} * 1024, true};
    CHECK(direct.place(4096, false).mode == TransferMode::direct);
    CHECK(direct.place(4096, false).home == DataHome::bounce);
    CHECK(direct.place(4096, true).home == DataHome::caller);
    // io=mmap: always the mapping.
    CHECK(IoPolicy{IoMode::mmap}.place(512, true).home == DataHome::mmap_area);
    CHECK(IoPolicy{IoMode::indirect}.place(1 << 20, true).home == DataHome::caller);
}

TEST_CASE("a read handed out where it lands never lands in the caller's memory")
{
    for (const IoMode mode : {IoMode::automatic, IoMode::indirect, IoMode::direct, IoMode::mmap})
        for (const bool allow_dio : {false, true})
            for (const std::size_t bytes : {std::size_t{512}, std::size_t{1} << 20}) {
                CAPTURE(to_string(mode));
                CAPTURE(allow_dio);
                CAPTURE(bytes);
                const IoPolicy policy{mode, std::size_t{64} * 1024, allow_dio};
                const Placement landing = policy.place_landing(bytes);
                CHECK(landing.mode == policy.choose(bytes, true));
                CHECK(landing.home == (landing.mode == TransferMode::mmap ? DataHome::mmap_area
                                                                          : DataHome::bounce));
                CHECK(landing.staged());
            }
}

TEST_CASE("a copy between disks: each mode's read and write, never through the caller")
{
    const auto check = [](IoMode mode, bool allow_dio, TransferMode read, TransferMode write,
                          DataHome home) {
        CAPTURE(to_string(mode));
        CAPTURE(allow_dio);
        const CopyPlacement copy = IoPolicy{mode, std::size_t{64} * 1024, allow_dio}.copy();
        CHECK(copy.read == read);
        CHECK(copy.write == write);
        CHECK(copy.home == home);
    };
    for (const bool dio : {false, true}) {
        check(IoMode::indirect, dio, TransferMode::indirect, TransferMode::indirect,
              DataHome::bounce);
        check(IoMode::direct, dio, TransferMode::direct, TransferMode::direct, DataHome::bounce);
    }
    // mmap: written from the mapping with direct IO where the driver allows it.
    check(IoMode::mmap, true, TransferMode::mmap, TransferMode::direct, DataHome::mmap_area);
    check(IoMode::mmap, false, TransferMode::mmap, TransferMode::indirect, DataHome::mmap_area);
    // auto: like direct, else like mmap.
    check(IoMode::automatic, true, TransferMode::direct, TransferMode::direct, DataHome::bounce);
    check(IoMode::automatic, false, TransferMode::mmap, TransferMode::indirect,
          DataHome::mmap_area);
}
