// The FUSE low-level operations over the Tree and the opened Disks.
//
// Locking: fusefs itself takes no lock. The tree is immutable after mount, a handle
// (OpenFile) is immutable after open() but for its PendingWrites (core's, which locks
// itself), and the only per-disk mutable state here is one atomic flag. All locks live inside
// core's Disk, and we never hold anything of ours while calling into it, so there is no lock order
// to get wrong on this side.
#pragma once

#include "fuse_api.hpp"
#include "mount_options.hpp"
#include "sgfs/disk.hpp"
#include "source_spec.hpp"
#include "tree.hpp"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace sgfs::fusefs
{

class Filesystem
{
  public:
    // disks[i] is the disk of tree.disk_inode(i).
    Filesystem(std::vector<std::unique_ptr<Disk>> disks, Tree tree, MountOptions options);
    Filesystem(const Filesystem &) = delete;
    Filesystem &operator=(const Filesystem &) = delete;

    static const fuse_lowlevel_ops &operations();

    // Worker threads the session loop may run: enough for every disk's queue to be full
    // twice over (one batch in the driver, one being answered), plus a few for metadata.
    unsigned max_threads() const;
    // Closes every disk and opens it again with `open_disk`. For the daemon after
    // fuse_daemonize(): the sg driver refuses write() and read() on a file descriptor from
    // a process whose credentials changed after it was opened, and the forked child's are
    // a copy. Returns 0, or -errno with `message` naming the disk.
    int reopen_disks(const DiskOpener &open_disk, std::string &message);
    // Generates /.stats: every disk's figures as of now.
    std::string stats_text() const;

    // ---- the operations, returning 0 or -errno; handlers in filesystem.cpp reply ----
    struct OpenFile;
    void init(fuse_conn_info &conn) const;
    void destroy();
    // A disk file's attributes carry st_blocks as the disk holds data now
    // (Disk::stored_bytes): coreutils' cp asks SEEK_DATA only of a file with fewer blocks
    // than its size says.
    int lookup(fuse_ino_t parent, const char *name, fuse_entry_param &entry) const;
    int getattr(fuse_ino_t inode, struct stat &attr) const;
    // Bytes of a file whose page cache no longer matches the disk; length 0: none.
    struct StaleRange {
        off_t offset = 0;
        off_t length = 0;
    };
    // FUSE_SET_ATTR_SIZE on a disk: past the capacity EFBIG; below it the bytes from `size`
    // on are zeroed on the disk (Disk::zero_range) and the size stays the capacity. With
    // cache=page, `stale` is the zeroed range: the kernel drops cached pages only when the
    // size changes, so the handler invalidates it (invalidate_cached) after replying.
    int setattr(fuse_ino_t inode, int to_set, off_t size, struct stat &attr, StaleRange &stale);
    // The session the loop serves, for invalidate_cached; set before the loop runs.
    void set_session(fuse_session *session) { session_ = session; }
    // Drops the kernel's cached pages of `stale` (fuse_lowlevel_notify_inval_inode). Only
    // after the reply to the request that made them stale: inside the handler it would wait
    // on the kernel, which holds the inode (FUSE_NOWRITE) until that reply.
    void invalidate_cached(fuse_ino_t inode, const StaleRange &stale) const;
    // When the disk of `inode` changed size since the kernel was last told (the disk took in
    // a capacity change, core/engine_capacity.cpp), tells it: its cached attributes go
    // (fuse_lowlevel_notify_inval_inode with a negative offset), and with cache=page the
    // pages from the smaller of the two sizes on, so `stat` follows at once instead of after
    // attr_timeout. Like invalidate_cached: only after the reply of a request on `inode`.
    void follow_capacity(fuse_ino_t inode);
    // For the uevent listener (a "change" uevent of disk `index`): Disk::refresh_capacity,
    // then follow_capacity. From a thread that serves no request. 0 or -errno.
    int refresh_capacity(std::size_t index);
    int readlink(fuse_ino_t inode, const char *&target) const;
    int open(fuse_ino_t inode, fuse_file_info &fi) const;
    // The data where it lies, for the reply; a failed view's result holds the -errno.
    ReadView read(const OpenFile &file, std::size_t size, off_t offset) const;
    int write(const OpenFile &file, const char *data, std::size_t size, off_t offset,
              std::size_t &written);
    // Copies between two disk files of this mount without the data passing through FUSE;
    // `copied` may be short at either disk's end.
    int copy_file_range(const OpenFile &source, off_t offset_in, const OpenFile &destination,
                        off_t offset_out, std::size_t length, int flags, std::size_t &copied);
    // fallocate(2) on a disk file, `mode` as the kernel forwards it (what FUSE on Linux 6.1
    // sends, and what each mode becomes, is written above the function in filesystem.cpp):
    // PUNCH_HOLE|KEEP_SIZE is Disk::punch_hole, ZERO_RANGE Disk::zero_range, mode 0 and
    // KEEP_SIZE succeed without touching data; a range that would make the file grow is
    // EFBIG, any other mode EOPNOTSUPP (never ENOSYS: the kernel would stop sending
    // fallocate for the whole mount). Ranges are cut at the end of the disk.
    int fallocate(const OpenFile &file, int mode, off_t offset, off_t length);
    // lseek(SEEK_DATA or SEEK_HOLE) from `offset`, walking Disk::mapping: `found` is the
    // first data (or hole) offset at or after it, the capacity being the hole at the end;
    // -ENXIO past the end, or for SEEK_DATA with no data after `offset`. Where the walk
    // gives up (a failure, too many runs) the answer errs towards data, which is always
    // allowed; a hole is reported only where mapping() said so.
    int lseek(const OpenFile &file, off_t offset, int whence, off_t &found) const;
    // close(): waits for the file's writes answered behind (their failure, not reported
    // yet, is returned), then SYNCHRONIZE CACHE when the disk has unsynced writes.
    int flush(const OpenFile &file);
    // Ends a handle open() made (fi.fh): flushes like close() would, then frees it.
    void release(OpenFile *file);
    // Waits for every write of the file answered behind, then SYNCHRONIZE CACHE: returns
    // only when all of them are durable; the first failure not reported yet, or the
    // flush's.
    int fsync(const OpenFile &file);
    int readdir(fuse_req_t req, fuse_ino_t inode, std::size_t size, off_t offset,
                std::vector<char> &buffer) const;
    int statfs(struct statvfs &stat) const;
    int getxattr(fuse_ino_t inode, const char *name, std::string &value) const;
    int listxattr(fuse_ino_t inode, std::string &names) const;
    int setxattr(fuse_ino_t inode, const char *name) const;

  private:
    static constexpr std::size_t max_copy_bytes = std::size_t{1} << 30;
    // The runs of Disk::mapping one lseek walks at most (each may cost a GET LBA STATUS).
    static constexpr int max_seek_runs = 256;
    struct DiskSlot {
        std::unique_ptr<Disk> disk;
        // True once a write completed that no SYNCHRONIZE CACHE was sent after. Lets
        // close() skip the flush when the handle wrote nothing since the last one.
        std::atomic<bool> unsynced_writes{false};
        // The size the kernel was last given (follow_capacity); 0 until the first look.
        std::atomic<std::uint64_t> announced_size{0};
    };

    const DiskSlot &slot_of(const Node &node) const { return *slots_[node.disk_index]; }
    DiskSlot &slot_of(const Node &node) { return *slots_[node.disk_index]; }
    int sync_disk(DiskSlot &slot, const char *why);
    // How a disk file opened with `flags` is written: behind unless the mount said
    // nowrite_behind or the file asked for O_DIRECT, O_SYNC or O_DSYNC.
    WriteMode write_mode_for(int flags) const;
    // Waits for `file`'s writes answered behind: 0, or the first failure among them not
    // reported yet (logged, as for `why`).
    int drain_writes(const OpenFile &file, const char *why) const;
    int truncate_disk(DiskSlot &slot, off_t size);
    // A node's attributes as the kernel gets them: the tree's, with a disk file's st_size
    // (the size now, Disk::capacity_bytes) and st_blocks from the disk.
    void fill_attributes(const Node &node, struct stat &attr) const;
    // fallocate's modes that change data: punch or zero [offset, offset + length).
    int clear_range(DiskSlot &slot, bool punch, std::uint64_t offset, std::uint64_t length);
    void log_io_error(const DiskSlot &slot, const char *what, std::size_t length,
                      std::uint64_t offset, const IoResult &result) const;

    std::vector<std::unique_ptr<DiskSlot>> slots_;
    Tree tree_;
    MountOptions options_;
    fuse_session *session_ = nullptr;
};

} // namespace sgfs::fusefs
