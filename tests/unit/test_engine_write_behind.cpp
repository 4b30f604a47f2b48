// Write-behind (core/engine_write_behind.cpp): whole-block writes acknowledged once their
// commands are queued. The oracle is the in-memory target: its store (what landed), its
// count of commands outstanding (held with hold_completions, so a write that returns while
// its commands are still there was acknowledged behind), its maximum in flight, and its
// fault rules (a medium error on a WRITE).
#include "aligned_buffer.hpp"
#include "engine_fixture.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <doctest/doctest.h>
#include <memory>
#include <span>
#include <thread>

using namespace sgfs;
using namespace sgfs::test;

namespace
{

constexpr std::size_t block = 512;
constexpr std::size_t command_bytes = 64 * 1024; // max_io: one command per 64 KiB
constexpr unsigned depth = 2;

TargetConfig small_target()
{
    TargetConfig config;
    config.block_count = 4096; // 2 MiB
    config.allow_dio = true;
    return config;
}

DiskOptions behind_options(IoMode mode = IoMode::mmap)
{
    DiskOptions options = test_options(mode, depth);
    options.max_io = command_bytes;
    options.reserve = command_bytes;
    return options;
}

struct BehindFixture : EngineFixture {
    explicit BehindFixture(IoMode mode = IoMode::mmap)
        : EngineFixture(small_target(), behind_options(mode))
    {
    }

    IoResult write(const Bytes &data, std::uint64_t offset)
    {
        return disk().pwrite(data.data(), data.size(), offset, WriteMode::behind,
                             WriteBehind{pending, {}, {}});
    }

    std::shared_ptr<PendingWrites> pending = std::make_shared<PendingWrites>();
};

} // namespace

TEST_CASE("a whole-block write is acknowledged while its commands are still on the device")
{
    {
        BehindFixture f(IoMode::mmap);
        const Bytes data = pattern(command_bytes * depth, 3);
        f.target->hold_completions();
        const IoResult written = f.write(data, 8 * block);
        CHECK(written.ok());
        CHECK(written.bytes == data.size());
        // The target has not carried the commands out yet: acknowledged behind.
        CHECK(f.target->in_flight() == depth);
        CHECK(f.pending->in_flight() == 1);
        f.target->release_completions();
        CHECK(f.pending->drain().ok());
        CHECK(f.pending->in_flight() == 0);
        CHECK(f.target->equals(8 * block, data));
        CHECK(f.target->violations().empty());
        CHECK(f.stats().write_behind.writes == 1);
        CHECK(f.stats().write_behind.bytes == data.size());
    }
}

TEST_CASE("where the caller's memory is the command's (direct, indirect), writes stay synchronous")
{
    // Behind, their data would need a copy they do not make: nothing copied that need not
    // be. (Where the caller can keep its memory, direct IO goes behind from it: below.)
    for (const IoMode mode : {IoMode::indirect, IoMode::direct}) {
        CAPTURE(static_cast<int>(mode));
        BehindFixture f(mode);
        const Bytes data = pattern(command_bytes * depth, 5);
        const IoResult written = f.write(data, 8 * block);
        CHECK(written.ok());
        CHECK(f.target->in_flight() == 0); // done when acknowledged
        CHECK(f.pending->in_flight() == 0);
        CHECK(f.target->equals(8 * block, data));
        CHECK(f.stats().write_behind.writes == 0);
    }
}

namespace
{

// A caller that can keep its memory for the commands (FUSE's request buffer, handed over):
// `token` stands for that memory's owner; the test sees when the engine lets it go.
struct KeepingCaller {
    explicit KeepingCaller(const Bytes &data) : memory(data.size())
    {
        std::memcpy(memory.data(), data.data(), data.size());
    }

    WriteBehind behind(const std::shared_ptr<PendingWrites> &pending, bool can_keep = true)
    {
        return {pending, {}, [this, can_keep]() -> std::shared_ptr<const void> {
                    ++keeps;
                    return can_keep ? token : nullptr;
                }};
    }

    // Waits until only this caller owns the memory again (the reaper lets a batch go just
    // after its outcome is reported).
    void wait_until_given_back() const
    {
        while (token.use_count() > 1)
            std::this_thread::yield();
    }

    AlignedBuffer memory; // page-aligned, as FUSE's request data is
    std::shared_ptr<const void> token = std::make_shared<int>(0);
    int keeps = 0;
};

} // namespace

