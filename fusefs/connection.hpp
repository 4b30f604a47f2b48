// What an sgfs session asks of the kernel: the FUSE_INIT settings and the number of worker
// threads. Shared with bench/nullfs (the FUSE ceiling row of bench/run), so that the
// ceiling is measured with exactly the settings sgfs runs with.
#pragma once

#include "fuse_api.hpp"

namespace sgfs::fusefs
{

// Fills `conn` in init(): request sizes of max_request_bytes (the -o max_read the session
// was created with must match), no splice, no atomic O_TRUNC, no writeback cache, async
// direct IO, and enough background requests for `queue_slots` commands in flight (the sum
// of queue_depth over the mounted disks) to keep every queue full.
void configure_connection(fuse_conn_info &conn, unsigned queue_slots);

// Worker threads the session loop may run for `queue_slots` commands in flight: enough for
// every queue to be full twice over (one batch in the driver, one being answered), plus a
// few for metadata.
unsigned loop_workers(unsigned queue_slots);

} // namespace sgfs::fusefs
