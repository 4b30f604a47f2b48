// CDB builders and reply decoders against byte vectors worked out by hand from the SPC-4 and
// SBC-3 field layouts.

#include "sgfs/cdb.hpp"

#include <cerrno>
#include <cstdint>
#include <doctest/doctest.h>
#include <stdexcept>
#include <string>
#include <vector>

using namespace sgfs;

namespace
{

using Bytes = std::vector<std::uint8_t>;

// Hex text makes a failing comparison print both byte strings.
std::string hex(std::span<const std::uint8_t> bytes)
{
    static constexpr char digits[] = "0123456789abcdef";
    std::string text;
    for (const std::uint8_t byte : bytes) {
        if (!text.empty()) {
            text += ' ';
        }
        text += digits[byte >> 4];
        text += digits[byte & 0x0f];
    }
    return text;
}

Bytes ascii(std::string_view text)
{
    return {text.begin(), text.end()};
}

Bytes concat(std::initializer_list<Bytes> parts)
{
    Bytes out;
    for (const Bytes &part : parts) {
        out.insert(out.end(), part.begin(), part.end());
    }
    return out;
}

Bytes first(const Bytes &bytes, std::size_t count)
{
    return {bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(count)};
}

Designator designator(std::uint8_t code_set, std::uint8_t association, std::uint8_t type,
                      Bytes value)
{
    return Designator{code_set, association, type, std::move(value)};
}

} // namespace

// ---------------------------------------------------------------- builders

TEST_CASE("TEST UNIT READY is six zero bytes")
{
    const Cdb cdb = cdb_test_unit_ready();
    CHECK(cdb.length == 6);
    CHECK(hex(cdb.view()) == hex(Bytes{0x00, 0x00, 0x00, 0x00, 0x00, 0x00}));
}

TEST_CASE("INQUIRY")
{
    SUBCASE("standard data")
    {
        const Cdb cdb = cdb_inquiry(false, 0x00, 36);
        CHECK(cdb.length == 6);
        CHECK(hex(cdb.view()) == hex(Bytes{0x12, 0x00, 0x00, 0x00, 0x24, 0x00}));
    }
    SUBCASE("VPD page with a 16-bit allocation length")
    {
        const Cdb cdb = cdb_inquiry(true, vpd::device_identification, 0x1234);
        CHECK(hex(cdb.view()) == hex(Bytes{0x12, 0x01, 0x83, 0x12, 0x34, 0x00}));
    }
    SUBCASE("maximum allocation length")
    {
        const Cdb cdb = cdb_inquiry(true, vpd::block_limits, 0xffff);
        CHECK(hex(cdb.view()) == hex(Bytes{0x12, 0x01, 0xb0, 0xff, 0xff, 0x00}));
    }
}

TEST_CASE("READ CAPACITY(10) is opcode 0x25 and nine zero bytes")
{
    const Cdb cdb = cdb_read_capacity_10();
    CHECK(cdb.length == 10);
    CHECK(hex(cdb.view()) ==
          hex(Bytes{0x25, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}));
}

TEST_CASE("READ CAPACITY(16) is SERVICE ACTION IN(16) with service action 0x10")
{
    SUBCASE("default allocation length of 32")
    {
        const Cdb cdb = cdb_read_capacity_16();
        CHECK(cdb.length == 16);
        CHECK(hex(cdb.view()) == hex(Bytes{0x9e, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                           0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00}));
    }
    SUBCASE("32-bit allocation length in bytes 10-13")
    {
        const Cdb cdb = cdb_read_capacity_16(0x01020304);
        CHECK(hex(cdb.view()) == hex(Bytes{0x9e, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                           0x00, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00}));
    }
}

TEST_CASE("READ(10) and WRITE(10)")
{
    SUBCASE("READ(10) with FUA")
    {
        const Cdb cdb = cdb_read_10(0x12345678, 0x100, true);
        CHECK(cdb.length == 10);
        CHECK(hex(cdb.view()) ==
              hex(Bytes{0x28, 0x08, 0x12, 0x34, 0x56, 0x78, 0x00, 0x01, 0x00, 0x00}));
    }
    SUBCASE("READ(10) without FUA")
    {
        const Cdb cdb = cdb_read_10(0xa1b2c3d4, 0xe5f6, false);
        CHECK(hex(cdb.view()) ==
              hex(Bytes{0x28, 0x00, 0xa1, 0xb2, 0xc3, 0xd4, 0x00, 0xe5, 0xf6, 0x00}));
    }
    SUBCASE("WRITE(10) with FUA")
    {
        const Cdb cdb = cdb_write_10(0x00000800, 0x0008, true);
        CHECK(cdb.length == 10);
        CHECK(hex(cdb.view()) ==
              hex(Bytes{0x2a, 0x08, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x00}));
    }
    SUBCASE("WRITE(10) without FUA")
    {
        const Cdb cdb = cdb_write_10(0, 1, false);
        CHECK(hex(cdb.view()) ==
              hex(Bytes{0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00}));
    }
}

TEST_CASE("READ(16) and WRITE(16)")
{
    SUBCASE("READ(16) with FUA")
    {
        const Cdb cdb = cdb_read_16(0x0123456789abcdef, 0x89abcdef, true);
        CHECK(cdb.length == 16);
        CHECK(hex(cdb.view()) == hex(Bytes{0x88, 0x08, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd,
                                           0xef, 0x89, 0xab, 0xcd, 0xef, 0x00, 0x00}));
    }
    SUBCASE("READ(16) without FUA")
    {
        const Cdb cdb = cdb_read_16(0x100000000, 1, false);
        CHECK(hex(cdb.view()) == hex(Bytes{0x88, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                           0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}));
    }
    SUBCASE("WRITE(16) with FUA")
    {
        const Cdb cdb = cdb_write_16(0xfedcba9876543210, 0xffffffff, true);
        CHECK(cdb.length == 16);
        CHECK(hex(cdb.view()) == hex(Bytes{0x8a, 0x08, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32,
                                           0x10, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00}));
    }
    SUBCASE("WRITE(16) without FUA")
    {
        const Cdb cdb = cdb_write_16(0x0000000200000000, 0x00010000, false);
        CHECK(hex(cdb.view()) == hex(Bytes{0x8a, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
                                           0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00}));
    }
}

