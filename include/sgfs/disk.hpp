// A SCSI disk reached through its sg node, with byte-granular IO.
// This is the whole interface the FUSE layer uses: it knows offsets and lengths, never
// sg_io_hdr. Functions return -errno (or a byte count); none throws.
#pragma once

#include "sgfs/io_mode.hpp"
#include "sgfs/stats.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <sys/types.h>
#include <sys/uio.h>

namespace sgfs
{

class DiskClaims;

struct DiskOptions {
    IoMode io_mode = IoMode::automatic;
    // auto: aligned IO at or above this uses mmap/direct
    std::size_t mmap_min = std::size_t{64} * 1024;
    // per-fd reserve buffer asked for (driver may cap)
    std::size_t reserve = std::size_t{1024} * 1024;
    unsigned queue_depth = 4; // sg fds per device = commands in flight
    std::size_t max_io = 0;   // largest SCSI transfer; 0 = what the device allows
    unsigned timeout_seconds = 60;
    unsigned retries = 3; // for unit attention / aborted command / busy
    bool fua = false;
    bool read_only = false;
    bool readahead = true; // sequential reads: next windows on spare fds
    // The claims of the mount these disks serve (disk_claim.hpp), or null: a claimed disk
    // lets go of its block device while it is gone and takes it again when it is back.
    std::shared_ptr<DiskClaims> claims;
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
    std::uint64_t capacity_bytes = 0;
    std::uint32_t logical_block_size = 512;
    std::uint32_t physical_block_size = 512;
    std::uint32_t max_transfer_bytes = 0; // after reserve, VPD B0, BLKSECTGET, max_io
    std::uint32_t reserve_granted = 0;    // the reserve size the driver really gave
    bool write_protected = false;         // MODE SENSE WP
    bool allow_dio = false;               // the sg driver's allow_dio at open
    Provisioning provisioning;
};

// Receives a read's data where it lies (sg memory, read-ahead buffers) and must be done
// with it when it returns; e.g. it replies to FUSE from those pieces. Returns 0 or -errno.
using ReadConsumer = std::function<int(std::span<const iovec> pieces)>;

// Who reads: one open file, so that read-ahead serves it only what was read for it, after it
// was opened, and drops that at its end (end_reader). Never reused within a process.
using ReaderId = std::uint64_t;
inline constexpr ReaderId no_reader = 0; // reads no read-ahead serves or queues

// Which end of a copy_range() an error came from, so that a caller (or a wrapper) blames
// the right device.
enum class CopyEnd { none, source, destination };

// A Disk is used by the process that opened it: the sg driver refuses the asynchronous
// write()/read() of a command on an fd opened by another process (after fork(), or a
// daemonize), so such a process opens its own (fusefs reopens after fuse_daemonize).
class Disk
{
  public:
    virtual ~Disk() = default;
    // Opens and probes /dev/sgN. On failure returns -errno and fills `message` with one line.
    static int open(const std::string &sg_path, const DiskOptions &options,
                    std::unique_ptr<Disk> &out, std::string &message);

    virtual const DiskInfo &info() const = 0;
    // Any offset, any length. Returns bytes read (short at the end of the device) or -errno.
    virtual ssize_t pread(void *buffer, std::size_t length, std::uint64_t offset) = 0;
    // The same read without a copy into a caller's buffer: aligned reads hand `consume` the
    // memory the data arrived in; others are staged and counted as a user copy. Returns
    // bytes read, -errno from the disk, or consume's own -errno (then `consumed` is true).
    // Read-ahead for `reader` answers it only with data read for it (so read after it
    // began); no_reader gets none. The default stages the data through pread(), for disks
    // without sg memory of their own.
    virtual ssize_t read_view(std::size_t length, std::uint64_t offset, ReaderId reader,
                              const ReadConsumer &consume, bool &consumed);
    // `reader` reads no more (its file was released): what was read ahead for it is dropped.
    virtual void end_reader(ReaderId reader) { static_cast<void>(reader); }
    // Any offset, any length. Unaligned head/tail are read-modify-write, serialized against
    // overlapping IO. Past the end: -ENOSPC. Read-only: -EROFS.
    virtual ssize_t pwrite(const void *buffer, std::size_t length, std::uint64_t offset) = 0;
    // Makes [offset, offset + length) read as zeros, with the device's own means where it
    // has them (UNMAP where unmapped blocks read zero, WRITE SAME of a zero block) and zero
    // buffers written through pwrite() elsewhere; unaligned head and tail bytes are
    // read-modify-write like pwrite's. The range is cut at the end of the disk; starting at
    // or past the end: -ENOSPC. Read-only: -EROFS. Returns 0 or -errno (then part of the
    // range may be zeroed). The default writes zero buffers through pwrite().
    virtual int zero_range(std::uint64_t offset, std::uint64_t length);
    // Copies `length` bytes at `from` on this disk to `to` on `destination`, which may be
    // this disk with overlapping ranges: the result is then memmove's. Stops at either end:
    // returns the bytes copied (0 when `from` is at or past this disk's end), -ENOSPC when
    // `to` is at or past the destination's end, -EROFS for a read-only destination, or
    // -errno with `failed` saying whose error it is. Two sg disks may instead return the
    // bytes copied before an error (front-to-back copies; `failed` is set then too). The
    // default stages the data through pread() and pwrite(); two sg disks move it between
    // their sg fds (sg_disk_copy.cpp).
    virtual ssize_t copy_range(std::uint64_t from, Disk &destination, std::uint64_t to,
                               std::size_t length, CopyEnd &failed);
    // Calls `io` with the disk that really does the IO: this one, or for a wrapper the disk
    // it forwards to, held for the call (`not_mine`, read after `io` returns, says an error
    // is not this disk's). Lets copy_range find two ends it can connect directly.
    virtual ssize_t with_io_disk(const std::function<ssize_t(Disk &)> &io, const bool *not_mine)
    {
        static_cast<void>(not_mine);
        return io(*this);
    }
    // SYNCHRONIZE CACHE.
    virtual int flush() = 0;
    virtual DeviceStatsSnapshot stats() const = 0;
    // The last error's one-line message (for logs).
    virtual std::string last_error() const = 0;
};

} // namespace sgfs
