// The sg transport (core/sg_transport.hpp) where it needs no sg driver: refusing nodes that
// are not sg devices, with the kernel's errno and one line that names the path, and the
// facts it reads from sysfs (a fake tree, fake_sysfs.hpp). Commands through a real sg fd
// are the VM suites' (tests/vm).
#include "fake_sysfs.hpp"
#include "sg_transport.hpp"

#include <cerrno>
#include <cstring>
#include <doctest/doctest.h>
#include <filesystem>
#include <memory>
#include <string>
#include <sys/stat.h>

using namespace sgfs;
using test::FakeSysfs;
namespace fs = std::filesystem;

namespace
{

std::string not_sg(const std::string &path)
{
    return path + ": not an sg device (expected a /dev/sgN character device, major 21)";
}

// SgFd::open's answer for `path`: its return value, with `message` and whether an fd came.
int open_sg(const std::string &path, bool read_only, std::string &message, bool &opened)
{
    std::unique_ptr<SgFd> fd;
    const int rc = SgFd::open(path, read_only, fd, message);
    opened = fd != nullptr;
    return rc;
}

} // namespace

TEST_CASE("a character device of another driver is not an sg device")
{
    // /dev/null is major 1: it opens, and the device number refuses it.
    struct stat st {
    };
    REQUIRE(stat("/dev/null", &st) == 0);
    REQUIRE(S_ISCHR(st.st_mode));
    for (const bool read_only : {false, true}) {
        CAPTURE(read_only);
        std::string message;
        bool opened = true;
        CHECK(open_sg("/dev/null", read_only, message, opened) == -ENOTTY);
        CHECK_FALSE(opened);
        CHECK(message == not_sg("/dev/null"));
    }
}

TEST_CASE("a regular file and a directory are not sg devices")
{
    FakeSysfs dir; // any temporary directory will do
    const std::string file = (dir.root() / "disk.img").string();
    test::write_file(file, std::string(4096, '\0'));
    std::string message;
    bool opened = true;
    CHECK(open_sg(file, false, message, opened) == -ENOTTY);
    CHECK_FALSE(opened);
    CHECK(message == not_sg(file));

    // A directory opens read-only, and is refused as not a character device...
    const std::string directory = dir.sysfs_root();
    CHECK(open_sg(directory, true, message, opened) == -ENOTTY);
    CHECK_FALSE(opened);
    CHECK(message == not_sg(directory));
    // ...and for reading and writing the kernel refuses it first.
    CHECK(open_sg(directory, false, message, opened) == -EISDIR);
    CHECK_FALSE(opened);
    CHECK(message == directory + ": " + std::strerror(EISDIR));
}

TEST_CASE("a missing node: the errno of open(2), and the path in the message")
{
    FakeSysfs dir;
    const std::string missing = (dir.root() / "sg9").string();
    for (const bool read_only : {false, true}) {
        CAPTURE(read_only);
        std::string message;
        bool opened = true;
        CHECK(open_sg(missing, read_only, message, opened) == -ENOENT);
        CHECK_FALSE(opened);
        CHECK(message == missing + ": " + std::strerror(ENOENT));
    }
}

TEST_CASE("a channel on a node that is not sg: open_channel says why and gives none")
{
    FakeSysfs dir;
    const std::string missing = (dir.root() / "sg9").string();
    for (const bool map : {false, true}) {
        CAPTURE(map);
        const ChannelSpec spec{.read_only = false, .reserve = 1 << 20, .map = map};
        std::unique_ptr<Channel> channel;
        std::string message;
        CHECK(make_sg_transport("/dev/null")->open_channel(spec, channel, message) == -ENOTTY);
        CHECK(channel == nullptr);
        CHECK(message == not_sg("/dev/null"));
        CHECK(make_sg_transport(missing)->open_channel(spec, channel, message) == -ENOENT);
        CHECK(channel == nullptr);
        CHECK(message == missing + ": " + std::strerror(ENOENT));
    }
}

TEST_CASE("facts: the node's name, where sysfs places it, and the driver's allow_dio")
{
    FakeSysfs sysfs;
    sysfs.add({"sg0", "2:0:0:0", "0", "Linux", "scsi_debug", "0191", "sda"});
    sysfs.add({"sg3", "4:0:1:2", "0", "LIO-ORG", "disk0", "4.0", "sdd"});
    sysfs.add({"sg4", "5:0:0:0", "1", "HP", "Ultrium 5-SCSI", "Z21W", ""});
    sysfs.set_allow_dio("1\n");

    const NodeFacts sg3 = make_sg_transport("/dev/sg3", sysfs.sysfs_root())->facts();
    CHECK(sg3.path == "/dev/sg3");
    CHECK(sg3.name == "sg3");
    CHECK(sg3.hctl == "4:0:1:2");
    CHECK(sg3.block_device == "sdd");
    CHECK(sg3.allow_dio);

    // No block driver bound: no block device.
    const NodeFacts sg4 = make_sg_transport("/dev/sg4", sysfs.sysfs_root())->facts();
    CHECK(sg4.hctl == "5:0:0:0");
    CHECK(sg4.block_device.empty());

    // A node sysfs does not list: only what the path says.
    const NodeFacts sg7 = make_sg_transport("/dev/sg7", sysfs.sysfs_root())->facts();
    CHECK(sg7.name == "sg7");
    CHECK(sg7.hctl.empty());
    CHECK(sg7.block_device.empty());
    // A path without a directory is its own name.
    const NodeFacts bare = make_sg_transport("sg0", sysfs.sysfs_root())->facts();
    CHECK(bare.name == "sg0");
    CHECK(bare.path == "sg0");
    CHECK(bare.hctl == "2:0:0:0");
}

TEST_CASE("allow_dio is on only when the sg module says a non-zero number")
{
    FakeSysfs sysfs;
    sysfs.add({"sg0", "2:0:0:0", "0", "Linux", "scsi_debug", "0191", "sda"});
    const auto allow_dio = [&] {
        return make_sg_transport("/dev/sg0", sysfs.sysfs_root())->facts().allow_dio;
    };
    // sg not loaded as a module with parameters (or no sysfs): off.
    CHECK_FALSE(allow_dio());
    sysfs.set_allow_dio("0\n");
    CHECK_FALSE(allow_dio());
    sysfs.set_allow_dio("1\n");
    CHECK(allow_dio());
    sysfs.set_allow_dio("");
    CHECK_FALSE(allow_dio());
    CHECK(allow_dio_parameter(sysfs.sysfs_root()) ==
          (sysfs.root() / "module/sg/parameters/allow_dio").string());
    CHECK(allow_dio_parameter() == "/sys/module/sg/parameters/allow_dio");
}