TEST_CASE("cdb_read picks (10) only when the whole range fits")
{
    SUBCASE("last addressable LBA of (10), one block")
    {
        const Cdb cdb = cdb_read(0xffffffff, 1, false);
        CHECK(cdb.length == 10);
        CHECK(hex(cdb.view()) ==
              hex(Bytes{0x28, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x01, 0x00}));
    }
    SUBCASE("two blocks from 0xffffffff cross 2^32")
    {
        const Cdb cdb = cdb_read(0xffffffff, 2, false);
        CHECK(cdb.length == 16);
        CHECK(hex(cdb.view()) == hex(Bytes{0x88, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
                                           0xff, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00}));
    }
    SUBCASE("range ending exactly at 0xffffffff")
    {
        const Cdb cdb = cdb_read(0xfffffff0, 0x10, true);
        CHECK(hex(cdb.view()) ==
              hex(Bytes{0x28, 0x08, 0xff, 0xff, 0xff, 0xf0, 0x00, 0x00, 0x10, 0x00}));
    }
    SUBCASE("range ending one past 0xffffffff")
    {
        const Cdb cdb = cdb_read(0xfffffff0, 0x11, true);
        CHECK(hex(cdb.view()) == hex(Bytes{0x88, 0x08, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
                                           0xf0, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00}));
    }
    SUBCASE("0xffff blocks is the largest (10) transfer")
    {
        const Cdb cdb = cdb_read(0, 0xffff, false);
        CHECK(hex(cdb.view()) ==
              hex(Bytes{0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00}));
    }
    SUBCASE("0x10000 blocks needs (16)")
    {
        const Cdb cdb = cdb_read(0, 0x10000, false);
        CHECK(hex(cdb.view()) == hex(Bytes{0x88, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                           0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00}));
    }
    SUBCASE("an LBA above 32 bits needs (16)")
    {
        const Cdb cdb = cdb_read(0x100000000, 1, false);
        CHECK(hex(cdb.view()) == hex(Bytes{0x88, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                           0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}));
    }
    SUBCASE("an LBA near 2^64 does not wrap back into (10)")
    {
        const Cdb cdb = cdb_read(0xffffffffffffffff, 1, false);
        CHECK(hex(cdb.view()) == hex(Bytes{0x88, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                           0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}));
    }
    SUBCASE("zero blocks at the top of the (10) range does not underflow")
    {
        const Cdb cdb = cdb_read(0xffffffff, 0, false);
        CHECK(hex(cdb.view()) ==
              hex(Bytes{0x28, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00}));
    }
}

TEST_CASE("cdb_write picks (10) only when the whole range fits")
{
    SUBCASE("(10) with FUA")
    {
        const Cdb cdb = cdb_write(0xffffffff, 1, true);
        CHECK(hex(cdb.view()) ==
              hex(Bytes{0x2a, 0x08, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x01, 0x00}));
    }
    SUBCASE("(10) without FUA")
    {
        const Cdb cdb = cdb_write(0x12345678, 0x100, false);
        CHECK(hex(cdb.view()) ==
              hex(Bytes{0x2a, 0x00, 0x12, 0x34, 0x56, 0x78, 0x00, 0x01, 0x00, 0x00}));
    }
    SUBCASE("(16) across 2^32, with FUA")
    {
        const Cdb cdb = cdb_write(0xffffffff, 2, true);
        CHECK(hex(cdb.view()) == hex(Bytes{0x8a, 0x08, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
                                           0xff, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00}));
    }
    SUBCASE("(16) for 0x10000 blocks, without FUA")
    {
        const Cdb cdb = cdb_write(0x10, 0x10000, false);
        CHECK(hex(cdb.view()) == hex(Bytes{0x8a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                           0x10, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00}));
    }
}

TEST_CASE("SYNCHRONIZE CACHE")
{
    SUBCASE("(10) for the whole medium")
    {
        const Cdb cdb = cdb_synchronize_cache_10();
        CHECK(cdb.length == 10);
        CHECK(hex(cdb.view()) ==
              hex(Bytes{0x35, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}));
    }
    SUBCASE("(10) for a range")
    {
        const Cdb cdb = cdb_synchronize_cache_10(0x01020304, 0x0506);
        CHECK(hex(cdb.view()) ==
              hex(Bytes{0x35, 0x00, 0x01, 0x02, 0x03, 0x04, 0x00, 0x05, 0x06, 0x00}));
    }
    SUBCASE("(16) for the whole medium")
    {
        const Cdb cdb = cdb_synchronize_cache_16();
        CHECK(cdb.length == 16);
        CHECK(hex(cdb.view()) == hex(Bytes{0x91, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                           0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}));
    }
    SUBCASE("(16) for a range")
    {
        const Cdb cdb = cdb_synchronize_cache_16(0x0102030405060708, 0x090a0b0c);
        CHECK(hex(cdb.view()) == hex(Bytes{0x91, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                           0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x00, 0x00}));
    }
}

TEST_CASE("MODE SENSE(10)")
{
    SUBCASE("all pages, block descriptors disabled by default")
    {
        const Cdb cdb = cdb_mode_sense_10(0x3f, 0x00fc);
        CHECK(cdb.length == 10);
        CHECK(hex(cdb.view()) ==
              hex(Bytes{0x5a, 0x08, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfc, 0x00}));
    }
    SUBCASE("caching page with block descriptors")
    {
        const Cdb cdb = cdb_mode_sense_10(0x08, 0x1000, false);
        CHECK(hex(cdb.view()) ==
              hex(Bytes{0x5a, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00}));
    }
    SUBCASE("a page code above 0x3f cannot leak into the PC field")
    {
        const Cdb cdb = cdb_mode_sense_10(0xff, 0xffff, true);
        CHECK(hex(cdb.view()) ==
              hex(Bytes{0x5a, 0x08, 0x3f, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00}));
    }
}

TEST_CASE("UNMAP CDB")
{
    const Cdb cdb = cdb_unmap(0x0028);
    CHECK(cdb.length == 10);
    CHECK(hex(cdb.view()) ==
          hex(Bytes{0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x28, 0x00}));
}

TEST_CASE("WRITE SAME(16)")
{
    SUBCASE("without UNMAP")
    {
        const Cdb cdb = cdb_write_same_16(0x0102030405060708, 0x090a0b0c, false);
        CHECK(cdb.length == 16);
        CHECK(hex(cdb.view()) == hex(Bytes{0x93, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                           0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x00, 0x00}));
    }
    SUBCASE("with UNMAP: byte 1 bit 3, nothing else (no ANCHOR, no NDOB)")
    {
        const Cdb cdb = cdb_write_same_16(8, 0xffff, true);
        CHECK(hex(cdb.view()) == hex(Bytes{0x93, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                           0x08, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00}));
    }
}

