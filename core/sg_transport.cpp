#include "sg_transport.hpp"

#include "sgfs/discovery.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <linux/fs.h>
#include <scsi/sg.h>
#include <scsi/sg_lib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace sgfs
{
namespace
{

int sg_dxfer_direction(DataDirection direction)
{
    switch (direction) {
    case DataDirection::from_device:
        return SG_DXFER_FROM_DEV;
    case DataDirection::to_device:
        return SG_DXFER_TO_DEV;
    case DataDirection::none:
        break;
    }
    return SG_DXFER_NONE;
}

unsigned sg_flags(TransferMode mode)
{
    switch (mode) {
    case TransferMode::direct:
        return SG_FLAG_DIRECT_IO;
    case TransferMode::mmap:
        return sg_flag_mmap_io;
    case TransferMode::indirect:
        break;
    }
    return 0;
}

// The driver never reports mmap IO in `info`: it either uses the reserve buffer or fails
// the ioctl (EBUSY, ENOMEM). Direct IO is the one that can silently degrade.
TransferMode mode_done(TransferMode requested, unsigned info)
{
    if (requested != TransferMode::direct)
        return requested;
    return (info & SG_INFO_DIRECT_IO_MASK) == SG_INFO_DIRECT_IO ? TransferMode::direct
                                                                : TransferMode::indirect;
}

bool read_allow_dio(const std::string &sysfs_root)
{
    std::ifstream in(allow_dio_parameter(sysfs_root));
    int value = 0;
    return (in >> value) && value != 0;
}

class SgTransport final : public Transport
{
  public:
    SgTransport(std::string path, std::string sysfs_root)
        : path_(std::move(path)), sysfs_root_(std::move(sysfs_root))
    {
    }

    NodeFacts facts() const override
    {
        NodeFacts facts;
        facts.path = path_;
        const auto slash = path_.rfind('/');
        facts.name = slash == std::string::npos ? path_ : path_.substr(slash + 1);
        for (const SgDeviceEntry &entry : enumerate_sg_devices(sysfs_root_))
            if (entry.name == facts.name) {
                facts.hctl = entry.hctl;
                facts.block_device = entry.block_device;
            }
        facts.allow_dio = read_allow_dio(sysfs_root_);
        return facts;
    }

    int open_channel(const ChannelSpec &spec, std::unique_ptr<Channel> &out,
                     std::string &message) override
    {
        std::unique_ptr<SgFd> fd;
        if (int rc = SgFd::open(path_, spec.read_only, fd, message); rc != 0)
            return rc;
        const long granted = fd->set_reserve(spec.reserve);
        if (granted < 0) {
            message =
                path_ + ": SG_SET_RESERVED_SIZE: " + std::strerror(static_cast<int>(-granted));
            return static_cast<int>(granted);
        }
        if (spec.map) {
            if (int rc = fd->map_reserve(spec.read_only); rc != 0) {
                message = path_ + ": mmap of the " + std::to_string(granted) +
                          "-byte reserve buffer failed: " + std::strerror(-rc);
                return rc;
            }
        }
        out = std::move(fd);
        return 0;
    }

  private:
    std::string path_;
    std::string sysfs_root_;
};

} // namespace

std::unique_ptr<Transport> make_sg_transport(const std::string &path, const std::string &sysfs_root)
{
    return std::make_unique<SgTransport>(path, sysfs_root);
}

int SgFd::open(const std::string &path, bool read_only, std::unique_ptr<SgFd> &out,
               std::string &message)
{
    const int fd = ::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) {
        const int error = errno;
        message = path + ": " + std::strerror(error);
        return -error;
    }
    struct stat st {
    };
    int version = 0;
    // Block devices answer SG_GET_VERSION_NUM too, so the device number decides.
    if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode) ||
        static_cast<int>(major(st.st_rdev)) != sg_major ||
        ioctl(fd, SG_GET_VERSION_NUM, &version) != 0 || version < sg_min_version) {
        ::close(fd);
        message = path + ": not an sg device (expected a /dev/sgN character device, major " +
                  std::to_string(sg_major) + ")";
        return -ENOTTY;
    }
    out.reset(new SgFd(fd, version, read_only));
    return 0;
}

SgFd::~SgFd()
{
    if (mapping_ != nullptr)
        munmap(mapping_, mapping_size_);
    if (fd_ >= 0)
        ::close(fd_);
}

