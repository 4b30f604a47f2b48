// The reattaching Disk (core/reattach.hpp) over fake disks and a fake sysfs: when a device
// counts as lost, what IO sees while it is gone, how it is found again, what .stats says.
#include "reattach.hpp"

#include <atomic>
#include <cerrno>
#include <doctest/doctest.h>
#include <map>
#include <thread>
#include <vector>

using namespace sgfs;

namespace
{

// A disk whose next results the test sets.
struct FakeState {
    ssize_t result = 0; // 0: succeed (length bytes); < 0: fail with it
    std::string message;
    std::uint64_t reads = 0;
    std::vector<ReaderId> ended; // end_reader() calls, in order
};

class FakeDisk final : public Disk
{
  public:
    FakeDisk(DiskInfo info, std::shared_ptr<FakeState> state)
        : info_(std::move(info)), state_(std::move(state))
    {
    }
    const DiskInfo &info() const override { return info_; }
    DeviceStatsSnapshot stats() const override
    {
        DeviceStatsSnapshot s;
        s.retries = reads_;
        return s;
    }
    void end_reader(ReaderId reader) override { state_->ended.push_back(reader); }

  protected:
    IoResult read_range(void *, std::size_t length, std::uint64_t) override
    {
        ++state_->reads;
        ++reads_;
        return answer(length);
    }
    ReadView view_range(std::size_t length, std::uint64_t offset, ReaderId) override
    {
        return ReadView(read_range(nullptr, length, offset));
    }
    IoResult write_range(const void *, std::size_t length, std::uint64_t) override
    {
        return answer(length);
    }
    IoResult flush_cache() override { return answer(0); }

  private:
    IoResult answer(std::size_t length) const
    {
        if (state_->result < 0)
            return IoResult::failure(static_cast<int>(state_->result), state_->message);
        return IoResult::success(length);
    }

    DiskInfo info_;
    std::shared_ptr<FakeState> state_;
    std::uint64_t reads_ = 0;
};

DiskInfo info_of(int number, const std::string &id, std::uint32_t block = 512)
{
    DiskInfo info;
    info.name = "sg" + std::to_string(number);
    info.sg_path = "/dev/" + info.name;
    info.hctl = "2:0:0:" + std::to_string(number);
    info.stable_id = id;
    info.logical_block_size = block;
    info.capacity_bytes = 1 << 20;
    return info;
}

SgDeviceEntry entry_of(int number, int type = 0)
{
    SgDeviceEntry e;
    e.name = "sg" + std::to_string(number);
    e.sg_path = "/dev/" + e.name;
    e.hctl = "2:0:0:" + std::to_string(number);
    e.device_type = type;
    return e;
}

// sysfs, the clock and the log, all in the test's hands.
struct FakeSystem {
    std::vector<SgDeviceEntry> devices;
    std::map<std::string, std::string> states; // sg name -> state ("missing" if absent)
    std::map<std::string, std::string> cached; // sg name -> cached stable id
    std::map<std::string, DiskInfo> openable;  // sg path -> what opening it finds
    std::shared_ptr<FakeState> fresh = std::make_shared<FakeState>();
    std::vector<std::string> opened, log;
    std::chrono::steady_clock::time_point clock{};
    int listings = 0;

    ReattachEnvironment environment()
    {
        ReattachEnvironment env;
        env.open = [this](const std::string &path, std::unique_ptr<Disk> &out,
                          std::string &message) {
            opened.push_back(path);
            const auto it = openable.find(path);
            if (it == openable.end()) {
                message = path + ": No such device or address";
                return -ENXIO;
            }
            out = std::make_unique<FakeDisk>(it->second, fresh);
            return 0;
        };
        env.list_devices = [this] {
            ++listings;
            return devices;
        };
        env.cached_stable_id = [this](const std::string &name) {
            const auto it = cached.find(name);
            return it == cached.end() ? std::string() : it->second;
        };
        env.device_state = [this](const std::string &name, const std::string &) {
            const auto it = states.find(name);
            return it == states.end() ? std::string("missing") : it->second;
        };
        env.now = [this] { return clock; };
        env.retry_interval = std::chrono::milliseconds(1000);
        env.log = [this](const std::string &line) { log.push_back(line); };
        return env;
    }
    void advance(int ms) { clock += std::chrono::milliseconds(ms); }
};

const std::string id = "wwn-0x3000000100000001";

// An IO's bytes, or its -errno; its message is kept in `last_message` for the checks.
std::string last_message;
std::int64_t value(const IoResult &result)
{
    last_message = result.message;
    return result.ok() ? static_cast<std::int64_t>(result.bytes) : result.error;
}

struct Setup {
    FakeSystem system;
    std::shared_ptr<FakeState> first = std::make_shared<FakeState>();
    std::unique_ptr<Disk> disk;
    char buffer[512] = {};

