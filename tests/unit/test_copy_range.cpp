// copy_range between disks without an engine (staged through pread/pwrite) in memory, checked
// against std::memmove on a copy of the bytes; and the reattaching wrapper blaming a copy's
// error on the end it came from.
#include "copy_range.hpp"
#include "reattach.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <doctest/doctest.h>
#include <vector>

using namespace sgfs;

namespace
{

class MemoryDisk final : public Disk
{
  public:
    MemoryDisk(std::string name, std::size_t capacity) : bytes_(capacity)
    {
        info_.name = std::move(name);
        info_.sg_path = "/dev/" + info_.name;
        info_.stable_id = "id-" + info_.name;
        info_.capacity_bytes = capacity;
        for (std::size_t i = 0; i < bytes_.size(); ++i)
            bytes_[i] = static_cast<std::uint8_t>((i * 7919 + i / 509) % 251);
    }
    const DiskInfo &info() const override { return info_; }
    DeviceStatsSnapshot stats() const override { return {}; }

    std::vector<std::uint8_t> &bytes() { return bytes_; }
    int error = 0; // non-zero: every IO fails with it

  protected:
    // Disk's rules cut the range to the disk before these run.
    IoResult read_range(void *buffer, std::size_t length, std::uint64_t offset) override
    {
        if (error != 0)
            return IoResult::failure(error, "fake failure");
        std::memcpy(buffer, bytes_.data() + offset, length);
        return IoResult::success(length);
    }
    IoResult write_range(const void *buffer, std::size_t length, std::uint64_t offset) override
    {
        if (error != 0)
            return IoResult::failure(error, "fake failure");
        std::memcpy(bytes_.data() + offset, buffer, length);
        return IoResult::success(length);
    }
    IoResult flush_cache() override { return IoResult::success(0); }

  private:
    DiskInfo info_;
    std::vector<std::uint8_t> bytes_;
};

constexpr std::size_t capacity = 4 << 20; // more than the 1 MiB staging: several chunks

// The bytes copied, or -errno; `failed` says the end of an error.
std::int64_t copy(Disk &source, std::uint64_t from, Disk &destination, std::uint64_t to,
                  std::size_t length, IoEnd &failed)
{
    const IoResult result = copy_range(source, from, destination, to, length);
    failed = result.end;
    return result.ok() ? static_cast<std::int64_t>(result.bytes) : result.error;
}

} // namespace

TEST_CASE("a copy between two disks moves exactly the range, at any offset")
{
    for (auto [from, to, length] : {std::array<std::size_t, 3>{0, 0, capacity},
                                    {512, 4096, 1 << 20},
                                    {1, 3, 3 * (1 << 20) + 17},
                                    {1000, 12345, 999}}) {
        MemoryDisk source("sg0", capacity), destination("sg1", capacity);
        std::vector<std::uint8_t> model = destination.bytes();
        std::memcpy(model.data() + to, source.bytes().data() + from, length);
        IoEnd failed = IoEnd::source;
        CHECK(copy(source, from, destination, to, length, failed) ==
              static_cast<std::int64_t>(length));
        CHECK(failed == IoEnd::none);
        CHECK(destination.bytes() == model);
    }
}

TEST_CASE("a copy within one disk behaves like memmove, forwards and backwards")
{
    constexpr std::size_t mib = 1 << 20;
    for (const auto &spec : {std::array<std::size_t, 3>{0, 100000, 2 * mib + 5},
                             {100000, 0, 2 * mib + 5},
                             {4096, 4096 + mib + 512, 2 * mib},
                             {7, 3, 3 * mib},
                             {3, 7, 3 * mib},
                             {0, 2 * mib, 2 * mib}}) {
        const auto [from, to, length] = spec;
        CAPTURE(spec[0]);
        CAPTURE(spec[1]);
        MemoryDisk disk("sg0", capacity);
        std::vector<std::uint8_t> model = disk.bytes();
        std::memmove(model.data() + to, model.data() + from, length);
        IoEnd failed = IoEnd::source;
        CHECK(copy(disk, from, disk, to, length, failed) == static_cast<std::int64_t>(length));
        CHECK(disk.bytes() == model);
    }
}

TEST_CASE("a copy stops at either end")
{
    MemoryDisk source("sg0", capacity), destination("sg1", capacity / 2);
    IoEnd failed = IoEnd::none;
    CHECK(copy(source, capacity, destination, 0, 100, failed) == 0);
    CHECK(copy(source, capacity + 5, destination, 0, 100, failed) == 0);
    CHECK(copy(source, capacity - 10, destination, 0, 100, failed) == 10);
    CHECK(copy(source, 0, destination, capacity / 2 - 3, 100, failed) == 3);
    CHECK(copy(source, 0, destination, capacity / 2, 100, failed) == -ENOSPC);
    CHECK(failed == IoEnd::destination);
    CHECK(copy(source, 0, destination, 0, 0, failed) == 0);
}

