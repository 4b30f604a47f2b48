// The hole punch plan: which granules are deallocated and how UNMAP is split (see
// unmap_plan.hpp).
#include "unmap_plan.hpp"

#include <algorithm>
#include <limits>

namespace sgfs
{
namespace
{

// An UNMAP block descriptor's 32-bit NUMBER OF LOGICAL BLOCKS.
constexpr std::uint64_t max_descriptor_blocks = std::numeric_limits<std::uint32_t>::max();
// The descriptors one parameter list holds (its length is 16 bits: cdb.hpp).
constexpr std::uint32_t max_list_descriptors = 4095;

} // namespace

PunchMeans punch_means(const Provisioning &p)
{
    PunchMeans means;
    if (p.lbpme && p.lbpu)
        means.deallocation = Deallocation::unmap;
    else if (p.lbpme && p.lbpws)
        means.deallocation = Deallocation::write_same_unmap;
    means.unmapped_reads_zero = p.lbprz;
    means.granularity = std::max<std::uint32_t>(p.unmap_granularity, 1);
    means.alignment = p.unmap_granularity_alignment % means.granularity;
    if (p.max_unmap_blocks == 0xffffffff)
        means.max_unmap_blocks = std::numeric_limits<std::uint64_t>::max();
    else if (p.max_unmap_blocks == 0)
        means.max_unmap_blocks = unreported_unmap_blocks;
    else
        means.max_unmap_blocks = p.max_unmap_blocks;
    means.max_unmap_descriptors =
        std::clamp<std::uint32_t>(p.max_unmap_descriptors, 1, max_list_descriptors);
    return means;
}

std::vector<PunchStep> plan_punch(std::uint64_t lba, std::uint64_t blocks, const ZeroMeans &zero,
                                  const PunchMeans &punch)
{
    if (blocks == 0)
        return {};
    const GranuleSpan granules = whole_granules(lba, blocks, punch.granularity, punch.alignment);
    if (zero.write_same_unmap || punch.deallocation == Deallocation::none || granules.empty())
        return {{PunchAction::zero, lba, blocks}};
    std::vector<PunchStep> steps;
    if (granules.first > lba)
        steps.push_back({PunchAction::zero, lba, granules.first - lba});
    steps.push_back({PunchAction::deallocate, granules.first, granules.last - granules.first});
    if (granules.last < lba + blocks)
        steps.push_back({PunchAction::zero, granules.last, lba + blocks - granules.last});
    return steps;
}

std::vector<std::vector<UnmapRange>> plan_unmap(std::uint64_t lba, std::uint64_t blocks,
                                                const PunchMeans &punch)
{
    const std::uint64_t g = std::max<std::uint32_t>(punch.granularity, 1);
    const std::uint64_t per_command = std::max<std::uint64_t>(punch.max_unmap_blocks, 1) / g * g;
    const std::uint64_t per_descriptor = std::min(per_command, max_descriptor_blocks) / g * g;
    const std::uint32_t descriptors =
        std::clamp<std::uint32_t>(punch.max_unmap_descriptors, 1, max_list_descriptors);
    std::vector<std::vector<UnmapRange>> commands;
    if (per_descriptor == 0)
        return commands;
    const std::uint64_t end = lba + blocks;
    for (std::uint64_t at = lba; at < end;) {
        std::vector<UnmapRange> command;
        for (std::uint64_t total = 0; at < end && command.size() < descriptors;) {
            const std::uint64_t count =
                std::min({end - at, per_descriptor, (per_command - total) / g * g});
            if (count == 0)
                break;
            command.push_back({at, static_cast<std::uint32_t>(count)});
            at += count;
            total += count;
        }
        commands.push_back(std::move(command));
    }
    return commands;
}

} // namespace sgfs
