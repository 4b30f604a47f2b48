// SgDisk: the Disk over one sg node (probing, the fd pools, the IO policy, splitting,
// read-ahead, read-modify-write, and copies between two sg disks). Private to core: the
// rest of the program sees it only as a Disk (sgfs/disk.hpp).
// Lock order: RangeLock (a write's blocks) before the Readahead mutex before a Pool lease
// before last_error_mutex_; never the other way. A copy takes the destination's RangeLock,
// then the two disks' pools in address order.
#pragma once

#include "io_policy.hpp"
#include "range_lock.hpp"
#include "readahead.hpp"
#include "sg_ll.hpp"
#include "sgfs/disk.hpp"
#include "slot.hpp"
#include "zero_plan.hpp"

#include <atomic>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace sgfs
{

inline constexpr std::size_t direct_io_alignment = 512;

class SgDisk final : public Disk
{
  public:
    explicit SgDisk(const DiskOptions &options) : options_(options) {}
    int probe(const std::string &sg_path, std::string &message);

    const DiskInfo &info() const override { return info_; }
    ssize_t pread(void *buffer, std::size_t length, std::uint64_t offset) override
    {
        return read_bytes(DataPath::read, buffer, length, offset);
    }
    ssize_t read_view(std::size_t length, std::uint64_t offset, ReaderId reader,
                      const ReadConsumer &consume, bool &consumed) override;
    void end_reader(ReaderId reader) override { readahead_.end_reader(reader); }
    ssize_t pwrite(const void *buffer, std::size_t length, std::uint64_t offset) override
    {
        return write_bytes(DataPath::write, buffer, length, offset);
    }
    ssize_t copy_range(std::uint64_t from, Disk &destination, std::uint64_t to, std::size_t length,
                       CopyEnd &failed) override;
    int zero_range(std::uint64_t offset, std::uint64_t length) override; // sg_disk_zero.cpp
    int flush() override;
    DeviceStatsSnapshot stats() const override { return stats_.snapshot(); }
    std::string last_error() const override
    {
        std::lock_guard lock(last_error_mutex_);
        return last_error_;
    }

  private:
    // What a copy's two commands do with a chunk: where the read puts it and how the
    // write takes it from there (see copy_modes()).
    struct CopyModes {
        TransferMode read = TransferMode::indirect;
        TransferMode write = TransferMode::indirect;
    };
    // One chunk of a pipelined copy: read on `reader` into its memory, written from that
    // same memory on `writer`.
    struct CopyStage {
        Slot *reader = nullptr;
        Slot *writer = nullptr;
        std::uint64_t source_lba = 0, destination_lba = 0;
        std::uint32_t blocks = 0;
        std::size_t chunk = 0; // index into the copy's chunks
        bool reading = false, writing = false;
    };

    // pread and pwrite, counted under `path`.
    ssize_t read_bytes(DataPath path, void *buffer, std::size_t length, std::uint64_t offset);
    ssize_t write_bytes(DataPath path, const void *buffer, std::size_t length,
                        std::uint64_t offset);
    // What write_bytes and zero_range share: the read-only and end-of-disk checks (`what`
    // names the operation in the message), the blocks held against overlapping writes, and
    // read-ahead windows dropped before and after (one read ahead meanwhile may hold old or
    // new data). `partial` and `whole` write the pieces, as for_each_piece calls them;
    // `wanted` is the bytes within the disk. Returns 0 or -errno.
    using PartialBlockWriter = std::function<int(std::uint64_t lba, std::uint32_t skip,
                                                 std::uint64_t bytes, std::uint64_t done)>;
    using WholeBlockWriter =
        std::function<int(std::uint64_t lba, std::uint64_t blocks, std::uint64_t done)>;
    int write_pieces(const char *what, std::uint64_t offset, std::uint64_t length,
                     std::uint64_t &wanted, const PartialBlockWriter &partial,
                     const WholeBlockWriter &whole);
    CopyModes copy_modes() const;
    int staged_copy_to(SgDisk &target, std::uint64_t from, std::uint64_t to, std::uint64_t length,
                       CopyEnd &failed);
    // These three count in `blocks_done` the blocks copied, in the order the chunks go,
    // before the first chunk that failed.
    int pipelined_copy_to(SgDisk &target, std::uint64_t source_lba, std::uint64_t destination_lba,
                          std::uint64_t blocks, bool backwards, CopyEnd &failed,
                          std::uint64_t &blocks_done);
    int copy_turn(SgDisk &target, std::span<const CopyStage> chunks, CopyModes modes,
                  CopyEnd &failed, std::uint64_t &blocks_done);
    int run_copy_stages(SgDisk &target, std::span<CopyStage> stages,
                        std::span<const CopyStage> chunks, CopyModes modes, CopyEnd &failed,
                        std::uint64_t &blocks_done);
    int start_copy_command(SgDisk &owner, Slot &slot, const CopyStage &chunk, bool write,
                           TransferMode mode, std::uint8_t *data);
    int finish_copy_command(SgDisk &owner, Slot &slot, const CopyStage &chunk, bool write,
                            TransferMode mode, std::uint8_t *data);
    int make_slot(bool mmap, std::unique_ptr<Slot> &out, std::string &message);
    int open_slot(Pool<Slot> &pool, bool mmap, std::string &message);
    int start_readahead(std::string &message);
    int read_chunks_in_flight(std::uint64_t lba, std::uint64_t blocks,
                              std::vector<Pool<Slot>::Lease> &leases, TransferMode mode,
                              std::vector<iovec> &pieces);
    int probe_identity(const SgFd &fd, std::string &message);
    // sg_disk_zero.cpp: reads VPD B2 (when listed) into info_.provisioning, with what READ
    // CAPACITY(16) and VPD B0 said, and derives the zeroing means.
    void probe_provisioning(const SgFd &fd, const Capacity &capacity, const BlockLimits &limits,
                            bool has_b2_page);
    ZeroMeans current_zero_means() const;
    // Whole blocks by the plan; a command the device refuses is remembered, counted as a
    // fallback, and the rest of the range (from the refused step on) planned again
    // without it.
    int zero_blocks(std::uint64_t lba, std::uint64_t blocks);
    int run_zero_command(const ZeroStep &step);
    int write_zero_blocks(std::uint64_t lba, std::uint64_t blocks);
    // `path` only says what the data is for, in the per-path counts.
    int transfer_blocks(DataPath path, bool write, std::uint64_t lba, std::uint64_t blocks,
                        std::uint8_t *data);
    int transfer_chunk(DataPath path, bool write, std::uint64_t lba, std::uint32_t blocks,
                       std::uint8_t *data);
    int read_modify_write(DataPath path, std::uint64_t lba, std::uint32_t skip,
                          const std::uint8_t *data, std::uint64_t length);
    int fail(int rc, const std::string &message);
    CommandContext context(DataPath path = DataPath::none, bool staged = false)
    {
        return {options_.timeout_seconds * 1000U, options_.retries, &stats_, path, staged};
    }

    DiskOptions options_;
    DiskInfo info_;
    IoPolicy policy_;
    std::uint32_t max_blocks_ = 1;
    DeviceStats stats_;
    std::vector<std::unique_ptr<Slot>> slots_;
    Pool<Slot> copy_pool_; // indirect and direct IO
    Pool<Slot> mmap_pool_; // mmap IO only: an indirect command would take the reserve buffer
    RangeLock write_ranges_;
    Readahead readahead_;
    std::atomic<bool> gone_{false};
    ZeroMeans zero_means_; // as probed; the refusals below take means away
    std::atomic<bool> write_same_unmap_refused_{false};
    std::atomic<bool> write_same_refused_{false};
    mutable std::mutex last_error_mutex_;
    std::string last_error_;
};

} // namespace sgfs
