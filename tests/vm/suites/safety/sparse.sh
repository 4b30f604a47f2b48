# shellcheck shell=bash disable=SC2154 # $mnt, $work: set by ../safety.sh
# Part of safety.sh (issue 11, item 3): tools that skip holes in a regular destination
# (cp --sparse, qemu-img convert, dd conv=sparse) and truncate get the right disk. Before
# each writer the disk is filled with random bytes through /dev/sdX; after it, the disk read
# through /dev/sdX with O_DIRECT must equal the image zero-padded to the capacity (cmp),
# and qemu-img compare must agree. Three disks: thick, thin with LBPRZ=1 (zeroed by WRITE
# SAME with the UNMAP bit: scsi_debug's map must show the zeroed ranges unmapped) and thin
# with LBPRZ=0 (unmapped blocks keep their old bytes there, so no UNMAP bit). .stats must
# show the device's own zeroing commands, not host writes. Plain UNMAP is never a zeroing
# means (the device may ignore it): no counter for it exists. Last, with cache=page a file
# opened before a truncate must read the zeros through its old fd and mapping.
#   variables from safety.sh: $build $here $mnt $work

sp_size_mb=64
sp_capacity=$((sp_size_mb << 20))
sp_image=$work/sparse.img
sp_padded=$work/sparse.padded
sp_back=$work/sparse.back
sp_noise=$work/sparse.noise

# A 40 MiB image, its last 4 MiB a hole, 16 pieces of 256 KiB random data at unaligned
# offsets (10% data); the padded copy is what the 64 MiB disk must hold after a writer.
truncate -s 40M "$sp_image"
head -c $((16 << 18)) /dev/urandom >"$work/sparse.data"
sp_pieces=()
for ((i = 0; i < 16; i++)); do
	sp_pieces+=($((i * (9 << 18) + i * 4099)))
	dd if="$work/sparse.data" of="$sp_image" bs=256K skip="$i" count=1 oflag=seek_bytes \
		seek="${sp_pieces[i]}" conv=notrunc status=none
done
cp "$sp_image" "$sp_padded"
truncate -s "$sp_capacity" "$sp_padded"
qemu-img convert -f raw -O qcow2 "$sp_image" "$work/z.qcow2"
head -c "$sp_capacity" /dev/urandom >"$sp_noise"

sp_stat() { awk -v key="$1" '$1 == key { sum += $2 } END { print sum + 0 }' "$mnt/.stats"; }
sp_fill() { dd if="$sp_noise" of="$sp_sd" bs=1M oflag=direct status=none; }
# The disk as the kernel's sd reads it, past any page cache.
sp_read_back() { dd if="$sp_sd" of="$sp_back" bs=1M iflag=direct status=none; }
# sp_disk_is_image [LENGTH]: the disk holds the image, zero-padded to the capacity (or its
# first LENGTH bytes are the image's: qemu-img convert -n writes the image's length only).
sp_disk_is_image() {
	local length=${1:-$sp_capacity}
	sp_read_back && cmp -n "$length" "$sp_padded" "$sp_back" || return 1
	if ((length < sp_capacity)); then
		truncate -s "$length" "$sp_back"
	fi
	qemu-img compare -f raw -F raw "$sp_image" "$sp_back"
}

