#!/bin/bash
# Guest suite: thin provisioning (issue 12) through the sgfs mount, on three targets, each
# against an oracle sgfs did not write:
#   scsi_debug lbpu=1 lbpws=1 (lbprz=1, lbprz=0, a granule alignment): its map attribute
#     (granules still mapped) and the sd device read with O_DIRECT (zeros in a punch, the
#     old bytes just outside);
#   scsi_debug without provisioning: sd again (punch still zeroes), and no holes;
#   LIO fileio LUNs through tcm_loop (emulate_tpu=1 emulate_tpws=1, LBPRZ=0): sd and the
#     backing file's bytes, and its own holes (reported, not asserted).
# On each, the user.sgfs.* provisioning xattrs against sg_readcap and sg_vpd.
# Then SEEK_DATA/SEEK_HOLE against the map, cp to a sparse file, copy_file_range between
# disks, what FUSE forwards of the other fallocate modes, and the stacks users build on a
# disk file: loop + blkdiscard, mkfs.ext4, fstrim, -o discard (counted in .stats).
#   usage (inside the guest, via vm-run --no-scsi-debug): thin.sh BUILD_DIR
set -u
build=${1:?usage: thin.sh BUILD_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../guest-lib.sh
. "$here/guest-lib.sh"

cmake --install "$build" --prefix /usr/local >/dev/null
sparse=$build/tests/vm/vm_sparse
mnt=/mnt/sg
mkdir -p "$mnt" /mnt/ext
work=$(mktemp -d)
map=/sys/bus/pseudo/drivers/scsi_debug/map
modprobe loop
started=$SECONDS

# One random image, made once (the guest's urandom is slow); every disk is filled from it.
disk_mib=16
capacity=$((disk_mib << 20))
head -c "$capacity" /dev/urandom >"$work/pattern"

# The sum over the mounted disks of one .stats counter ("  key value" lines).
stat_sum() { awk -v key="$1" '$1 == key { sum += $2 } END { print sum + 0 }' "$mnt/.stats"; }
unmaps() { echo $(($(stat_sum zero.unmap_commands) + $(stat_sum zero.write_same_unmap_commands))); }
zero_counters() { grep -E '^ *zero\.' "$mnt/.stats" | awk '$2 != 0 { printf "%s=%s ", $1, $2 }'; }

# --- the model: what the disk must hold ------------------------------------------------

model_reset() { cp "$work/pattern" "$work/model"; }
# model_zero OFFSET LENGTH: a punch of the model, clamped at the disk's end.
model_zero() {
	local end=$(($1 + $2))
	((end > capacity)) && end=$capacity
	((end > $1)) || return 0
	dd if=/dev/zero of="$work/model" bs=64k oflag=seek_bytes iflag=count_bytes seek="$1" \
		count=$((end - $1)) conv=notrunc status=none
}
# disk_is_model DEVICE_OR_FILE: its bytes are the model's (O_DIRECT for a block device).
disk_is_model() {
	local flags=()
	[[ -b $1 ]] && flags=(iflag=direct)
	dd if="$1" bs=1M "${flags[@]}" status=none | cmp - "$work/model"
}
fill() { dd if="$work/pattern" of="$1" bs=1M oflag=direct status=none; }

# --- scsi_debug's map: granule indices ---------------------------------------------------
#
# The map attribute lists the mapped granules of the first host's store as bit indices
# ("0,3-31"). Granule i covers LBAs [i*G - S, (i+1)*G - S) with S = G - alignment when an
# alignment is set (granule 0 is then the partial [0, alignment)), else S = 0.

granule=8 alignment=0 block=512
_shift() { ((alignment)) && echo $((granule - alignment)) || echo 0; }
granules() { echo $((((capacity / block - 1 + $(_shift)) / granule) + 1)); }

# map_runs: the mapped bytes as merged "START END" lines, from the map attribute.
map_runs() {
	local text part a b s e run_s=-1 run_e=-1 shift blocks
	read -r text <"$map"
	shift=$(_shift) blocks=$((capacity / block))
	local IFS=,
	for part in $text; do
		a=${part%-*} b=${part#*-}
		s=$((a * granule - shift)) e=$(((b + 1) * granule - shift))
		((s < 0)) && s=0
		((e > blocks)) && e=$blocks
		if ((s == run_e)); then
			run_e=$e
		else
			((run_s >= 0)) && echo "$((run_s * block)) $((run_e * block))"
			run_s=$s run_e=$e
		fi
	done
	((run_s >= 0)) && echo "$((run_s * block)) $((run_e * block))"
}
map_bytes() {
	local s e sum=0
	while read -r s e; do sum=$((sum + e - s)); done < <(map_runs)
	echo $sum
}

# The map the disk must have: a bit per granule in _want, rendered like the kernel's %pbl.
want_all_mapped() {
	local n
	n=$(granules)
	_want=()
	for ((i = 0; i < n; i++)); do _want[i]=1; done
}
want_none_mapped() { _want=(); }
# want_unmapped OFFSET LENGTH: the whole granules inside the punch (and the disk) go.
want_unmapped() {
	local first=$(($1 / block)) last=$((($1 + $2) / block)) blocks=$((capacity / block))
	local shift i s
	((last > blocks)) && last=$blocks
	shift=$(_shift)
	# The first granule starting at or after `first`.
	i=$(((first + shift + granule - 1) / granule))
	for (( ; ; i++)); do
		s=$((i * granule - shift))
		((s >= first && s + granule <= last)) || break
		unset "_want[$i]"
	done
}
# want_mapped OFFSET LENGTH: the granules a write of the range touches.
want_mapped() {
	local first=$(($1 / block)) last=$((($1 + $2 - 1) / block)) shift i
	shift=$(_shift)
	for ((i = (first + shift) / granule; i <= (last + shift) / granule; i++)); do _want[i]=1; done
}
want_text() {
	local i start=-1 prev=-1 out=
	for i in "${!_want[@]}"; do
		if ((i == prev + 1 && start >= 0)); then
			prev=$i
			continue
		fi
		((start >= 0)) && out+=$( ((start == prev)) && echo "$start," || echo "$start-$prev,")
		start=$i prev=$i
	done
	((start >= 0)) && out+=$( ((start == prev)) && echo "$start" || echo "$start-$prev")
	echo "${out%,}"
}
map_is_wanted() {
	local got want
	read -r got <"$map"
	want=$(want_text)
	echo "map:  $got"
	echo "want: $want"
	[[ $got == "$want" ]]
}

# --- punches -------------------------------------------------------------------------------

# Byte ranges: aligned, unaligned, sub-block, one granule, inside one granule, across the end.
punches=("1048576 1048576" "3146728 300000" "5243000 200" "8388608 4096" "6291968 2048"
	"$((capacity - 10000)) 20000")

# punch_all FILE: fallocate -p (PUNCH_HOLE|KEEP_SIZE) of every range, into the model.
punch_all() {
	local file=$1 label=$2 off len
	for spec in "${punches[@]}"; do
		read -r off len <<<"$spec"
		check "$label: fallocate -p -o $off -l $len" fallocate -p -o "$off" -l "$len" "$file"
		model_zero "$off" "$len"
		want_unmapped "$off" "$len"
	done
}

# provisioning_oracle SG: "key 0|1|N" lines of what sg3_utils reads from the disk
# (READ CAPACITY(16), VPD B2 and B0), taken before sgfs holds the sg node.
provisioning_oracle() {
	local text key re
	text=$(sg_readcap -l "$1")
	[[ $text =~ lbpme=([01]) ]] && echo "lbpme ${BASH_REMATCH[1]}"
	# A disk without provisioning may have no VPD B2 page: then nothing is supported.
	text=$(sg_vpd -p lbpv "$1" 2>/dev/null)
	for key in LBPU LBPWS LBPWS10 LBPRZ; do
		re="\\($key\\): ([01])"
		if [[ $text =~ $re ]]; then echo "${key,,} ${BASH_REMATCH[1]}"; else echo "${key,,} 0"; fi
	done
	text=$(sg_vpd -p bl "$1")
	[[ $text =~ Optimal\ unmap\ granularity:\ ([0-9]+) ]] && echo "unmap_granularity ${BASH_REMATCH[1]}"
}
# provisioning_matches ORACLE_FILE DISK_FILE: the user.sgfs.* xattrs say the same.
provisioning_matches() {
	local key want got lbpme=0 ok=1
	while read -r key want; do
		[[ $key == lbpme ]] && lbpme=$want
		# Without provisioning the granularity means nothing.
		[[ $key == unmap_granularity && $lbpme == 0 ]] && continue
		got=$("$sparse" xattr "$2" "user.sgfs.$key")
		case $got in yes) got=1 ;; no) got=0 ;; esac
		echo "user.sgfs.$key: $got, sg3_utils: $want"
		[[ $got == "$want" ]] || ok=0
	done <"$1"
	((ok))
}

