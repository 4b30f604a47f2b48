// Disk::zero_range on the Engine against the in-memory target: which commands make the range
// read zero on devices with and without provisioning, what is done when the device refuses,
// and that nothing outside the range changes. The oracle is the target: its store, which
// blocks it unmapped (only WRITE SAME with the UNMAP bit unmaps there), and its log.
#include "provisioning_helpers.hpp"

#include <algorithm>
#include <cerrno>
#include <doctest/doctest.h>
#include <string>
#include <vector>

using namespace sgfs;
using namespace sgfs::test;

TEST_CASE("thin with LBPRZ: WRITE SAME with UNMAP, whole granules unmapped, reading zero")
{
    TargetConfig config = thin(true);
    config.unmap_granularity = 8;
    EngineFixture f(config);
    const Bytes before = fill(*f.target, 80);
    // Blocks 4..67: granules 8..63 whole, 4..7 and 64..67 partial.
    const IoResult result = f.disk().zero_range(4 * block, 64 * block);
    REQUIRE(result.ok());
    CHECK(result.bytes == 64 * block);
    CHECK(f.target->peek(4 * block, 64 * block) == Bytes(64 * block, 0));
    CHECK(read_back(f.disk(), 4 * block, 64 * block) == Bytes(64 * block, 0));
    for (std::uint64_t lba = 0; lba < 80; ++lba) {
        CAPTURE(lba);
        CHECK(f.target->mapped(lba) == (lba < 8 || lba >= 64));
    }
    // Outside the range, as it was.
    CHECK(f.target->equals(0, {before.data(), 4 * block}));
    CHECK(f.target->equals(68 * block, {before.data() + 68 * block, 12 * block}));
    const std::vector<CommandRecord> log = f.target->log();
    check_covers(of_opcode(log, opcode::write_same_16), 4, 64, 0xffff);
    CHECK(of_opcode(log, opcode::unmap).empty());
    CHECK(of_opcode(log, opcode::write_10).empty());
    const ZeroCountersSnapshot zero = f.stats().zero;
    CHECK(zero.write_same_unmap_commands >= 1);
    CHECK(zero.write_same_unmap_bytes == 56 * block);
    CHECK(zero.write_same_bytes == 8 * block);
    CHECK(zero.host_bytes == 0);
    CHECK(zero.fallbacks == 0);
}

TEST_CASE("thin with LBPRZ, blocks kept allocated (fallocate ZERO_RANGE): never the UNMAP bit")
{
    TargetConfig config = thin(true);
    config.unmap_granularity = 8;
    config.start_mapped = false;
    EngineFixture f(config);
    const Bytes before = fill(*f.target, 40);
    // Blocks 0..39 hold data, 40..79 are unmapped: afterwards all of 4..75 is mapped zeros.
    REQUIRE(f.disk().zero_range(4 * block, 72 * block, ZeroAllocation::keep).ok());
    CHECK(f.target->peek(4 * block, 72 * block) == Bytes(72 * block, 0));
    for (std::uint64_t lba = 0; lba < 80; ++lba) {
        CAPTURE(lba);
        CHECK(f.target->mapped(lba) == (lba < 40 || (lba >= 4 && lba < 76)));
    }
    CHECK(f.target->equals(0, {before.data(), 4 * block}));
    const std::vector<CommandRecord> log = f.target->log();
    check_covers(of_opcode(log, opcode::write_same_16), 4, 72, 0xffff);
    CHECK(of_opcode(log, opcode::unmap).empty());
    const ZeroCountersSnapshot zero = f.stats().zero;
    CHECK(zero.write_same_unmap_commands == 0);
    CHECK(zero.write_same_bytes == 72 * block);
}

