// `sgfs SOURCE MOUNTPOINT`: everything that can fail is checked before anything is
// mounted (options, mount point, every disk opened), then the filesystem is served.
#pragma once

#include "command_line.hpp"

namespace sgfs::fusefs
{

// Returns the process exit status; errors are one line on stderr.
int mount_command(const CommandLine &command);

} // namespace sgfs::fusefs
