// --help and --version texts.
#pragma once

#include <string>

namespace sgfs::fusefs
{

// Every option with its default; the defaults are read from DiskOptions and MountOptions
// so the text cannot drift from the code.
std::string help_text();
std::string version_text();

} // namespace sgfs::fusefs
