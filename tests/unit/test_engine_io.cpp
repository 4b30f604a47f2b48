// The Engine's reads and writes through the Disk API (pread, pwrite, read_view, flush) against
// the in-memory target. The oracle is the target: its store (and a model of it kept by the
// test), its log of the commands it received, its count of commands in flight, its faults.
#include "aligned_buffer.hpp"
#include "engine_fixture.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <doctest/doctest.h>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace sgfs;
using namespace sgfs::test;

namespace
{

constexpr std::size_t block = 512;
constexpr std::size_t kib = 1024;

bool contains(const std::string &text, const std::string &part)
{
    return text.find(part) != std::string::npos;
}

// Options whose commands carry at most `max_blocks` blocks of 512 bytes.
DiskOptions split_options(std::size_t max_blocks, unsigned depth = 4,
                          IoMode mode = IoMode::indirect)
{
    DiskOptions options = test_options(mode, depth);
    options.max_io = max_blocks * block;
    return options;
}

// The blocks [lba, lba + blocks) are covered exactly once by these commands of `opcode`s.
void check_covers(const std::vector<CommandRecord> &records, std::uint64_t lba,
                  std::uint64_t blocks, std::uint32_t max_blocks)
{
    std::vector<CommandRecord> sorted = records;
    std::sort(sorted.begin(), sorted.end(),
              [](const CommandRecord &a, const CommandRecord &b) { return a.lba < b.lba; });
    std::uint64_t at = lba;
    for (const CommandRecord &record : sorted) {
        CHECK(record.lba == at);
        CHECK(record.blocks >= 1);
        CHECK(record.blocks <= max_blocks);
        at = record.lba + record.blocks;
    }
    CHECK(at == lba + blocks);
}

std::uint64_t logged_bytes(const std::vector<CommandRecord> &records)
{
    std::uint64_t total = 0;
    for (const CommandRecord &record : records)
        total += record.length;
    return total;
}

} // namespace

TEST_CASE("byte-granular reads and writes at any offset and length match a model of the store")
{
    EngineFixture f({}, split_options(16));
    const std::uint64_t size = f.target->bytes();
    Bytes model = pattern(size, 3);
    f.target->poke(0, model);
    std::mt19937_64 random(15);
    for (int round = 0; round < 300; ++round) {
        const bool large = round % 10 == 0;
        const std::size_t length = 1 + random() % (large ? 40 * kib : 1500);
        const std::uint64_t offset = random() % (size - length);
        CAPTURE(offset);
        CAPTURE(length);
        if (random() % 2 == 0) {
            const Bytes data = pattern(length, static_cast<std::uint8_t>(round));
            const IoResult result = f.disk().pwrite(data.data(), length, offset);
            REQUIRE(result.ok());
            CHECK(result.bytes == length);
            std::copy(data.begin(), data.end(),
                      model.begin() + static_cast<std::ptrdiff_t>(offset));
        } else {
            Bytes data(length);
            const IoResult result = f.disk().pread(data.data(), length, offset);
            REQUIRE(result.ok());
            CHECK(result.bytes == length);
            CHECK(std::equal(data.begin(), data.end(),
                             model.begin() + static_cast<std::ptrdiff_t>(offset)));
        }
    }
    CHECK(f.target->equals(0, model));
    CHECK(f.target->violations().empty());
}

TEST_CASE("an unaligned read: partial blocks staged, counted as user copies")
{
    EngineFixture f;
    const Bytes stored = pattern(8 * block, 9);
    f.target->poke(0, stored);
    Bytes data(2000);
    const IoResult result = f.disk().pread(data.data(), data.size(), 100);
    REQUIRE(result.ok());
    CHECK(result.bytes == 2000);
    CHECK(std::equal(data.begin(), data.end(), stored.begin() + 100));
    // Blocks 0..4: the head block and the tail block read alone, the three between at once.
    const std::vector<CommandRecord> reads = f.data_commands();
    check_covers(reads, 0, 5, 5);
    CHECK(reads.size() == 3);
    const PathCountersSnapshot path = f.path(DataPath::read);
    CHECK(path.sg_copy_bytes == logged_bytes(reads));
    CHECK(path.user_copy_bytes == (block - 100) + (2100 - 4 * block));
    CHECK(path.zero_copy_bytes == 0);
}

