// Reads a file sequentially in small pieces while writing fresh data just ahead of the
// reader through a second descriptor, so that the writes land in windows sgfs has already
// read ahead. Every byte written must be read back as written; everything read is copied
// to OUT for the caller to compare with the disk (read through sd with O_DIRECT).
//   usage: vm_readahead_write FILE LENGTH OUT
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <unistd.h>
#include <vector>

namespace
{

constexpr std::size_t piece = 8192;

struct Descriptor {
    int fd;
    explicit Descriptor(int value) : fd(value) {}
    Descriptor(const Descriptor &) = delete;
    Descriptor &operator=(const Descriptor &) = delete;
    ~Descriptor()
    {
        if (fd >= 0)
            ::close(fd);
    }
};

bool full_pread(int fd, std::uint8_t *data, std::size_t length, off_t offset)
{
    while (length > 0) {
        const ssize_t got = ::pread(fd, data, length, offset);
        if (got <= 0)
            return false;
        data += got;
        length -= static_cast<std::size_t>(got);
        offset += got;
    }
    return true;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s FILE LENGTH OUT\n", argv[0]);
        return 2;
    }
    const std::size_t length = std::strtoull(argv[2], nullptr, 0);
    const Descriptor reader(::open(argv[1], O_RDONLY));
    const Descriptor writer(::open(argv[1], O_WRONLY));
    const Descriptor out(::open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644));
    if (reader.fd < 0 || writer.fd < 0 || out.fd < 0) {
        std::fprintf(stderr, "open: %s\n", std::strerror(errno));
        return 1;
    }
    std::vector<std::uint8_t> expected(length);
    std::vector<bool> known(length, false);
    std::mt19937_64 random(std::random_device{}());
    // Ahead of the reader by: the next piece, inside the first windows, across a window
    // boundary with an unaligned size (read-modify-write), and a full window away.
    const std::size_t distances[] = {piece, 40960, 300001, (1U << 20) + 512, 2U << 20};
    const std::size_t sizes[] = {piece, 4096, 12345, 1000, 65536};
    std::vector<std::uint8_t> data(piece);
    std::size_t writes = 0;
    std::size_t checked = 0;
    for (std::size_t at = 0; at < length; at += piece) {
        // A few times per MiB, once the reader is well under way.
        if (at % (std::size_t{384} * 1024) == 3 * piece) {
            for (std::size_t i = 0; i < std::size(distances); ++i) {
                const std::size_t where = at + distances[i];
                if (where + sizes[i] > length)
                    continue;
                std::vector<std::uint8_t> fresh(sizes[i]);
                for (auto &byte : fresh)
                    byte = static_cast<std::uint8_t>(random());
                if (::pwrite(writer.fd, fresh.data(), fresh.size(), static_cast<off_t>(where)) !=
                    static_cast<ssize_t>(fresh.size())) {
                    std::fprintf(stderr, "pwrite at %zu: %s\n", where, std::strerror(errno));
                    return 1;
                }
                std::memcpy(&expected[where], fresh.data(), fresh.size());
                std::fill(known.begin() + static_cast<std::ptrdiff_t>(where),
                          known.begin() + static_cast<std::ptrdiff_t>(where + fresh.size()), true);
                ++writes;
            }
        }
        const std::size_t count = std::min(piece, length - at);
        if (!full_pread(reader.fd, data.data(), count, static_cast<off_t>(at))) {
            std::fprintf(stderr, "read at %zu: %s\n", at, std::strerror(errno));
            return 1;
        }
        for (std::size_t i = 0; i < count; ++i)
            if (known[at + i]) {
                ++checked;
                if (data[i] != expected[at + i]) {
                    std::fprintf(stderr, "byte %zu: read %u, wrote %u before reading it\n", at + i,
                                 data[i], expected[at + i]);
                    return 1;
                }
            }
        if (::write(out.fd, data.data(), count) != static_cast<ssize_t>(count)) {
            std::fprintf(stderr, "write %s: %s\n", argv[3], std::strerror(errno));
            return 1;
        }
    }
    std::printf("%zu writes ahead of the reader, %zu bytes of them read back as written\n", writes,
                checked);
    return writes > 0 && checked > 0 ? 0 : 1;
}
