// Read-ahead (core/readahead.hpp) on an Engine over the in-memory SCSI target: what a
// sequential reader's reads return (the target's store, peeked, is the oracle), which READs
// the target received ahead of the reader (its command log), which reader is served what,
// and how failures of read-ahead commands reach the reads.
#include "engine.hpp"
#include "engine_fixture.hpp"
#include "memory_target.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <doctest/doctest.h>
#include <memory>
#include <string>
#include <vector>

using namespace sgfs;
using namespace sgfs::test;

namespace
{

constexpr std::size_t block = 512;
constexpr std::size_t kib = 1024;
constexpr std::size_t max_io = 64 * kib; // 128 blocks: the largest window

// One Engine with read-ahead on its own target, the store filled with a pattern.
struct Unit {
    explicit Unit(TargetConfig config = {}, const DiskOptions &options = defaults())
        : target(std::make_shared<MemoryTarget>(std::move(config)))
    {
        target->poke(0, pattern(target->bytes(), 1));
        std::string message;
        const int rc = Engine::open(std::make_unique<MemoryTransport>(target, memory_node_facts()),
                                    options, engine, message);
        INFO(message);
        REQUIRE(rc == 0);
        target->clear_log();
    }
    static DiskOptions defaults()
    {
        DiskOptions options;
        options.max_io = max_io;
        options.queue_depth = 4;
        options.readahead = true;
        return options;
    }
    // A read as fusefs does it: a view, its pieces copied out.
    IoResult read(ReaderId reader, std::uint64_t offset, std::size_t length, Bytes &out) const
    {
        const ReadView view = engine->read_view(length, offset, reader);
        out.clear();
        for (const iovec &piece : view.pieces()) {
            const auto *base = static_cast<const std::uint8_t *>(piece.iov_base);
            out.insert(out.end(), base, base + piece.iov_len);
        }
        return view.result();
    }
    // Reads [offset, offset + length) in `step`-byte reads and checks each against the store.
    void read_sequentially(ReaderId reader, std::uint64_t offset, std::uint64_t length,
                           std::size_t step) const
    {
        Bytes got;
        for (std::uint64_t at = offset; at < offset + length; at += step) {
            CAPTURE(at);
            const IoResult result = read(reader, at, step, got);
            INFO(result.message);
            REQUIRE(result.ok());
            REQUIRE(result.bytes == step);
            REQUIRE(got.size() == step);
            CHECK(target->equals(at, got));
        }
    }
    std::vector<CommandRecord> reads() const
    {
        std::vector<CommandRecord> out;
        for (const CommandRecord &record : target->log())
            if (record.opcode == opcode::read_10 || record.opcode == opcode::read_16)
                out.push_back(record);
        return out;
    }
    std::size_t attempts_at(std::uint64_t lba) const
    {
        std::size_t n = 0;
        for (const CommandRecord &record : reads())
            n += record.lba <= lba && lba < record.lba + record.blocks ? 1 : 0;
        return n;
    }
    DeviceStatsSnapshot stats() const { return engine->stats(); }

    std::shared_ptr<MemoryTarget> target;
    std::unique_ptr<Engine> engine;
};

Fault read_fault(FaultKind kind, std::uint64_t lba, unsigned times = Fault::always)
{
    Fault fault;
    fault.kind = kind;
    fault.on = Ops::read;
    fault.lba = lba;
    fault.blocks = 1;
    fault.times = times;
    return fault;
}

constexpr ReaderId reader_a = 101, reader_b = 102, reader_c = 103;

} // namespace

