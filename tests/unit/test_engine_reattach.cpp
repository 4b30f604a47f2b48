// The reattaching disk (core/reattach.hpp) over real Engines on in-memory SCSI targets: the
// target disappears and comes back (at its path, or as a new node with the same NAA), and
// IO, copies, read views and .stats follow. The oracle is the targets' stores and command
// logs; sysfs, the clock and the log are fakes the test holds.
#include "engine.hpp"
#include "engine_fixture.hpp"
#include "memory_target.hpp"
#include "reattach.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <doctest/doctest.h>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace sgfs;
using namespace sgfs::test;

namespace
{

constexpr std::size_t kib = 1024;

DiskOptions options_of()
{
    DiskOptions options;
    options.io_mode = IoMode::indirect;
    options.max_io = 16 * kib;
    options.readahead = false;
    return options;
}

TargetConfig config_with_naa(std::uint8_t last)
{
    TargetConfig config;
    config.block_count = 2048;
    config.naa.back() = last;
    return config;
}

// sysfs as the test sets it: sg nodes by number, each a target; the clock and the log.
struct FakeSystem {
    std::map<unsigned, std::shared_ptr<MemoryTarget>> nodes; // listed in sysfs
    std::chrono::steady_clock::time_point clock{};
    std::vector<std::string> log;
    unsigned opens = 0;

    std::shared_ptr<MemoryTarget> add(unsigned number, TargetConfig config, std::uint8_t seed)
    {
        auto target = std::make_shared<MemoryTarget>(std::move(config));
        target->poke(0, pattern(target->bytes(), seed));
        nodes[number] = target;
        return target;
    }
    int open(const std::string &path, std::unique_ptr<Disk> &out, std::string &message)
    {
        ++opens;
        for (const auto &[number, target] : nodes) {
            const NodeFacts facts = memory_node_facts(number);
            if (facts.path != path)
                continue;
            std::unique_ptr<Engine> engine;
            const int rc = Engine::open(std::make_unique<MemoryTransport>(target, facts),
                                        options_of(), engine, message);
            if (rc == 0)
                out = std::move(engine);
            return rc;
        }
        message = path + ": No such device or address";
        return -ENXIO;
    }
    ReattachEnvironment environment()
    {
        ReattachEnvironment env;
        env.open = [this](const std::string &path, std::unique_ptr<Disk> &out,
                          std::string &message) { return open(path, out, message); };
        env.list_devices = [this] {
            std::vector<SgDeviceEntry> entries;
            for (const auto &[number, target] : nodes) {
                const NodeFacts facts = memory_node_facts(number);
                SgDeviceEntry entry;
                entry.name = facts.name;
                entry.sg_path = facts.path;
                entry.hctl = facts.hctl;
                entry.device_type = 0;
                entries.push_back(entry);
            }
            return entries;
        };
        env.cached_stable_id = [](const std::string &) { return std::string(); };
        env.device_state = [this](const std::string &name, const std::string &) {
            for (const auto &[number, target] : nodes)
                if (memory_node_facts(number).name == name)
                    return std::string(target->gone() ? "offline" : "running");
            return std::string("missing");
        };
        env.now = [this] { return clock; };
        env.retry_interval = std::chrono::milliseconds(1000);
        env.log = [this](const std::string &line) { log.push_back(line); };
        return env;
    }
    std::unique_ptr<Disk> wrap(unsigned number)
    {
        std::unique_ptr<Disk> first;
        std::string message;
        const int rc = open(memory_node_facts(number).path, first, message);
        INFO(message);
        REQUIRE(rc == 0);
        return make_reattaching_disk(std::move(first), environment());
    }
    void advance(int ms) { clock += std::chrono::milliseconds(ms); }
};

IoResult read_at(Disk &disk, std::uint64_t offset, Bytes &out, std::size_t length = 4 * kib)
{
    out.assign(length, 0);
    return disk.pread(out.data(), length, offset);
}

std::uint64_t read_bytes_counted(const DeviceStatsSnapshot &stats)
{
    const PathCountersSnapshot &read = stats.paths[static_cast<int>(DataPath::read)];
    return read.sg_copy_bytes + read.zero_copy_bytes + read.user_copy_bytes;
}

} // namespace

