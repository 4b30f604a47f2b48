// The sg transport (core/sg_transport.hpp) where it needs no sg driver: refusing nodes that
// are not sg devices, with the kernel's errno and one line that names the path, and the
// facts it reads from sysfs (a fake tree, fake_sysfs.hpp). Commands through a real sg fd
// are the VM suites' (tests/vm).
#include "fake_sysfs.hpp"
#include "sg_transport.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <doctest/doctest.h>
#include <filesystem>
#include <memory>
#include <scsi/sg.h>
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

// The header for a request, against the kernel's <scsi/sg.h>: what the driver reads.
TEST_CASE("fill_header: the direction, flags and buffer the driver is given")
{
    std::array<std::uint8_t, 4096> data{};
    std::uint8_t sense[SgFd::sense_capacity] = {};
    const auto header = [&](DataDirection direction, TransferMode mode, std::size_t length,
                            Cdb &cdb) {
        SgRequest request;
        request.cdb = cdb_read_16(0x123456789, 8, false);
        request.direction = direction;
        request.buffer = data.data();
        request.length = length;
        request.mode = mode;
        request.timeout_ms = 1234;
        sg_io_hdr_t hdr;
        std::memset(&hdr, 0xff, sizeof(hdr)); // nothing left over from before
        SgFd::fill_header(request, hdr, cdb, sense);
        return hdr;
    };
    Cdb cdb;
    sg_io_hdr_t hdr = header(DataDirection::from_device, TransferMode::indirect, 4096, cdb);
    CHECK(hdr.interface_id == 'S');
    CHECK(hdr.dxfer_direction == SG_DXFER_FROM_DEV);
    CHECK(hdr.flags == 0);
    CHECK(hdr.dxferp == data.data());
    CHECK(hdr.dxfer_len == 4096);
    CHECK(hdr.timeout == 1234);
    CHECK(hdr.sbp == sense);
    CHECK(hdr.mx_sb_len == SgFd::sense_capacity);
    // The CDB lives in `cdb` (the request may go away before the command completes).
    CHECK(hdr.cmdp == cdb.bytes.data());
    CHECK(hdr.cmd_len == 16);
    CHECK(cdb.bytes[0] == 0x88); // READ(16)
    CHECK(hdr.iovec_count == 0);
    CHECK(hdr.usr_ptr == nullptr);

    hdr = header(DataDirection::to_device, TransferMode::direct, 512, cdb);
    CHECK(hdr.dxfer_direction == SG_DXFER_TO_DEV);
    CHECK(hdr.flags == SG_FLAG_DIRECT_IO);
    CHECK(hdr.dxferp == data.data());
    // mmap: the data is in the reserve buffer; the driver is given no pointer.
    hdr = header(DataDirection::from_device, TransferMode::mmap, 4096, cdb);
    CHECK(hdr.flags == sg_flag_mmap_io);
    CHECK(hdr.dxferp == nullptr);
    // No data: no flags whatever the mode (the driver refuses mmap IO without data).
    hdr = header(DataDirection::none, TransferMode::mmap, 0, cdb);
    CHECK(hdr.dxfer_direction == SG_DXFER_NONE);
    CHECK(hdr.flags == 0);
    CHECK(hdr.dxfer_len == 0);
}

TEST_CASE("finish: the driver's answer as a completion")
{
    std::uint8_t sense[SgFd::sense_capacity] = {};
    const Cdb cdb = cdb_read_10(0x1234, 8, false);
    const auto finish = [&](TransferMode mode, std::size_t length, const sg_io_hdr_t &hdr) {
        SgRequest request;
        request.cdb = cdb;
        request.direction = DataDirection::from_device;
        request.length = length;
        request.mode = mode;
        SgCompletion done;
        SgFd::finish(request, hdr, cdb, sense, done);
        return done;
    };
    sg_io_hdr_t hdr{};
    hdr.resid = 512;
    SgCompletion done = finish(TransferMode::indirect, 4096, hdr);
    CHECK(done.outcome.ok());
    CHECK(done.outcome.category == ErrorCategory::ok);
    CHECK(done.residual == 512);
    CHECK(done.done_mode == TransferMode::indirect);

    // Direct IO asked for: the driver's info says whether it was done so.
    hdr = sg_io_hdr_t{};
    hdr.info = SG_INFO_DIRECT_IO;
    CHECK(finish(TransferMode::direct, 4096, hdr).done_mode == TransferMode::direct);
    hdr.info = SG_INFO_INDIRECT_IO;
    CHECK(finish(TransferMode::direct, 4096, hdr).done_mode == TransferMode::indirect);
    // mmap is never reported in info: done as asked, or the command failed.
    hdr.info = 0;
    CHECK(finish(TransferMode::mmap, 4096, hdr).done_mode == TransferMode::mmap);
    // No data moved: the mode stays the one asked for.
    CHECK(finish(TransferMode::direct, 0, hdr).done_mode == TransferMode::direct);

    // CHECK CONDITION with fixed-format sense: MEDIUM ERROR, Unrecovered read error
    // (ASC 0x11, ASCQ 0x00), the information field valid with LBA 0x1234 (SPC-4 4.5.3).
    const std::uint8_t medium_error[18] = {0xf0, 0, 0x03, 0,    0, 0x12, 0x34, 10, 0,
                                           0,    0, 0,    0x11, 0, 0,    0,    0,  0};
    std::memcpy(sense, medium_error, sizeof(medium_error));
    hdr = sg_io_hdr_t{};
    hdr.status = 0x02; // CHECK CONDITION
    hdr.masked_status = 0x01;
    hdr.driver_status = 0x08; // DRIVER_SENSE
    hdr.sb_len_wr = sizeof(medium_error);
    done = finish(TransferMode::indirect, 4096, hdr);
    CHECK_FALSE(done.outcome.ok());
    CHECK(done.outcome.error == EIO);
    CHECK(done.outcome.category == ErrorCategory::medium_error);
    // Named as libsgutils2 names the command, the LBA and T10's words for the ASC.
    CHECK(done.outcome.message ==
          command_name(cdb) + ": medium error at LBA 4660 (0x1234): Unrecovered read error");
    CHECK(done.outcome.sense.sense_key == 0x03);
    CHECK(done.outcome.sense.asc == 0x11);
    CHECK(done.outcome.sense.information == 0x1234);
}
