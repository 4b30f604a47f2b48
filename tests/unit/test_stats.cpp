// The per-device counters behind .stats: what each count_* call adds, how two snapshots
// add up (a disk's history across reattaches), and the "key value" pairs .stats prints.
#include "sgfs/stats.hpp"

#include <doctest/doctest.h>
#include <map>
#include <string>
#include <vector>

using namespace sgfs;

namespace
{

using Fields = std::vector<std::pair<std::string, std::string>>;

// Every key of .stats, in the order it prints them. The VM suites (tests/vm/suites/*.sh,
// tests/vm/vm_core_*.cpp) and bench/guest-bench.sh grep these names: a change here is a
// change of the interface they read.
std::vector<std::string> expected_keys()
{
    std::vector<std::string> keys = {"state", "device_state", "gone_reason", "path_losses",
                                     "reattaches"};
    for (const char *mode : {"indirect", "direct", "mmap"})
        for (const char *counter : {"requested_commands", "requested_bytes", "done_commands",
                                    "done_bytes", "fallback_commands", "fallback_bytes"})
            keys.push_back(std::string(mode) + "." + counter);
    for (const char *path : {"read", "write", "copy"})
        for (const char *counter : {"user_copy_bytes", "sg_copy_bytes", "zero_copy_bytes"})
            keys.push_back(std::string(path) + "." + counter);
    for (const char *key : {"retries",
                            "user_copy_bytes",
                            "zero_copy_bytes",
                            "readahead_bytes",
                            "readahead_hit_bytes",
                            "capacity_attentions",
                            "capacity_changes",
                            "errors.recovered",
                            "errors.unit_attention",
                            "errors.aborted_command",
                            "errors.not_ready",
                            "errors.medium_error",
                            "errors.hardware_error",
                            "errors.illegal_request",
                            "errors.lba_out_of_range",
                            "errors.data_protect",
                            "errors.reservation_conflict",
                            "errors.busy",
                            "errors.transport_error",
                            "errors.driver_error",
                            "errors.timeout",
                            "errors.other",
                            "zero.write_same_commands",
                            "zero.write_same_bytes",
                            "zero.write_same_unmap_commands",
                            "zero.write_same_unmap_bytes",
                            "zero.host_bytes",
                            "zero.fallbacks",
                            "zero.unmap_commands",
                            "zero.unmap_bytes",
                            "zero.lba_status_queries",
                            "zero.verify_read_bytes",
                            "zero.copy_hole_bytes",
                            "offload.bytes",
                            "offload.commands",
                            "offload.refused_unsupported",
                            "offload.refused_unreachable",
                            "offload.refused_other",
                            "offload.fallback_bytes",
                            "in_flight.commands",
                            "in_flight.sum",
                            "in_flight.at_1",
                            "in_flight.at_2",
                            "in_flight.at_3_4",
                            "in_flight.at_5_8",
                            "in_flight.above_8",
                            "in_flight.max",
                            "in_flight.mean",
                            "write_behind.writes",
                            "write_behind.bytes",
                            "write_behind.deferred_errors",
                            "write_behind.max_in_flight"})
        keys.emplace_back(key);
    return keys;
}

std::map<std::string, std::string> as_map(const Fields &fields)
{
    return {fields.begin(), fields.end()};
}

// Every counter that is not mentioned must be zero.
void check_values(const DeviceStatsSnapshot &snap,
                  const std::map<std::string, std::uint64_t> &nonzero)
{
    const auto fields = as_map(snap.fields());
    for (const std::string &key : expected_keys()) {
        // Text, not counters (in_flight.mean has decimals: its own test below).
        if (key == "state" || key == "device_state" || key == "gone_reason" ||
            key == "in_flight.mean")
            continue;
        const auto it = nonzero.find(key);
        CAPTURE(key);
        CHECK(fields.at(key) == std::to_string(it == nonzero.end() ? 0 : it->second));
    }
    for (const auto &counter : nonzero) {
        CAPTURE(counter.first);
        CHECK(fields.count(counter.first) == 1);
    }
}

// One set of calls, made on any DeviceStats: each test below knows what it must add up to.
void count_some(DeviceStats &stats, std::uint64_t scale)
{
    stats.count_command(DataPath::read, TransferMode::direct, TransferMode::direct, 4096 * scale,
                        false);
    stats.count_command(DataPath::write, TransferMode::direct, TransferMode::indirect, 512 * scale,
                        false);
    stats.count_command(DataPath::copy, TransferMode::mmap, TransferMode::mmap, 8192 * scale, true);
    stats.count_partial_copy(DataPath::read, 100 * scale);
    stats.count_retry();
    stats.count_readahead_submitted(65536 * scale);
    stats.count_readahead_hit(4096 * scale);
    stats.count_error(ErrorCategory::medium_error);
    stats.count_zeroing(ZeroKind::write_same_unmap, 1024 * scale);
    stats.count_zeroing_fallback();
    stats.count_unmap(2048 * scale);
    stats.count_lba_status_query();
}

} // namespace

