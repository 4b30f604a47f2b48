#!/bin/bash
# Guest side of bench/sparse-cp: the cost of a sparse `cp` onto an sgfs disk file, where
# O_TRUNC makes sgfs zero the disk first (Disk::zero_range). For a thick and a thin
# (lbpu=1 lbpws=1 lbprz=1) scsi_debug disk of 256 MiB: `cp --sparse=auto` of a 64 MiB
# image with 10% data, against two anchors that write the whole image without zeroing
# anything: sg_dd to the sg node, and dd conv=notrunc through sgfs; and the zeroing alone
# (truncate -s 0) next to what host-written zeros cost (dd if=/dev/zero conv=notrunc, the
# fallback of a device without WRITE SAME). Prints markdown rows
# (seconds, the .stats zero counters of that one command) and checks each result against
# sd read with O_DIRECT (untimed). Not meant to be run by hand; see bench/sparse-cp.
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

size_mb=256 image_mb=64
capacity=$((size_mb << 20))
# 32 pieces of 208 KiB at 2 MiB strides: 6.5 MiB of data in 64 MiB (10%).
truncate -s "${image_mb}M" "$work/image"
head -c $((32 * 208 << 10)) /dev/urandom >"$work/data"
for ((i = 0; i < 32; i++)); do
	dd if="$work/data" of="$work/image" bs=208K skip="$i" count=1 oflag=seek_bytes \
		seek=$((i << 21)) conv=notrunc status=none
done
cp "$work/image" "$work/padded"
truncate -s "$capacity" "$work/padded"
# The disk starts full of other bytes: 4 MiB of noise, repeated.
head -c $((4 << 20)) /dev/urandom >"$work/noise4"
for ((i = 0; i < size_mb / 4; i++)); do cat "$work/noise4"; done >"$work/noise"

stat_of() { awk -v key="$1" '$1 == key { print $2 }' "$mnt/.stats"; }
counters() { echo "$(stat_of zero.write_same_unmap_commands) $(stat_of zero.write_same_commands) $(stat_of zero.host_bytes) $(stat_of zero.fallbacks)"; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# row KIND TOOL RUN SECONDS BEFORE AFTER CHECK
row() {
	local -a b a
	read -ra b <<<"$5"
	read -ra a <<<"$6"
	printf '| %s | %s | %s | %.2f | %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" \
		$((a[0] - b[0])) $((a[1] - b[1])) $((a[2] - b[2])) $((a[3] - b[3])) "$7"
}

verify() {
	local length=$1
	dd if="$sd" of="$work/back" bs=1M iflag=direct status=none &&
		cmp -n "$length" "$work/padded" "$work/back" >/dev/null && echo ok || echo DIFFERS
}

zeros() {
	dd if="$sd" of="$work/back" bs=1M iflag=direct status=none &&
		cmp -n "$capacity" "$work/back" /dev/zero >/dev/null && echo ok || echo DIFFERS
}

measure() {
	local kind=$1 sg sd file run t0 t1 before after
	shift
	sdebug_reload add_host=1 dev_size_mb=$size_mb delay=0 "$@" || exit 1
	sg=$(sdebug_sg_nodes) sd=$(sdebug_block_nodes)
	echo 1024 >"/sys/block/${sd#/dev/}/queue/max_sectors_kb"
	file=$mnt/${sg#/dev/}
	mount -t fuse.sgfs "$sg" "$mnt" -o io=auto || exit 1
	for ((run = 1; run <= runs; run++)); do
		dd if="$work/noise" of="$sd" bs=1M oflag=direct status=none
		before=$(counters) t0=$(now)
		cp --sparse=auto "$work/image" "$file"
		t1=$(now) after=$(counters)
		row "$kind" "cp --sparse=auto (sgfs)" "$run" "$(elapsed "$t0" "$t1")" "$before" "$after" \
			"$(verify "$capacity")"

		dd if="$work/noise" of="$sd" bs=1M oflag=direct status=none
		before=$(counters) t0=$(now)
		dd if="$work/image" of="$file" bs=1M conv=notrunc,fsync status=none
		t1=$(now) after=$(counters)
		row "$kind" "dd conv=notrunc bs=1M, whole image (sgfs)" "$run" "$(elapsed "$t0" "$t1")" \
			"$before" "$after" "$(verify $((image_mb << 20)))"

		dd if="$work/noise" of="$sd" bs=1M oflag=direct status=none
		before=$(counters) t0=$(now)
		truncate -s 0 "$file"
		t1=$(now) after=$(counters)
		row "$kind" "truncate -s 0: the whole disk zeroed (sgfs)" "$run" "$(elapsed "$t0" "$t1")" \
			"$before" "$after" "$(zeros)"

		dd if="$work/noise" of="$sd" bs=1M oflag=direct status=none
		before=$(counters) t0=$(now)
		dd if=/dev/zero of="$file" bs=1M count=$size_mb conv=notrunc,fsync status=none
		t1=$(now) after=$(counters)
		row "$kind" "dd if=/dev/zero conv=notrunc bs=1M, whole disk: zeros from the host (sgfs)" \
			"$run" "$(elapsed "$t0" "$t1")" "$before" "$after" "$(zeros)"

		dd if="$work/noise" of="$sd" bs=1M oflag=direct status=none
		before=$(counters) t0=$(now)
		sg_dd if="$work/image" of="$sg" bs=512 bpt=2048 count=$((image_mb << 11)) sync=1 2>/dev/null
		t1=$(now) after=$(counters)
		row "$kind" "sg_dd bpt=2048, whole image (sg node)" "$run" "$(elapsed "$t0" "$t1")" \
			"$before" "$after" "$(verify $((image_mb << 20)))"
	done
	sgfs_umount "$mnt"
}

echo "| disk | writer | run | seconds | zero.write_same_unmap_commands | zero.write_same_commands | zero.host_bytes | zero.fallbacks | sd O_DIRECT |"
echo "|---|---|---|---|---|---|---|---|---|"
measure thick
measure "thin (lbpu=1 lbpws=1 lbprz=1 unmap_granularity=8)" lbpu=1 lbpws=1 lbprz=1 unmap_granularity=8
