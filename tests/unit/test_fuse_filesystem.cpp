// The FUSE operations' own logic, called directly (no kernel, no session): open modes,
// writes clamped at the end of the disk, when SYNCHRONIZE CACHE is sent, re-opening the
// disks after daemonizing, the .stats text and the xattrs, fallocate, SEEK_DATA/SEEK_HOLE
// and st_blocks.
#include "engine_fixture.hpp"
#include "filesystem.hpp"
#include "hotplug.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <map>
#include <unistd.h>
#include <vector>

using namespace sgfs;
using namespace sgfs::fusefs;

namespace
{

// What the fake disks were asked to do, shared with the test.
struct Journal {
    std::vector<std::pair<std::uint64_t, std::size_t>> writes;   // offset, length
    std::vector<std::pair<std::uint64_t, std::uint64_t>> zeroed; // offset, length
    std::vector<ZeroAllocation> zero_allocations;                // of each zeroing
    int zero_result = 0;
    int flushes = 0;
    int flush_result = 0;
    ssize_t read_result = 0; // < 0: pread fails with it
};

class FakeDisk final : public Disk
{
  public:
    FakeDisk(DiskInfo info, Journal &journal) : info_(std::move(info)), journal_(journal) {}
    const DiskInfo &info() const override { return info_; }
    DeviceStatsSnapshot stats() const override
    {
        DeviceStatsSnapshot snapshot;
        snapshot.retries = 7;
        return snapshot;
    }

  protected:
    // Disk's rules (cut at the end, ENOSPC, EROFS) run before these; the default
    // read_view stages through read_range.
    IoResult read_range(void *buffer, std::size_t length, std::uint64_t) override
    {
        if (journal_.read_result < 0)
            return IoResult::failure(static_cast<int>(journal_.read_result), "fake");
        std::memset(buffer, 'd', length);
        return IoResult::success(length);
    }
    IoResult write_range(const void *, std::size_t length, std::uint64_t offset) override
    {
        journal_.writes.emplace_back(offset, length);
        return IoResult::success(length);
    }
    IoResult zero_within(std::uint64_t offset, std::uint64_t length,
                         ZeroAllocation allocation) override
    {
        journal_.zeroed.emplace_back(offset, length);
        journal_.zero_allocations.push_back(allocation);
        return journal_.zero_result == 0 ? IoResult::success(length)
                                         : IoResult::failure(journal_.zero_result, "fake");
    }
    IoResult flush_cache() override
    {
        ++journal_.flushes;
        return journal_.flush_result == 0 ? IoResult::success(0)
                                          : IoResult::failure(journal_.flush_result, "fake");
    }

  private:
    DiskInfo info_;
    Journal &journal_;
};

constexpr std::uint64_t capacity = std::uint64_t{1024} * 1024;

DiskInfo disk_info(bool write_protected = false)
{
    DiskInfo info;
    info.name = "sg0";
    info.sg_path = "/dev/sg0";
    info.stable_id = "wwn-0x5000000000000000";
    info.capacity_bytes = capacity;
    info.max_transfer_bytes = 512 * 1024;
    info.write_protected = write_protected;
    info.read_only = write_protected;
    return info;
}

struct Fixture {
    Journal journal;
    std::unique_ptr<Filesystem> fs;

    explicit Fixture(const MountOptions &options = {}, bool write_protected = false)
    {
        std::vector<std::unique_ptr<Disk>> disks;
        // Core's probe makes a disk opened with the read_only option read-only.
        DiskInfo info = disk_info(write_protected);
        info.read_only = info.read_only || options.disk.read_only;
        disks.push_back(std::make_unique<FakeDisk>(info, journal));
        DiskNodeSource source;
        source.info = disk_info(write_protected);
        Tree tree({source}, TreeOptions{});
        fs = std::make_unique<Filesystem>(std::move(disks), std::move(tree), options);
    }

    fuse_ino_t disk_inode() const { return 4; }

    // open() as the kernel would; returns -errno or 0 with the handle in `fi`.
    int open(fuse_ino_t inode, int flags, fuse_file_info &fi) const
    {
        fi = {};
        fi.flags = flags;
        return fs->open(inode, fi);
    }
    static Filesystem::OpenFile &handle(const fuse_file_info &fi)
    {
        // NOLINTNEXTLINE(performance-no-int-to-ptr): fh holds the pointer open() stored
        return *reinterpret_cast<Filesystem::OpenFile *>(fi.fh);
    }
};

} // namespace

TEST_CASE("disk files open with direct_io unless cache=page; .stats only for reading")
{
    Fixture f;
    fuse_file_info fi{};
    REQUIRE(f.open(f.disk_inode(), O_RDWR, fi) == 0);
    CHECK(unsigned{fi.direct_io} == 1U);
    CHECK(unsigned{fi.keep_cache} == 0U);
    CHECK(unsigned{fi.noflush} == 0U);
    f.fs->release(&Fixture::handle(fi));

    REQUIRE(f.open(f.disk_inode(), O_RDONLY, fi) == 0);
    CHECK(unsigned{fi.noflush} == 1U); // nothing to flush after reading
    f.fs->release(&Fixture::handle(fi));

    REQUIRE(f.open(stats_inode, O_RDONLY, fi) == 0);
    CHECK(unsigned{fi.direct_io} == 1U);
    f.fs->release(&Fixture::handle(fi));
    CHECK(f.open(stats_inode, O_WRONLY, fi) == -EACCES);
    CHECK(f.open(root_inode, O_RDONLY, fi) == -EISDIR);
    CHECK(f.open(99, O_RDONLY, fi) == -ENOENT);

    MountOptions page;
    page.cache = CacheMode::page;
    Fixture g(page);
    REQUIRE(g.open(g.disk_inode(), O_RDONLY, fi) == 0);
    CHECK(unsigned{fi.direct_io} == 0U);
    CHECK(unsigned{fi.keep_cache} == 0U);
    g.fs->release(&Fixture::handle(fi));
}

TEST_CASE("read-only mounts and write-protected disks refuse writers with EROFS")
{
    MountOptions ro;
    ro.disk.read_only = true;
    Fixture f(ro);
    fuse_file_info fi{};
    CHECK(f.open(f.disk_inode(), O_WRONLY, fi) == -EROFS);
    CHECK(f.open(f.disk_inode(), O_RDWR, fi) == -EROFS);
    REQUIRE(f.open(f.disk_inode(), O_RDONLY, fi) == 0);
    f.fs->release(&Fixture::handle(fi));

    Fixture wp({}, true);
    CHECK(wp.open(wp.disk_inode(), O_WRONLY, fi) == -EROFS);
}

TEST_CASE("writes stop at the end of the disk like a block device's")
{
    Fixture f;
    fuse_file_info fi{};
    REQUIRE(f.open(f.disk_inode(), O_WRONLY, fi) == 0);
    auto &file = Fixture::handle(fi);
    const std::vector<char> data(8192, 'x');
    std::size_t written = 0;

    CHECK(f.fs->write(file, data.data(), 4096, 0, written) == 0);
    CHECK(written == 4096);
    // Crossing the end: what fits is written, the count is short.
    CHECK(f.fs->write(file, data.data(), 8192, capacity - 1000, written) == 0);
    CHECK(written == 1000);
    // At or past the end: ENOSPC, nothing sent to the disk.
    CHECK(f.fs->write(file, data.data(), 1, capacity, written) == -ENOSPC);
    CHECK(f.fs->write(file, data.data(), 1, capacity + 4096, written) == -ENOSPC);
    CHECK(f.fs->write(file, data.data(), 1, -1, written) == -EINVAL);
    // Zero bytes: nothing to do, even at the end.
    written = 99;
    CHECK(f.fs->write(file, data.data(), 0, capacity, written) == 0);
    CHECK(written == 0);

    const std::vector<std::pair<std::uint64_t, std::size_t>> expected = {{0, 4096},
                                                                         {capacity - 1000, 1000}};
    CHECK(f.journal.writes == expected);
    f.fs->release(&file);
}

