#include "sgfs/in_use.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <utility>

namespace sgfs
{
namespace
{

namespace fs = std::filesystem;

std::string read_text(const fs::path &path)
{
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string trimmed(std::string text)
{
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
        text.pop_back();
    return text;
}

// The kernel writes space, tab, newline and backslash in paths as \ooo (seq_file's
// mangle_path), in mountinfo and in /proc/swaps alike.
std::string unescape_octal(std::string_view text)
{
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto is_octal = [&](std::size_t at) {
            return at < text.size() && text[at] >= '0' && text[at] <= '7';
        };
        if (text[i] == '\\' && is_octal(i + 1) && is_octal(i + 2) && is_octal(i + 3)) {
            out.push_back(static_cast<char>(((text[i + 1] - '0') << 6) |
                                            ((text[i + 2] - '0') << 3) | (text[i + 3] - '0')));
            i += 3;
        } else {
            out.push_back(text[i]);
        }
    }
    return out;
}

std::vector<std::string_view> split_fields(std::string_view line)
{
    std::vector<std::string_view> fields;
    std::size_t at = 0;
    while (at < line.size()) {
        const std::size_t start = line.find_first_not_of(" \t", at);
        if (start == std::string_view::npos)
            break;
        const std::size_t end = std::min(line.find_first_of(" \t", start), line.size());
        fields.push_back(line.substr(start, end - start));
        at = end;
    }
    return fields;
}

template <typename Each> void for_each_line(std::string_view text, Each each)
{
    std::size_t start = 0;
    while (start < text.size()) {
        const std::size_t end = std::min(text.find('\n', start), text.size());
        each(text.substr(start, end - start));
        start = end + 1;
    }
}

} // namespace

std::string block_device_path(const std::string &name)
{
    // sysfs writes a '/' in a device name as '!' (cciss!c0d0 is /dev/cciss/c0d0).
    std::string path = "/dev/" + name;
    std::replace(path.begin(), path.end(), '!', '/');
    return path;
}

namespace
{

bool read_device_number(const fs::path &dev_file, DeviceNumber &out)
{
    return parse_device_number(trimmed(read_text(dev_file)), out);
}

std::vector<std::string> holders(const fs::path &node_dir)
{
    std::vector<std::string> names;
    std::error_code error;
    for (const auto &holder : fs::directory_iterator(node_dir / "holders", error))
        names.push_back(holder.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

// " (multipath)" when `holder` is a dm-multipath map (its dm uuid starts "mpath-"): the
// LUN is served by dm-multipath, whose map is the device to use.
std::string multipath_note(const InUseSystem &system, const std::string &holder)
{
    const std::string uuid =
        read_text(fs::path(system.sysfs_root) / "block" / holder / "dm" / "uuid");
    return uuid.starts_with("mpath-") ? " (multipath)" : "";
}

} // namespace

bool parse_device_number(std::string_view text, DeviceNumber &out)
{
    const std::size_t colon = text.find(':');
    if (colon == std::string_view::npos)
        return false;
    const auto parse = [](std::string_view digits, unsigned &value) {
        const auto [end, error] =
            std::from_chars(digits.data(), digits.data() + digits.size(), value);
        return error == std::errc() && end == digits.data() + digits.size() && !digits.empty();
    };
    DeviceNumber number;
    if (!parse(text.substr(0, colon), number.major) || !parse(text.substr(colon + 1), number.minor))
        return false;
    out = number;
    return true;
}

std::vector<MountEntry> parse_mountinfo(std::string_view text)
{
    // id parent major:minor root mount-point options [optional...] - fstype source super
    std::vector<MountEntry> mounts;
    for_each_line(text, [&](std::string_view line) {
        const std::vector<std::string_view> fields = split_fields(line);
        const auto separator = std::find(fields.begin(), fields.end(), "-");
        MountEntry entry;
        if (fields.size() < 6 || separator == fields.end() || separator + 1 == fields.end() ||
            separator - fields.begin() < 6 || !parse_device_number(fields[2], entry.device))
            return;
        entry.mount_point = unescape_octal(fields[4]);
        entry.fstype = std::string(*(separator + 1));
        mounts.push_back(std::move(entry));
    });
    return mounts;
}

std::vector<std::string> parse_swaps(std::string_view text)
{
    std::vector<std::string> files;
    bool header = true;
    for_each_line(text, [&](std::string_view line) {
        if (std::exchange(header, false))
            return;
        const std::vector<std::string_view> fields = split_fields(line);
        if (!fields.empty())
            files.push_back(unescape_octal(fields[0]));
    });
    return files;
}

std::vector<BlockNode> block_nodes(const std::string &sysfs_root, const std::string &block_device)
{
    std::vector<BlockNode> nodes;
    if (block_device.empty() || block_device.find('/') != std::string::npos)
        return nodes;
    const fs::path disk_dir = fs::path(sysfs_root) / "block" / block_device;
    BlockNode whole{block_device, {}};
    if (!read_device_number(disk_dir / "dev", whole.device))
        return nodes;
    nodes.push_back(whole);
    std::vector<BlockNode> partitions;
    std::error_code error;
    for (const auto &sub : fs::directory_iterator(disk_dir, error)) {
        BlockNode partition{sub.path().filename().string(), {}};
        if (fs::exists(sub.path() / "partition", error) &&
            read_device_number(sub.path() / "dev", partition.device))
            partitions.push_back(std::move(partition));
    }
    std::sort(partitions.begin(), partitions.end(), [](const BlockNode &a, const BlockNode &b) {
        return a.device.minor < b.device.minor;
    });
    nodes.insert(nodes.end(), partitions.begin(), partitions.end());
    return nodes;
}

InUseSystem system_in_use()
{
    InUseSystem system;
    system.device_number = [](const std::string &path, DeviceNumber &out) {
        struct stat st {
        };
        if (stat(path.c_str(), &st) != 0)
            return -errno;
        if (!S_ISBLK(st.st_mode))
            return -ENOTBLK;
        out = {major(st.st_rdev), minor(st.st_rdev)};
        return 0;
    };
    system.open_exclusive = [](const std::string &path) {
        // O_NONBLOCK: a removable disk without a medium still opens.
        const int fd = ::open(path.c_str(), O_RDONLY | O_EXCL | O_NONBLOCK | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
    };
    return system;
}

std::vector<MountEntry> read_mountinfo(const std::string &path)
{
    return parse_mountinfo(read_text(path));
}

std::string open_exclusively_reason(const std::string &block_device)
{
    return block_device_path(block_device) + " is open exclusively by another program";
}

std::vector<std::string> block_device_users(const std::string &block_device,
                                            const InUseSystem &system)
{
    std::vector<std::string> reasons;
    const std::vector<BlockNode> nodes = block_nodes(system.sysfs_root, block_device);
    if (nodes.empty())
        return reasons;
    const std::vector<MountEntry> mounts = read_mountinfo(system.mountinfo_path);
    std::vector<DeviceNumber> swaps;
    for (const std::string &file : parse_swaps(read_text(system.swaps_path))) {
        DeviceNumber number;
        if (system.device_number && system.device_number(file, number) == 0)
            swaps.push_back(number);
    }
    const fs::path disk_dir = fs::path(system.sysfs_root) / "block" / block_device;
    for (const BlockNode &node : nodes) {
        const std::string path = block_device_path(node.name);
        std::string mounted_at;
        for (const MountEntry &mount : mounts)
            if (mount.device == node.device)
                mounted_at += (mounted_at.empty() ? "" : ", ") + mount.mount_point;
        if (!mounted_at.empty())
            reasons.push_back(path + " mounted at " += mounted_at);
        if (std::find(swaps.begin(), swaps.end(), node.device) != swaps.end())
            reasons.push_back(path + " is active swap");
        const fs::path node_dir = node.name == block_device ? disk_dir : disk_dir / node.name;
        for (const std::string &holder : holders(node_dir))
            reasons.push_back((path + " held by " += holder) += multipath_note(system, holder));
    }
    return reasons;
}

std::vector<std::string> block_device_in_use(const std::string &block_device,
                                             const InUseSystem &system)
{
    std::vector<std::string> reasons = block_device_users(block_device, system);
    // Opening the whole disk with O_EXCL fails while it or any partition is claimed.
    // (Only for a name sysfs knows, like the rest.)
    if (reasons.empty() && system.open_exclusive &&
        !block_nodes(system.sysfs_root, block_device).empty()) {
        const int fd = system.open_exclusive(block_device_path(block_device));
        if (fd >= 0)
            ::close(fd);
        else if (fd == -EBUSY)
            reasons.push_back(open_exclusively_reason(block_device));
    }
    return reasons;
}

std::string join_reasons(const std::vector<std::string> &reasons)
{
    std::string line;
    for (const std::string &reason : reasons)
        line += (line.empty() ? "" : "; ") + reason;
    return line;
}

} // namespace sgfs
