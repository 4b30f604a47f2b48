// Commands in flight: requests made at once by several callers (FUSE's worker threads) must
// become as many commands in flight at the device, up to queue_depth, and .stats must count
// them. The oracle is the in-memory target: it holds every completion until the number of
// commands it has outstanding at once reaches the number wanted (gather_in_flight), counts
// its own maximum, and records in its log how many were outstanding as each one arrived.
// Were sgfs to hold a lock across a command, the target would never see them together.
#include "engine_fixture.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <doctest/doctest.h>
#include <functional>
#include <thread>
#include <vector>

using namespace sgfs;
using namespace sgfs::test;

namespace
{

constexpr std::size_t block = 512;
constexpr std::size_t command_bytes = 64 * 1024; // one command each (max_io below)
constexpr unsigned depth = 4;

DiskOptions concurrent_options(IoMode mode, bool readahead)
{
    DiskOptions options = test_options(mode, depth);
    options.max_io = command_bytes;
    options.reserve = command_bytes;
    options.readahead = readahead;
    return options;
}

TargetConfig concurrent_target()
{
    TargetConfig config;
    config.block_count = 4096; // 2 MiB
    config.allow_dio = true;
    return config;
}

// Runs each of `calls` on a thread of its own, all at once, and waits for them.
void run_together(const std::vector<std::function<void()>> &calls)
{
    std::vector<std::thread> threads;
    threads.reserve(calls.size());
    for (const auto &call : calls)
        threads.emplace_back(call);
    for (std::thread &thread : threads)
        thread.join();
}

// The in-flight counters since the fixture opened (the probe's commands excluded).
InFlightSnapshot in_flight_since_open(const EngineFixture &f)
{
    InFlightSnapshot now = f.stats().in_flight;
    for (const auto &field : in_flight_counter_fields)
        now.*field.member -= f.at_open.in_flight.*field.member;
    return now;
}

// The same figures from the target's log: its own count at each command's arrival.
InFlightSnapshot in_flight_by_target(const std::vector<CommandRecord> &log)
{
    InFlightSnapshot seen;
    for (const CommandRecord &record : log) {
        const unsigned n = record.in_flight;
        ++seen.commands;
        seen.sum += n;
        seen.max = std::max<std::uint64_t>(seen.max, n);
        std::uint64_t &bucket = n <= 1   ? seen.at_1
                                : n == 2 ? seen.at_2
                                : n <= 4 ? seen.at_3_4
                                : n <= 8 ? seen.at_5_8
                                         : seen.above_8;
        ++bucket;
    }
    return seen;
}

// One batch of `depth` commands, all outstanding together before any completed: sgfs's
// counters must say exactly what the target saw.
void check_counted_as_target_saw(const EngineFixture &f)
{
    const InFlightSnapshot counted = in_flight_since_open(f);
    const InFlightSnapshot seen = in_flight_by_target(f.target->log());
    CHECK(seen.max == depth);
    CHECK(counted.commands == seen.commands);
    CHECK(counted.sum == seen.sum);
    CHECK(counted.at_1 == seen.at_1);
    CHECK(counted.at_2 == seen.at_2);
    CHECK(counted.at_3_4 == seen.at_3_4);
    CHECK(counted.at_5_8 == seen.at_5_8);
    CHECK(counted.above_8 == seen.above_8);
    CHECK(f.stats().in_flight.max == depth);
}

} // namespace

TEST_CASE("readers at once: one command each, all in flight together")
{
    for (const IoMode mode : {IoMode::indirect, IoMode::direct, IoMode::mmap, IoMode::automatic}) {
        for (const bool readahead : {false, true}) {
            for (const bool view : {false, true}) {
                CAPTURE(static_cast<int>(mode));
                CAPTURE(readahead);
                CAPTURE(view);
                EngineFixture f(concurrent_target(), concurrent_options(mode, readahead));
                const Bytes stored = pattern(f.target->bytes(), 3);
                f.target->poke(0, stored);
                f.target->clear_log();
                f.target->gather_in_flight(depth);
                // Far apart, as random reads are: no reader continues another's stream.
                const std::array<std::uint64_t, depth> offsets{
                    7 * command_bytes, command_bytes, 20 * command_bytes, 12 * command_bytes};
                std::array<Bytes, depth> got;
                std::vector<std::function<void()>> readers;
                for (unsigned i = 0; i < depth; ++i)
                    readers.emplace_back([&, i] {
                        Bytes &out = got[i];
                        out.assign(command_bytes, 0);
                        if (!view) {
                            const IoResult result =
                                f.disk().pread(out.data(), out.size(), offsets[i]);
                            CHECK(result.bytes == command_bytes);
                            return;
                        }
                        // As fusefs reads: a view per open file, copied out and dropped.
                        const ReadView got_view =
                            f.disk().read_view(command_bytes, offsets[i], ReaderId{100 + i});
                        REQUIRE(got_view.result().ok());
                        std::size_t at = 0;
                        for (const iovec &piece : got_view.pieces()) {
                            std::memcpy(out.data() + at, piece.iov_base, piece.iov_len);
                            at += piece.iov_len;
                        }
                        CHECK(at == command_bytes);
                    });
                run_together(readers);
                CHECK_FALSE(f.target->gather_failed());
                CHECK(f.target->max_in_flight() == depth);
                for (unsigned i = 0; i < depth; ++i)
                    CHECK(got[i] ==
                          Bytes(stored.begin() + static_cast<long>(offsets[i]),
                                stored.begin() + static_cast<long>(offsets[i] + command_bytes)));
                CHECK(f.data_commands().size() == depth);
                check_counted_as_target_saw(f);
            }
        }
    }
}

