#!/bin/bash
# Guest side of a concurrency profile: how many commands the device has in flight while
# sgfs serves several requests at once, next to the same workload on /dev/sdX, and where
# the daemon's threads wait meanwhile. Run inside the VM with a device that takes time per
# command, e.g.
#   flock /tmp/sgfs-vm.lock tests/vm/vm-run --timeout 600 \
#       --scsi-debug "add_host=1 dev_size_mb=256 ndelay=1000000 per_host_store=1" \
#       -- bench/guest-profile-inflight.sh build [LABEL:BINARY:OPTIONS]...
# For each workload it prints the tool's own figure (fio IOPS, dd MB/s) and the samples
# (every 10 ms) of the device's outstanding commands (sysfs device_busy: what the SCSI
# midlayer has handed to scsi_debug, sg commands included) and of the FUSE connection's
# waiting requests (/sys/fs/fuse/connections/N/waiting); for sgfs also where the daemon's
# threads wait (their kernel wait channels, sampled), a perf profile of the first variant's
# 64 KiB random read, and the .stats keys that count commands in flight. Each
# LABEL:BINARY:OPTIONS is one sgfs variant (BINARY empty: BUILD_DIR's sgfs; OPTIONS for -o),
# all run in this one VM, so that their ratios compare; none: the build's sgfs as it is.
set -u
build=${1:?usage: guest-profile-inflight.sh BUILD_DIR [LABEL:BINARY:OPTIONS]...}
shift
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=("sgfs::")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../tests/vm/guest-lib.sh
. "$here/tests/vm/guest-lib.sh"
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd

