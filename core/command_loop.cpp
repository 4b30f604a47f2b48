#include "command_loop.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace sgfs
{
namespace
{

// A unit attention is reported once and clears: retry at once. A busy or becoming-ready
// device needs time, as the kernel's own retries give it.
void wait_before_retry(ErrorCategory category, unsigned attempt)
{
    if (category == ErrorCategory::unit_attention)
        return;
    const unsigned delay_ms = std::min(1000U, 50U << std::min(attempt, 5U));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
}

void count_error(const CommandContext &context, ErrorCategory category)
{
    if (context.stats != nullptr)
        context.stats->count_error(category);
}

// CAPACITY DATA HAS CHANGED: the engine reads the capacity again (engine_capacity.cpp).
void count_capacity_attention(const CommandContext &context, const CommandOutcome &outcome)
{
    if (context.stats != nullptr && outcome.category == ErrorCategory::unit_attention &&
        outcome.sense.asc == 0x2a && outcome.sense.ascq == 0x09)
        context.stats->count_capacity_attention();
}

void count_transfer(const CommandContext &context, const SgRequest &request,
                    const SgCompletion &done, std::uint64_t bytes)
{
    if (context.stats != nullptr && bytes > 0)
        context.stats->count_command(context.path, request.mode, done.done_mode, bytes,
                                     context.staged);
}

// The whole blocks a short transfer moved that a re-issue can build on. None in mmap mode:
// a re-issue in mmap mode starts at the mapping's first byte again, and an indirect one on
// this channel goes through the same reserve buffer (the sg driver uses it whenever the data
// fits), overwriting the blocks already there. So an mmap command is sent again whole.
std::uint32_t kept_blocks(const Command &command, std::size_t moved_bytes)
{
    if (command.request.mode == TransferMode::mmap)
        return 0;
    return static_cast<std::uint32_t>(moved_bytes / command.blocks->block_size);
}

// The command for the blocks of `command` that a short transfer left, `moved_blocks` in.
void advance_past(Command &command, std::uint32_t moved_blocks)
{
    BlockSpan rest = *command.blocks;
    const std::size_t moved = std::size_t{moved_blocks} * rest.block_size;
    rest.lba += moved_blocks;
    rest.blocks -= moved_blocks;
    const SgRequest &request = command.request;
    command = block_command(rest, static_cast<std::uint8_t *>(request.buffer) + moved, request.mode,
                            request.timeout_ms);
}

} // namespace

InFlightChannel::~InFlightChannel()
{
    if (channel_->pending())
        stats_.count_reaped();
}

int InFlightChannel::submit(const SgRequest &request)
{
    // A second command on a busy channel is refused below without ever being in flight.
    if (channel_->pending())
        return channel_->submit(request);
    const std::uint64_t outstanding = stats_.count_queueing();
    const int rc = channel_->submit(request);
    if (rc != 0)
        stats_.count_queue_failed();
    else
        stats_.count_queued(outstanding);
    return rc;
}

int InFlightChannel::reap(SgCompletion &done)
{
    const bool was_pending = channel_->pending();
    const int rc = channel_->reap(done);
    if (was_pending && !channel_->pending())
        stats_.count_reaped();
    return rc;
}

Command block_command(const BlockSpan &span, void *data, TransferMode mode, unsigned timeout_ms)
{
    Command command;
    SgRequest &request = command.request;
    request.cdb = span.write ? cdb_write(span.lba, span.blocks, span.fua)
                             : cdb_read(span.lba, span.blocks, span.fua);
    request.direction = span.write ? DataDirection::to_device : DataDirection::from_device;
    request.buffer = data;
    request.length = std::size_t{span.blocks} * span.block_size;
    request.mode = mode;
    request.timeout_ms = timeout_ms;
    command.blocks = span;
    return command;
}

IoResult start_command(Channel &channel, const Command &command)
{
    if (int rc = channel.submit(command.request); rc != 0)
        return IoResult::failure(rc, command_name(command.request.cdb) +
                                         ": queueing failed: " + std::strerror(-rc));
    return IoResult::success(0);
}

IoResult finish_command(Channel &channel, Command &command, const CommandContext &context)
{
    return finish_command_with_sense(channel, command, context).result;
}

CommandResult finish_command_with_sense(Channel &channel, Command &command,
                                        const CommandContext &context)
{
    std::uint64_t moved = 0; // by earlier, short, attempts
    for (unsigned attempt = 0;;) {
        SgCompletion done;
        if (int rc = channel.reap(done); rc != 0) {
            count_error(context, rc == -ENODEV ? ErrorCategory::transport_error
                                               : ErrorCategory::driver_error);
            return IoResult::failure(rc, command_name(command.request.cdb) +
                                             ": SG_IO failed: " + std::strerror(-rc));
        }
        const CommandOutcome &outcome = done.outcome;
        if (outcome.category != ErrorCategory::ok)
            count_error(context, outcome.category);
        count_capacity_attention(context, outcome);
        bool again = false;
        if (outcome.ok()) {
            const std::size_t length = command.request.length;
            const std::size_t residual =
                std::min<std::size_t>(length, static_cast<std::size_t>(std::max(0, done.residual)));
            if (!command.blocks || residual == 0) {
                count_transfer(context, command.request, done, length - residual);
                return IoResult::success(moved + length - residual);
            }
            // A short READ or WRITE: what it moved counts, the rest is sent again.
            const std::uint32_t block = command.blocks->block_size;
            const std::uint32_t moved_blocks = kept_blocks(command, length - residual);
            count_transfer(context, command.request, done, std::uint64_t{moved_blocks} * block);
            moved += std::uint64_t{moved_blocks} * block;
            // One that moved nothing failed, and is counted like any failed attempt.
            if (moved_blocks == 0)
                count_error(context, ErrorCategory::other);
            if (moved_blocks == 0 && attempt >= context.retries) {
                return IoResult{moved, -EIO, IoEnd::none,
                                command_name(command.request.cdb) + ": short transfer, " +
                                    std::to_string(residual) + " bytes not moved"};
            }
            if (moved_blocks == 0)
                ++attempt;
            else
                advance_past(command, moved_blocks);
            again = true;
        } else if (outcome.retryable && attempt < context.retries) {
            wait_before_retry(outcome.category, attempt);
            ++attempt;
            again = true;
        }
        if (!again)
            return {IoResult{moved, -outcome.error, IoEnd::none, outcome.message}, outcome.sense};
        if (context.stats != nullptr)
            context.stats->count_retry();
        if (IoResult started = start_command(channel, command); !started.ok()) {
            started.bytes = moved;
            return started;
        }
    }
}

void abandon_command(Channel &channel)
{
    SgCompletion ignored;
    if (channel.pending())
        static_cast<void>(channel.reap(ignored));
}

IoResult run_command(Channel &channel, Command &command, const CommandContext &context)
{
    if (IoResult started = start_command(channel, command); !started.ok())
        return started;
    return finish_command(channel, command, context);
}

IoResult run_in_flight(std::span<Command> commands, std::span<Channel *const> channels,
                       const CommandContext &context)
{
    std::vector<IoResult> results(commands.size());
    std::vector<bool> started(commands.size(), false);
    for (std::size_t i = 0; i < commands.size(); ++i) {
        results[i] = start_command(*channels[i], commands[i]);
        started[i] = results[i].ok();
    }
    for (std::size_t i = 0; i < commands.size(); ++i)
        if (started[i])
            results[i] = finish_command(*channels[i], commands[i], context);
    IoResult total = IoResult::success(0);
    for (IoResult &result : results) {
        total.bytes += result.bytes;
        if (!result.ok()) {
            total.error = result.error;
            total.message = std::move(result.message);
            break;
        }
    }
    return total;
}

} // namespace sgfs