TEST_CASE(
    "writers of disjoint ranges at once: all in flight together, the range lock notwithstanding")
{
    for (const IoMode mode : {IoMode::indirect, IoMode::direct, IoMode::mmap}) {
        CAPTURE(static_cast<int>(mode));
        EngineFixture f(concurrent_target(), concurrent_options(mode, true));
        f.target->gather_in_flight(depth);
        std::array<Bytes, depth> data;
        std::vector<std::function<void()>> writers;
        for (unsigned i = 0; i < depth; ++i) {
            data[i] = pattern(command_bytes, static_cast<std::uint8_t>(10 + i));
            writers.emplace_back([&, i] {
                const IoResult result =
                    f.disk().pwrite(data[i].data(), command_bytes, (3 * i + 1) * command_bytes);
                CHECK(result.bytes == command_bytes);
            });
        }
        run_together(writers);
        CHECK_FALSE(f.target->gather_failed());
        CHECK(f.target->max_in_flight() == depth);
        for (unsigned i = 0; i < depth; ++i)
            CHECK(f.target->equals((3 * i + 1) * command_bytes, data[i]));
        check_counted_as_target_saw(f);
    }
}

TEST_CASE("more callers than queue_depth: never more than queue_depth in flight, all counted")
{
    EngineFixture f(concurrent_target(), concurrent_options(IoMode::automatic, true));
    const Bytes stored = pattern(f.target->bytes(), 5);
    f.target->poke(0, stored);
    f.target->clear_log();
    f.target->gather_in_flight(depth);
    constexpr unsigned callers = 3 * depth;
    constexpr unsigned reads_each = 4;
    std::vector<std::function<void()>> readers;
    for (unsigned i = 0; i < callers; ++i)
        readers.emplace_back([&, i] {
            Bytes out(command_bytes);
            for (unsigned n = 0; n < reads_each; ++n) {
                const std::uint64_t offset = ((i * 5 + n * 7) % 31) * command_bytes;
                const IoResult result = f.disk().pread(out.data(), out.size(), offset);
                CHECK(result.bytes == command_bytes);
                CHECK(
                    std::equal(out.begin(), out.end(), stored.begin() + static_cast<long>(offset)));
            }
        });
    run_together(readers);
    CHECK_FALSE(f.target->gather_failed());
    CHECK(f.target->max_in_flight() == depth);
    // sgfs counts a command from just before it is queued until just after it is reaped, so
    // its counts are never below the target's own.
    const InFlightSnapshot counted = in_flight_since_open(f);
    const InFlightSnapshot seen = in_flight_by_target(f.target->log());
    CHECK(seen.commands == callers * reads_each);
    CHECK(counted.commands == seen.commands);
    CHECK(counted.sum >= seen.sum);
    CHECK(counted.at_1 + counted.at_2 + counted.at_3_4 + counted.at_5_8 + counted.above_8 ==
          counted.commands);
    CHECK(f.stats().in_flight.max >= seen.max);
    CHECK(f.stats().in_flight.max <= depth);
}

TEST_CASE("a command whose queueing fails is not counted in flight")
{
    EngineFixture f(concurrent_target(), concurrent_options(IoMode::indirect, false));
    f.target->disappear(GoneForm::submit_fails);
    Bytes out(command_bytes);
    CHECK_FALSE(f.disk().pread(out.data(), out.size(), 0).ok());
    const InFlightSnapshot counted = in_flight_since_open(f);
    CHECK(counted.commands == 0);
    CHECK(counted.sum == 0);
    f.target->reappear();
}
