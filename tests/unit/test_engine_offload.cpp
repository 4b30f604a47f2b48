// Copies offloaded to the copy manager (core/engine_offload.cpp): copy_range between Engines
// on in-memory targets whose copy manager (tests/unit/memory_target.hpp) reaches the targets
// of one registry. The oracle: memcpy / memmove on the stores as they were before the copy,
// the targets' command logs (EXTENDED COPY, or READ and WRITE, and none of the other), and
// the counters as DeviceStats documents them.
#include "engine.hpp"
#include "engine_fixture.hpp"
#include "memory_target.hpp"

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

// An NAA 6 designator as LIO makes them (6 001405 ...), different per `id`.
std::vector<std::uint8_t> lio_naa(std::uint8_t id)
{
    return {0x60, 0x01, 0x40, 0x5a, 0x17, 0x7e, 0x57, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, id};
}

TargetConfig lun_config(const std::shared_ptr<CopyRegistry> &registry, std::uint8_t id,
                        std::uint64_t blocks = 4096, std::uint32_t block_size = 512)
{
    TargetConfig config;
    config.block_size = block_size;
    config.block_count = blocks;
    config.serial = "LUN" + std::to_string(id);
    config.naa = lio_naa(id);
    config.three_pc = true;
    config.copy_registry = registry;
    return config;
}

DiskOptions options(std::size_t max_io = 16 * kib, unsigned queue_depth = 4)
{
    DiskOptions o = test_options(IoMode::indirect, queue_depth);
    o.max_io = max_io;
    return o;
}

struct Lun {
    Lun(TargetConfig config, std::uint8_t seed, const DiskOptions &o = options())
        : target(std::make_shared<MemoryTarget>(std::move(config)))
    {
        target->poke(0, pattern(target->bytes(), seed));
        std::string message;
        const int rc = open_engine(target, o, engine, message);
        INFO(message);
        REQUIRE(rc == 0);
        probe_log = target->log();
        target->clear_log();
    }
    Bytes store() const { return target->peek(0, target->bytes()); }
    std::uint64_t data_commands() const
    {
        return target->count(opcode::read_10) + target->count(opcode::read_16) +
               target->count(opcode::write_10) + target->count(opcode::write_16);
    }
    std::uint64_t xcopies() const { return target->count(opcode::extended_copy); }
    OffloadCountersSnapshot offload() const { return engine->stats().offload; }
    PathCountersSnapshot copy_path() const
    {
        return engine->stats().paths[static_cast<int>(DataPath::copy)];
    }

    std::shared_ptr<MemoryTarget> target;
    std::unique_ptr<Engine> engine;
    std::vector<CommandRecord> probe_log;
};

Bytes copied(const Bytes &source, std::uint64_t from, Bytes destination, std::uint64_t to,
             std::size_t length)
{
    std::memcpy(destination.data() + to, source.data() + from, length);
    return destination;
}

Bytes moved(Bytes store, std::uint64_t from, std::uint64_t to, std::size_t length)
{
    std::memmove(store.data() + to, store.data() + from, length);
    return store;
}

Fault on_xcopy(FaultKind kind, unsigned times = Fault::always, unsigned every = 1)
{
    Fault fault;
    fault.kind = kind;
    fault.on = Ops::extended_copy;
    fault.times = times;
    fault.every = every;
    return fault;
}

Fault refusal(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq = 0)
{
    Fault fault = on_xcopy(FaultKind::check_condition);
    fault.sense_key = key;
    fault.asc = asc;
    fault.ascq = ascq;
    return fault;
}

// A copy manager that takes small segments, so that a copy is several commands.
TargetConfig small_segments(TargetConfig config, std::uint32_t segment_bytes,
                            std::uint16_t concurrent = 1)
{
    config.copy_manager.max_segment_length = segment_bytes;
    config.copy_manager.total_concurrent_copies = concurrent;
    return config;
}

} // namespace

