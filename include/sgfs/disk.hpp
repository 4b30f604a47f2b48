// A SCSI disk reached through its sg node, with byte-granular IO.
// This is the whole interface the FUSE layer uses: it knows offsets and lengths, never
// sg_io_hdr. Functions return -errno (or a byte count); none throws.
#pragma once

#include "sgfs/io_mode.hpp"
#include "sgfs/stats.hpp"

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <sys/types.h>
#include <sys/uio.h>
#include <utility>
#include <vector>

namespace sgfs
{

class DiskClaims;

struct DiskOptions {
    IoMode io_mode = IoMode::automatic;
    // auto: aligned IO at or above this uses mmap/direct
    std::size_t mmap_min = std::size_t{64} * 1024;
    // per-fd reserve buffer asked for (driver may cap)
    std::size_t reserve = std::size_t{1024} * 1024;
    // sg fds per device and transfer kind = commands in flight. 8: a device with latency
    // (a SAN LUN, a disk array) needs several commands in flight to stay busy, and the
    // block layer keeps at least that many; each fd holds a `reserve` in the kernel.
    unsigned queue_depth = 8;
    std::size_t max_io = 0; // largest SCSI transfer; 0 = what the device allows
    unsigned timeout_seconds = 60;
    unsigned retries = 3; // for unit attention / aborted command / busy
    bool fua = false;
    bool read_only = false;
    bool readahead = true; // sequential reads: next windows on spare fds
    // The claims of the mount these disks serve (disk_claim.hpp), or null: a claimed disk
    // lets go of its block device while it is gone and takes it again when it is back.
    std::shared_ptr<DiskClaims> claims;
    // copy_file_range between two LUNs whose copy manager reaches both: EXTENDED COPY on the
    // target instead of reading and writing through the host.
    bool copy_offload = true;
};

// Logical block provisioning, as probed (READ CAPACITY(16), VPD B0 and B2); all false / 0
// when the device does not report it. Raw device figures: Disk::zero_range decides from
// them (core/zero_plan.hpp).
struct Provisioning {
    bool lbpme = false;   // thin provisioning enabled (READ CAPACITY(16))
    bool lbprz = false;   // an unmapped block reads zero (READ CAPACITY(16) or VPD B2)
    bool lbpu = false;    // UNMAP supported (VPD B2)
    bool lbpws = false;   // WRITE SAME(16) with UNMAP supported (VPD B2)
    bool lbpws10 = false; // WRITE SAME(10) with UNMAP supported (VPD B2)
    std::uint32_t unmap_granularity = 0;           // blocks (VPD B0); 0 = not reported
    std::uint32_t unmap_granularity_alignment = 0; // LBA of the first whole granule
    std::uint32_t max_unmap_blocks = 0;            // per UNMAP; 0xffffffff = no limit
    std::uint32_t max_unmap_descriptors = 0;
    std::uint64_t max_write_same_blocks = 0; // 0 = not reported
};

struct DiskInfo {
    std::string sg_path;          // "/dev/sg0"
    std::string name;             // "sg0"
    std::string block_device;     // "sda" or "" when there is none
    std::string hctl;             // "0:0:0:0"
    std::uint8_t device_type = 0; // SCSI peripheral device type
    std::string vendor, model, revision;
    std::string stable_id; // from VPD 0x83, else 0x80 serial; file-name safe
    // The size the probe found (at open, or at the last reattach). A disk's size can change
    // while it is open: Disk::capacity_bytes() is the size now, and what every bound uses.
    std::uint64_t capacity_bytes = 0;
    std::uint32_t logical_block_size = 512;
    std::uint32_t physical_block_size = 512;
    std::uint32_t max_transfer_bytes = 0; // after reserve, VPD B0, BLKSECTGET, max_io
    std::uint32_t reserve_granted = 0;    // the reserve size the driver really gave
    bool write_protected = false;         // MODE SENSE WP
    bool allow_dio = false;               // the sg driver's allow_dio at open
    bool read_only = false;               // served read-only: the read_only option, or WP
    Provisioning provisioning;
    bool three_party_copy = false; // INQUIRY 3PC: the LU has a copy manager (EXTENDED COPY)
    // The copy manager takes block-to-block EXTENDED COPY(LID1) naming LUs by an NAA
    // designator, and this LU has one: copies from it may be offloaded (engine_offload.cpp).
    bool copy_offload = false;
};

// What one IO did, as a value: the bytes moved and, on failure, the -errno, which end of a
// copy failed, and one line that names the device and the problem (for logs).
enum class IoEnd { none, source, destination };
struct IoResult {
    std::uint64_t bytes = 0; // moved; with an error, the bytes done (in order) before it
    int error = 0;           // 0 or -errno
    IoEnd end = IoEnd::none; // a copy's: whose error it is
    std::string message;

