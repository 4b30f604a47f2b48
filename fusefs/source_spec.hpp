// SOURCE, the first positional argument: which sg disks to expose.
//   all                  every direct-access (type 0x00) and RBC (0x0e) sg device
//   sg0,/dev/sg2,wwn-... a comma list of sg names, sg paths and stable ids (DiskInfo::stable_id)
//   sda,/dev/sdb         block device names and paths: the sg node of that disk
// A disk in use (in_use.hpp) or served by another mount (disk_claim.hpp) is refused when
// named and left out by `all`. The sg nodes of one logical unit (the same stable id, as
// sysfs caches it) are one disk with several paths (core/reattach.hpp), named after the
// first one opened: the lowest sg number for `all`, else the first named.
// Parsing and matching against the sysfs listing are pure; opening is done through a
// caller-supplied function so tests can stand in for Disk::open.
#pragma once

#include "sgfs/discovery.hpp"
#include "sgfs/disk.hpp"

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sgfs::fusefs
{

struct SourceSpec {
    bool all = false;
    std::vector<std::string> sg_names;      // "sg2", in the order given, without duplicates
    std::vector<std::string> stable_ids;    // anything else: a stable id or a block device name
    std::vector<std::string> spelled;       // each sg name as the user wrote it, for messages
    std::vector<std::string> block_devices; // "/dev/sda" as "sda"
};

// Returns "" or the one-line error.
std::string parse_source(std::string_view source, SourceSpec &out);

struct OpenedDisks {
    std::vector<std::unique_ptr<Disk>> disks; // sorted by sg number, no duplicates
    std::vector<std::string> warnings;        // disks `all` skipped, one line each
    std::string error;                        // empty on success
};

using DiskOpener = std::function<int(const std::string &sg_path, std::unique_ptr<Disk> &out,
                                     std::string &message)>;
// Disk::open with `options`: how the mount opens its disks, before and after daemonizing.
DiskOpener disk_opener(const DiskOptions &options);
// Takes an opened disk for the mount (DiskClaims::claim): "" or why not, worded to follow
// "<disk> is " ("in use: /dev/sda1 mounted at /boot").
using DiskClaimer = std::function<std::string(const DiskInfo &disk)>;

// Turns the block device names of `spec` into the sg names of their disks, as sysfs lists
// them in `devices`: the /dev/sdX paths, and the stable ids that are really block device
// names. Returns "" or the one-line error (a partition, a block device of no sg disk).
std::string resolve_block_devices(SourceSpec &spec, const std::vector<SgDeviceEntry> &devices);

// One disk a rule (`all`) found, opened and claimed: `disk`, or `skipped` (one warning
// line) saying why not, `refused` when it was the claim (in use, served elsewhere). The
// one path by which `all` takes a disk, at mount and for a disk added while mounted.
struct DiscoveredDisk {
    std::unique_ptr<Disk> disk;
    std::string skipped;
    bool refused = false;
};
DiscoveredDisk open_discovered_disk(const SgDeviceEntry &entry, const DiskOpener &open_disk,
                                    const DiskClaimer &claim_disk);

// Resolves `spec` against `devices` (sorted by sg number, as enumerate_sg_devices returns
// them) and opens every disk it names, and claims it with `claim_disk` (when given).
// Explicitly named disks must all open and be claimed, or nothing is returned; `all` skips
// disks that fail to open (a card reader without a card) or are refused (in use) with a
// warning each, and fails only when none is left. Stable ids are found by opening the
// disks not named otherwise until each id has matched.
OpenedDisks open_source_disks(SourceSpec spec, const std::vector<SgDeviceEntry> &devices,
                              const DiskOpener &open_disk, const DiskClaimer &claim_disk = {});

} // namespace sgfs::fusefs
