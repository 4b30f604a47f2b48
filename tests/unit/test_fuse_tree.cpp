// The pieces of the FUSE layer that need no kernel: SOURCE resolution (with fake disks
// standing in for Disk::open), the tree, the figures of .stats and xattrs, --list lines.
#include "device_figures.hpp"
#include "device_list.hpp"
#include "source_spec.hpp"
#include "tree.hpp"

#include <cerrno>
#include <doctest/doctest.h>
#include <map>

using namespace sgfs;
using namespace sgfs::fusefs;

namespace
{

class FakeDisk final : public Disk
{
  public:
    explicit FakeDisk(DiskInfo info) : info_(std::move(info)) {}
    const DiskInfo &info() const override { return info_; }
    DeviceStatsSnapshot stats() const override { return {}; }

  protected:
    IoResult read_range(void *, std::size_t length, std::uint64_t) override
    {
        return IoResult::success(length);
    }
    IoResult write_range(const void *, std::size_t length, std::uint64_t) override
    {
        return IoResult::success(length);
    }
    IoResult flush_cache() override { return IoResult::success(0); }

  private:
    DiskInfo info_;
};

SgDeviceEntry entry(int number, int type)
{
    SgDeviceEntry e;
    e.name = "sg" + std::to_string(number);
    e.sg_path = "/dev/" + e.name;
    e.hctl = "0:0:" + std::to_string(number) + ":0";
    e.device_type = type;
    e.vendor = "Linux";
    e.model = "scsi_debug";
    e.revision = "0191";
    e.block_device = type == 0 ? "sd" + std::string(1, static_cast<char>('a' + number)) : "";
    return e;
}

DiskInfo disk_info(const std::string &name, const std::string &stable_id)
{
    DiskInfo info;
    info.name = name;
    info.sg_path = "/dev/" + name;
    info.stable_id = stable_id;
    info.capacity_bytes = std::uint64_t{8} * 1024 * 1024;
    info.max_transfer_bytes = 512 * 1024;
    return info;
}

// sg0, sg1 disks; sg2 a CD; sg3 a disk without medium; sg4 an RBC disk.
struct FakeHost {
    std::vector<SgDeviceEntry> devices = {entry(0, 0), entry(1, 0), entry(2, 5), entry(3, 0),
                                          entry(4, 0x0e)};
    std::map<std::string, std::string> ids = {{"/dev/sg0", "wwn-0x5000000000000000"},
                                              {"/dev/sg1", "wwn-0x5000000000000001"},
                                              {"/dev/sg4", "scsi-SRBC_4"},
                                              {"/dev/sg7", "wwn-0x5000000000000007"}};
    std::vector<std::string> opened;

    DiskOpener opener()
    {
        return [this](const std::string &path, std::unique_ptr<Disk> &out, std::string &message) {
            opened.push_back(path);
            if (path == "/dev/sg3") {
                message = "not ready: medium not present";
                return -ENOMEDIUM;
            }
            const auto id = ids.find(path);
            if (id == ids.end())
                return -ENOENT;
            DiskInfo info = disk_info(path.substr(5), id->second);
            for (const SgDeviceEntry &e : devices)
                if (e.sg_path == path)
                    info.block_device = e.block_device;
            out = std::make_unique<FakeDisk>(info);
            return 0;
        };
    }
};

std::vector<std::string> names(const OpenedDisks &opened)
{
    std::vector<std::string> out;
    for (const auto &disk : opened.disks)
        out.push_back(disk->info().name);
    return out;
}

OpenedDisks open_source(FakeHost &host, const std::string &source, const DiskClaimer &claim = {})
{
    SourceSpec spec;
    const std::string error = parse_source(source, spec);
    if (!error.empty()) {
        OpenedDisks failed;
        failed.error = error;
        return failed;
    }
    return open_source_disks(spec, host.devices, host.opener(), claim);
}

} // namespace