    bool ok() const { return error == 0; }
    static IoResult success(std::uint64_t bytes) { return {bytes, 0, IoEnd::none, {}}; }
    static IoResult failure(int error, std::string message)
    {
        return {0, error, IoEnd::none, std::move(message)};
    }
};

// One provisioning run of a disk, from Disk::mapping(offset): the bytes from `offset` up to
// `end` are all data or all hole. A hole reads zeros and holds nothing on the device.
struct Mapping {
    IoResult result;       // failure: -errno (-ENXIO at or past the end of the disk)
    bool hole = false;     // [offset, end) is unmapped and reads zero
    std::uint64_t end = 0; // where the run ends (a block boundary, at most the capacity)
};

// What zeroing may do with a thin device's blocks. Truncation gives space back; fallocate(2)
// ZERO_RANGE promises the range stays allocated (later writes there do not run out of
// space), and the loop driver sends it for WRITE ZEROES with REQ_NOUNMAP.
enum class ZeroAllocation {
    may_release, // WRITE SAME with UNMAP where unmapped blocks read zero
    keep,        // never the UNMAP bit: the blocks stay (or become) mapped
};

// A read's data where it lies (sg memory, read-ahead windows, a staging buffer), held until
// the view goes: fusefs replies from pieces() and then drops it. Move-only.
class ReadView
{
  public:
    // What keeps the pieces' memory from being reused (leases, window users, a buffer).
    class Pin
    {
      public:
        virtual ~Pin() = default;
    };

    ReadView() = default;
    explicit ReadView(IoResult result) : result_(std::move(result)) {}
    ReadView(IoResult result, std::vector<iovec> pieces, std::unique_ptr<Pin> pin)
        : result_(std::move(result)), pieces_(std::move(pieces)), pin_(std::move(pin))
    {
    }
    ReadView(ReadView &&) noexcept = default;
    ReadView &operator=(ReadView &&) noexcept = default;
    ReadView(const ReadView &) = delete;
    ReadView &operator=(const ReadView &) = delete;
    ~ReadView() = default;

    const IoResult &result() const { return result_; }
    std::span<const iovec> pieces() const { return pieces_; }
    // Also keeps `owner` alive while the view lives (the disk the pieces belong to).
    void hold(std::shared_ptr<const void> owner) { owner_ = std::move(owner); }

  private:
    IoResult result_;
    std::vector<iovec> pieces_;
    // Declared after owner_ so that it goes first: the pin releases into its owner.
    std::shared_ptr<const void> owner_;
    std::unique_ptr<Pin> pin_;
};

// How a write may be acknowledged. synchronous: once the device has it (the command
// completed). behind: whole blocks may be acknowledged once their commands are queued on the
// device, as a block device's page cache does; their completion is reported to the file's
// PendingWrites. Unaligned heads and tails (read-modify-write) stay synchronous.
enum class WriteMode { synchronous, behind };

// One open file's writes acknowledged before they completed, and the first failure among
// them not yet reported. A failure is reported twice at most: once to a write (which may
// not reach the writer: the kernel's FUSE turns a failed later piece of one write(2) into a
// short count and drops its error), and once to the next drain, which fsync and close make,
// so that neither of them returns 0 over a failed write. Shared by the file and the
// commands in flight (shared_ptr); safe from any thread.
class PendingWrites
{
  public:
    PendingWrites() = default;
    PendingWrites(const PendingWrites &) = delete;
    PendingWrites &operator=(const PendingWrites &) = delete;

    // Waits until every write begun on this file has completed, then returns the first
    // failure among them not drained yet (reported to a write or not), or success; the next
    // drain returns success unless another write fails.
    IoResult drain();
    // For a write: the first failure no write was given yet, without waiting, or success.
    // It stays for the next drain.
    IoResult take_failure();
    // Writes begun and not yet ended.
    std::size_t in_flight() const;

    // ---- for the disk that runs the writes ----
    // One write acknowledged early starts; end() follows exactly once, with its outcome.
    void begin();
    void end(const IoResult &outcome);