TEST_CASE("the probe: 3PC, the copy manager's parameters, the NAA designator")
{
    auto registry = std::make_shared<CopyRegistry>();
    Lun lun(lun_config(registry, 1), 1);
    CHECK(lun.engine->info().three_party_copy);
    CHECK(lun.engine->info().copy_offload);
    std::size_t asked = 0;
    for (const CommandRecord &record : lun.probe_log)
        asked += record.opcode == opcode::receive_copy_results ? 1 : 0;
    CHECK(asked == 1);

    TargetConfig plain = lun_config(registry, 2);
    plain.three_pc = false;
    Lun without(plain, 2);
    CHECK_FALSE(without.engine->info().three_party_copy);
    CHECK_FALSE(without.engine->info().copy_offload);
    for (const CommandRecord &record : without.probe_log)
        CHECK(record.opcode != opcode::receive_copy_results);

    // 3PC but no NAA designator: nothing to name the LU by.
    TargetConfig nameless = lun_config(registry, 3);
    nameless.naa.clear();
    Lun unnamed(nameless, 3);
    CHECK(unnamed.engine->info().three_party_copy);
    CHECK_FALSE(unnamed.engine->info().copy_offload);

    // A copy manager without block-to-block segments.
    TargetConfig odd = lun_config(registry, 4);
    odd.copy_manager.descriptor_codes = {0xe4};
    Lun other(odd, 4);
    CHECK_FALSE(other.engine->info().copy_offload);
}

TEST_CASE("RECEIVE COPY RESULTS failing is no offload, not an open failure")
{
    auto registry = std::make_shared<CopyRegistry>();
    auto target = std::make_shared<MemoryTarget>(lun_config(registry, 1));
    Fault fault;
    fault.kind = FaultKind::check_condition;
    fault.on = Ops::receive_copy_results;
    fault.sense_key = 0x05;
    fault.asc = 0x24;
    target->inject(fault);
    std::unique_ptr<Engine> engine;
    std::string message;
    REQUIRE(open_engine(target, options(), engine, message) == 0);
    CHECK(engine->info().three_party_copy);
    CHECK_FALSE(engine->info().copy_offload);
    CHECK(target->count(opcode::receive_copy_results) == 1);
}

TEST_CASE("an aligned copy between two LUs is EXTENDED COPY: no READ, no WRITE, memcpy result")
{
    auto registry = std::make_shared<CopyRegistry>();
    // 64 MiB + 1 MiB: more than one segment of 0xffff blocks.
    const std::uint64_t blocks = 133120;
    Lun source(lun_config(registry, 1, blocks), 1);
    Lun destination(lun_config(registry, 2, blocks), 2);
    const std::uint64_t from = 512 * 7, to = 512 * 1000;
    const std::size_t length = std::size_t{64} << 20;
    const Bytes expected = copied(source.store(), from, destination.store(), to, length);
    const Bytes source_before = source.store();

    const IoResult result = copy_range(*source.engine, from, *destination.engine, to, length);
    INFO(result.message);
    REQUIRE(result.ok());
    CHECK(result.bytes == length);
    CHECK(destination.store() == expected);
    CHECK(source.store() == source_before);
    CHECK(source.xcopies() == 3); // 0xffff + 0xffff + 2 blocks, as sg_xcopy on LIO
    CHECK(source.data_commands() == 0);
    CHECK(destination.data_commands() == 0);
    CHECK(destination.xcopies() == 0);
    CHECK(source.offload().bytes == length);
    CHECK(source.offload().commands == 3);
    CHECK(source.offload().fallback_bytes == 0);
    CHECK(source.copy_path().user_copy_bytes == 0);
    CHECK(source.copy_path().sg_copy_bytes == 0);
    CHECK(destination.copy_path().sg_copy_bytes == 0);
    CHECK(source.target->violations().empty());
}

