#include "command_line.hpp"

#include <algorithm>

namespace sgfs::fusefs
{
namespace
{

bool is_help(const std::string &arg)
{
    return arg == "-h" || arg == "--help";
}
bool is_version(const std::string &arg)
{
    return arg == "-V" || arg == "--version";
}

} // namespace

std::string parse_command_line(const std::vector<std::string> &args, CommandLine &out)
{
    out = CommandLine{};
    // --help and --version win over everything else, even over arguments that would not
    // parse, so that `sgfs <anything> --help` always helps.
    if (std::any_of(args.begin(), args.end(), is_help)) {
        out.action = Action::help;
        return {};
    }
    if (std::any_of(args.begin(), args.end(), is_version)) {
        out.action = Action::version;
        return {};
    }

    std::vector<std::string> positionals;
    bool options_done = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string &arg = args[i];
        if (options_done || arg.empty() || arg[0] != '-' || arg == "-") {
            positionals.push_back(arg);
        } else if (arg == "--") {
            options_done = true;
        } else if (arg == "-o") {
            if (i + 1 == args.size())
                return "sgfs: option '-o' needs an argument";
            if (std::string error = apply_mount_options(args[++i], out.options); !error.empty())
                return error;
        } else if (arg.starts_with("-o")) {
            if (std::string error = apply_mount_options(arg.substr(2), out.options); !error.empty())
                return error;
        } else if (arg == "-f" || arg == "--foreground") {
            out.foreground = true;
        } else if (arg == "-d" || arg == "--debug") {
            out.options.debug = true;
        } else if (arg == "-s" || arg == "--single-threaded") {
            out.single_threaded = true;
        } else if (arg == "-l" || arg == "--list") {
            out.action = Action::list;
        } else {
            return "sgfs: unknown option '" + arg + "' (see sgfs --help)";
        }
    }
    // libfuse's own rule: tracing every request to a closed stderr would be pointless.
    if (out.options.debug)
        out.foreground = true;

    if (out.action == Action::list) {
        if (!positionals.empty())
            return "sgfs: --list takes no SOURCE or MOUNTPOINT, got '" + positionals[0] + "'";
        return {};
    }
    if (positionals.empty())
        return "sgfs: missing SOURCE and MOUNTPOINT (see sgfs --help)";
    if (positionals.size() == 1)
        return "sgfs: missing MOUNTPOINT after '" + positionals[0] + "'";
    if (positionals.size() > 2)
        return "sgfs: unexpected argument '" + positionals[2] + "'";
    out.source = positionals[0];
    out.mountpoint = positionals[1];
    if (out.source.empty())
        return "sgfs: empty SOURCE (use all, sgN, /dev/sgN or a stable id)";
    return {};
}

} // namespace sgfs::fusefs
