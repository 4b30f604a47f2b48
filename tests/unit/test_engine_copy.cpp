// copy_range (include/sgfs/disk.hpp) between Engines on in-memory SCSI targets, and within
// one: the oracle is memcpy / memmove on copies of the targets' stores taken before the copy
// (peek), the targets' command logs and counts, and the counters as DeviceStats documents
// them.
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

constexpr std::size_t kib = 1024;

// One Engine on its own target, the target's store filled with a pattern of `seed`.
struct Unit {
    Unit(TargetConfig config, const DiskOptions &options, std::uint8_t seed, unsigned node = 0)
        : target(std::make_shared<MemoryTarget>(std::move(config)))
    {
        target->poke(0, pattern(target->bytes(), seed));
        std::string message;
        const int rc =
            Engine::open(std::make_unique<MemoryTransport>(target, memory_node_facts(node)),
                         options, engine, message);
        INFO(message);
        REQUIRE(rc == 0);
        target->clear_log();
    }
    Bytes store() const { return target->peek(0, target->bytes()); }
    PathCountersSnapshot copy_counters() const
    {
        return engine->stats().paths[static_cast<int>(DataPath::copy)];
    }
    // The commands with `opcode` the target received over [lba, lba + blocks).
    std::vector<CommandRecord> commands(std::uint8_t opcode) const
    {
        std::vector<CommandRecord> out;
        for (const CommandRecord &record : target->log())
            if (record.opcode == opcode)
                out.push_back(record);
        return out;
    }
    std::size_t attempts_at(std::uint8_t opcode, std::uint64_t lba) const
    {
        std::size_t n = 0;
        for (const CommandRecord &record : commands(opcode))
            n += record.lba <= lba && lba < record.lba + record.blocks ? 1 : 0;
        return n;
    }

    std::shared_ptr<MemoryTarget> target;
    std::unique_ptr<Engine> engine;
};

TargetConfig blocks_of(std::uint32_t block_size, std::uint64_t count)
{
    TargetConfig config;
    config.block_size = block_size;
    config.block_count = count;
    return config;
}

DiskOptions small_io(std::size_t max_io, unsigned queue_depth = 4)
{
    DiskOptions options;
    options.max_io = max_io;
    options.queue_depth = queue_depth;
    options.readahead = false;
    return options;
}

// What copy_range should leave on `destination`: the source's bytes memcpy'd over it.
Bytes copied(const Bytes &source, std::uint64_t from, Bytes destination, std::uint64_t to,
             std::size_t length)
{
    std::memcpy(destination.data() + to, source.data() + from, length);
    return destination;
}

// What a copy within one disk should leave: memmove.
Bytes moved(Bytes store, std::uint64_t from, std::uint64_t to, std::size_t length)
{
    std::memmove(store.data() + to, store.data() + from, length);
    return store;
}

Fault fault_at(FaultKind kind, Ops on, std::uint64_t lba, unsigned times = Fault::always)
{
    Fault fault;
    fault.kind = kind;
    fault.on = on;
    fault.lba = lba;
    fault.blocks = 1;
    fault.times = times;
    return fault;
}

} // namespace

TEST_CASE("a copy between two disks is memcpy, aligned or not")
{
    struct Case {
        std::uint64_t from, to;
        std::size_t length;
    };
    // Aligned; the same offset within a block (a staged head and tail around whole blocks);
    // offsets that never line up (all staged); shorter than a block; within one block.
    const Case cases[] = {{0, 0, 64 * kib},         {4096, 65536, 100 * kib},
                          {100, 612, 50 * kib + 7}, {3, 1000, 33 * kib + 5},
                          {700, 90, 300},           {10, 20, 400}};
    for (const Case &c : cases) {
        CAPTURE(c.from);
        CAPTURE(c.to);
        CAPTURE(c.length);
        Unit source(blocks_of(512, 1024), small_io(8 * kib), 1);
        Unit destination(blocks_of(512, 1024), small_io(8 * kib), 2, 1);
        const Bytes expected = copied(source.store(), c.from, destination.store(), c.to, c.length);
        const Bytes source_before = source.store();
        const IoResult result =
            copy_range(*source.engine, c.from, *destination.engine, c.to, c.length);
        INFO(result.message);
        REQUIRE(result.ok());
        CHECK(result.bytes == c.length);
        CHECK(destination.store() == expected);
        CHECK(source.store() == source_before);
        CHECK(source.target->count(opcode::write_10) == 0);
    }
}

