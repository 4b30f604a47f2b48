#!/bin/bash
# Guest side of bench/sparse-cp: what sparse writers, hole punching and sparse disk-to-disk
# copies cost on sgfs (issues 11 and 12), on a thick and a thin (lbpu=1 lbpws=1 lbprz=1)
# pair of 256 MiB scsi_debug disks:
#   - `cp --sparse=auto` of a 256 MiB image with 10% data onto a disk (O_TRUNC zeroes the
#     disk first: Disk::zero_range), against anchors that write the whole image (sg_dd to
#     the sg node, dd conv=notrunc through sgfs) and dd conv=sparse on the sd device (which
#     skips the zeros and so leaves the old data in the holes: its check says so);
#   - punching the whole disk (fallocate -p), truncate -s 0, host-written zeros;
#   - disk to disk with a 90% unmapped source: `cp` between two sgfs files
#     (copy_file_range, sparse where the source reports holes) against sg_dd between the sg
#     nodes and dd conv=sparse between the sd devices.
# Prints markdown rows (seconds and the .stats zero counters of that one command) and
# checks each result against sd read with O_DIRECT (untimed). Not meant to be run by hand;
# see bench/sparse-cp.
set -u
build=${1:?usage: guest-sparse-cp.sh BUILD_DIR [RUNS]}
runs=${2:-3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../tests/vm/guest-lib.sh source-path=SCRIPTDIR
. "$here/tests/vm/guest-lib.sh"
cmake --install "$build" --prefix /usr/local >/dev/null
mnt=/mnt/sg
mkdir -p "$mnt"
work=$(mktemp -d)

size_mb=256
capacity=$((size_mb << 20))
# 128 pieces of 208 KiB at 2 MiB strides: 26 MiB of data in 256 MiB (10%).
truncate -s "${size_mb}M" "$work/image"
head -c $((128 * 208 << 10)) /dev/urandom >"$work/data"
for ((i = 0; i < 128; i++)); do
	dd if="$work/data" of="$work/image" bs=208K skip="$i" count=1 oflag=seek_bytes \
		seek=$((i << 21)) conv=notrunc status=none
done
# The disks start full of other bytes: 4 MiB of noise, repeated.
head -c $((4 << 20)) /dev/urandom >"$work/noise4"
for ((i = 0; i < size_mb / 4; i++)); do cat "$work/noise4"; done >"$work/noise"

counter_keys=(zero.write_same_unmap_commands zero.write_same_commands zero.unmap_commands
	zero.host_bytes zero.copy_hole_bytes zero.fallbacks)
stat_of() { awk -v key="$1" '$1 == key { s += $2 } END { print s + 0 }' "$mnt/.stats"; }
counters() {
	local key
	for key in "${counter_keys[@]}"; do printf '%s ' "$(stat_of "$key")"; done
}
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# row KIND TOOL RUN SECONDS BEFORE AFTER CHECK
row() {
	local -a b a
	local i deltas=''
	read -ra b <<<"$5"
	read -ra a <<<"$6"
	for ((i = 0; i < ${#counter_keys[@]}; i++)); do deltas+=" $((a[i] - b[i])) |"; done
	printf '| %s | %s | %s | %.2f |%s %s |\n' "$1" "$2" "$3" "$4" "$deltas" "$7"
}

# same_as SD FILE: the disk reads (O_DIRECT) as FILE does.
same_as() {
	dd if="$1" of="$work/back" bs=1M iflag=direct status=none &&
		cmp "$2" "$work/back" >/dev/null && echo ok || echo DIFFERS
}
# leaves_old SD: dd conv=sparse skipped the zeros, so the disk is not the image (expected).
leaves_old() {
	[ "$(same_as "$1" "$work/image")" = ok ] && echo "ok (same as image)" || echo "n/a: old data left in holes"
}
zeros() {
	dd if="$1" of="$work/back" bs=1M iflag=direct status=none &&
		cmp -n "$capacity" "$work/back" /dev/zero >/dev/null && echo ok || echo DIFFERS
}
noise() { dd if="$work/noise" of="$1" bs=1M oflag=direct status=none; }

# timed KIND TOOL RUN CHECK-COMMAND... -- COMMAND...: one row for COMMAND.
timed() {
	local kind=$1 tool=$2 run=$3 before after t0 t1
	shift 3
	local -a check=()
	while [ "$1" != -- ]; do check+=("$1"); shift; done
	shift
	before=$(counters) t0=$(now)
	"$@"
	t1=$(now) after=$(counters)
	row "$kind" "$tool" "$run" "$(elapsed "$t0" "$t1")" "$before" "$after" "$("${check[@]}")"
}

measure() {
	local kind=$1 run a b sda sdb fa fb
	shift
	sdebug_reload add_host=2 per_host_store=1 dev_size_mb=$size_mb delay=0 "$@" || exit 1
	read -r a b < <(sdebug_sg_nodes | paste -sd' ')
	read -r sda sdb < <(sdebug_block_nodes | paste -sd' ')
	echo 1024 >"/sys/block/${sda#/dev/}/queue/max_sectors_kb"
	echo 1024 >"/sys/block/${sdb#/dev/}/queue/max_sectors_kb"
	fa=$mnt/${a#/dev/} fb=$mnt/${b#/dev/}
	mount -t fuse.sgfs "$a,$b" "$mnt" -o io=auto || exit 1
	for ((run = 1; run <= runs; run++)); do
		noise "$sda"
		timed "$kind" "cp --sparse=auto image (sgfs)" "$run" same_as "$sda" "$work/image" -- \
			cp --sparse=auto "$work/image" "$fa"
		noise "$sda"
		timed "$kind" "dd conv=notrunc bs=1M, whole image (sgfs)" "$run" same_as "$sda" "$work/image" -- \
			dd if="$work/image" of="$fa" bs=1M conv=notrunc,fsync status=none
		noise "$sda"
		timed "$kind" "sg_dd bpt=2048, whole image (sg node)" "$run" same_as "$sda" "$work/image" -- \
			sg_dd if="$work/image" of="$a" bs=512 bpt=2048 count=$((size_mb << 11)) sync=1 2>/dev/null
		noise "$sda"
		timed "$kind" "dd conv=sparse,notrunc bs=1M oflag=direct (sd device)" "$run" leaves_old "$sda" -- \
			dd if="$work/image" of="$sda" bs=1M conv=sparse,notrunc,fsync oflag=direct status=none
		noise "$sda"
		timed "$kind" "fallocate -p, whole disk (sgfs)" "$run" zeros "$sda" -- \
			fallocate -p -o 0 -l "$capacity" "$fa"
		noise "$sda"
		timed "$kind" "truncate -s 0: the whole disk zeroed (sgfs)" "$run" zeros "$sda" -- \
			truncate -s 0 "$fa"
		noise "$sda"
		timed "$kind" "dd if=/dev/zero conv=notrunc bs=1M, whole disk: zeros from the host (sgfs)" \
			"$run" zeros "$sda" -- \
			dd if=/dev/zero of="$fa" bs=1M count=$size_mb conv=notrunc,fsync status=none

		# Disk to disk: the source holds the image as cp leaves it (holes unmapped where
		# the disk is thin), the destination starts full of noise.
		cp --sparse=auto "$work/image" "$fa"
		noise "$sdb"
		timed "$kind" "cp disk to disk, 90% unmapped source (sgfs copy_file_range)" "$run" \
			same_as "$sdb" "$work/image" -- cp --sparse=auto "$fa" "$fb"
		noise "$sdb"
		timed "$kind" "sg_dd bpt=2048 disk to disk (sg nodes)" "$run" same_as "$sdb" "$work/image" -- \
			sg_dd if="$a" of="$b" bs=512 bpt=2048 sync=1 2>/dev/null
		noise "$sdb"
		timed "$kind" "dd conv=sparse bs=1M direct disk to disk (sd devices)" "$run" leaves_old "$sdb" -- \
			dd if="$sda" of="$sdb" bs=1M conv=sparse,notrunc,fsync iflag=direct oflag=direct status=none
	done
	sgfs_umount "$mnt"
}

header="| disk | writer | run | seconds |"
rule="|---|---|---|---|"
for key in "${counter_keys[@]}"; do header+=" $key |" rule+="---|"; done
echo "$header sd O_DIRECT |"
echo "$rule---|"
measure thick
measure "thin (lbpu=1 lbpws=1 lbprz=1 unmap_granularity=8)" lbpu=1 lbpws=1 lbprz=1 unmap_granularity=8
