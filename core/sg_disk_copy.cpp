// SgDisk's copies to another sg disk (or within one): copy_file_range without FUSE.
#include "copy_range.hpp"
#include "sg_disk.hpp"
#include "sgfs/extent.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <vector>

namespace sgfs
{
// What the mount's io= mode means for a copy between two sg disks; the chunk never passes
// through FUSE, and no mode copies it in user space:
//   indirect  both commands through the driver's kernel buffers (the driver copies twice);
//   direct    read by DMA into an aligned buffer of ours, written by DMA from that buffer;
//   mmap      read into the source fd's mmap-ed reserve buffer, written from that mapping
//             with direct IO (every page of it was touched when it was mapped: the mapping
//             is VM_IO, and direct IO from an untouched page fails with EFAULT), or with
//             indirect IO when the driver does not allow direct IO;
//   auto      like direct; without allow_dio like mmap, whose read is still DMA. In the
//             TCG guest (scsi_debug, 64 MiB cp, 1 MiB chunks) direct and mmap were within
//             the noise of each other (about 80 to 240 MB/s for both, sgfs CPU 150 to 300
//             ms each), so the simpler one, which needs no mmap-ed fds, is the default.
SgDisk::CopyModes SgDisk::copy_modes() const
{
    const TransferMode write_from_mapping =
        info_.allow_dio ? TransferMode::direct : TransferMode::indirect;
    switch (options_.io_mode) {
    case IoMode::indirect:
        return {TransferMode::indirect, TransferMode::indirect};
    case IoMode::direct:
        return {TransferMode::direct, TransferMode::direct};
    case IoMode::mmap:
        return {TransferMode::mmap, write_from_mapping};
    case IoMode::automatic:
        break;
    }
    if (info_.allow_dio)
        return {TransferMode::direct, TransferMode::direct};
    return {TransferMode::mmap, TransferMode::indirect};
}

ssize_t SgDisk::copy_range(std::uint64_t from, Disk &destination, std::uint64_t to,
                           std::size_t length, CopyEnd &failed)
{
    auto *target = dynamic_cast<SgDisk *>(&destination);
    if (target == nullptr)
        return Disk::copy_range(from, destination, to, length, failed);
    failed = CopyEnd::destination;
    if (target->options_.read_only || target->info_.write_protected)
        return target->fail(-EROFS, target->info_.name + ": read-only");
    std::uint64_t wanted = 0;
    if (int rc = copy_extent(info_.capacity_bytes, target->info_.capacity_bytes, from, to, length,
                             wanted);
        rc != 0)
        return target->fail(rc, target->info_.name + ": copy past the end of the device");
    failed = CopyEnd::none;
    if (wanted == 0 || (target == this && from == to))
        return static_cast<ssize_t>(wanted);

    const std::uint32_t block = info_.logical_block_size;
    if (target->info_.logical_block_size != block || from % block != to % block) {
        // Source and destination blocks never line up: every byte is staged.
        const int rc = staged_copy_to(*target, from, to, wanted, failed);
        return rc != 0 ? rc : static_cast<ssize_t>(wanted);
    }
    // Whole blocks go sg fd to sg fd; a partial head and tail are staged.
    const std::uint64_t head = std::min<std::uint64_t>(wanted, (block - from % block) % block);
    const std::uint64_t blocks = (wanted - head) / block;
    const std::uint64_t tail_at = head + blocks * block;
    const bool backwards = copy_goes_backwards(target == this, from, to, wanted);
    std::uint64_t blocks_done = 0;
    const auto edge = [&](std::uint64_t offset, std::uint64_t bytes) {
        return bytes == 0 ? 0 : staged_copy_to(*target, from + offset, to + offset, bytes, failed);
    };
    const auto middle = [&] {
        return blocks == 0 ? 0
                           : pipelined_copy_to(*target, (from + head) / block, (to + head) / block,
                                               blocks, backwards, failed, blocks_done);
    };
    if (backwards) {
        int rc = edge(tail_at, wanted - tail_at);
        if (rc == 0)
            rc = middle();
        if (rc == 0)
            rc = edge(0, head);
        return rc != 0 ? rc : static_cast<ssize_t>(wanted);
    }
    // Front to back, a copy that fails part-way reports the bytes before the failure, as
    // copy_file_range(2) and write(2) do; the caller's next call from there gets the error.
    std::uint64_t done = 0;
    int rc = edge(0, head);
    if (rc == 0) {
        rc = middle();
        done = head + blocks_done * block;
    }
    if (rc == 0)
        rc = edge(tail_at, wanted - tail_at);
    if (rc == 0)
        return static_cast<ssize_t>(wanted);
    return done > 0 ? static_cast<ssize_t>(done) : rc;
}

int SgDisk::staged_copy_to(SgDisk &target, std::uint64_t from, std::uint64_t to,
                           std::uint64_t length, CopyEnd &failed)
{
    AlignedBuffer staging(std::min<std::uint64_t>(length, info_.max_transfer_bytes));
    bool write_failed = false;
    const int rc = staged_copy(
        from, to, length, copy_goes_backwards(&target == this, from, to, length),
        std::span(staging.data(), staging.size()),
        [this](void *data, std::uint64_t bytes, std::uint64_t offset) {
            return read_bytes(DataPath::copy, data, bytes, offset);
        },
        [&target](const void *data, std::uint64_t bytes, std::uint64_t offset) {
            return target.write_bytes(DataPath::copy, data, bytes, offset);
        },
        write_failed);
    if (rc != 0)
        failed = write_failed ? CopyEnd::destination : CopyEnd::source;
    return rc;
}

int SgDisk::pipelined_copy_to(SgDisk &target, std::uint64_t source_lba,
                              std::uint64_t destination_lba, std::uint64_t blocks, bool backwards,
                              CopyEnd &failed, std::uint64_t &blocks_done)
{
    blocks_done = 0;
    if (gone_) {
        failed = CopyEnd::source;
        return fail(-ENODEV, info_.name + ": device is gone");
    }
    if (target.gone_) {
        failed = CopyEnd::destination;
        return target.fail(-ENODEV, target.info_.name + ": device is gone");
    }
    const CopyModes modes = copy_modes();
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

    // A long copy gives the fds and the range back every few chunks, so that other IO on
    // either disk waits for one turn, not for the whole copy. Turns run one after the
    // other in the chunks' order, which keeps a one-disk copy memmove.
    constexpr std::size_t chunks_per_turn = 16;
    for (std::size_t first = 0; first < chunks.size(); first += chunks_per_turn) {
        const std::span<const CopyStage> turn = std::span<const CopyStage>(chunks).subspan(
            first, std::min(chunks_per_turn, chunks.size() - first));
        std::uint64_t turn_done = 0;
        const int rc = copy_turn(target, turn, modes, failed, turn_done);
        blocks_done += turn_done;
        if (rc != 0)
            return rc;
    }
    return 0;
}

int SgDisk::copy_turn(SgDisk &target, std::span<const CopyStage> chunks, CopyModes modes,
                      CopyEnd &failed, std::uint64_t &blocks_done)
{
    const CopyStage &first = chunks.front();
    const CopyStage &last = chunks.back();
    const std::uint64_t begin = std::min(first.destination_lba, last.destination_lba);
    const std::uint64_t end =
        std::max(first.destination_lba + first.blocks, last.destination_lba + last.blocks);
    // The destination's write range before any pool lease (the lock order at the top).
    auto held = target.write_ranges_.lock(begin, end);
    target.readahead_.invalidate({begin, end - begin});
    Pool<Slot> &readers = modes.read == TransferMode::mmap ? mmap_pool_ : copy_pool_;
    Pool<Slot> &writers = target.copy_pool_;
    // One disk's own copy reads and writes each chunk on the same fd, one after the other.
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
    const int rc = run_copy_stages(target, stages, chunks, modes, failed, blocks_done);
    // A window read ahead while the copy ran may hold old or new data: drop it.
    target.readahead_.invalidate({begin, end - begin});
    return rc;
}

// The chunks in order through a ring of stages: while chunk c is written, the reads of the
// next depth/2 chunks are in flight, and the other stages still carry earlier writes. In
// the order for_each_copy_chunk gives, no write lands on source blocks of a read not yet
// done, so a one-disk copy stays memmove.
int SgDisk::run_copy_stages(SgDisk &target, std::span<CopyStage> stages,
                            std::span<const CopyStage> chunks, CopyModes modes, CopyEnd &failed,
                            std::uint64_t &blocks_done)
{
    int error = 0;
    std::vector<bool> written(chunks.size(), false);
    const auto note = [&](int rc, CopyEnd end) {
        if (rc != 0 && error == 0) {
            error = rc;
            failed = end;
        }
    };
    const auto data_of = [&](const CopyStage &stage) { return stage.reader->staging(modes.read); };
    // Every command submitted is reaped, errors or not: its fd must be idle when returned.
    const auto finish_read = [&](CopyStage &stage) {
        if (!stage.reading)
            return;
        stage.reading = false;
        note(finish_copy_command(*this, *stage.reader, stage, false, modes.read, data_of(stage)),
             CopyEnd::source);
    };
    const auto finish_write = [&](CopyStage &stage) {
        if (!stage.writing)
            return;
        stage.writing = false;
        const int rc =
            finish_copy_command(target, *stage.writer, stage, true, modes.write, data_of(stage));
        note(rc, CopyEnd::destination);
        written[stage.chunk] = rc == 0;
    };

    const std::size_t depth = stages.size();
    const std::size_t reads_ahead = depth / 2;
    std::size_t next = 0;
    for (std::size_t c = 0; c < chunks.size() && error == 0; ++c) {
        for (; error == 0 && next < chunks.size() && next <= c + reads_ahead; ++next) {
            CopyStage &stage = stages[next % depth];
            finish_write(stage);
            if (error != 0)
                break;
            stage.source_lba = chunks[next].source_lba;
            stage.destination_lba = chunks[next].destination_lba;
            stage.blocks = chunks[next].blocks;
            stage.chunk = next;
            const int rc =
                start_copy_command(*this, *stage.reader, stage, false, modes.read, data_of(stage));
            note(rc, CopyEnd::source);
            stage.reading = rc == 0;
        }
        CopyStage &stage = stages[c % depth];
        finish_read(stage);
        if (error != 0)
            break;
        const int rc =
            start_copy_command(target, *stage.writer, stage, true, modes.write, data_of(stage));
        note(rc, CopyEnd::destination);
        stage.writing = rc == 0;
    }
    for (CopyStage &stage : stages) {
        finish_read(stage);
        finish_write(stage);
    }
    blocks_done = 0;
    for (std::size_t c = 0; c < chunks.size() && written[c]; ++c)
        blocks_done += chunks[c].blocks;
    return error;
}

int SgDisk::start_copy_command(SgDisk &owner, Slot &slot, const CopyStage &chunk, bool write,
                               TransferMode mode, std::uint8_t *data)
{
    SgRequest request;
    request.cdb = write ? cdb_write(chunk.destination_lba, chunk.blocks, owner.options_.fua)
                        : cdb_read(chunk.source_lba, chunk.blocks, false);
    request.direction = write ? DataDirection::to_device : DataDirection::from_device;
    request.buffer = data;
    request.length = std::size_t{chunk.blocks} * owner.info_.logical_block_size;
    request.mode = mode;
    request.timeout_ms = owner.options_.timeout_seconds * 1000U;
    if (int rc = slot.fd->submit(request); rc != 0)
        return owner.fail(rc, owner.info_.name + ": " + command_name(request.cdb) +
                                  ": queueing failed: " + std::strerror(-rc));
    return 0;
}

int SgDisk::finish_copy_command(SgDisk &owner, Slot &slot, const CopyStage &chunk, bool write,
                                TransferMode mode, std::uint8_t *data)
{
    const std::size_t bytes = std::size_t{chunk.blocks} * owner.info_.logical_block_size;
    SgCompletion done;
    if (slot.fd->reap(done) == 0 && done.outcome.ok() && done.residual == 0) {
        owner.stats_.count_command(DataPath::copy, mode, done.done_mode, bytes, false);
        return 0;
    }
    // Again, synchronously: retries, error counting and the message live there.
    BlockTransfer transfer;
    transfer.write = write;
    transfer.lba = write ? chunk.destination_lba : chunk.source_lba;
    transfer.blocks = chunk.blocks;
    transfer.block_size = owner.info_.logical_block_size;
    transfer.buffer = data;
    transfer.mode = mode;
    transfer.fua = write && owner.options_.fua;
    std::string message;
    if (int rc = sg_ll_read_write(*slot.fd, owner.context(DataPath::copy), transfer, message);
        rc != 0)
        return owner.fail(rc, owner.info_.name + ": " + message);
    return 0;
}

} // namespace sgfs