    Setup()
    {
        system.devices = {entry_of(2, 0x0c), entry_of(3)};
        system.states = {{"sg2", "running"}, {"sg3", "running"}};
        disk = make_reattaching_disk(std::make_unique<FakeDisk>(info_of(3, id), first),
                                     system.environment());
    }
    std::int64_t read() { return value(disk->pread(buffer, sizeof(buffer), 0)); }
    std::map<std::string, std::string> figures() const
    {
        auto fields = disk->stats().fields();
        return {fields.begin(), fields.end()};
    }
};

} // namespace

TEST_CASE("IO passes through while the device answers")
{
    Setup s;
    CHECK(s.read() == 512);
    CHECK(value(s.disk->pwrite(s.buffer, 100, 7)) == 100);
    CHECK(value(s.disk->flush()) == 0);
    CHECK(s.disk->info().name == "sg3");
    auto f = s.figures();
    CHECK(f["state"] == "online");
    CHECK(f["device_state"] == "running");
    CHECK(f["path_losses"] == "0");
    CHECK(f["reattaches"] == "0");
}

TEST_CASE("errors of the request itself, or with the device running, pass through")
{
    Setup s;
    s.first->result = -EIO;
    s.first->message = "sg3: READ(10): medium error at LBA 7";
    CHECK(s.read() == -EIO);
    CHECK(last_message == s.first->message);
    s.first->result = -EROFS;
    s.system.states["sg3"] = "offline"; // even then: EROFS is about the request
    CHECK(value(s.disk->pwrite(s.buffer, 1, 0)) == -EROFS);
    CHECK(s.figures()["state"] == "online");
}

TEST_CASE("ENODEV marks the device gone; IO then fails with ENODEV without touching it")
{
    Setup s;
    s.first->result = -ENODEV;
    s.first->message = "sg3: READ(10): SG_IO failed: No such device";
    s.system.states.erase("sg3");
    CHECK(s.read() == -ENODEV);
    CHECK(last_message.find("device lost") != std::string::npos);
    REQUIRE(s.system.log.size() == 1);
    CHECK(s.system.log[0].find("sg3 (" + id + "): device lost") != std::string::npos);

    const auto reads = s.first->reads;
    CHECK(s.read() == -ENODEV);
    CHECK(value(s.disk->pwrite(s.buffer, 1, 0)) == -ENODEV);
    CHECK(value(s.disk->flush()) == -ENODEV);
    CHECK(s.first->reads == reads);
    CHECK(last_message.find("looking for " + id) != std::string::npos);
    auto f = s.figures();
    CHECK(f["state"] == "gone");
    CHECK(f["device_state"] == "missing");
    CHECK(f["path_losses"] == "1");
}

TEST_CASE("EIO with the device transport-offline counts as lost")
{
    Setup s;
    s.first->result = -EIO;
    s.first->message = "sg3: WRITE(10): transport failed fast (DID_TRANSPORT_FAILFAST)";
    s.system.states["sg3"] = "transport-offline";
    CHECK(value(s.disk->pwrite(s.buffer, 512, 0)) == -ENODEV);
    CHECK(s.figures()["state"] == "gone");
    CHECK(s.figures()["device_state"] == "transport-offline");
}

