// The command loop's retry rule (core/command_loop.hpp) against the in-memory target: what is
// tried again, how often, what reaches the device, what is counted. The oracle is the rule as
// documented, the target's log of the commands it received and its store.
#include "command_loop.hpp"
#include "engine_fixture.hpp"
#include "memory_target.hpp"

#include <cerrno>
#include <chrono>
#include <doctest/doctest.h>
#include <memory>
#include <string>
#include <vector>

using namespace sgfs;
using namespace sgfs::test;

namespace
{

constexpr std::size_t block = 512;
constexpr std::size_t kib = 1024;

struct Loop {
    explicit Loop(TargetConfig config = {})
        : target(std::make_shared<MemoryTarget>(std::move(config))),
          transport(target, memory_node_facts())
    {
        context.retries = 3;
        context.stats = &stats;
        context.path = DataPath::read;
    }
    IoResult read(Channel &channel, std::uint64_t lba, std::uint32_t blocks, void *data,
                  TransferMode mode = TransferMode::indirect)
    {
        Command command = block_command({false, lba, blocks, block, false}, data, mode, 1000);
        return run_command(channel, command, context);
    }
    IoResult write(Channel &channel, std::uint64_t lba, std::uint32_t blocks, void *data,
                   TransferMode mode = TransferMode::indirect)
    {
        Command command = block_command({true, lba, blocks, block, false}, data, mode, 1000);
        return run_command(channel, command, context);
    }
    std::uint64_t errors(ErrorCategory category) const
    {
        return stats.snapshot().errors[static_cast<int>(category)];
    }
    ModeCountersSnapshot mode(TransferMode mode) const
    {
        return stats.snapshot().modes[static_cast<int>(mode)];
    }

    std::shared_ptr<MemoryTarget> target;
    MemoryTransport transport;
    DeviceStats stats;
    CommandContext context;
};

Fault fault_of(FaultKind kind, unsigned times = 1)
{
    Fault fault;
    fault.kind = kind;
    fault.times = times;
    return fault;
}

} // namespace

TEST_CASE("block_command builds the READ or WRITE of the span")
{
    Bytes data(4 * block);
    const Command read =
        block_command({false, 0x12345678, 4, block, true}, data.data(), TransferMode::direct, 777);
    CHECK(read.request.cdb.bytes[0] == opcode::read_10);
    CHECK(read.request.cdb.bytes[1] == 0x08); // FUA
    CHECK(read.request.direction == DataDirection::from_device);
    CHECK(read.request.length == 4 * block);
    CHECK(read.request.buffer == data.data());
    CHECK(read.request.mode == TransferMode::direct);
    CHECK(read.request.timeout_ms == 777);
    REQUIRE(read.blocks);
    CHECK(read.blocks->lba == 0x12345678);
    const Command write =
        block_command({true, 0x100000000, 4, block, false}, data.data(), TransferMode::indirect, 1);
    CHECK(write.request.cdb.bytes[0] == opcode::write_16);
    CHECK(write.request.direction == DataDirection::to_device);
}

TEST_CASE("a unit attention is retried at once and succeeds")
{
    Loop loop;
    auto channel = loop.transport.channel();
    loop.target->poke(8 * block, pattern(2 * block, 1));
    loop.target->inject(fault_of(FaultKind::power_on_attention));
    Bytes data(2 * block);
    const IoResult result = loop.read(*channel, 8, 2, data.data());
    REQUIRE(result.ok());
    CHECK(result.bytes == 2 * block);
    CHECK(data == pattern(2 * block, 1));
    CHECK(loop.target->count(opcode::read_10) == 2);
    CHECK(loop.stats.snapshot().retries == 1);
    CHECK(loop.errors(ErrorCategory::unit_attention) == 1);
    // The failed attempt moved nothing; only the good one counts.
    CHECK(loop.mode(TransferMode::indirect).done_commands == 1);
    CHECK(loop.mode(TransferMode::indirect).done_bytes == 2 * block);
    CHECK(loop.stats.snapshot().paths[static_cast<int>(DataPath::read)].sg_copy_bytes == 2 * block);
}

