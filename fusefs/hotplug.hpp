// The kernel's uevents (sgfs/device_monitor.hpp) for a mount, on a thread of their own.
// For every mount, a "change" of a served disk (sd saw a new capacity: a rescan, or its own
// command met CAPACITY DATA HAS CHANGED) makes the disk read its capacity again
// (Disk::refresh_capacity), so the file's size follows even while nothing reads or writes
// through sgfs. For a mount that selects its disks by rule (`all`: add_and_remove), disks
// also come and go:
// - A new sg node: after add_settle (the sd driver binds its block device a moment after
//   the sg node appears, and the claim must hold that too) it is opened and claimed by
//   open_discovered_disk, the path `all` takes at mount: same in-use rule, same claim, same
//   skip message. A disk whose stable id this mount serves already is another path to it
//   (or the same disk back): it gets no second file, and the reattaching disk picks it up.
// - A removed sg node of a served disk starts removal_grace; a node with the same stable id
//   added within it cancels the removal (a path loss and return, which core/reattach.cpp
//   handles as it always has). Otherwise the disk's file and by-id link go
//   (Filesystem::remove_disk); open handles keep the disk, which fails IO with ENODEV as a
//   lost disk does, until they are closed.
// Every event sgfs acts on is logged (fuse_log: syslog once daemonized, else stderr).
#pragma once

#include "filesystem.hpp"
#include "sgfs/device_monitor.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace sgfs::fusefs
{

class Hotplug
{
  public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::chrono::milliseconds add_settle{1000};
    // Three of the reattaching disk's one-second retry intervals (core/reattach.hpp).
    static constexpr std::chrono::milliseconds removal_grace{3000};

    // Starts listening and the thread: 0, or -errno with `message` saying why (the mount
    // then serves the disks it has, as for an explicit source, and their sizes follow
    // only on their own IO). add_and_remove: the source selects by rule.
    static int start(Filesystem &filesystem, const DiskOptions &options, bool add_and_remove,
                     std::unique_ptr<Hotplug> &out, std::string &message);
    // Stops the thread; a disk being opened is finished first.
    ~Hotplug();
    Hotplug(const Hotplug &) = delete;
    Hotplug &operator=(const Hotplug &) = delete;

    // One event, as the thread handles it at `now` (exposed for the unit tests).
    void handle(const DeviceEvent &event, Clock::time_point now);
    // Acts on the adds and removals whose time has come; returns when the next one is due
    // (Clock::time_point::max() when none waits).
    Clock::time_point act_on_due(Clock::time_point now);

    // Without a monitor or thread: for the unit tests, which call handle and act_on_due.
    Hotplug(Filesystem &filesystem, DiskOpener open_disk, DiskClaimer claim_disk,
            std::function<std::vector<SgDeviceEntry>()> list_devices, bool add_and_remove = true);

  private:
    struct PendingRemoval {
        std::string sg_path;
        std::string name; // the file
        std::string stable_id;
        Clock::time_point due;
    };
    void run();
    // Whether an sg node sysfs knows by `stable_id` exists now (its cached VPD pages).
    bool present_with_id(const std::string &stable_id) const;
    void add_now(const std::string &sg_name);
    void on_changed(const DeviceEvent &event);

    Filesystem &filesystem_;
    DiskOpener open_disk_;
    DiskClaimer claim_disk_;
    std::function<std::vector<SgDeviceEntry>()> list_devices_;
    const bool add_and_remove_;
    std::unique_ptr<DeviceMonitor> monitor_;
    int stop_fd_ = -1;
    std::map<std::string, Clock::time_point> pending_adds_; // sg name -> due
    std::vector<PendingRemoval> pending_removals_;
    std::thread thread_;
};

} // namespace sgfs::fusefs
