// Runs in the scsi_debug guest: data written through core must be what the kernel's own
// sd driver reads back with O_DIRECT, and the other way round, in one IO mode. Then the
// transfer-mode counters must show what the mode promises.
//
//   vm_core_io SG_PATH BLOCK_PATH MODE [--expect-fallback]
#include "aligned_buffer.hpp"
#include "sgfs/disk.hpp"
#include "tap.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <unistd.h>
#include <vector>

using namespace sgfs;

namespace
{

struct BlockDevice {
    int fd = -1;
    explicit BlockDevice(const char *path) : fd(::open(path, O_RDWR | O_DIRECT | O_CLOEXEC)) {}
    ~BlockDevice()
    {
        if (fd >= 0)
            ::close(fd);
    }
    bool read(std::uint8_t *data, std::size_t length, std::uint64_t offset) const
    {
        return ::pread(fd, data, length, static_cast<off_t>(offset)) ==
               static_cast<ssize_t>(length);
    }
    bool write(const std::uint8_t *data, std::size_t length, std::uint64_t offset) const
    {
        return ::pwrite(fd, data, length, static_cast<off_t>(offset)) ==
               static_cast<ssize_t>(length);
    }
};

std::mt19937_64 rng(20261122);

void fill_random(std::uint8_t *data, std::size_t length)
{
    for (std::size_t i = 0; i < length; ++i)
        data[i] = static_cast<std::uint8_t>(rng());
}

std::string describe(std::size_t length, std::uint64_t offset)
{
    return std::to_string(length) + " bytes at " + std::to_string(offset);
}

void core_write_sd_read(Disk &disk, const BlockDevice &sd, std::size_t length, std::uint64_t offset)
{
    AlignedBuffer written(length);
    AlignedBuffer read(length);
    fill_random(written.data(), length);
    const IoResult result = disk.pwrite(written.data(), length, offset);
    tap::check(result.ok() && result.bytes == length, "core write " + describe(length, offset),
               "pwrite returned " + std::to_string(result.error) + ": " + result.message);
    tap::check(sd.read(read.data(), length, offset) &&
                   std::memcmp(written.data(), read.data(), length) == 0,
               "sd O_DIRECT reads back what core wrote, " + describe(length, offset));
}

void sd_write_core_read(Disk &disk, const BlockDevice &sd, std::size_t length, std::uint64_t offset)
{
    AlignedBuffer written(length);
    AlignedBuffer read(length);
    fill_random(written.data(), length);
    tap::check(sd.write(written.data(), length, offset),
               "sd O_DIRECT write " + describe(length, offset));
    const IoResult result = disk.pread(read.data(), length, offset);
    tap::check(result.ok() && result.bytes == length &&
                   std::memcmp(written.data(), read.data(), length) == 0,
               "core reads back what sd wrote, " + describe(length, offset),
               "pread returned " + std::to_string(result.error) + ": " + result.message);
}

// Byte-granular writes through core against a model of the same region, checked on sd.
void unaligned_writes(Disk &disk, const BlockDevice &sd, std::uint64_t base)
{
    const std::size_t region = 64 * 1024;
    AlignedBuffer model(region);
    AlignedBuffer seen(region);
    fill_random(model.data(), region);
    tap::check(disk.pwrite(model.data(), region, base).bytes == region,
               "core writes the model region");
    const std::pair<std::size_t, std::size_t> writes[] = {
        {1, 1}, {511, 2}, {1000, 12345}, {4095, 4098}, {30000, 1}, {65535, 1}, {7, 60000}};
    for (auto [at, length] : writes) {
        std::vector<std::uint8_t> data(length);
        fill_random(data.data(), length);
        std::memcpy(model.data() + at, data.data(), length);
        const IoResult result = disk.pwrite(data.data(), length, base + at);
        tap::check(result.ok() && result.bytes == length,
                   "unaligned core write " + describe(length, base + at), result.message);
    }
    tap::check(sd.read(seen.data(), region, base) &&
                   std::memcmp(model.data(), seen.data(), region) == 0,
               "sd sees exactly the model after unaligned writes");
    std::vector<std::uint8_t> piece(12345);
    tap::check(disk.pread(piece.data(), piece.size(), base + 777).bytes == 12345 &&
                   std::memcmp(piece.data(), model.data() + 777, piece.size()) == 0,
               "unaligned core read matches the model");
}

DeviceStatsSnapshot minus(DeviceStatsSnapshot now, const DeviceStatsSnapshot &before)
{
    for (int i = 0; i < transfer_mode_count; ++i) {
        auto &m = now.modes[i];
        const auto &b = before.modes[i];
        m.requested_commands -= b.requested_commands;
        m.requested_bytes -= b.requested_bytes;
        m.done_commands -= b.done_commands;
        m.done_bytes -= b.done_bytes;
        m.fallback_commands -= b.fallback_commands;
        m.fallback_bytes -= b.fallback_bytes;
    }
    return now;
}

std::uint64_t counter(const DeviceStatsSnapshot &stats, TransferMode mode,
                      std::uint64_t ModeCountersSnapshot::*field)
{
    return stats.modes[static_cast<int>(mode)].*field;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s SG_PATH BLOCK_PATH MODE [--expect-fallback]\n", argv[0]);
        return 2;
    }
    const auto mode = parse_io_mode(argv[3]);
    const bool expect_fallback = argc > 4 && std::strcmp(argv[4], "--expect-fallback") == 0;
    if (!mode) {
        std::fprintf(stderr, "bad mode %s\n", argv[3]);
        return 2;
    }
    DiskOptions options;
    options.io_mode = *mode;
    std::unique_ptr<Disk> disk;
    std::string message;
    if (!tap::check(Disk::open(argv[1], options, disk, message) == 0,
                    std::string("open ") + argv[1] + " io=" + argv[3], message))
        return tap::finish();
    const DiskInfo &info = disk->info();
    tap::note(info.name + " " + info.vendor + " " + info.model + " block " +
              std::to_string(info.logical_block_size) + " capacity " +
              std::to_string(info.capacity_bytes) + " max transfer " +
              std::to_string(info.max_transfer_bytes) + " reserve " +
              std::to_string(info.reserve_granted) + " allow_dio " +
              std::to_string(info.allow_dio) + " id " + info.stable_id);
    // Probing (INQUIRY, READ CAPACITY...) moves data indirectly; count only our IO.
    const DeviceStatsSnapshot after_open = disk->stats();
    BlockDevice sd(argv[2]);
    if (!tap::check(sd.fd >= 0, std::string("open ") + argv[2] + " O_DIRECT", std::strerror(errno)))
        return tap::finish();

