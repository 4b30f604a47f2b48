// What each transfer mode really did, per device. Lock-free counters, read as snapshots.
#pragma once

#include "sgfs/io_mode.hpp"
#include "sgfs/sense.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <type_traits>
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

// How a range was made to read as zeros (Disk::zero_range, Disk::punch_hole): WRITE SAME of
// one zero block, the same with the UNMAP bit (where unmapped blocks read zero, or to
// deallocate in a hole punch), or zero buffers written by the host. Plain UNMAP is no
// zeroing means (the device may ignore it): only punch_hole sends it, and always checks
// afterwards what still needs zeroing (core/unmap_plan.hpp).
enum class ZeroKind { write_same, write_same_unmap, host_write };

// One counter of a group: its key in .stats and where its value lives in the group's
// snapshot. Each group's table below is the only list of its counters: snapshots, sums and
// .stats all walk it, so a new counter is a field and a row.
template <typename Group> struct CounterField {
    using group_type = Group;
    const char *key;
    std::uint64_t Group::*member;
};

struct ZeroCountersSnapshot {
    std::uint64_t write_same_commands = 0; // without the UNMAP bit
    std::uint64_t write_same_bytes = 0;
    std::uint64_t write_same_unmap_commands = 0; // with the UNMAP bit
    std::uint64_t write_same_unmap_bytes = 0;
    std::uint64_t host_bytes = 0;         // zero buffers written, partial blocks included
    std::uint64_t fallbacks = 0;          // a WRITE SAME form or UNMAP refused: done another way
    std::uint64_t unmap_commands = 0;     // UNMAP (hole punches only)
    std::uint64_t unmap_bytes = 0;        // the bytes their descriptors cover
    std::uint64_t lba_status_queries = 0; // GET LBA STATUS (SEEK_DATA/HOLE, copies, punches)
    std::uint64_t verify_read_bytes = 0;  // read back after a deallocation (LBPRZ=0)
    std::uint64_t copy_hole_bytes = 0;    // source bytes a copy found unmapped and did not read
};
// .stats keys "zero.<key>".
inline constexpr auto zero_counter_fields = std::to_array<CounterField<ZeroCountersSnapshot>>({
    {"write_same_commands", &ZeroCountersSnapshot::write_same_commands},
    {"write_same_bytes", &ZeroCountersSnapshot::write_same_bytes},
    {"write_same_unmap_commands", &ZeroCountersSnapshot::write_same_unmap_commands},
    {"write_same_unmap_bytes", &ZeroCountersSnapshot::write_same_unmap_bytes},
    {"host_bytes", &ZeroCountersSnapshot::host_bytes},
    {"fallbacks", &ZeroCountersSnapshot::fallbacks},
    {"unmap_commands", &ZeroCountersSnapshot::unmap_commands},
    {"unmap_bytes", &ZeroCountersSnapshot::unmap_bytes},
    {"lba_status_queries", &ZeroCountersSnapshot::lba_status_queries},
    {"verify_read_bytes", &ZeroCountersSnapshot::verify_read_bytes},
    {"copy_hole_bytes", &ZeroCountersSnapshot::copy_hole_bytes},
});

// Copies offloaded to the source LU's copy manager (EXTENDED COPY, core/engine_offload.cpp),
// counted on the source: what it copied, the commands it refused by reason, and the bytes
// that were then copied through the host instead.
enum class OffloadRefusal { unsupported, unreachable, other };
struct OffloadCountersSnapshot {
    std::uint64_t bytes = 0;               // copied by the copy manager: no host or sg-driver copy
    std::uint64_t commands = 0;            // EXTENDED COPY commands that succeeded
    std::uint64_t refused_unsupported = 0; // invalid command operation code: never tried again
    std::uint64_t refused_unreachable = 0; // COPY ABORTED, copy target device not reachable
    std::uint64_t refused_other = 0;       // any other ILLEGAL REQUEST or COPY ABORTED
    std::uint64_t fallback_bytes = 0;      // after a refusal, copied the pipelined way
};
// .stats keys "offload.<key>".
inline constexpr auto offload_counter_fields =
    std::to_array<CounterField<OffloadCountersSnapshot>>({
        {"bytes", &OffloadCountersSnapshot::bytes},
        {"commands", &OffloadCountersSnapshot::commands},
        {"refused_unsupported", &OffloadCountersSnapshot::refused_unsupported},
        {"refused_unreachable", &OffloadCountersSnapshot::refused_unreachable},
        {"refused_other", &OffloadCountersSnapshot::refused_other},
        {"fallback_bytes", &OffloadCountersSnapshot::fallback_bytes},
    });

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
// .stats keys "<path>.<key>" (read, write, copy).
inline constexpr auto path_counter_fields = std::to_array<CounterField<PathCountersSnapshot>>({
    {"user_copy_bytes", &PathCountersSnapshot::user_copy_bytes},
    {"sg_copy_bytes", &PathCountersSnapshot::sg_copy_bytes},
    {"zero_copy_bytes", &PathCountersSnapshot::zero_copy_bytes},
});

