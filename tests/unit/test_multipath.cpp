// One logical unit through two sg nodes (core/reattach.hpp): two memory target ports share
// one store (memory_target.hpp, another_port), a path fails mid-IO, comes back, and both
// fail. The oracle is the shared store and each port's command log; sysfs, the clock and
// the log are fakes the test holds.
#include "engine.hpp"
#include "engine_fixture.hpp"
#include "fake_sysfs.hpp"
#include "memory_target.hpp"
#include "reattach.hpp"
#include "sgfs/in_use.hpp"

#include <cerrno>
#include <chrono>
#include <doctest/doctest.h>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace sgfs;
using namespace sgfs::test;

namespace
{

constexpr std::size_t kib = 1024;

DiskOptions options_of(IoMode mode = IoMode::indirect)
{
    DiskOptions options;
    options.io_mode = mode;
    options.max_io = 16 * kib;
    options.reserve = options.max_io;
    options.queue_depth = 4;
    options.readahead = false;
    options.timeout_seconds = 5;
    return options;
}

// sysfs as the test sets it: sg nodes by number, each a target port, with the stable id
// sysfs cached for it at scan time; the clock and the log.
struct FakeSystem {
    DiskOptions options = options_of();
    std::map<unsigned, std::shared_ptr<MemoryTarget>> nodes;
    std::map<unsigned, std::string> cached_ids;
    std::chrono::steady_clock::time_point clock{};
    std::vector<std::string> log;