TEST_CASE("splitting: commands of at most max_transfer, covering the range once")
{
    EngineFixture f({}, split_options(16));
    REQUIRE(f.engine->info().max_transfer_bytes == 16 * block);
    const Bytes data = pattern(100 * block, 1);
    SUBCASE("a write")
    {
        REQUIRE(f.disk().pwrite(data.data(), data.size(), 10 * block).ok());
        const std::vector<CommandRecord> writes = f.data_commands();
        check_covers(writes, 10, 100, 16);
        CHECK(writes.size() == 7); // 6 of 16 blocks, one of 4
        CHECK(f.target->equals(10 * block, data));
    }
    SUBCASE("a read")
    {
        f.target->poke(10 * block, data);
        Bytes read(data.size());
        REQUIRE(f.disk().pread(read.data(), read.size(), 10 * block).ok());
        check_covers(f.data_commands(), 10, 100, 16);
        CHECK(read == data);
    }
    SUBCASE("an unaligned write: read-modify-write of the edge blocks, whole blocks between")
    {
        const std::uint64_t offset = 10 * block + 100;
        REQUIRE(f.disk().pwrite(data.data(), data.size(), offset).ok());
        std::uint64_t reads = 0;
        std::vector<CommandRecord> writes;
        for (const CommandRecord &record : f.data_commands()) {
            if (record.opcode == opcode::read_10) {
                ++reads;
                CHECK(record.blocks == 1);
                CHECK((record.lba == 10 || record.lba == 110));
            } else {
                writes.push_back(record);
            }
        }
        CHECK(reads == 2);
        check_covers(writes, 10, 101, 16);
        CHECK(f.target->equals(offset, data));
        // The bytes around it are as they were (zero).
        CHECK(f.target->peek(10 * block, 100) == Bytes(100, 0));
        CHECK(f.target->peek(offset + data.size(), 412) == Bytes(412, 0));
    }
}

TEST_CASE("a long transfer keeps queue_depth commands in flight, never more")
{
    for (const unsigned depth : {1U, 2U, 4U}) {
        for (const bool write : {true, false}) {
            CAPTURE(depth);
            CAPTURE(write);
            EngineFixture f({}, split_options(8, depth));
            Bytes data = pattern(64 * block, 2); // 8 commands
            f.target->hold_completions();
            IoResult result;
            std::thread io([&] {
                result = write ? f.disk().pwrite(data.data(), data.size(), 0)
                               : f.disk().pread(data.data(), data.size(), 0);
            });
            f.target->wait_in_flight(depth); // all of the first batch, before any completes
            CHECK(f.target->in_flight() == depth);
            f.target->release_completions();
            io.join();
            REQUIRE(result.ok());
            CHECK(result.bytes == data.size());
            CHECK(f.target->max_in_flight() == depth);
            check_covers(f.data_commands(), 0, 64, 8);
            if (write)
                CHECK(f.target->equals(0, data));
        }
    }
}

