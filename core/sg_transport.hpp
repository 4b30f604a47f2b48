// The sg driver as the engine's Transport (channel.hpp): one open /dev/sgN per Channel,
// and the SG_IO ioctl. The only place that knows sg_io_hdr.
#pragma once

#include "channel.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

struct sg_io_hdr; // <scsi/sg.h> stays inside the transport

namespace sgfs
{

// glibc's <scsi/sg.h> stops at SG_FLAG_LUN_INHIBIT; these are the kernel's values.
inline constexpr unsigned sg_flag_mmap_io = 0x04;
inline constexpr unsigned sg_flag_q_at_tail = 0x10;
inline constexpr unsigned sg_flag_q_at_head = 0x20;
inline constexpr int sg_major = 21;
inline constexpr int sg_min_version = 30000;

class SgFd final : public Channel
{
  public:
    // Opens `path` and refuses anything that is not an sg character device.
    static int open(const std::string &path, bool read_only, std::unique_ptr<SgFd> &out,
                    std::string &message);
    ~SgFd() override;

    int version() const { return version_; }
    // Asks for `bytes` and returns what the driver really granted (it caps the reserve at
    // the queue's max_sectors), or -errno.
    long set_reserve(std::size_t bytes);
    std::size_t reserve() const override { return reserve_; }
    // Maps the reserve buffer for SG_FLAG_MMAP_IO; call after set_reserve. A read-only fd
    // can only be mapped read-only, which is all reads need.
    int map_reserve(bool read_only);
    std::span<std::uint8_t> mmap_area() const override { return {mapping_, mapping_size_}; }
    // BLKSECTGET: on sg it returns the maximum transfer in bytes, not sectors.
    long max_transfer_bytes() const override;
    // The asynchronous pair (write() then read() on the fd); see Channel. write() needs an
    // fd open for writing: on a read-only one submit() runs the command at once through
    // the SG_IO ioctl and reap() returns its completion.
    int submit(const SgRequest &request) override;
    int reap(SgCompletion &done) override;
    bool pending() const override { return pending_; }

    // The two translations between a request and the driver's header; pure, so that the
    // unit tests check them without the driver. fill_header: `hdr` for `request`, its CDB
    // copied into `cdb` and sense going to `sense` (sense_capacity bytes), which must
    // outlive the command. finish: the completion the driver's answer in `hdr` means.
    static constexpr std::uint8_t sense_capacity = 64;
    static void fill_header(const SgRequest &request, sg_io_hdr &hdr, Cdb &cdb,
                            std::uint8_t *sense);
    static void finish(const SgRequest &request, const sg_io_hdr &hdr, const Cdb &cdb,
                       const std::uint8_t *sense, SgCompletion &done);

  private:
    SgFd(int fd, int version, bool read_only) : fd_(fd), version_(version), read_only_(read_only) {}
    int fd_ = -1;
    int version_ = 0;
    bool read_only_ = false;
    std::size_t reserve_ = 0;
    std::uint8_t *mapping_ = nullptr;
    std::size_t mapping_size_ = 0;
    // The command submitted and not yet reaped: the kernel writes its sense to our buffer.
    bool pending_ = false;
    SgRequest pending_request_;
    Cdb pending_cdb_;
    std::uint8_t pending_sense_[sense_capacity] = {};
    bool completed_ = false; // read-only: the pending command already ran
    SgCompletion completion_;
};

// The sg node at `path` as a Transport: each channel is an fd of its own with its own
// reserve buffer (mapped when asked). facts() reads sysfs under `sysfs_root` (hctl, block
// device) and the driver's allow_dio parameter there.
std::unique_ptr<Transport> make_sg_transport(const std::string &path,
                                             const std::string &sysfs_root = "/sys");

} // namespace sgfs
