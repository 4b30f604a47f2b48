#include "sgfs/hex.hpp"

#include <string_view>
#include <utility>

namespace sgfs
{
namespace
{

constexpr std::string_view digits = "0123456789abcdef";

} // namespace

std::string hex_number(std::uint64_t value, int min_digits)
{
    std::string reversed;
    do {
        reversed += digits[value & 0x0fU];
        value >>= 4U;
    } while (value != 0 || std::cmp_less(reversed.size(), min_digits));
    return "0x" + std::string(reversed.rbegin(), reversed.rend());
}

std::string hex_bytes(std::span<const std::uint8_t> bytes)
{
    std::string text;
    text.reserve(bytes.size() * 2);
    for (const std::uint8_t byte : bytes) {
        text += digits[byte >> 4U];
        text += digits[byte & 0x0fU];
    }
    return text;
}

} // namespace sgfs
