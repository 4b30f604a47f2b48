#include "readahead.hpp"

#include <algorithm>
#include <sys/uio.h>

namespace sgfs
{

Readahead::~Readahead()
{
    // Commands still queued complete into slots we are about to free: collect them first.
    for (Window &window : windows_)
        if (window.state == State::in_flight) {
            SgCompletion ignored;
            window.slot->fd->reap(ignored);
        }
}

void Readahead::configure(std::vector<std::unique_ptr<Slot>> slots, const ReadaheadConfig &config)
{
    config_ = config;
    slots_ = std::move(slots);
    windows_.clear();
    for (auto &slot : slots_)
        windows_.push_back(Window{slot.get()});
}

Readahead::Window *Readahead::find_locked(std::uint64_t lba)
{
    for (Window &window : windows_)
        if (window.state == State::in_flight && !window.stale && window.lba == lba)
            return &window;
    return nullptr;
}

bool Readahead::serve(std::uint64_t lba, std::uint64_t blocks, const ReadConsumer &consume, int &rc)
{
    std::vector<Window *> claimed;
    {
        std::lock_guard lock(mutex_);
        std::uint64_t at = lba;
        while (at < lba + blocks) {
            Window *window = find_locked(at);
            if (window == nullptr || at + window->blocks > lba + blocks)
                return false;
            claimed.push_back(window);
            at += window->blocks;
        }
        for (Window *window : claimed)
            window->state = State::claimed;
    }

    bool all_good = true;
    std::vector<iovec> pieces;
    for (Window *window : claimed) {
        SgCompletion done;
        const std::size_t bytes = std::size_t{window->blocks} * config_.block_size;
        if (window->slot->fd->reap(done) != 0 || !done.outcome.ok() || done.residual != 0) {
            all_good = false;
            continue;
        }
        if (config_.stats != nullptr)
            config_.stats->count_command(DataPath::read, config_.mode, done.done_mode, bytes,
                                         false);
        pieces.push_back({window->slot->staging(config_.mode), bytes});
    }
    if (all_good) {
        if (config_.stats != nullptr)
            config_.stats->count_readahead_hit(blocks * config_.block_size);
        rc = consume(pieces);
    }
    std::lock_guard lock(mutex_);
    for (Window *window : claimed) {
        window->state = State::idle;
        window->stale = false;
    }
    return all_good;
}

int Readahead::submit_locked(Window &window, std::uint64_t lba, std::uint32_t blocks)
{
    const std::size_t bytes = std::size_t{blocks} * config_.block_size;
    SgRequest request;
    request.cdb = cdb_read(lba, blocks, false);
    request.direction = DataDirection::from_device;
    request.buffer = window.slot->staging(config_.mode);
    request.length = bytes;
    request.mode = config_.mode;
    request.timeout_ms = config_.timeout_ms;
    // Submitted under the mutex: a reader that finds the window in flight may block in
    // read(), which must never happen before the command is queued.
    if (int rc = window.slot->fd->submit(request); rc != 0)
        return rc;
    window.state = State::in_flight;
    window.stale = false;
    window.lba = lba;
    window.blocks = blocks;
    return 0;
}

void Readahead::reap_stale(std::unique_lock<std::mutex> &lock)
{
    std::vector<Window *> stale;
    for (Window &window : windows_)
        if (window.state == State::in_flight && window.stale) {
            window.state = State::claimed;
            stale.push_back(&window);
        }
    if (stale.empty())
        return;
    lock.unlock();
    for (Window *window : stale) {
        SgCompletion ignored;
        window->slot->fd->reap(ignored);
    }
    lock.lock();
    for (Window *window : stale) {
        window->state = State::idle;
        window->stale = false;
    }
}

void Readahead::advance(std::uint64_t lba, std::uint64_t blocks, std::uint64_t capacity_blocks)
{
    std::unique_lock lock(mutex_);
    const bool sequential = lba == stream_next_lba_;
    stream_next_lba_ = lba + blocks;
    if (!sequential)
        return;
    // Windows that end before this request starts will never be asked for: recycle them.
    // The ones covering this request stay, serve() is about to claim them.
    for (Window &window : windows_)
        if (window.state == State::in_flight && window.lba + window.blocks <= lba)
            window.stale = true;
    reap_stale(lock);

    const auto window_blocks =
        static_cast<std::uint32_t>(std::min<std::uint64_t>(blocks, config_.max_blocks));
    std::uint64_t next = stream_next_lba_;
    for (Window &window : windows_)
        if (window.state != State::idle && !window.stale)
            next = std::max<std::uint64_t>(next, window.lba + window.blocks);
    for (Window &window : windows_) {
        if (window.state != State::idle || next >= capacity_blocks)
            continue;
        const auto count = static_cast<std::uint32_t>(
            std::min<std::uint64_t>(window_blocks, capacity_blocks - next));
        if (submit_locked(window, next, count) != 0)
            break;
        if (config_.stats != nullptr)
            config_.stats->count_readahead_submitted(std::uint64_t{count} * config_.block_size);
        next += count;
    }
}

void Readahead::invalidate(std::uint64_t lba, std::uint64_t blocks)
{
    std::lock_guard lock(mutex_);
    for (Window &window : windows_)
        if (window.state != State::idle && window.lba < lba + blocks &&
            lba < window.lba + window.blocks)
            window.stale = true;
}

} // namespace sgfs