TEST_CASE("unaligned offsets: the edges staged as today, the whole blocks between offloaded")
{
    auto registry = std::make_shared<CopyRegistry>();
    Lun source(lun_config(registry, 1), 1);
    Lun destination(lun_config(registry, 2), 2);
    // The same offset within a block: a 412-byte head, 20 whole blocks, a 56-byte tail.
    const std::uint64_t from = 512 * 10 + 100, to = 512 * 40 + 100;
    const std::size_t length = 412 + 20 * 512 + 56;
    const Bytes expected = copied(source.store(), from, destination.store(), to, length);
    const IoResult result = copy_range(*source.engine, from, *destination.engine, to, length);
    INFO(result.message);
    REQUIRE(result.ok());
    CHECK(result.bytes == length);
    CHECK(destination.store() == expected);
    CHECK(source.xcopies() == 1);
    CHECK(source.offload().bytes == 20 * 512);
    CHECK(source.copy_path().user_copy_bytes == 412 + 56); // the edges only

    // Offsets that never line up: every byte staged, nothing offloaded.
    const std::uint64_t from2 = 3, to2 = 1000;
    const std::size_t length2 = 33 * kib + 5;
    const Bytes expected2 = copied(source.store(), from2, destination.store(), to2, length2);
    REQUIRE(copy_range(*source.engine, from2, *destination.engine, to2, length2).ok());
    CHECK(destination.store() == expected2);
    CHECK(source.xcopies() == 1);
}

TEST_CASE("a range crossing the end of the source is cut there, the rest offloaded")
{
    auto registry = std::make_shared<CopyRegistry>();
    Lun source(lun_config(registry, 1, 1024), 1);
    Lun destination(lun_config(registry, 2, 4096), 2);
    const std::uint64_t from = 512 * 1000, to = 512 * 3000;
    const IoResult result = copy_range(*source.engine, from, *destination.engine, to, 100 * 512);
    const std::size_t length = 24 * 512;
    REQUIRE(result.ok());
    CHECK(result.bytes == length);
    const Bytes expected = copied(source.store(), from, destination.store(), to, length);
    CHECK(destination.store() == expected);
    CHECK(source.offload().bytes == length);
}

TEST_CASE("within one LU: apart, offloaded; overlapping, the pipelined copy's memmove")
{
    auto registry = std::make_shared<CopyRegistry>();
    Lun lun(lun_config(registry, 1), 1);
    const Bytes apart = moved(lun.store(), 0, 512 * 2000, 300 * kib);
    REQUIRE(copy_range(*lun.engine, 0, *lun.engine, 512 * 2000, 300 * kib).ok());
    CHECK(lun.store() == apart);
    CHECK(lun.xcopies() == 1);
    CHECK(lun.data_commands() == 0);

    struct Case {
        std::uint64_t from, to;
    };
    for (const Case c :
         {Case{0, 512 * 5}, Case{512 * 200, 512 * 3}, Case{512 * 50 + 7, 512 * 90 + 7}}) {
        CAPTURE(c.from);
        CAPTURE(c.to);
        const std::size_t length = 200 * kib;
        const Bytes expected = moved(lun.store(), c.from, c.to, length);
        lun.target->clear_log();
        const IoResult result = copy_range(*lun.engine, c.from, *lun.engine, c.to, length);
        INFO(result.message);
        REQUIRE(result.ok());
        CHECK(lun.store() == expected);
        CHECK(lun.xcopies() == 0);
    }
}

TEST_CASE("ILLEGAL REQUEST: the range falls back to the pipelined copy, tried again next time")
{
    auto registry = std::make_shared<CopyRegistry>();
    Lun source(lun_config(registry, 1), 1);
    Lun destination(lun_config(registry, 2), 2);
    source.target->inject(refusal(0x05, 0x26)); // invalid field in parameter list
    const std::size_t length = 256 * kib;
    for (int round = 1; round <= 2; ++round) {
        CAPTURE(round);
        const std::uint64_t from = 512 * 100 * round, to = 512 * 7 * round;
        const Bytes expected = copied(source.store(), from, destination.store(), to, length);
        const IoResult result = copy_range(*source.engine, from, *destination.engine, to, length);
        INFO(result.message);
        REQUIRE(result.ok());
        CHECK(result.bytes == length);
        CHECK(destination.store() == expected);
        CHECK(source.xcopies() == static_cast<std::uint64_t>(round));
        CHECK(source.offload().refused_other == static_cast<std::uint64_t>(round));
        CHECK(source.offload().fallback_bytes == round * length);
        CHECK(source.offload().bytes == 0);
    }
    CHECK(source.data_commands() > 0);
    CHECK(destination.data_commands() > 0);
}

