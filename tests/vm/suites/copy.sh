#!/bin/bash
# Guest suite: copy_file_range between sgfs disk files, and core's copy within one disk,
# against a model of both disks (files moved with dd, which reads a piece whole before it
# writes it: memmove) compared with what the kernel's sd reads with O_DIRECT; then .stats
# proves where the bytes of a `cp` between two disks went.
#   usage (inside the guest, via vm-run): copy.sh BUILD_DIR
set -u
build=${1:?usage: copy.sh BUILD_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../guest-lib.sh
. "$here/guest-lib.sh"

cmake --install "$build" --prefix /usr/local >/dev/null
copy_range=$build/tests/vm/vm_copy_range
mnt=/mnt/sg
mkdir -p "$mnt"
work=$(mktemp -d)


# Two disks with stores of their own; a 1 MiB reserve needs max_sectors_kb of 1024.
sdebug_reload add_host=2 dev_size_mb=64 per_host_store=1 delay=0 || exit 1
mapfile -t sgs < <(sdebug_sg_nodes)
mapfile -t sds < <(sdebug_block_nodes)
sg0=${sgs[0]} sg1=${sgs[1]} sd0=${sds[0]} sd1=${sds[1]}
name0=${sg0#/dev/} name1=${sg1#/dev/}
for sd in "$sd0" "$sd1"; do echo 1024 >"/sys/block/${sd#/dev/}/queue/max_sectors_kb"; done
set_allow_dio 1
capacity=$(blockdev --getsize64 "$sd0")

head -c "$capacity" /dev/urandom >"$work/model0"
head -c "$capacity" /dev/urandom >"$work/model1"
dd if="$work/model0" of="$sd0" bs=1M oflag=direct status=none
dd if="$work/model1" of="$sd1" bs=1M oflag=direct status=none

# model_copy SOURCE_MODEL FROM DESTINATION_MODEL TO LENGTH: what a copy does to the model,
# clamped at both ends like the disks.
model_copy() {
	dd if="$1" of="$work/piece" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$5" status=none
	dd if="$work/piece" of="$3" bs=1M oflag=seek_bytes seek="$4" conv=notrunc status=none
	truncate -s "$capacity" "$3"
}
disk_is_model() { dd if="$1" bs=1M iflag=direct status=none | cmp - "$2"; }
# The sum over both disks of one .stats counter.
stat_sum() { awk -v key="$1" '$1 == key { sum += $2 } END { print sum + 0 }' "$mnt/.stats"; }

# expect_copy NAME EXPECTED COMMAND...: the copy program prints EXPECTED.
expect_copy() {
	local name=$1 expected=$2 got
	shift 2
	got=$("$@" 2>"$work/stderr")
	if [[ $got == "$expected" ]]; then
		pass "$name"
	else
		fail "$name" "expected '$expected', got '$got' $(<"$work/stderr")"
	fi
}

# --- copy_file_range(2) through the mount: ranges, offsets, ends ---------------------

mount -t fuse.sgfs all "$mnt" -o io=auto || exit 1
f0=$mnt/$name0 f1=$mnt/$name1
for spec in "0 1048576 4194304" "1000 5000 3000000" "513 1025 2097777" "4095 8191 1" \
	"4096 0 1048576"; do
	read -r from to length <<<"$spec"
	expect_copy "copy_file_range $name0@$from -> $name1@$to, $length bytes" "$length" \
		"$copy_range" file "$f0" "$from" "$f1" "$to" "$length"
	model_copy "$work/model0" "$from" "$work/model1" "$to" "$length"
done
expect_copy "copy within $name1, ranges apart" 1048579 \
	"$copy_range" file "$f1" 0 "$f1" 33554432 1048579
model_copy "$work/model1" 0 "$work/model1" 33554432 1048579
# The kernel refuses overlapping ranges of one file before asking the filesystem.
expect_copy "overlapping ranges of one file: the kernel says EINVAL" "error EINVAL" \
	"$copy_range" file "$f1" 0 "$f1" 4096 1048576
expect_copy "copy from the source's end: 0 bytes" 0 \
	"$copy_range" file "$f0" "$capacity" "$f1" 0 4096
expect_copy "copy running past the source's end is short" 100 \
	"$copy_range" file "$f0" $((capacity - 100)) "$f1" 8388608 1000
model_copy "$work/model0" $((capacity - 100)) "$work/model1" 8388608 1000
expect_copy "copy running past the destination's end is short" 100 \
	"$copy_range" file "$f0" 12345 "$f1" $((capacity - 100)) 1000
model_copy "$work/model0" 12345 "$work/model1" $((capacity - 100)) 1000
expect_copy "copy starting at the destination's end: ENOSPC" "error ENOSPC" \
	"$copy_range" file "$f0" 0 "$f1" "$capacity" 4096
check "copy.* counted the copies" test "$(stat_sum copy.zero_copy_bytes)" -gt 0
sgfs_umount "$mnt"
check "$name1 as sd reads it with O_DIRECT is the model" disk_is_model "$sd1" "$work/model1"
check "$name0 (only read) is unchanged" disk_is_model "$sd0" "$work/model0"

# --- core's copy within one disk: memmove, in each io mode ---------------------------

# Shifts of more than the chunks in flight (3.5 MiB, 1 MiB chunks): in the wrong order a
# read would be queued after the write that overwrote its blocks.
for spec in "1048576 4718592 12582912 direct" "4718592 1048576 12582912 direct" \
	"1048576 1049600 8388608 direct" "777 13065 6000000 direct" "13065 777 6000000 direct" \
	"0 1000000 5000000 direct" "1048576 4718592 12582912 mmap" \
	"4718592 1048576 12582912 indirect" "300 500 3000000 auto"; do
	read -r from to length mode <<<"$spec"
	expect_copy "core, io=$mode: $name0@$from -> $name0@$to, $length bytes" "$length" \
		"$copy_range" disk "$sg0" "$from" "$to" "$length" "$mode"
	model_copy "$work/model0" "$from" "$work/model0" "$to" "$length"
done
expect_copy "core: a read-only disk refuses with EROFS" "error EROFS" \
	"$copy_range" disk "$sg0" 0 4096 4096 auto ro
check "$name0 after the overlapping copies is memmove's result" disk_is_model "$sd0" "$work/model0"

# --- cp between two disks: where the bytes went --------------------------------------

size_mib=$((capacity >> 20))
# Before each cp the destination holds other bytes than the source (one random image,
# generated once: the guest's urandom is slow).
head -c "$capacity" /dev/urandom >"$work/junk"
fresh_destination() { dd if="$work/junk" of="$sd1" bs=1M oflag=direct status=none; }
path_bytes() { echo $(($(stat_sum "$1.user_copy_bytes") + $(stat_sum "$1.sg_copy_bytes") + $(stat_sum "$1.zero_copy_bytes"))); }
cp_and_check() {
	local label=$1
	fresh_destination
	check "$label: cp $name0 $name1" cp "$mnt/$name0" "$mnt/$name1"
	check "$label: $name1 is $name0" disk_is_model "$sd1" "$work/model0"
}

mount -t fuse.sgfs all "$mnt" -o io=direct
cp_and_check "io=direct"
diag "io=direct: copy.user_copy_bytes $(stat_sum copy.user_copy_bytes)," \
	"copy.sg_copy_bytes $(stat_sum copy.sg_copy_bytes)," \
	"copy.zero_copy_bytes $(stat_sum copy.zero_copy_bytes)"
check "io=direct: no byte copied in sgfs" test "$(stat_sum copy.user_copy_bytes)" = 0
check "io=direct: no byte copied by the sg driver" test "$(stat_sum copy.sg_copy_bytes)" = 0
check "io=direct: $size_mib MiB read and written without a copy" \
	test "$(stat_sum copy.zero_copy_bytes)" -ge $((2 * capacity))
check "io=direct: nothing through FUSE read or write" \
	test "$(path_bytes read)" = 0 -a "$(path_bytes write)" = 0
sgfs_umount "$mnt"

mount -t fuse.sgfs all "$mnt" -o io=indirect
cp_and_check "io=indirect"
check "io=indirect: the sg driver copied every byte (twice)" \
	test "$(stat_sum copy.sg_copy_bytes)" -ge $((2 * capacity))
check "io=indirect: nothing copied in sgfs" test "$(stat_sum copy.user_copy_bytes)" = 0
sgfs_umount "$mnt"

mount -t fuse.sgfs all "$mnt" -o io=mmap
cp_and_check "io=mmap"
check "io=mmap: read into the reserve mapping and written from it, no copy" \
	test "$(stat_sum copy.zero_copy_bytes)" -ge $((2 * capacity)) \
	-a "$(stat_sum mmap.done_bytes)" -ge "$capacity" -a "$(stat_sum direct.done_bytes)" -ge "$capacity"
sgfs_umount "$mnt"

set_allow_dio 0
mount -t fuse.sgfs all "$mnt" -o io=auto
cp_and_check "allow_dio=0, io=auto"
check "allow_dio=0: reads into the mapping, writes through the sg driver" \
	test "$(stat_sum mmap.done_bytes)" -ge "$capacity" -a "$(stat_sum copy.sg_copy_bytes)" -ge "$capacity" \
	-a "$(stat_sum copy.user_copy_bytes)" = 0
sgfs_umount "$mnt"
set_allow_dio 1

mount -t fuse.sgfs all "$mnt" -o nocopy_file_range
cp_and_check "nocopy_file_range"
check "nocopy_file_range: copy.* stays 0" test "$(path_bytes copy)" = 0
check "nocopy_file_range: the data went through FUSE write" test "$(path_bytes write)" -ge "$capacity"
sgfs_umount "$mnt"

# --- a medium error on the source (scsi_debug opts=2: reads around LBA 0x1234 fail) ----

sdebug_reload add_host=2 dev_size_mb=8 per_host_store=1 delay=0 opts=2 || exit 1
mapfile -t sgs < <(sdebug_sg_nodes)
mapfile -t sds < <(sdebug_block_nodes)
bad_byte=$((0x1234 * 512))
head -c "$bad_byte" /dev/urandom >"$work/before-error"
# 512-byte writes: the block layer reads the page around a partial one, and hits the error.
dd if="$work/before-error" of="${sds[0]}" bs=512 oflag=direct status=none
mount -t fuse.sgfs all "$mnt"
f0=$mnt/${sgs[0]#/dev/} f1=$mnt/${sgs[1]#/dev/}
# Like write(2), a copy that fails part-way returns the bytes before the failure; the next
# call, from there, gets the error.
partial=$("$copy_range" file "$f0" 0 "$f1" 0 4194304 2>"$work/stderr")
is_partial() { [[ $partial =~ ^[0-9]+$ ]] && ((partial > 0 && partial <= bad_byte)); }
check "a medium error part-way: the bytes before it ($partial of 4194304, error at $bad_byte)" \
	is_partial
check "a medium error part-way: those bytes are on the destination (sd, O_DIRECT)" \
	cmp -n "$partial" "$work/before-error" \
	<(dd if="${sds[1]}" bs=64k iflag=direct,count_bytes count="$partial" status=none)
expect_copy "a medium error part-way: the next call from there gets EIO" "error EIO" \
	"$copy_range" file "$f0" "$partial" "$f1" "$partial" $((4194304 - partial))
check ".stats counts the medium error" test "$(stat_sum errors.medium_error)" -ge 1
sgfs_umount "$mnt"
