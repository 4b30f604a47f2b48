// How data moves between the sg driver and our buffers.
#pragma once

#include <cstdint>
#include <optional>
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

} // namespace sgfs
