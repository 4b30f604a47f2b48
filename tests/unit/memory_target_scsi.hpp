// What the in-memory target's two halves share (memory_target.cpp: state, faults, channels;
// memory_target_commands.cpp: the SCSI commands): opcodes, sense values and the CDB fields
// both read. Internal to the target.
#pragma once

#include "byte_order.hpp"
#include "memory_target.hpp"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

namespace sgfs::test::scsi
{

using byte_order::get_be;
using byte_order::put_be;

using Bytes = std::vector<std::uint8_t>;

namespace op
{
constexpr std::uint8_t test_unit_ready = 0x00;
constexpr std::uint8_t inquiry = 0x12;
constexpr std::uint8_t read_capacity_10 = 0x25;
constexpr std::uint8_t read_10 = 0x28;
constexpr std::uint8_t write_10 = 0x2a;
constexpr std::uint8_t synchronize_cache_10 = 0x35;
constexpr std::uint8_t unmap = 0x42;
constexpr std::uint8_t mode_sense_10 = 0x5a;
constexpr std::uint8_t read_16 = 0x88;
constexpr std::uint8_t write_16 = 0x8a;
constexpr std::uint8_t synchronize_cache_16 = 0x91;
constexpr std::uint8_t write_same_16 = 0x93;
constexpr std::uint8_t service_action_in_16 = 0x9e;
constexpr std::uint8_t extended_copy = 0x83;
constexpr std::uint8_t receive_copy_results = 0x84;
} // namespace op

constexpr std::uint8_t sa_read_capacity_16 = 0x10;
constexpr std::uint8_t sa_get_lba_status = 0x12;

// Sense keys (SPC-4 Table 47).
constexpr std::uint8_t sk_not_ready = 0x02;
constexpr std::uint8_t sk_medium_error = 0x03;
constexpr std::uint8_t sk_illegal_request = 0x05;
constexpr std::uint8_t sk_unit_attention = 0x06;
constexpr std::uint8_t sk_data_protect = 0x07;
constexpr std::uint8_t sk_copy_aborted = 0x0a;
constexpr std::uint8_t sk_aborted_command = 0x0b;

// Additional sense codes used here.
constexpr std::uint8_t asc_invalid_opcode = 0x20;
constexpr std::uint8_t asc_lba_out_of_range = 0x21;
constexpr std::uint8_t asc_invalid_field_in_cdb = 0x24;
constexpr std::uint8_t asc_invalid_field_in_parameters = 0x26;
constexpr std::uint8_t asc_write_protected = 0x27;
constexpr std::uint8_t asc_parameter_list_length_error = 0x1a;
constexpr std::uint8_t asc_copy_target = 0x0d; // ascq 0x02: copy target device not reachable
// ASCQs of 0x26 (invalid field in parameter list) for EXTENDED COPY's descriptor lists.
constexpr std::uint8_t ascq_too_many_cscds = 0x06;
constexpr std::uint8_t ascq_unsupported_cscd_type = 0x07;
constexpr std::uint8_t ascq_too_many_segments = 0x08;
constexpr std::uint8_t ascq_unsupported_segment_type = 0x09;

constexpr std::uint8_t status_check_condition = 0x02;
constexpr std::uint8_t status_busy = 0x08;
constexpr std::uint16_t did_no_connect = 0x01;
constexpr std::uint16_t did_time_out = 0x03;
constexpr std::uint16_t driver_timeout = 0x06;
constexpr std::uint16_t driver_sense = 0x08;

// Fixed format sense (SPC-4 4.5.3), with INFORMATION when given (the store is in memory, so
// every LBA fits its 4 bytes).
inline Bytes sense_bytes(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq,
                         std::optional<std::uint64_t> information)
{
    Bytes sense(18, 0);
    sense[0] = information ? 0xf0 : 0x70; // VALID, current error
    sense[2] = key;
    if (information)
        put_be(std::span(sense).subspan(3), static_cast<std::uint32_t>(*information));
    sense[7] = 10; // additional sense length
    sense[12] = asc;
    sense[13] = ascq;
    return sense;
}

inline bool is_read(std::uint8_t opcode)
{
    return opcode == op::read_10 || opcode == op::read_16;
}

inline bool is_write(std::uint8_t opcode)
{
    return opcode == op::write_10 || opcode == op::write_16;
}

inline bool is_sync(std::uint8_t opcode)
{
    return opcode == op::synchronize_cache_10 || opcode == op::synchronize_cache_16;
}

inline bool is_get_lba_status(const Cdb &cdb)
{
    return cdb.bytes[0] == op::service_action_in_16 && (cdb.bytes[1] & 0x1f) == sa_get_lba_status;
}

inline std::span<const std::uint8_t> cdb_at(const Cdb &cdb, std::size_t offset)
{
    return std::span<const std::uint8_t>(cdb.bytes).subspan(offset);
}

// The blocks a command addresses as its CDB says, where it has any; GET LBA STATUS is taken
// as its starting block.
struct Extent {
    std::uint64_t lba = 0;
    std::uint64_t blocks = 0;
    bool present = false;
};

inline Extent extent_of(const Cdb &cdb)
{
    const std::uint8_t opcode = cdb.bytes[0];
    Extent extent;
    if (opcode == op::read_10 || opcode == op::write_10 || opcode == op::synchronize_cache_10) {
        extent = {get_be<std::uint32_t>(cdb_at(cdb, 2)), get_be<std::uint16_t>(cdb_at(cdb, 7)),
                  true};
    } else if (opcode == op::read_16 || opcode == op::write_16 ||
               opcode == op::synchronize_cache_16 || opcode == op::write_same_16) {
        extent = {get_be<std::uint64_t>(cdb_at(cdb, 2)), get_be<std::uint32_t>(cdb_at(cdb, 10)),
                  true};
    } else if (is_get_lba_status(cdb)) {
        extent = {get_be<std::uint64_t>(cdb_at(cdb, 2)), 1, true};
    }
    return extent;
}

// UNMAP's parameter list as its descriptors, if it parses.
struct UnmapList {
    std::vector<std::pair<std::uint64_t, std::uint32_t>> ranges;
    bool valid = false;
};

inline UnmapList parse_unmap(std::span<const std::uint8_t> list)
{
    UnmapList out;
    if (list.size() < 8)
        return out;
    const std::size_t descriptors = get_be<std::uint16_t>(list.subspan(2)) / 16;
    if (8 + descriptors * 16 > list.size())
        return out;
    for (std::size_t i = 0; i < descriptors; ++i) {
        const auto descriptor = list.subspan(8 + 16 * i);
        out.ranges.emplace_back(get_be<std::uint64_t>(descriptor),
                                get_be<std::uint32_t>(descriptor.subspan(8)));
    }
    out.valid = true;
    return out;
}

} // namespace sgfs::test::scsi

namespace sgfs::test
{

// What reap() hands back, before classify() makes it an outcome.
struct MemoryTarget::Completion {
    int rc = 0; // reap()'s own return
    std::uint8_t scsi_status = 0;
    std::uint16_t host_status = 0;
    std::uint16_t driver_status = 0;
    bool timed_out = false;
    scsi::Bytes sense;
    std::size_t moved = 0; // data bytes moved

    void check(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq,
               std::optional<std::uint64_t> information = std::nullopt)
    {
        scsi_status = scsi::status_check_condition;
        driver_status = scsi::driver_sense;
        sense = scsi::sense_bytes(key, asc, ascq, information);
        moved = 0;
    }
};

} // namespace sgfs::test
