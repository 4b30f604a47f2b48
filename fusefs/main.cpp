// sgfs: SCSI disks as files, over FUSE and the Linux sg driver. See `sgfs --help`.
#include "command_line.hpp"
#include "device_list.hpp"
#include "help_text.hpp"
#include "mount_command.hpp"

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char **argv)
{
    using namespace sgfs::fusefs;
    const std::vector<std::string> args(argv + 1, argv + argc);
    CommandLine command;
    if (const std::string error = parse_command_line(args, command); !error.empty()) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return 1;
    }
    switch (command.action) {
    case Action::help:
        std::fputs(help_text().c_str(), stdout);
        return 0;
    case Action::version:
        std::fputs(version_text().c_str(), stdout);
        return 0;
    case Action::list:
        return list_devices(command.options);
    case Action::mount:
        break;
    }
    return mount_command(command);
}
