// SOURCE, the first positional argument: which sg disks to expose.
//   all                  every direct-access (type 0x00) and RBC (0x0e) sg device
//   sg0,/dev/sg2,wwn-... a comma list of sg names, sg paths and stable ids (DiskInfo::stable_id)
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
    std::vector<std::string> sg_names;   // "sg2", in the order given, without duplicates
    std::vector<std::string> stable_ids; // anything that is not an sg name or path
    std::vector<std::string> spelled;    // each sg name as the user wrote it, for messages
};

// Returns "" or the one-line error.
std::string parse_source(std::string_view source, SourceSpec &out);

bool is_disk_device_type(int peripheral_device_type);

struct OpenedDisks {
    std::vector<std::unique_ptr<Disk>> disks; // sorted by sg number, no duplicates
    std::vector<std::string> warnings;        // disks `all` skipped, one line each
    std::string error;                        // empty on success
};

using DiskOpener = std::function<int(const std::string &sg_path, std::unique_ptr<Disk> &out,
                                     std::string &message)>;

// Resolves `spec` against `devices` (sorted by sg number, as enumerate_sg_devices returns
// them) and opens every disk it names. Explicitly named disks must all open, or nothing is
// returned; `all` skips disks that fail to open (a card reader without a card) with a
// warning, and fails only when none is left. Stable ids are found by opening the disks not
// named otherwise until each id has matched.
OpenedDisks open_source_disks(const SourceSpec &spec, const std::vector<SgDeviceEntry> &devices,
                              const DiskOpener &open_disk);

} // namespace sgfs::fusefs