TEST_CASE("SYNCHRONIZE CACHE: at close after writes, always at fsync, once at release")
{
    Fixture f;
    fuse_file_info fi{};
    REQUIRE(f.open(f.disk_inode(), O_RDWR, fi) == 0);
    auto &file = Fixture::handle(fi);
    std::size_t written = 0;

    CHECK(f.fs->flush(file) == 0);
    CHECK(f.journal.flushes == 0); // nothing written yet

    REQUIRE(f.fs->write(file, "abc", 3, 0, written) == 0);
    CHECK(f.fs->flush(file) == 0);
    CHECK(f.journal.flushes == 1);
    CHECK(f.fs->flush(file) == 0); // a second close of a dup: nothing new
    CHECK(f.journal.flushes == 1);

    CHECK(f.fs->fsync(file) == 0); // fsync never skips
    CHECK(f.journal.flushes == 2);

    // A failed SYNCHRONIZE CACHE is returned, and tried again at the next close.
    REQUIRE(f.fs->write(file, "abc", 3, 0, written) == 0);
    f.journal.flush_result = -EIO;
    CHECK(f.fs->flush(file) == -EIO);
    f.journal.flush_result = 0;
    CHECK(f.fs->flush(file) == 0);
    CHECK(f.journal.flushes == 4);

    REQUIRE(f.fs->write(file, "abc", 3, 0, written) == 0);
    f.fs->release(&file); // released without a flush first: release sends it
    CHECK(f.journal.flushes == 5);

    // A read-only handle never sends one at close.
    REQUIRE(f.open(f.disk_inode(), O_RDONLY, fi) == 0);
    f.journal.writes.clear();
    f.fs->release(&Fixture::handle(fi));
    CHECK(f.journal.flushes == 5);
}

namespace
{

// The bytes of a read's view, all pieces in order.
std::string bytes_of(const ReadView &view)
{
    std::string data;
    for (const iovec &piece : view.pieces())
        data.append(static_cast<const char *>(piece.iov_base), piece.iov_len);
    return data;
}

} // namespace

TEST_CASE("a read returns the data where it lies, or the error for the caller to reply")
{
    Fixture f;
    fuse_file_info fi{};

    REQUIRE(f.open(stats_inode, O_RDONLY, fi) == 0);
    const std::string text = f.fs->stats_text();
    const ReadView head = f.fs->read(Fixture::handle(fi), 10, 0);
    CHECK(head.result().ok());
    CHECK(bytes_of(head) == text.substr(0, 10));
    const ReadView rest = f.fs->read(Fixture::handle(fi), 1 << 20, 10);
    CHECK(bytes_of(head) + bytes_of(rest) == text);
    const ReadView past = f.fs->read(Fixture::handle(fi), 100, 1 << 20);
    CHECK(past.result().ok()); // an empty reply: end of file
    CHECK(past.pieces().empty());
    f.fs->release(&Fixture::handle(fi));

    REQUIRE(f.open(f.disk_inode(), O_RDONLY, fi) == 0);
    const ReadView block = f.fs->read(Fixture::handle(fi), 4096, 512);
    CHECK(block.result().ok());
    CHECK(bytes_of(block) == std::string(4096, 'd'));
    CHECK(bytes_of(f.fs->read(Fixture::handle(fi), 4096, capacity - 100)).size() == 100);
    const ReadView eof = f.fs->read(Fixture::handle(fi), 4096, capacity);
    CHECK(eof.result().ok());
    CHECK(bytes_of(eof).empty());

    f.journal.read_result = -EIO;
    const ReadView failed = f.fs->read(Fixture::handle(fi), 4096, 0);
    CHECK(failed.result().error == -EIO);
    CHECK(failed.pieces().empty());
    CHECK(f.fs->read(Fixture::handle(fi), 4096, -1).result().error == -EINVAL);
    f.fs->release(&Fixture::handle(fi));
}

TEST_CASE("setattr: truncation zeroes the disk from the new size on, chmod and chown are "
          "refused")
{
    using Zeroed = std::vector<std::pair<std::uint64_t, std::uint64_t>>;
    Fixture f;
    struct stat attr {
    };
    Filesystem::StaleRange stale;
    // O_TRUNC arrives as size 0: the whole disk reads zero, the file keeps the capacity.
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_SIZE, 0, attr, stale) == 0);
    CHECK(attr.st_size == static_cast<off_t>(capacity));
    CHECK(f.journal.zeroed == Zeroed{{0, capacity}});
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_SIZE, 4097, attr, stale) == 0);
    CHECK(f.journal.zeroed == Zeroed{{0, capacity}, {4097, capacity - 4097}});
    // At the capacity there is nothing to zero; past it a disk cannot grow.
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_SIZE, capacity, attr, stale) == 0);
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_SIZE, capacity + 1, attr, stale) == -EFBIG);
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_SIZE, -1, attr, stale) == -EINVAL);
    CHECK(f.journal.zeroed.size() == 2);
    // A truncated range may go back to a thin device.
    CHECK(f.journal.zero_allocations ==
          std::vector<ZeroAllocation>(2, ZeroAllocation::may_release));
    // The zeroing wrote: the next close flushes.
    fuse_file_info fi{};
    REQUIRE(f.open(f.disk_inode(), O_WRONLY, fi) == 0);
    CHECK(f.fs->flush(Fixture::handle(fi)) == 0);
    CHECK(f.journal.flushes == 1);
    f.fs->release(&Fixture::handle(fi));
    // The disk's error is the caller's.
    f.journal.zero_result = -EIO;
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_SIZE, 0, attr, stale) == -EIO);

    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME, 0, attr,
                        stale) == 0);
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_MODE, 0, attr, stale) == -EPERM);
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_UID, 0, attr, stale) == -EPERM);
    CHECK(f.fs->setattr(stats_inode, FUSE_SET_ATTR_SIZE, 0, attr, stale) == -EPERM);
    CHECK(f.fs->setattr(root_inode, FUSE_SET_ATTR_SIZE, 0, attr, stale) == -EISDIR);
    // cache=none: no page cache to drop.
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_SIZE, 4097, attr, stale) == -EIO);
    f.journal.zero_result = 0;
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_SIZE, 4097, attr, stale) == 0);
    CHECK(stale.length == 0);
}

TEST_CASE("setattr with cache=page: the zeroed range is the stale one, and only on success")
{
    MountOptions page;
    page.cache = CacheMode::page;
    Fixture f(page);
    struct stat attr {
    };
    Filesystem::StaleRange stale;
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_SIZE, 4097, attr, stale) == 0);
    CHECK(stale.offset == 4097);
    CHECK(stale.length == static_cast<off_t>(capacity - 4097));
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_SIZE, 0, attr, stale) == 0);
    CHECK(stale.offset == 0);
    CHECK(stale.length == static_cast<off_t>(capacity));
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_SIZE, capacity, attr, stale) == 0);
    CHECK(stale.length == 0);
    f.journal.zero_result = -EIO;
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_SIZE, 0, attr, stale) == -EIO);
    CHECK(stale.length == 0);
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_MTIME, 0, attr, stale) == 0);
    CHECK(stale.length == 0);
    // Without a session (no loop yet) there is nothing to notify, and nothing fails.
    f.fs->invalidate_cached(f.disk_inode(), {0, 4096});
}

TEST_CASE("setattr: read-only mounts and write-protected disks refuse truncation with EROFS")
{
    MountOptions ro;
    ro.disk.read_only = true;
    Fixture f(ro);
    struct stat attr {
    };
    Filesystem::StaleRange stale;
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_SIZE, 0, attr, stale) == -EROFS);
    CHECK(f.fs->setattr(f.disk_inode(), FUSE_SET_ATTR_SIZE, capacity + 1, attr, stale) == -EFBIG);
    Fixture wp({}, true);
    CHECK(wp.fs->setattr(wp.disk_inode(), FUSE_SET_ATTR_SIZE, 0, attr, stale) == -EROFS);
    CHECK(f.journal.zeroed.empty());
    CHECK(wp.journal.zeroed.empty());
}