{ read -r sg0; } < <(sdebug_sg_nodes)
{ read -r blk0; } < <(sdebug_block_nodes)
busy=/sys/class/scsi_generic/${sg0#/dev/}/device/device_busy
set_allow_dio 1 || exit 1
echo 2048 >"/sys/block/${blk0#/dev/}/queue/max_sectors_kb"
# The FUSE control file system (waiting, max_background per connection).
[ -d /sys/fs/fuse/connections ] && ! mountpoint -q /sys/fs/fuse/connections &&
	mount -t fusectl none /sys/fs/fuse/connections
work=$(mktemp -d)
mnt=$work/mnt
mkdir -p "$mnt"
runtime=${FIO_RUNTIME:-5}
p=/sys/bus/pseudo/drivers/scsi_debug
echo "# guest $(uname -r), $(nproc) vCPUs; scsi_debug ndelay=$(cat $p/ndelay) delay=$(cat $p/delay) max_queue=$(cat $p/max_queue); $sg0 = $blk0; queue_depth of $blk0: $(cat "/sys/block/${blk0#/dev/}/device/queue_depth")"
dd if=/dev/urandom of="$blk0" bs=1M count=128 oflag=direct status=none

# sampler NAME FILE...: samples the sum of the numbers in FILEs every 10 ms until
# $work/stop exists, then prints their distribution. Builtins only: no fork per sample.
sampler() {
	local name=$1 v total n=0 sum=0 max=0 k
	shift
	local -a hist=()
	while [ ! -e "$work/stop" ]; do
		total=0
		for f in "$@"; do
			read -r v <"$f" 2>/dev/null && total=$((total + v))
		done
		hist[total]=$((${hist[total]:-0} + 1))
		n=$((n + 1)) sum=$((sum + total))
		[ "$total" -gt "$max" ] && max=$total
		_gl_sleep 0.01
	done
	local line="  $name: $n samples, mean $((sum * 100 / (n ? n : 1)))/100, max $max;"
	for k in "${!hist[@]}"; do line+=" $k:${hist[k]}"; done
	echo "$line"
}
# wchan_sampler PID: every 50 ms, how many of PID's threads wait where (the FUSE device,
# an sg fd, a futex: a lock or condition variable, poll) or run, until $work/stop exists.
wchan_sampler() {
	local t w n=0 k line
	local -A count=()
	while [ ! -e "$work/stop" ]; do
		for t in /proc/"$1"/task/*; do
			# wchan has no newline: read fails at its end, with w set.
			w=''
			read -r w <"$t/wchan" 2>/dev/null
			[ -n "$w" ] || continue
			[ "$w" = 0 ] && w=running
			count[$w]=$((${count[$w]:-0} + 1))
		done
		n=$((n + 1))
		_gl_sleep 0.05
	done
	line="  daemon threads (mean per sample, hundredths) over $n samples:"
	for k in "${!count[@]}"; do line+=" $k=$((count[$k] * 100 / (n ? n : 1)))"; done
	echo "$line"
}
start_samplers() { # DAEMON_PID|'' FUSE connection dirs (may be none)
	local pid=$1
	shift
	rm -f "$work/stop"
	sampler "device_busy" "$busy" >"$work/s1" &
	S1=$!
	S2=''
	if [ $# -gt 0 ]; then
		sampler "fuse waiting" "${@/%//waiting}" >"$work/s2" &
		S2=$!
	fi
	S3=''
	if [ -n "$pid" ]; then
		wchan_sampler "$pid" >"$work/s3" &
		S3=$!
	fi
}
stop_samplers() {
	: >"$work/stop"
	wait "$S1" ${S2:+"$S2"} ${S3:+"$S3"}
	cat "$work/s1"
	[ -n "$S2" ] && cat "$work/s2"
	[ -n "$S3" ] && cat "$work/s3"
}

fio_run() { # LABEL FILE OPTION...
	local label=$1 file=$2
	shift 2
	fio --name=j --filename="$file" --size=128m --runtime="$runtime" --time_based \
		--group_reporting "$@" >"$work/fio.out" 2>&1
	echo "$label: $(grep -E '^ *(read|write):' "$work/fio.out" | head -n1 | sed 's/^ *//')"
}
randread64() { fio_run "$1" "$2" --rw=randread --bs=64k --ioengine=libaio --iodepth=8 --direct=1; }
randread4() { fio_run "$1" "$2" --rw=randread --bs=4k --ioengine=psync --direct=1 --numjobs="$3"; }
seqread() { # LABEL FILE
	echo "$1: $(dd if="$2" of=/dev/null bs=1M count=128 iflag=direct 2>&1 | tail -n1)"
}

# proc_ticks PID: its user+system CPU time so far, in clock ticks.
proc_ticks() {
	local f
	read -r -a f <"/proc/$1/stat"
	local rest=${f[*]}
	rest=${rest##*) }
	read -r -a f <<<"$rest"
	echo $((f[11] + f[12]))
}

# cpu_ticks: "busy total" jiffies of all CPUs so far, from /proc/stat's first line.
cpu_ticks() {
	local cpu user nice system idle iowait irq softirq steal rest
	read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
	echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

# workload NAME PID[:perf] CONNS... -- COMMAND...: the command with samplers around it (the
# daemon's threads too, with a PID); with :perf, under perf record of the whole guest, its
# profile by command and by symbol after.
workload() {
	local name=$1 pid=${2%:perf} how='' conns=()
	[[ $2 == *:perf ]] && how=perf
	shift 2
	while [ "$1" != -- ]; do
		conns+=("$1")
		shift
	done
	shift
	echo "## $name"
	start_samplers "$pid" "${conns[@]}"
	local b0 t0 b1 t1 P=''
	if [ "$how" = perf ]; then
		perf record -q -a -e cpu-clock -F 500 -o "$work/perf.data" -- sleep $((runtime + 3)) \
			>/dev/null 2>&1 &
		P=$!
	fi
	local d0=0 d1=0
	[ -n "$pid" ] && d0=$(proc_ticks "$pid")
	read -r b0 t0 < <(cpu_ticks)
	"$@"
	read -r b1 t1 < <(cpu_ticks)
	[ -n "$pid" ] && d1=$(proc_ticks "$pid")
	stop_samplers
	echo "  CPU busy (all $(nproc) vCPUs, samplers included): $(((b1 - b0) * 100 / (t1 - t0 ? t1 - t0 : 1)))%, of the wall time ($(((t1 - t0) / $(nproc))) ticks): daemon $((d1 - d0)) ticks"
	[ -r "$work/fio.out" ] && grep -E '^ *cpu *:' "$work/fio.out" | sed 's/^ */  fio /'
	rm -f "$work/fio.out"
	if [ -n "$P" ]; then
		wait "$P"
		echo "  perf, by command:"
		perf report -i "$work/perf.data" --stdio --no-children --sort comm --percent-limit 2 -q \
			2>/dev/null | sed '/^$/d; s/^/    /'
		echo "  perf, by symbol:"
		perf report -i "$work/perf.data" --stdio --no-children --sort comm,sym --percent-limit 1 -q \
			2>/dev/null | sed '/^$/d; s/^/    /' | head -40
	fi
}

echo "# baseline: $blk0 itself"
workload "fio randread 64k libaio depth 8 $blk0" '' -- randread64 "  $blk0" "$blk0"
workload "fio randread 4k psync numjobs=4 $blk0" '' -- randread4 "  $blk0 j4" "$blk0" 4
if [ -z "${SGFS_PROFILE_QUICK:-}" ]; then
	workload "dd bs=1M $blk0 iflag=direct" '' -- seqread "  $blk0" "$blk0"
	workload "fio sg engine 64k depth 1 $sg0" '' -- fio_run "  $sg0 (sg)" "$sg0" --rw=randread --bs=64k --ioengine=sg
fi

sgfs_round() { # LABEL:BINARY:OPTIONS FIRST
	local label bin opts pid conn f c i
	IFS=: read -r label bin opts <<<"$1"
	bin=${bin:-$build/fusefs/sgfs}
	echo "# $label: $bin $sg0 $mnt ${opts:+-o $opts}"
	"$bin" "$sg0" "$mnt" ${opts:+-o "$opts"} -f >"$work/sgfs.err" 2>&1 &
	pid=$!
	for ((i = 0; i < 300; i++)); do
		[ -e "$mnt/${sg0#/dev/}" ] && break
		_gl_sleep 0.1
	done
	f=$mnt/${sg0#/dev/}
	conn=()
	for c in /sys/fs/fuse/connections/*; do [ -e "$c/waiting" ] && conn+=("$c"); done
	[ ${#conn[@]} -gt 0 ] &&
		echo "  max_background $(cat "${conn[0]}/max_background") congestion_threshold $(cat "${conn[0]}/congestion_threshold")"
	workload "$label: fio randread 64k libaio depth 8" "$pid" "${conn[@]}" -- randread64 "  $label" "$f"
	workload "$label: fio randread 4k psync numjobs=1" "$pid" "${conn[@]}" -- randread4 "  $label j1" "$f" 1
	workload "$label: fio randread 4k psync numjobs=4" "$pid" "${conn[@]}" -- randread4 "  $label j4" "$f" 4
	workload "$label: dd bs=1M" "$pid" "${conn[@]}" -- seqread "  $label" "$f"
	if [ "$2" = first ] && [ -n "${SGFS_PROFILE_PERF:-}" ]; then
		workload "$label: fio randread 64k libaio depth 8, under perf" "$pid:perf" "${conn[@]}" \
			-- randread64 "  $label (perf)" "$f"
	fi
	echo "  .stats:"
	grep -E 'in_flight|^ *(mmap|direct|indirect)\.done_commands|readahead' "$mnt/.stats" | sed 's/^/    /'
	umount "$mnt"
	wait "$pid"
}
first=first
for v in "${variants[@]}"; do
	sgfs_round "$v" "$first"
	first=''
done
