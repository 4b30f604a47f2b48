// Sequential read-ahead: while the caller copies one reply out, the next windows are
// already being read on their own sg fds (asynchronous write()/read() on each), so the
// disk never waits for FUSE. A window holds one command's worth of blocks; windows grow
// from a few requests' worth to the largest command (readahead_window.hpp), a read is
// answered from any part of one window or from two neighbours, without a copy, and a
// window is read again further ahead once its stream's reader has passed it: as soon as the
// view that served it is gone (the reply is out), not only at the reader's next read. Several
// sequential readers of the disk are told apart (StreamTable); each has its own windows
// and an equal share of the fds, and a stream whose reader went quiet gives its back.
// A window belongs to the open file (ReaderId) it was read for and answers only that
// file's reads, so no read returns data read from the disk before its file was opened;
// end_reader() drops them when the file is released. (What a file's own windows hold can
// still be older than another writer's write to the disk while it stays open: disks
// shared with other writers want `noreadahead`.)
//
// Concurrency: one mutex guards the windows' state. A window's memory is only handed out
// while `users` counts the reader; it is resubmitted only with no users. Exactly one
// thread reaps a window's completion (state `reaping`), outside the mutex; others that
// need the same window wait on `reaped_`.
//
// Lock order: the caller's RangeLock (writes) before mutex_. The mutex is never held
// across a blocking read() of a completion.
#pragma once

#include "command_loop.hpp"
#include "io_policy.hpp"
#include "readahead_window.hpp"
#include "sgfs/disk.hpp"
#include "slot.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

namespace sgfs
{

struct ReadaheadConfig {
    std::uint32_t block_size = 512;
    std::uint32_t max_blocks = 1; // one window is at most one command
    Placement placement;          // where a window's data lands (never the caller's)
    // The disk's size now (the engine's, which follows capacity changes): no window goes
    // past its end. Null: no windows.
    const std::atomic<std::uint64_t> *capacity_bytes = nullptr;
    CommandContext context; // the engine's, for reads: the command loop counts there
    // Set once the device is gone (the engine's flag): a view released after that refills
    // nothing, so no command is queued on a lost device for a destructor to wait out.
    const std::atomic<bool> *device_gone = nullptr;
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

    // Before a read of the blocks `request` by `reader`: when it continues one of that
    // reader's streams (or falls in one of its windows), recycle the windows that stream's
    // reader has passed and queue the ones that follow, on the idle slots of its share,
    // not past `capacity_blocks`.
    void advance(const BlockRange &request, ReaderId reader, std::uint64_t capacity_blocks);
    // Serves the bytes [offset, offset + length) if windows read ahead for `reader` hold all
    // of them: a view of their memory, which they keep until it goes. Nothing when they do
    // not, or a read-ahead command failed: the caller reads the normal way, which also
    // reports errors properly. A failed view when a window's command timed out or found the
    // device gone: reading again would wait a second timeout for the same answer.
    std::optional<ReadView> serve(std::uint64_t offset, std::uint64_t length, ReaderId reader);
    // `reader` reads no more: its streams end and its windows are freed (a command in
    // flight is reaped first). Call with none of its reads running.
    void end_reader(ReaderId reader);
    // A write to `blocks` makes overlapping windows stale: call before the write starts and
    // again once it completed (a window read while it ran may hold either).
    void invalidate(const BlockRange &blocks);

  private:
    std::uint64_t capacity_blocks() const
    {
        return config_.capacity_bytes == nullptr
                   ? 0
                   : config_.capacity_bytes->load(std::memory_order_acquire) / config_.block_size;
    }
    enum class State { idle, in_flight, reaping, done, failed };
    struct Window {
        Slot *slot = nullptr;
        Command command;  // the read in flight, or the last one
        IoResult failure; // the last one's, when it failed
        State state = State::idle;
        bool stale = false;
        unsigned users = 0; // readers holding its memory or waiting for it
        std::size_t stream = 0;
        ReaderId reader = no_reader; // the open file it was read for; only it is served
        BlockRange range;
    };

    bool live(const Window &window) const
    {
        return window.state != State::idle && window.state != State::failed && !window.stale;
    }
    // Read for the reader that holds `stream` now, not for one that held it before.
    bool belongs(const Window &window, std::size_t stream) const
    {
        return window.stream == stream && window.reader == streams_[stream].reader;
    }
    std::uint8_t *memory(const Window &window) const
    {
        return window.slot->memory(config_.placement.home);
    }
    class ServedPin;
    int submit_locked(Window &window, std::size_t stream, const BlockRange &range);
    void recycle(std::unique_lock<std::mutex> &lock, std::size_t stream, std::uint64_t reader_lba,
                 bool restart, std::vector<BlockRange> &refill);
    void free_windows(std::unique_lock<std::mutex> &lock, const std::vector<Window *> &windows);
    void release_quiet_streams(std::unique_lock<std::mutex> &lock, std::size_t current);
    void queue_windows(std::size_t stream, std::uint64_t capacity_blocks,
                       std::vector<BlockRange> &refill);
    void reap(Window &window);
    // A served view is gone: its windows' users drop.
    void release(const std::vector<Window *> &windows);
    // After a served view's release: each stream of `windows` that goes on sequentially
    // reads further ahead at once on the windows its reader has passed, up to `served_end`
    // (the block after that view's request): a later request of the same reader may be
    // between advance() and serve(), and must still find its windows.
    void refill_after_reply(const std::vector<Window *> &windows, std::uint64_t served_end);

    ReadaheadConfig config_;
    std::vector<std::unique_ptr<Slot>> slots_;
    std::mutex mutex_;
    std::condition_variable reaped_;
    std::vector<Window> windows_;
    StreamTable streams_;
};

} // namespace sgfs
