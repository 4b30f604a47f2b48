// Which transfer mode one SCSI command uses: the io= mount option made into a decision.
#pragma once

#include "sgfs/io_mode.hpp"

#include <cstddef>

namespace sgfs
{

struct IoPolicy {
    IoMode mode = IoMode::automatic;
    std::size_t mmap_min = std::size_t{64} * 1024;
    bool allow_dio = false;

    // `buffer_aligned`: the caller's buffer can be handed to the driver for direct IO.
    TransferMode choose(std::size_t bytes, bool buffer_aligned) const
    {
        switch (mode) {
        case IoMode::indirect:
            return TransferMode::indirect;
        case IoMode::direct:
            return TransferMode::direct;
        case IoMode::mmap:
            return TransferMode::mmap;
        case IoMode::automatic:
            break;
        }
        if (bytes < mmap_min)
            return TransferMode::indirect;
        // Direct IO from the caller's buffer saves our copy; mmap needs one.
        return allow_dio && buffer_aligned ? TransferMode::direct : TransferMode::mmap;
    }
    bool uses_mmap() const { return mode == IoMode::automatic || mode == IoMode::mmap; }
};

} // namespace sgfs