TEST_CASE("io=direct with the caller's memory kept: behind, from that memory, no copy")
{
    BehindFixture f(IoMode::direct);
    const Bytes data = pattern(command_bytes * depth, 11);
    KeepingCaller caller(data);
    f.target->hold_completions();
    const IoResult written = f.disk().pwrite(caller.memory.data(), data.size(), 8 * block,
                                             WriteMode::behind, caller.behind(f.pending));
    CHECK(written.ok());
    CHECK(written.bytes == data.size());
    CHECK(f.target->in_flight() == depth); // acknowledged while on the device
    CHECK(caller.keeps == 1);
    CHECK(caller.token.use_count() > 1); // the commands still own the memory
    f.target->release_completions();
    CHECK(f.pending->drain().ok());
    caller.wait_until_given_back();
    CHECK(f.target->equals(8 * block, data));
    CHECK(f.stats().write_behind.writes == 1);
    CHECK(f.stats().modes[static_cast<int>(TransferMode::direct)].requested_commands >= depth);
    CHECK(f.path(DataPath::write).user_copy_bytes == 0);
    CHECK(f.path(DataPath::write).zero_copy_bytes == data.size());
    CHECK(f.target->violations().empty());
}

TEST_CASE("io=auto with the caller's memory kept: direct IO behind from it, not the mmap copy")
{
    BehindFixture f(IoMode::automatic);
    const Bytes data = pattern(command_bytes * depth, 12);
    KeepingCaller caller(data);
    f.target->hold_completions();
    CHECK(f.disk()
              .pwrite(caller.memory.data(), data.size(), 0, WriteMode::behind,
                      caller.behind(f.pending))
              .ok());
    CHECK(f.target->in_flight() == depth);
    f.target->release_completions();
    CHECK(f.pending->drain().ok());
    caller.wait_until_given_back();
    CHECK(f.target->equals(0, data));
    CHECK(f.stats().write_behind.writes == 1);
    CHECK(f.stats().modes[static_cast<int>(TransferMode::mmap)].requested_commands == 0);
    CHECK(f.path(DataPath::write).user_copy_bytes == 0);
}

TEST_CASE("memory that cannot be kept, or is not aligned, leaves io=direct synchronous")
{
    BehindFixture f(IoMode::direct);
    const Bytes data = pattern(command_bytes, 13);
    SUBCASE("the caller cannot keep it now")
    {
        KeepingCaller caller(data);
        CHECK(f.disk()
                  .pwrite(caller.memory.data(), data.size(), 0, WriteMode::behind,
                          caller.behind(f.pending, false))
                  .ok());
        CHECK(caller.keeps == 1);
        CHECK(f.target->in_flight() == 0); // done when acknowledged
        CHECK(f.stats().write_behind.writes == 0);
        CHECK(f.target->equals(0, data));
    }
    SUBCASE("not aligned for direct IO: not even asked")
    {
        AlignedBuffer memory(command_bytes + 8);
        std::copy(data.begin(), data.end(), memory.data() + 8);
        KeepingCaller caller(data);
        WriteBehind behind = caller.behind(f.pending);
        CHECK(f.disk().pwrite(memory.data() + 8, data.size(), 0, WriteMode::behind, behind).ok());
        CHECK(caller.keeps == 0);
        CHECK(f.stats().write_behind.writes == 0);
        CHECK(f.target->equals(0, data));
    }
}

TEST_CASE("io=auto with direct IO allowed: whole-block writes go behind through the mmap area")
{
    // small_target allows direct IO, so a synchronous auto write would run from the caller's
    // memory by DMA; behind, with memory that goes with the reply, it takes the mmap area's
    // one copy instead.
    BehindFixture f(IoMode::automatic);
    const Bytes data = pattern(command_bytes * depth, 6);
    f.target->hold_completions();
    const IoResult written = f.write(data, 16 * block);
    CHECK(written.ok());
    CHECK(f.target->in_flight() == depth); // acknowledged while on the device
    f.target->release_completions();
    CHECK(f.pending->drain().ok());
    CHECK(f.target->equals(16 * block, data));
    CHECK(f.stats().write_behind.writes == 1);
    CHECK(f.stats().modes[static_cast<int>(TransferMode::mmap)].requested_commands >= depth);
    // Below mmap_min auto runs from the caller's memory (indirect): synchronous.
    const Bytes small = pattern(4 * block, 7);
    CHECK(f.write(small, 0).ok());
    CHECK(f.target->in_flight() == 0);
    CHECK(f.stats().write_behind.writes == 1);
    CHECK(f.target->equals(0, small));
}

TEST_CASE("write-behind keeps at most queue_depth commands in flight; the writer waits")
{
    BehindFixture f;
    const Bytes data = pattern(std::size_t{1} << 20, 9); // 16 commands, 8 batches
    f.target->hold_completions();
    std::thread writer([&] { CHECK(f.write(data, 0).ok()); });
    f.target->wait_in_flight(depth);
    CHECK(f.target->in_flight() == depth); // the second batch waits for channels
    f.target->release_completions();
    writer.join();
    CHECK(f.pending->drain().ok());
    CHECK(f.target->max_in_flight() <= depth);
    CHECK(f.target->equals(0, data));
    CHECK(f.stats().write_behind.max_in_flight <= depth);
}

