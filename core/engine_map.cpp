// The Engine's provisioning runs (Disk::mapping: SEEK_DATA/SEEK_HOLE, sparse copies) from
// GET LBA STATUS, and the query that hole punching shares.
#include "engine.hpp"
#include "sg_ll.hpp"

#include <algorithm>
#include <cerrno>
#include <vector>

namespace sgfs
{
namespace
{

// Descriptors asked for per GET LBA STATUS: a 1 KiB reply.
constexpr std::size_t lba_status_descriptors = 64;

// A hole where the blocks read zero: deallocated or anchored, under LBPRZ.
bool is_hole(const LbaStatus &status)
{
    return status.provisioning_status == LbaStatus::deallocated ||
           status.provisioning_status == LbaStatus::anchored;
}

} // namespace

IoResult Engine::lba_status(std::uint64_t lba, std::vector<LbaStatus> &out)
{
    if (lba_status_refused_)
        return IoResult::failure(-EOPNOTSUPP, "GET LBA STATUS refused before");
    if (IoResult present = check_present(); !present.ok())
        return present;
    auto lease = plain_pool_.acquire();
    std::string message;
    const int rc =
        sg_ll_get_lba_status(*lease->channel, context(), lba, lba_status_descriptors, out, message);
    stats_.count_lba_status_query();
    if (rc == 0)
        return IoResult::success(0);
    if (is_refusal(rc)) {
        lba_status_refused_ = true;
        return IoResult::failure(rc, message);
    }
    return failure(rc, message);
}

Mapping Engine::map_within(std::uint64_t offset)
{
    // A write acknowledged behind may be filling a hole: the map is asked after it.
    wait_for_writes_behind();
    const std::uint64_t capacity = capacity_bytes();
    Mapping all_data{IoResult::success(0), false, capacity};
    const Provisioning &p = info_.provisioning;
    // Without LBPRZ an unmapped block may read anything: no hole, so no question.
    if (!p.lbpme || !p.lbprz || lba_status_refused_)
        return all_data;
    const std::uint32_t block = info_.logical_block_size;
    const std::uint64_t lba = offset / block;
    std::vector<LbaStatus> found;
    if (IoResult asked = lba_status(lba, found); !asked.ok()) {
        if (is_refusal(asked.error))
            return all_data;
        return {std::move(asked), false, offset};
    }
    // A reply that does not say what `lba` is: data up to the next block, which is safe.
    if (found.empty() || found.front().lba != lba)
        return {IoResult::success(0), false, std::min(capacity, (lba + 1) * block)};
    // Consecutive descriptors of one kind are one run.
    const bool hole = is_hole(found.front());
    std::uint64_t end = lba;
    for (const LbaStatus &status : found) {
        if (status.lba != end || is_hole(status) != hole)
            break;
        end = status.lba + status.blocks;
    }
    return {IoResult::success(0), hole, std::min(capacity, end * block)};
}

} // namespace sgfs