TEST_CASE("io modes: the mode each command asks for and gets, and who copies the data")
{
    struct Case {
        const char *name;
        IoMode mode;
        bool allow_dio;
        bool aligned;
        TransferMode requested;
        TransferMode done;
        bool user_copy; // sgfs copies (mmap area, bounce buffer)
    };
    const Case cases[] = {
        {"indirect", IoMode::indirect, true, true, TransferMode::indirect, TransferMode::indirect,
         false},
        {"direct", IoMode::direct, true, true, TransferMode::direct, TransferMode::direct, false},
        {"direct, unaligned: bounce", IoMode::direct, true, false, TransferMode::direct,
         TransferMode::direct, true},
        {"direct without allow_dio: the driver does indirect", IoMode::direct, false, true,
         TransferMode::direct, TransferMode::indirect, false},
        {"mmap", IoMode::mmap, false, true, TransferMode::mmap, TransferMode::mmap, true},
        {"mmap, unaligned", IoMode::mmap, true, false, TransferMode::mmap, TransferMode::mmap,
         true},
        {"auto with allow_dio: direct", IoMode::automatic, true, true, TransferMode::direct,
         TransferMode::direct, false},
        {"auto, unaligned: mmap", IoMode::automatic, true, false, TransferMode::mmap,
         TransferMode::mmap, true},
        {"auto without allow_dio: mmap", IoMode::automatic, false, true, TransferMode::mmap,
         TransferMode::mmap, true},
    };
    for (const Case &c : cases) {
        CAPTURE(c.name);
        TargetConfig config;
        config.allow_dio = c.allow_dio;
        // 64 KiB commands: at auto's mmap_min, so auto picks its large-IO mode.
        EngineFixture f(config, split_options(128, 4, c.mode));
        const std::size_t length = 256 * kib; // 4 commands
        AlignedBuffer memory(length + 64);
        std::uint8_t *buffer = memory.data() + (c.aligned ? 0 : 8);
        const Bytes data = pattern(length, 5);
        std::memcpy(buffer, data.data(), length);
        const IoResult written = f.disk().pwrite(buffer, length, 4 * block);
        REQUIRE(written.ok());
        CHECK(f.target->equals(4 * block, data));
        std::memset(buffer, 0, length);
        const IoResult read = f.disk().pread(buffer, length, 4 * block);
        REQUIRE(read.ok());
        CHECK(std::equal(data.begin(), data.end(), buffer));

        const std::vector<CommandRecord> commands = f.data_commands();
        CHECK(commands.size() == 8);
        for (const CommandRecord &record : commands)
            CHECK(record.mode == c.requested);
        const ModeCountersSnapshot asked = f.mode(c.requested);
        CHECK(asked.requested_commands == 8);
        CHECK(asked.requested_bytes == 2 * length);
        const ModeCountersSnapshot did = f.mode(c.done);
        CHECK(did.done_commands == 8);
        CHECK(did.done_bytes == 2 * length);
        CHECK(asked.fallback_bytes == (c.requested == c.done ? 0 : 2 * length));
        for (const DataPath path : {DataPath::read, DataPath::write}) {
            CAPTURE(static_cast<int>(path));
            const PathCountersSnapshot counters = f.path(path);
            const std::uint64_t user = c.user_copy ? length : 0;
            const std::uint64_t sg = !c.user_copy && c.done == TransferMode::indirect ? length : 0;
            CHECK(counters.user_copy_bytes == user);
            CHECK(counters.sg_copy_bytes == sg);
            CHECK(counters.zero_copy_bytes == length - user - sg);
        }
        CHECK(f.target->violations().empty());
    }
}

TEST_CASE("auto: small IO goes indirect")
{
    TargetConfig config;
    config.allow_dio = true;
    EngineFixture f(config, test_options(IoMode::automatic));
    AlignedBuffer buffer(8 * kib);
    std::memset(buffer.data(), 0x5a, buffer.size());
    REQUIRE(f.disk().pwrite(buffer.data(), buffer.size(), 0).ok());
    CHECK(f.mode(TransferMode::indirect).done_bytes == 8 * kib);
    CHECK(f.path(DataPath::write).sg_copy_bytes == 8 * kib);
    CHECK(f.target->equals(0, Bytes(8 * kib, 0x5a)));
}

TEST_CASE("read_view of an aligned read: the data where it landed, its channels held")
{
    for (const IoMode mode : {IoMode::indirect, IoMode::mmap}) {
        CAPTURE(static_cast<int>(mode));
        // Four channels of 16 blocks each.
        EngineFixture f({}, split_options(16, 4, mode));
        const Bytes stored = pattern(128 * block, 8);
        f.target->poke(0, stored);

        ReadView first = f.disk().read_view(32 * block, 0, no_reader);
        REQUIRE(first.result().ok());
        CHECK(first.result().bytes == 32 * block);
        REQUIRE(first.pieces().size() == 2);
        std::vector<unsigned> first_channels;
        for (const CommandRecord &record : f.data_commands())
            first_channels.push_back(record.channel);
        f.target->clear_log();
        // A second view while the first lives: other channels, other memory.
        ReadView second = f.disk().read_view(32 * block, 32 * block, no_reader);
        REQUIRE(second.result().ok());
        REQUIRE(second.pieces().size() == 2);
        for (const CommandRecord &record : f.data_commands())
            CHECK(std::find(first_channels.begin(), first_channels.end(), record.channel) ==
                  first_channels.end());
        std::uint64_t at = 0;
        for (const ReadView *view : {&first, &second}) {
            for (const iovec &piece : view->pieces()) {
                CHECK(piece.iov_len == 16 * block);
                CHECK(std::memcmp(piece.iov_base, stored.data() + at, piece.iov_len) == 0);
                for (const iovec &other : second.pieces())
                    if (&other != &piece)
                        CHECK(other.iov_base != piece.iov_base);
                at += piece.iov_len;
            }
        }
        // Handed out as it lies: no copy counted by sgfs.
        CHECK(f.path(DataPath::read).user_copy_bytes == 0);

        // Dropped, the channels are free again: a view needing all four gets them.
        first = ReadView();
        second = ReadView();
        f.target->clear_log();
        ReadView all = f.disk().read_view(64 * block, 0, no_reader);
        REQUIRE(all.result().ok());
        CHECK(all.pieces().size() == 4);
        CHECK(f.target->max_in_flight() == 4);
    }
}