TEST_CASE("SOURCE parsing")
{
    SourceSpec spec;
    REQUIRE(parse_source("all", spec).empty());
    CHECK(spec.all);

    REQUIRE(parse_source("sg1,/dev/sg0,wwn-0x5000000000000001,sg1", spec).empty());
    CHECK_FALSE(spec.all);
    CHECK(spec.sg_names == std::vector<std::string>{"sg1", "sg0"});
    CHECK(spec.stable_ids == std::vector<std::string>{"wwn-0x5000000000000001"});

    CHECK(parse_source("all,sg0", spec) ==
          "sgfs: SOURCE 'all' cannot be combined with other devices");
    CHECK(parse_source("sg0,,sg1", spec) == "sgfs: empty device name in SOURCE 'sg0,,sg1'");
    // A /dev path that is not an sg node is a block device, resolved against sysfs later.
    REQUIRE(parse_source("/dev/sda,sdb,/dev/sda", spec).empty());
    CHECK(spec.block_devices == std::vector<std::string>{"sda"});
    CHECK(spec.stable_ids == std::vector<std::string>{"sdb"});
    CHECK(parse_source("/dev/disk/by-id/x", spec)
              .starts_with("sgfs: '/dev/disk/by-id/x' is not an sg device"));
    CHECK(parse_source("./sg0", spec).starts_with("sgfs: './sg0' is not an sg device"));
    // Not an sg name, so a stable id: it is resolved (and refused) when opening.
    REQUIRE(parse_source("sgx", spec).empty());
    CHECK(spec.stable_ids == std::vector<std::string>{"sgx"});
}

TEST_CASE("all opens every disk and RBC device, skipping what does not open")
{
    FakeHost host;
    const OpenedDisks opened = open_source(host, "all");
    REQUIRE_MESSAGE(opened.error.empty(), opened.error);
    CHECK(names(opened) == std::vector<std::string>{"sg0", "sg1", "sg4"});
    REQUIRE(opened.warnings.size() == 1);
    CHECK(opened.warnings[0] == "sgfs: skipping /dev/sg3: not ready: medium not present");
    // The CD is never opened.
    CHECK(std::find(host.opened.begin(), host.opened.end(), "/dev/sg2") == host.opened.end());
}

TEST_CASE("all with no disks fails")
{
    FakeHost host;
    host.devices = {entry(2, 5)};
    CHECK(open_source(host, "all").error.starts_with("sgfs: no SCSI disks found"));
    host.devices = {entry(3, 0)};
    CHECK(open_source(host, "all").error == "sgfs: none of the 1 SCSI disks could be opened");
}

TEST_CASE("a list opens exactly the named disks, sorted by sg number")
{
    FakeHost host;
    const OpenedDisks opened = open_source(host, "sg4,/dev/sg0");
    REQUIRE_MESSAGE(opened.error.empty(), opened.error);
    CHECK(names(opened) == std::vector<std::string>{"sg0", "sg4"});
    CHECK(host.opened == std::vector<std::string>{"/dev/sg4", "/dev/sg0"});
}

TEST_CASE("stable ids are found by probing the other disks")
{
    FakeHost host;
    const OpenedDisks opened = open_source(host, "wwn-0x5000000000000001,sg0");
    REQUIRE_MESSAGE(opened.error.empty(), opened.error);
    CHECK(names(opened) == std::vector<std::string>{"sg0", "sg1"});

    FakeHost again;
    const OpenedDisks same = open_source(again, "sg1,wwn-0x5000000000000001");
    REQUIRE(same.error.empty());
    CHECK(names(same) == std::vector<std::string>{"sg1"}); // one disk, named twice
    CHECK(again.opened == std::vector<std::string>{"/dev/sg1"});
}

TEST_CASE("a bad list item fails the whole mount, naming the culprit")
{
    FakeHost host;
    CHECK(open_source(host, "sg0,sg2").error ==
          "sgfs: /dev/sg2 is not a disk (type 0x05, " + device_type_name(5) + ")");
    CHECK(open_source(host, "sg0,/dev/sg9").error == "sgfs: no such sg device '/dev/sg9'");
    CHECK(open_source(host, "sg3").error ==
          "sgfs: cannot open /dev/sg3: not ready: medium not present");
    CHECK(open_source(host, "sg0,wwn-0xdead").error ==
          "sgfs: no disk with stable id 'wwn-0xdead' (could not probe /dev/sg3: not ready: "
          "medium not present)");
    CHECK(open_source(host, "sg0,wwn-0xdead").disks.empty());
}

