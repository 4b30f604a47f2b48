// Our own request loop, in place of fuse_session_loop_mt: each worker receives requests into
// a buffer of its own, placed so that a WRITE's data starts on a page boundary. The write
// handler then hands the kernel's data straight to the disk, and direct IO takes it from
// there without a copy in the daemon (libfuse's buffers put it 80 bytes past a page).
//
// All workers read the session's one /dev/fuse fd: fuse_session_receive_buf reads no other
// (libfuse's clone_fd channels are internal), and a reply must go to the fd its request
// was read from. Splice stays off (Filesystem::init), so requests land in our memory.
#pragma once

#include "fuse_api.hpp"

#include <cstddef>
#include <memory>

namespace sgfs::fusefs
{

// Serves `session` (mounted, signal handlers installed) with `workers` threads until it is
// unmounted or exited by a signal. Returns 0 then, or -errno if receiving failed.
int run_receive_loop(fuse_session *session, unsigned workers);

// Called while a worker of run_receive_loop serves a request, by its handler: keeps that
// request's memory, which holds [data, data + length), unchanged while the returned owner
// lives (the worker reads its next requests into another buffer), so that a write answered
// before its commands complete can run them from the data without a copy. Null outside a
// worker, for memory not in the request, or when no other buffer can be had.
std::shared_ptr<const void> keep_request_memory(const void *data, std::size_t length);

} // namespace sgfs::fusefs