TEST_CASE("invalid command operation code: refused once, never sent again by this engine")
{
    auto registry = std::make_shared<CopyRegistry>();
    Lun source(lun_config(registry, 1), 1);
    Lun destination(lun_config(registry, 2), 2);
    source.target->inject(refusal(0x05, 0x20));
    const std::size_t length = 64 * kib;
    for (int round = 0; round < 3; ++round) {
        const Bytes expected =
            copied(source.store(), round * length, destination.store(), 0, length);
        REQUIRE(copy_range(*source.engine, round * length, *destination.engine, 0, length).ok());
        CHECK(destination.store() == expected);
    }
    CHECK(source.xcopies() == 1);
    CHECK(source.offload().refused_unsupported == 1);
    CHECK(source.offload().fallback_bytes == length);
}

TEST_CASE("a destination the copy manager cannot reach: COPY ABORTED, the copy falls back")
{
    // Another registry: another target node's session, as another tcm_loop target would be.
    auto here = std::make_shared<CopyRegistry>();
    auto elsewhere = std::make_shared<CopyRegistry>();
    Lun source(lun_config(here, 1), 1);
    Lun destination(lun_config(elsewhere, 2), 2);
    const std::size_t length = 100 * kib;
    const Bytes expected = copied(source.store(), 512, destination.store(), 4096, length);
    const IoResult result = copy_range(*source.engine, 512, *destination.engine, 4096, length);
    INFO(result.message);
    REQUIRE(result.ok());
    CHECK(destination.store() == expected);
    CHECK(source.xcopies() == 1);
    CHECK(source.offload().refused_unreachable == 1);
    CHECK(source.offload().fallback_bytes == length);
}

TEST_CASE("COPY ABORTED part-way: the commands before it kept, the rest copied the pipelined way")
{
    auto registry = std::make_shared<CopyRegistry>();
    // Segments of 64 KiB: a 1 MiB copy is 16 commands; the third fails after 10 blocks.
    Lun source(small_segments(lun_config(registry, 1), 64 * kib), 1);
    Lun destination(lun_config(registry, 2), 2);
    Fault fault = on_xcopy(FaultKind::copy_aborted, 1, 3);
    fault.copied_blocks = 10;
    source.target->inject(fault);
    const std::size_t length = 1024 * kib;
    const Bytes expected = copied(source.store(), 0, destination.store(), 512 * 2048, length);
    const IoResult result = copy_range(*source.engine, 0, *destination.engine, 512 * 2048, length);
    INFO(result.message);
    REQUIRE(result.ok());
    CHECK(result.bytes == length);
    CHECK(destination.store() == expected);
    CHECK(source.xcopies() == 3);
    CHECK(source.offload().commands == 2);
    CHECK(source.offload().bytes == 128 * kib);
    CHECK(source.offload().refused_unreachable == 1);
    CHECK(source.offload().fallback_bytes == length - 128 * kib);
    // The pipelined copy read only what was not offloaded.
    for (const CommandRecord &record : source.target->log())
        if (record.opcode == opcode::read_10 || record.opcode == opcode::read_16)
            CHECK(record.lba >= 256);
}

