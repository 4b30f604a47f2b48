#!/bin/bash
# Smoke test of the VM harness itself: real sg/sd devices from scsi_debug, checked with
# the stock sg3_utils and coreutils. Runs inside the guest:
#   tests/vm/vm-run -- tests/vm/suites/smoke.sh [BUILD_DIR]
# (vm-run's default scsi_debug: add_host=2 dev_size_mb=256 delay=0 per_host_store=1).
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=../guest-lib.sh
. "$(dirname "$0")/../guest-lib.sh"

diag "kernel $(uname -r), build dir ${1:-(none)}"
for tool in sg_inq sg_readcap sg_dd blockdev cmp dd; do
	command -v "$tool" >/dev/null || skip_all "$tool is not installed (apt-get install sg3-utils)"
done
WORK=$(mktemp -d)

mapfile -t SG < <(sdebug_sg_nodes)
mapfile -t BLK < <(sdebug_block_nodes)
devices=$(sdebug_devices)
diag "scsi_debug devices: ${devices//$'\n'/; }"

check "/dev/sg0 and /dev/sg1 are character devices" test -c /dev/sg0 -a -c /dev/sg1
check "two scsi_debug disks, sg0/sda first" \
	test "${#SG[@]}" -eq 2 -a "${SG[0]:-}" = /dev/sg0 -a "${BLK[0]:-}" = /dev/sda -a "${BLK[1]:-}" = /dev/sdb

inq_ok() {
	local out
	out=$(sg_inq "$1") || return 1
	echo "$out"
	[[ $out =~ (^|$'\n')\ *Vendor\ identification:\ *Linux\ *($'\n'|$) ]] &&
		[[ $out =~ (^|$'\n')\ *Product\ identification:\ *scsi_debug\ *($'\n'|$) ]]
}
check "sg_inq /dev/sg0: vendor Linux, product scsi_debug" inq_ok /dev/sg0

# "Device size: 268435456 bytes, ..." from READ CAPACITY against the block device's size.
readcap_bytes() {
	local out
	out=$(sg_readcap "$1") || return 1
	[[ $out =~ Device\ size:\ ([0-9]+)\ bytes ]] && echo "${BASH_REMATCH[1]}"
}
capacity_matches() {
	local sg=$1 blk=$2 a b
	a=$(readcap_bytes "$sg") b=$(blockdev --getsize64 "$blk")
	echo "sg_readcap $sg: $a bytes, blockdev --getsize64 $blk: $b bytes"
	[[ -n $a && $a == "$b" && $a -eq $((256 << 20)) ]]
}
check "sg_readcap /dev/sg0 capacity = blockdev --getsize64 /dev/sda" capacity_matches /dev/sg0 /dev/sda

# Write 4 MiB through the block layer (O_DIRECT, so nothing is served from the page
# cache), read it back through the sg driver, compare.
roundtrip() {
	local sg=$1 blk=$2 skip=$3
	head -c $((4 << 20)) /dev/urandom >"$WORK/in" &&
		dd if="$WORK/in" of="$blk" bs=1M count=4 seek="$skip" oflag=direct conv=notrunc status=none &&
		sg_dd if="$sg" of="$WORK/out" bs=512 bpt=512 skip=$((skip * 2048)) count=8192 &&
		cmp "$WORK/in" "$WORK/out"
}
check "4 MiB written with dd oflag=direct to /dev/sda reads back identical via sg_dd /dev/sg0" \
	roundtrip /dev/sg0 /dev/sda 0
check "same at a 100 MiB offset on /dev/sdb via /dev/sg1" roundtrip /dev/sg1 /dev/sdb 100

read -r sgver </sys/module/sg/version
check "sg driver version 3.5.36 (/sys/module/sg/version: $sgver)" test "$sgver" = 3.5.36

check "allow_dio can be set to 1" set_allow_dio 1
dio_read() { sg_dd if=/dev/sg0 of=/dev/null bs=512 bpt=128 count=2048 dio=1; }
check "sg_dd dio=1 read with allow_dio=1" dio_read
check "allow_dio can be set back to 0" set_allow_dio 0

check "/dev/fuse is a character device" test -c /dev/fuse

check "sdebug_reload with sector_size=4096" \
	sdebug_reload add_host=1 dev_size_mb=64 delay=0 sector_size=4096
mapfile -t SG < <(sdebug_sg_nodes)
mapfile -t BLK < <(sdebug_block_nodes)
devices=$(sdebug_devices)
diag "after reload: ${devices//$'\n'/; }"
check "one disk after the reload" test "${#SG[@]}" -eq 1 -a -c "${SG[0]:-/nonexistent}" -a -b "${BLK[0]:-/nonexistent}"
check "logical block size is 4096 (blockdev --getss)" test "$(blockdev --getss "${BLK[0]:-/dev/null}" 2>&1)" = 4096
block_length_4096() {
	local out
	out=$(sg_readcap "${SG[0]}") || return 1
	echo "$out"
	[[ $out == *"Logical block length=4096 bytes"* ]]
}
check "sg_readcap reports 4096-byte blocks" block_length_4096
reload_refused_while_open() {
	local rc=0
	exec 3<"${SG[0]}" || return 1
	if SDEBUG_RELOAD_WAIT=0 sdebug_reload add_host=1; then rc=1; fi
	exec 3<&-
	return $rc
}
check "sdebug_reload refuses while a node is held open" reload_refused_while_open
check "sdebug_reload back to the defaults" sdebug_reload add_host=2 dev_size_mb=256 delay=0 per_host_store=1
mapfile -t SG < <(sdebug_sg_nodes)
check "two disks again" test "${#SG[@]}" -eq 2

rm -rf "$WORK"