TEST_CASE("GET LBA STATUS is SERVICE ACTION IN(16) with service action 0x12")
{
    const Cdb cdb = cdb_get_lba_status(0x0102030405060708, 0x00000418);
    CHECK(cdb.length == 16);
    CHECK(hex(cdb.view()) == hex(Bytes{0x9e, 0x12, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                       0x00, 0x00, 0x04, 0x18, 0x00, 0x00}));
    CHECK(command_name(cdb) == "Get LBA status(16)"); // libsgutils2's name
}

TEST_CASE("UNMAP parameter list")
{
    SUBCASE("two ranges")
    {
        const std::vector<UnmapRange> ranges{{0x0000000000001000, 0x00000800},
                                             {0x0123456789abcdef, 0xfedcba98}};
        const Bytes expected{
            0x00, 0x26, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, // header: 38, 32, reserved
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, // LBA
            0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, // blocks, reserved
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, // LBA
            0xfe, 0xdc, 0xba, 0x98, 0x00, 0x00, 0x00, 0x00, // blocks, reserved
        };
        const Bytes list = unmap_parameter_list(ranges);
        CHECK(hex(list) == hex(expected));
        CHECK(hex(cdb_unmap(static_cast<std::uint16_t>(list.size())).view()) ==
              hex(Bytes{0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x28, 0x00}));
    }
    SUBCASE("no ranges is a bare header")
    {
        CHECK(hex(unmap_parameter_list({})) ==
              hex(Bytes{0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}));
    }
    SUBCASE("4095 ranges is the most a 16-bit parameter list length can carry")
    {
        const std::vector<UnmapRange> ranges(4095, UnmapRange{1, 1});
        const Bytes list = unmap_parameter_list(ranges);
        CHECK(list.size() == 65528);
        CHECK(hex(std::span(list).first(4)) == hex(Bytes{0xff, 0xf6, 0xff, 0xf0}));
        CHECK(hex(std::span(list).last(16)) ==
              hex(Bytes{0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,
                        0x00, 0x00, 0x00, 0x00}));
    }
    SUBCASE("4096 ranges do not fit")
    {
        const std::vector<UnmapRange> ranges(4096, UnmapRange{1, 1});
        CHECK_THROWS_AS(unmap_parameter_list(ranges), std::length_error);
    }
}

// ---------------------------------------------------------------- standard INQUIRY

namespace
{

// What scsi_debug returns: SPC-5 disk, 96 bytes, with version descriptors after byte 58.
Bytes scsi_debug_inquiry()
{
    Bytes data = concat({
        {0x00, 0x00, 0x07, 0x02, 0x5b, 0x00, 0x00, 0x02},
        ascii("Linux   "),
        ascii("scsi_debug      "),
        ascii("0191"),
    });
    data.resize(96, 0x00);
    data[58] = 0x00; // SAM-6
    data[59] = 0xc0;
    data[60] = 0x05; // SPC-5
    data[61] = 0xc0;
    return data;
}

} // namespace

TEST_CASE("standard INQUIRY from scsi_debug")
{
    StandardInquiry inquiry;
    REQUIRE(decode_standard_inquiry(scsi_debug_inquiry(), inquiry) == 0);
    CHECK(inquiry.peripheral_qualifier == 0);
    CHECK(inquiry.peripheral_device_type == 0x00);
    CHECK_FALSE(inquiry.removable);
    CHECK(inquiry.version == 0x07);
    CHECK(inquiry.vendor == "Linux");
    CHECK(inquiry.product == "scsi_debug");
    CHECK(inquiry.revision == "0191");
}

TEST_CASE("standard INQUIRY fields")
{
    StandardInquiry inquiry;

    SUBCASE("qualifier, type and RMB; NUL padding and inner spaces")
    {
        const Bytes data = concat({
            {0x25, 0x80, 0x05, 0x32, 0x1f, 0x00, 0x00, 0x00},
            {'H', 'L', '-', 'D', 'T', '-', 'S', 'T'},
            ascii("DVD RW GH24NSD1"),
            {0x00},
            {'A', '1', 0x00, 0x00},
        });
        REQUIRE(data.size() == 36);
        REQUIRE(decode_standard_inquiry(data, inquiry) == 0);
        CHECK(inquiry.peripheral_qualifier == 1);
        CHECK(inquiry.peripheral_device_type == 0x05);
        CHECK(inquiry.removable);
        CHECK(inquiry.version == 0x05);
        CHECK(inquiry.vendor == "HL-DT-ST");
        CHECK(inquiry.product == "DVD RW GH24NSD1");
        CHECK(inquiry.revision == "A1");
    }
    SUBCASE("all-space fields trim to empty")
    {
        Bytes data{0x00, 0x00, 0x06, 0x02, 0x1f, 0x00, 0x00, 0x00};
        data.resize(36, ' ');
        REQUIRE(decode_standard_inquiry(data, inquiry) == 0);
        CHECK(inquiry.vendor.empty());
        CHECK(inquiry.product.empty());
        CHECK(inquiry.revision.empty());
    }
    SUBCASE("leading spaces are kept")
    {
        Bytes data = concat({
            {0x00, 0x00, 0x06, 0x02, 0x1f, 0x00, 0x00, 0x00},
            ascii(" ATA    "),
            ascii("  Samsung SSD   "),
            ascii(" 3B6"),
        });
        REQUIRE(decode_standard_inquiry(data, inquiry) == 0);
        CHECK(inquiry.vendor == " ATA");
        CHECK(inquiry.product == "  Samsung SSD");
        CHECK(inquiry.revision == " 3B6");
    }
}

TEST_CASE("short standard INQUIRY replies")
{
    const Bytes full = scsi_debug_inquiry();
    StandardInquiry inquiry;

    SUBCASE("fewer than 5 bytes is malformed and leaves the output alone")
    {
        inquiry.vendor = "untouched";
        CHECK(decode_standard_inquiry(std::span(full).first(4), inquiry) == -EPROTO);
        CHECK(decode_standard_inquiry({}, inquiry) == -EPROTO);
        CHECK(inquiry.vendor == "untouched");
    }
    SUBCASE("5 bytes: header only, every string empty")
    {
        inquiry.vendor = "stale";
        REQUIRE(decode_standard_inquiry(std::span(full).first(5), inquiry) == 0);
        CHECK(inquiry.version == 0x07);
        CHECK(inquiry.vendor.empty());
        CHECK(inquiry.product.empty());
        CHECK(inquiry.revision.empty());
    }
    SUBCASE("cut inside the product field")
    {
        REQUIRE(decode_standard_inquiry(std::span(full).first(20), inquiry) == 0);
        CHECK(inquiry.vendor == "Linux");
        CHECK(inquiry.product == "scsi");
        CHECK(inquiry.revision.empty());
    }
    SUBCASE("cut right after the product field")
    {
        REQUIRE(decode_standard_inquiry(std::span(full).first(32), inquiry) == 0);
        CHECK(inquiry.product == "scsi_debug");
        CHECK(inquiry.revision.empty());
    }
    SUBCASE("exactly 36 bytes")
    {
        REQUIRE(decode_standard_inquiry(std::span(full).first(36), inquiry) == 0);
        CHECK(inquiry.revision == "0191");
    }
}

