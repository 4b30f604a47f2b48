// The io= mount option made into decisions, all in one place: which transfer mode a command
// uses, where its data lives while it runs (and so which pool's channel runs it), and what a
// copy between two disks uses on each side.
#pragma once

#include "sgfs/io_mode.hpp"

#include <cstddef>

namespace sgfs
{

// Where a command's data lives while the command runs.
enum class DataHome {
    caller,    // the caller's own memory, as it is (indirect IO, or direct IO when aligned)
    mmap_area, // the channel's mapped reserve buffer (mmap IO): one copy, or none when the
               // memory is handed to FUSE as it is
    bounce,    // the slot's aligned buffer: direct IO for an unaligned caller, and the
               // memory a read lands in when it is handed out rather than copied
};

struct Placement {
    TransferMode mode = TransferMode::indirect;
    DataHome home = DataHome::caller;
    // The data is copied in user space on its way (see DeviceStats' path counters).
    bool staged() const { return home != DataHome::caller; }
};

// How a write that may be answered before its commands complete runs (place_behind).
enum class BehindWay {
    synchronous, // from the caller's memory, answered once done
    copied,      // copied into the placement's home, which stays with the commands
    kept,        // from the caller's memory, kept until the commands complete
};

struct BehindPlacement {
    Placement placement;
    BehindWay way = BehindWay::synchronous;
};

// A copy between two disks: read into `home` on the source's channel with `read`, written
// from that same memory on the destination's channel with `write`. No mode copies the data
// in user space.
struct CopyPlacement {
    TransferMode read = TransferMode::indirect;
    TransferMode write = TransferMode::indirect;
    DataHome home = DataHome::bounce;
};

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

    // A command moving `bytes` to or from caller memory.
    Placement place(std::size_t bytes, bool buffer_aligned) const
    {
        const TransferMode chosen = choose(bytes, buffer_aligned);
        if (chosen == TransferMode::mmap)
            return {chosen, DataHome::mmap_area};
        if (chosen == TransferMode::direct && !buffer_aligned)
            return {chosen, DataHome::bounce};
        return {chosen, DataHome::caller};
    }

    // A write answered before its commands complete (write-behind). `memory_keepable`: the
    // caller's memory can be kept until the commands complete (WriteBehind's
    // keep_caller_memory: FUSE's request buffer handed over).
    //   kept         direct IO from the caller's aligned memory, kept for the commands: no
    //                copy at all (io=direct; io=auto from mmap_min up where the driver allows
    //                direct IO);
    //   copied       where the memory cannot be kept or a mode copies anyway: copied once into
    //                the mmap area, which stays with the command (io=mmap; io=auto from
    //                mmap_min up): the one copy lets the device work on this write while the
    //                next one arrives, where direct IO from memory that goes with the reply
    //                would keep the caller waiting for every command;
    //   synchronous  the rest (io=indirect, io=direct without kept or aligned memory, io=auto
    //                below mmap_min): from the caller's memory, which the caller waits for.
    BehindPlacement place_behind(std::size_t bytes, bool memory_keepable, bool buffer_aligned) const
    {
        const Placement placed = place(bytes, buffer_aligned);
        if (memory_keepable && placed.mode == TransferMode::direct &&
            placed.home == DataHome::caller)
            return {placed, BehindWay::kept};
        if (placed.mode == TransferMode::mmap)
            return {placed, BehindWay::copied};
        if (mode == IoMode::automatic && bytes >= mmap_min)
            return {{TransferMode::mmap, DataHome::mmap_area}, BehindWay::copied};
        return {placed, BehindWay::synchronous};
    }

    // A read whose data is handed out where it lands (a read view, a read-ahead window):
    // never the caller's memory.
    Placement place_landing(std::size_t bytes) const
    {
        const TransferMode chosen = choose(bytes, true);
        return {chosen, chosen == TransferMode::mmap ? DataHome::mmap_area : DataHome::bounce};
    }

    // What the io= mode means for a copy between two disks; the data never passes through
    // FUSE, and no mode copies it in user space:
    //   indirect  both commands through the driver's kernel buffers (the driver copies twice);
    //   direct    read by DMA into an aligned buffer of ours, written by DMA from it;
    //   mmap      read into the source channel's mapped reserve buffer, written from that
    //             mapping with direct IO (every page of it was touched when it was mapped:
    //             the mapping is VM_IO, and direct IO from an untouched page fails with
    //             EFAULT), or with indirect IO when the driver does not allow direct IO;
    //   auto      like direct; without allow_dio like mmap, whose read is still DMA. In the
    //             TCG guest (scsi_debug, 64 MiB cp, 1 MiB chunks) direct and mmap were
    //             within the noise of each other, so the simpler one, which needs no mapped
    //             channels, is the default.
    CopyPlacement copy() const
    {
        const TransferMode from_mapping = allow_dio ? TransferMode::direct : TransferMode::indirect;
        switch (mode) {
        case IoMode::indirect:
            return {TransferMode::indirect, TransferMode::indirect, DataHome::bounce};
        case IoMode::direct:
            return {TransferMode::direct, TransferMode::direct, DataHome::bounce};
        case IoMode::mmap:
            return {TransferMode::mmap, from_mapping, DataHome::mmap_area};
        case IoMode::automatic:
            break;
        }
        if (allow_dio)
            return {TransferMode::direct, TransferMode::direct, DataHome::bounce};
        return {TransferMode::mmap, TransferMode::indirect, DataHome::mmap_area};
    }

    bool uses_mmap() const { return mode == IoMode::automatic || mode == IoMode::mmap; }
};

} // namespace sgfs
