// Disk::mapping and Disk::stored_bytes on the Engine against the in-memory target: the runs
// of data and holes GET LBA STATUS reports, merged, cut at the end, and "all data" wherever
// a hole would not read zero or the device cannot say. The oracle is the target's own map
// (mapped() per block) and its log.
#include "provisioning_helpers.hpp"

#include <cerrno>
#include <doctest/doctest.h>
#include <vector>

using namespace sgfs;
using namespace sgfs::test;

namespace
{

// Thin, LBPRZ, everything unmapped but the block ranges given (written with data).
TargetConfig sparse_config()
{
    TargetConfig config = thin(true);
    config.start_mapped = false;
    return config;
}

void write_data(MemoryTarget &target, std::uint64_t lba, std::uint64_t blocks)
{
    fill(target, blocks, lba);
}

// Walks the disk with mapping() and checks every run against the target's map, block by
// block; returns the number of runs. `whole_runs`: every run ends where the state changes
// (one question's descriptors cover the whole run).
std::size_t check_runs(Disk &disk, const MemoryTarget &target, bool whole_runs = true)
{
    const std::uint64_t capacity = disk.info().capacity_bytes;
    std::size_t runs = 0;
    for (std::uint64_t at = 0; at < capacity; ++runs) {
        const Mapping run = disk.mapping(at);
        REQUIRE(run.result.ok());
        REQUIRE(run.end > at);
        REQUIRE(run.end <= capacity);
        CHECK(run.end % block == 0);
        for (std::uint64_t lba = at / block; lba < run.end / block; ++lba) {
            CAPTURE(lba);
            CHECK(target.mapped(lba) == !run.hole);
        }
        // A run ends where the state changes (or at the end).
        if (whole_runs && run.end < capacity)
            CHECK(target.mapped(run.end / block) == run.hole);
        at = run.end;
    }
    return runs;
}

} // namespace

TEST_CASE("runs follow the device's map, data and holes, to the end of the disk")
{
    EngineFixture f(sparse_config());
    write_data(*f.target, 0, 3);
    write_data(*f.target, 100, 50);
    write_data(*f.target, 2000, 48); // to the last block
    CHECK(check_runs(f.disk(), *f.target) == 5);
    CHECK(f.stats().zero.lba_status_queries == 5);
}

TEST_CASE("descriptors of one state in a row are one run")
{
    TargetConfig config = sparse_config();
    config.lba_status_split = 16;
    EngineFixture f(config);
    write_data(*f.target, 40, 200);
    const Mapping hole = f.disk().mapping(0);
    CHECK(hole.result.ok());
    CHECK(hole.hole);
    CHECK(hole.end == 40 * block); // three descriptors: 16 + 16 + 8
    const Mapping data = f.disk().mapping(40 * block);
    CHECK_FALSE(data.hole);
    CHECK(data.end == 240 * block);
    // The last hole, 1808 blocks, takes 113 descriptors: one question's 64 say 1024 blocks.
    const Mapping cut = f.disk().mapping(240 * block);
    CHECK(cut.hole);
    CHECK(cut.end == (240 + 64 * 16) * block);
    CHECK(check_runs(f.disk(), *f.target, false) == 4);
}

TEST_CASE("an offset inside a block: that block's run; a hole starts on its block")
{
    EngineFixture f(sparse_config());
    write_data(*f.target, 10, 5);
    const Mapping in_data = f.disk().mapping(12 * block + 300);
    CHECK_FALSE(in_data.hole);
    CHECK(in_data.end == 15 * block);
    const Mapping in_hole = f.disk().mapping(3 * block + 1);
    CHECK(in_hole.hole);
    CHECK(in_hole.end == 10 * block);
    const std::vector<CommandRecord> asked =
        of_opcode(f.target->log(), opcode::service_action_in_16);
    REQUIRE(asked.size() == 2);
    CHECK(asked[0].lba == 12);
    CHECK(asked[1].lba == 3);
}

TEST_CASE("at or past the end: ENXIO, nothing sent")
{
    EngineFixture f(sparse_config());
    const std::uint64_t capacity = f.disk().info().capacity_bytes;
    CHECK(f.disk().mapping(capacity).result.error == -ENXIO);
    CHECK(f.disk().mapping(capacity + 4096).result.error == -ENXIO);
    CHECK(f.target->log().empty());
    const Mapping last = f.disk().mapping(capacity - 1);
    CHECK(last.result.ok());
    CHECK(last.hole);
    CHECK(last.end == capacity);
}

TEST_CASE("no holes where they would not read zero, or the device cannot tell: no command")
{
    SUBCASE("no provisioning")
    {
        EngineFixture f;
        const Mapping run = f.disk().mapping(4096);
        CHECK(run.result.ok());
        CHECK_FALSE(run.hole);
        CHECK(run.end == f.disk().info().capacity_bytes);
        CHECK(f.target->log().empty());
        CHECK(f.disk().stored_bytes() == f.disk().info().capacity_bytes);
    }
    SUBCASE("thin, LBPRZ=0: unmapped blocks may read anything")
    {
        TargetConfig config = sparse_config();
        config.lbprz = false;
        EngineFixture f(config);
        const Mapping run = f.disk().mapping(0);
        CHECK_FALSE(run.hole);
        CHECK(run.end == f.disk().info().capacity_bytes);
        CHECK(f.target->log().empty());
    }
}

TEST_CASE("GET LBA STATUS refused: all data, and not asked again")
{
    EngineFixture f(sparse_config());
    f.target->inject(refusal(Ops::get_lba_status));
    const Mapping run = f.disk().mapping(0);
    CHECK(run.result.ok());
    CHECK_FALSE(run.hole);
    CHECK(run.end == f.disk().info().capacity_bytes);
    CHECK(f.disk().mapping(block).end == f.disk().info().capacity_bytes);
    CHECK(f.target->count(opcode::service_action_in_16) == 1);
}

TEST_CASE("GET LBA STATUS failing: the error, naming the device; gone is ENODEV")
{
    EngineFixture f(sparse_config());
    Fault fault;
    fault.kind = FaultKind::device_gone;
    fault.on = Ops::get_lba_status;
    f.target->inject(fault);
    const Mapping run = f.disk().mapping(0);
    CHECK(run.result.error == -ENODEV);
    CHECK(contains(run.result.message, "sg0"));
    // Gone for the engine: nothing more is sent.
    f.target->clear_log();
    CHECK(f.disk().mapping(0).result.error == -ENODEV);
    CHECK(f.target->log().empty());
}

TEST_CASE("stored_bytes: the capacity less the holes, as the device holds them")
{
    EngineFixture f(sparse_config());
    CHECK(f.disk().stored_bytes() == 0);
    write_data(*f.target, 7, 9);
    write_data(*f.target, 500, 100);
    CHECK(f.disk().stored_bytes() == f.target->mapped_blocks() * block);
    CHECK(f.target->mapped_blocks() == 109);
    REQUIRE(f.disk().punch_hole(500 * block, 50 * block).ok());
    CHECK(f.disk().stored_bytes() == f.target->mapped_blocks() * block);
    CHECK(f.target->mapped_blocks() == 59);
}