TEST_CASE("fields() prints every key once, in the order the VM suites read")
{
    DeviceStats stats;
    std::vector<std::string> keys;
    for (const auto &[key, value] : stats.snapshot().fields())
        keys.push_back(key);
    CHECK(keys == expected_keys());
}

TEST_CASE("a fresh device: online, every counter zero")
{
    DeviceStats stats;
    const DeviceStatsSnapshot snap = stats.snapshot();
    const auto fields = as_map(snap.fields());
    CHECK(fields.at("state") == "online");
    CHECK(fields.at("device_state").empty());
    CHECK(fields.at("gone_reason").empty());
    check_values(snap, {});
}

TEST_CASE("count_command: a command done in the mode asked for")
{
    DeviceStats stats;
    stats.count_command(DataPath::read, TransferMode::direct, TransferMode::direct, 4096, false);
    stats.count_command(DataPath::read, TransferMode::direct, TransferMode::direct, 8192, false);
    const DeviceStatsSnapshot snap = stats.snapshot();
    CHECK(snap.modes[1].requested_commands == 2);
    CHECK(snap.paths[1].zero_copy_bytes == 12288);
    check_values(snap, {{"direct.requested_commands", 2},
                        {"direct.requested_bytes", 12288},
                        {"direct.done_commands", 2},
                        {"direct.done_bytes", 12288},
                        {"read.zero_copy_bytes", 12288},
                        {"zero_copy_bytes", 12288}});
}

TEST_CASE("count_command: a fallback counts as requested and fallback in the mode asked for, "
          "done in the one the driver used")
{
    DeviceStats stats;
    stats.count_command(DataPath::write, TransferMode::direct, TransferMode::indirect, 512, false);
    check_values(stats.snapshot(), {{"direct.requested_commands", 1},
                                    {"direct.requested_bytes", 512},
                                    {"direct.fallback_commands", 1},
                                    {"direct.fallback_bytes", 512},
                                    {"indirect.done_commands", 1},
                                    {"indirect.done_bytes", 512},
                                    {"write.sg_copy_bytes", 512}});
}

TEST_CASE("count_command: staged bytes are user copies whatever the mode; no path for probes")
{
    DeviceStats stats;
    stats.count_command(DataPath::copy, TransferMode::mmap, TransferMode::mmap, 8192, true);
    stats.count_command(DataPath::copy, TransferMode::indirect, TransferMode::indirect, 1024, true);
    stats.count_command(DataPath::none, TransferMode::indirect, TransferMode::indirect, 36, false);
    check_values(stats.snapshot(), {{"mmap.requested_commands", 1},
                                    {"mmap.requested_bytes", 8192},
                                    {"mmap.done_commands", 1},
                                    {"mmap.done_bytes", 8192},
                                    {"indirect.requested_commands", 2},
                                    {"indirect.requested_bytes", 1060},
                                    {"indirect.done_commands", 2},
                                    {"indirect.done_bytes", 1060},
                                    {"copy.user_copy_bytes", 9216},
                                    {"user_copy_bytes", 9216}});
}

