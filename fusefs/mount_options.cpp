#include "mount_options.hpp"

#include "sgfs/io_mode.hpp"
#include "size_text.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <functional>
#include <limits>

namespace sgfs::fusefs
{
namespace
{

// Bounds that catch typos long before the driver or the kernel would complain in a less
// readable way. Sizes above 1 GiB make no sense for one SCSI command or one sg buffer.
constexpr std::uint64_t max_option_size = std::uint64_t{1} << 30;
constexpr std::uint64_t max_queue_depth = 64;
constexpr std::uint64_t max_timeout_seconds = std::uint64_t{24} * 60 * 60;
constexpr std::uint64_t max_retries = 100;
// (uid_t)-1 means "no change" to chown(2), so it is not a usable owner.
constexpr std::uint64_t max_id = std::numeric_limits<std::uint32_t>::max() - 1;

std::string bad_value(std::string_view name, std::string_view value, std::string_view expected)
{
    return "sgfs: bad value for option '" + std::string(name) + "': '" + std::string(value) +
           "' (expected " + std::string(expected) + ")";
}

std::optional<std::uint64_t> parse_number(std::string_view text, int base)
{
    const std::string_view digits = base == 8 ? "01234567" : "0123456789";
    if (text.empty() || text.find_first_not_of(digits) != std::string_view::npos)
        return std::nullopt;
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, base);
    if (error != std::errc() || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

using Setter = std::function<std::string(std::string_view name, std::string_view value,
                                         MountOptions &options)>;

enum class Value { none, required, optional };

// An option that takes a value ("queue_depth=4"), none ("fua"), or either ("user").
struct OptionSpec {
    std::string_view name;
    Value value;
    Setter set;
};

Setter size_setter(std::size_t DiskOptions::*field)
{
    return [field](std::string_view name, std::string_view value, MountOptions &options) {
        const auto bytes = parse_size(value);
        if (!bytes || *bytes == 0 || *bytes > max_option_size)
            return bad_value(name, value, "a size from 1 to 1G, with optional k, m or g suffix");
        options.disk.*field = static_cast<std::size_t>(*bytes);
        return std::string();
    };
}

Setter count_setter(unsigned DiskOptions::*field, std::uint64_t min, std::uint64_t max)
{
    return [field, min, max](std::string_view name, std::string_view value, MountOptions &options) {
        const auto number = parse_number(value, 10);
        if (!number || *number < min || *number > max)
            return bad_value(name, value,
                             "an integer from " + std::to_string(min) + " to " +
                                 std::to_string(max));
        options.disk.*field = static_cast<unsigned>(*number);
        return std::string();
    };
}

template <typename Id> Setter id_setter(std::optional<Id> MountOptions::*field)
{
    return [field](std::string_view name, std::string_view value, MountOptions &options) {
        const auto number = parse_number(value, 10);
        if (!number || *number > max_id)
            return bad_value(name, value, "a numeric id");
        options.*field = static_cast<Id>(*number);
        return std::string();
    };
}

Setter pass_through()
{
    return [](std::string_view name, std::string_view value, MountOptions &options) {
        std::string option(name);
        if (!value.empty())
            option += "=" + std::string(value);
        options.fuse_options.push_back(std::move(option));
        return std::string();
    };
}

Setter ignore()
{
    return [](std::string_view, std::string_view, MountOptions &) { return std::string(); };
}

// Where an on/off option's bool lives: in MountOptions or in its DiskOptions.
class FlagField
{
  public:
    constexpr FlagField(bool MountOptions::*field) : field_(field) {}
    constexpr FlagField(bool DiskOptions::*field) : disk_field_(field) {}
    bool &in(MountOptions &options) const
    {
        return field_ ? options.*field_ : options.disk.*disk_field_;
    }

  private:
    bool MountOptions::*field_ = nullptr;
    bool DiskOptions::*disk_field_ = nullptr;
};

// An on/off option: "fua" sets the field, "nofua" clears it; `off` is empty for a flag that
// has no negation.
struct FlagSpec {
    std::string_view on;
    std::string_view off;
    FlagField field;
};

constexpr std::array<FlagSpec, 8> flag_table = {{
    {"fua", "nofua", &DiskOptions::fua},
    {"readahead", "noreadahead", &DiskOptions::readahead},
    {"ro", "rw", &DiskOptions::read_only},
    {"aligned_writes", "noaligned_writes", &MountOptions::aligned_writes},
    {"copy_file_range", "nocopy_file_range", &MountOptions::copy_file_range},
    {"copy_offload", "nocopy_offload", &DiskOptions::copy_offload},
    {"write_behind", "nowrite_behind", &MountOptions::write_behind},
    {"debug", "", &MountOptions::debug},
}};

Setter flag_setter(const FlagSpec &flag, bool value)
{
    return [&flag, value](std::string_view, std::string_view, MountOptions &options) {
        flag.field.in(options) = value;
        return std::string();
    };
}

std::vector<OptionSpec> build_option_table()
{
    std::vector<OptionSpec> table = {
        // ---- sgfs (and the flags, added below) ----
        {"io", Value::required,
         [](std::string_view name, std::string_view value, MountOptions &options) {
             const auto mode = parse_io_mode(value);
             if (!mode)
                 return bad_value(name, value, "auto, indirect, direct or mmap");
             options.disk.io_mode = *mode;
             return std::string();
         }},
        {"mmap_min", Value::required, size_setter(&DiskOptions::mmap_min)},
        {"reserve", Value::required, size_setter(&DiskOptions::reserve)},
        {"max_io", Value::required, size_setter(&DiskOptions::max_io)},
        {"queue_depth", Value::required,
         count_setter(&DiskOptions::queue_depth, 1, max_queue_depth)},
        {"timeout", Value::required,
         count_setter(&DiskOptions::timeout_seconds, 1, max_timeout_seconds)},
        {"retries", Value::required, count_setter(&DiskOptions::retries, 0, max_retries)},
        {"cache", Value::required,
         [](std::string_view name, std::string_view value, MountOptions &options) {
             if (value == "none")
                 options.cache = CacheMode::none;
             else if (value == "page")
                 options.cache = CacheMode::page;
             else
                 return bad_value(name, value, "none or page");
             return std::string();
         }},
        {"uid", Value::required, id_setter(&MountOptions::uid)},
        {"gid", Value::required, id_setter(&MountOptions::gid)},
        {"umask", Value::required,
         [](std::string_view name, std::string_view value, MountOptions &options) {
             const auto mask = parse_number(value, 8);
             if (!mask || *mask > 0777)
                 return bad_value(name, value, "an octal mask from 0 to 0777");
             options.umask = static_cast<mode_t>(*mask);
             return std::string();
         }},
        {"fsname", Value::required,
         [](std::string_view, std::string_view value, MountOptions &options) {
             options.fsname = std::string(value);
             return std::string();
         }},
        {"subtype", Value::required,
         [](std::string_view, std::string_view value, MountOptions &options) {
             options.subtype = std::string(value);
             return std::string();
         }},
        // ---- FUSE and VFS options libfuse 3.14 accepts, handed over unchanged ----
        {"allow_other", Value::none, pass_through()},
        {"allow_root", Value::none, pass_through()},
        {"auto_unmount", Value::none, pass_through()},
        {"default_permissions", Value::none, ignore()}, // always on, see session.cpp
        {"dev", Value::none, pass_through()},
        {"nodev", Value::none, pass_through()},
        {"suid", Value::none, pass_through()},
        {"nosuid", Value::none, pass_through()},
        {"exec", Value::none, pass_through()},
        {"noexec", Value::none, pass_through()},
        {"async", Value::none, pass_through()},
        {"sync", Value::none, pass_through()},
        {"dirsync", Value::none, pass_through()},
        {"atime", Value::none, pass_through()},
        {"noatime", Value::none, pass_through()},
        {"context", Value::required, pass_through()},
        {"fscontext", Value::required, pass_through()},
        {"defcontext", Value::required, pass_through()},
        {"rootcontext", Value::required, pass_through()},
        // ---- accepted and ignored: our timestamps never change, so the atime flavours
        // libfuse does not know mean nothing here; the rest are fstab/mount(8) bookkeeping
        // that mount.fuse3 does not always strip ----
        {"nodiratime", Value::none, ignore()},
        {"relatime", Value::none, ignore()},
        {"norelatime", Value::none, ignore()},
        {"strictatime", Value::none, ignore()},
        {"nostrictatime", Value::none, ignore()},
        {"lazytime", Value::none, ignore()},
        {"nolazytime", Value::none, ignore()},
        {"defaults", Value::none, ignore()},
        {"auto", Value::none, ignore()},
        {"noauto", Value::none, ignore()},
        {"user", Value::optional, ignore()}, // "user=alice": mtab record of a user mount
        {"nouser", Value::none, ignore()},
        {"users", Value::none, ignore()},
        {"owner", Value::none, ignore()},
        {"group", Value::none, ignore()},
        {"_netdev", Value::none, ignore()},
        {"nofail", Value::none, ignore()},
    };
    for (const FlagSpec &flag : flag_table) {
        table.push_back({flag.on, Value::none, flag_setter(flag, true)});
        if (!flag.off.empty())
            table.push_back({flag.off, Value::none, flag_setter(flag, false)});
    }
    return table;
}

const std::vector<OptionSpec> &option_table()
{
    static const std::vector<OptionSpec> table = build_option_table();
    return table;
}

// Free-form options of fstab tooling: "comment=systemd.automount", "x-systemd.device-timeout=5".
bool is_ignored_bookkeeping(std::string_view name)
{
    return name == "comment" || name.starts_with("x-") || name.starts_with("X-");
}

std::string apply_one(std::string_view option, MountOptions &options)
{
    const auto equals = option.find('=');
    const std::string_view name = option.substr(0, equals);
    const bool has_value = equals != std::string_view::npos;
    const std::string_view value = has_value ? option.substr(equals + 1) : std::string_view();

    const auto &table = option_table();
    const auto spec = std::find_if(table.begin(), table.end(),
                                   [name](const OptionSpec &s) { return s.name == name; });
    if (spec == table.end()) {
        if (is_ignored_bookkeeping(name))
            return {};
        return "sgfs: unknown option '" + std::string(name) + "'";
    }
    if (spec->value == Value::required && value.empty())
        return "sgfs: option '" + std::string(name) + "' needs a value";
    if (spec->value == Value::none && has_value)
        return "sgfs: option '" + std::string(name) + "' takes no value";
    return spec->set(name, value, options);
}

bool has_fuse_option(const MountOptions &options, std::string_view option)
{
    return std::find(options.fuse_options.begin(), options.fuse_options.end(), option) !=
           options.fuse_options.end();
}

} // namespace

const char *to_string(CacheMode mode)
{
    return mode == CacheMode::page ? "page" : "none";
}

std::vector<std::string> split_option_list(std::string_view text)
{
    std::vector<std::string> pieces;
    std::string current;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\\' && i + 1 < text.size()) {
            current += text[++i];
        } else if (c == ',') {
            if (!current.empty())
                pieces.push_back(std::move(current));
            current.clear();
        } else {
            current += c;
        }
    }
    if (!current.empty())
        pieces.push_back(std::move(current));
    return pieces;
}

std::string apply_mount_options(std::string_view text, MountOptions &options)
{
    for (const std::string &option : split_option_list(text))
        if (std::string error = apply_one(option, options); !error.empty())
            return error;
    // libfuse would refuse this pair too, but only after the disks were opened and with
    // a message that does not say which program complained.
    if (has_fuse_option(options, "allow_other") && has_fuse_option(options, "allow_root"))
        return "sgfs: options 'allow_other' and 'allow_root' exclude each other";
    return {};
}

ParsedMountOptions parse_mount_options(std::string_view text)
{
    ParsedMountOptions parsed;
    parsed.error = apply_mount_options(text, parsed.options);
    return parsed;
}

} // namespace sgfs::fusefs