struct ModeCountersSnapshot {
    std::uint64_t requested_commands = 0; // commands issued asking for this mode
    std::uint64_t requested_bytes = 0;
    std::uint64_t done_commands = 0; // commands the driver really did in this mode
    std::uint64_t done_bytes = 0;
    std::uint64_t fallback_commands = 0; // asked for this mode, driver did indirect (or mixed)
    std::uint64_t fallback_bytes = 0;
};
// .stats keys "<mode>.<key>" (indirect, direct, mmap).
inline constexpr auto mode_counter_fields = std::to_array<CounterField<ModeCountersSnapshot>>({
    {"requested_commands", &ModeCountersSnapshot::requested_commands},
    {"requested_bytes", &ModeCountersSnapshot::requested_bytes},
    {"done_commands", &ModeCountersSnapshot::done_commands},
    {"done_bytes", &ModeCountersSnapshot::done_bytes},
    {"fallback_commands", &ModeCountersSnapshot::fallback_commands},
    {"fallback_bytes", &ModeCountersSnapshot::fallback_bytes},
});

// Commands in flight on the device, seen as each command is queued: how many of this
// device's commands were outstanding then (queued and not yet reaped by sgfs), itself
// included, summed over the commands (mean = sum / commands) and in a histogram; `max` is the
// most ever seen. A device that sgfs keeps busy shows a mean near queue_depth; a mean of 1
// is one command at a time, whatever the callers sent.
struct InFlightSnapshot {
    std::uint64_t commands = 0; // queued
    std::uint64_t sum = 0;      // of the counts at queueing
    std::uint64_t at_1 = 0;     // commands queued with nothing else outstanding
    std::uint64_t at_2 = 0;
    std::uint64_t at_3_4 = 0;
    std::uint64_t at_5_8 = 0;
    std::uint64_t above_8 = 0;
    std::uint64_t max = 0; // not in the table below: a maximum, never summed

    // The mean in hundredths, rounded: 250 for 2.5; 0 before any command.
    std::uint64_t mean_hundredths() const
    {
        return commands == 0 ? 0 : (sum * 100 + commands / 2) / commands;
    }
};
// .stats keys "in_flight.<key>", then in_flight.max and in_flight.mean.
inline constexpr auto in_flight_counter_fields = std::to_array<CounterField<InFlightSnapshot>>({
    {"commands", &InFlightSnapshot::commands},
    {"sum", &InFlightSnapshot::sum},
    {"at_1", &InFlightSnapshot::at_1},
    {"at_2", &InFlightSnapshot::at_2},
    {"at_3_4", &InFlightSnapshot::at_3_4},
    {"at_5_8", &InFlightSnapshot::at_5_8},
    {"above_8", &InFlightSnapshot::above_8},
});

// One path of a disk reached through several sg nodes of one logical unit (core/reattach.hpp).
struct DevicePathSnapshot {
    std::string sg_path;         // "/dev/sg3", where the path is or was last
    std::string hctl;            // "2:0:0:1"
    std::string state;           // "active" (IO goes here), "standby" or "lost"
    std::string device_state;    // the SCSI device's sysfs state, as for the disk
    std::uint64_t commands = 0;  // commands sent through it
    std::uint64_t failovers = 0; // times it was lost while in use and another path took over
};