TEST_CASE("read_view: a held view makes a read that needs its channels wait")
{
    EngineFixture f({}, split_options(16, 2));
    ReadView view = f.disk().read_view(32 * block, 0, no_reader); // both channels
    REQUIRE(view.result().ok());
    f.target->clear_log();
    IoResult result;
    std::thread reader([&] {
        Bytes data(block);
        result = f.disk().pread(data.data(), data.size(), 0);
    });
    // The reader cannot send its command while the view holds every channel.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(f.target->count(opcode::read_10) == 0);
    view = ReadView();
    reader.join();
    CHECK(result.bytes == block);
    CHECK(f.target->count(opcode::read_10) == 1);
}

TEST_CASE("read_view, staged: unaligned, or more commands than channels")
{
    EngineFixture f({}, split_options(16, 2));
    const Bytes stored = pattern(128 * block, 4);
    f.target->poke(0, stored);
    SUBCASE("unaligned")
    {
        ReadView view = f.disk().read_view(3000, 700, no_reader);
        REQUIRE(view.result().ok());
        CHECK(view.result().bytes == 3000);
        REQUIRE(view.pieces().size() == 1);
        CHECK(std::memcmp(view.pieces()[0].iov_base, stored.data() + 700, 3000) == 0);
        CHECK(f.path(DataPath::read).user_copy_bytes > 0);
    }
    SUBCASE("three commands on two channels")
    {
        ReadView view = f.disk().read_view(48 * block, 0, no_reader);
        REQUIRE(view.result().ok());
        REQUIRE(view.pieces().size() == 1);
        CHECK(std::memcmp(view.pieces()[0].iov_base, stored.data(), 48 * block) == 0);
        check_covers(f.data_commands(), 0, 48, 16);
    }
    SUBCASE("cut at the end of the disk; nothing past it")
    {
        const std::uint64_t size = f.target->bytes();
        ReadView view = f.disk().read_view(4 * block, size - block, no_reader);
        CHECK(view.result().bytes == block);
        ReadView past = f.disk().read_view(block, size, no_reader);
        CHECK(past.result().ok());
        CHECK(past.result().bytes == 0);
        CHECK(past.pieces().empty());
    }
}

