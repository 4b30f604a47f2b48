// The in-memory SCSI target (memory_target.hpp) checked through core's own sg_ll_* functions and
// decoders, as the probe and the engine will use it: the expected values are the target's
// configuration and the SPC/SBC rules, so that target and decoders check each other.
#include "memory_target.hpp"
#include "sg_ll.hpp"

#include <cerrno>
#include <cstring>
#include <doctest/doctest.h>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

using namespace sgfs;
using namespace sgfs::test;

namespace
{

using Bytes = std::vector<std::uint8_t>;

constexpr std::size_t block = 512;
constexpr std::size_t kib = 1024;

struct Rig {
    explicit Rig(TargetConfig config = {})
        : target(std::make_shared<MemoryTarget>(std::move(config))),
          transport(target, memory_node_facts())
    {
    }
    std::shared_ptr<MemoryTarget> target;
    MemoryTransport transport;
};

CommandContext no_retries()
{
    CommandContext context;
    context.retries = 0;
    return context;
}

// Distinct bytes for each position, so a misplaced block shows.
Bytes pattern(std::size_t length, std::uint8_t seed)
{
    Bytes bytes(length);
    for (std::size_t i = 0; i < length; ++i)
        bytes[i] = static_cast<std::uint8_t>(seed + i * 7 + i / 512);
    return bytes;
}

int read_write(Channel &channel, bool write, std::uint64_t lba, std::uint32_t blocks, void *data,
               TransferMode mode = TransferMode::indirect, std::uint32_t block_size = 512)
{
    std::string message;
    return sg_ll_read_write(channel, no_retries(), {write, lba, blocks, block_size, false}, data,
                            mode, message);
}

// One command straight on the channel, no command loop: what the "driver" reports.
SgCompletion run_raw(Channel &channel, const SgRequest &request)
{
    REQUIRE(channel.submit(request) == 0);
    SgCompletion done;
    REQUIRE(channel.reap(done) == 0);
    return done;
}

SgRequest raw_request(const Cdb &cdb, DataDirection direction, void *data, std::size_t length,
                      TransferMode mode = TransferMode::indirect)
{
    SgRequest request;
    request.cdb = cdb;
    request.direction = direction;
    request.buffer = data;
    request.length = length;
    request.mode = mode;
    return request;
}

} // namespace

TEST_CASE("a probe's sequence: INQUIRY, TEST UNIT READY through the power-on attention, VPD")
{
    TargetConfig config;
    config.block_size = 4096;
    config.block_count = 300;
    config.power_on_attention = true;
    config.lbpme = config.lbprz = config.lbpu = config.lbpws = true;
    config.unmap_granularity = 8;
    config.unmap_granularity_alignment = 3;
    config.max_unmap_lba_count = 1024;
    config.max_unmap_descriptors = 16;
    config.max_write_same_blocks = 4096;
    config.max_transfer_blocks = 64;
    Rig rig(config);
    auto channel = rig.transport.channel();
    std::string message;

    // INQUIRY neither reports nor clears a unit attention (SPC-4 5.14).
    StandardInquiry inquiry;
    REQUIRE(sg_ll_inquiry(*channel, no_retries(), inquiry, message) == 0);
    CHECK(inquiry.peripheral_device_type == 0x00);
    CHECK(inquiry.vendor == "SGFS");
    CHECK(inquiry.product == "MEMORY TARGET");
    CHECK(inquiry.revision == "0001");

    CHECK(sg_ll_test_unit_ready(*channel, no_retries(), message) == -EIO);
    CHECK(message.find("Test Unit Ready: unit attention") == 0);
    CHECK(message.find("ower on") != std::string::npos);
    REQUIRE(sg_ll_test_unit_ready(*channel, no_retries(), message) == 0);

    std::vector<std::uint8_t> page;
    std::vector<std::uint8_t> pages;
    REQUIRE(sg_ll_inquiry_vpd(*channel, no_retries(), vpd::supported_pages, page, message) == 0);
    REQUIRE(decode_vpd_supported_pages(page, pages) == 0);
    CHECK(pages == Bytes{0x00, 0x80, 0x83, 0xb0, 0xb2});

    std::string serial;
    REQUIRE(sg_ll_inquiry_vpd(*channel, no_retries(), vpd::unit_serial_number, page, message) == 0);
    REQUIRE(decode_vpd_unit_serial(page, serial) == 0);
    CHECK(serial == "MT0001");

    std::vector<Designator> designators;
    REQUIRE(sg_ll_inquiry_vpd(*channel, no_retries(), vpd::device_identification, page, message) ==
            0);
    REQUIRE(decode_vpd_device_identification(page, designators) == 0);
    CHECK(stable_id_from_designators(designators) == "wwn-0x6001405a177e57000000000000000001");

    BlockLimits limits;
    REQUIRE(sg_ll_inquiry_vpd(*channel, no_retries(), vpd::block_limits, page, message) == 0);
    REQUIRE(decode_vpd_block_limits(page, limits) == 0);
    CHECK(limits.maximum_transfer_length == 64);
    CHECK(limits.maximum_unmap_lba_count == 1024);
    CHECK(limits.maximum_unmap_block_descriptor_count == 16);
    CHECK(limits.optimal_unmap_granularity == 8);
    CHECK(limits.unmap_granularity_alignment_valid);
    CHECK(limits.unmap_granularity_alignment == 3);
    CHECK(limits.maximum_write_same_length == 4096);

    LogicalBlockProvisioning lbp;
    REQUIRE(sg_ll_inquiry_vpd(*channel, no_retries(), vpd::logical_block_provisioning, page,
                              message) == 0);
    REQUIRE(decode_vpd_logical_block_provisioning(page, lbp) == 0);
    CHECK(lbp.lbpu);
    CHECK(lbp.lbpws);
    CHECK_FALSE(lbp.lbpws10);
    CHECK(lbp.lbprz);
    CHECK(lbp.provisioning_type == 2);

    Capacity capacity;
    REQUIRE(sg_ll_readcap_16(*channel, no_retries(), capacity, message) == 0);
    CHECK(capacity.last_lba == 299);
    CHECK(capacity.logical_block_size == 4096);
    CHECK(capacity.physical_block_size == 4096);
    CHECK(capacity.thin_provisioned);
    CHECK(capacity.unmapped_reads_zero);
    Capacity capacity_10;
    REQUIRE(sg_ll_readcap_10(*channel, no_retries(), capacity_10, message) == 0);
    CHECK(capacity_10.blocks() == 300);
    CHECK(capacity_10.logical_block_size == 4096);

    bool write_protected = true;
    REQUIRE(sg_ll_mode_sense_10_wp(*channel, no_retries(), write_protected, message) == 0);
    CHECK_FALSE(write_protected);

    CHECK(rig.target->count(opcode::inquiry) == 6);
    CHECK(rig.target->count(opcode::test_unit_ready) == 2);
    CHECK(rig.target->violations().empty());
}