TEST_CASE("the other counters: partial copies, retries, read-ahead, errors, zeroing, punching")
{
    DeviceStats stats;
    stats.count_partial_copy(DataPath::write, 300);
    stats.count_partial_copy(DataPath::none, 7); // counted nowhere
    stats.count_retry();
    stats.count_retry();
    stats.count_readahead_submitted(65536);
    stats.count_readahead_hit(4096);
    stats.count_readahead_hit(4096);
    stats.count_error(ErrorCategory::timeout);
    stats.count_error(ErrorCategory::busy);
    stats.count_error(ErrorCategory::busy);
    stats.count_zeroing(ZeroKind::write_same, 1 << 20);
    stats.count_zeroing(ZeroKind::write_same_unmap, 2 << 20);
    stats.count_zeroing(ZeroKind::write_same_unmap, 512);
    stats.count_zeroing(ZeroKind::host_write, 4096);
    stats.count_zeroing_fallback();
    stats.count_unmap(8192);
    stats.count_unmap(512);
    stats.count_lba_status_query();
    stats.count_verify_read(65536);
    stats.count_copy_hole(1 << 20);
    const DeviceStatsSnapshot snap = stats.snapshot();
    CHECK(snap.errors[static_cast<int>(ErrorCategory::busy)] == 2);
    CHECK(snap.zero.write_same_unmap_bytes == (2 << 20) + 512);
    check_values(snap, {{"write.user_copy_bytes", 300},
                        {"user_copy_bytes", 300},
                        {"retries", 2},
                        {"readahead_bytes", 65536},
                        {"readahead_hit_bytes", 8192},
                        {"errors.timeout", 1},
                        {"errors.busy", 2},
                        {"zero.write_same_commands", 1},
                        {"zero.write_same_bytes", 1 << 20},
                        {"zero.write_same_unmap_commands", 2},
                        {"zero.write_same_unmap_bytes", (2 << 20) + 512},
                        {"zero.host_bytes", 4096},
                        {"zero.fallbacks", 1},
                        {"zero.unmap_commands", 2},
                        {"zero.unmap_bytes", 8192 + 512},
                        {"zero.lba_status_queries", 1},
                        {"zero.verify_read_bytes", 65536},
                        {"zero.copy_hole_bytes", 1 << 20}});
}

TEST_CASE("add_counters: two histories add up to one that saw both; the path stays as it is")
{
    DeviceStats before, after, both;
    count_some(before, 1);
    count_some(after, 3);
    count_some(both, 1);
    count_some(both, 3);

    DeviceStatsSnapshot sum = after.snapshot();
    sum.state = "gone";
    sum.device_state = "blocked";
    sum.gone_reason = "why";
    sum.path_losses = 2;
    sum.reattaches = 1;
    DeviceStatsSnapshot earlier = before.snapshot();
    earlier.path_losses = 5; // not added: the path is the current one's
    earlier.reattaches = 4;
    sum.add_counters(earlier);

    DeviceStatsSnapshot expected = both.snapshot();
    expected.state = "gone";
    expected.device_state = "blocked";
    expected.gone_reason = "why";
    expected.path_losses = 2;
    expected.reattaches = 1;
    CHECK(sum.fields() == expected.fields());

    // And by hand, a few of them: 1x and 3x the same calls.
    const auto fields = as_map(sum.fields());
    CHECK(fields.at("direct.requested_bytes") == std::to_string(4 * (4096 + 512)));
    CHECK(fields.at("direct.fallback_bytes") == std::to_string(4 * 512));
    CHECK(fields.at("read.user_copy_bytes") == std::to_string(4 * 100));
    CHECK(fields.at("copy.user_copy_bytes") == std::to_string(4 * 8192));
    CHECK(fields.at("user_copy_bytes") == std::to_string(4 * (100 + 8192)));
    CHECK(fields.at("zero_copy_bytes") == std::to_string(4 * 4096));
    CHECK(fields.at("retries") == "2");
    CHECK(fields.at("errors.medium_error") == "2");
    CHECK(fields.at("zero.write_same_unmap_bytes") == std::to_string(4 * 1024));
    CHECK(fields.at("zero.fallbacks") == "2");
    CHECK(fields.at("zero.unmap_bytes") == std::to_string(4 * 2048));
    CHECK(fields.at("zero.lba_status_queries") == "2");
    CHECK(fields.at("path_losses") == "2");
    CHECK(fields.at("state") == "gone");
}

