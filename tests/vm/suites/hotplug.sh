#!/bin/bash
# Guest suite: disks that come and go while `all` is mounted (issue 16, items 1 and 4), on
# scsi_debug. Writing its add_host adds (1) or removes (-1) a host with one disk: the
# kernel sends the uevents sgfs listens for. The oracles: the new disk's own sd device read
# with O_DIRECT, the kernel's sysfs (which sg nodes exist), syslog, and the daemon's
# /proc/PID/status and fd table for the soak.
#   usage (inside the guest, via vm-run --no-scsi-debug): hotplug.sh BUILD_DIR
set -u
build=${1:?usage: hotplug.sh BUILD_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../guest-lib.sh
. "$here/guest-lib.sh"

cmake --install "$build" --prefix /usr/local >/dev/null
mnt=/mnt/sg
mkdir -p "$mnt"
work=$(mktemp -d)
add_host=/sys/bus/pseudo/drivers/scsi_debug/add_host
mib=$((1 << 20))

# The daemonized sgfs logs to syslog: keep what it says.
if command -v busybox >/dev/null; then
	busybox syslogd -n -O "$work/syslog" &
	syslogd_pid=$!
fi

sdebug_reload add_host=1 dev_size_mb=16 delay=0 || exit 1
read -r _ first_sg _ < <(sdebug_devices)
mount -t fuse.sgfs all "$mnt" || exit 1
daemon=$(pgrep -xn sgfs)
check "at mount: one disk file, /${first_sg#/dev/}" test -f "$mnt/${first_sg#/dev/}"

# until SECONDS COMMAND...: COMMAND succeeds within SECONDS (polled every 0.1 s).
until_true() {
	local i limit=$(($1 * 10))
	shift
	for ((i = 0; i < limit; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	echo "not within the time: $*"
	return 1
}
new_sg() { sdebug_devices | awk -v first="$first_sg" '$2 != first { print $2; exit }'; }
new_sd() { sdebug_devices | awk -v first="$first_sg" '$2 != first { print $3; exit }'; }

# --- a disk added while mounted -----------------------------------------------------------
echo 1 >"$add_host"
until_true 10 test -n "$(new_sg)" || exit 1
sg=$(new_sg) sd=$(new_sd)
name=${sg#/dev/}
check "a disk added while mounted gets its file /$name within 10 s" \
	until_true 10 test -f "$mnt/$name"
check "and its by-id link" until_true 5 \
	bash -c "ls -l '$mnt/by-id' | grep -q -- '-> \.\./$name\$'"
head -c $((4 * mib)) /dev/urandom >"$work/pattern"
check "cp onto the new file" cp "$work/pattern" "$mnt/$name"
check "its sd device read with O_DIRECT holds it" \
	cmp "$work/pattern" <(dd if="$sd" bs=1M count=4 iflag=direct status=none)
if [[ -n ${syslogd_pid:-} ]]; then
	check "syslog announces the new disk" until_true 5 grep -q "sgfs: new disk $sg" "$work/syslog"
fi

# --- removed for good -----------------------------------------------------------------------
echo -1 >"$add_host"
check "a disk removed for good loses its file within 10 s" \
	until_true 10 bash -c "! test -e '$mnt/$name'"
check "and its by-id link" bash -c "! ls -l '$mnt/by-id' | grep -q -- '-> \.\./$name\$'"
check "the first disk is still served" \
	dd if="$mnt/${first_sg#/dev/}" of=/dev/null bs=1M count=1 iflag=direct status=none
if [[ -n ${syslogd_pid:-} ]]; then
	check "syslog says it is no longer served" \
		until_true 5 grep -q "sgfs: .*disk removed" "$work/syslog"
fi

# --- soak: IO cycles while disks come and go ------------------------------------------------
# Three workers open, read, write and close the first disk in a loop while hosts are added
# and removed; the daemon's fd count must come back to what it was after a warm-up, and its
# resident memory must not creep (the bound is a memory figure, not a time).
file=$mnt/${first_sg#/dev/}
cycle() {
	local end=$((SECONDS + $1)) n=0
	while ((SECONDS < end)); do
		dd if="$file" of=/dev/null bs=64k count=4 skip=$((RANDOM % 200)) status=none || return 1
		dd if=/dev/zero of="$file" bs=4k count=1 seek=$((2048 + RANDOM % 1024)) conv=notrunc \
			status=none || return 1
		n=$((n + 1))
	done
	echo "$n"
}
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$daemon/status"; }
fds() { ls "/proc/$daemon/fd" | wc -l; }
cycle 3 >/dev/null
warm_rss=$(rss) warm_fds=$(fds)
pids=()
for w in 1 2 3; do
	cycle 20 >"$work/cycles.$w" &
	pids+=($!)
done
for round in 1 2; do
	echo 1 >"$add_host"
	sleep 4
	echo -1 >"$add_host"
	sleep 4
done
ok=1
for pid in "${pids[@]}"; do wait "$pid" || ok=0; done
check "soak: every IO cycle worked while disks came and went" test $ok = 1
# The last host removed: its file goes after the grace; then the fds it held are closed.
until_true 10 bash -c "test \$(ls '$mnt' | grep -c '^sg') = 1"
end_rss=$(rss) end_fds=$(fds)
diag "soak: $(cat "$work"/cycles.* | awk "{ s += \$1 } END { print s }") cycles; VmRSS ${warm_rss} kB after" \
	"warm-up, ${end_rss} kB at the end; fds ${warm_fds} -> ${end_fds}"
check "soak: the daemon's fd count is back to its warm-up value" test "$end_fds" = "$warm_fds"
check "soak: VmRSS grew less than 16 MiB" test $((end_rss - warm_rss)) -lt 16384

sgfs_umount "$mnt"
[[ -n ${syslogd_pid:-} ]] && kill "$syslogd_pid"