TEST_CASE("a device failure during the offload is reported: the bytes before it, the source's")
{
    auto registry = std::make_shared<CopyRegistry>();
    Lun source(small_segments(lun_config(registry, 1), 64 * kib), 1);
    Lun destination(lun_config(registry, 2), 2);
    source.target->inject(on_xcopy(FaultKind::medium_error, 1, 2));
    const Bytes before = destination.store();
    const IoResult result = copy_range(*source.engine, 0, *destination.engine, 0, 512 * kib);
    CHECK(result.error == -EIO);
    CHECK(result.end == IoEnd::source);
    CHECK(result.bytes == 64 * kib);
    CHECK(result.message.find("sg0") != std::string::npos);
    CHECK(destination.store() ==
          copied(source.store(), 0, before, 0, 64 * kib)); // one command's worth, no more
    CHECK(source.xcopies() == 2);
    CHECK(source.data_commands() == 0);
    CHECK(source.offload().fallback_bytes == 0);

    Fault gone = on_xcopy(FaultKind::device_gone);
    source.target->clear_faults();
    source.target->inject(gone);
    const IoResult lost = copy_range(*source.engine, 0, *destination.engine, 0, 512 * kib);
    CHECK(lost.error == -ENODEV);
    CHECK(lost.end == IoEnd::source);
    CHECK(lost.bytes == 0);
    // Gone now: the next copy fails before it sends anything.
    const std::uint64_t sent = source.xcopies();
    const IoResult again = copy_range(*source.engine, 0, *destination.engine, 0, 512 * kib);
    CHECK(again.error == -ENODEV);
    CHECK(again.end == IoEnd::source);
    CHECK(source.xcopies() == sent);

    // A destination found gone by its own IO: the destination's error.
    Lun other(lun_config(registry, 3), 3);
    destination.target->disappear();
    Bytes buffer(512);
    CHECK(destination.engine->pread(buffer.data(), buffer.size(), 0).error == -ENODEV);
    const IoResult no_destination = copy_range(*other.engine, 0, *destination.engine, 0, 4096);
    CHECK(no_destination.error == -ENODEV);
    CHECK(no_destination.end == IoEnd::destination);
    CHECK(other.xcopies() == 0);
}

// As vm.lio sees it when a LUN is unlinked from LIO's tpgt mid-copy: the EXTENDED COPY in
// flight completes, the next finds the destination no more (COPY ABORTED, not reachable) and
// the fallback's first WRITE finds the device gone; or the source goes with a command.
TEST_CASE("a LUN removed mid-copy: the bytes before it reported, the error on the next call")
{
    auto registry = std::make_shared<CopyRegistry>();
    Lun source(small_segments(lun_config(registry, 1), 64 * kib), 1);
    const std::size_t length = 512 * kib;

    SUBCASE("the destination: unreachable, then gone for the pipelined copy")
    {
        Lun destination(lun_config(registry, 2), 2);
        const Bytes before = destination.store();
        destination.target->disappear();
        source.target->inject(on_xcopy(FaultKind::copy_aborted, 1, 3));
        const IoResult result = copy_range(*source.engine, 0, *destination.engine, 0, length);
        CHECK(result.error == -ENODEV);
        CHECK(result.end == IoEnd::destination);
        CHECK(result.bytes == 128 * kib);
        // What the copy manager copied before it lost the destination, nothing after.
        CHECK(destination.store() == copied(source.store(), 0, before, 0, 128 * kib));
        CHECK(source.offload().bytes == 128 * kib);
        CHECK(source.offload().refused_unreachable == 1);
        // The next call, from the reported point: the error, without a command.
        const std::uint64_t sent = source.xcopies();
        const IoResult next = copy_range(*source.engine, 128 * kib, *destination.engine, 128 * kib,
                                         length - 128 * kib);
        CHECK(next.error == -ENODEV);
        CHECK(next.end == IoEnd::destination);
        CHECK(next.bytes == 0);
        CHECK(source.xcopies() == sent);
    }
    SUBCASE("the source: gone with its third command")
    {
        Lun destination(lun_config(registry, 2), 2);
        const Bytes before = destination.store();
        source.target->inject(on_xcopy(FaultKind::device_gone, 1, 3));
        const IoResult result = copy_range(*source.engine, 0, *destination.engine, 0, length);
        CHECK(result.error == -ENODEV);
        CHECK(result.end == IoEnd::source);
        CHECK(result.bytes == 128 * kib);
        CHECK(destination.store() == copied(source.store(), 0, before, 0, 128 * kib));
        const IoResult next = copy_range(*source.engine, 128 * kib, *destination.engine, 128 * kib,
                                         length - 128 * kib);
        CHECK(next.error == -ENODEV);
        CHECK(next.end == IoEnd::source);
        CHECK(next.bytes == 0);
    }
}

