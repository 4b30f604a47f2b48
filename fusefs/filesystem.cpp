#include "filesystem.hpp"

#include "connection.hpp"
#include "device_figures.hpp"
#include "receive_loop.hpp"
#include "sgfs/disk_claim.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/falloc.h>
#include <mutex>
#include <span>
#include <string_view>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

namespace sgfs::fusefs
{

// What fi->fh points at, from open() to release().
struct Filesystem::OpenFile {
    NodeKind kind;
    bool writable;
    std::string stats_text;      // /.stats: generated at open, so one read sequence is consistent
    ReaderId reader = no_reader; // disk files: read-ahead is this open's alone
    // Disk files: how writes are answered (fixed at open from its flags and the mount's
    // write_behind), and the writes answered before the disk had them.
    WriteMode write_mode = WriteMode::synchronous;
    std::shared_ptr<PendingWrites> pending = std::make_shared<PendingWrites>();
    std::shared_ptr<DiskSlot> slot; // disk files: kept open while this handle is
};

namespace
{

// A reader id per open, never reused: read-ahead done for an earlier open (maybe before
// another writer changed the disk) can never answer this one.
ReaderId new_reader()
{
    static std::atomic<ReaderId> next{no_reader + 1};
    return next.fetch_add(1, std::memory_order_relaxed);
}

// The kernel may keep names and attributes as long as it likes: a disk added or removed
// while mounted is announced (Filesystem::add_disk, remove_disk), so nothing goes stale
// unseen. A day is "forever" without surprising anyone debugging a stale view.
constexpr double cache_timeout_seconds = 24 * 60 * 60;

Filesystem &filesystem_of(fuse_req_t req)
{
    return *static_cast<Filesystem *>(fuse_req_userdata(req));
}

Filesystem::OpenFile &file_of(const fuse_file_info *fi)
{
    // fh is FUSE's 64-bit cookie; it holds the pointer open() stored in it.
    return *reinterpret_cast<Filesystem::OpenFile *>(fi->fh); // NOLINT(performance-no-int-to-ptr)
}

// Core promises -errno; anything else would reach the kernel as a bogus reply.
int as_errno(long rc)
{
    return rc < 0 && rc > -4096 ? static_cast<int>(-rc) : EIO;
}

// One reply for getxattr/listxattr, whose protocol is: size 0 asks for the length, a too
// small buffer is ERANGE, otherwise the data.
void reply_sized(fuse_req_t req, int error, std::size_t size, const std::string &data)
{
    if (error == 0 && size != 0 && size < data.size())
        error = ERANGE;
    if (error != 0)
        fuse_reply_err(req, error);
    else if (size == 0)
        fuse_reply_xattr(req, data.size());
    else
        fuse_reply_buf(req, data.data(), data.size());
}

// The disk's info with its size now (.stats shows capacity_bytes as it is).
DiskInfo live_info(const Disk &disk)
{
    DiskInfo info = disk.info();
    info.capacity_bytes = disk.capacity_bytes();
    return info;
}

// ---- handlers: each finds its arguments, calls the Filesystem, replies exactly once ----

void op_init(void *userdata, fuse_conn_info *conn)
{
    static_cast<Filesystem *>(userdata)->init(*conn);
}

void op_destroy(void *userdata)
{
    static_cast<Filesystem *>(userdata)->destroy();
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fuse_entry_param entry{};
    const int rc = filesystem_of(req).lookup(parent, name, entry);
    // ENOENT as a cacheable negative entry: a name that appears later (a disk added) is
    // invalidated then (Filesystem::add_disk).
    if (rc == 0 || rc == -ENOENT)
        fuse_reply_entry(req, &entry);
    else
        fuse_reply_err(req, -rc);
}

void op_getattr(fuse_req_t req, fuse_ino_t inode, fuse_file_info *)
{
    struct stat attr {
    };
    const int rc = filesystem_of(req).getattr(inode, attr);
    if (rc == 0)
        fuse_reply_attr(req, &attr, cache_timeout_seconds);
    else
        fuse_reply_err(req, -rc);
}

void op_setattr(fuse_req_t req, fuse_ino_t inode, struct stat *wanted, int to_set, fuse_file_info *)
{
    struct stat attr {
    };
    Filesystem &filesystem = filesystem_of(req);
    Filesystem::StaleRange stale;
    const int rc = filesystem.setattr(inode, to_set, wanted->st_size, attr, stale);
    if (rc == 0)
        fuse_reply_attr(req, &attr, cache_timeout_seconds);
    else
        fuse_reply_err(req, -rc);
    filesystem.invalidate_cached(inode, stale);
}

void op_readlink(fuse_req_t req, fuse_ino_t inode)
{
    std::string target;
    const int rc = filesystem_of(req).readlink(inode, target);
    if (rc == 0)
        fuse_reply_readlink(req, target.c_str());
    else
        fuse_reply_err(req, -rc);
}

// Only the disks' coming and going changes the tree: nothing can be created, removed or
// renamed through the mount.
void op_mknod(fuse_req_t req, fuse_ino_t, const char *, mode_t, dev_t)
{
    fuse_reply_err(req, EPERM);
}
void op_mkdir(fuse_req_t req, fuse_ino_t, const char *, mode_t)
{
    fuse_reply_err(req, EPERM);
}
void op_unlink(fuse_req_t req, fuse_ino_t, const char *)
{
    fuse_reply_err(req, EPERM);
}
void op_rmdir(fuse_req_t req, fuse_ino_t, const char *)
{
    fuse_reply_err(req, EPERM);
}
void op_symlink(fuse_req_t req, const char *, fuse_ino_t, const char *)
{
    fuse_reply_err(req, EPERM);
}
void op_rename(fuse_req_t req, fuse_ino_t, const char *, fuse_ino_t, const char *, unsigned)
{
    fuse_reply_err(req, EPERM);
}
void op_link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char *)
{
    fuse_reply_err(req, EPERM);
}
void op_create(fuse_req_t req, fuse_ino_t, const char *, mode_t, fuse_file_info *)
{
    fuse_reply_err(req, EPERM);
}

void op_open(fuse_req_t req, fuse_ino_t inode, fuse_file_info *fi)
{
    const int rc = filesystem_of(req).open(inode, *fi);
    if (rc == 0)
        fuse_reply_open(req, fi);
    else
        fuse_reply_err(req, -rc);
}

void op_read(fuse_req_t req, fuse_ino_t inode, std::size_t size, off_t offset, fuse_file_info *fi)
{
    // The data goes to /dev/fuse from wherever it lies (the sg driver's mmap-ed reserve, a
    // direct-IO or read-ahead buffer, the .stats text): no copy into a buffer of ours. The
    // view holds that memory until the reply is written.
    Filesystem &filesystem = filesystem_of(req);
    {
        const ReadView view = filesystem.read(file_of(fi), size, offset);
        if (view.result().ok())
            fuse_reply_iov(req, view.pieces().data(), static_cast<int>(view.pieces().size()));
        else
            fuse_reply_err(req, -view.result().error);
    }
    filesystem.follow_capacity(inode);
}

// The plain write callback rather than write_buf: the data already sits in libfuse's
// request buffer, and whatever copy a transfer mode needs (into the sg reserve, or a bounce
// for unaligned direct IO) happens in core, where .stats counts it as write.user_copy_bytes.
void op_write(fuse_req_t req, fuse_ino_t inode, const char *data, std::size_t size, off_t offset,
              fuse_file_info *fi)
{
    std::size_t written = 0;
    Filesystem &filesystem = filesystem_of(req);
    const int rc = filesystem.write(file_of(fi), data, size, offset, written);
    if (rc == 0)
        fuse_reply_write(req, written);
    else
        fuse_reply_err(req, -rc);
    filesystem.follow_capacity(inode);
}

// Disk to disk inside this mount (the kernel sends nothing else): the data goes sg fd to sg
// fd in core and never through FUSE; one reply with the count copied, like a write.
void op_copy_file_range(fuse_req_t req, fuse_ino_t inode_in, off_t offset_in, fuse_file_info *fi_in,
                        fuse_ino_t inode_out, off_t offset_out, fuse_file_info *fi_out,
                        std::size_t length, int flags)
{
    std::size_t copied = 0;
    Filesystem &filesystem = filesystem_of(req);
    const int rc = filesystem.copy_file_range(file_of(fi_in), offset_in, file_of(fi_out),
                                              offset_out, length, flags, copied);
    if (rc == 0)
        fuse_reply_write(req, copied);
    else
        fuse_reply_err(req, -rc);
    filesystem.follow_capacity(inode_in);
    filesystem.follow_capacity(inode_out);
}

// The kernel drops the page cache of a punched or zeroed range itself once this reply is in
// (see Filesystem::fallocate), so nothing is left to invalidate here.
void op_fallocate(fuse_req_t req, fuse_ino_t inode, int mode, off_t offset, off_t length,
                  fuse_file_info *fi)
{
    Filesystem &filesystem = filesystem_of(req);
    fuse_reply_err(req, -filesystem.fallocate(file_of(fi), mode, offset, length));
    filesystem.follow_capacity(inode);
}

// SEEK_DATA and SEEK_HOLE only: the kernel answers the other whences itself.
void op_lseek(fuse_req_t req, fuse_ino_t, off_t offset, int whence, fuse_file_info *fi)
{
    off_t found = 0;
    const int rc = filesystem_of(req).lseek(file_of(fi), offset, whence, found);
    if (rc == 0)
        fuse_reply_lseek(req, found);
    else
        fuse_reply_err(req, -rc);
}

void op_flush(fuse_req_t req, fuse_ino_t inode, fuse_file_info *fi)
{
    Filesystem &filesystem = filesystem_of(req);
    fuse_reply_err(req, -filesystem.flush(file_of(fi)));
    filesystem.follow_capacity(inode);
}

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info *fi)
{
    filesystem_of(req).release(&file_of(fi));
    fuse_reply_err(req, 0);
}

