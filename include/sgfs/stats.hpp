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
    std::uint64_t path_losses = 0; // times the device went away
    std::uint64_t reattaches = 0;  // times it was found again and swapped in
    std::array<ModeCountersSnapshot, transfer_mode_count> modes{};
    std::uint64_t retries = 0;
    std::uint64_t user_copy_bytes = 0;     // bytes copied in user space by us
    std::uint64_t zero_copy_bytes = 0;     // bytes handed on from sg memory without a copy
    std::uint64_t readahead_bytes = 0;     // read ahead on spare fds
    std::uint64_t readahead_hit_bytes = 0; // of those, answered a read
    std::array<std::uint64_t, error_category_count> errors{};

    // Adds other's counters to these (a disk's history across reattaches); the path fields
    // (state, device_state, path_losses, reattaches) are left as they are.
    void add_counters(const DeviceStatsSnapshot &other);
    // "key value" pairs, keys like "mmap.requested_commands", "errors.medium_error".
    std::vector<std::pair<std::string, std::string>> fields() const;
};

class DeviceStats
{
  public:
    void count_command(TransferMode requested, TransferMode done, std::uint64_t bytes);
    void count_retry() { retries_.fetch_add(1, std::memory_order_relaxed); }
    void count_user_copy(std::uint64_t bytes)
    {
        user_copy_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    }
    void count_zero_copy(std::uint64_t bytes)
    {
        zero_copy_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    }
    void count_readahead_submitted(std::uint64_t bytes)
    {
        readahead_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    }
    void count_readahead_hit(std::uint64_t bytes)
    {
        readahead_hit_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    }
    void count_error(ErrorCategory category);
    DeviceStatsSnapshot snapshot() const;

  private:
    struct ModeCounters {
        std::atomic<std::uint64_t> requested_commands{0}, requested_bytes{0};
        std::atomic<std::uint64_t> done_commands{0}, done_bytes{0};
        std::atomic<std::uint64_t> fallback_commands{0}, fallback_bytes{0};
    };
    std::array<ModeCounters, transfer_mode_count> modes_{};
    std::atomic<std::uint64_t> retries_{0};
    std::atomic<std::uint64_t> user_copy_bytes_{0};
    std::atomic<std::uint64_t> zero_copy_bytes_{0};
    std::atomic<std::uint64_t> readahead_bytes_{0};
    std::atomic<std::uint64_t> readahead_hit_bytes_{0};
    std::array<std::atomic<std::uint64_t>, error_category_count> errors_{};
};

} // namespace sgfs