// Write-behind (Disk::pwrite with WriteMode::behind, core/engine_write_behind.cpp): writes
// acknowledged once their commands were queued, and the failures of those commands, which
// their file reports later (at its next write, fsync or close). `max_in_flight` is the most
// such writes outstanding at once (each holds up to queue_depth channels).
struct WriteBehindSnapshot {
    std::uint64_t writes = 0;          // acknowledged before they completed
    std::uint64_t bytes = 0;           // their bytes
    std::uint64_t deferred_errors = 0; // of those, failed: left for their file to report
    std::uint64_t max_in_flight = 0;   // not in the table below: a maximum, never summed
};
// .stats keys "write_behind.<key>", then write_behind.max_in_flight.
inline constexpr auto write_behind_counter_fields =
    std::to_array<CounterField<WriteBehindSnapshot>>({
        {"writes", &WriteBehindSnapshot::writes},
        {"bytes", &WriteBehindSnapshot::bytes},
        {"deferred_errors", &WriteBehindSnapshot::deferred_errors},
    });

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
    // Its paths, the first one the file is named after; empty for a disk without the
    // wrapper. .stats keys "paths" (the count), then "path<N>.<key>" for each.
    std::vector<DevicePathSnapshot> device_paths;
    std::array<ModeCountersSnapshot, transfer_mode_count> modes{};
    std::array<PathCountersSnapshot, data_path_count> paths{};
    std::uint64_t retries = 0;
    std::uint64_t user_copy_bytes = 0;     // every path's user_copy_bytes
    std::uint64_t zero_copy_bytes = 0;     // every path's zero_copy_bytes
    std::uint64_t readahead_bytes = 0;     // read ahead on spare fds
    std::uint64_t readahead_hit_bytes = 0; // of those, answered a read
    // CAPACITY DATA HAS CHANGED unit attentions (06/2A/09) any command met, and the capacity
    // rereads that found a new size (core/engine_capacity.cpp). A reread after an attention
    // that finds the same size counts only the attention.
    std::uint64_t capacity_attentions = 0;
    std::uint64_t capacity_changes = 0;
    std::array<std::uint64_t, error_category_count> errors{};
    ZeroCountersSnapshot zero;
    OffloadCountersSnapshot offload;
    InFlightSnapshot in_flight;
    WriteBehindSnapshot write_behind;

    // Adds other's counters to these (a disk's history across reattaches); the path fields
    // (state, device_state, gone_reason, path_losses, reattaches, device_paths) are left as
    // they are.
    void add_counters(const DeviceStatsSnapshot &other);
    // "key value" pairs, keys like "mmap.requested_commands", "read.zero_copy_bytes",
    // "errors.medium_error".
    std::vector<std::pair<std::string, std::string>> fields() const;
};

// The device's own counters, .stats keys as they are. The sums over the paths
// (user_copy_bytes, zero_copy_bytes) are never counted here: DeviceStats::snapshot adds them
// up from the paths; they are rows so that sums and .stats treat them like the rest.
inline constexpr auto device_counter_fields = std::to_array<CounterField<DeviceStatsSnapshot>>({
    {"retries", &DeviceStatsSnapshot::retries},
    {"user_copy_bytes", &DeviceStatsSnapshot::user_copy_bytes},
    {"zero_copy_bytes", &DeviceStatsSnapshot::zero_copy_bytes},
    {"readahead_bytes", &DeviceStatsSnapshot::readahead_bytes},
    {"readahead_hit_bytes", &DeviceStatsSnapshot::readahead_hit_bytes},
    {"capacity_attentions", &DeviceStatsSnapshot::capacity_attentions},
    {"capacity_changes", &DeviceStatsSnapshot::capacity_changes},
});

// The live side of one counter group: one atomic per row of its table, in the table's
// order. add<&Group::field>(n) finds the row at compile time (a member missing from the
// table does not compile).
template <const auto &Fields> class CounterSet
{
  public:
    using Group = typename std::remove_cvref_t<decltype(Fields)>::value_type::group_type;

    template <std::uint64_t Group::*Member> void add(std::uint64_t n)
    {
        constexpr std::size_t index = index_of(Member);
        values_[index].fetch_add(n, std::memory_order_relaxed);
    }
    template <std::uint64_t Group::*Member> std::uint64_t value() const
    {
        constexpr std::size_t index = index_of(Member);
        return values_[index].load(std::memory_order_acquire);
    }
    // Copies every counter into its field of `to`; fields outside the table are left alone.
    void load_into(Group &to) const
    {
        for (std::size_t i = 0; i < Fields.size(); ++i)
            to.*Fields[i].member = values_[i].load(std::memory_order_relaxed);
    }

  private:
    static constexpr std::size_t index_of(std::uint64_t Group::*member)
    {
        for (std::size_t i = 0; i < Fields.size(); ++i)
            if (Fields[i].member == member)
                return i;
        throw "counter missing from its table";
    }
    std::array<std::atomic<std::uint64_t>, Fields.size()> values_{};
};

