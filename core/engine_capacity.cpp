// Capacity changes: a CAPACITY DATA HAS CHANGED unit attention that any command met (the
// command loop counts it in DeviceStats) or a caller's refresh_capacity() makes the engine
// read the capacity again. A new size is stored at once (capacity_bytes_): Disk's bounds,
// read-ahead and map_within all read it, so IO past a new end is refused there and data
// below it is never touched. A new logical block size is refused: every LBA the mount knows
// would mean another byte, so the unit is taken as gone (ENODEV) and the reattaching
// wrapper's search applies its rule for a device that comes back with other blocks.
#include "engine.hpp"
#include "sg_ll.hpp"

#include <cerrno>

namespace sgfs
{

int Engine::read_capacity(Channel &channel, Capacity &capacity, std::string &message)
{
    const CommandContext ctx = context();
    std::string ignored;
    if (sg_ll_readcap_16(channel, ctx, capacity, ignored) == 0)
        return 0;
    return sg_ll_readcap_10(channel, ctx, capacity, message);
}

int Engine::reread_capacity(Channel &channel)
{
    const std::lock_guard lock(capacity_mutex_);
    // Read before the command: an attention that arrives while it runs asks for one more.
    const std::uint64_t attentions = stats_.capacity_attentions();
    Capacity capacity;
    std::string message;
    if (int rc = read_capacity(channel, capacity, message); rc != 0)
        return rc; // not handled: the next IO asks again
    capacity_attentions_handled_.store(attentions, std::memory_order_release);
    if (capacity.logical_block_size != info_.logical_block_size) {
        gone_ = true;
        return -ENODEV;
    }
    const std::uint64_t before =
        capacity_bytes_.exchange(capacity.bytes(), std::memory_order_acq_rel);
    if (before != capacity.bytes())
        stats_.count_capacity_change();
    return 0;
}

int Engine::refresh_capacity()
{
    if (gone_)
        return -ENODEV;
    const Pool<Slot>::Lease lease = plain_pool_.acquire();
    return reread_capacity(*lease->channel);
}

// After IO that may hold leases (a read view keeps its channels): only an idle channel, so
// that this never waits for one that this very thread holds. None idle: the next IO looks.
void Engine::settle_capacity()
{
    if (gone_ || stats_.capacity_attentions() ==
                     capacity_attentions_handled_.load(std::memory_order_acquire))
        return;
    if (const Pool<Slot>::Lease lease = plain_pool_.try_acquire())
        static_cast<void>(reread_capacity(*lease->channel));
}

} // namespace sgfs