  private:
    mutable std::mutex mutex_;
    std::condition_variable ended_;
    std::size_t in_flight_ = 0;
    IoResult failure_;            // the first failure not drained; ok() when none
    bool given_to_write_ = false; // failure_ was returned by take_failure already
};

// What a write acknowledged behind carries to its commands: where their outcome goes, what
// must live until they complete (a wrapper's disk, so that it is not swapped out while IO
// still runs on it), and how the caller's memory can be kept for them.
struct WriteBehind {
    std::shared_ptr<PendingWrites> pending;
    std::shared_ptr<const void> hold;
    // The caller's memory normally goes with the reply. Where this is set, calling it keeps
    // that memory (the whole of the write's data) unchanged while the returned owner lives,
    // so commands may run from it after the write is answered, without a copy; it returns
    // null when it cannot. Called only where a command would run from the caller's memory;
    // every owner it returns keeps the memory.
    std::function<std::shared_ptr<const void>()> keep_caller_memory;
};

// Who reads: one open file, so that read-ahead serves it only what was read for it, after it
// was opened, and drops that at its end (end_reader). Never reused within a process.
using ReaderId = std::uint64_t;
inline constexpr ReaderId no_reader = 0; // reads no read-ahead serves or queues

class Engine; // core's IO engine of one logical unit (core/engine.hpp)

// A disk's engine, in hand: a copy between two disks runs on the two engines it pins, the
// data moving between their channels. A disk without an engine (a test's) has none: the
// copy stages its data through pread() and pwrite().
struct EnginePin {
    Engine *engine = nullptr;
    std::shared_ptr<const void> hold; // keeps `engine` alive while the pin lives
    IoResult unavailable;             // failed: there is no engine now (the disk is gone)
    // A wrapper that can lose its path is told of a failure of IO on this engine; true when
    // a fresh engine took over and the IO may be tried again on a new pin.
    std::function<bool(const IoResult &failure)> failed;
};

// A Disk is used by the process that opened it: the sg driver refuses the asynchronous
// write()/read() of a command on an fd opened by another process (after fork(), or a
// daemonize), so such a process opens its own (fusefs reopens after fuse_daemonize).
//
// The public functions hold the disk's rules, for every kind of disk: ranges are cut at the
// end of the disk (capacity_bytes(), the size now), a write at or past the end is -ENOSPC,
// a read there reads nothing, and a read-only disk (DiskInfo::read_only) refuses writes with
// -EROFS. Only then do they call the protected virtual functions, with a range inside the
// disk and not empty. After a shrink the same rule refuses what lies past the new end; the
// one command that meets the device's unit attention may instead fail with the device's
// LBA OUT OF RANGE (-EINVAL), before the new size is known.
class Disk
{
  public:
    virtual ~Disk() = default;
    // Opens and probes /dev/sgN. On failure returns -errno and fills `message` with one line.
    static int open(const std::string &sg_path, const DiskOptions &options,
                    std::unique_ptr<Disk> &out, std::string &message);