TEST_CASE("retryable outcomes: up to `retries` more attempts")
{
    Loop loop;
    auto channel = loop.transport.channel();
    Bytes data(block);

    SUBCASE("busy, always: 1 + retries attempts, with waits of 50 and 100 ms, then EBUSY")
    {
        loop.context.retries = 2;
        loop.target->inject(fault_of(FaultKind::busy, Fault::always));
        const IoResult result = loop.read(*channel, 0, 1, data.data());
        CHECK(result.error == -EBUSY);
        CHECK(result.bytes == 0);
        CHECK(result.message.find("busy") != std::string::npos);
        CHECK(loop.target->count(opcode::read_10) == 3);
        CHECK(loop.stats.snapshot().retries == 2);
        CHECK(loop.errors(ErrorCategory::busy) == 3);
    }
    SUBCASE("no retries: the first unit attention is the answer")
    {
        loop.context.retries = 0;
        loop.target->inject(fault_of(FaultKind::capacity_changed));
        const IoResult result = loop.read(*channel, 0, 1, data.data());
        CHECK(result.error == -EIO);
        CHECK(loop.target->count(opcode::read_10) == 1);
        CHECK(loop.stats.snapshot().retries == 0);
    }
    SUBCASE("aborted twice, then good")
    {
        loop.target->inject(fault_of(FaultKind::aborted_command, 2));
        CHECK(loop.read(*channel, 0, 1, data.data()).ok());
        CHECK(loop.target->count(opcode::read_10) == 3);
        CHECK(loop.errors(ErrorCategory::aborted_command) == 2);
        CHECK(loop.stats.snapshot().retries == 2);
    }
    SUBCASE("a device becoming ready")
    {
        loop.target->inject(fault_of(FaultKind::becoming_ready, 1));
        CHECK(loop.write(*channel, 0, 1, data.data()).ok());
        CHECK(loop.target->count(opcode::write_10) == 2);
        CHECK(loop.errors(ErrorCategory::not_ready) == 1);
    }
}

TEST_CASE("a timeout is not retried: one attempt, ETIMEDOUT")
{
    for (const TimeoutForm form :
         {TimeoutForm::host, TimeoutForm::driver, TimeoutForm::transport}) {
        CAPTURE(static_cast<int>(form));
        Loop loop;
        auto channel = loop.transport.channel();
        Fault fault = fault_of(FaultKind::timeout, Fault::always);
        fault.timeout_form = form;
        loop.target->inject(fault);
        Bytes data(4 * block);
        const IoResult result = loop.read(*channel, 0, 4, data.data());
        CHECK(result.error == -ETIMEDOUT);
        CHECK(result.message.find("timed out") != std::string::npos);
        CHECK(loop.target->count(opcode::read_10) == 1);
        CHECK(loop.stats.snapshot().retries == 0);
        CHECK(loop.errors(ErrorCategory::timeout) == 1);
    }
}

TEST_CASE("a medium error fails at once and names the LBA")
{
    Loop loop;
    auto channel = loop.transport.channel();
    Fault fault = fault_of(FaultKind::medium_error, Fault::always);
    fault.on = Ops::read;
    fault.lba = 100;
    fault.blocks = 1;
    loop.target->inject(fault);
    Bytes data(8 * block);
    const IoResult result = loop.read(*channel, 96, 8, data.data());
    CHECK(result.error == -EIO);
    CHECK(result.bytes == 0);
    CHECK(result.message.find("medium error at LBA 100 (0x64)") != std::string::npos);
    CHECK(loop.target->count(opcode::read_10) == 1);
    CHECK(loop.errors(ErrorCategory::medium_error) == 1);
    CHECK(loop.stats.snapshot().retries == 0);
}