TEST_CASE("thin without LBPRZ: plain WRITE SAME, never UNMAP")
{
    EngineFixture f(thin(false));
    fill(*f.target, 64);
    REQUIRE(f.disk().zero_range(0, 64 * block).ok());
    CHECK(f.target->peek(0, 64 * block) == Bytes(64 * block, 0));
    CHECK(f.target->mapped_blocks() == f.target->config().block_count);
    const std::vector<CommandRecord> log = f.target->log();
    check_covers(of_opcode(log, opcode::write_same_16), 0, 64, 0xffff);
    CHECK(of_opcode(log, opcode::unmap).empty());
    const ZeroCountersSnapshot zero = f.stats().zero;
    CHECK(zero.write_same_unmap_commands == 0);
    CHECK(zero.write_same_bytes == 64 * block);
}

TEST_CASE("no provisioning: plain WRITE SAME")
{
    EngineFixture f;
    fill(*f.target, 16);
    REQUIRE(f.disk().zero_range(block, 10 * block).ok());
    CHECK(f.target->peek(block, 10 * block) == Bytes(10 * block, 0));
    CHECK(f.target->count(opcode::write_same_16) == 1);
    CHECK(f.target->count(opcode::unmap) == 0);
    CHECK(f.stats().zero.write_same_commands == 1);
    CHECK(f.stats().zero.write_same_bytes == 10 * block);
}

TEST_CASE("a device refusing WRITE SAME: host writes, counted, remembered")
{
    EngineFixture f;
    fill(*f.target, 64);
    f.target->inject(refusal(Ops::write_same));
    const IoResult result = f.disk().zero_range(2 * block, 40 * block);
    REQUIRE(result.ok());
    CHECK(result.bytes == 40 * block);
    CHECK(f.target->peek(2 * block, 40 * block) == Bytes(40 * block, 0));
    CHECK(f.target->count(opcode::write_same_16) == 1);
    check_covers(f.data_commands(), 2, 40, 0xffff);
    ZeroCountersSnapshot zero = f.stats().zero;
    CHECK(zero.fallbacks == 1);
    CHECK(zero.host_bytes == 40 * block);
    CHECK(zero.write_same_commands == 0);
    // The next zeroing does not ask again.
    f.target->clear_log();
    REQUIRE(f.disk().zero_range(50 * block, 4 * block).ok());
    CHECK(f.target->count(opcode::write_same_16) == 0);
    CHECK(f.target->peek(50 * block, 4 * block) == Bytes(4 * block, 0));
    zero = f.stats().zero;
    CHECK(zero.fallbacks == 1);
    CHECK(zero.host_bytes == 44 * block);
}

TEST_CASE("a refused WRITE SAME with UNMAP: plain WRITE SAME for the rest")
{
    EngineFixture f(thin(true));
    fill(*f.target, 32);
    f.target->inject(refusal(Ops::write_same, 0x24, 1)); // invalid field in CDB: the UNMAP bit
    REQUIRE(f.disk().zero_range(0, 32 * block).ok());
    CHECK(f.target->peek(0, 32 * block) == Bytes(32 * block, 0));
    CHECK(f.target->count(opcode::write_same_16) == 2); // refused, then the plain one
    CHECK(f.target->mapped_blocks() == f.target->config().block_count);
    const ZeroCountersSnapshot zero = f.stats().zero;
    CHECK(zero.fallbacks == 1);
    CHECK(zero.write_same_unmap_commands == 0);
    CHECK(zero.write_same_bytes == 32 * block);
}

TEST_CASE("an error that is not a refusal fails the zeroing")
{
    EngineFixture f;
    Fault fault;
    fault.kind = FaultKind::medium_error;
    fault.on = Ops::write_same;
    fault.times = Fault::always;
    f.target->inject(fault);
    const IoResult result = f.disk().zero_range(0, 8 * block);
    CHECK(result.error == -EIO);
    CHECK(contains(result.message, "sg0"));
    CHECK(f.stats().zero.fallbacks == 0);
    CHECK(f.data_commands().empty());
}