TEST_CASE("the target disappears: ENODEV, gone; back at its path: the next IO after the interval")
{
    FakeSystem system;
    const auto target = system.add(3, config_with_naa(1), 1);
    std::unique_ptr<Disk> disk = system.wrap(3);
    Bytes got;
    REQUIRE(read_at(*disk, 0, got).ok());
    CHECK(target->equals(0, got));

    target->disappear();
    IoResult result = read_at(*disk, 4096, got);
    CHECK(result.error == -ENODEV);
    DeviceStatsSnapshot stats = disk->stats();
    CHECK(stats.state == "gone");
    CHECK(stats.path_losses == 1);
    CHECK(stats.device_state == "offline");
    CHECK(result.error == -ENODEV);
    const Bytes data = pattern(4096, 9);
    CHECK(disk->pwrite(data.data(), data.size(), 0).error == -ENODEV);

    // Back; not looked for before the retry interval has passed.
    target->reappear();
    const unsigned opens = system.opens;
    system.advance(500);
    CHECK(read_at(*disk, 0, got).error == -ENODEV);
    CHECK(system.opens == opens);
    system.advance(600);
    result = read_at(*disk, 8192, got);
    INFO(result.message);
    REQUIRE(result.ok());
    CHECK(target->equals(8192, got));
    REQUIRE(disk->pwrite(data.data(), data.size(), 0).ok());
    CHECK(target->equals(0, data));

    stats = disk->stats();
    CHECK(stats.state == "online");
    CHECK(stats.reattaches == 1);
    CHECK(stats.path_losses == 1);
    // Both engines' counters: one read on the first, one on the second.
    CHECK(read_bytes_counted(stats) == 2 * 4096);
    CHECK(system.log.size() == 2);
}

TEST_CASE("the same NAA back on another node: found there, and its data served")
{
    FakeSystem system;
    const auto first = system.add(3, config_with_naa(1), 1);
    system.add(4, config_with_naa(2), 2); // a stranger
    std::unique_ptr<Disk> disk = system.wrap(3);
    Bytes got;
    REQUIRE(read_at(*disk, 0, got).ok());
    first->disappear();
    system.nodes.erase(3);
    CHECK(read_at(*disk, 0, got).error == -ENODEV);

    // A re-login: the LUN is sg7 now, with the same data.
    const auto back = system.add(7, config_with_naa(1), 1);
    system.advance(1000);
    IoResult result = read_at(*disk, 12288, got);
    INFO(result.message);
    REQUIRE(result.ok());
    CHECK(back->equals(12288, got));
    CHECK(back->count(opcode::read_10) >= 1);
    CHECK(disk->info().name == "sg3");
    CHECK(disk->info().sg_path == "/dev/sg7");
    const DeviceStatsSnapshot stats = disk->stats();
    CHECK(stats.reattaches == 1);
    CHECK(read_bytes_counted(stats) == 2 * 4096);
}

TEST_CASE("lost and back at once: the IO that notices runs again on the fresh engine")
{
    FakeSystem system;
    const auto target = system.add(3, config_with_naa(1), 1);
    std::unique_ptr<Disk> disk = system.wrap(3);
    target->disappear();
    target->reappear(); // the old channels are dead, new ones work
    Bytes got;
    const IoResult result = read_at(*disk, 4096, got);
    INFO(result.message);
    REQUIRE(result.ok());
    CHECK(target->equals(4096, got));
    CHECK(disk->stats().reattaches == 1);
}

TEST_CASE("a copy whose destination is lost and back at once succeeds on a fresh pin")
{
    FakeSystem system;
    const auto source_target = system.add(3, config_with_naa(1), 1);
    const auto destination_target = system.add(4, config_with_naa(2), 2);
    std::unique_ptr<Disk> source = system.wrap(3);
    std::unique_ptr<Disk> destination = system.wrap(4);

    destination_target->disappear();
    destination_target->reappear();
    const std::size_t length = 200 * kib;
    Bytes expected = destination_target->peek(0, destination_target->bytes());
    const Bytes from = source_target->peek(4096, length);
    std::memcpy(expected.data() + 8192, from.data(), length);
    const IoResult result = copy_range(*source, 4096, *destination, 8192, length);
    INFO(result.message);
    REQUIRE(result.ok());
    CHECK(result.bytes == length);
    CHECK(destination_target->equals(0, expected));
    CHECK(destination->stats().path_losses == 1);
    CHECK(destination->stats().reattaches == 1);
    CHECK(source->stats().path_losses == 0);

    // Lost for good: the copy fails with ENODEV at the destination's end.
    destination_target->disappear();
    const IoResult lost = copy_range(*source, 0, *destination, 0, length);
    CHECK(lost.error == -ENODEV);
    CHECK(lost.end == IoEnd::destination);
    CHECK(destination->stats().state == "gone");
    // And while it is gone, at once (its pin is unavailable).
    const IoResult again = copy_range(*destination, 0, *source, 0, 4096);
    CHECK(again.error == -ENODEV);
    CHECK(again.end == IoEnd::source);
}

