// The third-party copy CDBs, the EXTENDED COPY(LID1) parameter list and the RECEIVE COPY
// RESULTS operating parameters against byte strings worked out by hand from SPC-4 (6.4.1,
// 6.4.3, 6.4.5.x identification CSCD descriptor, 6.4.6.3 block to block segment, 6.18.4),
// cross-checked with the offsets LIO reads and writes (drivers/target/target_core_xcopy.c).
#include "sgfs/cdb.hpp"

#include <cerrno>
#include <cstdint>
#include <doctest/doctest.h>
#include <stdexcept>
#include <vector>

using namespace sgfs;

namespace
{

using Bytes = std::vector<std::uint8_t>;

Bytes cdb_bytes(const Cdb &cdb)
{
    return {cdb.bytes.begin(), cdb.bytes.begin() + cdb.length};
}

const Bytes naa_a = {0x60, 0x01, 0x40, 0x5a, 0x11, 0x22, 0x33, 0x44,
                     0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x01};
const Bytes naa_b = {0x60, 0x01, 0x40, 0x5a, 0x11, 0x22, 0x33, 0x44,
                     0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x02};

Designator naa(const Bytes &value)
{
    return {1, 0, 3, value};
}

// LIO's operating parameters reply (target_rcr_operating_parameters), 54 bytes asked for.
Bytes lio_operating_parameters()
{
    Bytes reply(54, 0);
    reply[3] = 42;    // AVAILABLE DATA
    reply[4] = 0x01;  // SNLID
    reply[9] = 2;     // MAXIMUM CSCD DESCRIPTOR COUNT
    reply[11] = 1;    // MAXIMUM SEGMENT DESCRIPTOR COUNT
    reply[14] = 0x04; // MAXIMUM DESCRIPTOR LIST LENGTH 1024
    reply[16] = 0x10; // MAXIMUM SEGMENT LENGTH 256 MiB
    reply[35] = 1;    // TOTAL CONCURRENT COPIES
    reply[36] = 1;    // MAXIMUM CONCURRENT COPIES
    reply[37] = 9;    // DATA SEGMENT GRANULARITY
    reply[38] = 9;
    reply[39] = 9;
    reply[43] = 2; // IMPLEMENTED DESCRIPTOR LIST LENGTH
    reply[44] = 0x02;
    reply[45] = 0xe4;
    return reply;
}

} // namespace

TEST_CASE("EXTENDED COPY(LID1) is opcode 0x83, service action 0, the list length in bytes 10-13")
{
    CHECK(cdb_bytes(cdb_extended_copy_lid1(0x01020304)) ==
          Bytes{0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x02, 0x03, 0x04, 0, 0});
    CHECK(command_name(cdb_extended_copy_lid1(92)).find("xtended copy") != std::string::npos);
}

TEST_CASE("RECEIVE COPY RESULTS operating parameters: 0x84, service action 3, list id 0")
{
    CHECK(cdb_bytes(cdb_receive_copy_operating_parameters(256)) ==
          Bytes{0x84, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0, 0});
}

TEST_CASE("the LID1 parameter list: header, two identification CSCDs, a block-to-block segment")
{
    ExtendedCopyList list;
    list.targets = {{naa(naa_a), 0x00, 512}, {naa(naa_b), 0x00, 4096}};
    list.segments = {{0, 1, 0xffff, 0x0102030405060708ULL, 0x1112131415161718ULL}};
    const Bytes got = extended_copy_parameter_list(list);
    REQUIRE(got.size() == 16 + 2 * 32 + 28);

    // Header: list id 0, LIST ID USAGE 11b (bits 4-3 of byte 1), CSCD list 64 bytes, segment
    // list 28 bytes, no inline data.
    CHECK(Bytes(got.begin(), got.begin() + 16) ==
          Bytes{0x00, 0x18, 0x00, 0x40, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x1c, 0, 0, 0, 0});
    // CSCD 0: type 0xE4, device type 0, relative initiator port 0; designation descriptor
    // header: code set 1 (binary), association 0 and type 3 (NAA), length 16; the NAA; the
    // block device parameters with DISK BLOCK LENGTH (bytes 29-31).
    Bytes cscd0 = {0xe4, 0x00, 0x00, 0x00, 0x01, 0x03, 0x00, 0x10};
    cscd0.insert(cscd0.end(), naa_a.begin(), naa_a.end());
    cscd0.insert(cscd0.end(), {0, 0, 0, 0, 0x00, 0x00, 0x02, 0x00});
    CHECK(Bytes(got.begin() + 16, got.begin() + 48) == cscd0);
    CHECK(got[48] == 0xe4);
    CHECK(Bytes(got.begin() + 56, got.begin() + 72) == naa_b);
    CHECK(Bytes(got.begin() + 77, got.begin() + 80) == Bytes{0x00, 0x10, 0x00});
    // Segment: type 0x02, DC 0, DESCRIPTOR LENGTH 0x18, source 0, destination 1, reserved,
    // NUMBER OF BLOCKS, source LBA, destination LBA.
    CHECK(Bytes(got.begin() + 80, got.end()) == Bytes{0x02, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00,
                                                      0x01, 0x00, 0x00, 0xff, 0xff, 0x01, 0x02,
                                                      0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x11,
                                                      0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18});
}

