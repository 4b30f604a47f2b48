// The -o option parser, size parsing and the sgfs command line: pure functions, no FUSE.
#include "command_line.hpp"
#include "mount_options.hpp"
#include "size_text.hpp"

#include <doctest/doctest.h>

using namespace sgfs;
using namespace sgfs::fusefs;

TEST_CASE("sizes take k, m and g suffixes in powers of 1024")
{
    CHECK(parse_size("0") == 0U);
    CHECK(parse_size("4096") == 4096U);
    CHECK(parse_size("4k") == 4096U);
    CHECK(parse_size("4K") == 4096U);
    CHECK(parse_size("2m") == 2U * 1024 * 1024);
    CHECK(parse_size("2M") == 2U * 1024 * 1024);
    CHECK(parse_size("1g") == 1024U * 1024 * 1024);
    CHECK(parse_size("1G") == 1024U * 1024 * 1024);
}

TEST_CASE("sizes reject everything else")
{
    for (const char *text : {"", "k", "-1", "+4", "1.5M", "4 M", "4MB", "4KiB", "4t", "0x10",
                             "18446744073709551616", "17179869184G"})
        CHECK_MESSAGE(!parse_size(text), text);
}

TEST_CASE("sizes print in the largest exact unit, or rounded")
{
    CHECK(format_size_exact(std::uint64_t{1024} * 1024) == "1MiB");
    CHECK(format_size_exact(std::uint64_t{1536} * 1024) == "1536KiB");
    CHECK(format_size_exact(4100) == "4100");
    CHECK(format_size_exact(0) == "0");
    CHECK(format_size_option(std::uint64_t{64} * 1024) == "64k");
    CHECK(format_size_option(std::uint64_t{1} << 20) == "1m");
    CHECK(format_size_option(std::uint64_t{3} << 30) == "3g");
    CHECK(format_size_option(1000) == "1000");
    CHECK(parse_size(format_size_option(std::uint64_t{1536} * 1024)) == 1536U * 1024);
    CHECK(format_size_rounded(512) == "512B");
    CHECK(format_size_rounded(std::uint64_t{1536} * 1024) == "1.50MiB");
    CHECK(format_size_rounded(std::uint64_t{1} << 40) == "1.00TiB");
}

TEST_CASE("no options give the documented defaults")
{
    const auto parsed = parse_mount_options("");
    REQUIRE(parsed.ok());
    const MountOptions &o = parsed.options;
    const DiskOptions defaults;
    CHECK(o.disk.io_mode == IoMode::automatic);
    CHECK(o.disk.mmap_min == defaults.mmap_min);
    CHECK(o.disk.reserve == defaults.reserve);
    CHECK(o.disk.queue_depth == defaults.queue_depth);
    CHECK(o.disk.max_io == 0);
    CHECK(o.disk.timeout_seconds == defaults.timeout_seconds);
    CHECK(o.disk.retries == defaults.retries);
    CHECK_FALSE(o.disk.fua);
    CHECK(o.disk.readahead);
    CHECK(o.copy_file_range);
    CHECK(o.aligned_writes);
    CHECK_FALSE(o.disk.read_only);
    CHECK(o.cache == CacheMode::none);
    CHECK_FALSE(o.uid);
    CHECK_FALSE(o.gid);
    CHECK_FALSE(o.umask);
    CHECK_FALSE(o.debug);
    CHECK(o.fuse_options.empty());
}

TEST_CASE("every sgfs option is parsed into its field")
{
    const auto parsed = parse_mount_options(
        "io=mmap,mmap_min=128k,reserve=4M,queue_depth=8,max_io=512k,timeout=30,retries=0,"
        "fua,noreadahead,nocopy_file_range,cache=page,ro,uid=1000,gid=6,umask=027,debug,"
        "noaligned_writes");
    REQUIRE_MESSAGE(parsed.ok(), parsed.error);
    const MountOptions &o = parsed.options;
    CHECK(o.disk.io_mode == IoMode::mmap);
    CHECK(o.disk.mmap_min == 128 * 1024);
    CHECK(o.disk.reserve == 4 * 1024 * 1024);
    CHECK(o.disk.queue_depth == 8);
    CHECK(o.disk.max_io == 512 * 1024);
    CHECK(o.disk.timeout_seconds == 30);
    CHECK(o.disk.retries == 0);
    CHECK(o.disk.fua);
    CHECK_FALSE(o.disk.readahead);
    CHECK_FALSE(o.copy_file_range);
    CHECK(o.cache == CacheMode::page);
    CHECK(o.disk.read_only);
    CHECK(o.uid == 1000U);
    CHECK(o.gid == 6U);
    CHECK(o.umask == 027U);
    CHECK(o.debug);
    CHECK_FALSE(o.aligned_writes);
}

