#include "sgfs/discovery.hpp"

#include "reattach.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <scsi/sg_lib.h>

namespace sgfs
{
namespace
{

namespace fs = std::filesystem;

std::string read_attribute(const fs::path &path)
{
    std::ifstream in(path);
    std::string value;
    std::getline(in, value);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\n'))
        value.pop_back();
    return value;
}

int sg_number(const std::string &name)
{
    return name.size() > 2 ? std::atoi(name.c_str() + 2) : -1;
}

} // namespace

std::string cached_stable_id(const SgDeviceEntry &entry, const std::string &sysfs_root)
{
    return cached_stable_id_of(sysfs_root + "/class/scsi_generic/" + entry.name + "/device");
}

std::vector<SgDeviceEntry> enumerate_sg_devices(const std::string &sysfs_root)
{
    std::vector<SgDeviceEntry> devices;
    std::error_code error;
    const fs::path class_dir = fs::path(sysfs_root) / "class" / "scsi_generic";
    for (const auto &node : fs::directory_iterator(class_dir, error)) {
        SgDeviceEntry entry;
        entry.name = node.path().filename().string();
        entry.sg_path = "/dev/" + entry.name;
        const fs::path device = node.path() / "device";
        entry.hctl = fs::canonical(device, error).filename().string();
        const std::string type = read_attribute(device / "type");
        entry.device_type = type.empty() ? -1 : std::atoi(type.c_str());
        entry.vendor = read_attribute(device / "vendor");
        entry.model = read_attribute(device / "model");
        entry.revision = read_attribute(device / "rev");
        for (const auto &block : fs::directory_iterator(device / "block", error))
            entry.block_device = block.path().filename().string();
        devices.push_back(std::move(entry));
    }
    std::sort(devices.begin(), devices.end(),
              [](const auto &a, const auto &b) { return sg_number(a.name) < sg_number(b.name); });
    return devices;
}

bool is_disk_device_type(int peripheral_device_type)
{
    return peripheral_device_type == 0x00 || peripheral_device_type == 0x0e;
}

std::string device_type_name(int peripheral_device_type)
{
    char name[80] = {};
    sg_get_pdt_str(peripheral_device_type, sizeof(name), name);
    return name;
}

} // namespace sgfs