TEST_CASE("the device is looked for at most once per interval, and found by its stable id")
{
    Setup s;
    s.first->result = -ENODEV;
    s.system.states.erase("sg3");
    CHECK(s.read() == -ENODEV);
    const int listings = s.system.listings; // one look right at the loss
    s.system.opened.clear();
    s.system.advance(500);
    CHECK(s.read() == -ENODEV);
    CHECK(s.system.listings == listings); // too soon

    // Back after a re-login: sg3 is now another disk, the LUN is sg6; sg5 is a stranger
    // whose cached id rules it out without opening it.
    s.system.devices = {entry_of(3), entry_of(4, 0x0c), entry_of(5), entry_of(6)};
    s.system.states = {
        {"sg3", "running"}, {"sg4", "running"}, {"sg5", "running"}, {"sg6", "running"}};
    s.system.cached = {{"sg5", "wwn-0x5000000000000005"}};
    s.system.openable["/dev/sg3"] = info_of(3, "wwn-0x5000000000000003");
    s.system.openable["/dev/sg6"] = info_of(6, id);
    s.system.advance(600);
    CHECK(s.read() == 512);
    CHECK(s.system.opened == std::vector<std::string>{"/dev/sg3", "/dev/sg6"});
    CHECK(s.disk->info().name == "sg3"); // the file keeps its name
    CHECK(s.disk->info().sg_path == "/dev/sg6");
    CHECK(s.disk->info().hctl == "2:0:0:6");
    CHECK(s.system.log.back().find("back as /dev/sg6") != std::string::npos);
    auto f = s.figures();
    CHECK(f["state"] == "online");
    CHECK(f["device_state"] == "running");
    CHECK(f["path_losses"] == "1");
    CHECK(f["reattaches"] == "1");
    // The counters of the lost disk are kept (the fake counts reads as retries): one
    // read there, one here.
    CHECK(f["retries"] == "2");
}

TEST_CASE("lost while idle and already back on another node: the IO that notices succeeds")
{
    Setup s;
    // Logged out and in again while nothing ran: the old fds are dead, the LUN is sg7.
    s.first->result = -ENODEV;
    s.system.devices = {entry_of(7)};
    s.system.states = {{"sg7", "running"}};
    s.system.openable["/dev/sg7"] = info_of(7, id);
    CHECK(s.read() == 512);
    CHECK(s.first->reads == 1);
    CHECK(s.system.fresh->reads == 1);
    CHECK(s.disk->info().sg_path == "/dev/sg7");
    auto f = s.figures();
    CHECK(f["state"] == "online");
    CHECK(f["path_losses"] == "1");
    CHECK(f["reattaches"] == "1");
    // Lost again at once on the new node: no second immediate try, ENODEV.
    s.system.fresh->result = -ENODEV;
    s.system.openable.clear();
    CHECK(s.read() == -ENODEV);
    CHECK(s.figures()["path_losses"] == "2");
}

TEST_CASE("a disk with the id but another block size is refused")
{
    Setup s;
    s.first->result = -ENODEV;
    CHECK(s.read() == -ENODEV);
    s.system.openable["/dev/sg3"] = info_of(3, id, 4096);
    s.system.advance(1000);
    CHECK(s.read() == -ENODEV);
    CHECK(last_message.find("4096-byte blocks") != std::string::npos);
    CHECK(s.figures()["state"] == "gone");
}

TEST_CASE("the same node back after the transport recovered")
{
    Setup s;
    s.first->result = -EIO;
    s.system.states["sg3"] = "transport-offline";
    CHECK(s.read() == -ENODEV);
    s.system.advance(1000);
    CHECK(s.read() == -ENODEV); // still offline: opening fails
    s.system.states["sg3"] = "running";
    s.system.openable["/dev/sg3"] = info_of(3, id);
    s.system.advance(1000);
    CHECK(s.read() == 512);
    CHECK(s.disk->info().sg_path == "/dev/sg3");
    CHECK(s.figures()["reattaches"] == "1");
    // Lost again later, gone for good this time: counted again.
    s.system.fresh->result = -ENODEV;
    s.system.openable.clear();
    CHECK(s.read() == -ENODEV);
    CHECK(s.figures()["path_losses"] == "2");
}

TEST_CASE("without a stable id the device cannot be found again")
{
    FakeSystem system;
    auto state = std::make_shared<FakeState>();
    auto disk = make_reattaching_disk(std::make_unique<FakeDisk>(info_of(3, ""), state),
                                      system.environment());
    state->result = -ENODEV;
    char buffer[16];
    CHECK(value(disk->pread(buffer, 16, 0)) == -ENODEV);
    system.advance(5000);
    CHECK(value(disk->pread(buffer, 16, 0)) == -ENODEV);
    CHECK(system.listings == 0);
    CHECK(last_message.find("remount") != std::string::npos);
}