TEST_CASE("every io mode parses")
{
    CHECK(parse_mount_options("io=auto").options.disk.io_mode == IoMode::automatic);
    CHECK(parse_mount_options("io=indirect").options.disk.io_mode == IoMode::indirect);
    CHECK(parse_mount_options("io=direct").options.disk.io_mode == IoMode::direct);
    CHECK(parse_mount_options("io=mmap").options.disk.io_mode == IoMode::mmap);
}

TEST_CASE("later options win")
{
    CHECK_FALSE(parse_mount_options("ro,rw").options.disk.read_only);
    CHECK(parse_mount_options("rw,ro").options.disk.read_only);
    CHECK_FALSE(parse_mount_options("fua,nofua").options.disk.fua);
    CHECK(parse_mount_options("noreadahead,readahead").options.disk.readahead);
    CHECK(parse_mount_options("nocopy_file_range,copy_file_range").options.copy_file_range);
    CHECK_FALSE(parse_mount_options("copy_file_range,nocopy_file_range").options.copy_file_range);
    CHECK(parse_mount_options("noaligned_writes,aligned_writes").options.aligned_writes);
    CHECK(parse_mount_options("queue_depth=2,queue_depth=16").options.disk.queue_depth == 16);
    CHECK(parse_mount_options("cache=page,cache=none").options.cache == CacheMode::none);

    MountOptions accumulated;
    REQUIRE(apply_mount_options("io=direct,queue_depth=2", accumulated).empty());
    REQUIRE(apply_mount_options("queue_depth=3", accumulated).empty());
    CHECK(accumulated.disk.io_mode == IoMode::direct);
    CHECK(accumulated.disk.queue_depth == 3);
}

TEST_CASE("every flag is switched on by its name and off by its no- form, never with a value")
{
    struct Flag {
        const char *on;
        const char *off;
        bool MountOptions::*field;
        bool DiskOptions::*disk_field;
    };
    const Flag flags[] = {
        {"fua", "nofua", nullptr, &DiskOptions::fua},
        {"readahead", "noreadahead", nullptr, &DiskOptions::readahead},
        {"ro", "rw", nullptr, &DiskOptions::read_only},
        {"aligned_writes", "noaligned_writes", &MountOptions::aligned_writes, nullptr},
        {"copy_file_range", "nocopy_file_range", &MountOptions::copy_file_range, nullptr},
        {"copy_offload", "nocopy_offload", nullptr, &DiskOptions::copy_offload},
    };
    for (const Flag &flag : flags) {
        CAPTURE(flag.on);
        const auto value = [&flag](const std::string &text) {
            const auto parsed = parse_mount_options(text);
            REQUIRE_MESSAGE(parsed.ok(), parsed.error);
            return flag.field ? parsed.options.*flag.field : parsed.options.disk.*flag.disk_field;
        };
        CHECK(value(flag.on));
        CHECK_FALSE(value(flag.off));
        CHECK(value(std::string(flag.off) + "," + flag.on));
        CHECK_FALSE(value(std::string(flag.on) + "," + flag.off));
        CHECK(parse_mount_options(std::string(flag.on) + "=1").error ==
              "sgfs: option '" + std::string(flag.on) + "' takes no value");
        CHECK(parse_mount_options(std::string(flag.off) + "=0").error ==
              "sgfs: option '" + std::string(flag.off) + "' takes no value");
    }
    // debug has no way back: there is nothing to undo once libfuse traces.
    CHECK(parse_mount_options("debug").options.debug);
    CHECK(parse_mount_options("debug=1").error == "sgfs: option 'debug' takes no value");
    CHECK(parse_mount_options("nodebug").error == "sgfs: unknown option 'nodebug'");
}