TEST_CASE("a sequential reader is answered from windows read ahead, growing to max_io")
{
    Unit unit;
    const std::size_t step = 4 * kib;
    const std::uint64_t total = 1024 * kib;
    unit.read_sequentially(reader_a, 0, total, step);
    const DeviceStatsSnapshot stats = unit.stats();
    // The first read shows no stream yet and is read the normal way; every later one is
    // answered from windows.
    CHECK(stats.readahead_hit_bytes == total - step);
    CHECK(stats.readahead_bytes >= stats.readahead_hit_bytes);

    const std::vector<CommandRecord> reads = unit.reads();
    REQUIRE(reads.size() >= 4);
    CHECK(reads.front().lba == 0);
    CHECK(reads.front().blocks == step / block);
    // Then windows: each starts where the one before ended, none smaller than the one
    // before, none larger than max_io, and the largest reached.
    std::uint32_t largest = 0;
    for (std::size_t i = 1; i < reads.size(); ++i) {
        CAPTURE(i);
        CHECK(reads[i].lba == reads[i - 1].lba + reads[i - 1].blocks);
        CHECK(reads[i].blocks <= max_io / block);
        if (i > 1 && reads[i].lba + reads[i].blocks < 2048)
            CHECK(reads[i].blocks >= reads[i - 1].blocks);
        largest = std::max(largest, reads[i].blocks);
    }
    CHECK(reads[1].blocks > step / block); // the first window: several requests' worth
    CHECK(largest == max_io / block);
    // Ahead of the reader: the target was asked for blocks the reader had not read yet.
    CHECK(reads[1].lba == step / block);
    // Never past the end of the disk.
    CHECK(reads.back().lba + reads.back().blocks <= 2048);
    CHECK(unit.target->max_in_flight() >= 2);
}

TEST_CASE("reads without a reader, and random reads, queue no read-ahead")
{
    Unit unit;
    unit.read_sequentially(no_reader, 0, 256 * kib, 4 * kib);
    CHECK(unit.stats().readahead_bytes == 0);
    CHECK(unit.reads().size() == 64);
    unit.target->clear_log();
    Bytes got;
    for (const std::uint64_t lba : {900, 10, 500, 1500, 77, 1200}) {
        REQUIRE(unit.read(reader_a, lba * block, 4 * kib, got).ok());
        CHECK(unit.target->equals(lba * block, got));
    }
    CHECK(unit.stats().readahead_bytes == 0);
    CHECK(unit.reads().size() == 6);
}

TEST_CASE("another reader never gets data read before its first read")
{
    Unit unit;
    unit.read_sequentially(reader_a, 0, 16 * kib, 4 * kib);
    // A has windows ahead of it now. Another host writes there.
    const std::vector<CommandRecord> ahead = unit.reads();
    REQUIRE(ahead.size() >= 2);
    const std::uint64_t at = (ahead.back().lba + 2) * block;
    const Bytes fresh = pattern(8 * kib, 200);
    unit.target->poke(at, fresh);

    Bytes got;
    IoResult result = unit.read(reader_b, at, 8 * kib, got);
    REQUIRE(result.ok());
    CHECK(got == fresh);
    // And B reading on sequentially from there: still what the store holds now.
    unit.read_sequentially(reader_b, at + 8 * kib, 64 * kib, 8 * kib);
    // A holds every channel for its windows; once A has gone quiet (64 reads of the disk
    // without it) they go to B, whose own read-ahead, read after its first read, serves it.
    const std::uint64_t hits = unit.stats().readahead_hit_bytes;
    unit.read_sequentially(reader_b, at + 72 * kib, 400 * kib, 4 * kib);
    CHECK(unit.stats().readahead_hit_bytes > hits);
}

TEST_CASE("end_reader drops the reader's windows")
{
    Unit unit;
    unit.read_sequentially(reader_a, 0, 16 * kib, 4 * kib);
    // The windows ahead were queued and not collected yet.
    CHECK(unit.target->in_flight() > 0);
    unit.engine->end_reader(reader_a);
    CHECK(unit.target->in_flight() == 0);
    // Another reader gets all the channels for its own windows, and the store's data.
    unit.target->poke(64 * kib, pattern(64 * kib, 77));
    unit.read_sequentially(reader_c, 0, 512 * kib, 16 * kib);
    CHECK(unit.stats().readahead_hit_bytes > 0);
    // Ending a reader that has none, or no reader, is harmless.
    unit.engine->end_reader(reader_a);
    unit.engine->end_reader(no_reader);
    unit.read_sequentially(reader_c, 512 * kib, 64 * kib, 16 * kib);
}

