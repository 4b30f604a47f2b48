// The -o option string: sgfs's own options, the FUSE/VFS ones we hand to libfuse, and the
// fstab-only ones mount(8) may leave in. Pure: no FUSE calls, no IO, so it is unit-tested.
#pragma once

#include "sgfs/disk.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace sgfs::fusefs
{

// cache=none: every open file is FUSE direct_io, so the caller's request size reaches the
// disk and nothing is cached twice. cache=page: the kernel page cache (readahead, mmap).
enum class CacheMode { none, page };
const char *to_string(CacheMode mode);

struct MountOptions {
    DiskOptions disk; // io, mmap_min, reserve, queue_depth, max_io, timeout, retries, fua,
                      // ro, readahead
    CacheMode cache = CacheMode::none;
    // copy_file_range(2) between two disk files moved sg fd to sg fd (nocopy_file_range:
    // the kernel copies through FUSE read and write instead).
    bool copy_file_range = true;
    // Whole-block writes of files opened without O_DIRECT, O_SYNC or O_DSYNC acknowledged
    // once queued on the device (WriteMode::behind); nowrite_behind: every write waits for
    // the device.
    bool write_behind = true;
    std::optional<uid_t> uid; // owner of the disk files instead of the /dev/sgN node's
    std::optional<gid_t> gid;
    std::optional<mode_t> umask; // disk files 0666 & ~umask instead of the node's mode
    bool debug = false;          // libfuse request tracing; implies foreground
    // Our receive loop, whose buffers put WRITE data on a page boundary (direct IO takes it
    // without a copy), rather than libfuse's own loop.
    bool aligned_writes = true;
    std::optional<std::string> fsname;
    std::optional<std::string> subtype;
    // Handed to libfuse unchanged, in order: allow_other, nodev, noatime, context=...
    // (ro/rw are not here: they live in disk.read_only and are added from there).
    std::vector<std::string> fuse_options;
};

// Applies one comma-separated option string on top of `options` (later options win, so
// several -o arguments accumulate). Returns "" or the one-line error to print, like
// "sgfs: bad value for option 'queue_depth': 'abc' (expected an integer from 1 to 64)".
std::string apply_mount_options(std::string_view text, MountOptions &options);

struct ParsedMountOptions {
    MountOptions options;
    std::string error; // empty on success
    bool ok() const { return error.empty(); }
};
ParsedMountOptions parse_mount_options(std::string_view text);

// Splits at commas not escaped by a backslash ("fsname=a\,b" stays one option), dropping
// empty pieces and the escapes.
std::vector<std::string> split_option_list(std::string_view text);

} // namespace sgfs::fusefs
