#include "source_spec.hpp"

#include "sgfs/hex.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <set>

namespace sgfs::fusefs
{
namespace
{

constexpr std::string_view dev_prefix = "/dev/";
constexpr const char *source_forms = "use /dev/sgN, sgN, sdX, /dev/sdX, a stable id or all";

bool is_sg_name(std::string_view text)
{
    return text.size() > 2 && text.starts_with("sg") &&
           text.find_first_not_of("0123456789", 2) == std::string_view::npos;
}

unsigned long sg_number(std::string_view sg_name)
{
    unsigned long number = 0;
    for (char c : sg_name.substr(2))
        number = number * 10 + static_cast<unsigned long>(c - '0');
    return number;
}

std::string not_a_disk(const std::string &what, int device_type)
{
    return "sgfs: " + what + " is not a disk (type " +
           hex_number(static_cast<std::uint8_t>(device_type), 2) + ", " +
           device_type_name(device_type) + ")";
}

// "/dev/sg0 (/dev/sda)", for the messages about a disk's use.
std::string who(const DiskInfo &info)
{
    return info.sg_path + (info.block_device.empty() ? "" : " (/dev/" + info.block_device + ")");
}

// The entry whose disk has `block_device` as a partition: "sda1" of "sda", "sdb12" of
// "sdb" (the kernel puts a 'p' in between when the disk's name ends in a digit).
const SgDeviceEntry *partition_owner(std::string_view name,
                                     const std::vector<SgDeviceEntry> &devices)
{
    for (const SgDeviceEntry &entry : devices) {
        const std::string &disk = entry.block_device;
        if (disk.empty() || !name.starts_with(disk))
            continue;
        std::string_view rest = name.substr(disk.size());
        if (std::isdigit(static_cast<unsigned char>(disk.back())) && rest.starts_with('p'))
            rest.remove_prefix(1);
        if (!rest.empty() && rest.find_first_not_of("0123456789") == std::string_view::npos)
            return &entry;
    }
    return nullptr;
}

const SgDeviceEntry *block_device_owner(std::string_view name,
                                        const std::vector<SgDeviceEntry> &devices)
{
    const auto it = std::find_if(devices.begin(), devices.end(), [name](const SgDeviceEntry &e) {
        return !e.block_device.empty() && e.block_device == name;
    });
    return it == devices.end() ? nullptr : &*it;
}

void add_sg_name(SourceSpec &spec, const std::string &sg_name, const std::string &spelled)
{
    if (std::find(spec.sg_names.begin(), spec.sg_names.end(), sg_name) == spec.sg_names.end()) {
        spec.sg_names.push_back(sg_name);
        spec.spelled.push_back(spelled);
    }
}

std::string a_partition(const std::string &spelled, const SgDeviceEntry &disk)
{
    return "sgfs: '" + spelled + "' is a partition of /dev/" + disk.block_device +
           "; sgfs serves whole disks (" + disk.block_device + " or " + disk.sg_path + ")";
}

// Opens `sg_path`: 0, or -errno with `message` saying why.
int open_path(const std::string &sg_path, const DiskOpener &open_disk, std::unique_ptr<Disk> &disk,
              std::string &message)
{
    message.clear();
    const int rc = open_disk(sg_path, disk, message);
    if (rc < 0 && message.empty())
        message = std::strerror(-rc);
    if (rc >= 0 && !disk) {
        message = "opened without a disk";
        return -EIO;
    }
    return rc < 0 ? rc : 0;
}

struct OpenedDisk {
    unsigned long number;
    std::unique_ptr<Disk> disk;
};

// Opening, with what the user typed kept for the messages.
class DiskCollector
{
  public:
    DiskCollector(const std::vector<SgDeviceEntry> &devices, const DiskOpener &open_disk,
                  const DiskClaimer &claim_disk)
        : devices_(devices), open_disk_(open_disk), claim_disk_(claim_disk)
    {
    }

    const SgDeviceEntry *find(std::string_view sg_name) const
    {
        const auto it =
            std::find_if(devices_.begin(), devices_.end(),
                         [sg_name](const SgDeviceEntry &e) { return e.name == sg_name; });
        return it == devices_.end() ? nullptr : &*it;
    }

    bool has(std::string_view sg_name) const
    {
        return std::any_of(opened_.begin(), opened_.end(),
                           [&](const OpenedDisk &d) { return d.number == sg_number(sg_name); });
    }

    // Whether /dev/<sg_name> is a path of a disk already opened: the disk found the other sg
    // nodes of its logical unit itself (core/reattach.hpp), and serves them as one file.
    bool is_path_of_opened(std::string_view sg_name) const
    {
        const std::string path = std::string(dev_prefix) + std::string(sg_name);
        return std::any_of(opened_.begin(), opened_.end(), [&](const OpenedDisk &d) {
            const auto paths = d.disk->stats().device_paths;
            return std::any_of(paths.begin(), paths.end(),
                               [&](const DevicePathSnapshot &p) { return p.sg_path == path; });
        });
    }

