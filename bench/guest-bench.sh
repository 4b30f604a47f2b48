#!/bin/bash
# Guest side of bench/run: runs as root inside the scsi_debug VM (tests/vm/vm-run) and
# measures every workload with every tool. Not meant to be run by hand; see bench/run.
#
# It prints human progress lines and, for bench/report.py, machine lines (fields split
# by '|', never containing '|' or a newline):
#   @@META|key|value
#   @@RUN|workload|tool|param|run|status|bytes|seconds|user|sys|daemon_user|daemon_sys|ios|note
#   @@CHECK|workload|tool|param|result|note
#   @@S|label|line                  (the sgfs .stats file after each mode's first run)
# tool: sgfs.LABEL.dd, sgfs.LABEL.cp, fio.sgfs.LABEL for the sgfs under test, and the same
# with sgfs-base for the baseline binary (--baseline-sgfs), run right after each one;
# null.dd, null.cp, fio.null for the FUSE ceiling (bench/nullfs); a fio tool ending in
# .qdN ran N IOs in flight per job (libaio, or the sg engine's own queue).
#   @@END
# workload: read write copy randread randwrite, and in the latency section rand64k;
# param: a transfer size (8k, 64k, 1m), "cp" (cp picks its own size) or jN (fio with N
# jobs); status: ok or failed; seconds:
# wall time of the tool process (GNU time %e; fio: its own runtime); user/sys: CPU
# seconds of the tool and its children (fio: its per-job accounting, start-up excluded);
# daemon_*: CPU seconds of the FUSE daemon (sgfs, qemu-storage-daemon, nullfs) during the run,
# from /proc/PID/stat; ios: IOs done (fio only, else 0).
#
# --section delay0 (default) measures the CPU-bound disks (scsi_debug delay=0) with every
# tool at every size; --section latency the slow disks bench/run boots for it (scsi_debug
# ndelay=N): 1 MiB sequential reads, writes (with a flush at the end) and copies, 64 KiB
# random reads at depth 8 and 4 KiB random reads at each job count, with the tools that
# keep one command in flight, the ones that keep several, sgfs and the FUSE ceiling.
set -u

SECTION=delay0 SIZES=8k,64k,1m RUNS=3 SIZE_MB=256 FIO_RUNTIME=5 FIO_JOBS=1,4
WORKLOADS=read,write,copy,rand SGFS_MODES=indirect,direct,mmap,auto,before=auto+noreadahead+noaligned_writes+nocopy_file_range SGFS_OPTIONS=''
BUILD='' CMD_TIMEOUT=900 CHECKS=1 BASE_SGFS=''
while [ $# -gt 0 ]; do
	case $1 in
	--build-dir) BUILD=$2 ;;
	--sizes) SIZES=$2 ;;
	--runs) RUNS=$2 ;;
	--size-mb) SIZE_MB=$2 ;;
	--fio-runtime) FIO_RUNTIME=$2 ;;
	--fio-jobs) FIO_JOBS=$2 ;;
	--workloads) WORKLOADS=$2 ;;
	--sgfs-modes) SGFS_MODES=$2 ;;
	--sgfs-options) SGFS_OPTIONS=$2 ;;
	--cmd-timeout) CMD_TIMEOUT=$2 ;;
	--checks) CHECKS=$2 ;;
	--baseline-sgfs) BASE_SGFS=$2 ;;
	--section) SECTION=$2 ;;
	*)
		echo "guest-bench.sh: unknown argument $1" >&2
		exit 2
		;;
	esac
	shift 2
done
if [ "${SGFS_IN_VM:-}" != 1 ]; then
	echo "guest-bench.sh: this runs inside the benchmark VM; use bench/run" >&2
	exit 2
fi
# The guest's devtmpfs lacks /dev/fd, which process substitution needs.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd

case $SECTION in
delay0) ;;
latency) SIZES=1m ;; # every command as large as FUSE passes one
*)
	echo "guest-bench.sh: unknown section $SECTION" >&2
	exit 2
	;;
esac
IFS=, read -r -a SIZE_LIST <<<"$SIZES"
IFS=, read -r -a JOB_LIST <<<"$FIO_JOBS"
IFS=, read -r -a MODE_LIST <<<"$SGFS_MODES"
DO_READ=0 DO_WRITE=0 DO_COPY=0 DO_RAND=0
IFS=, read -r -a list <<<"$WORKLOADS"
for w in "${list[@]}"; do
	case $w in
	read) DO_READ=1 ;;
	write) DO_WRITE=1 ;;
	copy) DO_COPY=1 ;;
	rand) DO_RAND=1 ;;
	*)
		echo "guest-bench.sh: unknown workload $w" >&2
		exit 2
		;;
	esac
done
TOTAL=$((SIZE_MB * 1024 * 1024))
TMPD=$(mktemp -d /tmp/bench.XXXXXX)
SRC=/tmp/bench-src.bin
MNT=/tmp/sgfs-mnt
# The sgfs binary each sgfs row name runs: sgfs (the build under test) and, with
# --baseline-sgfs, sgfs-base. sgfs_start runs $SGFS, set from it per row.
declare -A SGFS_BINARY=([sgfs]=${BUILD:+$BUILD/fusefs/sgfs})
SGFS_SIDES=(sgfs)
if [ -n "$BASE_SGFS" ]; then
	SGFS_BINARY[sgfs-base]=$BASE_SGFS
	SGFS_SIDES+=(sgfs-base)
fi
SGFS=${SGFS_BINARY[sgfs]}
# The FUSE ceiling: bench/nullfs, two files of the disks' size, with sgfs's queue_depth.
NULLFS=${BUILD:+$BUILD/bench/nullfs}
NULL_MNT=/tmp/null-mnt
CLK_TCK=$(getconf CLK_TCK)
SGFS_PID='' QSD_PID='' NULL_PID='' START_ERR=''

