// Disks that come and go while mounted: the kernel's uevents for sg nodes, as values.
// Listens on the kernel's own netlink group (libudev's "kernel" source), not udevd's:
// the events arrive whether or not a udev daemon runs (the test guest has none), and
// sgfs needs nothing udev adds to them.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sgfs
{

struct DeviceEvent {
    enum class Kind { added, removed, changed };
    Kind kind = Kind::added;
    // added, removed: the sg node ("sg2"). changed: the block device or SCSI disk whose
    // properties changed ("sda", or "2:0:0:0" for scsi_disk), for a capacity re-read.
    std::string name;
    std::string subsystem; // "scsi_generic", "block", "scsi_disk"
};

// The event a uevent means to sgfs, from its ACTION, SUBSYSTEM and sysname; nullopt for
// the ones sgfs ignores (a partition, "bind", another subsystem). Pure.
std::optional<DeviceEvent> device_event_from(std::string_view action, std::string_view subsystem,
                                             std::string_view sysname, std::string_view devtype);

class DeviceMonitor
{
  public:
    // Subscribes to the kernel's uevents of scsi_generic, block and scsi_disk devices:
    // 0, or -errno with `message` saying why.
    static int open(std::unique_ptr<DeviceMonitor> &out, std::string &message);
    ~DeviceMonitor();
    DeviceMonitor(const DeviceMonitor &) = delete;
    DeviceMonitor &operator=(const DeviceMonitor &) = delete;

    // Readable (poll) when events wait.
    int fd() const;
    // The events waiting now, in order; never blocks (the socket is non-blocking).
    std::vector<DeviceEvent> receive();

  private:
    struct Handles;
    explicit DeviceMonitor(std::unique_ptr<Handles> handles);
    std::unique_ptr<Handles> handles_;
};

} // namespace sgfs