TEST_CASE("a read view held across a loss stays valid, and the swap waits for it")
{
    FakeSystem system;
    const auto target = system.add(3, config_with_naa(1), 1);
    std::unique_ptr<Disk> disk = system.wrap(3);
    const Bytes before = target->peek(0, 16 * kib);
    std::optional<ReadView> view = disk->read_view(16 * kib, 0, 1);
    REQUIRE(view->result().ok());

    target->disappear();
    Bytes got;
    CHECK(read_at(*disk, 0, got).error == -ENODEV);
    target->reappear();
    system.advance(1000);
    // The lost engine still has the view's memory out: no second engine of the device yet.
    CHECK(read_at(*disk, 0, got).error == -ENODEV);
    CHECK(disk->stats().state == "gone");
    // The memory is the lost engine's and still readable (ASan would say otherwise).
    Bytes held;
    for (const iovec &piece : view->pieces()) {
        const auto *base = static_cast<const std::uint8_t *>(piece.iov_base);
        held.insert(held.end(), base, base + piece.iov_len);
    }
    CHECK(held == before);

    view.reset();
    system.advance(1000);
    const IoResult result = read_at(*disk, 0, got);
    INFO(result.message);
    REQUIRE(result.ok());
    CHECK(target->equals(0, got));
    CHECK(disk->stats().reattaches == 1);
}

TEST_CASE("a view outliving the wrapper keeps its engine")
{
    FakeSystem system;
    const auto target = system.add(3, config_with_naa(1), 1);
    std::unique_ptr<Disk> disk = system.wrap(3);
    ReadView view = disk->read_view(8 * kib, 4096, 1);
    REQUIRE(view.result().ok());
    disk.reset();
    Bytes held;
    for (const iovec &piece : view.pieces()) {
        const auto *base = static_cast<const std::uint8_t *>(piece.iov_base);
        held.insert(held.end(), base, base + piece.iov_len);
    }
    CHECK(target->equals(4096, held));
}

TEST_CASE("hole punching and provisioning runs go through to the engine, and survive a loss")
{
    FakeSystem system;
    TargetConfig config = config_with_naa(1);
    config.lbpme = true;
    config.lbprz = true;
    config.lbpu = true;
    const auto target = system.add(3, config, 1);
    std::unique_ptr<Disk> disk = system.wrap(3);
    REQUIRE(disk->punch_hole(16 * kib, 64 * kib).ok());
    CHECK(target->peek(16 * kib, 64 * kib) == Bytes(64 * kib, 0));
    CHECK_FALSE(target->mapped(16 * kib / 512));
    CHECK(target->count(opcode::unmap) == 1);
    Mapping run = disk->mapping(16 * kib);
    CHECK(run.result.ok());
    CHECK(run.hole);
    CHECK(run.end == 80 * kib);
    CHECK_FALSE(disk->mapping(0).hole);
    CHECK(disk->stored_bytes() == disk->info().capacity_bytes - 64 * kib);

    // Lost and back at once: the punch and the question run again on the fresh engine.
    target->disappear();
    target->reappear();
    REQUIRE(disk->punch_hole(128 * kib, 32 * kib).ok());
    CHECK(target->peek(128 * kib, 32 * kib) == Bytes(32 * kib, 0));
    CHECK(disk->stats().reattaches == 1);
    target->disappear();
    target->reappear();
    run = disk->mapping(130 * kib);
    INFO(run.result.message);
    CHECK(run.result.ok());
    CHECK(run.hole);
    CHECK(run.end == 160 * kib);
    CHECK(disk->stats().reattaches == 2);

    // Gone for good: ENODEV for both.
    target->disappear();
    system.nodes.erase(3);
    CHECK(disk->punch_hole(0, 4 * kib).error == -ENODEV);
    CHECK(disk->mapping(0).result.error == -ENODEV);
}
