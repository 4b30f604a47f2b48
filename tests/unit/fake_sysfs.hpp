// A fake sysfs tree in a temporary directory, laid out as the kernel lays out the real one
// for SCSI devices and the sg driver:
//   class/scsi_generic/sgN -> ../../devices/.../H:C:T:L/scsi_generic/sgN
//   devices/.../H:C:T:L/scsi_generic/sgN/device -> ../../../H:C:T:L
//   devices/.../H:C:T:L/{type,vendor,model,rev,state}, block/sdX/ when sd or sr is bound
//   module/sg/parameters/allow_dio
// vendor, model and rev hold INQUIRY's fields space padded to 8, 16 and 4 characters, as
// the SCSI layer prints them ("%.8s\n"). Header only: a test includes it and needs no link.
#pragma once

#include <cstdlib>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <string>

namespace sgfs::test
{

inline void write_file(const std::filesystem::path &path, const std::string &text)
{
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << text;
}

// What one SCSI device looks like in sysfs.
struct ScsiDevice {
    std::string sg;   // "sg0"
    std::string hctl; // "2:0:0:0"
    std::string type; // the peripheral device type as sysfs prints it: "0"
    std::string vendor, model, revision;
    std::string block; // "sda", or "" when no block driver is bound
};

// A temporary sysfs root, removed at the end.
class FakeSysfs
{
  public:
    FakeSysfs()
    {
        char pattern[] = "/tmp/sgfs-sysfs-XXXXXX";
        REQUIRE(mkdtemp(pattern) != nullptr);
        root_ = pattern;
    }
    ~FakeSysfs() { std::filesystem::remove_all(root_); }
    FakeSysfs(const FakeSysfs &) = delete;
    FakeSysfs &operator=(const FakeSysfs &) = delete;

    const std::filesystem::path &root() const { return root_; }
    std::string sysfs_root() const { return root_.string(); }

    // The device's directory under devices/, where the driver core places a scsi_debug
    // host's devices: devices/pseudo_0/adapter0/hostH/targetH:C:T/H:C:T:L.
    std::filesystem::path device_dir(const std::string &hctl) const
    {
        const std::string host = hctl.substr(0, hctl.find(':'));
        const std::string target = hctl.substr(0, hctl.rfind(':'));
        return root_ / "devices/pseudo_0/adapter0" / ("host" + host) / ("target" + target) / hctl;
    }

    void add(const ScsiDevice &d)
    {
        namespace fs = std::filesystem;
        const fs::path dir = device_dir(d.hctl);
        write_file(dir / "type", d.type + "\n");
        write_file(dir / "vendor", padded(d.vendor, 8) + "\n");
        write_file(dir / "model", padded(d.model, 16) + "\n");
        write_file(dir / "rev", padded(d.revision, 4) + "\n");
        write_file(dir / "state", "running\n");
        if (!d.block.empty())
            write_file(dir / "block" / d.block / "dev", "8:0\n");
        // The sg class device lives below the SCSI device; its `device` link points up.
        const fs::path sg_dir = dir / "scsi_generic" / d.sg;
        write_file(sg_dir / "dev", "21:" + d.sg.substr(2) + "\n");
        fs::create_directory_symlink("../../../" + d.hctl, sg_dir / "device");
        const fs::path class_dir = root_ / "class/scsi_generic";
        fs::create_directories(class_dir);
        fs::create_directory_symlink(fs::relative(sg_dir, class_dir), class_dir / d.sg);
    }

    // The sg module's parameter as sysfs shows it ("0\n" or "1\n").
    void set_allow_dio(const std::string &text)
    {
        write_file(root_ / "module/sg/parameters/allow_dio", text);
    }

  private:
    static std::string padded(const std::string &text, std::size_t width)
    {
        return text.size() < width ? text + std::string(width - text.size(), ' ') : text;
    }

    std::filesystem::path root_;
};

} // namespace sgfs::test
