// Hex text for messages and stable ids, against what printf prints for the same values.
#include "sgfs/hex.hpp"

#include <array>
#include <cstdio>
#include <doctest/doctest.h>
#include <vector>

using namespace sgfs;

namespace
{

std::string printf_hex(unsigned long long value, int min_digits)
{
    std::array<char, 32> text{};
    std::snprintf(text.data(), text.size(), "0x%0*llx", min_digits, value);
    return text.data();
}

} // namespace

TEST_CASE("hex_number prints what printf's 0x%0*llx does")
{
    const unsigned long long values[] = {0,      1,        0x5,        0x0e,
                                         0x10,   0xff,     0x100,      0x1234,
                                         0xdead, 0xabcdef, 1ULL << 32, 0x8000000000000000ULL,
                                         ~0ULL};
    for (const unsigned long long value : values) {
        for (const int digits : {1, 2, 4, 16}) {
            CAPTURE(value);
            CAPTURE(digits);
            CHECK(hex_number(value, digits) == printf_hex(value, digits));
        }
    }
    CHECK(hex_number(0x1234) == "0x1234");
    CHECK(hex_number(0x5, 2) == "0x05");
}

TEST_CASE("hex_bytes: two digits per byte, in order, nothing else")
{
    CHECK(hex_bytes({}).empty());
    const std::vector<std::uint8_t> bytes = {0x00, 0x0a, 0x50, 0xc5, 0xff};
    std::string expected;
    for (const std::uint8_t byte : bytes) {
        std::array<char, 3> two{};
        std::snprintf(two.data(), two.size(), "%02x", byte);
        expected += two.data();
    }
    CHECK(hex_bytes(bytes) == expected);
    CHECK(hex_bytes(bytes) == "000a50c5ff");
}
