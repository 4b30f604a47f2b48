// argv of `sgfs SOURCE MOUNTPOINT [-o opts] [-f] [-d] [-s]`, `sgfs --list`, `--help`,
// `--version`. Pure, like the option parser: main() does the IO.
#pragma once

#include "mount_options.hpp"

#include <string>
#include <vector>

namespace sgfs::fusefs
{

enum class Action { mount, list, help, version };

struct CommandLine {
    Action action = Action::mount;
    std::string source;     // "all", "sg0,sg2", "/dev/sg1", "wwn-0x5000c500a1b2c3d4"
    std::string mountpoint; // as given; resolved to an absolute path before mounting
    MountOptions options;
    bool foreground = false;
    bool single_threaded = false;
};

// `args` excludes argv[0]. Options and the two positionals may come in any order, since
// mount.fuse3 runs `sgfs SOURCE MOUNTPOINT -o opts` while people type `sgfs -o opts ...`.
// Returns "" or the one-line error to print.
std::string parse_command_line(const std::vector<std::string> &args, CommandLine &out);

} // namespace sgfs::fusefs
