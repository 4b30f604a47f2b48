// Disk over an sg node: probing, the fd pools, the IO policy, splitting, read-ahead and
// read-modify-write. Lock order: RangeLock (a write's blocks) before the Readahead mutex
// before a Pool lease before last_error_mutex_; never the other way.
#include "sgfs/disk.hpp"

#include "aligned_buffer.hpp"
#include "copy_range.hpp"
#include "io_policy.hpp"
#include "range_lock.hpp"
#include "readahead.hpp"
#include "reattach.hpp"
#include "sg_ll.hpp"
#include "sg_transport.hpp"
#include "sgfs/discovery.hpp"
#include "sgfs/extent.hpp"
#include "slot.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <vector>

namespace sgfs
{
namespace
{

constexpr std::size_t direct_io_alignment = 512;

bool read_allow_dio()
{
    std::ifstream in("/sys/module/sg/parameters/allow_dio");
    int value = 0;
    return (in >> value) && value != 0;
}

std::string base_name(const std::string &path)
{
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool is_disk_type(int type)
{
    return type == 0x00 || type == 0x0e;
}

class SgDisk final : public Disk
{
  public:
    SgDisk(const DiskOptions &options) : options_(options) {}
    int probe(const std::string &sg_path, std::string &message);

    const DiskInfo &info() const override { return info_; }
    ssize_t pread(void *buffer, std::size_t length, std::uint64_t offset) override
    {
        return read_bytes(DataPath::read, buffer, length, offset);
    }
    ssize_t read_view(std::size_t length, std::uint64_t offset, const ReadConsumer &consume,
                      bool &consumed) override;
    ssize_t pwrite(const void *buffer, std::size_t length, std::uint64_t offset) override
    {
        return write_bytes(DataPath::write, buffer, length, offset);
    }
    ssize_t copy_range(std::uint64_t from, Disk &destination, std::uint64_t to, std::size_t length,
                       CopyEnd &failed) override;
    int flush() override;
    DeviceStatsSnapshot stats() const override { return stats_.snapshot(); }
    std::string last_error() const override
    {
        std::lock_guard lock(last_error_mutex_);
        return last_error_;
    }

  private:
    // What a copy's two commands do with a chunk: where the read puts it and how the
    // write takes it from there (see copy_modes()).
    struct CopyModes {
        TransferMode read = TransferMode::indirect;
        TransferMode write = TransferMode::indirect;
    };
    // One chunk of a pipelined copy: read on `reader` into its memory, written from that
    // same memory on `writer`.
    struct CopyStage {
        Slot *reader = nullptr;
        Slot *writer = nullptr;
        std::uint64_t source_lba = 0, destination_lba = 0;
        std::uint32_t blocks = 0;
        bool reading = false, writing = false;
    };

    // pread and pwrite, counted under `path`.
    ssize_t read_bytes(DataPath path, void *buffer, std::size_t length, std::uint64_t offset);
    ssize_t write_bytes(DataPath path, const void *buffer, std::size_t length,
                        std::uint64_t offset);
    CopyModes copy_modes() const;
    int staged_copy_to(SgDisk &target, std::uint64_t from, std::uint64_t to, std::uint64_t length,
                       CopyEnd &failed);
    int pipelined_copy_to(SgDisk &target, std::uint64_t source_lba, std::uint64_t destination_lba,
                          std::uint64_t blocks, bool backwards, CopyEnd &failed);
    int copy_turn(SgDisk &target, std::span<const CopyStage> chunks, CopyModes modes,
                  CopyEnd &failed);
    int run_copy_stages(SgDisk &target, std::span<CopyStage> stages,
                        std::span<const CopyStage> chunks, CopyModes modes, CopyEnd &failed);
    int start_copy_command(SgDisk &owner, Slot &slot, const CopyStage &chunk, bool write,
                           TransferMode mode, std::uint8_t *data);
    int finish_copy_command(SgDisk &owner, Slot &slot, const CopyStage &chunk, bool write,
                            TransferMode mode, std::uint8_t *data);
    int make_slot(bool mmap, std::unique_ptr<Slot> &out, std::string &message);
    int open_slot(Pool<Slot> &pool, bool mmap, std::string &message);
    int start_readahead(std::string &message);
    int read_chunks_in_flight(std::uint64_t lba, std::uint64_t blocks,
                              std::vector<Pool<Slot>::Lease> &leases, TransferMode mode,
                              std::vector<iovec> &pieces);
    int probe_identity(const SgFd &fd, std::string &message);
    // `path` only says what the data is for, in the per-path counts.
    int transfer_blocks(DataPath path, bool write, std::uint64_t lba, std::uint64_t blocks,
                        std::uint8_t *data);
    int transfer_chunk(DataPath path, bool write, std::uint64_t lba, std::uint32_t blocks,
                       std::uint8_t *data);
    int read_modify_write(DataPath path, std::uint64_t lba, std::uint32_t skip,
                          const std::uint8_t *data, std::uint64_t length);
    int fail(int rc, const std::string &message);
    CommandContext context(DataPath path = DataPath::none, bool staged = false)
    {
        return {options_.timeout_seconds * 1000U, options_.retries, &stats_, path, staged};
    }

    DiskOptions options_;
    DiskInfo info_;
    IoPolicy policy_;
    std::uint32_t max_blocks_ = 1;
    DeviceStats stats_;
    std::vector<std::unique_ptr<Slot>> slots_;
    Pool<Slot> copy_pool_; // indirect and direct IO
    Pool<Slot> mmap_pool_; // mmap IO only: an indirect command would take the reserve buffer
    RangeLock write_ranges_;
    Readahead readahead_;
    std::atomic<bool> gone_{false};
    mutable std::mutex last_error_mutex_;
    std::string last_error_;
};

int SgDisk::fail(int rc, const std::string &message)
{
    if (rc == -ENODEV)
        gone_ = true;
    std::lock_guard lock(last_error_mutex_);
    last_error_ = message;
    return rc;
}

int SgDisk::open_slot(Pool<Slot> &pool, bool mmap, std::string &message)
{
    std::unique_ptr<Slot> slot;
    if (int rc = make_slot(mmap, slot, message); rc != 0)
        return rc;
    pool.add(*slot);
    slots_.push_back(std::move(slot));
    return 0;
}

int SgDisk::make_slot(bool mmap, std::unique_ptr<Slot> &out, std::string &message)
{
    auto slot = std::make_unique<Slot>();
    if (int rc = SgFd::open(info_.sg_path, options_.read_only, slot->fd, message); rc != 0)
        return rc;
    const long granted = slot->fd->set_reserve(options_.reserve);
    if (granted < 0) {
        message =
            info_.sg_path + ": SG_SET_RESERVED_SIZE: " + std::strerror(static_cast<int>(-granted));
        return static_cast<int>(granted);
    }
    if (mmap) {
        if (int rc = slot->fd->map_reserve(options_.read_only); rc != 0) {
            message = info_.sg_path + ": mmap of the " + std::to_string(granted) +
                      "-byte reserve buffer failed: " + std::strerror(-rc);
            return rc;
        }
    }
    out = std::move(slot);
    return 0;
}

// One fd per window, as deep as the pool: enough to keep the device busy while the
// previous reply is copied, in whichever mode the policy picks for a full-size command.
int SgDisk::start_readahead(std::string &message)
{
    const TransferMode mode = policy_.choose(info_.max_transfer_bytes, true);
    std::vector<std::unique_ptr<Slot>> slots;
    for (unsigned i = 0; i < std::max(1U, options_.queue_depth); ++i) {
        std::unique_ptr<Slot> slot;
        if (int rc = make_slot(mode == TransferMode::mmap, slot, message); rc != 0)
            return rc;
        slot->bounce = AlignedBuffer(info_.max_transfer_bytes);
        slots.push_back(std::move(slot));
    }
    ReadaheadConfig config;
    config.block_size = info_.logical_block_size;
    config.max_blocks = max_blocks_;
    config.mode = mode;
    config.timeout_ms = options_.timeout_seconds * 1000U;
    config.stats = &stats_;
    readahead_.configure(std::move(slots), config);
    return 0;
}

int SgDisk::probe_identity(const SgFd &fd, std::string &message)
{
    const CommandContext ctx = context();
    // The first command after attach usually meets a power-on unit attention.
    if (int rc = sg_ll_test_unit_ready(fd, ctx, message); rc != 0)
        return rc;
    StandardInquiry inquiry;
    if (int rc = sg_ll_inquiry(fd, ctx, inquiry, message); rc != 0)
        return rc;
    info_.device_type = inquiry.peripheral_device_type;
    info_.vendor = inquiry.vendor;
    info_.model = inquiry.product;
    info_.revision = inquiry.revision;
    if (!is_disk_type(inquiry.peripheral_device_type)) {
        message = info_.sg_path + " is not a disk (" +
                  device_type_name(inquiry.peripheral_device_type) + ")";
        return -ENOTBLK;
    }

    Capacity capacity;
    std::string ignored;
    if (sg_ll_readcap_16(fd, ctx, capacity, ignored) != 0) {
        if (int rc = sg_ll_readcap_10(fd, ctx, capacity, message); rc != 0)
            return rc;
    }
    if (capacity.logical_block_size == 0 || !is_power_of_two(capacity.logical_block_size)) {
        message = info_.sg_path + ": unsupported logical block size " +
                  std::to_string(capacity.logical_block_size);
        return -EPROTO;
    }
    info_.capacity_bytes = capacity.bytes();
    info_.logical_block_size = capacity.logical_block_size;
    info_.physical_block_size = std::max(capacity.physical_block_size, capacity.logical_block_size);

    std::vector<std::uint8_t> page;
    std::vector<std::uint8_t> supported;
    if (sg_ll_inquiry_vpd(fd, ctx, vpd::supported_pages, page, ignored) == 0)
        decode_vpd_supported_pages(page, supported);
    auto has_page = [&](std::uint8_t code) {
        return std::find(supported.begin(), supported.end(), code) != supported.end();
    };
    if (has_page(vpd::device_identification) &&
        sg_ll_inquiry_vpd(fd, ctx, vpd::device_identification, page, ignored) == 0) {
        std::vector<Designator> designators;
        if (decode_vpd_device_identification(page, designators) == 0)
            info_.stable_id = stable_id_from_designators(designators);
    }
    if (info_.stable_id.empty() && has_page(vpd::unit_serial_number) &&
        sg_ll_inquiry_vpd(fd, ctx, vpd::unit_serial_number, page, ignored) == 0) {
        std::string serial;
        if (decode_vpd_unit_serial(page, serial) == 0)
            info_.stable_id = stable_id_from_serial(serial);
    }
    std::uint64_t max_transfer = 1ULL << 30;
    BlockLimits limits;
    if (has_page(vpd::block_limits) &&
        sg_ll_inquiry_vpd(fd, ctx, vpd::block_limits, page, ignored) == 0 &&
        decode_vpd_block_limits(page, limits) == 0 && limits.maximum_transfer_length != 0)
        max_transfer = std::min<std::uint64_t>(
            max_transfer, std::uint64_t{limits.maximum_transfer_length} * info_.logical_block_size);
    if (const long queue_max = fd.max_transfer_bytes(); queue_max > 0)
        max_transfer = std::min<std::uint64_t>(max_transfer, static_cast<std::uint64_t>(queue_max));
    if (options_.max_io != 0)
        max_transfer = std::min<std::uint64_t>(max_transfer, options_.max_io);
    // Every mode shares one split size: mmap IO cannot exceed the granted reserve.
    max_transfer = std::min<std::uint64_t>(max_transfer, fd.reserve());
    max_blocks_ = max_blocks_per_command(max_transfer, info_.logical_block_size);
    info_.max_transfer_bytes = max_blocks_ * info_.logical_block_size;
    info_.reserve_granted = static_cast<std::uint32_t>(fd.reserve());

    bool write_protected = false;
    if (sg_ll_mode_sense_10_wp(fd, ctx, write_protected, ignored) == 0)
        info_.write_protected = write_protected;
    return 0;
}

int SgDisk::probe(const std::string &sg_path, std::string &message)
{
    info_.sg_path = sg_path;
    info_.name = base_name(sg_path);
    for (const SgDeviceEntry &entry : enumerate_sg_devices())
        if (entry.name == info_.name) {
            info_.hctl = entry.hctl;
            info_.block_device = entry.block_device;
        }
    info_.allow_dio = read_allow_dio();
    policy_ = IoPolicy{options_.io_mode, options_.mmap_min, info_.allow_dio};

    const unsigned depth = std::max(1U, options_.queue_depth);
    if (int rc = open_slot(copy_pool_, false, message); rc != 0)
        return rc;
    if (int rc = probe_identity(*slots_.front()->fd, message); rc != 0)
        return rc;
    for (unsigned i = 1; i < depth; ++i)
        if (int rc = open_slot(copy_pool_, false, message); rc != 0)
            return rc;
    if (policy_.uses_mmap())
        for (unsigned i = 0; i < depth; ++i)
            if (int rc = open_slot(mmap_pool_, true, message); rc != 0)
                return rc;
    for (auto &slot : slots_)
        slot->bounce = AlignedBuffer(info_.max_transfer_bytes);
    if (options_.readahead)
        return start_readahead(message);
    return 0;
}

int SgDisk::transfer_chunk(DataPath path, bool write, std::uint64_t lba, std::uint32_t blocks,
                           std::uint8_t *data)
{
    const std::size_t bytes = std::size_t{blocks} * info_.logical_block_size;
    const bool aligned = is_aligned(data, direct_io_alignment);
    const TransferMode mode = policy_.choose(bytes, aligned);
    auto lease = mode == TransferMode::mmap ? mmap_pool_.acquire() : copy_pool_.acquire();

    // mmap IO moves data through the fd's mapping, and direct IO from an unaligned
    // caller through the aligned bounce buffer: both cost one copy here.
    std::uint8_t *staging = nullptr;
    if (mode == TransferMode::mmap)
        staging = lease->fd->mmap_area().data();
    else if (mode == TransferMode::direct && !aligned)
        staging = lease->bounce.data();
    if (staging != nullptr && write)
        std::memcpy(staging, data, bytes);

    BlockTransfer transfer;
    transfer.write = write;
    transfer.lba = lba;
    transfer.blocks = blocks;
    transfer.block_size = info_.logical_block_size;
    transfer.buffer = staging != nullptr ? staging : data;
    transfer.mode = mode;
    transfer.fua = write && options_.fua;
    std::string message;
    if (int rc = sg_ll_read_write(*lease->fd, context(path, staging != nullptr), transfer, message);
        rc != 0)
        return fail(rc, info_.name + ": " + message);

    if (staging != nullptr && !write)
        std::memcpy(data, staging, bytes);
    return 0;
}

int SgDisk::transfer_blocks(DataPath path, bool write, std::uint64_t lba, std::uint64_t blocks,
                            std::uint8_t *data)
{
    if (gone_)
        return fail(-ENODEV, info_.name + ": device is gone");
    return for_each_chunk(lba, blocks, max_blocks_,
                          [&](std::uint64_t chunk_lba, std::uint32_t count, std::uint64_t first) {
                              return transfer_chunk(path, write, chunk_lba, count,
                                                    data + first * info_.logical_block_size);
                          });
}

ssize_t SgDisk::read_bytes(DataPath path, void *buffer, std::size_t length, std::uint64_t offset)
{
    const std::uint64_t wanted = clamp_length(offset, length, info_.capacity_bytes);
    if (wanted == 0)
        return 0;
    auto *out = static_cast<std::uint8_t *>(buffer);
    const std::uint32_t block = info_.logical_block_size;
    const int rc = for_each_piece(
        plan_blocks(offset, wanted, block), wanted, block,
        [&](std::uint64_t lba, std::uint32_t skip, std::uint64_t bytes, std::uint64_t done) {
            AlignedBuffer scratch(block);
            if (int err = transfer_blocks(path, false, lba, 1, scratch.data()); err != 0)
                return err;
            std::memcpy(out + done, scratch.data() + skip, bytes);
            stats_.count_partial_copy(path, bytes);
            return 0;
        },
        [&](std::uint64_t lba, std::uint64_t blocks, std::uint64_t done) {
            return transfer_blocks(path, false, lba, blocks, out + done);
        });
    return rc != 0 ? rc : static_cast<ssize_t>(wanted);
}

int SgDisk::read_chunks_in_flight(std::uint64_t lba, std::uint64_t blocks,
                                  std::vector<Pool<Slot>::Lease> &leases, TransferMode mode,
                                  std::vector<iovec> &pieces)
{
    std::vector<SgRequest> requests;
    std::vector<std::uint64_t> chunk_lbas;
    int first_error = 0;
    for_each_chunk(lba, blocks, max_blocks_,
                   [&](std::uint64_t chunk_lba, std::uint32_t count, std::uint64_t) {
                       Slot &slot = *leases[requests.size()];
                       SgRequest request;
                       request.cdb = cdb_read(chunk_lba, count, false);
                       request.direction = DataDirection::from_device;
                       request.buffer = slot.staging(mode);
                       request.length = std::size_t{count} * info_.logical_block_size;
                       request.mode = mode;
                       request.timeout_ms = options_.timeout_seconds * 1000U;
                       requests.push_back(request);
                       chunk_lbas.push_back(chunk_lba);
                       pieces.push_back({slot.staging(mode), request.length});
                       return 0;
                   });
    std::vector<bool> submitted(requests.size(), false);
    for (std::size_t i = 0; i < requests.size(); ++i)
        submitted[i] = leases[i]->fd->submit(requests[i]) == 0;
    // Every submitted command is reaped, errors or not: its fd must be idle when returned.
    for (std::size_t i = 0; i < requests.size(); ++i) {
        SgCompletion done;
        const bool good = submitted[i] && leases[i]->fd->reap(done) == 0 && done.outcome.ok() &&
                          done.residual == 0;
        if (good) {
            stats_.count_command(DataPath::read, mode, done.done_mode, requests[i].length, false);
            continue;
        }
        if (first_error != 0)
            continue;
        // Again, synchronously: retries, error counting and the message live there.
        BlockTransfer transfer;
        transfer.lba = chunk_lbas[i];
        transfer.blocks = static_cast<std::uint32_t>(requests[i].length / info_.logical_block_size);
        transfer.block_size = info_.logical_block_size;
        transfer.buffer = requests[i].buffer;
        transfer.mode = mode;
        std::string message;
        if (int rc = sg_ll_read_write(*leases[i]->fd, context(DataPath::read), transfer, message);
            rc != 0)
            first_error = fail(rc, info_.name + ": " + message);
    }
    return first_error;
}

ssize_t SgDisk::read_view(std::size_t length, std::uint64_t offset, const ReadConsumer &consume,
                          bool &consumed)
{
    consumed = false;
    const std::uint64_t wanted = clamp_length(offset, length, info_.capacity_bytes);
    if (wanted == 0)
        return Disk::read_view(0, offset, consume, consumed);
    const std::uint32_t block = info_.logical_block_size;
    const BlockPlan plan = plan_blocks(offset, wanted, block);
    if (gone_)
        return fail(-ENODEV, info_.name + ": device is gone");
    if (readahead_.enabled()) {
        // Queue what follows first, so the device works while this reply is copied.
        readahead_.advance({plan.first_lba, plan.block_count}, info_.capacity_bytes / block);
        int rc = 0;
        if (readahead_.serve(offset, wanted, consume, rc)) {
            consumed = true;
            return rc < 0 ? rc : static_cast<ssize_t>(wanted);
        }
    }
    const std::uint64_t chunks = (plan.block_count + max_blocks_ - 1) / max_blocks_;
    if (!plan.aligned() || chunks > std::max(1U, options_.queue_depth))
        return Disk::read_view(wanted, offset, consume, consumed);

    const TransferMode mode =
        policy_.choose(std::min<std::uint64_t>(wanted, info_.max_transfer_bytes), true);
    auto leases = (mode == TransferMode::mmap ? mmap_pool_ : copy_pool_).acquire_many(chunks);
    std::vector<iovec> pieces;
    if (int err = read_chunks_in_flight(plan.first_lba, plan.block_count, leases, mode, pieces);
        err != 0)
        return err;
    consumed = true;
    const int rc = consume(pieces);
    return rc < 0 ? rc : static_cast<ssize_t>(wanted);
}

int SgDisk::read_modify_write(DataPath path, std::uint64_t lba, std::uint32_t skip,
                              const std::uint8_t *data, std::uint64_t length)
{
    AlignedBuffer scratch(info_.logical_block_size);
    if (int rc = transfer_blocks(path, false, lba, 1, scratch.data()); rc != 0)
        return rc;
    std::memcpy(scratch.data() + skip, data, length);
    stats_.count_partial_copy(path, length);
    return transfer_blocks(path, true, lba, 1, scratch.data());
}

ssize_t SgDisk::write_bytes(DataPath path, const void *buffer, std::size_t length,
                            std::uint64_t offset)
{
    if (options_.read_only || info_.write_protected)
        return fail(-EROFS, info_.name + ": read-only");
    if (length == 0)
        return 0;
    if (offset >= info_.capacity_bytes)
        return fail(-ENOSPC, info_.name + ": write past the end of the device");
    const std::uint64_t wanted = clamp_length(offset, length, info_.capacity_bytes);
    // The data is only read; transfer_blocks takes a mutable pointer for both directions.
    auto *in = const_cast<std::uint8_t *>(static_cast<const std::uint8_t *>(buffer));
    const std::uint32_t block = info_.logical_block_size;
    const BlockPlan plan = plan_blocks(offset, wanted, block);
    auto held = write_ranges_.lock(plan.first_lba, plan.first_lba + plan.block_count);
    readahead_.invalidate({plan.first_lba, plan.block_count});
    const int rc = for_each_piece(
        plan, wanted, block,
        [&](std::uint64_t lba, std::uint32_t skip, std::uint64_t bytes, std::uint64_t done) {
            return read_modify_write(path, lba, skip, in + done, bytes);
        },
        [&](std::uint64_t lba, std::uint64_t blocks, std::uint64_t done) {
            return transfer_blocks(path, true, lba, blocks, in + done);
        });
    // A window read ahead while this write ran may hold old or new data: drop it.
    readahead_.invalidate({plan.first_lba, plan.block_count});
    return rc != 0 ? rc : static_cast<ssize_t>(wanted);
}

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
    const auto edge = [&](std::uint64_t offset, std::uint64_t bytes) {
        return bytes == 0 ? 0 : staged_copy_to(*target, from + offset, to + offset, bytes, failed);
    };
    const auto middle = [&] {
        return blocks == 0 ? 0
                           : pipelined_copy_to(*target, (from + head) / block, (to + head) / block,
                                               blocks, backwards, failed);
    };
    int rc = backwards ? edge(tail_at, wanted - tail_at) : edge(0, head);
    if (rc == 0)
        rc = middle();
    if (rc == 0)
        rc = backwards ? edge(0, head) : edge(tail_at, wanted - tail_at);
    return rc != 0 ? rc : static_cast<ssize_t>(wanted);
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
                              CopyEnd &failed)
{
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
        if (int rc = copy_turn(target, turn, modes, failed); rc != 0)
            return rc;
    }
    return 0;
}

int SgDisk::copy_turn(SgDisk &target, std::span<const CopyStage> chunks, CopyModes modes,
                      CopyEnd &failed)
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
    const int rc = run_copy_stages(target, stages, chunks, modes, failed);
    // A window read ahead while the copy ran may hold old or new data: drop it.
    target.readahead_.invalidate({begin, end - begin});
    return rc;
}

