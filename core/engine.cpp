// The Engine's opening: the probe and the channels.
#include "engine.hpp"

#include "sg_ll.hpp"
#include "sgfs/discovery.hpp"
#include "sgfs/extent.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sgfs
{

Engine::Engine(const DiskOptions &options, std::unique_ptr<Transport> transport)
    : options_(options), transport_(std::move(transport))
{
}

int Engine::open(std::unique_ptr<Transport> transport, const DiskOptions &options,
                 std::unique_ptr<Engine> &out, std::string &message)
{
    std::unique_ptr<Engine> engine(new Engine(options, std::move(transport)));
    if (int rc = engine->probe(message); rc != 0)
        return rc;
    out = std::move(engine);
    return 0;
}

IoResult Engine::failure(IoResult result)
{
    if (result.error == -ENODEV)
        gone_ = true;
    result.message = info_.name + ": " + result.message;
    return result;
}

IoResult Engine::check_present()
{
    if (gone_)
        return failure(-ENODEV, "device is gone");
    return IoResult::success(0);
}

int Engine::open_slots(Pool<Slot> *pool, bool map, unsigned count,
                       std::vector<std::unique_ptr<Slot>> &into, std::string &message)
{
    const ChannelSpec spec{options_.read_only, options_.reserve, map};
    for (unsigned i = 0; i < count; ++i) {
        auto slot = std::make_unique<Slot>();
        std::unique_ptr<Channel> channel;
        if (int rc = transport_->open_channel(spec, channel, message); rc != 0)
            return rc;
        slot->channel = std::make_unique<InFlightChannel>(std::move(channel), stats_);
        if (info_.max_transfer_bytes != 0)
            slot->bounce = AlignedBuffer(info_.max_transfer_bytes);
        if (pool != nullptr)
            pool->add(*slot);
        into.push_back(std::move(slot));
    }
    return 0;
}

// One channel per window, as deep as the pools: enough to keep the device busy while the
// previous reply is copied, placed as the policy places a full-size landing read.
int Engine::start_readahead(std::string &message)
{
    const Placement placement = policy_.place_landing(info_.max_transfer_bytes);
    std::vector<std::unique_ptr<Slot>> slots;
    if (int rc = open_slots(nullptr, placement.mode == TransferMode::mmap,
                            std::max(1U, options_.queue_depth), slots, message);
        rc != 0)
        return rc;
    ReadaheadConfig config;
    config.block_size = info_.logical_block_size;
    config.max_blocks = max_blocks_;
    config.placement = placement;
    config.capacity_bytes = &capacity_bytes_;
    config.context = context(DataPath::read);
    config.device_gone = &gone_;
    readahead_.configure(std::move(slots), config);
    return 0;
}

int Engine::probe_identity(Channel &channel, std::string &message)
{
    const CommandContext ctx = context();
    // The first command after attach usually meets a power-on unit attention.
    if (int rc = sg_ll_test_unit_ready(channel, ctx, message); rc != 0)
        return rc;
    StandardInquiry inquiry;
    if (int rc = sg_ll_inquiry(channel, ctx, inquiry, message); rc != 0)
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
    if (int rc = read_capacity(channel, capacity, message); rc != 0)
        return rc;
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
    capacity_bytes_.store(info_.capacity_bytes, std::memory_order_release);
    info_.logical_block_size = capacity.logical_block_size;
    info_.physical_block_size = std::max(capacity.physical_block_size, capacity.logical_block_size);

    std::vector<std::uint8_t> page;
    std::vector<std::uint8_t> supported;
    if (sg_ll_inquiry_vpd(channel, ctx, vpd::supported_pages, page, ignored) == 0)
        decode_vpd_supported_pages(page, supported);
    auto has_page = [&](std::uint8_t code) {
        return std::find(supported.begin(), supported.end(), code) != supported.end();
    };
    std::vector<Designator> designators;
    if (has_page(vpd::device_identification) &&
        sg_ll_inquiry_vpd(channel, ctx, vpd::device_identification, page, ignored) == 0 &&
        decode_vpd_device_identification(page, designators) == 0)
        info_.stable_id = stable_id_from_designators(designators);
    if (info_.stable_id.empty() && has_page(vpd::unit_serial_number) &&
        sg_ll_inquiry_vpd(channel, ctx, vpd::unit_serial_number, page, ignored) == 0) {
        std::string serial;
        if (decode_vpd_unit_serial(page, serial) == 0)
            info_.stable_id = stable_id_from_serial(serial);
    }
    std::uint64_t max_transfer = 1ULL << 30;
    BlockLimits limits;
    if (!has_page(vpd::block_limits) ||
        sg_ll_inquiry_vpd(channel, ctx, vpd::block_limits, page, ignored) != 0 ||
        decode_vpd_block_limits(page, limits) != 0)
        limits = {};
    if (limits.maximum_transfer_length != 0)
        max_transfer = std::min<std::uint64_t>(
            max_transfer, std::uint64_t{limits.maximum_transfer_length} * info_.logical_block_size);
    probe_provisioning(channel, capacity, limits, has_page(vpd::logical_block_provisioning));
    if (const long queue_max = channel.max_transfer_bytes(); queue_max > 0)
        max_transfer = std::min<std::uint64_t>(max_transfer, static_cast<std::uint64_t>(queue_max));
    if (options_.max_io != 0)
        max_transfer = std::min<std::uint64_t>(max_transfer, options_.max_io);
    // Every mode shares one split size: mmap IO cannot exceed the granted reserve.
    max_transfer = std::min<std::uint64_t>(max_transfer, channel.reserve());
    max_blocks_ = max_blocks_per_command(max_transfer, info_.logical_block_size);
    info_.max_transfer_bytes = max_blocks_ * info_.logical_block_size;
    info_.reserve_granted = static_cast<std::uint32_t>(channel.reserve());

    bool write_protected = false;
    if (sg_ll_mode_sense_10_wp(channel, ctx, write_protected, ignored) == 0)
        info_.write_protected = write_protected;
    probe_copy_offload(channel, inquiry.third_party_copy, designators);
    return 0;
}

int Engine::probe(std::string &message)
{
    const NodeFacts facts = transport_->facts();
    info_.sg_path = facts.path;
    info_.name = facts.name;
    info_.hctl = facts.hctl;
    info_.block_device = facts.block_device;
    info_.allow_dio = facts.allow_dio;
    policy_ = IoPolicy{options_.io_mode, options_.mmap_min, info_.allow_dio};

    // The first channel probes; the bounce buffers wait for the largest command's size.
    const unsigned depth = std::max(1U, options_.queue_depth);
    std::vector<std::unique_ptr<Slot>> first;
    if (int rc = open_slots(nullptr, false, 1, first, message); rc != 0)
        return rc;
    if (int rc = probe_identity(*first.front()->channel, message); rc != 0)
        return rc;
    info_.read_only = options_.read_only || info_.write_protected;
    first.front()->bounce = AlignedBuffer(info_.max_transfer_bytes);
    plain_pool_.add(*first.front());
    slots_.push_back(std::move(first.front()));
    if (int rc = open_slots(&plain_pool_, false, depth - 1, slots_, message); rc != 0)
        return rc;
    if (policy_.uses_mmap())
        if (int rc = open_slots(&mmap_pool_, true, depth, slots_, message); rc != 0)
            return rc;
    if (options_.readahead)
        return start_readahead(message);
    return 0;
}

} // namespace sgfs
