// The in-memory SCSI target's state, fault rules, channels and transport: see
// memory_target.hpp. The commands themselves are in memory_target_commands.cpp.
#include "memory_target_scsi.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>

namespace sgfs::test
{
namespace
{

using namespace scsi;

constexpr std::size_t mapping_alignment = 4096;

// The commands that change the medium: an fd opened read-only may not send them.
bool changes_medium(std::uint8_t opcode)
{
    return is_write(opcode) || is_sync(opcode) || opcode == op::unmap ||
           opcode == op::write_same_16;
}

bool in_class(Ops ops, const Cdb &cdb)
{
    const std::uint8_t opcode = cdb.bytes[0];
    switch (ops) {
    case Ops::any:
        return true;
    case Ops::read:
        return is_read(opcode);
    case Ops::write:
        return is_write(opcode);
    case Ops::data:
        return is_read(opcode) || is_write(opcode);
    case Ops::sync:
        return is_sync(opcode);
    case Ops::write_same:
        return opcode == op::write_same_16;
    case Ops::unmap:
        return opcode == op::unmap;
    case Ops::get_lba_status:
        return is_get_lba_status(cdb);
    case Ops::extended_copy:
        return opcode == op::extended_copy;
    case Ops::receive_copy_results:
        return opcode == op::receive_copy_results;
    }
    return false;
}

bool is_attention(FaultKind kind)
{
    return kind == FaultKind::power_on_attention || kind == FaultKind::capacity_changed;
}

// The blocks a fault rule's range is matched against: SYNCHRONIZE CACHE of 0 blocks covers
// the rest of the medium.
Extent matched_extent(const Cdb &cdb, std::uint64_t block_count)
{
    Extent extent = extent_of(cdb);
    if (is_sync(cdb.bytes[0]) && extent.blocks == 0)
        extent.blocks = extent.lba < block_count ? block_count - extent.lba : 1;
    return extent;
}

Extent extent_of_unmap(std::span<const std::uint8_t> list)
{
    const UnmapList parsed = parse_unmap(list);
    if (parsed.ranges.empty())
        return {};
    std::uint64_t first = ~0ULL, end = 0;
    for (const auto &[lba, blocks] : parsed.ranges) {
        first = std::min(first, lba);
        end = std::max(end, lba + blocks);
    }
    return {first, end - first, true};
}

bool overlaps(const Fault &fault, const Extent &extent)
{
    if (fault.blocks == 0)
        return true;
    return extent.present && extent.lba < fault.lba + fault.blocks &&
           fault.lba < extent.lba + extent.blocks;
}

// What the data of a command must be, for the Channel contract: its direction and the bytes
// it needs at least (data-in commands may ask for less than their allocation length).
struct DataNeed {
    bool known = true; // a command the target knows: else whatever comes is refused later
    DataDirection direction = DataDirection::none;
    std::size_t at_least = 0;
};

DataNeed data_need(const Cdb &cdb, std::uint32_t block_size)
{
    const std::uint8_t opcode = cdb.bytes[0];
    if (is_read(opcode) || is_write(opcode)) {
        const Extent extent = extent_of(cdb);
        return {true, is_read(opcode) ? DataDirection::from_device : DataDirection::to_device,
                static_cast<std::size_t>(extent.blocks) * block_size};
    }
    switch (opcode) {
    case op::inquiry:
    case op::read_capacity_10:
    case op::mode_sense_10:
    case op::service_action_in_16:
        return {true, DataDirection::from_device, 0};
    case op::unmap:
        return {true, DataDirection::to_device, get_be<std::uint16_t>(cdb_at(cdb, 7))};
    case op::write_same_16:
        return {true, DataDirection::to_device, block_size};
    case op::extended_copy:
        return {true, DataDirection::to_device, get_be<std::uint32_t>(cdb_at(cdb, 10))};
    case op::receive_copy_results:
        return {true, DataDirection::from_device, 0};
    case op::test_unit_ready:
    case op::synchronize_cache_10:
    case op::synchronize_cache_16:
        return {};
    default:
        return {false};
    }
}

} // namespace

struct MemoryTarget::Received {
    unsigned generation = 0;
    std::optional<Fault> fault;
    Extent extent;
};

// ---------------------------------------------------------------------------------------------
// The channel: one "fd" with its reserve buffer.

class MemoryChannel final : public Channel
{
  public:
    MemoryChannel(std::shared_ptr<MemoryTarget> target, unsigned id, unsigned generation,
                  const ChannelSpec &spec, std::size_t reserve)
        : target_(std::move(target)), id_(id), generation_(generation), read_only_(spec.read_only),
          reserve_(reserve)
    {
        if (spec.map && reserve_ > 0) {
            const std::size_t size =
                (reserve_ + mapping_alignment - 1) / mapping_alignment * mapping_alignment;
            area_.reset(static_cast<std::uint8_t *>(std::aligned_alloc(mapping_alignment, size)));
            if (!area_)
                throw std::bad_alloc();
            std::memset(area_.get(), 0, size);
        }
    }

