#!/bin/bash
# Guest suite: capacity changes (issue 16) through the sgfs mount, on scsi_debug. Writing
# its virtual_gb changes the capacity every device reports and sets CAPACITY DATA HAS
# CHANGED (06/2A/09) on each of them (scsi_debug.c, virtual_gb_store); the first command
# to reach the device gets it. sgfs's command meets it, reads the capacity again, and the
# file's size follows. The oracle is the sd device read with O_DIRECT, rescanned only after
# sgfs has met the attention: the attention is the device's, once, for whichever of sd
# and sg sends the next command.
#   dev_size_mb=16, virtual_gb=0: 16 MiB; virtual_gb=1: 1 GiB, LBAs past 16 MiB wrap
#   onto the same store (so a write past the old end also shows at its offset modulo
#   16 MiB, on sd as on sgfs); back to virtual_gb=0: 16 MiB again.
#   usage (inside the guest, via vm-run --no-scsi-debug): capacity.sh BUILD_DIR
set -u
build=${1:?usage: capacity.sh BUILD_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../guest-lib.sh
. "$here/guest-lib.sh"

cmake --install "$build" --prefix /usr/local >/dev/null
mnt=/mnt/sg
mkdir -p "$mnt"
work=$(mktemp -d)
virtual_gb=/sys/bus/pseudo/drivers/scsi_debug/virtual_gb
mib=$((1 << 20))
small=$((16 * mib)) big=$((1 << 30))

sdebug_reload add_host=1 dev_size_mb=16 delay=0 virtual_gb=0 || exit 1
read -r hctl sg sd < <(sdebug_devices)
name=${sg#/dev/}
file=$mnt/$name
head -c $((4 * mib)) /dev/urandom >"$work/pattern"
for i in 0 1 2 3; do cat "$work/pattern"; done | dd of="$sd" bs=1M oflag=direct status=none
mount -t fuse.sgfs "$sg" "$mnt" || exit 1
check "at mount st_size is 16 MiB" test "$(stat -c %s "$file")" = $small

# One read through sgfs (O_DIRECT: no page cache in the way): its command meets the
# attention. Then st_size, within 2 s.
touch_disk() { dd if="$file" of=/dev/null bs=4k count=1 iflag=direct status=none; }
size_becomes() {
	local i
	for ((i = 0; i < 20; i++)); do
		[[ $(stat -c %s "$file") == "$1" ]] && return 0
		sleep 0.1
	done
	echo "st_size $(stat -c %s "$file"), wanted $1"
	return 1
}
rescan_sd() { echo 1 >"/sys/class/scsi_device/$hctl/device/rescan"; }

# --- grow -------------------------------------------------------------------------------
echo 1 >"$virtual_gb"
touch_disk
check "after the grow st_size follows (1 GiB)" size_becomes $big
check ".stats: one capacity change" test "$(sgfs_stat "$mnt" "$name" capacity_changes)" = 1
check ".stats: capacity_bytes is the new size" \
	test "$(sgfs_stat "$mnt" "$name" capacity_bytes)" = $big
# Past the old end: 1 MiB at 16 MiB + 64 KiB and 1 MiB just below the new end.
head -c $mib /dev/urandom >"$work/chunk"
for at in $((small + 65536)) $((big - mib)); do
	check "a write of 1 MiB at $at (past the old end) works" \
		dd if="$work/chunk" of="$file" bs=1M seek=$at oflag=seek_bytes conv=notrunc,fsync \
		status=none
	check "reading it back through sgfs gives it" \
		cmp "$work/chunk" <(dd if="$file" bs=1M skip=$at count=1 iflag=skip_bytes,direct \
			status=none)
done
rescan_sd
check "sd, rescanned, says 1 GiB" test "$(blockdev --getsize64 "$sd")" = $big
check "sd read with O_DIRECT past the old end holds what sgfs wrote" \
	cmp "$work/chunk" <(dd if="$sd" bs=1M skip=$((big - mib)) count=1 iflag=skip_bytes,direct \
		status=none)

# --- shrink -----------------------------------------------------------------------------
echo 0 >"$virtual_gb"
touch_disk
check "after the shrink st_size follows (16 MiB)" size_becomes $small
check ".stats: two capacity changes" test "$(sgfs_stat "$mnt" "$name" capacity_changes)" = 2
err=$(dd if="$work/chunk" of="$file" bs=4k count=1 seek=$small oflag=seek_bytes conv=notrunc \
	status=none 2>&1)
rc=$?
diag "write at the new end: rc $rc: $err"
check "a write at the new end fails with ENOSPC" test $rc != 0 -a "${err#*No space left on device}" != "$err"
err=$(dd if="$work/chunk" of="$file" bs=4k count=1 seek=$((small + 8 * mib)) oflag=seek_bytes \
	conv=notrunc status=none 2>&1)
check "a write past the new end fails with ENOSPC" test "${err#*No space left on device}" != "$err"
check "a read at the new end reads nothing" \
	test "$(dd if="$file" bs=4k skip=$small count=1 iflag=skip_bytes,direct status=none | wc -c)" = 0
rescan_sd
check "sd, rescanned, says 16 MiB" test "$(blockdev --getsize64 "$sd")" = $small
check "the data below the new end is intact: sgfs reads what sd reads with O_DIRECT" \
	cmp <(dd if="$file" bs=1M iflag=direct status=none) <(dd if="$sd" bs=1M iflag=direct status=none)

# --- grown while idle: sd sees it first --------------------------------------------------
# Nothing reads or writes through sgfs: sd's rescan takes the attention and announces the
# new size with a "change" uevent, which sgfs's listener turns into a capacity re-read.
echo 1 >"$virtual_gb"
rescan_sd
check "grown while sgfs is idle, sd rescanned: st_size follows from the uevent (1 GiB)" \
	size_becomes $big
check ".stats: three capacity changes" test "$(sgfs_stat "$mnt" "$name" capacity_changes)" = 3
echo 0 >"$virtual_gb"
rescan_sd
check "and back (16 MiB), again with no IO through sgfs" size_becomes $small
diag ".stats: $(grep -E '^ *(capacity_|errors.unit_attention|errors.lba)' "$mnt/.stats" | tr -s ' ' | tr '\n' ';')"
sgfs_umount "$mnt"
rm -rf "$work"