TEST_CASE("block-aligned copies move whole blocks with no user copy; edges are partial copies")
{
    Unit source(blocks_of(512, 1024), small_io(16 * kib), 1);
    Unit destination(blocks_of(512, 1024), small_io(16 * kib), 2, 1);
    REQUIRE(copy_range(*source.engine, 8192, *destination.engine, 4096, 200 * kib).ok());
    CHECK(source.copy_counters().user_copy_bytes == 0);
    CHECK(destination.copy_counters().user_copy_bytes == 0);

    // 100 bytes of head, 56 of tail: each read as part of a block and written
    // read-modify-write; only those bytes are copied in user space.
    const std::uint64_t from = 512 * 10 + 412, to = 512 * 40 + 412;
    const std::size_t length = 100 + 20 * 512 + 56;
    const Bytes expected = copied(source.store(), from, destination.store(), to, length);
    const PathCountersSnapshot source_before = source.copy_counters();
    const PathCountersSnapshot destination_before = destination.copy_counters();
    REQUIRE(copy_range(*source.engine, from, *destination.engine, to, length).ok());
    CHECK(destination.store() == expected);
    CHECK(source.copy_counters().user_copy_bytes - source_before.user_copy_bytes == 156);
    CHECK(destination.copy_counters().user_copy_bytes - destination_before.user_copy_bytes == 156);
}

TEST_CASE("512-byte and 4096-byte disks: every byte is staged, the result is memcpy")
{
    for (const bool small_to_large : {true, false}) {
        CAPTURE(small_to_large);
        Unit small(blocks_of(512, 2048), small_io(8 * kib), 3);
        Unit large(blocks_of(4096, 256), small_io(8 * kib), 4, 1);
        Unit &source = small_to_large ? small : large;
        Unit &destination = small_to_large ? large : small;
        struct Case {
            std::uint64_t from, to, length;
        };
        for (const Case &c : {Case{0, 0, 64 * kib}, Case{512, std::uint64_t{4096} * 3, 40 * kib},
                              Case{4096 + 17, 1000, 30 * kib + 3}}) {
            const std::uint64_t from = c.from, to = c.to, length = c.length;
            CAPTURE(from);
            CAPTURE(to);
            const Bytes expected = copied(source.store(), from, destination.store(), to, length);
            const IoResult result =
                copy_range(*source.engine, from, *destination.engine, to, length);
            INFO(result.message);
            REQUIRE(result.ok());
            CHECK(result.bytes == length);
            CHECK(destination.store() == expected);
        }
    }
}

TEST_CASE("a copy within one disk is memmove: overlapping forwards and backwards, over turns")
{
    // max_io of 4 KiB: a 200 KiB copy is 50 chunks, more than three turns of 16.
    struct Case {
        std::uint64_t from, to;
        std::size_t length;
    };
    const Case cases[] = {
        {0, 4096, 200 * kib},           // destination inside the source: back to front
        {4096, 0, 200 * kib},           // source ahead of the destination: front to back
        {0, 512, 200 * kib},            // overlapping by all but one block
        {512, 0, 200 * kib},            //
        {100, 612, 150 * kib + 3},      // unaligned, same offset in the block: staged edges
        {612, 100, 150 * kib + 3},      //
        {10, 1000, 100 * kib + 11},     // never lining up: all staged, back to front
        {1000, 10, 100 * kib + 11},     //
        {0, 300 * kib, 200 * kib},      // no overlap
        {8192, 8192, 64 * kib},         // onto itself
        {12 * kib, 16 * kib, 16 * kib}, // one chunk's shift
    };
    for (const Case &c : cases) {
        CAPTURE(c.from);
        CAPTURE(c.to);
        CAPTURE(c.length);
        Unit disk(blocks_of(512, 1024), small_io(4 * kib), 5);
        const Bytes expected = moved(disk.store(), c.from, c.to, c.length);
        const IoResult result = copy_range(*disk.engine, c.from, *disk.engine, c.to, c.length);
        INFO(result.message);
        REQUIRE(result.ok());
        CHECK(result.bytes == c.length);
        CHECK(disk.store() == expected);
    }
}

