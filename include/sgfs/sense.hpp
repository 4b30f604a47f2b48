// Sense data and command outcomes: what went wrong, what to do about it, which errno.
// Decoding (fixed and descriptor formats) is done by libsgutils2; this layer only
// classifies. It knows nothing of sg_io_hdr: the transport passes the raw status fields.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace sgfs
{

struct SenseData {
    bool valid = false;
    std::uint8_t response_code = 0; // 0x70/0x71 fixed, 0x72/0x73 descriptor
    std::uint8_t sense_key = 0;
    std::uint8_t asc = 0;
    std::uint8_t ascq = 0;
    std::optional<std::uint64_t> information; // the failing LBA for medium errors
};
// Decodes fixed or descriptor sense. An empty or unrecognised buffer gives valid = false.
SenseData decode_sense(std::span<const std::uint8_t> sense);

enum class ErrorCategory {
    ok,
    recovered,       // recovered error: data is good
    unit_attention,  // retry
    aborted_command, // retry
    not_ready,
    medium_error, // EIO, names the failing LBA
    hardware_error,
    illegal_request,  // EINVAL; EOPNOTSUPP for ASC 0x20, 0x24, 0x26
    lba_out_of_range, // illegal request, ASC 0x21
    data_protect,     // EROFS
    reservation_conflict,
    busy,            // device busy / task set full: retry
    transport_error, // host (HBA/initiator) status: device gone, connection lost
    driver_error,
    timeout,
    other,
};
const char *to_string(ErrorCategory category);

// The raw completion of one command, as the transport saw it.
struct CommandStatus {
    std::uint8_t scsi_status = 0;    // SAM status (0 good, 2 check condition, 8 busy, ...)
    std::uint16_t host_status = 0;   // DID_* from the HBA / initiator
    std::uint16_t driver_status = 0; // DRIVER_* (DRIVER_TIMEOUT, DRIVER_SENSE...)
    bool timed_out = false;          // the transport's own timeout verdict
    std::span<const std::uint8_t> sense;
};

struct CommandOutcome {
    ErrorCategory category = ErrorCategory::ok;
    int error = 0;          // 0 or a positive errno value (EIO, EROFS, ...)
    bool retryable = false; // unit attention, aborted command, busy
    SenseData sense;
    // One line, readable, names the command:
    // "READ(10): medium error at LBA 4660 (0x1234): Unrecovered read error"
    std::string message;

    bool ok() const { return error == 0; }
};
// Classifies one completion. `what` names the command for the message ("READ(10)").
CommandOutcome classify(const CommandStatus &status, const char *what);

} // namespace sgfs
