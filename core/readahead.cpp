#include "readahead.hpp"

#include <algorithm>
#include <cerrno>
#include <sys/uio.h>

namespace sgfs
{

Readahead::~Readahead()
{
    // Commands still queued complete into slots we are about to free: collect them first.
    for (Window &window : windows_)
        if (window.state == State::in_flight)
            abandon_command(*window.slot->channel);
}

void Readahead::configure(std::vector<std::unique_ptr<Slot>> slots, const ReadaheadConfig &config)
{
    config_ = config;
    slots_ = std::move(slots);
    windows_.clear();
    for (auto &slot : slots_) {
        Window window;
        window.slot = slot.get();
        windows_.push_back(std::move(window));
    }
    streams_ = StreamTable{};
}

int Readahead::submit_locked(Window &window, std::size_t stream, const BlockRange &range)
{
    const BlockSpan span{false, range.lba, static_cast<std::uint32_t>(range.blocks),
                         config_.block_size, false};
    window.command =
        block_command(span, memory(window), config_.placement.mode, config_.context.timeout_ms);
    // Submitted under the mutex: a reader that finds the window in flight may block in
    // read(), which must never happen before the command is queued.
    if (!start_command(*window.slot->channel, window.command).ok())
        return -EIO;
    window.state = State::in_flight;
    window.stale = false;
    window.stream = stream;
    window.reader = streams_[stream].reader;
    window.range = range;
    if (config_.context.stats != nullptr)
        config_.context.stats->count_readahead_submitted(window.command.request.length);
    return 0;
}

// Collects the completion of a window this thread set to `reaping`; called unlocked. The
// command loop retries and counts it like any read.
void Readahead::reap(Window &window)
{
    IoResult result = finish_command(*window.slot->channel, window.command, config_.context);
    std::lock_guard lock(mutex_);
    // serve() reads the failure: a timeout or a gone device fails the read, not a retry.
    window.state = result.ok() ? State::done : State::failed;
    window.failure = std::move(result);
}

// Frees the windows of `stream` nobody will ask for: stale or failed ones, those its reader
// has passed, those read for a reader that held the stream before and, when the stream
// starts again elsewhere, every one nobody is using. The part of a stale window still ahead
// of the reader goes to `refill`: a write there must not leave a hole.
void Readahead::recycle(std::unique_lock<std::mutex> &lock, std::size_t stream,
                        std::uint64_t reader_lba, bool restart, std::vector<BlockRange> &refill)
{
    std::vector<Window *> unwanted;
    for (Window &window : windows_) {
        if (window.stream != stream || window.state == State::idle || window.users != 0)
            continue;
        if (!belongs(window, stream)) {
            unwanted.push_back(&window);
            continue;
        }
        if (!restart && !window.stale && window.state != State::failed &&
            window.range.end() > reader_lba)
            continue;
        if (!restart && window.stale && window.range.end() > reader_lba) {
            const std::uint64_t from = std::max(window.range.lba, reader_lba);
            refill.push_back({from, window.range.end() - from});
        }
        unwanted.push_back(&window);
    }
    free_windows(lock, unwanted);
}

// Makes `windows` (in use by nobody) idle. A command in flight must complete before its
// slot takes another: it is reaped unlocked, the window stale meanwhile so that no reader
// waits for it.
void Readahead::free_windows(std::unique_lock<std::mutex> &lock,
                             const std::vector<Window *> &windows)
{
    std::vector<Window *> in_flight;
    in_flight.reserve(windows.size()); // push_back below cannot throw with a window half-marked
    for (Window *window : windows) {
        if (window->state == State::in_flight) {
            window->state = State::reaping;
            window->stale = true;
            ++window->users;
            in_flight.push_back(window);
        } else {
            window->state = State::idle;
        }
    }
    if (in_flight.empty())
        return;
    lock.unlock();
    for (Window *window : in_flight)
        abandon_command(*window->slot->channel);
    lock.lock();
    for (Window *window : in_flight) {
        --window->users;
        window->state = State::idle;
    }
}

// The windows of a stream whose reader has not read for this many reads of the disk go
// back to the others: dd has finished, or waits on its output.
constexpr std::uint64_t quiet_after_reads = 64;

void Readahead::release_quiet_streams(std::unique_lock<std::mutex> &lock, std::size_t current)
{
    std::vector<BlockRange> none; // a restart refills nothing
    for (std::size_t stream = 0; stream < streams_.size(); ++stream)
        if (stream != current && streams_.quiet(stream, quiet_after_reads))
            recycle(lock, stream, 0, true, none);
}

// Queues the refills, then the windows past the stream's ahead_lba, on idle slots, while the
// stream holds less than its share: the slots divided equally among the sequential streams
// still read, this one included. A stream above its share takes no slot it frees again, so
// one that started later gets its part.
void Readahead::queue_windows(std::size_t stream, std::uint64_t capacity_blocks,
                              std::vector<BlockRange> &refill)
{
    std::vector<std::size_t> held(streams_.size(), 0);
    for (const Window &window : windows_)
        if (window.state != State::idle)
            ++held[window.stream];
    std::size_t active = 0;
    for (std::size_t other = 0; other < streams_.size(); ++other)
        if (other == stream ||
            (streams_[other].sequential && !streams_.quiet(other, quiet_after_reads)))
            ++active;
    const std::size_t share = std::max<std::size_t>(1, windows_.size() / active);
    // Nearest first: the reader needs the refills before what lies past ahead_lba.
    std::sort(refill.begin(), refill.end(),
              [](const BlockRange &a, const BlockRange &b) { return a.lba < b.lba; });
    ReadStream &ahead = streams_[stream];
    for (Window &window : windows_) {
        if (held[stream] >= share)
            break;
        if (window.state != State::idle || window.users != 0)
            continue;
        if (!refill.empty()) {
            if (submit_locked(window, stream, refill.front()) != 0)
                break;
            refill.erase(refill.begin());
            ++held[stream];
            continue;
        }
        if (ahead.ahead_lba >= capacity_blocks)
            break;
        const BlockRange range{
            ahead.ahead_lba, std::min(ahead.next_window_blocks, capacity_blocks - ahead.ahead_lba)};
        if (submit_locked(window, stream, range) != 0)
            break;
        ahead.ahead_lba = range.end();
        ahead.next_window_blocks = next_window_blocks(ahead.next_window_blocks, config_.max_blocks);
        ++held[stream];
    }
}

void Readahead::advance(const BlockRange &request, ReaderId reader, std::uint64_t capacity_blocks)
{
    std::unique_lock lock(mutex_);
    // A read in one of its streams' windows continues that stream when it lands near where
    // the stream was: a reader with several reads in flight, out of order by up to a
    // window. Farther off it is the same file read at another place: a stream of its own.
    std::size_t owner = StreamTable::no_owner;
    for (const Window &window : windows_) {
        if (!live(window) || window.reader != reader || !belongs(window, window.stream) ||
            !window.range.contains(request.lba))
            continue;
        const std::uint64_t expected = streams_[window.stream].next_lba;
        const std::uint64_t distance =
            request.lba > expected ? request.lba - expected : expected - request.lba;
        if (distance <= config_.max_blocks) {
            owner = window.stream;
            break;
        }
    }
    bool sequential = false;
    const std::size_t stream = streams_.match(request, reader, owner, sequential);
    std::vector<BlockRange> refill;
    if (!sequential) {
        // This read took over the stream read least recently: what that one read ahead is
        // nobody's now. Random reads queue nothing: no read-ahead is wasted on them.
        recycle(lock, stream, request.lba, true, refill);
        return;
    }
    // Nothing of this stream read ahead lies where the reader goes (or what does is left
    // from a stream this one took over): the stream starts (again) here, with a first
    // window that holds this request too.
    const bool restart = streams_[stream].ahead_lba <= request.lba ||
                         std::none_of(windows_.begin(), windows_.end(), [&](const Window &w) {
                             return belongs(w, stream) && live(w) && w.range.end() > request.lba;
                         });
    recycle(lock, stream, request.lba, restart, refill);
    release_quiet_streams(lock, stream);
    if (restart) {
        streams_[stream].ahead_lba = request.lba;
        streams_[stream].next_window_blocks =
            first_window_blocks(request.blocks, config_.max_blocks);
    }
    queue_windows(stream, capacity_blocks, refill);
}

// The windows a view's pieces lie in: their users count drops when the view goes.
class Readahead::ServedPin final : public ReadView::Pin
{
  public:
    ServedPin(Readahead &owner, std::vector<Window *> windows, std::uint64_t served_end)
        : owner_(owner), windows_(std::move(windows)), served_end_(served_end)
    {
    }
    ~ServedPin() override
    {
        owner_.release(windows_);
        // Read-ahead only saves time: whatever fails here (no memory for its lists), nothing
        // more is queued, and the next read queues again.
        try {
            owner_.refill_after_reply(windows_, served_end_);
        } catch (...) { // NOLINT(bugprone-empty-catch): nothing to undo
        }
    }

