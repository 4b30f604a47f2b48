// The Engine's copies to another engine (or within one): copy_file_range without FUSE.
#include "copy_range.hpp"
#include "engine.hpp"
#include "sgfs/extent.hpp"

#include <algorithm>
#include <functional>
#include <vector>

namespace sgfs
{

// One chunk of a pipelined copy: read on `reader` into its memory, written from that same
// memory on `writer`.
struct Engine::CopyStage {
    Slot *reader = nullptr;
    Slot *writer = nullptr;
    std::uint64_t source_lba = 0, destination_lba = 0;
    std::uint32_t blocks = 0;
    std::size_t chunk = 0; // index into the copy's chunks
    Command read, write;   // the commands in flight on reader and writer
    bool reading = false, writing = false;
};

IoResult Engine::copy_to(Engine &target, std::uint64_t from, std::uint64_t to, std::uint64_t wanted)
{
    // The source's writes acknowledged behind are part of what is copied.
    const BlockPlan source = plan_blocks(from, wanted, info_.logical_block_size);
    wait_for_writes_behind(source.first_lba, source.block_count);
    // Within one disk, a punch could reach source bytes not yet read: those copy densely.
    if (&target == this && from < to + wanted && to < from + wanted)
        return dense_copy_to(target, from, to, wanted);
    // Run by run: data is copied, a hole (it reads zero and holds nothing) is not read but
    // punched in the destination, its cheapest way of reading zero. A disk without holes
    // answers one run to its end without a command.
    std::uint64_t done = 0;
    while (done < wanted) {
        const Mapping run = map_within(from + done);
        // A failed question leaves the rest to the copy, which meets the same trouble (and
        // says whose it is) or none.
        if (!run.result.ok() || run.end <= from + done) {
            IoResult rest = dense_copy_to(target, from + done, to + done, wanted - done);
            rest.bytes += done;
            return rest;
        }
        const std::uint64_t bytes = std::min(run.end - (from + done), wanted - done);
        if (run.hole) {
            IoResult punched = target.punch_within(to + done, bytes);
            if (!punched.ok()) {
                punched.bytes = done;
                punched.end = IoEnd::destination;
                return punched;
            }
            stats_.count_copy_hole(bytes);
        } else if (IoResult copied = dense_copy_to(target, from + done, to + done, bytes);
                   !copied.ok()) {
            copied.bytes += done;
            return copied;
        }
        done += bytes;
    }
    return IoResult::success(wanted);
}

IoResult Engine::dense_copy_to(Engine &target, std::uint64_t from, std::uint64_t to,
                               std::uint64_t wanted)
{
    if (&target == this && from == to)
        return IoResult::success(wanted);
    const std::uint32_t block = info_.logical_block_size;
    if (target.info_.logical_block_size != block || from % block != to % block) {
        // Source and destination blocks never line up: every byte is staged.
        return staged_copy_to(target, from, to, wanted);
    }
    // Whole blocks go channel to channel; a partial head and tail are staged.
    const std::uint64_t head = std::min<std::uint64_t>(wanted, (block - from % block) % block);
    const std::uint64_t blocks = (wanted - head) / block;
    const std::uint64_t tail_at = head + blocks * block;
    const bool backwards = copy_goes_backwards(&target == this, from, to, wanted);
    const auto edge = [&](std::uint64_t offset, std::uint64_t bytes) {
        return bytes == 0 ? IoResult::success(0)
                          : staged_copy_to(target, from + offset, to + offset, bytes);
    };
    const auto middle = [&] {
        return blocks == 0 ? IoResult::success(0)
                           : copy_blocks_to(target, (from + head) / block, (to + head) / block,
                                            blocks, backwards);
    };
    if (backwards) {
        IoResult result = edge(tail_at, wanted - tail_at);
        if (result.ok())
            result = middle();
        if (result.ok())
            result = edge(0, head);
        if (result.ok())
            return IoResult::success(wanted);
        result.bytes = 0; // back to front: nothing before the failure is in place
        return result;
    }
    // Front to back, a copy that fails part-way reports the bytes before the failure, as
    // copy_file_range(2) and write(2) do; the caller's next call from there gets the error.
    std::uint64_t done = 0;
    IoResult result = edge(0, head);
    if (result.ok()) {
        done = head;
        result = middle();
        done += result.bytes;
    }
    if (result.ok())
        result = edge(tail_at, wanted - tail_at);
    if (result.ok())
        return IoResult::success(wanted);
    result.bytes = done;
    return result;
}

IoResult Engine::staged_copy_to(Engine &target, std::uint64_t from, std::uint64_t to,
                                std::uint64_t length)
{
    AlignedBuffer staging(std::min<std::uint64_t>(length, info_.max_transfer_bytes));
    return staged_copy(
        from, to, length, copy_goes_backwards(&target == this, from, to, length),
        std::span(staging.data(), staging.size()),
        [this](void *data, std::uint64_t bytes, std::uint64_t offset) {
            return read_bytes(DataPath::copy, data, bytes, offset);
        },
        [&target](const void *data, std::uint64_t bytes, std::uint64_t offset) {
            return target.write_bytes(DataPath::copy, data, bytes, offset);
        });
}

IoResult Engine::check_both_present(Engine &target)
{
    if (IoResult present = check_present(); !present.ok()) {
        present.end = IoEnd::source;
        return present;
    }
    if (IoResult present = target.check_present(); !present.ok()) {
        present.end = IoEnd::destination;
        return present;
    }
    return IoResult::success(0);
}

IoResult Engine::pipelined_copy_to(Engine &target, std::uint64_t source_lba,
                                   std::uint64_t destination_lba, std::uint64_t blocks,
                                   bool backwards)
{
    if (IoResult present = check_both_present(target); !present.ok())
        return present;
    std::vector<CopyStage> chunks;
    for_each_copy_chunk(blocks, std::min(max_blocks_, target.max_blocks_), backwards,
                        [&](std::uint64_t offset, std::uint64_t count) {
                            CopyStage chunk;
                            chunk.source_lba = source_lba + offset;
                            chunk.destination_lba = destination_lba + offset;
                            chunk.blocks = static_cast<std::uint32_t>(count);
                            chunks.push_back(chunk);
                            return 0;
                        });

    // A long copy gives the channels and the range back every few chunks, so that other IO
    // on either disk waits for one turn, not for the whole copy. Turns run one after the
    // other in the chunks' order, which keeps a one-disk copy memmove.
    constexpr std::size_t chunks_per_turn = 16;
    std::uint64_t done = 0;
    for (std::size_t first = 0; first < chunks.size(); first += chunks_per_turn) {
        const std::span<const CopyStage> turn = std::span<const CopyStage>(chunks).subspan(
            first, std::min(chunks_per_turn, chunks.size() - first));
        IoResult result = copy_turn(target, turn);
        done += result.bytes;
        if (!result.ok()) {
            result.bytes = done;
            return result;
        }
    }
    return IoResult::success(done);
}

IoResult Engine::copy_turn(Engine &target, std::span<const CopyStage> chunks)
{
    const CopyStage &first = chunks.front();
    const CopyStage &last = chunks.back();
    const std::uint64_t begin = std::min(first.destination_lba, last.destination_lba);
    const std::uint64_t end =
        std::max(first.destination_lba + first.blocks, last.destination_lba + last.blocks);
    // The destination's write range before any pool lease (the lock order at the top).
    auto held = target.write_ranges_.lock(begin, end);
    target.readahead_.invalidate({begin, end - begin});
    const CopyPlacement placement = policy_.copy();
    Pool<Slot> &readers = pool_for(placement.read);
    Pool<Slot> &writers = target.plain_pool_;
    // One disk's own copy reads and writes each chunk on the same channel, one after the
    // other.
    const bool shared = &readers == &writers;
    const std::size_t depth = std::min<std::size_t>(
        chunks.size(), shared ? readers.size() : std::min(readers.size(), writers.size()));
    std::vector<Pool<Slot>::Lease> read_leases, write_leases;
    // Two pools in one global order: copies in opposite directions never hold one each
    // while waiting for the other.
    if (shared) {
        read_leases = readers.acquire_many(depth);
    } else if (std::less<>()(&readers, &writers)) {
        read_leases = readers.acquire_many(depth);
        write_leases = writers.acquire_many(depth);
    } else {
        write_leases = writers.acquire_many(depth);
        read_leases = readers.acquire_many(depth);
    }
    std::vector<CopyStage> stages(depth);
    for (std::size_t i = 0; i < depth; ++i) {
        stages[i].reader = read_leases[i].get();
        stages[i].writer = shared ? read_leases[i].get() : write_leases[i].get();
    }
    IoResult result = run_copy_stages(target, stages, chunks, placement);
    // A window read ahead while the copy ran may hold old or new data: drop it.
    target.readahead_.invalidate({begin, end - begin});
    return result;
}

// The chunks in order through a ring of stages: while chunk c is written, the reads of the
// next depth/2 chunks are in flight, and the other stages still carry earlier writes. In
// the order for_each_copy_chunk gives, no write lands on source blocks of a read not yet
// done, so a one-disk copy stays memmove.
IoResult Engine::run_copy_stages(Engine &target, std::span<CopyStage> stages,
                                 std::span<const CopyStage> chunks, const CopyPlacement &placement)
{
    IoResult error = IoResult::success(0);
    std::vector<bool> written(chunks.size(), false);
    const auto note = [&](IoResult result, Engine &owner, IoEnd end) {
        if (result.ok() || !error.ok())
            return;
        error = owner.failure(std::move(result));
        error.end = end;
    };
    const CommandContext reading = context(DataPath::copy);
    const CommandContext writing = target.context(DataPath::copy);
    // Every command started is finished, errors or not: its channel must be idle after.
    const auto finish_read = [&](CopyStage &stage) {
        if (!stage.reading)
            return;
        stage.reading = false;
        note(finish_command(*stage.reader->channel, stage.read, reading), *this, IoEnd::source);
    };
    const auto finish_write = [&](CopyStage &stage) {
        if (!stage.writing)
            return;
        stage.writing = false;
        IoResult result = finish_command(*stage.writer->channel, stage.write, writing);
        written[stage.chunk] = result.ok();
        note(std::move(result), target, IoEnd::destination);
    };
    const auto start = [&](Slot &slot, Command &command, Engine &owner, IoEnd end) {
        IoResult started = start_command(*slot.channel, command);
        const bool ok = started.ok();
        note(std::move(started), owner, end);
        return ok;
    };

    const std::size_t depth = stages.size();
    const std::size_t reads_ahead = depth / 2;
    std::size_t next = 0;
    for (std::size_t c = 0; c < chunks.size() && error.ok(); ++c) {
        for (; error.ok() && next < chunks.size() && next <= c + reads_ahead; ++next) {
            CopyStage &stage = stages[next % depth];
            finish_write(stage);
            if (!error.ok())
                break;
            const CopyStage &chunk = chunks[next];
            stage.chunk = next;
            stage.read = block_command(
                {false, chunk.source_lba, chunk.blocks, info_.logical_block_size, false},
                stage.reader->memory(placement.home), placement.read,
                options_.timeout_seconds * 1000U);
            stage.reading = start(*stage.reader, stage.read, *this, IoEnd::source);
        }
        CopyStage &stage = stages[c % depth];
        finish_read(stage);
        if (!error.ok())
            break;
        const CopyStage &chunk = chunks[c];
        stage.write = block_command({true, chunk.destination_lba, chunk.blocks,
                                     target.info_.logical_block_size, target.options_.fua},
                                    stage.reader->memory(placement.home), placement.write,
                                    target.options_.timeout_seconds * 1000U);
        stage.writing = start(*stage.writer, stage.write, target, IoEnd::destination);
    }
    for (CopyStage &stage : stages) {
        finish_read(stage);
        finish_write(stage);
    }
    std::uint64_t blocks_done = 0;
    for (std::size_t c = 0; c < chunks.size() && written[c]; ++c)
        blocks_done += chunks[c].blocks;
    error.bytes = blocks_done * info_.logical_block_size;
    return error;
}

} // namespace sgfs
