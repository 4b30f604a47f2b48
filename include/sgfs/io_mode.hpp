// How data moves between the sg driver and our buffers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sgfs
{

// The three ways the sg driver can move data. `auto` is a policy over them (see
// IoPolicy), never a transfer mode of its own.
enum class TransferMode : std::uint8_t { indirect = 0, direct = 1, mmap = 2 };
inline constexpr int transfer_mode_count = 3;

enum class IoMode : std::uint8_t { automatic, indirect, direct, mmap };

const char *to_string(TransferMode mode);
const char *to_string(IoMode mode);
std::optional<IoMode> parse_io_mode(std::string_view text);

// The sg driver's switch for direct IO (0 or 1), read when a disk is opened: its file
// under `sysfs_root` ("/sys/module/sg/parameters/allow_dio").
std::string allow_dio_parameter(const std::string &sysfs_root = "/sys");

// Why the io= mode asked for can only fall back on this machine, in one line; empty when it
// works. io=direct with allow_dio off moves every byte indirectly: the driver copies
// quietly. (io=auto picks direct IO only where allow_dio is on, so it asks for nothing
// that falls back.)
std::string io_mode_fallback(IoMode requested, bool allow_dio);

} // namespace sgfs