    // Opens /dev/<sg_name>: 0, or -errno with `message` saying why.
    int open(std::string_view sg_name, std::unique_ptr<Disk> &disk, std::string &message) const
    {
        return open_path(std::string(dev_prefix) + std::string(sg_name), open_disk_, disk, message);
    }

    const DiskOpener &opener() const { return open_disk_; }
    const DiskClaimer &claimer() const { return claim_disk_; }

    // Claims an opened disk for the mount: "" or why not ("in use: ...").
    std::string claim(const Disk &disk) const
    {
        return claim_disk_ ? claim_disk_(disk.info()) : std::string();
    }

    void keep(std::string_view sg_name, std::unique_ptr<Disk> disk)
    {
        opened_.push_back({sg_number(sg_name), std::move(disk)});
    }

    const std::vector<OpenedDisk> &opened() const { return opened_; }

    std::vector<std::unique_ptr<Disk>> take_sorted()
    {
        std::sort(opened_.begin(), opened_.end(),
                  [](const OpenedDisk &a, const OpenedDisk &b) { return a.number < b.number; });
        std::vector<std::unique_ptr<Disk>> disks;
        for (OpenedDisk &d : opened_)
            disks.push_back(std::move(d.disk));
        return disks;
    }

  private:
    const std::vector<SgDeviceEntry> &devices_;
    const DiskOpener &open_disk_;
    const DiskClaimer &claim_disk_;
    std::vector<OpenedDisk> opened_;
};

std::string open_named(const std::string &sg_name, const std::string &spelled,
                       DiskCollector &collector)
{
    if (collector.is_path_of_opened(sg_name))
        return {}; // another path of a disk named before it
    const SgDeviceEntry *entry = collector.find(sg_name);
    // sysfs is the quick way to reject a tape or a CD before sending it anything. A node
    // missing from sysfs (an odd container) still gets its chance: INQUIRY will tell.
    if (entry && !is_disk_device_type(entry->device_type))
        return not_a_disk(entry->sg_path, entry->device_type);
    std::unique_ptr<Disk> disk;
    std::string message;
    if (const int rc = collector.open(sg_name, disk, message); rc < 0) {
        if (!entry && rc == -ENOENT)
            return "sgfs: no such sg device '" + spelled + "'";
        return "sgfs: cannot open /dev/" + sg_name + ": " + message;
    }
    if (!is_disk_device_type(disk->info().device_type))
        return not_a_disk("/dev/" + sg_name, disk->info().device_type);
    if (const std::string refused = collector.claim(*disk); !refused.empty())
        return "sgfs: " + who(disk->info()) + " is " + refused;
    collector.keep(sg_name, std::move(disk));
    return {};
}

std::string open_all(const std::vector<SgDeviceEntry> &devices, DiskCollector &collector,
                     std::vector<std::string> &warnings)
{
    std::size_t candidates = 0;
    std::size_t refused = 0;
    for (const SgDeviceEntry &entry : devices) {
        if (!is_disk_device_type(entry.device_type) || collector.is_path_of_opened(entry.name))
            continue;
        ++candidates;
        DiscoveredDisk found = open_discovered_disk(entry, collector.opener(), collector.claimer());
        if (!found.disk) {
            warnings.push_back(std::move(found.skipped));
            refused += found.refused ? 1 : 0;
            continue;
        }
        collector.keep(entry.name, std::move(found.disk));
    }
    if (candidates == 0)
        return "sgfs: no SCSI disks found (sgfs --list shows every sg device)";
    if (collector.opened().empty() && refused > 0)
        return "sgfs: none of the " + std::to_string(candidates) +
               " SCSI disks is free to serve (the lines above say why)";
    if (collector.opened().empty())
        return "sgfs: none of the " + std::to_string(candidates) + " SCSI disks could be opened";
    return {};
}

std::string open_by_stable_id(const std::vector<std::string> &ids,
                              const std::vector<SgDeviceEntry> &devices, DiskCollector &collector)
{
    std::set<std::string> missing(ids.begin(), ids.end());
    for (const OpenedDisk &d : collector.opened())
        missing.erase(d.disk->info().stable_id);

    std::string first_failure;
    for (const SgDeviceEntry &entry : devices) {
        if (missing.empty())
            break;
        if (!is_disk_device_type(entry.device_type) || collector.has(entry.name) ||
            collector.is_path_of_opened(entry.name))
            continue;
        std::unique_ptr<Disk> disk;
        std::string message;
        if (collector.open(entry.name, disk, message) < 0) {
            if (first_failure.empty())
                first_failure = entry.sg_path + ": " + message;
            continue;
        }
        // The first match wins: the other sg nodes of its logical unit are its paths.
        if (missing.erase(disk->info().stable_id) == 1) {
            if (const std::string refused = collector.claim(*disk); !refused.empty())
                return "sgfs: " + who(disk->info()) + " is " + refused;
            collector.keep(entry.name, std::move(disk));
        }
    }
    if (missing.empty())
        return {};
    // Report in the order given, not the set's.
    const auto id = std::find_if(ids.begin(), ids.end(),
                                 [&](const std::string &i) { return missing.count(i) != 0; });
    std::string error = "sgfs: no disk with stable id '" + *id + "'";
    if (!first_failure.empty())
        error += " (could not probe " + first_failure + ")";
    return error;
}

} // namespace

DiscoveredDisk open_discovered_disk(const SgDeviceEntry &entry, const DiskOpener &open_disk,
                                    const DiskClaimer &claim_disk)
{
    DiscoveredDisk found;
    std::string message;
    if (open_path(entry.sg_path, open_disk, found.disk, message) < 0) {
        found.disk.reset();
        found.skipped = "sgfs: skipping " + entry.sg_path + ": " + message;
        return found;
    }
    if (const std::string why = claim_disk ? claim_disk(found.disk->info()) : std::string();
        !why.empty()) {
        found.skipped = "sgfs: skipping " + who(found.disk->info()) + ": " + why;
        found.refused = true;
        found.disk.reset();
    }
    return found;
}

std::string parse_source(std::string_view source, SourceSpec &out)
{
    out = SourceSpec{};
    // A plain split: mount.fuse3 has already split the options, and a SOURCE with an
    // escaped comma could not name anything anyway.
    std::vector<std::string> items;
    std::size_t start = 0;
    while (true) {
        const std::size_t comma = source.find(',', start);
        items.emplace_back(source.substr(start, comma - start));
        if (comma == std::string_view::npos)
            break;
        start = comma + 1;
    }
    for (const std::string &item : items) {
        if (item.empty())
            return "sgfs: empty device name in SOURCE '" + std::string(source) + "'";
        if (item == "all") {
            if (items.size() != 1)
                return "sgfs: SOURCE 'all' cannot be combined with other devices";
            out.all = true;
            return {};
        }
        std::string_view name = item;
        if (name.starts_with(dev_prefix) && is_sg_name(name.substr(dev_prefix.size())))
            name.remove_prefix(dev_prefix.size());
        const std::string_view in_dev =
            std::string_view(item).substr(item.starts_with(dev_prefix) ? dev_prefix.size() : 0);
        if (is_sg_name(name)) {
            add_sg_name(out, std::string(name), item);
        } else if (item.starts_with(dev_prefix) && !in_dev.empty() &&
                   in_dev.find('/') == std::string_view::npos) {
            // /dev/sda: known to be a block device, but only sysfs knows whose.
            if (std::find(out.block_devices.begin(), out.block_devices.end(), in_dev) ==
                out.block_devices.end())
                out.block_devices.emplace_back(in_dev);
        } else if (item.find('/') != std::string::npos) {
            return "sgfs: '" + item + "' is not an sg device (" + source_forms + ")";
        } else if (std::find(out.stable_ids.begin(), out.stable_ids.end(), item) ==
                   out.stable_ids.end()) {
            out.stable_ids.push_back(item);
        }
    }
    return {};
}

std::string resolve_block_devices(SourceSpec &spec, const std::vector<SgDeviceEntry> &devices)
{
    for (const std::string &name : spec.block_devices) {
        const std::string spelled = std::string(dev_prefix) + name;
        if (const SgDeviceEntry *disk = block_device_owner(name, devices))
            add_sg_name(spec, disk->name, spelled);
        else if (const SgDeviceEntry *owner = partition_owner(name, devices))
            return a_partition(spelled, *owner);
        else
            return "sgfs: '" + spelled + "' is not the block device of an sg disk (" +
                   source_forms + "; sgfs --list shows them)";
    }
    spec.block_devices.clear();
    // A name that is a block device's is that disk; a stable id never looks like one.
    std::vector<std::string> stable_ids;
    for (const std::string &name : spec.stable_ids) {
        if (const SgDeviceEntry *disk = block_device_owner(name, devices))
            add_sg_name(spec, disk->name, name);
        else if (const SgDeviceEntry *owner = partition_owner(name, devices))
            return a_partition(name, *owner);
        else
            stable_ids.push_back(name);
    }
    spec.stable_ids = std::move(stable_ids);
    return {};
}

OpenedDisks open_source_disks(SourceSpec spec, const std::vector<SgDeviceEntry> &devices,
                              const DiskOpener &open_disk, const DiskClaimer &claim_disk)
{
    OpenedDisks result;
    if (result.error = resolve_block_devices(spec, devices); !result.error.empty())
        return result;
    DiskCollector collector(devices, open_disk, claim_disk);
    if (spec.all) {
        result.error = open_all(devices, collector, result.warnings);
    } else {
        for (std::size_t i = 0; i < spec.sg_names.size() && result.error.empty(); ++i)
            result.error = open_named(spec.sg_names[i], spec.spelled[i], collector);
        if (result.error.empty() && !spec.stable_ids.empty())
            result.error = open_by_stable_id(spec.stable_ids, devices, collector);
    }
    if (result.error.empty())
        result.disks = collector.take_sorted();
    return result;
}

DiskOpener disk_opener(const DiskOptions &options)
{
    return [options](const std::string &path, std::unique_ptr<Disk> &disk, std::string &message) {
        return Disk::open(path, options, disk, message);
    };
}

} // namespace sgfs::fusefs