TEST_CASE("a read view passes through, and its failure is checked for a lost path")
{
    Setup s;
    CHECK(s.disk->read_view(512, 0, 1).result().bytes == 512);
    s.first->result = -ENODEV;
    s.system.states.erase("sg3");
    CHECK(s.disk->read_view(512, 0, 1).result().error == -ENODEV);
    CHECK(s.figures()["state"] == "gone");
}

TEST_CASE("a reader's end reaches the disk in use, and nothing while the disk is gone")
{
    Setup s;
    s.disk->end_reader(5);
    CHECK(s.first->ended == std::vector<ReaderId>{5});
    s.first->result = -ENODEV;
    char buffer[16];
    CHECK(value(s.disk->pread(buffer, 16, 0)) == -ENODEV);
    CHECK(s.figures()["state"] == "gone");
    s.disk->end_reader(6); // no disk to tell; must not search or fail
    CHECK(s.first->ended == std::vector<ReaderId>{5});
}

TEST_CASE("stable ids from sysfs VPD pages follow the probe's rules")
{
    // 0x83 with a T10 vendor id and an NAA designator: NAA wins.
    const std::vector<std::uint8_t> page83 = {
        0x00, 0x83, 0x00, 0x1c, // header, 28 bytes
        0x02, 0x01, 0x00, 0x0c, 'I',  'E',  'T',  ' ',  ' ',  ' ',  ' ',  ' ',  '0',  '0',
        '0',  '1',  0x01, 0x03, 0x00, 0x08, 0x30, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01};
    const std::vector<std::uint8_t> page80 = {0x00, 0x80, 0x00, 0x06, 'b', 'e', 'a', 'f', '1', '1'};
    CHECK(stable_id_from_vpd_pages(page83, page80) == "wwn-0x3000000100000001");
    CHECK(stable_id_from_vpd_pages({}, page80) == "serial-beaf11");
    CHECK(stable_id_from_vpd_pages({}, {}).empty());
    CHECK(is_lost_device_state("transport-offline"));
    CHECK(is_lost_device_state("missing"));
    CHECK_FALSE(is_lost_device_state("blocked"));
    CHECK_FALSE(is_lost_device_state("running"));
}

namespace
{

// A disk that answers while `up` is set and fails with ENODEV otherwise, for threads.
class FlakyDisk final : public Disk
{
  public:
    FlakyDisk(DiskInfo info, std::shared_ptr<std::atomic<bool>> up)
        : info_(std::move(info)), up_(std::move(up))
    {
    }
    const DiskInfo &info() const override { return info_; }
    DeviceStatsSnapshot stats() const override
    {
        DeviceStatsSnapshot s;
        s.retries = reads_.load();
        return s;
    }

  protected:
    IoResult read_range(void *, std::size_t length, std::uint64_t) override
    {
        if (!up_->load())
            return gone();
        reads_.fetch_add(1);
        return IoResult::success(length);
    }
    IoResult write_range(const void *, std::size_t length, std::uint64_t) override
    {
        return up_->load() ? IoResult::success(length) : gone();
    }
    IoResult flush_cache() override { return up_->load() ? IoResult::success(0) : gone(); }

  private:
    static IoResult gone()
    {
        return IoResult::failure(-ENODEV, "sg3: SG_IO failed: No such device");
    }

    DiskInfo info_;
    std::shared_ptr<std::atomic<bool>> up_;
    std::atomic<std::uint64_t> reads_{0};
};

} // namespace

