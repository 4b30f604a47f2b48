// Capacity changes (core/engine_capacity.cpp) against the in-memory target: the target
// grows, shrinks or takes other blocks and raises CAPACITY DATA HAS CHANGED on the next
// command, as scsi_debug does when virtual_gb is written. The oracle is the target: its
// store, its log and its own capacity; never the engine's idea of the size alone.
#include "engine_fixture.hpp"

#include <algorithm>
#include <cerrno>
#include <doctest/doctest.h>
#include <string>
#include <utility>
#include <vector>

using namespace sgfs;
using namespace sgfs::test;

namespace
{

constexpr std::uint64_t block = 512;
constexpr std::uint64_t old_blocks = 2048; // 1 MiB
constexpr std::uint64_t old_end = old_blocks * block;

TargetConfig config_of()
{
    TargetConfig config;
    config.block_count = old_blocks;
    return config;
}

// The value of a .stats key.
std::string field(const DeviceStatsSnapshot &stats, const std::string &key)
{
    for (const auto &[name, value] : stats.fields())
        if (name == key)
            return value;
    return "(missing)";
}

std::uint64_t target_bytes(const MemoryTarget &target)
{
    return target.config().block_count * target.config().block_size;
}

// Any command takes the unit attention to the engine: one small read, which must work.
void touch(EngineFixture &f)
{
    Bytes one(block);
    REQUIRE(f.disk().pread(one.data(), one.size(), 0).ok());
}

} // namespace

TEST_CASE("a grown disk: the new size after the next command, IO up to the new end lands")
{
    EngineFixture f(config_of());
    const Bytes before = pattern(old_end, 3);
    f.target->poke(0, before);
    f.target->resize(old_blocks * 3);
    CHECK(f.disk().capacity_bytes() == old_end); // nothing told the engine yet

    touch(f);
    CHECK(f.disk().capacity_bytes() == target_bytes(*f.target));
    CHECK(f.target->count(0x9e) >= 1); // READ CAPACITY(16) asked again
    CHECK(f.stats().capacity_attentions == 1);
    CHECK(f.stats().capacity_changes == 1);
    CHECK(field(f.stats(), "capacity_changes") == "1");

    // Across the old end and up to the new one: all of it lands in the store.
    const std::uint64_t from = old_end - 1000;
    const Bytes data = pattern(target_bytes(*f.target) - from, 9);
    const IoResult written = f.disk().pwrite(data.data(), data.size(), from);
    REQUIRE(written.ok());
    CHECK(written.bytes == data.size());
    CHECK(f.target->equals(from, data));
    CHECK(f.target->equals(0, std::span(before).first(from)));
    Bytes back(data.size() + 4096);
    const IoResult read = f.disk().pread(back.data(), back.size(), from);
    REQUIRE(read.ok());
    CHECK(read.bytes == data.size()); // short at the new end
    CHECK(std::equal(data.begin(), data.end(), back.begin()));
    // The new end is the end.
    CHECK(f.disk().pwrite(data.data(), 1, target_bytes(*f.target)).error == -ENOSPC);
}

