// SgDisk's probing and its read and write paths.
#include "sg_disk.hpp"

#include "aligned_buffer.hpp"
#include "io_policy.hpp"
#include "range_lock.hpp"
#include "readahead.hpp"
#include "sg_ll.hpp"
#include "sg_transport.hpp"
#include "sgfs/discovery.hpp"
#include "sgfs/disk_claim.hpp"
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

bool read_allow_dio()
{
    std::ifstream in(allow_dio_parameter);
    int value = 0;
    return (in >> value) && value != 0;
}

std::string base_name(const std::string &path)
{
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

} // namespace

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
    if (!is_disk_device_type(inquiry.peripheral_device_type)) {
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
    // One command moves whole blocks: a smaller max_io could only be ignored.
    if (options_.max_io != 0 && options_.max_io < capacity.logical_block_size) {
        message = "max_io=" + std::to_string(options_.max_io) +
                  " is below the disk's logical block size (" +
                  std::to_string(capacity.logical_block_size) + " bytes)";
        return -EINVAL;
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
    if (!has_page(vpd::block_limits) ||
        sg_ll_inquiry_vpd(fd, ctx, vpd::block_limits, page, ignored) != 0 ||
        decode_vpd_block_limits(page, limits) != 0)
        limits = {};
    if (limits.maximum_transfer_length != 0)
        max_transfer = std::min<std::uint64_t>(
            max_transfer, std::uint64_t{limits.maximum_transfer_length} * info_.logical_block_size);
    probe_provisioning(fd, capacity, limits, has_page(vpd::logical_block_provisioning));
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

ssize_t SgDisk::read_view(std::size_t length, std::uint64_t offset, ReaderId reader,
                          const ReadConsumer &consume, bool &consumed)
{
    consumed = false;
    const std::uint64_t wanted = clamp_length(offset, length, info_.capacity_bytes);
    if (wanted == 0)
        return Disk::read_view(0, offset, reader, consume, consumed);
    const std::uint32_t block = info_.logical_block_size;
    const BlockPlan plan = plan_blocks(offset, wanted, block);
    if (gone_)
        return fail(-ENODEV, info_.name + ": device is gone");
    if (readahead_.enabled() && reader != no_reader) {
        // Queue what follows first, so the device works while this reply is copied.
        readahead_.advance({plan.first_lba, plan.block_count}, reader,
                           info_.capacity_bytes / block);
        int rc = 0;
        if (readahead_.serve(offset, wanted, reader, consume, rc)) {
            consumed = true;
            return rc < 0 ? rc : static_cast<ssize_t>(wanted);
        }
    }
    const std::uint64_t chunks = (plan.block_count + max_blocks_ - 1) / max_blocks_;
    if (!plan.aligned() || chunks > std::max(1U, options_.queue_depth))
        return Disk::read_view(wanted, offset, reader, consume, consumed);

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
    // The data is only read; transfer_blocks takes a mutable pointer for both directions.
    auto *in = const_cast<std::uint8_t *>(static_cast<const std::uint8_t *>(buffer));
    std::uint64_t wanted = 0;
    const int rc = write_pieces(
        "write", offset, length, wanted,
        [&](std::uint64_t lba, std::uint32_t skip, std::uint64_t bytes, std::uint64_t done) {
            return read_modify_write(path, lba, skip, in + done, bytes);
        },
        [&](std::uint64_t lba, std::uint64_t blocks, std::uint64_t done) {
            return transfer_blocks(path, true, lba, blocks, in + done);
        });
    return rc != 0 ? rc : static_cast<ssize_t>(wanted);
}

int SgDisk::write_pieces(const char *what, std::uint64_t offset, std::uint64_t length,
                         std::uint64_t &wanted, const PartialBlockWriter &partial,
                         const WholeBlockWriter &whole)
{
    wanted = 0;
    if (options_.read_only || info_.write_protected)
        return fail(-EROFS, info_.name + ": read-only");
    if (int rc = write_extent(offset, length, info_.capacity_bytes, wanted); rc != 0)
        return fail(rc, info_.name + ": " + what + " past the end of the device");
    if (wanted == 0)
        return 0;
    const std::uint32_t block = info_.logical_block_size;
    const BlockPlan plan = plan_blocks(offset, wanted, block);
    auto held = write_ranges_.lock(plan.first_lba, plan.first_lba + plan.block_count);
    readahead_.invalidate({plan.first_lba, plan.block_count});
    const int rc = for_each_piece(plan, wanted, block, partial, whole);
    // A window read ahead while this write ran may hold old or new data: drop it.
    readahead_.invalidate({plan.first_lba, plan.block_count});
    return rc;
}

int SgDisk::flush()
{
    if (gone_)
        return fail(-ENODEV, info_.name + ": device is gone");
    auto lease = copy_pool_.acquire();
    std::string message;
    if (int rc = sg_ll_sync_cache(*lease->fd, context(), message); rc != 0)
        return fail(rc, info_.name + ": " + message);
    if (options_.claims)
        options_.claims->drop_cached_pages(info_);
    return 0;
}

} // namespace sgfs