TEST_CASE("a short transfer is re-issued for the blocks not moved")
{
    Loop loop;
    auto channel = loop.transport.channel({false, 64 * kib, true});
    const Bytes stored = pattern(8 * block, 7);
    loop.target->poke(10 * block, stored);
    Fault fault = fault_of(FaultKind::short_transfer);
    fault.residual = 3 * block + 100; // 4 whole blocks and part of the fifth arrive

    SUBCASE("a read")
    {
        fault.on = Ops::read;
        loop.target->inject(fault);
        Bytes data(8 * block);
        const IoResult result = loop.read(*channel, 10, 8, data.data());
        REQUIRE(result.ok());
        CHECK(result.bytes == 8 * block);
        CHECK(data == stored);
        const std::vector<CommandRecord> log = loop.target->log();
        REQUIRE(log.size() == 2);
        CHECK(log[0].lba == 10);
        CHECK(log[0].blocks == 8);
        CHECK(log[1].lba == 14);
        CHECK(log[1].blocks == 4);
        CHECK(log[1].length == 4 * block);
        CHECK(loop.stats.snapshot().retries == 1);
        // Each attempt counts the blocks it moved.
        CHECK(loop.mode(TransferMode::indirect).done_commands == 2);
        CHECK(loop.mode(TransferMode::indirect).done_bytes == 8 * block);
    }
    SUBCASE("a write")
    {
        fault.on = Ops::write;
        loop.target->inject(fault);
        Bytes data = pattern(8 * block, 99);
        const IoResult result = loop.write(*channel, 30, 8, data.data());
        REQUIRE(result.ok());
        CHECK(result.bytes == 8 * block);
        CHECK(loop.target->equals(30 * block, data));
        const std::vector<CommandRecord> log = loop.target->log();
        REQUIRE(log.size() == 2);
        CHECK(log[1].lba == 34);
        CHECK(log[1].blocks == 4);
    }
    SUBCASE("mmap: re-issued whole, since the data must start at the mapping's first byte")
    {
        // An indirect re-issue of the rest would bounce through the reserve buffer, which is
        // the mapping, over the blocks that already arrived (the target models that).
        for (const bool write : {false, true}) {
            CAPTURE(write);
            loop.target->clear_log();
            fault.on = write ? Ops::write : Ops::read;
            loop.target->inject(fault);
            const std::span<std::uint8_t> area = channel->mmap_area();
            if (write)
                std::copy(stored.begin(), stored.end(), area.begin());
            const IoResult result = write ? loop.write(*channel, 40, 8, nullptr, TransferMode::mmap)
                                          : loop.read(*channel, 10, 8, nullptr, TransferMode::mmap);
            REQUIRE(result.ok());
            CHECK(result.bytes == 8 * block);
            if (write)
                CHECK(loop.target->equals(40 * block, stored));
            else
                CHECK(Bytes(area.begin(), area.begin() + 8 * block) == stored);
            const std::vector<CommandRecord> log = loop.target->log();
            REQUIRE(log.size() == 2);
            CHECK(log[1].mode == TransferMode::mmap);
            CHECK(log[1].lba == log[0].lba);
            CHECK(log[1].blocks == 8);
        }
        // Only the whole transfers count.
        CHECK(loop.mode(TransferMode::mmap).done_bytes == 16 * block);
        CHECK(loop.target->violations().empty());
    }
}

TEST_CASE("a short transfer that moves nothing spends the retries, then EIO")
{
    Loop loop;
    loop.context.retries = 2;
    auto channel = loop.transport.channel();
    Fault fault = fault_of(FaultKind::short_transfer, Fault::always);
    fault.residual = Fault::everything;
    loop.target->inject(fault);
    Bytes data(4 * block);
    const IoResult result = loop.read(*channel, 0, 4, data.data());
    CHECK(result.error == -EIO);
    CHECK(result.bytes == 0);
    CHECK(result.message.find("short transfer") != std::string::npos);
    CHECK(loop.target->count(opcode::read_10) == 3);
    CHECK(loop.stats.snapshot().retries == 2);
    CHECK(loop.errors(ErrorCategory::other) == 3); // every failed attempt
}

TEST_CASE("a short transfer after some progress keeps what moved when a later attempt fails")
{
    Loop loop;
    loop.context.retries = 0;
    auto channel = loop.transport.channel();
    Fault short_fault = fault_of(FaultKind::short_transfer);
    short_fault.residual = 2 * block;
    loop.target->inject(short_fault);
    Fault medium = fault_of(FaultKind::medium_error, Fault::always);
    medium.lba = 6;
    medium.blocks = 1;
    loop.target->inject(medium);
    Bytes data(4 * block);
    // Blocks 4 and 5 arrive; the re-issue of 6..7 hits the medium error.
    const IoResult result = loop.read(*channel, 4, 4, data.data());
    CHECK(result.error == -EIO);
    CHECK(result.bytes == 2 * block);
    CHECK(result.message.find("LBA 6") != std::string::npos);
}

