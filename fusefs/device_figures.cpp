#include "device_figures.hpp"

#include "sgfs/io_mode.hpp"

#include <cstdint>

namespace sgfs::fusefs
{
namespace
{

const char *yes_no(bool value)
{
    return value ? "1" : "0";
}

// A VPD limit of all ones means "no limit": said so rather than as a huge number.
constexpr std::uint32_t no_limit = 0xffffffff;

std::string limit_text(std::uint32_t value, std::uint64_t unit)
{
    return value == no_limit ? "unlimited" : std::to_string(value * unit);
}

} // namespace

Figures device_figures(const DiskInfo &info, const DeviceStatsSnapshot &stats,
                       const MountOptions &options)
{
    const DiskOptions &disk = options.disk;
    const Provisioning &thin = info.provisioning;
    const std::uint64_t block = info.logical_block_size;
    Figures figures = {
        {"path", info.sg_path},
        {"block_device", info.block_device.empty() ? "" : "/dev/" + info.block_device},
        {"hctl", info.hctl},
        {"vendor", info.vendor},
        {"model", info.model},
        {"revision", info.revision},
        {"stable_id", info.stable_id},
        {"capacity_bytes", std::to_string(info.capacity_bytes)},
        {"logical_block_size", std::to_string(info.logical_block_size)},
        {"physical_block_size", std::to_string(info.physical_block_size)},
        {"write_protected", yes_no(info.write_protected)},
        {"read_only", yes_no(disk.read_only || info.write_protected)},
        {"max_transfer_bytes", std::to_string(info.max_transfer_bytes)},
        {"lbpme", yes_no(thin.lbpme)},
        {"lbprz", yes_no(thin.lbprz)},
        {"lbpu", yes_no(thin.lbpu)},
        {"lbpws", yes_no(thin.lbpws)},
        {"lbpws10", yes_no(thin.lbpws10)},
        {"unmap_granularity", std::to_string(thin.unmap_granularity)},
        {"unmap_granularity_bytes", std::to_string(thin.unmap_granularity * block)},
        {"unmap_alignment_bytes", std::to_string(thin.unmap_granularity_alignment * block)},
        {"max_unmap_bytes", limit_text(thin.max_unmap_blocks, block)},
        {"max_unmap_descriptors", limit_text(thin.max_unmap_descriptors, 1)},
        {"max_write_same_blocks", std::to_string(thin.max_write_same_blocks)},
        {"max_write_same_bytes", std::to_string(thin.max_write_same_blocks * block)},
        {"reserve_requested", std::to_string(disk.reserve)},
        {"reserve_granted", std::to_string(info.reserve_granted)},
        {"allow_dio", yes_no(info.allow_dio)},
        {"io_mode", to_string(disk.io_mode)},
        {"mmap_min", std::to_string(disk.mmap_min)},
        {"queue_depth", std::to_string(disk.queue_depth)},
        {"max_io", disk.max_io == 0 ? "device" : std::to_string(disk.max_io)},
        {"timeout_seconds", std::to_string(disk.timeout_seconds)},
        {"retries_allowed", std::to_string(disk.retries)},
        {"fua", yes_no(disk.fua)},
        {"readahead", yes_no(disk.readahead)},
        {"cache", to_string(options.cache)},
        {"copy_file_range", yes_no(options.copy_file_range)},
        {"three_party_copy", yes_no(info.three_party_copy)},
        {"copy_offload", yes_no(disk.copy_offload && info.copy_offload)},
    };
    for (auto &field : stats.fields())
        figures.push_back(std::move(field));
    // An empty value would make a "key value" line look like a bare key.
    for (auto &[key, value] : figures)
        if (value.empty())
            value.assign(1, '-'); // not `= "-"`: GCC 12 -O2 warns falsely (-Wrestrict, PR105329)
    return figures;
}

std::string render_stats_text(const std::vector<DeviceReport> &devices)
{
    std::string text;
    for (const DeviceReport &device : devices) {
        text.append("device ").append(device.name).append("\n");
        for (const auto &[key, value] : device.figures)
            text.append("  ").append(key).append(" ").append(value).append("\n");
        text.append("\n");
    }
    return text;
}

} // namespace sgfs::fusefs