TEST_CASE("bad values name the option and the value")
{
    const std::pair<const char *, const char *> cases[] = {
        {"queue_depth=abc", "sgfs: bad value for option 'queue_depth': 'abc'"},
        {"queue_depth=0", "sgfs: bad value for option 'queue_depth': '0'"},
        {"queue_depth=65", "sgfs: bad value for option 'queue_depth': '65'"},
        {"queue_depth=-1", "sgfs: bad value for option 'queue_depth': '-1'"},
        {"io=fast", "sgfs: bad value for option 'io': 'fast'"},
        {"io=AUTO", "sgfs: bad value for option 'io': 'AUTO'"},
        {"reserve=0", "sgfs: bad value for option 'reserve': '0'"},
        {"reserve=1x", "sgfs: bad value for option 'reserve': '1x'"},
        {"reserve=2g", "sgfs: bad value for option 'reserve': '2g'"},
        {"mmap_min=0k", "sgfs: bad value for option 'mmap_min': '0k'"},
        {"max_io=-4k", "sgfs: bad value for option 'max_io': '-4k'"},
        {"timeout=0", "sgfs: bad value for option 'timeout': '0'"},
        {"timeout=1.5", "sgfs: bad value for option 'timeout': '1.5'"},
        {"retries=101", "sgfs: bad value for option 'retries': '101'"},
        {"cache=yes", "sgfs: bad value for option 'cache': 'yes'"},
        {"uid=alice", "sgfs: bad value for option 'uid': 'alice'"},
        {"uid=4294967295", "sgfs: bad value for option 'uid': '4294967295'"},
        {"gid=-1", "sgfs: bad value for option 'gid': '-1'"},
        {"umask=0888", "sgfs: bad value for option 'umask': '0888'"},
        {"umask=1777", "sgfs: bad value for option 'umask': '1777'"},
    };
    // No structured bindings: clang 14 cannot capture them in doctest's lambdas.
    for (const auto &item : cases) {
        const auto parsed = parse_mount_options(item.first);
        CHECK_MESSAGE(!parsed.ok(), item.first);
        CHECK_MESSAGE(parsed.error.starts_with(item.second), parsed.error);
        CHECK_MESSAGE(parsed.error.find('\n') == std::string::npos, parsed.error);
    }
}

TEST_CASE("unknown options and misplaced values are refused")
{
    CHECK(parse_mount_options("foo").error == "sgfs: unknown option 'foo'");
    CHECK(parse_mount_options("io=auto,foo=1").error == "sgfs: unknown option 'foo'");
    CHECK(parse_mount_options("blkdev").error == "sgfs: unknown option 'blkdev'");
    CHECK(parse_mount_options("max_read=4096").error == "sgfs: unknown option 'max_read'");
    CHECK(parse_mount_options("queue_depth").error == "sgfs: option 'queue_depth' needs a value");
    CHECK(parse_mount_options("queue_depth=").error == "sgfs: option 'queue_depth' needs a value");
    CHECK(parse_mount_options("fua=1").error == "sgfs: option 'fua' takes no value");
    CHECK(parse_mount_options("ro=yes").error == "sgfs: option 'ro' takes no value");
    CHECK(parse_mount_options("readahead=4m").error == "sgfs: option 'readahead' takes no value");
    CHECK(parse_mount_options("allow_other,allow_root").error ==
          "sgfs: options 'allow_other' and 'allow_root' exclude each other");
}

TEST_CASE("FUSE and VFS options are handed to libfuse in order")
{
    const auto parsed = parse_mount_options(
        "allow_other,nodev,nosuid,noexec,noatime,dev,suid,context=system_u:object_r:tmp_t:s0,"
        "auto_unmount,sync");
    REQUIRE_MESSAGE(parsed.ok(), parsed.error);
    const std::vector<std::string> expected = {
        "allow_other",  "nodev", "nosuid", "noexec",
        "noatime",      "dev",   "suid",   "context=system_u:object_r:tmp_t:s0",
        "auto_unmount", "sync"};
    CHECK(parsed.options.fuse_options == expected);
}

TEST_CASE("ro and rw are not passed through: they come from read_only")
{
    const auto parsed = parse_mount_options("ro,allow_other");
    REQUIRE(parsed.ok());
    CHECK(parsed.options.disk.read_only);
    CHECK(parsed.options.fuse_options == std::vector<std::string>{"allow_other"});
}

TEST_CASE("fsname and subtype are kept apart; default_permissions is implied")
{
    const auto parsed = parse_mount_options("fsname=disks,subtype=scsi,default_permissions");
    REQUIRE(parsed.ok());
    CHECK(parsed.options.fsname == "disks");
    CHECK(parsed.options.subtype == "scsi");
    CHECK(parsed.options.fuse_options.empty());
}

TEST_CASE("fstab-only and meaningless options are accepted silently")
{
    const auto parsed = parse_mount_options(
        "defaults,auto,noauto,user,user=alice,nouser,users,owner,group,_netdev,nofail,"
        "comment=systemd.automount,x-systemd.device-timeout=10,X-mount.mkdir,relatime,"
        "norelatime,strictatime,nostrictatime,nodiratime,lazytime,nolazytime");
    REQUIRE_MESSAGE(parsed.ok(), parsed.error);
    CHECK(parsed.options.fuse_options.empty());
    CHECK_FALSE(parsed.options.disk.read_only);
}

