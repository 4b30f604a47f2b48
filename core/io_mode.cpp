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

} // namespace sgfs