TEST_CASE("a block device name or path means its sg disk; a partition is refused")
{
    FakeHost host; // sg0 is sda, sg1 sdb, sg3 sdd
    OpenedDisks opened = open_source(host, "/dev/sdb,sda,sg1");
    REQUIRE_MESSAGE(opened.error.empty(), opened.error);
    CHECK(names(opened) == std::vector<std::string>{"sg0", "sg1"});
    CHECK(open_source(host, "sda1").error ==
          "sgfs: 'sda1' is a partition of /dev/sda; sgfs serves whole disks (sda or /dev/sg0)");
    CHECK(open_source(host, "/dev/sdb15").error ==
          "sgfs: '/dev/sdb15' is a partition of /dev/sdb; sgfs serves whole disks (sdb or "
          "/dev/sg1)");
    CHECK(open_source(host, "/dev/vda").error ==
          "sgfs: '/dev/vda' is not the block device of an sg disk (use /dev/sgN, sgN, sdX, "
          "/dev/sdX, a stable id or all; sgfs --list shows them)");
    // Not a block device sysfs knows: still a stable id.
    CHECK(open_source(host, "sdz").error == "sgfs: no disk with stable id 'sdz' (could not "
                                            "probe /dev/sg3: not ready: medium not present)");
    CHECK(open_source(host, "sdd").error ==
          "sgfs: cannot open /dev/sg3: not ready: medium not present");
}

TEST_CASE("a disk refused by the claim: named, it fails the mount; all leaves it out")
{
    FakeHost host;
    const DiskClaimer claim = [](const DiskInfo &disk) {
        return disk.name == "sg0" ? std::string("in use: /dev/sda1 mounted at /boot")
                                  : std::string();
    };
    OpenedDisks opened = open_source(host, "all", claim);
    REQUIRE_MESSAGE(opened.error.empty(), opened.error);
    CHECK(names(opened) == std::vector<std::string>{"sg1", "sg4"});
    REQUIRE(opened.warnings.size() == 2);
    CHECK(opened.warnings[0] ==
          "sgfs: skipping /dev/sg0 (/dev/sda): in use: /dev/sda1 mounted at /boot");

    CHECK(open_source(host, "sg1,sg0", claim).error ==
          "sgfs: /dev/sg0 (/dev/sda) is in use: /dev/sda1 mounted at /boot");
    CHECK(open_source(host, "wwn-0x5000000000000000", claim).error ==
          "sgfs: /dev/sg0 (/dev/sda) is in use: /dev/sda1 mounted at /boot");
    CHECK(open_source(host, "sda", claim).error ==
          "sgfs: /dev/sg0 (/dev/sda) is in use: /dev/sda1 mounted at /boot");
    CHECK(open_source(host, "sg0", claim).disks.empty());

    host.devices = {entry(0, 0)};
    CHECK(open_source(host, "all", claim).error ==
          "sgfs: none of the 1 SCSI disks is free to serve (the lines above say why)");
}

TEST_CASE("a node missing from sysfs still opens, and must be a disk")
{
    FakeHost host;
    const OpenedDisks opened = open_source(host, "sg7");
    REQUIRE_MESSAGE(opened.error.empty(), opened.error);
    CHECK(names(opened) == std::vector<std::string>{"sg7"});
}

TEST_CASE("preferred IO size is a power of two up to 1 MiB")
{
    DiskInfo info;
    info.max_transfer_bytes = 512 * 1024;
    CHECK(preferred_io_size(info) == 512 * 1024);
    info.max_transfer_bytes = 768 * 1024;
    CHECK(preferred_io_size(info) == 512 * 1024);
    info.max_transfer_bytes = 32 * 1024 * 1024;
    CHECK(preferred_io_size(info) == 1024 * 1024);
    info.max_transfer_bytes = 0;
    CHECK(preferred_io_size(info) == 64 * 1024);
    info.max_transfer_bytes = 1024;
    info.logical_block_size = 4096;
    CHECK(preferred_io_size(info) == 4096);
}

