// The reattaching Disk (see reattach.hpp).
//
// Locking: mutex_ guards the current disk, the lost ones still in use, the counters and the
// messages; it is never held across IO or a device search. search_mutex_ makes one thread
// at a time look for the device (others fail at once with ENODEV); it is taken before
// mutex_, never after. The environment's functions (open, reclaim, release_claim, log)
// run without mutex_: the mount's claims (disk_claim.hpp) have a lock of their own.
// DiskInfo objects are never freed while the wrapper lives, so the reference info()
// returns stays valid across swaps (one more per swap that changed it).
#include "reattach.hpp"

#include "sgfs/cdb.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <syslog.h>
#include <utility>

namespace sgfs
{
namespace
{

namespace fs = std::filesystem;

std::vector<std::uint8_t> read_binary(const fs::path &path)
{
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string read_line(const fs::path &path)
{
    std::ifstream in(path);
    std::string value;
    if (!std::getline(in, value))
        return {};
    while (!value.empty() && (value.back() == ' ' || value.back() == '\n'))
        value.pop_back();
    return value;
}

void log_to_stderr_and_syslog(const std::string &line)
{
    std::fprintf(stderr, "%s\n", line.c_str());
    syslog(LOG_WARNING, "%s", line.c_str());
}

bool same_identity_info(const DiskInfo &a, const DiskInfo &b)
{
    return a.sg_path == b.sg_path && a.hctl == b.hctl && a.block_device == b.block_device &&
           a.capacity_bytes == b.capacity_bytes && a.write_protected == b.write_protected &&
           a.max_transfer_bytes == b.max_transfer_bytes && a.reserve_granted == b.reserve_granted &&
           a.allow_dio == b.allow_dio;
}

constexpr std::size_t no_path = static_cast<std::size_t>(-1);

// "/dev/sg3 [2:0:0:1]"
std::string where(const std::string &sg_path, const std::string &hctl)
{
    return sg_path + " [" + hctl + "]";
}

// The sg nodes of one logical unit (the same stable id: two iSCSI portals, dual SAS) are the
// paths of one disk. IO uses one at a time, the first healthy one, and keeps to it until it
// fails (no round-robin, no failback): each path is an Engine with its own write range lock
// and read-ahead windows, so two engines with IO at once would let a read-modify-write on
// one race a write on the other and leave read-ahead of stale data; and active/passive or
// ALUA arrays serve best (or only) through the path they prefer, where sending to both
// would make them trespass the LUN back and forth. A failover waits for the lost path's IO
// to end, then the next live path takes over and the IO that failed runs again there.
class ReattachingDisk final : public Disk
{
  public:
    ReattachingDisk(std::unique_ptr<Disk> first, ReattachEnvironment environment)
        : env_(std::move(environment)), name_(first->info().name),
          stable_id_(first->info().stable_id), block_size_(first->info().logical_block_size),
          node_(first->info().name), node_hctl_(first->info().hctl)
    {
        infos_.push_back(std::make_unique<DiskInfo>(first->info()));
        info_.store(infos_.back().get(), std::memory_order_release);
        last_capacity_.store(first->capacity_bytes(), std::memory_order_release);
        current_ = std::shared_ptr<Disk>(std::move(first));
        paths_.push_back(
            {current_->info().name, current_->info().hctl, current_->info().sg_path, current_});
        active_ = 0;
    }

    // The other sg nodes sysfs knows by this disk's id become its standby paths. Nodes whose
    // id sysfs does not know are not probed: a mount would send every disk commands.
    void find_other_paths()
    {
        if (stable_id_.empty())
            return;
        const std::lock_guard searching(search_mutex_);
        std::string refused;
        adopt_paths(false, false, refused);
    }

    const DiskInfo &info() const override { return *info_.load(std::memory_order_acquire); }

    // The disk in use says; while gone, the size it had last.
    std::uint64_t capacity_bytes() const override
    {
        std::shared_ptr<Disk> disk;
        {
            std::lock_guard lock(mutex_);
            disk = current_;
        }
        if (!disk)
            return last_capacity_.load(std::memory_order_acquire);
        const std::uint64_t now = disk->capacity_bytes();
        last_capacity_.store(now, std::memory_order_release);
        return now;
    }

    // On the disk in use; a new block size makes it gone, and the search's rule refuses it.
    int refresh_capacity() override
    {
        return run([](Disk &disk) {
                   const int rc = disk.refresh_capacity();
                   return rc == 0 ? IoResult::success(0)
                                  : IoResult::failure(rc, disk.info().name +
                                                              ": capacity reread failed");
               })
            .error;
    }

    // Only the disk in use can hold the reader's read-ahead: one swapped in later never
    // read for it, a lost one serves nobody again.
    void end_reader(ReaderId reader) override
    {
        std::shared_ptr<Disk> disk;
        {
            std::lock_guard lock(mutex_);
            disk = current_;
        }
        if (disk)
            disk->end_reader(reader);
    }

    DeviceStatsSnapshot stats() const override
    {
        std::string node, hctl;
        DeviceStatsSnapshot out;
        std::vector<std::pair<std::string, std::string>> nodes; // each path's sg name, hctl
        {
            std::lock_guard lock(mutex_);
            out = retired_;
            out.device_paths.resize(paths_.size());
            for (std::size_t i = 0; i < paths_.size(); ++i) {
                const Path &path = paths_[i];
                DevicePathSnapshot &shown = out.device_paths[i];
                shown.sg_path = path.sg_path;
                shown.hctl = path.hctl;
                shown.state = !path.disk ? "lost" : current_ && i == active_ ? "active" : "standby";
                shown.commands = path.retired_commands;
                shown.failovers = path.failovers;
                nodes.emplace_back(path.node, path.hctl);
                if (path.disk) {
                    const DeviceStatsSnapshot counted = path.disk->stats();
                    out.add_counters(counted);
                    shown.commands += counted.in_flight.commands;
                }
            }
            for (const Retiring &lost : retiring_) {
                const DeviceStatsSnapshot counted = lost.disk->stats();
                out.add_counters(counted);
                out.device_paths[lost.path].commands += counted.in_flight.commands;
            }
            out.state = current_ || live_standby_locked() != no_path ? "online" : "gone";
            if (out.state == "gone")
                out.gone_reason = gone_reason_;
            out.path_losses = path_losses_;
            out.reattaches = reattaches_;
            node = node_;
            hctl = node_hctl_;
        }
        out.device_state = env_.device_state(node, hctl);
        for (std::size_t i = 0; i < nodes.size(); ++i)
            out.device_paths[i].device_state = env_.device_state(nodes[i].first, nodes[i].second);
        return out;
    }

    // The engine of the disk in use, held by the pin; a failure of IO on it is checked for
    // a lost path like this disk's own IO, and a disk found again at once takes over.
    EnginePin pin() override
    {
        std::shared_ptr<Disk> disk = acquire();
        if (!disk) {
            EnginePin none;
            none.unavailable = fail_gone();
            return none;
        }
        EnginePin pin = disk->pin();
        // Not the disk itself: the caller drops its pins before it asks, so that the lost
        // disk no longer counts as IO in flight and the one found can be swapped in.
        pin.failed = [this, node = disk.get(), node_info = disk->info()](const IoResult &failure) {
            return after_failure(node, node_info, failure);
        };
        pin.hold = std::move(disk);
        return pin;
    }

  protected:
    IoResult read_range(void *buffer, std::size_t length, std::uint64_t offset) override
    {
        return run([&](Disk &disk) { return disk.pread(buffer, length, offset); });
    }

    ReadView view_range(std::size_t length, std::uint64_t offset, ReaderId reader) override
    {
        ReadView view;
        std::shared_ptr<Disk> held;
        const IoResult result = run_on([&](const std::shared_ptr<Disk> &disk) {
            view = disk->read_view(length, offset, reader);
            // Held only when it worked: a lost disk must not count as IO in flight.
            held = view.result().ok() ? disk : nullptr;
            return view.result();
        });
        if (!result.ok())
            return ReadView(result);
        // The pieces are the disk's memory: it stays while the view does.
        view.hold(std::move(held));
        return view;
    }

    IoResult write_range(const void *buffer, std::size_t length, std::uint64_t offset) override
    {
        return run([&](Disk &disk) { return disk.pwrite(buffer, length, offset); });
    }

    // The commands in flight hold the disk they run on, so that a lost one is not swapped
    // out (two disks of one device) before they end. A disk with several paths writes
    // synchronously: a write acknowledged behind that fails with its path could only be
    // reported, while a synchronous one is retried on the next path before it returns
    // (run), so that no error of a lost path reaches the caller.
    IoResult write_behind_range(const void *buffer, std::size_t length, std::uint64_t offset,
                                const WriteBehind &behind) override
    {
        if (has_several_paths())
            return write_range(buffer, length, offset);
        return run_on([&](const std::shared_ptr<Disk> &disk) {
            return disk->pwrite_behind(
                buffer, length, offset,
                WriteBehind{behind.pending, disk, behind.keep_caller_memory});
        });
    }

    IoResult zero_within(std::uint64_t offset, std::uint64_t length,
                         ZeroAllocation allocation) override
    {
        return run([&](Disk &disk) { return disk.zero_range(offset, length, allocation); });
    }

    IoResult punch_within(std::uint64_t offset, std::uint64_t length) override
    {
        return run([&](Disk &disk) { return disk.punch_hole(offset, length); });
    }

    Mapping map_within(std::uint64_t offset) override
    {
        Mapping found;
        const IoResult result = run([&](Disk &disk) {
            found = disk.mapping(offset);
            return found.result;
        });
        if (!result.ok())
            return {result, false, offset};
        return found;
    }

    IoResult flush_cache() override
    {
        return run([](Disk &disk) { return disk.flush(); });
    }

  private:
    struct Path {
        std::string node, hctl, sg_path;    // where it is, or was last
        std::shared_ptr<Disk> disk;         // null while lost
        std::uint64_t retired_commands = 0; // of its engines lost and no longer in use
        std::uint64_t failovers = 0;        // times IO moved from it to another path
    };
    struct Retiring {
        std::size_t path;
        std::shared_ptr<Disk> disk; // lost; IO may still run on it
    };
    // What a loss leaves to do once mutex_ is let go: log lines, and the claim to let go
    // when the disk has no live path left.
    struct Events {
        std::vector<std::string> lines;
        std::optional<DiskInfo> released;
    };

    // Runs `operation` on the disk in use; an error that means the path is lost takes the
    // path out and runs it again on the next live path, or, with none left, once on the
    // device when it is back at once.
    template <typename Operation> IoResult run(Operation operation)
    {
        return run_on([&](const std::shared_ptr<Disk> &disk) { return operation(*disk); });
    }
    template <typename Operation> IoResult run_on(Operation operation);
    // `failure` came from IO on `disk` (a copy's, run on its pin): when it means the path
    // is lost, takes it out and finds the next path, or looks once for the device at once;
    // true when one took over.
    bool after_failure(const Disk *disk, const DiskInfo &node, const IoResult &failure);
    std::shared_ptr<Disk> acquire();
    // No path in use: the first live standby takes over once the lost paths' IO is over;
    // without one, search().
    std::shared_ptr<Disk> take_over(bool look_now);
    std::shared_ptr<Disk> search(bool now_regardless = false);
    // Standbys lost meanwhile are taken out; a lost path's id back on an sg node is taken
    // back as a standby.
    void look_after_standbys();
    // Opens the sg nodes with this disk's id that are none of its live paths and adds them
    // as standbys, each in a lost path's place (the same node's first) or after the others.
    // `probe_unknown`: nodes whose id sysfs does not know are opened to learn it. `claim`:
    // the mount's hold is taken again first (it covers every path's block device). Returns
    // the paths added; `refused` says why a node with the id was not. search_mutex_ held.
    std::vector<std::size_t> adopt_paths(bool probe_unknown, bool claim, std::string &refused);
    bool is_live_path_locked(const SgDeviceEntry &entry) const;
    std::size_t live_standby_locked() const;
    // More than one path was ever found (paths_ never shrinks, so this stays true once so).
    bool has_several_paths() const
    {
        std::lock_guard lock(mutex_);
        return paths_.size() > 1;
    }
    // Standbys whose SCSI device sysfs shows lost are taken out.
    void drop_lost_standbys_locked(Events &events);
    void retire_path_locked(std::size_t index, const std::string &why, Events &events);
    void activate_locked(std::size_t index);
    void publish(Events &events);
    // `node` is the disk's info (its sg name and hctl say where to look in sysfs).
    bool lost(const DiskInfo &node, int error) const;
    // Takes `disk`'s path out when it is still the one in use (compared, never dereferenced).
    void mark_gone(const Disk *disk, const std::string &why);
    void fold_idle_retiring_locked();
    void note_refusal(const std::string &refused, bool gone);
    IoResult fail_gone();
    std::string who() const { return name_ + (stable_id_.empty() ? "" : " (" + stable_id_ + ")"); }

    const ReattachEnvironment env_;
    const std::string name_;      // the file name: the first sg node's name
    const std::string stable_id_; // what a returning device must match
    const std::uint32_t block_size_;

    mutable std::mutex mutex_;
    std::condition_variable drained_;    // a lost path's IO may be over
    std::shared_ptr<Disk> current_;      // the active path's disk; null while none is
    std::vector<Path> paths_;            // in the order found; never shrinks
    std::size_t active_ = no_path;       // the path of current_, or the last one that was
    std::size_t failing_from_ = no_path; // lost with another path to take over
    std::vector<Retiring> retiring_;
    DeviceStatsSnapshot retired_; // counters of the disks swapped out
    std::uint64_t path_losses_ = 0;
    std::uint64_t reattaches_ = 0;
    std::string node_, node_hctl_; // the sg node in use, or last used
    std::string gone_reason_;
    std::string refused_; // the last refusal logged, so that it is logged once
    std::chrono::steady_clock::time_point next_search_{};
    std::chrono::steady_clock::time_point next_check_{};
    std::vector<std::unique_ptr<DiskInfo>> infos_;
    std::atomic<const DiskInfo *> info_{nullptr};
    mutable std::atomic<std::uint64_t> last_capacity_{0};

    std::mutex search_mutex_;
};

template <typename Operation> IoResult ReattachingDisk::run_on(Operation operation)
{
    std::shared_ptr<Disk> disk = acquire();
    if (!disk)
        return fail_gone();
    std::size_t tries = 0;
    {
        std::lock_guard lock(mutex_);
        tries = paths_.size() + 1;
    }
    for (std::size_t attempt = 0;; ++attempt) {
        IoResult result = operation(disk);
        if (result.ok() || !lost(disk->info(), result.error))
            return result;
        mark_gone(disk.get(), result.message);
        disk.reset(); // ours must not count as IO still running on it
        drained_.notify_all();
        // Another live path takes over; or the device may be back already on another node
        // (a re-login while this disk was idle): one look at once. Either way the operation
        // runs once more: reads and whole writes can be repeated, and the range lock of the
        // new disk covers the rest.
        if (attempt + 1 < tries)
            disk = take_over(attempt == 0);
        if (!disk)
            return IoResult::failure(-ENODEV, name_ + ": device lost: " + result.message);
    }
}

bool ReattachingDisk::after_failure(const Disk *disk, const DiskInfo &node, const IoResult &failure)
{
    if (!lost(node, failure.error))
        return false;
    mark_gone(disk, failure.message);
    return take_over(true) != nullptr;
}

bool ReattachingDisk::lost(const DiskInfo &node, int rc) const
{
    // ENODEV: the sg node is detached (logout, removal) or the host said DID_NO_CONNECT /
    // DID_BAD_TARGET. ENXIO: an offline device refuses to be opened.
    if (rc == -ENODEV || rc == -ENXIO)
        return true;
    // Errors of the request itself, not of the path.
    if (rc == -EROFS || rc == -ENOSPC || rc == -EINVAL || rc == -ENOMEM)
        return false;
    // A command failed after the transport gave up (DID_TRANSPORT_FAILFAST once the
    // initiator's replacement timeout expired is an EIO): sysfs tells.
    return is_lost_device_state(env_.device_state(node.name, node.hctl));
}

void ReattachingDisk::fold_idle_retiring_locked()
{
    // use_count 1: only this list holds it, and nobody can take it again.
    std::erase_if(retiring_, [this](const Retiring &lost) {
        if (lost.disk.use_count() != 1)
            return false;
        const DeviceStatsSnapshot counted = lost.disk->stats();
        retired_.add_counters(counted);
        paths_[lost.path].retired_commands += counted.in_flight.commands;
        return true;
    });
}

std::size_t ReattachingDisk::live_standby_locked() const
{
    for (std::size_t i = 0; i < paths_.size(); ++i)
        if (paths_[i].disk && !(current_ && i == active_))
            return i;
    return no_path;
}

bool ReattachingDisk::is_live_path_locked(const SgDeviceEntry &entry) const
{
    return std::any_of(paths_.begin(), paths_.end(), [&entry](const Path &path) {
        return path.disk && path.node == entry.name && path.hctl == entry.hctl;
    });
}

void ReattachingDisk::retire_path_locked(std::size_t index, const std::string &why, Events &events)
{
    Path &path = paths_[index];
    const DiskInfo node = path.disk->info();
    retiring_.push_back({index, std::move(path.disk)});
    path.disk.reset();
    const bool was_active = current_ && index == active_;
    // A loss of the disk's IO path; a standby that goes (even one adopted a moment ago,
    // before it carried IO) is no loss of the disk.
    if (was_active) {
        ++path_losses_;
        current_.reset();
        failing_from_ = index;
    }
    const std::size_t next = live_standby_locked();
    if (!current_ && next == no_path) {
        // The last path: today's rules for a lost device.
        failing_from_ = no_path;
        gone_reason_ = why;
        next_search_ = env_.now() + env_.retry_interval;
        events.released = node;
        events.lines.push_back(
            "sgfs: " + who() + ": device lost: " + why + "; IO fails with ENODEV until " +
            (stable_id_.empty() ? std::string("remounted (no stable id to find it by)")
                                : "a disk with the same id is back"));
        return;
    }
    std::string line =
        "sgfs: " + who() + ": path " + where(node.sg_path, node.hctl) + " lost: " + why;
    if (was_active)
        line += "; IO goes on through " + where(paths_[next].sg_path, paths_[next].hctl);
    events.lines.push_back(std::move(line));
}

void ReattachingDisk::drop_lost_standbys_locked(Events &events)
{
    for (std::size_t i = 0; i < paths_.size(); ++i) {
        if (!paths_[i].disk || (current_ && i == active_))
            continue;
        const std::string state = env_.device_state(paths_[i].node, paths_[i].hctl);
        if (is_lost_device_state(state))
            retire_path_locked(i, "device " + state, events);
    }
}

void ReattachingDisk::activate_locked(std::size_t index)
{
    if (failing_from_ != no_path)
        ++paths_[failing_from_].failovers;
    failing_from_ = no_path;
    current_ = paths_[index].disk;
    active_ = index;
    node_ = current_->info().name;
    node_hctl_ = current_->info().hctl;
    const DiskInfo &before = *info_.load(std::memory_order_relaxed);
    if (!same_identity_info(before, current_->info())) {
        auto info = std::make_unique<DiskInfo>(current_->info());
        info->name = name_;
        infos_.push_back(std::move(info));
        info_.store(infos_.back().get(), std::memory_order_release);
    }
}

void ReattachingDisk::publish(Events &events)
{
    if (events.released && env_.release_claim)
        env_.release_claim(*events.released);
    for (const std::string &line : events.lines)
        env_.log(line);
}

void ReattachingDisk::mark_gone(const Disk *disk, const std::string &why)
{
    Events events;
    {
        std::lock_guard lock(mutex_);
        // Another thread saw the loss first, or a fresh disk is already in.
        if (!current_ || current_.get() != disk)
            return;
        retire_path_locked(active_, why, events);
    }
    publish(events);
}

IoResult ReattachingDisk::fail_gone()
{
    std::lock_guard lock(mutex_);
    return IoResult::failure(
        -ENODEV, name_ + ": device gone (" + gone_reason_ + "); " +
                     (stable_id_.empty() ? std::string("no stable id to find it again by: remount")
                                         : "looking for " + stable_id_ + " again"));
}

std::shared_ptr<Disk> ReattachingDisk::acquire()
{
    bool check = false;
    {
        std::lock_guard lock(mutex_);
        if (current_) {
            // A disk of one path has no standby to look after.
            check = paths_.size() > 1 && env_.now() >= next_check_;
            if (!check)
                return current_;
            next_check_ = env_.now() + env_.retry_interval;
        }
    }
    if (check)
        look_after_standbys();
    return take_over(false);
}

std::shared_ptr<Disk> ReattachingDisk::take_over(bool look_now)
{
    Events events;
    std::shared_ptr<Disk> disk;
    bool waited_out = false;
    {
        std::unique_lock lock(mutex_);
        // The lost path's commands fail or complete within their timeout; a read view or a
        // copy's pin is let go as soon as its reply is sent.
        const auto deadline = std::chrono::steady_clock::now() + env_.drain_timeout;
        while (!current_) {
            drop_lost_standbys_locked(events);
            const std::size_t standby = live_standby_locked();
            if (standby == no_path)
                break;
            fold_idle_retiring_locked();
            // IO still running on a lost path: two engines of one device at once would
            // defeat the write range lock.
            if (retiring_.empty()) {
                // With no failover under way the disk was gone: a search adopted this path
                // (and let mutex_ go) before it could take it, so this is the reattach.
                const bool reattach = failing_from_ == no_path;
                activate_locked(standby);
                if (reattach) {
                    ++reattaches_;
                    gone_reason_.clear();
                    refused_.clear();
                    events.lines.push_back("sgfs: " + who() + ": back as " +
                                           where(current_->info().sg_path, current_->info().hctl) +
                                           ", reattached");
                }
                break;
            }
            if (std::chrono::steady_clock::now() >= deadline) {
                waited_out = true;
                break;
            }
            drained_.wait_for(lock, std::chrono::milliseconds(10));
        }
        disk = current_;
    }
    publish(events);
    if (disk || waited_out)
        return disk;
    return search(look_now);
}

void ReattachingDisk::look_after_standbys()
{
    std::unique_lock searching(search_mutex_, std::try_to_lock);
    if (!searching.owns_lock())
        return;
    Events events;
    bool any_lost = false;
    {
        std::lock_guard lock(mutex_);
        drop_lost_standbys_locked(events);
        any_lost =
            std::any_of(paths_.begin(), paths_.end(), [](const Path &path) { return !path.disk; });
    }
    publish(events);
    if (!any_lost || stable_id_.empty())
        return;
    // Only nodes sysfs knows by this id: while the disk is served, other disks are not sent
    // probes once a second for as long as a path stays lost.
    std::string refused;
    const std::vector<std::size_t> added = adopt_paths(false, true, refused);
    if (!refused.empty())
        note_refusal(refused, false);
    for (const std::size_t index : added) {
        std::string path;
        {
            std::lock_guard lock(mutex_);
            path = where(paths_[index].sg_path, paths_[index].hctl);
        }
        env_.log("sgfs: " + who() + ": path " + path + " back, standby");
    }
}

std::vector<std::size_t> ReattachingDisk::adopt_paths(bool probe_unknown, bool claim,
                                                      std::string &refused)
{
    std::vector<std::pair<SgDeviceEntry, std::shared_ptr<Disk>>> found;
    // Probing may block (a device whose transport is still recovering): no lock held but
    // search_mutex_, so IO on this disk keeps going (or failing fast) meanwhile.
    for (const SgDeviceEntry &entry : env_.list_devices()) {
        if (!is_disk_device_type(entry.device_type))
            continue;
        {
            std::lock_guard lock(mutex_);
            if (is_live_path_locked(entry))
                continue;
        }
        const std::string cached = env_.cached_stable_id(entry.name);
        if (cached.empty() ? !probe_unknown : cached != stable_id_)
            continue;
        std::unique_ptr<Disk> fresh;
        std::string message;
        if (env_.open(entry.sg_path, fresh, message) != 0 || !fresh)
            continue; // still offline, or not a disk after all
        const DiskInfo &opened = fresh->info();
        if (opened.stable_id != stable_id_)
            continue;
        if (opened.logical_block_size != block_size_) {
            refused = entry.sg_path + " has the id but " +
                      std::to_string(opened.logical_block_size) + "-byte blocks, not " +
                      std::to_string(block_size_);
            continue;
        }
        // One claim holds the block devices of every path: taken again once.
        if (claim && found.empty() && env_.reclaim) {
            if (const std::string why = env_.reclaim(opened); !why.empty()) {
                refused =
                    entry.sg_path +
                    (opened.block_device.empty() ? "" : " (/dev/" + opened.block_device + ")") +
                    " is " + why;
                continue;
            }
        }
        found.emplace_back(entry, std::shared_ptr<Disk>(std::move(fresh)));
    }
    std::vector<std::size_t> added;
    std::lock_guard lock(mutex_);
    for (auto &one : found) {
        const SgDeviceEntry &entry = one.first;
        const auto lost_here = [&](const Path &path) {
            return !path.disk && path.node == entry.name;
        };
        auto place = std::find_if(paths_.begin(), paths_.end(), lost_here);
        if (place == paths_.end())
            place = std::find_if(paths_.begin(), paths_.end(),
                                 [](const Path &path) { return !path.disk; });
        if (place == paths_.end())
            place = paths_.insert(paths_.end(), Path{});
        place->node = entry.name;
        place->hctl = entry.hctl;
        place->sg_path = entry.sg_path;
        place->disk = std::move(one.second);
        added.push_back(static_cast<std::size_t>(place - paths_.begin()));
    }
    return added;
}

void ReattachingDisk::note_refusal(const std::string &refused, bool gone)
{
    bool changed = false;
    {
        std::lock_guard lock(mutex_);
        changed = refused_ != refused;
        refused_ = refused;
        if (gone)
            gone_reason_ = "refused: " + refused;
    }
    // Once per new reason, not once per retry.
    if (changed)
        env_.log("sgfs: " + who() + ": found again, but " + refused +
                 (gone ? "; still gone" : "; not used as a path"));
}

// `now_regardless`: right after the loss, before the retry interval has passed.
std::shared_ptr<Disk> ReattachingDisk::search(bool now_regardless)
{
    std::unique_lock searching(search_mutex_, std::try_to_lock);
    if (!searching.owns_lock())
        return nullptr; // another thread is looking: fail this IO at once
    {
        std::lock_guard lock(mutex_);
        if (current_)
            return current_;
        const auto now = env_.now();
        if ((!now_regardless && now < next_search_) || stable_id_.empty())
            return nullptr;
        next_search_ = now + env_.retry_interval;
        fold_idle_retiring_locked();
        // IO still running on a lost disk: two disks of one device at once would defeat
        // the write range lock. It fails or completes soon; try again then.
        if (!retiring_.empty())
            return nullptr;
    }

    std::string refused;
    const std::vector<std::size_t> added = adopt_paths(true, true, refused);
    if (added.empty()) {
        if (!refused.empty())
            note_refusal(refused, true);
        return nullptr;
    }
    std::string line;
    std::shared_ptr<Disk> disk;
    {
        std::lock_guard lock(mutex_);
        // mutex_ was let go while the paths were adopted: one may be lost again already.
        std::size_t chosen = no_path;
        for (const std::size_t index : added)
            if (paths_[index].disk) {
                chosen = index;
                break;
            }
        if (!current_ && chosen != no_path) {
            const DiskInfo &before = *info_.load(std::memory_order_relaxed);
            const DiskInfo &back = paths_[chosen].disk->info();
            if (before.capacity_bytes != back.capacity_bytes)
                line = "; capacity now " + std::to_string(back.capacity_bytes) + " bytes (was " +
                       std::to_string(before.capacity_bytes) + ")";
            line = "back as " + where(back.sg_path, back.hctl) + ", reattached" + line;
            if (added.size() > 1)
                line += "; " + std::to_string(added.size()) + " paths";
            activate_locked(chosen);
            ++reattaches_;
            gone_reason_.clear();
            refused_.clear();
        }
        disk = current_;
    }
    if (!line.empty())
        env_.log("sgfs: " + who() + ": " + line);
    return disk;
}

} // namespace

std::string stable_id_from_vpd_pages(std::span<const std::uint8_t> page83,
                                     std::span<const std::uint8_t> page80)
{
    std::vector<Designator> designators;
    if (!page83.empty() && decode_vpd_device_identification(page83, designators) == 0)
        if (std::string id = stable_id_from_designators(designators); !id.empty())
            return id;
    std::string serial;
    if (!page80.empty() && decode_vpd_unit_serial(page80, serial) == 0)
        return stable_id_from_serial(serial);
    return {};
}

std::string cached_stable_id_of(const std::string &scsi_device_dir)
{
    const fs::path device(scsi_device_dir);
    return stable_id_from_vpd_pages(read_binary(device / "vpd_pg83"),
                                    read_binary(device / "vpd_pg80"));
}

bool is_lost_device_state(const std::string &state)
{
    return state == "missing" || state == "offline" || state == "transport-offline" ||
           state == "cancel" || state == "deleted";
}

ReattachEnvironment system_reattach_environment(DiskOpenFunction open,
                                                const std::string &sysfs_root)
{
    const fs::path class_dir = fs::path(sysfs_root) / "class" / "scsi_generic";
    ReattachEnvironment env;
    env.open = std::move(open);
    env.list_devices = [sysfs_root] { return enumerate_sg_devices(sysfs_root); };
    env.cached_stable_id = [class_dir](const std::string &sg_name) {
        return cached_stable_id_of((class_dir / sg_name / "device").string());
    };
    env.device_state = [class_dir](const std::string &sg_name, const std::string &hctl) {
        const fs::path device = class_dir / sg_name / "device";
        std::error_code error;
        const fs::path real = fs::canonical(device, error);
        if (error || real.filename() != hctl)
            return std::string("missing");
        std::string state = read_line(device / "state");
        return state.empty() ? std::string("missing") : state;
    };
    env.now = [] { return std::chrono::steady_clock::now(); };
    env.log = log_to_stderr_and_syslog;
    return env;
}

std::unique_ptr<Disk> make_reattaching_disk(std::unique_ptr<Disk> first,
                                            ReattachEnvironment environment)
{
    auto disk = std::make_unique<ReattachingDisk>(std::move(first), std::move(environment));
    disk->find_other_paths();
    return disk;
}

} // namespace sgfs