// The chunks in order through a ring of stages: while chunk c is written, the reads of the
// next depth/2 chunks are in flight, and the other stages still carry earlier writes. In
// the order for_each_copy_chunk gives, no write lands on source blocks of a read not yet
// done, so a one-disk copy stays memmove.
int SgDisk::run_copy_stages(SgDisk &target, std::span<CopyStage> stages,
                            std::span<const CopyStage> chunks, CopyModes modes, CopyEnd &failed)
{
    int error = 0;
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
        note(finish_copy_command(target, *stage.writer, stage, true, modes.write, data_of(stage)),
             CopyEnd::destination);
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

int SgDisk::flush()
{
    if (gone_)
        return fail(-ENODEV, info_.name + ": device is gone");
    auto lease = copy_pool_.acquire();
    std::string message;
    if (int rc = sg_ll_sync_cache(*lease->fd, context(), message); rc != 0)
        return fail(rc, info_.name + ": " + message);
    return 0;
}

} // namespace

ssize_t Disk::read_view(std::size_t length, std::uint64_t offset, const ReadConsumer &consume,
                        bool &consumed)
{
    // Aligned, so that the whole blocks of an unaligned read can still go direct.
    thread_local AlignedBuffer staging;
    if (staging.size() < length)
        staging = AlignedBuffer(length);
    const ssize_t got = length == 0 ? 0 : pread(staging.data(), length, offset);
    consumed = false;
    if (got < 0)
        return got;
    const iovec piece{staging.data(), static_cast<std::size_t>(got)};
    consumed = true;
    const int rc = consume(std::span<const iovec>(&piece, got == 0 ? 0 : 1));
    return rc < 0 ? rc : got;
}