    ~MemoryChannel() override
    {
        const std::lock_guard lock(target_->mutex_);
        --target_->open_channels_;
        if (pending_)
            --target_->in_flight_;
        target_->changed_.notify_all();
    }

    int submit(const SgRequest &request) override
    {
        if (pending_)
            return -EBUSY;
        const std::lock_guard lock(target_->mutex_);
        const int rc =
            target_->receive_locked(id_, generation_, read_only_, request, mmap_area(), received_);
        if (rc != 0)
            return rc;
        request_ = request;
        pending_ = true;
        return 0;
    }

    int reap(SgCompletion &done) override
    {
        if (!pending_)
            return -EINVAL;
        MemoryTarget::Completion completion;
        {
            std::unique_lock lock(target_->mutex_);
            target_->wait_to_complete(lock);
            carry_out(completion);
            --target_->in_flight_;
            pending_ = false;
            target_->changed_.notify_all();
        }
        if (completion.rc != 0)
            return completion.rc;
        CommandStatus status;
        status.scsi_status = completion.scsi_status;
        status.host_status = completion.host_status;
        status.driver_status = completion.driver_status;
        status.timed_out = completion.timed_out;
        status.sense = completion.sense;
        const std::string name = command_name(request_.cdb);
        done.outcome = classify(status, name.c_str());
        done.residual = static_cast<int>(request_.length - completion.moved);
        done.done_mode = request_.mode;
        if (request_.mode == TransferMode::direct && request_.length > 0 &&
            !target_->config_.allow_dio)
            done.done_mode = TransferMode::indirect; // the sg driver's quiet fallback
        return 0;
    }

    bool pending() const override { return pending_; }
    std::span<std::uint8_t> mmap_area() const override
    {
        return area_ ? std::span<std::uint8_t>(area_.get(), reserve_) : std::span<std::uint8_t>();
    }
    std::size_t reserve() const override { return reserve_; }
    long max_transfer_bytes() const override { return target_->config_.max_transfer_bytes; }

  private:
    struct Free {
        void operator()(std::uint8_t *p) const { std::free(p); }
    };

    // Front to back, as the kernel copies between its buffer and user memory: where the two
    // overlap, what is copied may already have been overwritten.
    static void copy_forward(std::uint8_t *to, const std::uint8_t *from, std::size_t length)
    {
        for (std::size_t i = 0; i < length; ++i)
            to[i] = from[i];
    }