TEST_CASE("several EXTENDED COPY commands in flight where the copy manager runs several")
{
    auto registry = std::make_shared<CopyRegistry>();
    Lun source(small_segments(lun_config(registry, 1), 32 * kib, 4), 1);
    Lun destination(lun_config(registry, 2), 2);
    const std::size_t length = 512 * kib;
    const Bytes expected = copied(source.store(), 0, destination.store(), 512 * 1024, length);
    REQUIRE(copy_range(*source.engine, 0, *destination.engine, 512 * 1024, length).ok());
    CHECK(destination.store() == expected);
    CHECK(source.xcopies() == 16);
    CHECK(source.target->max_in_flight() == 4);

    Lun lone(small_segments(lun_config(registry, 3), 32 * kib, 1), 3);
    REQUIRE(copy_range(*lone.engine, 0, *destination.engine, 0, length).ok());
    CHECK(lone.xcopies() == 16);
    CHECK(lone.target->max_in_flight() == 1);
}

TEST_CASE("several segments per command, and a copy manager without SNLID")
{
    auto registry = std::make_shared<CopyRegistry>();
    TargetConfig config = small_segments(lun_config(registry, 1), 16 * kib);
    config.copy_manager.max_segment_descriptors = 4;
    config.copy_manager.snlid = false;
    Lun source(config, 1);
    Lun destination(lun_config(registry, 2), 2);
    const std::size_t length = 256 * kib; // 16 segments: 4 commands of 4
    const Bytes expected = copied(source.store(), 0, destination.store(), 0, length);
    REQUIRE(copy_range(*source.engine, 0, *destination.engine, 0, length).ok());
    CHECK(destination.store() == expected);
    CHECK(source.xcopies() == 4);
    CHECK(source.offload().bytes == length);
}

TEST_CASE("no offload without 3PC on either side, with other block sizes, or with the option off")
{
    auto registry = std::make_shared<CopyRegistry>();
    const std::size_t length = 64 * kib;
    TargetConfig plain = lun_config(registry, 3);
    plain.three_pc = false;
    {
        Lun source(lun_config(registry, 1), 1);
        Lun destination(plain, 2);
        REQUIRE(copy_range(*source.engine, 0, *destination.engine, 0, length).ok());
        CHECK(source.xcopies() == 0);
        CHECK(source.data_commands() > 0);
    }
    {
        Lun source(plain, 2);
        Lun destination(lun_config(registry, 1), 1);
        REQUIRE(copy_range(*source.engine, 0, *destination.engine, 0, length).ok());
        CHECK(source.xcopies() == 0);
    }
    {
        Lun source(lun_config(registry, 1, 4096, 512), 1);
        Lun destination(lun_config(registry, 2, 512, 4096), 2);
        const Bytes expected = copied(source.store(), 0, destination.store(), 0, length);
        REQUIRE(copy_range(*source.engine, 0, *destination.engine, 0, length).ok());
        CHECK(destination.store() == expected);
        CHECK(source.xcopies() == 0);
    }
    {
        DiskOptions off = options();
        off.copy_offload = false;
        Lun source(lun_config(registry, 1), 1, off);
        Lun destination(lun_config(registry, 2), 2, off);
        const Bytes expected = copied(source.store(), 0, destination.store(), 0, length);
        REQUIRE(copy_range(*source.engine, 0, *destination.engine, 0, length).ok());
        CHECK(destination.store() == expected);
        CHECK(source.xcopies() == 0);
        CHECK(source.offload().fallback_bytes == 0);
    }
}
