// Runs in the scsi_debug guest: errors a user can cause reach the caller with the right
// errno and a message that names the problem.
//
//   vm_core_errors SG_PATH BLOCK_PATH [--medium-error-lba N]
#include "aligned_buffer.hpp"
#include "sg_ll.hpp"
#include "sg_transport.hpp"
#include "sgfs/disk.hpp"
#include "tap.hpp"

#include <cerrno>
#include <cstring>
#include <string>

using namespace sgfs;

namespace
{

bool contains(const std::string &text, const std::string &part)
{
    return text.find(part) != std::string::npos;
}

void open_errors(const char *block_path)
{
    std::unique_ptr<Disk> disk;
    std::string message;
    int rc = Disk::open("/dev/sg99", {}, disk, message);
    tap::check(rc == -ENOENT && contains(message, "/dev/sg99"),
               "a missing device gives ENOENT naming it", std::to_string(rc) + " " + message);
    rc = Disk::open(block_path, {}, disk, message);
    tap::check(rc == -ENOTTY && contains(message, "not an sg device"),
               "a block device is refused as not sg", std::to_string(rc) + " " + message);
    rc = Disk::open("/dev/null", {}, disk, message);
    tap::check(rc == -ENOTTY && contains(message, "not an sg device"),
               "/dev/null is refused as not sg", std::to_string(rc) + " " + message);
}

void end_of_device(Disk &disk, SgFd &fd)
{
    const DiskInfo &info = disk.info();
    const std::size_t block = info.logical_block_size;
    AlignedBuffer buffer(4 * block);
    const IoResult at_end = disk.pread(buffer.data(), block, info.capacity_bytes);
    tap::check(at_end.ok() && at_end.bytes == 0, "a read at the end returns 0 bytes (EOF)");
    const IoResult crossing = disk.pread(buffer.data(), 4 * block, info.capacity_bytes - block);
    tap::check(crossing.ok() && crossing.bytes == block, "a read crossing the end is short");
    tap::check(disk.pwrite(buffer.data(), block, info.capacity_bytes).error == -ENOSPC,
               "a write at the end gives ENOSPC");

    // The raw command past the end: the device's own ILLEGAL REQUEST, LBA out of range.
    CommandContext context;
    const BlockSpan span{false, info.capacity_bytes / block, 1, static_cast<std::uint32_t>(block),
                         false};
    std::string message;
    const int rc =
        sg_ll_read_write(fd, context, span, buffer.data(), TransferMode::indirect, message);
    tap::check(rc < 0 && rc != -EIO && !message.empty(),
               "READ past the end is refused by the device with a clear message",
               std::to_string(rc) + " " + message);
    tap::note("READ past the end: " + std::to_string(rc) + " (" + std::strerror(-rc) +
              "): " + message);
}

void medium_error(Disk &disk, std::uint64_t lba)
{
    const std::size_t block = disk.info().logical_block_size;
    AlignedBuffer buffer(8 * block);
    const IoResult result = disk.pread(buffer.data(), 8 * block, (lba - 2) * block);
    const std::string &message = result.message;
    tap::check(result.error == -EIO, "a read over the injected medium error gives EIO",
               std::to_string(result.error) + " " + message);
    tap::check(contains(message, "medium error") && contains(message, std::to_string(lba)),
               "the message names the failing LBA " + std::to_string(lba), message);
    tap::note("medium error: " + message);
    const DeviceStatsSnapshot stats = disk.stats();
    tap::check(stats.errors[static_cast<int>(ErrorCategory::medium_error)] > 0,
               "the medium error is counted");
    tap::check(disk.pread(buffer.data(), block, (lba + 64) * block).bytes == block,
               "reads elsewhere still work");
}

} // namespace

int main(int argc, char **argv)
{
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s SG_PATH BLOCK_PATH [--medium-error-lba N]\n", argv[0]);
        return 2;
    }
    open_errors(argv[2]);
    std::unique_ptr<Disk> disk;
    std::string message;
    if (!tap::check(Disk::open(argv[1], {}, disk, message) == 0, "open", message))
        return tap::finish();
    std::unique_ptr<SgFd> fd;
    if (!tap::check(SgFd::open(argv[1], false, fd, message) == 0, "open a raw sg fd", message))
        return tap::finish();
    end_of_device(*disk, *fd);
    if (argc > 4 && std::strcmp(argv[3], "--medium-error-lba") == 0)
        medium_error(*disk, std::stoull(argv[4], nullptr, 0));
    return tap::finish();
}
