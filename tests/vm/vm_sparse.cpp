// Runs in the guest for thin.sh and offload.sh: the file system calls of thin provisioning, each
// made once and its answer printed, so that the script can hold them against its oracles
// (scsi_debug's map, the sd device, a LIO backing file).
//
//   vm_sparse runs FILE
//       the data runs lseek(SEEK_DATA) and lseek(SEEK_HOLE) find, one "START END" line
//       (bytes) per run, front to back
//   vm_sparse seek data|hole FILE OFFSET
//       one lseek(2): the offset it returns, or "error NAME"
//   vm_sparse fallocate FILE MODE OFFSET LENGTH
//       one fallocate(2); MODE is a "+"-joined list of punch, zero, keep (KEEP_SIZE), or 0:
//       prints 0 or "error NAME"
//   vm_sparse xattr FILE NAME
//       one getxattr(2): the value, or "error NAME" (getfattr is not installed)
//   vm_sparse copy SOURCE DESTINATION
//       copy_file_range(2) from offset 0 of SOURCE to offset 0 of DESTINATION until it
//       returns 0 or fails: prints the bytes copied and the calls made ("BYTES CALLS"),
//       or "error NAME after BYTES"
//   vm_sparse copy-range SOURCE OFFSET_IN DESTINATION OFFSET_OUT LENGTH
//       copy_file_range(2) with explicit offsets, called again for what is left until
//       LENGTH is copied, a call returns 0 or one fails: prints "BYTES CALLS END", END
//       being "done" (all of LENGTH), "eof" (a call returned 0) or the errno's name
//
// Exits 0 whatever the calls answer, 2 on bad usage or when a file does not open.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/falloc.h>
#include <string>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

