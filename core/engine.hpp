// Engine: the Disk over one logical unit, reached through a Transport (channel.hpp). It owns
// the unit's channels (two pools and the read-ahead's own), its IO policy (io_policy.hpp)
// and its counters, and turns byte ranges into block commands that all run through one
// loop (command_loop.hpp). Reads, read-ahead, writes, zeroing and copies only plan block
// ranges; splitting, keeping commands in flight, retries and counting are the loop's.
// Private to core: the rest of the program sees it as a Disk (sgfs/disk.hpp).
//
// Files: engine.cpp (open, probe, channels), engine_io.cpp (reads, writes, flush),
// engine_capacity.cpp (capacity changes), engine_zero.cpp (zeroing), engine_punch.cpp (hole
// punching), engine_map.cpp (provisioning runs: GET LBA STATUS), engine_copy.cpp (copies between
// two engines), engine_offload.cpp (copies offloaded to the target's copy manager),
// engine_write_behind.cpp (writes acknowledged once queued), readahead.cpp.
//
// Lock order: RangeLock (a write's blocks) before the Readahead mutex before a Pool lease;
// never the other way. A copy takes the destination's RangeLock, then the two engines'
// pools in address order. A write acknowledged behind holds its RangeLock until its commands
// complete (the reaper thread lets it go); the write-behind mutex is taken alone.
#pragma once