# Every mapped range of scsi_debug's map (in granules of 8 blocks) lies within a data piece,
# widened to 64 KiB (what a writer's buffer may round it to): holes and tail were unmapped.
sp_only_data_mapped() {
	local map range first last i ok lo hi
	read -r map </sys/bus/pseudo/drivers/scsi_debug/map
	echo "map: $map"
	IFS=, read -ra ranges <<<"$map"
	for range in "${ranges[@]}"; do
		[[ -z $range ]] && continue
		first=${range%-*} last=${range#*-}
		ok=0
		for i in "${sp_pieces[@]}"; do
			# Rounded out to whole 64 KiB (16 granules of 8 blocks): the truncation is meant.
			# shellcheck disable=SC2017
			lo=$((i / 65536 * 16)) hi=$(((i + (1 << 18) + 65535) / 65536 * 16))
			((first >= lo && last < hi)) && ok=1 && break
		done
		((ok)) || {
			echo "granules $range are mapped but hold no data of the image"
			return 1
		}
	done
}

# sp_writer LABEL COMMAND...: fill, write the image with COMMAND, check the disk.
sp_writer() {
	local label=$1
	shift
	sp_fill
	check "$sp_kind: $label" "$@"
	check "$sp_kind: after $label, sd O_DIRECT reads the image, zeros after it" sp_disk_is_image
}

# The same for a writer that does not truncate: the image's length is checked.
sp_writer_notrunc() {
	local label=$1
	shift
	sp_fill
	check "$sp_kind: $label" "$@"
	check "$sp_kind: after $label, sd O_DIRECT reads the image over its length" \
		sp_disk_is_image "$(stat -c %s "$sp_image")"
}

sp_counters() {
	diag "$sp_kind: lbpme $(sp_stat lbpme) lbprz $(sp_stat lbprz) lbpu $(sp_stat lbpu)" \
		"lbpws $(sp_stat lbpws) unmap_granularity $(sp_stat unmap_granularity)" \
		"max_write_same_blocks $(sp_stat max_write_same_blocks)"
	diag "$sp_kind: zero.write_same_commands $(sp_stat zero.write_same_commands)" \
		"zero.write_same_unmap_commands $(sp_stat zero.write_same_unmap_commands)" \
		"zero.host_bytes $(sp_stat zero.host_bytes) zero.fallbacks $(sp_stat zero.fallbacks)"
}

sp_disk() {
	sp_kind=$1
	shift
	sdebug_reload add_host=1 dev_size_mb=$sp_size_mb delay=0 "$@" || return 1
	sp_sg=$(sdebug_sg_nodes) sp_sd=$(sdebug_block_nodes)
	sp_file=$mnt/${sp_sg#/dev/}
	mount -t fuse.sgfs "$sp_sg" "$mnt" || return 1

	sp_writer "cp --sparse=auto" cp --sparse=auto "$sp_image" "$sp_file"
	sp_writer "cp --sparse=always" cp --sparse=always "$sp_image" "$sp_file"
	if [[ $sp_kind == thin-lbprz1 ]]; then
		check "$sp_kind: scsi_debug's map: only the image's data is mapped" sp_only_data_mapped
	fi
	sp_writer "qemu-img convert -O raw" qemu-img convert -f qcow2 -O raw "$work/z.qcow2" "$sp_file"
	sp_writer_notrunc "qemu-img convert -n -O raw" \
		qemu-img convert -n -f qcow2 -O raw "$work/z.qcow2" "$sp_file"
	sp_writer "dd conv=sparse" dd if="$sp_image" of="$sp_file" bs=64K conv=sparse status=none
	sp_counters
	case $sp_kind in
	thick)
		check "$sp_kind: zeroed by WRITE SAME without the UNMAP bit, no host writes" \
			test "$(sp_stat zero.write_same_commands)" -gt 0 \
			-a "$(sp_stat zero.write_same_unmap_commands)" = 0 \
			-a "$(sp_stat zero.host_bytes)" = 0 -a "$(sp_stat zero.fallbacks)" = 0
		;;
	thin-lbprz1)
		check "$sp_kind: whole granules zeroed by WRITE SAME with UNMAP, no host writes" \
			test "$(sp_stat zero.write_same_unmap_commands)" -gt 0 \
			-a "$(sp_stat zero.host_bytes)" = 0 -a "$(sp_stat zero.fallbacks)" = 0
		;;
	thin-lbprz0)
		check "$sp_kind: unmapped blocks do not read zero: WRITE SAME, never the UNMAP bit" \
			test "$(sp_stat zero.write_same_commands)" -gt 0 \
			-a "$(sp_stat zero.write_same_unmap_commands)" = 0 \
			-a "$(sp_stat zero.host_bytes)" = 0 -a "$(sp_stat zero.fallbacks)" = 0
		;;
	esac

	# truncate(2): from the new size on the disk reads zero, before it nothing changed.
	local half=$((sp_capacity / 2 + 1000))
	sp_fill
	check "$sp_kind: truncate -s $half" truncate -s "$half" "$sp_file"
	check "$sp_kind: after truncate -s $half, sd reads the old bytes before, zeros from it" \
		bash -c "dd if=$sp_sd of=$sp_back bs=1M iflag=direct status=none &&
			cmp -n $half $sp_noise $sp_back &&
			cmp -n $((sp_capacity - half)) -i $half:0 $sp_back /dev/zero"
	check "$sp_kind: the size stays the capacity" test "$(stat -c %s "$sp_file")" = "$sp_capacity"
	# truncate(2) by path (coreutils truncate uses ftruncate(2) on an fd).
	local third=$((sp_capacity / 3))
	check "$sp_kind: truncate(2) at $third" python3 -c "import os, sys; os.truncate(sys.argv[1], $third)" "$sp_file"
	check "$sp_kind: after truncate(2), zeros from $third on, before it the old bytes" \
		bash -c "dd if=$sp_sd of=$sp_back bs=1M iflag=direct status=none &&
			cmp -n $third $sp_noise $sp_back &&
			cmp -n $((sp_capacity - third)) -i $third:0 $sp_back /dev/zero"
	check "$sp_kind: truncate -s 0" truncate -s 0 "$sp_file"
	check "$sp_kind: after truncate -s 0, sd reads zeros only" \
		bash -c "dd if=$sp_sd of=$sp_back bs=1M iflag=direct status=none &&
			cmp -n $sp_capacity $sp_back /dev/zero"
	check "$sp_kind: truncate past the capacity: File too large" \
		bash -c "! truncate -s $((sp_capacity + (1 << 20))) $sp_file 2>$work/err &&
			grep -q 'File too large' $work/err"
	sgfs_umount "$mnt"
}