    // The sg driver moves indirect IO through the fd's reserve buffer whenever it fits (it is
    // free: one command per channel). On a mapped channel that buffer is the mapping, so an
    // indirect command overwrites the mapping's first bytes, as it does with the real driver.
    void carry_out(MemoryTarget::Completion &completion)
    {
        auto *user = static_cast<std::uint8_t *>(request_.buffer);
        if (request_.mode == TransferMode::mmap) {
            target_->execute_locked(request_, area_.get(), received_, completion);
            return;
        }
        const bool indirect =
            request_.mode == TransferMode::indirect || !target_->config_.allow_dio;
        if (!indirect || !area_ || request_.length > reserve_ || request_.length == 0) {
            target_->execute_locked(request_, user, received_, completion);
            return;
        }
        if (request_.direction == DataDirection::to_device)
            copy_forward(area_.get(), user, request_.length);
        target_->execute_locked(request_, area_.get(), received_, completion);
        if (request_.direction == DataDirection::from_device)
            copy_forward(user, area_.get(), completion.moved);
    }

    std::shared_ptr<MemoryTarget> target_;
    unsigned id_;
    unsigned generation_;
    bool read_only_;
    std::size_t reserve_;
    std::unique_ptr<std::uint8_t, Free> area_; // the "mapped reserve buffer"
    bool pending_ = false;
    SgRequest request_;
    MemoryTarget::Received received_;
};

// ---------------------------------------------------------------------------------------------
// The target

MemoryTarget::MemoryTarget(TargetConfig config)
    : MemoryTarget(config,
                   config.copy_registry ? config.copy_registry->mutex_
                                        : std::make_shared<std::mutex>(),
                   std::make_shared<Medium>(
                       Medium{std::vector<std::uint8_t>(config.block_count * config.block_size, 0),
                              std::vector<bool>(config.block_count, true)}))
{
    if (!config_.start_mapped)
        unmap_locked(0, config_.block_count);
}

std::shared_ptr<MemoryTarget> MemoryTarget::another_port(MemoryTarget &unit)
{
    TargetConfig config;
    {
        const std::lock_guard lock(unit.mutex_);
        config = unit.config_;
    }
    config.power_on_attention = false; // the unit has been on for a while
    return std::shared_ptr<MemoryTarget>(new MemoryTarget(config, unit.lock_, unit.medium_));
}

MemoryTarget::MemoryTarget(TargetConfig config, std::shared_ptr<std::mutex> lock,
                           std::shared_ptr<Medium> medium)
    : config_(std::move(config)), lock_(std::move(lock)), mutex_(*lock_),
      medium_(std::move(medium)), store_(medium_->store), mapped_(medium_->mapped)
{
    if (config_.copy_registry) {
        const std::lock_guard lock(mutex_);
        config_.copy_registry->targets_.push_back(this);
    }
    if (config_.block_size == 0 || config_.unmap_granularity == 0)
        throw std::invalid_argument("MemoryTarget: block size and unmap granularity must be > 0");
    if (config_.power_on_attention)
        raise_unit_attention(0x29, 0x00);
}

MemoryTarget::~MemoryTarget()
{
    if (config_.copy_registry) {
        const std::lock_guard lock(mutex_);
        std::erase(config_.copy_registry->targets_, this);
    }
}

std::uint64_t MemoryTarget::bytes() const
{
    const std::lock_guard lock(mutex_);
    return store_.size();
}

std::uint8_t MemoryTarget::unmapped_pattern(std::uint64_t lba)
{
    return static_cast<std::uint8_t>(0xa0 | (lba & 0x0f));
}

std::size_t MemoryTarget::inject(const Fault &fault)
{
    const std::lock_guard lock(mutex_);
    rules_.push_back({fault});
    return rules_.size() - 1;
}

unsigned MemoryTarget::fired(std::size_t rule) const
{
    const std::lock_guard lock(mutex_);
    return rule < rules_.size() ? rules_[rule].fired : 0;
}

void MemoryTarget::clear_faults()
{
    const std::lock_guard lock(mutex_);
    rules_.clear();
}

void MemoryTarget::raise_unit_attention(std::uint8_t asc, std::uint8_t ascq)
{
    const std::lock_guard lock(mutex_);
    attention_pending_ = true;
    attention_asc_ = asc;
    attention_ascq_ = ascq;
}

void MemoryTarget::resize(std::uint64_t block_count)
{
    {
        const std::lock_guard lock(mutex_);
        config_.block_count = block_count;
        store_.resize(block_count * config_.block_size, 0);
        mapped_.resize(block_count, true);
    }
    raise_unit_attention(0x2a, 0x09);
}

void MemoryTarget::reformat(std::uint32_t block_size, std::uint64_t block_count)
{
    {
        const std::lock_guard lock(mutex_);
        config_.block_size = block_size;
        config_.block_count = block_count;
        store_.resize(block_count * block_size, 0);
        mapped_.assign(block_count, true);
    }
    raise_unit_attention(0x2a, 0x09);
}

void MemoryTarget::disappear(GoneForm form)
{
    const std::lock_guard lock(mutex_);
    gone_ = true;
    gone_form_ = form;
    ++generation_;
}

void MemoryTarget::reappear()
{
    const std::lock_guard lock(mutex_);
    gone_ = false;
}

bool MemoryTarget::gone() const
{
    const std::lock_guard lock(mutex_);
    return gone_;
}

void MemoryTarget::fail_opens(int error, unsigned count)
{
    const std::lock_guard lock(mutex_);
    open_error_ = error;
    open_failures_ = count;
}

void MemoryTarget::hold_completions()
{
    const std::lock_guard lock(mutex_);
    held_ = true;
}

void MemoryTarget::release_completions()
{
    const std::lock_guard lock(mutex_);
    held_ = false;
    changed_.notify_all();
}

void MemoryTarget::wait_in_flight(unsigned count) const
{
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return in_flight_ >= count; });
}