TEST_CASE("xattrs carry the .stats figures")
{
    Fixture f;
    std::string value;
    REQUIRE(f.fs->getxattr(f.disk_inode(), "user.sgfs.capacity_bytes", value) == 0);
    CHECK(value == std::to_string(capacity));
    REQUIRE(f.fs->getxattr(f.disk_inode(), "user.sgfs.retries", value) == 0);
    CHECK(value == "7");
    CHECK(f.fs->getxattr(f.disk_inode(), "user.sgfs.nope", value) == -ENODATA);
    CHECK(f.fs->getxattr(f.disk_inode(), "security.capability", value) == -ENODATA);
    CHECK(f.fs->getxattr(stats_inode, "user.sgfs.retries", value) == -ENODATA);

    std::string names;
    REQUIRE(f.fs->listxattr(f.disk_inode(), names) == 0);
    CHECK(names.starts_with(std::string("user.sgfs.path\0", 15)));
    CHECK(names.find(std::string("user.sgfs.retries\0", 18)) != std::string::npos);
    names.clear();
    REQUIRE(f.fs->listxattr(root_inode, names) == 0);
    CHECK(names.empty());

    CHECK(f.fs->setxattr(f.disk_inode(), "user.sgfs.fua") == -EPERM);
    CHECK(f.fs->setxattr(f.disk_inode(), "user.comment") == -ENOTSUP);

    const std::string text = f.fs->stats_text();
    CHECK(text.starts_with("device sg0\n  path /dev/sg0\n"));
    CHECK(text.find("\n  retries 7\n") != std::string::npos);
}

TEST_CASE("the disks can be opened again, and must not have changed")
{
    Fixture f;
    Journal fresh;
    std::vector<std::string> opened;
    std::string message;
    const DiskOpener same = [&](const std::string &path, std::unique_ptr<Disk> &out,
                                std::string &) {
        opened.push_back(path);
        out = std::make_unique<FakeDisk>(disk_info(), fresh);
        return 0;
    };
    REQUIRE(f.fs->reopen_disks(same, message) == 0);
    CHECK(opened == std::vector<std::string>{"/dev/sg0"});
    // IO now reaches the new disk.
    fuse_file_info fi{};
    REQUIRE(f.open(f.disk_inode(), O_WRONLY, fi) == 0);
    std::size_t written = 0;
    REQUIRE(f.fs->write(Fixture::handle(fi), "x", 1, 0, written) == 0);
    f.fs->release(&Fixture::handle(fi));
    CHECK(fresh.writes.size() == 1);
    CHECK(f.journal.writes.empty());

    const DiskOpener failing = [](const std::string &, std::unique_ptr<Disk> &, std::string &why) {
        why = "not ready";
        return -EIO;
    };
    CHECK(f.fs->reopen_disks(failing, message) == -EIO);
    CHECK(message == "sgfs: cannot reopen /dev/sg0: not ready");

    Fixture g;
    const DiskOpener grown = [&](const std::string &, std::unique_ptr<Disk> &out, std::string &) {
        DiskInfo info = disk_info();
        info.capacity_bytes *= 2;
        out = std::make_unique<FakeDisk>(info, fresh);
        return 0;
    };
    CHECK(g.fs->reopen_disks(grown, message) == -ENODEV);
    CHECK(message == "sgfs: /dev/sg0 changed while mounting");
}

TEST_CASE("copy_file_range: disk to disk through core, the rest refused the way the kernel "
          "expects")
{
    Fixture f;
    fuse_file_info in{}, out{}, stats{};
    REQUIRE(f.open(f.disk_inode(), O_RDONLY, in) == 0);
    REQUIRE(f.open(f.disk_inode(), O_WRONLY, out) == 0);
    REQUIRE(f.open(stats_inode, O_RDONLY, stats) == 0);
    auto &source = Fixture::handle(in);
    auto &destination = Fixture::handle(out);
    std::size_t copied = 99;

    // The fake disk has no copy of its own: Disk's default stages through pread/pwrite.
    CHECK(f.fs->copy_file_range(source, 0, destination, 8192, 4096, 0, copied) == 0);
    CHECK(copied == 4096);
    CHECK(f.fs->copy_file_range(source, 0, destination, capacity - 100, 4096, 0, copied) == 0);
    CHECK(copied == 100);
    CHECK(f.fs->copy_file_range(source, capacity, destination, 0, 4096, 0, copied) == 0);
    CHECK(copied == 0);
    CHECK(f.fs->copy_file_range(source, 0, destination, capacity, 4096, 0, copied) == -ENOSPC);
    const std::vector<std::pair<std::uint64_t, std::size_t>> expected = {{8192, 4096},
                                                                         {capacity - 100, 100}};
    CHECK(f.journal.writes == expected);
    // The copy wrote: close sends SYNCHRONIZE CACHE.
    CHECK(f.fs->flush(destination) == 0);
    CHECK(f.journal.flushes == 1);

    CHECK(f.fs->copy_file_range(source, 0, destination, 0, 4096, 1, copied) == -EINVAL);
    CHECK(f.fs->copy_file_range(source, -1, destination, 0, 4096, 0, copied) == -EINVAL);
    // Not a disk: EOPNOTSUPP, after which the kernel copies with read and write itself.
    CHECK(f.fs->copy_file_range(Fixture::handle(stats), 0, destination, 0, 4096, 0, copied) ==
          -EOPNOTSUPP);
    CHECK(f.fs->copy_file_range(source, 0, source, 0, 4096, 0, copied) == -EBADF);

    MountOptions off;
    off.copy_file_range = false;
    Fixture g(off);
    fuse_file_info gin{}, gout{};
    REQUIRE(g.open(g.disk_inode(), O_RDONLY, gin) == 0);
    REQUIRE(g.open(g.disk_inode(), O_WRONLY, gout) == 0);
    // ENOSYS: the kernel stops asking for the whole mount.
    CHECK(g.fs->copy_file_range(Fixture::handle(gin), 0, Fixture::handle(gout), 0, 4096, 0,
                                copied) == -ENOSYS);
    CHECK(g.journal.writes.empty());
    for (auto *fi : {&gin, &gout})
        g.fs->release(&Fixture::handle(*fi));
    for (auto *fi : {&in, &out, &stats})
        f.fs->release(&Fixture::handle(*fi));
}

// ---- thin provisioning: fallocate, SEEK_DATA/SEEK_HOLE, st_blocks ----

namespace
{

constexpr std::uint64_t sparse_block = 512;

// A thin disk of its own: bytes and a mapped flag per block. Writes and zeroing map the
// blocks they touch; a punch zeroes its range and unmaps the blocks it covers whole. Its
// map_within reports the store's runs, at most `max_run_blocks` blocks each (a device that
// answers in small pieces). The store is the oracle of the tests below.
struct SparseStore {
    std::vector<std::uint8_t> bytes = std::vector<std::uint8_t>(capacity, 0);
    std::vector<bool> mapped = std::vector<bool>(capacity / sparse_block, false);
    std::uint64_t max_run_blocks = ~std::uint64_t{0};
    int map_error = 0;   // map_within fails with it
    int clear_error = 0; // punch_within and zero_within fail with it
    int map_calls = 0;
    int flushes = 0;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> punched, zeroed; // offset, length
    std::vector<ZeroAllocation> zero_allocations;                         // of each zeroing

    void map(std::uint64_t offset, std::uint64_t length)
    {
        for (std::uint64_t b = offset / sparse_block; b * sparse_block < offset + length; ++b)
            mapped[b] = true;
    }
    std::uint64_t mapped_bytes() const
    {
        return static_cast<std::uint64_t>(std::count(mapped.begin(), mapped.end(), true)) *
               sparse_block;
    }
    bool zero(std::uint64_t offset, std::uint64_t length) const
    {
        return std::all_of(bytes.begin() + static_cast<std::ptrdiff_t>(offset),
                           bytes.begin() + static_cast<std::ptrdiff_t>(offset + length),
                           [](std::uint8_t byte) { return byte == 0; });
    }
};

class SparseDisk final : public Disk
{
  public:
    SparseDisk(DiskInfo info, SparseStore &store) : info_(std::move(info)), store_(store) {}
    const DiskInfo &info() const override { return info_; }
    DeviceStatsSnapshot stats() const override { return {}; }