namespace
{

std::vector<DiskNodeSource> two_disks()
{
    DiskNodeSource a;
    a.info = disk_info("sg0", "wwn-0x5000000000000000");
    a.info.capacity_bytes = 1000 * 512 + 100;
    a.uid = 0;
    a.gid = 6;
    a.mode = 0660 | S_IFCHR;
    DiskNodeSource b;
    b.info = disk_info("sg1", "");
    b.uid = 0;
    b.gid = 6;
    b.mode = 0640;
    return {a, b};
}

} // namespace

TEST_CASE("the tree has the disks, by-id links and .stats")
{
    TreeOptions options;
    options.mounter_uid = 1000;
    options.mounter_gid = 100;
    options.mount_time = 1700000000;
    const Tree tree(two_disks(), options);

    const Node *root = tree.find(root_inode);
    REQUIRE(root);
    CHECK(S_ISDIR(root->attr.st_mode));
    CHECK((root->attr.st_mode & 07777) == 0555);
    CHECK(root->attr.st_nlink == 3);
    CHECK(root->attr.st_uid == 1000);
    CHECK(root->attr.st_mtim.tv_sec == 1700000000);

    const Node *sg0 = tree.lookup(root_inode, "sg0");
    REQUIRE(sg0);
    CHECK(sg0->kind == NodeKind::disk_file);
    CHECK(sg0->inode == tree.disk_inode(0));
    CHECK(S_ISREG(sg0->attr.st_mode));
    CHECK((sg0->attr.st_mode & 07777) == 0660);
    CHECK(sg0->attr.st_uid == 0);
    CHECK(sg0->attr.st_gid == 6);
    CHECK(sg0->attr.st_size == 1000 * 512 + 100);
    CHECK(sg0->attr.st_blocks == 1001);
    CHECK(sg0->attr.st_blksize == 512 * 1024);
    CHECK((tree.lookup(root_inode, "sg1")->attr.st_mode & 07777) == 0640);

    const Node *stats = tree.lookup(root_inode, ".stats");
    REQUIRE(stats);
    CHECK(stats->inode == stats_inode);
    CHECK((stats->attr.st_mode & 07777) == 0444);
    CHECK(stats->attr.st_size == 0);

    const Node *by_id = tree.lookup(root_inode, "by-id");
    REQUIRE(by_id);
    CHECK(by_id->children.size() == 1); // sg1 has no stable id
    const Node *link = tree.lookup(by_id_inode, "wwn-0x5000000000000000");
    REQUIRE(link);
    CHECK(S_ISLNK(link->attr.st_mode));
    CHECK(link->link_target == "../sg0");
    CHECK(link->attr.st_size == 6);
    CHECK(link->parent == by_id_inode);

    CHECK_FALSE(tree.lookup(root_inode, "sg9"));
    CHECK_FALSE(tree.lookup(sg0->inode, "x"));
    CHECK_FALSE(tree.find(0));
    CHECK_FALSE(tree.find(tree.node_count() + 1));
    CHECK(root->children.size() == 4);
}

TEST_CASE("uid, gid and umask override the sg node")
{
    TreeOptions options;
    options.uid = 1234;
    options.gid = 99;
    options.umask = 027;
    const Tree tree(two_disks(), options);
    const Node *sg1 = tree.lookup(root_inode, "sg1");
    CHECK((sg1->attr.st_mode & 07777) == 0640);
    CHECK(sg1->attr.st_uid == 1234);
    CHECK(sg1->attr.st_gid == 99);
    CHECK((tree.find(root_inode)->attr.st_mode & 07777) == 0550);
    CHECK((tree.find(stats_inode)->attr.st_mode & 07777) == 0440);
    CHECK(tree.find(root_inode)->attr.st_uid == 1234);
}

TEST_CASE("duplicate and unsafe stable ids get no link")
{
    auto disks = two_disks();
    disks[1].info.stable_id = disks[0].info.stable_id;
    DiskNodeSource third;
    third.info = disk_info("sg2", "..");
    disks.push_back(third);
    const Tree tree(disks, TreeOptions{});
    const Node *by_id = tree.find(by_id_inode);
    REQUIRE(by_id->children.size() == 1);
    CHECK(tree.find(by_id->children[0])->link_target == "../sg0");
}

