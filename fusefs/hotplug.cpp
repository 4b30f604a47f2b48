#include "hotplug.hpp"

#include "sgfs/discovery.hpp"
#include "sgfs/disk_claim.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace sgfs::fusefs
{

Hotplug::Hotplug(Filesystem &filesystem, DiskOpener open_disk, DiskClaimer claim_disk,
                 std::function<std::vector<SgDeviceEntry>()> list_devices, bool add_and_remove)
    : filesystem_(filesystem), open_disk_(std::move(open_disk)), claim_disk_(std::move(claim_disk)),
      list_devices_(std::move(list_devices)), add_and_remove_(add_and_remove)
{
}

int Hotplug::start(Filesystem &filesystem, const DiskOptions &options, bool add_and_remove,
                   std::unique_ptr<Hotplug> &out, std::string &message)
{
    // The mount's own claims: the same hold, and the same refusals, as at mount.
    DiskClaimer claim = [claims = options.claims](const DiskInfo &disk) {
        return claims ? claims->claim(disk) : std::string();
    };
    auto hotplug = std::make_unique<Hotplug>(
        filesystem, disk_opener(options), std::move(claim), [] { return enumerate_sg_devices(); },
        add_and_remove);
    if (const int rc = DeviceMonitor::open(hotplug->monitor_, message); rc < 0)
        return rc;
    hotplug->stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (hotplug->stop_fd_ < 0) {
        const int error = errno;
        message = std::string("eventfd: ") + std::strerror(error);
        return -error;
    }
    hotplug->thread_ = std::thread([raw = hotplug.get()] { raw->run(); });
    out = std::move(hotplug);
    return 0;
}

Hotplug::~Hotplug()
{
    if (thread_.joinable()) {
        const std::uint64_t one = 1;
        // Cannot fail on a counter far from its limit.
        static_cast<void>(::write(stop_fd_, &one, sizeof one));
        thread_.join();
    }
    if (stop_fd_ >= 0)
        ::close(stop_fd_);
}

void Hotplug::run()
{
    Clock::time_point next = Clock::time_point::max();
    while (true) {
        int timeout = -1;
        if (next != Clock::time_point::max()) {
            const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now());
            timeout = static_cast<int>(std::max<long long>(wait.count(), 0));
        }
        pollfd fds[2] = {{monitor_->fd(), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        if (::poll(fds, 2, timeout) < 0 && errno != EINTR) {
            fuse_log(FUSE_LOG_ERR, "sgfs: hot plug stopped: poll: %s\n", std::strerror(errno));
            return;
        }
        if (fds[1].revents != 0)
            return;
        if (fds[0].revents != 0)
            for (const DeviceEvent &event : monitor_->receive())
                handle(event, Clock::now());
        next = act_on_due(Clock::now());
    }
}

void Hotplug::handle(const DeviceEvent &event, Clock::time_point now)
{
    const std::string sg_path = "/dev/" + event.name;
    if (!add_and_remove_ && event.kind != DeviceEvent::Kind::changed)
        return;
    switch (event.kind) {
    case DeviceEvent::Kind::added:
        pending_adds_[event.name] = now + add_settle;
        break;
    case DeviceEvent::Kind::removed: {
        pending_adds_.erase(event.name);
        const std::optional<DiskInfo> disk = filesystem_.disk_on_node(sg_path);
        if (!disk)
            break;
        const bool pending =
            std::any_of(pending_removals_.begin(), pending_removals_.end(),
                        [&](const PendingRemoval &removal) { return removal.sg_path == sg_path; });
        if (pending)
            break;
        pending_removals_.push_back({sg_path, disk->name, disk->stable_id, now + removal_grace});
        fuse_log(FUSE_LOG_NOTICE,
                 "sgfs: %s: %s was removed; the file goes in %lld ms unless the disk is back\n",
                 disk->name.c_str(), sg_path.c_str(),
                 static_cast<long long>(removal_grace.count()));
        break;
    }
    case DeviceEvent::Kind::changed:
        on_changed(event);
        break;
    }
}

Hotplug::Clock::time_point Hotplug::act_on_due(Clock::time_point now)
{
    std::vector<std::string> due_adds;
    for (auto it = pending_adds_.begin(); it != pending_adds_.end();) {
        if (it->second <= now) {
            due_adds.push_back(it->first);
            it = pending_adds_.erase(it);
        } else {
            ++it;
        }
    }
    for (const std::string &name : due_adds)
        add_now(name);

    for (auto it = pending_removals_.begin(); it != pending_removals_.end();) {
        if (it->due > now) {
            ++it;
            continue;
        }
        // A node with its id is there again (back, but refused for now: in use, say): the
        // disk is lost, not removed; reattach decides when it is served again.
        if (present_with_id(it->stable_id)) {
            it = pending_removals_.erase(it);
            continue;
        }
        // Still on the removed node (a reattach would have moved it elsewhere).
        if (const std::string name = filesystem_.remove_disk(it->sg_path); !name.empty())
            fuse_log(FUSE_LOG_NOTICE, "sgfs: %s: disk removed (%s gone); /%s is no longer served\n",
                     name.c_str(), it->sg_path.c_str(), name.c_str());
        it = pending_removals_.erase(it);
    }

    Clock::time_point next = Clock::time_point::max();
    for (const auto &[name, due] : pending_adds_)
        next = std::min(next, due);
    for (const PendingRemoval &removal : pending_removals_)
        next = std::min(next, removal.due);
    return next;
}

bool Hotplug::present_with_id(const std::string &stable_id) const
{
    if (stable_id.empty())
        return false;
    const std::vector<SgDeviceEntry> devices = list_devices_();
    return std::any_of(devices.begin(), devices.end(), [&](const SgDeviceEntry &entry) {
        return cached_stable_id(entry) == stable_id;
    });
}

void Hotplug::add_now(const std::string &sg_name)
{
    const std::vector<SgDeviceEntry> devices = list_devices_();
    const auto entry = std::find_if(devices.begin(), devices.end(),
                                    [&](const SgDeviceEntry &e) { return e.name == sg_name; });
    // Gone again already, or not a disk (a tape, an enclosure): nothing to serve.
    if (entry == devices.end() || !is_disk_device_type(entry->device_type) ||
        filesystem_.disk_on_node(entry->sg_path))
        return;
    // A disk this mount serves already, on another node: no second file for it.
    std::string served_as;
    const DiskClaimer claim = [&](const DiskInfo &disk) {
        served_as = filesystem_.disk_with_stable_id(disk.stable_id);
        if (!served_as.empty())
            return "served by this mount as /" + served_as + " (" + disk.stable_id + ")";
        return claim_disk_ ? claim_disk_(disk) : std::string();
    };
    DiscoveredDisk found = open_discovered_disk(*entry, open_disk_, claim);
    if (!served_as.empty()) {
        // The disk is back (or has another path): a pending removal of it is off.
        std::erase_if(pending_removals_,
                      [&](const PendingRemoval &removal) { return removal.name == served_as; });
        fuse_log(FUSE_LOG_NOTICE, "sgfs: %s: %s has its stable id; not a new disk\n",
                 served_as.c_str(), entry->sg_path.c_str());
        return;
    }
    if (!found.disk) {
        fuse_log(FUSE_LOG_WARNING, "%s\n", found.skipped.c_str());
        return;
    }
    const DiskInfo info = found.disk->info();
    if (filesystem_.add_disk(std::move(found.disk)) == 0) {
        fuse_log(FUSE_LOG_WARNING, "sgfs: new disk %s: the name %s is taken in the mount\n",
                 info.sg_path.c_str(), info.name.c_str());
        return;
    }
    const std::string block = info.block_device.empty() ? "" : " (/dev/" + info.block_device + ")";
    const std::string id = info.stable_id.empty() ? "no stable id" : "by-id/" + info.stable_id;
    fuse_log(FUSE_LOG_NOTICE, "sgfs: new disk %s%s [%s] %s %s, %llu bytes: served as /%s, %s\n",
             info.sg_path.c_str(), block.c_str(), info.hctl.c_str(), info.vendor.c_str(),
             info.model.c_str(), static_cast<unsigned long long>(info.capacity_bytes),
             info.name.c_str(), id.c_str());
}

void Hotplug::on_changed(const DeviceEvent &event)
{
    const InodeNumber inode = filesystem_.disk_inode_on_device(event.name);
    if (inode == 0)
        return; // not a disk of this mount, or one whose block device changed only
    // The disk logs a capacity change it finds (and counts it in .stats).
    if (const int rc = filesystem_.refresh_capacity(inode); rc < 0 && rc != -ENODEV)
        fuse_log(FUSE_LOG_WARNING, "sgfs: %s changed, but its capacity could not be read: %s\n",
                 event.name.c_str(), std::strerror(-rc));
}

} // namespace sgfs::fusefs
