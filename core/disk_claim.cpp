#include "sgfs/disk_claim.hpp"

#include "reattach.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <string_view>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sgfs
{
namespace
{

namespace fs = std::filesystem;

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

// In a directory every user may write, a lock file may be anybody's: only a regular file
// with one link (no hard link to a file elsewhere, which ftruncate would empty), owned by
// us or by root, is used. "" or why not.
std::string unsafe_lock_file(int fd, const std::string &path)
{
    struct stat st {
    };
    if (::fstat(fd, &st) != 0)
        return "cannot stat " + path + ": " + std::strerror(errno);
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1)
        return "not using " + path + ": not a regular file with one link (remove it)";
    if (st.st_uid != ::geteuid() && st.st_uid != 0)
        return "not using " + path + ": it belongs to uid " + std::to_string(st.st_uid) +
               ", not to you or root (remove it if no sgfs of that user serves the disk)";
    return {};
}

// Opens the lock file for writing, else for reading (flock needs neither). Without
// O_CREAT first: fs.protected_regular refuses O_CREAT on another user's file in a sticky
// directory even when it exists. A descriptor, or -errno with `message` saying why.
int open_lock_file(const std::string &path, bool &writable, std::string &message)
{
    for (;;) {
        writable = true;
        int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0 && errno == EACCES) {
            writable = false;
            fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        }
        if (fd >= 0) {
            if (message = unsafe_lock_file(fd, path); !message.empty()) {
                ::close(fd);
                return -EPERM;
            }
            return fd;
        }
        if (errno != ENOENT) {
            const int error = errno;
            message = "cannot open " + path + ": " + std::strerror(error);
            return -error;
        }
        fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd >= 0) {
            ::fchmod(fd, 0666); // past the umask: the next server may be another user
            return fd;
        }
        if (errno != EEXIST) {
            const int error = errno;
            message = "cannot create " + path + ": " + std::strerror(error);
            return -error;
        }
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
    const int fd = open_lock_file(path, writable, message);
    if (fd < 0)
        return fd;
    OwnedFd file(fd);
    // A file without a holder's name is either a mount between its flock and
    // name_holder(), or holder()'s brief LOCK_SH probe: the probe is gone within
    // microseconds, so a few short retries tell the two apart.
    for (int attempt = 1;; ++attempt) {
        if (::flock(file.get(), LOCK_EX | LOCK_NB) == 0)
            break;
        const int error = errno;
        if (error != EWOULDBLOCK) {
            message = "cannot lock " + path + ": " + std::strerror(error);
            return -error;
        }
        const std::string holder = read_holder(file.get());
        if (!holder.empty() || attempt == 5) {
            message = "already served by " + (holder.empty() ? "another sgfs mount" : holder);
            return -error;
        }
        ::usleep(10 * 1000);
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

std::vector<std::string> block_devices_of_disk(const DiskInfo &disk, const std::string &sysfs_root)
{
    std::vector<std::string> names;
    if (!disk.block_device.empty())
        names.push_back(disk.block_device);
    if (disk.stable_id.empty())
        return names;
    std::vector<std::string> others;
    std::error_code error;
    for (const auto &entry : fs::directory_iterator(fs::path(sysfs_root) / "block", error)) {
        const std::string name = entry.path().filename().string();
        if (name != disk.block_device &&
            cached_stable_id_of((entry.path() / "device").string()) == disk.stable_id)
            others.push_back(name);
    }
    std::sort(others.begin(), others.end());
    names.insert(names.end(), others.begin(), others.end());
    return names;
}

namespace
{

// A reason found on another path to the disk says so: the name alone would puzzle.
std::string on_path(const DiskInfo &disk, const std::string &block_device, std::string reason)
{
    if (block_device != disk.block_device)
        reason += " (" + block_device_path(block_device) + " is another path to this disk)";
    return reason;
}

// block_device_users() of each of `names`, the block devices of `disk`.
std::vector<std::string> users_on_paths(const DiskInfo &disk, const std::vector<std::string> &names,
                                        const InUseSystem &system)
{
    std::vector<std::string> reasons;
    for (const std::string &name : names)
        for (std::string &reason : block_device_users(name, system))
            reasons.push_back(on_path(disk, name, std::move(reason)));
    return reasons;
}

} // namespace

std::vector<std::string> disk_in_use(const DiskInfo &disk, const InUseSystem &system)
{
    // While a mount serves the disk, its own O_EXCL hold would read as "open exclusively
    // by another program": the mount is the better answer.
    if (std::string holder = ServeLock::holder(system.lock_dir, claim_key(disk)); !holder.empty())
        return {"served by " + holder};
    const std::vector<std::string> names = block_devices_of_disk(disk, system.sysfs_root);
    std::vector<std::string> reasons = users_on_paths(disk, names, system);
    // The O_EXCL probe only when nothing else explains it, as block_device_in_use() does.
    if (reasons.empty())
        for (const std::string &name : names)
            for (std::string &reason : block_device_in_use(name, system))
                reasons.push_back(on_path(disk, name, std::move(reason)));
    return reasons;
}

DiskClaims::DiskClaims(std::string mount_point, InUseSystem system)
    : mount_point_(std::move(mount_point)), system_(std::move(system))
{
}

std::string DiskClaims::take_block_devices(const DiskInfo &disk, std::vector<OwnedFd> &fds) const
{
    fds.clear();
    const std::vector<std::string> names = block_devices_of_disk(disk, system_.sysfs_root);
    if (const auto reasons = users_on_paths(disk, names, system_); !reasons.empty())
        return "in use: " + join_reasons(reasons);
    // No probe first: the open that holds the disk tells EBUSY just as well.
    for (const std::string &name : names) {
        const std::string path = block_device_path(name);
        const int rc = system_.open_exclusive ? system_.open_exclusive(path) : -ENOTSUP;
        if (rc >= 0) {
            fds.emplace_back(rc);
            continue;
        }
        fds.clear();
        // sysfs has it, /dev does not (a container): nothing would stop a mount the
        // container cannot see, so the disk is not served.
        if (rc == -ENOENT)
            return "not claimable: " + path +
                   " does not exist (no device node to hold it exclusively)";
        if (rc == -EBUSY)
            return "in use: " + on_path(disk, name, open_exclusively_reason(name));
        return "not claimable: cannot open " + path + " exclusively: " + std::strerror(-rc);
    }
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
    if (std::string why = take_block_devices(disk, claim.block_devices); !why.empty())
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
        it->second.block_devices.clear();
}

std::string DiskClaims::reclaim(const DiskInfo &disk)
{
    std::lock_guard lock(mutex_);
    const auto it = claims_.find(claim_key(disk));
    if (it == claims_.end())
        return {};
    // Still held (a loss without release): ours would make the new open EBUSY.
    it->second.block_devices.clear();
    if (std::string why = take_block_devices(disk, it->second.block_devices); !why.empty())
        return why;
    it->second.sg_path = disk.sg_path;
    return {};
}

void DiskClaims::forget(const DiskInfo &disk)
{
    std::lock_guard lock(mutex_);
    claims_.erase(claim_key(disk));
}

void DiskClaims::drop_cached_pages(const DiskInfo &disk)
{
    std::lock_guard lock(mutex_);
    if (const auto it = claims_.find(claim_key(disk)); it != claims_.end())
        for (const OwnedFd &fd : it->second.block_devices)
            // Fails only for a descriptor that is not open; the flush has succeeded.
            static_cast<void>(::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED));
}

void DiskClaims::holder_moved_here()
{
    std::lock_guard lock(mutex_);
    for (auto &[key, claim] : claims_)
        claim.lock.name_holder(mount_point_, ::getpid());
}

} // namespace sgfs