TEST_CASE("identity without NAA, write protect, a thick disk")
{
    TargetConfig config;
    config.naa.clear();
    config.write_protected = true;
    Rig rig(config);
    auto channel = rig.transport.channel();
    std::string message;

    std::vector<std::uint8_t> page;
    std::vector<Designator> designators;
    REQUIRE(sg_ll_inquiry_vpd(*channel, no_retries(), vpd::device_identification, page, message) ==
            0);
    REQUIRE(decode_vpd_device_identification(page, designators) == 0);
    CHECK(stable_id_from_designators(designators) == "t10-SGFS_MT0001");

    bool write_protected = false;
    REQUIRE(sg_ll_mode_sense_10_wp(*channel, no_retries(), write_protected, message) == 0);
    CHECK(write_protected);

    Capacity capacity;
    REQUIRE(sg_ll_readcap_16(*channel, no_retries(), capacity, message) == 0);
    CHECK_FALSE(capacity.thin_provisioned);
    CHECK_FALSE(capacity.unmapped_reads_zero);

    Bytes block(512, 0x11);
    CHECK(read_write(*channel, true, 0, 1, block.data()) == -EROFS);
    CHECK(read_write(*channel, false, 0, 1, block.data()) == 0);
    CHECK(block == Bytes(512, 0));
    CHECK(sg_ll_write_same_16(*channel, no_retries(), 0, 4, false, block, message) == -EROFS);
    CHECK(message.find("data protect") != std::string::npos);
}

TEST_CASE("MODE SENSE(10) with block descriptors: the header says how long they are")
{
    Rig rig;
    auto channel = rig.transport.channel();
    Bytes data(64);
    const SgCompletion done =
        run_raw(*channel, raw_request(cdb_mode_sense_10(0x3f, 64, false),
                                      DataDirection::from_device, data.data(), data.size()));
    REQUIRE(done.outcome.ok());
    // Header (8) + one block descriptor (8) + caching page (20): mode data length 34.
    CHECK(done.residual == 64 - 36);
    CHECK(data[1] == 34);
    CHECK(data[7] == 8);
    CHECK(data[8 + 2] == 0x08);  // 2048 blocks: 0x00000800
    CHECK(data[12 + 2] == 0x02); // 512-byte blocks: 0x000200
    CHECK(data[16] == 0x08);     // the caching page
}

TEST_CASE("read/write round trip in each transfer kind")
{
    for (const bool allow_dio : {false, true}) {
        CAPTURE(allow_dio);
        TargetConfig config;
        config.allow_dio = allow_dio;
        Rig rig(config);
        CHECK(rig.transport.facts().allow_dio == allow_dio);
        auto channel = rig.transport.channel({false, 64 * kib, true});
        const Bytes data = pattern(16 * block, 3);

        SUBCASE("indirect")
        {
            Bytes buffer = data;
            REQUIRE(read_write(*channel, true, 100, 16, buffer.data()) == 0);
            CHECK(rig.target->equals(100 * block, data));
            Bytes back(data.size());
            REQUIRE(read_write(*channel, false, 100, 16, back.data()) == 0);
            CHECK(back == data);
        }
        SUBCASE("direct: the same memory, done direct only where the driver allows it")
        {
            Bytes buffer = data;
            const SgCompletion done =
                run_raw(*channel, raw_request(cdb_write(7, 16, true), DataDirection::to_device,
                                              buffer.data(), buffer.size(), TransferMode::direct));
            REQUIRE(done.outcome.ok());
            CHECK(done.residual == 0);
            CHECK(done.done_mode == (allow_dio ? TransferMode::direct : TransferMode::indirect));
            CHECK(rig.target->equals(7 * block, data));
            Bytes back(data.size());
            REQUIRE(read_write(*channel, false, 7, 16, back.data(), TransferMode::direct) == 0);
            CHECK(back == data);
        }
        SUBCASE("mmap: the data lives in the channel's reserve buffer")
        {
            const std::span<std::uint8_t> area = channel->mmap_area();
            REQUIRE(area.size() == 64 * kib);
            CHECK(reinterpret_cast<std::uintptr_t>(area.data()) % 4096 == 0);
            std::copy(data.begin(), data.end(), area.begin());
            REQUIRE(read_write(*channel, true, 2000, 16, nullptr, TransferMode::mmap) == 0);
            CHECK(rig.target->equals(2000 * block, data));
            std::fill(area.begin(), area.end(), 0);
            const SgCompletion done =
                run_raw(*channel, raw_request(cdb_read(2000, 16, false), DataDirection::from_device,
                                              nullptr, data.size(), TransferMode::mmap));
            CHECK(done.done_mode == TransferMode::mmap);
            CHECK(std::equal(data.begin(), data.end(), area.begin()));
        }
        CHECK(rig.target->violations().empty());
    }
}

