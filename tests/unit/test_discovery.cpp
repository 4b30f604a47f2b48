// Finding sg devices (discovery.hpp) in a fake sysfs tree laid out as the kernel lays out
// the real one (fake_sysfs.hpp): each /sys/class/scsi_generic/sgN links to the sg class
// device below its SCSI device, whose type, vendor, model, rev and block/ tell the rest.
#include "fake_sysfs.hpp"
#include "sgfs/discovery.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <string>
#include <vector>

using namespace sgfs;
using test::FakeSysfs;
namespace fs = std::filesystem;

namespace
{

std::vector<std::string> names(const std::vector<SgDeviceEntry> &devices)
{
    std::vector<std::string> out;
    out.reserve(devices.size());
    for (const SgDeviceEntry &device : devices)
        out.push_back(device.name);
    return out;
}

} // namespace

TEST_CASE("a disk's entry: its node, H:C:T:L, type and INQUIRY strings, block device")
{
    FakeSysfs sysfs;
    sysfs.add({"sg0", "2:0:0:0", "0", "Linux", "scsi_debug", "0191", "sda"});
    const std::vector<SgDeviceEntry> devices = enumerate_sg_devices(sysfs.sysfs_root());
    REQUIRE(devices.size() == 1);
    const SgDeviceEntry &disk = devices[0];
    CHECK(disk.name == "sg0");
    CHECK(disk.sg_path == "/dev/sg0");
    CHECK(disk.hctl == "2:0:0:0");
    CHECK(disk.device_type == 0);
    // The padding sysfs adds is not part of the names.
    CHECK(disk.vendor == "Linux");
    CHECK(disk.model == "scsi_debug");
    CHECK(disk.revision == "0191");
    CHECK(disk.block_device == "sda");
}

TEST_CASE("devices come sorted by sg number, not by name")
{
    FakeSysfs sysfs;
    // Made in an order that is neither; sg10 sorts after sg2 as a number only.
    sysfs.add({"sg10", "3:0:0:10", "0", "Linux", "scsi_debug", "0191", "sdk"});
    sysfs.add({"sg2", "2:0:0:2", "0", "Linux", "scsi_debug", "0191", "sdc"});
    sysfs.add({"sg0", "2:0:0:0", "0", "Linux", "scsi_debug", "0191", "sda"});
    sysfs.add({"sg1", "2:0:0:1", "0", "Linux", "scsi_debug", "0191", "sdb"});
    const std::vector<SgDeviceEntry> devices = enumerate_sg_devices(sysfs.sysfs_root());
    CHECK(names(devices) == std::vector<std::string>{"sg0", "sg1", "sg2", "sg10"});
    REQUIRE(devices.size() == 4);
    CHECK(devices[3].hctl == "3:0:0:10");
    CHECK(devices[3].block_device == "sdk");
}

TEST_CASE("devices that are not disks: their type, and no block device without a driver")
{
    FakeSysfs sysfs;
    // A CD-ROM (type 5) has sr's block device; a tape (1) and an enclosure (0x0d) none.
    sysfs.add({"sg0", "0:0:0:0", "5", "QEMU", "QEMU DVD-ROM", "2.5+", "sr0"});
    sysfs.add({"sg1", "1:0:0:0", "1", "HP", "Ultrium 5-SCSI", "Z21W", ""});
    sysfs.add({"sg2", "1:0:1:0", "13", "HP", "MSL G3 Series", "8.70", ""});
    const std::vector<SgDeviceEntry> devices = enumerate_sg_devices(sysfs.sysfs_root());
    REQUIRE(devices.size() == 3);
    CHECK(devices[0].device_type == 5);
    CHECK(devices[0].block_device == "sr0");
    CHECK(devices[0].model == "QEMU DVD-ROM"); // inner spaces stay
    CHECK(devices[1].device_type == 1);
    CHECK(devices[1].block_device.empty());
    CHECK(devices[1].model == "Ultrium 5-SCSI");
    CHECK(devices[2].device_type == 0x0d);
    CHECK(devices[2].hctl == "1:0:1:0");
    CHECK(devices[2].block_device.empty());
}

TEST_CASE("no sg driver loaded, or no sysfs at all: no devices")
{
    FakeSysfs sysfs;
    CHECK(enumerate_sg_devices(sysfs.sysfs_root()).empty());
    fs::create_directories(sysfs.root() / "class/scsi_generic");
    CHECK(enumerate_sg_devices(sysfs.sysfs_root()).empty());
    CHECK(enumerate_sg_devices((sysfs.root() / "missing").string()).empty());
}

TEST_CASE("a device removed while it is listed: its entry is there, with nothing known")
{
    FakeSysfs sysfs;
    sysfs.add({"sg0", "2:0:0:0", "0", "Linux", "scsi_debug", "0191", "sda"});
    sysfs.add({"sg1", "2:0:0:1", "0", "Linux", "scsi_debug", "0191", "sdb"});
    // The SCSI device directory went first; the class link still dangles into it.
    fs::remove_all(sysfs.device_dir("2:0:0:1"));
    const std::vector<SgDeviceEntry> devices = enumerate_sg_devices(sysfs.sysfs_root());
    CHECK(names(devices) == std::vector<std::string>{"sg0", "sg1"});
    REQUIRE(devices.size() == 2);
    const SgDeviceEntry &gone = devices[1];
    CHECK(gone.sg_path == "/dev/sg1");
    CHECK(gone.hctl.empty());
    CHECK(gone.device_type == -1);
    CHECK(gone.vendor.empty());
    CHECK(gone.model.empty());
    CHECK(gone.block_device.empty());
    // The other one is unaffected.
    CHECK(devices[0].block_device == "sda");
}

TEST_CASE("disk device types: direct access and RBC only")
{
    // SPC-4 table "Peripheral device type": 0x00 direct access block device (SBC),
    // 0x0e simplified direct access device (RBC); everything else is not a disk sgfs
    // serves (0x05 CD/DVD, 0x07 optical memory, 0x14 host managed zoned included).
    CHECK(is_disk_device_type(0x00));
    CHECK(is_disk_device_type(0x0e));
    for (int type : {0x01, 0x05, 0x07, 0x08, 0x0c, 0x0d, 0x14, 0x1f, -1})
        CHECK_FALSE(is_disk_device_type(type));
}

TEST_CASE("device type names are libsgutils2's")
{
    // sg3_utils' table of SPC peripheral device types.
    CHECK(device_type_name(0x00) == "disk");
    CHECK(device_type_name(0x01) == "tape");
    CHECK(device_type_name(0x05) == "cd/dvd");
    CHECK(device_type_name(0x0d) == "enclosure services device");
    CHECK(device_type_name(0x0e) == "simplified direct access device");
}