// ---------------------------------------------------------------- VPD 0x00 and 0x80

TEST_CASE("VPD supported pages")
{
    std::vector<std::uint8_t> pages{0xee};

    SUBCASE("list of page codes")
    {
        const Bytes data{0x00, 0x00, 0x00, 0x05, 0x00, 0x80, 0x83, 0xb0, 0xb2};
        REQUIRE(decode_vpd_supported_pages(data, pages) == 0);
        CHECK(pages == std::vector<std::uint8_t>{0x00, 0x80, 0x83, 0xb0, 0xb2});
    }
    SUBCASE("bytes past the page length are not page codes")
    {
        const Bytes data{0x00, 0x00, 0x00, 0x02, 0x00, 0x80, 0x83, 0xb0};
        REQUIRE(decode_vpd_supported_pages(data, pages) == 0);
        CHECK(pages == std::vector<std::uint8_t>{0x00, 0x80});
    }
    SUBCASE("empty list")
    {
        const Bytes data{0x00, 0x00, 0x00, 0x00};
        REQUIRE(decode_vpd_supported_pages(data, pages) == 0);
        CHECK(pages.empty());
    }
    SUBCASE("a list cut short by the allocation length")
    {
        const Bytes data{0x00, 0x00, 0x00, 0x05, 0x00, 0x80, 0x83};
        CHECK(decode_vpd_supported_pages(data, pages) == -EPROTO);
        CHECK(pages == std::vector<std::uint8_t>{0xee});
    }
    SUBCASE("shorter than the header")
    {
        CHECK(decode_vpd_supported_pages(Bytes{0x00, 0x00, 0x00}, pages) == -EPROTO);
        CHECK(decode_vpd_supported_pages({}, pages) == -EPROTO);
    }
    SUBCASE("another page's reply")
    {
        const Bytes data{0x00, 0x80, 0x00, 0x02, 0x00, 0x80};
        CHECK(decode_vpd_supported_pages(data, pages) == -EPROTO);
    }
}

TEST_CASE("VPD unit serial number")
{
    std::string serial = "stale";

    SUBCASE("padded with spaces on both sides")
    {
        const Bytes data = concat({{0x00, 0x80, 0x00, 0x0c}, ascii("  WD-WX12AB3 ")});
        // Page length 12 leaves out the final byte, a space.
        REQUIRE(decode_vpd_unit_serial(data, serial) == 0);
        CHECK(serial == "WD-WX12AB3");
    }
    SUBCASE("scsi_debug style, NUL padded")
    {
        const Bytes data = concat({{0x00, 0x80, 0x00, 0x08}, ascii("2000"), {0, 0, 0, 0}});
        REQUIRE(decode_vpd_unit_serial(data, serial) == 0);
        CHECK(serial == "2000");
    }
    SUBCASE("inner spaces are kept")
    {
        const Bytes data = concat({{0x00, 0x80, 0x00, 0x07}, ascii("AB  12 ")});
        REQUIRE(decode_vpd_unit_serial(data, serial) == 0);
        CHECK(serial == "AB  12");
    }
    SUBCASE("blank serial")
    {
        const Bytes data{0x00, 0x80, 0x00, 0x04, ' ', ' ', ' ', ' '};
        REQUIRE(decode_vpd_unit_serial(data, serial) == 0);
        CHECK(serial.empty());
    }
    SUBCASE("cut short")
    {
        const Bytes data = concat({{0x00, 0x80, 0x00, 0x14}, ascii("WD-WX12AB3")});
        CHECK(decode_vpd_unit_serial(data, serial) == -EPROTO);
        CHECK(serial == "stale");
    }
    SUBCASE("shorter than the header")
    {
        CHECK(decode_vpd_unit_serial(Bytes{0x00, 0x80}, serial) == -EPROTO);
    }
    SUBCASE("another page's reply")
    {
        const Bytes data = concat({{0x00, 0x83, 0x00, 0x04}, ascii("2000")});
        CHECK(decode_vpd_unit_serial(data, serial) == -EPROTO);
    }
}

// ---------------------------------------------------------------- VPD 0x83

namespace
{

const Bytes t10_descriptor = concat({
    {0x02, 0x01, 0x00, 0x18}, // ASCII, logical unit, T10 vendor id, 24 bytes
    ascii("Linux   scsi_debug  2000"),
});
const Bytes target_port_naa_descriptor{
    0x61, 0x93, 0x00, 0x08, // SAS, binary; PIV, target port, NAA; 8 bytes
    0x52, 0x22, 0x22, 0x20, 0x00, 0x00, 0x00, 0x01,
};
const Bytes logical_unit_naa_descriptor{
    0x01, 0x03, 0x00, 0x10, // binary, logical unit, NAA; 16 bytes
    0x60, 0x01, 0x40, 0x50, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18, 0x29, 0x3a, 0x4b, 0x5c,
};

// The target port NAA comes before the logical unit's so that picking the first NAA is wrong.
Bytes device_identification_page()
{
    return concat({
        {0x00, 0x83, 0x00, 0x3c},
        t10_descriptor,
        target_port_naa_descriptor,
        logical_unit_naa_descriptor,
    });
}

} // namespace

TEST_CASE("VPD device identification")
{
    std::vector<Designator> designators;
    const Bytes page = device_identification_page();
    REQUIRE(page.size() == 0x40);
    REQUIRE(decode_vpd_device_identification(page, designators) == 0);
    REQUIRE(designators.size() == 3);

    CHECK(designators[0].code_set == 2);
    CHECK(designators[0].association == 0);
    CHECK(designators[0].type == 1);
    CHECK(designators[0].value == ascii("Linux   scsi_debug  2000"));

    CHECK(designators[1].code_set == 1);
    CHECK(designators[1].association == 1);
    CHECK(designators[1].type == 3);
    CHECK(hex(designators[1].value) == hex(Bytes{0x52, 0x22, 0x22, 0x20, 0x00, 0x00, 0x00, 0x01}));

    CHECK(designators[2].code_set == 1);
    CHECK(designators[2].association == 0);
    CHECK(designators[2].type == 3);
    CHECK(hex(designators[2].value) == hex(Bytes{0x60, 0x01, 0x40, 0x50, 0xa1, 0xb2, 0xc3, 0xd4,
                                                 0xe5, 0xf6, 0x07, 0x18, 0x29, 0x3a, 0x4b, 0x5c}));

    CHECK(stable_id_from_designators(designators) == "wwn-0x60014050a1b2c3d4e5f60718293a4b5c");
}

