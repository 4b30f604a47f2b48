// Disks in use (in_use.hpp) against fake sysfs and /proc trees in a temporary directory,
// and a mount's claims (disk_claim.hpp) with lock files there.
#include "sgfs/disk_claim.hpp"
#include "sgfs/in_use.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace sgfs;
namespace fs = std::filesystem;

namespace
{

void write_file(const fs::path &path, const std::string &text)
{
    fs::create_directories(path.parent_path());
    std::ofstream(path) << text;
}

// A temporary root with sys/, proc/ and run/sgfs under it, removed at the end.
struct FakeSystem {
    fs::path root;
    std::map<std::string, DeviceNumber> nodes; // /dev path -> number, for /proc/swaps
    std::map<std::string, int> exclusive;      // /dev path -> -errno open_exclusive gives
    std::vector<std::string> opened_exclusive;

    FakeSystem()
    {
        char pattern[] = "/tmp/sgfs-in-use-XXXXXX";
        REQUIRE(mkdtemp(pattern) != nullptr);
        root = pattern;
        fs::create_directories(root / "run");
        write_file(root / "proc/mountinfo", "");
        write_file(root / "proc/swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
        // sda with partitions 1 and 2; sdb without partitions; sdc's dir has a non-partition
        // subdirectory (queue/) that must not count.
        add_block("sda", {8, 0});
        add_partition("sda", "sda1", {8, 1});
        add_partition("sda", "sda2", {8, 2});
        add_block("sdb", {8, 16});
        fs::create_directories(root / "sys/block/sdb/queue");
        write_file(root / "sys/block/sdb/queue/dev", "1:1\n"); // not a partition: ignored
    }
    ~FakeSystem() { fs::remove_all(root); }

    void add_block(const std::string &name, DeviceNumber number)
    {
        write_file(root / "sys/block" / name / "dev",
                   std::to_string(number.major) + ":" + std::to_string(number.minor) + "\n");
        fs::create_directories(root / "sys/block" / name / "holders");
        nodes["/dev/" + name] = number;
    }
    void add_partition(const std::string &disk, const std::string &name, DeviceNumber number)
    {
        const fs::path dir = root / "sys/block" / disk / name;
        write_file(dir / "dev",
                   std::to_string(number.major) + ":" + std::to_string(number.minor) + "\n");
        write_file(dir / "partition", "1\n");
        fs::create_directories(dir / "holders");
        nodes["/dev/" + name] = number;
    }
    void mount(const std::string &numbers, const std::string &at, const std::string &type)
    {
        std::ofstream(root / "proc/mountinfo", std::ios::app)
            << "36 25 " << numbers << " / " << at << " rw,relatime shared:1 - " << type
            << " /dev/x rw\n";
    }

    InUseSystem system()
    {
        InUseSystem s;
        s.sysfs_root = (root / "sys").string();
        s.mountinfo_path = (root / "proc/mountinfo").string();
        s.swaps_path = (root / "proc/swaps").string();
        s.lock_dir = (root / "run/sgfs").string();
        s.device_number = [this](const std::string &path, DeviceNumber &out) {
            const auto it = nodes.find(path);
            if (it == nodes.end())
                return -ENOENT;
            out = it->second;
            return 0;
        };
        s.open_exclusive = [this](const std::string &path) {
            opened_exclusive.push_back(path);
            const auto it = exclusive.find(path);
            if (it != exclusive.end() && it->second < 0)
                return it->second;
            return ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        };
        return s;
    }
};

DiskInfo disk(const std::string &sg, const std::string &block, const std::string &id)
{
    DiskInfo info;
    info.name = sg;
    info.sg_path = "/dev/" + sg;
    info.block_device = block;
    info.stable_id = id;
    return info;
}

} // namespace

TEST_CASE("device numbers")
{
    DeviceNumber n;
    CHECK(parse_device_number("8:17", n));
    CHECK(n == DeviceNumber{8, 17});
    CHECK_FALSE(parse_device_number("8", n));
    CHECK_FALSE(parse_device_number("8:", n));
    CHECK_FALSE(parse_device_number("a:1", n));
    CHECK_FALSE(parse_device_number("8:1x", n));
}

TEST_CASE("mountinfo: device, mount point with escapes, type after the separator")
{
    const auto mounts = parse_mountinfo(
        "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
        "36 25 8:1 / /mnt/my\\040disk rw,relatime shared:1 master:2 - ext4 /dev/sda1 rw\n"
        "garbage line\n"
        "40 25 0:45 / /mnt/sg rw,nosuid - fuse.sgfs sg1 rw,user_id=0\n");
    REQUIRE(mounts.size() == 3);
    CHECK(mounts[0].device == DeviceNumber{0, 21});
    CHECK(mounts[1].device == DeviceNumber{8, 1});
    CHECK(mounts[1].mount_point == "/mnt/my disk");
    CHECK(mounts[1].fstype == "ext4");
    CHECK(mounts[2].mount_point == "/mnt/sg");
    CHECK(mounts[2].fstype == "fuse.sgfs");
}

TEST_CASE("/proc/swaps: file names without the header")
{
    CHECK(parse_swaps("Filename\tType\tSize\tUsed\tPriority\n"
                      "/dev/sdb                                partition\t65532\t0\t-2\n"
                      "/swap\\040file file 1024 0 -3\n") ==
          std::vector<std::string>{"/dev/sdb", "/swap file"});
    CHECK(parse_swaps("Filename\tType\tSize\tUsed\tPriority\n").empty());
}

TEST_CASE("block nodes: the disk, then its partitions")
{
    FakeSystem f;
    const auto nodes = block_nodes(f.system().sysfs_root, "sda");
    REQUIRE(nodes.size() == 3);
    CHECK(nodes[0].name == "sda");
    CHECK(nodes[1].name == "sda1");
    CHECK(nodes[2].device == DeviceNumber{8, 2});
    CHECK(block_nodes(f.system().sysfs_root, "sdb").size() == 1);
    CHECK(block_nodes(f.system().sysfs_root, "sdz").empty());
    CHECK(block_nodes(f.system().sysfs_root, "").empty());
    CHECK(block_nodes(f.system().sysfs_root, "../sda").empty());
}

TEST_CASE("a free disk is not in use, after one O_EXCL try")
{
    FakeSystem f;
    f.mount("0:21", "/proc", "proc");
    CHECK(block_device_in_use("sda", f.system()).empty());
    CHECK(f.opened_exclusive == std::vector<std::string>{"/dev/sda"});
}

TEST_CASE("mounted partitions and the whole disk, each with its mount points")
{
    FakeSystem f;
    f.mount("8:1", "/boot", "ext4");
    f.mount("8:1", "/mnt/bind", "ext4");
    f.mount("8:16", "/mnt/b", "xfs");
    CHECK(block_device_in_use("sda", f.system()) ==
          std::vector<std::string>{"/dev/sda1 mounted at /boot, /mnt/bind"});
    CHECK(block_device_in_use("sdb", f.system()) ==
          std::vector<std::string>{"/dev/sdb mounted at /mnt/b"});
    // Something else explains it: no O_EXCL try.
    CHECK(f.opened_exclusive.empty());
}

TEST_CASE("active swap, found by device number")
{
    FakeSystem f;
    std::ofstream(f.root / "proc/swaps", std::ios::app)
        << "/dev/sda2                               partition\t65532\t0\t-2\n"
        << "/dev/disk/by-label/other                partition\t65532\t0\t-3\n";
    f.nodes["/dev/disk/by-label/other"] = {8, 16}; // a link to sdb
    CHECK(block_device_in_use("sda", f.system()) ==
          std::vector<std::string>{"/dev/sda2 is active swap"});
    CHECK(block_device_in_use("sdb", f.system()) ==
          std::vector<std::string>{"/dev/sdb is active swap"});
}

TEST_CASE("holders of the disk and of its partitions")
{
    FakeSystem f;
    fs::create_directories(f.root / "sys/block/sda/holders/dm-0");
    fs::create_directories(f.root / "sys/block/sda/sda2/holders/md127");
    CHECK(block_device_in_use("sda", f.system()) ==
          std::vector<std::string>{"/dev/sda held by dm-0", "/dev/sda2 held by md127"});
}

TEST_CASE("open exclusively by someone: only O_EXCL tells (btrfs, another program)")
{
    FakeSystem f;
    f.exclusive["/dev/sdb"] = -EBUSY;
    CHECK(block_device_in_use("sdb", f.system()) ==
          std::vector<std::string>{"/dev/sdb is open exclusively by another program"});
    // Other errors say nothing about use (no /dev node, no permission).
    f.exclusive["/dev/sdb"] = -EACCES;
    CHECK(block_device_in_use("sdb", f.system()).empty());
    CHECK(join_reasons({"a", "b"}) == "a; b");
}

TEST_CASE("claims: a lock file naming the mount, and the block device held")
{
    FakeSystem f;
    DiskClaims claims("/mnt/a", f.system());
    const DiskInfo sdb = disk("sg1", "sdb", "naa.1");
    REQUIRE(claims.claim(sdb).empty());
    std::ifstream lock(f.root / "run/sgfs/naa.1.lock");
    std::string mount_point, pid;
    std::getline(lock, mount_point);
    std::getline(lock, pid);
    CHECK(mount_point == "/mnt/a");
    CHECK(pid == std::to_string(getpid()));
    CHECK((fs::status(f.root / "run/sgfs").permissions() & fs::perms::sticky_bit) !=
          fs::perms::none);

    // A second mount of the same disk, through another node: refused, naming the first.
    DiskClaims other("/mnt/b", f.system());
    CHECK(other.claim(disk("sg5", "sdf", "naa.1")) ==
          "already served by sgfs at /mnt/a (pid " + pid + ")");
    CHECK(disk_in_use(sdb, f.system()) ==
          std::vector<std::string>{"served by sgfs at /mnt/a (pid " + pid + ")"});
    // The same mount naming it twice.
    CHECK(claims.claim(disk("sg5", "sdf", "naa.1")) == "the same disk as /dev/sg1 (naa.1)");
    // Another disk is free to take.
    CHECK(other.claim(disk("sg0", "sda", "naa.0")).empty());
}

TEST_CASE("claims are let go when the last owner goes")
{
    FakeSystem f;
    const DiskInfo sdb = disk("sg1", "sdb", "naa.1");
    {
        DiskClaims claims("/mnt/a", f.system());
        REQUIRE(claims.claim(sdb).empty());
    }
    CHECK(disk_in_use(sdb, f.system()).empty());
    DiskClaims again("/mnt/b", f.system());
    CHECK(again.claim(sdb).empty());
}

TEST_CASE("claims refuse a disk in use, and hold nothing of it")
{
    FakeSystem f;
    f.mount("8:1", "/boot", "ext4");
    DiskClaims claims("/mnt/a", f.system());
    const DiskInfo sda = disk("sg0", "sda", "naa.0");
    CHECK(claims.claim(sda) == "in use: /dev/sda1 mounted at /boot");
    CHECK(disk_in_use(sda, f.system()) == std::vector<std::string>{"/dev/sda1 mounted at /boot"});
    // Not locked: the refusal let the lock file go.
    CHECK(ServeLock::holder(f.system().lock_dir, "naa.0").empty());

    f.exclusive["/dev/sdb"] = -EBUSY;
    CHECK(claims.claim(disk("sg1", "sdb", "naa.1")) ==
          "in use: /dev/sdb is open exclusively by another program");
    f.exclusive["/dev/sdb"] = -EACCES;
    CHECK(claims.claim(disk("sg1", "sdb", "naa.1")) ==
          "not claimable: cannot open /dev/sdb exclusively: Permission denied");
    // No /dev node (a container with only /dev/sg*, whose mountinfo shows none of the
    // host's mounts): nothing could hold it, so it is not served.
    f.exclusive["/dev/sdb"] = -ENOENT;
    CHECK(claims.claim(disk("sg1", "sdb", "naa.1")) ==
          "not claimable: /dev/sdb does not exist (no device node to hold it exclusively)");
    CHECK(ServeLock::holder(f.system().lock_dir, "naa.1").empty());
}

TEST_CASE("a claim opens the block device once, with no probe before")
{
    FakeSystem f;
    DiskClaims claims("/mnt/a", f.system());
    REQUIRE(claims.claim(disk("sg1", "sdb", "naa.1")).empty());
    CHECK(f.opened_exclusive == std::vector<std::string>{"/dev/sdb"});
}

TEST_CASE("two paths to one disk: both checked, both held")
{
    FakeSystem f;
    // sdb and sdc are one logical unit seen through two portals: the same VPD 0x83.
    const std::string page83 = {0x00, static_cast<char>(0x83),
                                0x00, 0x0c,
                                0x01, 0x03,
                                0x00, 0x08,
                                0x30, 0x00,
                                0x00, 0x01,
                                0x00, 0x00,
                                0x00, 0x01};
    const std::string id = "wwn-0x3000000100000001";
    f.add_block("sdc", {8, 32});
    f.add_partition("sdc", "sdc1", {8, 33});
    write_file(f.root / "sys/block/sdb/device/vpd_pg83", page83);
    write_file(f.root / "sys/block/sdc/device/vpd_pg83", page83);
    write_file(f.root / "sys/block/sda/device/vpd_pg80",
               {0x00, static_cast<char>(0x80), 0x00, 0x02, 'x', 'y'});
    const DiskInfo sdb = disk("sg1", "sdb", id);
    CHECK(block_devices_of_disk(sdb, f.system().sysfs_root) ==
          std::vector<std::string>{"sdb", "sdc"});

    // /dev/sdc1 mounted: sgfs on the other path must not serve it.
    f.mount("8:33", "/mnt/e", "ext4");
    DiskClaims claims("/mnt/a", f.system());
    const std::string reason =
        "/dev/sdc1 mounted at /mnt/e (/dev/sdc is another path to this disk)";
    CHECK(claims.claim(sdb) == "in use: " + reason);
    CHECK(disk_in_use(sdb, f.system()) == std::vector<std::string>{reason});
    // Explained without a probe.
    CHECK(f.opened_exclusive.empty());

    // Unmounted: both paths held, sdb first.
    fs::remove(f.root / "proc/mountinfo");
    write_file(f.root / "proc/mountinfo", "");
    REQUIRE(claims.claim(sdb).empty());
    CHECK(f.opened_exclusive == std::vector<std::string>{"/dev/sdb", "/dev/sdc"});

    // Lost and back: everything let go, then both taken again; a path someone else
    // holds now keeps the disk gone, and the whole disk is let go.
    claims.release(sdb);
    f.opened_exclusive.clear();
    f.exclusive["/dev/sdc"] = -EBUSY;
    CHECK(claims.reclaim(sdb) == "in use: /dev/sdc is open exclusively by another program "
                                 "(/dev/sdc is another path to this disk)");
    f.exclusive.erase("/dev/sdc");
    CHECK(claims.reclaim(sdb).empty());
    CHECK(f.opened_exclusive ==
          std::vector<std::string>{"/dev/sdb", "/dev/sdc", "/dev/sdb", "/dev/sdc"});
    // A disk without a stable id is only its own block device.
    CHECK(block_devices_of_disk(disk("sg1", "sdb", ""), f.system().sysfs_root) ==
          std::vector<std::string>{"sdb"});
}

TEST_CASE("a disk without a block device or stable id is held by its sg name")
{
    FakeSystem f;
    DiskClaims claims("/mnt/a", f.system());
    REQUIRE(claims.claim(disk("sg3", "", "")).empty());
    CHECK(f.opened_exclusive.empty());
    CHECK(!ServeLock::holder(f.system().lock_dir, "sg3").empty());
}

TEST_CASE("release lets go of the block device, reclaim takes the returning one")
{
    FakeSystem f;
    DiskClaims claims("/mnt/a", f.system());
    REQUIRE(claims.claim(disk("sg1", "sdb", "naa.1")).empty());
    claims.release(disk("sg1", "sdb", "naa.1"));
    // Back as sg3 / sda, which someone mounted meanwhile: refused, the lock kept.
    f.mount("8:2", "/mnt/e", "ext4");
    CHECK(claims.reclaim(disk("sg3", "sda", "naa.1")) == "in use: /dev/sda2 mounted at /mnt/e");
    CHECK(!ServeLock::holder(f.system().lock_dir, "naa.1").empty());
    CHECK(claims.reclaim(disk("sg1", "sdb", "naa.1")).empty());
    // A disk this mount never claimed: nothing to do.
    CHECK(claims.reclaim(disk("sg0", "sda", "naa.0")).empty());
}

TEST_CASE("after a fork the lock files name the new holder")
{
    FakeSystem f;
    DiskClaims claims("/mnt/a", f.system());
    REQUIRE(claims.claim(disk("sg1", "sdb", "naa.1")).empty());
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        claims.holder_moved_here();
        _exit(0);
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    // The child's copy of the lock is the parent's: still held, now naming the child.
    CHECK(ServeLock::holder(f.system().lock_dir, "naa.1") ==
          "sgfs at /mnt/a (pid " + std::to_string(child) + ")");
}

TEST_CASE("lock files that are not ours to trust are refused")
{
    FakeSystem f;
    DiskClaims claims("/mnt/a", f.system());
    fs::create_directories(f.root / "run/sgfs");
    // A hard link: ftruncate would empty the file it links to.
    write_file(f.root / "victim", "keep me\n");
    fs::create_hard_link(f.root / "victim", f.root / "run/sgfs/naa.1.lock");
    const std::string lock = (f.root / "run/sgfs/naa.1.lock").string();
    CHECK(claims.claim(disk("sg1", "sdb", "naa.1")) ==
          "not claimable: not using " + lock + ": not a regular file with one link (remove it)");
    std::ifstream victim(f.root / "victim");
    std::string text;
    std::getline(victim, text);
    CHECK(text == "keep me");
    // Not a regular file.
    REQUIRE(mkfifo((f.root / "run/sgfs/naa.0.lock").c_str(), 0666) == 0);
    CHECK(claims.claim(disk("sg0", "sda", "naa.0")) ==
          "not claimable: not using " + (f.root / "run/sgfs/naa.0.lock").string() +
              ": not a regular file with one link (remove it)");
    // Another user's (only root can make one here).
    if (geteuid() == 0) {
        const fs::path foreign = f.root / "run/sgfs/naa.2.lock";
        write_file(foreign, "");
        REQUIRE(chown(foreign.c_str(), 12345, 12345) == 0);
        CHECK(claims.claim(disk("sg2", "sdc", "naa.2")) ==
              "not claimable: not using " + foreign.string() +
                  ": it belongs to uid 12345, not to you or root (remove it if no sgfs of "
                  "that user serves the disk)");
    }
}

TEST_CASE("a holder probe's brief shared lock does not refuse a mount")
{
    FakeSystem f;
    fs::create_directories(f.root / "run/sgfs");
    const fs::path lock = f.root / "run/sgfs/naa.1.lock";
    write_file(lock, "");
    // What ServeLock::holder() does for a moment: a shared lock on the unnamed file.
    OwnedFd probe(::open(lock.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(::flock(probe.get(), LOCK_SH | LOCK_NB) == 0);
    // Let go while the claim runs: its first try may meet the probe (then it retries) or
    // not; either way the claim must succeed. No sleep: on a loaded machine a sleeping
    // thread could outlast the claim's few retries and fail the test for no fault of core.
    std::thread unlock([&probe] { probe.reset(); });
    DiskClaims claims("/mnt/a", f.system());
    const std::string why = claims.claim(disk("sg1", "sdb", "naa.1"));
    unlock.join();
    CHECK(why.empty());
    // A real holder (the claim above) with no name in the file, as between its flock and
    // name_holder(): still refused, after the retries.
    DiskClaims other("/mnt/b", f.system());
    std::ofstream(lock, std::ios::trunc).flush();
    CHECK(other.claim(disk("sg5", "sdf", "naa.1")) == "already served by another sgfs mount");
}

TEST_CASE("mountinfo: trailing blanks end no field")
{
    const auto mounts = parse_mountinfo("36 25 8:1 / /boot rw - ext4 /dev/sda1 rw \t \n");
    REQUIRE(mounts.size() == 1);
    CHECK(mounts[0].mount_point == "/boot");
    CHECK(mounts[0].fstype == "ext4");
}

TEST_CASE("a name sysfs does not know has no users to report")
{
    FakeSystem f;
    f.mount("8:0", "/mnt/x", "ext4");
    CHECK(block_device_users("sdz", f.system()).empty());
    CHECK(block_device_in_use("sdz", f.system()).empty());
    CHECK(f.opened_exclusive.empty()); // no probe of a name sysfs does not list
}

TEST_CASE("the real system: device numbers by stat(2), O_EXCL opens by open(2)")
{
    FakeSystem f;
    const InUseSystem real = system_in_use();
    CHECK(real.sysfs_root == "/sys");
    CHECK(real.mountinfo_path == "/proc/self/mountinfo");
    DeviceNumber number{9, 9};
    // A character device and a regular file (a swap file) are no block devices.
    CHECK(real.device_number("/dev/null", number) == -ENOTBLK);
    write_file(f.root / "swapfile", "x");
    CHECK(real.device_number((f.root / "swapfile").string(), number) == -ENOTBLK);
    CHECK(real.device_number((f.root / "missing").string(), number) == -ENOENT);
    CHECK(number == DeviceNumber{9, 9});
    // A block special file's own number, as mknod(2) made it (root only; not opened).
    const fs::path node = f.root / "sdq1";
    if (::mknod(node.c_str(), S_IFBLK | 0600, makedev(65, 1)) == 0) {
        CHECK(real.device_number(node.string(), number) == 0);
        CHECK(number == DeviceNumber{65, 1});
    } else {
        MESSAGE("mknod not permitted here: the block device case is not checked");
    }
    CHECK(real.open_exclusive((f.root / "missing").string()) == -ENOENT);
    const int fd = real.open_exclusive((f.root / "swapfile").string());
    CHECK(fd >= 0);
    if (fd >= 0)
        ::close(fd);
}

TEST_CASE("a lock is named only by its holder, and only when the lock dir can be made")
{
    FakeSystem f;
    // Not taken: nothing to write to.
    const ServeLock untaken;
    CHECK(untaken.name_holder("/mnt/a", getpid()) == -EBADF);
    // The lock directory's parent is missing: mkdir's errno, and the directory named.
    ServeLock lock;
    std::string message;
    const std::string nowhere = (f.root / "no/such/dir").string();
    CHECK(ServeLock::take(nowhere, "naa.1", lock, message) == -ENOENT);
    CHECK(message == "cannot make " + nowhere + ": " + std::strerror(ENOENT));
    CHECK(lock.name_holder("/mnt/a", getpid()) == -EBADF);
}

TEST_CASE("a lock file that is a symbolic link is not followed")
{
    FakeSystem f;
    fs::create_directories(f.root / "run/sgfs");
    write_file(f.root / "victim", "keep me\n");
    fs::create_symlink(f.root / "victim", f.root / "run/sgfs/naa.1.lock");
    DiskClaims claims("/mnt/a", f.system());
    const std::string lock = (f.root / "run/sgfs/naa.1.lock").string();
    CHECK(claims.claim(disk("sg1", "sdb", "naa.1")) ==
          "not claimable: cannot open " + lock + ": " + std::strerror(ELOOP));
    std::ifstream victim(f.root / "victim");
    std::string text;
    std::getline(victim, text);
    CHECK(text == "keep me");
    CHECK(f.opened_exclusive.empty());
}

TEST_CASE("holder_moved_here writes this process into every lock it holds")
{
    FakeSystem f;
    DiskClaims claims("/mnt/a", f.system());
    REQUIRE(claims.claim(disk("sg1", "sdb", "naa.1")).empty());
    REQUIRE(claims.claim(disk("sg0", "sda", "naa.0")).empty());
    for (const char *name : {"naa.0.lock", "naa.1.lock"})
        std::ofstream(f.root / "run/sgfs" / name, std::ios::trunc) << "stale\n1\n";
    claims.holder_moved_here();
    const std::string holder = "sgfs at /mnt/a (pid " + std::to_string(getpid()) + ")";
    CHECK(ServeLock::holder(f.system().lock_dir, "naa.0") == holder);
    CHECK(ServeLock::holder(f.system().lock_dir, "naa.1") == holder);
}

namespace
{

// How many of the first `bytes` of `path` are in the page cache, by mincore(2).
std::size_t cached_pages(const fs::path &path, std::size_t bytes)
{
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    void *map = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    REQUIRE(map != MAP_FAILED);
    const long page = sysconf(_SC_PAGESIZE);
    std::vector<unsigned char> resident((bytes + page - 1) / page);
    REQUIRE(::mincore(map, bytes, resident.data()) == 0);
    ::munmap(map, bytes);
    return static_cast<std::size_t>(
        std::count_if(resident.begin(), resident.end(), [](unsigned char r) { return r & 1; }));
}

} // namespace

TEST_CASE("dropping cached pages empties the page cache of the held block devices only")
{
    FakeSystem f;
    // The "block devices" are files on a disk file system, so that the kernel's page cache
    // (mincore) says what posix_fadvise did.
    constexpr std::size_t bytes = std::size_t{256} * 1024;
    const fs::path held = f.root / "held", other = f.root / "other";
    for (const fs::path &file : {held, other}) {
        const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        REQUIRE(fd >= 0);
        const std::vector<char> data(bytes, 'x');
        REQUIRE(::write(fd, data.data(), bytes) == static_cast<ssize_t>(bytes));
        REQUIRE(::fsync(fd) == 0);
        ::close(fd);
    }
    InUseSystem system = f.system();
    system.open_exclusive = [held](const std::string &path) {
        return path == "/dev/sdb" ? ::open(held.c_str(), O_RDONLY | O_CLOEXEC) : -ENOENT;
    };
    DiskClaims claims("/mnt/a", system);
    const DiskInfo sdb = disk("sg1", "sdb", "naa.1");
    REQUIRE(claims.claim(sdb).empty());
    if (cached_pages(held, bytes) == 0 || cached_pages(other, bytes) == 0) {
        MESSAGE("the written pages are not cached here: nothing to observe");
        return;
    }
    // A disk this mount does not hold: nothing dropped.
    claims.drop_cached_pages(disk("sg0", "sda", "naa.0"));
    CHECK(cached_pages(held, bytes) == bytes / sysconf(_SC_PAGESIZE));
    claims.drop_cached_pages(sdb);
    CHECK(cached_pages(held, bytes) == 0);
    CHECK(cached_pages(other, bytes) == bytes / sysconf(_SC_PAGESIZE));
}

TEST_CASE("holder(): no lock file is no holder; a held file without a name line is a mount")
{
    FakeSystem f;
    CHECK(ServeLock::holder(f.system().lock_dir, "naa.9").empty());
    ServeLock lock;
    std::string message;
    REQUIRE(ServeLock::take(f.system().lock_dir, "naa.9", lock, message) == 0);
    // What a holder wrote half of, or some older format: no mount point line.
    std::ofstream(f.root / "run/sgfs/naa.9.lock", std::ios::trunc) << "/mnt/a";
    CHECK(ServeLock::holder(f.system().lock_dir, "naa.9") == "another sgfs mount");
    std::ofstream(f.root / "run/sgfs/naa.9.lock", std::ios::trunc) << "\n1234\n";
    CHECK(ServeLock::holder(f.system().lock_dir, "naa.9") == "another sgfs mount");
    REQUIRE(lock.name_holder("/mnt/b", 42) == 0);
    CHECK(ServeLock::holder(f.system().lock_dir, "naa.9") == "sgfs at /mnt/b (pid 42)");
}
