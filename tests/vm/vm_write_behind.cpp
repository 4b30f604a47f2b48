// Writes a source file's bytes to FILE at OFFSET in write(2) calls of CHUNK bytes, then
// ends the file as END says, and prints what every call returned, so that a suite can see
// where a failure of a write acknowledged behind was reported (issue 14: at the file's
// next write, fsync or close, once).
//   usage: vm_write_behind FILE SOURCE OFFSET CHUNK END
//     END: close          close only (a failure left must come back from close)
//          fsync          fsync, then close
//          fsync-kill PID fsync, then SIGKILL to PID (the FUSE daemon) before close: what
//                         fsync acknowledged must be on the disk without the daemon's help
// Output: one "write N at OFFSET: ok|ERROR" line per call, "fsync: ok|ERROR",
// "close: ok|ERROR", and last "failures=K first=CALL" (CALL "-" when none failed).
// Exits 0 when it ran (whatever the calls returned), 2 on bad usage, 1 when it could not
// start (open, read SOURCE).
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace
{

struct Tally {
    unsigned failures = 0;
    std::string first = "-";

    // Prints the call's outcome; counts it when it failed.
    void report(const std::string &call, int rc)
    {
        if (rc == 0) {
            std::printf("%s: ok\n", call.c_str());
            return;
        }
        std::printf("%s: %s\n", call.c_str(), std::strerror(-rc));
        if (failures++ == 0)
            first = call;
    }
};

// Page-aligned memory, as dd, cp and fio write from. (From a malloc-ed buffer, 16 bytes into
// a page, the kernel's FUSE splits each direct_io write at the page limit: 1 MiB becomes
// 1 MiB - 16 bytes and 16 bytes, neither whole blocks.)
struct PageAligned {
    static constexpr std::size_t page = 4096;
    void operator()(char *data) const { std::free(data); }
};
using Buffer = std::unique_ptr<char[], PageAligned>;

struct Data {
    Buffer bytes;
    std::size_t size = 0;
};

// The whole of SOURCE, or size 0 with errno set.
Data read_all(const char *path)
{
    Data data;
    const int fd = ::open(path, O_RDONLY);
    struct stat st {
    };
    if (fd < 0 || ::fstat(fd, &st) != 0) {
        if (fd >= 0)
            ::close(fd);
        return data;
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    void *memory = nullptr;
    if (size == 0 || ::posix_memalign(&memory, PageAligned::page, size) != 0) {
        ::close(fd);
        return data;
    }
    data.bytes.reset(static_cast<char *>(memory));
    std::size_t done = 0;
    while (done < size) {
        const ssize_t got = ::read(fd, data.bytes.get() + done, size - done);
        if (got <= 0)
            break;
        done += static_cast<std::size_t>(got);
    }
    ::close(fd);
    if (done == size)
        data.size = size;
    return data;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc < 6) {
        std::fprintf(stderr, "usage: %s FILE SOURCE OFFSET CHUNK close|fsync|fsync-kill PID\n",
                     argv[0]);
        return 2;
    }
    const std::string end = argv[5];
    const bool kill_after = end == "fsync-kill";
    if ((end != "close" && end != "fsync" && !kill_after) || (kill_after && argc != 7)) {
        std::fprintf(stderr, "%s: END is close, fsync or fsync-kill PID\n", argv[0]);
        return 2;
    }
    const off_t offset = static_cast<off_t>(std::strtoull(argv[3], nullptr, 0));
    const std::size_t chunk = std::strtoull(argv[4], nullptr, 0);
    const Data data = read_all(argv[2]);
    if (data.size == 0 || chunk == 0) {
        std::fprintf(stderr, "%s: no data in %s: %s\n", argv[0], argv[2], std::strerror(errno));
        return 1;
    }
    const int fd = ::open(argv[1], O_WRONLY);
    if (fd < 0) {
        std::fprintf(stderr, "open %s: %s\n", argv[1], std::strerror(errno));
        return 1;
    }
    Tally tally;
    unsigned call = 0;
    for (std::size_t done = 0; done < data.size; done += chunk, ++call) {
        const std::size_t length = std::min(chunk, data.size - done);
        const ssize_t wrote =
            ::pwrite(fd, data.bytes.get() + done, length, offset + static_cast<off_t>(done));
        // A short write is a failure too: nothing here asks for less than the whole chunk.
        const int rc = wrote < 0 ? -errno : (static_cast<std::size_t>(wrote) == length ? 0 : -EIO);
        tally.report("write " + std::to_string(call) + " at " +
                         std::to_string(offset + static_cast<off_t>(done)),
                     rc);
    }
    if (end != "close")
        tally.report("fsync", ::fsync(fd) == 0 ? 0 : -errno);
    if (kill_after) {
        const pid_t daemon = static_cast<pid_t>(std::atoi(argv[6]));
        std::printf("kill %d: %s\n", static_cast<int>(daemon),
                    ::kill(daemon, SIGKILL) == 0 ? "ok" : std::strerror(errno));
        std::fflush(stdout);
        // Close against a dead daemon fails (ENOTCONN): that is not the disk's outcome.
        ::close(fd);
    } else {
        tally.report("close", ::close(fd) == 0 ? 0 : -errno);
    }
    std::printf("failures=%u first=%s\n", tally.failures, tally.first.c_str());
    return 0;
}