TEST_CASE("a long copy runs in chunks of at most max_io, every block read and written once")
{
    Unit source(blocks_of(512, 2048), small_io(4 * kib), 1);
    Unit destination(blocks_of(512, 2048), small_io(4 * kib), 2, 1);
    const std::size_t length = 160 * kib; // 40 chunks: three turns
    const Bytes expected = copied(source.store(), 8192, destination.store(), 0, length);
    REQUIRE(copy_range(*source.engine, 8192, *destination.engine, 0, length).ok());
    CHECK(destination.store() == expected);
    std::vector<bool> read(length / 512, false), written(length / 512, false);
    const auto mark = [](std::vector<bool> &seen, std::uint64_t first, const CommandRecord &r) {
        CHECK(r.blocks <= 8);
        for (std::uint64_t lba = r.lba; lba < r.lba + r.blocks; ++lba) {
            REQUIRE(lba - first < seen.size());
            CHECK_FALSE(seen[lba - first]);
            seen[lba - first] = true;
        }
    };
    for (const CommandRecord &r : source.commands(opcode::read_10))
        mark(read, 16, r);
    for (const CommandRecord &r : destination.commands(opcode::write_10))
        mark(written, 0, r);
    CHECK(std::all_of(read.begin(), read.end(), [](bool b) { return b; }));
    CHECK(std::all_of(written.begin(), written.end(), [](bool b) { return b; }));
}

TEST_CASE("every io= mode copies right, with no user copy of whole blocks")
{
    for (const IoMode mode : {IoMode::indirect, IoMode::direct, IoMode::mmap, IoMode::automatic}) {
        for (const bool allow_dio : {false, true}) {
            CAPTURE(static_cast<int>(mode));
            CAPTURE(allow_dio);
            TargetConfig config = blocks_of(512, 2048);
            config.allow_dio = allow_dio;
            DiskOptions options = small_io(64 * kib);
            options.io_mode = mode;
            Unit source(config, options, 1);
            Unit destination(config, options, 2, 1);
            const std::size_t length = 512 * kib;
            const Bytes expected =
                copied(source.store(), 0, destination.store(), 128 * kib, length);
            const IoResult result =
                copy_range(*source.engine, 0, *destination.engine, 128 * kib, length);
            INFO(result.message);
            REQUIRE(result.ok());
            CHECK(destination.store() == expected);

            const PathCountersSnapshot in = source.copy_counters();
            const PathCountersSnapshot out = destination.copy_counters();
            CHECK(in.user_copy_bytes == 0);
            CHECK(out.user_copy_bytes == 0);
            // Each byte read once and written once, by the driver's copy or none.
            CHECK(in.sg_copy_bytes + in.zero_copy_bytes == length);
            CHECK(out.sg_copy_bytes + out.zero_copy_bytes == length);
            // The transfer modes the target saw: indirect commands always go through the
            // driver's copy; without allow_dio the driver does direct IO indirectly.
            const auto only = [](const std::vector<CommandRecord> &records, TransferMode m) {
                return std::all_of(records.begin(), records.end(),
                                   [m](const CommandRecord &r) { return r.mode == m; });
            };
            if (mode == IoMode::indirect) {
                CHECK(only(source.commands(opcode::read_10), TransferMode::indirect));
                CHECK(only(destination.commands(opcode::write_10), TransferMode::indirect));
                CHECK(in.sg_copy_bytes == length);
                CHECK(out.sg_copy_bytes == length);
            }
            if (mode == IoMode::direct) {
                CHECK(only(source.commands(opcode::read_10), TransferMode::direct));
                CHECK(only(destination.commands(opcode::write_10), TransferMode::direct));
                CHECK(in.zero_copy_bytes == (allow_dio ? length : 0));
                CHECK(out.zero_copy_bytes == (allow_dio ? length : 0));
            }
            if (mode == IoMode::mmap) {
                // Read into the mapping (no copy), written from it.
                CHECK(only(source.commands(opcode::read_10), TransferMode::mmap));
                CHECK(in.zero_copy_bytes == length);
            }
        }
    }
}