  protected:
    IoResult read_range(void *buffer, std::size_t length, std::uint64_t offset) override
    {
        std::memcpy(buffer, store_.bytes.data() + offset, length);
        return IoResult::success(length);
    }
    IoResult write_range(const void *buffer, std::size_t length, std::uint64_t offset) override
    {
        std::memcpy(store_.bytes.data() + offset, buffer, length);
        store_.map(offset, length);
        return IoResult::success(length);
    }
    IoResult zero_within(std::uint64_t offset, std::uint64_t length,
                         ZeroAllocation allocation) override
    {
        store_.zeroed.emplace_back(offset, length);
        store_.zero_allocations.push_back(allocation);
        if (store_.clear_error != 0)
            return IoResult::failure(store_.clear_error, "sparse");
        std::fill_n(store_.bytes.begin() + static_cast<std::ptrdiff_t>(offset), length, 0);
        store_.map(offset, length);
        return IoResult::success(length);
    }
    IoResult punch_within(std::uint64_t offset, std::uint64_t length) override
    {
        store_.punched.emplace_back(offset, length);
        if (store_.clear_error != 0)
            return IoResult::failure(store_.clear_error, "sparse");
        std::fill_n(store_.bytes.begin() + static_cast<std::ptrdiff_t>(offset), length, 0);
        const std::uint64_t first = (offset + sparse_block - 1) / sparse_block;
        for (std::uint64_t b = first; (b + 1) * sparse_block <= offset + length; ++b)
            store_.mapped[b] = false;
        return IoResult::success(length);
    }
    Mapping map_within(std::uint64_t offset) override
    {
        ++store_.map_calls;
        if (store_.map_error != 0)
            return {IoResult::failure(store_.map_error, "sparse"), false, 0};
        std::uint64_t block = offset / sparse_block;
        const bool hole = !store_.mapped[block];
        std::uint64_t blocks = 0;
        while (block < store_.mapped.size() && store_.mapped[block] != hole &&
               blocks < store_.max_run_blocks) {
            ++block;
            ++blocks;
        }
        return {IoResult::success(0), hole, block * sparse_block};
    }
    IoResult flush_cache() override
    {
        ++store_.flushes;
        return IoResult::success(0);
    }

  private:
    DiskInfo info_;
    SparseStore &store_;
};

struct SparseFixture {
    SparseStore store;
    std::unique_ptr<Filesystem> fs;
    fuse_file_info writer{}, reader{};

    explicit SparseFixture(const MountOptions &options = {})
    {
        std::vector<std::unique_ptr<Disk>> disks;
        disks.push_back(std::make_unique<SparseDisk>(disk_info(), store));
        DiskNodeSource source;
        source.info = disk_info();
        fs = std::make_unique<Filesystem>(std::move(disks), Tree({source}, TreeOptions{}), options);
        writer.flags = O_RDWR;
        reader.flags = O_RDONLY;
        REQUIRE(fs->open(4, writer) == 0);
        REQUIRE(fs->open(4, reader) == 0);
    }
    ~SparseFixture()
    {
        fs->release(&Fixture::handle(writer));
        fs->release(&Fixture::handle(reader));
    }
    SparseFixture(const SparseFixture &) = delete;
    SparseFixture &operator=(const SparseFixture &) = delete;

    Filesystem::OpenFile &rw() const { return Fixture::handle(writer); }
    Filesystem::OpenFile &ro() const { return Fixture::handle(reader); }
    void write(std::uint64_t offset, std::size_t length, std::uint8_t seed) const
    {
        std::vector<char> data(length);
        for (std::size_t i = 0; i < length; ++i)
            data[i] = static_cast<char>(seed + i % 251);
        std::size_t written = 0;
        REQUIRE(fs->write(rw(), data.data(), length, static_cast<off_t>(offset), written) == 0);
        REQUIRE(written == length);
    }
    int fallocate(int mode, std::uint64_t offset, std::uint64_t length) const
    {
        return fs->fallocate(rw(), mode, static_cast<off_t>(offset), static_cast<off_t>(length));
    }
    // lseek's answer, or -errno.
    long long seek(std::uint64_t offset, int whence) const
    {
        off_t found = -1;
        const int rc = fs->lseek(ro(), static_cast<off_t>(offset), whence, found);
        return rc == 0 ? static_cast<long long>(found) : rc;
    }
};

// The answers straight from the store, block by block.
long long stored_data_at_or_after(const SparseStore &store, std::uint64_t offset)
{
    for (std::uint64_t b = offset / sparse_block; b < store.mapped.size(); ++b)
        if (store.mapped[b])
            return static_cast<long long>(std::max(offset, b * sparse_block));
    return -ENXIO;
}
long long stored_hole_at_or_after(const SparseStore &store, std::uint64_t offset)
{
    for (std::uint64_t b = offset / sparse_block; b < store.mapped.size(); ++b)
        if (!store.mapped[b])
            return static_cast<long long>(std::max(offset, b * sparse_block));
    return static_cast<long long>(capacity);
}

} // namespace

TEST_CASE("fallocate PUNCH_HOLE|KEEP_SIZE punches the disk, cut at its end")
{
    SparseFixture f;
    f.write(0, capacity, 0x41); // every block mapped, no zero byte anywhere
    const std::vector<std::uint8_t> before = f.store.bytes;
    constexpr int punch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;

    // Unaligned at both ends: the range reads zero, every byte around it is as it was.
    REQUIRE(f.fallocate(punch, 1000, 9000) == 0);
    CHECK(f.store.zero(1000, 9000));
    CHECK(std::equal(before.begin(), before.begin() + 1000, f.store.bytes.begin()));
    CHECK(std::equal(before.begin() + 10000, before.end(), f.store.bytes.begin() + 10000));
    // The whole blocks inside were handed back: SEEK_HOLE finds the first of them.
    CHECK(f.seek(0, SEEK_HOLE) == 1024);
    CHECK(f.seek(1024, SEEK_DATA) == 9728);

    // Across the end: cut there. At or past the end: nothing to do, nothing sent.
    REQUIRE(f.fallocate(punch, capacity - 700, 4096) == 0);
    CHECK(f.store.zero(capacity - 700, 700));
    CHECK(f.store.bytes[capacity - 701] == before[capacity - 701]);
    const auto punches = f.store.punched.size();
    CHECK(f.fallocate(punch, capacity, 4096) == 0);
    CHECK(f.fallocate(punch, capacity + 512, 1) == 0);
    CHECK(f.store.punched.size() == punches);
    CHECK(f.store.punched.back() == std::pair<std::uint64_t, std::uint64_t>{capacity - 700, 700});
    CHECK(f.store.zeroed.empty()); // a punch is never a plain zeroing

    // A punch writes, like a write: the next close sends SYNCHRONIZE CACHE.
    REQUIRE(f.fs->flush(f.rw()) == 0);
    const int flushes = f.store.flushes;
    REQUIRE(f.fs->flush(f.rw()) == 0);
    CHECK(f.store.flushes == flushes); // nothing written since
    REQUIRE(f.fallocate(punch, 0, 512) == 0);
    REQUIRE(f.fs->flush(f.rw()) == 0);
    CHECK(f.store.flushes == flushes + 1);
}

TEST_CASE("fallocate ZERO_RANGE zeroes, with or without KEEP_SIZE; growing the file is EFBIG")
{
    SparseFixture f;
    f.write(0, capacity, 0x41);
    const std::vector<std::uint8_t> before = f.store.bytes;

    REQUIRE(f.fallocate(FALLOC_FL_ZERO_RANGE, 513, 2000) == 0);
    CHECK(f.store.zero(513, 2000));
    CHECK(f.store.bytes[512] == before[512]);
    CHECK(f.store.bytes[2513] == before[2513]);
    REQUIRE(f.fallocate(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, capacity - 100, 4096) == 0);
    CHECK(f.store.zero(capacity - 100, 100));
    CHECK(f.store.bytes[capacity - 101] == before[capacity - 101]);
    CHECK(f.store.punched.empty());
    const auto zeroings = f.store.zeroed.size();
    // Without KEEP_SIZE a range past the end would grow the file: nothing is zeroed.
    CHECK(f.fallocate(FALLOC_FL_ZERO_RANGE, capacity - 4096, 8192) == -EFBIG);
    CHECK(f.store.bytes[capacity - 4096] == before[capacity - 4096]);
    CHECK(f.fallocate(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, capacity, 1) == 0);
    CHECK(f.store.zeroed.size() == zeroings);
    // fallocate(2): the range is preallocated, so it is never handed back to a thin device.
    CHECK(f.store.zero_allocations == std::vector<ZeroAllocation>(zeroings, ZeroAllocation::keep));
    // Zeroed blocks hold zeros, not holes: they stay data.
    CHECK(f.seek(0, SEEK_HOLE) == static_cast<long long>(capacity));
}

