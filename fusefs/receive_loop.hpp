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

namespace sgfs::fusefs
{

// Serves `session` (mounted, signal handlers installed) with `workers` threads until it is
// unmounted or exited by a signal. Returns 0 then, or -errno if receiving failed.
int run_receive_loop(fuse_session *session, unsigned workers);

} // namespace sgfs::fusefs