void MemoryTarget::gather_in_flight(unsigned count, std::chrono::milliseconds give_up)
{
    const std::lock_guard lock(mutex_);
    gather_count_ = count;
    gather_deadline_ = std::chrono::steady_clock::now() + give_up;
    gather_failed_ = false;
    changed_.notify_all();
}

bool MemoryTarget::gather_failed() const
{
    const std::lock_guard lock(mutex_);
    return gather_failed_;
}

void MemoryTarget::wait_to_complete(std::unique_lock<std::mutex> &lock)
{
    const auto gathered = [this] { return gather_count_ == 0 || in_flight_ >= gather_count_; };
    if (!changed_.wait_until(lock, gather_deadline_, gathered)) {
        gather_failed_ = true;
        changed_.notify_all();
    }
    gather_count_ = 0; // gathered (or given up): the others go too
    changed_.wait(lock, [this] { return !held_; });
}

std::vector<CommandRecord> MemoryTarget::log() const
{
    const std::lock_guard lock(mutex_);
    return log_;
}

void MemoryTarget::clear_log()
{
    const std::lock_guard lock(mutex_);
    log_.clear();
    std::fill(per_opcode_.begin(), per_opcode_.end(), 0);
    max_in_flight_ = in_flight_;
}

std::uint64_t MemoryTarget::count(std::uint8_t opcode) const
{
    const std::lock_guard lock(mutex_);
    return per_opcode_[opcode];
}

unsigned MemoryTarget::max_in_flight() const
{
    const std::lock_guard lock(mutex_);
    return max_in_flight_;
}

unsigned MemoryTarget::in_flight() const
{
    const std::lock_guard lock(mutex_);
    return in_flight_;
}

unsigned MemoryTarget::open_channels() const
{
    const std::lock_guard lock(mutex_);
    return open_channels_;
}

std::vector<std::string> MemoryTarget::violations() const
{
    const std::lock_guard lock(mutex_);
    return violations_;
}