TEST_CASE("unaligned head and tail: read-modify-write, bytes outside untouched")
{
    EngineFixture f;
    const Bytes before = fill(*f.target, 16);
    const std::uint64_t offset = block + 100;
    const std::uint64_t length = 10 * block; // to byte 100 of block 11
    const IoResult result = f.disk().zero_range(offset, length);
    REQUIRE(result.ok());
    CHECK(result.bytes == length);
    CHECK(f.target->peek(offset, length) == Bytes(length, 0));
    CHECK(f.target->equals(0, {before.data(), offset}));
    CHECK(f.target->equals(offset + length, {before.data() + offset + length, 2000}));
    // The edge blocks read and written back, the whole ones between by WRITE SAME.
    const std::vector<CommandRecord> writes = of_opcode(f.target->log(), opcode::write_10);
    CHECK(writes.size() == 2);
    CHECK(of_opcode(f.target->log(), opcode::read_10).size() == 2);
    check_covers(of_opcode(f.target->log(), opcode::write_same_16), 2, 9, 0xffff);
    const ZeroCountersSnapshot zero = f.stats().zero;
    CHECK(zero.host_bytes == (block - 100) + 100);
    CHECK(zero.write_same_bytes == 9 * block);
}

TEST_CASE("within one block: read-modify-write only")
{
    EngineFixture f;
    const Bytes before = fill(*f.target, 4);
    REQUIRE(f.disk().zero_range(2 * block + 10, 20).ok());
    Bytes expected = before;
    std::fill_n(expected.begin() + 2 * block + 10, 20, 0);
    CHECK(f.target->peek(0, 4 * block) == expected);
    CHECK(f.target->count(opcode::write_same_16) == 0);
    CHECK(f.stats().zero.host_bytes == 20);
}

TEST_CASE("max_write_same_blocks: WRITE SAME split to the device's limit")
{
    TargetConfig config;
    config.max_write_same_blocks = 10;
    EngineFixture f(config);
    REQUIRE(f.engine->info().provisioning.max_write_same_blocks == 10);
    fill(*f.target, 64);
    REQUIRE(f.disk().zero_range(3 * block, 35 * block).ok());
    const std::vector<CommandRecord> same = of_opcode(f.target->log(), opcode::write_same_16);
    CHECK(same.size() == 4);
    check_covers(same, 3, 35, 10);
    CHECK(f.target->peek(3 * block, 35 * block) == Bytes(35 * block, 0));
}

TEST_CASE("refusals: read-only, at or past the end; cut across the end")
{
    SUBCASE("read-only: EROFS, nothing sent")
    {
        DiskOptions options = test_options();
        options.read_only = true;
        EngineFixture f({}, options);
        CHECK(f.disk().zero_range(0, block).error == -EROFS);
        CHECK(f.target->log().empty());
    }
    SUBCASE("at and past the end: ENOSPC")
    {
        EngineFixture f;
        const std::uint64_t size = f.target->bytes();
        IoResult result = f.disk().zero_range(size, block);
        CHECK(result.error == -ENOSPC);
        CHECK(contains(result.message, "zeroing"));
        CHECK(f.disk().zero_range(size + 1000, 1).error == -ENOSPC);
        CHECK(f.target->log().empty());
    }
    SUBCASE("crossing the end: what fits")
    {
        EngineFixture f;
        const std::uint64_t size = f.target->bytes();
        f.target->poke(size - 3 * block, Bytes(3 * block, 0x42));
        const IoResult result = f.disk().zero_range(size - 2 * block - 7, 100 * block);
        CHECK(result.ok());
        CHECK(result.bytes == 2 * block + 7);
        CHECK(f.target->peek(size - 2 * block - 7, 2 * block + 7) == Bytes(2 * block + 7, 0));
        CHECK(f.target->peek(size - 3 * block, block - 7) == Bytes(block - 7, 0x42));
    }
    SUBCASE("empty: nothing")
    {
        EngineFixture f;
        const IoResult result = f.disk().zero_range(0, 0);
        CHECK(result.ok());
        CHECK(result.bytes == 0);
        CHECK(f.target->log().empty());
    }
}
