// The Disk defaults for disks without sg memory of their own, and Disk::open.
#include "sgfs/disk.hpp"

#include "aligned_buffer.hpp"
#include "copy_range.hpp"
#include "reattach.hpp"
#include "sg_disk.hpp"
#include "sgfs/disk_claim.hpp"
#include "sgfs/extent.hpp"

#include <algorithm>
#include <cerrno>
#include <memory>

namespace sgfs
{

ssize_t Disk::read_view(std::size_t length, std::uint64_t offset, ReaderId reader,
                        const ReadConsumer &consume, bool &consumed)
{
    static_cast<void>(reader); // no read-ahead here
    // Aligned, so that the whole blocks of an unaligned read can still go direct.
    thread_local AlignedBuffer staging;
    if (staging.size() < length)
        staging = AlignedBuffer(length);
    const ssize_t got = length == 0 ? 0 : pread(staging.data(), length, offset);
    consumed = false;
    if (got < 0)
        return got;
    const iovec piece{staging.data(), static_cast<std::size_t>(got)};
    consumed = true;
    const int rc = consume(std::span<const iovec>(&piece, got == 0 ? 0 : 1));
    return rc < 0 ? rc : got;
}

ssize_t Disk::copy_range(std::uint64_t from, Disk &destination, std::uint64_t to,
                         std::size_t length, CopyEnd &failed)
{
    failed = CopyEnd::none;
    std::uint64_t wanted = 0;
    if (int rc = copy_extent(info().capacity_bytes, destination.info().capacity_bytes, from, to,
                             length, wanted);
        rc != 0 || wanted == 0) {
        failed = rc != 0 ? CopyEnd::destination : CopyEnd::none;
        return rc;
    }
    constexpr std::uint64_t staging_bytes = std::uint64_t{1} << 20;
    AlignedBuffer staging(std::min(wanted, staging_bytes));
    bool write_failed = false;
    const int rc = staged_copy(
        from, to, wanted, copy_goes_backwards(&destination == this, from, to, wanted),
        std::span(staging.data(), staging.size()),
        [this](void *data, std::uint64_t bytes, std::uint64_t offset) {
            return pread(data, bytes, offset);
        },
        [&destination](const void *data, std::uint64_t bytes, std::uint64_t offset) {
            return destination.pwrite(data, bytes, offset);
        },
        write_failed);
    if (rc != 0) {
        failed = write_failed ? CopyEnd::destination : CopyEnd::source;
        return rc;
    }
    return static_cast<ssize_t>(wanted);
}

int Disk::zero_range(std::uint64_t offset, std::uint64_t length)
{
    std::uint64_t wanted = 0;
    if (int rc = write_extent(offset, length, info().capacity_bytes, wanted);
        rc != 0 || wanted == 0)
        return rc;
    constexpr std::uint64_t chunk_bytes = std::uint64_t{1} << 20;
    const AlignedBuffer zeros = AlignedBuffer::zeroed(std::min(wanted, chunk_bytes));
    for (std::uint64_t done = 0; done < wanted;) {
        const ssize_t rc = pwrite(
            zeros.data(), std::min<std::uint64_t>(wanted - done, zeros.size()), offset + done);
        if (rc < 0)
            return static_cast<int>(rc);
        if (rc == 0)
            return -EIO; // pwrite promised progress inside the disk
        done += static_cast<std::uint64_t>(rc);
    }
    return 0;
}

int Disk::open(const std::string &sg_path, const DiskOptions &options, std::unique_ptr<Disk> &out,
               std::string &message)
{
    // The SgDisk of one node, wrapped so that when the device goes away (a SAN path lost,
    // an iSCSI logout) the same LUN is picked up again by its stable id (reattach.hpp).
    const auto open_node = [options](const std::string &path, std::unique_ptr<Disk> &disk,
                                     std::string &why) {
        auto node = std::make_unique<SgDisk>(options);
        if (int rc = node->probe(path, why); rc != 0)
            return rc;
        disk = std::move(node);
        return 0;
    };
    std::unique_ptr<Disk> disk;
    if (int rc = open_node(sg_path, disk, message); rc != 0)
        return rc;
    ReattachEnvironment environment = system_reattach_environment(open_node);
    if (const std::shared_ptr<DiskClaims> claims = options.claims) {
        environment.release_claim = [claims](const DiskInfo &lost) { claims->release(lost); };
        environment.reclaim = [claims](const DiskInfo &back) { return claims->reclaim(back); };
    }
    out = make_reattaching_disk(std::move(disk), std::move(environment));
    return 0;
}

} // namespace sgfs