ssize_t Disk::copy_range(std::uint64_t from, Disk &destination, std::uint64_t to,
                         std::size_t length, CopyEnd &failed)
{
    failed = CopyEnd::none;
    std::uint64_t wanted = 0;
    if (int rc = copy_extent(info().capacity_bytes, destination.info().capacity_bytes, from, to,
                             length, wanted);
        rc != 0 || wanted == 0) {
        failed = rc != 0 ? CopyEnd::destination : CopyEnd::none;
        return rc;
    }
    constexpr std::uint64_t staging_bytes = std::uint64_t{1} << 20;
    AlignedBuffer staging(std::min(wanted, staging_bytes));
    bool write_failed = false;
    const int rc = staged_copy(
        from, to, wanted, copy_goes_backwards(&destination == this, from, to, wanted),
        std::span(staging.data(), staging.size()),
        [this](void *data, std::uint64_t bytes, std::uint64_t offset) {
            return pread(data, bytes, offset);
        },
        [&destination](const void *data, std::uint64_t bytes, std::uint64_t offset) {
            return destination.pwrite(data, bytes, offset);
        },
        write_failed);
    if (rc != 0) {
        failed = write_failed ? CopyEnd::destination : CopyEnd::source;
        return rc;
    }
    return static_cast<ssize_t>(wanted);
}

int Disk::open(const std::string &sg_path, const DiskOptions &options, std::unique_ptr<Disk> &out,
               std::string &message)
{
    // The SgDisk of one node, wrapped so that when the device goes away (a SAN path lost,
    // an iSCSI logout) the same LUN is picked up again by its stable id (reattach.hpp).
    const auto open_node = [options](const std::string &path, std::unique_ptr<Disk> &disk,
                                     std::string &why) {
        auto node = std::make_unique<SgDisk>(options);
        if (int rc = node->probe(path, why); rc != 0)
            return rc;
        disk = std::move(node);
        return 0;
    };
    std::unique_ptr<Disk> disk;
    if (int rc = open_node(sg_path, disk, message); rc != 0)
        return rc;
    out = make_reattaching_disk(std::move(disk), system_reattach_environment(open_node));
    return 0;
}

} // namespace sgfs
