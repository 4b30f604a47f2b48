// The zeroing plan: granule arithmetic and command limits (see zero_plan.hpp).
#include "zero_plan.hpp"

#include <algorithm>
#include <limits>

namespace sgfs
{
namespace
{

// WRITE SAME(16) carries a 32-bit NUMBER OF LOGICAL BLOCKS.
constexpr std::uint64_t max_command_blocks = std::numeric_limits<std::uint32_t>::max();

std::uint64_t at_least_one(std::uint64_t value)
{
    return std::max<std::uint64_t>(value, 1);
}

std::uint64_t round_down(std::uint64_t value, std::uint64_t multiple)
{
    return value / multiple * multiple;
}

class Planner
{
  public:
    explicit Planner(const ZeroMeans &means) : means_(means) {}

    std::vector<ZeroStep> plan(std::uint64_t lba, std::uint64_t blocks)
    {
        const std::uint64_t end = lba + blocks;
        if (means_.write_same_unmap && means_.write_same) {
            const GranuleSpan granules =
                whole_granules(lba, blocks, means_.granularity, means_.alignment);
            if (!granules.empty()) {
                write(lba, granules.first);
                unmap_granules(granules.first, granules.last);
                write(granules.last, end);
                return std::move(steps_);
            }
        }
        write(lba, end);
        return std::move(steps_);
    }

  private:
    // By WRITE SAME without UNMAP, or by the host.
    void write(std::uint64_t begin, std::uint64_t end)
    {
        if (begin >= end)
            return;
        if (!means_.write_same) {
            steps_.push_back({ZeroKind::host_write, begin, end - begin});
            return;
        }
        write_same(ZeroKind::write_same, begin, end, means_.max_write_same_blocks);
    }

    void write_same(ZeroKind kind, std::uint64_t begin, std::uint64_t end,
                    std::uint64_t per_command)
    {
        per_command = std::min(per_command, max_command_blocks);
        for (std::uint64_t at = begin; at < end;) {
            const std::uint64_t count = std::min(end - at, per_command);
            steps_.push_back({kind, at, count});
            at += count;
        }
    }

    // [begin, end) is whole granules: WRITE SAME with UNMAP, each command ending on a
    // granule boundary so that the next one starts on one too.
    void unmap_granules(std::uint64_t begin, std::uint64_t end)
    {
        const std::uint64_t g = means_.granularity;
        const std::uint64_t per_command =
            round_down(std::min(means_.max_write_same_blocks, max_command_blocks), g);
        if (per_command == 0) {
            write(begin, end);
            return;
        }
        write_same(ZeroKind::write_same_unmap, begin, end, per_command);
    }

    const ZeroMeans &means_;
    std::vector<ZeroStep> steps_;
};

} // namespace

GranuleSpan whole_granules(std::uint64_t lba, std::uint64_t blocks, std::uint32_t granularity,
                           std::uint32_t alignment)
{
    const std::uint64_t g = at_least_one(granularity);
    const std::uint64_t a = alignment % g;
    const std::uint64_t end = lba + blocks;
    // The first granule boundary at or after lba, and the last at or before end.
    const std::uint64_t first = lba <= a ? a : a + (lba - a + g - 1) / g * g;
    if (end < a + g || first >= end)
        return {end, end};
    const std::uint64_t last = a + (end - a) / g * g;
    return first < last ? GranuleSpan{first, last} : GranuleSpan{end, end};
}

ZeroMeans zero_means(const Provisioning &p, std::uint32_t block_size)
{
    ZeroMeans means;
    means.write_same = true;
    // Not LBPU: plain UNMAP may be ignored and still return GOOD (zero_plan.hpp), so it is no
    // zeroing means; WRITE SAME with UNMAP either unmaps (reads zero: LBPRZ) or writes zeros.
    means.write_same_unmap = p.lbpme && p.lbpws && p.lbprz;
    means.granularity = static_cast<std::uint32_t>(at_least_one(p.unmap_granularity));
    means.alignment = p.unmap_granularity_alignment % means.granularity;
    const std::uint64_t write_same_cap = at_least_one(write_same_cap_bytes / block_size);
    means.max_write_same_blocks = p.max_write_same_blocks == 0
                                      ? write_same_cap
                                      : std::min(p.max_write_same_blocks, write_same_cap);
    return means;
}

unsigned zero_command_timeout_ms(std::uint64_t bytes, unsigned configured_ms)
{
    constexpr std::uint64_t slow_bytes_per_second = std::uint64_t{1} << 20;
    const std::uint64_t needed_ms = bytes * 1000 / slow_bytes_per_second;
    return static_cast<unsigned>(std::min<std::uint64_t>(
        std::max<std::uint64_t>(needed_ms, configured_ms), std::numeric_limits<unsigned>::max()));
}

std::vector<ZeroStep> plan_zeroing(std::uint64_t lba, std::uint64_t blocks, const ZeroMeans &means)
{
    if (blocks == 0)
        return {};
    ZeroMeans checked = means;
    checked.granularity = std::max<std::uint32_t>(checked.granularity, 1);
    checked.max_write_same_blocks = at_least_one(checked.max_write_same_blocks);
    return Planner(checked).plan(lba, blocks);
}

} // namespace sgfs