TEST_CASE("a disk added while mounted gets a new file and link, above every inode used")
{
    Tree tree(two_disks(), TreeOptions{});
    const InodeNumber highest = tree.node_count(); // inodes 1..n, none freed yet
    DiskNodeSource added;
    added.info = disk_info("sg5", "wwn-0x5000000000000005");
    added.mode = 0600;
    const std::vector<Tree::Name> names = tree.add_disk(7, added);
    REQUIRE(names.size() == 2);
    CHECK(names[0].parent == root_inode);
    CHECK(names[0].name == "sg5");
    CHECK(names[1].parent == by_id_inode);
    CHECK(names[1].name == "wwn-0x5000000000000005");
    CHECK(names[0].inode == highest + 1);
    CHECK(names[1].inode == highest + 2);

    const Node *file = tree.lookup(root_inode, "sg5");
    REQUIRE(file);
    CHECK(file->inode == tree.disk_inode(7));
    CHECK(file->disk_index == 7);
    CHECK(file->attr.st_size == static_cast<off_t>(added.info.capacity_bytes));
    CHECK((file->attr.st_mode & 07777) == 0600);
    CHECK(tree.lookup(by_id_inode, "wwn-0x5000000000000005")->link_target == "../sg5");
    // Listed last: children stay in inode order, which readdir's offsets rely on.
    CHECK(tree.find(root_inode)->children.back() == file->inode);

    // A name the mount has already is left out, and so is a second key for one disk.
    DiskNodeSource clash;
    clash.info = disk_info("sg0", "wwn-0x50000000000000ff");
    CHECK(tree.add_disk(8, clash).empty());
    CHECK(tree.add_disk(7, added).empty());
    CHECK(tree.disk_inode(8) == 0);
}

TEST_CASE("a removed disk leaves its directories; its inode lives until forgotten, never reused")
{
    Tree tree(two_disks(), TreeOptions{});
    const InodeNumber sg0 = tree.disk_inode(0);
    const InodeNumber link = tree.lookup(by_id_inode, "wwn-0x5000000000000000")->inode;
    tree.remember_lookup(sg0);
    tree.remember_lookup(sg0);
    const std::size_t before = tree.node_count();

    const std::vector<Tree::Name> removed = tree.remove_disk(0);
    REQUIRE(removed.size() == 2);
    CHECK(removed[0].inode == sg0);
    CHECK(removed[0].name == "sg0");
    CHECK(removed[1].inode == link);
    CHECK(removed[1].parent == by_id_inode);
    CHECK_FALSE(tree.lookup(root_inode, "sg0"));
    CHECK_FALSE(tree.lookup(by_id_inode, "wwn-0x5000000000000000"));
    CHECK(tree.disk_inode(0) == 0);
    CHECK(tree.find(by_id_inode)->children.empty());
    // The link was never looked up: freed at once. The file the kernel knows stays.
    CHECK_FALSE(tree.find(link));
    const Node *detached = tree.find(sg0);
    REQUIRE(detached);
    CHECK(detached->detached);
    CHECK(detached->attr.st_nlink == 0);
    CHECK(tree.node_count() == before - 1);
    tree.forget(sg0, 1);
    CHECK(tree.find(sg0));
    tree.forget(sg0, 1);
    CHECK_FALSE(tree.find(sg0));
    CHECK(tree.remove_disk(0).empty());

    // The same disk back: new inodes, never the old ones.
    auto disks = two_disks();
    const std::vector<Tree::Name> back = tree.add_disk(2, disks[0]);
    REQUIRE(back.size() == 2);
    CHECK(back[0].inode > link);
    CHECK(back[1].inode > back[0].inode);
    CHECK(tree.lookup(root_inode, "sg0")->inode == back[0].inode);
}

TEST_CASE("forgetting a node that stays in the tree keeps it")
{
    Tree tree(two_disks(), TreeOptions{});
    const InodeNumber sg1 = tree.disk_inode(1);
    tree.remember_lookup(sg1);
    tree.forget(sg1, 5); // more than remembered: clamped, not wrapped
    CHECK(tree.find(sg1));
    CHECK(tree.find(sg1)->lookups == 0);
    tree.forget(root_inode, 1);
    CHECK(tree.find(root_inode));
}

