// The rules every Disk keeps (bounds, read-only), its defaults for disks without an engine,
// copy_range, and Disk::open.
#include "sgfs/disk.hpp"

#include "aligned_buffer.hpp"
#include "copy_range.hpp"
#include "engine.hpp"
#include "reattach.hpp"
#include "sg_transport.hpp"
#include "sgfs/disk_claim.hpp"
#include "sgfs/extent.hpp"

#include <algorithm>
#include <cerrno>
#include <memory>
#include <utility>

namespace sgfs
{
namespace
{

IoResult refuse_write(const Disk &disk, std::uint64_t offset, std::uint64_t length,
                      const char *what, std::uint64_t &wanted)
{
    wanted = 0;
    const DiskInfo &info = disk.info();
    if (info.read_only)
        return IoResult::failure(-EROFS, info.name + ": read-only");
    if (int rc = write_extent(offset, length, disk.capacity_bytes(), wanted); rc != 0)
        return IoResult::failure(rc, info.name + ": " + what + " past the end of the device");
    return IoResult::success(0);
}

// The staging buffer of this thread's last staged view, kept for the next: a fresh
// megabyte per read (allocated, mapped and faulted in, then unmapped) costs more than the
// read itself (a staged 1 MiB read ran at 0.6x of the reused buffer's speed).
thread_local AlignedBuffer spare_staging;

AlignedBuffer take_staging(std::size_t length)
{
    if (spare_staging.size() >= length)
        return std::move(spare_staging);
    return AlignedBuffer(length);
}

// A staging buffer a view's single piece lies in; it goes back to the spare when the view
// goes (to the thread that drops the view: FUSE replies on the thread that read).
class BufferPin final : public ReadView::Pin
{
  public:
    explicit BufferPin(AlignedBuffer buffer) : buffer_(std::move(buffer)) {}
    ~BufferPin() override
    {
        if (buffer_.size() > spare_staging.size())
            spare_staging = std::move(buffer_);
    }
    BufferPin(const BufferPin &) = delete;
    BufferPin &operator=(const BufferPin &) = delete;

