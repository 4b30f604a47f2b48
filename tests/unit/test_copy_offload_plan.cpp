// The offload plan (core/copy_offload_plan.hpp): limits from operating parameters as LIO
// and other copy managers report them, and the commands a range becomes. The oracle is the
// arithmetic of SPC-4's fields (NUMBER OF BLOCKS is 16 bits; a list holds the header, two
// 32-byte CSCD descriptors and 28-byte segments) and the figures measured on LIO
// (../shared/notes/facts.md: sg_xcopy copied 131072 blocks of 512 bytes in 3 commands).
#include "copy_offload_plan.hpp"

#include <doctest/doctest.h>

using namespace sgfs;

namespace
{

CopyOperatingParameters lio()
{
    CopyOperatingParameters p;
    p.supports_no_list_id = true;
    p.max_cscd_descriptors = 2;
    p.max_segment_descriptors = 1;
    p.max_descriptor_list_length = 1024;
    p.max_segment_length = 256U << 20;
    p.total_concurrent_copies = 1;
    p.max_concurrent_copies = 1;
    p.data_segment_granularity_log2 = 9;
    p.descriptor_codes = {0x02, 0xe4};
    return p;
}

// Every segment in order continues where the one before ended, on both sides.
void check_contiguous(const OffloadPlan &plan, std::uint64_t source, std::uint64_t destination)
{
    std::uint64_t done = 0;
    for (const OffloadCommand &command : plan.commands) {
        std::uint64_t blocks = 0;
        for (const CopySegment &segment : command.segments) {
            CHECK(segment.source == 0);
            CHECK(segment.destination == 1);
            CHECK(segment.source_lba == source + done);
            CHECK(segment.destination_lba == destination + done);
            done += segment.blocks;
            blocks += segment.blocks;
        }
        CHECK(command.blocks == blocks);
    }
    CHECK(done == plan.blocks);
}

} // namespace

TEST_CASE("LIO's parameters: one segment of up to 0xffff blocks per command, one at a time")
{
    const auto limits = offload_limits(lio(), 512);
    REQUIRE(limits);
    CHECK(limits->block_size == 512);
    CHECK(limits->granule_blocks == 1);
    CHECK(limits->max_segment_blocks == 0xffff); // 256 MiB would be 524288 blocks
    CHECK(limits->max_segments == 1);
    CHECK(limits->commands_in_flight == 1);
    CHECK(limits->no_list_id);

    // 64 MiB: 3 commands, as sg_xcopy needed on LIO.
    const OffloadPlan plan = plan_offload(100, 5000, 131072, *limits);
    REQUIRE(plan.commands.size() == 3);
    CHECK(plan.blocks == 131072);
    CHECK(plan.commands[0].blocks == 0xffff);
    CHECK(plan.commands[1].blocks == 0xffff);
    CHECK(plan.commands[2].blocks == 2);
    check_contiguous(plan, 100, 5000);
}

TEST_CASE("MAXIMUM SEGMENT LENGTH bounds a segment in blocks of the LU's size")
{
    CopyOperatingParameters p = lio();
    p.max_segment_length = 1U << 20; // 1 MiB
    CHECK(offload_limits(p, 512)->max_segment_blocks == 2048);
    CHECK(offload_limits(p, 4096)->max_segment_blocks == 256);
    p.max_segment_length = 256U << 20;
    CHECK(offload_limits(p, 4096)->max_segment_blocks == 0xffff);
    p.max_segment_length = 0; // not reported: only the 16-bit field bounds it
    CHECK(offload_limits(p, 512)->max_segment_blocks == 0xffff);
    p.max_segment_length = 511; // not one block
    CHECK_FALSE(offload_limits(p, 512));
}

