#include "sgfs/stats.hpp"

#include <string>

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

void DeviceStats::count_command(DataPath path, TransferMode requested, TransferMode done,
                                std::uint64_t bytes, bool staged)
{
    if (path != DataPath::none) {
        auto &counters = paths_[static_cast<int>(path)];
        auto &which = staged                           ? counters.user_copy_bytes
                      : done == TransferMode::indirect ? counters.sg_copy_bytes
                                                       : counters.zero_copy_bytes;
        which.fetch_add(bytes, std::memory_order_relaxed);
    }
    auto &asked = modes_[static_cast<int>(requested)];
    asked.requested_commands.fetch_add(1, std::memory_order_relaxed);
    asked.requested_bytes.fetch_add(bytes, std::memory_order_relaxed);
    auto &did = modes_[static_cast<int>(done)];
    did.done_commands.fetch_add(1, std::memory_order_relaxed);
    did.done_bytes.fetch_add(bytes, std::memory_order_relaxed);
    if (requested != done) {
        asked.fallback_commands.fetch_add(1, std::memory_order_relaxed);
        asked.fallback_bytes.fetch_add(bytes, std::memory_order_relaxed);
    }
}

void DeviceStats::count_partial_copy(DataPath path, std::uint64_t bytes)
{
    if (path != DataPath::none)
        paths_[static_cast<int>(path)].user_copy_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

void DeviceStats::count_error(ErrorCategory category)
{
    errors_[static_cast<int>(category)].fetch_add(1, std::memory_order_relaxed);
}

void DeviceStats::count_zeroing(ZeroKind kind, std::uint64_t bytes)
{
    switch (kind) {
    case ZeroKind::write_same:
        zero_write_same_commands_.fetch_add(1, std::memory_order_relaxed);
        zero_write_same_bytes_.fetch_add(bytes, std::memory_order_relaxed);
        break;
    case ZeroKind::write_same_unmap:
        zero_write_same_unmap_commands_.fetch_add(1, std::memory_order_relaxed);
        zero_write_same_unmap_bytes_.fetch_add(bytes, std::memory_order_relaxed);
        break;
    case ZeroKind::host_write:
        zero_host_bytes_.fetch_add(bytes, std::memory_order_relaxed);
        break;
    }
}

DeviceStatsSnapshot DeviceStats::snapshot() const
{
    DeviceStatsSnapshot snap;
    for (int i = 0; i < transfer_mode_count; ++i) {
        const auto &from = modes_[i];
        auto &to = snap.modes[i];
        to.requested_commands = from.requested_commands.load(std::memory_order_relaxed);
        to.requested_bytes = from.requested_bytes.load(std::memory_order_relaxed);
        to.done_commands = from.done_commands.load(std::memory_order_relaxed);
        to.done_bytes = from.done_bytes.load(std::memory_order_relaxed);
        to.fallback_commands = from.fallback_commands.load(std::memory_order_relaxed);
        to.fallback_bytes = from.fallback_bytes.load(std::memory_order_relaxed);
    }
    for (int i = 0; i < data_path_count; ++i) {
        const auto &from = paths_[i];
        auto &to = snap.paths[i];
        to.user_copy_bytes = from.user_copy_bytes.load(std::memory_order_relaxed);
        to.sg_copy_bytes = from.sg_copy_bytes.load(std::memory_order_relaxed);
        to.zero_copy_bytes = from.zero_copy_bytes.load(std::memory_order_relaxed);
        snap.user_copy_bytes += to.user_copy_bytes;
        snap.zero_copy_bytes += to.zero_copy_bytes;
    }
    snap.retries = retries_.load(std::memory_order_relaxed);
    snap.readahead_bytes = readahead_bytes_.load(std::memory_order_relaxed);
    snap.readahead_hit_bytes = readahead_hit_bytes_.load(std::memory_order_relaxed);
    for (int i = 0; i < error_category_count; ++i)
        snap.errors[i] = errors_[i].load(std::memory_order_relaxed);
    snap.zero.write_same_commands = zero_write_same_commands_.load(std::memory_order_relaxed);
    snap.zero.write_same_bytes = zero_write_same_bytes_.load(std::memory_order_relaxed);
    snap.zero.write_same_unmap_commands =
        zero_write_same_unmap_commands_.load(std::memory_order_relaxed);
    snap.zero.write_same_unmap_bytes = zero_write_same_unmap_bytes_.load(std::memory_order_relaxed);
    snap.zero.host_bytes = zero_host_bytes_.load(std::memory_order_relaxed);
    snap.zero.fallbacks = zero_fallbacks_.load(std::memory_order_relaxed);
    return snap;
}

void DeviceStatsSnapshot::add_counters(const DeviceStatsSnapshot &other)
{
    for (int i = 0; i < transfer_mode_count; ++i) {
        auto &to = modes[i];
        const auto &from = other.modes[i];
        to.requested_commands += from.requested_commands;
        to.requested_bytes += from.requested_bytes;
        to.done_commands += from.done_commands;
        to.done_bytes += from.done_bytes;
        to.fallback_commands += from.fallback_commands;
        to.fallback_bytes += from.fallback_bytes;
    }
    for (int i = 0; i < data_path_count; ++i) {
        paths[i].user_copy_bytes += other.paths[i].user_copy_bytes;
        paths[i].sg_copy_bytes += other.paths[i].sg_copy_bytes;
        paths[i].zero_copy_bytes += other.paths[i].zero_copy_bytes;
    }
    retries += other.retries;
    user_copy_bytes += other.user_copy_bytes;
    zero_copy_bytes += other.zero_copy_bytes;
    readahead_bytes += other.readahead_bytes;
    readahead_hit_bytes += other.readahead_hit_bytes;
    for (int i = 0; i < error_category_count; ++i)
        errors[i] += other.errors[i];
    zero.write_same_commands += other.zero.write_same_commands;
    zero.write_same_bytes += other.zero.write_same_bytes;
    zero.write_same_unmap_commands += other.zero.write_same_unmap_commands;
    zero.write_same_unmap_bytes += other.zero.write_same_unmap_bytes;
    zero.host_bytes += other.zero.host_bytes;
    zero.fallbacks += other.zero.fallbacks;
}

std::vector<std::pair<std::string, std::string>> DeviceStatsSnapshot::fields() const
{
    std::vector<std::pair<std::string, std::string>> out;
    out.emplace_back("state", state);
    out.emplace_back("device_state", device_state);
    out.emplace_back("gone_reason", gone_reason);
    out.emplace_back("path_losses", std::to_string(path_losses));
    out.emplace_back("reattaches", std::to_string(reattaches));
    for (int i = 0; i < transfer_mode_count; ++i) {
        const std::string mode = to_string(static_cast<TransferMode>(i));
        const auto &m = modes[i];
        out.emplace_back(mode + ".requested_commands", std::to_string(m.requested_commands));
        out.emplace_back(mode + ".requested_bytes", std::to_string(m.requested_bytes));
        out.emplace_back(mode + ".done_commands", std::to_string(m.done_commands));
        out.emplace_back(mode + ".done_bytes", std::to_string(m.done_bytes));
        out.emplace_back(mode + ".fallback_commands", std::to_string(m.fallback_commands));
        out.emplace_back(mode + ".fallback_bytes", std::to_string(m.fallback_bytes));
    }
    for (int i = 1; i < data_path_count; ++i) {
        const std::string path = to_string(static_cast<DataPath>(i));
        out.emplace_back(path + ".user_copy_bytes", std::to_string(paths[i].user_copy_bytes));
        out.emplace_back(path + ".sg_copy_bytes", std::to_string(paths[i].sg_copy_bytes));
        out.emplace_back(path + ".zero_copy_bytes", std::to_string(paths[i].zero_copy_bytes));
    }
    out.emplace_back("retries", std::to_string(retries));
    out.emplace_back("user_copy_bytes", std::to_string(user_copy_bytes));
    out.emplace_back("zero_copy_bytes", std::to_string(zero_copy_bytes));
    out.emplace_back("readahead_bytes", std::to_string(readahead_bytes));
    out.emplace_back("readahead_hit_bytes", std::to_string(readahead_hit_bytes));
    for (int i = 1; i < error_category_count; ++i)
        out.emplace_back(std::string("errors.") + to_string(static_cast<ErrorCategory>(i)),
                         std::to_string(errors[i]));
    out.emplace_back("zero.write_same_commands", std::to_string(zero.write_same_commands));
    out.emplace_back("zero.write_same_bytes", std::to_string(zero.write_same_bytes));
    out.emplace_back("zero.write_same_unmap_commands",
                     std::to_string(zero.write_same_unmap_commands));
    out.emplace_back("zero.write_same_unmap_bytes", std::to_string(zero.write_same_unmap_bytes));
    out.emplace_back("zero.host_bytes", std::to_string(zero.host_bytes));
    out.emplace_back("zero.fallbacks", std::to_string(zero.fallbacks));
    return out;
}

} // namespace sgfs
