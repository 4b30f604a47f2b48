// Hexadecimal text, lower case: numbers in messages ("0x1234"), bytes in stable ids
// ("5000c500a1b2c3d4"). The one place sgfs turns values into hex digits.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace sgfs
{

// "0x" and the value's digits, at least `min_digits` of them (zero-padded): hex_number(0x5)
// is "0x5", hex_number(0x5, 2) "0x05", as printf's "0x%0*llx" would print them.
std::string hex_number(std::uint64_t value, int min_digits = 1);

// Two digits per byte, in order, no prefix or separator: {0x0a, 0xff} is "0aff".
std::string hex_bytes(std::span<const std::uint8_t> bytes);

} // namespace sgfs