TEST_CASE("READ(16) and WRITE(16) with FUA, and the commands' log")
{
    Rig rig;
    auto first = rig.transport.channel();
    auto second = rig.transport.channel();
    Bytes data = pattern(3 * block, 9);
    REQUIRE(run_raw(*first, raw_request(cdb_write_16(40, 3, true), DataDirection::to_device,
                                        data.data(), data.size()))
                .outcome.ok());
    Bytes back(data.size());
    REQUIRE(run_raw(*second, raw_request(cdb_read_16(40, 3, true), DataDirection::from_device,
                                         back.data(), back.size()))
                .outcome.ok());
    CHECK(back == data);
    std::string message;
    REQUIRE(sg_ll_sync_cache(*second, no_retries(), message) == 0);

    const std::vector<CommandRecord> log = rig.target->log();
    REQUIRE(log.size() == 3);
    CHECK(log[0].order == 0);
    CHECK(log[0].channel == 0);
    CHECK(log[0].opcode == opcode::write_16);
    CHECK(log[0].lba == 40);
    CHECK(log[0].blocks == 3);
    CHECK(log[1].channel == 1);
    CHECK(log[1].opcode == opcode::read_16);
    CHECK(log[2].order == 2);
    CHECK(log[2].opcode == opcode::synchronize_cache_10);
    CHECK(log[2].blocks == 0); // the whole medium
    CHECK(rig.target->count(opcode::read_16) == 1);
    CHECK(rig.target->max_in_flight() == 1);
}

TEST_CASE("UNMAP unmaps whole granules only; GET LBA STATUS and reads show it")
{
    TargetConfig config;
    config.lbpme = config.lbpu = true;
    config.lbprz = false; // unmapped blocks read garbage, as LIO's may
    config.unmap_granularity = 8;
    config.block_count = 64;
    Rig rig(config);
    auto channel = rig.transport.channel();
    std::string message;
    Bytes data = pattern(64 * block, 1);
    REQUIRE(read_write(*channel, true, 0, 64, data.data()) == 0);

    const UnmapRange range{4, 16}; // [4, 20): of the granules only [8, 16) is whole
    REQUIRE(sg_ll_unmap(*channel, no_retries(), {&range, 1}, message) == 0);
    std::vector<LbaStatus> status;
    REQUIRE(sg_ll_get_lba_status(*channel, no_retries(), 0, 16, status, message) == 0);
    REQUIRE(status.size() == 3);
    CHECK(status[0].lba == 0);
    CHECK(status[0].blocks == 8);
    CHECK(status[0].provisioning_status == LbaStatus::mapped);
    CHECK(status[1].lba == 8);
    CHECK(status[1].blocks == 8);
    CHECK(status[1].provisioning_status == LbaStatus::deallocated);
    CHECK(status[2].lba == 16);
    CHECK(status[2].blocks == 48);

    // From inside a run, and cut to one descriptor by the allocation length.
    REQUIRE(sg_ll_get_lba_status(*channel, no_retries(), 10, 1, status, message) == 0);
    REQUIRE(status.size() == 1);
    CHECK(status[0].lba == 10);
    CHECK(status[0].blocks == 6);

    Bytes back(64 * block);
    REQUIRE(read_write(*channel, false, 0, 64, back.data()) == 0);
    const auto block = [&](const Bytes &bytes, std::size_t lba) {
        return Bytes(bytes.begin() + static_cast<std::ptrdiff_t>(lba * 512),
                     bytes.begin() + static_cast<std::ptrdiff_t>((lba + 1) * 512));
    };
    for (std::size_t lba = 0; lba < 64; ++lba) {
        CAPTURE(lba);
        if (lba >= 8 && lba < 16) {
            CHECK(block(back, lba) == Bytes(512, MemoryTarget::unmapped_pattern(lba)));
            CHECK_FALSE(rig.target->mapped(lba));
        } else {
            CHECK(block(back, lba) == block(data, lba));
        }
    }
    CHECK(MemoryTarget::unmapped_pattern(0) != 0);
    CHECK(rig.target->mapped_blocks() == 56);

    // Writing maps again.
    REQUIRE(read_write(*channel, true, 9, 1, data.data()) == 0);
    CHECK(rig.target->mapped(9));
    CHECK(rig.target->mapped_blocks() == 57);
}

TEST_CASE("UNMAP limits and support")
{
    TargetConfig config;
    config.lbpu = true;
    config.max_unmap_descriptors = 2;
    config.max_unmap_lba_count = 100;
    Rig rig(config);
    auto channel = rig.transport.channel();
    std::string message;
    const std::vector<UnmapRange> three{{0, 1}, {10, 1}, {20, 1}};
    CHECK(sg_ll_unmap(*channel, no_retries(), three, message) == -EOPNOTSUPP);
    CHECK(message.find("parameter list") != std::string::npos);
    const UnmapRange big{0, 101};
    CHECK(sg_ll_unmap(*channel, no_retries(), {&big, 1}, message) == -EOPNOTSUPP);
    const UnmapRange past{2040, 9};
    CHECK(sg_ll_unmap(*channel, no_retries(), {&past, 1}, message) == -EINVAL);
    CHECK(rig.target->mapped_blocks() == 2048);

    Rig thick;
    auto thick_channel = thick.transport.channel();
    const UnmapRange one{0, 1};
    CHECK(sg_ll_unmap(*thick_channel, no_retries(), {&one, 1}, message) == -EOPNOTSUPP);
    CHECK(message.find("operation code") != std::string::npos);
}

