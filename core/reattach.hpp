// Path loss and return. A Disk that wraps the Disks of the sg nodes of one logical unit (its
// paths: the first node, and the others sysfs lists with the same stable id, as two iSCSI
// portals or dual SAS give). IO goes through one path at a time, the first healthy one (see
// reattach.cpp for why not round-robin). When that path goes away (an IO fails with ENODEV
// or ENXIO, or fails while sysfs shows the SCSI device offline, transport-offline or
// removed) another live path takes over once the lost one's IO is over, and the IO that
// failed runs again there: the caller sees no error. A lost path whose id comes back on an
// sg node is taken back as a standby (looked for on IO, once per retry_interval). With no
// live path left, the rules of a single path apply: it marks the disk gone and fails IO
// with ENODEV;
// on later IO, at most once per retry_interval, it looks in sysfs for a disk with the same
// stable id (VPD 0x83, else 0x80) — the same sg node once the transport recovers, or a new
// one after a re-login — opens it afresh with the same options and swaps it in. IO in
// flight on the old disk completes or fails on it; the swap waits until none is left.
#pragma once

#include "sgfs/discovery.hpp"
#include "sgfs/disk.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace sgfs
{

using DiskOpenFunction = std::function<int(const std::string &sg_path, std::unique_ptr<Disk> &out,
                                           std::string &message)>;

// What the wrapper needs from the system. system_reattach_environment() gives the real
// one; unit tests stand in fakes.
struct ReattachEnvironment {
    // Opens an unwrapped disk with the options the first one was opened with.
    DiskOpenFunction open;
    std::function<std::vector<SgDeviceEntry>()> list_devices;
    // The stable id sysfs cached for sg_name at scan time; "" when it does not know.
    // Lets the search skip other disks without sending them a command.
    std::function<std::string(const std::string &sg_name)> cached_stable_id;
    // The SCSI device state of sg_name ("running", "blocked", "offline",
    // "transport-offline", ...) if sg_name is still the device at hctl; else "missing".
    std::function<std::string(const std::string &sg_name, const std::string &hctl)> device_state;
    std::function<std::chrono::steady_clock::time_point()> now;
    std::chrono::milliseconds retry_interval{1000};
    // How long a failover waits for the IO still running on the lost path (commands fail
    // or complete within their timeout) before the IO that waits fails with ENODEV.
    std::chrono::milliseconds drain_timeout{60000};
    // One line per path event (lost, back); no newline.
    std::function<void(const std::string &line)> log;
    // The mount's hold on the disk (disk_claim.hpp); empty when it has none. Let go when
    // the device is lost; taken again for a returning one before it is swapped in: "" or
    // why not (then the disk stays gone, and .stats says why).
    std::function<void(const DiskInfo &lost)> release_claim;
    std::function<std::string(const DiskInfo &back)> reclaim;
};

// sysfs under sysfs_root, the steady clock, a one-second retry interval, and log lines
// to stderr and syslog (LOG_WARNING).
ReattachEnvironment system_reattach_environment(DiskOpenFunction open,
                                                const std::string &sysfs_root = "/sys");

// Takes over `first` (already opened and probed) and opens, as its other paths, the sg nodes
// sysfs lists with the same stable id (cached_stable_id: no node is probed to learn its
// id). info().name stays the name of the first sg node (the file name in the mount);
// sg_path, hctl and block_device follow the node currently in use.
std::unique_ptr<Disk> make_reattaching_disk(std::unique_ptr<Disk> first,
                                            ReattachEnvironment environment);

// ---- pieces, exposed for the unit tests ----

// A stable id from the raw VPD pages as sysfs keeps them (vpd_pg83, vpd_pg80), by the same
// rules the probe uses; either may be empty. "" when neither gives one.
std::string stable_id_from_vpd_pages(std::span<const std::uint8_t> page83,
                                     std::span<const std::uint8_t> page80);
// The stable id of the SCSI device at `scsi_device_dir` (/sys/class/scsi_generic/sg1/device,
// /sys/block/sdb/device) from the VPD pages sysfs cached at scan time; "" when it has none.
std::string cached_stable_id_of(const std::string &scsi_device_dir);
// States in which the device will not answer again without the transport or an
// administrator bringing it back: missing, offline, transport-offline, cancel, deleted.
bool is_lost_device_state(const std::string &state);

} // namespace sgfs