TEST_CASE("fallocate preallocation: the blocks exist, nothing is written; past the end EFBIG")
{
    SparseFixture f;
    f.write(0, 8192, 0x41);
    const std::vector<std::uint8_t> before = f.store.bytes;
    const std::vector<bool> mapped_before = f.store.mapped;

    CHECK(f.fallocate(0, 0, capacity) == 0);
    CHECK(f.fallocate(0, 4096, 100) == 0);
    CHECK(f.fallocate(FALLOC_FL_KEEP_SIZE, 0, capacity) == 0);
    CHECK(f.fallocate(FALLOC_FL_KEEP_SIZE, capacity - 1, 2 * capacity) == 0);
    CHECK(f.fallocate(FALLOC_FL_KEEP_SIZE, capacity + 1, 1) == 0);
    CHECK(f.fallocate(0, capacity - 1, 2) == -EFBIG); // posix_fallocate past the end
    CHECK(f.fallocate(0, capacity, 1) == -EFBIG);
    CHECK(f.store.bytes == before);
    CHECK(f.store.mapped == mapped_before);
    CHECK(f.store.punched.empty());
    CHECK(f.store.zeroed.empty());
}

TEST_CASE("fallocate refuses what it cannot do, with the errno fallocate(2) gives")
{
    SparseFixture f;
    f.write(0, capacity, 0x41);
    const std::vector<std::uint8_t> before = f.store.bytes;

    // Modes no disk file has: EOPNOTSUPP, never ENOSYS (which would end fallocate for the
    // whole mount).
    for (const int mode :
         {FALLOC_FL_PUNCH_HOLE, // without KEEP_SIZE
          FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
          FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_UNSHARE_RANGE,
          FALLOC_FL_NO_HIDE_STALE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0x100}) {
        CAPTURE(mode);
        CHECK(f.fallocate(mode, 0, 4096) == -EOPNOTSUPP);
    }
    CHECK(f.fs->fallocate(f.rw(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, -1, 10) == -EINVAL);
    CHECK(f.fs->fallocate(f.rw(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 0) == -EINVAL);
    // A handle not open for writing.
    CHECK(f.fs->fallocate(f.ro(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == -EBADF);
    CHECK(f.fs->fallocate(f.ro(), 0, 0, 4096) == -EBADF);
    // .stats is no disk.
    fuse_file_info stats{};
    REQUIRE(f.fs->open(stats_inode, stats) == 0);
    CHECK(f.fs->fallocate(Fixture::handle(stats), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                          4096) == -EOPNOTSUPP);
    f.fs->release(&Fixture::handle(stats));
    CHECK(f.store.bytes == before);
    CHECK(f.store.punched.empty());

    // The disk's failure is the caller's; part of the range may be done.
    f.store.clear_error = -EIO;
    CHECK(f.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == -EIO);
    CHECK(f.fallocate(FALLOC_FL_ZERO_RANGE, 0, 4096) == -EIO);
    // A device that turned write-protected (DATA PROTECT): EROFS, as core says.
    f.store.clear_error = -EROFS;
    CHECK(f.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == -EROFS);
}

TEST_CASE("fallocate on a handle whose disk is read-only now: EROFS before the disk is asked")
{
    SparseFixture f;
    SparseStore other;
    std::string message;
    // The handle was opened writable; the disk reopened read-only (the read_only of its
    // probe, as after the write-protect switch was turned).
    const DiskOpener read_only = [&](const std::string &, std::unique_ptr<Disk> &out,
                                     std::string &) {
        DiskInfo info = disk_info(true);
        out = std::make_unique<SparseDisk>(info, other);
        return 0;
    };
    REQUIRE(f.fs->reopen_disks(read_only, message) == 0);
    for (const int mode : {FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE, 0,
                           FALLOC_FL_KEEP_SIZE}) {
        CAPTURE(mode);
        CHECK(f.fallocate(mode, 0, 4096) == -EROFS);
    }
    CHECK(other.punched.empty());
    CHECK(other.zeroed.empty());
}

TEST_CASE("SEEK_DATA and SEEK_HOLE find the store's data and holes from any offset")
{
    SparseFixture f;
    // Data at unaligned places, some of it punched again; the rest never written.
    f.write(0, 700, 1);
    f.write(5000, 20000, 2);
    f.write(300000, 1, 3);
    f.write(capacity - 2048, 2048, 4);
    REQUIRE(f.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8192, 4096) == 0);
    REQUIRE(f.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, capacity - 1024, 1024) == 0);

    for (std::uint64_t offset = 0; offset < capacity; offset += 97) {
        CAPTURE(offset);
        CHECK(f.seek(offset, SEEK_DATA) == stored_data_at_or_after(f.store, offset));
        CHECK(f.seek(offset, SEEK_HOLE) == stored_hole_at_or_after(f.store, offset));
    }
    // At or past the end, and before the start: ENXIO, as lseek(2) says.
    CHECK(f.seek(capacity, SEEK_DATA) == -ENXIO);
    CHECK(f.seek(capacity, SEEK_HOLE) == -ENXIO);
    CHECK(f.seek(capacity + 4096, SEEK_HOLE) == -ENXIO);
    off_t found = 0;
    CHECK(f.fs->lseek(f.ro(), -1, SEEK_DATA, found) == -ENXIO);
    // Data to the end: no hole but the one at the end of the file.
    f.write(capacity - 1024, 1024, 5);
    CHECK(f.seek(capacity - 2048, SEEK_HOLE) == static_cast<long long>(capacity));
    // Holes to the end: no data after them.
    REQUIRE(f.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 300000 - 512, 2048) == 0);
    REQUIRE(f.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, capacity - 4096, 4096) == 0);
    CHECK(f.seek(30000, SEEK_DATA) == -ENXIO);
    // Other whences are the kernel's own; .stats has size 0.
    CHECK(f.fs->lseek(f.ro(), 0, SEEK_SET, found) == -EINVAL);
    fuse_file_info stats{};
    REQUIRE(f.fs->open(stats_inode, stats) == 0);
    CHECK(f.fs->lseek(Fixture::handle(stats), 0, SEEK_DATA, found) == -ENXIO);
    f.fs->release(&Fixture::handle(stats));
}

TEST_CASE("a long walk or a failed lookup errs towards data, never towards a hole")
{
    SparseFixture f;
    f.store.max_run_blocks = 1;        // one block per run: long stretches take many runs
    f.write(0, 600 * sparse_block, 1); // 600 data runs
    f.write(capacity - 4 * sparse_block, 4 * sparse_block, 2); // after ~1400 hole runs

    // SEEK_HOLE gives up inside the data: only the end is safe to report.
    const long long hole = f.seek(0, SEEK_HOLE);
    CHECK(hole == static_cast<long long>(capacity));
    CHECK(f.store.map_calls <= 256);
    // SEEK_DATA gives up inside the holes: where it stopped, with nothing but holes before.
    const long long data = f.seek(600 * sparse_block, SEEK_DATA);
    REQUIRE(data >= static_cast<long long>(600 * sparse_block));
    CHECK(data <= stored_data_at_or_after(f.store, 600 * sparse_block));
    CHECK(f.store.zero(600 * sparse_block, static_cast<std::uint64_t>(data) - 600 * sparse_block));
    // Near the answer the walk is exact again.
    CHECK(f.seek(capacity - 8 * sparse_block, SEEK_DATA) ==
          stored_data_at_or_after(f.store, capacity - 8 * sparse_block));

    // A failing lookup: all data.
    f.store.map_error = -EIO;
    CHECK(f.seek(700 * sparse_block, SEEK_DATA) == static_cast<long long>(700 * sparse_block));
    CHECK(f.seek(700 * sparse_block, SEEK_HOLE) == static_cast<long long>(capacity));
}