TEST_CASE("a failed copy says which end failed")
{
    MemoryDisk source("sg0", capacity), destination("sg1", capacity);
    IoEnd failed = IoEnd::none;
    source.error = -EIO;
    CHECK(copy(source, 0, destination, 0, 4096, failed) == -EIO);
    CHECK(failed == IoEnd::source);
    source.error = 0;
    destination.error = -EROFS;
    CHECK(copy(source, 0, destination, 0, 4096, failed) == -EROFS);
    CHECK(failed == IoEnd::destination);
}

TEST_CASE("a staged copy whose read or write moves less than asked fails with EIO")
{
    // Both extents were cut to the disks before: a short count is the disk's fault.
    std::vector<std::uint8_t> source(4096, 0x5a), destination(4096, 0);
    std::array<std::uint8_t, 1024> buffer{};
    std::size_t reads = 0;
    const auto read = [&](void *data, std::uint64_t bytes, std::uint64_t offset) {
        std::memcpy(data, source.data() + offset, bytes);
        // The third piece comes back one byte short.
        return IoResult::success(++reads == 3 ? bytes - 1 : bytes);
    };
    const auto write = [&](const void *data, std::uint64_t bytes, std::uint64_t offset) {
        std::memcpy(destination.data() + offset, data, bytes);
        return IoResult::success(bytes);
    };
    IoResult result = staged_copy(0, 0, 4096, false, buffer, read, write);
    CHECK(result.error == -EIO);
    CHECK(result.end == IoEnd::source);
    CHECK(result.message == "short read in a copy");
    CHECK(result.bytes == 2048); // the two pieces written before it
    CHECK(std::equal(destination.begin(), destination.begin() + 2048, source.begin()));
    CHECK(destination[2048] == 0);

    const auto short_write = [&](const void *data, std::uint64_t bytes, std::uint64_t offset) {
        std::memcpy(destination.data() + offset, data, bytes);
        return IoResult::success(bytes / 2);
    };
    reads = 0;
    result = staged_copy(0, 0, 4096, true, buffer, read, short_write);
    CHECK(result.error == -EIO);
    CHECK(result.end == IoEnd::destination);
    CHECK(result.message == "short write in a copy");
    CHECK(result.bytes == 0); // back to front: nothing in front of the failure is done
}

namespace
{

// Both disks "running" in sysfs, so that only ENODEV/ENXIO counts as a lost path.
ReattachEnvironment quiet_environment()
{
    ReattachEnvironment env;
    env.open = [](const std::string &, std::unique_ptr<Disk> &, std::string &message) {
        message = "no such device";
        return -ENXIO;
    };
    env.list_devices = [] { return std::vector<SgDeviceEntry>{}; };
    env.cached_stable_id = [](const std::string &) { return std::string(); };
    env.device_state = [](const std::string &, const std::string &) {
        return std::string("running");
    };
    env.now = [] { return std::chrono::steady_clock::time_point{}; };
    env.log = [](const std::string &) {};
    return env;
}

struct Wrapped {
    MemoryDisk *raw;
    std::unique_ptr<Disk> disk;
    explicit Wrapped(const std::string &name)
    {
        auto memory = std::make_unique<MemoryDisk>(name, capacity);
        raw = memory.get();
        disk = make_reattaching_disk(std::move(memory), quiet_environment());
    }
};

} // namespace

TEST_CASE("through the reattaching wrapper, the copy runs between the disks it holds")
{
    Wrapped source("sg0"), destination("sg1");
    std::vector<std::uint8_t> model = destination.raw->bytes();
    std::memcpy(model.data() + 512, source.raw->bytes().data(), 1 << 20);
    IoEnd failed = IoEnd::source;
    CHECK(copy(*source.disk, 0, *destination.disk, 512, 1 << 20, failed) == 1 << 20);
    CHECK(destination.raw->bytes() == model);

    // memmove through one wrapper, as both ends.
    std::vector<std::uint8_t> moved = source.raw->bytes();
    std::memmove(moved.data() + 1000, moved.data(), 2 << 20);
    CHECK(copy(*source.disk, 0, *source.disk, 1000, 2 << 20, failed) == 2 << 20);
    CHECK(source.raw->bytes() == moved);
}

TEST_CASE("a lost destination does not make the source lost, nor the other way round")
{
    {
        Wrapped source("sg0"), destination("sg1");
        destination.raw->error = -ENODEV;
        IoEnd failed = IoEnd::none;
        CHECK(copy(*source.disk, 0, *destination.disk, 0, 4096, failed) == -ENODEV);
        CHECK(failed == IoEnd::destination);
        CHECK(source.disk->stats().state == "online");
        CHECK(destination.disk->stats().state == "gone");
    }
    {
        Wrapped source("sg0"), destination("sg1");
        source.raw->error = -ENODEV;
        IoEnd failed = IoEnd::none;
        CHECK(copy(*source.disk, 0, *destination.disk, 0, 4096, failed) == -ENODEV);
        CHECK(failed == IoEnd::source);
        CHECK(source.disk->stats().state == "gone");
        CHECK(destination.disk->stats().state == "online");
    }
}
