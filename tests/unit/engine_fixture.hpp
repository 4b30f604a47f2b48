// A test's Engine (core/engine.hpp) on an in-memory SCSI target (memory_target.hpp): the
// target to observe and fault, and the engine opened on it with the options the test
// gives. Opening fails the test at once, with the engine's message.
#pragma once

#include "engine.hpp"
#include "memory_target.hpp"

#include <doctest/doctest.h>
#include <memory>
#include <string>
#include <vector>

namespace sgfs::test
{

using Bytes = std::vector<std::uint8_t>;

// Options of a test engine: small and plain unless a test asks otherwise (no read-ahead, a
// short timeout, retries as in production).
inline DiskOptions test_options(IoMode mode = IoMode::indirect, unsigned queue_depth = 4)
{
    DiskOptions options;
    options.io_mode = mode;
    options.queue_depth = queue_depth;
    options.readahead = false;
    options.timeout_seconds = 5;
    options.retries = 3;
    options.reserve = std::size_t{64} << 10;
    return options;
}

// Opens an Engine on `target`: -errno and the message, for tests of refusals.
inline int open_engine(const std::shared_ptr<MemoryTarget> &target, const DiskOptions &options,
                       std::unique_ptr<Engine> &engine, std::string &message)
{
    return Engine::open(std::make_unique<MemoryTransport>(target, memory_node_facts()), options,
                        engine, message);
}

struct EngineFixture {
    explicit EngineFixture(TargetConfig config = {}, DiskOptions options = test_options())
        : target(std::make_shared<MemoryTarget>(std::move(config)))
    {
        std::string message;
        const int rc = open_engine(target, options, engine, message);
        INFO("Engine::open: " << message);
        REQUIRE(rc == 0);
        REQUIRE(engine != nullptr);
        target->clear_log(); // the probe's commands: tests look at their own
        at_open = engine->stats();
    }

    // The engine as the rest of the program sees it.
    Disk &disk() const { return *engine; }
    DeviceStatsSnapshot stats() const { return engine->stats(); }
    std::uint64_t errors(ErrorCategory category) const
    {
        return stats().errors[static_cast<int>(category)];
    }
    // A mode's counters since the engine opened (the probe's data-in commands count too).
    ModeCountersSnapshot mode(TransferMode mode) const
    {
        const int index = static_cast<int>(mode);
        ModeCountersSnapshot counters = stats().modes[index];
        for (const auto &field : mode_counter_fields)
            counters.*field.member -= at_open.modes[index].*field.member;
        return counters;
    }
    PathCountersSnapshot path(DataPath path) const { return stats().paths[static_cast<int>(path)]; }
    // The target's log of READ/WRITE commands (either CDB size) only.
    std::vector<CommandRecord> data_commands() const
    {
        std::vector<CommandRecord> out;
        for (const CommandRecord &record : target->log())
            if (record.opcode == opcode::read_10 || record.opcode == opcode::read_16 ||
                record.opcode == opcode::write_10 || record.opcode == opcode::write_16)
                out.push_back(record);
        return out;
    }

    std::shared_ptr<MemoryTarget> target;
    std::unique_ptr<Engine> engine;
    DeviceStatsSnapshot at_open; // the counters after the probe
};

// Bytes that differ from block to block and from their neighbours.
inline Bytes pattern(std::size_t length, std::uint8_t seed)
{
    Bytes bytes(length);
    for (std::size_t i = 0; i < length; ++i)
        bytes[i] = static_cast<std::uint8_t>(seed + i * 7 + i / 509);
    return bytes;
}

} // namespace sgfs::test
