// The Engine's zeroing (Disk::zero_range): the provisioning probe and the zero plan's commands.
#include "aligned_buffer.hpp"
#include "engine.hpp"
#include "sg_ll.hpp"
#include "sgfs/extent.hpp"
#include "zero_plan.hpp"

#include <algorithm>
#include <cerrno>
#include <vector>

namespace sgfs
{

void Engine::probe_provisioning(Channel &channel, const Capacity &capacity,
                                const BlockLimits &limits, bool has_b2_page)
{
    Provisioning &p = info_.provisioning;
    p.lbpme = capacity.thin_provisioned;
    p.lbprz = capacity.unmapped_reads_zero;
    p.unmap_granularity = limits.optimal_unmap_granularity;
    p.unmap_granularity_alignment =
        limits.unmap_granularity_alignment_valid ? limits.unmap_granularity_alignment : 0;
    p.max_unmap_blocks = limits.maximum_unmap_lba_count;
    p.max_unmap_descriptors = limits.maximum_unmap_block_descriptor_count;
    p.max_write_same_blocks = limits.maximum_write_same_length;
    std::vector<std::uint8_t> page;
    std::string ignored;
    LogicalBlockProvisioning lbp;
    if (has_b2_page &&
        sg_ll_inquiry_vpd(channel, context(), vpd::logical_block_provisioning, page, ignored) ==
            0 &&
        decode_vpd_logical_block_provisioning(page, lbp) == 0) {
        p.lbpu = lbp.lbpu;
        p.lbpws = lbp.lbpws;
        p.lbpws10 = lbp.lbpws10;
        p.lbprz = p.lbprz || lbp.lbprz;
    }
    zero_means_ = zero_means(p, info_.logical_block_size);
}

ZeroMeans Engine::current_zero_means() const
{
    ZeroMeans means = zero_means_;
    means.write_same_unmap = means.write_same_unmap && !write_same_unmap_refused_;
    means.write_same = means.write_same && !write_same_refused_;
    return means;
}

IoResult Engine::write_zero_blocks(std::uint64_t lba, std::uint64_t blocks)
{
    const std::uint32_t block = info_.logical_block_size;
    // As many blocks as one batch of commands in flight takes.
    const std::uint64_t per_batch = std::min<std::uint64_t>(
        blocks, std::uint64_t{max_blocks_} * std::max(1U, options_.queue_depth));
    const AlignedBuffer zeros = AlignedBuffer::zeroed(per_batch * block);
    for (std::uint64_t done = 0; done < blocks;) {
        const std::uint64_t count = std::min<std::uint64_t>(blocks - done, per_batch);
        if (IoResult written =
                transfer_blocks(DataPath::write, true, lba + done, count, zeros.data());
            !written.ok())
            return written;
        stats_.count_zeroing(ZeroKind::host_write, count * block);
        done += count;
    }
    return IoResult::success(blocks * block);
}

IoResult Engine::run_zero_command(const ZeroStep &step)
{
    const std::uint64_t bytes = step.blocks * info_.logical_block_size;
    auto lease = plain_pool_.acquire();
    CommandContext ctx = context();
    ctx.timeout_ms = zero_command_timeout_ms(bytes, ctx.timeout_ms);
    const AlignedBuffer zeros = AlignedBuffer::zeroed(info_.logical_block_size);
    std::string message;
    const int rc = sg_ll_write_same_16(
        *lease->channel, ctx, step.lba, static_cast<std::uint32_t>(step.blocks),
        step.kind == ZeroKind::write_same_unmap, {zeros.data(), zeros.size()}, message);
    if (rc == 0) {
        stats_.count_zeroing(step.kind, bytes);
        return IoResult::success(bytes);
    }
    if (is_refusal(rc))
        return IoResult::failure(rc, message); // the caller falls back; not this disk's failure
    return failure(rc, message);
}

IoResult Engine::zero_blocks(std::uint64_t lba, std::uint64_t blocks, UnmapBit unmap)
{
    const std::uint64_t end = lba + blocks;
    std::uint64_t at = lba;
    // Each pass plans [at, end) with the means left; a refusal takes one means away for
    // good and plans the rest again from the refused step, so this ends.
    while (at < end) {
        ZeroMeans means = current_zero_means();
        if (unmap == UnmapBit::always)
            means.write_same_unmap = means.write_same && !write_same_unmap_refused_;
        else if (unmap == UnmapBit::never)
            means.write_same_unmap = false;
        for (const ZeroStep &step : plan_zeroing(at, end - at, means)) {
            if (IoResult present = check_present(); !present.ok())
                return present;
            IoResult done = step.kind == ZeroKind::host_write
                                ? write_zero_blocks(step.lba, step.blocks)
                                : run_zero_command(step);
            if (done.ok()) {
                at = step.lba + step.blocks;
                continue;
            }
            if (step.kind == ZeroKind::host_write || !is_refusal(done.error))
                return done;
            if (step.kind == ZeroKind::write_same_unmap)
                write_same_unmap_refused_ = true;
            else
                write_same_refused_ = true;
            stats_.count_zeroing_fallback();
            at = step.lba;
            break;
        }
    }
    return IoResult::success(blocks * info_.logical_block_size);
}

IoResult Engine::zero_partial_block(std::uint64_t lba, std::uint32_t skip, std::uint64_t bytes)
{
    const AlignedBuffer zeros = AlignedBuffer::zeroed(info_.logical_block_size);
    IoResult written = read_modify_write(DataPath::write, lba, skip, zeros.data(), bytes);
    if (written.ok())
        stats_.count_zeroing(ZeroKind::host_write, bytes);
    return written;
}

IoResult
Engine::zero_pieces(std::uint64_t offset, std::uint64_t length,
                    const std::function<IoResult(std::uint64_t lba, std::uint64_t blocks)> &whole)
{
    IoResult result = write_pieces(
        offset, length,
        [&](std::uint64_t lba, std::uint32_t skip, std::uint64_t bytes, std::uint64_t) {
            return zero_partial_block(lba, skip, bytes);
        },
        [&](std::uint64_t lba, std::uint64_t blocks, std::uint64_t) { return whole(lba, blocks); });
    return result.ok() ? IoResult::success(length) : result;
}

IoResult Engine::zero_within(std::uint64_t offset, std::uint64_t length, ZeroAllocation allocation)
{
    const UnmapBit unmap =
        allocation == ZeroAllocation::keep ? UnmapBit::never : UnmapBit::where_it_reads_zero;
    return zero_pieces(offset, length, [&](std::uint64_t lba, std::uint64_t blocks) {
        return zero_blocks(lba, blocks, unmap);
    });
}

} // namespace sgfs
