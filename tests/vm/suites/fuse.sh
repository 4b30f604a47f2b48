#!/bin/bash
# Guest suite: the sgfs filesystem through the real mount, against oracles we did not
# write: the kernel's sd device read with O_DIRECT, cmp, and fio's verify.
#   usage (inside the guest, via vm-run): fuse.sh BUILD_DIR
set -u
build=${1:?usage: fuse.sh BUILD_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../guest-lib.sh
. "$here/guest-lib.sh"

# mount -t fuse.sgfs finds sgfs on PATH, as after `cmake --install` (the guest's / is an
# overlay: this never touches the host).
cmake --install "$build" --prefix /usr/local >/dev/null
mnt=/mnt/sg
mkdir -p "$mnt"
work=$(mktemp -d)


# Bytes [offset, offset+length) of a file, for comparing slices.
slice() { tail -c +$(($2 + 1)) "$1" | head -c "$3"; }

# Random writes with odd sizes at unaligned offsets through sgfs and into a model file;
# the disk as sd reads it with O_DIRECT must equal the model, and sgfs reads must too.
dd_against_model() {
	local file=$1 sd=$2 label=$3
	local region=$((8 << 20))
	head -c $region /dev/urandom >"$work/model"
	dd if="$work/model" of="$file" bs=1M conv=notrunc,fsync status=none
	local spec bs seek count
	for spec in "512 0 3" "512 1537 7" "4096 4096 5" "4096 6000 3" "1M 1048576 2" \
		"1M 333333 1" "1000 12345 9" "12345 1000 5" "12345 4194301 3" "1 8388607 1"; do
		read -r bs seek count <<<"$spec"
		dd if=/dev/urandom of="$work/chunk" bs="$bs" count="$count" iflag=fullblock status=none
		dd if="$work/chunk" of="$file" bs="$bs" seek="$seek" oflag=seek_bytes conv=notrunc status=none
		dd if="$work/chunk" of="$work/model" bs="$bs" seek="$seek" oflag=seek_bytes conv=notrunc status=none
	done
	dd if="$sd" of="$work/ondisk" bs=1M count=8 iflag=direct status=none
	check "$label: sd O_DIRECT sees the model after odd dd writes" cmp "$work/model" "$work/ondisk"
	local ok=1 skip
	for spec in "512 0 16" "1000 12345 50" "12345 777 20" "4096 4095 9" "1M 0 8" "1M 5000 3"; do
		read -r bs skip count <<<"$spec"
		dd if="$file" bs="$bs" skip="$skip" count="$count" iflag=skip_bytes status=none >"$work/got"
		local bytes
		case $bs in 1M) bytes=$((count << 20)) ;; *) bytes=$((bs * count)) ;; esac
		slice "$work/model" "$skip" "$bytes" >"$work/want"
		cmp -s "$work/want" "$work/got" || { ok=0; echo "# read bs=$bs skip=$skip count=$count differs"; }
	done
	check "$label: dd reads at odd offsets and sizes match the model" test $ok = 1
}

mode_done_in_stats() {
	# .stats lines: "<disk> <mode>.done_commands <n>" style; the requested mode must be done.
	local mode=$1
	grep -Eq "${mode}\.done_commands[ =:]+[1-9]" "$mnt/.stats"
}

for sector in 512 4096; do
	sdebug_reload add_host=2 dev_size_mb=64 delay=0 per_host_store=1 sector_size=$sector
	mapfile -t sgs < <(sdebug_sg_nodes)
	sg0=${sgs[0]} sg1=${sgs[1]}
	mapfile -t sds < <(sdebug_block_nodes)
	sd0=${sds[0]} sd1=${sds[1]}
	set_allow_dio 1
	for mode in indirect direct mmap auto; do
		label="$sector-byte sectors, io=$mode"
		check "$label: mount -t fuse.sgfs" mount -t fuse.sgfs "$sg0,$sg1" "$mnt" -o io=$mode
		name0=$(basename "$sg0")
		dd_against_model "$mnt/$name0" "$sd0" "$label"
		expect=$mode
		[ "$mode" = auto ] && expect=direct
		check "$label: .stats shows $expect IO done" mode_done_in_stats "$expect"
		sgfs_umount "$mnt"
	done
done

# cp of 64 MiB of random data onto a disk, checked through sd; and the reverse.
sdebug_reload add_host=2 dev_size_mb=128 delay=0 per_host_store=1
mapfile -t sgs < <(sdebug_sg_nodes)
sg0=${sgs[0]} sg1=${sgs[1]}
mapfile -t sds < <(sdebug_block_nodes)
sd0=${sds[0]} sd1=${sds[1]}
name0=$(basename "$sg0")
name1=$(basename "$sg1")
mount -t fuse.sgfs all "$mnt" -o io=auto
head -c $((64 << 20)) /dev/urandom >"$work/image"
check "cp 64 MiB onto $name0" cp "$work/image" "$mnt/$name0"
dd if="$sd0" of="$work/back" bs=1M count=64 iflag=direct status=none
check "sd O_DIRECT reads back what cp wrote" cmp "$work/image" "$work/back"
head -c $((64 << 20)) /dev/urandom >"$work/image2"
dd if="$work/image2" of="$sd1" bs=1M oflag=direct status=none
check "sgfs reads what sd wrote with O_DIRECT" cmp "$work/image2" <(head -c $((64 << 20)) "$mnt/$name1")
check "ls shows the disk size" test "$(stat -c %s "$mnt/$name0")" = "$(blockdev --getsize64 "$sd0")"
check "by-id links to the disk" test -n "$(ls "$mnt/by-id")"

