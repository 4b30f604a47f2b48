// Finding sg devices in sysfs, without opening them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sgfs
{

struct SgDeviceEntry {
    std::string name;     // "sg0"
    std::string sg_path;  // "/dev/sg0"
    std::string hctl;     // "2:0:0:0"
    int device_type = -1; // sysfs device/type
    std::string vendor, model, revision;
    std::string block_device; // "sda", or "" for non-disks
};

// Every sg device under `sysfs_root`/class/scsi_generic, sorted by sg number.
std::vector<SgDeviceEntry> enumerate_sg_devices(const std::string &sysfs_root = "/sys");
// The stable id (as DiskInfo::stable_id) of `entry` from the VPD pages sysfs cached when
// the device was scanned, without sending it a command; "" when sysfs has none.
std::string cached_stable_id(const SgDeviceEntry &entry, const std::string &sysfs_root = "/sys");
// Whether sgfs serves a device of this SCSI peripheral device type as a disk: direct
// access (0x00) and simplified direct access, RBC (0x0e). The one place that says so.
bool is_disk_device_type(int peripheral_device_type);
// "disk", "tape", "cd/dvd": the name of the type in libsgutils2's table.
std::string device_type_name(int peripheral_device_type);

} // namespace sgfs