std::vector<std::uint8_t> MemoryTarget::peek(std::uint64_t offset, std::size_t length) const
{
    const std::lock_guard lock(mutex_);
    if (offset > store_.size() || length > store_.size() - offset)
        throw std::out_of_range("MemoryTarget::peek past the end");
    const auto begin = store_.begin() + static_cast<std::ptrdiff_t>(offset);
    return {begin, begin + static_cast<std::ptrdiff_t>(length)};
}

void MemoryTarget::poke(std::uint64_t offset, std::span<const std::uint8_t> data)
{
    const std::lock_guard lock(mutex_);
    if (offset > store_.size() || data.size() > store_.size() - offset)
        throw std::out_of_range("MemoryTarget::poke past the end");
    std::copy(data.begin(), data.end(), store_.begin() + static_cast<std::ptrdiff_t>(offset));
    if (!data.empty()) {
        const std::uint64_t first = offset / config_.block_size;
        map_locked(first, (offset + data.size() - 1) / config_.block_size + 1 - first);
    }
}

bool MemoryTarget::equals(std::uint64_t offset, std::span<const std::uint8_t> data) const
{
    const std::vector<std::uint8_t> stored = peek(offset, data.size());
    return std::equal(data.begin(), data.end(), stored.begin());
}

bool MemoryTarget::mapped(std::uint64_t lba) const
{
    const std::lock_guard lock(mutex_);
    return lba < mapped_.size() && mapped_[lba];
}

std::uint64_t MemoryTarget::mapped_blocks() const
{
    const std::lock_guard lock(mutex_);
    return static_cast<std::uint64_t>(std::count(mapped_.begin(), mapped_.end(), true));
}

// An unmapped block's content is what a READ of it returns: zero with LBPRZ, else the pattern.
void MemoryTarget::unmap_locked(std::uint64_t lba, std::uint64_t blocks, std::uint32_t keep_every)
{
    const std::uint64_t granule = config_.unmap_granularity;
    const std::uint64_t phase = config_.unmap_granularity_alignment % granule;
    // Granules start at the LBAs congruent to the alignment; only whole ones are unmapped.
    std::uint64_t start = lba + (phase + granule - lba % granule) % granule;
    const bool zero = config_.lbprz || !config_.unmapped_pattern_without_lbprz;
    for (std::uint64_t index = 1; start + granule <= lba + blocks; start += granule, ++index) {
        if (keep_every != 0 && index % keep_every == 0)
            continue;
        for (std::uint64_t block = start; block < start + granule; ++block) {
            mapped_[block] = false;
            const auto at =
                store_.begin() + static_cast<std::ptrdiff_t>(block * config_.block_size);
            std::fill_n(at, config_.block_size, zero ? 0 : unmapped_pattern(block));
        }
    }
}

void MemoryTarget::map_locked(std::uint64_t lba, std::uint64_t blocks)
{
    std::fill_n(mapped_.begin() + static_cast<std::ptrdiff_t>(lba), blocks, true);
}

int MemoryTarget::open_channel_locked(unsigned &id, unsigned &generation, std::string &message)
{
    if (gone_) {
        message = "No such device or address";
        return -ENXIO;
    }
    if (open_failures_ > 0) {
        if (open_failures_ != Fault::always)
            --open_failures_;
        message = std::strerror(-open_error_);
        return open_error_;
    }
    id = next_channel_++;
    generation = generation_;
    ++open_channels_;
    return 0;
}

