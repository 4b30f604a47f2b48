// One sg fd with the memory a command on it may use besides the caller's buffer.
#pragma once

#include "aligned_buffer.hpp"
#include "sg_transport.hpp"
#include "sgfs/pool.hpp"

#include <memory>

namespace sgfs
{

struct Slot : PoolHook {
    std::unique_ptr<SgFd> fd;
    AlignedBuffer bounce; // direct/indirect IO into our own memory; one max transfer long

    // Where a command of `mode` finds its data on this slot.
    std::uint8_t *staging(TransferMode mode) const
    {
        return mode == TransferMode::mmap ? fd->mmap_area().data() : bounce.data();
    }
};

} // namespace sgfs