TEST_CASE("VPD device identification edge cases")
{
    // A stale entry shows whether a failed decode left the output alone.
    std::vector<Designator> designators{designator(1, 0, 3, {0xaa})};
    const auto untouched = [&designators] {
        return designators.size() == 1 && designators[0].value == Bytes{0xaa};
    };

    SUBCASE("an empty page has no designators")
    {
        REQUIRE(decode_vpd_device_identification(Bytes{0x00, 0x83, 0x00, 0x00}, designators) == 0);
        CHECK(designators.empty());
    }
    SUBCASE("a zero-length designator")
    {
        const Bytes data{0x00, 0x83, 0x00, 0x04, 0x01, 0x03, 0x00, 0x00};
        REQUIRE(decode_vpd_device_identification(data, designators) == 0);
        REQUIRE(designators.size() == 1);
        CHECK(designators[0].value.empty());
    }
    SUBCASE("PIV and the reserved bit 6 are not part of the association")
    {
        const Bytes data{0x00, 0x83, 0x00, 0x05, 0x61, 0xd3, 0x00, 0x01, 0x52};
        REQUIRE(decode_vpd_device_identification(data, designators) == 0);
        REQUIRE(designators.size() == 1);
        CHECK(designators[0].code_set == 1);
        CHECK(designators[0].association == 1);
        CHECK(designators[0].type == 3);
    }
    SUBCASE("bytes past the page length are ignored")
    {
        Bytes data = concat({{0x00, 0x83, 0x00, 0x1c}, t10_descriptor, {0xff, 0xff, 0xff}});
        REQUIRE(decode_vpd_device_identification(data, designators) == 0);
        CHECK(designators.size() == 1);
    }
    SUBCASE("a descriptor longer than the page is malformed")
    {
        // The NAA descriptor claims 16 bytes but the page ends after 8 of them.
        const Bytes data = concat({
            {0x00, 0x83, 0x00, 0x0c},
            first(logical_unit_naa_descriptor, 12),
        });
        CHECK(decode_vpd_device_identification(data, designators) == -EPROTO);
        CHECK(untouched());
    }
    SUBCASE("a descriptor header cut by the page end is malformed")
    {
        const Bytes data = concat({{0x00, 0x83, 0x00, 0x1e}, t10_descriptor, {0x01, 0x03}});
        CHECK(decode_vpd_device_identification(data, designators) == -EPROTO);
        CHECK(untouched());
    }
    SUBCASE("a page longer than the reply is malformed")
    {
        const Bytes page = device_identification_page();
        CHECK(decode_vpd_device_identification(first(page, 0x3f), designators) == -EPROTO);
        // Cut at a descriptor boundary: every descriptor parses, yet the list is incomplete.
        CHECK(decode_vpd_device_identification(first(page, 0x2c), designators) == -EPROTO);
    }
    SUBCASE("shorter than the header")
    {
        CHECK(decode_vpd_device_identification(Bytes{0x00, 0x83, 0x00}, designators) == -EPROTO);
    }
    SUBCASE("another page's reply")
    {
        Bytes page = device_identification_page();
        page[1] = 0x80;
        CHECK(decode_vpd_device_identification(page, designators) == -EPROTO);
        CHECK(untouched());
    }
}

// ---------------------------------------------------------------- stable ids

namespace
{

const Designator lu_naa = designator(1, 0, 3, {0x50, 0x00, 0xc5, 0x00, 0x12, 0x34, 0xab, 0xcd});
const Designator lu_eui64 = designator(1, 0, 2, {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77});
const Designator lu_scsi_name =
    designator(3, 0, 8, concat({ascii("iqn.2003-01.org.linux-iscsi:sn.1234,t,0x1"), {0, 0, 0}}));
const Designator lu_t10 = designator(2, 0, 1, ascii("ATA     WDC WD40EFRX-68N32N0   "));

} // namespace

TEST_CASE("stable id preference order")
{
    CHECK(stable_id_from_designators(std::vector{lu_t10, lu_scsi_name, lu_eui64, lu_naa}) ==
          "wwn-0x5000c5001234abcd");
    CHECK(stable_id_from_designators(std::vector{lu_t10, lu_scsi_name, lu_eui64}) ==
          "eui-0011223344556677");
    CHECK(stable_id_from_designators(std::vector{lu_t10, lu_scsi_name}) ==
          "scsi-iqn.2003-01.org.linux-iscsi_sn.1234_t_0x1");
    CHECK(stable_id_from_designators(std::vector{lu_t10}) == "t10-ATA_WDC_WD40EFRX-68N32N0");
    CHECK(stable_id_from_designators({}).empty());
}

TEST_CASE("stable id uses logical unit designators only")
{
    const Designator port_naa = designator(1, 1, 3, {0x52, 0x22, 0x22, 0x20});
    const Designator device_naa = designator(1, 2, 3, {0x53, 0x33, 0x33, 0x30});
    const Designator port_name = designator(3, 1, 8, ascii("naa.5001405abcdef012"));
    const Designator relative_port = designator(1, 1, 4, {0x00, 0x00, 0x00, 0x01});

    CHECK(stable_id_from_designators(std::vector{port_naa, device_naa, lu_t10}) ==
          "t10-ATA_WDC_WD40EFRX-68N32N0");
    CHECK(stable_id_from_designators(std::vector{port_naa, device_naa, port_name, relative_port})
              .empty());
    // A logical unit designator of a type we do not use gives nothing either.
    CHECK(stable_id_from_designators(std::vector{designator(1, 0, 4, {0x01})}).empty());
}

TEST_CASE("stable id from the scsi_debug page")
{
    std::vector<Designator> designators;
    REQUIRE(decode_vpd_device_identification(device_identification_page(), designators) == 0);
    // Without the logical unit NAA, the target port NAA must still not win over T10.
    designators.pop_back();
    CHECK(stable_id_from_designators(designators) == "t10-Linux_scsi_debug_2000");
}

