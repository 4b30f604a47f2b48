// The third-party copy commands' CDBs, the EXTENDED COPY(LID1) parameter list and the
// RECEIVE COPY RESULTS operating parameters (SPC-4 6.4, 6.18.4); see cdb.hpp.
#include "byte_order.hpp"
#include "sgfs/cdb.hpp"

#include <algorithm>
#include <cerrno>
#include <stdexcept>

namespace sgfs
{
namespace
{

using byte_order::get_be;
using byte_order::put_be;

constexpr std::uint8_t extended_copy_lid1_service_action = 0x00;
constexpr std::uint8_t operating_parameters_service_action = 0x03;
constexpr std::uint8_t list_id_usage_shift = 3;
// The identification descriptor's designation descriptor header (bytes 4-7): binary code
// set in the low nibble of byte 4, association and designator type in byte 5.
constexpr std::size_t cscd_designator_at = 4;
constexpr std::size_t cscd_block_length_at = 29;      // block device parameters: DISK BLOCK LENGTH
constexpr std::uint16_t block_to_block_length = 0x18; // DESCRIPTOR LENGTH: bytes after byte 3
constexpr std::size_t operating_parameters_fixed_size = 44;

Cdb copy_cdb(std::uint8_t op, std::uint8_t service_action, std::uint32_t length)
{
    Cdb cdb;
    cdb.bytes[0] = op;
    cdb.bytes[1] = service_action;
    cdb.length = 16;
    put_be(std::span<std::uint8_t>(cdb.bytes).subspan(10), length);
    return cdb;
}

void put_cscd(std::span<std::uint8_t> out, const CopyTarget &target)
{
    const std::vector<std::uint8_t> &value = target.designator.value;
    if (value.size() > copy_descriptor::max_designator_size)
        throw std::invalid_argument("EXTENDED COPY: a designator longer than 20 bytes");
    out[0] = copy_descriptor::identification;
    out[1] = target.device_type & 0x1f;
    // Bytes 2-3, RELATIVE INITIATOR PORT IDENTIFIER: 0, any port.
    const std::span<std::uint8_t> designator = out.subspan(cscd_designator_at);
    designator[0] = target.designator.code_set & 0x0f;
    designator[1] = static_cast<std::uint8_t>(((target.designator.association & 0x03) << 4) |
                                              (target.designator.type & 0x0f));
    designator[3] = static_cast<std::uint8_t>(value.size());
    std::copy(value.begin(), value.end(), designator.begin() + 4);
    // DISK BLOCK LENGTH, 24 bits.
    const std::uint32_t block = target.block_size;
    out[cscd_block_length_at] = static_cast<std::uint8_t>(block >> 16);
    out[cscd_block_length_at + 1] = static_cast<std::uint8_t>(block >> 8);
    out[cscd_block_length_at + 2] = static_cast<std::uint8_t>(block);
}

void put_segment(std::span<std::uint8_t> out, const CopySegment &segment, std::size_t cscds)
{
    if (segment.blocks == 0 || segment.blocks > copy_descriptor::max_segment_blocks)
        throw std::invalid_argument("EXTENDED COPY: a segment of 0 or more than 0xffff blocks");
    if (segment.source >= cscds || segment.destination >= cscds)
        throw std::invalid_argument("EXTENDED COPY: a segment names a CSCD past the list");
    out[0] = copy_descriptor::block_to_block;
    // Byte 1: DC = 0 (NUMBER OF BLOCKS counts the destination's blocks too), CAT = 0.
    put_be(out.subspan(2), block_to_block_length);
    put_be(out.subspan(4), segment.source);
    put_be(out.subspan(6), segment.destination);
    put_be(out.subspan(10), static_cast<std::uint16_t>(segment.blocks));
    put_be(out.subspan(12), segment.source_lba);
    put_be(out.subspan(20), segment.destination_lba);
}

} // namespace

Cdb cdb_extended_copy_lid1(std::uint32_t parameter_list_length)
{
    return copy_cdb(opcode::extended_copy, extended_copy_lid1_service_action,
                    parameter_list_length);
}

Cdb cdb_receive_copy_operating_parameters(std::uint32_t allocation_length)
{
    return copy_cdb(opcode::receive_copy_results, operating_parameters_service_action,
                    allocation_length);
}

std::vector<std::uint8_t> extended_copy_parameter_list(const ExtendedCopyList &list)
{
    using namespace copy_descriptor;
    const std::size_t cscd_bytes = list.targets.size() * cscd_size;
    const std::size_t segment_bytes = list.segments.size() * block_to_block_size;
    std::vector<std::uint8_t> out(header_size + cscd_bytes + segment_bytes, 0);
    const std::span<std::uint8_t> at(out);
    out[0] = list.list_id;
    out[1] =
        static_cast<std::uint8_t>(static_cast<std::uint8_t>(list.usage) << list_id_usage_shift);
    put_be(at.subspan(2), static_cast<std::uint16_t>(cscd_bytes));
    put_be(at.subspan(8), static_cast<std::uint32_t>(segment_bytes));
    // Bytes 12-15, INLINE DATA LENGTH: 0.
    for (std::size_t i = 0; i < list.targets.size(); ++i)
        put_cscd(at.subspan(header_size + i * cscd_size, cscd_size), list.targets[i]);
    for (std::size_t i = 0; i < list.segments.size(); ++i)
        put_segment(
            at.subspan(header_size + cscd_bytes + i * block_to_block_size, block_to_block_size),
            list.segments[i], list.targets.size());
    return out;
}

bool CopyOperatingParameters::implements(std::uint8_t code) const
{
    return std::find(descriptor_codes.begin(), descriptor_codes.end(), code) !=
           descriptor_codes.end();
}

int decode_copy_operating_parameters(std::span<const std::uint8_t> data,
                                     CopyOperatingParameters &out)
{
    if (data.size() < operating_parameters_fixed_size)
        return -EPROTO;
    CopyOperatingParameters p;
    p.supports_no_list_id = (data[4] & 0x01) != 0;
    p.max_cscd_descriptors = get_be<std::uint16_t>(data.subspan(8));
    p.max_segment_descriptors = get_be<std::uint16_t>(data.subspan(10));
    p.max_descriptor_list_length = get_be<std::uint32_t>(data.subspan(12));
    p.max_segment_length = get_be<std::uint32_t>(data.subspan(16));
    p.max_inline_data_length = get_be<std::uint32_t>(data.subspan(20));
    p.held_data_limit = get_be<std::uint32_t>(data.subspan(24));
    p.max_stream_device_transfer_size = get_be<std::uint32_t>(data.subspan(28));
    p.total_concurrent_copies = get_be<std::uint16_t>(data.subspan(34));
    p.max_concurrent_copies = data[36];
    p.data_segment_granularity_log2 = data[37];
    p.inline_data_granularity_log2 = data[38];
    p.held_data_granularity_log2 = data[39];
    // The codes the reply holds, within AVAILABLE DATA (which counts from byte 4).
    const std::size_t available = std::size_t{get_be<std::uint32_t>(data)} + 4;
    const std::size_t end =
        std::min({data.size(), available, operating_parameters_fixed_size + std::size_t{data[43]}});
    if (end > operating_parameters_fixed_size)
        p.descriptor_codes.assign(data.begin() + operating_parameters_fixed_size,
                                  data.begin() + static_cast<std::ptrdiff_t>(end));
    out = std::move(p);
    return 0;
}

} // namespace sgfs
