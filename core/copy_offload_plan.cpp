// The offload plan: see copy_offload_plan.hpp.
#include "copy_offload_plan.hpp"

#include <algorithm>
#include <limits>

namespace sgfs
{
namespace
{

constexpr std::uint32_t max_granularity_log2 = 31;

} // namespace

std::optional<OffloadLimits> offload_limits(const CopyOperatingParameters &parameters,
                                            std::uint32_t block_size)
{
    if (block_size == 0 || !parameters.implements(copy_descriptor::block_to_block) ||
        !parameters.implements(copy_descriptor::identification) ||
        parameters.max_cscd_descriptors < offload_cscd_count ||
        parameters.max_segment_descriptors < 1)
        return std::nullopt;
    OffloadLimits limits;
    limits.block_size = block_size;
    const std::uint64_t granule_bytes =
        std::uint64_t{1} << std::min<std::uint32_t>(parameters.data_segment_granularity_log2,
                                                    max_granularity_log2);
    // Both powers of two: whole blocks are whole granules, or a granule is whole blocks.
    limits.granule_blocks =
        granule_bytes <= block_size ? 1 : static_cast<std::uint32_t>(granule_bytes / block_size);
    std::uint64_t segment_blocks = copy_descriptor::max_segment_blocks;
    if (parameters.max_segment_length != 0)
        segment_blocks =
            std::min<std::uint64_t>(segment_blocks, parameters.max_segment_length / block_size);
    segment_blocks -= segment_blocks % limits.granule_blocks;
    if (segment_blocks == 0)
        return std::nullopt;
    limits.max_segment_blocks = static_cast<std::uint32_t>(segment_blocks);
    std::size_t segments =
        std::min<std::size_t>(parameters.max_segment_descriptors, offload_max_segments_per_command);
    if (parameters.max_descriptor_list_length != 0) {
        const std::size_t cscd_bytes = offload_cscd_count * copy_descriptor::cscd_size;
        if (parameters.max_descriptor_list_length <
            cscd_bytes + copy_descriptor::block_to_block_size)
            return std::nullopt;
        segments =
            std::min<std::size_t>(segments, (parameters.max_descriptor_list_length - cscd_bytes) /
                                                copy_descriptor::block_to_block_size);
    }
    limits.max_segments = segments;
    limits.commands_in_flight = std::max<unsigned>(1, parameters.total_concurrent_copies);
    limits.no_list_id = parameters.supports_no_list_id;
    return limits;
}

bool offload_allowed(bool same_lu, std::uint64_t source_lba, std::uint64_t destination_lba,
                     std::uint64_t blocks)
{
    if (!same_lu)
        return true;
    return destination_lba >= source_lba + blocks || source_lba >= destination_lba + blocks;
}

OffloadPlan plan_offload(std::uint64_t source_lba, std::uint64_t destination_lba,
                         std::uint64_t blocks, const OffloadLimits &limits)
{
    OffloadPlan plan;
    plan.blocks = blocks - blocks % limits.granule_blocks;
    for (std::uint64_t done = 0; done < plan.blocks;) {
        OffloadCommand command;
        while (done < plan.blocks && command.segments.size() < limits.max_segments) {
            const auto count = static_cast<std::uint32_t>(
                std::min<std::uint64_t>(plan.blocks - done, limits.max_segment_blocks));
            command.segments.push_back({0, 1, count, source_lba + done, destination_lba + done});
            command.blocks += count;
            done += count;
        }
        plan.commands.push_back(std::move(command));
    }
    return plan;
}

unsigned offload_command_timeout_ms(std::uint64_t bytes, unsigned configured_ms)
{
    constexpr std::uint64_t slow_bytes_per_second = std::uint64_t{1} << 20;
    // Every byte is read once and written once.
    const std::uint64_t needed_ms = 2 * bytes * 1000 / slow_bytes_per_second;
    return static_cast<unsigned>(std::min<std::uint64_t>(
        std::max<std::uint64_t>(needed_ms, configured_ms), std::numeric_limits<unsigned>::max()));
}

} // namespace sgfs
