// The in-memory target's SCSI commands (SPC-4, SBC-3): see memory_target.hpp. Written from
// the standard's tables, not from core's decoders, so that a test through both checks one
// against the other.
#include "memory_target_scsi.hpp"

#include <algorithm>
#include <cstring>
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
            reply[5] = config_.three_pc ? 0x08 : 0x00; // 3PC
            reply[7] = 0x02;                           // CMDQUE
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
    case op::extended_copy:
        return extended_copy_locked(request, data, ~0ULL, done);
    case op::receive_copy_results:
        return receive_copy_results_locked(request, data, limit, done);
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

// ---------------------------------------------------------------------------------------------
// Third-party copy (SPC-4 6.4.3, 6.4.5, 6.4.6; 6.18.4), with LIO's choices where SPC leaves one:
// a CSCD it cannot find, or a segment that does not involve the LU the command came to, is
// COPY ABORTED, copy target device not reachable.

MemoryTarget *MemoryTarget::copy_target_locked(std::span<const std::uint8_t> designator)
{
    const auto is = [&](const MemoryTarget &target) {
        return target.config_.three_pc &&
               std::equal(designator.begin(), designator.end(), target.config_.naa.begin(),
                          target.config_.naa.end());
    };
    if (is(*this))
        return this;
    if (!config_.copy_registry)
        return nullptr;
    for (MemoryTarget *target : config_.copy_registry->targets_)
        if (is(*target))
            return target;
    return nullptr;
}

void MemoryTarget::extended_copy_locked(const SgRequest &request, const std::uint8_t *data,
                                        std::uint64_t budget, Completion &done)
{
    const Cdb &cdb = request.cdb;
    const auto refuse = [&](std::uint8_t asc, std::uint8_t ascq = 0) {
        done.check(sk_illegal_request, asc, ascq);
    };
    const auto unreachable = [&] { done.check(sk_copy_aborted, asc_copy_target, 0x02); };
    if (!config_.three_pc)
        return refuse(asc_invalid_opcode);
    if ((cdb.bytes[1] & 0x1f) != 0x00) // LID1 only
        return refuse(asc_invalid_field_in_cdb);
    const std::size_t length = get_be<std::uint32_t>(cdb_at(cdb, 10));
    if (length == 0)
        return; // SPC: nothing to do, and no error
    const CopyManagerConfig &manager = config_.copy_manager;
    const std::span<const std::uint8_t> list(data, length);
    if (length < 16)
        return refuse(asc_parameter_list_length_error);
    const std::size_t cscd_bytes = get_be<std::uint16_t>(list.subspan(2));
    const std::size_t segment_bytes = get_be<std::uint32_t>(list.subspan(8));
    if (get_be<std::uint32_t>(list.subspan(12)) != 0) // inline data
        return refuse(asc_invalid_field_in_parameters);
    if (16 + cscd_bytes + segment_bytes > length ||
        cscd_bytes + segment_bytes > manager.max_descriptor_list_length)
        return refuse(asc_parameter_list_length_error);
    if (cscd_bytes % 32 != 0 || segment_bytes % 28 != 0)
        return refuse(asc_invalid_field_in_parameters);
    if (cscd_bytes / 32 > manager.max_cscd_descriptors)
        return refuse(asc_invalid_field_in_parameters, ascq_too_many_cscds);
    if (segment_bytes / 28 > manager.max_segment_descriptors)
        return refuse(asc_invalid_field_in_parameters, ascq_too_many_segments);

    std::vector<MemoryTarget *> cscds;
    for (std::size_t at = 16; at < 16 + cscd_bytes; at += 32) {
        const auto cscd = list.subspan(at, 32);
        if (cscd[0] != 0xe4)
            return refuse(asc_invalid_field_in_parameters, ascq_unsupported_cscd_type);
        const std::size_t designator_length = cscd[7];
        // Binary code set, association logical unit, designator type NAA.
        if ((cscd[4] & 0x0f) != 0x01 || (cscd[5] & 0x30) != 0x00 || (cscd[5] & 0x0f) != 0x03 ||
            designator_length == 0 || designator_length > 20)
            return refuse(asc_invalid_field_in_parameters);
        MemoryTarget *target = copy_target_locked(cscd.subspan(8, designator_length));
        if (target == nullptr)
            return unreachable();
        const std::uint32_t block_length =
            (std::uint32_t{cscd[29]} << 16) | (std::uint32_t{cscd[30]} << 8) | cscd[31];
        if (block_length != target->config_.block_size)
            return refuse(asc_invalid_field_in_parameters);
        cscds.push_back(target);
    }

    struct Segment {
        MemoryTarget *source, *destination;
        std::uint64_t blocks, source_lba, destination_lba;
    };
    std::vector<Segment> segments;
    for (std::size_t at = 16 + cscd_bytes; at < 16 + cscd_bytes + segment_bytes; at += 28) {
        const auto segment = list.subspan(at, 28);
        if (segment[0] != 0x02)
            return refuse(asc_invalid_field_in_parameters, ascq_unsupported_segment_type);
        const std::size_t source = get_be<std::uint16_t>(segment.subspan(4));
        const std::size_t destination = get_be<std::uint16_t>(segment.subspan(6));
        if (get_be<std::uint16_t>(segment.subspan(2)) != 0x18 || (segment[1] & 0x02) != 0 ||
            source >= cscds.size() || destination >= cscds.size())
            return refuse(asc_invalid_field_in_parameters);
        Segment s{cscds[source], cscds[destination], get_be<std::uint16_t>(segment.subspan(10)),
                  get_be<std::uint64_t>(segment.subspan(12)),
                  get_be<std::uint64_t>(segment.subspan(20))};
        if (s.source->config_.block_size != s.destination->config_.block_size)
            return refuse(asc_invalid_field_in_parameters);
        if (s.source != this && s.destination != this)
            return unreachable();
        const auto fits = [](const MemoryTarget &t, std::uint64_t lba, std::uint64_t blocks) {
            return lba <= t.config_.block_count && blocks <= t.config_.block_count - lba;
        };
        if (!fits(*s.source, s.source_lba, s.blocks) ||
            !fits(*s.destination, s.destination_lba, s.blocks))
            return refuse(asc_lba_out_of_range);
        if (s.destination->config_.write_protected)
            return done.check(sk_data_protect, asc_write_protected, 0x00);
        segments.push_back(s);
    }

    for (const Segment &s : segments) {
        const std::uint64_t blocks = std::min(s.blocks, budget);
        const std::uint32_t block = s.source->config_.block_size;
        const auto *from = s.source->store_.data() + s.source_lba * block;
        auto *to = s.destination->store_.data() + s.destination_lba * block;
        std::memmove(to, from, blocks * block);
        s.destination->map_locked(s.destination_lba, blocks);
        budget -= blocks;
        if (budget == 0)
            break;
    }
    done.moved = length;
}

