#!/bin/bash
# Guest side of bench/profile: where the CPU time of one transfer goes, for sgfs and for
# the sg3_utils tool it is compared with, sampled with perf (cpu-clock: TCG has no PMU)
# over the whole guest, so the kernel's copies, the sg driver, scsi_debug and the FUSE
# daemon all show up.
#   usage (inside the guest, via vm-run): guest-profile.sh BUILD_DIR MODE SIZE MIB
set -u
build=${1:?usage: guest-profile.sh BUILD_DIR MODE SIZE MIB} mode=${2:?} size=${3:?} mib=${4:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../tests/vm/guest-lib.sh
. "$here/tests/vm/guest-lib.sh"

case $size in
*k) bytes=$((${size%k} * 1024)) ;;
*m) bytes=$((${size%m} * 1048576)) ;;
*) bytes=$size ;;
esac
{ read -r sg0 && read -r sg1; } < <(sdebug_sg_nodes)
block=$(cat "/sys/class/scsi_generic/${sg0#/dev/}/device/block/"*/queue/logical_block_size)
set_allow_dio 1 || exit 1
for b in $(sdebug_block_nodes); do
	echo 2048 >"/sys/block/${b#/dev/}/queue/max_sectors_kb"
done
work=$(mktemp -d)
mnt=$work/mnt
mkdir -p "$mnt"
head -c $((mib * 1048576)) /dev/urandom >"$work/source"
"$build/fusefs/sgfs" "$sg0,$sg1" "$mnt" -o "io=$mode" || exit 1
f0=$mnt/$(basename "$sg0") f1=$mnt/$(basename "$sg1")
count=$((mib * 1048576 / bytes))
sgargs=(bs="$block" bpt=$((bytes / block)) count=$((mib * 1048576 / block)))

# profile LABEL COMMAND...: the share of samples per command name and per symbol.
profile() {
	local label=$1 start end
	shift
	start=$(date +%s.%N)
	perf record -q -a -e cpu-clock -F 1000 -o "$work/perf.data" -- "$@" >/dev/null 2>&1 ||
		echo "# $label: failed: $*"
	end=$(date +%s.%N)
	echo "## $label: $* ($(awk -v s="$start" -v e="$end" -v b=$((mib * 1048576)) \
		'BEGIN { printf "%.0f MB/s under perf", b / (e - s) / 1e6 }'))"
	echo '### by command'
	perf report -i "$work/perf.data" --stdio --no-children --sort comm --percent-limit 1 -q 2>/dev/null |
		sed '/^$/d'
	echo '### by symbol'
	perf report -i "$work/perf.data" --stdio --no-children --sort comm,sym --percent-limit 0.7 -q \
		2>/dev/null | sed '/^$/d'
	echo
}

echo "# guest $(uname -r), $(nproc) vCPUs, io=$mode, $size per command, $mib MiB"
profile "read sgm_dd" sgm_dd if="$sg0" of=/dev/null "${sgargs[@]}"
profile "read sg_dd dio" sg_dd if="$sg0" of=/dev/null "${sgargs[@]}" iflag=dio
profile "read sgfs dd" dd if="$f0" of=/dev/null bs="$bytes" count="$count" status=none
profile "write sg_dd dio" sg_dd if="$work/source" of="$sg0" "${sgargs[@]}" oflag=dio
profile "write sgfs dd" dd if="$work/source" of="$f0" bs="$bytes" count="$count" conv=notrunc \
	status=none
profile "copy sg_dd dio" sg_dd if="$sg0" of="$sg1" "${sgargs[@]}" iflag=dio oflag=dio
profile "copy sgfs cp" cp "$f0" "$f1"
echo "## sgfs .stats (both disks): bytes per path"
grep -E "(read|write|copy)\.|readahead" "$mnt/.stats"
umount "$mnt"