TEST_CASE("commands without blocks: a short data-in reply is the data")
{
    Loop loop;
    auto channel = loop.transport.channel();
    Bytes data(96);
    Command command;
    command.request.cdb = cdb_inquiry(false, 0, 96);
    command.request.direction = DataDirection::from_device;
    command.request.buffer = data.data();
    command.request.length = data.size();
    const IoResult result = run_command(*channel, command, loop.context);
    REQUIRE(result.ok());
    CHECK(result.bytes == 36); // the standard INQUIRY data the target has
    CHECK(loop.stats.snapshot().retries == 0);
}

TEST_CASE("failures of the channel itself")
{
    Loop loop;
    Bytes data(block);
    SUBCASE("queueing refused")
    {
        auto channel = loop.transport.channel({true, 0, false});
        const IoResult result = loop.write(*channel, 0, 1, data.data());
        CHECK(result.error == -EPERM);
        CHECK(result.message.find("queueing failed") != std::string::npos);
        CHECK(loop.target->log().empty());
    }
    SUBCASE("the device gone at reap: ENODEV, counted as a transport error")
    {
        auto channel = loop.transport.channel();
        loop.target->disappear(GoneForm::reap_fails);
        const IoResult result = loop.read(*channel, 0, 1, data.data());
        CHECK(result.error == -ENODEV);
        CHECK(result.message.find("SG_IO failed") != std::string::npos);
        CHECK(loop.errors(ErrorCategory::transport_error) == 1);
        CHECK(loop.stats.snapshot().retries == 0);
    }
    SUBCASE("DID_NO_CONNECT: ENODEV, not retried")
    {
        auto channel = loop.transport.channel();
        loop.target->disappear(GoneForm::no_connect);
        const IoResult result = loop.read(*channel, 0, 1, data.data());
        CHECK(result.error == -ENODEV);
        CHECK(loop.errors(ErrorCategory::transport_error) == 1);
        CHECK(loop.stats.snapshot().retries == 0);
    }
    SUBCASE("the device gone when a retry is queued: the retry's failure is the answer")
    {
        auto channel = loop.transport.channel();
        Fault fault = fault_of(FaultKind::power_on_attention);
        loop.target->inject(fault);
        Fault gone = fault_of(FaultKind::device_gone);
        gone.gone_form = GoneForm::submit_fails;
        loop.target->inject(gone);
        const IoResult result = loop.read(*channel, 0, 1, data.data());
        CHECK(result.error == -ENODEV);
        CHECK(result.message.find("queueing failed") != std::string::npos);
        CHECK_FALSE(channel->pending());
    }
}

