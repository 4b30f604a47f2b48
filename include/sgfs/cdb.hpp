// SCSI command descriptor blocks and reply decoders (SPC-4, SBC-3).
// Pure functions: no IO, no sg. Every builder returns a complete CDB; every decoder
// takes the data-in bytes the device returned and returns -errno (-EPROTO) when the
// reply is too short or malformed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sgfs
{

struct Cdb {
    std::array<std::uint8_t, 16> bytes{};
    std::uint8_t length = 0;

    std::span<const std::uint8_t> view() const { return {bytes.data(), length}; }
};

enum class DataDirection { none, from_device, to_device };

namespace opcode
{
inline constexpr std::uint8_t test_unit_ready = 0x00;
inline constexpr std::uint8_t inquiry = 0x12;
inline constexpr std::uint8_t mode_sense_10 = 0x5a;
inline constexpr std::uint8_t read_capacity_10 = 0x25;
inline constexpr std::uint8_t service_action_in_16 = 0x9e;
inline constexpr std::uint8_t read_10 = 0x28;
inline constexpr std::uint8_t write_10 = 0x2a;
inline constexpr std::uint8_t read_16 = 0x88;
inline constexpr std::uint8_t write_16 = 0x8a;
inline constexpr std::uint8_t synchronize_cache_10 = 0x35;
inline constexpr std::uint8_t synchronize_cache_16 = 0x91;
inline constexpr std::uint8_t unmap = 0x42;
inline constexpr std::uint8_t write_same_16 = 0x93;
} // namespace opcode

namespace vpd
{
inline constexpr std::uint8_t supported_pages = 0x00;
inline constexpr std::uint8_t unit_serial_number = 0x80;
inline constexpr std::uint8_t device_identification = 0x83;
inline constexpr std::uint8_t block_limits = 0xb0;
inline constexpr std::uint8_t logical_block_provisioning = 0xb2;
} // namespace vpd

// ---- builders ----
Cdb cdb_test_unit_ready();
Cdb cdb_inquiry(bool evpd, std::uint8_t page_code, std::uint16_t allocation_length);
Cdb cdb_read_capacity_10();
Cdb cdb_read_capacity_16(std::uint32_t allocation_length = 32);
// READ/WRITE: picks (10) when blocks fits 16 bits and the whole range, lba to
// lba + blocks - 1, fits 32 bits; else (16).
// blocks == 0 is not allowed (a zero-length READ(10) means 0 blocks, READ(16) too, but we
// never issue it); callers split first.
Cdb cdb_read(std::uint64_t lba, std::uint32_t blocks, bool fua);
Cdb cdb_write(std::uint64_t lba, std::uint32_t blocks, bool fua);
Cdb cdb_read_10(std::uint32_t lba, std::uint16_t blocks, bool fua);
Cdb cdb_write_10(std::uint32_t lba, std::uint16_t blocks, bool fua);
Cdb cdb_read_16(std::uint64_t lba, std::uint32_t blocks, bool fua);
Cdb cdb_write_16(std::uint64_t lba, std::uint32_t blocks, bool fua);
// lba = 0, blocks = 0: the whole medium.
Cdb cdb_synchronize_cache_10(std::uint32_t lba = 0, std::uint16_t blocks = 0);
Cdb cdb_synchronize_cache_16(std::uint64_t lba = 0, std::uint32_t blocks = 0);
// page_code 0x3f = all pages; dbd = disable block descriptors.
Cdb cdb_mode_sense_10(std::uint8_t page_code, std::uint16_t allocation_length, bool dbd = true);
Cdb cdb_unmap(std::uint16_t parameter_list_length);
// WRITE SAME(16): writes the one block of data-out to `blocks` blocks from `lba`; with
// `unmap` the device may unmap them instead (SBC-3 5.42). blocks == 0 asks some devices for
// "to the end of the medium": callers never send it.
Cdb cdb_write_same_16(std::uint64_t lba, std::uint32_t blocks, bool unmap);
// GET LBA STATUS (SERVICE ACTION IN(16), service action 0x12; SBC-3 5.6): the provisioning
// status of the blocks from `lba` on, in as many descriptors as `allocation_length` holds.
Cdb cdb_get_lba_status(std::uint64_t lba, std::uint32_t allocation_length);

struct UnmapRange {
    std::uint64_t lba;
    std::uint32_t blocks;
};
// The UNMAP parameter list: 8-byte header plus one 16-byte descriptor per range. The list
// must fit UNMAP's 16-bit parameter list length, so at most 4095 ranges (callers split to
// the device's maximum unmap block descriptor count anyway); more throws std::length_error.
std::vector<std::uint8_t> unmap_parameter_list(std::span<const UnmapRange> ranges);

// "READ(10)", from libsgutils2's opcode table: how messages name a command.
std::string command_name(const Cdb &cdb);

// ---- decoders ----
struct StandardInquiry {
    std::uint8_t peripheral_qualifier = 0;
    std::uint8_t peripheral_device_type = 0; // 0x00 disk, 0x05 cd, 0x0c controller, ...
    bool removable = false;
    std::uint8_t version = 0;
    std::string vendor;            // T10 vendor id, trailing spaces trimmed
    std::string product;           // trailing spaces trimmed
    std::string revision;          // trailing spaces trimmed
    bool third_party_copy = false; // 3PC (byte 5 bit 3): a copy manager takes EXTENDED COPY
};
int decode_standard_inquiry(std::span<const std::uint8_t> data, StandardInquiry &out);

// VPD decoders check the page code byte. 0x00, 0x80 and 0x83 need the whole page (PAGE
// LENGTH + 4 bytes) in data, since a cut list would silently lose entries; 0xB0 decodes the
// fields present, leaving the others 0 (not reported).
int decode_vpd_supported_pages(std::span<const std::uint8_t> data,
                               std::vector<std::uint8_t> &pages);
int decode_vpd_unit_serial(std::span<const std::uint8_t> data, std::string &serial);

struct Designator {
    std::uint8_t code_set = 0;    // 1 binary, 2 ascii, 3 utf-8
    std::uint8_t association = 0; // 0 logical unit, 1 target port, 2 target device
    std::uint8_t type = 0;        // 1 t10 vendor id, 2 eui-64, 3 naa, 8 scsi name string...
    std::vector<std::uint8_t> value;
};
int decode_vpd_device_identification(std::span<const std::uint8_t> data,
                                     std::vector<Designator> &designators);
// A stable, file-name-safe id for the logical unit, like udev's /dev/disk/by-id
// "wwn-0x..." / "scsi-..." names: prefers NAA, then EUI-64, then SCSI name string, then T10
// vendor id, all with association 0 (logical unit). Empty when there is none.
std::string stable_id_from_designators(std::span<const Designator> designators);
// The fallback when a device has no usable 0x83 designator: "serial-<sanitized serial>".
std::string stable_id_from_serial(std::string_view serial);

struct BlockLimits {
    std::uint32_t maximum_transfer_length = 0; // blocks, 0 = not reported
    std::uint32_t optimal_transfer_length = 0; // blocks, 0 = not reported
    std::uint16_t optimal_transfer_length_granularity = 0;
    std::uint32_t maximum_unmap_lba_count = 0; // per UNMAP command; 0xffffffff = no limit
    std::uint32_t maximum_unmap_block_descriptor_count = 0;
    std::uint32_t optimal_unmap_granularity = 0;    // blocks, 0 = not reported
    std::uint32_t unmap_granularity_alignment = 0;  // first whole granule's LBA, if valid
    bool unmap_granularity_alignment_valid = false; // UGAVALID
    std::uint64_t maximum_write_same_length = 0;    // blocks, 0 = not reported
};
int decode_vpd_block_limits(std::span<const std::uint8_t> data, BlockLimits &out);

// VPD 0xB2 (SBC-3 6.6.4). LBPRZ is byte 5 bit 2 in SBC-3 and the low bit of the 3-bit
// field (bits 4..2) in SBC-4, where xx1b also means "unmapped blocks read zero".
struct LogicalBlockProvisioning {
    std::uint8_t threshold_exponent = 0;
    bool lbpu = false;                  // UNMAP supported
    bool lbpws = false;                 // WRITE SAME(16) with UNMAP supported
    bool lbpws10 = false;               // WRITE SAME(10) with UNMAP supported
    bool lbprz = false;                 // an unmapped block reads zero
    bool anc_sup = false;               // ANCHOR supported
    std::uint8_t provisioning_type = 0; // 0 not reported, 1 resource, 2 thin
};
int decode_vpd_logical_block_provisioning(std::span<const std::uint8_t> data,
                                          LogicalBlockProvisioning &out);

struct Capacity {
    std::uint64_t last_lba = 0;
    std::uint32_t logical_block_size = 0;
    std::uint32_t physical_block_size = 0; // logical << exponent; == logical for (10)
    bool thin_provisioned = false;         // LBPME, (16) only
    bool unmapped_reads_zero = false;      // LBPRZ, (16) only
    std::uint64_t blocks() const { return last_lba + 1; }
    std::uint64_t bytes() const { return blocks() * logical_block_size; }
};
// READ CAPACITY(10): last_lba 0xffffffff means "use (16)"; reported as-is.
int decode_read_capacity_10(std::span<const std::uint8_t> data, Capacity &out);
int decode_read_capacity_16(std::span<const std::uint8_t> data, Capacity &out);

// One LBA status descriptor of GET LBA STATUS: `blocks` blocks from `lba` in one state.
struct LbaStatus {
    static constexpr std::uint8_t mapped = 0; // mapped, or (SBC-4) status unknown
    static constexpr std::uint8_t deallocated = 1;
    static constexpr std::uint8_t anchored = 2;

    std::uint64_t lba = 0;
    std::uint32_t blocks = 0;
    std::uint8_t provisioning_status = mapped; // the low 4 bits of byte 12
};
// The descriptors present: a reply cut by the allocation length keeps its whole descriptors
// (PARAMETER DATA LENGTH may count more than arrived); less than the 8-byte header, or a
// descriptor of zero blocks, is -EPROTO.
int decode_get_lba_status(std::span<const std::uint8_t> data, std::vector<LbaStatus> &out);

// Write-protect bit of the MODE SENSE(10) header's device-specific parameter.
int decode_mode_sense_10_write_protect(std::span<const std::uint8_t> data, bool &write_protected);

// ---- third-party copy (SPC-4 6.4 EXTENDED COPY(LID1), 6.18 RECEIVE COPY RESULTS);
// core/cdb_copy.cpp ----

namespace opcode
{
inline constexpr std::uint8_t extended_copy = 0x83;        // service action 0x00: LID1
inline constexpr std::uint8_t receive_copy_results = 0x84; // service action 0x03: parameters
} // namespace opcode

// Descriptor type codes of the EXTENDED COPY parameter list that sgfs sends.
namespace copy_descriptor
{
inline constexpr std::uint8_t block_to_block = 0x02; // segment: blocks from one LU to another
inline constexpr std::uint8_t identification = 0xe4; // CSCD: an LU named by a VPD 0x83 designator
inline constexpr std::size_t header_size = 16;
inline constexpr std::size_t cscd_size = 32;
inline constexpr std::size_t block_to_block_size = 28;
inline constexpr std::size_t max_designator_size = 20; // what fits an identification descriptor
inline constexpr std::uint32_t max_segment_blocks = 0xffff; // NUMBER OF BLOCKS is 16 bits
} // namespace copy_descriptor

// EXTENDED COPY(LID1): the copy manager of the addressed LU carries out the parameter list
// of `parameter_list_length` bytes (data-out).
Cdb cdb_extended_copy_lid1(std::uint32_t parameter_list_length);
// RECEIVE COPY RESULTS, OPERATING PARAMETERS (list identifier 0).
Cdb cdb_receive_copy_operating_parameters(std::uint32_t allocation_length);

// LIST ID USAGE (parameter list byte 1, bits 4-3): whether the copy manager keeps the
// results for RECEIVE COPY RESULTS under LIST IDENTIFIER. `none` needs SNLID.
enum class ListIdUsage : std::uint8_t { hold = 0, no_hold = 2, none = 3 };

// An identification CSCD descriptor (0xE4): the LU with this designator (from its VPD 0x83
// page), its peripheral device type and, for a block device, its logical block size.
struct CopyTarget {
    Designator designator;
    std::uint8_t device_type = 0;
    std::uint32_t block_size = 512;
};

// A block device to block device segment descriptor (0x02), DC = 0: `blocks` blocks (1 to
// 0xffff) from `source_lba` on CSCD `source` to `destination_lba` on CSCD `destination`.
struct CopySegment {
    std::uint16_t source = 0;
    std::uint16_t destination = 1;
    std::uint32_t blocks = 0;
    std::uint64_t source_lba = 0;
    std::uint64_t destination_lba = 0;
};

struct ExtendedCopyList {
    std::uint8_t list_id = 0;
    ListIdUsage usage = ListIdUsage::none;
    std::vector<CopyTarget> targets;
    std::vector<CopySegment> segments;
};

// The LID1 parameter list: 16-byte header, the CSCD descriptors, the segment descriptors,
// no inline data. Throws std::invalid_argument for a designator longer than 20 bytes, a
// segment of 0 or more than 0xffff blocks, or a CSCD index past the list.
std::vector<std::uint8_t> extended_copy_parameter_list(const ExtendedCopyList &list);

// RECEIVE COPY RESULTS operating parameters (SPC-4 6.18.4): what the copy manager takes.
struct CopyOperatingParameters {
    bool supports_no_list_id = false;             // SNLID
    std::uint16_t max_cscd_descriptors = 0;       // per command
    std::uint16_t max_segment_descriptors = 0;    // per command
    std::uint32_t max_descriptor_list_length = 0; // bytes of CSCD and segment descriptors
    std::uint32_t max_segment_length = 0;         // bytes one segment may copy
    std::uint32_t max_inline_data_length = 0;
    std::uint32_t held_data_limit = 0;
    std::uint32_t max_stream_device_transfer_size = 0;
    std::uint16_t total_concurrent_copies = 0;      // commands the copy manager runs at once
    std::uint8_t max_concurrent_copies = 0;         // of those, with a list identifier
    std::uint8_t data_segment_granularity_log2 = 0; // a segment's bytes are a multiple of it
    std::uint8_t inline_data_granularity_log2 = 0;
    std::uint8_t held_data_granularity_log2 = 0;
    std::vector<std::uint8_t> descriptor_codes; // implemented descriptor type codes

    bool implements(std::uint8_t code) const;
};
// At least the 44 bytes up to the descriptor code list, else -EPROTO; the codes present.
int decode_copy_operating_parameters(std::span<const std::uint8_t> data,
                                     CopyOperatingParameters &out);

} // namespace sgfs