TEST_CASE("bounds: reads cut at the end, writes ENOSPC at it and short across it")
{
    TargetConfig config;
    config.block_count = 64;
    EngineFixture f(config);
    const std::uint64_t size = 64 * block;
    Bytes data = pattern(3 * block, 6);
    SUBCASE("a read at or after the end reads nothing, sends nothing")
    {
        CHECK(f.disk().pread(data.data(), data.size(), size).bytes == 0);
        CHECK(f.disk().pread(data.data(), data.size(), size + 12345).bytes == 0);
        CHECK(f.disk().pread(data.data(), 0, 0).bytes == 0);
        CHECK(f.target->log().empty());
    }
    SUBCASE("a read crossing the end is short")
    {
        f.target->poke(size - 700, Bytes(700, 0x77));
        const IoResult result = f.disk().pread(data.data(), data.size(), size - 700);
        CHECK(result.ok());
        CHECK(result.bytes == 700);
        CHECK(std::all_of(data.begin(), data.begin() + 700, [](auto b) { return b == 0x77; }));
    }
    SUBCASE("a write at or past the end: ENOSPC, nothing sent")
    {
        IoResult result = f.disk().pwrite(data.data(), data.size(), size);
        CHECK(result.error == -ENOSPC);
        CHECK(contains(result.message, "sg0"));
        CHECK(f.disk().pwrite(data.data(), 1, size + block).error == -ENOSPC);
        CHECK(f.target->log().empty());
    }
    SUBCASE("a write crossing the end writes what fits")
    {
        const IoResult result = f.disk().pwrite(data.data(), data.size(), size - 1000);
        CHECK(result.ok());
        CHECK(result.bytes == 1000);
        CHECK(f.target->equals(size - 1000, {data.data(), 1000}));
    }
    SUBCASE("an empty write writes nothing")
    {
        const IoResult result = f.disk().pwrite(data.data(), 0, 5);
        CHECK(result.ok());
        CHECK(result.bytes == 0);
        CHECK(f.target->log().empty());
    }
}

TEST_CASE("read-only: writes are EROFS, reads work")
{
    DiskOptions options = test_options();
    options.read_only = true;
    EngineFixture f({}, options);
    const Bytes data(block, 1);
    const IoResult result = f.disk().pwrite(data.data(), data.size(), 0);
    CHECK(result.error == -EROFS);
    CHECK(contains(result.message, "read-only"));
    CHECK(f.target->log().empty());
    Bytes read(block);
    CHECK(f.disk().pread(read.data(), read.size(), 0).ok());
}

TEST_CASE("read-modify-write under concurrency: disjoint bytes in the same blocks all survive")
{
    EngineFixture f({}, split_options(4));
    constexpr unsigned threads = 6;
    constexpr std::size_t run = 37;  // bytes per write: crosses block boundaries now and then
    constexpr std::size_t span = 12; // blocks the threads share
    const Bytes before = pattern(span * block + 2 * block, 11);
    f.target->poke(0, before);
    // Thread t writes runs t, t + threads, t + 2 threads, ... of `run` bytes from byte 200.
    Bytes expected = before;
    std::vector<std::thread> writers;
    std::vector<int> failures(threads, 0);
    for (unsigned t = 0; t < threads; ++t) {
        writers.emplace_back([&, t] {
            for (std::size_t at = 200 + t * run; at + run <= 200 + span * block;
                 at += threads * run) {
                const Bytes data(run, static_cast<std::uint8_t>(0x10 + t));
                if (!f.disk().pwrite(data.data(), run, at).ok())
                    ++failures[t];
            }
        });
        for (std::size_t at = 200 + t * run; at + run <= 200 + span * block; at += threads * run)
            std::fill_n(expected.begin() + static_cast<std::ptrdiff_t>(at), run,
                        static_cast<std::uint8_t>(0x10 + t));
    }
    for (std::thread &writer : writers)
        writer.join();
    CHECK(failures == std::vector<int>(threads, 0));
    CHECK(f.target->peek(0, expected.size()) == expected);
}

TEST_CASE("read-modify-write under concurrency: overlapping writes, each range whole")
{
    // Every thread writes the same unaligned range, crossing three blocks, with its own byte:
    // the store ends as one of them, never a mix.
    EngineFixture f({}, split_options(4));
    constexpr unsigned threads = 4;
    constexpr std::size_t length = 1500;
    constexpr std::uint64_t offset = 300;
    std::vector<std::thread> writers;
    for (unsigned t = 0; t < threads; ++t)
        writers.emplace_back([&, t] {
            for (int i = 0; i < 50; ++i) {
                const Bytes data(length, static_cast<std::uint8_t>(1 + t));
                static_cast<void>(f.disk().pwrite(data.data(), length, offset));
            }
        });
    for (std::thread &writer : writers)
        writer.join();
    const Bytes stored = f.target->peek(offset, length);
    CHECK(std::all_of(stored.begin(), stored.end(), [&](auto b) { return b == stored[0]; }));
    CHECK(stored[0] >= 1);
    CHECK(stored[0] <= threads);
    CHECK(f.target->peek(0, offset) == Bytes(offset, 0));
    CHECK(f.target->peek(offset + length, 100) == Bytes(100, 0));
}