TEST_CASE("a medium error of a write behind is returned by the next write, and by the next "
          "drain")
{
    BehindFixture f;
    const Bytes first = pattern(command_bytes, 1);
    const Bytes second = pattern(command_bytes, 2);
    const Bytes third = pattern(command_bytes, 4);
    Fault fault;
    fault.kind = FaultKind::medium_error;
    fault.on = Ops::write;
    fault.lba = 0;
    fault.blocks = 1;
    const std::size_t rule = f.target->inject(fault);
    REQUIRE(f.write(first, 0).ok()); // acknowledged: the error is the device's, later
    // Overlapping: queued only after the first completed (and its failure was carried).
    REQUIRE(f.write(second, 0).ok());
    CHECK(f.target->fired(rule) == 1);
    const IoResult reported = f.write(third, 4 * command_bytes);
    CHECK(reported.error == -EIO);
    CHECK(reported.message.find("write") != std::string::npos);
    CHECK(f.target->equals(4 * command_bytes, Bytes(command_bytes, 0))); // not written
    // Once to the writes: the same write again goes ahead. Once more to drain (fsync,
    // close): the write that returned it may be a piece of a write(2) whose error the
    // kernel turned into a short count.
    CHECK(f.write(third, 4 * command_bytes).ok());
    CHECK(f.pending->drain().error == -EIO);
    CHECK(f.pending->drain().ok());
    CHECK(f.target->equals(0, second));
    CHECK(f.target->equals(4 * command_bytes, third));
    CHECK(f.stats().write_behind.deferred_errors == 1);
}

TEST_CASE("drain waits for the writes behind and returns their failure once")
{
    BehindFixture f;
    const Bytes data = pattern(command_bytes * 2, 5);
    Fault fault;
    fault.kind = FaultKind::medium_error;
    fault.on = Ops::write;
    fault.lba = command_bytes / block; // the second command
    fault.blocks = 1;
    f.target->inject(fault);
    f.target->hold_completions();
    REQUIRE(f.write(data, 0).ok());
    IoResult drained;
    std::thread drainer([&] { drained = f.pending->drain(); });
    f.target->release_completions();
    drainer.join();
    CHECK(drained.error == -EIO);
    CHECK(f.pending->drain().ok()); // reported already
    // The command before the failed one landed.
    CHECK(f.target->equals(0, Bytes(data.begin(), data.begin() + command_bytes)));
}

TEST_CASE("an overlapping write behind is ordered after the one in flight")
{
    BehindFixture f;
    const Bytes a = pattern(command_bytes * 2, 11);
    const Bytes b = pattern(command_bytes, 12);
    f.target->hold_completions();
    REQUIRE(f.write(a, 0).ok());
    std::thread later([&] { CHECK(f.write(b, command_bytes / 2).ok()); });
    f.target->release_completions();
    later.join();
    CHECK(f.pending->drain().ok());
    Bytes expected = a;
    std::copy(b.begin(), b.end(), expected.begin() + command_bytes / 2);
    CHECK(f.target->equals(0, expected));
    // B's WRITE reached the target after every WRITE of A.
    const auto commands = f.data_commands();
    REQUIRE(commands.size() == 3);
    CHECK(commands[2].lba == command_bytes / 2 / block);
}

TEST_CASE("a read after a write behind sees its data")
{
    for (const bool staged : {false, true}) {
        CAPTURE(staged);
        BehindFixture f;
        f.target->poke(0, Bytes(command_bytes * 2, 0xee));
        const Bytes data = pattern(command_bytes * 2, 21);
        f.target->hold_completions();
        REQUIRE(f.write(data, 0).ok());
        Bytes read(data.size());
        std::thread reader([&] {
            if (staged) {
                CHECK(f.disk().pread(read.data(), read.size(), 0).ok());
                return;
            }
            const ReadView view = f.disk().read_view(read.size(), 0, no_reader);
            REQUIRE(view.result().ok());
            std::size_t at = 0;
            for (const iovec &piece : view.pieces()) {
                std::memcpy(read.data() + at, piece.iov_base, piece.iov_len);
                at += piece.iov_len;
            }
        });
        f.target->release_completions();
        reader.join();
        CHECK(read == data);
        CHECK(f.pending->drain().ok());
        // Every READ reached the target with no WRITE outstanding (at most its own two).
        for (const CommandRecord &record : f.data_commands())
            if (record.opcode == opcode::read_10 || record.opcode == opcode::read_16)
                CHECK(record.in_flight <= 2);
    }
}

