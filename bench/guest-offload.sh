#!/bin/bash
# Guest side of bench/offload: a disk-to-disk copy between two LIO fileio LUNs of one
# tcm_loop target (issue 13): sgfs with EXTENDED COPY offload (copy_file_range over the
# whole file, and `cp`, which zeroes the destination first for O_TRUNC), sgfs without it
# (nocopy_offload), sg_xcopy, sg_dd with direct IO on both sides and dd O_DIRECT between
# the sd devices; first over tcm_loop (the initiator in the target's own kernel, no
# transport), then over iSCSI on the guest's loopback (LIO's iscsi_target_mod, open-iscsi),
# where sg_dd's data crosses the iSCSI stack twice and EXTENDED COPY's stays in the target:
# what a SAN user sees. One unrecorded warm-up pass of every tool on each path comes before
# the measured runs (run 1 of the results before it was up to 3x slower than runs 2 and 3:
# the first writes allocate the destination's backing file in tmpfs). For each: seconds, MB/s, the CPU seconds of the tool and the sgfs daemon
# (process CPU), and the whole guest's busy CPU seconds (which includes LIO's own work:
# here the target runs on the same machine, on a SAN it would not), and the
# offload counters. Every result is checked: the destination's backing file against the
# source's (cmp, untimed). Not meant to be run by hand; see bench/offload.
set -u
build=${1:?usage: guest-offload.sh BUILD_DIR [RUNS] [SIZE_MB]}
runs=${2:-3}
size_mb=${3:-256}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../tests/vm/guest-lib.sh source-path=SCRIPTDIR
. "$here/tests/vm/guest-lib.sh"
cmake --install "$build" --prefix /usr/local >/dev/null
sparse=$build/tests/vm/vm_sparse
mnt=/mnt/sg
mkdir -p "$mnt"
size=$((size_mb << 20))
set_allow_dio 1
lio_setup "src:${size_mb}M" "dst:${size_mb}M" >/dev/null || exit 1
read -r _ sga sda filea < <(lio_devices | sed -n 1p)
read -r _ sgb sdb fileb < <(lio_devices | sed -n 2p)
python3 -c "import random
random.seed(13)
with open('$filea', 'r+b') as f:
    for _ in range($size_mb // 16 or 1):
        f.write(random.randbytes(min($size, 16 << 20)))" || exit 1

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

# row TOOL RUN -- COMMAND...: times COMMAND (its own CPU from /usr/bin/time); run 0 is the
# warm-up: done, not shown.
row() {
	local tool=$1 run=$2 t0 t1 b0 b1 d0 d1 c0 c1 o0 o1 tool_cpu check
	shift 3
	# .stats is read outside the measured window: generating it is the daemon's work too.
	o0=$(stat_of offload.bytes) c0=$(stat_of offload.commands)
	b0=$(guest_busy) d0=$(daemon_cpu)
	t0=$EPOCHREALTIME
	/usr/bin/time -o "$timing" -f '%U %S' "$@" >/dev/null 2>&1
	tool_cpu=$(tail -1 "$timing")
	t1=$EPOCHREALTIME
	b1=$(guest_busy) d1=$(daemon_cpu)
	o1=$(stat_of offload.bytes) c1=$(stat_of offload.commands)
	((run == 0)) && return
	cmp -n "$size" "$fileb" "$filea" >/dev/null && check=ok || check=DIFFERS
	awk -v path="$path" -v tool="$tool" -v run="$run" -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
		-v cpu="$tool_cpu" -v dcpu=$((d1 - d0)) -v busy=$((b1 - b0)) -v hz="$hz" -v mb="$size_mb" \
		-v ob=$((o1 - o0)) -v oc=$((c1 - c0)) -v check="$check" 'BEGIN {
		split(cpu, c, " "); proc = c[1] + c[2] + dcpu / hz
		printf "| %s | %s | %d | %.2f | %.0f | %.2f | %.2f | %d | %d | %s |\n",
			path, tool, run, t, mb / t, proc * 1024 / mb, busy / hz * 1024 / mb, ob, oc, check }'
}
scrub() { dd if=/dev/zero of="$sdb" bs=1M count=16 oflag=direct status=none; }

echo "| copy of ${size_mb} MiB, LIO LUN to LUN | path | run | seconds | MB/s | process CPU s/GiB (tool + sgfs) | guest busy CPU s/GiB | offload.bytes | offload.commands | cmp |"
echo "|---|---|---|---|---|---|---|---|---|---|"
# passes: every tool once per run on the path's nodes ($sga $sgb $sda $sdb), run 0 the warm-up.
passes() {
	local run fa fb
	for ((run = 0; run <= runs; run++)); do
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
}
path=tcm_loop
passes
# The same two LUNs over iSCSI on the loopback.
if command -v iscsid >/dev/null && lio_iscsi_export >&2; then
	read -r _ sga sda _ < <(lio_iscsi_devices | sed -n 1p)
	read -r _ sgb sdb _ < <(lio_iscsi_devices | sed -n 2p)
	path="iSCSI (loopback)"
	passes
	lio_iscsi_teardown
else
	echo "guest-offload.sh: no iSCSI path (open-iscsi missing, or the export failed)" >&2
	lio_iscsi_teardown
fi
lio_teardown
