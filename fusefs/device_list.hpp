// `sgfs --list`: one line per sg device, like `lsscsi -g`, and for disks what opening them
// found: capacity, logical/physical block size, max transfer, reserve granted, thin
// provisioning, stable id, and whether the disk is in use. The other sg nodes of a disk's
// logical unit (multipath) are listed as its paths, not opened again.
#pragma once

#include "mount_options.hpp"
#include "sgfs/discovery.hpp"
#include "sgfs/disk.hpp"

#include <string>
#include <vector>

namespace sgfs::fusefs
{

// lsscsi's short type names ("disk", "cd/dvd", "enclosu"), which keep the columns aligned.
std::string short_device_type(int peripheral_device_type);

// The disk's logical block provisioning in one word for --list: "thick" without LBPME,
// else "thin:" and what it has: "unmap" (UNMAP), "ws16"/"ws10" (WRITE SAME with UNMAP),
// "nounmap" (neither), "rz" (unmapped blocks read zero), the unmap granularity in bytes and
// "@" its alignment when not 0; e.g. "thin:unmap,ws16,rz,4KiB".
std::string provisioning_summary(const DiskInfo &info);

// One line without the newline. `info` is null for non-disks and for disks that did not
// open, in which case `open_error` says why. `in_use`: why a mount would refuse the disk
// (disk_in_use(), joined), or "": when set, a second line says so, indented, so that the
// device line keeps its fields (the stable id last) for scripts.
std::string format_device_line(const SgDeviceEntry &entry, const DiskInfo *info,
                               const std::string &open_error, const std::string &in_use = {});

// "paths: /dev/sg3 [2:0:0:1] active, /dev/sg4 [3:0:0:1] standby": the paths of a disk
// reached through several sg nodes of one logical unit.
std::string format_paths(const std::vector<DevicePathSnapshot> &paths);

// Lists every sg device on stdout, opening the disks read-only with `options.disk` (so
// `sgfs --list -o reserve=4m` shows what the driver would grant). Returns the exit status.
int list_devices(const MountOptions &options);

} // namespace sgfs::fusefs