TEST_CASE("run_in_flight keeps every command in flight at once")
{
    constexpr std::size_t depth = 4;
    constexpr std::size_t run = 16 * block; // each command's bytes
    Loop loop;
    const Bytes stored = pattern(depth * run, 3);
    loop.target->poke(0, stored);
    std::vector<std::unique_ptr<Channel>> owned;
    std::vector<Channel *> channels;
    for (std::size_t i = 0; i < depth; ++i) {
        owned.push_back(loop.transport.channel());
        channels.push_back(owned.back().get());
    }
    std::vector<Bytes> buffers(depth, Bytes(run));
    std::vector<Command> commands;
    for (std::size_t i = 0; i < depth; ++i)
        commands.push_back(block_command({false, i * 16ULL, 16, block, false}, buffers[i].data(),
                                         TransferMode::indirect, 1000));

    SUBCASE("all good")
    {
        const IoResult result = run_in_flight(commands, channels, loop.context);
        REQUIRE(result.ok());
        CHECK(result.bytes == depth * run);
        CHECK(loop.target->max_in_flight() == depth);
        for (std::size_t i = 0; i < depth; ++i)
            CHECK(loop.target->equals(i * run, buffers[i]));
    }
    SUBCASE("one fails: all are reaped, the bytes before it are returned")
    {
        Fault fault = fault_of(FaultKind::medium_error, Fault::always);
        fault.lba = 20; // in the second command
        fault.blocks = 1;
        loop.target->inject(fault);
        const IoResult result = run_in_flight(commands, channels, loop.context);
        CHECK(result.error == -EIO);
        CHECK(result.bytes == run);
        CHECK(result.message.find("LBA 20") != std::string::npos);
        CHECK(loop.target->max_in_flight() == depth);
        CHECK(loop.target->in_flight() == 0);
        for (Channel *channel : channels)
            CHECK_FALSE(channel->pending());
        // The ones after it ran to the end too.
        CHECK(loop.target->count(opcode::read_10) == depth);
        CHECK(loop.target->equals(2 * run, buffers[2]));
        CHECK(loop.target->equals(3 * run, buffers[3]));
    }
    SUBCASE("one cannot be queued: the others still finish")
    {
        owned[1] = loop.transport.channel({true, 0, false});
        channels[1] = owned[1].get();
        commands[1] = block_command({true, 16, 16, block, false}, buffers[1].data(),
                                    TransferMode::indirect, 1000);
        const IoResult result = run_in_flight(commands, channels, loop.context);
        CHECK(result.error == -EPERM);
        CHECK(result.bytes == 16 * block);
        CHECK(loop.target->count(opcode::read_10) == depth - 1);
        CHECK(loop.target->in_flight() == 0);
        for (Channel *channel : channels)
            CHECK_FALSE(channel->pending());
    }
    SUBCASE("a retry inside run_in_flight stays on its channel")
    {
        Fault fault = fault_of(FaultKind::power_on_attention);
        fault.lba = 50;
        fault.blocks = 1;
        loop.target->inject(fault);
        const IoResult result = run_in_flight(commands, channels, loop.context);
        REQUIRE(result.ok());
        CHECK(result.bytes == depth * run);
        const std::vector<CommandRecord> log = loop.target->log();
        REQUIRE(log.size() == depth + 1);
        CHECK(log[depth].lba == 48);
        CHECK(log[depth].channel == 3);
        CHECK(loop.target->equals(3 * run, buffers[3]));
    }
}

TEST_CASE("mode counters: requested against done")
{
    for (const bool allow_dio : {false, true}) {
        CAPTURE(allow_dio);
        TargetConfig config;
        config.allow_dio = allow_dio;
        Loop loop(config);
        auto channel = loop.transport.channel({false, 64 * kib, true});
        Bytes data(8 * block);
        REQUIRE(loop.read(*channel, 0, 8, data.data(), TransferMode::direct).ok());
        const ModeCountersSnapshot direct = loop.mode(TransferMode::direct);
        const ModeCountersSnapshot indirect = loop.mode(TransferMode::indirect);
        CHECK(direct.requested_commands == 1);
        CHECK(direct.requested_bytes == 8 * block);
        const PathCountersSnapshot read_path =
            loop.stats.snapshot().paths[static_cast<int>(DataPath::read)];
        if (allow_dio) {
            CHECK(direct.done_commands == 1);
            CHECK(direct.fallback_commands == 0);
            CHECK(read_path.zero_copy_bytes == 8 * block);
        } else {
            // The driver's quiet fallback: asked direct, done indirect.
            CHECK(direct.done_commands == 0);
            CHECK(direct.fallback_commands == 1);
            CHECK(direct.fallback_bytes == 8 * block);
            CHECK(indirect.done_commands == 1);
            CHECK(indirect.requested_commands == 0);
            CHECK(read_path.sg_copy_bytes == 8 * block);
        }

        loop.context.staged = true;
        REQUIRE(loop.read(*channel, 0, 8, nullptr, TransferMode::mmap).ok());
        const ModeCountersSnapshot mmap = loop.mode(TransferMode::mmap);
        CHECK(mmap.requested_commands == 1);
        CHECK(mmap.done_commands == 1);
        CHECK(mmap.fallback_commands == 0);
        CHECK(loop.stats.snapshot().paths[static_cast<int>(DataPath::read)].user_copy_bytes ==
              8 * block);
    }
}
