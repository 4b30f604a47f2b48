// The io= policy: which transfer mode one command gets.
#include "io_policy.hpp"

#include <doctest/doctest.h>

using namespace sgfs;

TEST_CASE("fixed modes ignore size and alignment")
{
    for (IoMode mode : {IoMode::indirect, IoMode::direct, IoMode::mmap}) {
        const IoPolicy policy{mode, 64 * 1024, true};
        const auto expected = static_cast<TransferMode>(static_cast<int>(mode) - 1);
        CHECK(policy.choose(512, false) == expected);
        CHECK(policy.choose(1 << 20, true) == expected);
    }
}

TEST_CASE("auto: small IO is indirect")
{
    const IoPolicy policy{IoMode::automatic, 64 * 1024, true};
    CHECK(policy.choose(64 * 1024 - 512, true) == TransferMode::indirect);
}

TEST_CASE("auto: large aligned IO is direct when the driver allows it, else mmap")
{
    CHECK(IoPolicy{IoMode::automatic, 64 * 1024, true}.choose(64 * 1024, true) ==
          TransferMode::direct);
    CHECK(IoPolicy{IoMode::automatic, 64 * 1024, false}.choose(64 * 1024, true) ==
          TransferMode::mmap);
    CHECK(IoPolicy{IoMode::automatic, 64 * 1024, true}.choose(1 << 20, false) ==
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