TEST_CASE("a medium error part-way on the source: the bytes before it, end source")
{
    for (const std::uint64_t from : {std::uint64_t{0}, std::uint64_t{300}}) {
        CAPTURE(from);
        Unit source(blocks_of(512, 2048), small_io(8 * kib), 1);
        Unit destination(blocks_of(512, 2048), small_io(8 * kib), 2, 1);
        const std::uint64_t bad_lba = 150; // byte 76800 of the source
        source.target->inject(fault_at(FaultKind::medium_error, Ops::read, bad_lba));
        const std::uint64_t to = 4096 + from;
        const std::size_t length = 300 * kib;
        const Bytes before = destination.store();
        const Bytes expected = copied(source.store(), from, before, to, length);
        const IoResult result = copy_range(*source.engine, from, *destination.engine, to, length);
        CHECK(result.error == -EIO);
        CHECK(result.end == IoEnd::source);
        CHECK(result.message.find("sg0") != std::string::npos);
        // Front to back: some prefix before the bad block, within one chunk of it.
        const std::uint64_t bad_offset = bad_lba * 512 - from;
        CHECK(result.bytes <= bad_offset);
        CHECK(result.bytes + 8 * kib > bad_offset);
        const Bytes after = destination.store();
        CHECK(std::equal(after.begin() + to, after.begin() + to + result.bytes,
                         expected.begin() + to));
        // Nothing past the copy's end was touched, nor before its start.
        CHECK(std::equal(after.begin(), after.begin() + to, before.begin()));
        CHECK(std::equal(after.begin() + to + length, after.end(), before.begin() + to + length));
        // The caller's next call, from there, meets the error at once.
        const IoResult next = copy_range(*source.engine, from + result.bytes, *destination.engine,
                                         to + result.bytes, length - result.bytes);
        CHECK(next.error == -EIO);
        CHECK(next.bytes == 0);
        CHECK(next.end == IoEnd::source);
    }
}

TEST_CASE("a medium error part-way on the destination: the bytes before it, end destination")
{
    Unit source(blocks_of(512, 2048), small_io(8 * kib), 1);
    Unit destination(blocks_of(512, 2048), small_io(8 * kib), 2, 1);
    const std::uint64_t bad_lba = 300;
    destination.target->inject(fault_at(FaultKind::medium_error, Ops::write, bad_lba));
    const std::size_t length = 400 * kib;
    const std::uint64_t to = std::uint64_t{100} * 512;
    const Bytes expected = copied(source.store(), 0, destination.store(), to, length);
    const IoResult result = copy_range(*source.engine, 0, *destination.engine, to, length);
    CHECK(result.error == -EIO);
    CHECK(result.end == IoEnd::destination);
    CHECK(result.message.find("sg1") != std::string::npos);
    const std::uint64_t bad_offset = bad_lba * 512 - to;
    CHECK(result.bytes <= bad_offset);
    CHECK(result.bytes + 8 * kib > bad_offset);
    const Bytes after = destination.store();
    CHECK(std::equal(after.begin() + to, after.begin() + to + result.bytes, expected.begin() + to));
}

TEST_CASE("a medium error in a staged edge and in an overlapping copy")
{
    SUBCASE("the tail of an unaligned copy")
    {
        Unit source(blocks_of(512, 2048), small_io(8 * kib), 1);
        Unit destination(blocks_of(512, 2048), small_io(8 * kib), 2, 1);
        // 100 + 64 blocks + 50: the tail's block is LBA 65.
        source.target->inject(fault_at(FaultKind::medium_error, Ops::read, 65));
        const std::size_t length = 100 + 64 * 512 + 50;
        const Bytes expected = copied(source.store(), 412, destination.store(), 412, length);
        const IoResult result = copy_range(*source.engine, 412, *destination.engine, 412, length);
        CHECK(result.error == -EIO);
        CHECK(result.end == IoEnd::source);
        CHECK(result.bytes == 100 + 64 * 512);
        const Bytes after = destination.store();
        CHECK(std::equal(after.begin() + 412, after.begin() + 412 + result.bytes,
                         expected.begin() + 412));
    }
    SUBCASE("back to front within one disk: nothing before the failure is in place")
    {
        Unit disk(blocks_of(512, 2048), small_io(8 * kib), 5);
        disk.target->inject(fault_at(FaultKind::medium_error, Ops::read, 40));
        const IoResult result = copy_range(*disk.engine, 0, *disk.engine, 8 * kib, 100 * kib);
        CHECK(result.error == -EIO);
        CHECK(result.end == IoEnd::source);
        CHECK(result.bytes == 0);
    }
}