    virtual const DiskInfo &info() const = 0;
    // The disk's size now, from any thread: the probe's (DiskInfo::capacity_bytes) until a
    // capacity change is seen, the new one after it. The default: a disk of fixed size.
    virtual std::uint64_t capacity_bytes() const { return info().capacity_bytes; }
    // Reads the capacity again (READ CAPACITY) and makes it the disk's size: IO past a new
    // end is refused by the rules below, data below it is left as it is. A changed logical
    // block size is refused as a returning device's is on reattach: the disk counts as gone
    // (-ENODEV) and stays so while the device has other blocks. An engine does this itself
    // after a command met CAPACITY DATA HAS CHANGED; this is for a caller that learned of
    // a change another way (a "change" uevent). May block for one command; not from a
    // thread that holds a ReadView of this disk. 0 or -errno; the default (fixed size): 0.
    virtual int refresh_capacity() { return 0; }
    // Any offset, any length: the bytes read (short at the end of the disk, 0 past it).
    IoResult pread(void *buffer, std::size_t length, std::uint64_t offset);
    // The same read without a copy into a caller's buffer: aligned reads return the memory
    // the data arrived in; others are staged and counted as a user copy. Read-ahead for
    // `reader` answers it only with data read for it (so read after it began); no_reader
    // gets none.
    ReadView read_view(std::size_t length, std::uint64_t offset, ReaderId reader);
    // `reader` reads no more (its file was released): what was read ahead for it is dropped.
    virtual void end_reader(ReaderId reader) { static_cast<void>(reader); }
    // Any offset, any length: unaligned head/tail are read-modify-write, serialized against
    // overlapping IO. A write crossing the end writes what fits (a short count).
    IoResult pwrite(const void *buffer, std::size_t length, std::uint64_t offset);
    // pwrite for an open file whose writes are tracked in `behind.pending` (not null). A
    // failure of an earlier write acknowledged behind that no write was given yet is
    // returned first, instead of writing (PendingWrites::take_failure; the next drain
    // returns it again). Then with WriteMode::behind the
    // whole blocks of the range may be acknowledged once queued (a disk without an engine
    // writes synchronously); the bytes are then the bytes queued, and a failure of those
    // commands is carried by behind.pending. Reads and writes overlapping a write still in
    // flight wait for it; flush() waits for every one of them before SYNCHRONIZE CACHE.
    IoResult pwrite(const void *buffer, std::size_t length, std::uint64_t offset, WriteMode mode,
                    const WriteBehind &behind);
    // The WriteMode::behind part of that pwrite alone, without looking at earlier failures:
    // for a wrapper (core/reattach.cpp) whose own pwrite did, so that an earlier batch's
    // failure is neither taken twice nor mistaken for this write's.
    IoResult pwrite_behind(const void *buffer, std::size_t length, std::uint64_t offset,
                           const WriteBehind &behind);
    // Makes [offset, offset + length) read as zeros, with the device's own means where it
    // has them (WRITE SAME; with UNMAP where unmapped blocks read zero and `allocation`
    // allows it) and zero buffers written elsewhere; unaligned head and tail bytes are
    // read-modify-write. Cut at the end. On failure part of the range may be zeroed.
    IoResult zero_range(std::uint64_t offset, std::uint64_t length,
                        ZeroAllocation allocation = ZeroAllocation::may_release);
    // fallocate(PUNCH_HOLE): makes [offset, offset + length) read as zeros, like
    // zero_range, and hands what it can back to a thin device: whole unmap granules are
    // unmapped (UNMAP, or WRITE SAME with UNMAP), and whatever is not then known to read
    // zero (partial granules and blocks, a device whose unmapped blocks need not read zero
    // (LBPRZ=0), blocks the device left mapped) is zeroed. Cut at the end. On failure part
    // of the range may be done.
    IoResult punch_hole(std::uint64_t offset, std::uint64_t length);
    // The provisioning run at `offset` (SEEK_DATA/SEEK_HOLE, sparse copies): a hole only
    // where the device reports the blocks unmapped (GET LBA STATUS) and unmapped blocks read
    // zero (LBPME and LBPRZ); everything else is data. -ENXIO at or past the end.
    Mapping mapping(std::uint64_t offset);
    // The bytes the device holds data for (st_blocks): the capacity less the holes mapping()
    // finds, or the capacity when the disk has none or more runs than a quick look counts.
    std::uint64_t stored_bytes();
    // SYNCHRONIZE CACHE, after every write acknowledged behind on this disk completed.
    IoResult flush() { return settled(flush_cache()); }
    virtual DeviceStatsSnapshot stats() const = 0;
    // The engine doing this disk's IO now (see EnginePin); none by default.
    virtual EnginePin pin() { return {}; }

  protected:
    virtual IoResult read_range(void *buffer, std::size_t length, std::uint64_t offset) = 0;
    // The default stages the data through read_range().
    virtual ReadView view_range(std::size_t length, std::uint64_t offset, ReaderId reader);
    virtual IoResult write_range(const void *buffer, std::size_t length, std::uint64_t offset) = 0;
    // WriteMode::behind, the range inside the disk and not empty, behind.pending not null.
    // The default writes synchronously through write_range().
    virtual IoResult write_behind_range(const void *buffer, std::size_t length,
                                        std::uint64_t offset, const WriteBehind &behind);
    // The default writes zero buffers through write_range() (which keeps blocks mapped).
    virtual IoResult zero_within(std::uint64_t offset, std::uint64_t length,
                                 ZeroAllocation allocation);
    // The default zeroes through zero_within().
    virtual IoResult punch_within(std::uint64_t offset, std::uint64_t length);
    // `offset` is inside the disk. The default: data up to the end.
    virtual Mapping map_within(std::uint64_t offset);
    virtual IoResult flush_cache() = 0;
    // After each public IO function: a disk whose commands may have heard of a capacity
    // change takes it in (never waiting for a channel). The default: nothing to take in.
    virtual void settle_capacity() {}

  private:
    template <typename Result> Result settled(Result result)
    {
        settle_capacity();
        return result;
    }
};

// Copies `length` bytes at `from` on `source` to `to` on `destination`, which may be the
// same disk with overlapping ranges: the result is then memmove's. Stops at either end
// (bytes 0 when `from` is at or past the source's end); -ENOSPC when `to` is at or past the
// destination's end, -EROFS for a read-only destination. A failure part-way returns the
// bytes copied before it (front to back) with the error and its end. Two disks with engines
// move the data between their channels (core/engine_copy.cpp); others stage it.
IoResult copy_range(Disk &source, std::uint64_t from, Disk &destination, std::uint64_t to,
                    std::size_t length);

} // namespace sgfs
