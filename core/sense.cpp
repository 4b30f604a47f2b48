// Sense decoding (via libsgutils2) and the classification of one command completion.
#include "sgfs/sense.hpp"

#include "sgfs/hex.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <string_view>
#include <utility>

// sg_lib.h carries its own extern "C" guard.
#include <scsi/sg_lib.h>

namespace sgfs
{
namespace
{

// ---------------------------------------------------------------------------------------------
// Decoding

// Largest sense buffer a device can describe: 8 byte header + additional length (one byte).
constexpr std::size_t max_sense_len = 8 + 255;
// libsgutils2 1.46 trusts offsets found inside the sense data: it reads bytes 4..6 of descriptor
// sense whatever the length, and up to 11 bytes past the start of a descriptor it finds at the
// very end. Decoding a zero-padded private copy keeps all of those reads inside memory we own.
constexpr std::size_t decode_slack = 16;
// Information sense data descriptor (SPC-4 4.5.2.2): type 0x00, additional length 0x0a.
constexpr std::size_t info_descriptor_len = 12;
constexpr std::size_t descriptor_header_len = 8;

class SenseCopy
{
  public:
    explicit SenseCopy(std::span<const std::uint8_t> sense)
        : len_(std::min(sense.size(), max_sense_len))
    {
        std::copy_n(sense.begin(), len_, bytes_.begin());
    }
    const std::uint8_t *data() const { return bytes_.data(); }
    std::size_t size() const { return len_; }
    int isize() const { return static_cast<int>(len_); }

