// The FUSE operations' own logic, called directly (no kernel, no session): open modes,
// writes clamped at the end of the disk, when SYNCHRONIZE CACHE is sent, re-opening the
// disks after daemonizing, the .stats text and the xattrs.
#include "filesystem.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <vector>

using namespace sgfs;
using namespace sgfs::fusefs;

namespace
{

// What the fake disks were asked to do, shared with the test.
struct Journal {
    std::vector<std::pair<std::uint64_t, std::size_t>> writes;   // offset, length
    std::vector<std::pair<std::uint64_t, std::uint64_t>> zeroed; // offset, length
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
    IoResult zero_within(std::uint64_t offset, std::uint64_t length) override
    {
        journal_.zeroed.emplace_back(offset, length);
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
