#include "connection.hpp"

#include "tree.hpp"

#include <algorithm>

namespace sgfs::fusefs
{
namespace
{

constexpr unsigned metadata_threads = 4;
constexpr unsigned default_max_background = 12; // the kernel's own default

} // namespace

void configure_connection(fuse_conn_info &conn, unsigned queue_slots)
{
    // libfuse 3.14 refuses the session unless max_read here equals the -o max_read the
    // session was created with (see session.cpp).
    conn.max_read = max_request_bytes;
    conn.max_write = max_request_bytes;
    // Splice saves copies through pipes; here every byte passes through sg memory in user
    // space anyway, and the write callback (not write_buf) takes plain memory. Read replies
    // with fuse_reply_data (SPLICE_WRITE, no MOVE) lose: libfuse 3.14 vmsplices only the
    // header and write()s memory buffers into its pipe, a copy on top of the one into the
    // request's pages. Measured 2026-11-22 (TCG guest, scsi_debug, dd 256 MiB, 4 alternating
    // runs, medians (range)), splice vs fuse_reply_iov:
    //   io=direct bs=1M  204 (74-227) vs 342 (150-450) MB/s, daemon CPU 1175 vs 615 ms
    //   io=direct bs=64k 107 (80-143) vs 198 (127-208) MB/s, daemon CPU 1925 vs 925 ms
    //   io=mmap   bs=1M  264 (212-283) vs 396 (173-464) MB/s, daemon CPU  905 vs 590 ms
    //   io=mmap   bs=64k 135 (132-149) vs 170 (152-247) MB/s, daemon CPU 1445 vs 1045 ms
    // so splice stays off.
    conn.want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
    // With atomic O_TRUNC the kernel sets the file size to 0 after open(O_TRUNC); a disk
    // file has to keep its capacity, which the separate setattr(size) path lets us answer.
    conn.want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
    conn.want &= ~FUSE_CAP_WRITEBACK_CACHE;
    // Async direct IO lets the kernel split one large O_DIRECT or AIO request into
    // max_write pieces and send them concurrently, which is what queue_depth is for.
    if (conn.capable & FUSE_CAP_ASYNC_DIO)
        conn.want |= FUSE_CAP_ASYNC_DIO;
    // No file here is ever setuid or carries capabilities; saying we handle killpriv
    // spares the kernel a security.capability getxattr round trip before writes.
    if (conn.capable & FUSE_CAP_HANDLE_KILLPRIV)
        conn.want |= FUSE_CAP_HANDLE_KILLPRIV;
    // Background requests are readahead and async direct IO: let every queue be full.
    conn.max_background = std::max(default_max_background, 2 * queue_slots);
    conn.congestion_threshold = conn.max_background * 3 / 4;
}

unsigned loop_workers(unsigned queue_slots)
{
    return 2 * queue_slots + metadata_threads;
}

} // namespace sgfs::fusefs