// The sg driver's checks at write() time, then the device receiving the command.
int MemoryTarget::receive_locked(unsigned channel, unsigned generation, bool read_only,
                                 const SgRequest &request, std::span<std::uint8_t> area,
                                 Received &out)
{
    const bool dead = generation != generation_;
    if ((gone_ || dead) && gone_form_ == GoneForm::submit_fails)
        return -ENODEV;
    const Cdb &cdb = request.cdb;
    const std::uint8_t opcode = cdb.bytes[0];
    const std::string name = command_name(cdb);
    if (cdb.length == 0) {
        violations_.push_back("empty CDB");
        return -EINVAL;
    }
    const DataNeed need = data_need(cdb, config_.block_size);
    const bool no_data = request.length == 0 && request.direction == DataDirection::none;
    if (request.length > 0 && request.direction == DataDirection::none) {
        violations_.push_back(name + ": a data length without a direction");
        return -EINVAL;
    }
    if (need.known && !no_data && request.direction != need.direction) {
        violations_.push_back(name + ": data direction does not match the command");
        return -EINVAL;
    }
    if (need.at_least > 0 && request.length < need.at_least) {
        violations_.push_back(name + ": " + std::to_string(request.length) +
                              " data bytes, the CDB needs " + std::to_string(need.at_least));
        return -EINVAL;
    }
    if (request.length > 0 && request.mode != TransferMode::mmap && request.buffer == nullptr) {
        violations_.push_back(name + ": no buffer for the data");
        return -EINVAL;
    }
    if (read_only && changes_medium(opcode))
        return -EPERM;
    if (request.mode == TransferMode::mmap && request.length > 0) {
        if (area.empty())
            return -EINVAL;
        if (request.length > area.size())
            return -ENOMEM;
    }

    out = Received{};
    out.generation = generation;
    ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    changed_.notify_all();
    // Queued, but no device gets it: reap() fails it (execute_locked).
    if (gone_ || dead)
        return 0;

    // Received: from here on the device has it.
    const auto *data = request.mode == TransferMode::mmap
                           ? area.data()
                           : static_cast<const std::uint8_t *>(request.buffer);
    out.extent = opcode == op::unmap ? extent_of_unmap({data, need.at_least})
                                     : matched_extent(cdb, config_.block_count);
    CommandRecord record;
    record.order = received_++;
    record.in_flight = in_flight_;
    record.channel = channel;
    record.opcode = opcode;
    record.lba = out.extent.present ? out.extent.lba : 0;
    // As the CDB says: SYNCHRONIZE CACHE's 0 ("to the end") stays 0, GET LBA STATUS has none.
    record.blocks = is_get_lba_status(cdb) ? 0
                    : opcode == op::unmap  ? static_cast<std::uint32_t>(out.extent.blocks)
                                           : static_cast<std::uint32_t>(extent_of(cdb).blocks);
    record.mode = request.mode;
    record.length = request.length;
    if (opcode == op::unmap)
        record.unmap_ranges = parse_unmap({data, need.at_least}).ranges;
    ++per_opcode_[opcode];

    if (attention_pending_ && opcode != op::inquiry) {
        attention_pending_ = false;
        Fault attention;
        attention.kind = FaultKind::check_condition;
        attention.sense_key = sk_unit_attention;
        attention.asc = attention_asc_;
        attention.ascq = attention_ascq_;
        out.fault = attention;
    }
    for (Rule &rule : rules_) {
        const Fault &fault = rule.fault;
        if (!in_class(fault.on, cdb) || !overlaps(fault, out.extent))
            continue;
        if (is_attention(fault.kind) && opcode == op::inquiry)
            continue;
        const bool data_in = request.direction == DataDirection::from_device;
        if (fault.kind == FaultKind::short_transfer &&
            (request.length == 0 || !(data_in || is_write(opcode))))
            continue;
        ++rule.matched;
        if (out.fault || rule.fired >= fault.times || rule.matched % fault.every != 0)
            continue;
        ++rule.fired;
        out.fault = fault;
    }
    record.faulted = out.fault.has_value();
    log_.push_back(record);
    if (out.fault && out.fault->kind == FaultKind::device_gone) {
        gone_ = true;
        gone_form_ = out.fault->gone_form;
        ++generation_;
        if (gone_form_ == GoneForm::submit_fails) {
            --in_flight_;
            return -ENODEV;
        }
    }
    return 0;
}