    const std::size_t block = info.logical_block_size;
    const std::size_t sizes[] = {block,      7 * block,           64 * 1024,
                                 512 * 1024, 1024 * 1024 + block, 4 * 1024 * 1024};
    std::uint64_t offset = 3 * block;
    for (std::size_t size : sizes) {
        core_write_sd_read(*disk, sd, size, offset);
        sd_write_core_read(*disk, sd, size, offset + 8 * 1024 * 1024);
        offset += size + 5 * block;
    }
    unaligned_writes(*disk, sd, 32 * 1024 * 1024);
    tap::check(info.max_transfer_bytes <= info.reserve_granted && info.max_transfer_bytes >= block,
               "max transfer within the granted reserve");

    const DeviceStatsSnapshot stats = minus(disk->stats(), after_open);
    for (const auto &[key, value] : stats.fields())
        if (value != "0")
            tap::note("stats " + key + " = " + value);
    using M = ModeCountersSnapshot;
    if (*mode == IoMode::mmap) {
        tap::check(counter(stats, TransferMode::mmap, &M::done_commands) > 0 &&
                       counter(stats, TransferMode::mmap, &M::done_commands) ==
                           counter(stats, TransferMode::mmap, &M::requested_commands),
                   "io=mmap: every command was really done with mmap IO");
        tap::check(counter(stats, TransferMode::indirect, &M::requested_commands) == 0 &&
                       counter(stats, TransferMode::direct, &M::requested_commands) == 0,
                   "io=mmap: no other mode was used");
    } else if (*mode == IoMode::direct) {
        const auto requested = counter(stats, TransferMode::direct, &M::requested_commands);
        const auto done = counter(stats, TransferMode::direct, &M::done_commands);
        const auto fallback = counter(stats, TransferMode::direct, &M::fallback_commands);
        if (expect_fallback)
            tap::check(requested > 0 && done == 0 && fallback == requested,
                       "io=direct with allow_dio=0: every command fell back and was counted",
                       "requested " + std::to_string(requested) + " done " + std::to_string(done) +
                           " fallback " + std::to_string(fallback));
        else
            tap::check(requested > 0 && done == requested && fallback == 0,
                       "io=direct with allow_dio=1: every command was really direct",
                       "requested " + std::to_string(requested) + " done " + std::to_string(done) +
                           " fallback " + std::to_string(fallback));
    } else if (*mode == IoMode::indirect) {
        tap::check(counter(stats, TransferMode::indirect, &M::done_commands) > 0 &&
                       counter(stats, TransferMode::mmap, &M::requested_commands) == 0 &&
                       counter(stats, TransferMode::direct, &M::requested_commands) == 0,
                   "io=indirect: only indirect IO");
    } else {
        tap::check(counter(stats, TransferMode::indirect, &M::done_commands) > 0,
                   "io=auto: small IO went indirect");
        const auto big = info.allow_dio ? TransferMode::direct : TransferMode::mmap;
        tap::check(counter(stats, big, &M::done_commands) > 0,
                   std::string("io=auto: large IO went ") + to_string(big));
    }
    return tap::finish();
}