TEST_CASE("a read-only destination: EROFS, end destination, nothing sent")
{
    Unit source(blocks_of(512, 1024), small_io(8 * kib), 1);
    DiskOptions read_only = small_io(8 * kib);
    read_only.read_only = true;
    Unit by_option(blocks_of(512, 1024), read_only, 2, 1);
    TargetConfig protected_config = blocks_of(512, 1024);
    protected_config.write_protected = true;
    Unit by_device(protected_config, small_io(8 * kib), 3, 2);
    for (Unit *destination : {&by_option, &by_device}) {
        const Bytes before = destination->store();
        const IoResult result = copy_range(*source.engine, 0, *destination->engine, 0, 64 * kib);
        CHECK(result.error == -EROFS);
        CHECK(result.end == IoEnd::destination);
        CHECK(result.bytes == 0);
        CHECK(destination->store() == before);
        CHECK(destination->commands(opcode::write_10).empty());
    }
    CHECK(source.commands(opcode::read_10).empty());
    // The read-only disk may still be a source.
    REQUIRE(copy_range(*by_option.engine, 0, *source.engine, 0, 4096).ok());
    CHECK(source.target->equals(0, by_option.target->peek(0, 4096)));
}

TEST_CASE("at and past the ends: ENOSPC at the destination's, short at either")
{
    Unit source(blocks_of(512, 1024), small_io(8 * kib), 1);        // 512 KiB
    Unit destination(blocks_of(512, 512), small_io(8 * kib), 2, 1); // 256 KiB
    const std::uint64_t source_end = 512 * kib, destination_end = 256 * kib;

    IoResult result = copy_range(*source.engine, 0, *destination.engine, destination_end, 4096);
    CHECK(result.error == -ENOSPC);
    CHECK(result.end == IoEnd::destination);
    result = copy_range(*source.engine, 0, *destination.engine, destination_end + 512, 4096);
    CHECK(result.error == -ENOSPC);

    // From at or past the source's end: nothing to copy, like a read there.
    const Bytes before = destination.store();
    for (const std::uint64_t from : {source_end, source_end + 4096}) {
        result = copy_range(*source.engine, from, *destination.engine, 0, 4096);
        CHECK(result.ok());
        CHECK(result.bytes == 0);
    }
    CHECK(destination.store() == before);

    // Crossing the destination's end: what fits.
    Bytes expected = copied(source.store(), 1000, before, destination_end - 10000, 10000);
    result = copy_range(*source.engine, 1000, *destination.engine, destination_end - 10000, 20000);
    CHECK(result.ok());
    CHECK(result.bytes == 10000);
    CHECK(destination.store() == expected);

    // Crossing the source's end: what is there.
    expected = copied(source.store(), source_end - 6000, expected, 0, 6000);
    result = copy_range(*source.engine, source_end - 6000, *destination.engine, 0, 20000);
    CHECK(result.ok());
    CHECK(result.bytes == 6000);
    CHECK(destination.store() == expected);

    // Length 0.
    result = copy_range(*source.engine, 0, *destination.engine, 0, 0);
    CHECK(result.ok());
    CHECK(result.bytes == 0);
}

TEST_CASE("a copy keeps several commands in flight, never more than queue_depth per disk")
{
    for (const unsigned depth : {1U, 2U, 4U, 8U}) {
        CAPTURE(depth);
        Unit source(blocks_of(512, 2048), small_io(4 * kib, depth), 1);
        Unit destination(blocks_of(512, 2048), small_io(4 * kib, depth), 2, 1);
        const Bytes expected = copied(source.store(), 0, destination.store(), 0, 256 * kib);
        REQUIRE(copy_range(*source.engine, 0, *destination.engine, 0, 256 * kib).ok());
        CHECK(destination.store() == expected);
        CHECK(source.target->max_in_flight() <= depth);
        CHECK(destination.target->max_in_flight() <= depth);
        // Reads run ahead of the writes: with two channels or more, more than one at once.
        if (depth >= 2)
            CHECK(source.target->max_in_flight() >= 2);

        Unit one(blocks_of(512, 2048), small_io(4 * kib, depth), 3, 2);
        const Bytes shifted = moved(one.store(), 0, 8 * kib, 256 * kib);
        REQUIRE(copy_range(*one.engine, 0, *one.engine, 8 * kib, 256 * kib).ok());
        CHECK(one.store() == shifted);
        CHECK(one.target->max_in_flight() <= depth);
    }
}