# fio: 4 jobs, byte ranges disjoint but sharing boundary blocks (unaligned, bs=1000), so
# the read-modify-writes of shared blocks race; then a separate verify pass.
fio_jobs=()
for i in 0 1 2 3; do
	fio_jobs+=("--name=job$i" "--offset=$((333 + i * 2000000))" --size=2000000)
done
check "fio: 4 jobs write unaligned ranges sharing blocks, verify=crc32c" \
	fio --filename="$mnt/$name0" --rw=randwrite --bs=1000 --ioengine=psync --verify=crc32c \
	--do_verify=1 --verify_fatal=1 --randrepeat=1 --output="$work/fio.txt" "${fio_jobs[@]}"
check "fio: a later verify-only pass finds no errors" \
	fio --filename="$mnt/$name0" --rw=randwrite --bs=1000 --ioengine=psync --verify=crc32c \
	--verify_only=1 --verify_fatal=1 --randrepeat=1 --output="$work/fio-verify.txt" "${fio_jobs[@]}"
grep -E "err=|verify" "$work/fio-verify.txt" | head -n 5 | sed 's/^/# /'
sgfs_umount "$mnt"

# Read-only: -o ro, and a write-protected scsi_debug disk (wp=1).
mount -t fuse.sgfs "$sg0" "$mnt" -o ro
check "ro mount: write fails with EROFS" \
	bash -c "dd if=/dev/zero of=$mnt/$name0 bs=4k count=1 conv=notrunc 2>&1 | grep -q 'Read-only file system'"
sgfs_umount "$mnt"
sdebug_reload add_host=1 dev_size_mb=16 delay=0 wp=1
sgw=$(sdebug_sg_nodes | head -n 1)
mount -t fuse.sgfs "$sgw" "$mnt"
check "write-protected disk: write fails with EROFS" \
	bash -c "dd if=/dev/zero of=$mnt/$(basename "$sgw") bs=4k count=1 conv=notrunc 2>&1 | grep -q 'Read-only file system'"
check "write-protected disk: reads work" dd if="$mnt/$(basename "$sgw")" of=/dev/null bs=64k count=4 status=none
sgfs_umount "$mnt"

# Bad options and bad sources: a clear message, non-zero exit, nothing mounted.
sdebug_reload add_host=1 dev_size_mb=16 delay=0
sg0=$(sdebug_sg_nodes | head -n 1)
sd0=$(sdebug_block_nodes | head -n 1)
refuses() {
	local want=$1
	shift
	if "$@" >"$work/out" 2>&1; then
		echo "# succeeded: $*"
		sgfs_umount "$mnt"
		return 1
	fi
	sed 's/^/#   /' "$work/out"
	grep -qi -- "$want" "$work/out" && ! sgfs_mounted "$mnt"
}
check "bad option value is refused" refuses "queue_depth" sgfs "$sg0" "$mnt" -o queue_depth=abc
check "unknown option is refused" refuses "bogus" sgfs "$sg0" "$mnt" -o bogus=1
check "bad io mode is refused" refuses "io" sgfs "$sg0" "$mnt" -o io=turbo
check "missing device is refused" refuses "/dev/sg99" sgfs /dev/sg99 "$mnt"
check "a /dev path that is no sg disk's block device is refused" \
	refuses "not the block device of an sg disk" sgfs /dev/null "$mnt"
check "a partition is refused" refuses "is a partition of $sd0" sgfs "${sd0}1" "$mnt"
# A block device name means its sg disk.
block_device_serves_its_disk() {
	sgfs "$sd0" "$mnt" || return 1
	local served
	served=$(ls "$mnt")
	sgfs_umount "$mnt"
	[[ $served == *"$(basename "$sg0")"* ]]
}
check "$sd0 as SOURCE serves $sg0" block_device_serves_its_disk
check "mount -t with a bad option is refused" refuses "queue_depth" mount -t fuse.sgfs "$sg0" "$mnt" -o queue_depth=0

# fstab.
echo "$sg0 $mnt fuse.sgfs io=auto,noauto,nofail,_netdev 0 0" >>/etc/fstab
check "fstab line mounts with mount $mnt" mount "$mnt"
check "fstab mount is listed" sgfs_mounted "$mnt"
check "umount unmounts" umount "$mnt"
check "no mount left after umount" bash -c "! grep -q ' $mnt fuse.sgfs ' /proc/mounts"

# umount while a reader is busy, then SIGTERM of the daemon: no stale mount either way.
mount -t fuse.sgfs "$sg0" "$mnt"
dd if="$mnt/$(basename "$sg0")" of=/dev/null bs=4k status=none &
reader=$!
sleep 0.5
umount "$mnt" 2>/dev/null || umount -l "$mnt"
wait $reader 2>/dev/null
check "umount during a read leaves no mount" bash -c "! grep -q ' $mnt fuse.sgfs ' /proc/mounts"
sleep 0.5
check "umount during a read leaves no daemon" bash -c "! pgrep -x sgfs"
mount -t fuse.sgfs "$sg0" "$mnt"
pkill -TERM -x sgfs
for _ in $(seq 50); do sgfs_mounted "$mnt" || break; sleep 0.1; done
check "SIGTERM of the daemon unmounts" bash -c "! grep -q ' $mnt fuse.sgfs ' /proc/mounts"
check "SIGTERM: the mount point is usable again" ls "$mnt"

rm -rf "$work"
