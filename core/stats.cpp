#include "sgfs/stats.hpp"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace sgfs
{

const char *to_string(DataPath path)
{
    switch (path) {
    case DataPath::none:
        return "none";
    case DataPath::read:
        return "read";
    case DataPath::write:
        return "write";
    case DataPath::copy:
        return "copy";
    }
    return "none";
}

namespace
{

template <typename Group, std::size_t N>
void add_group(Group &to, const Group &from, const std::array<CounterField<Group>, N> &fields)
{
    for (const auto &field : fields)
        to.*field.member += from.*field.member;
}

template <typename Group, std::size_t N>
void append_group(std::vector<std::pair<std::string, std::string>> &out, const std::string &prefix,
                  const Group &group, const std::array<CounterField<Group>, N> &fields)
{
    for (const auto &field : fields)
        out.emplace_back(prefix + field.key, std::to_string(group.*field.member));
}

std::string mode_prefix(int mode)
{
    return std::string(to_string(static_cast<TransferMode>(mode))) + ".";
}

std::string path_prefix(int path)
{
    return std::string(to_string(static_cast<DataPath>(path))) + ".";
}

// 250 as "2.50".
std::string hundredths_text(std::uint64_t hundredths)
{
    const std::uint64_t cents = hundredths % 100;
    return std::to_string(hundredths / 100) + (cents < 10 ? ".0" : ".") + std::to_string(cents);
}

} // namespace

void DeviceStats::count_command(DataPath path, TransferMode requested, TransferMode done,
                                std::uint64_t bytes, bool staged)
{
    if (path != DataPath::none) {
        auto &counters = paths_[static_cast<int>(path)];
        if (staged)
            counters.add<&PathCountersSnapshot::user_copy_bytes>(bytes);
        else if (done == TransferMode::indirect)
            counters.add<&PathCountersSnapshot::sg_copy_bytes>(bytes);
        else
            counters.add<&PathCountersSnapshot::zero_copy_bytes>(bytes);
    }
    auto &asked = modes_[static_cast<int>(requested)];
    asked.add<&ModeCountersSnapshot::requested_commands>(1);
    asked.add<&ModeCountersSnapshot::requested_bytes>(bytes);
    auto &did = modes_[static_cast<int>(done)];
    did.add<&ModeCountersSnapshot::done_commands>(1);
    did.add<&ModeCountersSnapshot::done_bytes>(bytes);
    if (requested != done) {
        asked.add<&ModeCountersSnapshot::fallback_commands>(1);
        asked.add<&ModeCountersSnapshot::fallback_bytes>(bytes);
    }
}

void DeviceStats::count_partial_copy(DataPath path, std::uint64_t bytes)
{
    if (path != DataPath::none)
        paths_[static_cast<int>(path)].add<&PathCountersSnapshot::user_copy_bytes>(bytes);
}

void DeviceStats::count_error(ErrorCategory category)
{
    errors_[static_cast<int>(category)].fetch_add(1, std::memory_order_relaxed);
}

void DeviceStats::count_zeroing(ZeroKind kind, std::uint64_t bytes)
{
    switch (kind) {
    case ZeroKind::write_same:
        zero_.add<&ZeroCountersSnapshot::write_same_commands>(1);
        zero_.add<&ZeroCountersSnapshot::write_same_bytes>(bytes);
        break;
    case ZeroKind::write_same_unmap:
        zero_.add<&ZeroCountersSnapshot::write_same_unmap_commands>(1);
        zero_.add<&ZeroCountersSnapshot::write_same_unmap_bytes>(bytes);
        break;
    case ZeroKind::host_write:
        zero_.add<&ZeroCountersSnapshot::host_bytes>(bytes);
        break;
    }
}

void DeviceStats::count_offload_refusal(OffloadRefusal reason)
{
    switch (reason) {
    case OffloadRefusal::unsupported:
        offload_.add<&OffloadCountersSnapshot::refused_unsupported>(1);
        break;
    case OffloadRefusal::unreachable:
        offload_.add<&OffloadCountersSnapshot::refused_unreachable>(1);
        break;
    case OffloadRefusal::other:
        offload_.add<&OffloadCountersSnapshot::refused_other>(1);
        break;
    }
}

void DeviceStats::count_queued(std::uint64_t outstanding)
{
    in_flight_.add<&InFlightSnapshot::commands>(1);
    in_flight_.add<&InFlightSnapshot::sum>(outstanding);
    if (outstanding <= 1)
        in_flight_.add<&InFlightSnapshot::at_1>(1);
    else if (outstanding == 2)
        in_flight_.add<&InFlightSnapshot::at_2>(1);
    else if (outstanding <= 4)
        in_flight_.add<&InFlightSnapshot::at_3_4>(1);
    else if (outstanding <= 8)
        in_flight_.add<&InFlightSnapshot::at_5_8>(1);
    else
        in_flight_.add<&InFlightSnapshot::above_8>(1);
    // A failed exchange reloads `seen`; a larger count stored meanwhile ends the loop.
    std::uint64_t seen = in_flight_max_.load(std::memory_order_relaxed);
    while (seen < outstanding &&
           !in_flight_max_.compare_exchange_weak(seen, outstanding, std::memory_order_relaxed)) {
    }
}

void DeviceStats::count_write_behind(std::uint64_t bytes, std::uint64_t outstanding)
{
    write_behind_.add<&WriteBehindSnapshot::writes>(1);
    write_behind_.add<&WriteBehindSnapshot::bytes>(bytes);
    std::uint64_t seen = write_behind_max_.load(std::memory_order_relaxed);
    while (seen < outstanding &&
           !write_behind_max_.compare_exchange_weak(seen, outstanding, std::memory_order_relaxed)) {
    }
}

DeviceStatsSnapshot DeviceStats::snapshot() const
{
    DeviceStatsSnapshot snap;
    for (int i = 0; i < transfer_mode_count; ++i)
        modes_[i].load_into(snap.modes[i]);
    device_.load_into(snap);
    for (int i = 0; i < data_path_count; ++i) {
        paths_[i].load_into(snap.paths[i]);
        snap.user_copy_bytes += snap.paths[i].user_copy_bytes;
        snap.zero_copy_bytes += snap.paths[i].zero_copy_bytes;
    }
    for (int i = 0; i < error_category_count; ++i)
        snap.errors[i] = errors_[i].load(std::memory_order_relaxed);
    zero_.load_into(snap.zero);
    offload_.load_into(snap.offload);
    in_flight_.load_into(snap.in_flight);
    snap.in_flight.max = in_flight_max_.load(std::memory_order_relaxed);
    write_behind_.load_into(snap.write_behind);
    snap.write_behind.max_in_flight = write_behind_max_.load(std::memory_order_relaxed);
    return snap;
}

void DeviceStatsSnapshot::add_counters(const DeviceStatsSnapshot &other)
{
    for (int i = 0; i < transfer_mode_count; ++i)
        add_group(modes[i], other.modes[i], mode_counter_fields);
    for (int i = 0; i < data_path_count; ++i)
        add_group(paths[i], other.paths[i], path_counter_fields);
    add_group(*this, other, device_counter_fields);
    for (int i = 0; i < error_category_count; ++i)
        errors[i] += other.errors[i];
    add_group(zero, other.zero, zero_counter_fields);
    add_group(offload, other.offload, offload_counter_fields);
    add_group(in_flight, other.in_flight, in_flight_counter_fields);
    in_flight.max = std::max(in_flight.max, other.in_flight.max);
    add_group(write_behind, other.write_behind, write_behind_counter_fields);
    write_behind.max_in_flight =
        std::max(write_behind.max_in_flight, other.write_behind.max_in_flight);
}

std::vector<std::pair<std::string, std::string>> DeviceStatsSnapshot::fields() const
{
    std::vector<std::pair<std::string, std::string>> out;
    out.emplace_back("state", state);
    out.emplace_back("device_state", device_state);
    out.emplace_back("gone_reason", gone_reason);
    out.emplace_back("path_losses", std::to_string(path_losses));
    out.emplace_back("reattaches", std::to_string(reattaches));
    if (!device_paths.empty())
        out.emplace_back("paths", std::to_string(device_paths.size()));
    for (std::size_t i = 0; i < device_paths.size(); ++i) {
        const DevicePathSnapshot &path = device_paths[i];
        const std::string prefix = "path" + std::to_string(i) + ".";
        out.emplace_back(prefix + "sg_path", path.sg_path);
        out.emplace_back(prefix + "hctl", path.hctl);
        out.emplace_back(prefix + "state", path.state);
        out.emplace_back(prefix + "device_state", path.device_state);
        out.emplace_back(prefix + "commands", std::to_string(path.commands));
        out.emplace_back(prefix + "failovers", std::to_string(path.failovers));
    }
    for (int i = 0; i < transfer_mode_count; ++i)
        append_group(out, mode_prefix(i), modes[i], mode_counter_fields);
    for (int i = 1; i < data_path_count; ++i) // not DataPath::none: never counted
        append_group(out, path_prefix(i), paths[i], path_counter_fields);
    append_group(out, "", *this, device_counter_fields);
    for (int i = 1; i < error_category_count; ++i) // not ErrorCategory::ok
        out.emplace_back(std::string("errors.") + to_string(static_cast<ErrorCategory>(i)),
                         std::to_string(errors[i]));
    append_group(out, "zero.", zero, zero_counter_fields);
    append_group(out, "offload.", offload, offload_counter_fields);
    append_group(out, "in_flight.", in_flight, in_flight_counter_fields);
    out.emplace_back("in_flight.max", std::to_string(in_flight.max));
    out.emplace_back("in_flight.mean", hundredths_text(in_flight.mean_hundredths()));
    append_group(out, "write_behind.", write_behind, write_behind_counter_fields);
    out.emplace_back("write_behind.max_in_flight", std::to_string(write_behind.max_in_flight));
    return out;
}

} // namespace sgfs
