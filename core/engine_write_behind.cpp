// Write-behind: whole-block writes acknowledged once their commands are queued on the
// device, as a block device's page cache acknowledges a write before writeback.
//
// The rules (issue 14):
//   - bounded: a batch takes its channels from the engine's pool (queue_depth of them) and
//     keeps them until its commands complete, so a writer waits when all are busy;
//   - no copy that need not be: where the caller can keep its memory for the commands
//     (WriteBehind::keep_caller_memory: FUSE's request buffer handed over), direct IO runs
//     from it and the owner goes with the batch until it completes; otherwise the memory is
//     gone after the reply, so the data is copied once into the channel's mmap area
//     (IoPolicy::place_behind: io=mmap, and io=auto from mmap_min up), which stays with the
//     command; other writes (io=indirect, io=direct without kept memory) stay synchronous;
//   - ordered: a batch holds its blocks' RangeLock until it completes, so an overlapping
//     write waits for it; reads (and copies from these blocks, and mapping) wait for
//     overlapping batches; read-ahead over the blocks is dropped before and at completion;
//   - reported: a batch's failure goes to its file's PendingWrites, which returns it at the
//     file's next write and again at its next fsync or close; flush() waits for every
//     batch first.
//
// Locking: behind_mutex_ guards the queue and is never held across IO or another lock. The
// reaper thread finishes the oldest batch's commands without it, then lets the channels go,
// drops read-ahead (the Readahead mutex), takes the batch off the queue, reports it and only
// then lets its RangeLock go.
#include "engine.hpp"
#include "sgfs/extent.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

namespace sgfs
{

struct Engine::BehindBatch {
    // Waits for overlapping writes (the guard is taken in the constructor).
    BehindBatch(RangeLock &lock, std::uint64_t first_lba, std::uint64_t count)
        : blocks{first_lba, count}, held(lock.lock(first_lba, first_lba + count))
    {
    }

