#include "sgfs/io_mode.hpp"

namespace sgfs
{

const char *to_string(TransferMode mode)
{
    switch (mode) {
    case TransferMode::indirect:
        return "indirect";
    case TransferMode::direct:
        return "direct";
    case TransferMode::mmap:
        return "mmap";
    }
    return "?";
}

const char *to_string(IoMode mode)
{
    switch (mode) {
    case IoMode::automatic:
        return "auto";
    case IoMode::indirect:
        return "indirect";
    case IoMode::direct:
        return "direct";
    case IoMode::mmap:
        return "mmap";
    }
    return "?";
}

std::optional<IoMode> parse_io_mode(std::string_view text)
{
    for (IoMode mode : {IoMode::automatic, IoMode::indirect, IoMode::direct, IoMode::mmap})
        if (text == to_string(mode))
            return mode;
    return std::nullopt;
}

std::string allow_dio_parameter(const std::string &sysfs_root)
{
    return sysfs_root + "/module/sg/parameters/allow_dio";
}

std::string io_mode_fallback(IoMode requested, bool allow_dio)
{
    if (requested != IoMode::direct || allow_dio)
        return {};
    const std::string parameter = allow_dio_parameter();
    return "io=direct falls back to indirect IO for every command: " + parameter +
           " is 0 (echo 1 > " + parameter + " to allow direct IO)";
}

} // namespace sgfs