long SgFd::set_reserve(std::size_t bytes)
{
    int asked = static_cast<int>(bytes);
    if (ioctl(fd_, SG_SET_RESERVED_SIZE, &asked) != 0)
        return -errno;
    int granted = 0;
    if (ioctl(fd_, SG_GET_RESERVED_SIZE, &granted) != 0)
        return -errno;
    reserve_ = static_cast<std::size_t>(granted);
    return granted;
}

int SgFd::map_reserve(bool read_only)
{
    if (reserve_ == 0)
        return -EINVAL;
    const int protection = read_only ? PROT_READ : PROT_READ | PROT_WRITE;
    void *area = mmap(nullptr, reserve_, protection, MAP_SHARED, fd_, 0);
    if (area == MAP_FAILED)
        return -errno;
    mapping_ = static_cast<std::uint8_t *>(area);
    mapping_size_ = reserve_;
    // The sg mapping is VM_IO: get_user_pages() (direct IO from it on another fd, or
    // writev() to /dev/fuse replying from it) fails with EFAULT for a page that was never
    // faulted in. Touch them all once; the reserve pages never move afterwards.
    const long page = sysconf(_SC_PAGESIZE);
    for (std::size_t at = 0; at < mapping_size_; at += static_cast<std::size_t>(page))
        static_cast<void>(*static_cast<volatile std::uint8_t *>(mapping_ + at));
    return 0;
}

long SgFd::max_transfer_bytes() const
{
    int bytes = 0;
    if (ioctl(fd_, BLKSECTGET, &bytes) != 0)
        return -errno;
    return bytes;
}

void SgFd::fill_header(const SgRequest &request, sg_io_hdr &hdr, Cdb &cdb, std::uint8_t *sense)
{
    cdb = request.cdb;
    hdr = sg_io_hdr{};
    hdr.interface_id = 'S';
    hdr.dxfer_direction = sg_dxfer_direction(request.direction);
    hdr.cmd_len = cdb.length;
    hdr.cmdp = cdb.bytes.data();
    hdr.mx_sb_len = sense_capacity;
    hdr.sbp = sense;
    hdr.timeout = request.timeout_ms;
    hdr.dxfer_len = static_cast<unsigned>(request.length);
    hdr.dxferp = request.mode == TransferMode::mmap ? nullptr : request.buffer;
    hdr.flags = request.length == 0 ? 0 : sg_flags(request.mode);
}

void SgFd::finish(const SgRequest &request, const sg_io_hdr &hdr, const Cdb &cdb,
                  const std::uint8_t *sense, SgCompletion &done)
{
    done.done_mode = request.length == 0 ? request.mode : mode_done(request.mode, hdr.info);
    done.residual = hdr.resid;
    if (hdr.status == 0 && hdr.host_status == 0 && hdr.driver_status == 0) {
        done.outcome = CommandOutcome{};
        return;
    }
    CommandStatus status;
    status.scsi_status = hdr.status;
    status.host_status = hdr.host_status;
    status.driver_status = hdr.driver_status;
    status.sense = std::span<const std::uint8_t>(sense, hdr.sb_len_wr);
    const std::string name = command_name(cdb);
    done.outcome = classify(status, name.c_str());
}

int SgFd::submit(const SgRequest &request)
{
    if (pending_)
        return -EBUSY;
    sg_io_hdr_t hdr;
    fill_header(request, hdr, pending_cdb_, pending_sense_);
    if (read_only_) {
        int rc;
        do {
            rc = ioctl(fd_, SG_IO, &hdr);
        } while (rc != 0 && errno == EINTR);
        if (rc != 0)
            return -errno;
        finish(request, hdr, pending_cdb_, pending_sense_, completion_);
        completed_ = true;
        pending_ = true;
        return 0;
    }
    ssize_t rc;
    do {
        rc = ::write(fd_, &hdr, sizeof(hdr));
    } while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return -errno;
    pending_request_ = request;
    pending_ = true;
    return 0;
}

int SgFd::reap(SgCompletion &done)
{
    // read() with nothing queued would block forever: only after a successful submit.
    if (!pending_)
        return -EINVAL;
    if (completed_) {
        done = completion_;
        completed_ = false;
        pending_ = false;
        return 0;
    }
    sg_io_hdr_t hdr{};
    hdr.interface_id = 'S';
    ssize_t rc;
    do {
        rc = ::read(fd_, &hdr, sizeof(hdr));
    } while (rc < 0 && errno == EINTR);
    // Either way the command is over for us: a failed read() (a detached device) leaves
    // nothing to collect, and the fd must not refuse the next command as busy.
    pending_ = false;
    if (rc < 0)
        return -errno;
    finish(pending_request_, hdr, pending_cdb_, pending_sense_, done);
    return 0;
}

} // namespace sgfs
