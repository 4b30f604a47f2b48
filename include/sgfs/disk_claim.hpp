// A mount's hold on the disks it serves. For as long as sgfs serves a disk it holds
//  * a lock file, lock_dir/<stable id>.lock (the sg name when the disk has no id), with
//    flock(LOCK_EX): a second sgfs mount of the same disk, through any sg node, is refused
//    naming the first (the file says its mount point and pid);
//  * the disk's block devices open with O_EXCL: mount, mkfs, LVM, md and the like fail on
//    the disk and on its partitions with EBUSY, as for any disk in use. A disk reached
//    through two paths without dm-multipath (two iSCSI portals, dual SAS) has a block
//    device per path (sdb and sdc, with the same stable id): each is checked and held.
// The lock directory is shared by every user (sticky, like /tmp): a lock file is used only
// when it is a regular file with one link, owned by the caller or by root.
// Both live in open file descriptions, which fork() shares: a daemonizing child keeps them
// as they are (it only has to name itself in the lock files, holder_moved_here()).
#pragma once

#include "sgfs/disk.hpp"
#include "sgfs/in_use.hpp"

#include <map>
#include <mutex>
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace sgfs
{

// A descriptor closed on destruction; move-only.
class OwnedFd
{
  public:
    OwnedFd() = default;
    explicit OwnedFd(int fd) : fd_(fd) {}
    OwnedFd(OwnedFd &&other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    OwnedFd &operator=(OwnedFd &&other) noexcept;
    OwnedFd(const OwnedFd &) = delete;
    OwnedFd &operator=(const OwnedFd &) = delete;
    ~OwnedFd() { reset(); }
    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    void reset();

  private:
    int fd_ = -1;
};

// lock_dir/<key>.lock, taken with flock(LOCK_EX|LOCK_NB). The file is never removed
// (removing a lock file races with the next taker); it holds "<mount point>\n<pid>\n".
class ServeLock
{
  public:
    // 0; -EWOULDBLOCK when another holds it, with `message` "already served by sgfs at
    // /mnt/a (pid 1234)"; another -errno with `message` saying what failed (-EPERM: the
    // file is not one to trust, see above).
    static int take(const std::string &lock_dir, const std::string &key, ServeLock &out,
                    std::string &message);
    // "sgfs at /mnt/a (pid 1234)" when a mount holds the lock of `key`, else "".
    static std::string holder(const std::string &lock_dir, const std::string &key);
    // Writes the holder's mount point and pid into the file; 0 or -errno (a file we may
    // only read keeps its old text).
    int name_holder(const std::string &mount_point, pid_t pid) const;

  private:
    OwnedFd fd_;
    bool writable_ = false;
};

// The lock file key of a disk: its stable id, or its sg name when it has none.
std::string claim_key(const DiskInfo &disk);

// The block devices of `disk`: its own ("" left out), then every other block device under
// sysfs_root/block whose SCSI device has the same stable id (VPD 0x83, else 0x80, as sysfs
// cached them), by name. Another path to the same logical unit is the same disk.
std::vector<std::string> block_devices_of_disk(const DiskInfo &disk, const std::string &sysfs_root);

// Why a new mount may not serve `disk`: another sgfs serves it ("served by sgfs at /mnt/a
// (pid 1234)"), or block_device_in_use()'s reasons for each of its block devices (those of
// another path end "(/dev/sdc is another path to this disk)"). Empty when it is free. It
// probes with O_EXCL (in_use.hpp): `sgfs --list` uses it.
std::vector<std::string> disk_in_use(const DiskInfo &disk, const InUseSystem &system);

// The claims of one mount, shared by the mount and its disks (DiskOptions::claims): taken
// when a disk is chosen, the block device let go while the disk is gone and taken again
// when it is back (core/reattach.cpp), everything let go when the last owner is destroyed
// (at unmount). Thread-safe.
class DiskClaims
{
  public:
    DiskClaims(std::string mount_point, InUseSystem system);
    DiskClaims(const DiskClaims &) = delete;
    DiskClaims &operator=(const DiskClaims &) = delete;

    // Holds `disk` for this mount, after checking it is free. Returns "" or why not, worded
    // to follow "<disk> is ": "in use: /dev/sda1 mounted at /boot", "already served by sgfs
    // at /mnt/a (pid 1234)", "the same disk as /dev/sg1 (wwn-...)", "not claimable: cannot
    // open /dev/sda exclusively: Permission denied", "not claimable: /dev/sda does not
    // exist (no device node to hold it exclusively)". Checks block_device_users() of each
    // block device, then opens each with O_EXCL (EBUSY: "in use: /dev/sda is open
    // exclusively by another program"). A disk without any block device (no sd driver
    // bound) is held by the lock file alone.
    std::string claim(const DiskInfo &disk);
    // The disk went away: its block device is let go; the lock file stays (this mount still
    // serves the disk, and will take it back). No-op for a disk this mount has not claimed.
    void release(const DiskInfo &disk);
    // The disk is back, maybe as another block device: "" when it is held again (or was
    // never claimed), else why not, worded as for claim().
    std::string reclaim(const DiskInfo &disk);
    // The disk was removed from the mount for good (hot plug) and its last user is gone:
    // everything held for it is let go (lock file, block devices), so that it may be
    // claimed again if it returns. No-op for a disk this mount has not claimed.
    void forget(const DiskInfo &disk);
    // After a flush: the pages of the held block devices are dropped from the page cache.
    // Our hold keeps them alive, and sgfs writes past them: a buffered reader of /dev/sdX
    // (blkid, cmp) would see data cached before the write. No-op for an unclaimed disk.
    void drop_cached_pages(const DiskInfo &disk);
    // After fork(): the lock files name this process.
    void holder_moved_here();

  private:
    struct Claim {
        std::string sg_path;
        ServeLock lock;
        std::vector<OwnedFd> block_devices; // one per path; empty while the disk is gone
    };
    // "" with `fds` holding every block device of the disk (none: it has none), or why
    // not, with `fds` empty.
    std::string take_block_devices(const DiskInfo &disk, std::vector<OwnedFd> &fds) const;

    const std::string mount_point_;
    const InUseSystem system_;
    std::mutex mutex_;
    std::map<std::string, Claim> claims_; // by claim_key()
};

} // namespace sgfs