TEST_CASE("LIST ID USAGE and the list identifier go into byte 0 and bits 4-3 of byte 1")
{
    ExtendedCopyList list;
    list.list_id = 0x2a;
    list.usage = ListIdUsage::no_hold;
    list.targets = {{naa(naa_a), 0, 512}, {naa(naa_a), 0, 512}};
    list.segments = {{0, 1, 8, 0, 100}};
    const Bytes got = extended_copy_parameter_list(list);
    CHECK(got[0] == 0x2a);
    CHECK(got[1] == 0x10);
    list.usage = ListIdUsage::hold;
    CHECK(extended_copy_parameter_list(list)[1] == 0x00);
}

TEST_CASE("a parameter list that cannot be sent throws")
{
    ExtendedCopyList list;
    list.targets = {{naa(naa_a), 0, 512}, {naa(naa_b), 0, 512}};
    list.segments = {{0, 1, 0, 0, 0}};
    CHECK_THROWS_AS(extended_copy_parameter_list(list), std::invalid_argument);
    list.segments = {{0, 1, 0x10000, 0, 0}};
    CHECK_THROWS_AS(extended_copy_parameter_list(list), std::invalid_argument);
    list.segments = {{0, 2, 1, 0, 0}};
    CHECK_THROWS_AS(extended_copy_parameter_list(list), std::invalid_argument);
    list.segments = {{0, 1, 1, 0, 0}};
    list.targets[0].designator.value.assign(21, 0x60);
    CHECK_THROWS_AS(extended_copy_parameter_list(list), std::invalid_argument);
    list.targets[0].designator.value.assign(20, 0x60); // the most that fits
    CHECK(extended_copy_parameter_list(list).size() == 16 + 64 + 28);
}

TEST_CASE("operating parameters as LIO reports them")
{
    CopyOperatingParameters p;
    REQUIRE(decode_copy_operating_parameters(lio_operating_parameters(), p) == 0);
    CHECK(p.supports_no_list_id);
    CHECK(p.max_cscd_descriptors == 2);
    CHECK(p.max_segment_descriptors == 1);
    CHECK(p.max_descriptor_list_length == 1024);
    CHECK(p.max_segment_length == 256U << 20);
    CHECK(p.max_inline_data_length == 0);
    CHECK(p.held_data_limit == 0);
    CHECK(p.max_stream_device_transfer_size == 0);
    CHECK(p.total_concurrent_copies == 1);
    CHECK(p.max_concurrent_copies == 1);
    CHECK(p.data_segment_granularity_log2 == 9);
    CHECK(p.inline_data_granularity_log2 == 9);
    CHECK(p.held_data_granularity_log2 == 9);
    CHECK(p.descriptor_codes == Bytes{0x02, 0xe4});
    CHECK(p.implements(0x02));
    CHECK(p.implements(0xe4));
    CHECK_FALSE(p.implements(0x0a));
}

TEST_CASE("operating parameters: every field at its offset, the codes cut to what arrived")
{
    Bytes reply(44, 0);
    for (std::size_t i = 8; i < 44; ++i)
        reply[i] = static_cast<std::uint8_t>(i);
    reply[43] = 3; // three codes listed, but the reply ends before them
    CopyOperatingParameters p;
    REQUIRE(decode_copy_operating_parameters(reply, p) == 0);
    CHECK(p.max_cscd_descriptors == 0x0809);
    CHECK(p.max_segment_descriptors == 0x0a0b);
    CHECK(p.max_descriptor_list_length == 0x0c0d0e0fU);
    CHECK(p.max_segment_length == 0x10111213U);
    CHECK(p.max_inline_data_length == 0x14151617U);
    CHECK(p.held_data_limit == 0x18191a1bU);
    CHECK(p.max_stream_device_transfer_size == 0x1c1d1e1fU);
    CHECK(p.total_concurrent_copies == 0x2223);
    CHECK(p.max_concurrent_copies == 0x24);
    CHECK(p.data_segment_granularity_log2 == 0x25);
    CHECK(p.inline_data_granularity_log2 == 0x26);
    CHECK(p.held_data_granularity_log2 == 0x27);
    CHECK(p.descriptor_codes.empty());

    // AVAILABLE DATA counts 4 + 40 + 1 bytes: one code, though the list length says two.
    Bytes lio = lio_operating_parameters();
    lio[3] = 41;
    REQUIRE(decode_copy_operating_parameters(lio, p) == 0);
    CHECK(p.descriptor_codes == Bytes{0x02});
    CHECK(decode_copy_operating_parameters(Bytes(43, 0), p) == -EPROTO);
}

TEST_CASE("standard INQUIRY: 3PC is byte 5 bit 3")
{
    Bytes reply(36, 0);
    reply[4] = 31;
    StandardInquiry inquiry;
    REQUIRE(decode_standard_inquiry(reply, inquiry) == 0);
    CHECK_FALSE(inquiry.third_party_copy);
    reply[5] = 0x08;
    REQUIRE(decode_standard_inquiry(reply, inquiry) == 0);
    CHECK(inquiry.third_party_copy);
    reply[5] = 0xf7; // every other bit
    REQUIRE(decode_standard_inquiry(reply, inquiry) == 0);
    CHECK_FALSE(inquiry.third_party_copy);
    CHECK(decode_standard_inquiry(Bytes{0, 0, 0, 0, 0}, inquiry) == 0);
    CHECK_FALSE(inquiry.third_party_copy);
}