TEST_CASE("a shrunk disk: IO past the new end refused, the data below intact")
{
    EngineFixture f(config_of());
    const Bytes before = pattern(old_end, 5);
    f.target->poke(0, before);
    constexpr std::uint64_t new_end = old_end / 2;
    f.target->resize(new_end / block);

    SUBCASE("the command that meets the attention past the new end: the device refuses it")
    {
        Bytes data = pattern(4096, 1);
        // Disk's bounds still allow it; the device says LBA OUT OF RANGE after the attention.
        CHECK(f.disk().pwrite(data.data(), data.size(), new_end + 4096).error == -EINVAL);
        CHECK(f.disk().capacity_bytes() == new_end);
    }
    SUBCASE("the attention met below the new end")
    {
        touch(f);
        CHECK(f.disk().capacity_bytes() == new_end);
    }
    CHECK(f.stats().capacity_changes == 1);

    const std::size_t writes_before = f.data_commands().size();
    Bytes data = pattern(4096, 2);
    CHECK(f.disk().pwrite(data.data(), data.size(), new_end).error == -ENOSPC);
    CHECK(f.disk().pwrite(data.data(), data.size(), new_end + 8192).error == -ENOSPC);
    CHECK(f.disk().zero_range(new_end, 4096).error == -ENOSPC);
    Bytes back(8192);
    const IoResult past = f.disk().pread(back.data(), back.size(), new_end);
    CHECK(past.ok());
    CHECK(past.bytes == 0);
    CHECK(f.disk().mapping(new_end).result.error == -ENXIO);
    CHECK(f.data_commands().size() == writes_before); // none of them reached the device

    // Across the new end: what fits is written, the rest cut.
    const IoResult crossing = f.disk().pwrite(data.data(), data.size(), new_end - 1024);
    REQUIRE(crossing.ok());
    CHECK(crossing.bytes == 1024);
    CHECK(f.target->equals(new_end - 1024, std::span(data).first(1024)));
    CHECK(f.target->equals(0, std::span(before).first(new_end - 1024)));
    const IoResult read = f.disk().pread(back.data(), back.size(), new_end - 4096);
    REQUIRE(read.ok());
    CHECK(read.bytes == 4096);
}

TEST_CASE("refresh_capacity: a change learned elsewhere (a uevent) before any IO met it")
{
    EngineFixture f(config_of());
    f.target->resize(old_blocks * 2);
    CHECK(f.disk().refresh_capacity() == 0);
    CHECK(f.disk().capacity_bytes() == target_bytes(*f.target));
    CHECK(f.stats().capacity_changes == 1);
    // Nothing changed since: a reread finds the same size and counts no change.
    CHECK(f.disk().refresh_capacity() == 0);
    CHECK(f.stats().capacity_changes == 1);
}

TEST_CASE("an attention that finds the same size counts no change")
{
    EngineFixture f(config_of());
    f.target->raise_unit_attention(0x2a, 0x09);
    touch(f);
    CHECK(f.stats().capacity_attentions == 1);
    CHECK(f.stats().capacity_changes == 0);
    CHECK(f.disk().capacity_bytes() == old_end);
}

TEST_CASE("a block-size change is refused: the disk is gone, its data untouched")
{
    EngineFixture f(config_of());
    const Bytes before = pattern(old_end, 7);
    f.target->poke(0, before);
    f.target->reformat(4096, old_end / 4096);
    // A command without data meets the attention (a READ of 512-byte blocks would not be
    // one of the device's blocks any more).
    static_cast<void>(f.disk().flush());
    CHECK(f.stats().capacity_attentions == 1);
    CHECK(f.disk().capacity_bytes() == old_end); // not taken in
    const std::size_t commands = f.data_commands().size();
    Bytes data = pattern(4096, 8);
    CHECK(f.disk().pwrite(data.data(), data.size(), 0).error == -ENODEV);
    CHECK(f.disk().pread(data.data(), data.size(), 0).error == -ENODEV);
    CHECK(f.disk().refresh_capacity() == -ENODEV);
    CHECK(f.data_commands().size() == commands);
    CHECK(f.target->equals(0, before));
}

TEST_CASE("read-ahead stops at the new end of a shrunk disk")
{
    DiskOptions options = test_options();
    options.readahead = true;
    EngineFixture f(config_of(), options);
    constexpr std::uint64_t new_end = old_end / 4;
    f.target->resize(new_end / block);
    touch(f); // no reader: nothing read ahead
    REQUIRE(f.disk().capacity_bytes() == new_end);
    f.target->clear_log();
    Bytes buffer(64 * 1024);
    for (std::uint64_t at = 0; at < new_end; at += buffer.size()) {
        const ReadView view = f.disk().read_view(buffer.size(), at, 42);
        REQUIRE(view.result().ok());
    }
    f.disk().end_reader(42);
    for (const CommandRecord &record : f.data_commands())
        CHECK(record.lba + record.blocks <= new_end / block);
}