    // A node for `port`, its id cached as the probe reads it from the port's VPD pages.
    void add(unsigned number, std::shared_ptr<MemoryTarget> port)
    {
        nodes[number] = port;
        std::unique_ptr<Engine> engine;
        std::string message;
        REQUIRE(Engine::open(std::make_unique<MemoryTransport>(port, memory_node_facts(number)),
                             options, engine, message) == 0);
        cached_ids[number] = engine->info().stable_id;
    }
    int open(const std::string &path, std::unique_ptr<Disk> &out, std::string &message)
    {
        for (const auto &[number, target] : nodes) {
            const NodeFacts facts = memory_node_facts(number);
            if (facts.path != path)
                continue;
            std::unique_ptr<Engine> engine;
            const int rc = Engine::open(std::make_unique<MemoryTransport>(target, facts), options,
                                        engine, message);
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
        env.cached_stable_id = [this](const std::string &name) {
            for (const auto &[number, id] : cached_ids)
                if (memory_node_facts(number).name == name && nodes.count(number) != 0)
                    return id;
            return std::string();
        };
        env.device_state = [this](const std::string &name, const std::string &) {
            for (const auto &[number, target] : nodes)
                if (memory_node_facts(number).name == name)
                    return std::string(target->gone() ? "transport-offline" : "running");
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
    bool logged(const std::string &text) const
    {
        for (const std::string &line : log)
            if (line.find(text) != std::string::npos)
                return true;
        return false;
    }
};

std::uint64_t writes(const MemoryTarget &port)
{
    return port.count(opcode::write_10) + port.count(opcode::write_16);
}

// Two ports of one LU as sg3 and sg4, the disk opened on sg3.
struct TwoPaths {
    FakeSystem system;
    std::shared_ptr<MemoryTarget> a = std::make_shared<MemoryTarget>();
    std::shared_ptr<MemoryTarget> b = MemoryTarget::another_port(*a);
    std::unique_ptr<Disk> disk;

    explicit TwoPaths(IoMode mode = IoMode::indirect)
    {
        system.options = options_of(mode);
        a->poke(0, pattern(a->bytes(), 1));
        system.add(3, a);
        system.add(4, b);
        disk = system.wrap(3);
        a->clear_log();
        b->clear_log();
    }
    DevicePathSnapshot path(std::size_t index) const
    {
        const DeviceStatsSnapshot stats = disk->stats();
        REQUIRE(stats.device_paths.size() > index);
        return stats.device_paths[index];
    }
};

Fault path_fails_at(std::uint64_t lba, GoneForm form)
{
    Fault fault;
    fault.kind = FaultKind::device_gone;
    fault.on = Ops::write;
    fault.lba = lba;
    fault.blocks = 1;
    fault.gone_form = form;
    return fault;
}

} // namespace

TEST_CASE("two ports share one store and one id; each fails alone")
{
    const auto a = std::make_shared<MemoryTarget>();
    const auto b = MemoryTarget::another_port(*a);
    const Bytes data = pattern(4096, 5);
    a->poke(8192, data);
    CHECK(b->equals(8192, data));
    a->disappear();
    CHECK(a->gone());
    CHECK_FALSE(b->gone());
    FakeSystem system;
    system.add(4, b);
    system.nodes.clear();
    system.add(5, MemoryTarget::another_port(*b));
    CHECK_FALSE(system.cached_ids[4].empty());
    CHECK(system.cached_ids[4] == system.cached_ids[5]);
}

TEST_CASE("the nodes of one id are one disk: named after the first, the others standby")
{
    TwoPaths s;
    CHECK(s.disk->info().name == "sg3");
    const DeviceStatsSnapshot stats = s.disk->stats();
    REQUIRE(stats.device_paths.size() == 2);
    CHECK(stats.device_paths[0].sg_path == "/dev/sg3");
    CHECK(stats.device_paths[0].state == "active");
    CHECK(stats.device_paths[1].sg_path == "/dev/sg4");
    CHECK(stats.device_paths[1].state == "standby");
    CHECK(stats.device_paths[1].device_state == "running");
    const auto fields = stats.fields();
    const std::map<std::string, std::string> keyed(fields.begin(), fields.end());
    CHECK(keyed.at("paths") == "2");
    CHECK(keyed.at("path1.sg_path") == "/dev/sg4");
    CHECK(keyed.at("path1.state") == "standby");

    // IO goes through the first path only.
    const Bytes data = pattern(64 * kib, 7);
    REQUIRE(s.disk->pwrite(data.data(), data.size(), 0).ok());
    CHECK(s.a->equals(0, data));
    CHECK(writes(*s.a) > 0);
    CHECK(writes(*s.b) == 0);
    CHECK(s.path(0).commands > s.path(1).commands);
}

namespace
{

void fails_mid_write(GoneForm form)
{
    TwoPaths s;
    const std::size_t length = 256 * kib; // 16 commands of 16 KiB, 4 in flight
    const Bytes data = pattern(length, 11);
    const std::uint64_t offset = 32 * kib;
    const std::size_t rule = s.a->inject(path_fails_at((offset + 100 * kib) / 512, form));
    const IoResult result = s.disk->pwrite(data.data(), data.size(), offset);
    INFO(result.message);
    REQUIRE(result.ok());
    CHECK(result.bytes == length);
    CHECK(s.a->fired(rule) == 1);
    CHECK(s.a->equals(offset, data)); // the shared store
    CHECK(writes(*s.b) > 0);
    CHECK(s.disk->info().sg_path == "/dev/sg4");
    CHECK(s.disk->info().name == "sg3");

    const DeviceStatsSnapshot stats = s.disk->stats();
    CHECK(stats.state == "online");
    CHECK(stats.path_losses == 1);
    CHECK(stats.device_paths[0].state == "lost");
    CHECK(stats.device_paths[0].failovers == 1);
    CHECK(stats.device_paths[1].state == "active");
    CHECK(s.system.logged("path /dev/sg3 [9:0:0:3] lost"));
    CHECK(s.system.logged("IO goes on through /dev/sg4"));
    CHECK_FALSE(s.system.logged("device lost"));

    // Reads too, on the path that took over.
    Bytes got(length);
    REQUIRE(s.disk->pread(got.data(), length, offset).ok());
    CHECK(got == data);
}

} // namespace

TEST_CASE("a path failing mid-write: the write completes through the other, no error")
{
    for (const GoneForm form :
         {GoneForm::reap_fails, GoneForm::submit_fails, GoneForm::no_connect}) {
        CAPTURE(static_cast<int>(form));
        fails_mid_write(form);
    }
}

TEST_CASE("writes asked to go behind on a disk with two paths are synchronous: a failing path "
          "costs no error")
{
    // io=mmap: where a single path's writes would be acknowledged behind (the mmap area).
    TwoPaths s(IoMode::mmap);
    const std::size_t length = 256 * kib;
    const Bytes data = pattern(length, 13);
    const std::uint64_t offset = 64 * kib;
    const std::size_t rule =
        s.a->inject(path_fails_at((offset + 96 * kib) / 512, GoneForm::reap_fails));
    const auto pending = std::make_shared<PendingWrites>();
    const IoResult result = s.disk->pwrite(data.data(), length, offset, WriteMode::behind,
                                           WriteBehind{pending, {}, {}});
    INFO(result.message);
    REQUIRE(result.ok());
    CHECK(result.bytes == length);
    CHECK(pending->in_flight() == 0); // nothing was left in flight: completed before return
    CHECK(pending->drain().ok());
    CHECK(s.a->fired(rule) == 1);
    CHECK(s.a->equals(offset, data));
    CHECK(s.path(1).state == "active");
    CHECK(s.disk->stats().write_behind.writes == 0);
    CHECK(s.disk->flush().ok());
}

TEST_CASE("a disk of one path still writes behind through the reattaching wrapper")
{
    FakeSystem system;
    system.options = options_of(IoMode::mmap);
    const auto port = std::make_shared<MemoryTarget>();
    system.add(3, port);
    const std::unique_ptr<Disk> disk = system.wrap(3);
    const Bytes data = pattern(128 * kib, 17);
    const auto pending = std::make_shared<PendingWrites>();
    REQUIRE(
        disk->pwrite(data.data(), data.size(), 0, WriteMode::behind, WriteBehind{pending, {}, {}})
            .ok());
    CHECK(pending->drain().ok());
    CHECK(port->equals(0, data));
    CHECK(disk->stats().write_behind.writes > 0);
}

TEST_CASE("threads writing while a path fails: every write completes, the data is there")
{
    TwoPaths s;
    constexpr int threads = 4;
    constexpr std::size_t region = 128 * kib;
    constexpr int rounds = 6;
    // Path A goes with a write of the second round of thread 2.
    s.a->inject(path_fails_at((2 * region + 64 * kib) / 512, GoneForm::reap_fails));
    std::vector<IoResult> failures[threads];
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
        workers.emplace_back([&, t] {
            for (int round = 0; round < rounds; ++round) {
                const Bytes data = pattern(region, static_cast<std::uint8_t>(t * 16 + round));
                const IoResult result = s.disk->pwrite(data.data(), region, t * region);
                if (!result.ok() || result.bytes != region)
                    failures[t].push_back(result);
            }
        });
    for (std::thread &worker : workers)
        worker.join();
    for (int t = 0; t < threads; ++t) {
        for (const IoResult &failure : failures[t])
            INFO(failure.message);
        CHECK(failures[t].empty());
        CHECK(s.a->equals(t * region,
                          pattern(region, static_cast<std::uint8_t>(t * 16 + rounds - 1))));
    }
    CHECK(s.path(0).state == "lost");
    CHECK(s.path(1).state == "active");
    CHECK(writes(*s.b) > 0);
}

TEST_CASE("a lost path that comes back is a standby again, and used when the other fails")
{
    TwoPaths s;
    s.a->inject(path_fails_at(0, GoneForm::reap_fails));
    const Bytes first = pattern(16 * kib, 21);
    REQUIRE(s.disk->pwrite(first.data(), first.size(), 0).ok());
    REQUIRE(s.path(0).state == "lost");

    // Back (a recovered transport): its old channels are dead, a new engine opens. Looked
    // for on IO once the retry interval has passed.
    s.a->clear_faults();
    s.a->reappear();
    const Bytes second = pattern(16 * kib, 22);
    REQUIRE(s.disk->pwrite(second.data(), second.size(), 16 * kib).ok());
    CHECK(s.path(0).state == "lost");
    s.system.advance(1000);
    REQUIRE(s.disk->pwrite(second.data(), second.size(), 16 * kib).ok());
    CHECK(s.path(0).state == "standby");
    CHECK(s.path(1).state == "active");
    CHECK(s.system.logged("path /dev/sg3 [9:0:0:3] back, standby"));

    // Now B fails mid-write: A carries the IO.
    s.a->clear_log();
    s.b->inject(path_fails_at(64, GoneForm::no_connect));
    const Bytes third = pattern(64 * kib, 23);
    const IoResult result = s.disk->pwrite(third.data(), third.size(), 0);
    INFO(result.message);
    REQUIRE(result.ok());
    CHECK(writes(*s.a) > 0);
    CHECK(s.a->equals(0, third));
    CHECK(s.path(0).state == "active");
    CHECK(s.path(1).state == "lost");
    CHECK(s.path(1).failovers == 1);
    CHECK(s.disk->info().sg_path == "/dev/sg3");
}

TEST_CASE("a standby lost while idle is noticed, and not failed over to")
{
    TwoPaths s;
    s.b->disappear();
    s.system.advance(1000);
    Bytes got(4096);
    REQUIRE(s.disk->pread(got.data(), got.size(), 0).ok());
    CHECK(s.path(1).state == "lost");
    CHECK(s.system.logged("path /dev/sg4 [9:0:0:4] lost: device transport-offline"));

    // The active one goes too: the single-path rules, ENODEV.
    s.a->disappear();
    const IoResult result = s.disk->pread(got.data(), got.size(), 0);
    CHECK(result.error == -ENODEV);
    CHECK(s.disk->stats().state == "gone");
    CHECK(s.system.logged("device lost"));
}

TEST_CASE("both paths failing: today's path-loss rules, then both taken back")
{
    TwoPaths s;
    s.a->disappear();
    s.b->disappear();
    const Bytes data = pattern(32 * kib, 31);
    IoResult result = s.disk->pwrite(data.data(), data.size(), 0);
    CHECK(result.error == -ENODEV);
    DeviceStatsSnapshot stats = s.disk->stats();
    CHECK(stats.state == "gone");
    CHECK(stats.device_paths[0].state == "lost");
    CHECK(stats.device_paths[1].state == "lost");
    CHECK(s.system.logged("IO fails with ENODEV until a disk with the same id is back"));
    // Gone: fails at once, nothing sent.
    CHECK(s.disk->pwrite(data.data(), data.size(), 0).error == -ENODEV);

    s.a->reappear();
    s.b->reappear();
    s.system.advance(1000);
    result = s.disk->pwrite(data.data(), data.size(), 0);
    INFO(result.message);
    REQUIRE(result.ok());
    CHECK(s.a->equals(0, data));
    stats = s.disk->stats();
    CHECK(stats.state == "online");
    CHECK(stats.reattaches == 1);
    CHECK(stats.device_paths[0].state == "active");
    CHECK(stats.device_paths[1].state == "standby");
    CHECK(s.system.logged("reattached; 2 paths"));
}

TEST_CASE("a copy whose destination path fails part-way: the copy goes on through the other")
{
    TwoPaths s;
    FakeSystem other;
    TargetConfig config;
    config.naa.back() = 0x09; // another LU
    const auto source_target = std::make_shared<MemoryTarget>(config);
    source_target->poke(0, pattern(source_target->bytes(), 41));
    other.add(7, source_target);
    std::unique_ptr<Disk> source = other.wrap(7);
    const std::size_t length = 256 * kib;
    s.a->inject(path_fails_at(200, GoneForm::reap_fails));
    std::uint64_t done = 0;
    // copy_file_range semantics: a short copy is continued by the caller.
    while (done < length) {
        const IoResult result = copy_range(*source, done, *s.disk, done, length - done);
        INFO(result.message);
        REQUIRE(result.bytes > 0);
        done += result.bytes;
    }
    CHECK(s.a->equals(0, source_target->peek(0, length)));
    CHECK(s.path(1).state == "active");
}

TEST_CASE("a LUN that dm-multipath holds is in use, and the message says multipath")
{
    FakeSysfs sysfs;
    const std::filesystem::path block = sysfs.root() / "block";
    write_file(block / "sdb/dev", "8:16\n");
    write_file(block / "sdb/holders/dm-0", "");
    write_file(block / "dm-0/dm/uuid", "mpath-360014051777e570000000000000001\n");
    write_file(block / "sdc/dev", "8:32\n");
    write_file(block / "sdc/holders/dm-1", "");
    write_file(block / "dm-1/dm/uuid", "LVM-abcdef\n");
    InUseSystem system;
    system.sysfs_root = sysfs.sysfs_root();
    system.mountinfo_path = sysfs.sysfs_root() + "/none";
    system.swaps_path = sysfs.sysfs_root() + "/none";
    CHECK(block_device_users("sdb", system) ==
          std::vector<std::string>{"/dev/sdb held by dm-0 (multipath)"});
    CHECK(block_device_users("sdc", system) == std::vector<std::string>{"/dev/sdc held by dm-1"});
}