  private:
    Readahead &owner_;
    std::vector<Window *> windows_;
    std::uint64_t served_end_; // the block after the request this view answered
};

void Readahead::release(const std::vector<Window *> &windows)
{
    std::lock_guard lock(mutex_);
    for (Window *window : windows)
        --window->users;
}

// The reader has had these windows' data: the ones it has passed can read further ahead now.
// Waiting for its next read instead would leave their channels idle for the time between
// this reply and that request, in which a sequential reader (dd, cp) keeps the device busy
// only with what was queued before.
void Readahead::refill_after_reply(const std::vector<Window *> &windows, std::uint64_t served_end)
{
    if (config_.device_gone != nullptr && config_.device_gone->load(std::memory_order_acquire))
        return;
    std::unique_lock lock(mutex_);
    for (std::size_t i = 0; i < windows.size(); ++i) {
        const std::size_t stream = windows[i]->stream;
        const bool seen = std::any_of(windows.begin(), windows.begin() + static_cast<long>(i),
                                      [&](const Window *w) { return w->stream == stream; });
        // A stream taken over by a random read, or reset by end_reader, queues nothing; nor
        // does one that changed hands while recycle() waited, unlocked, for a command.
        const ReaderId reader = streams_[stream].reader;
        if (seen || !streams_[stream].sequential || reader == no_reader)
            continue;
        std::vector<BlockRange> refill;
        recycle(lock, stream, std::min(streams_[stream].next_lba, served_end), false, refill);
        if (streams_[stream].sequential && streams_[stream].reader == reader)
            queue_windows(stream, capacity_blocks(), refill);
    }
}

std::optional<ReadView> Readahead::serve(std::uint64_t offset, std::uint64_t length,
                                         ReaderId reader)
{
    const std::uint64_t block = config_.block_size;
    const BlockRange request{offset / block,
                             (offset + length + block - 1) / block - offset / block};
    std::vector<WindowPiece> pieces;
    std::vector<Window *> used;
    std::vector<Window *> to_reap;
    {
        std::lock_guard lock(mutex_);
        // Only what was read for this reader: another's windows may predate its open.
        std::vector<BlockRange> ranges;
        for (const Window &window : windows_)
            ranges.push_back(live(window) && window.reader == reader ? window.range : BlockRange{});
        if (!cover_request(ranges, request, pieces))
            return std::nullopt;
        for (const WindowPiece &piece : pieces) {
            Window &window = windows_[piece.window];
            ++window.users;
            used.push_back(&window);
            if (window.state == State::in_flight) {
                window.state = State::reaping;
                to_reap.push_back(&window);
            }
        }
    }
    for (Window *window : to_reap)
        reap(*window);

    bool all_good = true;
    IoResult final_failure = IoResult::success(0);
    {
        std::unique_lock lock(mutex_);
        if (!to_reap.empty())
            reaped_.notify_all();
        // Another reader may be reaping a window we need.
        reaped_.wait(lock, [&] {
            return std::none_of(used.begin(), used.end(), [](const Window *window) {
                return window->state == State::reaping || window->state == State::in_flight;
            });
        });
        // A window that went stale meanwhile was overwritten while this read ran: either
        // content answers it. A failed one does not: the normal read reports the error,
        // unless the device timed out or went away, which the same read again would only
        // meet a second time.
        for (const Window *window : used) {
            all_good = all_good && window->state == State::done;
            if (window->state == State::failed && final_failure.ok() &&
                (window->failure.error == -ETIMEDOUT || window->failure.error == -ENODEV))
                final_failure = window->failure;
        }
    }

    if (!all_good) {
        release(used);
        if (!final_failure.ok())
            return ReadView(std::move(final_failure));
        return std::nullopt;
    }
    std::vector<iovec> parts;
    std::uint64_t at = request.lba * block; // byte the next piece starts at
    for (const WindowPiece &piece : pieces) {
        const Window &window = windows_[piece.window];
        const std::uint64_t begin = std::max(at, offset);
        const std::uint64_t end = std::min(at + piece.blocks * block, offset + length);
        std::uint8_t *base = memory(window) + piece.offset_blocks * block;
        parts.push_back({base + (begin - at), end - begin});
        at += piece.blocks * block;
    }
    if (config_.context.stats != nullptr)
        config_.context.stats->count_readahead_hit(length);
    return ReadView(IoResult::success(length), std::move(parts),
                    std::make_unique<ServedPin>(*this, std::move(used), request.end()));
}

void Readahead::end_reader(ReaderId reader)
{
    if (reader == no_reader)
        return;
    std::unique_lock lock(mutex_);
    streams_.forget(reader);
    std::vector<Window *> ended;
    for (Window &window : windows_)
        if (window.reader == reader && window.state != State::idle && window.users == 0)
            ended.push_back(&window);
    free_windows(lock, ended);
}

void Readahead::invalidate(const BlockRange &blocks)
{
    std::lock_guard lock(mutex_);
    for (Window &window : windows_)
        if (window.state != State::idle && window.range.overlaps(blocks))
            window.stale = true;
}

} // namespace sgfs
