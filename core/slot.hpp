// One channel to the device with the memory a command on it may use besides the caller's
// buffer. Slots wait in a Pool (sgfs/pool.hpp) between commands.
#pragma once

#include "aligned_buffer.hpp"
#include "channel.hpp"
#include "io_policy.hpp"
#include "sgfs/pool.hpp"

#include <memory>

namespace sgfs
{

struct Slot : PoolHook {
    std::unique_ptr<Channel> channel;
    AlignedBuffer bounce; // one largest command long

    // Where a command's data lives on this slot; null for the caller's own memory.
    std::uint8_t *memory(DataHome home) const
    {
        switch (home) {
        case DataHome::mmap_area:
            return channel->mmap_area().data();
        case DataHome::bounce:
            return bounce.data();
        case DataHome::caller:
            break;
        }
        return nullptr;
    }
};

} // namespace sgfs