void op_fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info *fi)
{
    fuse_reply_err(req, -filesystem_of(req).fsync(file_of(fi)));
}

void op_readdir(fuse_req_t req, fuse_ino_t inode, std::size_t size, off_t offset, fuse_file_info *)
{
    std::vector<char> buffer;
    const int rc = filesystem_of(req).readdir(req, inode, size, offset, buffer);
    if (rc == 0)
        fuse_reply_buf(req, buffer.data(), buffer.size());
    else
        fuse_reply_err(req, -rc);
}

void op_forget(fuse_req_t req, fuse_ino_t inode, std::uint64_t count)
{
    filesystem_of(req).forget(inode, count);
    fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, std::size_t count, fuse_forget_data *forgets)
{
    for (std::size_t i = 0; i < count; ++i)
        filesystem_of(req).forget(forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

void op_statfs(fuse_req_t req, fuse_ino_t)
{
    struct statvfs stat {
    };
    const int rc = filesystem_of(req).statfs(stat);
    if (rc == 0)
        fuse_reply_statfs(req, &stat);
    else
        fuse_reply_err(req, -rc);
}

void op_getxattr(fuse_req_t req, fuse_ino_t inode, const char *name, std::size_t size)
{
    std::string value;
    const int rc = filesystem_of(req).getxattr(inode, name, value);
    reply_sized(req, -rc, size, value);
}

void op_listxattr(fuse_req_t req, fuse_ino_t inode, std::size_t size)
{
    std::string names;
    const int rc = filesystem_of(req).listxattr(inode, names);
    reply_sized(req, -rc, size, names);
}

void op_setxattr(fuse_req_t req, fuse_ino_t inode, const char *name, const char *, std::size_t, int)
{
    fuse_reply_err(req, -filesystem_of(req).setxattr(inode, name));
}

void op_removexattr(fuse_req_t req, fuse_ino_t inode, const char *name)
{
    fuse_reply_err(req, -filesystem_of(req).setxattr(inode, name));
}

} // namespace

const fuse_lowlevel_ops &Filesystem::operations()
{
    static const fuse_lowlevel_ops ops = [] {
        fuse_lowlevel_ops o{};
        o.init = op_init;
        o.destroy = op_destroy;
        o.lookup = op_lookup;
        o.forget = op_forget;
        o.forget_multi = op_forget_multi;
        o.getattr = op_getattr;
        o.setattr = op_setattr;
        o.readlink = op_readlink;
        o.mknod = op_mknod;
        o.mkdir = op_mkdir;
        o.unlink = op_unlink;
        o.rmdir = op_rmdir;
        o.symlink = op_symlink;
        o.rename = op_rename;
        o.link = op_link;
        o.create = op_create;
        o.open = op_open;
        o.read = op_read;
        o.write = op_write;
        o.flush = op_flush;
        o.release = op_release;
        o.fsync = op_fsync;
        o.readdir = op_readdir;
        o.statfs = op_statfs;
        o.getxattr = op_getxattr;
        o.listxattr = op_listxattr;
        o.setxattr = op_setxattr;
        o.removexattr = op_removexattr;
        o.copy_file_range = op_copy_file_range;
        o.fallocate = op_fallocate;
        o.lseek = op_lseek;
        return o;
    }();
    return ops;
}

Filesystem::Filesystem(std::vector<std::unique_ptr<Disk>> disks, Tree tree, MountOptions options)
    : tree_(std::move(tree)), options_(std::move(options))
{
    for (auto &disk : disks) {
        auto slot = std::make_shared<DiskSlot>();
        slot->disk = std::move(disk);
        slot->announced_size.store(slot->disk->capacity_bytes(), std::memory_order_release);
        slots_.emplace(next_slot_key_++, std::move(slot));
    }
}

Filesystem::DiskSlot::~DiskSlot()
{
    if (claims_to_forget && disk)
        claims_to_forget->forget(disk->info());
}

std::vector<std::shared_ptr<Filesystem::DiskSlot>> Filesystem::all_slots() const
{
    const std::shared_lock lock(tree_mutex_);
    std::vector<std::shared_ptr<DiskSlot>> slots;
    for (const auto &[key, slot] : slots_)
        slots.push_back(slot);
    return slots;
}

Filesystem::NodeState Filesystem::state_locked(const Node &node) const
{
    NodeState state;
    state.inode = node.inode;
    state.kind = node.kind;
    state.attr = node.attr;
    state.link_target = node.link_target;
    if (node.kind == NodeKind::disk_file && !node.detached)
        if (const auto it = slots_.find(node.disk_index); it != slots_.end())
            state.slot = it->second;
    return state;
}

std::optional<Filesystem::NodeState> Filesystem::node_state(InodeNumber inode) const
{
    const std::shared_lock lock(tree_mutex_);
    const Node *node = tree_.find(inode);
    if (!node)
        return std::nullopt;
    return state_locked(*node);
}

// The worker limit is set once, for the disks found at mount: a disk added later shares
// the workers there are.
unsigned Filesystem::max_threads() const
{
    return loop_workers(options_.disk.queue_depth * static_cast<unsigned>(all_slots().size()));
}

int Filesystem::reopen_disks(const DiskOpener &open_disk, std::string &message)
{
    for (const auto &slot : all_slots()) {
        const DiskInfo before = slot->disk->info();
        // Closed first: the old descriptors' reserve buffers would otherwise be held twice.
        slot->disk.reset();
        std::string why;
        if (const int rc = open_disk(before.sg_path, slot->disk, why); rc < 0 || !slot->disk) {
            message = "sgfs: cannot reopen " + before.sg_path + ": " +
                      (why.empty() ? std::strerror(rc < 0 ? -rc : EIO) : why);
            return rc < 0 ? rc : -EIO;
        }
        // The tree shows the size and block size found at mount; the disk must still match.
        const DiskInfo &after = slot->disk->info();
        if (after.capacity_bytes != before.capacity_bytes ||
            after.logical_block_size != before.logical_block_size) {
            message = "sgfs: " + before.sg_path + " changed while mounting";
            return -ENODEV;
        }
        slot->announced_size.store(slot->disk->capacity_bytes(), std::memory_order_release);
    }
    return 0;
}

std::string Filesystem::stats_text() const
{
    std::vector<DeviceReport> reports;
    for (const auto &slot : all_slots()) {
        const Disk &disk = *slot->disk;
        reports.push_back(
            {disk.info().name, device_figures(live_info(disk), disk.stats(), options_)});
    }
    return render_stats_text(reports);
}

void Filesystem::init(fuse_conn_info &conn) const
{
    configure_connection(conn,
                         options_.disk.queue_depth * static_cast<unsigned>(all_slots().size()));
}

void Filesystem::destroy()
{
    for (const auto &slot : all_slots())
        if (slot->unsynced_writes.exchange(false))
            (void)sync_disk(*slot, "unmount");
}

int Filesystem::lookup(fuse_ino_t parent, const char *name, fuse_entry_param &entry)
{
    entry.attr_timeout = cache_timeout_seconds;
    entry.entry_timeout = cache_timeout_seconds;
    NodeState state;
    {
        // Exclusive: the reply is a reference the kernel holds until forget().
        const std::unique_lock lock(tree_mutex_);
        const Node *node = tree_.lookup(parent, name);
        if (!node)
            return tree_.find(parent) ? -ENOENT : -ENOTDIR;
        tree_.remember_lookup(node->inode);
        state = state_locked(*node);
    }
    entry.ino = state.inode;
    fill_attributes(state, entry.attr);
    return 0;
}

void Filesystem::forget(fuse_ino_t inode, std::uint64_t count)
{
    const std::unique_lock lock(tree_mutex_);
    tree_.forget(inode, count);
}

int Filesystem::getattr(fuse_ino_t inode, struct stat &attr) const
{
    const auto state = node_state(inode);
    if (!state)
        return -ENOENT;
    fill_attributes(*state, attr);
    return 0;
}

// The kernel asks again after each write, truncation and fallocate (they invalidate the
// cached size and blocks), so st_blocks follows punches and writes without a timeout.
void Filesystem::fill_attributes(const NodeState &node, struct stat &attr) const
{
    attr = node.attr;
    // A removed disk's file keeps the figures it had.
    if (node.kind != NodeKind::disk_file || !node.slot)
        return;
    attr.st_size = static_cast<off_t>(node.slot->disk->capacity_bytes());
    const std::uint64_t stored = node.slot->disk->stored_bytes();
    attr.st_blocks = static_cast<blkcnt_t>((stored + 511) / 512);
}

int Filesystem::setattr(fuse_ino_t inode, int to_set, off_t size, struct stat &attr,
                        StaleRange &stale)
{
    stale = {};
    const auto node = node_state(inode);
    if (!node)
        return -ENOENT;
    // Owner and mode come from the sg node or the mount options, not from chmod.
    if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
        return -EPERM;
    if ((to_set & FUSE_SET_ATTR_SIZE) && node->kind != NodeKind::disk_file)
        return node->is_directory() ? -EISDIR : -EPERM;
    if ((to_set & FUSE_SET_ATTR_SIZE) && !node->slot)
        return -ENODEV;
    if (to_set & FUSE_SET_ATTR_SIZE) {
        DiskSlot &slot = *node->slot;
        if (int rc = truncate_disk(slot, size); rc != 0)
            return rc;
        const auto capacity = static_cast<off_t>(slot.disk->capacity_bytes());
        if (options_.cache == CacheMode::page && size < capacity)
            stale = {size, capacity - size};
    }
    // Times are accepted and forgotten, so that `touch` and `cp -p` do not fail.
    fill_attributes(*node, attr);
    return 0;
}

void Filesystem::invalidate_cached(fuse_ino_t inode, const StaleRange &stale) const
{
    if (stale.length == 0 || session_ == nullptr)
        return;
    // -ENOENT: the kernel has no inode (no page) to drop. Any other failure leaves pages
    // that an open file may still read: say so.
    const int rc = fuse_lowlevel_notify_inval_inode(session_, inode, stale.offset, stale.length);
    if (rc != 0 && rc != -ENOENT)
        fuse_log(FUSE_LOG_ERR, "sgfs: cannot drop cached pages after truncate: %s\n",
                 std::strerror(-rc));
}

void Filesystem::follow_capacity(fuse_ino_t inode)
{
    const auto node = node_state(inode);
    if (!node || node->kind != NodeKind::disk_file || !node->slot)
        return;
    DiskSlot &slot = *node->slot;
    const std::uint64_t now = slot.disk->capacity_bytes();
    std::uint64_t told = slot.announced_size.load(std::memory_order_acquire);
    if (told == now ||
        !slot.announced_size.compare_exchange_strong(told, now, std::memory_order_acq_rel) ||
        session_ == nullptr)
        return;
    const off_t from = options_.cache == CacheMode::page ? static_cast<off_t>(std::min(told, now))
                                                         : -1; // the attributes only
    const int rc = fuse_lowlevel_notify_inval_inode(session_, inode, from, 0);
    if (rc != 0 && rc != -ENOENT)
        fuse_log(FUSE_LOG_ERR, "sgfs: cannot tell the kernel of a new size: %s\n",
                 std::strerror(-rc));
}

int Filesystem::refresh_capacity(InodeNumber inode)
{
    const auto node = node_state(inode);
    if (!node || node->kind != NodeKind::disk_file || !node->slot)
        return -ENODEV;
    const int rc = node->slot->disk->refresh_capacity();
    follow_capacity(inode);
    return rc;
}

// A disk cannot grow or shrink, but what truncate(2) promises of the bytes can be kept:
// from `size` on they read as zeros. So O_TRUNC (setattr(size 0) here, atomic O_TRUNC being
// off) zeroes the whole disk, and the file keeps its size, the disk's capacity.
int Filesystem::truncate_disk(DiskSlot &slot, off_t size)
{
    if (size < 0)
        return -EINVAL;
    const std::uint64_t capacity = slot.disk->capacity_bytes();
    const auto from = static_cast<std::uint64_t>(size);
    if (from > capacity)
        return -EFBIG;
    if (from == capacity)
        return 0;
    const IoResult zeroed = slot.disk->zero_range(from, capacity - from);
    if (!zeroed.ok()) {
        log_io_error(slot, "truncate (zeroing)", capacity - from, from, zeroed);
        return -as_errno(zeroed.error);
    }
    slot.unsynced_writes.store(true, std::memory_order_release);
    return 0;
}

int Filesystem::readlink(fuse_ino_t inode, std::string &target) const
{
    const auto node = node_state(inode);
    if (!node)
        return -ENOENT;
    if (node->kind != NodeKind::by_id_link)
        return -EINVAL;
    target = node->link_target;
    return 0;
}

int Filesystem::open(fuse_ino_t inode, fuse_file_info &fi) const
{
    const auto node = node_state(inode);
    if (!node)
        return -ENOENT;
    const bool writable = (fi.flags & O_ACCMODE) != O_RDONLY;
    switch (node->kind) {
    case NodeKind::root_dir:
    case NodeKind::by_id_dir:
        return -EISDIR;
    case NodeKind::by_id_link:
        return -ELOOP;
    case NodeKind::stats_file:
        if (writable)
            return -EACCES;
        // The length of the text is unknown until it is generated; direct_io makes the
        // kernel read until a short read instead of trusting st_size (0, like /proc).
        fi.direct_io = 1;
        fi.fh = reinterpret_cast<std::uint64_t>(new OpenFile{
            node->kind, false, stats_text(), no_reader, WriteMode::synchronous, nullptr, nullptr});
        break;
    case NodeKind::disk_file:
        // Removed from the mount (a stale dentry the kernel has not dropped yet).
        if (!node->slot)
            return -ENOENT;
        if (writable && node->slot->disk->info().read_only)
            return -EROFS;
        // cache=none: the caller's request size reaches the disk and nothing is cached
        // twice. cache=page: ordinary page cache, dropped at each open (keep_cache off)
        // because other hosts or the raw sg node may have changed the disk meanwhile.
        fi.direct_io = options_.cache == CacheMode::none ? 1 : 0;
        fi.keep_cache = 0;
        fi.fh = reinterpret_cast<std::uint64_t>(new OpenFile{node->kind,
                                                             writable,
                                                             {},
                                                             new_reader(),
                                                             write_mode_for(fi.flags),
                                                             std::make_shared<PendingWrites>(),
                                                             node->slot});
        break;
    }
    // A handle that cannot have written has nothing to flush at close.
    fi.noflush = writable ? 0 : 1;
    return 0;
}

// O_SYNC includes O_DSYNC's bit: either asks for writes the device has.
WriteMode Filesystem::write_mode_for(int flags) const
{
    if (!options_.write_behind || (flags & (O_DIRECT | O_DSYNC)) != 0)
        return WriteMode::synchronous;
    return WriteMode::behind;
}

ReadView Filesystem::read(const OpenFile &file, std::size_t size, off_t offset) const
{
    if (offset < 0)
        return ReadView(IoResult::failure(-EINVAL, {}));
    const auto start = static_cast<std::uint64_t>(offset);
    if (file.kind == NodeKind::stats_file) {
        const std::string &text = file.stats_text;
        const std::size_t from = std::min<std::uint64_t>(start, text.size());
        const std::size_t length = std::min(size, text.size() - from);
        // iovec has no const; fuse_reply_iov only reads through it. The text lives in the
        // open file, which outlives the reply.
        std::vector<iovec> pieces;
        if (length != 0)
            pieces.push_back({const_cast<char *>(text.data()) + from, length});
        return ReadView(IoResult::success(length), std::move(pieces), nullptr);
    }

    const DiskSlot &slot = *file.slot;
    // Core cuts the read at the capacity: at or past the end it has no data (EOF).
    ReadView view = slot.disk->read_view(size, start, file.reader);
    if (!view.result().ok()) {
        log_io_error(slot, "read", size, start, view.result());
        return ReadView(IoResult::failure(-as_errno(view.result().error), {}));
    }
    return view;
}

int Filesystem::write(const OpenFile &file, const char *data, std::size_t size, off_t offset,
                      std::size_t &written)
{
    written = 0;
    if (offset < 0)
        return -EINVAL;
    if (file.kind != NodeKind::disk_file || !file.writable)
        return -EBADF;
    if (size == 0)
        return 0;
    DiskSlot &slot = *file.slot;
    // Core's rules, like a block device's: read-only is EROFS, a write that starts at or
    // past the end ENOSPC, one that crosses the end writes what fits (a short count).
    const auto start = static_cast<std::uint64_t>(offset);
    // Before the write: one that fails part-way may have written or queued some of it, and
    // close must still send SYNCHRONIZE CACHE.
    slot.unsynced_writes.store(true, std::memory_order_release);
    // A write answered behind runs from FUSE's request buffer where the loop lets it keep
    // it (receive_loop.hpp): no copy in the daemon.
    const WriteBehind behind{
        file.pending, {}, [data, size] { return keep_request_memory(data, size); }};
    const IoResult result = slot.disk->pwrite(data, size, start, file.write_mode, behind);
    if (!result.ok()) {
        // Past the end and read-only are the request's own faults, not the disk's.
        if (result.error != -ENOSPC && result.error != -EROFS)
            log_io_error(slot, "write", size, start, result);
        return -as_errno(result.error);
    }
    written = static_cast<std::size_t>(result.bytes);
    return 0;
}

int Filesystem::copy_file_range(const OpenFile &source, off_t offset_in,
                                const OpenFile &destination, off_t offset_out, std::size_t length,
                                int flags, std::size_t &copied)
{
    copied = 0;
    // nocopy_file_range: ENOSYS, which the kernel remembers for the whole mount and from
    // then on copies with its own read and write requests, never asking again.
    if (!options_.copy_file_range)
        return -ENOSYS;
    if (flags != 0 || offset_in < 0 || offset_out < 0)
        return -EINVAL;
    // .stats is no disk: EOPNOTSUPP makes the kernel fall back to read and write for this
    // one copy only.
    if (source.kind != NodeKind::disk_file || destination.kind != NodeKind::disk_file)
        return -EOPNOTSUPP;
    if (!destination.writable)
        return -EBADF;
    DiskSlot &to = *destination.slot;
    if (length == 0)
        return 0;
    // The reply's count is 32 bits wide; the kernel asks for less than 2 GiB anyway.
    length = std::min<std::size_t>(length, max_copy_bytes);
    const DiskSlot &from = *source.slot;
    const auto start_in = static_cast<std::uint64_t>(offset_in);
    const auto start_out = static_cast<std::uint64_t>(offset_out);
    const IoResult result = copy_range(*from.disk, start_in, *to.disk, start_out, length);
    // Past the end and read-only are the request's own faults, like a write's.
    if (!result.ok() && result.error != -ENOSPC && result.error != -EROFS) {
        if (result.end == IoEnd::destination)
            log_io_error(to, "copy (writing)", length, start_out, result);
        else
            log_io_error(from, "copy (reading)", length, start_in, result);
    }
    if (result.bytes > 0)
        to.unsynced_writes.store(true, std::memory_order_release);
    // A copy that failed part-way reports the bytes before the failure; the next call
    // from there gets the error.
    if (!result.ok() && result.bytes == 0)
        return -as_errno(result.error);
    copied = static_cast<std::size_t>(result.bytes);
    return 0;
}

// What reaches us, on the guest's kernel (Debian 6.1.0-57: fuse_file_fallocate,
// fuse_file_llseek, lo_fallocate and loop_config_discard checked in the disassembly of its
// fuse.ko and loop.ko; vfs_fallocate as in v6.1's fs/open.c):
//
// fallocate(2): vfs_fallocate refuses len <= 0 and offset < 0 (EINVAL),
// PUNCH_HOLE without KEEP_SIZE, PUNCH_HOLE with ZERO_RANGE (EOPNOTSUPP) and a handle not open
// for writing (EBADF). fuse_file_fallocate then refuses every mode but KEEP_SIZE,
// PUNCH_HOLE and ZERO_RANGE (EOPNOTSUPP: no COLLAPSE, INSERT, UNSHARE or NO_HIDE_STALE ever
// arrives) and, once the daemon has answered ENOSYS, everything (fc->no_fallocate, for the
// whole mount, as EOPNOTSUPP): so we never answer ENOSYS. Under the inode lock it writes
// back dirty pages of the range for PUNCH_HOLE and ZERO_RANGE, checks a growing size
// against the limits (inode_newsize_ok), sends FUSE_FALLOCATE, and after our success
// updates the size (without KEEP_SIZE), drops the page cache of the range for PUNCH_HOLE
// and ZERO_RANGE (truncate_pagecache_range, partial pages zeroed) and invalidates the
// cached attributes (size, blocks). So the modes we see are 0, KEEP_SIZE,
// PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE and ZERO_RANGE|KEEP_SIZE, and with cache=page no stale
// page survives a punch or a zeroing without our help.
//
// The loop driver calls the file's fallocate directly (lo_fallocate, no vfs_fallocate),
// with KEEP_SIZE always added: REQ_OP_DISCARD as PUNCH_HOLE, REQ_OP_WRITE_ZEROES as
// PUNCH_HOLE, or ZERO_RANGE when the request says REQ_NOUNMAP; an error other than EINVAL
// or EOPNOTSUPP becomes EIO. loop_config_discard gives a file-backed loop device discard
// and write-zeroes of up to UINT_MAX >> 9 sectors when the file has fallocate, with the
// discard granularity set to statfs's f_bsize (no discard at all when statfs fails).
//
// Each mode on a disk file:
// - PUNCH_HOLE|KEEP_SIZE: Disk::punch_hole (unmaps what it can, zeroes the rest), cut at
//   the end; a range starting at or past the end has nothing to punch (0, as for a regular
//   file).
// - ZERO_RANGE: Disk::zero_range, the same way, keeping the blocks allocated (fallocate(2):
//   "blocks are preallocated"; loop sends it for REQ_NOUNMAP): no UNMAP bit. Without
//   KEEP_SIZE a range past the end would grow the file: EFBIG, nothing done.
// - 0 and KEEP_SIZE (preallocation): every block of a disk exists already, so 0 without
//   touching data, except past the end without KEEP_SIZE: EFBIG, as for truncate. On a thin
//   LUN nothing can be reserved: a later write may still fail with ENOSPC when the pool
//   runs out (sgfs(8) says so).
int Filesystem::fallocate(const OpenFile &file, int mode, off_t offset, off_t length)
{
    if (offset < 0 || length <= 0)
        return -EINVAL;
    const int action = mode & ~FALLOC_FL_KEEP_SIZE;
    const bool keep_size = (mode & FALLOC_FL_KEEP_SIZE) != 0;
    const bool known = action == 0 || action == FALLOC_FL_ZERO_RANGE ||
                       (action == FALLOC_FL_PUNCH_HOLE && keep_size);
    // .stats is a regular file to the kernel (not ENODEV's "not a regular file"), whose
    // every mode is unsupported.
    if (!known || file.kind != NodeKind::disk_file)
        return -EOPNOTSUPP;
    if (!file.writable)
        return -EBADF;
    DiskSlot &slot = *file.slot;
    const DiskInfo &info = slot.disk->info();
    if (info.read_only)
        return -EROFS;
    const auto start = static_cast<std::uint64_t>(offset);
    const auto end = start + static_cast<std::uint64_t>(length); // both below 2^63
    const std::uint64_t capacity = slot.disk->capacity_bytes();
    if (!keep_size && end > capacity)
        return -EFBIG;
    if (action == 0 || start >= capacity)
        return 0;
    return clear_range(slot, action == FALLOC_FL_PUNCH_HOLE, start, end - start);
}

int Filesystem::clear_range(DiskSlot &slot, bool punch, std::uint64_t offset, std::uint64_t length)
{
    const IoResult result = punch ? slot.disk->punch_hole(offset, length)
                                  : slot.disk->zero_range(offset, length, ZeroAllocation::keep);
    // Even a failure part-way may have changed blocks: the next close flushes.
    slot.unsynced_writes.store(true, std::memory_order_release);
    if (!result.ok()) {
        // Read-only is the request's own fault, not the disk's.
        if (result.error != -EROFS)
            log_io_error(slot, punch ? "hole punch" : "zeroing", length, offset, result);
        return -as_errno(result.error);
    }
    return 0;
}

// fuse_file_llseek (6.1) answers SEEK_SET, SEEK_CUR and SEEK_END itself and sends
// FUSE_LSEEK, under the inode lock, for SEEK_DATA and SEEK_HOLE only, with the caller's
// offset unchecked (so a negative one arrives: ENXIO, as ext4 answers); our answer goes
// through vfs_setpos. ENOSYS would make it fall back to generic_file_llseek (all data) for
// the whole mount, which is what a disk without provisioning gets from mapping() anyway.
int Filesystem::lseek(const OpenFile &file, off_t offset, int whence, off_t &found) const
{
    found = 0;
    if (whence != SEEK_DATA && whence != SEEK_HOLE)
        return -EINVAL;
    // .stats has size 0: every offset is at or past its end.
    if (file.kind != NodeKind::disk_file || offset < 0)
        return -ENXIO;
    const DiskSlot &slot = *file.slot;
    const std::uint64_t capacity = slot.disk->capacity_bytes();
    auto at = static_cast<std::uint64_t>(offset);
    if (at >= capacity)
        return -ENXIO;
    const bool want_hole = whence == SEEK_HOLE;
    for (int run = 0; run < max_seek_runs; ++run) {
        const Mapping found_run = slot.disk->mapping(at);
        if (!found_run.result.ok() || found_run.end <= at) {
            log_io_error(slot, "provisioning lookup", capacity - at, at, found_run.result);
            break;
        }
        // `at` is `offset` or the start of a run: the first offset of the kind wanted.
        if (found_run.hole == want_hole) {
            found = static_cast<off_t>(at);
            return 0;
        }
        at = found_run.end;
        if (at >= capacity) {
            if (!want_hole)
                return -ENXIO;
            found = static_cast<off_t>(capacity); // the hole at the end of every file
            return 0;
        }
    }
    // Given up at `at`, which may be data or hole: call it data. SEEK_DATA may stop there;
    // SEEK_HOLE may not (the bytes after `at` could be data that a copy would skip), so it
    // reports none before the end.
    found = static_cast<off_t>(want_hole ? capacity : at);
    return 0;
}

int Filesystem::sync_disk(DiskSlot &slot, const char *why)
{
    const IoResult result = slot.disk->flush();
    if (!result.ok()) {
        // Keep the flag so that the next flush, fsync or close tries again.
        slot.unsynced_writes.store(true, std::memory_order_release);
        fuse_log(FUSE_LOG_ERR, "sgfs: %s: SYNCHRONIZE CACHE at %s failed: %s\n",
                 slot.disk->info().name.c_str(), why, result.message.c_str());
        return -as_errno(result.error);
    }
    return 0;
}

int Filesystem::drain_writes(const OpenFile &file, const char *why) const
{
    const IoResult drained = file.pending->drain();
    if (drained.ok())
        return 0;
    const DiskSlot &slot = *file.slot;
    fuse_log(FUSE_LOG_ERR, "sgfs: %s: a write answered before it was done failed (%s): %s\n",
             slot.disk->info().name.c_str(), why, drained.message.c_str());
    return -as_errno(drained.error);
}

int Filesystem::flush(const OpenFile &file)
{
    if (file.kind != NodeKind::disk_file || !file.writable)
        return 0;
    DiskSlot &slot = *file.slot;
    // This file's writes answered behind end first; their failure is close()'s.
    const int drained = drain_writes(file, "close");
    // Only when something was written since the last SYNCHRONIZE CACHE: a close after
    // reading, or the release that follows a close's flush, costs no command.
    if (!slot.unsynced_writes.exchange(false, std::memory_order_acq_rel))
        return drained;
    const int synced = sync_disk(slot, "close");
    return drained != 0 ? drained : synced;
}

void Filesystem::release(OpenFile *file)
{
    const std::unique_ptr<OpenFile> owned(file);
    // close() has returned already, so an error here can only be logged (sync_disk did).
    (void)flush(*owned);
    // No read of this file runs any more: what was read ahead for it goes.
    if (owned->kind == NodeKind::disk_file)
        owned->slot->disk->end_reader(owned->reader);
}

int Filesystem::fsync(const OpenFile &file)
{
    if (file.kind != NodeKind::disk_file)
        return 0;
    DiskSlot &slot = *file.slot;
    // Every write of this file answered behind ends before SYNCHRONIZE CACHE is sent.
    const int drained = drain_writes(file, "fsync");
    // Always sent: a cleared flag may only mean another thread's SYNCHRONIZE CACHE is
    // still in flight, and fsync must not return before the data is durable.
    slot.unsynced_writes.store(false, std::memory_order_release);
    const int synced = sync_disk(slot, "fsync");
    return drained != 0 ? drained : synced;
}

int Filesystem::readdir(fuse_req_t req, fuse_ino_t inode, std::size_t size, off_t offset,
                        std::vector<char> &buffer) const
{
    // Only the tree: fuse_add_direntry is a pure function of the buffer.
    const std::shared_lock lock(tree_mutex_);
    const Node *dir = tree_.find(inode);
    if (!dir)
        return -ENOENT;
    if (!dir->is_directory())
        return -ENOTDIR;
    buffer.resize(size);
    std::size_t used = 0;
    const auto add = [&](const char *name, const struct stat &of, off_t next) {
        struct stat attr {
        };
        attr.st_ino = of.st_ino;
        attr.st_mode = of.st_mode;
        const std::size_t needed =
            fuse_add_direntry(req, buffer.data() + used, size - used, name, &attr, next);
        if (needed > size - used)
            return false;
        used += needed;
        return true;
    };
    // Offsets: "." is followed by 1, ".." by 2, the child with inode n by n + 3; going on
    // from offset o >= 2 means the children whose inode is above o - 3.
    bool room = true;
    if (offset < 1)
        room = add(".", dir->attr, 1);
    if (room && offset < 2) {
        const Node *parent = tree_.find(dir->parent);
        room = add("..", parent ? parent->attr : dir->attr, 2);
    }
    const InodeNumber after = offset < 3 ? 0 : static_cast<InodeNumber>(offset) - 3;
    for (auto it = std::upper_bound(dir->children.begin(), dir->children.end(), after);
         room && it != dir->children.end(); ++it) {
        const Node *child = tree_.find(*it);
        room = add(child->name.c_str(), child->attr, static_cast<off_t>(child->inode + 3));
    }
    buffer.resize(used);
    return 0;
}

int Filesystem::statfs(struct statvfs &stat) const
{
    // A loop device on a disk file takes f_bsize as its discard granularity
    // (loop_config_discard). One figure serves every disk of the mount, and punch_hole
    // zeroes whatever part of an unmap granule a discard leaves, so 4 KiB is correct for
    // all of them; a disk's own granularity would only spare it some zeroing.
    constexpr unsigned long block = 4096;
    std::uint64_t bytes = 0;
    for (const auto &slot : all_slots())
        bytes += slot->disk->capacity_bytes();
    stat.f_bsize = block;
    stat.f_frsize = block;
    stat.f_blocks = (bytes + block - 1) / block;
    stat.f_bfree = 0; // the disks are the files: there is no room to create anything
    stat.f_bavail = 0;
    {
        const std::shared_lock lock(tree_mutex_);
        stat.f_files = tree_.node_count();
    }
    stat.f_ffree = 0;
    stat.f_favail = 0;
    stat.f_namemax = 255;
    return 0;
}

int Filesystem::getxattr(fuse_ino_t inode, const char *name, std::string &value) const
{
    const auto node = node_state(inode);
    if (!node)
        return -ENOENT;
    const std::string_view wanted(name);
    if (!node->slot || !wanted.starts_with(xattr_prefix))
        return -ENODATA;
    const Disk &disk = *node->slot->disk;
    const std::string_view key = wanted.substr(std::strlen(xattr_prefix));
    for (auto &[figure, text] : device_figures(live_info(disk), disk.stats(), options_)) {
        if (figure == key) {
            value = std::move(text);
            return 0;
        }
    }
    return -ENODATA;
}

int Filesystem::listxattr(fuse_ino_t inode, std::string &names) const
{
    const auto node = node_state(inode);
    if (!node)
        return -ENOENT;
    if (!node->slot)
        return 0;
    const Disk &disk = *node->slot->disk;
    for (const auto &[figure, text] : device_figures(live_info(disk), disk.stats(), options_)) {
        names += xattr_prefix;
        names += figure;
        names += '\0';
    }
    return 0;
}

int Filesystem::setxattr(fuse_ino_t inode, const char *name) const
{
    if (!node_state(inode))
        return -ENOENT;
    // Our own attributes are figures, not storage; nothing else can be stored at all.
    return std::string_view(name).starts_with(xattr_prefix) ? -EPERM : -ENOTSUP;
}

namespace
{

// The disk file's owner and mode come from its /dev/sgN node, as at mount.
DiskNodeSource node_source(const DiskInfo &info)
{
    DiskNodeSource source;
    source.info = info;
    // stat() only fails in a race with the node's removal; then the file is root's alone,
    // the safe side.
    struct stat node {
    };
    if (::stat(info.sg_path.c_str(), &node) == 0) {
        source.uid = node.st_uid;
        source.gid = node.st_gid;
        source.mode = node.st_mode & 07777;
    }
    return source;
}

} // namespace

void Filesystem::notify_names(const std::vector<Tree::Name> &names, bool removed) const
{
    if (session_ == nullptr)
        return;
    for (const Tree::Name &name : names) {
        // -ENOENT: the kernel has no dentry of that name (nobody looked it up): fine.
        const int rc = removed ? fuse_lowlevel_notify_delete(session_, name.parent, name.inode,
                                                             name.name.c_str(), name.name.size())
                               : fuse_lowlevel_notify_inval_entry(
                                     session_, name.parent, name.name.c_str(), name.name.size());
        if (rc != 0 && rc != -ENOENT)
            fuse_log(FUSE_LOG_WARNING, "sgfs: cannot tell the kernel that %s %s: %s\n",
                     name.name.c_str(), removed ? "is gone" : "exists", std::strerror(-rc));
    }
    // The directories changed (size, times): their cached attributes go too.
    if (!names.empty()) {
        (void)fuse_lowlevel_notify_inval_inode(session_, root_inode, -1, 0);
        (void)fuse_lowlevel_notify_inval_inode(session_, by_id_inode, -1, 0);
    }
}

InodeNumber Filesystem::add_disk(std::unique_ptr<Disk> disk)
{
    // Outside the lock: stat() of the node, and the disk's info.
    const DiskNodeSource source = node_source(disk->info());
    auto slot = std::make_shared<DiskSlot>();
    slot->disk = std::move(disk);
    std::vector<Tree::Name> added;
    {
        const std::unique_lock lock(tree_mutex_);
        const std::size_t key = next_slot_key_++;
        added = tree_.add_disk(key, source);
        if (!added.empty())
            slots_.emplace(key, slot);
    }
    if (added.empty())
        return 0; // `slot` closes the disk here, outside the lock
    notify_names(added, false);
    return added.front().inode;
}

std::string Filesystem::remove_disk(const std::string &sg_path)
{
    std::shared_ptr<DiskSlot> removed;
    std::string name;
    std::vector<Tree::Name> names;
    {
        const std::unique_lock lock(tree_mutex_);
        for (auto it = slots_.begin(); it != slots_.end(); ++it) {
            if (it->second->disk->info().sg_path != sg_path)
                continue;
            names = tree_.remove_disk(it->first);
            removed = std::move(it->second);
            slots_.erase(it);
            break;
        }
    }
    if (!removed)
        return {};
    name = removed->disk->info().name;
    removed->claims_to_forget = options_.disk.claims;
    notify_names(names, true);
    // Dropped here, outside the lock: the last reference closes the disk (unless a
    // handle still holds it).
    return name;
}

std::string Filesystem::disk_with_stable_id(const std::string &stable_id) const
{
    if (stable_id.empty())
        return {};
    for (const auto &slot : all_slots())
        if (slot->disk->info().stable_id == stable_id)
            return slot->disk->info().name;
    return {};
}

std::optional<DiskInfo> Filesystem::disk_on_node(const std::string &sg_path) const
{
    for (const auto &slot : all_slots())
        if (slot->disk->info().sg_path == sg_path)
            return slot->disk->info();
    return std::nullopt;
}

InodeNumber Filesystem::disk_inode_on_device(const std::string &device) const
{
    const std::shared_lock lock(tree_mutex_);
    for (const auto &[key, slot] : slots_) {
        const DiskInfo &info = slot->disk->info();
        if (!device.empty() && (info.block_device == device || info.hctl == device))
            return tree_.disk_inode(key);
    }
    return 0;
}

void Filesystem::log_io_error(const DiskSlot &slot, const char *what, std::size_t length,
                              std::uint64_t offset, const IoResult &result) const
{
    // A disk that went away fails every IO with ENODEV until it is back; core logs the loss
    // and the return once, which says more than a line per failed request would.
    if (result.error == -ENODEV)
        return;
    fuse_log(FUSE_LOG_ERR, "sgfs: %s: %s of %zu bytes at offset %llu failed (%s): %s\n",
             slot.disk->info().name.c_str(), what, length, static_cast<unsigned long long>(offset),
             std::strerror(as_errno(result.error)), result.message.c_str());
}

} // namespace sgfs::fusefs