TEST_CASE("WRITE SAME(16) with and without the UNMAP bit")
{
    TargetConfig config;
    config.lbpme = config.lbpws = config.lbprz = true;
    config.unmap_granularity = 4;
    config.start_mapped = false;
    config.max_write_same_blocks = 256;
    Rig rig(config);
    auto channel = rig.transport.channel();
    std::string message;
    CHECK(rig.target->mapped_blocks() == 0);

    const Bytes ones(512, 0x5c);
    REQUIRE(sg_ll_write_same_16(*channel, no_retries(), 10, 20, false, ones, message) == 0);
    CHECK(rig.target->equals(10 * block, Bytes(20 * block, 0x5c)));
    CHECK(rig.target->mapped_blocks() == 20);

    // UNMAP bit with a zero block where unmapped blocks read zero: whole granules go, the
    // partial ones at the ends are written.
    const Bytes zero(512, 0);
    REQUIRE(sg_ll_write_same_16(*channel, no_retries(), 10, 20, true, zero, message) == 0);
    CHECK(rig.target->equals(10 * block, Bytes(20 * block, 0)));
    CHECK(rig.target->mapped(10));
    CHECK(rig.target->mapped(11));
    CHECK_FALSE(rig.target->mapped(12));
    CHECK_FALSE(rig.target->mapped(27));
    CHECK(rig.target->mapped(28));
    CHECK(rig.target->mapped_blocks() == 4);

    // UNMAP bit with data: the data is what must read back, so it is written.
    REQUIRE(sg_ll_write_same_16(*channel, no_retries(), 12, 4, true, ones, message) == 0);
    CHECK(rig.target->equals(12 * block, Bytes(4 * block, 0x5c)));
    CHECK(rig.target->mapped_blocks() == 8);

    CHECK(sg_ll_write_same_16(*channel, no_retries(), 0, 257, false, ones, message) == -EOPNOTSUPP);
    CHECK(sg_ll_write_same_16(*channel, no_retries(), 2047, 2, false, ones, message) == -EINVAL);

    Rig plain;
    auto plain_channel = plain.transport.channel();
    CHECK(sg_ll_write_same_16(*plain_channel, no_retries(), 0, 8, true, zero, message) ==
          -EOPNOTSUPP);
    REQUIRE(sg_ll_write_same_16(*plain_channel, no_retries(), 0, 8, false, ones, message) == 0);
}

TEST_CASE("the target refuses what it does not do")
{
    Rig rig;
    auto channel = rig.transport.channel();
    std::string message;
    Bytes data(512);

    SUBCASE("an unknown opcode: INVALID COMMAND OPERATION CODE, EOPNOTSUPP")
    {
        Cdb report_luns;
        report_luns.bytes[0] = 0xa0;
        report_luns.length = 12;
        const SgCompletion done =
            run_raw(*channel,
                    raw_request(report_luns, DataDirection::from_device, data.data(), data.size()));
        CHECK(done.outcome.category == ErrorCategory::illegal_request);
        CHECK(done.outcome.error == EOPNOTSUPP);
        CHECK(done.outcome.sense.asc == 0x20);
        CHECK(done.residual == 512);
    }
    SUBCASE("an LBA out of range: 05/21/00, EINVAL")
    {
        CHECK(read_write(*channel, false, 2047, 2, data.data()) == -EINVAL);
        CHECK(sg_ll_read_write(*channel, no_retries(), {false, 2048, 1, 512, false}, data.data(),
                               TransferMode::indirect, message) == -EINVAL);
        CHECK(message.find("out of range") != std::string::npos);
        std::vector<LbaStatus> status;
        CHECK(sg_ll_get_lba_status(*channel, no_retries(), 2048, 4, status, message) == -EINVAL);
    }
    SUBCASE("an unknown VPD page, a page code without EVPD, an unknown service action")
    {
        std::vector<std::uint8_t> page;
        CHECK(sg_ll_inquiry_vpd(*channel, no_retries(), 0x89, page, message) == -EOPNOTSUPP);
        const SgCompletion done =
            run_raw(*channel, raw_request(cdb_inquiry(false, 0x80, 96), DataDirection::from_device,
                                          data.data(), 96));
        CHECK(done.outcome.error == EOPNOTSUPP);
        Cdb action = cdb_read_capacity_16(32);
        action.bytes[1] = 0x11;
        CHECK(run_raw(*channel, raw_request(action, DataDirection::from_device, data.data(), 32))
                  .outcome.error == EOPNOTSUPP);
    }
    SUBCASE("more blocks than VPD B0's maximum transfer length")
    {
        TargetConfig config;
        config.max_transfer_blocks = 8;
        Rig limited(config);
        auto limited_channel = limited.transport.channel();
        Bytes nine(9 * block);
        CHECK(read_write(*limited_channel, false, 0, 9, nine.data()) == -EOPNOTSUPP);
        CHECK(read_write(*limited_channel, false, 0, 8, nine.data()) == 0);
    }
    CHECK(rig.target->violations().empty());
}