TEST_CASE("stable id text and code sets")
{
    SUBCASE("binary T10 vendor id is hex")
    {
        CHECK(stable_id_from_designators(std::vector{designator(1, 0, 1, {0x4c, 0x20, 0x00})}) ==
              "t10-4c2000");
    }
    SUBCASE("reserved code sets are treated as binary")
    {
        CHECK(stable_id_from_designators(std::vector{designator(0, 0, 8, {0xde, 0xad})}) ==
              "scsi-dead");
    }
    SUBCASE("ASCII NAA is sanitized text rather than hex")
    {
        CHECK(stable_id_from_designators(std::vector{designator(2, 0, 3, ascii("5000 c500/1"))}) ==
              "wwn-0x5000_c500_1");
    }
    SUBCASE("UTF-8 bytes outside the safe set become '_'")
    {
        const Bytes name = concat({ascii("eui.caf"), {0xc3, 0xa9}, ascii("/x")});
        CHECK(stable_id_from_designators(std::vector{designator(3, 0, 8, name)}) ==
              "scsi-eui.caf___x");
    }
    SUBCASE("SCSI name string spaces are each replaced, not collapsed")
    {
        CHECK(stable_id_from_designators(std::vector{designator(3, 0, 8, ascii(" a  b "))}) ==
              "scsi-a__b");
    }
    SUBCASE("text after the terminating NUL is ignored")
    {
        const Bytes name = concat({ascii("abc"), {0}, ascii("junk")});
        CHECK(stable_id_from_designators(std::vector{designator(3, 0, 8, name)}) == "scsi-abc");
    }
    SUBCASE("T10 space runs collapse and the ends are trimmed")
    {
        CHECK(stable_id_from_designators(std::vector{
                  designator(2, 0, 1, ascii("  SEAGATE ST4000NM0023   Z1Z0ABCD    "))}) ==
              "t10-SEAGATE_ST4000NM0023_Z1Z0ABCD");
    }
    SUBCASE("T10 other unsafe characters are replaced one by one")
    {
        CHECK(stable_id_from_designators(std::vector{designator(2, 0, 1, ascii("IBM  a//b"))}) ==
              "t10-IBM_a__b");
    }
    SUBCASE("empty designators are skipped for the next preference")
    {
        const std::vector<Designator> designators{
            designator(1, 0, 3, {}),
            designator(2, 0, 8, ascii("    ")),
            designator(3, 0, 8, {0, 0, 0, 0}),
            designator(2, 0, 1, ascii("VENDOR  ID")),
        };
        CHECK(stable_id_from_designators(designators) == "t10-VENDOR_ID");
    }
    SUBCASE("nothing usable at all")
    {
        CHECK(stable_id_from_designators(std::vector{designator(2, 0, 1, ascii("   "))}).empty());
    }
    SUBCASE("the first of two logical unit NAAs wins")
    {
        const std::vector<Designator> designators{designator(1, 0, 3, {0x51}),
                                                  designator(1, 0, 3, {0x62})};
        CHECK(stable_id_from_designators(designators) == "wwn-0x51");
    }
}

// ---------------------------------------------------------------- VPD 0xB0

namespace
{

// SBC-3 block limits as scsi_debug reports them with max transfer 0x400 blocks.
Bytes block_limits_page()
{
    Bytes page(0x40, 0x00);
    const Bytes fields{
        0x00, 0xb0, 0x00, 0x3c, // header, page length 0x3c
        0x00, 0x01, 0x00, 0x08, // WSNZ/reserved, max compare and write 1, gran 8
        0x00, 0x00, 0x04, 0x00, // maximum transfer length 0x400
        0x00, 0x00, 0x00, 0x80, // optimal transfer length 0x80
        0x00, 0x00, 0x00, 0x00, // maximum prefetch length
        0x00, 0x40, 0x00, 0x00, // maximum unmap LBA count 0x400000
        0x00, 0x00, 0x01, 0x00, // maximum unmap block descriptor count 0x100
        0x00, 0x00, 0x00, 0x04, // optimal unmap granularity 4
        0x80, 0x00, 0x00, 0x03, // UGAVALID, unmap granularity alignment 3
        0x00, 0x00, 0x00, 0x00, // maximum write same length 0xffff (8 bytes)
        0x00, 0x00, 0xff, 0xff,
    };
    std::copy(fields.begin(), fields.end(), page.begin());
    return page;
}

} // namespace

TEST_CASE("VPD block limits")
{
    BlockLimits limits;

    SUBCASE("full SBC-3 page")
    {
        REQUIRE(decode_vpd_block_limits(block_limits_page(), limits) == 0);
        CHECK(limits.maximum_transfer_length == 0x400);
        CHECK(limits.optimal_transfer_length == 0x80);
        CHECK(limits.optimal_transfer_length_granularity == 8);
        CHECK(limits.maximum_unmap_lba_count == 0x400000);
        CHECK(limits.maximum_unmap_block_descriptor_count == 0x100);
        CHECK(limits.optimal_unmap_granularity == 4);
        CHECK(limits.unmap_granularity_alignment_valid);
        CHECK(limits.unmap_granularity_alignment == 3);
        CHECK(limits.maximum_write_same_length == 0xffff);
    }
    SUBCASE("UGAVALID clear: the alignment field says nothing")
    {
        Bytes page = block_limits_page();
        page[32] = 0x00;
        REQUIRE(decode_vpd_block_limits(page, limits) == 0);
        CHECK_FALSE(limits.unmap_granularity_alignment_valid);
        CHECK(limits.unmap_granularity_alignment == 3);
    }
    SUBCASE("the alignment is 31 bits, the top one is UGAVALID")
    {
        Bytes page = block_limits_page();
        page[32] = 0xff;
        REQUIRE(decode_vpd_block_limits(page, limits) == 0);
        CHECK(limits.unmap_granularity_alignment_valid);
        CHECK(limits.unmap_granularity_alignment == 0x7f000003);
    }
    SUBCASE("cut inside MAXIMUM WRITE SAME LENGTH: not reported")
    {
        REQUIRE(decode_vpd_block_limits(first(block_limits_page(), 43), limits) == 0);
        CHECK(limits.unmap_granularity_alignment == 3);
        CHECK(limits.maximum_write_same_length == 0);
    }
    SUBCASE("SBC-2 page of length 0x0c has no unmap fields")
    {
        Bytes page = block_limits_page();
        page[3] = 0x0c; // bytes past 15 are still in the buffer but not in the page
        REQUIRE(decode_vpd_block_limits(page, limits) == 0);
        CHECK(limits.optimal_transfer_length_granularity == 8);
        CHECK(limits.maximum_transfer_length == 0x400);
        CHECK(limits.optimal_transfer_length == 0x80);
        CHECK(limits.maximum_unmap_lba_count == 0);
        CHECK(limits.maximum_unmap_block_descriptor_count == 0);
        CHECK(limits.optimal_unmap_granularity == 0);
        CHECK_FALSE(limits.unmap_granularity_alignment_valid);
        CHECK(limits.maximum_write_same_length == 0);
    }
    SUBCASE("page cut by the allocation length decodes whole fields only")
    {
        REQUIRE(decode_vpd_block_limits(first(block_limits_page(), 11), limits) == 0);
        CHECK(limits.optimal_transfer_length_granularity == 8);
        CHECK(limits.maximum_transfer_length == 0);
        CHECK(limits.optimal_transfer_length == 0);
    }
    SUBCASE("cut between the two unmap fields")
    {
        REQUIRE(decode_vpd_block_limits(first(block_limits_page(), 24), limits) == 0);
        CHECK(limits.maximum_unmap_lba_count == 0x400000);
        CHECK(limits.maximum_unmap_block_descriptor_count == 0);
    }
    SUBCASE("header only")
    {
        limits.maximum_transfer_length = 7;
        REQUIRE(decode_vpd_block_limits(Bytes{0x00, 0xb0, 0x00, 0x00}, limits) == 0);
        CHECK(limits.maximum_transfer_length == 0);
        CHECK(limits.optimal_transfer_length_granularity == 0);
    }
    SUBCASE("shorter than the header")
    {
        limits.maximum_transfer_length = 7;
        CHECK(decode_vpd_block_limits(Bytes{0x00, 0xb0, 0x00}, limits) == -EPROTO);
        CHECK(limits.maximum_transfer_length == 7);
    }
    SUBCASE("another page's reply")
    {
        Bytes page = block_limits_page();
        page[1] = 0xb1;
        CHECK(decode_vpd_block_limits(page, limits) == -EPROTO);
    }
}

