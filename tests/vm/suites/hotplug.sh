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

# --- soak: IO cycles while disks come and go and a path flaps ---------------------------
# Three workers open, read, write and close the first disk in a loop for SGFS_SOAK_SECONDS
# (40 in CI; longer by hand) while hosts are added and removed every 8 s, and a second
# disk's path flaps (its SCSI device set offline for a second, then running: a path lost
# and back, which sgfs takes as a loss and a reattach) under a reader that expects the
# failures of the offline second. The daemon's fd count must come back to what it was after
# a warm-up, and its resident memory must not creep (the bound is a memory figure, not a
# time).
soak_seconds=${SGFS_SOAK_SECONDS:-40}
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
# flapping_reader SECONDS FILE: reads FILE in a loop; counts the reads that worked and failed.
flapping_reader() {
	local end=$((SECONDS + $1)) good=0 bad=0
	while ((SECONDS < end)); do
		if dd if="$2" of=/dev/null bs=64k count=2 skip=$((RANDOM % 200)) iflag=direct \
			status=none 2>/dev/null; then
			good=$((good + 1))
		else
			bad=$((bad + 1))
			sleep 0.2
		fi
	done
	echo "$good $bad"
}
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$daemon/status"; }
fds() { ls "/proc/$daemon/fd" | wc -l; }
# The disk whose path flaps: added now, served for the whole soak.
echo 1 >"$add_host"
until_true 10 test -n "$(new_sg)" || exit 1
flap_sg=$(new_sg)
flap_file=$mnt/${flap_sg#/dev/}
flap_hctl=$(sdebug_devices | awk -v sg="$flap_sg" '$2 == sg { print $1 }')
flap_state=/sys/class/scsi_device/$flap_hctl/device/state
until_true 10 test -f "$flap_file" || exit 1
cycle 3 >/dev/null
flapping_reader 2 "$flap_file" >/dev/null
warm_rss=$(rss) warm_fds=$(fds)
pids=()
for w in 1 2 3; do
	cycle "$soak_seconds" >"$work/cycles.$w" &
	pids+=($!)
done
flapping_reader "$soak_seconds" "$flap_file" >"$work/flapping" &
flap_reader=$!
end=$((SECONDS + soak_seconds))
rounds=0 flaps=0
while ((SECONDS + 8 <= end)); do
	echo 1 >"$add_host"
	echo offline >"$flap_state" && flaps=$((flaps + 1))
	sleep 1
	echo running >"$flap_state"
	sleep 3
	echo -1 >"$add_host"
	sleep 4
	rounds=$((rounds + 1))
done
ok=1
for pid in "${pids[@]}"; do wait "$pid" || ok=0; done
wait "$flap_reader"
check "soak: every IO cycle on the first disk worked while disks came and went" test $ok = 1
read -r flap_good flap_bad <"$work/flapping"
check "soak: the flapping disk is served again after its last flap" \
	until_true 10 dd if="$flap_file" of=/dev/null bs=64k count=1 iflag=direct status=none
# The last host removed: its file goes after the grace; then the fds it held are closed.
until_true 10 bash -c "test \$(ls '$mnt' | grep -c '^sg') = 2"
end_rss=$(rss) end_fds=$(fds)
diag "soak: ${soak_seconds} s, $rounds add/remove rounds, $flaps flaps;" \
	"$(cat "$work"/cycles.* | awk "{ s += \$1 } END { print s }") cycles on the first disk," \
	"reads of the flapping disk: $flap_good worked, $flap_bad failed while offline;" \
	"VmRSS ${warm_rss} kB after warm-up, ${end_rss} kB at the end; fds ${warm_fds} -> ${end_fds}"
diag "soak: .stats of the flapping disk: $(grep -E '^ *(path_losses|reattaches|state) ' "$mnt/.stats" | tr -s ' ' | tr '\n' ';')"
check "soak: the flapping disk was lost and reattached" \
	test "$(sgfs_stat "$mnt" "${flap_sg#/dev/}" reattaches)" -ge 1
check "soak: the daemon's fd count is back to its warm-up value" test "$end_fds" = "$warm_fds"
check "soak: VmRSS grew less than 16 MiB" test $((end_rss - warm_rss)) -lt 16384

sgfs_umount "$mnt"
[[ -n ${syslogd_pid:-} ]] && kill "$syslogd_pid"
