#include "sgfs/disk_claim.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string_view>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sgfs
{
namespace
{

std::string lock_path(const std::string &lock_dir, const std::string &key)
{
    std::string name = key;
    std::replace(name.begin(), name.end(), '/', '_');
    return lock_dir + "/" + name + ".lock";
}

// The directory is shared by every user who may serve a disk: sticky and world-writable,
// like /tmp. Made on first use; /run is a tmpfs, so it goes with each boot.
int make_lock_dir(const std::string &lock_dir)
{
    if (::mkdir(lock_dir.c_str(), 01777) == 0)
        return ::chmod(lock_dir.c_str(), 01777) == 0 ? 0 : -errno; // past the umask
    return errno == EEXIST ? 0 : -errno;
}

// Opens the lock file for writing, else for reading (flock needs neither). Without
// O_CREAT first: fs.protected_regular refuses O_CREAT on another user's file in a sticky
// directory even when it exists.
int open_lock_file(const std::string &path, bool &writable)
{
    for (;;) {
        writable = true;
        int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 && errno == EACCES) {
            writable = false;
            fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        }
        if (fd >= 0 || errno != ENOENT)
            return fd < 0 ? -errno : fd;
        fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd >= 0) {
            ::fchmod(fd, 0666); // past the umask: the next server may be another user
            return fd;
        }
        if (errno != EEXIST)
            return -errno;
        // Created by someone else just now: open theirs.
    }
}

std::string read_holder(int fd)
{
    char text[4096];
    const ssize_t got = ::pread(fd, text, sizeof(text) - 1, 0);
    if (got <= 0)
        return {};
    const std::string_view content(text, static_cast<std::size_t>(got));
    const std::size_t end_of_mount = content.find('\n');
    if (end_of_mount == std::string_view::npos || end_of_mount == 0)
        return {};
    const std::string_view pid = content.substr(end_of_mount + 1);
    const std::string_view pid_digits = pid.substr(0, pid.find('\n'));
    return "sgfs at " + std::string(content.substr(0, end_of_mount)) + " (pid " +
           std::string(pid_digits) + ")";
}

} // namespace

