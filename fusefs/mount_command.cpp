#include "mount_command.hpp"

#include "filesystem.hpp"
#include "session.hpp"
#include "sgfs/disk_claim.hpp"
#include "sgfs/in_use.hpp"
#include "source_spec.hpp"
#include "tree.hpp"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <sys/stat.h>
#include <unistd.h>

namespace sgfs::fusefs
{
namespace
{

// The type of the FUSE file system mounted right at `path` ("fuse.sgfs"), else "". A
// second sgfs stacked there would hide the first, which keeps serving its disks unseen.
std::string fuse_mounted_at(const std::string &path)
{
    std::string fstype;
    for (const MountEntry &mount : read_mountinfo())
        if (mount.mount_point == path && (mount.fstype == "fuse" || mount.fstype == "fuseblk" ||
                                          mount.fstype.starts_with("fuse.")))
            fstype = mount.fstype; // the last one is on top
    return fstype;
}

// A FUSE mount whose daemon died (killed, crashed) answers every lookup with ENOTCONN until
// it is unmounted: say so, and how, rather than blame the directory.
std::string bad_mountpoint(const std::string &mountpoint, int error)
{
    if (error == ENOTCONN)
        return "sgfs: " + mountpoint +
               " is a dead FUSE mount (its daemon is gone: " + std::strerror(ENOTCONN) +
               "); run fusermount3 -u " + mountpoint;
    return "sgfs: bad mount point '" + mountpoint + "': " + std::strerror(error);
}

// The mount point as an absolute path: fuse_daemonize() changes to "/", and unmounting at
// exit must still find it. "/dev/fd/N" is mount.fuse3's drop_privileges hand-over of an
// already opened /dev/fuse and is passed on untouched. A directory with a FUSE file
// system mounted on it already is refused.
std::string resolve_mountpoint(const std::string &mountpoint, std::string &error)
{
    if (mountpoint.starts_with("/dev/fd/"))
        return mountpoint;
    char resolved[PATH_MAX];
    if (!realpath(mountpoint.c_str(), resolved)) {
        error = bad_mountpoint(mountpoint, errno);
        return {};
    }
    struct stat st {
    };
    if (stat(resolved, &st) != 0) {
        error = bad_mountpoint(mountpoint, errno);
        return {};
    }
    if (!S_ISDIR(st.st_mode)) {
        error = bad_mountpoint(mountpoint, ENOTDIR);
        return {};
    }
    if (const std::string fstype = fuse_mounted_at(resolved); !fstype.empty()) {
        error = "sgfs: " + std::string(resolved) + " is already a mount point (" + fstype +
                "); umount it first";
        return {};
    }
    return resolved;
}

std::vector<DiskNodeSource> describe_disks(const std::vector<std::unique_ptr<Disk>> &disks)
{
    std::vector<DiskNodeSource> sources;
    for (const auto &disk : disks) {
        DiskNodeSource source;
        source.info = disk->info();
        // The node was just opened, so stat() only fails in a race with udev; then the
        // file is root's alone, the safe side.
        struct stat node {
        };
        if (stat(source.info.sg_path.c_str(), &node) == 0) {
            source.uid = node.st_uid;
            source.gid = node.st_gid;
            source.mode = node.st_mode & 07777;
        }
        sources.push_back(std::move(source));
    }
    return sources;
}

} // namespace

int mount_command(const CommandLine &command)
{
    std::string error;
    const std::string mountpoint = resolve_mountpoint(command.mountpoint, error);
    if (!error.empty()) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return 1;
    }

    SourceSpec spec;
    if (error = parse_source(command.source, spec); !error.empty()) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return 1;
    }
    // The disks are held from here until the process ends (disk_claim.hpp); the daemon
    // child inherits the holds (see serve()).
    MountOptions options = command.options;
    const auto claims = std::make_shared<DiskClaims>(mountpoint, system_in_use());
    options.disk.claims = claims;
    OpenedDisks opened =
        open_source_disks(spec, enumerate_sg_devices(), disk_opener(options.disk),
                          [&claims](const DiskInfo &disk) { return claims->claim(disk); });
    for (const std::string &warning : opened.warnings)
        std::fprintf(stderr, "%s\n", warning.c_str());
    if (!opened.error.empty()) {
        std::fprintf(stderr, "%s\n", opened.error.c_str());
        return 1;
    }
    // allow_dio is the driver's, not a disk's: one line says it for all of them.
    for (const auto &disk : opened.disks)
        if (const std::string why = io_mode_fallback(options.disk.io_mode, disk->info().allow_dio);
            !why.empty()) {
            std::fprintf(stderr, "sgfs: warning: %s\n", why.c_str());
            break;
        }

    TreeOptions tree_options;
    tree_options.uid = options.uid;
    tree_options.gid = options.gid;
    tree_options.umask = options.umask;
    tree_options.mounter_uid = getuid();
    tree_options.mounter_gid = getgid();
    tree_options.mount_time = std::time(nullptr);
    Tree tree(describe_disks(opened.disks), tree_options);
    Filesystem filesystem(std::move(opened.disks), std::move(tree), options);

    SessionSettings settings;
    settings.mountpoint = mountpoint;
    settings.fsname = options.fsname.value_or(command.source);
    settings.subtype = options.subtype.value_or("sgfs");
    settings.foreground = command.foreground;
    settings.single_threaded = command.single_threaded;
    settings.hotplug = spec.all;
    return serve(filesystem, options, settings);
}

} // namespace sgfs::fusefs
