// The in-memory target's SCSI commands (SPC-4, SBC-3): see memory_target.hpp. Written from
// the standard's tables, not from core's decoders, so that a test through both checks one
// against the other.
#include "memory_target_scsi.hpp"

#include <algorithm>
#include <string_view>

namespace sgfs::test
{
namespace
{

using namespace scsi;

// The text fields of INQUIRY: left-aligned, space padded.
void put_text(std::span<std::uint8_t> out, std::string_view text)
{
    std::fill(out.begin(), out.end(), ' ');
    std::copy_n(text.begin(), std::min(text.size(), out.size()), out.begin());
}

// A VPD 0x83 designation descriptor (SPC-4 7.8.6.1), association 0 (logical unit).
void append_designator(Bytes &page, std::uint8_t code_set, std::uint8_t type,
                       std::span<const std::uint8_t> value)
{
    const std::size_t at = page.size();
    page.resize(at + 4 + value.size(), 0);
    page[at] = code_set;
    page[at + 1] = type;
    page[at + 3] = static_cast<std::uint8_t>(value.size());
    std::copy(value.begin(), value.end(), page.begin() + static_cast<std::ptrdiff_t>(at + 4));
}

} // namespace

// ---------------------------------------------------------------------------------------------
// The commands. Each fills `done`; data-in is cut to the allocation length and the buffer.

void MemoryTarget::run_locked(const SgRequest &request, std::uint8_t *data, std::size_t limit,
                              Completion &done)
{
    const Cdb &cdb = request.cdb;
    const std::uint8_t opcode = cdb.bytes[0];
    const std::uint32_t block_size = config_.block_size;
    const std::uint64_t block_count = config_.block_count;

    const auto data_in = [&](const Bytes &reply, std::size_t allocation) {
        done.moved = std::min({reply.size(), allocation, request.length, limit});
        std::copy_n(reply.begin(), done.moved, data);
    };
    const auto in_range = [&](std::uint64_t lba, std::uint64_t blocks) {
        return lba <= block_count && blocks <= block_count - lba;
    };
    const auto illegal = [&](std::uint8_t asc) { done.check(sk_illegal_request, asc, 0x00); };
    const auto protect = [&] { done.check(sk_data_protect, asc_write_protected, 0x00); };

    if (is_read(opcode) || is_write(opcode)) {
        const Extent extent = extent_of(cdb);
        if (!in_range(extent.lba, extent.blocks))
            return illegal(asc_lba_out_of_range);
        if (config_.max_transfer_blocks != 0 && extent.blocks > config_.max_transfer_blocks)
            return illegal(asc_invalid_field_in_cdb);
        if (is_write(opcode) && config_.write_protected)
            return protect();
        const std::size_t length = static_cast<std::size_t>(extent.blocks) * block_size;
        const std::size_t moved = std::min(length, limit);
        auto at = store_.begin() + static_cast<std::ptrdiff_t>(extent.lba * block_size);
        if (is_read(opcode)) {
            std::copy_n(at, moved, data);
        } else {
            std::copy_n(data, moved, at);
            map_locked(extent.lba, (moved + block_size - 1) / block_size);
        }
        done.moved = moved;
        return;
    }
    switch (opcode) {
    case op::test_unit_ready:
        return;
    case op::inquiry: {
        const bool evpd = (cdb.bytes[1] & 0x01) != 0;
        const std::uint8_t page = cdb.bytes[2];
        const std::size_t allocation = get_be<std::uint16_t>(cdb_at(cdb, 3));
        if (!evpd && page != 0)
            return illegal(asc_invalid_field_in_cdb);
        Bytes reply;
        if (!evpd) {
            reply.assign(36, 0);
            reply[0] = config_.device_type & 0x1f;
            reply[2] = 0x06; // SPC-4
            reply[3] = 0x02; // response data format 2
            reply[4] = static_cast<std::uint8_t>(reply.size() - 5);
            reply[7] = 0x02; // CMDQUE
            put_text(std::span(reply).subspan(8, 8), config_.vendor);
            put_text(std::span(reply).subspan(16, 16), config_.product);
            put_text(std::span(reply).subspan(32, 4), config_.revision);
        } else {
            reply = vpd_page_locked(page);
            if (reply.empty())
                return illegal(asc_invalid_field_in_cdb);
        }
        return data_in(reply, allocation);
    }
    case op::read_capacity_10: {
        Bytes reply(8, 0);
        put_be(std::span(reply),
               static_cast<std::uint32_t>(std::min<std::uint64_t>(block_count - 1, 0xffffffff)));
        put_be(std::span(reply).subspan(4), block_size);
        return data_in(reply, reply.size());
    }
    case op::service_action_in_16: {
        const std::uint8_t action = cdb.bytes[1] & 0x1f;
        const std::size_t allocation = get_be<std::uint32_t>(cdb_at(cdb, 10));
        if (action == sa_read_capacity_16) {
            Bytes reply(32, 0);
            put_be(std::span(reply), block_count - 1);
            put_be(std::span(reply).subspan(8), block_size);
            reply[14] =
                static_cast<std::uint8_t>((config_.lbpme ? 0x80 : 0) | (config_.lbprz ? 0x40 : 0));
            return data_in(reply, allocation);
        }
        if (action == sa_get_lba_status) {
            const std::uint64_t lba = get_be<std::uint64_t>(cdb_at(cdb, 2));
            if (lba >= block_count)
                return illegal(asc_lba_out_of_range);
            return data_in(lba_status_locked(lba, allocation), allocation);
        }
        return illegal(asc_invalid_field_in_cdb);
    }
    case op::mode_sense_10: {
        const bool dbd = (cdb.bytes[1] & 0x08) != 0;
        const std::uint8_t page = cdb.bytes[2] & 0x3f;
        const std::size_t allocation = get_be<std::uint16_t>(cdb_at(cdb, 7));
        if (page != 0x3f && page != 0x08)
            return illegal(asc_invalid_field_in_cdb);
        Bytes reply(8, 0);
        reply[3] = static_cast<std::uint8_t>((config_.write_protected ? 0x80 : 0) | 0x10); // DPOFUA
        if (!dbd) {
            reply[7] = 8; // one short block descriptor
            Bytes descriptor(8, 0);
            put_be(std::span(descriptor),
                   static_cast<std::uint32_t>(std::min<std::uint64_t>(block_count, 0xffffffff)));
            put_be(std::span(descriptor).subspan(4), block_size); // byte 4 reserved: fits 24 bits
            reply.insert(reply.end(), descriptor.begin(), descriptor.end());
        }
        Bytes caching(20, 0); // the caching mode page, write cache enabled
        caching[0] = 0x08;
        caching[1] = 0x12;
        caching[2] = 0x04; // WCE
        reply.insert(reply.end(), caching.begin(), caching.end());
        put_be(std::span(reply), static_cast<std::uint16_t>(reply.size() - 2));
        return data_in(reply, allocation);
    }
    case op::synchronize_cache_10:
    case op::synchronize_cache_16: {
        const Extent extent = extent_of(cdb);
        if (!in_range(extent.lba, extent.blocks))
            return illegal(asc_lba_out_of_range);
        return;
    }
    case op::unmap:
        return unmap_command_locked(request, data, done);
    case op::write_same_16:
        return write_same_locked(request, data, done);
    default:
        return illegal(asc_invalid_opcode);
    }
}

// VPD pages (SPC-4 7.8, SBC-3 6.6); empty for a page the target does not have.
std::vector<std::uint8_t> MemoryTarget::vpd_page_locked(std::uint8_t page) const
{
    Bytes body;
    switch (page) {
    case 0x00:
        body = {0x00, 0x80, 0x83, 0xb0, 0xb2};
        break;
    case 0x80:
        body.assign(config_.serial.begin(), config_.serial.end());
        break;
    case 0x83: {
        // Binary code set, association logical unit, type NAA.
        if (!config_.naa.empty())
            append_designator(body, 0x01, 0x03, config_.naa);
        // T10 vendor id: ASCII, vendor (8 bytes, padded) then the serial.
        Bytes t10(8 + config_.serial.size(), ' ');
        put_text(std::span(t10).first(8), config_.vendor);
        std::copy(config_.serial.begin(), config_.serial.end(), t10.begin() + 8);
        append_designator(body, 0x02, 0x01, t10);
        break;
    }
    case 0xb0: {
        body.assign(0x3c, 0);
        const std::span<std::uint8_t> at(body);
        body[0] = 0x01; // WSNZ: WRITE SAME of 0 blocks is refused (callers never send it)
        put_be(at.subspan(4), config_.max_transfer_blocks);
        put_be(at.subspan(16), config_.lbpu ? config_.max_unmap_lba_count : 0U);
        put_be(at.subspan(20), config_.lbpu ? config_.max_unmap_descriptors : 0U);
        put_be(at.subspan(24), config_.unmap_granularity);
        put_be(at.subspan(28), 0x80000000U | config_.unmap_granularity_alignment); // UGAVALID
        put_be(at.subspan(32), config_.max_write_same_blocks);
        break;
    }
    case 0xb2:
        body.assign(4, 0);
        body[1] = static_cast<std::uint8_t>((config_.lbpu ? 0x80 : 0) | (config_.lbpws ? 0x40 : 0) |
                                            (config_.lbprz ? 0x04 : 0));
        body[2] = config_.lbpme ? 0x02 : 0x00; // provisioning type: thin, or not reported
        break;
    default:
        return {};
    }
    Bytes reply = {static_cast<std::uint8_t>(config_.device_type & 0x1f), page, 0, 0};
    put_be(std::span(reply).subspan(2), static_cast<std::uint16_t>(body.size()));
    reply.insert(reply.end(), body.begin(), body.end());
    return reply;
}

// GET LBA STATUS parameter data (SBC-3 5.6.2): runs of one state from `lba`, as many as the
// allocation length holds (at least one, cut if need be), PARAMETER DATA LENGTH counting them.
std::vector<std::uint8_t> MemoryTarget::lba_status_locked(std::uint64_t lba,
                                                          std::size_t allocation) const
{
    const std::size_t room = allocation > 8 ? std::max<std::size_t>(1, (allocation - 8) / 16) : 1;
    Bytes reply(8, 0);
    for (std::uint64_t start = lba; start < mapped_.size() && (reply.size() - 8) / 16 < room;) {
        const bool state = mapped_[start];
        std::uint64_t end = start;
        const std::uint64_t longest =
            config_.lba_status_split != 0 ? config_.lba_status_split : 0xffffffffULL;
        while (end < mapped_.size() && mapped_[end] == state && end - start < longest)
            ++end;
        Bytes descriptor(16, 0);
        put_be(std::span(descriptor), start);
        put_be(std::span(descriptor).subspan(8), static_cast<std::uint32_t>(end - start));
        descriptor[12] = state ? LbaStatus::mapped : LbaStatus::deallocated;
        reply.insert(reply.end(), descriptor.begin(), descriptor.end());
        start = end;
    }
    put_be(std::span(reply), static_cast<std::uint32_t>(reply.size() - 4));
    return reply;
}

// UNMAP (SBC-3 5.28): the device unmaps the whole granules inside each range and leaves the
// rest as it is, which SBC allows: a caller may not take UNMAP for zeroing.
void MemoryTarget::unmap_command_locked(const SgRequest &request, const std::uint8_t *data,
                                        Completion &done)
{
    const std::size_t length = get_be<std::uint16_t>(cdb_at(request.cdb, 7));
    if (!config_.lbpu)
        return done.check(sk_illegal_request, asc_invalid_opcode, 0x00);
    if (config_.write_protected)
        return done.check(sk_data_protect, asc_write_protected, 0x00);
    if (length == 0)
        return;
    const UnmapList list = parse_unmap({data, length});
    std::uint64_t total = 0;
    for (const auto &[lba, blocks] : list.ranges)
        total += blocks;
    if (!list.valid || list.ranges.size() > config_.max_unmap_descriptors ||
        total > config_.max_unmap_lba_count)
        return done.check(sk_illegal_request, asc_invalid_field_in_parameters, 0x00);
    for (const auto &[lba, blocks] : list.ranges)
        if (lba > config_.block_count || blocks > config_.block_count - lba)
            return done.check(sk_illegal_request, asc_lba_out_of_range, 0x00);
    for (const auto &[lba, blocks] : list.ranges)
        unmap_locked(lba, blocks, config_.unmap_keeps_every);
    done.moved = length;
}

// WRITE SAME(16) (SBC-3 5.42). With the UNMAP bit the blocks are unmapped only where that
// leaves them reading what was asked for: a zero block, and unmapped blocks that read zero
// (LBPRZ, or the pattern turned off); else they are written.
void MemoryTarget::write_same_locked(const SgRequest &request, const std::uint8_t *data,
                                     Completion &done)
{
    const Cdb &cdb = request.cdb;
    const Extent extent = extent_of(cdb);
    const bool unmap = (cdb.bytes[1] & 0x08) != 0;
    const bool ndob = (cdb.bytes[1] & 0x01) != 0;
    const auto illegal = [&](std::uint8_t asc) { done.check(sk_illegal_request, asc, 0x00); };
    if (config_.write_protected)
        return done.check(sk_data_protect, asc_write_protected, 0x00);
    if (extent.lba > config_.block_count || extent.blocks > config_.block_count - extent.lba)
        return illegal(asc_lba_out_of_range);
    if (extent.blocks == 0 || ndob || (unmap && !config_.lbpws) ||
        (config_.max_write_same_blocks != 0 && extent.blocks > config_.max_write_same_blocks))
        return illegal(asc_invalid_field_in_cdb);
    const std::uint32_t block_size = config_.block_size;
    for (std::uint64_t block = extent.lba; block < extent.lba + extent.blocks; ++block)
        std::copy_n(data, block_size,
                    store_.begin() + static_cast<std::ptrdiff_t>(block * block_size));
    map_locked(extent.lba, extent.blocks);
    const bool zero = std::all_of(data, data + block_size, [](std::uint8_t b) { return b == 0; });
    const bool unmapped_read_zero = config_.lbprz || !config_.unmapped_pattern_without_lbprz;
    if (unmap && unmapped_read_zero && zero)
        unmap_locked(extent.lba, extent.blocks);
    done.moved = block_size;
}

} // namespace sgfs::test