OwnedFd &OwnedFd::operator=(OwnedFd &&other) noexcept
{
    if (this != &other) {
        reset();
        fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
}

void OwnedFd::reset()
{
    if (fd_ >= 0)
        ::close(std::exchange(fd_, -1));
}

int ServeLock::take(const std::string &lock_dir, const std::string &key, ServeLock &out,
                    std::string &message)
{
    if (const int rc = make_lock_dir(lock_dir); rc < 0) {
        message = "cannot make " + lock_dir + ": " + std::strerror(-rc);
        return rc;
    }
    const std::string path = lock_path(lock_dir, key);
    bool writable = false;
    const int fd = open_lock_file(path, writable);
    if (fd < 0) {
        message = "cannot open " + path + ": " + std::strerror(-fd);
        return fd;
    }
    OwnedFd file(fd);
    if (::flock(file.get(), LOCK_EX | LOCK_NB) != 0) {
        const int error = errno;
        if (error == EWOULDBLOCK) {
            const std::string holder = read_holder(file.get());
            message = "already served by " + (holder.empty() ? "another sgfs mount" : holder);
        } else {
            message = "cannot lock " + path + ": " + std::strerror(error);
        }
        return -error;
    }
    // What an earlier holder wrote is stale now; until name_holder() it says nothing.
    if (writable)
        static_cast<void>(::ftruncate(file.get(), 0));
    out.fd_ = std::move(file);
    out.writable_ = writable;
    return 0;
}

std::string ServeLock::holder(const std::string &lock_dir, const std::string &key)
{
    OwnedFd file(::open(lock_path(lock_dir, key).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!file)
        return {};
    // A shared lock is granted unless a mount holds the exclusive one.
    if (::flock(file.get(), LOCK_SH | LOCK_NB) == 0) {
        ::flock(file.get(), LOCK_UN);
        return {};
    }
    const std::string holder = read_holder(file.get());
    return holder.empty() ? "another sgfs mount" : holder;
}

int ServeLock::name_holder(const std::string &mount_point, pid_t pid) const
{
    if (!fd_ || !writable_)
        return -EBADF;
    const std::string text = mount_point + "\n" + std::to_string(pid) + "\n";
    if (::ftruncate(fd_.get(), 0) != 0)
        return -errno;
    const ssize_t wrote = ::pwrite(fd_.get(), text.data(), text.size(), 0);
    if (wrote < 0)
        return -errno;
    return static_cast<std::size_t>(wrote) == text.size() ? 0 : -EIO;
}

std::string claim_key(const DiskInfo &disk)
{
    return disk.stable_id.empty() ? disk.name : disk.stable_id;
}

std::vector<std::string> disk_in_use(const DiskInfo &disk, const InUseSystem &system)
{
    // While a mount serves the disk, its own O_EXCL hold would read as "open exclusively
    // by another program": the mount is the better answer.
    if (std::string holder = ServeLock::holder(system.lock_dir, claim_key(disk)); !holder.empty())
        return {"served by " + holder};
    return block_device_in_use(disk.block_device, system);
}

DiskClaims::DiskClaims(std::string mount_point, InUseSystem system)
    : mount_point_(std::move(mount_point)), system_(std::move(system))
{
}

std::string DiskClaims::take_block_device(const DiskInfo &disk, OwnedFd &fd) const
{
    fd.reset();
    if (disk.block_device.empty())
        return {};
    if (const auto reasons = block_device_in_use(disk.block_device, system_); !reasons.empty())
        return "in use: " + join_reasons(reasons);
    const std::string path = block_device_path(disk.block_device);
    const int rc = system_.open_exclusive ? system_.open_exclusive(path) : -ENOTSUP;
    if (rc == -ENOENT)
        return {}; // sysfs has it, /dev does not (a container): the lock file must do
    if (rc == -EBUSY)
        return "in use: " + path + " is open exclusively by another program";
    if (rc < 0)
        return "not claimable: cannot open " + path + " exclusively: " + std::strerror(-rc);
    fd = OwnedFd(rc);
    return {};
}

std::string DiskClaims::claim(const DiskInfo &disk)
{
    const std::string key = claim_key(disk);
    std::lock_guard lock(mutex_);
    if (const auto it = claims_.find(key); it != claims_.end())
        return "the same disk as " + it->second.sg_path + " (" + key + ")";
    Claim claim;
    claim.sg_path = disk.sg_path;
    std::string message;
    if (ServeLock::take(system_.lock_dir, key, claim.lock, message) < 0)
        return message.starts_with("already") ? message : "not claimable: " + message;
    if (std::string why = take_block_device(disk, claim.block_device); !why.empty())
        return why;
    // Only now: a refused disk's lock file must not name this mount.
    claim.lock.name_holder(mount_point_, ::getpid());
    claims_.emplace(key, std::move(claim));
    return {};
}

void DiskClaims::release(const DiskInfo &disk)
{
    std::lock_guard lock(mutex_);
    if (const auto it = claims_.find(claim_key(disk)); it != claims_.end())
        it->second.block_device.reset();
}

std::string DiskClaims::reclaim(const DiskInfo &disk)
{
    std::lock_guard lock(mutex_);
    const auto it = claims_.find(claim_key(disk));
    if (it == claims_.end())
        return {};
    // Still held (a loss without release): ours would make the new open EBUSY.
    it->second.block_device.reset();
    if (std::string why = take_block_device(disk, it->second.block_device); !why.empty())
        return why;
    it->second.sg_path = disk.sg_path;
    return {};
}

void DiskClaims::holder_moved_here()
{
    std::lock_guard lock(mutex_);
    for (auto &[key, claim] : claims_)
        claim.lock.name_holder(mount_point_, ::getpid());
}

} // namespace sgfs
