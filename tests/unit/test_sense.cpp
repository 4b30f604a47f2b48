// Sense decoding and command classification. The sense buffers are written out byte by byte from
// SPC-4's layouts (4.5.2 descriptor format, 4.5.3 fixed format) rather than produced by the code
// under test.
#include "sgfs/sense.hpp"

#include <cerrno>
#include <cstdint>
#include <doctest/doctest.h>
#include <optional>
#include <string>
#include <vector>

using sgfs::classify;
using sgfs::CommandOutcome;
using sgfs::CommandStatus;
using sgfs::decode_sense;
using sgfs::ErrorCategory;
using Bytes = std::vector<std::uint8_t>;

namespace
{

constexpr std::uint8_t good = 0x00;
constexpr std::uint8_t check_condition = 0x02;
constexpr std::uint8_t condition_met = 0x04;
constexpr std::uint8_t busy = 0x08;
constexpr std::uint8_t reservation_conflict = 0x18;
constexpr std::uint8_t command_terminated = 0x22;
constexpr std::uint8_t task_set_full = 0x28;
constexpr std::uint8_t aca_active = 0x30;
constexpr std::uint8_t task_aborted = 0x40;
constexpr std::uint16_t driver_sense = 0x08;

// Fixed format, MEDIUM ERROR, VALID, INFORMATION 0x1234, UNRECOVERED READ ERROR (0x11/0x00).
const Bytes fixed_medium_error{
    0xf0,                   // VALID | response code 0x70 (current, fixed)
    0x00,                   // obsolete
    0x03,                   // sense key: MEDIUM ERROR
    0x00, 0x00, 0x12, 0x34, // INFORMATION
    0x0a,                   // additional sense length: bytes 8..17
    0x00, 0x00, 0x00, 0x00, // command-specific information
    0x11, 0x00,             // ASC, ASCQ
    0x00,                   // FRU code
    0x00, 0x00, 0x00,       // sense-key specific
};

// The same error in descriptor format, carried by an information descriptor.
const Bytes descriptor_medium_error{
    0x72,                   // response code 0x72 (current, descriptor)
    0x03,                   // sense key: MEDIUM ERROR
    0x11, 0x00,             // ASC, ASCQ
    0x00, 0x00, 0x00,       // SDAT_OVFL, reserved
    0x0c,                   // additional sense length: one 12 byte descriptor
    0x00,                   // descriptor type: information
    0x0a,                   // additional length
    0x80,                   // VALID
    0x00,                   // reserved
    0x00, 0x00, 0x00, 0x00, // INFORMATION (8 bytes, big endian)
    0x00, 0x00, 0x12, 0x34,
};

Bytes fixed_sense(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq,
                  std::optional<std::uint32_t> info = std::nullopt, bool deferred = false)
{
    Bytes s(18, 0);
    s[0] = static_cast<std::uint8_t>((deferred ? 0x71 : 0x70) | (info ? 0x80 : 0x00));
    s[2] = key;
    const std::uint32_t value = info.value_or(0);
    for (int i = 0; i < 4; ++i)
        s[3 + i] = static_cast<std::uint8_t>(value >> (24 - 8 * i));
    s[7] = 10;
    s[12] = asc;
    s[13] = ascq;
    return s;
}

Bytes descriptor_sense(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq,
                       std::optional<std::uint64_t> info = std::nullopt, bool deferred = false)
{
    Bytes s{static_cast<std::uint8_t>(deferred ? 0x73 : 0x72), key, asc, ascq, 0, 0, 0, 0};
    if (info) {
        // push_back, not insert({...}): GCC 12 -O2 reports a false -Warray-bounds on it.
        for (std::uint8_t byte : {0x00, 0x0a, 0x80, 0x00})
            s.push_back(byte);
        for (int i = 0; i < 8; ++i)
            s.push_back(static_cast<std::uint8_t>(*info >> (56 - 8 * i)));
    }
    s[7] = static_cast<std::uint8_t>(s.size() - 8);
    return s;
}

CommandStatus check(const Bytes &sense)
{
    CommandStatus status;
    status.scsi_status = check_condition;
    status.driver_status = driver_sense;
    status.sense = sense;
    return status;
}

CommandOutcome classify_sense(const Bytes &sense, const char *what = "READ(10)")
{
    return classify(check(sense), what);
}

CommandStatus host(std::uint16_t host_status)
{
    CommandStatus status;
    status.host_status = host_status;
    return status;
}

bool contains(const std::string &text, const std::string &part)
{
    return text.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("to_string gives the snake_case stats key of every category")
{
    CHECK(std::string(to_string(ErrorCategory::ok)) == "ok");
    CHECK(std::string(to_string(ErrorCategory::recovered)) == "recovered");
    CHECK(std::string(to_string(ErrorCategory::unit_attention)) == "unit_attention");
    CHECK(std::string(to_string(ErrorCategory::aborted_command)) == "aborted_command");
    CHECK(std::string(to_string(ErrorCategory::not_ready)) == "not_ready");
    CHECK(std::string(to_string(ErrorCategory::medium_error)) == "medium_error");
    CHECK(std::string(to_string(ErrorCategory::hardware_error)) == "hardware_error");
    CHECK(std::string(to_string(ErrorCategory::illegal_request)) == "illegal_request");
    CHECK(std::string(to_string(ErrorCategory::lba_out_of_range)) == "lba_out_of_range");
    CHECK(std::string(to_string(ErrorCategory::data_protect)) == "data_protect");
    CHECK(std::string(to_string(ErrorCategory::reservation_conflict)) == "reservation_conflict");
    CHECK(std::string(to_string(ErrorCategory::busy)) == "busy");
    CHECK(std::string(to_string(ErrorCategory::transport_error)) == "transport_error");
    CHECK(std::string(to_string(ErrorCategory::driver_error)) == "driver_error");
    CHECK(std::string(to_string(ErrorCategory::timeout)) == "timeout");
    CHECK(std::string(to_string(ErrorCategory::other)) == "other");
}

TEST_CASE("decode_sense: fixed format with VALID gives the information field")
{
    const auto sense = decode_sense(fixed_medium_error);
    CHECK(sense.valid);
    CHECK(sense.response_code == 0x70);
    CHECK(sense.sense_key == 0x03);
    CHECK(sense.asc == 0x11);
    CHECK(sense.ascq == 0x00);
    REQUIRE(sense.information.has_value());
    CHECK(*sense.information == 0x1234);
}

TEST_CASE("decode_sense: descriptor format with an information descriptor")
{
    const auto sense = decode_sense(descriptor_medium_error);
    CHECK(sense.valid);
    CHECK(sense.response_code == 0x72);
    CHECK(sense.sense_key == 0x03);
    CHECK(sense.asc == 0x11);
    CHECK(sense.ascq == 0x00);
    REQUIRE(sense.information.has_value());
    CHECK(*sense.information == 0x1234);
}

TEST_CASE("decode_sense: descriptor format keeps all 64 bits of the information field")
{
    const auto sense = decode_sense(descriptor_sense(0x03, 0x11, 0x00, 0x0123456789abcdefULL));
    REQUIRE(sense.information.has_value());
    CHECK(*sense.information == 0x0123456789abcdefULL);
}

TEST_CASE("decode_sense: the information descriptor is found after other descriptors")
{
    const Bytes sense{
        0x72, 0x03, 0x11, 0x00, 0x00, 0x00, 0x00,
        0x14,                                           // additional length: 8 + 12
        0x02, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // sense key specific descriptor
        0x00, 0x0a, 0x80, 0x00,                         // information descriptor, VALID
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x56, 0x78,
    };
    const auto decoded = decode_sense(sense);
    REQUIRE(decoded.information.has_value());
    CHECK(*decoded.information == 0x5678);
}

TEST_CASE("decode_sense: no information without VALID")
{
    SUBCASE("fixed format, VALID clear")
    {
        Bytes sense = fixed_medium_error;
        sense[0] = 0x70;
        const auto decoded = decode_sense(sense);
        CHECK(decoded.valid);
        CHECK(decoded.sense_key == 0x03);
        CHECK(decoded.asc == 0x11);
        CHECK_FALSE(decoded.information.has_value());
    }
    SUBCASE("descriptor format, information descriptor with VALID clear")
    {
        Bytes sense = descriptor_medium_error;
        sense[10] = 0x00;
        CHECK_FALSE(decode_sense(sense).information.has_value());
    }
    SUBCASE("descriptor format without an information descriptor")
    {
        const auto decoded = decode_sense(descriptor_sense(0x03, 0x11, 0x00));
        CHECK(decoded.valid);
        CHECK(decoded.asc == 0x11);
        CHECK_FALSE(decoded.information.has_value());
    }
}

TEST_CASE("decode_sense: deferred errors are decoded with their response code")
{
    Bytes fixed = fixed_medium_error;
    fixed[0] = 0xf1; // VALID | 0x71
    const auto f = decode_sense(fixed);
    CHECK(f.valid);
    CHECK(f.response_code == 0x71);
    CHECK(f.sense_key == 0x03);
    CHECK(f.information == std::optional<std::uint64_t>{0x1234});

    Bytes desc = descriptor_medium_error;
    desc[0] = 0x73;
    const auto d = decode_sense(desc);
    CHECK(d.valid);
    CHECK(d.response_code == 0x73);
    CHECK(d.asc == 0x11);
    CHECK(d.information == std::optional<std::uint64_t>{0x1234});
}

TEST_CASE("decode_sense: empty or unrecognised buffers are not valid")
{
    CHECK_FALSE(decode_sense({}).valid);
    CHECK_FALSE(decode_sense(Bytes(18, 0)).valid);
    CHECK_FALSE(decode_sense(Bytes{0x7f, 0x00, 0x03, 0, 0, 0, 0, 10}).valid); // vendor specific
    CHECK_FALSE(decode_sense(Bytes{0x74, 0x03, 0x11, 0x00}).valid);
    CHECK_FALSE(decode_sense(Bytes{0x70}).valid); // no sense key yet
    CHECK_FALSE(decode_sense(Bytes{0x72}).valid);
}

// Every prefix of a sense buffer, each in its own exactly sized allocation so that AddressSanitizer
// sees any read past the end.
TEST_CASE("decode_sense: truncated fixed format never reads past the buffer")
{
    for (std::size_t n = 0; n <= fixed_medium_error.size(); ++n) {
        CAPTURE(n);
        const Bytes prefix(fixed_medium_error.begin(),
                           fixed_medium_error.begin() + static_cast<std::ptrdiff_t>(n));
        const auto sense = decode_sense(prefix);
        CHECK(sense.valid == (n >= 3));
        if (n >= 3)
            CHECK(sense.sense_key == 0x03);
        CHECK(sense.asc == (n >= 13 ? 0x11 : 0x00));
        CHECK(sense.information.has_value() == (n >= 7));
    }
}

TEST_CASE("decode_sense: truncated descriptor format never reads past the buffer")
{
    for (std::size_t n = 0; n <= descriptor_medium_error.size(); ++n) {
        CAPTURE(n);
        const Bytes prefix(descriptor_medium_error.begin(),
                           descriptor_medium_error.begin() + static_cast<std::ptrdiff_t>(n));
        const auto sense = decode_sense(prefix);
        CHECK(sense.valid == (n >= 2));
        CHECK(sense.asc == (n >= 3 ? 0x11 : 0x00));
        // A cut information descriptor must not produce a value built from missing bytes.
        CHECK(sense.information.has_value() == (n == descriptor_medium_error.size()));
    }
}

TEST_CASE("decode_sense: an additional length beyond the descriptor list is not trusted")
{
    Bytes sense = descriptor_medium_error;
    sense[7] = 0x08; // claims only 8 bytes of descriptors: the information descriptor is cut
    CHECK_FALSE(decode_sense(sense).information.has_value());

    Bytes fixed = fixed_medium_error;
    fixed[7] = 0x04; // fixed format cut before the ASC
    const auto decoded = decode_sense(fixed);
    CHECK(decoded.valid);
    CHECK(decoded.asc == 0x00);
}

TEST_CASE("decode_sense: oversized buffers are fine")
{
    Bytes sense = fixed_medium_error;
    sense.resize(400, 0xff);
    const auto decoded = decode_sense(sense);
    CHECK(decoded.valid);
    CHECK(decoded.asc == 0x11);
    CHECK(decoded.information == std::optional<std::uint64_t>{0x1234});
}

TEST_CASE("classify: medium error names the failing LBA")
{
    SUBCASE("fixed format")
    {
        const auto out = classify_sense(fixed_medium_error);
        CHECK(out.category == ErrorCategory::medium_error);
        CHECK(out.error == EIO);
        CHECK_FALSE(out.retryable);
        CHECK_FALSE(out.ok());
        CHECK(out.sense.information == std::optional<std::uint64_t>{0x1234});
        CHECK(out.message == "READ(10): medium error at LBA 4660 (0x1234): Unrecovered read error");
    }
    SUBCASE("descriptor format")
    {
        const auto out = classify_sense(descriptor_medium_error, "READ(16)");
        CHECK(out.category == ErrorCategory::medium_error);
        CHECK(out.error == EIO);
        CHECK(out.sense.information == std::optional<std::uint64_t>{0x1234});
        CHECK(out.message == "READ(16): medium error at LBA 4660 (0x1234): Unrecovered read error");
    }
    SUBCASE("without VALID there is no LBA to name")
    {
        Bytes sense = fixed_medium_error;
        sense[0] = 0x70;
        const auto out = classify_sense(sense);
        CHECK(out.category == ErrorCategory::medium_error);
        CHECK_FALSE(contains(out.message, "LBA"));
        CHECK(out.message == "READ(10): medium error: Unrecovered read error");
    }
    SUBCASE("medium errors the device has not given up on may be retried")
    {
        const auto out = classify_sense(fixed_sense(0x03, 0x0c, 0x00)); // write error
        CHECK(out.category == ErrorCategory::medium_error);
        CHECK(out.error == EIO);
        CHECK(out.retryable);
    }
}

TEST_CASE("classify: deferred errors keep their category and say so")
{
    SUBCASE("fixed 0x71")
    {
        Bytes sense = fixed_medium_error;
        sense[0] = 0xf1;
        const auto out = classify_sense(sense);
        CHECK(out.category == ErrorCategory::medium_error);
        CHECK(out.error == EIO);
        CHECK(out.sense.response_code == 0x71);
        CHECK(contains(out.message, "deferred medium error at LBA 4660"));
        CHECK(contains(out.message, "earlier command"));
    }
    SUBCASE("descriptor 0x73")
    {
        const auto out = classify_sense(descriptor_sense(0x07, 0x27, 0x00, std::nullopt, true));
        CHECK(out.category == ErrorCategory::data_protect);
        CHECK(out.error == EROFS);
        CHECK(contains(out.message, "deferred"));
    }
}

TEST_CASE("classify: recovered errors succeed and are counted")
{
    const auto out = classify_sense(fixed_sense(0x01, 0x17, 0x01, 0x99));
    CHECK(out.category == ErrorCategory::recovered);
    CHECK(out.error == 0);
    CHECK(out.ok());
    CHECK_FALSE(out.retryable);
    CHECK(contains(out.message, "recovered error at LBA 153 (0x99)"));
}

TEST_CASE("classify: not ready")
{
    SUBCASE("medium not present")
    {
        const auto out = classify_sense(fixed_sense(0x02, 0x3a, 0x00));
        CHECK(out.category == ErrorCategory::not_ready);
        CHECK(out.error == ENOMEDIUM);
        CHECK_FALSE(out.retryable);
        CHECK(contains(out.message, "not ready: Medium not present"));
    }
    SUBCASE("becoming ready")
    {
        const auto out = classify_sense(descriptor_sense(0x02, 0x04, 0x01));
        CHECK(out.category == ErrorCategory::not_ready);
        CHECK(out.error == EBUSY);
        CHECK(out.retryable);
    }
    SUBCASE("initializing command required will not pass by waiting")
    {
        const auto out = classify_sense(fixed_sense(0x02, 0x04, 0x02));
        CHECK(out.category == ErrorCategory::not_ready);
        CHECK(out.error == EIO);
        CHECK_FALSE(out.retryable);
    }
}

TEST_CASE("classify: hardware error")
{
    const auto out = classify_sense(fixed_sense(0x04, 0x44, 0x00, 0x10));
    CHECK(out.category == ErrorCategory::hardware_error);
    CHECK(out.error == EIO);
    CHECK_FALSE(out.retryable);
    CHECK(contains(out.message, "hardware error at LBA 16 (0x10)"));
}

TEST_CASE("classify: illegal request")
{
    SUBCASE("LBA out of range")
    {
        const auto out = classify_sense(fixed_sense(0x05, 0x21, 0x00));
        CHECK(out.category == ErrorCategory::lba_out_of_range);
        CHECK(out.error == EINVAL);
        CHECK_FALSE(out.retryable);
    }
    SUBCASE("invalid command operation code")
    {
        const auto out = classify_sense(descriptor_sense(0x05, 0x20, 0x00));
        CHECK(out.category == ErrorCategory::illegal_request);
        CHECK(out.error == EOPNOTSUPP);
    }
    SUBCASE("invalid field in CDB: the command in this form is not supported")
    {
        const auto out = classify_sense(fixed_sense(0x05, 0x24, 0x00));
        CHECK(out.category == ErrorCategory::illegal_request);
        CHECK(out.error == EOPNOTSUPP);
        CHECK(contains(out.message, "illegal request: Invalid field in cdb"));
    }
    SUBCASE("invalid field in parameter list")
    {
        const auto out = classify_sense(fixed_sense(0x05, 0x26, 0x00));
        CHECK(out.category == ErrorCategory::illegal_request);
        CHECK(out.error == EOPNOTSUPP);
    }
    SUBCASE("other illegal requests stay EINVAL (parameter list length error)")
    {
        const auto out = classify_sense(fixed_sense(0x05, 0x1a, 0x00));
        CHECK(out.category == ErrorCategory::illegal_request);
        CHECK(out.error == EINVAL);
    }
}

TEST_CASE("classify: unit attentions are retryable")
{
    struct Code {
        std::uint8_t asc;
        std::uint8_t ascq;
    };
    // power on/reset, reported LUNs data changed, mode parameters changed, medium may have changed
    for (const Code code :
         {Code{0x29, 0x00}, Code{0x3f, 0x0e}, Code{0x2a, 0x01}, Code{0x28, 0x00}}) {
        CAPTURE(code.asc);
        CAPTURE(code.ascq);
        const auto out = classify_sense(fixed_sense(0x06, code.asc, code.ascq));
        CHECK(out.category == ErrorCategory::unit_attention);
        CHECK(out.error == EIO);
        CHECK(out.retryable);
    }
}

TEST_CASE("classify: data protect")
{
    SUBCASE("write protected")
    {
        const auto out = classify_sense(fixed_sense(0x07, 0x27, 0x00), "WRITE(16)");
        CHECK(out.category == ErrorCategory::data_protect);
        CHECK(out.error == EROFS);
        CHECK_FALSE(out.retryable);
        CHECK(out.message == "WRITE(16): data protect: Write protected");
    }
    SUBCASE("thin provisioning space exhausted")
    {
        const auto out = classify_sense(fixed_sense(0x07, 0x27, 0x07), "WRITE(16)");
        CHECK(out.category == ErrorCategory::data_protect);
        CHECK(out.error == ENOSPC);
    }
}

TEST_CASE("classify: aborted command")
{
    const auto out = classify_sense(fixed_sense(0x0b, 0x47, 0x00));
    CHECK(out.category == ErrorCategory::aborted_command);
    CHECK(out.error == EIO);
    CHECK(out.retryable);

    const auto pi = classify_sense(fixed_sense(0x0b, 0x10, 0x01)); // guard check failed
    CHECK(pi.category == ErrorCategory::aborted_command);
    CHECK(pi.error == EILSEQ);
    CHECK_FALSE(pi.retryable);
}

TEST_CASE("classify: remaining sense keys are other/EIO")
{
    for (const std::uint8_t key : {0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x0e}) {
        CAPTURE(key);
        const auto out = classify_sense(fixed_sense(key, 0x00, 0x00));
        CHECK(out.category == ErrorCategory::other);
        CHECK(out.error == EIO);
        CHECK_FALSE(out.retryable);
    }
    CHECK(classify_sense(fixed_sense(0x0e, 0x1d, 0x00)).message ==
          "READ(10): miscompare: Miscompare during verify operation");
}

TEST_CASE("classify: NO SENSE with a check condition is not success")
{
    const auto out = classify_sense(fixed_sense(0x00, 0x00, 0x00));
    CHECK(out.category == ErrorCategory::other);
    CHECK(out.error == EIO);
    CHECK(out.retryable);

    const auto ata = classify_sense(descriptor_sense(0x00, 0x00, 0x1d));
    CHECK(ata.category == ErrorCategory::ok);
    CHECK(ata.ok());
}

TEST_CASE("classify: check condition without usable sense")
{
    const Bytes empty;
    const Bytes garbage{0x00, 0x00, 0x03};
    for (const Bytes *sense : {&empty, &garbage}) {
        const auto out = classify_sense(*sense);
        CHECK(out.category == ErrorCategory::other);
        CHECK(out.error == EIO);
        CHECK_FALSE(out.retryable);
        CHECK_FALSE(out.sense.valid);
        CHECK(out.message == "READ(10): check condition without valid sense data");
    }
}

TEST_CASE("classify: truncated sense with a check condition")
{
    for (const Bytes *full : {&fixed_medium_error, &descriptor_medium_error}) {
        for (std::size_t n = 0; n <= full->size(); ++n) {
            CAPTURE(n);
            const Bytes prefix(full->begin(), full->begin() + static_cast<std::ptrdiff_t>(n));
            const auto out = classify_sense(prefix);
            CHECK(out.error == EIO);
            CHECK_FALSE(out.message.empty());
            if (out.sense.valid)
                CHECK(out.category == ErrorCategory::medium_error);
            else
                CHECK(out.category == ErrorCategory::other);
        }
    }
}

TEST_CASE("classify: COMMAND TERMINATED is judged by its sense like CHECK CONDITION")
{
    CommandStatus status = check(fixed_medium_error);
    status.scsi_status = command_terminated;
    const auto out = classify(status, "READ(10)");
    CHECK(out.category == ErrorCategory::medium_error);
    CHECK(out.sense.information == std::optional<std::uint64_t>{0x1234});
}

TEST_CASE("classify: good status")
{
    CommandStatus status;
    auto out = classify(status, "READ(10)");
    CHECK(out.category == ErrorCategory::ok);
    CHECK(out.error == 0);
    CHECK(out.ok());
    CHECK_FALSE(out.retryable);
    CHECK(out.message == "READ(10): ok");

    status.scsi_status = condition_met;
    CHECK(classify(status, "PRE-FETCH(10)").ok());

    // Sense that comes with GOOD status does not turn it into an error.
    CommandStatus with_sense = check(fixed_medium_error);
    with_sense.scsi_status = good;
    out = classify(with_sense, "READ(10)");
    CHECK(out.ok());
    CHECK(out.sense.valid);
}

TEST_CASE("classify: timeouts")
{
    CommandStatus flagged;
    flagged.timed_out = true;
    CommandStatus driver;
    driver.driver_status = 0x06;
    CommandStatus driver_suggest; // the obsolete SUGGEST_* bits ride in the upper nibble
    driver_suggest.driver_status = 0x26;
    CommandStatus did = host(0x03);
    CommandStatus with_sense = check(fixed_medium_error); // the timeout verdict wins
    with_sense.timed_out = true;

    for (const CommandStatus *status : {&flagged, &driver, &driver_suggest, &did, &with_sense}) {
        const auto out = classify(*status, "READ(10)");
        CHECK(out.category == ErrorCategory::timeout);
        CHECK(out.error == ETIMEDOUT);
        CHECK_FALSE(out.retryable);
        CHECK(out.message.starts_with("READ(10): timed out"));
    }
    CHECK(classify(flagged, "READ(10)").message == "READ(10): timed out");
}

TEST_CASE("classify: host status")
{
    struct Case {
        std::uint16_t code;
        ErrorCategory category;
        int error;
        bool retryable;
        const char *name;
    };
    const ErrorCategory transport = ErrorCategory::transport_error;
    const Case cases[] = {
        {0x01, transport, ENODEV, false, "DID_NO_CONNECT"},
        {0x02, transport, EIO, true, "DID_BUS_BUSY"},
        {0x04, transport, ENODEV, false, "DID_BAD_TARGET"},
        {0x05, transport, EIO, false, "DID_ABORT"},
        {0x06, transport, EIO, true, "DID_PARITY"},
        {0x07, transport, EIO, true, "DID_ERROR"},
        {0x08, transport, EIO, true, "DID_RESET"},
        {0x09, transport, EIO, false, "DID_BAD_INTR"},
        {0x0a, transport, EIO, false, "DID_PASSTHROUGH"},
        {0x0b, transport, EIO, true, "DID_SOFT_ERROR"},
        {0x0c, transport, EIO, true, "DID_IMM_RETRY"},
        {0x0d, transport, EIO, true, "DID_REQUEUE"},
        {0x0e, transport, EIO, true, "DID_TRANSPORT_DISRUPTED"},
        {0x0f, transport, EIO, false, "DID_TRANSPORT_FAILFAST"},
        {0x10, ErrorCategory::other, EIO, false, "DID_TARGET_FAILURE"},
        {0x11, ErrorCategory::reservation_conflict, EACCES, false, "DID_NEXUS_FAILURE"},
        {0x12, ErrorCategory::data_protect, ENOSPC, false, "DID_ALLOC_FAILURE"},
        {0x13, ErrorCategory::medium_error, EIO, false, "DID_MEDIUM_ERROR"},
        {0x14, transport, EIO, false, "DID_TRANSPORT_MARGINAL"},
        {0x3c, transport, EIO, false, "0x3c"},
    };
    for (const Case &c : cases) {
        CAPTURE(c.name);
        const auto out = classify(host(c.code), "READ(16)");
        CHECK(out.category == c.category);
        CHECK(out.error == c.error);
        CHECK(out.retryable == c.retryable);
        CHECK(contains(out.message, c.name));
    }
    CHECK(classify(host(0x01), "READ(16)").message ==
          "READ(16): transport error: DID_NO_CONNECT (device unreachable)");
}

TEST_CASE("classify: the host status outranks the SCSI status and the sense")
{
    CommandStatus status = check(fixed_medium_error);
    status.host_status = 0x01;
    const auto out = classify(status, "READ(10)");
    CHECK(out.category == ErrorCategory::transport_error);
    CHECK(out.error == ENODEV);
    CHECK(out.sense.valid); // still decoded for the log
}

TEST_CASE("classify: host statuses the kernel derives from sense defer to that sense")
{
    CommandStatus medium = check(fixed_medium_error);
    medium.host_status = 0x13; // DID_MEDIUM_ERROR
    auto out = classify(medium, "READ(10)");
    CHECK(out.category == ErrorCategory::medium_error);
    CHECK(contains(out.message, "LBA 4660"));

    const Bytes protect = fixed_sense(0x07, 0x27, 0x00);
    CommandStatus target = check(protect);
    target.host_status = 0x10; // DID_TARGET_FAILURE
    out = classify(target, "WRITE(10)");
    CHECK(out.category == ErrorCategory::data_protect);
    CHECK(out.error == EROFS);

    CommandStatus conflict;
    conflict.host_status = 0x07; // DID_ERROR
    conflict.scsi_status = reservation_conflict;
    out = classify(conflict, "WRITE(10)");
    CHECK(out.category == ErrorCategory::reservation_conflict);
}

TEST_CASE("classify: driver status")
{
    for (const std::uint16_t code : {0x01, 0x02, 0x03, 0x04, 0x05, 0x07}) {
        CAPTURE(code);
        CommandStatus status;
        status.driver_status = code;
        const auto out = classify(status, "READ(10)");
        CHECK(out.category == ErrorCategory::driver_error);
        CHECK(out.error == EIO);
        CHECK_FALSE(out.retryable);
    }
    CommandStatus error;
    error.driver_status = 0x04;
    CHECK(classify(error, "READ(10)").message == "READ(10): driver error: DRIVER_ERROR");

    CommandStatus sense_only; // DRIVER_SENSE just says the sense buffer was filled
    sense_only.driver_status = driver_sense;
    CHECK(classify(sense_only, "READ(10)").ok());
}

TEST_CASE("classify: SCSI status without sense")
{
    for (const std::uint8_t code : {busy, task_set_full}) {
        CommandStatus status;
        status.scsi_status = code;
        const auto out = classify(status, "READ(10)");
        CHECK(out.category == ErrorCategory::busy);
        CHECK(out.error == EBUSY);
        CHECK(out.retryable);
        CHECK(out.message.starts_with("READ(10): busy: "));
    }

    CommandStatus conflict;
    conflict.scsi_status = reservation_conflict;
    auto out = classify(conflict, "WRITE(10)");
    CHECK(out.category == ErrorCategory::reservation_conflict);
    CHECK(out.error == EACCES);
    CHECK_FALSE(out.retryable);

    CommandStatus aborted;
    aborted.scsi_status = task_aborted;
    out = classify(aborted, "READ(10)");
    CHECK(out.category == ErrorCategory::aborted_command);
    CHECK(out.error == EIO);
    CHECK(out.retryable);

    for (const std::uint8_t code : {aca_active, std::uint8_t{0x7e}}) {
        CommandStatus odd;
        odd.scsi_status = code;
        out = classify(odd, "READ(10)");
        CHECK(out.category == ErrorCategory::other);
        CHECK(out.error == EIO);
        CHECK(contains(out.message, "unexpected status"));
    }
}

TEST_CASE("classify: a missing command name does not crash")
{
    CommandStatus status;
    status.timed_out = true;
    CHECK(classify(status, nullptr).message == "command: timed out");
}
