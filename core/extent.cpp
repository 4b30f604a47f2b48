#include "sgfs/extent.hpp"

#include <bit>
#include <cerrno>
#include <cstdint>

namespace sgfs
{

BlockPlan plan_blocks(std::uint64_t offset, std::uint64_t length, std::uint32_t block_size)
{
    const std::uint64_t mask = block_size - 1;
    const std::uint64_t end = offset + length;
    const std::uint64_t first = offset & ~mask;
    const std::uint64_t last_end = (end + mask) & ~mask;
    BlockPlan plan;
    plan.first_lba = first / block_size;
    plan.block_count = (last_end - first) / block_size;
    plan.head_skip = static_cast<std::uint32_t>(offset - first);
    plan.tail_keep = static_cast<std::uint32_t>(last_end - end);
    return plan;
}

std::uint64_t clamp_length(std::uint64_t offset, std::uint64_t length, std::uint64_t capacity)
{
    if (offset >= capacity)
        return 0;
    return length < capacity - offset ? length : capacity - offset;
}

int write_extent(std::uint64_t offset, std::uint64_t length, std::uint64_t capacity,
                 std::uint64_t &wanted)
{
    wanted = 0;
    if (length == 0)
        return 0;
    if (offset >= capacity)
        return -ENOSPC;
    wanted = clamp_length(offset, length, capacity);
    return 0;
}

std::uint32_t max_blocks_per_command(std::uint64_t max_bytes, std::uint32_t block_size)
{
    const std::uint64_t blocks = max_bytes / block_size;
    if (blocks == 0)
        return 1;
    return blocks > UINT32_MAX ? UINT32_MAX : static_cast<std::uint32_t>(blocks);
}

bool is_power_of_two(std::uint64_t value)
{
    return std::has_single_bit(value);
}

std::uint64_t round_down_power_of_two(std::uint64_t value)
{
    return value == 0 ? 0 : std::bit_floor(value);
}

bool is_aligned(const void *pointer, std::size_t alignment)
{
    return reinterpret_cast<std::uintptr_t>(pointer) % alignment == 0;
}

bool is_aligned(std::uint64_t value, std::size_t alignment)
{
    return value % alignment == 0;
}

} // namespace sgfs