# One line, no '|': safe inside a machine line.
# Pure bash: in this emulated guest every exec costs about 0.1 s.
clean() {
	local s="$*"
	s=${s//$'\n'/ }
	s=${s//|//}
	s=${s//  / }
	printf '%s' "${s:0:300}"
}
# mounted PATH: a FUSE file system is mounted at PATH.
mounted() {
	local dev mnt type rest
	while read -r dev mnt type rest; do
		[ "$mnt" = "$1" ] && [[ $type == fuse* ]] && return 0
	done </proc/mounts
	return 1
}
# last_line REGEX FILE: the last line of FILE matching REGEX (bash regex), into LAST.
last_line() {
	local l
	LAST=''
	while IFS= read -r l || [ -n "$l" ]; do
		[[ $l =~ $1 ]] && LAST=$l
	done <"$2"
}
# A --sgfs-modes entry is an io= mode, or LABEL=MODE+OPTION+... for a variant with more
# -o options (e.g. before=auto+noreadahead: the row is "sgfs.before").
variant_label() { [[ $1 == *=* ]] && echo "${1%%=*}" || echo "$1"; }
variant_options() {
	local spec=${1#*=}
	echo "io=${spec//+/,}"
}

meta() { echo "@@META|$1|$(clean "$2")"; }
say() { echo "# [$(cut -d' ' -f1 /proc/uptime)s] $*"; }

size_bytes() {
	local n=${1%[kKmMgG]}
	case ${1##*[0-9]} in
	'') echo "$n" ;;
	k | K) echo $((n * 1024)) ;;
	m | M) echo $((n * 1024 * 1024)) ;;
	g | G) echo $((n * 1024 * 1024 * 1024)) ;;
	esac
}
# fixed-point helpers without forking: "12.34" -> 12340000 (microseconds)
sec_to_usec() {
	local s=$1 i f
	i=${s%%.*} f=
	[[ $s == *.* ]] && f=${s#*.}
	f=${f}000000
	echo $((10#${i:-0} * 1000000 + 10#${f:0:6}))
}
fmt_usec() { printf '%d.%06d' $(($1 / 1000000)) $(($1 % 1000000)); }
fmt_ticks() { printf '%d.%02d' $(($1 / CLK_TCK)) $(($1 % CLK_TCK * 100 / CLK_TCK)); }

# --- devices ------------------------------------------------------------------------

# "sgN sdX" for each scsi_debug disk, in SCSI address order.
sdebug_disks() {
	local dev model sg blk
	for dev in /sys/bus/scsi/devices/*:*:*:*; do
		[ -r "$dev/model" ] || continue
		read -r model <"$dev/model"
		[ "$model" = scsi_debug ] || continue
		sg=$(ls "$dev/scsi_generic" 2>/dev/null | head -n1)
		blk=$(ls "$dev/block" 2>/dev/null | head -n1)
		[ -n "$sg" ] && [ -n "$blk" ] && echo "$sg $blk"
	done
}
mapfile -t DISKS < <(sdebug_disks)
if [ ${#DISKS[@]} -lt 2 ]; then
	echo "guest-bench.sh: need two scsi_debug disks, found ${#DISKS[@]}: ${DISKS[*]}" >&2
	exit 1
fi
read -r SG0 BLK0 <<<"${DISKS[0]}"
read -r SG1 BLK1 <<<"${DISKS[1]}"
SECTOR=$(cat "/sys/block/$BLK0/queue/logical_block_size")
for b in $BLK0 $BLK1; do
	if [ "$(($(cat "/sys/block/$b/size") * 512))" -ne "$TOTAL" ]; then
		echo "guest-bench.sh: /dev/$b is not $SIZE_MB MiB (bench/run sets dev_size_mb to --size-mb)" >&2
		exit 1
	fi
done

# Direct IO through sg, and a request size limit that lets the largest command through
# as one request (the sg reserve buffer is capped by max_sectors_kb too).
echo 1 >/sys/module/sg/parameters/allow_dio
max_kb=2048
for s in "${SIZE_LIST[@]}"; do
	kb=$(($(size_bytes "$s") / 1024))
	[ "$kb" -gt "$max_kb" ] && max_kb=$kb
done
for b in $BLK0 $BLK1; do
	echo "$max_kb" >"/sys/block/$b/queue/max_sectors_kb" ||
		echo "guest-bench.sh: cannot set max_sectors_kb=$max_kb on $b" >&2
done

meta kernel "$(uname -r)"
meta guest_cpus "$(nproc)"
meta guest_mem_mb "$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024))"
meta disks "/dev/$SG0=/dev/$BLK0 /dev/$SG1=/dev/$BLK1"
meta sector "$SECTOR"
meta sg_version "$(cat /sys/module/sg/version 2>/dev/null || head -n1 /proc/scsi/sg/version 2>/dev/null)"
meta allow_dio "$(cat /sys/module/sg/parameters/allow_dio)"
meta max_sectors_kb "$(cat "/sys/block/$BLK0/queue/max_sectors_kb")"
p=/sys/bus/pseudo/drivers/scsi_debug
meta scsi_debug "dev_size_mb=$(cat $p/dev_size_mb) delay=$(cat $p/delay) ndelay=$(cat $p/ndelay) per_host_store=$(cat $p/per_host_store) add_host=$(cat $p/add_host)"
meta section "$SECTION"
meta ndelay_ns "$(cat $p/ndelay)"
meta sg3_utils "$(sg_dd --version 2>&1 | head -n1)"
meta fio "$(fio --version 2>&1)"
meta qsd "$(qemu-storage-daemon --version 2>&1 | head -n1)"
meta coreutils "$(dd --version 2>&1 | head -n1)"
for side in "${SGFS_SIDES[@]}"; do
	bin=${SGFS_BINARY[$side]}
	if [ -x "$bin" ]; then
		meta "$side" "$("$bin" --version 2>&1 | head -n2 | tr '\n' ' ')"
	else
		meta "$side" "not built: ${bin:-no build dir} missing"
	fi
done
if [ -x "$NULLFS" ]; then
	meta nullfs "$NULLFS, built $(date -u -r "$NULLFS" '+%Y-%m-%d %H:%M UTC')"
else
	meta nullfs "not built: ${NULLFS:-no build dir} missing"
fi
for m in "${MODE_LIST[@]}"; do
	[[ $m == *=* ]] && meta "variant.$(variant_label "$m")" "$(variant_options "$m")"
done
meta params "section=$SECTION sizes=$SIZES runs=$RUNS size_mb=$SIZE_MB fio_runtime=$FIO_RUNTIME fio_jobs=$FIO_JOBS workloads=$WORKLOADS sgfs_modes=$SGFS_MODES sgfs_options=$SGFS_OPTIONS checks=$CHECKS"

say "disks /dev/$SG0 (/dev/$BLK0), /dev/$SG1 (/dev/$BLK1); $SIZE_MB MiB per run; sector $SECTOR"
head -c "$TOTAL" /dev/urandom >"$SRC" || exit 1
for b in $BLK0 $BLK1; do
	dd if="$SRC" of="/dev/$b" bs=1M oflag=direct status=none || exit 1
done
# Programs come from the host over 9p: load each timed one once so that no timed run
# pays for that (fio's start-up is outside its own runtime anyway).
for prog in sg_dd sgm_dd sgp_dd dd cp timeout /usr/bin/time; do
	"$prog" --version >/dev/null 2>&1
done
say "setup done"

# --- measuring ----------------------------------------------------------------------

# stat_ticks "CONTENTS OF /proc/PID/stat": utime and stime in TICKS_U, TICKS_S. After
# "pid (comm) " come the fields from 3 (state) on: utime is field 14 and stime field 15,
# so indexes 11 and 12 here. The process's dead threads are included.
stat_ticks() {
	local f
	read -r -a f <<<"${1##*) }"
	TICKS_U=${f[11]:-0} TICKS_S=${f[12]:-0}
}
# utime+stime of the processes, in clock ticks: "user sys".
proc_ticks() {
	local u=0 s=0 pid
	for pid in "$@"; do
		[ -r "/proc/$pid/stat" ] || continue
		stat_ticks "$(<"/proc/$pid/stat")"
		u=$((u + TICKS_U)) s=$((s + TICKS_S))
	done
	echo "$u $s"
}

# measure DAEMON_PID CMD...: runs CMD (caches dropped first) under GNU time, and a
# timeout outside of it; sets M_RC, M_USEC (wall), M_SEC, M_USER, M_SYS (the command's
# CPU), M_DUSER, M_DSYS (the daemon's CPU). Output in $TMPD/out.
measure() {
	local pid=$1 d0 d1 e u0 s0 u1 s1
	shift
	echo 3 >/proc/sys/vm/drop_caches
	d0=$(proc_ticks $pid)
	timeout -k 5 "$CMD_TIMEOUT" /usr/bin/time -f '@@TIME %e %U %S' -o "$TMPD/time" \
		"$@" >"$TMPD/out" 2>&1
	M_RC=$?
	d1=$(proc_ticks $pid)
	LAST=''
	[ -r "$TMPD/time" ] && last_line '^@@TIME ' "$TMPD/time"
	read -r _ e M_USER M_SYS <<<"$LAST"
	M_USER=${M_USER:-0} M_SYS=${M_SYS:-0}
	M_USEC=$(sec_to_usec "${e:-0}")
	M_SEC=$(fmt_usec "$M_USEC")
	read -r u0 s0 <<<"$d0"
	read -r u1 s1 <<<"$d1"
	M_DUSER=$(fmt_ticks $((u1 - u0)))
	M_DSYS=$(fmt_ticks $((s1 - s0)))
	[ "$M_RC" -eq 124 ] && echo "timed out after $CMD_TIMEOUT s" >>"$TMPD/out"
	return 0
}

# The most telling lines of a failed command's output.
failure_note() {
	local msg
	msg=$(grep -iE 'error|fail|bad|invalid|denied|not |cannot|unable|timed out|short' "$TMPD/out" | head -n2)
	[ -n "$msg" ] || msg=$(grep -v '^ *$' "$TMPD/out" | tail -n2)
	clean "exit $M_RC: $msg"
}

emit() { # workload tool param run status bytes ios note
	local w=$1 tool=$2 p=$3 run=$4 st=$5 bytes=$6 ios=$7 note=$8 rate
	echo "@@RUN|$w|$tool|$p|$run|$st|$bytes|$M_SEC|$M_USER|$M_SYS|$M_DUSER|$M_DSYS|$ios|$(clean "$note")"
	if [ "$st" = ok ]; then
		[ "$M_USEC" -gt 0 ] || M_USEC=1
		if [ "$ios" -gt 0 ]; then
			rate="$((ios * 1000000 / M_USEC)) IOPS"
		else
			rate=$((bytes * 10 / M_USEC))
			rate="$((rate / 10)).$((rate % 10)) MB/s"
		fi
		printf '  %-9s %-18s %-4s #%s %12s  cpu %s+%s s, daemon %s+%s s\n' "$w" "$tool" "$p" "$run" \
			"$rate" "$M_USER" "$M_SYS" "$M_DUSER" "$M_DSYS"
	else
		printf '  %-9s %-18s %-4s #%s  FAILED: %s\n' "$w" "$tool" "$p" "$run" "$(clean "$note")"
	fi
}

# A run that could not even start (no binary, mount failed): no timing at all.
emit_failed() { # workload tool param run note
	M_SEC=0 M_USER=0 M_SYS=0 M_DUSER=0 M_DSYS=0
	emit "$1" "$2" "$3" "$4" failed 0 0 "$5"
}

# mover KIND WORKLOAD TOOL PARAM RUN DAEMON_PID CMD...: measure a data mover and check
# that it moved $TOTAL bytes: KIND dd (its "N bytes" line), sg (records out, in
# sectors) or plain (exit status only). Returns 1 if it failed.
mover() {
	local kind=$1 w=$2 tool=$3 p=$4 run=$5 pid=$6 done_bytes
	shift 6
	measure "$pid" "$@"
	if [ "$M_RC" -ne 0 ]; then
		emit "$w" "$tool" "$p" "$run" failed 0 0 "$(failure_note)"
		return 1
	fi
	case $kind in
	dd)
		last_line '^[0-9]+ bytes .*copied' "$TMPD/out"
		done_bytes=${LAST%% *}
		;;
	sg)
		last_line '^[0-9]+\+[0-9]+ records out' "$TMPD/out"
		done_bytes=${LAST%%+*}
		done_bytes=$((${done_bytes:-0} * SECTOR))
		;;
	plain) done_bytes=$TOTAL ;;
	esac
	if [ "${done_bytes:-0}" -ne "$TOTAL" ]; then
		emit "$w" "$tool" "$p" "$run" failed 0 0 \
			"moved ${done_bytes:-?} bytes instead of $TOTAL: $(clean "$(tail -n2 "$TMPD/out")")"
		return 1
	fi
	emit "$w" "$tool" "$p" "$run" ok "$TOTAL" 0 ""
}

# --- data checks (untimed, first run only) ------------------------------------------------

check() { # workload tool param result note
	echo "@@CHECK|$1|$2|$3|$4|$(clean "$5")"
	[ "$4" = ok ] || echo "  $1 $2 $3: DATA CHECK FAILED: $(clean "$5")"
}
# Zero 64 KiB every 16 MiB and at the end of DEV, so that a writer that skipped data
# leaves a difference behind.
poison() {
	local dev=$1 off
	for ((off = 0; off < TOTAL; off += 16 * 1048576)); do
		dd if=/dev/zero of="$dev" bs=64k count=1 seek=$((off / 65536)) oflag=direct conv=notrunc status=none
	done
	dd if=/dev/zero of="$dev" bs=64k count=1 seek=$((TOTAL / 65536 - 1)) oflag=direct conv=notrunc status=none
}
# same_data A B [BS]: compare $TOTAL bytes; A is read with O_DIRECT, B with bs=BS
# (O_DIRECT too when B is a block device: its page cache misses writes made through sg).
same_data() {
	local a=$1 b=$2 bs=${3:-1m} out rc bflags=fullblock
	[ -b "$b" ] && bflags=direct,fullblock
	bs=$(size_bytes "$bs")
	out=$(cmp -n "$TOTAL" <(dd if="$a" bs=1M count=$((TOTAL / 1048576)) iflag=direct status=none) \
		<(dd if="$b" bs="$bs" count=$((TOTAL / bs)) iflag=$bflags status=none) 2>&1)
	rc=$?
	CHECK_NOTE=$out
	return $rc
}
# check_after WORKLOAD TOOL PARAM [READ_FILE]: after a successful checked run.
check_after() {
	local w=$1 tool=$2 p=$3 file=${4:-}
	case $w in
	read)
		if same_data "/dev/$BLK0" "$file" "$p"; then
			check "$w" "$tool" "$p" ok "reading $file again gives /dev/$BLK0"
		else
			check "$w" "$tool" "$p" failed "reading $file again: $CHECK_NOTE"
		fi
		;;
	write)
		if same_data "/dev/$BLK0" "$SRC"; then
			check "$w" "$tool" "$p" ok "/dev/$BLK0 equals the source"
		else
			check "$w" "$tool" "$p" failed "/dev/$BLK0 differs from the source: $CHECK_NOTE"
		fi
		;;
	copy)
		if same_data "/dev/$BLK1" "/dev/$BLK0"; then
			check "$w" "$tool" "$p" ok "/dev/$BLK1 equals /dev/$BLK0"
		else
			check "$w" "$tool" "$p" failed "/dev/$BLK1 differs from /dev/$BLK0: $CHECK_NOTE"
		fi
		;;
	esac
}

# --- daemons ------------------------------------------------------------------------

# qemu-storage-daemon exporting /dev/$BLK0 at /tmp/qsd-0 and /dev/$BLK1 at /tmp/qsd-1.
qsd_start() {
	local args=() i blk
	for i in 0 1; do
		[ $i -eq 0 ] && blk=$BLK0 || blk=$BLK1
		: >"/tmp/qsd-$i"
		args+=(--blockdev "driver=host_device,node-name=disk$i,filename=/dev/$blk,cache.direct=on"
			--export "type=fuse,id=exp$i,node-name=disk$i,mountpoint=/tmp/qsd-$i,writable=on")
	done
	rm -f "$TMPD/qsd.pid"
	if ! timeout 60 qemu-storage-daemon "${args[@]}" --pidfile "$TMPD/qsd.pid" --daemonize \
		>"$TMPD/qsd.err" 2>&1; then
		START_ERR="qemu-storage-daemon failed: $(clean "$(tail -n2 "$TMPD/qsd.err")")"
		return 1
	fi
	QSD_PID=$(cat "$TMPD/qsd.pid")
	echo "  qemu-storage-daemon ${args[*]}"
}
qsd_stop() {
	local i f
	[ -n "$QSD_PID" ] || return 0
	kill "$QSD_PID" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$QSD_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$QSD_PID" 2>/dev/null
	for f in /tmp/qsd-0 /tmp/qsd-1; do
		mounted "$f" && umount -l "$f"
	done
	QSD_PID=''
}

# await_mount LABEL PID_VAR TRIES ERR_FILE MNT FILE...: waits (TRIES x 0.1 s) until MNT is
# mounted with every FILE in it. 1 when the daemon exited first (START_ERR says why, PID_VAR
# is cleared), 2 when the files did not appear in time (the daemon still runs).
await_mount() {
	local label=$1 tries=$3 err=$4 mnt=$5 i rc f missing
	local -n daemon_pid=$2
	shift 5
	for ((i = 0; i < tries; i++)); do
		if mounted "$mnt"; then
			missing=0
			for f in "$@"; do [ -e "$mnt/$f" ] || missing=1; done
			((missing)) || return 0
		fi
		if ! kill -0 "$daemon_pid" 2>/dev/null; then
			wait "$daemon_pid"
			rc=$?
			START_ERR="$label failed (exit $rc): $(clean "$(tail -n3 "$err")")"
			daemon_pid=''
			return 1
		fi
		sleep 0.1
	done
	START_ERR="$label: $* did not appear in $mnt within $((tries / 10)) s: $(clean "$(tail -n3 "$err")")"
	return 2
}

sgfs_start() { # mode or variant
	local opts
	opts="$(variant_options "$1")${SGFS_OPTIONS:+,$SGFS_OPTIONS}"
	if [ ! -x "$SGFS" ]; then
		START_ERR="sgfs not built (${SGFS:-no build dir} missing)"
		return 1
	fi
	mkdir -p "$MNT"
	echo "  $SGFS /dev/$SG0,/dev/$SG1 $MNT -o $opts -f"
	"$SGFS" "/dev/$SG0,/dev/$SG1" "$MNT" -o "$opts" -f >"$TMPD/sgfs.err" 2>&1 &
	SGFS_PID=$!
	await_mount "mount -o $opts" SGFS_PID 300 "$TMPD/sgfs.err" "$MNT" "$SG0" "$SG1" && return 0
	(($? == 2)) && sgfs_stop
	return 1
}
sgfs_stop() {
	fuse_stop sgfs "$SGFS_PID" "$MNT" "$TMPD/sgfs.err"
	SGFS_PID=''
}

# fuse_stop NAME PID MOUNTPOINT ERRFILE: unmounts a FUSE daemon we started and waits for it.
fuse_stop() {
	local name=$1 pid=$2 mnt=$3 err=$4 rc i
	[ -n "$pid" ] || return 0
	fusermount3 -u "$mnt" 2>/dev/null || umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "  $name (pid $pid) still runs 10 s after the unmount; killing it"
		kill "$pid"
		sleep 1
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	rc=$?
	[ "$rc" -ne 0 ] && echo "  $name exited with status $rc: $(clean "$(tail -n3 "$err")")"
	mounted "$mnt" && umount -l "$mnt"
	return 0
}

# The FUSE ceiling: bench/nullfs serving null0 and null1, $TOTAL bytes each, with the
# queue_depth of --sgfs-options if it names one (else nullfs takes sgfs's default).
null_start() {
	local args=(--size "$TOTAL" --files 2)
	if [ ! -x "$NULLFS" ]; then
		START_ERR="bench/nullfs not built (${NULLFS:-no build dir} missing)"
		return 1
	fi
	[[ ,$SGFS_OPTIONS, =~ ,queue_depth=([0-9]+), ]] && args+=(--queue-depth "${BASH_REMATCH[1]}")
	mkdir -p "$NULL_MNT"
	echo "  $NULLFS ${args[*]} $NULL_MNT"
	"$NULLFS" "${args[@]}" "$NULL_MNT" >"$TMPD/null.err" 2>&1 &
	NULL_PID=$!
	# it fills its buffers first: seconds in an emulated guest
	await_mount nullfs NULL_PID 600 "$TMPD/null.err" "$NULL_MNT" null0 null1 && return 0
	(($? == 2)) && null_stop
	return 1
}
null_stop() {
	fuse_stop nullfs "$NULL_PID" "$NULL_MNT" "$TMPD/null.err"
	NULL_PID=''
}

cleanup() {
	sgfs_stop
	null_stop
	qsd_stop
	rm -rf "$TMPD"
}
trap cleanup EXIT

# --- workloads ----------------------------------------------------------------------

# seq TOOL RUN PID WORKLOAD PARAM IN OUT: one sequential run, with a data check on the
# first run (for FUSE tools at every size, for the others at the first size only; never
# for the ceiling, whose files are not the disks). In the latency section every writer
# ends with a flush (dd conv=fsync, the sg tools' sync=1: SYNCHRONIZE CACHE), so that a
# write acknowledged before it reached the disk is still timed to the disk.
seq_run() {
	local tool=$1 run=$2 pid=$3 w=$4 p=$5 in=$6 out=$7 bytes n flags=() checking=0 ok=0
	local sgargs=() flush=() ddflush=notrunc
	if [ "$CHECKS" = 1 ] && [ "$run" -eq 1 ] && { [ "$p" = "${SIZE_LIST[0]}" ] || [ "$p" = cp ] || [ -n "$pid" ]; }; then
		checking=1
		[ "$w" = read ] && [ -z "$pid" ] && checking=0 # native reads: trusted, not checked
		[[ $tool == null.* ]] && checking=0
	fi
	if [ "$SECTION" = latency ] && [ "$w" != read ]; then
		flush=(sync=1) ddflush=notrunc,fsync
	fi
	if [ "$checking" = 1 ]; then
		case $w in
		write) poison "/dev/$BLK0" ;;
		copy) poison "/dev/$BLK1" ;;
		esac
	fi
	if [ "$p" != cp ]; then
		bytes=$(size_bytes "$p")
		n=$((TOTAL / bytes))
		sgargs=(bs="$SECTOR" bpt=$((bytes / SECTOR)) count=$((TOTAL / SECTOR)))
	fi
	case $tool in
	sg_dd) mover sg "$w" "$tool" "$p" "$run" "" sg_dd if="$in" of="$out" "${sgargs[@]}" "${flush[@]}" && ok=1 ;;
	sg_dd.dio)
		[ "$w" != write ] && flags+=(iflag=dio)
		[ "$w" != read ] && flags+=(oflag=dio)
		mover sg "$w" "$tool" "$p" "$run" "" sg_dd if="$in" of="$out" "${sgargs[@]}" "${flags[@]}" "${flush[@]}" && ok=1
		;;
	sgm_dd) mover sg "$w" "$tool" "$p" "$run" "" sgm_dd if="$in" of="$out" "${sgargs[@]}" "${flush[@]}" && ok=1 ;;
	sgm_dd.odio)
		mover sg "$w" "$tool" "$p" "$run" "" sgm_dd if="$in" of="$out" "${sgargs[@]}" oflag=dio && ok=1
		;;
	sgp_dd) mover sg "$w" "$tool" "$p" "$run" "" sgp_dd if="$in" of="$out" "${sgargs[@]}" thr=4 "${flush[@]}" && ok=1 ;;
	dd.buf)
		flags=(iflag=fullblock)
		[ "$w" != read ] && flags+=(conv=fsync)
		mover dd "$w" "$tool" "$p" "$run" "" dd if="$in" of="$out" bs="$bytes" count="$n" "${flags[@]}" && ok=1
		;;
	dd.direct | qsd.dd)
		if [ "$w" = write ]; then flags=(iflag=fullblock); else flags=("iflag=direct,fullblock"); fi
		[ "$w" != read ] && flags+=(oflag=direct "conv=$ddflush")
		mover dd "$w" "$tool" "$p" "$run" "$pid" dd if="$in" of="$out" bs="$bytes" count="$n" "${flags[@]}" && ok=1
		;;
	sgfs.*.dd | sgfs-base.*.dd | null.dd)
		flags=(iflag=fullblock)
		[ "$w" != read ] && flags+=("conv=$ddflush")
		mover dd "$w" "$tool" "$p" "$run" "$pid" dd if="$in" of="$out" bs="$bytes" count="$n" "${flags[@]}" && ok=1
		;;
	cp.dev | sgfs.*.cp | sgfs-base.*.cp | null.cp) mover plain "$w" "$tool" "$p" "$run" "$pid" cp "$in" "$out" && ok=1 ;;
	*) emit_failed "$w" "$tool" "$p" "$run" "unknown tool $tool" ;;
	esac
	[ "$checking" = 1 ] && [ "$ok" = 1 ] && check_after "$w" "$tool" "$p" "$in"
	return 0
}

# seq_sizes TOOL RUN PID WORKLOAD IN OUT: seq_run at every size
seq_sizes() {
	local p
	for p in "${SIZE_LIST[@]}"; do seq_run "$1" "$2" "$3" "$4" "$p" "$5" "$6"; done
}

# The fio groups rand_runs runs, one line each: WORKLOAD PARAM JOBS BS ENGINE SUFFIX
# OPTION...: ENGINE sync or async picks the target's engine for it (fio_target), SUFFIX
# (or -) is added to the tool's name, the OPTIONs are fio's, one key=value each.
# delay0: 4 KiB random reads, then writes, at every job count.
# latency: 64 KiB random reads at depth 8, then 4 KiB random reads at every job count.
FIO_GROUPS=()
if [ "$SECTION" = latency ]; then
	FIO_GROUPS+=("rand64k 64k 1 64k async .qd8 rw=randread iodepth=8")
	for j in "${JOB_LIST[@]}"; do FIO_GROUPS+=("randread j$j $j 4k sync - rw=randread"); done
else
	for w in randread randwrite; do
		for j in "${JOB_LIST[@]}"; do FIO_GROUPS+=("$w j$j $j 4k sync - rw=$w"); done
	done
fi
# Sequential 1 MiB at depth 8 on /dev/sdX, time based: what the device gives with several
# commands in flight (latency section).
FIO_SEQ_GROUPS=("read 1m 1 1m async .qd8 rw=read iodepth=8"
	"write 1m 1 1m async .qd8 rw=write iodepth=8 end_fsync=1")

# rand_runs TOOL RUN PID FILE GROUPS SYNC_ENGINE ASYNC_ENGINE OPTION...: the fio groups of
# the array named GROUPS on FILE, each time based. One fio process runs them all, one
# stonewalled group each: fio takes seconds to start in this guest. Between the groups,
# marker jobs (null engine) snapshot the daemon's /proc/PID/stat through exec_prerun,
# which splits its CPU time between the groups.
rand_runs() {
	local tool=$1 run=$2 pid=$3 file=$4 w p j bs engine suffix opts k=0 f err kib ios ms cpu_u cpu_s l
	local -n group_list=$5
	local sync_engine=$6 async_engine=$7 job=$TMPD/rand.fio
	shift 7
	rm -f "$TMPD"/m*.prerun.txt
	{
		echo "[global]"
		echo "filename=$file"
		printf '%s\n' "$@"
		echo "size=$TOTAL"
		echo "runtime=$FIO_RUNTIME"
		echo "time_based"
		echo "group_reporting"
		rand_marker 0 "$pid"
		for l in "${group_list[@]}"; do
			read -r w p j bs engine suffix opts <<<"$l"
			k=$((k + 1))
			printf '[g%d]\nstonewall\nnumjobs=%d\nbs=%s\n' "$k" "$j" "$bs"
			[ "$engine" = async ] && echo "$async_engine" || echo "$sync_engine"
			printf '%s\n' $opts # unquoted: one fio option per word
			rand_marker "$k" "$pid"
		done
	} >"$job"
	measure "" env -C "$TMPD" fio --minimal "$job"
	local fio_rc=$M_RC
	declare -A lines=()
	while IFS= read -r l; do
		[[ $l == 3\;* ]] || continue
		IFS=';' read -r -a f <<<"$l"
		lines[${f[2]}]=$l
	done <"$TMPD/out"
	for ((k = 1; k <= ${#group_list[@]}; k++)); do
		read -r w p j bs engine suffix opts <<<"${group_list[k - 1]}"
		local name=$tool
		[ "$suffix" != - ] && name+=$suffix
		l=${lines[g$k]:-}
		M_SEC=0 M_USEC=0 M_USER=0 M_SYS=0 M_DUSER=0 M_DSYS=0
		if [ -z "$l" ]; then
			M_RC=$fio_rc
			emit "$w" "$name" "$p" "$run" failed 0 0 "no result from fio: $(failure_note)"
			continue
		fi
		# terse v3 (fio 3.x): 3 job name, 5 error, 6 read KiB, 9 read ms, 47 write KiB,
		# 50 write ms, 88 usr_cpu %, 89 sys_cpu % (of the summed job runtimes)
		IFS=';' read -r -a f <<<"$l"
		err=${f[4]} kib=$((f[5] + f[46])) ms=${f[8]}
		[ "${f[49]}" -gt "$ms" ] && ms=${f[49]}
		ios=$((kib * 1024 / $(size_bytes "$bs")))
		if [ "$err" != 0 ] || [ "$ios" -eq 0 ] || [ "$ms" -eq 0 ]; then
			M_RC=$fio_rc
			emit "$w" "$name" "$p" "$run" failed 0 0 "fio error $err after $ios IOs: $(failure_note)"
			continue
		fi
		# fio's own runtime and per-job CPU: its start-up (seconds in this guest) excluded.
		M_USEC=$((ms * 1000))
		M_SEC=$(fmt_usec $M_USEC)
		cpu_u=${f[87]%\%} cpu_s=${f[88]%\%}
		M_USER=$(fmt_usec $(($(sec_to_usec "$cpu_u") * ms * j / 100000)))
		M_SYS=$(fmt_usec $(($(sec_to_usec "$cpu_s") * ms * j / 100000)))
		if [ -n "$pid" ]; then
			if [ -s "$TMPD/m$((k - 1)).prerun.txt" ] && [ -s "$TMPD/m$k.prerun.txt" ]; then
				stat_ticks "$(<"$TMPD/m$((k - 1)).prerun.txt")"
				local u0=$TICKS_U s0=$TICKS_S
				stat_ticks "$(<"$TMPD/m$k.prerun.txt")"
				M_DUSER=$(fmt_ticks $((TICKS_U - u0)))
				M_DSYS=$(fmt_ticks $((TICKS_S - s0)))
			else
				M_RC=$fio_rc
				emit "$w" "$name" "$p" "$run" failed 0 0 "no daemon CPU snapshot around the fio job (daemon gone?): $(failure_note)"
				continue
			fi
		fi
		emit "$w" "$name" "$p" "$run" ok $((kib * 1024)) "$ios" ""
	done
}
# A fio job that does nothing but snapshot the daemon's CPU times into $TMPD/mN.prerun.txt.
rand_marker() { # N PID
	[ -n "$2" ] || return 0
	printf '[m%d]\nstonewall\nioengine=null\nrw=read\nsize=4k\ntime_based=0\nruntime=0\nnumjobs=1\n' "$1"
	# fio saves the command's output as mN.prerun.txt in its working directory
	printf 'exec_prerun=cat /proc/%d/stat\n' "$2"
}

# The native tools: sequential, then random.
native_tools() {
	local run=$1 in out
	if [ "$DO_READ" = 1 ]; then
		say "run $run/$RUNS: read, native tools"
		for t in sg_dd sg_dd.dio sgm_dd sgp_dd; do seq_sizes "$t" "$run" "" read "/dev/$SG0" /dev/null; done
		for t in dd.buf dd.direct; do seq_sizes "$t" "$run" "" read "/dev/$BLK0" /dev/null; done
	fi
	if [ "$DO_WRITE" = 1 ]; then
		say "run $run/$RUNS: write, native tools"
		for t in sg_dd sg_dd.dio sgm_dd sgp_dd; do seq_sizes "$t" "$run" "" write "$SRC" "/dev/$SG0"; done
		for t in dd.buf dd.direct; do seq_sizes "$t" "$run" "" write "$SRC" "/dev/$BLK0"; done
	fi
	if [ "$DO_COPY" = 1 ]; then
		say "run $run/$RUNS: copy, native tools"
		for t in sg_dd sg_dd.dio sgm_dd sgm_dd.odio sgp_dd; do
			seq_sizes "$t" "$run" "" copy "/dev/$SG0" "/dev/$SG1"
		done
		for t in dd.buf dd.direct; do seq_sizes "$t" "$run" "" copy "/dev/$BLK0" "/dev/$BLK1"; done
		seq_run cp.dev "$run" "" copy cp "/dev/$BLK0" "/dev/$BLK1"
	fi
	if [ "$DO_RAND" = 1 ]; then
		say "run $run/$RUNS: random, native tools"
		rand_runs fio.sg "$run" "" "/dev/$SG0" FIO_GROUPS ioengine=sg ioengine=sg
		rand_runs fio.sd "$run" "" "/dev/$BLK0" FIO_GROUPS ioengine=psync ioengine=libaio direct=1
	fi
}

# The latency section's native tools: those that keep one command in flight (sg_dd dio,
# sgm_dd, dd O_DIRECT, cp), those that keep several (sgp_dd thr=4, fio libaio or sg engine
# at depth 8), each workload once.
latency_native_tools() {
	local run=$1 t seq_groups=()
	if [ "$DO_READ" = 1 ]; then
		say "run $run/$RUNS: read, native tools"
		for t in sg_dd.dio sgm_dd sgp_dd; do seq_sizes "$t" "$run" "" read "/dev/$SG0" /dev/null; done
		seq_sizes dd.direct "$run" "" read "/dev/$BLK0" /dev/null
		seq_groups+=("${FIO_SEQ_GROUPS[0]}")
	fi
	if [ "$DO_WRITE" = 1 ]; then
		say "run $run/$RUNS: write, native tools"
		for t in sg_dd.dio sgm_dd sgp_dd; do seq_sizes "$t" "$run" "" write "$SRC" "/dev/$SG0"; done
		seq_sizes dd.direct "$run" "" write "$SRC" "/dev/$BLK0"
		seq_groups+=("${FIO_SEQ_GROUPS[1]}")
	fi
	if [ "${#seq_groups[@]}" -gt 0 ]; then
		say "run $run/$RUNS: sequential, fio at depth 8 on /dev/$BLK0"
		rand_runs fio.sd "$run" "" "/dev/$BLK0" seq_groups ioengine=psync ioengine=libaio direct=1
	fi
	if [ "$DO_COPY" = 1 ]; then
		say "run $run/$RUNS: copy, native tools"
		for t in sg_dd.dio sgm_dd sgp_dd; do seq_sizes "$t" "$run" "" copy "/dev/$SG0" "/dev/$SG1"; done
		seq_sizes dd.direct "$run" "" copy "/dev/$BLK0" "/dev/$BLK1"
		seq_run cp.dev "$run" "" copy cp "/dev/$BLK0" "/dev/$BLK1"
	fi
	if [ "$DO_RAND" = 1 ]; then
		say "run $run/$RUNS: random, native tools"
		rand_runs fio.sg "$run" "" "/dev/$SG0" FIO_GROUPS ioengine=sg ioengine=sg
		rand_runs fio.sd "$run" "" "/dev/$BLK0" FIO_GROUPS ioengine=psync ioengine=libaio direct=1
	fi
}

# Every workload through one FUSE daemon (qsd, sgfs in one mode, or the ceiling), mounted
# once.
# fuse_tools NAME RUN START_FUNCTION [ARG] FILE0 FILE1
fuse_tools() {
	local name=$1 run=$2 start=$3 arg=$4 f0=$5 f1=$6 pid w t
	say "run $run/$RUNS: $name"
	START_ERR=''
	if ! "$start" $arg; then
		echo "  FAILED to start: $START_ERR"
		for w in read write copy; do
			[ "$w" = read ] && [ "$DO_READ" = 0 ] && continue
			[ "$w" = write ] && [ "$DO_WRITE" = 0 ] && continue
			[ "$w" = copy ] && [ "$DO_COPY" = 0 ] && continue
			for p in "${SIZE_LIST[@]}"; do emit_failed "$w" "$name.dd" "$p" "$run" "$START_ERR"; done
			[ "$w" = copy ] && [ "$name" != qsd ] && emit_failed copy "$name.cp" cp "$run" "$START_ERR"
		done
		if [ "$DO_RAND" = 1 ]; then
			local l p j bs engine suffix
			for l in "${FIO_GROUPS[@]}"; do
				read -r w p j bs engine suffix _ <<<"$l"
				[ "$suffix" = - ] && suffix=''
				emit_failed "$w" "fio.$name$suffix" "$p" "$run" "$START_ERR"
			done
		fi
		return
	fi
	case $start in
	qsd_start) pid=$QSD_PID ;;
	null_start) pid=$NULL_PID ;;
	*) pid=$SGFS_PID ;;
	esac
	[ "$DO_READ" = 1 ] && seq_sizes "$name.dd" "$run" "$pid" read "$f0" /dev/null
	[ "$DO_WRITE" = 1 ] && seq_sizes "$name.dd" "$run" "$pid" write "$SRC" "$f0"
	if [ "$DO_COPY" = 1 ]; then
		seq_sizes "$name.dd" "$run" "$pid" copy "$f0" "$f1"
		[ "$name" != qsd ] && seq_run "$name.cp" "$run" "$pid" copy cp "$f0" "$f1"
	fi
	[ "$DO_RAND" = 1 ] && rand_runs "fio.$name" "$run" "$pid" "$f0" FIO_GROUPS ioengine=psync ioengine=libaio direct=1
	if [ "$run" -eq 1 ] && [ -r "$MNT/.stats" ] && [ "$start" = sgfs_start ]; then
		sed "s/|/\//g; s/^/@@S|$name|/" "$MNT/.stats" | head -n 400
	fi
	"${start%_start}_stop"
}

t_start=$(date +%s)
for ((run = 1; run <= RUNS; run++)); do
	if [ "$SECTION" = latency ]; then
		latency_native_tools "$run"
	else
		native_tools "$run"
		fuse_tools qsd "$run" qsd_start "" /tmp/qsd-0 /tmp/qsd-1
	fi
	for m in "${MODE_LIST[@]}"; do
		for side in "${SGFS_SIDES[@]}"; do
			SGFS=${SGFS_BINARY[$side]}
			fuse_tools "$side.$(variant_label "$m")" "$run" sgfs_start "$m" "$MNT/$SG0" "$MNT/$SG1"
		done
	done
	fuse_tools null "$run" null_start "" "$NULL_MNT/null0" "$NULL_MNT/null1"
done
meta guest_seconds "$(($(date +%s) - t_start))"
say "done"
echo "@@END"