void MemoryTarget::execute_locked(const SgRequest &request, std::uint8_t *data,
                                  const Received &received, Completion &done)
{
    if (gone_ || received.generation != generation_) {
        if (gone_form_ == GoneForm::no_connect)
            done.host_status = did_no_connect;
        else
            done.rc = -ENODEV;
        return;
    }
    if (!received.fault) {
        run_locked(request, data, request.length, done);
        return;
    }
    const Fault &fault = *received.fault;
    switch (fault.kind) {
    case FaultKind::medium_error:
        done.check(sk_medium_error, 0x11, 0x00,
                   fault.blocks == 0 ? received.extent.lba
                                     : std::max(received.extent.lba, fault.lba));
        return;
    case FaultKind::power_on_attention:
        done.check(sk_unit_attention, 0x29, 0x00);
        return;
    case FaultKind::capacity_changed:
        done.check(sk_unit_attention, 0x2a, 0x09);
        return;
    case FaultKind::aborted_command:
        done.check(sk_aborted_command, 0x00, 0x00);
        return;
    case FaultKind::busy:
        done.scsi_status = status_busy;
        return;
    case FaultKind::becoming_ready:
        done.check(sk_not_ready, 0x04, 0x01);
        return;
    case FaultKind::timeout:
        if (fault.timeout_form == TimeoutForm::host)
            done.host_status = did_time_out;
        else if (fault.timeout_form == TimeoutForm::driver)
            done.driver_status = driver_timeout;
        else
            done.timed_out = true;
        return;
    case FaultKind::short_transfer:
        run_locked(request, data,
                   request.length - std::min<std::size_t>(request.length, fault.residual), done);
        return;
    case FaultKind::data_protect:
        done.check(sk_data_protect, asc_write_protected, 0x00);
        return;
    case FaultKind::check_condition:
        done.check(fault.sense_key, fault.asc, fault.ascq);
        return;
    case FaultKind::device_gone: // handled above: the device went at receipt
        return;
    case FaultKind::copy_aborted:
        if (request.cdb.bytes[0] != op::extended_copy)
            return run_locked(request, data, request.length, done);
        extended_copy_locked(request, data, fault.copied_blocks, done);
        if (done.sense.empty())
            done.check(sk_copy_aborted, asc_copy_target, 0x02);
        return;
    }
}

// ---------------------------------------------------------------------------------------------
// The transport

MemoryTransport::MemoryTransport(std::shared_ptr<MemoryTarget> target, NodeFacts facts)
    : target_(std::move(target)), facts_(std::move(facts))
{
}

NodeFacts MemoryTransport::facts() const
{
    NodeFacts facts = facts_;
    facts.allow_dio = target_->config().allow_dio;
    return facts;
}

int MemoryTransport::open_channel(const ChannelSpec &spec, std::unique_ptr<Channel> &out,
                                  std::string &message)
{
    unsigned id = 0;
    unsigned generation = 0;
    std::size_t reserve = 0;
    {
        const std::lock_guard lock(target_->mutex_);
        reserve = std::min(spec.reserve, target_->config_.max_reserve);
        if (spec.map && reserve == 0) {
            message = facts_.path + ": no reserve buffer to map";
            return -EINVAL;
        }
        if (int rc = target_->open_channel_locked(id, generation, message); rc != 0) {
            message = facts_.path + ": " + message;
            return rc;
        }
    }
    out = std::make_unique<MemoryChannel>(target_, id, generation, spec, reserve);
    return 0;
}

std::unique_ptr<Channel> MemoryTransport::channel(const ChannelSpec &spec)
{
    std::unique_ptr<Channel> out;
    std::string message;
    if (open_channel(spec, out, message) != 0)
        throw std::runtime_error("MemoryTransport: " + message);
    return out;
}

NodeFacts memory_node_facts(unsigned number)
{
    NodeFacts facts;
    facts.name = "sg" + std::to_string(number);
    facts.path = "/dev/" + facts.name;
    facts.hctl = "9:0:0:" + std::to_string(number);
    return facts;
}

} // namespace sgfs::test