# scsi_debug_punches LABEL MAP_ORACLE PARAMS...: one disk with PARAMS, filled, punched
# through sgfs; sd must be the model; with MAP_ORACLE=1 the map must be the wanted one.
scsi_debug_punches() {
	local label=$1 map_oracle=$2
	shift 2
	sdebug_reload add_host=1 dev_size_mb=$disk_mib delay=0 "$@" || exit 1
	local sg sd name before
	sg=$(sdebug_sg_nodes) sd=$(sdebug_block_nodes) name=${sg#/dev/}
	fill "$sd"
	model_reset
	want_all_mapped
	((map_oracle)) && check "$label: the fill mapped every granule" map_is_wanted
	provisioning_oracle "$sg" >"$work/provisioning"
	mount -t fuse.sgfs "$sg" "$mnt" || exit 1
	check "$label: user.sgfs.* provisioning is what sg3_utils reads" \
		provisioning_matches "$work/provisioning" "$mnt/$name"
	before=$(unmaps)
	punch_all "$mnt/$name" "$label"
	check "$label: sgfs reads the punched ranges as zeros" disk_is_model "$mnt/$name"
	diag "$label: .stats $(zero_counters)"
	if ((map_oracle)); then
		check "$label: UNMAP or WRITE SAME(UNMAP) counted" test "$(unmaps)" -gt "$before"
		check "$label: the map lost exactly the whole granules inside the punches" map_is_wanted
	else
		diag "$label: map after the punches: $(head -c 300 "$map")"
	fi
	check "$label: sd (O_DIRECT) reads zeros in the punches and the old bytes outside" \
		disk_is_model "$sd"
	# For the SEEK checks that follow on the same disk.
	sdebug_disk=$name
}

# runs_are_map FILE: SEEK_DATA/SEEK_HOLE find exactly the mapped runs of the map.
runs_are_map() {
	"$sparse" runs "$1" >"$work/runs"
	map_runs >"$work/map-runs"
	echo "SEEK_DATA/SEEK_HOLE runs:"
	cat "$work/runs"
	echo "map runs:"
	cat "$work/map-runs"
	cmp -s "$work/runs" "$work/map-runs"
}
blocks_are_map() {
	local st_blocks
	st_blocks=$(stat -c %b "$1")
	echo "st_blocks*512 $((st_blocks * 512)), mapped $(map_bytes)"
	((st_blocks * 512 == $(map_bytes)))
}

# --- scsi_debug, lbprz=1 ----------------------------------------------------------------

thin=(lbpu=1 lbpws=1 "unmap_granularity=$granule")
alignment=0
scsi_debug_punches "lbprz=1" 1 "${thin[@]}" lbprz=1 unmap_alignment=0
file=$mnt/$sdebug_disk
check "lbprz=1: SEEK_DATA/SEEK_HOLE find the map's runs" runs_are_map "$file"
check "lbprz=1: st_blocks is the mapped bytes" blocks_are_map "$file"
seek_is() {
	local got
	got=$("$sparse" seek "$1" "$file" "$2")
	echo "lseek($2, SEEK_${1^^}) = $got, want $3"
	[[ $got == "$3" ]]
}
check "lbprz=1: SEEK_HOLE at 1 MiB + 1 stays there (inside the punched hole)" seek_is hole 1048577 1048577
check "lbprz=1: SEEK_DATA at 1 MiB finds the data at 2 MiB" seek_is data 1048576 2097152
check "lbprz=1: SEEK_DATA at the end: ENXIO" seek_is data "$capacity" "error ENXIO"
# fallocate(2) ZERO_RANGE preallocates: the punched hole at 1 MiB and data at 12 MiB become
# mapped zeros (WRITE SAME without the UNMAP bit), never holes.
sd=$(sdebug_block_nodes)
for spec in "1048576 1048576" "12582912 65536"; do
	read -r off len <<<"$spec"
	check "lbprz=1: fallocate -z -o $off -l $len" fallocate -z -o "$off" -l "$len" "$file"
	model_zero "$off" "$len"
	want_mapped "$off" "$len"
done
check "lbprz=1: after fallocate -z the map has those ranges mapped" map_is_wanted
check "lbprz=1: after fallocate -z sd (O_DIRECT) reads zeros there, the old bytes outside" \
	disk_is_model "$sd"
check "lbprz=1: after fallocate -z SEEK_DATA/SEEK_HOLE find the map's runs" runs_are_map "$file"
sgfs_umount "$mnt"

# --- scsi_debug, lbprz=0: unmapped blocks keep their old bytes (checked: UNMAP and WRITE
# SAME with UNMAP leave them), so a punch that only unmaps is wrong -------------------

scsi_debug_punches "lbprz=0" 0 "${thin[@]}" lbprz=0
file=$mnt/$sdebug_disk
check "lbprz=0: SEEK_HOLE at 0 is the end (unmapped blocks need not read zero: all data)" \
	seek_is hole 0 "$capacity"
sgfs_umount "$mnt"

# --- scsi_debug, lbprz=1 with unmap_alignment=3 -----------------------------------------

alignment=3
scsi_debug_punches "alignment 3" 1 "${thin[@]}" lbprz=1 unmap_alignment=3
check "alignment 3: SEEK_DATA/SEEK_HOLE find the map's runs" runs_are_map "$mnt/$sdebug_disk"
sgfs_umount "$mnt"
alignment=0

# --- scsi_debug without provisioning, and what FUSE forwards of the other modes --------

sdebug_reload add_host=1 dev_size_mb=$disk_mib delay=0 || exit 1
sg=$(sdebug_sg_nodes) sd=$(sdebug_block_nodes) name=${sg#/dev/}
file=$mnt/$name
fill "$sd"
model_reset
provisioning_oracle "$sg" >"$work/provisioning"
mount -t fuse.sgfs "$sg" "$mnt" || exit 1
check "no provisioning: user.sgfs.* provisioning is what sg3_utils reads" \
	provisioning_matches "$work/provisioning" "$file"
punches=("1048576 1048576" "3146728 300000" "5243000 200")
punch_all "$file" "no provisioning"
check "no provisioning: sd (O_DIRECT) reads zeros in the punches, the old bytes outside" \
	disk_is_model "$sd"
check "no provisioning: no UNMAP sent" test "$(unmaps)" = 0
diag "no provisioning: .stats $(zero_counters)"
check "no provisioning: SEEK_HOLE at 0 is the end" seek_is hole 0 "$capacity"
check "no provisioning: SEEK_DATA at 12345 is 12345" seek_is data 12345 12345
check "no provisioning: st_blocks covers the capacity" test $(($(stat -c %b "$file") * 512)) -ge "$capacity"

sgfs_umount "$mnt"

# What the kernel forwards of each fallocate mode: a fresh mount (the kernel stops
# forwarding fallocate for good once the daemon answers ENOSYS) traced with -d, where
# libfuse logs every request it gets ("opcode: FALLOCATE").
sgfs "$sg" "$mnt" -d >"$work/trace" 2>&1 &
for ((i = 0; i < 100; i++)); do
	sgfs_mounted "$mnt" && break
	_gl_sleep 0.1
done
forwarded_so_far() { grep -c "opcode: FALLOCATE" "$work/trace"; }
# fallocate_answer MODE OFFSET LENGTH: what one fallocate(2) returns and does, recorded
# against a copy of the disk taken just before; sets answer, changed (1 when sd no
# longer holds those bytes) and forwarded (1 when the request reached sgfs).
fallocate_answer() {
	local before
	dd if="$sd" of="$work/model" bs=1M iflag=direct status=none
	before=$(forwarded_so_far)
	answer=$("$sparse" fallocate "$file" "$1" "$2" "$3")
	if disk_is_model "$sd" >/dev/null 2>&1; then changed=0; else changed=1; fi
	(($(forwarded_so_far) > before)) && forwarded=1 || forwarded=0
	diag "fallocate mode $1 at $2+$3: $answer; forwarded to sgfs: $forwarded; data changed: $changed"
}
# The answers sgfs(8) documents: ZERO_RANGE zeroes; mode 0 and KEEP_SIZE (preallocation)
# succeed without writing; growing the file is EFBIG.
zeroed_there() {
	model_zero "$1" "$2"
	disk_is_model "$sd"
}
for spec in "zero+keep 2097152" "zero 2228224"; do
	read -r mode off <<<"$spec"
	fallocate_answer "$mode" "$off" 65536
	check "ZERO_RANGE ($mode): 0 (got $answer, forwarded $forwarded)" test "$answer" = 0
	check "ZERO_RANGE ($mode): sd reads zeros there, the old bytes outside" zeroed_there "$off" 65536
done
fallocate_answer 0 4194304 65536
check "mode 0 (allocate) inside the disk: 0 (got $answer) and no data change" \
	test "$answer" = 0 -a "$changed" = 0
fallocate_answer keep 4194304 65536
check "KEEP_SIZE (allocate) inside the disk: 0 (got $answer) and no data change" \
	test "$answer" = 0 -a "$changed" = 0
fallocate_answer 0 $((capacity - 4096)) 8192
check "mode 0 across the end: EFBIG (got $answer), no data change, the size stays" \
	test "$answer" = "error EFBIG" -a "$changed" = 0 -a "$(stat -c %s "$file")" = "$capacity"
fallocate_answer punch+keep 4194304 65536
check "PUNCH_HOLE|KEEP_SIZE on the traced mount: 0, forwarded" test "$answer" = 0 -a "$forwarded" = 1
check "PUNCH_HOLE|KEEP_SIZE on the traced mount: sd reads zeros there" zeroed_there 4194304 65536
fallocate_answer punch 4194304 65536
check "PUNCH_HOLE without KEEP_SIZE: EOPNOTSUPP (the kernel requires KEEP_SIZE), no data change" \
	test "$answer" = "error EOPNOTSUPP" -a "$changed" = 0
sgfs_umount "$mnt"
wait

# --- a mostly unmapped disk: cp to a sparse file, copy_file_range to another disk -------

sdebug_reload add_host=2 dev_size_mb=$disk_mib delay=0 per_host_store=1 "${thin[@]}" lbprz=1 ||
	exit 1
mapfile -t sgs < <(sdebug_sg_nodes)
mapfile -t sds < <(sdebug_block_nodes)
# The map shows the first host's store: disk 0 is the destination, disk 1 the source.
dst=${sgs[0]#/dev/} src=${sgs[1]#/dev/} dst_sd=${sds[0]} src_sd=${sds[1]}
model_reset
: >"$work/sparse-model"
truncate -s "$capacity" "$work/sparse-model"
want_none_mapped
data_bytes=0
# 1.3 MiB of data in four granule-aligned pieces, the rest never written (unmapped).
for spec in "0 262144" "5242880 1048576" "12591104 4096" "$((capacity - 65536)) 65536"; do
	read -r off len <<<"$spec"
	dd if="$work/pattern" of="$src_sd" bs=4096 iflag=skip_bytes,count_bytes oflag=seek_bytes,direct \
		skip="$off" seek="$off" count="$len" status=none
	dd if="$work/pattern" of="$work/sparse-model" bs=4096 iflag=skip_bytes,count_bytes \
		oflag=seek_bytes skip="$off" seek="$off" count="$len" conv=notrunc status=none
	want_mapped "$off" "$len"
	data_bytes=$((data_bytes + len))
done
fill "$dst_sd"
mount -t fuse.sgfs all "$mnt" || exit 1
check "source disk reads like its model through sgfs" cmp "$mnt/$src" "$work/sparse-model"
check "source st_blocks is its 1.3 MiB of data ($(stat -c %b "$mnt/$src") blocks)" \
	test $(($(stat -c %b "$mnt/$src") * 512)) = "$data_bytes"
check "cp --sparse=auto of the mostly unmapped disk to /tmp" cp --sparse=auto "$mnt/$src" "$work/copy"
check "the copy is the disk (sd, O_DIRECT)" \
	cmp "$work/copy" <(dd if="$src_sd" bs=1M iflag=direct status=none)
allocated=$(du -B1 "$work/copy" | cut -f1)
diag "the copy: $allocated bytes allocated of $capacity"
check "the copy has holes: du $allocated is below a quarter of the size" test "$allocated" -lt $((capacity / 4))

hole_bytes_before=$(stat_sum zero.copy_hole_bytes)
got=$("$sparse" copy "$mnt/$src" "$mnt/$dst")
diag "copy_file_range $src -> $dst: $got (bytes, calls); .stats $(zero_counters)"
check "copy_file_range copied the whole disk" test "${got%% *}" = "$capacity"
check "the destination is the source (sd, O_DIRECT)" \
	cmp <(dd if="$dst_sd" bs=1M iflag=direct status=none) "$work/sparse-model"
check "zero.copy_hole_bytes counted the source's holes" \
	test "$(stat_sum zero.copy_hole_bytes)" -gt "$hole_bytes_before"
check "the destination's map has the source's holes" map_is_wanted

# cp between two disks: coreutils 9.1 finds the source's holes with SEEK_DATA/SEEK_HOLE
# (st_blocks says it is sparse); the destination's old bytes must not show through them.
for how in always auto; do
	fill "$dst_sd"
	cp --sparse=$how "$mnt/$src" "$mnt/$dst"
	if cmp -s <(dd if="$dst_sd" bs=1M iflag=direct status=none) "$work/sparse-model"; then
		result="the destination is the source"
	else
		result="the destination is NOT the source (the holes kept its old bytes)"
	fi
	diag "cp --sparse=$how $src $dst: $result"
	check "cp --sparse=$how between disks: $result" test "$result" = "the destination is the source"
done
sgfs_umount "$mnt"

# --- the stacks: loop, blkdiscard, mkfs.ext4, fstrim, -o discard ------------------------

mount -t fuse.sgfs "${sgs[0]}" "$mnt" || exit 1
file=$mnt/$dst
loop=$(losetup -f --show "$file") || exit 1
diag "$loop on $file: discard_max_bytes $(<"/sys/block/${loop#/dev/}/queue/discard_max_bytes")," \
	"discard_granularity $(<"/sys/block/${loop#/dev/}/queue/discard_granularity")"
dmesg -C
dd if="$work/pattern" of="$loop" bs=1M oflag=direct status=none
sync
want_all_mapped
check "loop: a write through it mapped every granule" map_is_wanted
before=$(unmaps)
check "blkdiscard $loop" blkdiscard -f "$loop"
check "blkdiscard: UNMAP counted" test "$(unmaps)" -gt "$before"
want_none_mapped
check "blkdiscard: nothing mapped any more" map_is_wanted
check "blkdiscard: sd (O_DIRECT) reads zeros" \
	cmp <(dd if="$dst_sd" bs=1M iflag=direct status=none) <(head -c "$capacity" /dev/zero)

dd if="$work/pattern" of="$loop" bs=1M oflag=direct status=none
before=$(unmaps)
check "mkfs.ext4 on $loop" mkfs.ext4 -q -F "$loop"
check "mkfs.ext4 on $loop discarded first: UNMAP counted" test "$(unmaps)" -gt "$before"
diag "after mkfs.ext4 on the loop: $(map_bytes) of $capacity bytes mapped"
mount "$loop" /mnt/ext || exit 1
dd if="$work/pattern" of=/mnt/ext/data bs=1M count=6 conv=fsync status=none
rm /mnt/ext/data
sync
mapped_before=$(map_bytes) before=$(unmaps)
check "fstrim -v /mnt/ext" fstrim -v /mnt/ext
check "fstrim: UNMAP counted" test "$(unmaps)" -gt "$before"
diag "fstrim: mapped $mapped_before -> $(map_bytes) bytes"
check "fstrim: the deleted file's blocks are unmapped" test "$(map_bytes)" -lt "$mapped_before"
umount /mnt/ext
check "e2fsck -fn after fstrim: clean" e2fsck -fn "$loop"
mount -o discard "$loop" /mnt/ext || exit 1
dd if="$work/pattern" of=/mnt/ext/data bs=1M count=6 conv=fsync status=none
mapped_before=$(map_bytes) before=$(unmaps)
rm /mnt/ext/data
sync
# ext4 discards freed blocks when the journal commits them.
for ((i = 0; i < 50; i++)); do
	(($(unmaps) > before)) && break
	_gl_sleep 0.1
done
check "-o discard: deleting a file counts UNMAP" test "$(unmaps)" -gt "$before"
diag "-o discard: mapped $mapped_before -> $(map_bytes) bytes"
umount /mnt/ext
check "e2fsck -fn after -o discard: clean" e2fsck -fn "$loop"
losetup -d "$loop"
dmesg >"$work/dmesg"
check "dmesg: no 'operation not supported' for DISCARD" \
	bash -c "! grep -E 'not supported.*\\(DISCARD\\)' '$work/dmesg'"
# The loop device turns WRITE ZEROES with NOUNMAP into fallocate(ZERO_RANGE|KEEP_SIZE),
# which the 6.1 FUSE kernel forwards (see the mode checks above).
check "dmesg: no 'operation not supported' for WRITE_ZEROES" \
	bash -c "! grep -E 'not supported.*\\(WRITE_ZEROES\\)' '$work/dmesg'"
diag "dmesg: $(grep -c 'not supported' "$work/dmesg") 'not supported' lines"
grep 'not supported' "$work/dmesg" | head -n 3 | sed 's/^/#   /'

dd if="$work/pattern" of="$file" bs=1M conv=fsync status=none
before=$(unmaps)
check "mkfs.ext4 on $file itself" mkfs.ext4 -q -F "$file"
check "mkfs.ext4 on the file discarded first: UNMAP counted" test "$(unmaps)" -gt "$before"
check "e2fsck -fn on the file: clean" e2fsck -fn "$file"
sgfs_umount "$mnt"

# --- LIO fileio LUNs through tcm_loop: emulate_tpu=1 emulate_tpws=1, LBPRZ=0 ------------

punches=("1048576 1048576" "3146728 300000" "5243000 200" "8388608 4096" "6291968 2048"
	"$((capacity - 10000)) 20000")
if lio_setup thin512:${disk_mib}M:thin thin4k:${disk_mib}M:thin,block=4096; then
	mapfile -t luns < <(lio_devices)
	for lun in "${luns[@]}"; do
		read -r lname lsg lsd lfile <<<"$lun"
		label="LIO $lname"
		fill "$lsd"
		model_reset
		diag "$label: backing file $(du -B1 "$lfile" | cut -f1) bytes allocated after the fill"
		provisioning_oracle "$lsg" >"$work/provisioning"
		mount -t fuse.sgfs "$lsg" "$mnt" || exit 1
		check "$label: user.sgfs.* provisioning is what sg3_utils reads" \
			provisioning_matches "$work/provisioning" "$mnt/${lsg#/dev/}"
		punch_all "$mnt/${lsg#/dev/}" "$label"
		diag "$label: .stats $(zero_counters)"
		check "$label: SEEK_HOLE at 0 is the end (LBPRZ=0: all data)" \
			bash -c "[[ \$('$sparse' seek hole '$mnt/${lsg#/dev/}' 0) == $capacity ]]"
		sgfs_umount "$mnt"
		check "$label: sd (O_DIRECT) reads zeros in the punches, the old bytes outside" \
			disk_is_model "$lsd"
		check "$label: the backing file holds the same bytes" disk_is_model "$lfile"
		diag "$label: backing file $(du -B1 "$lfile" | cut -f1) bytes allocated; its data runs" \
			"(SEEK_DATA/SEEK_HOLE): $("$sparse" runs "$lfile" | tr '\n' ';')"
	done
	check "LIO: teardown" lio_teardown
else
	fail "LIO: lio_setup"
fi

diag "thin.sh ran $((SECONDS - started)) s"
rm -rf "$work"
