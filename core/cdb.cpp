// CDB builders and reply decoders. Field offsets are those of SPC-4 / SBC-3; see cdb.hpp.

#include "sgfs/cdb.hpp"

#include "byte_order.hpp"
#include "sgfs/hex.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <concepts>
#include <limits>
#include <optional>
#include <scsi/sg_lib.h>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace sgfs
{
namespace
{

using byte_order::get_be;
using byte_order::put_be;

using Bytes = std::span<const std::uint8_t>;

constexpr std::uint8_t evpd_bit = 0x01;       // INQUIRY byte 1
constexpr std::uint8_t fua_bit = 0x08;        // READ/WRITE(10)/(16) byte 1
constexpr std::uint8_t dbd_bit = 0x08;        // MODE SENSE(10) byte 1
constexpr std::uint8_t page_code_mask = 0x3f; // MODE SENSE page code; PC (bits 7-6) stays 0
constexpr std::uint8_t read_capacity_16_service_action = 0x10;
constexpr std::uint8_t get_lba_status_service_action = 0x12;
constexpr std::uint8_t write_same_unmap_bit = 0x08; // WRITE SAME(16) byte 1

constexpr std::size_t unmap_header_size = 8;
constexpr std::size_t unmap_descriptor_size = 16;
// The whole list must fit the 16-bit PARAMETER LIST LENGTH of the UNMAP CDB.
constexpr std::size_t unmap_max_descriptors =
    (std::numeric_limits<std::uint16_t>::max() - unmap_header_size) / unmap_descriptor_size;

constexpr std::size_t vpd_header_size = 4;
constexpr std::size_t inquiry_min_size = 5; // through ADDITIONAL LENGTH
constexpr std::size_t designator_header_size = 4;
constexpr std::size_t read_capacity_10_size = 8;
constexpr std::size_t read_capacity_16_size = 32;
constexpr std::size_t mode_parameter_header_10_size = 8;
constexpr std::size_t lba_status_header_size = 8;
constexpr std::size_t lba_status_descriptor_size = 16;
constexpr std::uint8_t provisioning_status_mask = 0x0f;

namespace designator_type
{
constexpr std::uint8_t t10_vendor_id = 1;
constexpr std::uint8_t eui64 = 2;
constexpr std::uint8_t naa = 3;
constexpr std::uint8_t scsi_name_string = 8;
} // namespace designator_type

namespace code_set
{
constexpr std::uint8_t ascii = 2;
constexpr std::uint8_t utf8 = 3;
} // namespace code_set

constexpr std::uint8_t association_logical_unit = 0;

// ---- builders ----

Cdb make_cdb(std::uint8_t op, std::uint8_t length)
{
    Cdb cdb;
    cdb.bytes[0] = op;
    cdb.length = length;
    return cdb;
}

std::span<std::uint8_t> at(Cdb &cdb, std::size_t offset)
{
    return std::span<std::uint8_t>(cdb.bytes).subspan(offset);
}

Cdb transfer_10(std::uint8_t op, std::uint32_t lba, std::uint16_t blocks, bool fua)
{
    Cdb cdb = make_cdb(op, 10);
    cdb.bytes[1] = fua ? fua_bit : 0;
    put_be(at(cdb, 2), lba);
    put_be(at(cdb, 7), blocks);
    return cdb;
}

Cdb transfer_16(std::uint8_t op, std::uint64_t lba, std::uint32_t blocks, bool fua)
{
    Cdb cdb = make_cdb(op, 16);
    cdb.bytes[1] = fua ? fua_bit : 0;
    put_be(at(cdb, 2), lba);
    put_be(at(cdb, 10), blocks);
    return cdb;
}

// (10) is the form every device implements, but it is only usable when the whole range, its
// last block included, is addressable with 32 bits.
bool fits_10(std::uint64_t lba, std::uint32_t blocks)
{
    constexpr std::uint64_t max_lba_10 = std::numeric_limits<std::uint32_t>::max();
    if (lba > max_lba_10 || blocks > std::numeric_limits<std::uint16_t>::max()) {
        return false;
    }
    return blocks == 0 || lba + blocks - 1 <= max_lba_10;
}

// ---- decoder helpers ----

bool is_trimmed(char c)
{
    return c == ' ' || c == '\0';
}

std::string_view trim_trailing(std::string_view text)
{
    while (!text.empty() && is_trimmed(text.back())) {
        text.remove_suffix(1);
    }
    return text;
}

std::string_view trim(std::string_view text)
{
    text = trim_trailing(text);
    while (!text.empty() && is_trimmed(text.front())) {
        text.remove_prefix(1);
    }
    return text;
}

std::string as_string(Bytes bytes)
{
    return {bytes.begin(), bytes.end()};
}

// The bytes of [begin, end) that the reply holds; a short reply yields a short or empty field.
Bytes present_part(Bytes data, std::size_t begin, std::size_t end)
{
    if (begin >= data.size()) {
        return {};
    }
    return data.subspan(begin, std::min(end, data.size()) - begin);
}

std::string inquiry_text(Bytes data, std::size_t begin, std::size_t end)
{
    std::string text = as_string(present_part(data, begin, end));
    text.resize(trim_trailing(text).size());
    return text;
}

enum class Truncation { reject, accept };

// The page, header included, cut to PAGE LENGTH. With Truncation::reject a page longer than
// the reply is an error, because a partial list would silently hide entries.
std::optional<Bytes> vpd_page(Bytes data, std::uint8_t page_code, Truncation truncation)
{
    if (data.size() < vpd_header_size || data[1] != page_code) {
        return std::nullopt;
    }
    const std::size_t size = vpd_header_size + get_be<std::uint16_t>(data.subspan(2));
    if (size > data.size()) {
        if (truncation == Truncation::reject) {
            return std::nullopt;
        }
        return data;
    }
    return data.first(size);
}

// Parses the descriptor at the start of rest and returns its total size, 0 when it overruns.
std::size_t parse_designator(Bytes rest, Designator &out)
{
    if (rest.size() < designator_header_size) {
        return 0;
    }
    const std::size_t length = rest[3];
    if (rest.size() - designator_header_size < length) {
        return 0;
    }
    out.code_set = rest[0] & 0x0f;
    out.association = (rest[1] >> 4) & 0x03;
    out.type = rest[1] & 0x0f;
    const Bytes value = rest.subspan(designator_header_size, length);
    out.value.assign(value.begin(), value.end());
    return designator_header_size + length;
}

template <std::unsigned_integral T> void get_if_present(Bytes page, std::size_t offset, T &field)
{
    if (page.size() >= offset + sizeof(T)) {
        field = get_be<T>(page.subspan(offset));
    }
}

// ---- stable ids ----

bool is_file_name_safe(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

// Text designators end at the first NUL: SCSI name strings are NUL-terminated and padded.
std::string sanitized_text(std::span<const std::uint8_t> bytes, bool collapse_spaces)
{
    const std::string raw = as_string(bytes);
    const std::string_view text = trim(std::string_view(raw).substr(0, raw.find('\0')));
    std::string out;
    bool after_space = false;
    for (const char c : text) {
        const bool space = c == ' ';
        if (!(collapse_spaces && space && after_space)) {
            out += is_file_name_safe(c) ? c : '_';
        }
        after_space = space;
    }
    return out;
}

std::string designator_body(const Designator &designator)
{
    if (designator.code_set != code_set::ascii && designator.code_set != code_set::utf8) {
        return hex_bytes(designator.value);
    }
    // T10 vendor ids pad the vendor field with spaces; one '_' per gap keeps ids readable.
    const bool collapse = designator.type == designator_type::t10_vendor_id;
    return sanitized_text(designator.value, collapse);
}

struct IdPreference {
    std::uint8_t type;
    std::string_view prefix;
};

// udev's by-id order: globally unique binary names first, vendor-scoped text last.
constexpr std::array<IdPreference, 4> id_preferences{{
    {designator_type::naa, "wwn-0x"},
    {designator_type::eui64, "eui-"},
    {designator_type::scsi_name_string, "scsi-"},
    {designator_type::t10_vendor_id, "t10-"},
}};

} // namespace

// ---- builders ----

Cdb cdb_test_unit_ready()
{
    return make_cdb(opcode::test_unit_ready, 6);
}

Cdb cdb_inquiry(bool evpd, std::uint8_t page_code, std::uint16_t allocation_length)
{
    Cdb cdb = make_cdb(opcode::inquiry, 6);
    cdb.bytes[1] = evpd ? evpd_bit : 0;
    cdb.bytes[2] = page_code;
    put_be(at(cdb, 3), allocation_length);
    return cdb;
}

Cdb cdb_read_capacity_10()
{
    return make_cdb(opcode::read_capacity_10, 10);
}

Cdb cdb_read_capacity_16(std::uint32_t allocation_length)
{
    Cdb cdb = make_cdb(opcode::service_action_in_16, 16);
    cdb.bytes[1] = read_capacity_16_service_action;
    put_be(at(cdb, 10), allocation_length);
    return cdb;
}

Cdb cdb_read(std::uint64_t lba, std::uint32_t blocks, bool fua)
{
    if (fits_10(lba, blocks)) {
        return cdb_read_10(static_cast<std::uint32_t>(lba), static_cast<std::uint16_t>(blocks),
                           fua);
    }
    return cdb_read_16(lba, blocks, fua);
}

Cdb cdb_write(std::uint64_t lba, std::uint32_t blocks, bool fua)
{
    if (fits_10(lba, blocks)) {
        return cdb_write_10(static_cast<std::uint32_t>(lba), static_cast<std::uint16_t>(blocks),
                            fua);
    }
    return cdb_write_16(lba, blocks, fua);
}

Cdb cdb_read_10(std::uint32_t lba, std::uint16_t blocks, bool fua)
{
    return transfer_10(opcode::read_10, lba, blocks, fua);
}

Cdb cdb_write_10(std::uint32_t lba, std::uint16_t blocks, bool fua)
{
    return transfer_10(opcode::write_10, lba, blocks, fua);
}

Cdb cdb_read_16(std::uint64_t lba, std::uint32_t blocks, bool fua)
{
    return transfer_16(opcode::read_16, lba, blocks, fua);
}

Cdb cdb_write_16(std::uint64_t lba, std::uint32_t blocks, bool fua)
{
    return transfer_16(opcode::write_16, lba, blocks, fua);
}

Cdb cdb_synchronize_cache_10(std::uint32_t lba, std::uint16_t blocks)
{
    return transfer_10(opcode::synchronize_cache_10, lba, blocks, false);
}

Cdb cdb_synchronize_cache_16(std::uint64_t lba, std::uint32_t blocks)
{
    return transfer_16(opcode::synchronize_cache_16, lba, blocks, false);
}

Cdb cdb_mode_sense_10(std::uint8_t page_code, std::uint16_t allocation_length, bool dbd)
{
    Cdb cdb = make_cdb(opcode::mode_sense_10, 10);
    cdb.bytes[1] = dbd ? dbd_bit : 0;
    cdb.bytes[2] = page_code & page_code_mask;
    put_be(at(cdb, 7), allocation_length);
    return cdb;
}

Cdb cdb_unmap(std::uint16_t parameter_list_length)
{
    Cdb cdb = make_cdb(opcode::unmap, 10);
    put_be(at(cdb, 7), parameter_list_length);
    return cdb;
}

Cdb cdb_write_same_16(std::uint64_t lba, std::uint32_t blocks, bool unmap)
{
    Cdb cdb = make_cdb(opcode::write_same_16, 16);
    cdb.bytes[1] = unmap ? write_same_unmap_bit : 0;
    put_be(at(cdb, 2), lba);
    put_be(at(cdb, 10), blocks);
    return cdb;
}

Cdb cdb_get_lba_status(std::uint64_t lba, std::uint32_t allocation_length)
{
    Cdb cdb = make_cdb(opcode::service_action_in_16, 16);
    cdb.bytes[1] = get_lba_status_service_action;
    put_be(at(cdb, 2), lba);
    put_be(at(cdb, 10), allocation_length);
    return cdb;
}

std::vector<std::uint8_t> unmap_parameter_list(std::span<const UnmapRange> ranges)
{
    if (ranges.size() > unmap_max_descriptors) {
        throw std::length_error("UNMAP parameter list longer than 65535 bytes");
    }
    const std::size_t descriptors_size = ranges.size() * unmap_descriptor_size;
    std::vector<std::uint8_t> list(unmap_header_size + descriptors_size);
    const std::span<std::uint8_t> out(list);
    // UNMAP DATA LENGTH counts the bytes after itself: the rest of the header plus descriptors.
    put_be(out, static_cast<std::uint16_t>(descriptors_size + unmap_header_size - 2));
    put_be(out.subspan(2), static_cast<std::uint16_t>(descriptors_size));
    std::size_t offset = unmap_header_size;
    for (const UnmapRange &range : ranges) {
        put_be(out.subspan(offset), range.lba);
        put_be(out.subspan(offset + 8), range.blocks);
        offset += unmap_descriptor_size;
    }
    return list;
}

// ---- decoders ----

// Fields are decoded from the bytes actually returned rather than from ADDITIONAL LENGTH,
// which some devices misreport; what a short reply lacks stays empty.
int decode_standard_inquiry(std::span<const std::uint8_t> data, StandardInquiry &out)
{
    if (data.size() < inquiry_min_size) {
        return -EPROTO;
    }
    StandardInquiry inquiry;
    inquiry.peripheral_qualifier = data[0] >> 5;
    inquiry.peripheral_device_type = data[0] & 0x1f;
    inquiry.removable = (data[1] & 0x80) != 0;
    inquiry.version = data[2];
    inquiry.vendor = inquiry_text(data, 8, 16);
    inquiry.product = inquiry_text(data, 16, 32);
    inquiry.revision = inquiry_text(data, 32, 36);
    inquiry.third_party_copy = data.size() > 5 && (data[5] & 0x08) != 0;
    out = std::move(inquiry);
    return 0;
}

int decode_vpd_supported_pages(std::span<const std::uint8_t> data, std::vector<std::uint8_t> &pages)
{
    const auto page = vpd_page(data, vpd::supported_pages, Truncation::reject);
    if (!page) {
        return -EPROTO;
    }
    const Bytes codes = page->subspan(vpd_header_size);
    pages.assign(codes.begin(), codes.end());
    return 0;
}

int decode_vpd_unit_serial(std::span<const std::uint8_t> data, std::string &serial)
{
    const auto page = vpd_page(data, vpd::unit_serial_number, Truncation::reject);
    if (!page) {
        return -EPROTO;
    }
    // Devices pad the serial on either side, with spaces or NULs, to a fixed field width.
    const std::string raw = as_string(page->subspan(vpd_header_size));
    serial = std::string(trim(raw));
    return 0;
}

int decode_vpd_device_identification(std::span<const std::uint8_t> data,
                                     std::vector<Designator> &designators)
{
    const auto page = vpd_page(data, vpd::device_identification, Truncation::reject);
    if (!page) {
        return -EPROTO;
    }
    std::vector<Designator> found;
    Bytes rest = page->subspan(vpd_header_size);
    while (!rest.empty()) {
        Designator designator;
        const std::size_t size = parse_designator(rest, designator);
        if (size == 0) {
            return -EPROTO;
        }
        found.push_back(std::move(designator));
        rest = rest.subspan(size);
    }
    designators = std::move(found);
    return 0;
}

std::string stable_id_from_designators(std::span<const Designator> designators)
{
    for (const IdPreference &preference : id_preferences) {
        for (const Designator &designator : designators) {
            if (designator.association != association_logical_unit ||
                designator.type != preference.type) {
                continue;
            }
            std::string body = designator_body(designator);
            if (!body.empty()) {
                return std::string(preference.prefix) + body;
            }
        }
    }
    return {};
}

std::string stable_id_from_serial(std::string_view serial)
{
    const auto *bytes = reinterpret_cast<const std::uint8_t *>(serial.data());
    std::string body = sanitized_text({bytes, serial.size()}, true);
    return body.empty() ? std::string() : "serial-" + body;
}

// SBC-2 devices return a shorter page than SBC-3's 0x3c bytes; fields they lack stay 0, which
// means "not reported".
int decode_vpd_block_limits(std::span<const std::uint8_t> data, BlockLimits &out)
{
    const auto page = vpd_page(data, vpd::block_limits, Truncation::accept);
    if (!page) {
        return -EPROTO;
    }
    BlockLimits limits;
    get_if_present(*page, 6, limits.optimal_transfer_length_granularity);
    get_if_present(*page, 8, limits.maximum_transfer_length);
    get_if_present(*page, 12, limits.optimal_transfer_length);
    get_if_present(*page, 20, limits.maximum_unmap_lba_count);
    get_if_present(*page, 24, limits.maximum_unmap_block_descriptor_count);
    get_if_present(*page, 28, limits.optimal_unmap_granularity);
    std::uint32_t alignment = 0;
    get_if_present(*page, 32, alignment);
    // UGAVALID is the top bit of the 4-byte field; the alignment is the other 31 bits.
    limits.unmap_granularity_alignment_valid = (alignment & 0x80000000U) != 0;
    limits.unmap_granularity_alignment = alignment & 0x7fffffffU;
    get_if_present(*page, 36, limits.maximum_write_same_length);
    out = limits;
    return 0;
}

// Byte 5 holds the flags; a reply cut before it is malformed, since LBPU and LBPRZ are the
// reason to read the page at all.
int decode_vpd_logical_block_provisioning(std::span<const std::uint8_t> data,
                                          LogicalBlockProvisioning &out)
{
    const auto page = vpd_page(data, vpd::logical_block_provisioning, Truncation::accept);
    if (!page || page->size() < 6) {
        return -EPROTO;
    }
    LogicalBlockProvisioning lbp;
    lbp.threshold_exponent = (*page)[4];
    const std::uint8_t flags = (*page)[5];
    lbp.lbpu = (flags & 0x80) != 0;
    lbp.lbpws = (flags & 0x40) != 0;
    lbp.lbpws10 = (flags & 0x20) != 0;
    lbp.lbprz = (flags & 0x04) != 0;
    lbp.anc_sup = (flags & 0x02) != 0;
    if (page->size() > 6) {
        lbp.provisioning_type = (*page)[6] & 0x07;
    }
    out = lbp;
    return 0;
}

// A zero block length would make every later size computation divide by zero.
int decode_read_capacity_10(std::span<const std::uint8_t> data, Capacity &out)
{
    if (data.size() < read_capacity_10_size) {
        return -EPROTO;
    }
    Capacity capacity;
    capacity.last_lba = get_be<std::uint32_t>(data);
    capacity.logical_block_size = get_be<std::uint32_t>(data.subspan(4));
    if (capacity.logical_block_size == 0) {
        return -EPROTO;
    }
    capacity.physical_block_size = capacity.logical_block_size;
    out = capacity;
    return 0;
}

int decode_read_capacity_16(std::span<const std::uint8_t> data, Capacity &out)
{
    if (data.size() < read_capacity_16_size) {
        return -EPROTO;
    }
    Capacity capacity;
    capacity.last_lba = get_be<std::uint64_t>(data);
    capacity.logical_block_size = get_be<std::uint32_t>(data.subspan(8));
    const unsigned exponent = data[13] & 0x0f;
    const std::uint64_t physical = std::uint64_t{capacity.logical_block_size} << exponent;
    if (capacity.logical_block_size == 0 || physical > std::numeric_limits<std::uint32_t>::max()) {
        return -EPROTO;
    }
    capacity.physical_block_size = static_cast<std::uint32_t>(physical);
    capacity.thin_provisioned = (data[14] & 0x80) != 0;
    capacity.unmapped_reads_zero = (data[14] & 0x40) != 0;
    out = capacity;
    return 0;
}

// The device reports from the LBA asked for up to some point of its choosing; the allocation
// length may cut the list anywhere, so a partial last descriptor is dropped, not an error.
int decode_get_lba_status(std::span<const std::uint8_t> data, std::vector<LbaStatus> &out)
{
    if (data.size() < lba_status_header_size) {
        return -EPROTO;
    }
    // PARAMETER DATA LENGTH counts the bytes after itself.
    // PARAMETER DATA LENGTH below the rest of the header: no descriptors, not a shorter span.
    const std::size_t reported =
        std::max(4 + std::size_t{get_be<std::uint32_t>(data)}, lba_status_header_size);
    const Bytes body = data.first(std::min(data.size(), reported)).subspan(lba_status_header_size);
    std::vector<LbaStatus> found;
    for (std::size_t offset = 0; offset + lba_status_descriptor_size <= body.size();
         offset += lba_status_descriptor_size) {
        const Bytes descriptor = body.subspan(offset, lba_status_descriptor_size);
        LbaStatus status;
        status.lba = get_be<std::uint64_t>(descriptor);
        status.blocks = get_be<std::uint32_t>(descriptor.subspan(8));
        status.provisioning_status = descriptor[12] & provisioning_status_mask;
        if (status.blocks == 0) {
            return -EPROTO;
        }
        found.push_back(status);
    }
    out = std::move(found);
    return 0;
}

int decode_mode_sense_10_write_protect(std::span<const std::uint8_t> data, bool &write_protected)
{
    if (data.size() < mode_parameter_header_10_size) {
        return -EPROTO;
    }
    write_protected = (data[3] & 0x80) != 0;
    return 0;
}

std::string command_name(const Cdb &cdb)
{
    char name[64] = {};
    if (cdb.length == 0)
        return "(empty CDB)";
    if (cdb.bytes[0] == opcode::service_action_in_16 || cdb.bytes[0] == opcode::extended_copy ||
        cdb.bytes[0] == opcode::receive_copy_results)
        sg_get_opcode_sa_name(cdb.bytes[0], cdb.bytes[1] & 0x1f, 0, sizeof(name), name);
    else
        sg_get_opcode_name(cdb.bytes[0], 0, sizeof(name), name);
    return name;
}

} // namespace sgfs
