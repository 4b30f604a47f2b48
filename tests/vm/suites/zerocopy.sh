#!/bin/bash
# Guest suite: aligned write payloads. With io=direct and allow_dio=1, a 64 MiB dd write and
# read through sgfs must not be copied in the daemon (nor by the sg driver), io=indirect
# must be copied by the driver, and noaligned_writes (libfuse's loop, WRITE data 80 bytes
# past a page) must be copied by sgfs. The data is checked with cmp against the source and
# against the disk as the kernel's sd driver reads it with O_DIRECT. Odd-sized writes at
# odd offsets and many small writes go through the same receive buffers.
#   usage (inside the guest, via vm-run): zerocopy.sh BUILD_DIR
set -u
build=${1:?usage: zerocopy.sh BUILD_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../guest-lib.sh
. "$here/guest-lib.sh"

cmake --install "$build" --prefix /usr/local >/dev/null
mnt=/mnt/sg
mkdir -p "$mnt"
work=$(mktemp -d)


sdebug_reload add_host=1 dev_size_mb=128 delay=0
sg0=$(sdebug_sg_nodes | head -n 1)
sd0=$(sdebug_block_nodes | head -n 1)
name0=$(basename "$sg0")
file=$mnt/$name0
# The sg reserve buffer is capped by max_sectors_kb: 1 MiB commands need it raised.
echo 1024 >"/sys/block/$(basename "$sd0")/queue/max_sectors_kb"
set_allow_dio 1

size=$((64 << 20))
head -c $size /dev/urandom >"$work/source"

# The value of one .stats counter (one disk is mounted, so each name is unique).
counter() { awk -v name="$1" '$1 == name { print $2; exit }' "$mnt/.stats"; }
# counter NAME OP VALUE, e.g. "write.user_copy_bytes -eq 0"; shows the value on failure.
counter_is() {
	local value
	value=$(counter "$1")
	echo "# $1 = ${value:-missing}"
	[ -n "$value" ] && test "$value" "$2" "$3"
}

# Writes the source through sgfs with dd bs=1M and reads it back the same way; the data
# must be right both through sgfs and on the disk as sd reads it.
write_and_read_back() {
	local label=$1 options=$2
	check "$label: mount" mount -t fuse.sgfs "$sg0" "$mnt" -o "$options"
	check "$label: dd writes 64 MiB" \
		dd if="$work/source" of="$file" bs=1M conv=notrunc,fsync status=none
	check "$label: dd reads 64 MiB" dd if="$file" of="$work/back" bs=1M count=64 status=none
	check "$label: sgfs reads back what dd wrote" cmp "$work/source" "$work/back"
	dd if="$sd0" of="$work/ondisk" bs=1M count=64 iflag=direct status=none
	check "$label: sd O_DIRECT sees what dd wrote" cmp "$work/source" "$work/ondisk"
}

write_and_read_back "io=direct" io=direct,reserve=1M
check "io=direct: no write byte copied by sgfs" counter_is write.user_copy_bytes -eq 0
check "io=direct: no write byte copied by the sg driver" counter_is write.sg_copy_bytes -eq 0
check "io=direct: 64 MiB written without a copy" counter_is write.zero_copy_bytes -ge $size
# dd without oflag=direct: answered behind, from the request buffer kept with the commands.
check "io=direct: and answered behind" counter_is write_behind.writes -gt 0
check "io=direct: no read byte copied by sgfs" counter_is read.user_copy_bytes -eq 0
check "io=direct: no read byte copied by the sg driver" counter_is read.sg_copy_bytes -eq 0
check "io=direct: 64 MiB read without a copy" counter_is read.zero_copy_bytes -ge $size
check "io=direct: the driver did direct IO every time" counter_is direct.fallback_bytes -eq 0
sgfs_umount "$mnt"

# New data in every 1 MiB block (so a lost write shows), cheaper than /dev/urandom: the
# source rotated by 1 MiB.
rotate_source() {
	{ tail -c +$((1 << 20 | 1)) "$work/source" && head -c 1M "$work/source"; } >"$work/rotated"
	mv "$work/rotated" "$work/source"
}
rotate_source
write_and_read_back "io=indirect" io=indirect,reserve=1M
check "io=indirect: the sg driver copied the writes" counter_is write.sg_copy_bytes -ge $size
check "io=indirect: the sg driver copied the reads" counter_is read.sg_copy_bytes -ge $size
sgfs_umount "$mnt"

rotate_source
write_and_read_back "noaligned_writes,io=direct" noaligned_writes,io=direct,reserve=1M
check "noaligned_writes: sgfs copied the writes (unaligned data)" \
	counter_is write.user_copy_bytes -ge $size
sgfs_umount "$mnt"

# Odd sizes at odd offsets, and many small writes, through the aligned receive buffers;
# the disk as sd reads it must equal a model file written the same way.
region=$((8 << 20))
head -c $region /dev/urandom >"$work/model"
dd if="$work/model" of="$sd0" bs=1M oflag=direct status=none
mount -t fuse.sgfs "$sg0" "$mnt" -o io=direct,reserve=1M
for spec in "12345 1 7" "12345 4194301 3" "1000 333333 11" "4096 12345 5" "1M 777777 2" \
	"1 8388607 1" "512 1537 3"; do
	read -r bs seek count <<<"$spec"
	dd if=/dev/urandom of="$work/chunk" bs="$bs" count="$count" iflag=fullblock status=none
	dd if="$work/chunk" of="$file" bs="$bs" seek="$seek" oflag=seek_bytes conv=notrunc status=none
	dd if="$work/chunk" of="$work/model" bs="$bs" seek="$seek" oflag=seek_bytes conv=notrunc \
		status=none
done
# 2000 writes of 512 bytes, one FUSE request each.
dd if=/dev/urandom of="$work/chunk" bs=512 count=2000 status=none
dd if="$work/chunk" of="$file" bs=512 seek=5000 conv=notrunc status=none
dd if="$work/chunk" of="$work/model" bs=512 seek=5000 conv=notrunc status=none
dd if="$sd0" of="$work/ondisk" bs=1M count=8 iflag=direct status=none
check "odd and small writes: sd O_DIRECT sees the model" cmp "$work/model" "$work/ondisk"
check "odd and small writes: sgfs reads the model" cmp "$work/model" <(head -c $region "$file")
check "metadata requests are served: ls, stat, .stats" \
	bash -c "ls -l '$mnt' >/dev/null && stat '$file' >/dev/null && cat '$mnt/.stats' >/dev/null"
sgfs_umount "$mnt"

# A signal ends the loop even while every worker waits in read().
sgfs "$sg0" "$mnt"
pid=$(pgrep -x sgfs)
kill -TERM "$pid"
for _ in $(seq 50); do sgfs_mounted "$mnt" || break; sleep 0.1; done
check "SIGTERM unmounts" bash -c "! grep -q ' $mnt fuse.sgfs ' /proc/mounts"
sgfs_umount "$mnt"
