// Byte ranges to block ranges: alignment, clamping and splitting arithmetic.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sgfs
{

// A byte range [offset, offset + length) seen in blocks of `block_size`.
struct BlockPlan {
    std::uint64_t first_lba = 0;   // block holding the first byte
    std::uint64_t block_count = 0; // blocks touched, including partial head and tail
    std::uint32_t head_skip = 0;   // bytes of the first block before `offset`
    std::uint32_t tail_keep = 0;   // bytes of the last block after the range's end
    bool aligned() const { return head_skip == 0 && tail_keep == 0; }
};
// block_size must be a power of two; length > 0.
BlockPlan plan_blocks(std::uint64_t offset, std::uint64_t length, std::uint32_t block_size);

// Bytes of [offset, offset + length) that lie before `capacity`.
std::uint64_t clamp_length(std::uint64_t offset, std::uint64_t length, std::uint64_t capacity);

// The bytes of a write (or zeroing) of [offset, offset + length) that a disk of `capacity`
// takes, in `wanted`: cut at the end; 0 for length 0; -ENOSPC when a non-empty range starts
// at or past the end (a write cannot be short there, unlike a read).
int write_extent(std::uint64_t offset, std::uint64_t length, std::uint64_t capacity,
                 std::uint64_t &wanted);

// Largest whole number of blocks that fits in `max_bytes` (at least one block).
std::uint32_t max_blocks_per_command(std::uint64_t max_bytes, std::uint32_t block_size);

bool is_power_of_two(std::uint64_t value);
std::uint64_t round_down_power_of_two(std::uint64_t value);
bool is_aligned(const void *pointer, std::size_t alignment);
bool is_aligned(std::uint64_t value, std::size_t alignment);

// Calls fn(lba, blocks, index_of_first_block) for consecutive pieces of at most
// `max_blocks`; stops at and returns the first non-zero result.
template <typename Fn>
int for_each_chunk(std::uint64_t lba, std::uint64_t blocks, std::uint32_t max_blocks, Fn &&fn)
{
    std::uint64_t done = 0;
    while (done < blocks) {
        const std::uint64_t left = blocks - done;
        const auto count = static_cast<std::uint32_t>(left < max_blocks ? left : max_blocks);
        if (int rc = fn(lba + done, count, done); rc != 0)
            return rc;
        done += count;
    }
    return 0;
}

// Walks a planned byte range as a partial head block, the whole blocks, and a partial tail
// block: partial(lba, skip, bytes, done) and whole(lba, blocks, done), where `done` is the
// number of bytes of the range before the piece. Stops at the first non-zero result.
template <typename Partial, typename Whole>
int for_each_piece(const BlockPlan &plan, std::uint64_t length, std::uint32_t block_size,
                   Partial &&partial, Whole &&whole)
{
    std::uint64_t lba = plan.first_lba;
    std::uint64_t blocks = plan.block_count;
    std::uint64_t done = 0;
    if (plan.head_skip != 0 || (blocks == 1 && plan.tail_keep != 0)) {
        const std::uint64_t room = block_size - plan.head_skip;
        const std::uint64_t bytes = length < room ? length : room;
        if (int rc = partial(lba, plan.head_skip, bytes, done); rc != 0)
            return rc;
        done += bytes;
        ++lba;
        --blocks;
    }
    const std::uint64_t whole_blocks = plan.tail_keep != 0 && blocks > 0 ? blocks - 1 : blocks;
    if (whole_blocks > 0) {
        if (int rc = whole(lba, whole_blocks, done); rc != 0)
            return rc;
        done += whole_blocks * block_size;
        lba += whole_blocks;
        blocks -= whole_blocks;
    }
    if (blocks > 0)
        return partial(lba, std::uint32_t{0}, length - done, done);
    return 0;
}

} // namespace sgfs
