// The Engine's copies offloaded to the source LU's copy manager: EXTENDED COPY(LID1) with
// block-to-block segments (copy_offload_plan.hpp), falling back to the pipelined copy
// (engine_copy.cpp) for what the copy manager refuses.
#include "engine.hpp"
#include "sg_ll.hpp"

#include <algorithm>
#include <cerrno>
#include <vector>

namespace sgfs
{
namespace
{

constexpr std::uint8_t sense_key_illegal_request = 0x05;
constexpr std::uint8_t sense_key_copy_aborted = 0x0a;
constexpr std::uint8_t asc_invalid_opcode = 0x20;
constexpr std::uint8_t asc_copy_target = 0x0d; // 0x0d/0x02: copy target device not reachable
constexpr std::uint8_t ascq_not_reachable = 0x02;

constexpr std::uint8_t code_set_binary = 1;
constexpr std::uint8_t designator_type_naa = 3;
constexpr std::uint8_t association_logical_unit = 0;

// A failed EXTENDED COPY the copy manager refused (ILLEGAL REQUEST, COPY ABORTED: it
// copies nothing more, and the host may copy the range itself), by reason; none when the
// failure is the device's (no sense, a medium or hardware error, a timeout, the device
// gone), which the copy reports.
std::optional<OffloadRefusal> refusal_of(const SenseData &sense)
{
    if (!sense.valid)
        return std::nullopt;
    if (sense.sense_key == sense_key_illegal_request)
        return sense.asc == asc_invalid_opcode ? OffloadRefusal::unsupported
                                               : OffloadRefusal::other;
    if (sense.sense_key == sense_key_copy_aborted)
        return sense.asc == asc_copy_target && sense.ascq == ascq_not_reachable
                   ? OffloadRefusal::unreachable
                   : OffloadRefusal::other;
    return std::nullopt;
}

} // namespace

// What an offload did: the bytes copied in the plan's order before the first command that
// failed, and that failure, with the reason when the copy manager refused it.
struct Engine::OffloadOutcome {
    IoResult result;
    std::optional<OffloadRefusal> refusal;
};

void Engine::probe_copy_offload(Channel &channel, bool three_party_copy,
                                std::span<const Designator> designators)
{
    info_.three_party_copy = three_party_copy;
    const auto naa = std::find_if(designators.begin(), designators.end(), [](const Designator &d) {
        return d.association == association_logical_unit && d.type == designator_type_naa &&
               d.code_set == code_set_binary && !d.value.empty() &&
               d.value.size() <= copy_descriptor::max_designator_size;
    });
    if (naa != designators.end())
        copy_designator_ = *naa;
    if (!three_party_copy)
        return;
    CopyOperatingParameters parameters;
    std::string ignored;
    if (sg_ll_receive_copy_operating_parameters(channel, context(), parameters, ignored) != 0)
        return;
    offload_limits_ = offload_limits(parameters, info_.logical_block_size);
    info_.copy_offload = offload_limits_.has_value() && copy_designator_.has_value();
}

bool Engine::may_offload_to(const Engine &target, std::uint64_t source_lba,
                            std::uint64_t destination_lba, std::uint64_t blocks) const
{
    return options_.copy_offload && info_.copy_offload && !offload_unsupported_ &&
           target.info_.three_party_copy && target.copy_designator_.has_value() &&
           target.info_.logical_block_size == info_.logical_block_size &&
           offload_allowed(&target == this, source_lba, destination_lba, blocks);
}

IoResult Engine::copy_blocks_to(Engine &target, std::uint64_t source_lba,
                                std::uint64_t destination_lba, std::uint64_t blocks, bool backwards)
{
    if (backwards || !may_offload_to(target, source_lba, destination_lba, blocks))
        return pipelined_copy_to(target, source_lba, destination_lba, blocks, backwards);
    if (IoResult present = check_both_present(target); !present.ok())
        return present;
    const std::uint32_t block = info_.logical_block_size;
    const OffloadPlan plan = plan_offload(source_lba, destination_lba, blocks, *offload_limits_);
    OffloadOutcome offloaded = offload_copy_to(target, plan);
    if (!offloaded.result.ok() && !offloaded.refusal)
        return offloaded.result;
    const std::uint64_t done = offloaded.result.bytes / block;
    if (offloaded.refusal)
        stats_.count_offload_fallback((blocks - done) * block);
    if (done == blocks)
        return IoResult::success(blocks * block);
    IoResult rest =
        pipelined_copy_to(target, source_lba + done, destination_lba + done, blocks - done, false);
    rest.bytes += done * block;
    return rest;
}

Engine::OffloadOutcome Engine::offload_copy_to(Engine &target, const OffloadPlan &plan)
{
    // As many commands at once as the copy manager runs and this LU has channels.
    const std::size_t depth = std::max<std::size_t>(
        1, std::min<std::size_t>(offload_limits_->commands_in_flight, plain_pool_.size()));
    const std::span<const OffloadCommand> commands(plan.commands);
    std::uint64_t done = 0;
    for (std::size_t first = 0; first < commands.size(); first += depth) {
        OffloadOutcome turn = run_offload_turn(
            target, commands.subspan(first, std::min(depth, commands.size() - first)));
        done += turn.result.bytes;
        if (!turn.result.ok()) {
            turn.result.bytes = done;
            return turn;
        }
    }
    return {IoResult::success(done), std::nullopt};
}

std::vector<std::uint8_t> Engine::offload_parameters(const Engine &target,
                                                     const OffloadCommand &command)
{
    ExtendedCopyList list;
    if (offload_limits_->no_list_id) {
        list.usage = ListIdUsage::none;
    } else {
        // Each command in flight has its own list identifier; nobody asks for the results.
        list.usage = ListIdUsage::no_hold;
        list.list_id = static_cast<std::uint8_t>(next_list_id_++);
    }
    // Two CSCD descriptors even within one LU: copy managers that take the first as the
    // source and the second as the destination accept it too.
    list.targets = {
        {*copy_designator_, info_.device_type, info_.logical_block_size},
        {*target.copy_designator_, target.info_.device_type, target.info_.logical_block_size}};
    list.segments = command.segments;
    return extended_copy_parameter_list(list);
}

// One turn: the commands' destination blocks held against writes (the lock order at the top
// of engine.hpp), read-ahead dropped there before and after, the commands in flight at
// once on the source's channels, each finished whatever the others did.
Engine::OffloadOutcome Engine::run_offload_turn(Engine &target,
                                                std::span<const OffloadCommand> commands)
{
    const std::uint32_t block = info_.logical_block_size;
    const CopySegment &first = commands.front().segments.front();
    const CopySegment &last = commands.back().segments.back();
    const std::uint64_t begin = first.destination_lba;
    const std::uint64_t end = last.destination_lba + last.blocks;
    auto held = target.write_ranges_.lock(begin, end);
    target.readahead_.invalidate({begin, end - begin});
    std::vector<Pool<Slot>::Lease> leases = plain_pool_.acquire_many(commands.size());

    std::vector<std::vector<std::uint8_t>> parameters;
    std::vector<Command> started(commands.size());
    std::vector<CommandResult> results(commands.size(), IoResult::success(0));
    parameters.reserve(commands.size());
    for (std::size_t i = 0; i < commands.size(); ++i) {
        parameters.push_back(offload_parameters(target, commands[i]));
        const unsigned timeout =
            offload_command_timeout_ms(commands[i].blocks * block, context().timeout_ms);
        started[i] = extended_copy_command(parameters.back(), timeout);
        results[i] = CommandResult(start_command(*leases[i]->channel, started[i]));
    }
    const CommandContext ctx = context();
    for (std::size_t i = 0; i < commands.size(); ++i)
        if (results[i].result.ok())
            results[i] = finish_command_with_sense(*leases[i]->channel, started[i], ctx);
    target.readahead_.invalidate({begin, end - begin});

    std::uint64_t done = 0;
    for (std::size_t i = 0; i < commands.size(); ++i) {
        if (results[i].result.ok()) {
            const std::uint64_t bytes = commands[i].blocks * block;
            stats_.count_offload(bytes);
            done += bytes;
            continue;
        }
        OffloadOutcome failed{std::move(results[i].result), refusal_of(results[i].sense)};
        failed.result.bytes = done;
        if (failed.refusal) {
            stats_.count_offload_refusal(*failed.refusal);
            if (*failed.refusal == OffloadRefusal::unsupported)
                offload_unsupported_ = true;
            return failed;
        }
        failed.result = failure(std::move(failed.result));
        failed.result.bytes = done;
        failed.result.end = IoEnd::source;
        return failed;
    }
    return {IoResult::success(done), std::nullopt};
}

} // namespace sgfs
