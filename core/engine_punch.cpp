// The Engine's hole punching (Disk::punch_hole): the punch plan's steps (unmap_plan.hpp),
// UNMAP, and the checks that make a deallocated range read zero.
#include "aligned_buffer.hpp"
#include "engine.hpp"
#include "sg_ll.hpp"
#include "unmap_plan.hpp"

#include <algorithm>
#include <cerrno>
#include <vector>

namespace sgfs
{
namespace
{

bool reads_zero(const std::uint8_t *data, std::size_t bytes)
{
    return std::all_of(data, data + bytes, [](std::uint8_t b) { return b == 0; });
}

// Unmapped blocks that read zero under LBPRZ: deallocated and anchored.
bool is_unmapped(const LbaStatus &status)
{
    return status.provisioning_status == LbaStatus::deallocated ||
           status.provisioning_status == LbaStatus::anchored;
}

} // namespace

PunchMeans Engine::current_punch_means() const
{
    PunchMeans means = punch_means(info_.provisioning);
    if (means.deallocation == Deallocation::unmap && unmap_refused_)
        means.deallocation =
            info_.provisioning.lbpws ? Deallocation::write_same_unmap : Deallocation::none;
    if (means.deallocation == Deallocation::write_same_unmap &&
        (write_same_unmap_refused_ || write_same_refused_))
        means.deallocation = Deallocation::none;
    return means;
}

IoResult Engine::punch_within(std::uint64_t offset, std::uint64_t length)
{
    return zero_pieces(offset, length, [&](std::uint64_t lba, std::uint64_t blocks) {
        return punch_blocks(lba, blocks);
    });
}

IoResult Engine::punch_blocks(std::uint64_t lba, std::uint64_t blocks)
{
    const std::uint32_t block = info_.logical_block_size;
    for (const PunchStep &step :
         plan_punch(lba, blocks, current_zero_means(), current_punch_means())) {
        IoResult done = step.action == PunchAction::zero ? zero_blocks(step.lba, step.blocks)
                                                         : deallocate_blocks(step.lba, step.blocks);
        if (!done.ok()) {
            done.bytes = (step.lba - lba) * block;
            return done;
        }
    }
    return IoResult::success(blocks * block);
}

IoResult Engine::deallocate_blocks(std::uint64_t lba, std::uint64_t blocks)
{
    const PunchMeans means = current_punch_means();
    std::uint64_t deallocated = lba;
    if (means.deallocation == Deallocation::unmap) {
        if (IoResult unmapped = unmap_blocks(lba, blocks, deallocated); !unmapped.ok())
            return unmapped;
        // What UNMAP did not get to (refused, or a granule too large for one command).
        if (deallocated < lba + blocks) {
            if (IoResult zeroed = zero_blocks(deallocated, lba + blocks - deallocated);
                !zeroed.ok())
                return zeroed;
        }
    } else {
        // WRITE SAME with UNMAP; a refusal of it turns into plain zeroing inside, and what
        // the device wrote reads zero: the check finds it so.
        if (IoResult written = zero_blocks(lba, blocks, UnmapBit::always); !written.ok())
            return written;
        deallocated = lba + blocks;
    }
    if (deallocated == lba)
        return IoResult::success(blocks * info_.logical_block_size);
    IoResult checked = means.unmapped_reads_zero ? zero_still_mapped(lba, deallocated - lba)
                                                 : zero_not_reading_zero(lba, deallocated - lba);
    return checked.ok() ? IoResult::success(blocks * info_.logical_block_size) : checked;
}

IoResult Engine::unmap_blocks(std::uint64_t lba, std::uint64_t blocks, std::uint64_t &unmapped)
{
    unmapped = lba;
    for (const std::vector<UnmapRange> &command : plan_unmap(lba, blocks, current_punch_means())) {
        if (IoResult present = check_present(); !present.ok())
            return present;
        IoResult done = run_unmap(command);
        if (!done.ok() && is_refusal(done.error)) {
            unmap_refused_ = true;
            stats_.count_zeroing_fallback();
            return IoResult::success(0);
        }
        if (!done.ok())
            return done;
        unmapped = command.back().lba + command.back().blocks;
    }
    return IoResult::success(0);
}

IoResult Engine::run_unmap(std::span<const UnmapRange> ranges)
{
    std::uint64_t blocks = 0;
    for (const UnmapRange &range : ranges)
        blocks += range.blocks;
    const std::uint64_t bytes = blocks * info_.logical_block_size;
    auto lease = plain_pool_.acquire();
    CommandContext ctx = context();
    ctx.timeout_ms = zero_command_timeout_ms(bytes, ctx.timeout_ms);
    std::string message;
    const int rc = sg_ll_unmap(*lease->channel, ctx, ranges, message);
    if (rc == 0) {
        stats_.count_unmap(bytes);
        return IoResult::success(bytes);
    }
    if (is_refusal(rc))
        return IoResult::failure(rc, message); // the caller falls back; not this disk's failure
    return failure(rc, message);
}

IoResult Engine::zero_still_mapped(std::uint64_t lba, std::uint64_t blocks)
{
    const std::uint64_t end = lba + blocks;
    for (std::uint64_t at = lba; at < end;) {
        std::vector<LbaStatus> found;
        IoResult asked = lba_status(at, found);
        if (!asked.ok() && !is_refusal(asked.error))
            return asked;
        // Refused, or a reply that does not start where asked: nothing known, all zeroed.
        if (!asked.ok() || found.empty() || found.front().lba != at)
            return zero_blocks(at, end - at);
        for (const LbaStatus &status : found) {
            if (status.lba != at || at >= end)
                break;
            const std::uint64_t run_end = std::min(end, status.lba + status.blocks);
            if (!is_unmapped(status)) {
                if (IoResult zeroed = zero_blocks(at, run_end - at); !zeroed.ok())
                    return zeroed;
            }
            at = run_end;
        }
    }
    return IoResult::success(blocks * info_.logical_block_size);
}

IoResult Engine::zero_not_reading_zero(std::uint64_t lba, std::uint64_t blocks)
{
    const std::uint32_t block = info_.logical_block_size;
    const std::uint64_t per_batch = std::min<std::uint64_t>(
        blocks, std::uint64_t{max_blocks_} * std::max(1U, options_.queue_depth));
    AlignedBuffer data(per_batch * block);
    for (std::uint64_t done = 0; done < blocks;) {
        const std::uint64_t count = std::min(blocks - done, per_batch);
        const std::uint64_t first = lba + done;
        if (IoResult read = transfer_blocks(DataPath::none, false, first, count, data.data());
            !read.ok())
            return read;
        stats_.count_verify_read(count * block);
        // Runs of blocks that do not read zero, each zeroed as one.
        for (std::uint64_t i = 0; i < count;) {
            if (reads_zero(data.data() + i * block, block)) {
                ++i;
                continue;
            }
            std::uint64_t run = i + 1;
            while (run < count && !reads_zero(data.data() + run * block, block))
                ++run;
            if (IoResult zeroed = zero_blocks(first + i, run - i); !zeroed.ok())
                return zeroed;
            i = run;
        }
        done += count;
    }
    return IoResult::success(blocks * block);
}

} // namespace sgfs
