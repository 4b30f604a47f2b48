#!/bin/bash
# Guest side of bench/offload: a disk-to-disk copy between two LIO fileio LUNs of one
# tcm_loop target (issue 13): sgfs with EXTENDED COPY offload (copy_file_range over the
# whole file, and `cp`, which zeroes the destination first for O_TRUNC), sgfs without it
# (nocopy_offload), sg_xcopy, sg_dd with direct IO on both sides and dd O_DIRECT between
# the sd devices. For each: seconds, MB/s, the CPU seconds of the tool and the sgfs daemon
# (process CPU), and the whole guest's busy CPU seconds (which includes LIO's own work:
# here the target runs on the same machine, on a SAN it would not), and the
# offload counters. Every result is checked against the source's backing file (cmp,
# untimed). Not meant to be run by hand; see bench/offload.
set -u
build=${1:?usage: guest-offload.sh BUILD_DIR [RUNS]}
runs=${2:-3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../tests/vm/guest-lib.sh source-path=SCRIPTDIR
. "$here/tests/vm/guest-lib.sh"
cmake --install "$build" --prefix /usr/local >/dev/null
sparse=$build/tests/vm/vm_sparse
mnt=/mnt/sg
mkdir -p "$mnt"
size_mb=256
size=$((size_mb << 20))
set_allow_dio 1
lio_setup src:${size_mb}M dst:${size_mb}M >/dev/null || exit 1
read -r _ sga sda filea < <(lio_devices | sed -n 1p)
read -r _ sgb sdb fileb < <(lio_devices | sed -n 2p)
dd if=/dev/urandom of="$sda" bs=1M count=$size_mb oflag=direct status=none
sync

stat_of() { awk -v key="$1" '$1 == key { s += $2 } END { print s + 0 }' "$mnt/.stats" 2>/dev/null || echo 0; }
# Busy jiffies of the whole guest (user+nice+system+irq+softirq), and of a process tree.
guest_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
daemon_cpu() {
	local pid
	pid=$(pgrep -x sgfs | head -1)
	[ -n "$pid" ] && awk '{ print $14 + $15 }' "/proc/$pid/stat" || echo 0
}
hz=$(getconf CLK_TCK)
timing=$(mktemp)

# row TOOL RUN -- COMMAND...: times COMMAND (its own CPU from /usr/bin/time).
row() {
	local tool=$1 run=$2 t0 t1 b0 b1 d0 d1 c0 c1 o0 o1 tool_cpu check
	shift 3
	b0=$(guest_busy) d0=$(daemon_cpu) o0=$(stat_of offload.bytes) c0=$(stat_of offload.commands)
	t0=$EPOCHREALTIME
	/usr/bin/time -o "$timing" -f '%U %S' "$@" >/dev/null 2>&1
	tool_cpu=$(tail -1 "$timing")
	t1=$EPOCHREALTIME
	b1=$(guest_busy) d1=$(daemon_cpu) o1=$(stat_of offload.bytes) c1=$(stat_of offload.commands)
	cmp -n "$size" <(dd if="$sdb" bs=1M iflag=direct status=none) "$filea" >/dev/null && check=ok || check=DIFFERS
	awk -v tool="$tool" -v run="$run" -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
		-v cpu="$tool_cpu" -v dcpu=$((d1 - d0)) -v busy=$((b1 - b0)) -v hz="$hz" -v mb="$size_mb" \
		-v ob=$((o1 - o0)) -v oc=$((c1 - c0)) -v check="$check" 'BEGIN {
		split(cpu, c, " "); proc = c[1] + c[2] + dcpu / hz
		printf "| %s | %d | %.2f | %.0f | %.2f | %.2f | %d | %d | %s |\n",
			tool, run, t, mb / t, proc * 1024 / mb, busy / hz * 1024 / mb, ob, oc, check }'
}
scrub() { dd if=/dev/zero of="$sdb" bs=1M count=16 oflag=direct status=none; }

echo "| copy of ${size_mb} MiB, LIO LUN to LUN | run | seconds | MB/s | process CPU s/GiB (tool + sgfs) | guest busy CPU s/GiB | offload.bytes | offload.commands | cmp |"
echo "|---|---|---|---|---|---|---|---|---|"
for ((run = 1; run <= runs; run++)); do
	mount -t fuse.sgfs "$sga,$sgb" "$mnt" -o io=auto || exit 1
	fa=$mnt/${sga#/dev/} fb=$mnt/${sgb#/dev/}
	scrub
	row "sgfs copy_file_range (offload)" "$run" -- "$sparse" copy "$fa" "$fb"
	scrub
	row "sgfs cp (offload; O_TRUNC zeroes the destination first)" "$run" -- cp "$fa" "$fb"
	sgfs_umount "$mnt"
	mount -t fuse.sgfs "$sga,$sgb" "$mnt" -o io=auto,nocopy_offload || exit 1
	scrub
	row "sgfs copy_file_range (nocopy_offload)" "$run" -- "$sparse" copy "$fa" "$fb"
	sgfs_umount "$mnt"
	scrub
	row "sg_xcopy bs=512" "$run" -- sg_xcopy if="$sga" of="$sgb" bs=512 count=$((size_mb << 11))
	scrub
	row "sg_dd bpt=2048 dio both sides" "$run" -- \
		sg_dd if="$sga" of="$sgb" bs=512 bpt=2048 count=$((size_mb << 11)) iflag=dio oflag=dio
	scrub
	row "dd bs=1M O_DIRECT sd to sd" "$run" -- \
		dd if="$sda" of="$sdb" bs=1M count=$size_mb iflag=direct oflag=direct status=none
done
lio_teardown