sp_disk thick
sp_disk thin-lbprz1 lbpu=1 lbpws=1 lbprz=1 unmap_granularity=8
sp_disk thin-lbprz0 lbpu=1 lbpws=1 lbprz=0 unmap_granularity=8

# A read-only mount refuses to zero.
sdebug_reload add_host=1 dev_size_mb=$sp_size_mb delay=0 || exit 1
sp_sg=$(sdebug_sg_nodes) sp_sd=$(sdebug_block_nodes)
sp_fill
mount -t fuse.sgfs "$sp_sg" "$mnt" -o ro
check "ro mount: truncate fails with Read-only file system" \
	bash -c "! truncate -s 0 $mnt/${sp_sg#/dev/} 2>$work/err && grep -q 'Read-only file system' $work/err"
sgfs_umount "$mnt"
check "ro mount: the disk is untouched" bash -c "dd if=$sp_sd of=$sp_back bs=1M iflag=direct status=none && cmp $sp_noise $sp_back"

# cache=page: the file keeps its size on truncate, so the kernel drops no cached page by
# itself; sgfs must. (Every open drops the cache, keep_cache being off, so only a truncate
# without an open shows it: ftruncate(2) on an fd opened before, truncate(2) by path.) A
# reader opened and mapped (MAP_SHARED) before reads 64 KiB at 1 MiB and at 3 MiB into the
# page cache; ftruncate at 3 MiB must leave 1 MiB old and make 3 MiB read zeros through the
# old fd and the mapping; truncate(2) to 0 from another process must zero 1 MiB too. sd with
# O_DIRECT is the oracle for the disk itself.
sp_stale_reader() {
	python3 - "$1" "$2" <<'PY'
import mmap, os, subprocess, sys, time
path, noise = sys.argv[1], sys.argv[2]
length, low, high = 65536, 1 << 20, 3 << 20
with open(noise, "rb") as f:
    old = {at: (f.seek(at), f.read(length))[1] for at in (low, high)}
zeros = bytes(length)
writer = os.open(path, os.O_WRONLY)
reader = os.open(path, os.O_RDONLY)
mapped = mmap.mmap(reader, 4 << 20, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)

# sgfs drops the cached pages right after answering the truncation (sgfs(8), cache=page):
# zeros are awaited for a while (a guard against hanging, not a timing check).
def expect(at, wanted, when, settle=False):
    for _ in range(1000 if settle else 1):
        if os.pread(reader, length, at) == wanted and mapped[at:at + length] == wanted:
            return
        time.sleep(0.01)
    if os.pread(reader, length, at) != wanted:
        sys.exit(f"{when}: the fd opened before reads the wrong bytes at {at}")
    sys.exit(f"{when}: the mapping made before reads the wrong bytes at {at}")

expect(low, old[low], "before any truncate")
expect(high, old[high], "before any truncate")
os.ftruncate(writer, high)
expect(low, old[low], "after ftruncate at 3 MiB")
expect(high, zeros, "after ftruncate at 3 MiB", settle=True)
subprocess.run([sys.executable, "-c", "import os, sys; os.truncate(sys.argv[1], 0)", path],
               check=True)
expect(low, zeros, "after truncate(2) to 0", settle=True)
PY
}
if command -v python3 >/dev/null; then
	sp_fill
	check "cache=page: mount" sgfs "$sp_sg" "$mnt" -o cache=page
	check "cache=page: after truncate, an fd and a mapping from before it read zeros" \
		sp_stale_reader "$mnt/${sp_sg#/dev/}" "$sp_noise"
	check "cache=page: after truncate -s 0, sd reads zeros only" \
		bash -c "dd if=$sp_sd of=$sp_back bs=1M iflag=direct status=none &&
			cmp -n $sp_capacity $sp_back /dev/zero"
	sgfs_umount "$mnt"
else
	skip_check "cache=page: truncate drops the cached pages" "no python3 in the guest"
fi