// ---------------------------------------------------------------- VPD 0xB2

TEST_CASE("VPD logical block provisioning")
{
    LogicalBlockProvisioning lbp;
    SUBCASE("scsi_debug lbpu=1 lbpws=1 lbprz=1: SBC-4 LBPRZ field 001b, thin")
    {
        const Bytes page{0x00, 0xb2, 0x00, 0x04, 0x00, 0xc4, 0x02, 0x00};
        REQUIRE(decode_vpd_logical_block_provisioning(page, lbp) == 0);
        CHECK(lbp.lbpu);
        CHECK(lbp.lbpws);
        CHECK_FALSE(lbp.lbpws10);
        CHECK(lbp.lbprz);
        CHECK(lbp.provisioning_type == 2);
    }
    SUBCASE("LBPRZ field 010b (provisioning initialization pattern) does not read zero")
    {
        const Bytes page{0x00, 0xb2, 0x00, 0x04, 0x00, 0x88, 0x00, 0x00};
        REQUIRE(decode_vpd_logical_block_provisioning(page, lbp) == 0);
        CHECK(lbp.lbpu);
        CHECK_FALSE(lbp.lbpws);
        CHECK_FALSE(lbp.lbprz);
    }
    SUBCASE("LBPWS10, ANC_SUP and the threshold exponent")
    {
        const Bytes page{0x00, 0xb2, 0x00, 0x04, 0x07, 0x22, 0x01, 0x00};
        REQUIRE(decode_vpd_logical_block_provisioning(page, lbp) == 0);
        CHECK(lbp.threshold_exponent == 7);
        CHECK(lbp.lbpws10);
        CHECK(lbp.anc_sup);
        CHECK_FALSE(lbp.lbpu);
        CHECK(lbp.provisioning_type == 1);
    }
    SUBCASE("no flags byte, or another page: malformed")
    {
        lbp.lbpu = true;
        CHECK(decode_vpd_logical_block_provisioning(Bytes{0x00, 0xb2, 0x00, 0x01, 0x00}, lbp) ==
              -EPROTO);
        CHECK(decode_vpd_logical_block_provisioning(
                  Bytes{0x00, 0xb0, 0x00, 0x04, 0x00, 0xc4, 0x02, 0x00}, lbp) == -EPROTO);
        CHECK(lbp.lbpu);
    }
}

// ---------------------------------------------------------------- READ CAPACITY

TEST_CASE("READ CAPACITY(10)")
{
    Capacity capacity;

    SUBCASE("2 GiB of 512-byte blocks")
    {
        const Bytes data{0x00, 0x3f, 0xff, 0xff, 0x00, 0x00, 0x02, 0x00};
        REQUIRE(decode_read_capacity_10(data, capacity) == 0);
        CHECK(capacity.last_lba == 0x3fffff);
        CHECK(capacity.logical_block_size == 512);
        CHECK(capacity.physical_block_size == 512);
        CHECK_FALSE(capacity.thin_provisioned);
        CHECK(capacity.blocks() == 0x400000);
        CHECK(capacity.bytes() == 0x80000000);
    }
    SUBCASE("0xffffffff, meaning 'ask (16)', is reported as is")
    {
        const Bytes data{0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x10, 0x00};
        REQUIRE(decode_read_capacity_10(data, capacity) == 0);
        CHECK(capacity.last_lba == 0xffffffff);
        CHECK(capacity.logical_block_size == 4096);
        CHECK(capacity.blocks() == 0x100000000);
    }
    SUBCASE("too short")
    {
        const Bytes data{0x00, 0x3f, 0xff, 0xff, 0x00, 0x00, 0x02};
        capacity.last_lba = 42;
        CHECK(decode_read_capacity_10(data, capacity) == -EPROTO);
        CHECK(capacity.last_lba == 42);
    }
    SUBCASE("zero block length")
    {
        const Bytes data{0x00, 0x3f, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00};
        CHECK(decode_read_capacity_10(data, capacity) == -EPROTO);
    }
}

namespace
{

Bytes read_capacity_16_reply(std::initializer_list<std::uint8_t> first_16)
{
    Bytes data(first_16);
    data.resize(32, 0x00);
    return data;
}

} // namespace

