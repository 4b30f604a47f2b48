// The FUSE low-level operations over the Tree and the opened Disks.
//
// Locking: one lock, tree_mutex_ (a shared_mutex), guards the Tree and the slot table
// (slots_, next_slot_key_). Handlers take it shared to find a node and copy out what they
// need (a NodeState: attributes, the slot's shared_ptr); hot plug (add_disk, remove_disk)
// and the kernel's lookup counting (lookup, forget) take it exclusive. Lock order: the tree
// lock is never held while calling into a Disk (IO, stored_bytes, stats, end_reader; only
// info(), an atomic read of an immutable DiskInfo, is read under it) nor
// while telling the kernel (fuse_lowlevel_notify_*), and nothing else of ours is taken
// under it; Disk's own locks live in core. A handle (OpenFile) holds its DiskSlot by
// shared_ptr, so a disk removed from the tree stays open (and fails or works as core
// decides for a lost disk) until its last handle is released. A handle's PendingWrites (core's)
// locks itself.
#pragma once

#include "fuse_api.hpp"
#include "mount_options.hpp"
#include "sgfs/disk.hpp"
#include "source_spec.hpp"
#include "tree.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

namespace sgfs::fusefs
{

class Filesystem
{
  public:
    // disks[i] is the disk of tree.disk_inode(i) (key i).
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
    int lookup(fuse_ino_t parent, const char *name, fuse_entry_param &entry);
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
    // For the uevent listener (a "change" uevent of the disk of `inode`): Disk::refresh_capacity,
    // then follow_capacity. From a thread that serves no request. 0 or -errno.
    int refresh_capacity(InodeNumber inode);
    int readlink(fuse_ino_t inode, std::string &target) const;
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
    // Entries are ".", "..", then the children in inode order; an entry's offset names
    // the inode after which to go on, so a disk added or removed between two calls
    // neither repeats nor skips the others.
    int readdir(fuse_req_t req, fuse_ino_t inode, std::size_t size, off_t offset,
                std::vector<char> &buffer) const;
    // FUSE_FORGET: the kernel dropped `count` lookups of `inode`.
    void forget(fuse_ino_t inode, std::uint64_t count);

    // ---- hot plug (hotplug.cpp calls these from its own thread, never a handler) ----
    // Serves `disk` as a new file (and by-id link) and tells the kernel the names exist
    // now. Returns the file's inode, or 0 when its name is taken (nothing added).
    InodeNumber add_disk(std::unique_ptr<Disk> disk);
    // Takes the file and link of the disk whose sg node is `sg_path` (the node in use) out
    // of the tree and tells the kernel. The disk closes when its last handle does; its
    // claim goes then. Returns the removed file's name, or "" when no disk uses the node.
    std::string remove_disk(const std::string &sg_path);
    // Whether a disk of this mount has `stable_id` (a returning or second path to it).
    // Returns the file name, or "".
    std::string disk_with_stable_id(const std::string &stable_id) const;
    // The info of the disk of this mount that uses the sg node `sg_path` now, if any.
    std::optional<DiskInfo> disk_on_node(const std::string &sg_path) const;
    // The file of the disk that uses the block device or SCSI device `device` now ("sda",
    // "2:0:0:0": what a "change" uevent names), or 0.
    InodeNumber disk_inode_on_device(const std::string &device) const;
    int statfs(struct statvfs &stat) const;
    int getxattr(fuse_ino_t inode, const char *name, std::string &value) const;
    int listxattr(fuse_ino_t inode, std::string &names) const;
    int setxattr(fuse_ino_t inode, const char *name) const;

  private:
    static constexpr std::size_t max_copy_bytes = std::size_t{1} << 30;
    // The runs of Disk::mapping one lseek walks at most (each may cost a GET LBA STATUS).
    static constexpr int max_seek_runs = 256;

  public:
    struct DiskSlot {
        std::unique_ptr<Disk> disk;
        // True once a write completed that no SYNCHRONIZE CACHE was sent after. Lets
        // close() skip the flush when the handle wrote nothing since the last one.
        std::atomic<bool> unsynced_writes{false};
        // The size the kernel was last given (follow_capacity); 0 until the first look.
        std::atomic<std::uint64_t> announced_size{0};
        // Set when the disk was removed while mounted: its claim is let go when the slot
        // (the last handle) goes, so that the disk may be served again if it returns.
        std::shared_ptr<DiskClaims> claims_to_forget;
        DiskSlot() = default;
        DiskSlot(const DiskSlot &) = delete;
        DiskSlot &operator=(const DiskSlot &) = delete;
        ~DiskSlot();
    };

  private:
    // What a handler needs of a node, copied out under the tree lock.
    struct NodeState {
        InodeNumber inode = 0;
        NodeKind kind = NodeKind::root_dir;
        struct stat attr {
        };
        std::string link_target;
        std::shared_ptr<DiskSlot> slot; // disk_file: null once the disk was removed
        bool is_directory() const
        {
            return kind == NodeKind::root_dir || kind == NodeKind::by_id_dir;
        }
    };
    // Takes the shared lock.
    std::optional<NodeState> node_state(InodeNumber inode) const;
    NodeState state_locked(const Node &node) const;
    // Every slot, copied out under the shared lock.
    std::vector<std::shared_ptr<DiskSlot>> all_slots() const;
    void notify_names(const std::vector<Tree::Name> &names, bool removed) const;
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
    void fill_attributes(const NodeState &node, struct stat &attr) const;
    // fallocate's modes that change data: punch or zero [offset, offset + length).
    int clear_range(DiskSlot &slot, bool punch, std::uint64_t offset, std::uint64_t length);
    void log_io_error(const DiskSlot &slot, const char *what, std::size_t length,
                      std::uint64_t offset, const IoResult &result) const;

    mutable std::shared_mutex tree_mutex_;
    std::map<std::size_t, std::shared_ptr<DiskSlot>> slots_; // by key (Node::disk_index)
    std::size_t next_slot_key_ = 0;
    Tree tree_;
    MountOptions options_;
    fuse_session *session_ = nullptr;
};

} // namespace sgfs::fusefs
