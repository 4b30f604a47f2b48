#include "device_list.hpp"

#include "sgfs/disk_claim.hpp"
#include "sgfs/in_use.hpp"
#include "size_text.hpp"
#include "source_spec.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>

namespace sgfs::fusefs
{
namespace
{

// Pads to `width` columns, keeping at least one space after the text. The widths are
// lsscsi -g's, so the two listings line up.
std::string column(const std::string &text, std::size_t width)
{
    std::string out = text;
    out.resize(std::max(width, text.size() + 1), ' ');
    return out;
}

} // namespace

std::string short_device_type(int peripheral_device_type)
{
    static constexpr std::array<const char *, 0x15> names = {
        "disk",    "tape",    "printer", "process", "worm",  "cd/dvd",  "scanner",
        "optical", "mediumx", "comms",   "(0xa)",   "(0xb)", "storage", "enclosu",
        "sim dsk", "opti rd", "bridge",  "osd",     "adi",   "sec man", "zbc",
    };
    if (peripheral_device_type >= 0 &&
        static_cast<std::size_t>(peripheral_device_type) < names.size())
        return names[static_cast<std::size_t>(peripheral_device_type)];
    if (peripheral_device_type == 0x1e)
        return "wlun";
    if (peripheral_device_type == 0x1f)
        return "no dev";
    return "type " + std::to_string(peripheral_device_type);
}

std::string provisioning_summary(const DiskInfo &info)
{
    const Provisioning &thin = info.provisioning;
    if (!thin.lbpme)
        return "thick";
    std::string text = "thin:";
    const auto add = [&text](const char *part) {
        if (text.back() != ':')
            text += ',';
        text += part;
    };
    if (thin.lbpu)
        add("unmap");
    if (thin.lbpws)
        add("ws16");
    if (thin.lbpws10)
        add("ws10");
    if (!thin.lbpu && !thin.lbpws && !thin.lbpws10)
        add("nounmap");
    if (thin.lbprz)
        add("rz");
    if (thin.unmap_granularity != 0) {
        add(format_size_exact(std::uint64_t{thin.unmap_granularity} * info.logical_block_size)
                .c_str());
        if (thin.unmap_granularity_alignment != 0)
            text += "@" + format_size_exact(std::uint64_t{thin.unmap_granularity_alignment} *
                                            info.logical_block_size);
    }
    return text;
}

std::string format_device_line(const SgDeviceEntry &entry, const DiskInfo *info,
                               const std::string &open_error, const std::string &in_use)
{
    std::string line = column("[" + entry.hctl + "]", 13);
    line += column(short_device_type(entry.device_type), 8);
    line += column(entry.vendor, 9);
    line += column(entry.model, 17);
    line += column(entry.revision, 6);
    line += column(entry.block_device.empty() ? "-" : "/dev/" + entry.block_device, 11);
    line += entry.sg_path;
    if (info) {
        line += "  " + format_size_rounded(info->capacity_bytes);
        line += "  " + std::to_string(info->logical_block_size) + "/" +
                std::to_string(info->physical_block_size);
        line += "  max_transfer=" + format_size_exact(info->max_transfer_bytes);
        line += "  reserve=" + format_size_exact(info->reserve_granted);
        line += "  " + provisioning_summary(*info);
        if (info->three_party_copy)
            line += info->copy_offload ? "  3pc" : "  3pc:unusable";
        if (info->write_protected)
            line += "  write-protected";
        line += "  " + (info->stable_id.empty() ? std::string("-") : info->stable_id);
    } else if (!open_error.empty()) {
        line += "  (cannot open: " + open_error + ")";
    }
    if (!in_use.empty())
        line += "\n" + std::string(13, ' ') + "in use: " + in_use;
    return line;
}

std::string format_paths(const std::vector<DevicePathSnapshot> &paths)
{
    std::string text = "paths:";
    for (const DevicePathSnapshot &path : paths)
        text += " " + path.sg_path + " [" + path.hctl + "] " + path.state + ",";
    text.pop_back();
    return text;
}

int list_devices(const MountOptions &options)
{
    DiskOptions disk_options = options.disk;
    disk_options.read_only = true; // listing never writes
    const std::vector<SgDeviceEntry> devices = enumerate_sg_devices();
    const InUseSystem system = system_in_use();
    if (devices.empty()) {
        std::fprintf(stderr, "sgfs: no sg devices found (is the sg module loaded?)\n");
        return 0;
    }
    // The sg nodes already shown as paths of a disk, and that disk's node.
    std::map<std::string, std::string> path_of;
    for (const SgDeviceEntry &entry : devices) {
        if (const auto shown = path_of.find(entry.sg_path); shown != path_of.end()) {
            const std::string line = format_device_line(entry, nullptr, {}) +
                                     "  (another path to the disk of " + shown->second + ")";
            std::printf("%s\n", line.c_str());
            continue;
        }
        std::unique_ptr<Disk> disk;
        std::string message;
        if (is_disk_device_type(entry.device_type)) {
            const int rc = Disk::open(entry.sg_path, disk_options, disk, message);
            if (rc < 0 || !disk) {
                disk.reset();
                if (message.empty())
                    message = std::strerror(rc < 0 ? -rc : EIO);
            }
        }
        // A disk that did not open has no stable id to find its lock file by; its block
        // device still tells.
        std::string in_use;
        if (disk)
            in_use = join_reasons(disk_in_use(disk->info(), system));
        else if (is_disk_device_type(entry.device_type))
            in_use = join_reasons(block_device_in_use(entry.block_device, system));
        std::string line =
            format_device_line(entry, disk ? &disk->info() : nullptr, message, in_use);
        if (disk) {
            const std::vector<DevicePathSnapshot> paths = disk->stats().device_paths;
            if (paths.size() > 1)
                line += "\n" + std::string(13, ' ') + format_paths(paths);
            for (const DevicePathSnapshot &path : paths)
                path_of.emplace(path.sg_path, entry.sg_path);
        }
        std::printf("%s\n", line.c_str());
    }
    return 0;
}

} // namespace sgfs::fusefs
