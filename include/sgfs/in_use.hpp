// Whether the system uses a disk: its block device or a partition of it is mounted, is
// active swap, has holders (dm, md, LVM, bcache), or is open exclusively (the kernel or
// another program claimed it). sgfs never serves such a disk; this is the one place that
// decides. The parsers are pure, and the system is reached through InUseSystem, so tests
// can stand in fake /proc and sysfs trees.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace sgfs
{

struct DeviceNumber {
    unsigned major = 0, minor = 0;
    bool operator==(const DeviceNumber &) const = default;
};

// "8:1" (sysfs dev files, mountinfo field 3). False when it is not two numbers.
bool parse_device_number(std::string_view text, DeviceNumber &out);

struct MountEntry {
    DeviceNumber device;
    std::string mount_point; // escapes (\040 ...) undone
    std::string fstype;      // "ext4", "fuse.sgfs"
};
// The lines of /proc/self/mountinfo; malformed lines are skipped.
std::vector<MountEntry> parse_mountinfo(std::string_view text);
// parse_mountinfo() of the file at `path` (empty when it cannot be read).
std::vector<MountEntry> read_mountinfo(const std::string &path = "/proc/self/mountinfo");

// The file names of /proc/swaps, header skipped, escapes undone.
std::vector<std::string> parse_swaps(std::string_view text);

// "/dev/sda" for "sda" (sysfs's '!' for '/' undone: cciss!c0d0 is /dev/cciss/c0d0).
std::string block_device_path(const std::string &name);

// One block device node of a disk: the whole disk or one of its partitions.
struct BlockNode {
    std::string name; // "sda", "sda1"
    DeviceNumber device;
};
// `block_device` and its partitions, from sysfs_root/block/<name>/dev and the
// <name>/<partition>/dev files of the subdirectories that have a `partition` file. Empty
// when sysfs does not know the name.
std::vector<BlockNode> block_nodes(const std::string &sysfs_root, const std::string &block_device);

// What block_device_in_use() looks at.
struct InUseSystem {
    std::string sysfs_root = "/sys";
    std::string mountinfo_path = "/proc/self/mountinfo";
    std::string swaps_path = "/proc/swaps";
    // The device number of a block special file (its st_rdev): 0, or -errno (-ENOTBLK for
    // a swap file).
    std::function<int(const std::string &path, DeviceNumber &out)> device_number;
    // Opens a block device read-only with O_EXCL: a new descriptor, or -errno (-EBUSY: a
    // file system, a holder or another program has claimed the disk or a partition).
    std::function<int(const std::string &path)> open_exclusive;
    // Where sgfs mounts keep one lock file per disk they serve (disk_claim.hpp).
    std::string lock_dir = "/run/sgfs";
};
// The real system: /sys, /proc, stat(2) and open(2).
InUseSystem system_in_use();

// Why `block_device` ("sda") is in use, one line per reason: "/dev/sda1 mounted at
// /boot", "/dev/sda2 is active swap", "/dev/sda held by dm-0" ("held by dm-0
// (multipath)" when dm-0 is a dm-multipath map: the LUN's paths are dm-multipath's), "/dev/sda is
// open exclusively by another program" (that last one only when nothing else explains it: a btrfs,
// whose mountinfo number is not the disk's, or a program holding it with O_EXCL). Empty when the
// disk is free. A disk without a block device has nothing to check here. The last reason takes a
// probe: the whole disk is opened with O_EXCL and closed again (a mount or mkfs in that instant
// gets EBUSY). A mount does not probe: it checks block_device_users() and then opens for good
// (disk_claim.hpp).
std::vector<std::string> block_device_in_use(const std::string &block_device,
                                             const InUseSystem &system);
// block_device_in_use() without the probe: mounts, swap and holders, read from /proc and
// sysfs only.
std::vector<std::string> block_device_users(const std::string &block_device,
                                            const InUseSystem &system);
// "/dev/sda is open exclusively by another program": the reason when an O_EXCL open of
// `block_device` fails with EBUSY.
std::string open_exclusively_reason(const std::string &block_device);

// The reasons as one line: "a; b".
std::string join_reasons(const std::vector<std::string> &reasons);

} // namespace sgfs
