#!/bin/bash
# Guest suite: the rules of write-behind (issue 14) on real targets, each against an oracle
# sgfs did not write.
#  - What fsync acknowledged is on the disk: the daemon is killed (SIGKILL) right after
#    fsync returns, before close; the scsi_debug disk read through sd with O_DIRECT must
#    hold every byte. Every command takes 2 ms (ndelay), so writes are still in flight
#    when fsync is called. (That fsync waits for them is proven where completions can be
#    held back: tests/unit/test_engine_write_behind.cpp. Here the kernel would finish
#    commands a killed daemon left behind anyway.)
#  - A write that fails on the device after it was acknowledged is reported at the file's
#    next write and again at its fsync or close (the kernel may drop a later piece's error
#    of one write(2) as a short count): a LIO iblock LUN over a device-mapper table with an
#    "error" segment (512 KiB at 8 MiB) fails the WRITE there, as a disk with a bad region
#    does; with nowrite_behind the failing write(2) itself reports it. The bytes around the
#    bad region are checked on the dm device read with O_DIRECT.
# io=mmap (the data copied into the mmap area) and io=direct (FUSE's request buffer kept with
# its commands) both write behind; the fault part runs io=mmap.
#   usage (inside the guest, via vm-run --no-scsi-debug): writebehind.sh BUILD_DIR
set -u
build=${1:?usage: writebehind.sh BUILD_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../guest-lib.sh
. "$here/guest-lib.sh"

cmake --install "$build" --prefix /usr/local >/dev/null
writer=$build/tests/vm/vm_write_behind
mnt=/mnt/sg
mkdir -p "$mnt"
work=$(mktemp -d)
mib=$((1 << 20))

# outcome FILE CALL: what CALL ("fsync", "close", "write 3 at 4194304") returned, from
# vm_write_behind's output in FILE.
outcome() { awk -v call="$2" 'index($0, call ": ") == 1 { print substr($0, length(call) + 3) }' "$1"; }
# failures FILE: how many calls failed, and the first ("2 write 5 at 9437184").
failures() { sed -n 's/^failures=\([0-9]*\) first=\(.*\)$/\1 \2/p' "$1"; }

# --- SIGKILL after fsync (scsi_debug) ----------------------------------------------------
sdebug_reload add_host=1 dev_size_mb=64 ndelay=2000000 || exit 1
read -r _ sg sd < <(sdebug_devices)
name=${sg#/dev/}
file=$mnt/$name
# io=direct's commands run by DMA from sgfs's memory: the driver must allow it, and 1 MiB
# commands need max_sectors_kb raised.
set_allow_dio 1 || exit 1
echo 1024 >"/sys/block/${sd#/dev/}/queue/max_sectors_kb"
head -c $((32 * mib)) /dev/urandom >"$work/first"
head -c $((32 * mib)) /dev/urandom >"$work/second"

# kill_after_fsync MODE: the writes of io=MODE, then the SIGKILL right after fsync.
kill_after_fsync() {
	local mode=$1
	mount -t fuse.sgfs "$sg" "$mnt" -o "io=$mode" || return 1
	"$writer" "$file" "$work/first" 0 $mib fsync >"$work/out.first"
	check "io=$mode: 32 MiB in 1 MiB writes, fsync and close: no call failed" \
		test "$(failures "$work/out.first")" = "0 -"
	diag "$(awk -v dev="device $name" '$0 == dev { d = 1; next } /^device / { d = 0 } d && /write|mode|path/' "$mnt/.stats" | tr -s ' \n' ' ')"
	check "io=$mode: .stats: the writes were acknowledged behind (write_behind.writes > 0)" \
		test "$(sgfs_stat "$mnt" "$name" write_behind.writes)" -gt 0
	check "io=$mode: sd read with O_DIRECT holds them" \
		cmp "$work/first" <(dd if="$sd" bs=1M count=32 iflag=direct status=none)
	if [ "$mode" = direct ]; then
		# Behind from FUSE's request buffer, kept with its commands: nothing copied.
		check "io=direct: behind with no copy (write.user_copy_bytes 0, sg_copy_bytes 0)" \
			test "$(sgfs_stat "$mnt" "$name" write.user_copy_bytes) $(sgfs_stat "$mnt" "$name" write.sg_copy_bytes)" = "0 0"
	fi

	local daemon
	daemon=$(pgrep -xn sgfs)
	"$writer" "$file" "$work/second" 0 $mib fsync-kill "$daemon" >"$work/out.second"
	diag "$(tr '\n' ' ' <"$work/out.second" | grep -o 'fsync: [^ ]*.*')"
	check "io=$mode: again, then SIGKILL to the daemon right after fsync returned 0" \
		test "$(outcome "$work/out.second" fsync)" = ok
	for ((i = 0; i < 50; i++)); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
	check "io=$mode: the daemon is gone" bash -c "! kill -0 $daemon 2>/dev/null"
	umount -l "$mnt" 2>/dev/null
	check "io=$mode: sd read with O_DIRECT holds all 32 MiB that fsync acknowledged" \
		cmp "$work/second" <(dd if="$sd" bs=1M count=32 iflag=direct status=none)
	# The next mode starts from other data.
	mv "$work/first" "$work/swap" && mv "$work/second" "$work/first" && mv "$work/swap" "$work/second"
}
# io=mmap copies the data into the mmap area; io=direct keeps FUSE's request buffer.
kill_after_fsync mmap || exit 1
kill_after_fsync direct || exit 1

# --- a WRITE that fails on the device (LIO iblock over dm with an error segment) ---------
if ! command -v dmsetup >/dev/null || ! modprobe dm-mod 2>/dev/null; then
	skip_check "a write failing on the device" "no dmsetup or dm-mod in the guest"
	exit 0
fi
modprobe loop
truncate -s $((64 * mib)) "$work/backing"
loop=$(losetup -f --show "$work/backing") || exit 1
# 512-byte sectors: 8 MiB good, 512 KiB that fail every IO, the rest good.
bad_at=$((8 * mib)) bad_len=$((512 << 10))
{
	echo "0 $((bad_at / 512)) linear $loop 0"
	echo "$((bad_at / 512)) $((bad_len / 512)) error"
	echo "$(((bad_at + bad_len) / 512)) $(((64 * mib - bad_at - bad_len) / 512)) linear $loop $(((bad_at + bad_len) / 512))"
} | dmsetup create --noudevsync sgfs_bad || exit 1
# No udev in the guest: the node devtmpfs made (dm-N), not /dev/mapper's link.
dm=/dev/$(dmsetup info -c --noheadings -o blkdevname sgfs_bad) || exit 1
lio_setup "bad:64M:iblock=$dm" || exit 1
read -r _ sg _ _ < <(lio_devices)
name=${sg#/dev/}
file=$mnt/$name
# what the dm device holds from OFFSET for LENGTH bytes (O_DIRECT: not the page cache)
dm_bytes() { dd if="$dm" bs=64k skip=$(($1 / 65536)) count=$(($2 / 65536)) iflag=direct status=none; }

head -c $((8 * mib)) /dev/urandom >"$work/eight"
mount -t fuse.sgfs "$sg" "$mnt" -o io=mmap || exit 1
# 4 MiB .. 12 MiB in 1 MiB writes: write 4 covers the bad region.
"$writer" "$file" "$work/eight" $((4 * mib)) $mib fsync >"$work/out.fsync"
diag "$(grep -v ': ok$' "$work/out.fsync" | tr '\n' ' ')"
read -r count first < <(failures "$work/out.fsync")
check "write-behind: fsync reports the device's failure (EIO)" \
	test "$(outcome "$work/out.fsync" fsync)" = "Input/output error"
check "write-behind: and at most one write before it did" test "$count" -le 2
late=0
case $first in
fsync) late=1 ;;
write*) n=${first#write } && ((${n%% *} > 4)) && late=1 ;;
esac
check "write-behind: nothing before a later call than the write that failed ($first)" \
	test $late = 1
check "write-behind: the write over the bad region returned 0 (acknowledged behind)" \
	test "$(outcome "$work/out.fsync" "write 4 at $bad_at")" = ok
check "write-behind: close after that fsync has nothing more to report" \
	test "$(outcome "$work/out.fsync" close)" = ok
check "write-behind: what was reported is EIO" \
	bash -c "grep -q ': Input/output error$' '$work/out.fsync'"
check ".stats: write_behind.deferred_errors is 1" \
	test "$(sgfs_stat "$mnt" "$name" write_behind.deferred_errors)" = 1
# Every write that returned 0 and lies outside the bad region is on the device (the call
# that reported the failure returned -1: it wrote nothing, as write(2) allows).
landed() {
	local out=$1 source=$2 base=$3 at ok=1
	while read -r at; do
		((at + mib <= bad_at || at >= bad_at + bad_len)) || continue
		cmp -s <(tail -c +$((at - base + 1)) "$source" | head -c $mib) <(dm_bytes "$at" $mib) ||
			{ ok=0; echo "the write at $at is not on the device"; }
	done < <(sed -n 's/^write [0-9]* at \([0-9]*\): ok$/\1/p' "$out")
	((ok))
}
check "every write answered 0 outside the bad region is on the device" \
	landed "$work/out.fsync" "$work/eight" $((4 * mib))

# 4 MiB from 5 MiB: the last write (write 3, at 8 MiB) covers the bad region and nothing
# follows but close: close reports it.
head -c $((4 * mib)) "$work/eight" >"$work/four"
"$writer" "$file" "$work/four" $((5 * mib)) $mib close >"$work/out.close"
diag "$(grep -v ': ok$' "$work/out.close" | tr '\n' ' ')"
check "write-behind: the bad region written last, without fsync: close reports EIO" \
	test "$(outcome "$work/out.close" close)" = "Input/output error"
check "write-behind: and nothing else failed" test "$(failures "$work/out.close")" = "1 close"
sgfs_umount "$mnt"

mount -t fuse.sgfs "$sg" "$mnt" -o io=mmap,nowrite_behind || exit 1
"$writer" "$file" "$work/eight" $((4 * mib)) $mib fsync >"$work/out.sync"
diag "$(grep -v ': ok$' "$work/out.sync" | tr '\n' ' ')"
check "nowrite_behind: the write that covers the bad region fails itself, with EIO" \
	test "$(outcome "$work/out.sync" "write 4 at $bad_at")" = "Input/output error"
check "nowrite_behind: and only it" test "$(failures "$work/out.sync")" = "1 write 4 at $bad_at"
check ".stats: nothing went behind" test "$(sgfs_stat "$mnt" "$name" write_behind.writes)" = 0
sgfs_umount "$mnt"

lio_teardown
dmsetup remove --noudevsync sgfs_bad
losetup -d "$loop"
rm -rf "$work"