TEST_CASE("a write through the engine over a window makes it stale")
{
    for (const bool aligned : {true, false}) {
        CAPTURE(aligned);
        Unit unit;
        unit.read_sequentially(reader_a, 0, 16 * kib, 4 * kib);
        // Windows cover what follows; write into them, aligned or not.
        const std::uint64_t at = aligned ? 20 * kib : 20 * kib + 100;
        const Bytes fresh = pattern(aligned ? 8 * kib : 5000, 150);
        REQUIRE(unit.engine->pwrite(fresh.data(), fresh.size(), at).ok());
        REQUIRE(unit.target->equals(at, fresh));
        // The reader goes on and gets what the store holds now, written data included.
        unit.read_sequentially(reader_a, 16 * kib, 128 * kib, 4 * kib);
        // Read-ahead still answers the reads after the write.
        CHECK(unit.stats().readahead_hit_bytes > 0);
    }
}

TEST_CASE("zeroing and a copy onto a window make it stale too")
{
    Unit unit;
    unit.read_sequentially(reader_a, 0, 16 * kib, 4 * kib);
    REQUIRE(unit.engine->zero_range(24 * kib, 4 * kib).ok());
    REQUIRE(copy_range(*unit.engine, 512 * kib, *unit.engine, 40 * kib, 8 * kib).ok());
    unit.read_sequentially(reader_a, 16 * kib, 128 * kib, 4 * kib);
}

TEST_CASE("a read-ahead command's medium error: the read falls back and reports it properly")
{
    SUBCASE("once: the normal read succeeds")
    {
        Unit unit;
        const std::size_t rule = unit.target->inject(read_fault(FaultKind::medium_error, 50, 1));
        unit.read_sequentially(reader_a, 0, 128 * kib, 4 * kib);
        CHECK(unit.target->fired(rule) == 1);
        CHECK(unit.stats().errors[static_cast<int>(ErrorCategory::medium_error)] == 1);
    }
    SUBCASE("always: the read of the bad block fails with EIO, the others are data")
    {
        Unit unit;
        unit.target->inject(read_fault(FaultKind::medium_error, 50));
        Bytes got;
        for (std::uint64_t at = 0; at < 128 * kib; at += 4 * kib) {
            CAPTURE(at);
            const IoResult result = unit.read(reader_a, at, 4 * kib, got);
            const bool bad = at / block <= 50 && 50 < (at + 4 * kib) / block;
            if (bad) {
                CHECK(result.error == -EIO);
                CHECK(result.message.find("sg0") != std::string::npos);
                CHECK(result.message.find("edium") != std::string::npos);
            } else {
                INFO(result.message);
                REQUIRE(result.ok());
                CHECK(unit.target->equals(at, got));
            }
        }
    }
}

TEST_CASE("a read-ahead command that times out fails the read once, tried once")
{
    Unit unit;
    const std::uint64_t bad = 50;
    unit.target->inject(read_fault(FaultKind::timeout, bad));
    Bytes got;
    std::uint64_t at = 0;
    IoResult result;
    for (; at < 128 * kib; at += 4 * kib) {
        result = unit.read(reader_a, at, 4 * kib, got);
        if (!result.ok())
            break;
        CHECK(unit.target->equals(at, got));
    }
    CHECK(result.error == -ETIMEDOUT);
    CHECK(at <= bad * block);
    // The timed-out window is the only command that asked for the bad block: no second
    // wait for the same answer.
    CHECK(unit.attempts_at(bad) == 1);
    CHECK(unit.stats().errors[static_cast<int>(ErrorCategory::timeout)] == 1);
    // Reads after it past the bad block are data again.
    unit.read_sequentially(reader_a, 64 * kib, 64 * kib, 4 * kib);
}

TEST_CASE("the device disappearing under read-ahead: ENODEV, then nothing sent")
{
    for (const GoneForm form :
         {GoneForm::reap_fails, GoneForm::submit_fails, GoneForm::no_connect}) {
        CAPTURE(static_cast<int>(form));
        Unit unit;
        unit.read_sequentially(reader_a, 0, 16 * kib, 4 * kib);
        unit.target->disappear(form);
        Bytes got;
        IoResult result;
        std::uint64_t at = 16 * kib;
        // Data a window already collected may still answer; then the loss shows.
        for (; at < 1024 * kib; at += 4 * kib) {
            result = unit.read(reader_a, at, 4 * kib, got);
            if (!result.ok())
                break;
            CHECK(unit.target->equals(at, got));
        }
        CHECK(result.error == -ENODEV);
        const std::size_t logged = unit.target->log().size();
        result = unit.read(reader_a, at + 4 * kib, 4 * kib, got);
        CHECK(result.error == -ENODEV);
        result = unit.read(reader_b, 0, 4 * kib, got);
        CHECK(result.error == -ENODEV);
        CHECK(unit.target->log().size() == logged);
        unit.engine->end_reader(reader_a);
        CHECK(unit.target->in_flight() == 0);
    }
}