void MemoryTarget::receive_copy_results_locked(const SgRequest &request, std::uint8_t *data,
                                               std::size_t limit, Completion &done)
{
    const Cdb &cdb = request.cdb;
    if (!config_.three_pc)
        return done.check(sk_illegal_request, asc_invalid_opcode, 0x00);
    const std::size_t allocation = get_be<std::uint32_t>(cdb_at(cdb, 10));
    // Operating parameters of list 0 only; LIO refuses less than 54 bytes.
    if ((cdb.bytes[1] & 0x1f) != 0x03 || cdb.bytes[2] != 0 || allocation < 54)
        return done.check(sk_illegal_request, asc_invalid_field_in_cdb, 0x00);
    const CopyManagerConfig &manager = config_.copy_manager;
    Bytes reply(44, 0);
    const std::span<std::uint8_t> at(reply);
    reply[4] = manager.snlid ? 0x01 : 0x00;
    put_be(at.subspan(8), manager.max_cscd_descriptors);
    put_be(at.subspan(10), manager.max_segment_descriptors);
    put_be(at.subspan(12), manager.max_descriptor_list_length);
    put_be(at.subspan(16), manager.max_segment_length);
    put_be(at.subspan(34), manager.total_concurrent_copies);
    reply[36] = manager.max_concurrent_copies;
    reply[37] = manager.data_segment_granularity_log2;
    reply[38] = 9; // inline and held data granularity: unused, as LIO reports them
    reply[39] = 9;
    reply[43] = static_cast<std::uint8_t>(manager.descriptor_codes.size());
    reply.insert(reply.end(), manager.descriptor_codes.begin(), manager.descriptor_codes.end());
    put_be(std::span(reply), static_cast<std::uint32_t>(reply.size() - 4));
    done.moved = std::min({reply.size(), allocation, request.length, limit});
    std::copy_n(reply.begin(), done.moved, data);
}

} // namespace sgfs::test