TEST_CASE("a chunk that times out is tried once: the copy reports ETIMEDOUT")
{
    for (const std::uint64_t bad_lba : {std::uint64_t{0}, std::uint64_t{100}}) {
        CAPTURE(bad_lba);
        SUBCASE("on the source")
        {
            Unit source(blocks_of(512, 2048), small_io(8 * kib), 1);
            Unit destination(blocks_of(512, 2048), small_io(8 * kib), 2, 1);
            source.target->inject(fault_at(FaultKind::timeout, Ops::read, bad_lba));
            const IoResult result =
                copy_range(*source.engine, 0, *destination.engine, 0, 200 * kib);
            CHECK(result.error == -ETIMEDOUT);
            CHECK(result.end == IoEnd::source);
            CHECK(result.bytes <= bad_lba * 512);
            CHECK(source.attempts_at(opcode::read_10, bad_lba) == 1);
        }
        SUBCASE("on the destination")
        {
            Unit source(blocks_of(512, 2048), small_io(8 * kib), 1);
            Unit destination(blocks_of(512, 2048), small_io(8 * kib), 2, 1);
            destination.target->inject(fault_at(FaultKind::timeout, Ops::write, bad_lba));
            const IoResult result =
                copy_range(*source.engine, 0, *destination.engine, 0, 200 * kib);
            CHECK(result.error == -ETIMEDOUT);
            CHECK(result.end == IoEnd::destination);
            CHECK(result.bytes <= bad_lba * 512);
            CHECK(destination.attempts_at(opcode::write_10, bad_lba) == 1);
        }
    }
}

TEST_CASE("retryable errors in a copy are retried on the same chunk and the copy succeeds")
{
    Unit source(blocks_of(512, 2048), small_io(8 * kib), 1);
    Unit destination(blocks_of(512, 2048), small_io(8 * kib), 2, 1);
    source.target->inject(fault_at(FaultKind::power_on_attention, Ops::read, 40, 1));
    destination.target->inject(fault_at(FaultKind::aborted_command, Ops::write, 80, 1));
    const Bytes expected = copied(source.store(), 0, destination.store(), 0, 128 * kib);
    const IoResult result = copy_range(*source.engine, 0, *destination.engine, 0, 128 * kib);
    INFO(result.message);
    REQUIRE(result.ok());
    CHECK(destination.store() == expected);
    CHECK(source.attempts_at(opcode::read_10, 40) == 2);
    CHECK(destination.attempts_at(opcode::write_10, 80) == 2);
    CHECK(source.engine->stats().retries == 1);
    CHECK(destination.engine->stats().retries == 1);
}

TEST_CASE("a source that is gone: ENODEV, end source, nothing written")
{
    Unit source(blocks_of(512, 2048), small_io(8 * kib), 1);
    Unit destination(blocks_of(512, 2048), small_io(8 * kib), 2, 1);
    source.target->disappear();
    const Bytes before = destination.store();
    IoResult result = copy_range(*source.engine, 0, *destination.engine, 0, 64 * kib);
    CHECK(result.error == -ENODEV);
    CHECK(result.end == IoEnd::source);
    // Known gone now: the next copy fails before any command.
    destination.target->clear_log();
    result = copy_range(*source.engine, 0, *destination.engine, 0, 64 * kib);
    CHECK(result.error == -ENODEV);
    CHECK(result.end == IoEnd::source);
    CHECK(destination.store() == before);
    // And the other way round: the gone disk as destination.
    result = copy_range(*destination.engine, 0, *source.engine, 0, 64 * kib);
    CHECK(result.error == -ENODEV);
    CHECK(result.end == IoEnd::destination);
}