TEST_CASE("flush sends SYNCHRONIZE CACHE only after every write behind completed")
{
    BehindFixture f;
    const Bytes data = pattern(command_bytes * depth, 31);
    f.target->hold_completions();
    REQUIRE(f.write(data, 0).ok());
    IoResult flushed;
    std::thread flusher([&] { flushed = f.disk().flush(); });
    f.target->release_completions();
    flusher.join();
    CHECK(flushed.ok());
    // Every WRITE was received before the SYNCHRONIZE CACHE, and had landed by its return.
    CHECK(f.target->equals(0, data));
    const auto log = f.target->log();
    REQUIRE(!log.empty());
    CHECK(log.back().opcode == opcode::synchronize_cache_10);
    CHECK(log.back().in_flight == 1); // no WRITE was outstanding when it arrived
}

TEST_CASE("a partial-block write stays synchronous")
{
    BehindFixture f;
    const Bytes data = pattern(block + 100, 41);
    const IoResult written = f.write(data, 10);
    CHECK(written.ok());
    CHECK(f.pending->in_flight() == 0);
    CHECK(f.target->in_flight() == 0);
    CHECK(f.target->equals(10, data));
    CHECK(f.stats().write_behind.writes == 0);
}

TEST_CASE("partial ends are read-modify-write; the whole blocks between them go behind")
{
    BehindFixture f;
    const Bytes before = pattern(4 * command_bytes, 43);
    f.target->poke(0, before);
    // As the kernel's FUSE cuts a 1 MiB direct_io write from a buffer 16 bytes into a page:
    // all but 16 bytes, then those 16.
    const Bytes data = pattern(2 * command_bytes, 44);
    const std::size_t cut = data.size() - 16;
    const IoResult first = f.write(Bytes(data.begin(), data.begin() + cut), 0);
    CHECK(first.ok());
    CHECK(first.bytes == cut);
    const IoResult second = f.write(Bytes(data.begin() + cut, data.end()), cut);
    CHECK(second.ok());
    // Both ends of a range inside a block, and a range with a partial head too.
    const Bytes middle = pattern(command_bytes + 300, 45);
    const std::uint64_t at = 2 * command_bytes + 100;
    CHECK(f.write(middle, at).ok());
    CHECK(f.pending->drain().ok());
    CHECK(f.target->equals(0, data));
    CHECK(f.target->equals(at, middle));
    CHECK(f.target->equals(2 * command_bytes, std::span(before).subspan(2 * command_bytes, 100)));
    const std::uint64_t after = at + middle.size();
    CHECK(f.target->equals(after, std::span(before).subspan(after)));
    const WriteBehindSnapshot behind = f.stats().write_behind;
    CHECK(behind.writes >= 2);
    CHECK(behind.bytes == (cut - cut % block) + (middle.size() - (block - 100) - (after % block)));
    CHECK(f.target->violations().empty());
}

TEST_CASE("a device lost with writes behind in flight: ENODEV at drain")
{
    BehindFixture f;
    const Bytes data = pattern(command_bytes * 2, 51);
    f.target->hold_completions();
    REQUIRE(f.write(data, 0).ok());
    f.target->disappear(GoneForm::reap_fails);
    f.target->release_completions();
    CHECK(f.pending->drain().error == -ENODEV);
    CHECK(f.disk().flush().error == -ENODEV);
}

TEST_CASE("an engine that goes waits for its writes behind")
{
    BehindFixture f;
    const Bytes data = pattern(command_bytes * depth, 61);
    f.target->hold_completions();
    REQUIRE(f.write(data, 0).ok());
    std::thread closer([&] { f.engine.reset(); });
    f.target->release_completions();
    closer.join();
    CHECK(f.pending->in_flight() == 0);
    CHECK(f.pending->drain().ok());
    CHECK(f.target->equals(0, data));
}

TEST_CASE("synchronous mode with a pending failure reports it first")
{
    BehindFixture f;
    Fault fault;
    fault.kind = FaultKind::medium_error;
    fault.on = Ops::write;
    fault.lba = 0;
    fault.blocks = 1;
    f.target->inject(fault);
    REQUIRE(f.write(pattern(command_bytes, 1), 0).ok());
    // Failed on the device, not reported yet (drain would report it).
    while (f.pending->in_flight() != 0)
        std::this_thread::yield();
    const Bytes data = pattern(block, 3);
    const IoResult reported =
        f.disk().pwrite(data.data(), data.size(), block * 512, WriteMode::synchronous,
                        WriteBehind{f.pending, {}, {}});
    CHECK(reported.error == -EIO);
    CHECK(f.disk()
              .pwrite(data.data(), data.size(), block * 512, WriteMode::synchronous,
                      WriteBehind{f.pending, {}, {}})
              .ok());
    CHECK(f.target->equals(block * 512, data));
    CHECK(f.pending->drain().error == -EIO); // and to fsync or close
    CHECK(f.pending->drain().ok());
}