TEST_CASE("st_blocks counts what the disk holds, in getattr, lookup and setattr")
{
    SparseFixture f;
    struct stat attr {
    };
    REQUIRE(f.fs->getattr(4, attr) == 0);
    CHECK(attr.st_blocks == 0); // nothing written yet
    CHECK(attr.st_size == static_cast<off_t>(capacity));

    f.write(1000, 10000, 1);
    f.write(600000, 512, 2);
    REQUIRE(f.fs->getattr(4, attr) == 0);
    CHECK(attr.st_blocks * 512 == static_cast<blkcnt_t>(f.store.mapped_bytes()));
    CHECK(attr.st_blocks < attr.st_size / 512); // what makes cp ask for SEEK_DATA

    REQUIRE(f.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 8192) == 0);
    fuse_entry_param entry{};
    REQUIRE(f.fs->lookup(root_inode, "sg0", entry) == 0);
    CHECK(entry.attr.st_blocks * 512 == static_cast<blkcnt_t>(f.store.mapped_bytes()));
    CHECK(entry.attr.st_size == static_cast<off_t>(capacity));

    Filesystem::StaleRange stale;
    REQUIRE(f.fs->setattr(4, FUSE_SET_ATTR_MTIME, 0, attr, stale) == 0);
    CHECK(attr.st_blocks * 512 == static_cast<blkcnt_t>(f.store.mapped_bytes()));
    // Other files keep the tree's attributes.
    REQUIRE(f.fs->getattr(stats_inode, attr) == 0);
    CHECK(attr.st_blocks == 0);

    // A disk that cannot tell holes (every disk without provisioning): all blocks.
    Fixture thick;
    REQUIRE(thick.fs->getattr(thick.disk_inode(), attr) == 0);
    CHECK(attr.st_blocks == static_cast<blkcnt_t>(capacity / 512));
}

namespace
{

// The FUSE operations over a real Engine on the in-memory target: a thin disk whose
// unmapped blocks read zero, with whole 4 KiB unmap granules.
struct EngineMount {
    std::shared_ptr<test::MemoryTarget> target;
    std::unique_ptr<Filesystem> fs;
    const Disk *disk = nullptr; // the filesystem's
    fuse_file_info writer{};

    static test::TargetConfig thin_config()
    {
        test::TargetConfig config;
        config.block_count = capacity / 512;
        config.lbpme = true;
        config.lbprz = true;
        config.lbpu = true;
        config.lbpws = true;
        config.unmap_granularity = 8;
        return config;
    }

    explicit EngineMount(IoMode mode = IoMode::indirect)
        : target(std::make_shared<test::MemoryTarget>(thin_config()))
    {
        std::unique_ptr<Engine> engine;
        std::string message;
        const int rc = test::open_engine(target, test::test_options(mode), engine, message);
        INFO("Engine::open: " << message);
        REQUIRE(rc == 0);
        DiskNodeSource source;
        source.info = engine->info();
        disk = engine.get();
        std::vector<std::unique_ptr<Disk>> disks;
        disks.push_back(std::move(engine));
        fs = std::make_unique<Filesystem>(std::move(disks), Tree({source}, TreeOptions{}),
                                          MountOptions{});
        writer.flags = O_RDWR;
        REQUIRE(fs->open(4, writer) == 0);
    }
    ~EngineMount() { fs->release(&Fixture::handle(writer)); }
    EngineMount(const EngineMount &) = delete;
    EngineMount &operator=(const EngineMount &) = delete;

    Filesystem::OpenFile &file() const { return Fixture::handle(writer); }
    long long seek(std::uint64_t offset, int whence) const
    {
        off_t found = -1;
        const int rc = fs->lseek(file(), static_cast<off_t>(offset), whence, found);
        return rc == 0 ? static_cast<long long>(found) : rc;
    }
    bool unmapped(std::uint64_t offset, std::uint64_t length) const
    {
        if (length == 0)
            return true;
        for (std::uint64_t lba = offset / 512; lba * 512 < offset + length; ++lba)
            if (target->mapped(lba))
                return false;
        return true;
    }
};

} // namespace