#include "channel.hpp"
#include "command_loop.hpp"
#include "copy_offload_plan.hpp"
#include "io_policy.hpp"
#include "range_lock.hpp"
#include "readahead.hpp"
#include "sgfs/disk.hpp"
#include "sgfs/extent.hpp"
#include "slot.hpp"
#include "unmap_plan.hpp"
#include "zero_plan.hpp"

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace sgfs
{

inline constexpr std::size_t direct_io_alignment = 512;

// ILLEGAL REQUEST with "invalid command operation code" or "invalid field in CDB /
// parameter list" (both EOPNOTSUPP, core/sense.cpp): the device does not do this command
// this way. An LBA out of range (EINVAL) or any other error is a failure, not a refusal.
inline bool is_refusal(int rc)
{
    return rc == -EOPNOTSUPP;
}

class Engine final : public Disk
{
  public:
    // Opens the unit behind `transport` and probes it (identity, capacity, limits,
    // provisioning), then opens its channels. On failure returns -errno and one line.
    static int open(std::unique_ptr<Transport> transport, const DiskOptions &options,
                    std::unique_ptr<Engine> &out, std::string &message);

    // Waits for the writes acknowledged behind (engine_write_behind.cpp).
    ~Engine() override;
    Engine(const Engine &) = delete;
    Engine &operator=(const Engine &) = delete;

    const DiskInfo &info() const override { return info_; }
    void end_reader(ReaderId reader) override { readahead_.end_reader(reader); }
    DeviceStatsSnapshot stats() const override { return stats_.snapshot(); }
    EnginePin pin() override { return {this, {}, {}, {}}; }
    // engine_capacity.cpp: the size now, and its reread (see Disk).
    std::uint64_t capacity_bytes() const override
    {
        return capacity_bytes_.load(std::memory_order_acquire);
    }
    int refresh_capacity() override;

    // engine_copy.cpp: `wanted` bytes (already cut to both disks, not empty, the
    // destination writable: copy_range's checks) from `from` here to `to` on `target`,
    // which may be this engine. A failure part-way returns the bytes copied before it.
    // Unless it is an overlapping copy within this engine, the source's holes (map_within)
    // are not read: the destination's range is punched instead (punch_within).
    IoResult copy_to(Engine &target, std::uint64_t from, std::uint64_t to, std::uint64_t wanted);

  protected:
    IoResult read_range(void *buffer, std::size_t length, std::uint64_t offset) override
    {
        return read_bytes(DataPath::read, buffer, length, offset);
    }
    ReadView view_range(std::size_t length, std::uint64_t offset, ReaderId reader) override;
    IoResult write_range(const void *buffer, std::size_t length, std::uint64_t offset) override
    {
        return write_bytes(DataPath::write, buffer, length, offset);
    }
    IoResult write_behind_range(const void *buffer, std::size_t length, std::uint64_t offset,
                                const WriteBehind &behind) override; // engine_write_behind.cpp
    IoResult zero_within(std::uint64_t offset, std::uint64_t length,
                         ZeroAllocation allocation) override;                   // engine_zero.cpp
    IoResult punch_within(std::uint64_t offset, std::uint64_t length) override; // engine_punch.cpp
    Mapping map_within(std::uint64_t offset) override;                          // engine_map.cpp
    IoResult flush_cache() override;
    void settle_capacity() override; // engine_capacity.cpp

  private:
    Engine(const DiskOptions &options, std::unique_ptr<Transport> transport);

    // ---- engine.cpp ----
    int probe(std::string &message);
    int probe_identity(Channel &channel, std::string &message);
    int open_slots(Pool<Slot> *pool, bool map, unsigned count,
                   std::vector<std::unique_ptr<Slot>> &into, std::string &message);
    int start_readahead(std::string &message);
    Pool<Slot> &pool_for(TransferMode mode)
    {
        return mode == TransferMode::mmap ? mmap_pool_ : plain_pool_;
    }
    CommandContext context(DataPath path = DataPath::none, bool staged = false)
    {
        return {options_.timeout_seconds * 1000U, options_.retries, &stats_, path, staged};
    }
    // A failure of this unit: the message names it; ENODEV marks it gone.
    IoResult failure(IoResult result);
    IoResult failure(int error, const std::string &what)
    {
        return failure(IoResult::failure(error, what));
    }
    IoResult check_present();
    // check_present() of this source and `target`, the failure marked with its end.
    IoResult check_both_present(Engine &target);

    // ---- engine_capacity.cpp ----
    // READ CAPACITY on `channel` (leased by the caller) and the new size taken in; a new
    // logical block size marks the unit gone (-ENODEV). One reread at a time.
    int reread_capacity(Channel &channel);
    // READ CAPACITY(16), or (10) where (16) fails: the probe's and the reread's.
    int read_capacity(Channel &channel, Capacity &capacity, std::string &message);

    // ---- engine_io.cpp ----
    IoResult read_bytes(DataPath path, void *buffer, std::size_t length, std::uint64_t offset);
    IoResult write_bytes(DataPath path, const void *buffer, std::size_t length,
                         std::uint64_t offset);
    // Whole blocks between the device and `data`, split into commands of at most max_blocks_,
    // up to queue_depth of them in flight at once, each placed by the policy.
    IoResult transfer_blocks(DataPath path, bool write, std::uint64_t lba, std::uint64_t blocks,
                             std::uint8_t *data);
    IoResult transfer_batch(DataPath path, bool write, std::uint64_t lba, std::uint64_t blocks,
                            std::uint8_t *data, Placement placement);
    IoResult read_modify_write(DataPath path, std::uint64_t lba, std::uint32_t skip,
                               const std::uint8_t *data, std::uint64_t length);
    // What writes and zeroing share: the blocks held against overlapping writes, read-ahead
    // windows dropped before and after (one read ahead meanwhile may hold old or new data),
    // and the range walked as a partial head, whole blocks and a partial tail. The range is
    // inside the disk and not empty (Disk's checks).
    using PartialBlockWriter = std::function<IoResult(std::uint64_t lba, std::uint32_t skip,
                                                      std::uint64_t bytes, std::uint64_t done)>;
    using WholeBlockWriter =
        std::function<IoResult(std::uint64_t lba, std::uint64_t blocks, std::uint64_t done)>;
    IoResult write_pieces(std::uint64_t offset, std::uint64_t length,
                          const PartialBlockWriter &partial, const WholeBlockWriter &whole);
    // The walk alone, without the lock and the read-ahead drops: the pieces in order until
    // one fails; the failure's bytes count the pieces before it.
    IoResult walk_pieces(const BlockPlan &plan, std::uint64_t length,
                         const PartialBlockWriter &partial, const WholeBlockWriter &whole) const;

    // ---- engine_write_behind.cpp ----
    // Commands of one write acknowledged behind, with their channels and range lock.
    struct BehindBatch;
    // A write with a partial head or tail block: those are read-modify-write, synchronous;
    // the whole blocks between them go behind (write_behind_range).
    IoResult write_behind_partial(const void *buffer, std::size_t length, std::uint64_t offset,
                                  const WriteBehind &behind);
    // Queues whole blocks [lba, lba + blocks) (at most queue_depth commands) from `data`:
    // from `data` itself where `kept` keeps it (and the placement is the caller's memory),
    // else copied into `placement`'s memory; returns once queued. The reaper completes them,
    // reports to behind.pending, and lets `kept` go. Waits for overlapping writes and for
    // free channels. A batch that cannot be queued completes here: its failure is returned.
    IoResult queue_behind(std::uint64_t lba, std::uint64_t blocks, const std::uint8_t *data,
                          Placement placement, const WriteBehind &behind,
                          const std::shared_ptr<const void> &kept);
    // Finishes every command of `batch`, lets its channels go and drops read-ahead over its
    // blocks; the bytes before the first failure, or the failure.
    IoResult complete_batch(BehindBatch &batch);
    // The reaper thread: completes batches oldest first until the engine goes.
    void reap_behind(const std::shared_ptr<std::atomic<bool>> &alive);
    // Completes the oldest batch and reports it; returns what it held alive, for the caller
    // to let go (it may be this engine).
    std::shared_ptr<const void> complete_oldest();
    // Waits while a write acknowledged behind over [lba, lba + blocks) is in flight (all
    // of them when `blocks` is 0): what a read or a flush sees must include them.
    void wait_for_writes_behind(std::uint64_t lba = 0, std::uint64_t blocks = 0);

    // ---- engine_zero.cpp ----
    // Reads VPD B2 (when listed) into info_.provisioning, with what READ CAPACITY(16) and
    // VPD B0 said, and derives the zeroing means.
    void probe_provisioning(Channel &channel, const Capacity &capacity, const BlockLimits &limits,
                            bool has_b2_page);
    ZeroMeans current_zero_means() const;
    // When whole granules get WRITE SAME with the UNMAP bit (as long as the device takes it).
    enum class UnmapBit {
        where_it_reads_zero, // LBPME, LBPWS and LBPRZ: zero_means()
        always,              // whatever LBPRZ says: a hole punch, which checks afterwards
        never,               // ZeroAllocation::keep
    };
    // Whole blocks by the plan; a command the device refuses is remembered, counted as a
    // fallback, and the rest of the range (from the refused step on) planned again
    // without it.
    IoResult zero_blocks(std::uint64_t lba, std::uint64_t blocks,
                         UnmapBit unmap = UnmapBit::where_it_reads_zero);
    IoResult run_zero_command(const ZeroStep &step);
    IoResult write_zero_blocks(std::uint64_t lba, std::uint64_t blocks);
    // Zero bytes into part of one block (read-modify-write), counted as host zeroing.
    IoResult zero_partial_block(std::uint64_t lba, std::uint32_t skip, std::uint64_t bytes);
    // What zeroing and hole punching share: write_pieces with partial blocks zeroed and
    // whole blocks handed to `whole`; the bytes are `length` when it all worked.
    IoResult
    zero_pieces(std::uint64_t offset, std::uint64_t length,
                const std::function<IoResult(std::uint64_t lba, std::uint64_t blocks)> &whole);

    // ---- engine_punch.cpp ----
    PunchMeans current_punch_means() const;
    // Whole blocks by the punch plan (unmap_plan.hpp).
    IoResult punch_blocks(std::uint64_t lba, std::uint64_t blocks);
    // Whole granules deallocated, then made to read zero where they do not.
    IoResult deallocate_blocks(std::uint64_t lba, std::uint64_t blocks);
    // UNMAP by the plan; `unmapped` is where the commands that worked end (a refusal stops
    // them: remembered and counted as a fallback, the caller zeroes the rest).
    IoResult unmap_blocks(std::uint64_t lba, std::uint64_t blocks, std::uint64_t &unmapped);
    IoResult run_unmap(std::span<const UnmapRange> ranges);
    // The checks after a deallocation: GET LBA STATUS (LBPRZ=1) or a read back (LBPRZ=0);
    // whatever may not read zero is zeroed.
    IoResult zero_still_mapped(std::uint64_t lba, std::uint64_t blocks);
    IoResult zero_not_reading_zero(std::uint64_t lba, std::uint64_t blocks);

    // ---- engine_map.cpp ----
    // One GET LBA STATUS from `lba`, counted. A refusal (-EOPNOTSUPP, returned as it is) is
    // remembered: lba_status_refused_ then answers without asking again.
    IoResult lba_status(std::uint64_t lba, std::vector<LbaStatus> &out);

    // ---- engine_copy.cpp ----
    // copy_to without looking for holes.
    IoResult dense_copy_to(Engine &target, std::uint64_t from, std::uint64_t to,
                           std::uint64_t wanted);
    struct CopyStage;
    IoResult staged_copy_to(Engine &target, std::uint64_t from, std::uint64_t to,
                            std::uint64_t length);
    // These return, in bytes, the blocks copied in the order the chunks go, before the
    // first chunk that failed.
    IoResult pipelined_copy_to(Engine &target, std::uint64_t source_lba,
                               std::uint64_t destination_lba, std::uint64_t blocks, bool backwards);
    IoResult copy_turn(Engine &target, std::span<const CopyStage> chunks);
    IoResult run_copy_stages(Engine &target, std::span<CopyStage> stages,
                             std::span<const CopyStage> chunks, const CopyPlacement &placement);

    // ---- engine_offload.cpp ----
    struct OffloadOutcome;
    // After the identity probe: 3PC, the LU's NAA designator and, with 3PC, the copy
    // manager's operating parameters (a copy manager that does not answer: no offload).
    void probe_copy_offload(Channel &channel, bool three_party_copy,
                            std::span<const Designator> designators);
    bool may_offload_to(const Engine &target, std::uint64_t source_lba,
                        std::uint64_t destination_lba, std::uint64_t blocks) const;
    // Whole blocks, as pipelined_copy_to: offloaded while the copy manager takes them; a
    // refusal sends the rest the pipelined way, the blocks already offloaded kept.
    IoResult copy_blocks_to(Engine &target, std::uint64_t source_lba, std::uint64_t destination_lba,
                            std::uint64_t blocks, bool backwards);
    OffloadOutcome offload_copy_to(Engine &target, const OffloadPlan &plan);
    OffloadOutcome run_offload_turn(Engine &target, std::span<const OffloadCommand> commands);
    std::vector<std::uint8_t> offload_parameters(const Engine &target,
                                                 const OffloadCommand &command);

    DiskOptions options_;
    std::unique_ptr<Transport> transport_;
    DiskInfo info_;
    IoPolicy policy_;
    std::uint32_t max_blocks_ = 1;
    DeviceStats stats_;
    std::vector<std::unique_ptr<Slot>> slots_;
    Pool<Slot> plain_pool_; // indirect and direct IO
    Pool<Slot> mmap_pool_;  // mmap IO only: an indirect command would take the reserve buffer
    RangeLock write_ranges_;
    Readahead readahead_;
    std::atomic<bool> gone_{false};
    // The size now: info_.capacity_bytes is the probe's. A reread (reread_capacity) stores
    // a new one; readers anywhere load it (Disk's bounds, read-ahead, map_within).
    std::atomic<std::uint64_t> capacity_bytes_{0};
    // DeviceStats capacity_attentions already answered by a reread.
    std::atomic<std::uint64_t> capacity_attentions_handled_{0};
    std::mutex capacity_mutex_; // one reread at a time; taken holding a lease, nothing after
    ZeroMeans zero_means_;      // as probed; the refusals below take means away
    std::atomic<bool> write_same_unmap_refused_{false};
    std::atomic<bool> write_same_refused_{false};
    std::atomic<bool> unmap_refused_{false};
    std::atomic<bool> lba_status_refused_{false};
    std::optional<OffloadLimits> offload_limits_;  // the copy manager's, as probed
    std::optional<Designator> copy_designator_;    // the NAA designator CSCDs name this LU by
    std::atomic<bool> offload_unsupported_{false}; // EXTENDED COPY was an invalid opcode
    std::atomic<unsigned> next_list_id_{0};        // LIST IDENTIFIER when SNLID is not set

    // Write-behind: batches queued, oldest first (the front is the one being reaped), and
    // the thread that reaps them, started with the first.
    std::mutex behind_mutex_;
    std::condition_variable behind_changed_;
    std::deque<std::shared_ptr<BehindBatch>> behind_queue_;
    std::atomic<std::size_t> behind_queued_{0}; // behind_queue_.size(), read without the mutex
    bool behind_stopping_ = false;
    std::thread behind_reaper_;
    // False once the engine went on its reaper thread (its last holder was a batch).
    std::shared_ptr<std::atomic<bool>> behind_alive_ = std::make_shared<std::atomic<bool>>(true);
};

} // namespace sgfs
