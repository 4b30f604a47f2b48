// Mounting and serving with libfuse: the session, the mount, signal handling, the
// daemonizing and the request loop, each held by a small RAII type so that every way out
// (a signal, an unmount, an error) unmounts and tears down in reverse order.
#pragma once

#include "filesystem.hpp"

#include <string>
#include <vector>

namespace sgfs::fusefs
{

struct SessionSettings {
    std::string mountpoint; // absolute, or /dev/fd/N from mount.fuse3 -o drop_privileges
    std::string fsname;     // what /proc/mounts shows as the source
    std::string subtype;    // the "sgfs" of fuse.sgfs
    bool foreground = false;
    bool single_threaded = false;
    // The source selects by rule (`all`): disks added and removed while mounted come and
    // go (hotplug.hpp). Capacity changes are followed for every source.
    bool hotplug = false;
};

// The -o string libfuse creates a session with: fsname, subtype, max_read (which init must
// match: configure_connection), default_permissions (the kernel checks the owner and mode
// we report), then `more` in order. Shared with bench/nullfs, which mounts like sgfs.
std::string session_option_string(const std::string &fsname, const std::string &subtype,
                                  const std::vector<std::string> &more);

// Mounts `filesystem`, daemonizes unless foreground, and serves until unmounted or sent
// SIGTERM, SIGINT or SIGHUP. Returns the process exit status. Nothing is mounted when it
// fails before serving; the message is on stderr.
int serve(Filesystem &filesystem, const MountOptions &options, const SessionSettings &settings);

} // namespace sgfs::fusefs