class DeviceStats
{
  public:
    // A data command that completed. `staged`: sgfs copies its data in user space (to or
    // from an mmap area or a bounce buffer), see PathCountersSnapshot.
    void count_command(DataPath path, TransferMode requested, TransferMode done,
                       std::uint64_t bytes, bool staged);
    void count_retry() { device_.add<&DeviceStatsSnapshot::retries>(1); }
    // A copy of part of a block (unaligned head or tail), outside any command's count.
    void count_partial_copy(DataPath path, std::uint64_t bytes);
    void count_readahead_submitted(std::uint64_t bytes)
    {
        device_.add<&DeviceStatsSnapshot::readahead_bytes>(bytes);
    }
    void count_readahead_hit(std::uint64_t bytes)
    {
        device_.add<&DeviceStatsSnapshot::readahead_hit_bytes>(bytes);
    }
    void count_error(ErrorCategory category);
    // A command met CAPACITY DATA HAS CHANGED (the command loop counts it); the engine
    // rereads the capacity when this count is ahead of the attentions it has handled.
    void count_capacity_attention() { device_.add<&DeviceStatsSnapshot::capacity_attentions>(1); }
    std::uint64_t capacity_attentions() const
    {
        return device_.value<&DeviceStatsSnapshot::capacity_attentions>();
    }
    // A capacity reread found a new size.
    void count_capacity_change() { device_.add<&DeviceStatsSnapshot::capacity_changes>(1); }
    // One zeroing command (or, for host_write, a zero buffer written) covering `bytes`.
    void count_zeroing(ZeroKind kind, std::uint64_t bytes);
    void count_zeroing_fallback() { zero_.add<&ZeroCountersSnapshot::fallbacks>(1); }
    // One UNMAP command whose descriptors cover `bytes`.
    void count_unmap(std::uint64_t bytes)
    {
        zero_.add<&ZeroCountersSnapshot::unmap_commands>(1);
        zero_.add<&ZeroCountersSnapshot::unmap_bytes>(bytes);
    }
    void count_lba_status_query() { zero_.add<&ZeroCountersSnapshot::lba_status_queries>(1); }
    void count_verify_read(std::uint64_t bytes)
    {
        zero_.add<&ZeroCountersSnapshot::verify_read_bytes>(bytes);
    }
    void count_copy_hole(std::uint64_t bytes)
    {
        zero_.add<&ZeroCountersSnapshot::copy_hole_bytes>(bytes);
    }
    // One EXTENDED COPY that copied `bytes`.
    void count_offload(std::uint64_t bytes)
    {
        offload_.add<&OffloadCountersSnapshot::commands>(1);
        offload_.add<&OffloadCountersSnapshot::bytes>(bytes);
    }
    void count_offload_refusal(OffloadRefusal reason);
    void count_offload_fallback(std::uint64_t bytes)
    {
        offload_.add<&OffloadCountersSnapshot::fallback_bytes>(bytes);
    }
    // Around every command queued on the device (InFlightChannel, core/command_loop.hpp).
    // Counted before the command is queued, so that the count it sees includes itself and
    // every command queued before it that is not yet over, and released only after it was
    // reaped: at any moment the count is at least what the device has outstanding.
    // count_queueing() returns the count with this command; count_queued() records it once
    // the command is queued; count_queue_failed() when it was not (never in flight).
    std::uint64_t count_queueing()
    {
        return in_flight_now_.fetch_add(1, std::memory_order_relaxed) + 1;
    }
    void count_queued(std::uint64_t outstanding);
    void count_queue_failed() { in_flight_now_.fetch_sub(1, std::memory_order_relaxed); }
    void count_reaped() { in_flight_now_.fetch_sub(1, std::memory_order_relaxed); }
    // A write acknowledged behind of `bytes`, with `outstanding` such writes (itself
    // included) not yet complete.
    void count_write_behind(std::uint64_t bytes, std::uint64_t outstanding);
    // A write acknowledged behind that failed: its file reports the failure later.
    void count_deferred_error() { write_behind_.add<&WriteBehindSnapshot::deferred_errors>(1); }
    DeviceStatsSnapshot snapshot() const;

  private:
    std::array<CounterSet<mode_counter_fields>, transfer_mode_count> modes_{};
    std::array<CounterSet<path_counter_fields>, data_path_count> paths_{};
    CounterSet<device_counter_fields> device_{};
    std::array<std::atomic<std::uint64_t>, error_category_count> errors_{};
    CounterSet<zero_counter_fields> zero_{};
    CounterSet<offload_counter_fields> offload_{};
    CounterSet<in_flight_counter_fields> in_flight_{};
    std::atomic<std::uint64_t> in_flight_now_{0}; // being queued or queued, not yet reaped
    std::atomic<std::uint64_t> in_flight_max_{0};
    CounterSet<write_behind_counter_fields> write_behind_{};
    std::atomic<std::uint64_t> write_behind_max_{0};
};

} // namespace sgfs
