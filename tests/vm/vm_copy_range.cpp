// Runs in the scsi_debug guest: one copy, and what it returned, for copy.sh to check
// against its model of the disks (read back through sd with O_DIRECT).
//
//   vm_copy_range file SOURCE OFFSET_IN DESTINATION OFFSET_OUT LENGTH
//       one copy_file_range(2) call between two files (sgfs disk files)
//   vm_copy_range disk SG_PATH FROM TO LENGTH [IO_MODE] [ro]
//       core's Disk::copy_range within one sg disk, which the kernel never sends for
//       overlapping ranges of one file (it answers EINVAL itself)
//
// Prints the bytes copied, or "error NAME" (ENOSPC, EROFS, ...); exits 0 either way, 2 on
// bad usage or when the file or disk does not open.
#include "sgfs/disk.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <unistd.h>

namespace
{

std::uint64_t number(const char *text)
{
    return std::strtoull(text, nullptr, 0);
}

int report(ssize_t rc)
{
    if (rc < 0)
        std::printf("error %s\n", strerrorname_np(static_cast<int>(-rc)));
    else
        std::printf("%zd\n", rc);
    return 0;
}

int copy_files(char **argv)
{
    const int in = ::open(argv[2], O_RDONLY | O_CLOEXEC);
    const int out = ::open(argv[4], O_WRONLY | O_CLOEXEC);
    if (in < 0 || out < 0) {
        std::fprintf(stderr, "vm_copy_range: open: %s\n", std::strerror(errno));
        return 2;
    }
    auto offset_in = static_cast<off_t>(number(argv[3]));
    auto offset_out = static_cast<off_t>(number(argv[5]));
    const ssize_t rc = copy_file_range(in, &offset_in, out, &offset_out,
                                       static_cast<std::size_t>(number(argv[6])), 0);
    const int error = errno;
    ::close(in);
    ::close(out);
    return report(rc < 0 ? -error : rc);
}

int copy_within_disk(int argc, char **argv)
{
    sgfs::DiskOptions options;
    if (argc > 6) {
        const auto mode = sgfs::parse_io_mode(argv[6]);
        if (!mode) {
            std::fprintf(stderr, "vm_copy_range: bad io mode %s\n", argv[6]);
            return 2;
        }
        options.io_mode = *mode;
    }
    options.read_only = argc > 7 && std::string(argv[7]) == "ro";
    std::unique_ptr<sgfs::Disk> disk;
    std::string message;
    if (sgfs::Disk::open(argv[2], options, disk, message) != 0) {
        std::fprintf(stderr, "vm_copy_range: %s\n", message.c_str());
        return 2;
    }
    const sgfs::IoResult result = sgfs::copy_range(*disk, number(argv[3]), *disk, number(argv[4]),
                                                   static_cast<std::size_t>(number(argv[5])));
    if (!result.ok())
        std::fprintf(stderr, "vm_copy_range: %s\n", result.message.c_str());
    return report(result.ok() || result.bytes > 0 ? static_cast<ssize_t>(result.bytes)
                                                  : result.error);
}

} // namespace

int main(int argc, char **argv)
{
    const std::string what = argc > 1 ? argv[1] : "";
    if (what == "file" && argc == 7)
        return copy_files(argv);
    if (what == "disk" && argc >= 6 && argc <= 8)
        return copy_within_disk(argc, argv);
    std::fprintf(stderr,
                 "usage: vm_copy_range file SOURCE OFFSET_IN DESTINATION OFFSET_OUT "
                 "LENGTH\n       vm_copy_range disk SG_PATH FROM TO LENGTH [IO_MODE] [ro]\n");
    return 2;
}
