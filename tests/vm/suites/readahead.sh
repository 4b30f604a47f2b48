#!/bin/bash
# Guest suite: sgfs's sequential read-ahead. Reads through sgfs at several sizes must equal
# the disk as the kernel's sd reads it with O_DIRECT; a write just ahead of a sequential
# reader (inside a window already read ahead) must be seen; concurrent readers still read
# the right data.
#   usage (inside the guest, via vm-run): readahead.sh BUILD_DIR
set -u
build=${1:?usage: readahead.sh BUILD_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../guest-lib.sh
. "$here/guest-lib.sh"

sgfs=$build/fusefs/sgfs
mnt=/mnt/ra
mkdir -p "$mnt"
work=$(mktemp -d)
size_mb=16

stat_of() { awk -v key="$1" '$1 == key { print $2; exit }' "$mnt/.stats"; }
# The disk as sd reads it, bypassing its page cache (sgfs writes behind sd's back).
snapshot() { dd if="$sd" of="$work/disk" bs=1M count=$size_mb iflag=direct status=none; }

sdebug_reload add_host=1 dev_size_mb=$size_mb delay=0
sg=$(sdebug_sg_nodes | head -n 1)
sd=$(sdebug_block_nodes | head -n 1)
name=$(basename "$sg")
set_allow_dio 1
# Windows as large as 1 MiB: the reserve is capped by max_sectors_kb (512 by default).
echo 1024 >"/sys/block/$(basename "$sd")/queue/max_sectors_kb"
head -c $((size_mb << 20)) /dev/urandom >"$work/image"
dd if="$work/image" of="$sd" bs=1M oflag=direct status=none
snapshot

for mode in auto mmap indirect; do
	check "io=$mode: mount" "$sgfs" "$sg" "$mnt" -o io=$mode,reserve=1M
	sizes=(8k 64k 1M 12345)
	# Indirect IO takes the same window path; its small sizes are enough.
	[ "$mode" = indirect ] && sizes=(8k 12345)
	for bs in "${sizes[@]}"; do
		check "io=$mode: sequential dd bs=$bs reads what sd reads" \
			cmp "$work/disk" <(dd if="$mnt/$name" bs="$bs" status=none)
		if [ "$bs" = 8k ]; then
			hits=$(stat_of readahead_hit_bytes)
			check "io=$mode: bs=8k was answered from read-ahead ($hits bytes)" test "${hits:-0}" -gt 0
		fi
	done
	sgfs_umount "$mnt"
done

mount_default() { check "$1: mount" "$sgfs" "$sg" "$mnt" -o reserve=1M; }

mount_default "write ahead of the reader"
check "writes just ahead of an 8 KiB sequential reader are read back" \
	"$build/tests/vm/vm_readahead_write" "$mnt/$name" $((8 << 20)) "$work/read"
hits=$(stat_of readahead_hit_bytes)
diag "readahead_hit_bytes after the writes: $hits"
snapshot
check "what that reader read equals sd's O_DIRECT view" \
	cmp "$work/read" <(head -c $((8 << 20)) "$work/disk")
sgfs_umount "$mnt"

mount_default "two readers"
half=$((size_mb / 2))
dd if="$mnt/$name" of="$work/first" bs=8k count=$((half * 128)) status=none &
first=$!
dd if="$mnt/$name" of="$work/second" bs=64k skip=$((half * 16)) status=none &
second=$!
wait $first && wait $second
check "two concurrent sequential readers: the first half is right" \
	cmp "$work/first" <(head -c $((half << 20)) "$work/disk")
check "two concurrent sequential readers: the second half is right" \
	cmp "$work/second" <(tail -c +$(((half << 20) + 1)) "$work/disk")
# Each reader is a stream of its own with its own windows, so more than one half comes from
# read-ahead (one stream for the disk would serve one reader at a time: about half). The
# first reader may hold every window for a while before the second gets its share, so how
# much more depends on scheduling (usually 97-99%, 73% once with two VMs on two cores).
hits=$(stat_of readahead_hit_bytes)
check "two concurrent sequential readers: both answered from read-ahead ($hits of $((size_mb << 20)) bytes)" \
	test "${hits:-0}" -gt $(((size_mb << 20) / 2))
before=$(stat_of readahead_bytes)
check "fio: 4 jobs of random 4 KiB reads" \
	fio --filename="$mnt/$name" --rw=randread --bs=4k --ioengine=psync --numjobs=4 \
	--size=$((size_mb << 20)) --io_size=2M --name=random --output="$work/fio.txt"
diag "read ahead during random reads: $(($(stat_of readahead_bytes) - before)) bytes"
sgfs_umount "$mnt"
