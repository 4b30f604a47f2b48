// Big-endian field access for CDBs and SCSI data: every multi-byte SCSI field is big-endian
// whatever the host's byte order. Internal to core.
#pragma once

#include <cassert>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

namespace sgfs::byte_order
{

// Writes value into the first sizeof(T) bytes of out; the caller has sized out.
template <std::unsigned_integral T> constexpr void put_be(std::span<std::uint8_t> out, T value)
{
    assert(out.size() >= sizeof(T));
    for (std::size_t i = 0; i < sizeof(T); ++i) {
        out[i] = static_cast<std::uint8_t>(value >> (8 * (sizeof(T) - 1 - i)));
    }
}

// Reads the first sizeof(T) bytes of in; the caller has checked the length.
template <std::unsigned_integral T> constexpr T get_be(std::span<const std::uint8_t> in)
{
    assert(in.size() >= sizeof(T));
    T value = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
        value = static_cast<T>((value << 8) | in[i]);
    }
    return value;
}

} // namespace sgfs::byte_order