TEST_CASE("the driver's checks at submit: contract, read-only fds, mmap")
{
    Rig rig;
    Bytes data(8192);

    SUBCASE("a request that does not match its CDB is a violation")
    {
        auto channel = rig.transport.channel();
        CHECK(channel->submit(raw_request(cdb_read(0, 2, false), DataDirection::to_device,
                                          data.data(), 1024)) == -EINVAL);
        CHECK(channel->submit(raw_request(cdb_read(0, 2, false), DataDirection::from_device,
                                          data.data(), 512)) == -EINVAL);
        CHECK(channel->submit(raw_request(cdb_read(0, 2, false), DataDirection::from_device,
                                          nullptr, 1024)) == -EINVAL);
        CHECK(rig.target->violations().size() == 3);
        CHECK(rig.target->log().empty());
        CHECK_FALSE(channel->pending());
    }
    SUBCASE("one command in flight per channel; reap without one")
    {
        auto channel = rig.transport.channel();
        SgCompletion done;
        CHECK(channel->reap(done) == -EINVAL);
        const SgRequest request =
            raw_request(cdb_test_unit_ready(), DataDirection::none, nullptr, 0);
        REQUIRE(channel->submit(request) == 0);
        CHECK(channel->pending());
        CHECK(channel->submit(request) == -EBUSY);
        CHECK(rig.target->in_flight() == 1);
        REQUIRE(channel->reap(done) == 0);
        CHECK(done.outcome.ok());
        CHECK(rig.target->in_flight() == 0);
    }
    SUBCASE("a read-only channel reads, and may not change the medium")
    {
        auto channel = rig.transport.channel({true, 0, false});
        CHECK(read_write(*channel, false, 0, 1, data.data()) == 0);
        CHECK(read_write(*channel, true, 0, 1, data.data()) == -EPERM);
        std::string message;
        CHECK(sg_ll_sync_cache(*channel, no_retries(), message) == -EPERM);
        CHECK(message.find("queueing failed") != std::string::npos);
    }
    SUBCASE("mmap needs a mapped reserve buffer, and one big enough")
    {
        auto unmapped = rig.transport.channel({false, 4096, false});
        CHECK(unmapped->mmap_area().empty());
        CHECK(unmapped->reserve() == 4096);
        CHECK(read_write(*unmapped, false, 0, 1, nullptr, TransferMode::mmap) == -EINVAL);
        auto mapped = rig.transport.channel({false, 4096, true});
        CHECK(read_write(*mapped, false, 0, 8, nullptr, TransferMode::mmap) == 0);
        CHECK(read_write(*mapped, false, 0, 9, data.data(), TransferMode::mmap) == -ENOMEM);
    }
}

TEST_CASE("the transport: reserve, BLKSECTGET, open failures, a device that goes and returns")
{
    TargetConfig config;
    config.max_reserve = 128 * kib;
    config.max_transfer_bytes = 256 * kib;
    Rig rig(config);
    std::unique_ptr<Channel> channel;
    std::string message;

    REQUIRE(rig.transport.open_channel({false, 1 << 20, true}, channel, message) == 0);
    CHECK(channel->reserve() == 128 * kib);
    CHECK(channel->mmap_area().size() == 128 * kib);
    CHECK(channel->max_transfer_bytes() == 256 * kib);
    CHECK(rig.transport.facts().path == "/dev/sg0");
    CHECK(rig.transport.facts().name == "sg0");
    CHECK(rig.target->open_channels() == 1);
    std::unique_ptr<Channel> small;
    REQUIRE(rig.transport.open_channel({false, 8192, false}, small, message) == 0);
    CHECK(small->reserve() == 8192);
    CHECK(rig.target->open_channels() == 2);
    small.reset();
    CHECK(rig.target->open_channels() == 1);
    std::unique_ptr<Channel> nothing;
    CHECK(rig.transport.open_channel({false, 0, true}, nothing, message) == -EINVAL);

    rig.target->fail_opens(-EMFILE, 2);
    CHECK(rig.transport.open_channel({}, nothing, message) == -EMFILE);
    CHECK(message.find("/dev/sg0: ") == 0);
    CHECK(rig.transport.open_channel({}, nothing, message) == -EMFILE);
    REQUIRE(rig.transport.open_channel({}, nothing, message) == 0);
    nothing.reset();

    Bytes data(512);
    for (const GoneForm form :
         {GoneForm::reap_fails, GoneForm::submit_fails, GoneForm::no_connect}) {
        CAPTURE(static_cast<int>(form));
        auto before = rig.transport.channel();
        rig.target->disappear(form);
        CHECK(rig.target->gone());
        CHECK(read_write(*before, false, 0, 1, data.data()) == -ENODEV);
        CHECK_FALSE(before->pending());
        CHECK(rig.transport.open_channel({}, nothing, message) == -ENXIO);
        rig.target->reappear();
        // A device that came back is a new one: the old fds stay dead.
        CHECK(read_write(*before, false, 0, 1, data.data()) == -ENODEV);
        auto after = rig.transport.channel();
        CHECK(read_write(*after, false, 0, 1, data.data()) == 0);
    }
    // Only the commands a device got are in its log: the three reads on the new channels.
    CHECK(rig.target->count(opcode::read_10) == 3);
    CHECK(rig.target->in_flight() == 0);
}

TEST_CASE("resize: new capacity and a capacity-changed unit attention")
{
    Rig rig;
    auto channel = rig.transport.channel();
    std::string message;
    rig.target->resize(4096);
    Capacity capacity;
    CHECK(sg_ll_readcap_16(*channel, no_retries(), capacity, message) == -EIO);
    CHECK(message.find("apacity data has changed") != std::string::npos);
    REQUIRE(sg_ll_readcap_16(*channel, no_retries(), capacity, message) == 0);
    CHECK(capacity.blocks() == 4096);
    CHECK(rig.target->bytes() == 4096 * block);
}