  private:
    AlignedBuffer buffer_;
};

} // namespace

IoResult Disk::pread(void *buffer, std::size_t length, std::uint64_t offset)
{
    const std::uint64_t wanted = clamp_length(offset, length, capacity_bytes());
    if (wanted == 0)
        return IoResult::success(0);
    return settled(read_range(buffer, wanted, offset));
}

ReadView Disk::read_view(std::size_t length, std::uint64_t offset, ReaderId reader)
{
    const std::uint64_t wanted = clamp_length(offset, length, capacity_bytes());
    if (wanted == 0)
        return ReadView(IoResult::success(0));
    ReadView view = view_range(wanted, offset, reader);
    settle_capacity();
    return view;
}

IoResult Disk::pwrite(const void *buffer, std::size_t length, std::uint64_t offset)
{
    std::uint64_t wanted = 0;
    if (IoResult refused = refuse_write(*this, offset, length, "write", wanted);
        !refused.ok() || wanted == 0)
        return refused;
    return settled(write_range(buffer, wanted, offset));
}

IoResult Disk::pwrite(const void *buffer, std::size_t length, std::uint64_t offset, WriteMode mode,
                      const WriteBehind &behind)
{
    if (IoResult earlier = behind.pending->take_failure(); !earlier.ok())
        return earlier;
    if (mode == WriteMode::synchronous)
        return pwrite(buffer, length, offset);
    return pwrite_behind(buffer, length, offset, behind);
}

IoResult Disk::pwrite_behind(const void *buffer, std::size_t length, std::uint64_t offset,
                             const WriteBehind &behind)
{
    std::uint64_t wanted = 0;
    if (IoResult refused = refuse_write(*this, offset, length, "write", wanted);
        !refused.ok() || wanted == 0)
        return refused;
    return settled(write_behind_range(buffer, wanted, offset, behind));
}

IoResult Disk::write_behind_range(const void *buffer, std::size_t length, std::uint64_t offset,
                                  const WriteBehind &behind)
{
    static_cast<void>(behind); // nothing is left in flight here
    return write_range(buffer, length, offset);
}

IoResult PendingWrites::drain()
{
    std::unique_lock lock(mutex_);
    ended_.wait(lock, [this] { return in_flight_ == 0; });
    given_to_write_ = false;
    return std::exchange(failure_, IoResult::success(0));
}

IoResult PendingWrites::take_failure()
{
    std::lock_guard lock(mutex_);
    if (failure_.ok() || given_to_write_)
        return IoResult::success(0);
    given_to_write_ = true;
    return failure_;
}

std::size_t PendingWrites::in_flight() const
{
    std::lock_guard lock(mutex_);
    return in_flight_;
}

void PendingWrites::begin()
{
    std::lock_guard lock(mutex_);
    ++in_flight_;
}

void PendingWrites::end(const IoResult &outcome)
{
    {
        std::lock_guard lock(mutex_);
        --in_flight_;
        if (!outcome.ok() && failure_.ok()) {
            failure_ = outcome;
            given_to_write_ = false;
        }
    }
    ended_.notify_all();
}

IoResult Disk::zero_range(std::uint64_t offset, std::uint64_t length, ZeroAllocation allocation)
{
    std::uint64_t wanted = 0;
    if (IoResult refused = refuse_write(*this, offset, length, "zeroing", wanted);
        !refused.ok() || wanted == 0)
        return refused;
    return settled(zero_within(offset, wanted, allocation));
}

IoResult Disk::punch_hole(std::uint64_t offset, std::uint64_t length)
{
    std::uint64_t wanted = 0;
    if (IoResult refused = refuse_write(*this, offset, length, "hole punch", wanted);
        !refused.ok() || wanted == 0)
        return refused;
    return settled(punch_within(offset, wanted));
}

Mapping Disk::mapping(std::uint64_t offset)
{
    const std::uint64_t capacity = capacity_bytes();
    if (offset >= capacity)
        return {IoResult::failure(-ENXIO, info().name + ": offset past the end of the device"),
                false, capacity};
    return settled(map_within(offset));
}

std::uint64_t Disk::stored_bytes()
{
    // A quick look: a disk with more runs than this (fragmented, or huge and thin) counts as
    // full, which only makes `cp` and `du` see it as not sparse.
    constexpr int most_runs = 64;
    const std::uint64_t capacity = capacity_bytes();
    std::uint64_t holes = 0;
    std::uint64_t at = 0;
    for (int run = 0; at < capacity; ++run) {
        if (run == most_runs)
            return capacity;
        const Mapping found = mapping(at);
        if (!found.result.ok() || found.end <= at)
            return capacity;
        if (found.hole)
            holes += found.end - at;
        at = found.end;
    }
    return capacity - holes;
}

IoResult Disk::punch_within(std::uint64_t offset, std::uint64_t length)
{
    return zero_within(offset, length, ZeroAllocation::may_release);
}

Mapping Disk::map_within(std::uint64_t offset)
{
    static_cast<void>(offset);
    return {IoResult::success(0), false, capacity_bytes()};
}

ReadView Disk::view_range(std::size_t length, std::uint64_t offset, ReaderId reader)
{
    static_cast<void>(reader); // no read-ahead here
    // Aligned, so that the whole blocks of an unaligned read can still go direct.
    AlignedBuffer staging = take_staging(length);
    IoResult result = read_range(staging.data(), length, offset);
    if (!result.ok())
        return ReadView(std::move(result));
    std::vector<iovec> pieces{{staging.data(), static_cast<std::size_t>(result.bytes)}};
    return ReadView(std::move(result), std::move(pieces),
                    std::make_unique<BufferPin>(std::move(staging)));
}

// Written zeros are mapped either way: the allocation asked for needs nothing more.
IoResult Disk::zero_within(std::uint64_t offset, std::uint64_t length, ZeroAllocation)
{
    constexpr std::uint64_t chunk_bytes = std::uint64_t{1} << 20;
    const AlignedBuffer zeros = AlignedBuffer::zeroed(std::min(length, chunk_bytes));
    for (std::uint64_t done = 0; done < length;) {
        const std::uint64_t bytes = std::min<std::uint64_t>(length - done, zeros.size());
        if (IoResult written = write_range(zeros.data(), bytes, offset + done); !written.ok())
            return written;
        done += bytes;
    }
    return IoResult::success(length);
}

namespace
{

// One attempt of copy_range over the engines in hand (or staged, without engines).
IoResult copy_once(Disk &source, const EnginePin &in, std::uint64_t from, Disk &destination,
                   const EnginePin &out, std::uint64_t to, std::uint64_t wanted)
{
    if (in.engine != nullptr && out.engine != nullptr)
        return in.engine->copy_to(*out.engine, from, to, wanted);
    constexpr std::uint64_t staging_bytes = std::uint64_t{1} << 20;
    AlignedBuffer staging(std::min(wanted, staging_bytes));
    return staged_copy(
        from, to, wanted, copy_goes_backwards(&destination == &source, from, to, wanted),
        std::span(staging.data(), staging.size()),
        [&source](void *data, std::uint64_t bytes, std::uint64_t offset) {
            return source.pread(data, bytes, offset);
        },
        [&destination](const void *data, std::uint64_t bytes, std::uint64_t offset) {
            return destination.pwrite(data, bytes, offset);
        });
}

} // namespace

IoResult copy_range(Disk &source, std::uint64_t from, Disk &destination, std::uint64_t to,
                    std::size_t length)
{
    const DiskInfo &target = destination.info();
    if (target.read_only) {
        IoResult refused = IoResult::failure(-EROFS, target.name + ": read-only");
        refused.end = IoEnd::destination;
        return refused;
    }
    std::uint64_t wanted = 0;
    if (int rc = copy_extent(source.capacity_bytes(), destination.capacity_bytes(), from, to,
                             length, wanted);
        rc != 0) {
        IoResult refused = IoResult::failure(rc, target.name + ": copy past the end of the device");
        refused.end = IoEnd::destination;
        return refused;
    }
    if (wanted == 0)
        return IoResult::success(0);
    // A disk that lost its path may have found it again at once (the same LUN on a new
    // node): one more try there, as for reads and writes (reattach.hpp).
    for (bool first = true;; first = false) {
        EnginePin in = source.pin();
        if (!in.unavailable.ok()) {
            in.unavailable.end = IoEnd::source;
            return in.unavailable;
        }
        EnginePin out = destination.pin();
        if (!out.unavailable.ok()) {
            out.unavailable.end = IoEnd::destination;
            return out.unavailable;
        }
        IoResult result = copy_once(source, in, from, destination, out, to, wanted);
        if (result.ok() || result.bytes > 0 || !first)
            return result;
        const auto ask = std::move(result.end == IoEnd::destination ? out.failed : in.failed);
        // The pins go first: the engine that failed must not count as IO in flight while
        // the disk looks for its device again.
        in = {};
        out = {};
        if (!ask || !ask(result))
            return result;
    }
}

int Disk::open(const std::string &sg_path, const DiskOptions &options, std::unique_ptr<Disk> &out,
               std::string &message)
{
    // The engine of one node, wrapped so that when the device goes away (a SAN path lost,
    // an iSCSI logout) the same LUN is picked up again by its stable id (reattach.hpp).
    const DiskOpenFunction open_node = [options](const std::string &path,
                                                 std::unique_ptr<Disk> &disk, std::string &why) {
        std::unique_ptr<Engine> engine;
        if (int rc = Engine::open(make_sg_transport(path), options, engine, why); rc != 0)
            return rc;
        disk = std::move(engine);
        return 0;
    };
    std::unique_ptr<Disk> disk;
    if (int rc = open_node(sg_path, disk, message); rc != 0)
        return rc;
    ReattachEnvironment environment = system_reattach_environment(open_node);
    if (const std::shared_ptr<DiskClaims> claims = options.claims) {
        environment.release_claim = [claims](const DiskInfo &lost) { claims->release(lost); };
        environment.reclaim = [claims](const DiskInfo &back) { return claims->reclaim(back); };
    }
    out = make_reattaching_disk(std::move(disk), std::move(environment));
    return 0;
}

} // namespace sgfs