TEST_CASE("READ CAPACITY(16)")
{
    Capacity capacity;

    SUBCASE("4096-byte logical blocks, exponent 0, fully provisioned")
    {
        const Bytes data = read_capacity_16_reply({0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                                                   0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00});
        REQUIRE(decode_read_capacity_16(data, capacity) == 0);
        CHECK(capacity.last_lba == 0x100000000);
        CHECK(capacity.logical_block_size == 4096);
        CHECK(capacity.physical_block_size == 4096);
        CHECK_FALSE(capacity.thin_provisioned);
        CHECK_FALSE(capacity.unmapped_reads_zero);
        CHECK(capacity.bytes() == 0x100000001ULL * 4096);
    }
    SUBCASE("512-byte logical, exponent 3 (4096 physical), LBPME, P_I_EXPONENT ignored")
    {
        const Bytes data = read_capacity_16_reply({0x00, 0x00, 0x00, 0x00, 0x74, 0x70, 0x6d, 0xaf,
                                                   0x00, 0x00, 0x02, 0x00, 0x00, 0x23, 0xc0, 0x00});
        REQUIRE(decode_read_capacity_16(data, capacity) == 0);
        CHECK(capacity.last_lba == 0x74706daf);
        CHECK(capacity.logical_block_size == 512);
        CHECK(capacity.physical_block_size == 4096);
        CHECK(capacity.thin_provisioned);
        CHECK(capacity.unmapped_reads_zero); // LBPRZ, byte 14 bit 6
    }
    SUBCASE("a longer reply is fine")
    {
        Bytes data = read_capacity_16_reply({0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00,
                                             0x00, 0x02, 0x00, 0x00, 0x00, 0x80, 0x00});
        data.resize(64, 0xff);
        REQUIRE(decode_read_capacity_16(data, capacity) == 0);
        CHECK(capacity.last_lba == 0xff);
        CHECK(capacity.thin_provisioned);
        CHECK_FALSE(capacity.unmapped_reads_zero);
    }
    SUBCASE("31 bytes is too short")
    {
        const Bytes data = read_capacity_16_reply({0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff,
                                                   0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00});
        capacity.last_lba = 42;
        CHECK(decode_read_capacity_16(first(data, 31), capacity) == -EPROTO);
        CHECK(decode_read_capacity_16(first(data, 8), capacity) == -EPROTO);
        CHECK(capacity.last_lba == 42);
    }
    SUBCASE("zero block length")
    {
        const Bytes data = read_capacity_16_reply({0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff,
                                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00});
        CHECK(decode_read_capacity_16(data, capacity) == -EPROTO);
    }
    SUBCASE("a physical block size past 32 bits")
    {
        const Bytes data = read_capacity_16_reply({0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff,
                                                   0x80, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00});
        CHECK(decode_read_capacity_16(data, capacity) == -EPROTO);
    }
    SUBCASE("the largest physical block size that fits")
    {
        const Bytes data = read_capacity_16_reply({0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff,
                                                   0x00, 0x00, 0x02, 0x00, 0x00, 0x0f, 0x00, 0x00});
        REQUIRE(decode_read_capacity_16(data, capacity) == 0);
        CHECK(capacity.physical_block_size == 0x1000000);
    }
}

// ---------------------------------------------------------------- MODE SENSE(10)

TEST_CASE("MODE SENSE(10) write protect")
{
    bool write_protected = false;

    SUBCASE("WP set")
    {
        const Bytes data{0x00, 0x06, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00};
        REQUIRE(decode_mode_sense_10_write_protect(data, write_protected) == 0);
        CHECK(write_protected);
    }
    SUBCASE("WP clear, DPOFUA set")
    {
        write_protected = true;
        const Bytes data{0x00, 0x1a, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x08, 0x12};
        REQUIRE(decode_mode_sense_10_write_protect(data, write_protected) == 0);
        CHECK_FALSE(write_protected);
    }
    SUBCASE("header shorter than 8 bytes")
    {
        write_protected = true;
        const Bytes data{0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00};
        CHECK(decode_mode_sense_10_write_protect(data, write_protected) == -EPROTO);
        CHECK(decode_mode_sense_10_write_protect({}, write_protected) == -EPROTO);
        CHECK(write_protected);
    }
}

TEST_CASE("stable_id_from_serial sanitizes like the designator ids")
{
    CHECK(stable_id_from_serial("  AB12/34 x  ") == "serial-AB12_34_x");
    CHECK(stable_id_from_serial("   ").empty());
}

TEST_CASE("GET LBA STATUS parameter data")
{
    std::vector<LbaStatus> status;
    // SBC-3 Table 66: PARAMETER DATA LENGTH (4 bytes, counts what follows it), 4 reserved
    // bytes, then 16-byte descriptors: LBA (8), NUMBER OF LOGICAL BLOCKS (4), provisioning
    // status in the low nibble of byte 12, 3 reserved bytes.
    const Bytes header_two = {0x00, 0x00, 0x00, 0x24, 0x00, 0x00, 0x00, 0x00};
    const Bytes mapped_run = {0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                              0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00};
    const Bytes deallocated_run = {0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x10,
                                   0x00, 0x01, 0x00, 0x00, 0xf1, 0x00, 0x00, 0x00};

    SUBCASE("two descriptors")
    {
        REQUIRE(decode_get_lba_status(concat({header_two, mapped_run, deallocated_run}), status) ==
                0);
        REQUIRE(status.size() == 2);
        CHECK(status[0].lba == 0x100000000);
        CHECK(status[0].blocks == 16);
        CHECK(status[0].provisioning_status == LbaStatus::mapped);
        CHECK(status[1].lba == 0x100000010);
        CHECK(status[1].blocks == 0x10000);
        // The high nibble of byte 12 is reserved in SBC-3.
        CHECK(status[1].provisioning_status == LbaStatus::deallocated);
    }
    SUBCASE("cut by the allocation length: whole descriptors kept, the partial one dropped")
    {
        const Bytes cut = first(concat({header_two, mapped_run, deallocated_run}), 8 + 16 + 5);
        REQUIRE(decode_get_lba_status(cut, status) == 0);
        REQUIRE(status.size() == 1);
        CHECK(status[0].blocks == 16);
    }
    SUBCASE("bytes past PARAMETER DATA LENGTH are not descriptors")
    {
        const Bytes header_one = {0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00};
        REQUIRE(decode_get_lba_status(concat({header_one, mapped_run, deallocated_run}), status) ==
                0);
        CHECK(status.size() == 1);
    }
    SUBCASE("a header alone: no descriptors")
    {
        const Bytes header_none = {0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00};
        REQUIRE(decode_get_lba_status(header_none, status) == 0);
        CHECK(status.empty());
        // A length that does not even cover the header's own reserved bytes (a broken
        // device): still no descriptors, and the descriptor that follows is not read.
        const Bytes header_short = {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
        REQUIRE(decode_get_lba_status(concat({header_short, mapped_run}), status) == 0);
        CHECK(status.empty());
    }
    SUBCASE("malformed")
    {
        status.push_back(LbaStatus{});
        CHECK(decode_get_lba_status(first(header_two, 7), status) == -EPROTO);
        Bytes empty_run = mapped_run;
        empty_run[11] = 0x00;
        CHECK(decode_get_lba_status(concat({header_two, empty_run, deallocated_run}), status) ==
              -EPROTO);
        CHECK(status.size() == 1); // untouched on failure
    }
}