TEST_CASE("fault rules: which commands, how often")
{
    TargetConfig config;
    config.block_count = 8192;
    Rig rig(config);
    auto channel = rig.transport.channel();
    Bytes data(4 * block);
    std::string message;

    SUBCASE("a medium error inside the rule's range names the first bad LBA")
    {
        Fault fault;
        fault.kind = FaultKind::medium_error;
        fault.on = Ops::read;
        fault.lba = 0x1234;
        fault.blocks = 1;
        fault.times = Fault::always;
        const std::size_t rule = rig.target->inject(fault);
        CHECK(read_write(*channel, false, 0x1230, 4, data.data()) == 0); // before it
        CHECK(read_write(*channel, true, 0x1232, 4, data.data()) == 0);  // a write
        CHECK(sg_ll_read_write(*channel, no_retries(), {false, 0x1232, 4, 512, false}, data.data(),
                               TransferMode::indirect, message) == -EIO);
        CHECK(message == "Read(10): medium error at LBA 4660 (0x1234): Unrecovered read error");
        CHECK(read_write(*channel, false, 0x1234, 1, data.data()) == -EIO);
        CHECK(rig.target->fired(rule) == 2);
        const auto log = rig.target->log();
        CHECK_FALSE(log[0].faulted);
        CHECK(log[2].faulted);
    }
    SUBCASE("every Nth, N times")
    {
        Fault fault;
        fault.kind = FaultKind::aborted_command;
        fault.on = Ops::write;
        fault.every = 3;
        fault.times = 2;
        const std::size_t rule = rig.target->inject(fault);
        std::vector<int> results;
        results.reserve(10);
        for (int i = 0; i < 10; ++i)
            results.push_back(read_write(*channel, true, 0, 1, data.data()));
        CHECK(results == std::vector<int>{0, 0, -EIO, 0, 0, -EIO, 0, 0, 0, 0});
        CHECK(rig.target->fired(rule) == 2);
        CHECK(read_write(*channel, false, 0, 1, data.data()) == 0);
    }
    SUBCASE("the kinds, as classify() sees them")
    {
        struct Case {
            FaultKind kind;
            ErrorCategory category;
            int error;
            bool retryable;
        };
        for (const Case c :
             {Case{FaultKind::power_on_attention, ErrorCategory::unit_attention, EIO, true},
              Case{FaultKind::capacity_changed, ErrorCategory::unit_attention, EIO, true},
              Case{FaultKind::aborted_command, ErrorCategory::aborted_command, EIO, true},
              Case{FaultKind::busy, ErrorCategory::busy, EBUSY, true},
              Case{FaultKind::becoming_ready, ErrorCategory::not_ready, EBUSY, true},
              Case{FaultKind::timeout, ErrorCategory::timeout, ETIMEDOUT, false},
              Case{FaultKind::data_protect, ErrorCategory::data_protect, EROFS, false}}) {
            CAPTURE(static_cast<int>(c.kind));
            Fault fault;
            fault.kind = c.kind;
            rig.target->inject(fault);
            const SgCompletion done =
                run_raw(*channel, raw_request(cdb_read(0, 4, false), DataDirection::from_device,
                                              data.data(), data.size()));
            CHECK(done.outcome.category == c.category);
            CHECK(done.outcome.error == c.error);
            CHECK(done.outcome.retryable == c.retryable);
            CHECK(done.residual == static_cast<int>(data.size()));
            rig.target->clear_faults();
        }
    }
    SUBCASE("the three forms of a timeout")
    {
        for (const TimeoutForm form :
             {TimeoutForm::host, TimeoutForm::driver, TimeoutForm::transport}) {
            Fault fault;
            fault.kind = FaultKind::timeout;
            fault.timeout_form = form;
            rig.target->inject(fault);
            CHECK(sg_ll_test_unit_ready(*channel, no_retries(), message) == -ETIMEDOUT);
            CHECK(message.find("timed out") != std::string::npos);
        }
    }
    SUBCASE("a check condition of the test's choosing: out of space")
    {
        Fault fault;
        fault.kind = FaultKind::check_condition;
        fault.on = Ops::write;
        fault.sense_key = 0x07;
        fault.asc = 0x27;
        fault.ascq = 0x07;
        rig.target->inject(fault);
        CHECK(read_write(*channel, true, 0, 1, data.data()) == -ENOSPC);
    }
    SUBCASE("a short transfer moves only the first part")
    {
        Fault fault;
        fault.kind = FaultKind::short_transfer;
        fault.residual = 1024 + 100;
        rig.target->inject(fault);
        Bytes written = pattern(data.size(), 5);
        const SgCompletion done =
            run_raw(*channel, raw_request(cdb_write(50, 4, false), DataDirection::to_device,
                                          written.data(), written.size()));
        CHECK(done.outcome.ok());
        CHECK(done.residual == 1124);
        CHECK(rig.target->equals(50 * block, Bytes(written.begin(), written.begin() + 924)));
        CHECK(rig.target->equals(50 * block + 924, Bytes(1124, 0)));
        // Never on commands that move no data.
        rig.target->inject(fault);
        CHECK(sg_ll_test_unit_ready(*channel, no_retries(), message) == 0);
    }
    SUBCASE("a rule with a range leaves commands without an LBA alone")
    {
        Fault fault;
        fault.kind = FaultKind::busy;
        fault.blocks = 10;
        fault.times = Fault::always;
        rig.target->inject(fault);
        CHECK(sg_ll_test_unit_ready(*channel, no_retries(), message) == 0);
        CHECK(read_write(*channel, false, 9, 1, data.data()) == -EBUSY);
        CHECK(read_write(*channel, false, 10, 1, data.data()) == 0);
    }
    SUBCASE("the device goes with a command")
    {
        Fault fault;
        fault.kind = FaultKind::device_gone;
        fault.on = Ops::write;
        fault.gone_form = GoneForm::no_connect;
        rig.target->inject(fault);
        CHECK(read_write(*channel, false, 0, 1, data.data()) == 0);
        CHECK(sg_ll_read_write(*channel, no_retries(), {true, 0, 1, 512, false}, data.data(),
                               TransferMode::indirect, message) == -ENODEV);
        CHECK(message.find("DID_NO_CONNECT") != std::string::npos);
        CHECK(rig.target->gone());
        CHECK(read_write(*channel, false, 0, 1, data.data()) == -ENODEV);
    }
}

