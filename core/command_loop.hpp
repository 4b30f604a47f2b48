// One SCSI command's life on a channel, the same for every command sgfs sends (probing,
// READ and WRITE from any path, read-ahead, copies, WRITE SAME, SYNCHRONIZE CACHE):
// submit → reap → classify (sense, core/sense.cpp) → retry → count. Callers that want
// several commands in flight start each on its own channel and finish them later; the
// rule below applies to all of them alike.
//
// The retry rule:
//   - unit attention, aborted command, busy, a becoming-ready device and the host's
//     "retry" verdicts (classify()'s `retryable`) are tried again on the same channel up
//     to CommandContext::retries more times, at once after a unit attention, else after
//     50, 100, 200, ... ms (at most 1 s);
//   - a timeout is not tried again: a command that times out costs its timeout once and
//     fails with ETIMEDOUT (the device had all of it; a second try doubles the wait);
//   - every other error fails at once;
//   - a READ or WRITE that ends GOOD with a residual (a short transfer) is re-issued for the
//     blocks not moved (in mmap mode whole: its data must start at the mapping's first byte);
//     one that moved nothing spends a retry, so it ends;
//   - a CAPACITY DATA HAS CHANGED unit attention (06/2A/09) is also counted in DeviceStats
//     capacity_attentions, which the engine watches to read the capacity again;
//   - every failed attempt is counted in DeviceStats errors, every retry in `retries`, every
//     successful data transfer in the mode and path counters.
//
// Commands in flight are counted by the channel itself (InFlightChannel below, around every
// channel an Engine opens), so that every command queued on the device counts, whichever
// path sent it: reads, writes, read-ahead, copies, offloads, the probe.
#pragma once

#include "channel.hpp"
#include "sgfs/disk.hpp"
#include "sgfs/stats.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>

namespace sgfs
{

// A channel whose commands count in `stats`' commands in flight (DeviceStats::count_queueing):
// counted before each submit, recorded once it succeeded, over when reaped (or when the
// channel goes with a command still pending). `stats` outlives the channel.
class InFlightChannel final : public Channel
{
  public:
    InFlightChannel(std::unique_ptr<Channel> channel, DeviceStats &stats)
        : channel_(std::move(channel)), stats_(stats)
    {
    }
    ~InFlightChannel() override;

    int submit(const SgRequest &request) override;
    int reap(SgCompletion &done) override;
    bool pending() const override { return channel_->pending(); }
    std::span<std::uint8_t> mmap_area() const override { return channel_->mmap_area(); }
    std::size_t reserve() const override { return channel_->reserve(); }
    long max_transfer_bytes() const override { return channel_->max_transfer_bytes(); }

  private:
    std::unique_ptr<Channel> channel_;
    DeviceStats &stats_;
};

struct CommandContext {
    unsigned timeout_ms = 60000;
    unsigned retries = 3;           // extra attempts for retryable outcomes
    DeviceStats *stats = nullptr;   // counts retries, errors and transfer modes
    DataPath path = DataPath::none; // what data commands are for, in the per-path counts
    bool staged = false;            // sgfs copies the data in user space (see DeviceStats)
};

// The blocks of a READ or WRITE: what the remainder of a short transfer is re-issued from.
struct BlockSpan {
    bool write = false;
    std::uint64_t lba = 0;
    std::uint32_t blocks = 0;
    std::uint32_t block_size = 512;
    bool fua = false;
};

struct Command {
    SgRequest request;
    std::optional<BlockSpan> blocks; // set for READ and WRITE
};

// READ or WRITE of `span` with its data at `data` (ignored in mmap mode: the channel's
// mapping), in `mode`.
Command block_command(const BlockSpan &span, void *data, TransferMode mode, unsigned timeout_ms);

// Queues `command` on `channel`. 0, or a failure that names the command.
IoResult start_command(Channel &channel, const Command &command);
// Completes the command started on `channel`, with the retry rule above (re-submitting on
// the same channel). Returns the bytes moved or the failure, counted in context.stats.
IoResult finish_command(Channel &channel, Command &command, const CommandContext &context);
// finish_command's result with the sense data of the attempt that failed (valid = false on
// success or without sense): for a caller that tells a refusal from a failure by it.
struct CommandResult {
    CommandResult(IoResult done, SenseData failed_sense = {})
        : result(std::move(done)), sense(failed_sense)
    {
    }
    IoResult result;
    SenseData sense;
};
CommandResult finish_command_with_sense(Channel &channel, Command &command,
                                        const CommandContext &context);
// Waits for the command started on `channel` to end and forgets it, neither retried nor
// counted: read-ahead nobody wants any more.
void abandon_command(Channel &channel);
// Both: one command, synchronously.
IoResult run_command(Channel &channel, Command &command, const CommandContext &context);

// Runs commands[i] on channels[i], all in flight at once (as many channels as commands),
// and finishes every one of them, errors or not, so that each channel is idle after.
// Returns the bytes of the commands that succeeded before the first that failed (in
// order) and that failure, or all the bytes.
IoResult run_in_flight(std::span<Command> commands, std::span<Channel *const> channels,
                       const CommandContext &context);

} // namespace sgfs