TEST_CASE("data path names: the prefixes of the path counters; none for anything else")
{
    CHECK(std::string(to_string(DataPath::none)) == "none");
    CHECK(std::string(to_string(DataPath::read)) == "read");
    CHECK(std::string(to_string(DataPath::write)) == "write");
    CHECK(std::string(to_string(DataPath::copy)) == "copy");
    CHECK(std::string(to_string(static_cast<DataPath>(data_path_count))) == "none");
}

TEST_CASE("the offload counters: commands and bytes, refusals by reason, fallback bytes")
{
    DeviceStats stats;
    stats.count_offload(32 << 20);
    stats.count_offload(512);
    stats.count_offload_refusal(OffloadRefusal::unsupported);
    stats.count_offload_refusal(OffloadRefusal::unreachable);
    stats.count_offload_refusal(OffloadRefusal::unreachable);
    stats.count_offload_refusal(OffloadRefusal::other);
    stats.count_offload_fallback(4096);
    DeviceStatsSnapshot snap = stats.snapshot();
    CHECK(snap.offload.bytes == (32 << 20) + 512);
    check_values(snap, {{"offload.bytes", (32 << 20) + 512},
                        {"offload.commands", 2},
                        {"offload.refused_unsupported", 1},
                        {"offload.refused_unreachable", 2},
                        {"offload.refused_other", 1},
                        {"offload.fallback_bytes", 4096}});
    DeviceStatsSnapshot sum = snap;
    sum.add_counters(snap);
    CHECK(sum.offload.commands == 4);
    CHECK(sum.offload.fallback_bytes == 8192);
}

TEST_CASE("commands in flight: the count each command saw as it was queued, mean and maximum")
{
    DeviceStats stats;
    CHECK(as_map(stats.snapshot().fields()).at("in_flight.mean") == "0.00");
    // Three at once, then one alone after they are over, then one whose queueing failed.
    std::vector<std::uint64_t> seen;
    for (int i = 0; i < 3; ++i) {
        seen.push_back(stats.count_queueing());
        stats.count_queued(seen.back());
    }
    for (int i = 0; i < 3; ++i)
        stats.count_reaped();
    seen.push_back(stats.count_queueing());
    stats.count_queued(seen.back());
    stats.count_reaped();
    CHECK(stats.count_queueing() == 1);
    stats.count_queue_failed();
    // The failed one is not outstanding: the next command is alone again.
    CHECK(stats.count_queueing() == 1);
    stats.count_queue_failed();
    CHECK(seen == std::vector<std::uint64_t>{1, 2, 3, 1});
    const DeviceStatsSnapshot snap = stats.snapshot();
    check_values(snap, {{"in_flight.commands", 4},
                        {"in_flight.sum", 7},
                        {"in_flight.at_1", 2},
                        {"in_flight.at_2", 1},
                        {"in_flight.at_3_4", 1},
                        {"in_flight.max", 3}});
    CHECK(as_map(snap.fields()).at("in_flight.mean") == "1.75");

    // Nine outstanding: the last bucket; 5 to 8 in the one before.
    DeviceStats deep;
    for (int i = 0; i < 9; ++i)
        deep.count_queued(deep.count_queueing());
    const DeviceStatsSnapshot deeper = deep.snapshot();
    CHECK(deeper.in_flight.at_5_8 == 4);
    CHECK(deeper.in_flight.above_8 == 1);
    CHECK(as_map(deeper.fields()).at("in_flight.mean") == "5.00");

    // Across a reattach the counts add up, the maximum is the larger one.
    DeviceStatsSnapshot both = snap;
    both.add_counters(deeper);
    CHECK(both.in_flight.commands == 13);
    CHECK(both.in_flight.sum == 7 + 45);
    CHECK(both.in_flight.max == 9);
    CHECK(as_map(both.fields()).at("in_flight.mean") == "4.00");
}