TEST_CASE("many channels from many threads")
{
    TargetConfig config;
    config.block_count = 256;
    Rig rig(config);
    constexpr int threads = 4;
    constexpr int rounds = 200;
    std::vector<std::thread> workers;
    workers.reserve(threads);
    std::vector<int> failures(threads, 0);
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            auto channel = rig.transport.channel();
            for (int round = 0; round < rounds; ++round) {
                const std::uint64_t lba = std::uint64_t{64} * t + round % 60;
                Bytes data = pattern(4 * block, static_cast<std::uint8_t>(t * 31 + round));
                Bytes back(data.size());
                if (read_write(*channel, true, lba, 4, data.data()) != 0 ||
                    read_write(*channel, false, lba, 4, back.data()) != 0 || back != data)
                    ++failures[t];
            }
        });
    }
    for (std::thread &worker : workers)
        worker.join();
    CHECK(failures == std::vector<int>(threads, 0));
    CHECK(rig.target->log().size() == threads * rounds * 2);
    CHECK(rig.target->count(opcode::write_10) == threads * rounds);
    CHECK(rig.target->max_in_flight() <= threads);
    CHECK(rig.target->open_channels() == 0);
}

TEST_CASE("held completions line commands up in flight")
{
    Rig rig;
    rig.target->hold_completions();
    constexpr unsigned count = 3;
    std::vector<std::thread> workers;
    std::vector<int> results(count, 1);
    for (unsigned i = 0; i < count; ++i)
        workers.emplace_back([&, i] {
            auto channel = rig.transport.channel();
            std::string message;
            results[i] = sg_ll_test_unit_ready(*channel, no_retries(), message);
        });
    rig.target->wait_in_flight(count);
    CHECK(rig.target->in_flight() == count);
    rig.target->release_completions();
    for (std::thread &worker : workers)
        worker.join();
    CHECK(results == std::vector<int>(count, 0));
    CHECK(rig.target->max_in_flight() == count);
}

TEST_CASE("the store, directly")
{
    TargetConfig config;
    config.start_mapped = false;
    Rig rig(config);
    CHECK(rig.target->peek(512, 4) == Bytes(4, MemoryTarget::unmapped_pattern(1)));
    const Bytes bytes = {1, 2, 3};
    rig.target->poke(1023, bytes); // the last byte of block 1, two of block 2
    CHECK(rig.target->mapped(1));
    CHECK(rig.target->mapped(2));
    CHECK_FALSE(rig.target->mapped(3));
    CHECK(rig.target->equals(1023, bytes));
    CHECK_FALSE(rig.target->equals(1022, bytes));
    CHECK_THROWS_AS(rig.target->peek(2048 * block - 1, 2), std::out_of_range);
    CHECK_THROWS_AS(rig.target->poke(2048 * block, bytes), std::out_of_range);
    CHECK(rig.target->log().empty());
}

TEST_CASE("fault rules by command class; attentions pass INQUIRY by")
{
    TargetConfig config;
    config.lbpme = config.lbpu = config.lbpws = config.lbprz = true;
    Rig rig(config);
    auto channel = rig.transport.channel();
    std::string message;
    const Bytes zero(block, 0);
    Bytes data(block);
    const UnmapRange range{0, 8};
    std::vector<LbaStatus> status;
    // Each command of the class, as sg_ll sends it; 0 or -errno.
    const auto sync = [&] { return sg_ll_sync_cache(*channel, no_retries(), message); };
    const auto same = [&] {
        return sg_ll_write_same_16(*channel, no_retries(), 0, 8, true, zero, message);
    };
    const auto unmap = [&] { return sg_ll_unmap(*channel, no_retries(), {&range, 1}, message); };
    const auto lba_status = [&] {
        return sg_ll_get_lba_status(*channel, no_retries(), 0, 4, status, message);
    };
    const auto read = [&] { return read_write(*channel, false, 0, 1, data.data()); };
    const auto write = [&] { return read_write(*channel, true, 0, 1, data.data()); };

    struct Case {
        Ops ops;
        std::vector<bool> hit; // for sync, same, unmap, lba_status, read, write
    };
    for (const Case &c : {Case{Ops::sync, {true, false, false, false, false, false}},
                          Case{Ops::write_same, {false, true, false, false, false, false}},
                          Case{Ops::unmap, {false, false, true, false, false, false}},
                          Case{Ops::get_lba_status, {false, false, false, true, false, false}},
                          Case{Ops::data, {false, false, false, false, true, true}}}) {
        CAPTURE(static_cast<int>(c.ops));
        Fault fault;
        fault.kind = FaultKind::busy;
        fault.on = c.ops;
        fault.times = Fault::always;
        rig.target->inject(fault);
        const std::vector<bool> hit = {sync() == -EBUSY,       same() == -EBUSY, unmap() == -EBUSY,
                                       lba_status() == -EBUSY, read() == -EBUSY, write() == -EBUSY};
        CHECK(hit == c.hit);
        rig.target->clear_faults();
    }

    Fault attention;
    attention.kind = FaultKind::power_on_attention;
    const std::size_t rule = rig.target->inject(attention);
    StandardInquiry inquiry;
    CHECK(sg_ll_inquiry(*channel, no_retries(), inquiry, message) == 0);
    CHECK(rig.target->fired(rule) == 0);
    CHECK(sg_ll_test_unit_ready(*channel, no_retries(), message) == -EIO);
    CHECK(rig.target->fired(rule) == 1);

    rig.target->clear_log();
    CHECK(rig.target->log().empty());
    CHECK(rig.target->count(opcode::inquiry) == 0);
    CHECK(rig.target->max_in_flight() == 0);
}

