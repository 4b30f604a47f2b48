// Sequential read-ahead: while the caller copies one reply out, the next windows are
// already being read on their own sg fds (asynchronous write()/read() on each), so the
// disk never waits for FUSE. Reads of a window that was read ahead are answered from the
// slot's memory without a copy.
//
// Lock order: the caller's RangeLock (writes) before mutex_. The mutex is never held
// across a blocking read() of a completion.
#pragma once

#include "sgfs/disk.hpp"
#include "slot.hpp"

#include <cstdint>
#include <mutex>
#include <vector>

namespace sgfs
{

struct ReadaheadConfig {
    std::uint32_t block_size = 512;
    std::uint32_t max_blocks = 1; // one window is at most one command
    TransferMode mode = TransferMode::indirect;
    unsigned timeout_ms = 60000;
    DeviceStats *stats = nullptr;
};

class Readahead
{
  public:
    Readahead() = default;
    Readahead(const Readahead &) = delete;
    Readahead &operator=(const Readahead &) = delete;
    ~Readahead();

    void configure(std::vector<std::unique_ptr<Slot>> slots, const ReadaheadConfig &config);
    bool enabled() const { return !slots_.empty(); }

    // Serves [lba, lba + blocks) if windows read ahead cover exactly that range: consume()
    // gets their memory and its result lands in `rc`. False when they do not (or a
    // read-ahead command failed): the caller reads the normal way, which also reports
    // errors properly.
    bool serve(std::uint64_t lba, std::uint64_t blocks, const ReadConsumer &consume, int &rc);
    // After a read of [lba, lba + blocks): when it continues the previous one, queue the
    // windows that follow, up to one per slot, not past `capacity_blocks`.
    void advance(std::uint64_t lba, std::uint64_t blocks, std::uint64_t capacity_blocks);
    // A write to [lba, lba + blocks) makes overlapping windows stale: call before the write
    // starts and again once it completed (a window read while it ran may hold either).
    void invalidate(std::uint64_t lba, std::uint64_t blocks);

  private:
    enum class State { idle, in_flight, claimed };
    struct Window {
        Slot *slot = nullptr;
        State state = State::idle;
        bool stale = false;
        std::uint64_t lba = 0;
        std::uint32_t blocks = 0;
    };

    int submit_locked(Window &window, std::uint64_t lba, std::uint32_t blocks);
    void reap_stale(std::unique_lock<std::mutex> &lock);
    Window *find_locked(std::uint64_t lba);

    ReadaheadConfig config_;
    std::vector<std::unique_ptr<Slot>> slots_;
    std::mutex mutex_;
    std::vector<Window> windows_;
    std::uint64_t stream_next_lba_ = UINT64_MAX; // where a sequential reader reads next
};

} // namespace sgfs
