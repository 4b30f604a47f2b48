// The seam between the IO engine and a device. A Transport reaches one SCSI logical unit
// and opens Channels to it; a Channel carries one command at a time (an sg fd: write() a
// request, read() its completion). Production uses the sg driver (sg_transport.hpp); the
// unit tests use an in-memory SCSI target (tests/unit/memory_target.hpp), so that the
// engine's splitting, retries, read-ahead and copies run without a kernel.
#pragma once

#include "sgfs/cdb.hpp"
#include "sgfs/io_mode.hpp"
#include "sgfs/pool.hpp"
#include "sgfs/sense.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace sgfs
{

struct SgRequest {
    Cdb cdb;
    DataDirection direction = DataDirection::none;
    void *buffer = nullptr; // ignored in mmap mode: data lives in the channel's mapping
    std::size_t length = 0;
    TransferMode mode = TransferMode::indirect;
    unsigned timeout_ms = 60000;
};

struct SgCompletion {
    CommandOutcome outcome;
    TransferMode done_mode = TransferMode::indirect; // what the transport really did
    int residual = 0;                                // bytes not transferred
};

class Channel
{
  public:
    Channel() = default;
    Channel(const Channel &) = delete;
    Channel &operator=(const Channel &) = delete;
    virtual ~Channel() = default;

    // Queues `request`: one command in flight per channel, so several channels keep the
    // device busy from one thread. The request's buffer must stay valid until reap()
    // returns. -EBUSY when a command is already pending; -errno when queueing failed.
    virtual int submit(const SgRequest &request) = 0;
    // Waits for the pending command's completion: 0 (the command's own verdict is in
    // `done.outcome`), -EINVAL when nothing is pending, or -errno from the transport.
    virtual int reap(SgCompletion &done) = 0;
    virtual bool pending() const = 0;
    // The channel's reserve buffer as mapped for mmap IO; empty when it is not mapped.
    virtual std::span<std::uint8_t> mmap_area() const = 0;
    // The reserve size the transport really granted.
    virtual std::size_t reserve() const = 0;
    // The largest transfer the queue below allows, in bytes, or -errno when unknown.
    virtual long max_transfer_bytes() const = 0;
};

// What one channel is opened with.
struct ChannelSpec {
    bool read_only = false;
    std::size_t reserve = 0; // reserve buffer asked for; the transport may grant less
    bool map = false;        // map the reserve buffer for mmap IO
};

// Where the logical unit sits in the system, as far as the transport knows.
struct NodeFacts {
    std::string path;         // "/dev/sg0"
    std::string name;         // "sg0"
    std::string hctl;         // "" when unknown
    std::string block_device; // "sda", or "" when there is none
    bool allow_dio = false;   // the transport can do direct IO into user memory
};

class Transport
{
  public:
    virtual ~Transport() = default;
    virtual NodeFacts facts() const = 0;
    // Opens one more channel. On failure returns -errno and fills `message` with one line.
    virtual int open_channel(const ChannelSpec &spec, std::unique_ptr<Channel> &out,
                             std::string &message) = 0;
};

} // namespace sgfs