    BlockRange blocks;
    RangeLock::Guard held;
    std::vector<Pool<Slot>::Lease> leases;
    std::vector<Command> commands;
    std::vector<Channel *> channels;
    std::vector<IoResult> started; // per command: ok once queued
    CommandContext context;
    WriteBehind behind;
    std::shared_ptr<const void> kept_memory; // the caller's memory the commands run from
};

Engine::~Engine()
{
    {
        std::lock_guard lock(behind_mutex_);
        behind_stopping_ = true;
    }
    behind_changed_.notify_all();
    if (!behind_reaper_.joinable())
        return;
    if (behind_reaper_.get_id() != std::this_thread::get_id()) {
        behind_reaper_.join(); // it completes every batch queued before it ends
        return;
    }
    // The reaper let go of this engine's last holder: finish here, and tell it to stop.
    behind_alive_->store(false);
    behind_reaper_.detach();
    while (behind_queued_.load() != 0)
        static_cast<void>(complete_oldest());
}

IoResult Engine::write_behind_range(const void *buffer, std::size_t length, std::uint64_t offset,
                                    const WriteBehind &behind)
{
    const std::uint32_t block = info_.logical_block_size;
    const BlockPlan plan = plan_blocks(offset, length, block);
    if (behind.pending == nullptr)
        return write_bytes(DataPath::write, buffer, length, offset);
    // Decided once for the write, by its first command's size: a synchronous one runs
    // whole, under one range lock.
    const std::size_t first_bytes =
        std::size_t{std::min<std::uint64_t>(plan.block_count, max_blocks_)} * block;
    const bool aligned = reinterpret_cast<std::uintptr_t>(buffer) % direct_io_alignment == 0;
    const BehindPlacement how =
        policy_.place_behind(first_bytes, behind.keep_caller_memory != nullptr, aligned);
    if (how.way == BehindWay::synchronous)
        return write_bytes(DataPath::write, buffer, length, offset);
    if (!plan.aligned())
        return write_behind_partial(buffer, length, offset, behind);
    std::shared_ptr<const void> kept;
    if (how.way == BehindWay::kept) {
        kept = behind.keep_caller_memory();
        if (kept == nullptr) // the caller cannot keep it now: synchronous after all
            return write_bytes(DataPath::write, buffer, length, offset);
    }
    if (IoResult present = check_present(); !present.ok())
        return present;
    const auto *in = static_cast<const std::uint8_t *>(buffer);
    const std::uint64_t batch_blocks =
        std::uint64_t{max_blocks_} * std::max(1U, options_.queue_depth);
    for (std::uint64_t done = 0; done < plan.block_count;) {
        const std::uint64_t blocks = std::min(batch_blocks, plan.block_count - done);
        if (IoResult queued = queue_behind(plan.first_lba + done, blocks, in + done * block,
                                           how.placement, behind, kept);
            !queued.ok()) {
            queued.bytes += done * block;
            return queued;
        }
        done += blocks;
    }
    return IoResult::success(length);
}

// Partial blocks are read-modify-write, synchronous like writes without a file; the whole
// blocks between them still go behind. (The kernel's FUSE cuts a direct_io write whose
// buffer does not start on a page at its page limit: a 1 MiB write from malloc-ed memory
// arrives as 1 MiB - 16 bytes and 16 bytes, neither of them whole blocks.) The head is
// written before the middle is queued and the tail after: they share no block with it.
IoResult Engine::write_behind_partial(const void *buffer, std::size_t length, std::uint64_t offset,
                                      const WriteBehind &behind)
{
    const std::uint32_t block = info_.logical_block_size;
    const auto *in = static_cast<const std::uint8_t *>(buffer);
    // No range lock over the whole range (write_pieces takes one): each piece takes its own,
    // and a batch's is held until its commands complete.
    const IoResult failed = walk_pieces(
        plan_blocks(offset, length, block), length,
        [&](std::uint64_t lba, std::uint32_t skip, std::uint64_t bytes, std::uint64_t done) {
            return write_bytes(DataPath::write, in + done, bytes, lba * block + skip);
        },
        [&](std::uint64_t lba, std::uint64_t blocks, std::uint64_t done) {
            return write_behind_range(in + done, blocks * block, lba * block, behind);
        });
    return failed.ok() ? IoResult::success(length) : failed;
}

IoResult Engine::queue_behind(std::uint64_t lba, std::uint64_t blocks, const std::uint8_t *data,
                              Placement placement, const WriteBehind &behind,
                              const std::shared_ptr<const void> &kept)
{
    const std::uint32_t block = info_.logical_block_size;
    // The caller's memory outlives the reply only where it is kept: else never its home.
    const bool from_caller = placement.home == DataHome::caller && kept != nullptr;
    if (placement.home == DataHome::caller && !from_caller)
        placement.home = DataHome::bounce;
    auto batch = std::make_shared<BehindBatch>(write_ranges_, lba, blocks);
    readahead_.invalidate(batch->blocks);
    batch->behind = behind;
    batch->kept_memory = kept;
    batch->context = context(DataPath::write, placement.staged());
    const std::size_t count = (blocks + max_blocks_ - 1) / max_blocks_;
    batch->leases = pool_for(placement.mode).acquire_many(count);
    for_each_chunk(lba, blocks, max_blocks_,
                   [&](std::uint64_t chunk_lba, std::uint32_t chunk_blocks, std::uint64_t first) {
                       Slot &slot = *batch->leases[batch->commands.size()];
                       // A WRITE only reads its memory: the kept caller's is not changed.
                       auto *home = from_caller ? const_cast<std::uint8_t *>(data + first * block)
                                                : slot.memory(placement.home);
                       if (!from_caller)
                           std::memcpy(home, data + first * block,
                                       std::size_t{chunk_blocks} * block);
                       const BlockSpan span{true, chunk_lba, chunk_blocks, block, options_.fua};
                       batch->commands.push_back(block_command(span, home, placement.mode,
                                                               options_.timeout_seconds * 1000U));
                       batch->channels.push_back(slot.channel.get());
                       return 0;
                   });
    bool all_started = true;
    for (std::size_t i = 0; i < batch->commands.size(); ++i) {
        batch->started.push_back(start_command(*batch->channels[i], batch->commands[i]));
        all_started = all_started && batch->started.back().ok();
    }
    if (!all_started) // nothing acknowledged: the write fails now, as a synchronous one
        return complete_batch(*batch);

    behind.pending->begin();
    std::size_t outstanding = 0;
    {
        std::lock_guard lock(behind_mutex_);
        behind_queue_.push_back(std::move(batch));
        outstanding = behind_queue_.size();
        behind_queued_.store(outstanding);
        if (!behind_reaper_.joinable())
            behind_reaper_ = std::thread([this, alive = behind_alive_] { reap_behind(alive); });
    }
    behind_changed_.notify_all();
    stats_.count_write_behind(std::uint64_t{blocks} * block, outstanding);
    return IoResult::success(std::uint64_t{blocks} * block);
}

IoResult Engine::complete_batch(BehindBatch &batch)
{
    IoResult total = IoResult::success(0);
    for (std::size_t i = 0; i < batch.commands.size(); ++i) {
        IoResult result = batch.started[i].ok()
                              ? finish_command(*batch.channels[i], batch.commands[i], batch.context)
                              : std::move(batch.started[i]);
        if (total.ok()) {
            total.bytes += result.bytes;
            if (!result.ok()) {
                total.error = result.error;
                total.message = std::move(result.message);
            }
        }
    }
    batch.leases.clear();
    // A window read ahead while the commands ran may hold old or new data.
    readahead_.invalidate(batch.blocks);
    if (total.ok())
        return total;
    total.message = "write at block " + std::to_string(batch.blocks.lba) + ": " + total.message;
    return failure(std::move(total));
}

std::shared_ptr<const void> Engine::complete_oldest()
{
    std::shared_ptr<BehindBatch> batch;
    {
        std::lock_guard lock(behind_mutex_);
        batch = behind_queue_.front();
    }
    const IoResult outcome = complete_batch(*batch);
    if (!outcome.ok())
        stats_.count_deferred_error();
    {
        std::lock_guard lock(behind_mutex_);
        behind_queue_.pop_front();
        behind_queued_.store(behind_queue_.size());
    }
    behind_changed_.notify_all();
    batch->behind.pending->end(outcome);
    return std::move(batch->behind.hold); // the RangeLock goes with the batch, here
}

void Engine::reap_behind(const std::shared_ptr<std::atomic<bool>> &alive)
{
    // `alive` is this thread's own copy: it outlives the engine.
    const std::shared_ptr<std::atomic<bool>> still = alive;
    for (;;) {
        {
            std::unique_lock lock(behind_mutex_);
            behind_changed_.wait(lock,
                                 [this] { return !behind_queue_.empty() || behind_stopping_; });
            if (behind_queue_.empty())
                return;
        }
        std::shared_ptr<const void> hold = complete_oldest();
        hold.reset(); // may end this engine (see ~Engine): nothing of it is touched after that
        if (!still->load())
            return;
    }
}

void Engine::wait_for_writes_behind(std::uint64_t lba, std::uint64_t blocks)
{
    if (behind_queued_.load() == 0)
        return;
    const BlockRange wanted{lba, blocks};
    std::unique_lock lock(behind_mutex_);
    behind_changed_.wait(lock, [&] {
        return std::none_of(behind_queue_.begin(), behind_queue_.end(),
                            [&](const std::shared_ptr<BehindBatch> &batch) {
                                return blocks == 0 || batch->blocks.overlaps(wanted);
                            });
    });
}

} // namespace sgfs
