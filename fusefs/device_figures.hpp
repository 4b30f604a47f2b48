// What sgfs tells about each disk: its identity and geometry, how it was opened, and what
// the transfer modes really did. One list of "key value" figures feeds both /.stats and the
// user.sgfs.<key> extended attributes of the disk files, so they can never disagree.
#pragma once

#include "mount_options.hpp"
#include "sgfs/disk.hpp"
#include "sgfs/stats.hpp"

#include <string>
#include <utility>
#include <vector>

namespace sgfs::fusefs
{

using Figures = std::vector<std::pair<std::string, std::string>>;

// Identity and configuration first (path, capacity_bytes, reserve_granted, io_mode, ...),
// then DeviceStatsSnapshot::fields() unchanged (mmap.requested_commands, errors.busy, ...).
Figures device_figures(const DiskInfo &info, const DeviceStatsSnapshot &stats,
                       const MountOptions &options);

struct DeviceReport {
    std::string name; // "sg0"
    Figures figures;
};

// The text of /.stats: for each device a "device sg0" line, then "  key value" lines, then
// an empty line. Values may contain spaces (vendor, model); keys never do.
std::string render_stats_text(const std::vector<DeviceReport> &devices);

inline constexpr const char *xattr_prefix = "user.sgfs.";

} // namespace sgfs::fusefs