namespace
{

off_t number(const char *text)
{
    return static_cast<off_t>(std::strtoll(text, nullptr, 0));
}

int open_or_complain(const char *path, int flags)
{
    const int fd = ::open(path, flags | O_CLOEXEC);
    if (fd < 0)
        std::fprintf(stderr, "vm_sparse: open %s: %s\n", path, std::strerror(errno));
    return fd;
}

// SEEK_DATA from 0, then SEEK_HOLE from each data start: ENXIO from SEEK_DATA ends it.
int print_runs(const char *path)
{
    const int fd = open_or_complain(path, O_RDONLY);
    if (fd < 0)
        return 2;
    off_t at = 0;
    for (;;) {
        const off_t data = ::lseek(fd, at, SEEK_DATA);
        if (data < 0) {
            if (errno != ENXIO)
                std::printf("error %s\n", strerrorname_np(errno));
            break;
        }
        const off_t hole = ::lseek(fd, data, SEEK_HOLE);
        if (hole < 0) {
            std::printf("error %s\n", strerrorname_np(errno));
            break;
        }
        std::printf("%lld %lld\n", static_cast<long long>(data), static_cast<long long>(hole));
        if (hole <= data)
            break; // would loop forever: the lines so far show the answer
        at = hole;
    }
    ::close(fd);
    return 0;
}

int seek_once(const char *whence, const char *path, const char *offset)
{
    const std::string kind = whence;
    if (kind != "data" && kind != "hole")
        return 2;
    const int fd = open_or_complain(path, O_RDONLY);
    if (fd < 0)
        return 2;
    const off_t rc = ::lseek(fd, number(offset), kind == "data" ? SEEK_DATA : SEEK_HOLE);
    if (rc < 0)
        std::printf("error %s\n", strerrorname_np(errno));
    else
        std::printf("%lld\n", static_cast<long long>(rc));
    ::close(fd);
    return 0;
}

// "punch+keep" -> FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE; -1 for an unknown word.
int parse_mode(const std::string &text)
{
    int mode = 0;
    std::size_t at = 0;
    while (at <= text.size()) {
        const std::size_t end = std::min(text.find('+', at), text.size());
        const std::string word = text.substr(at, end - at);
        if (word == "punch")
            mode |= FALLOC_FL_PUNCH_HOLE;
        else if (word == "zero")
            mode |= FALLOC_FL_ZERO_RANGE;
        else if (word == "keep")
            mode |= FALLOC_FL_KEEP_SIZE;
        else if (word != "0")
            return -1;
        at = end + 1;
    }
    return mode;
}

int fallocate_once(const char *path, const char *mode_text, const char *offset, const char *length)
{
    const int mode = parse_mode(mode_text);
    if (mode < 0) {
        std::fprintf(stderr, "vm_sparse: bad fallocate mode %s\n", mode_text);
        return 2;
    }
    const int fd = open_or_complain(path, O_RDWR);
    if (fd < 0)
        return 2;
    if (::fallocate(fd, mode, number(offset), number(length)) < 0)
        std::printf("error %s\n", strerrorname_np(errno));
    else
        std::printf("0\n");
    ::close(fd);
    return 0;
}

int print_xattr(const char *path, const char *name)
{
    char value[4096];
    const ssize_t length = ::getxattr(path, name, value, sizeof value);
    if (length < 0)
        std::printf("error %s\n", strerrorname_np(errno));
    else
        std::printf("%.*s\n", static_cast<int>(length), value);
    return 0;
}

int copy_whole(const char *source, const char *destination)
{
    const int in = open_or_complain(source, O_RDONLY);
    const int out = open_or_complain(destination, O_WRONLY);
    if (in < 0 || out < 0)
        return 2;
    long long copied = 0;
    long calls = 0;
    for (;;) {
        ++calls;
        const ssize_t rc = copy_file_range(in, nullptr, out, nullptr, 1UL << 30, 0);
        if (rc < 0) {
            std::printf("error %s after %lld\n", strerrorname_np(errno), copied);
            break;
        }
        if (rc == 0) {
            std::printf("%lld %ld\n", copied, calls);
            break;
        }
        copied += rc;
    }
    ::close(in);
    ::close(out);
    return 0;
}

int copy_range(const char *source, const char *offset_in, const char *destination,
               const char *offset_out, const char *length)
{
    const int in = open_or_complain(source, O_RDONLY);
    const int out = open_or_complain(destination, O_WRONLY);
    if (in < 0 || out < 0)
        return 2;
    off_t in_at = number(offset_in);
    off_t out_at = number(offset_out);
    long long left = number(length);
    long long copied = 0;
    long calls = 0;
    std::string end = "done";
    while (left > 0) {
        ++calls;
        const ssize_t rc =
            copy_file_range(in, &in_at, out, &out_at, static_cast<std::size_t>(left), 0);
        if (rc < 0) {
            end = strerrorname_np(errno);
            break;
        }
        if (rc == 0) {
            end = "eof";
            break;
        }
        copied += rc;
        left -= rc;
    }
    std::printf("%lld %ld %s\n", copied, calls, end.c_str());
    ::close(in);
    ::close(out);
    return 0;
}

} // namespace

int main(int argc, char **argv)
{
    const std::string command = argc > 1 ? argv[1] : "";
    if (command == "runs" && argc == 3)
        return print_runs(argv[2]);
    if (command == "seek" && argc == 5)
        return seek_once(argv[2], argv[3], argv[4]);
    if (command == "fallocate" && argc == 6)
        return fallocate_once(argv[2], argv[3], argv[4], argv[5]);
    if (command == "xattr" && argc == 4)
        return print_xattr(argv[2], argv[3]);
    if (command == "copy" && argc == 4)
        return copy_whole(argv[2], argv[3]);
    if (command == "copy-range" && argc == 7)
        return copy_range(argv[2], argv[3], argv[4], argv[5], argv[6]);
    std::fprintf(stderr,
                 "usage: vm_sparse runs FILE | seek data|hole FILE OFFSET | "
                 "fallocate FILE MODE OFFSET LENGTH | xattr FILE NAME | copy SOURCE DESTINATION | "
                 "copy-range SOURCE OFFSET_IN DESTINATION OFFSET_OUT LENGTH\n");
    return 2;
}
