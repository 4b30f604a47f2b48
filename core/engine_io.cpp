// The Engine's reads, writes and flush: byte ranges planned as block commands.
#include "engine.hpp"
#include "sg_ll.hpp"
#include "sgfs/disk_claim.hpp"
#include "sgfs/extent.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace sgfs
{
namespace
{

// Channels a view's pieces lie in, held until the view goes.
class LeasesPin final : public ReadView::Pin
{
  public:
    explicit LeasesPin(std::vector<Pool<Slot>::Lease> leases) : leases_(std::move(leases)) {}

  private:
    std::vector<Pool<Slot>::Lease> leases_;
};

} // namespace

IoResult Engine::transfer_batch(DataPath path, bool write, std::uint64_t lba, std::uint64_t blocks,
                                std::uint8_t *data, Placement placement)
{
    const std::uint32_t block = info_.logical_block_size;
    const std::size_t count = (blocks + max_blocks_ - 1) / max_blocks_;
    auto leases = pool_for(placement.mode).acquire_many(count);
    std::vector<Command> commands;
    std::vector<Channel *> channels;
    for_each_chunk(
        lba, blocks, max_blocks_,
        [&](std::uint64_t chunk_lba, std::uint32_t chunk_blocks, std::uint64_t first) {
            Slot &slot = *leases[commands.size()];
            std::uint8_t *caller = data + first * block;
            std::uint8_t *home = slot.memory(placement.home);
            const std::size_t bytes = std::size_t{chunk_blocks} * block;
            if (home != nullptr && write)
                std::memcpy(home, caller, bytes);
            const BlockSpan span{write, chunk_lba, chunk_blocks, block, write && options_.fua};
            commands.push_back(block_command(span, home != nullptr ? home : caller, placement.mode,
                                             options_.timeout_seconds * 1000U));
            channels.push_back(slot.channel.get());
            return 0;
        });
    IoResult result = run_in_flight(commands, channels, context(path, placement.staged()));
    if (placement.home != DataHome::caller && !write) {
        // Each command's data lies in its own slot: copy out what arrived, in order.
        std::uint64_t at = 0;
        for (std::size_t i = 0; i < leases.size() && at < result.bytes; ++i) {
            const std::uint64_t bytes =
                std::min<std::uint64_t>(result.bytes - at, std::uint64_t{max_blocks_} * block);
            std::memcpy(data + at, leases[i]->memory(placement.home), bytes);
            at += bytes;
        }
    }
    return result.ok() ? result : failure(std::move(result));
}

IoResult Engine::transfer_blocks(DataPath path, bool write, std::uint64_t lba, std::uint64_t blocks,
                                 std::uint8_t *data)
{
    if (IoResult present = check_present(); !present.ok())
        return present;
    const std::uint32_t block = info_.logical_block_size;
    const bool aligned = is_aligned(data, direct_io_alignment);
    const std::uint64_t depth = std::max(1U, options_.queue_depth);
    // Batches of queue_depth commands; commands of one batch share a placement, so a
    // shorter last command (which the policy may place otherwise) runs in a batch of its own.
    const std::uint64_t full_blocks = std::uint64_t{max_blocks_} * depth;
    std::uint64_t done = 0;
    while (done < blocks) {
        const std::uint64_t left = blocks - done;
        std::uint64_t batch = std::min(left, full_blocks);
        if (batch > max_blocks_ && batch % max_blocks_ != 0)
            batch -= batch % max_blocks_;
        const std::size_t first_bytes =
            std::size_t{std::min<std::uint64_t>(batch, max_blocks_)} * block;
        const IoResult result = transfer_batch(path, write, lba + done, batch, data + done * block,
                                               policy_.place(first_bytes, aligned));
        if (!result.ok())
            return {done * block + result.bytes, result.error, IoEnd::none, result.message};
        done += batch;
    }
    return IoResult::success(blocks * block);
}

IoResult Engine::read_bytes(DataPath path, void *buffer, std::size_t length, std::uint64_t offset)
{
    auto *out = static_cast<std::uint8_t *>(buffer);
    const std::uint32_t block = info_.logical_block_size;
    const BlockPlan blocks = plan_blocks(offset, length, block);
    // A write acknowledged behind over these blocks is in the file already: read after it.
    wait_for_writes_behind(blocks.first_lba, blocks.block_count);
    IoResult failed;
    const int rc = for_each_piece(
        blocks, length, block,
        [&](std::uint64_t lba, std::uint32_t skip, std::uint64_t bytes, std::uint64_t done) {
            AlignedBuffer scratch(block);
            failed = transfer_blocks(path, false, lba, 1, scratch.data());
            if (!failed.ok())
                return failed.error;
            std::memcpy(out + done, scratch.data() + skip, bytes);
            stats_.count_partial_copy(path, bytes);
            return 0;
        },
        [&](std::uint64_t lba, std::uint64_t blocks, std::uint64_t done) {
            failed = transfer_blocks(path, false, lba, blocks, out + done);
            return failed.error;
        });
    return rc != 0 ? IoResult::failure(failed.error, failed.message) : IoResult::success(length);
}

ReadView Engine::view_range(std::size_t length, std::uint64_t offset, ReaderId reader)
{
    const std::uint32_t block = info_.logical_block_size;
    const BlockPlan plan = plan_blocks(offset, length, block);
    if (IoResult present = check_present(); !present.ok())
        return ReadView(std::move(present));
    // Before read-ahead serves it: a write behind over it drops stale windows as it ends.
    wait_for_writes_behind(plan.first_lba, plan.block_count);
    if (readahead_.enabled() && reader != no_reader) {
        // Queue what follows first, so the device works while this reply is copied.
        readahead_.advance({plan.first_lba, plan.block_count}, reader, capacity_bytes() / block);
        if (std::optional<ReadView> served = readahead_.serve(offset, length, reader)) {
            if (!served->result().ok())
                return ReadView(failure(served->result()));
            return std::move(*served);
        }
    }
    const std::uint64_t chunks = (plan.block_count + max_blocks_ - 1) / max_blocks_;
    if (!plan.aligned() || chunks > std::max(1U, options_.queue_depth))
        return Disk::view_range(length, offset, reader);

    // The data stays where it lands, in channels held by the view.
    const Placement placement =
        policy_.place_landing(std::min<std::uint64_t>(length, info_.max_transfer_bytes));
    auto leases = pool_for(placement.mode).acquire_many(chunks);
    std::vector<Command> commands;
    std::vector<Channel *> channels;
    std::vector<iovec> pieces;
    for_each_chunk(plan.first_lba, plan.block_count, max_blocks_,
                   [&](std::uint64_t chunk_lba, std::uint32_t count, std::uint64_t) {
                       Slot &slot = *leases[commands.size()];
                       const BlockSpan span{false, chunk_lba, count, block, false};
                       commands.push_back(block_command(span, slot.memory(placement.home),
                                                        placement.mode,
                                                        options_.timeout_seconds * 1000U));
                       channels.push_back(slot.channel.get());
                       pieces.push_back({slot.memory(placement.home), std::size_t{count} * block});
                       return 0;
                   });
    // Handed to FUSE as it lies: no copy in sgfs, whatever the home.
    IoResult result = run_in_flight(commands, channels, context(DataPath::read, false));
    if (!result.ok())
        return ReadView(failure(std::move(result)));
    return ReadView(IoResult::success(length), std::move(pieces),
                    std::make_unique<LeasesPin>(std::move(leases)));
}

IoResult Engine::read_modify_write(DataPath path, std::uint64_t lba, std::uint32_t skip,
                                   const std::uint8_t *data, std::uint64_t length)
{
    AlignedBuffer scratch(info_.logical_block_size);
    if (IoResult read = transfer_blocks(path, false, lba, 1, scratch.data()); !read.ok())
        return read;
    std::memcpy(scratch.data() + skip, data, length);
    stats_.count_partial_copy(path, length);
    return transfer_blocks(path, true, lba, 1, scratch.data());
}

IoResult Engine::write_bytes(DataPath path, const void *buffer, std::size_t length,
                             std::uint64_t offset)
{
    // The data is only read; a command takes a mutable pointer for both directions.
    auto *in = const_cast<std::uint8_t *>(static_cast<const std::uint8_t *>(buffer));
    IoResult result = write_pieces(
        offset, length,
        [&](std::uint64_t lba, std::uint32_t skip, std::uint64_t bytes, std::uint64_t done) {
            return read_modify_write(path, lba, skip, in + done, bytes);
        },
        [&](std::uint64_t lba, std::uint64_t blocks, std::uint64_t done) {
            return transfer_blocks(path, true, lba, blocks, in + done);
        });
    return result.ok() ? IoResult::success(length) : result;
}

IoResult Engine::write_pieces(std::uint64_t offset, std::uint64_t length,
                              const PartialBlockWriter &partial, const WholeBlockWriter &whole)
{
    const std::uint32_t block = info_.logical_block_size;
    const BlockPlan plan = plan_blocks(offset, length, block);
    auto held = write_ranges_.lock(plan.first_lba, plan.first_lba + plan.block_count);
    readahead_.invalidate({plan.first_lba, plan.block_count});
    IoResult failed = walk_pieces(plan, length, partial, whole);
    // A window read ahead while this write ran may hold old or new data: drop it.
    readahead_.invalidate({plan.first_lba, plan.block_count});
    return failed;
}

IoResult Engine::walk_pieces(const BlockPlan &plan, std::uint64_t length,
                             const PartialBlockWriter &partial, const WholeBlockWriter &whole) const
{
    IoResult failed = IoResult::success(0);
    // A failed piece's bytes count from its own start: the pieces before it were done.
    const auto ended = [&failed](IoResult result, std::uint64_t done) {
        failed = std::move(result);
        if (!failed.ok())
            failed.bytes += done;
        return failed.error;
    };
    for_each_piece(
        plan, length, info_.logical_block_size,
        [&](std::uint64_t lba, std::uint32_t skip, std::uint64_t bytes, std::uint64_t done) {
            return ended(partial(lba, skip, bytes, done), done);
        },
        [&](std::uint64_t lba, std::uint64_t blocks, std::uint64_t done) {
            return ended(whole(lba, blocks, done), done);
        });
    return failed;
}

IoResult Engine::flush_cache()
{
    // SYNCHRONIZE CACHE covers the writes that completed: every one acknowledged first.
    wait_for_writes_behind();
    if (IoResult present = check_present(); !present.ok())
        return present;
    auto lease = plain_pool_.acquire();
    std::string message;
    if (int rc = sg_ll_sync_cache(*lease->channel, context(), message); rc != 0)
        return failure(rc, message);
    if (options_.claims)
        options_.claims->drop_cached_pages(info_);
    return IoResult::success(0);
}

} // namespace sgfs
