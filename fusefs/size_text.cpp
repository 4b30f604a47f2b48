#include "size_text.hpp"

#include <array>
#include <charconv>
#include <cstdio>
#include <limits>
#include <utility>

namespace sgfs::fusefs
{
namespace
{

struct Unit {
    const char *name;
    std::uint64_t bytes;
};

constexpr std::array<Unit, 4> binary_units{{
    {"TiB", std::uint64_t{1} << 40},
    {"GiB", std::uint64_t{1} << 30},
    {"MiB", std::uint64_t{1} << 20},
    {"KiB", std::uint64_t{1} << 10},
}};

std::optional<std::uint64_t> suffix_multiplier(char suffix)
{
    switch (suffix) {
    case 'k':
    case 'K':
        return std::uint64_t{1} << 10;
    case 'm':
    case 'M':
        return std::uint64_t{1} << 20;
    case 'g':
    case 'G':
        return std::uint64_t{1} << 30;
    default:
        return std::nullopt;
    }
}

} // namespace

std::optional<std::uint64_t> parse_size(std::string_view text)
{
    std::uint64_t multiplier = 1;
    if (!text.empty() && (text.back() < '0' || text.back() > '9')) {
        const auto unit = suffix_multiplier(text.back());
        if (!unit)
            return std::nullopt;
        multiplier = *unit;
        text.remove_suffix(1);
    }
    // from_chars alone would accept a leading '-' for signed types and stop at the first
    // non-digit; insisting on all digits rejects "1.5M", "+4k" and "4 M".
    if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos)
        return std::nullopt;
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size())
        return std::nullopt;
    if (value > std::numeric_limits<std::uint64_t>::max() / multiplier)
        return std::nullopt;
    return value * multiplier;
}

std::string format_size_exact(std::uint64_t bytes)
{
    if (bytes != 0)
        for (const Unit &unit : binary_units)
            if (bytes % unit.bytes == 0)
                return std::to_string(bytes / unit.bytes) + unit.name;
    return std::to_string(bytes);
}

std::string format_size_option(std::uint64_t bytes)
{
    constexpr std::array<std::pair<char, std::uint64_t>, 3> units{{
        {'g', std::uint64_t{1} << 30},
        {'m', std::uint64_t{1} << 20},
        {'k', std::uint64_t{1} << 10},
    }};
    if (bytes != 0)
        for (const auto &[suffix, size] : units)
            if (bytes % size == 0)
                return std::to_string(bytes / size) + suffix;
    return std::to_string(bytes);
}

std::string format_size_rounded(std::uint64_t bytes)
{
    for (const Unit &unit : binary_units) {
        if (bytes >= unit.bytes) {
            std::array<char, 32> text{};
            std::snprintf(text.data(), text.size(), "%.2f%s",
                          static_cast<double>(bytes) / static_cast<double>(unit.bytes), unit.name);
            return text.data();
        }
    }
    return std::to_string(bytes) + "B";
}

} // namespace sgfs::fusefs
