#include "help_text.hpp"

#include "fuse_api.hpp"
#include "mount_options.hpp"
#include "sgfs/io_mode.hpp"
#include "size_text.hpp"

#ifndef SGFS_VERSION
#define SGFS_VERSION "unknown"
#endif

namespace sgfs::fusefs
{

std::string help_text()
{
    const MountOptions defaults;
    const DiskOptions &disk = defaults.disk;
    const std::string io = to_string(disk.io_mode);
    const std::string mmap_min = format_size_option(disk.mmap_min);
    const std::string reserve = format_size_option(disk.reserve);
    const std::string queue_depth = std::to_string(disk.queue_depth);
    const std::string timeout = std::to_string(disk.timeout_seconds);
    const std::string retries = std::to_string(disk.retries);

    return R"(Usage: sgfs SOURCE MOUNTPOINT [-o OPTION[,OPTION...]] [-f] [-d] [-s]
       sgfs --list [-o OPTION[,OPTION...]]
       sgfs --help | --version

Shows SCSI disks as files: reading and writing MOUNTPOINT/sgN sends SCSI READ and
WRITE commands to the disk through the Linux sg driver (/dev/sgN).

SOURCE
  all                   every SCSI disk (peripheral type 0x00, or 0x0e RBC); disks
                        that cannot be opened or are in use are skipped with a
                        warning
  DISK[,DISK...]        /dev/sgN, sgN, a block device (sda, /dev/sda: its sg
                        node), or a stable id as --list shows it (wwn-0x...,
                        scsi-...); each must be a disk that opens and is not in
                        use, or nothing is mounted

A disk is in use when its block device or a partition is mounted, is active swap,
has holders (dm, md, LVM, bcache) or is open with O_EXCL, or another sgfs serves it. While
mounted, sgfs holds each disk's block device with O_EXCL (mount, mkfs: EBUSY) and a
lock file in /run/sgfs naming the mount.

Files
  MOUNTPOINT/sgN        the disk; size = capacity (followed when the disk grows or
                        shrinks, see sgfs(8)), st_blksize = preferred transfer,
                        st_blocks = the bytes the disk holds data for;
                        truncate and O_TRUNC (cp, dd without conv=notrunc, >) zero
                        it from the new size on by WRITE SAME, see sgfs(8)
                        fallocate: PUNCH_HOLE|KEEP_SIZE zeroes the range, unmapping
                        whole granules of a thin disk (UNMAP, WRITE SAME with UNMAP;
                        the rest, and LBPRZ=0 disks, zeroed); ZERO_RANGE zeroes,
                        keeping the range allocated (no UNMAP bit);
                        mode 0 and KEEP_SIZE do nothing (no space is reserved on a
                        thin disk); growing is EFBIG, other modes EOPNOTSUPP
                        SEEK_DATA/SEEK_HOLE: from GET LBA STATUS on disks with LBPME
                        and LBPRZ, else all data; copy_file_range skips source holes
  MOUNTPOINT/by-id/ID   symlink to ../sgN, like /dev/disk/by-id
  MOUNTPOINT/.stats     per disk: geometry, settings, and per transfer mode the
                        commands and bytes requested and really done, fallbacks,
                        retries, errors by category, per path (read, write, copy)
                        the bytes copied by sgfs, by the driver, or not at all, how
                        zeroing and punching were done (zero.*: WRITE SAME, UNMAP,
                        GET LBA STATUS, read-back, copy holes), copy offload
                        (offload.*: bytes, commands, refusals, fallbacks), commands
                        in flight (in_flight.*: mean, max, histogram), capacity
                        changes (capacity_changes: a disk that grew or shrank while
                        mounted; capacity_bytes is the size now) and the
                        provisioning (lbpme, lbpu, lbpws, lbprz, unmap_granularity..)
  user.sgfs.KEY         the same figures as extended attributes of each disk file

Program options
  -f, --foreground      stay in the foreground
  -d, --debug           trace every FUSE request; implies -f
  -s, --single-threaded serve one request at a time
  -l, --list            list the sg devices like lsscsi -g, plus capacity, block
                        sizes, max transfer, reserve granted, provisioning (thick, or
                        thin:unmap,ws16,rz,4KiB) and stable id of disks, and why a
                        disk is in use on the line after it
  -h, --help            show this text
  -V, --version         show the program and libfuse versions

Mount options (-o). SIZE is a number with an optional k, m or g suffix (powers of
1024) and must be positive.
  io=MODE               how data moves through the sg driver (default )" +
           io + R"():
                          indirect  copied through the driver's kernel buffer
                          direct    DMA into sgfs's buffers (needs the sg module's
                                    allow_dio=1; falls back to indirect otherwise,
                                    with a warning at mount)
                          mmap      the driver's reserve buffer mapped into sgfs
                          auto      transfers of at least mmap_min go direct when
                                    the driver allows it and the buffer is aligned,
                                    else mmap; smaller ones go indirect
  mmap_min=SIZE         the io=auto threshold (default )" +
           mmap_min + R"()
  reserve=SIZE          reserve buffer asked for per sg file descriptor; the driver
                        may grant less: see reserve_granted (default )" +
           reserve + R"()
  queue_depth=N         SCSI commands in flight per disk, 1 to 64 (default )" +
           queue_depth + R"()
  max_io=SIZE           largest transfer of one SCSI command, at least one logical
                        block (default: what the device, the driver and the reserve
                        buffer allow)
  timeout=SEC           per-command timeout, 1 to 86400 seconds (default )" +
           timeout + R"()
  retries=N             retries after unit attention, aborted command or busy,
                        0 to 100 (default )" +
           retries + R"()
  fua, nofua            set Force Unit Access on every WRITE (default nofua)
  readahead, noreadahead
                        after sequential reads, read the next windows ahead on
                        spare sg fds, so the disk works while FUSE copies a reply;
                        only the open file they were read for gets them, and they
                        go at its close, but while it stays open they may be older
                        than another host's or path's write: noreadahead for disks
                        others write too (default readahead)
  copy_file_range, nocopy_file_range
                        copy_file_range(2) between two disk files of the mount (cp
                        does it) moves the data sg node to sg node, never through
                        FUSE, in the io= mode's way (default copy_file_range)
  copy_offload, nocopy_offload
                        such copies between two LUNs with a copy manager (3PC, same
                        target) become EXTENDED COPY: the data never crosses the
                        host; a refusal falls back to copying through sgfs
                        (default copy_offload)
  write_behind, nowrite_behind
                        whole-block writes (io=mmap; io=direct and io=auto from
                        mmap_min up, from the request buffer kept with the
                        commands, not with noaligned_writes) of a file opened
                        without O_DIRECT, O_SYNC or
                        O_DSYNC are answered once their commands are
                        queued (at most queue_depth in flight), like a block
                        device's page cache: such a write is not on the disk until
                        fsync, and is lost if sgfs is killed or the power fails
                        before; its error comes at the file's next write and
                        again at its fsync or close. Disks with several paths write
                        synchronously (a write on a failing path is retried on the
                        next).
                        nowrite_behind: every write waits for the disk
                        (default write_behind)
  aligned_writes, noaligned_writes
                        receive requests into buffers that put write data on a
                        page boundary, so direct IO sends it without a copy
                        (default aligned_writes; noaligned_writes: libfuse's loop)
  cache=none|page       none: direct_io, each read and write reaches the disk with
                        its own size and nothing is cached but read-ahead (default);
                        page: the kernel page cache with readahead (needed for
                        MAP_SHARED mmap(2): direct_io files refuse it with ENODEV)
  ro, rw                read-only, or read-write (default rw); a write-protected
                        disk is always read-only
  uid=N, gid=N          numeric owner and group of the disk files (default: those
                        of the /dev/sgN node)
  umask=OCTAL           disk files get mode 0666 & ~umask, directories 0555 & ~umask,
                        .stats 0444 & ~umask (default: the /dev/sgN node's mode)
  debug                 same as -d

FUSE and VFS options, passed on to libfuse and the kernel
  allow_other, allow_root, auto_unmount, dev, nodev, suid, nosuid, exec, noexec,
  atime, noatime, sync, async, dirsync, context=, fscontext=, defcontext=,
  rootcontext=, fsname= (default: SOURCE), subtype= (default: sgfs).
  default_permissions is always on: the kernel enforces the owner and mode shown,
  so allow_other does not open the disks to everybody.

Accepted and ignored (fstab bookkeeping, or meaningless for fixed timestamps)
  defaults, auto, noauto, user, nouser, users, owner, group, _netdev, nofail,
  comment=, x-*, relatime, norelatime, strictatime, nostrictatime, nodiratime,
  lazytime, nolazytime

Examples
  sgfs --list
  sgfs all /mnt/sg -o allow_other
  sgfs sg1,wwn-0x5000c500a1b2c3d4 /mnt/sg -o io=mmap,reserve=4m,queue_depth=8
  dd if=/mnt/sg/sg1 of=/dev/null bs=1M
  cat /mnt/sg/.stats; getfattr -d /mnt/sg/sg1
  fstab: all /mnt/sg fuse.sgfs io=auto,allow_other,_netdev,nofail 0 0
  umount /mnt/sg    (or: fusermount3 -u /mnt/sg)
)";
}

std::string version_text()
{
    return std::string("sgfs ") + SGFS_VERSION + " (libfuse " + fuse_pkgversion() + ")\n";
}

} // namespace sgfs::fusefs