TEST_CASE("what mount.fuse3 passes for a typical fstab line parses")
{
    // fstab: all /mnt/sg fuse.sgfs io=auto,allow_other,_netdev,nofail 0 0
    // mount(8) adds rw; mount.fuse3 drops _netdev and nofail and appends dev,suid.
    const auto parsed = parse_mount_options("rw,io=auto,allow_other,dev,suid");
    REQUIRE_MESSAGE(parsed.ok(), parsed.error);
    CHECK(parsed.options.fuse_options == std::vector<std::string>{"allow_other", "dev", "suid"});
}

TEST_CASE("option lists split at unescaped commas")
{
    CHECK(split_option_list("a,b,,c,") == std::vector<std::string>{"a", "b", "c"});
    CHECK(split_option_list("fsname=a\\,b,ro") == std::vector<std::string>{"fsname=a,b", "ro"});
    CHECK(split_option_list("") == std::vector<std::string>{});
    CHECK(parse_mount_options("fsname=sg0\\,sg1").options.fsname == "sg0,sg1");
}

namespace
{

std::string parse(const std::vector<std::string> &args, CommandLine &out)
{
    return parse_command_line(args, out);
}

} // namespace

TEST_CASE("the command line takes SOURCE and MOUNTPOINT around options")
{
    CommandLine cl;
    REQUIRE(parse({"all", "/mnt/sg", "-o", "io=mmap,allow_other", "-o", "ro"}, cl).empty());
    CHECK(cl.action == Action::mount);
    CHECK(cl.source == "all");
    CHECK(cl.mountpoint == "/mnt/sg");
    CHECK(cl.options.disk.io_mode == IoMode::mmap);
    CHECK(cl.options.disk.read_only);
    CHECK(cl.options.fuse_options == std::vector<std::string>{"allow_other"});
    CHECK_FALSE(cl.foreground);
    CHECK_FALSE(cl.single_threaded);

    REQUIRE(parse({"-f", "-s", "-oqueue_depth=2", "sg0,sg1", "mnt"}, cl).empty());
    CHECK(cl.source == "sg0,sg1");
    CHECK(cl.mountpoint == "mnt");
    CHECK(cl.foreground);
    CHECK(cl.single_threaded);
    CHECK(cl.options.disk.queue_depth == 2);
}

TEST_CASE("-d and -o debug imply foreground")
{
    CommandLine cl;
    REQUIRE(parse({"-d", "all", "/mnt"}, cl).empty());
    CHECK(cl.options.debug);
    CHECK(cl.foreground);
    REQUIRE(parse({"all", "/mnt", "-o", "debug"}, cl).empty());
    CHECK(cl.foreground);
}

TEST_CASE("help and version win over anything else")
{
    CommandLine cl;
    REQUIRE(parse({"-o", "bogus", "--help"}, cl).empty());
    CHECK(cl.action == Action::help);
    REQUIRE(parse({"-h"}, cl).empty());
    CHECK(cl.action == Action::help);
    REQUIRE(parse({"--version"}, cl).empty());
    CHECK(cl.action == Action::version);
    REQUIRE(parse({"x", "-V"}, cl).empty());
    CHECK(cl.action == Action::version);
}

TEST_CASE("--list takes options but no positionals")
{
    CommandLine cl;
    REQUIRE(parse({"--list", "-o", "reserve=4m"}, cl).empty());
    CHECK(cl.action == Action::list);
    CHECK(cl.options.disk.reserve == 4 * 1024 * 1024);
    CHECK(parse({"--list", "sg0"}, cl) == "sgfs: --list takes no SOURCE or MOUNTPOINT, got 'sg0'");
}

TEST_CASE("command line errors are one clear line")
{
    CommandLine cl;
    CHECK(parse({}, cl) == "sgfs: missing SOURCE and MOUNTPOINT (see sgfs --help)");
    CHECK(parse({"all"}, cl) == "sgfs: missing MOUNTPOINT after 'all'");
    CHECK(parse({"all", "/mnt", "extra"}, cl) == "sgfs: unexpected argument 'extra'");
    CHECK(parse({"all", "/mnt", "-o"}, cl) == "sgfs: option '-o' needs an argument");
    CHECK(parse({"all", "/mnt", "-x"}, cl) == "sgfs: unknown option '-x' (see sgfs --help)");
    CHECK(parse({"all", "/mnt", "-o", "queue_depth=x"}, cl)
              .starts_with("sgfs: bad value for option 'queue_depth': 'x'"));
    CHECK(parse({"", "/mnt"}, cl).starts_with("sgfs: empty SOURCE"));
}

TEST_CASE("-- ends the options")
{
    CommandLine cl;
    REQUIRE(parse({"-f", "--", "-odd-source", "/mnt"}, cl).empty());
    CHECK(cl.source == "-odd-source");
    CHECK(cl.foreground);
}