TEST_CASE("figures: identity and settings, then the transfer statistics")
{
    DiskInfo info = disk_info("sg0", "wwn-0x5000000000000000");
    info.reserve_granted = 256 * 1024;
    info.allow_dio = true;
    MountOptions options;
    options.disk.io_mode = IoMode::mmap;
    options.cache = CacheMode::page;
    DeviceStatsSnapshot stats;
    stats.modes[static_cast<int>(TransferMode::mmap)].done_bytes = 4096;
    stats.retries = 2;

    const Figures figures = device_figures(info, stats, options);
    std::map<std::string, std::string> by_key(figures.begin(), figures.end());
    CHECK(by_key.size() == figures.size()); // keys are unique
    CHECK(by_key["path"] == "/dev/sg0");
    CHECK(by_key["capacity_bytes"] == "8388608");
    CHECK(by_key["reserve_requested"] == std::to_string(DiskOptions{}.reserve));
    CHECK(by_key["reserve_granted"] == "262144");
    CHECK(by_key["max_transfer_bytes"] == "524288");
    CHECK(by_key["io_mode"] == "mmap");
    CHECK(by_key["allow_dio"] == "1");
    CHECK(by_key["cache"] == "page");
    CHECK(by_key["readahead"] == "1");
    CHECK(by_key["block_device"] == "-");
    CHECK(by_key["mmap.done_bytes"] == "4096");
    CHECK(by_key["retries"] == "2");
    CHECK(by_key.count("errors.medium_error") == 1);
    for (const auto &figure : figures) {
        CHECK_MESSAGE(figure.first.find(' ') == std::string::npos, figure.first);
        CHECK_MESSAGE(!figure.second.empty(), figure.first);
    }
}

TEST_CASE("the .stats text has one block per device")
{
    const std::string text =
        render_stats_text({{"sg0", {{"path", "/dev/sg0"}, {"model", "scsi debug"}}},
                           {"sg1", {{"path", "/dev/sg1"}}}});
    CHECK(text == "device sg0\n"
                  "  path /dev/sg0\n"
                  "  model scsi debug\n"
                  "\n"
                  "device sg1\n"
                  "  path /dev/sg1\n"
                  "\n");
}

TEST_CASE("--list lines look like lsscsi -g, plus what the disk said")
{
    const SgDeviceEntry cd = entry(2, 5);
    CHECK(format_device_line(cd, nullptr, "") ==
          "[0:0:2:0]    cd/dvd  Linux    scsi_debug       0191  -          /dev/sg2");

    const SgDeviceEntry disk = entry(0, 0);
    DiskInfo info = disk_info("sg0", "wwn-0x5000000000000000");
    info.physical_block_size = 4096;
    info.reserve_granted = 1024 * 1024;
    CHECK(format_device_line(disk, &info, "") ==
          "[0:0:0:0]    disk    Linux    scsi_debug       0191  /dev/sda   /dev/sg0  8.00MiB  "
          "512/4096  max_transfer=512KiB  reserve=1MiB  thick  wwn-0x5000000000000000");
    CHECK(format_device_line(disk, nullptr, "Permission denied")
              .ends_with("/dev/sg0  (cannot open: Permission denied)"));
    CHECK(format_device_line(disk, &info, "", "/dev/sda1 mounted at /boot")
              .ends_with(
                  "  wwn-0x5000000000000000\n             in use: /dev/sda1 mounted at /boot"));
    CHECK(short_device_type(0x0e) == "sim dsk");
    CHECK(short_device_type(0x1f) == "no dev");
}