  private:
    std::array<std::uint8_t, max_sense_len + decode_slack> bytes_{};
    std::size_t len_;
};

bool is_descriptor_format(std::uint8_t response_code)
{
    return response_code == 0x72 || response_code == 0x73;
}

bool is_deferred(std::uint8_t response_code)
{
    return response_code == 0x71 || response_code == 0x73;
}

// libsgutils2 accepts a lone response code byte; without the sense key there is nothing to
// classify, so such a stub counts as no sense at all.
bool holds_sense_key(std::uint8_t response_code, std::size_t len)
{
    return len > (is_descriptor_format(response_code) ? 1U : 2U);
}

// sg_get_sense_info_fld() only checks that the descriptor starts inside the buffer; a descriptor
// cut short by the transfer would otherwise yield a value made of padding.
bool info_descriptor_complete(const SenseCopy &copy)
{
    const std::uint8_t *desc = sg_scsi_sense_desc_find(copy.data(), copy.isize(), 0);
    if (desc == nullptr || copy.size() < descriptor_header_len)
        return false;
    const std::size_t end = std::min(copy.size(), descriptor_header_len + copy.data()[7]);
    return static_cast<std::size_t>(desc - copy.data()) + info_descriptor_len <= end;
}

std::optional<std::uint64_t> information_field(const SenseCopy &copy, std::uint8_t response_code)
{
    std::uint64_t info = 0;
    // True only with VALID set (fixed) or a VALID information descriptor (descriptor format).
    if (!sg_get_sense_info_fld(copy.data(), copy.isize(), &info))
        return std::nullopt;
    if (is_descriptor_format(response_code) && !info_descriptor_complete(copy))
        return std::nullopt;
    return info;
}

// ---------------------------------------------------------------------------------------------
// Raw status values. This layer sees no sg_io_hdr, so the kernel's names are restated here.

constexpr std::uint16_t driver_mask = 0x0f; // the upper nibble holds obsolete SUGGEST_* bits
constexpr std::uint16_t driver_timeout = 0x06;
constexpr std::uint16_t driver_sense = 0x08;

constexpr std::uint16_t did_time_out = 0x03;
constexpr std::uint16_t did_error = 0x07;

struct Verdict {
    ErrorCategory category = ErrorCategory::ok;
    int error = 0;
    bool retryable = false;
};

// host_status (DID_*). The kernel's scsi_decide_disposition() retries the temporary ones itself;
// SG_IO hands them to us, so "retry" here means "the same command may well succeed".
// clang-format off
//  code  name                     category              errno      retry  why
//  0x01  DID_NO_CONNECT           transport_error       ENODEV     no     device vanished
//  0x02  DID_BUS_BUSY             transport_error       EIO        yes    temporary
//  0x03  DID_TIME_OUT             timeout               ETIMEDOUT  no     see classify_timeout()
//  0x04  DID_BAD_TARGET           transport_error       ENODEV     no     device vanished
//  0x05  DID_ABORT                transport_error       EIO        no     kernel: final
//  0x06  DID_PARITY               transport_error       EIO        yes    kernel retries
//  0x07  DID_ERROR                transport_error       EIO        yes    kernel retries
//  0x08  DID_RESET                transport_error       EIO        yes    kernel retries
//  0x09  DID_BAD_INTR             transport_error       EIO        no
//  0x0a  DID_PASSTHROUGH          transport_error       EIO        no
//  0x0b  DID_SOFT_ERROR           transport_error       EIO        yes    LLD asks for a retry
//  0x0c  DID_IMM_RETRY            transport_error       EIO        yes
//  0x0d  DID_REQUEUE              transport_error       EIO        yes
//  0x0e  DID_TRANSPORT_DISRUPTED  transport_error       EIO        yes    path recovering
//  0x0f  DID_TRANSPORT_FAILFAST   transport_error       EIO        no     kernel: ENOLINK
//  0x10  DID_TARGET_FAILURE       other                 EIO        no     (*)
//  0x11  DID_NEXUS_FAILURE        reservation_conflict  EACCES     no     (*)
//  0x12  DID_ALLOC_FAILURE        data_protect          ENOSPC     no     (*)
//  0x13  DID_MEDIUM_ERROR         medium_error          EIO        no     (*)
//  0x14  DID_TRANSPORT_MARGINAL   transport_error       EIO        no     kernel: ENOLINK
//  else                           transport_error       EIO        no
// clang-format on
// (*) Set by the kernel itself after reading the sense data; when valid sense came along, the
//     sense decides instead. ENOLINK would tell an application nothing EIO does not.
struct HostCode {
    std::uint16_t code;
    const char *name;
    const char *meaning;
    Verdict verdict;
    bool derived_from_sense = false;
};

constexpr ErrorCategory transport = ErrorCategory::transport_error;

// clang-format off
constexpr std::array host_codes{
    HostCode{0x01, "DID_NO_CONNECT", "device unreachable", {transport, ENODEV, false}},
    HostCode{0x02, "DID_BUS_BUSY", "bus busy", {transport, EIO, true}},
    HostCode{0x04, "DID_BAD_TARGET", "no such target", {transport, ENODEV, false}},
    HostCode{0x05, "DID_ABORT", "command aborted", {transport, EIO, false}},
    HostCode{0x06, "DID_PARITY", "parity error", {transport, EIO, true}},
    HostCode{0x07, "DID_ERROR", "host adapter internal error", {transport, EIO, true}},
    HostCode{0x08, "DID_RESET", "bus or device reset", {transport, EIO, true}},
    HostCode{0x09, "DID_BAD_INTR", "unexpected interrupt", {transport, EIO, false}},
    HostCode{0x0a, "DID_PASSTHROUGH", "forced past the mid-level", {transport, EIO, false}},
    HostCode{0x0b, "DID_SOFT_ERROR", "driver asks for a retry", {transport, EIO, true}},
    HostCode{0x0c, "DID_IMM_RETRY", "driver asks for a retry", {transport, EIO, true}},
    HostCode{0x0d, "DID_REQUEUE", "driver asks for a requeue", {transport, EIO, true}},
    HostCode{0x0e, "DID_TRANSPORT_DISRUPTED", "transport disrupted", {transport, EIO, true}},
    HostCode{0x0f, "DID_TRANSPORT_FAILFAST", "transport failed fast", {transport, EIO, false}},
    HostCode{0x10, "DID_TARGET_FAILURE", "permanent target failure",
             {ErrorCategory::other, EIO, false}, true},
    HostCode{0x11, "DID_NEXUS_FAILURE", "nexus failure",
             {ErrorCategory::reservation_conflict, EACCES, false}, true},
    HostCode{0x12, "DID_ALLOC_FAILURE", "space allocation failed",
             {ErrorCategory::data_protect, ENOSPC, false}, true},
    HostCode{0x13, "DID_MEDIUM_ERROR", "medium error",
             {ErrorCategory::medium_error, EIO, false}, true},
    HostCode{0x14, "DID_TRANSPORT_MARGINAL", "marginal transport path", {transport, EIO, false}},
};
// clang-format on

const HostCode *find_host_code(std::uint16_t code)
{
    const auto *it = std::find_if(host_codes.begin(), host_codes.end(),
                                  [code](const HostCode &h) { return h.code == code; });
    return it == host_codes.end() ? nullptr : &*it;
}

const char *driver_status_name(std::uint16_t code)
{
    switch (code) {
    case 0x01:
        return "DRIVER_BUSY";
    case 0x02:
        return "DRIVER_SOFT";
    case 0x03:
        return "DRIVER_MEDIA";
    case 0x04:
        return "DRIVER_ERROR";
    case 0x05:
        return "DRIVER_INVALID";
    case 0x07:
        return "DRIVER_HARD";
    default:
        return nullptr;
    }
}

// ---------------------------------------------------------------------------------------------
// Messages

std::string lowercase(std::string text)
{
    for (char &c : text) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    return text;
}

// "medium_error" -> "medium error": the stats key doubles as the message's wording.
std::string category_words(ErrorCategory category)
{
    if (category == ErrorCategory::other)
        return "error";
    std::string words = to_string(category);
    std::replace(words.begin(), words.end(), '_', ' ');
    return words;
}

std::string sense_key_words(std::uint8_t sense_key)
{
    std::array<char, 64> buf{};
    sg_get_sense_key_str(sense_key, static_cast<int>(buf.size()), buf.data());
    return lowercase(buf.data());
}

std::string asc_words(std::uint8_t asc, std::uint8_t ascq)
{
    std::array<char, 160> buf{};
    sg_get_asc_ascq_str(asc, ascq, static_cast<int>(buf.size()), buf.data());
    std::string_view text(buf.data());
    constexpr std::string_view lead = "Additional sense: ";
    if (text.starts_with(lead))
        text.remove_prefix(lead.size());
    return std::string(text);
}

std::string scsi_status_words(std::uint8_t status)
{
    std::array<char, 64> buf{};
    sg_get_scsi_status_str(status, static_cast<int>(buf.size()), buf.data());
    return buf.data();
}

// SBC defines the information field as the first failing LBA for these sense keys only.
bool information_is_lba(std::uint8_t sense_key)
{
    return sense_key == SPC_SK_RECOVERED_ERROR || sense_key == SPC_SK_MEDIUM_ERROR ||
           sense_key == SPC_SK_HARDWARE_ERROR;
}

std::string describe_sense(const SenseData &sense)
{
    std::string text = is_deferred(sense.response_code) ? "deferred " : "";
    text += sense_key_words(sense.sense_key);
    if (sense.information && information_is_lba(sense.sense_key))
        text += " at LBA " + std::to_string(*sense.information) + " (" +
                hex_number(*sense.information) + ")";
    text += ": " + asc_words(sense.asc, sense.ascq);
    if (is_deferred(sense.response_code))
        text += " (reported for an earlier command)";
    return text;
}

// ---------------------------------------------------------------------------------------------
// Classification

CommandOutcome outcome(Verdict verdict, const SenseData &sense, std::string message)
{
    CommandOutcome out;
    out.category = verdict.category;
    out.error = verdict.error;
    out.retryable = verdict.retryable;
    out.sense = sense;
    out.message = std::move(message);
    return out;
}

// ASC 0x04 "logical unit not ready, ...": the qualifiers describing a state that ends by itself
// (the kernel's scsi_io_completion() delays and retries exactly these). The rest (e.g. 0x02
// "initializing command required", 0x03 "manual intervention required") will not pass on retry.
bool becoming_ready(std::uint8_t ascq)
{
    switch (ascq) {
    case 0x01: // becoming ready
    case 0x04: // format in progress
    case 0x05: // rebuild in progress
    case 0x06: // recalculation in progress
    case 0x07: // operation in progress
    case 0x08: // long write in progress
    case 0x09: // self-test in progress
    case 0x0a: // asymmetric access state transition
    case 0x11: // notify (enable spinup) required
    case 0x14: // space allocation in progress
    case 0x1a: // start stop unit command in progress
    case 0x1b: // sanitize in progress
    case 0x1d: // configuration in progress
    case 0x24: // depopulation in progress
        return true;
    default:
        return false;
    }
}

Verdict not_ready(const SenseData &sense)
{
    if (sense.asc == 0x3a) // medium not present
        return {ErrorCategory::not_ready, ENOMEDIUM, false};
    if (sense.asc == 0x04 && becoming_ready(sense.ascq))
        return {ErrorCategory::not_ready, EBUSY, true};
    return {ErrorCategory::not_ready, EIO, false};
}

Verdict medium_error(const SenseData &sense)
{
    // The kernel gives up at once on unrecovered read (0x11), address mark not found (0x13) and
    // record not found (0x14): the device already retried internally. Other medium errors
    // (write errors, positioning) it retries, and so may the caller.
    const bool final = sense.asc == 0x11 || sense.asc == 0x13 || sense.asc == 0x14;
    return {ErrorCategory::medium_error, EIO, !final};
}

Verdict illegal_request(const SenseData &sense)
{
    if (sense.asc == 0x21) // LBA out of range, invalid element address
        return {ErrorCategory::lba_out_of_range, EINVAL, false};
    // Invalid command operation code, invalid field in CDB, invalid field in parameter list:
    // the device does not do this command in this form. EOPNOTSUPP keeps them apart from an
    // LBA out of range, so that a caller can fall back to another command (zeroing does).
    if (sense.asc == 0x20 || sense.asc == 0x24 || sense.asc == 0x26)
        return {ErrorCategory::illegal_request, EOPNOTSUPP, false};
    return {ErrorCategory::illegal_request, EINVAL, false};
}

Verdict data_protect(const SenseData &sense)
{
    // 0x27/0x07: a thin-provisioned LU hit its hard threshold; the kernel reports ENOSPC too.
    if (sense.asc == 0x27 && sense.ascq == 0x07)
        return {ErrorCategory::data_protect, ENOSPC, false};
    return {ErrorCategory::data_protect, EROFS, false};
}

Verdict aborted_command(const SenseData &sense)
{
    // ASC 0x10: protection information check failed; the same data fails the same way again.
    if (sense.asc == 0x10)
        return {ErrorCategory::aborted_command, EILSEQ, false};
    return {ErrorCategory::aborted_command, EIO, true};
}

Verdict no_sense(const SenseData &sense)
{
    // 0x00/0x1d "ATA pass through information available": the CK_COND a caller asked for.
    if (sense.asc == 0x00 && sense.ascq == 0x1d)
        return {ErrorCategory::ok, 0, false};
    // A false check condition: an unknown amount was transferred, so not success. sd retries.
    return {ErrorCategory::other, EIO, true};
}

// Deferred errors (0x71/0x73) concern an earlier command, typically a cached write that failed
// after it was acknowledged. The kernel just retries the current command; we keep the sense key's
// verdict instead, so the lost earlier write surfaces rather than vanishing in a retry.
Verdict by_sense_key(const SenseData &sense)
{
    switch (sense.sense_key) {
    case SPC_SK_NO_SENSE:
        return no_sense(sense);
    case SPC_SK_RECOVERED_ERROR:
    case SPC_SK_COMPLETED: // completed, with sense data worth logging
        return {ErrorCategory::recovered, 0, false};
    case SPC_SK_NOT_READY:
        return not_ready(sense);
    case SPC_SK_MEDIUM_ERROR:
        return medium_error(sense);
    case SPC_SK_HARDWARE_ERROR:
        return {ErrorCategory::hardware_error, EIO, false};
    case SPC_SK_ILLEGAL_REQUEST:
        return illegal_request(sense);
    case SPC_SK_UNIT_ATTENTION: // reset, power on, parameters or LUN inventory changed
        return {ErrorCategory::unit_attention, EIO, true};
    case SPC_SK_DATA_PROTECT:
        return data_protect(sense);
    case SPC_SK_ABORTED_COMMAND:
        return aborted_command(sense);
    default: // blank check, vendor specific, copy aborted, volume overflow, miscompare
        return {ErrorCategory::other, EIO, false};
    }
}

CommandOutcome classify_check_condition(const SenseData &sense, const std::string &what)
{
    if (!sense.valid)
        return outcome({ErrorCategory::other, EIO, false}, sense,
                       what + ": check condition without valid sense data");
    return outcome(by_sense_key(sense), sense, what + ": " + describe_sense(sense));
}

bool is_check_condition(std::uint8_t status)
{
    return status == SAM_STAT_CHECK_CONDITION || status == SAM_STAT_COMMAND_TERMINATED;
}

std::optional<CommandOutcome> classify_timeout(const CommandStatus &status, const SenseData &sense,
                                               const std::string &what)
{
    // Not retryable: the caller's time budget for this command is already spent.
    const Verdict verdict{ErrorCategory::timeout, ETIMEDOUT, false};
    if (status.timed_out)
        return outcome(verdict, sense, what + ": timed out");
    if ((status.driver_status & driver_mask) == driver_timeout)
        return outcome(verdict, sense, what + ": timed out (DRIVER_TIMEOUT)");
    if (status.host_status == did_time_out)
        return outcome(verdict, sense, what + ": timed out (DID_TIME_OUT)");
    return std::nullopt;
}

std::optional<CommandOutcome> classify_host(const CommandStatus &status, const SenseData &sense,
                                            const std::string &what)
{
    if (status.host_status == 0)
        return std::nullopt;
    const HostCode *host = find_host_code(status.host_status);
    const bool has_sense = is_check_condition(status.scsi_status) && sense.valid;
    // The kernel's own annotations of sense it has seen: the sense itself says more.
    if (host != nullptr && host->derived_from_sense && has_sense)
        return std::nullopt;
    // The kernel also defers to the SCSI status when DID_ERROR carries a reservation conflict.
    if (status.host_status == did_error && status.scsi_status == SAM_STAT_RESERVATION_CONFLICT)
        return std::nullopt;
    if (host == nullptr)
        return outcome({transport, EIO, false}, sense,
                       what + ": transport error: host status " + hex_number(status.host_status));
    return outcome(host->verdict, sense,
                   what + ": " + category_words(host->verdict.category) + ": " + host->name + " (" +
                       host->meaning + ")");
}

std::optional<CommandOutcome> classify_driver(const CommandStatus &status, const SenseData &sense,
                                              const std::string &what)
{
    const auto code = static_cast<std::uint16_t>(status.driver_status & driver_mask);
    if (code == 0 || code == driver_sense)
        return std::nullopt;
    const char *name = driver_status_name(code);
    return outcome({ErrorCategory::driver_error, EIO, false}, sense,
                   what + ": driver error: " + (name != nullptr ? name : hex_number(code)));
}

CommandOutcome classify_scsi_status(const CommandStatus &status, const SenseData &sense,
                                    const std::string &what)
{
    const std::uint8_t code = status.scsi_status;
    switch (code) {
    case SAM_STAT_GOOD:
    case SAM_STAT_CONDITION_MET:
        return outcome({}, sense, what + ": ok");
    case SAM_STAT_CHECK_CONDITION:
    case SAM_STAT_COMMAND_TERMINATED:
        return classify_check_condition(sense, what);
    case SAM_STAT_BUSY:
    case SAM_STAT_TASK_SET_FULL:
        return outcome({ErrorCategory::busy, EBUSY, true}, sense,
                       what + ": busy: " + scsi_status_words(code));
    case SAM_STAT_RESERVATION_CONFLICT:
        // The kernel says EBADE ("invalid exchange"), which no application expects. EACCES says
        // what happened: another initiator holds the reservation, and retrying will not help.
        return outcome({ErrorCategory::reservation_conflict, EACCES, false}, sense,
                       what + ": reservation conflict: held by another initiator");
    case SAM_STAT_TASK_ABORTED:
        return outcome({ErrorCategory::aborted_command, EIO, true}, sense,
                       what + ": aborted command: " + scsi_status_words(code));
    default: // ACA active, obsolete intermediate statuses, garbage
        return outcome({ErrorCategory::other, EIO, false}, sense,
                       what + ": unexpected status: " + scsi_status_words(code) + " (" +
                           hex_number(code) + ")");
    }
}

} // namespace

SenseData decode_sense(std::span<const std::uint8_t> sense)
{
    SenseData out;
    const SenseCopy copy(sense);
    sg_scsi_sense_hdr hdr{};
    if (!sg_scsi_normalize_sense(copy.data(), copy.isize(), &hdr) ||
        !holds_sense_key(hdr.response_code, copy.size()))
        return out;
    out.valid = true;
    out.response_code = hdr.response_code;
    out.sense_key = hdr.sense_key;
    out.asc = hdr.asc;
    out.ascq = hdr.ascq;
    out.information = information_field(copy, hdr.response_code);
    return out;
}

const char *to_string(ErrorCategory category)
{
    switch (category) {
    case ErrorCategory::ok:
        return "ok";
    case ErrorCategory::recovered:
        return "recovered";
    case ErrorCategory::unit_attention:
        return "unit_attention";
    case ErrorCategory::aborted_command:
        return "aborted_command";
    case ErrorCategory::not_ready:
        return "not_ready";
    case ErrorCategory::medium_error:
        return "medium_error";
    case ErrorCategory::hardware_error:
        return "hardware_error";
    case ErrorCategory::illegal_request:
        return "illegal_request";
    case ErrorCategory::lba_out_of_range:
        return "lba_out_of_range";
    case ErrorCategory::data_protect:
        return "data_protect";
    case ErrorCategory::reservation_conflict:
        return "reservation_conflict";
    case ErrorCategory::busy:
        return "busy";
    case ErrorCategory::transport_error:
        return "transport_error";
    case ErrorCategory::driver_error:
        return "driver_error";
    case ErrorCategory::timeout:
        return "timeout";
    case ErrorCategory::other:
        return "other";
    }
    return "unknown"; // only for values cast from outside the enumeration
}

// Precedence follows the kernel's scsi_decide_disposition(): a timeout first, then the host
// (transport) byte, then the driver byte, and only then the SCSI status and its sense data.
CommandOutcome classify(const CommandStatus &status, const char *what)
{
    const std::string name = what != nullptr ? what : "command";
    const SenseData sense = decode_sense(status.sense);
    if (auto out = classify_timeout(status, sense, name))
        return *std::move(out);
    if (auto out = classify_host(status, sense, name))
        return *std::move(out);
    if (auto out = classify_driver(status, sense, name))
        return *std::move(out);
    return classify_scsi_status(status, sense, name);
}

} // namespace sgfs
