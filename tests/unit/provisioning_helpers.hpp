// What the tests of zeroing, hole punching, provisioning runs and sparse copies on the Engine
// share: thin target configurations, the target's log by opcode, filled blocks, reads
// through a disk, and a device's refusal of a command.
#pragma once

#include "engine_fixture.hpp"

#include <algorithm>
#include <doctest/doctest.h>
#include <iterator>
#include <string>
#include <vector>

namespace sgfs::test
{

inline constexpr std::size_t block = 512;

inline bool contains(const std::string &text, const std::string &part)
{
    return text.find(part) != std::string::npos;
}

// Thin provisioned, UNMAP and WRITE SAME with UNMAP supported.
inline TargetConfig thin(bool lbprz)
{
    TargetConfig config;
    config.lbpme = true;
    config.lbprz = lbprz;
    config.lbpu = true;
    config.lbpws = true;
    return config;
}

inline std::vector<CommandRecord> of_opcode(const std::vector<CommandRecord> &log,
                                            std::uint8_t opcode)
{
    std::vector<CommandRecord> out;
    std::copy_if(log.begin(), log.end(), std::back_inserter(out),
                 [&](const CommandRecord &record) { return record.opcode == opcode; });
    return out;
}

// The records cover [lba, lba + blocks) exactly, each at most max_blocks.
inline void check_covers(std::vector<CommandRecord> records, std::uint64_t lba,
                         std::uint64_t blocks, std::uint64_t max_blocks)
{
    std::sort(records.begin(), records.end(),
              [](const CommandRecord &a, const CommandRecord &b) { return a.lba < b.lba; });
    std::uint64_t at = lba;
    for (const CommandRecord &record : records) {
        CHECK(record.lba == at);
        CHECK(record.blocks <= max_blocks);
        at = record.lba + record.blocks;
    }
    CHECK(at == lba + blocks);
}

// Fills `blocks` blocks from block `first` with non-zero bytes; returns them.
inline Bytes fill(MemoryTarget &target, std::size_t blocks, std::uint64_t first = 0)
{
    Bytes data = pattern(blocks * block, static_cast<std::uint8_t>(1 + first));
    std::replace(data.begin(), data.end(), std::uint8_t{0}, std::uint8_t{0xee});
    target.poke(first * block, data);
    return data;
}

// What a pread through the disk returns for [offset, offset + length).
inline Bytes read_back(Disk &disk, std::uint64_t offset, std::size_t length)
{
    Bytes data(length, 0x55);
    const IoResult result = disk.pread(data.data(), length, offset);
    REQUIRE(result.ok());
    REQUIRE(result.bytes == length);
    return data;
}

// ILLEGAL REQUEST for `on`: asc 0x20 (invalid command operation code) or 0x24 (invalid field
// in CDB), which sgfs takes as "the device does not do this".
inline Fault refusal(Ops on, std::uint8_t asc = 0x20, unsigned times = Fault::always)
{
    Fault fault;
    fault.kind = FaultKind::check_condition;
    fault.on = on;
    fault.times = times;
    fault.sense_key = 0x05;
    fault.asc = asc;
    return fault;
}

} // namespace sgfs::test