TEST_CASE("figures and --list show a copy manager, and whether copies offload")
{
    DiskInfo info = disk_info("sg0", "wwn-0x5000000000000000");
    const auto figure = [&info](const MountOptions &options, const std::string &key) {
        for (const auto &[name, value] : device_figures(info, {}, options))
            if (name == key)
                return value;
        return std::string("(missing)");
    };
    CHECK(figure(MountOptions{}, "three_party_copy") == "0");
    CHECK(figure(MountOptions{}, "copy_offload") == "0");
    CHECK(format_device_line(entry(0, 0), &info, "").find("3pc") == std::string::npos);

    info.three_party_copy = true; // a copy manager, but not one sgfs can use
    CHECK(format_device_line(entry(0, 0), &info, "")
              .ends_with("  thick  3pc:unusable  wwn-0x5000000000000000"));
    CHECK(figure(MountOptions{}, "copy_offload") == "0");

    info.copy_offload = true;
    CHECK(format_device_line(entry(0, 0), &info, "")
              .ends_with("  thick  3pc  wwn-0x5000000000000000"));
    CHECK(figure(MountOptions{}, "three_party_copy") == "1");
    CHECK(figure(MountOptions{}, "copy_offload") == "1");
    MountOptions off;
    off.disk.copy_offload = false; // nocopy_offload
    CHECK(figure(off, "copy_offload") == "0");
}

TEST_CASE("figures and --list show the provisioning the disk reported, in bytes")
{
    DiskInfo info = disk_info("sg0", "wwn-0x5000000000000000");
    info.logical_block_size = 4096;
    Provisioning &thin = info.provisioning;
    const std::string thick_line = format_device_line(entry(0, 0), &info, "");
    CHECK(provisioning_summary(info) == "thick");
    CHECK(thick_line.ends_with("  thick  wwn-0x5000000000000000"));
    std::map<std::string, std::string> none;
    for (const auto &[key, value] : device_figures(info, {}, MountOptions{}))
        none[key] = value;
    CHECK(none["lbpme"] == "0");
    CHECK(none["unmap_granularity_bytes"] == "0"); // not reported
    CHECK(none["max_unmap_bytes"] == "0");
    CHECK(none["max_write_same_bytes"] == "0");

    thin.lbpme = true;
    thin.lbpu = true;
    thin.lbpws = true;
    thin.lbprz = true;
    thin.unmap_granularity = 256; // 1 MiB of 4 KiB blocks
    thin.unmap_granularity_alignment = 8;
    thin.max_unmap_blocks = 0xffffffff;
    thin.max_unmap_descriptors = 63;
    thin.max_write_same_blocks = 65535;
    std::map<std::string, std::string> by_key;
    for (const auto &[key, value] : device_figures(info, {}, MountOptions{}))
        by_key[key] = value;
    CHECK(by_key["lbpme"] == "1");
    CHECK(by_key["lbpu"] == "1");
    CHECK(by_key["lbpws"] == "1");
    CHECK(by_key["lbpws10"] == "0");
    CHECK(by_key["lbprz"] == "1");
    CHECK(by_key["unmap_granularity"] == "256");
    CHECK(by_key["unmap_granularity_bytes"] == "1048576");
    CHECK(by_key["unmap_alignment_bytes"] == "32768");
    CHECK(by_key["max_unmap_bytes"] == "unlimited");
    CHECK(by_key["max_unmap_descriptors"] == "63");
    CHECK(by_key["max_write_same_blocks"] == "65535");
    CHECK(by_key["max_write_same_bytes"] == std::to_string(std::uint64_t{65535} * 4096));
    CHECK(provisioning_summary(info) == "thin:unmap,ws16,rz,1MiB@32KiB");
    CHECK(format_device_line(entry(0, 0), &info, "")
              .ends_with("  thin:unmap,ws16,rz,1MiB@32KiB  wwn-0x5000000000000000"));

    // LIO's fileio LUN: no LBPRZ, WRITE SAME(10) too; scsi_debug lbpme alone: no command.
    thin.lbprz = false;
    thin.lbpws10 = true;
    thin.unmap_granularity_alignment = 0;
    thin.max_unmap_blocks = 8192;
    CHECK(provisioning_summary(info) == "thin:unmap,ws16,ws10,1MiB");
    for (const auto &[key, value] : device_figures(info, {}, MountOptions{}))
        by_key[key] = value;
    CHECK(by_key["max_unmap_bytes"] == std::to_string(std::uint64_t{8192} * 4096));
    thin = Provisioning{};
    thin.lbpme = true;
    CHECK(provisioning_summary(info) == "thin:nounmap");
}
