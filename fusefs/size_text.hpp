// Byte sizes as people write them in mount options ("512k", "4M") and as we print them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sgfs::fusefs
{

// Digits with an optional k/K, m/M or g/G suffix (powers of 1024). Returns nullopt for
// anything else, including overflow. Zero parses; callers decide the allowed range.
std::optional<std::uint64_t> parse_size(std::string_view text);

// Exact, in the largest unit that divides it: "1MiB", "1536KiB", "4100" (bytes). For sizes
// people configure (reserve, max_io), where rounding would hide what the driver granted.
std::string format_size_exact(std::uint64_t bytes);

// Exact, in the syntax parse_size reads back: "64k", "1m", "4100". For --help defaults.
std::string format_size_option(std::uint64_t bytes);

// Rounded to two decimals in the largest unit not above it: "931.51GiB", "512B". For
// capacities, where the exact figure is in the byte count next to it.
std::string format_size_rounded(std::uint64_t bytes);

} // namespace sgfs::fusefs