TEST_CASE("DATA SEGMENT GRANULARITY: segments of whole granules, the rest left to the caller")
{
    CopyOperatingParameters p = lio();
    p.data_segment_granularity_log2 = 12; // 4 KiB
    auto limits = offload_limits(p, 512);
    REQUIRE(limits);
    CHECK(limits->granule_blocks == 8);
    CHECK(limits->max_segment_blocks == 0xfff8);
    CHECK(offload_limits(p, 4096)->granule_blocks == 1);
    CHECK(offload_limits(p, 8192)->granule_blocks == 1);

    const OffloadPlan plan = plan_offload(0, 1000, 0xfff8 + 21, *limits);
    CHECK(plan.blocks == 0xfff8 + 16);
    REQUIRE(plan.commands.size() == 2);
    CHECK(plan.commands[1].blocks == 16);
    check_contiguous(plan, 0, 1000);
    CHECK(plan_offload(0, 1000, 7, *limits).commands.empty());
    CHECK(plan_offload(0, 1000, 7, *limits).blocks == 0);

    p.max_segment_length = 2048; // less than one 4 KiB granule
    CHECK_FALSE(offload_limits(p, 512));
}

TEST_CASE("several segments per command within MAXIMUM DESCRIPTOR LIST LENGTH")
{
    CopyOperatingParameters p = lio();
    p.max_segment_descriptors = 8;
    p.max_segment_length = 10 * 512;
    p.max_descriptor_list_length = 2 * 32 + 3 * 28 + 27; // room for three segments, not four
    p.total_concurrent_copies = 4;
    const auto limits = offload_limits(p, 512);
    REQUIRE(limits);
    CHECK(limits->max_segments == 3);
    CHECK(limits->commands_in_flight == 4);
    const OffloadPlan plan = plan_offload(7, 3, 65, *limits);
    REQUIRE(plan.commands.size() == 3);
    CHECK(plan.commands[0].segments.size() == 3);
    CHECK(plan.commands[0].blocks == 30);
    CHECK(plan.commands[1].blocks == 30);
    REQUIRE(plan.commands[2].segments.size() == 1);
    CHECK(plan.commands[2].blocks == 5);
    check_contiguous(plan, 7, 3);

    p.max_descriptor_list_length = 0; // not reported: the segment count and sgfs's cap
    CHECK(offload_limits(p, 512)->max_segments == 8);
    p.max_segment_descriptors = 1000;
    CHECK(offload_limits(p, 512)->max_segments == offload_max_segments_per_command);
    p.max_descriptor_list_length = 2 * 32 + 27; // not even one segment
    CHECK_FALSE(offload_limits(p, 512));
}

TEST_CASE("a copy manager without block-to-block or identification descriptors: no offload")
{
    CopyOperatingParameters p = lio();
    p.descriptor_codes = {0xe4};
    CHECK_FALSE(offload_limits(p, 512));
    p.descriptor_codes = {0x02};
    CHECK_FALSE(offload_limits(p, 512));
    p.descriptor_codes = {};
    CHECK_FALSE(offload_limits(p, 512));
    p = lio();
    p.max_cscd_descriptors = 1;
    CHECK_FALSE(offload_limits(p, 512));
    p = lio();
    p.max_segment_descriptors = 0;
    CHECK_FALSE(offload_limits(p, 512));
    CHECK_FALSE(offload_limits(lio(), 0));
    p = lio();
    p.total_concurrent_copies = 0; // not reported: one at a time
    CHECK(offload_limits(p, 512)->commands_in_flight == 1);
}

TEST_CASE("overlap on one LU is not offloaded; two LUs always may be")
{
    CHECK(offload_allowed(false, 0, 0, 100));
    CHECK(offload_allowed(false, 10, 50, 100));
    CHECK(offload_allowed(true, 0, 100, 100)); // adjacent, above
    CHECK(offload_allowed(true, 100, 0, 100)); // adjacent, below
    CHECK_FALSE(offload_allowed(true, 0, 99, 100));
    CHECK_FALSE(offload_allowed(true, 99, 0, 100));
    CHECK_FALSE(offload_allowed(true, 10, 10, 1));
}

TEST_CASE("an EXTENDED COPY's timeout: the configured one, or reading and writing at 1 MiB/s")
{
    CHECK(offload_command_timeout_ms(1 << 20, 60000) == 60000);
    CHECK(offload_command_timeout_ms(std::uint64_t{64} << 20, 60000) == 128000);
    CHECK(offload_command_timeout_ms(std::uint64_t{1} << 50, 1000) == 0xffffffffU);
}
