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
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
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
        current_ = std::shared_ptr<Disk>(std::move(first));
    }

    const DiskInfo &info() const override { return *info_.load(std::memory_order_acquire); }

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
        {
            std::lock_guard lock(mutex_);
            out = retired_;
            for (const auto &disk : retiring_)
                out.add_counters(disk->stats());
            if (current_)
                out.add_counters(current_->stats());
            out.state = current_ ? "online" : "gone";
            if (!current_)
                out.gone_reason = gone_reason_;
            out.path_losses = path_losses_;
            out.reattaches = reattaches_;
            node = node_;
            hctl = node_hctl_;
        }
        out.device_state = env_.device_state(node, hctl);
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
    // out (two disks of one device) before they end.
    IoResult write_behind_range(const void *buffer, std::size_t length, std::uint64_t offset,
                                const WriteBehind &behind) override
    {
        return run_on([&](const std::shared_ptr<Disk> &disk) {
            return disk->pwrite(buffer, length, offset, WriteMode::behind,
                                WriteBehind{behind.pending, disk});
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
    // Runs `operation` on the disk in use; an error that means the path is lost marks the
    // disk gone and, when the device is back at once, runs it once more there.
    template <typename Operation> IoResult run(Operation operation)
    {
        return run_on([&](const std::shared_ptr<Disk> &disk) { return operation(*disk); });
    }
    template <typename Operation> IoResult run_on(Operation operation);
    // `failure` came from IO on `disk` (a copy's, run on its pin): when it means the path
    // is lost, marks it gone and looks once for the device at once; true when it is back.
    bool after_failure(const Disk *disk, const DiskInfo &node, const IoResult &failure);
    std::shared_ptr<Disk> acquire();
    std::shared_ptr<Disk> search(bool now_regardless = false);
    // `node` is the disk's info (its sg name and hctl say where to look in sysfs).
    bool lost(const DiskInfo &node, int error) const;
    // Swaps `disk` out when it is still the one in use (compared, never dereferenced).
    void mark_gone(const Disk *disk, const DiskInfo &node, const std::string &why);
    void fold_idle_retiring_locked();
    IoResult fail_gone();
    std::string who() const { return name_ + (stable_id_.empty() ? "" : " (" + stable_id_ + ")"); }

    const ReattachEnvironment env_;
    const std::string name_;      // the file name: the first sg node's name
    const std::string stable_id_; // what a returning device must match
    const std::uint32_t block_size_;

    mutable std::mutex mutex_;
    std::shared_ptr<Disk> current_;               // null while gone
    std::vector<std::shared_ptr<Disk>> retiring_; // lost, IO may still run on them
    DeviceStatsSnapshot retired_;                 // counters of the disks swapped out
    std::uint64_t path_losses_ = 0;
    std::uint64_t reattaches_ = 0;
    std::string node_, node_hctl_; // the sg node in use, or last used
    std::string gone_reason_;
    std::chrono::steady_clock::time_point next_search_{};
    std::vector<std::unique_ptr<DiskInfo>> infos_;
    std::atomic<const DiskInfo *> info_{nullptr};

    std::mutex search_mutex_;
};

template <typename Operation> IoResult ReattachingDisk::run_on(Operation operation)
{
    std::shared_ptr<Disk> disk = acquire();
    if (!disk)
        return fail_gone();
    for (bool first = true;; first = false) {
        IoResult result = operation(disk);
        if (result.ok() || !lost(disk->info(), result.error))
            return result;
        mark_gone(disk.get(), disk->info(), result.message);
        disk.reset(); // ours must not count as IO still running on it
        // The device may be back already on another node (a re-login while this disk
        // was idle): one look at once, and the operation once more there. Reads and
        // whole writes can be repeated; the range lock of the new disk covers the rest.
        if (first)
            disk = search(true);
        if (!disk)
            return IoResult::failure(-ENODEV, name_ + ": device lost: " + result.message);
    }
}

bool ReattachingDisk::after_failure(const Disk *disk, const DiskInfo &node, const IoResult &failure)
{
    if (!lost(node, failure.error))
        return false;
    mark_gone(disk, node, failure.message);
    return search(true) != nullptr;
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
    std::erase_if(retiring_, [this](const std::shared_ptr<Disk> &disk) {
        if (disk.use_count() != 1)
            return false;
        retired_.add_counters(disk->stats());
        return true;
    });
}

void ReattachingDisk::mark_gone(const Disk *disk, const DiskInfo &node, const std::string &why)
{
    {
        std::lock_guard lock(mutex_);
        // Another thread saw the loss first, or a fresh disk is already in.
        if (current_.get() != disk)
            return;
        retiring_.push_back(std::move(current_));
        current_.reset();
        ++path_losses_;
        gone_reason_ = why;
        next_search_ = env_.now() + env_.retry_interval;
    }
    if (env_.release_claim)
        env_.release_claim(node);
    env_.log("sgfs: " + who() + ": device lost: " + why + "; IO fails with ENODEV until " +
             (stable_id_.empty() ? std::string("remounted (no stable id to find it by)")
                                 : "a disk with the same id is back"));
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
    {
        std::lock_guard lock(mutex_);
        if (current_)
            return current_;
    }
    return search();
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

    // Probing may block (a device whose transport is still recovering): no lock held but
    // search_mutex_, so IO on this disk keeps failing fast meanwhile.
    std::string refused;
    for (const SgDeviceEntry &entry : env_.list_devices()) {
        if (!is_disk_device_type(entry.device_type))
            continue;
        const std::string cached = env_.cached_stable_id(entry.name);
        if (!cached.empty() && cached != stable_id_)
            continue;
        std::unique_ptr<Disk> fresh;
        std::string message;
        if (env_.open(entry.sg_path, fresh, message) != 0 || !fresh)
            continue; // still offline, or not a disk after all
        const DiskInfo &found = fresh->info();
        if (found.stable_id != stable_id_)
            continue;
        if (found.logical_block_size != block_size_) {
            refused = entry.sg_path + " has the id but " +
                      std::to_string(found.logical_block_size) + "-byte blocks, not " +
                      std::to_string(block_size_);
            continue;
        }
        if (env_.reclaim) {
            if (const std::string why = env_.reclaim(found); !why.empty()) {
                refused = entry.sg_path +
                          (found.block_device.empty() ? "" : " (/dev/" + found.block_device + ")") +
                          " is " + why;
                continue;
            }
        }

        std::string line;
        std::shared_ptr<Disk> disk(std::move(fresh));
        {
            std::lock_guard lock(mutex_);
            const DiskInfo &before = *info_.load(std::memory_order_relaxed);
            if (before.capacity_bytes != disk->info().capacity_bytes)
                line = "; capacity now " + std::to_string(disk->info().capacity_bytes) +
                       " bytes (was " + std::to_string(before.capacity_bytes) + ")";
            if (!same_identity_info(before, disk->info())) {
                auto info = std::make_unique<DiskInfo>(disk->info());
                info->name = name_;
                infos_.push_back(std::move(info));
                info_.store(infos_.back().get(), std::memory_order_release);
            }
            current_ = disk;
            ++reattaches_;
            node_ = disk->info().name;
            node_hctl_ = disk->info().hctl;
            gone_reason_.clear();
        }
        env_.log("sgfs: " + who() + ": back as " + entry.sg_path + " [" + entry.hctl +
                 "], reattached" + line);
        return disk;
    }
    if (!refused.empty()) {
        bool changed = false;
        {
            std::lock_guard lock(mutex_);
            changed = gone_reason_ != "refused: " + refused;
            gone_reason_ = "refused: " + refused;
        }
        // Once per new reason, not once per retry.
        if (changed)
            env_.log("sgfs: " + who() + ": found again, but " + refused + "; still gone");
    }
    return nullptr;
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
    return std::make_unique<ReattachingDisk>(std::move(first), std::move(environment));
}

} // namespace sgfs
