// What each transfer mode really did, per device. Lock-free counters, read as snapshots.
#pragma once

#include "sgfs/io_mode.hpp"
#include "sgfs/sense.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sgfs
{

inline constexpr int error_category_count = static_cast<int>(ErrorCategory::other) + 1;

// What a command's data was moved for: a file read, a file write, or a copy between disks
// (copy_file_range). `none` for probing commands, which are not counted per path.
enum class DataPath { none, read, write, copy };
inline constexpr int data_path_count = static_cast<int>(DataPath::copy) + 1;
const char *to_string(DataPath path);

// How a range was made to read as zeros (Disk::zero_range): WRITE SAME of one zero block,
// the same with the UNMAP bit where unmapped blocks read zero, or zero buffers written by
// the host. Never plain UNMAP: the device may ignore it (see core/zero_plan.hpp).
enum class ZeroKind { write_same, write_same_unmap, host_write };

struct ZeroCountersSnapshot {
    std::uint64_t write_same_commands = 0; // without the UNMAP bit
    std::uint64_t write_same_bytes = 0;
    std::uint64_t write_same_unmap_commands = 0; // with the UNMAP bit
    std::uint64_t write_same_unmap_bytes = 0;
    std::uint64_t host_bytes = 0; // zero buffers written, partial blocks included
    std::uint64_t fallbacks = 0;  // a WRITE SAME form refused: the range done another way
};

// Per path, where each byte of a data command was copied on its way. A command's bytes
// count once, as the first that applies: copied by sgfs in user space (mmap area or bounce
// buffer), copied by the sg driver between its kernel buffer and our memory (indirect IO
// done), or neither (direct IO done into or out of the memory FUSE reads from or wrote
// into, or the mmap-ed reserve buffer handed to FUSE as it is).
struct PathCountersSnapshot {
    std::uint64_t user_copy_bytes = 0;
    std::uint64_t sg_copy_bytes = 0;
    std::uint64_t zero_copy_bytes = 0;
};

struct ModeCountersSnapshot {
    std::uint64_t requested_commands = 0; // commands issued asking for this mode
    std::uint64_t requested_bytes = 0;
    std::uint64_t done_commands = 0; // commands the driver really did in this mode
    std::uint64_t done_bytes = 0;
    std::uint64_t fallback_commands = 0; // asked for this mode, driver did indirect (or mixed)
    std::uint64_t fallback_bytes = 0;
};

struct DeviceStatsSnapshot {
    // The path, as the reattaching wrapper (core/reattach.hpp) sees it. state: "online", or
    // "gone" once the device went away (IO fails with ENODEV until a disk with the same
    // stable id is found again). device_state: the SCSI device's sysfs state ("running",
    // "blocked" while the transport recovers, "transport-offline", ...; "missing" when the
    // node is gone; "" when not known).
    std::string state = "online";
    std::string device_state;
    // While gone: why, e.g. "refused: /dev/sg2 (/dev/sdc) is in use: /dev/sdc1 mounted at
    // /mnt" when the disk came back but someone else had taken it meanwhile.
    std::string gone_reason;
    std::uint64_t path_losses = 0; // times the device went away
    std::uint64_t reattaches = 0;  // times it was found again and swapped in
    std::array<ModeCountersSnapshot, transfer_mode_count> modes{};
    std::array<PathCountersSnapshot, data_path_count> paths{};
    std::uint64_t retries = 0;
    std::uint64_t user_copy_bytes = 0;     // every path's user_copy_bytes
    std::uint64_t zero_copy_bytes = 0;     // every path's zero_copy_bytes
    std::uint64_t readahead_bytes = 0;     // read ahead on spare fds
    std::uint64_t readahead_hit_bytes = 0; // of those, answered a read
    std::array<std::uint64_t, error_category_count> errors{};
    ZeroCountersSnapshot zero;

    // Adds other's counters to these (a disk's history across reattaches); the path fields
    // (state, device_state, gone_reason, path_losses, reattaches) are left as they are.
    void add_counters(const DeviceStatsSnapshot &other);
    // "key value" pairs, keys like "mmap.requested_commands", "read.zero_copy_bytes",
    // "errors.medium_error".
    std::vector<std::pair<std::string, std::string>> fields() const;
};

class DeviceStats
{
  public:
    // A data command that completed. `staged`: sgfs copies its data in user space (to or
    // from an mmap area or a bounce buffer), see PathCountersSnapshot.
    void count_command(DataPath path, TransferMode requested, TransferMode done,
                       std::uint64_t bytes, bool staged);
    void count_retry() { retries_.fetch_add(1, std::memory_order_relaxed); }
    // A copy of part of a block (unaligned head or tail), outside any command's count.
    void count_partial_copy(DataPath path, std::uint64_t bytes);
    void count_readahead_submitted(std::uint64_t bytes)
    {
        readahead_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    }
    void count_readahead_hit(std::uint64_t bytes)
    {
        readahead_hit_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    }
    void count_error(ErrorCategory category);
    // One zeroing command (or, for host_write, a zero buffer written) covering `bytes`.
    void count_zeroing(ZeroKind kind, std::uint64_t bytes);
    void count_zeroing_fallback() { zero_fallbacks_.fetch_add(1, std::memory_order_relaxed); }
    DeviceStatsSnapshot snapshot() const;

  private:
    struct ModeCounters {
        std::atomic<std::uint64_t> requested_commands{0}, requested_bytes{0};
        std::atomic<std::uint64_t> done_commands{0}, done_bytes{0};
        std::atomic<std::uint64_t> fallback_commands{0}, fallback_bytes{0};
    };
    std::array<ModeCounters, transfer_mode_count> modes_{};
    struct PathCounters {
        std::atomic<std::uint64_t> user_copy_bytes{0}, sg_copy_bytes{0}, zero_copy_bytes{0};
    };
    std::array<PathCounters, data_path_count> paths_{};
    std::atomic<std::uint64_t> retries_{0};
    std::atomic<std::uint64_t> readahead_bytes_{0};
    std::atomic<std::uint64_t> readahead_hit_bytes_{0};
    std::array<std::atomic<std::uint64_t>, error_category_count> errors_{};
    std::atomic<std::uint64_t> zero_write_same_commands_{0}, zero_write_same_bytes_{0};
    std::atomic<std::uint64_t> zero_write_same_unmap_commands_{0}, zero_write_same_unmap_bytes_{0};
    std::atomic<std::uint64_t> zero_host_bytes_{0}, zero_fallbacks_{0};
};

} // namespace sgfs