TEST_CASE("a medium error mid-way: the bytes before it, the LBA named, counted")
{
    EngineFixture f({}, split_options(16));
    Fault fault;
    fault.kind = FaultKind::medium_error;
    fault.lba = 40;
    fault.blocks = 1;
    fault.times = Fault::always;
    SUBCASE("a write")
    {
        fault.on = Ops::write;
        f.target->inject(fault);
        const Bytes data = pattern(100 * block, 1);
        const IoResult result = f.disk().pwrite(data.data(), data.size(), 0);
        CHECK(result.error == -EIO);
        // Commands at 0 and 16 succeeded before the one at 32 failed.
        CHECK(result.bytes == 32 * block);
        CHECK(contains(result.message, "sg0"));
        CHECK(contains(result.message, "LBA 40"));
        CHECK(f.target->equals(0, {data.data(), 32 * block}));
        // Nothing after the failing batch (0..63) was sent.
        for (const CommandRecord &record : f.data_commands())
            CHECK(record.lba < 64);
    }
    SUBCASE("an unaligned write: the head block counts among the bytes before it")
    {
        fault.on = Ops::write;
        f.target->inject(fault);
        const Bytes data = pattern(100 * block, 1);
        const IoResult result = f.disk().pwrite(data.data(), data.size(), 100);
        CHECK(result.error == -EIO);
        // Head block 0 (412 bytes), then commands at 1 and 17 before the one at 33 failed.
        CHECK(result.bytes == (block - 100) + 32 * block);
        CHECK(f.target->equals(100, {data.data(), result.bytes}));
    }
    SUBCASE("a read")
    {
        fault.on = Ops::read;
        f.target->inject(fault);
        Bytes data(100 * block);
        const IoResult result = f.disk().pread(data.data(), data.size(), 0);
        CHECK(result.error == -EIO);
        CHECK(contains(result.message, "LBA 40"));
    }
    CHECK(f.errors(ErrorCategory::medium_error) == 1);
    CHECK(f.stats().retries == 0);
}

TEST_CASE("a read_view failing: the error, no pieces, its channels free again")
{
    EngineFixture f({}, split_options(16, 2));
    Fault fault;
    fault.kind = FaultKind::medium_error;
    fault.on = Ops::read;
    fault.lba = 20;
    fault.blocks = 1;
    f.target->inject(fault);
    ReadView view = f.disk().read_view(32 * block, 0, no_reader);
    CHECK(view.result().error == -EIO);
    CHECK(contains(view.result().message, "sg0"));
    CHECK(view.pieces().empty());
    ReadView again = f.disk().read_view(32 * block, 0, no_reader);
    CHECK(again.result().ok());
}

TEST_CASE("an unaligned read whose head block fails")
{
    EngineFixture f;
    Fault fault;
    fault.kind = FaultKind::medium_error;
    fault.on = Ops::read;
    fault.lba = 3;
    fault.blocks = 1;
    f.target->inject(fault);
    Bytes data(4 * block);
    const IoResult result = f.disk().pread(data.data(), data.size(), 3 * block + 10);
    CHECK(result.error == -EIO);
    CHECK(contains(result.message, "LBA 3"));
    CHECK(f.data_commands().size() == 1);
}

TEST_CASE("a unit attention during a write is retried and the write completes")
{
    EngineFixture f({}, split_options(16));
    f.target->raise_unit_attention(0x29, 0x00);
    const Bytes data = pattern(64 * block, 2);
    const IoResult result = f.disk().pwrite(data.data(), data.size(), 0);
    REQUIRE(result.ok());
    CHECK(result.bytes == data.size());
    CHECK(f.target->equals(0, data));
    CHECK(f.target->count(opcode::write_10) == 5); // four commands, one sent again
    CHECK(f.stats().retries == 1);
    CHECK(f.errors(ErrorCategory::unit_attention) == 1);
}

