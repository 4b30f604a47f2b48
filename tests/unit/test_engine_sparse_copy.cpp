// copy_range between Engines whose source has holes: the holes are not read but punched in
// the destination, the result is still memcpy (memmove within one overlapping disk, which
// copies densely). The oracle is the targets' stores taken before the copy, their maps and
// their logs.
#include "provisioning_helpers.hpp"

#include <algorithm>
#include <cstring>
#include <doctest/doctest.h>
#include <memory>
#include <string>
#include <vector>

using namespace sgfs;
using namespace sgfs::test;

namespace
{

// One Engine on its own target.
struct Unit {
    Unit(TargetConfig config, unsigned node)
        : target(std::make_shared<MemoryTarget>(std::move(config)))
    {
        std::string message;
        const int rc =
            Engine::open(std::make_unique<MemoryTransport>(target, memory_node_facts(node)),
                         test_options(), engine, message);
        INFO(message);
        REQUIRE(rc == 0);
    }
    Bytes store() const { return target->peek(0, target->bytes()); }

    std::shared_ptr<MemoryTarget> target;
    std::unique_ptr<Engine> engine;
};

// Thin with LBPRZ, unmapped but for [100, 300) and [1000, 1100).
TargetConfig sparse_source()
{
    TargetConfig config = thin(true);
    config.start_mapped = false;
    return config;
}

void add_data(Unit &unit)
{
    fill(*unit.target, 200, 100);
    fill(*unit.target, 100, 1000);
    unit.target->clear_log();
}

bool is_read(const CommandRecord &record)
{
    return record.opcode == opcode::read_10 || record.opcode == opcode::read_16;
}

// Every READ the source received lies inside a mapped range.
void check_reads_only_data(const MemoryTarget &source, const Bytes &mapped_before)
{
    for (const CommandRecord &record : source.log()) {
        if (!is_read(record))
            continue;
        for (std::uint64_t lba = record.lba; lba < record.lba + record.blocks; ++lba) {
            CAPTURE(lba);
            CHECK(mapped_before[lba] == 1);
        }
    }
}

Bytes map_of(const MemoryTarget &target)
{
    Bytes map(target.config().block_count);
    for (std::uint64_t lba = 0; lba < map.size(); ++lba)
        map[lba] = target.mapped(lba) ? 1 : 0;
    return map;
}

} // namespace

TEST_CASE("a sparse source: data copied, holes punched in the destination, never read")
{
    Unit source(sparse_source(), 0);
    add_data(source);
    Unit destination(thin(true), 1);
    destination.target->poke(0, pattern(destination.target->bytes(), 9)); // old data
    const Bytes expected = source.store();
    const Bytes source_map = map_of(*source.target);
    const std::uint64_t size = source.target->bytes();

    const IoResult result = copy_range(*source.engine, 0, *destination.engine, 0, size);
    INFO(result.message);
    REQUIRE(result.ok());
    CHECK(result.bytes == size);
    CHECK(destination.store() == expected);
    // The destination's holes are unmapped (WRITE SAME with UNMAP, LBPRZ), like the source's.
    CHECK(map_of(*destination.target) == source_map);
    check_reads_only_data(*source.target, source_map);
    const std::uint64_t hole_bytes = (2048 - 300) * block;
    CHECK(source.engine->stats().zero.copy_hole_bytes == hole_bytes);
    CHECK(destination.engine->stats().zero.write_same_unmap_bytes == hole_bytes);
    const PathCountersSnapshot copied =
        destination.engine->stats().paths[static_cast<int>(DataPath::copy)];
    CHECK(copied.sg_copy_bytes + copied.zero_copy_bytes + copied.user_copy_bytes == 300 * block);
}

TEST_CASE("a sparse copy at unaligned offsets onto a thick disk is still memcpy")
{
    Unit source(sparse_source(), 0);
    add_data(source);
    Unit destination(TargetConfig{}, 1);
    destination.target->poke(0, pattern(destination.target->bytes(), 3));
    const std::uint64_t from = 90 * block + 17;
    const std::uint64_t to = 5 * block + 301;
    const std::uint64_t length = 1200 * block + 5;
    Bytes expected = destination.store();
    const Bytes before = source.store();
    std::memcpy(expected.data() + to, before.data() + from, length);
    const Bytes source_map = map_of(*source.target);

    const IoResult result = copy_range(*source.engine, from, *destination.engine, to, length);
    INFO(result.message);
    REQUIRE(result.ok());
    CHECK(result.bytes == length);
    CHECK(destination.store() == expected);
    check_reads_only_data(*source.target, source_map);
    CHECK(source.engine->stats().zero.copy_hole_bytes > 0);
    CHECK(destination.target->count(opcode::write_same_16) > 0);
}

TEST_CASE("within one disk: apart, holes are punched; overlapping, memmove as ever")
{
    SUBCASE("apart")
    {
        Unit disk(sparse_source(), 0);
        add_data(disk);
        disk.target->poke(1500 * block, pattern(400 * block, 5));
        Bytes expected = disk.store();
        std::memmove(expected.data() + 1400 * block, expected.data(), 400 * block);
        const IoResult result =
            copy_range(*disk.engine, 0, *disk.engine, 1400 * block, 400 * block);
        REQUIRE(result.ok());
        CHECK(disk.store() == expected);
        CHECK(disk.engine->stats().zero.copy_hole_bytes == 200 * block);
    }
    SUBCASE("overlapping, forwards and backwards")
    {
        for (const auto &[from, to] : {std::pair<std::uint64_t, std::uint64_t>{50, 120},
                                       std::pair<std::uint64_t, std::uint64_t>{260, 150}}) {
            Unit disk(sparse_source(), 0);
            add_data(disk);
            Bytes expected = disk.store();
            std::memmove(expected.data() + to * block, expected.data() + from * block, 300 * block);
            const IoResult result =
                copy_range(*disk.engine, from * block, *disk.engine, to * block, 300 * block);
            REQUIRE(result.ok());
            CHECK(disk.store() == expected);
            CHECK(disk.engine->stats().zero.copy_hole_bytes == 0);
        }
    }
}

TEST_CASE("a destination that fails to punch: the bytes before the hole, end destination")
{
    Unit source(sparse_source(), 0);
    add_data(source);
    Unit destination(thin(true), 1);
    Fault fault;
    fault.kind = FaultKind::medium_error;
    fault.on = Ops::write_same;
    fault.times = Fault::always;
    destination.target->inject(fault);
    const IoResult result =
        copy_range(*source.engine, 100 * block, *destination.engine, 0, 400 * block);
    CHECK(result.error == -EIO);
    CHECK(result.end == IoEnd::destination);
    CHECK(result.bytes == 200 * block); // the data run before the hole
    CHECK(destination.target->equals(0, source.target->peek(100 * block, 200 * block)));
}