TEST_CASE("threads reading while the device goes and comes back: ENODEV or data, sums kept")
{
    auto up = std::make_shared<std::atomic<bool>>(true);
    std::atomic<long> clock_ms{0};
    ReattachEnvironment env;
    env.open = [&](const std::string &, std::unique_ptr<Disk> &out, std::string &message) {
        if (!up->load()) {
            message = "No such device or address";
            return -ENXIO;
        }
        out = std::make_unique<FlakyDisk>(info_of(3, id), up);
        return 0;
    };
    env.list_devices = [] { return std::vector<SgDeviceEntry>{entry_of(3)}; };
    env.cached_stable_id = [](const std::string &) { return std::string(); };
    env.device_state = [&](const std::string &, const std::string &) {
        return std::string(up->load() ? "running" : "transport-offline");
    };
    env.now = [&] {
        return std::chrono::steady_clock::time_point(std::chrono::milliseconds(clock_ms.load()));
    };
    env.log = [](const std::string &) {};
    auto disk = make_reattaching_disk(std::make_unique<FlakyDisk>(info_of(3, id), up), env);

    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> good{0}, gone{0}, other{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            char buffer[512];
            for (unsigned i = 0; !stop.load(); ++i) {
                const IoResult result = disk->pread(buffer, sizeof(buffer), 0);
                (result.ok() && result.bytes == 512 ? good
                 : result.error == -ENODEV          ? gone
                                                    : other)
                    .fetch_add(1);
                if (i % 16 == 0) {
                    (void)disk->stats();
                    (void)disk->info().sg_path.size();
                }
            }
        });
    for (int round = 0; round < 50; ++round) {
        up->store(false);
        std::this_thread::sleep_for(std::chrono::microseconds(300));
        clock_ms += 1000;
        up->store(true);
        std::this_thread::sleep_for(std::chrono::microseconds(300));
        clock_ms += 1000;
    }
    stop = true;
    for (auto &thread : threads)
        thread.join();

    clock_ms += 1000;
    char buffer[512];
    CHECK(value(disk->pread(buffer, sizeof(buffer), 0)) == 512);
    CHECK(other.load() == 0);
    CHECK(good.load() > 0);
    const DeviceStatsSnapshot stats = disk->stats();
    CHECK(stats.state == "online");
    CHECK(stats.reattaches == stats.path_losses);
    // Every read that succeeded was served by exactly one disk, old or new.
    CHECK(stats.retries == good.load() + 1);
    MESSAGE("reads ", good.load(), " ok, ", gone.load(), " ENODEV; ", stats.path_losses, " losses");
}

TEST_CASE("the mount's claim is let go at the loss and taken again before the swap")
{
    Setup s;
    std::vector<std::string> claims; // what the hooks were called with, in order
    std::string refuse;
    ReattachEnvironment env = s.system.environment();
    env.release_claim = [&](const DiskInfo &lost) { claims.push_back("release " + lost.name); };
    env.reclaim = [&](const DiskInfo &back) {
        claims.push_back("reclaim " + back.name);
        return refuse;
    };
    auto first = std::make_shared<FakeState>();
    DiskInfo sdd = info_of(3, id);
    sdd.block_device = "sdd";
    std::unique_ptr<Disk> disk =
        make_reattaching_disk(std::make_unique<FakeDisk>(sdd, first), std::move(env));
    const auto figures = [&] {
        auto fields = disk->stats().fields();
        return std::map<std::string, std::string>(fields.begin(), fields.end());
    };
    CHECK(figures()["gone_reason"].empty());

    first->result = -ENODEV;
    s.system.states.erase("sg3");
    CHECK(value(disk->pread(s.buffer, 512, 0)) == -ENODEV);
    CHECK(claims == std::vector<std::string>{"release sg3"});

    // Back as sg6, whose block device someone mounted meanwhile: stays gone, and says why.
    DiskInfo back = info_of(6, id);
    back.block_device = "sdf";
    s.system.devices = {entry_of(6)};
    s.system.states = {{"sg6", "running"}};
    s.system.openable["/dev/sg6"] = back;
    refuse = "in use: /dev/sdf1 mounted at /mnt/e";
    s.system.advance(1000);
    CHECK(value(disk->pread(s.buffer, 512, 0)) == -ENODEV);
    CHECK(claims.back() == "reclaim sg6");
    CHECK(figures()["state"] == "gone");
    CHECK(figures()["gone_reason"] ==
          "refused: /dev/sg6 (/dev/sdf) is in use: /dev/sdf1 mounted at /mnt/e");
    CHECK(s.system.log.back() == "sgfs: sg3 (" + id +
                                     "): found again, but /dev/sg6 (/dev/sdf) is in use: "
                                     "/dev/sdf1 mounted at /mnt/e; still gone");
    // The same refusal again is not logged again.
    const auto lines = s.system.log.size();
    s.system.advance(1000);
    CHECK(value(disk->pread(s.buffer, 512, 0)) == -ENODEV);
    CHECK(s.system.log.size() == lines);

    // Free again: taken, swapped in, the reason gone.
    refuse.clear();
    s.system.advance(1000);
    CHECK(value(disk->pread(s.buffer, 512, 0)) == 512);
    CHECK(figures()["state"] == "online");
    CHECK(figures()["gone_reason"].empty());
    CHECK(disk->info().block_device == "sdf");
}
