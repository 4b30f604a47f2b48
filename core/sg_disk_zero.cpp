// SgDisk's zeroing (Disk::zero_range): the provisioning probe and the zero plan's commands.
#include "aligned_buffer.hpp"
#include "sg_disk.hpp"
#include "sg_ll.hpp"
#include "sgfs/extent.hpp"
#include "zero_plan.hpp"

#include <algorithm>
#include <cerrno>
#include <vector>

namespace sgfs
{
namespace
{

// ILLEGAL REQUEST with "invalid command operation code" or "invalid field in CDB /
// parameter list" (both EOPNOTSUPP, core/sense.cpp): the device does not do this command
// this way. An LBA out of range (EINVAL) or any other error is a failure, not a refusal.
bool is_refusal(int rc)
{
    return rc == -EOPNOTSUPP;
}

} // namespace

void SgDisk::probe_provisioning(const SgFd &fd, const Capacity &capacity, const BlockLimits &limits,
                                bool has_b2_page)
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
        sg_ll_inquiry_vpd(fd, context(), vpd::logical_block_provisioning, page, ignored) == 0 &&
        decode_vpd_logical_block_provisioning(page, lbp) == 0) {
        p.lbpu = lbp.lbpu;
        p.lbpws = lbp.lbpws;
        p.lbpws10 = lbp.lbpws10;
        p.lbprz = p.lbprz || lbp.lbprz;
    }
    zero_means_ = zero_means(p, info_.logical_block_size);
}

ZeroMeans SgDisk::current_zero_means() const
{
    ZeroMeans means = zero_means_;
    means.write_same_unmap = means.write_same_unmap && !write_same_unmap_refused_;
    means.write_same = means.write_same && !write_same_refused_;
    return means;
}

int SgDisk::write_zero_blocks(std::uint64_t lba, std::uint64_t blocks)
{
    const std::uint32_t block = info_.logical_block_size;
    const AlignedBuffer zeros =
        AlignedBuffer::zeroed(std::min<std::uint64_t>(blocks, max_blocks_) * block);
    return for_each_chunk(
        lba, blocks, max_blocks_, [&](std::uint64_t chunk_lba, std::uint32_t count, std::uint64_t) {
            if (int rc = transfer_blocks(DataPath::write, true, chunk_lba, count, zeros.data());
                rc != 0)
                return rc;
            stats_.count_zeroing(ZeroKind::host_write, std::uint64_t{count} * block);
            return 0;
        });
}

int SgDisk::run_zero_command(const ZeroStep &step)
{
    const std::uint64_t bytes = step.blocks * info_.logical_block_size;
    auto lease = copy_pool_.acquire();
    CommandContext ctx = context();
    ctx.timeout_ms = zero_command_timeout_ms(bytes, ctx.timeout_ms);
    const AlignedBuffer zeros = AlignedBuffer::zeroed(info_.logical_block_size);
    std::string message;
    const int rc = sg_ll_write_same_16(
        *lease->fd, ctx, step.lba, static_cast<std::uint32_t>(step.blocks),
        step.kind == ZeroKind::write_same_unmap, {zeros.data(), zeros.size()}, message);
    if (rc == 0) {
        stats_.count_zeroing(step.kind, bytes);
        return 0;
    }
    if (is_refusal(rc))
        return rc; // the caller falls back; not this disk's failure
    return fail(rc, info_.name + ": " + message);
}

int SgDisk::zero_blocks(std::uint64_t lba, std::uint64_t blocks)
{
    const std::uint64_t end = lba + blocks;
    std::uint64_t at = lba;
    // Each pass plans [at, end) with the means left; a refusal takes one means away for
    // good and plans the rest again from the refused step, so this ends.
    while (at < end) {
        for (const ZeroStep &step : plan_zeroing(at, end - at, current_zero_means())) {
            if (gone_)
                return fail(-ENODEV, info_.name + ": device is gone");
            const int rc = step.kind == ZeroKind::host_write
                               ? write_zero_blocks(step.lba, step.blocks)
                               : run_zero_command(step);
            if (rc == 0) {
                at = step.lba + step.blocks;
                continue;
            }
            if (step.kind == ZeroKind::host_write || !is_refusal(rc))
                return rc;
            if (step.kind == ZeroKind::write_same_unmap)
                write_same_unmap_refused_ = true;
            else
                write_same_refused_ = true;
            stats_.count_zeroing_fallback();
            at = step.lba;
            break;
        }
    }
    return 0;
}

int SgDisk::zero_range(std::uint64_t offset, std::uint64_t length)
{
    const AlignedBuffer zeros = AlignedBuffer::zeroed(info_.logical_block_size);
    std::uint64_t wanted = 0;
    return write_pieces(
        "zeroing", offset, length, wanted,
        [&](std::uint64_t lba, std::uint32_t skip, std::uint64_t bytes, std::uint64_t) {
            if (int err = read_modify_write(DataPath::write, lba, skip, zeros.data(), bytes);
                err != 0)
                return err;
            stats_.count_zeroing(ZeroKind::host_write, bytes);
            return 0;
        },
        [&](std::uint64_t lba, std::uint64_t blocks, std::uint64_t) {
            return zero_blocks(lba, blocks);
        });
}

} // namespace sgfs