TEST_CASE("end to end on an Engine: a punch reads zero on the device, seeks and st_blocks "
          "never claim a hole the device does not have")
{
    EngineMount m;
    const test::Bytes data = test::pattern(capacity, 3);
    m.target->poke(0, data);

    constexpr std::uint64_t from = 1000, length = 70000;
    REQUIRE(m.fs->fallocate(m.file(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, from, length) ==
            0);
    CHECK(m.target->peek(from, length) == test::Bytes(length, 0));
    CHECK(m.target->equals(0, std::span(data).first(from)));
    CHECK(m.target->equals(from + length, std::span(data).subspan(from + length)));
    REQUIRE(m.fs->fallocate(m.file(), FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, capacity - 100,
                            4096) == 0);
    CHECK(m.target->peek(capacity - 100, 100) == test::Bytes(100, 0));
    CHECK(m.target->equals(capacity - 4096, std::span(data).subspan(capacity - 4096, 3996)));

    // Whatever the engine knows of the map: a reported hole is unmapped on the target, the
    // bytes SEEK_DATA skips are unmapped, and st_blocks never counts less than is mapped.
    for (std::uint64_t offset = 0; offset < capacity; offset += 4001) {
        CAPTURE(offset);
        const long long hole = m.seek(offset, SEEK_HOLE);
        REQUIRE(hole >= static_cast<long long>(offset));
        if (hole < static_cast<long long>(capacity))
            CHECK(m.unmapped(static_cast<std::uint64_t>(hole), 1));
        const long long data = m.seek(offset, SEEK_DATA);
        if (data == -ENXIO)
            CHECK(m.unmapped(offset, capacity - offset));
        else
            CHECK(m.unmapped(offset, static_cast<std::uint64_t>(data) - offset));
    }
    struct stat attr {
    };
    REQUIRE(m.fs->getattr(4, attr) == 0);
    CHECK(attr.st_blocks * 512 >= static_cast<blkcnt_t>(m.target->mapped_blocks() * 512));
    CHECK(attr.st_blocks * 512 <= static_cast<blkcnt_t>(capacity));

    // The provisioning the target reports, in the figures and the xattrs.
    std::string value;
    REQUIRE(m.fs->getxattr(4, "user.sgfs.lbpme", value) == 0);
    CHECK(value == "1");
    REQUIRE(m.fs->getxattr(4, "user.sgfs.lbprz", value) == 0);
    CHECK(value == "1");
    REQUIRE(m.fs->getxattr(4, "user.sgfs.unmap_granularity_bytes", value) == 0);
    CHECK(value == "4096");
    REQUIRE(m.fs->getxattr(4, "user.sgfs.max_unmap_descriptors", value) == 0);
    CHECK(value == std::to_string(EngineMount::thin_config().max_unmap_descriptors));
    REQUIRE(m.fs->getxattr(4, "user.sgfs.max_write_same_bytes", value) == 0);
    CHECK(value == std::to_string(EngineMount::thin_config().max_write_same_blocks * 512));
    CHECK(m.fs->stats_text().find("\n  lbpu 1\n") != std::string::npos);
}

// ---- disks added and removed while mounted ----

namespace
{

DiskInfo other_disk_info(const std::string &name, const std::string &stable_id)
{
    DiskInfo info = disk_info();
    info.name = name;
    info.sg_path = "/dev/" + name;
    info.stable_id = stable_id;
    return info;
}

// The names of a readdir buffer (struct fuse_dirent: ino, off, namelen, type, name,
// padded to 8 bytes), with the offset each says to go on from.
std::vector<std::pair<std::string, off_t>> directory_entries(const std::vector<char> &buffer)
{
    std::vector<std::pair<std::string, off_t>> entries;
    std::size_t at = 0;
    while (at + 24 <= buffer.size()) {
        std::uint64_t off = 0;
        std::uint32_t namelen = 0;
        std::memcpy(&off, buffer.data() + at + 8, 8);
        std::memcpy(&namelen, buffer.data() + at + 16, 4);
        entries.emplace_back(std::string(buffer.data() + at + 24, namelen),
                             static_cast<off_t>(off));
        at += (24 + namelen + 7) / 8 * 8;
    }
    return entries;
}

std::vector<std::string> names_of(const std::vector<std::pair<std::string, off_t>> &entries)
{
    std::vector<std::string> names;
    for (const auto &entry : entries)
        names.push_back(entry.first);
    return names;
}

} // namespace

TEST_CASE("write(2) of whole blocks with io=mmap is answered behind; fsync has it on the disk")
{
    EngineMount m(IoMode::mmap);
    const test::Bytes data = test::pattern(std::size_t{256} * 1024, 9);
    std::size_t written = 0;
    REQUIRE(m.fs->write(m.file(), reinterpret_cast<const char *>(data.data()), data.size(), 4096,
                        written) == 0);
    CHECK(written == data.size());
    REQUIRE(m.fs->fsync(m.file()) == 0);
    CHECK(m.target->equals(4096, data));
    const DeviceStatsSnapshot stats = m.disk->stats();
    CHECK(stats.write_behind.writes > 0);
    CHECK(stats.write_behind.bytes == data.size());
}

TEST_CASE("a disk added while mounted can be looked up, opened and read by its link")
{
    Fixture f;
    Journal journal;
    const InodeNumber inode =
        f.fs->add_disk(std::make_unique<FakeDisk>(other_disk_info("sg1", "wwn-1"), journal));
    REQUIRE(inode > f.disk_inode());
    fuse_entry_param entry{};
    REQUIRE(f.fs->lookup(root_inode, "sg1", entry) == 0);
    CHECK(entry.ino == inode);
    CHECK(entry.attr.st_size == static_cast<off_t>(capacity));
    REQUIRE(f.fs->lookup(by_id_inode, "wwn-1", entry) == 0);
    std::string target;
    REQUIRE(f.fs->readlink(entry.ino, target) == 0);
    CHECK(target == "../sg1");
    CHECK(f.fs->disk_with_stable_id("wwn-1") == "sg1");
    CHECK(f.fs->disk_on_node("/dev/sg1").has_value());
    CHECK(f.fs->stats_text().find("sg1") != std::string::npos);

    fuse_file_info fi{};
    REQUIRE(f.open(inode, O_RDWR, fi) == 0);
    std::size_t written = 0;
    REQUIRE(f.fs->write(Fixture::handle(fi), "abcd", 4, 512, written) == 0);
    CHECK(journal.writes.size() == 1);
    CHECK(f.journal.writes.empty()); // the new disk's write, not sg0's
    f.fs->release(&Fixture::handle(fi));

    // A second disk with a name the mount has is left out.
    Journal clash;
    CHECK(f.fs->add_disk(std::make_unique<FakeDisk>(other_disk_info("sg0", "wwn-9"), clash)) == 0);
    CHECK(f.fs->disk_with_stable_id("wwn-9").empty());
}

TEST_CASE("a removed disk leaves the tree; an open handle keeps it until released")
{
    Fixture f;
    Journal journal;
    const InodeNumber inode =
        f.fs->add_disk(std::make_unique<FakeDisk>(other_disk_info("sg1", "wwn-1"), journal));
    fuse_entry_param entry{};
    REQUIRE(f.fs->lookup(root_inode, "sg1", entry) == 0);
    fuse_file_info fi{};
    REQUIRE(f.open(inode, O_RDWR, fi) == 0);

    CHECK(f.fs->remove_disk("/dev/sg9").empty());
    CHECK(f.fs->remove_disk("/dev/sg1") == "sg1");
    CHECK(f.fs->lookup(root_inode, "sg1", entry) == -ENOENT);
    CHECK(f.fs->lookup(by_id_inode, "wwn-1", entry) == -ENOENT);
    CHECK_FALSE(f.fs->disk_on_node("/dev/sg1"));
    CHECK(f.fs->stats_text().find("sg1") == std::string::npos);
    // The kernel still knows the inode: it answers, with no links left.
    struct stat attr {
    };
    REQUIRE(f.fs->getattr(inode, attr) == 0);
    CHECK(attr.st_nlink == 0);
    fuse_file_info again{};
    CHECK(f.open(inode, O_RDONLY, again) == -ENOENT);

    // The handle's disk is still there: IO reaches it, close flushes it.
    std::size_t written = 0;
    REQUIRE(f.fs->write(Fixture::handle(fi), "abcd", 4, 0, written) == 0);
    CHECK(journal.writes.size() == 1);
    f.fs->release(&Fixture::handle(fi));
    CHECK(journal.flushes == 1);

    f.fs->forget(inode, 1);
    CHECK(f.fs->getattr(inode, attr) == -ENOENT);
    // sg0 is untouched.
    CHECK(f.fs->getattr(f.disk_inode(), attr) == 0);
}

TEST_CASE("readdir goes on where it stopped when disks come and go in between")
{
    Fixture f;
    std::vector<Journal> journals(3);
    for (int i = 1; i <= 3; ++i)
        REQUIRE(f.fs->add_disk(std::make_unique<FakeDisk>(
                    other_disk_info("sg" + std::to_string(i), "wwn-" + std::to_string(i)),
                    journals[i - 1])) != 0);
    std::vector<char> buffer;
    REQUIRE(f.fs->readdir(nullptr, root_inode, 4096, 0, buffer) == 0);
    const auto all = directory_entries(buffer);
    CHECK(names_of(all) ==
          std::vector<std::string>{".", "..", "by-id", ".stats", "sg0", "sg1", "sg2", "sg3"});

    // Stop after sg1, then remove sg1 (the last one listed) and sg2, add sg4.
    const off_t after_sg1 = all[5].second;
    CHECK(f.fs->remove_disk("/dev/sg1") == "sg1");
    CHECK(f.fs->remove_disk("/dev/sg2") == "sg2");
    Journal fourth;
    REQUIRE(f.fs->add_disk(std::make_unique<FakeDisk>(other_disk_info("sg4", "wwn-4"), fourth)) !=
            0);
    REQUIRE(f.fs->readdir(nullptr, root_inode, 4096, after_sg1, buffer) == 0);
    CHECK(names_of(directory_entries(buffer)) == std::vector<std::string>{"sg3", "sg4"});

    // From the start: what is there now, once each.
    REQUIRE(f.fs->readdir(nullptr, root_inode, 4096, 0, buffer) == 0);
    CHECK(names_of(directory_entries(buffer)) ==
          std::vector<std::string>{".", "..", "by-id", ".stats", "sg0", "sg3", "sg4"});
    REQUIRE(f.fs->readdir(nullptr, by_id_inode, 4096, 0, buffer) == 0);
    CHECK(names_of(directory_entries(buffer)) ==
          std::vector<std::string>{".", "..", "wwn-0x5000000000000000", "wwn-3", "wwn-4"});
}

namespace
{

// A host whose sysfs lists `devices` and whose disks open as fakes with `ids`; the claim
// refuses what `in_use` names, as DiskClaims would.
struct FakeHotplugHost {
    std::vector<SgDeviceEntry> devices;
    std::map<std::string, std::string> ids;    // sg path -> stable id
    std::map<std::string, std::string> in_use; // stable id -> reason
    std::vector<std::string> opened, claimed;
    std::vector<std::unique_ptr<Journal>> journals;

    void plug(const std::string &name, int type = 0)
    {
        SgDeviceEntry entry;
        entry.name = name;
        entry.sg_path = "/dev/" + name;
        entry.device_type = type;
        devices.push_back(entry);
    }
    void unplug(const std::string &name)
    {
        std::erase_if(devices, [&](const SgDeviceEntry &e) { return e.name == name; });
    }
    Hotplug hotplug(Filesystem &filesystem)
    {
        return Hotplug(
            filesystem,
            [this](const std::string &path, std::unique_ptr<Disk> &out, std::string &) {
                opened.push_back(path);
                journals.push_back(std::make_unique<Journal>());
                out = std::make_unique<FakeDisk>(other_disk_info(path.substr(5), ids[path]),
                                                 *journals.back());
                return 0;
            },
            [this](const DiskInfo &disk) {
                claimed.push_back(disk.sg_path);
                const auto it = in_use.find(disk.stable_id);
                return it == in_use.end() ? std::string() : it->second;
            },
            [this] { return devices; });
    }
};

DeviceEvent event(DeviceEvent::Kind kind, const std::string &name)
{
    DeviceEvent e;
    e.kind = kind;
    e.name = name;
    e.subsystem = "scsi_generic";
    return e;
}

} // namespace

TEST_CASE("uevents: sg nodes added and removed, a whole disk changed, the rest ignored")
{
    CHECK(device_event_from("add", "scsi_generic", "sg3", "")->kind == DeviceEvent::Kind::added);
    CHECK(device_event_from("add", "scsi_generic", "sg3", "")->name == "sg3");
    CHECK(device_event_from("remove", "scsi_generic", "sg3", "")->kind ==
          DeviceEvent::Kind::removed);
    CHECK_FALSE(device_event_from("bind", "scsi_generic", "sg3", ""));
    CHECK(device_event_from("change", "block", "sdb", "disk")->kind == DeviceEvent::Kind::changed);
    CHECK_FALSE(device_event_from("change", "block", "sdb1", "partition"));
    CHECK(device_event_from("change", "scsi_disk", "2:0:0:0", "")->kind ==
          DeviceEvent::Kind::changed);
    CHECK_FALSE(device_event_from("add", "block", "sdb", "disk"));
    CHECK_FALSE(device_event_from("add", "scsi_generic", "", ""));
}

TEST_CASE("hot add: a new disk is served after the settle time, through the claim")
{
    Fixture f;
    FakeHotplugHost host;
    host.ids["/dev/sg1"] = "wwn-1";
    Hotplug hotplug = host.hotplug(*f.fs);
    const auto t0 = Hotplug::Clock::time_point{} + std::chrono::hours(1);

    host.plug("sg1");
    hotplug.handle(event(DeviceEvent::Kind::added, "sg1"), t0);
    CHECK(hotplug.act_on_due(t0) == t0 + Hotplug::add_settle);
    CHECK(host.opened.empty());
    CHECK(hotplug.act_on_due(t0 + Hotplug::add_settle) == Hotplug::Clock::time_point::max());
    CHECK(host.opened == std::vector<std::string>{"/dev/sg1"});
    CHECK(host.claimed == std::vector<std::string>{"/dev/sg1"});
    fuse_entry_param entry{};
    CHECK(f.fs->lookup(root_inode, "sg1", entry) == 0);
    CHECK(f.fs->lookup(by_id_inode, "wwn-1", entry) == 0);

    // A repeated add of a served node opens nothing.
    hotplug.handle(event(DeviceEvent::Kind::added, "sg1"), t0);
    hotplug.act_on_due(t0 + Hotplug::add_settle);
    CHECK(host.opened.size() == 1);

    // Not a disk (a tape), or gone again before the settle time: never opened.
    host.plug("sg2", 1);
    hotplug.handle(event(DeviceEvent::Kind::added, "sg2"), t0);
    hotplug.handle(event(DeviceEvent::Kind::added, "sg3"), t0);
    hotplug.act_on_due(t0 + Hotplug::add_settle);
    CHECK(host.opened.size() == 1);
}

TEST_CASE("hot add: a disk in use is left out, as at mount")
{
    Fixture f;
    FakeHotplugHost host;
    host.ids["/dev/sg1"] = "wwn-1";
    host.in_use["wwn-1"] = "in use: /dev/sdb1 mounted at /srv";
    Hotplug hotplug = host.hotplug(*f.fs);
    const auto t0 = Hotplug::Clock::time_point{} + std::chrono::hours(1);
    host.plug("sg1");
    hotplug.handle(event(DeviceEvent::Kind::added, "sg1"), t0);
    hotplug.act_on_due(t0 + Hotplug::add_settle);
    CHECK(host.claimed == std::vector<std::string>{"/dev/sg1"});
    fuse_entry_param entry{};
    CHECK(f.fs->lookup(root_inode, "sg1", entry) == -ENOENT);
    CHECK(f.fs->disk_with_stable_id("wwn-1").empty());
}

TEST_CASE("hot remove: the file goes after the grace time unless the stable id comes back")
{
    Fixture f;
    FakeHotplugHost host;
    host.ids["/dev/sg1"] = "wwn-1";
    host.ids["/dev/sg2"] = "wwn-1"; // sg1's disk back on another node
    host.ids["/dev/sg3"] = "wwn-3";
    Hotplug hotplug = host.hotplug(*f.fs);
    const auto t0 = Hotplug::Clock::time_point{} + std::chrono::hours(1);
    for (const char *name : {"sg1", "sg3"}) {
        host.plug(name);
        hotplug.handle(event(DeviceEvent::Kind::added, name), t0);
    }
    hotplug.act_on_due(t0 + Hotplug::add_settle);
    fuse_entry_param entry{};
    REQUIRE(f.fs->lookup(root_inode, "sg1", entry) == 0);
    REQUIRE(f.fs->lookup(root_inode, "sg3", entry) == 0);

    // sg1 goes and its id comes back as sg2 within the grace time: sg1 stays, no sg2.
    const auto t1 = t0 + std::chrono::seconds(10);
    host.unplug("sg1");
    hotplug.handle(event(DeviceEvent::Kind::removed, "sg1"), t1);
    host.plug("sg2");
    hotplug.handle(event(DeviceEvent::Kind::added, "sg2"), t1);
    hotplug.act_on_due(t1 + Hotplug::add_settle);
    hotplug.act_on_due(t1 + Hotplug::removal_grace);
    CHECK(f.fs->lookup(root_inode, "sg1", entry) == 0);
    CHECK(f.fs->lookup(root_inode, "sg2", entry) == -ENOENT);
    CHECK(host.claimed.size() == 2); // sg2 was refused before the mount's claim was asked

    // sg3 goes for good: served until the grace time is over, then not.
    const auto t2 = t1 + std::chrono::seconds(10);
    host.unplug("sg3");
    hotplug.handle(event(DeviceEvent::Kind::removed, "sg3"), t2);
    CHECK(hotplug.act_on_due(t2) == t2 + Hotplug::removal_grace);
    CHECK(f.fs->lookup(root_inode, "sg3", entry) == 0);
    hotplug.act_on_due(t2 + Hotplug::removal_grace);
    CHECK(f.fs->lookup(root_inode, "sg3", entry) == -ENOENT);
    CHECK(f.fs->lookup(by_id_inode, "wwn-3", entry) == -ENOENT);

    // A removed node no disk of the mount uses is nothing to do.
    hotplug.handle(event(DeviceEvent::Kind::removed, "sg7"), t2);
    CHECK(hotplug.act_on_due(t2) == Hotplug::Clock::time_point::max());
}

TEST_CASE("a change uevent of a served disk rereads its capacity, for an explicit source too")
{
    EngineMount m;
    // An explicit source: the listener follows capacity changes only, opens nothing.
    std::vector<std::string> opened;
    Hotplug hotplug(
        *m.fs,
        [&opened](const std::string &path, std::unique_ptr<Disk> &, std::string &) {
            opened.push_back(path);
            return -ENXIO;
        },
        [](const DiskInfo &) { return std::string(); },
        [] { return std::vector<SgDeviceEntry>(); }, /*add_and_remove=*/false);
    const auto size = [&m] {
        struct stat attr {
        };
        REQUIRE(m.fs->getattr(4, attr) == 0);
        return static_cast<std::uint64_t>(attr.st_size);
    };
    REQUIRE(size() == capacity);
    m.target->resize(2 * capacity / 512);

    const auto now = Hotplug::Clock::now();
    DeviceEvent changed = event(DeviceEvent::Kind::changed, "9:0:0:7"); // not this mount's
    changed.subsystem = "scsi_disk";
    hotplug.handle(changed, now);
    CHECK(size() == capacity);
    changed.name = m.disk->info().hctl; // the SCSI disk of the served one
    hotplug.handle(changed, now);
    CHECK(size() == 2 * capacity);
    CHECK(m.disk->stats().capacity_changes == 1);

    hotplug.handle(event(DeviceEvent::Kind::added, "sg5"), now);
    hotplug.act_on_due(now + std::chrono::seconds(5));
    CHECK(opened.empty());
}