TEST_CASE("two sequential readers at once each get their own windows and the right data")
{
    Unit unit;
    Bytes got;
    for (std::uint64_t i = 0; i < 64; ++i) {
        const std::uint64_t a = i * 4 * kib, b = 512 * kib + i * 4 * kib;
        REQUIRE(unit.read(reader_a, a, 4 * kib, got).ok());
        CHECK(unit.target->equals(a, got));
        REQUIRE(unit.read(reader_b, b, 4 * kib, got).ok());
        CHECK(unit.target->equals(b, got));
    }
    // Each is answered from windows after its first read, B once A's share makes room:
    // more hits than one reader alone could have.
    const std::uint64_t hits = unit.stats().readahead_hit_bytes;
    CHECK(hits > std::uint64_t{64 - 1} * 4 * kib);
    CHECK(hits <= std::uint64_t{126} * 4 * kib); // both readers, after their first reads
}

TEST_CASE("reads that straddle windows and do not start on a block boundary")
{
    Unit unit;
    // 48 KiB reads from the start: each may cover parts of two windows.
    unit.read_sequentially(reader_a, 0, 960 * kib, 48 * kib);
    // Odd sizes: the data is still right.
    Bytes got;
    for (std::uint64_t at = 3; at < 200 * kib; at += 3000) {
        const IoResult result = unit.read(reader_b, at, 3000, got);
        REQUIRE(result.ok());
        CHECK(unit.target->equals(at, got));
    }
}

TEST_CASE("a window the reader has passed reads further ahead once its view is gone, before the "
          "next read")
{
    Unit unit;
    Bytes got;
    REQUIRE(unit.read(reader_a, 0, max_io, got).ok()); // no stream yet: read the normal way
    std::vector<CommandRecord> before;
    {
        // Continues the stream: windows are queued, this read served from the first.
        const ReadView view = unit.engine->read_view(max_io, max_io, reader_a);
        REQUIRE(view.result().ok());
        before = unit.reads();
        REQUIRE(before.size() >= 3);
    }
    // Its reply is out (the view went): the window it came from is read again further on,
    // with no read of the reader in between.
    const std::vector<CommandRecord> after = unit.reads();
    REQUIRE(after.size() == before.size() + 1);
    std::uint64_t furthest = 0;
    for (const CommandRecord &record : before)
        furthest = std::max(furthest, record.lba + record.blocks);
    CHECK(after.back().lba == furthest);
    CHECK(after.back().blocks == max_io / block);
    // And what it reads is what the reader gets next.
    unit.read_sequentially(reader_a, 2 * max_io, 6 * max_io, max_io);
    CHECK(unit.stats().readahead_hit_bytes == 7 * max_io);
}

TEST_CASE("a view released after the device is gone reads nothing further ahead")
{
    Unit unit;
    Bytes got;
    REQUIRE(unit.read(reader_a, 0, max_io, got).ok());
    std::size_t queued = 0;
    {
        const ReadView view = unit.engine->read_view(max_io, max_io, reader_a);
        REQUIRE(view.result().ok());
        // A read without a reader (no stream touched) learns that the device is gone.
        unit.target->disappear(GoneForm::reap_fails);
        CHECK(unit.read(no_reader, 512 * kib, 4 * kib, got).error == -ENODEV);
        queued = unit.target->in_flight();
    }
    // A refill would queue a command (a gone target queues it, never runs it): none came.
    CHECK(unit.target->in_flight() == queued);
    unit.engine->end_reader(reader_a);
    CHECK(unit.target->in_flight() == 0);
}