TEST_CASE("a short transfer in a multi-command write: the rest re-issued")
{
    EngineFixture f({}, split_options(16));
    Fault fault;
    fault.kind = FaultKind::short_transfer;
    fault.on = Ops::write;
    fault.lba = 16;
    fault.blocks = 1;
    fault.residual = 3 * block;
    const std::size_t rule = f.target->inject(fault);
    const Bytes data = pattern(64 * block, 3);
    const IoResult result = f.disk().pwrite(data.data(), data.size(), 0);
    REQUIRE(result.ok());
    CHECK(result.bytes == data.size());
    CHECK(f.target->fired(rule) == 1);
    CHECK(f.target->equals(0, data));
    const std::vector<CommandRecord> writes = f.data_commands();
    CHECK(writes.size() == 5);
    CHECK(std::any_of(writes.begin(), writes.end(),
                      [](const CommandRecord &r) { return r.lba == 29 && r.blocks == 3; }));
    CHECK(f.mode(TransferMode::indirect).done_bytes == data.size());
}

TEST_CASE("a timeout: one attempt, ETIMEDOUT")
{
    EngineFixture f;
    Fault fault;
    fault.kind = FaultKind::timeout;
    fault.on = Ops::write;
    fault.times = Fault::always;
    f.target->inject(fault);
    const Bytes data(4 * block, 9);
    const IoResult result = f.disk().pwrite(data.data(), data.size(), 0);
    CHECK(result.error == -ETIMEDOUT);
    CHECK(contains(result.message, "sg0"));
    CHECK(f.target->count(opcode::write_10) == 1);
    CHECK(f.stats().retries == 0);
    CHECK(f.errors(ErrorCategory::timeout) == 1);
}

TEST_CASE("the device disappearing: ENODEV, then every IO ENODEV without a command")
{
    for (const GoneForm form :
         {GoneForm::reap_fails, GoneForm::submit_fails, GoneForm::no_connect}) {
        CAPTURE(static_cast<int>(form));
        EngineFixture f;
        Fault fault;
        fault.kind = FaultKind::device_gone;
        fault.on = Ops::read;
        fault.gone_form = form;
        f.target->inject(fault);
        Bytes data(2 * block);
        const IoResult result = f.disk().pread(data.data(), data.size(), 0);
        CHECK(result.error == -ENODEV);
        CHECK(contains(result.message, "sg0"));
        f.target->clear_log();
        CHECK(f.disk().pread(data.data(), data.size(), 0).error == -ENODEV);
        CHECK(f.disk().pwrite(data.data(), data.size(), 0).error == -ENODEV);
        CHECK(f.disk().pwrite(data.data(), 100, 7).error == -ENODEV);
        CHECK(f.disk().read_view(data.size(), 0, no_reader).result().error == -ENODEV);
        const IoResult flushed = f.disk().flush();
        CHECK(flushed.error == -ENODEV);
        CHECK(contains(flushed.message, "gone"));
        CHECK(f.disk().zero_range(0, 4 * block).error == -ENODEV);
        // Nothing was even queued on the dead channels.
        CHECK(f.target->max_in_flight() == 0);
        CHECK(f.target->log().empty());
    }
}

TEST_CASE("flush: SYNCHRONIZE CACHE of the whole disk")
{
    EngineFixture f;
    const IoResult result = f.disk().flush();
    CHECK(result.ok());
    const std::vector<CommandRecord> log = f.target->log();
    REQUIRE(log.size() == 1);
    CHECK(log[0].opcode == opcode::synchronize_cache_10);
    CHECK(log[0].lba == 0);
    CHECK(log[0].blocks == 0);
}

TEST_CASE("flush: a failing SYNCHRONIZE CACHE is the answer")
{
    EngineFixture f;
    Fault fault;
    fault.kind = FaultKind::check_condition;
    fault.on = Ops::sync;
    fault.sense_key = 0x04; // hardware error
    fault.asc = 0x44;
    f.target->inject(fault);
    const IoResult result = f.disk().flush();
    CHECK(result.error == -EIO);
    CHECK(contains(result.message, "sg0"));
    CHECK(f.errors(ErrorCategory::hardware_error) == 1);
}

TEST_CASE("the fua option: WRITE commands with FUA still land")
{
    DiskOptions options = test_options();
    options.fua = true;
    EngineFixture f({}, options);
    const Bytes data = pattern(8 * block, 1);
    REQUIRE(f.disk().pwrite(data.data(), data.size(), block).ok());
    CHECK(f.target->equals(block, data));
}