TEST_CASE("a channel closed with a command in flight leaves nothing in flight")
{
    Rig rig;
    auto channel = rig.transport.channel();
    REQUIRE(channel->submit(raw_request(cdb_test_unit_ready(), DataDirection::none, nullptr, 0)) ==
            0);
    CHECK(rig.target->in_flight() == 1);
    channel.reset();
    CHECK(rig.target->in_flight() == 0);
    CHECK(rig.target->open_channels() == 0);
}

TEST_CASE("indirect IO on a mapped channel goes through the mapping, as sg's reserve buffer")
{
    for (const bool allow_dio : {false, true}) {
        CAPTURE(allow_dio);
        TargetConfig config;
        config.allow_dio = allow_dio;
        Rig rig(config);
        rig.target->poke(0, pattern(4 * block, 42));
        auto channel = rig.transport.channel({false, 8 * block, true});
        const std::span<std::uint8_t> area = channel->mmap_area();
        std::fill(area.begin(), area.end(), 0xee);
        Bytes data(4 * block);
        // Direct IO bypasses the reserve buffer; indirect (asked, or fallen back to) fills it.
        REQUIRE(read_write(*channel, false, 0, 4, data.data(), TransferMode::direct) == 0);
        CHECK(data == pattern(4 * block, 42));
        CHECK(Bytes(area.begin(), area.begin() + 4 * block) ==
              (allow_dio ? Bytes(4 * block, 0xee) : pattern(4 * block, 42)));
        std::fill(area.begin(), area.end(), 0xee);
        REQUIRE(read_write(*channel, false, 0, 4, data.data()) == 0);
        CHECK(Bytes(area.begin(), area.begin() + 4 * block) == pattern(4 * block, 42));
        // Larger than the reserve: the driver builds another buffer, the mapping stays.
        std::fill(area.begin(), area.end(), 0xee);
        Bytes big(16 * block);
        REQUIRE(read_write(*channel, false, 0, 16, big.data()) == 0);
        CHECK(Bytes(area.begin(), area.end()) == Bytes(8 * block, 0xee));
    }
}

TEST_CASE("replies cut short: the decoders' verdict reaches the caller as EPROTO")
{
    Rig rig;
    auto channel = rig.transport.channel();
    std::string message;
    Fault fault;
    fault.kind = FaultKind::short_transfer;
    fault.times = Fault::always;
    std::vector<std::uint8_t> page;

    SUBCASE("READ CAPACITY(16) of 2 bytes")
    {
        fault.residual = 30;
        rig.target->inject(fault);
        Capacity capacity;
        CHECK(sg_ll_readcap_16(*channel, no_retries(), capacity, message) == -EPROTO);
        CHECK(message.find("malformed reply") != std::string::npos);
        CHECK(sg_ll_readcap_10(*channel, no_retries(), capacity, message) == -EPROTO);
        rig.target->clear_faults();
        fault.residual = 512 - 4; // of MODE SENSE's 512: half the header
        rig.target->inject(fault);
        bool write_protected = false;
        CHECK(sg_ll_mode_sense_10_wp(*channel, no_retries(), write_protected, message) == -EPROTO);
    }
    SUBCASE("INQUIRY of nothing, a VPD page of 2 bytes")
    {
        fault.residual = Fault::everything;
        const std::size_t rule = rig.target->inject(fault);
        StandardInquiry inquiry;
        CHECK(sg_ll_inquiry(*channel, no_retries(), inquiry, message) == -EPROTO);
        rig.target->clear_faults();
        fault.residual = 4096 - 2;
        rig.target->inject(fault);
        CHECK(sg_ll_inquiry_vpd(*channel, no_retries(), vpd::unit_serial_number, page, message) ==
              -EPROTO);
        CHECK(rig.target->fired(rule) == 1);
    }
    SUBCASE("GET LBA STATUS of 4 bytes")
    {
        fault.residual = 8 + 16 * 4 - 4;
        rig.target->inject(fault);
        std::vector<LbaStatus> status;
        CHECK(sg_ll_get_lba_status(*channel, no_retries(), 0, 4, status, message) == -EPROTO);
    }
    SUBCASE("a VPD page cut inside: its PAGE LENGTH says more than came")
    {
        fault.residual = 4096 - 6;
        rig.target->inject(fault);
        CHECK(sg_ll_inquiry_vpd(*channel, no_retries(), vpd::unit_serial_number, page, message) ==
              0);
        std::string serial;
        CHECK(decode_vpd_unit_serial(page, serial) == -EPROTO);
    }
}
