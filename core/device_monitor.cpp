#include "sgfs/device_monitor.hpp"

#include <cerrno>
#include <cstring>
#include <libudev.h>

namespace sgfs
{

std::optional<DeviceEvent> device_event_from(std::string_view action, std::string_view subsystem,
                                             std::string_view sysname, std::string_view devtype)
{
    if (sysname.empty())
        return std::nullopt;
    DeviceEvent event;
    event.name = std::string(sysname);
    event.subsystem = std::string(subsystem);
    if (subsystem == "scsi_generic") {
        if (action == "add")
            event.kind = DeviceEvent::Kind::added;
        else if (action == "remove")
            event.kind = DeviceEvent::Kind::removed;
        else
            return std::nullopt;
        return event;
    }
    // A resize (sd revalidating after CAPACITY DATA HAS CHANGED, or a rescan) is a
    // "change" of the whole disk; a partition's changes are not the disk's.
    const bool whole_disk = subsystem == "scsi_disk" || (subsystem == "block" && devtype == "disk");
    if (whole_disk && action == "change") {
        event.kind = DeviceEvent::Kind::changed;
        return event;
    }
    return std::nullopt;
}

struct DeviceMonitor::Handles {
    udev *context = nullptr;
    udev_monitor *monitor = nullptr;
    ~Handles()
    {
        if (monitor)
            udev_monitor_unref(monitor);
        if (context)
            udev_unref(context);
    }
};

DeviceMonitor::DeviceMonitor(std::unique_ptr<Handles> handles) : handles_(std::move(handles)) {}
DeviceMonitor::~DeviceMonitor() = default;

int DeviceMonitor::open(std::unique_ptr<DeviceMonitor> &out, std::string &message)
{
    auto handles = std::make_unique<Handles>();
    handles->context = udev_new();
    if (!handles->context) {
        message = "udev_new failed";
        return -ENOMEM;
    }
    handles->monitor = udev_monitor_new_from_netlink(handles->context, "kernel");
    if (!handles->monitor) {
        const int error = errno != 0 ? errno : EPROTONOSUPPORT;
        message = std::string("cannot listen for kernel uevents: ") + std::strerror(error);
        return -error;
    }
    for (const char *subsystem : {"scsi_generic", "block", "scsi_disk"})
        if (const int rc = udev_monitor_filter_add_match_subsystem_devtype(handles->monitor,
                                                                           subsystem, nullptr);
            rc < 0) {
            message = std::string("cannot filter uevents: ") + std::strerror(-rc);
            return rc;
        }
    if (const int rc = udev_monitor_enable_receiving(handles->monitor); rc < 0) {
        message = std::string("cannot listen for kernel uevents: ") + std::strerror(-rc);
        return rc;
    }
    out.reset(new DeviceMonitor(std::move(handles)));
    return 0;
}

int DeviceMonitor::fd() const
{
    return udev_monitor_get_fd(handles_->monitor);
}

std::vector<DeviceEvent> DeviceMonitor::receive()
{
    std::vector<DeviceEvent> events;
    // libudev's socket is non-blocking: receive_device returns null once none is left.
    while (udev_device *device = udev_monitor_receive_device(handles_->monitor)) {
        const auto text = [](const char *value) { return std::string_view(value ? value : ""); };
        if (auto event = device_event_from(
                text(udev_device_get_action(device)), text(udev_device_get_subsystem(device)),
                text(udev_device_get_sysname(device)), text(udev_device_get_devtype(device))))
            events.push_back(std::move(*event));
        udev_device_unref(device);
    }
    return events;
}

} // namespace sgfs
