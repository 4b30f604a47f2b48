#!/bin/bash
# Guest suite: copy_file_range offloaded with EXTENDED COPY(LID1) (issue 13), one boot.
# LIO fileio LUNs through tcm_loop (3PC=1, one copy manager for the LUNs of the tpgt) and a
# scsi_debug disk (no 3PC). Every copy's result is held against an oracle sgfs did not
# write: the LUN's backing file read directly (or sd with O_DIRECT), compared with an
# expected file dd builds from the source's backing file. .stats tells whether the copy
# was offloaded (offload.*, on the source disk) or went through sg memory (copy.*):
#   1 cp of a whole LUN to another; 2 ranged copies at unaligned offsets and across the
#   end; 3 an overlapping copy within one LUN (the VFS refuses it); 4 one LUN, no overlap;
#   5 to scsi_debug (no 3PC) and to a LUN on another tpgt (LIO refuses: fallback);
#   6 4096-byte to 512-byte blocks; 7 nocopy_offload (when sgfs has it); 8 timings of cp
#   against sg_dd and sg_xcopy (diag lines only).
#   usage (inside the guest, via vm-run --no-scsi-debug): offload.sh BUILD_DIR
set -u
build=${1:?usage: offload.sh BUILD_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../guest-lib.sh
. "$here/guest-lib.sh"

cmake --install "$build" --prefix /usr/local >/dev/null
sparse=$build/tests/vm/vm_sparse
mnt=/mnt/sg
mkdir -p "$mnt"
work=$(mktemp -d -p /run)
started=$SECONDS
mib=$((1 << 20))
size=$((64 * mib)) small=$((16 * mib))

# Random backing files, written before the LUNs exist (the guest's urandom is slow;
# python's generator is not).
python3 -c "import random, sys
random.seed(13)
for name, n in (('a', $size), ('c', $small)):
    open('$work/' + name + '.img', 'wb').write(random.randbytes(n))" || exit 1
truncate -s "$size" "$work/b.img"

sdebug_reload add_host=1 dev_size_mb=16 delay=0 || exit 1
sdebug_sg=$(sdebug_sg_nodes) sdebug_sd=$(sdebug_block_nodes)
lio_setup "A:64M:file=$work/a.img" "B:64M:file=$work/b.img" "C4k:16M:block=4096,file=$work/c.img" ||
	exit 1
declare -A sg sd img
while read -r name node blk file; do
	sg[$name]=$node sd[$name]=$blk img[$name]=$file
done < <(lio_devices)
A=${sg[A]#/dev/} B=${sg[B]#/dev/} C=${sg[C4k]#/dev/} D=${sdebug_sg#/dev/}
diag "A $A ${sd[A]}, B $B ${sd[B]}, C4k $C ${sd[C4k]} (block 4096), scsi_debug $D $sdebug_sd"
diag "A: $(sg_inq "${sg[A]}" | grep -o '3PC=[01]'), scsi_debug: $(sg_inq "$sdebug_sg" | grep -o '3PC=[01]')"

# counter DISK KEY: one counter of one disk in .stats ("device sgN" then "  key value").
counter() {
	awk -v dev="device $1" -v key="$2" '$0 == dev { in_dev = 1; next } /^device / { in_dev = 0 }
		in_dev && $1 == key { print $2; found = 1 } END { if (!found) print 0 }' "$mnt/.stats"
}
sg_path_bytes() { echo $(($(counter "$1" copy.user_copy_bytes) + $(counter "$1" copy.sg_copy_bytes))); }
offload_figures() {
	local key out=
	for key in bytes commands refused_unsupported refused_unreachable refused_other fallback_bytes; do
		out+="$key=$(counter "$1" offload.$key) "
	done
	echo "$out"
}
# expect_copy SOURCE_FILE OFFSET_IN EXPECTED OFFSET_OUT LENGTH: dd's idea of the copy.
expect_copy() {
	dd if="$1" of="$3" bs=64k iflag=skip_bytes,count_bytes oflag=seek_bytes conv=notrunc \
		skip="$2" seek="$4" count="$5" status=none
}
# copy_range SRC IN DST OUT LEN: vm_sparse copy-range on the mount; sets copied, copy_end.
copy_range() {
	local calls
	read -r copied calls copy_end < <("$sparse" copy-range "$mnt/$1" "$2" "$mnt/$3" "$4" "$5")
	diag "copy_file_range $1@$2 -> $3@$4 length $5: $copied bytes in $calls calls, $copy_end"
}
dio() { dd if="$1" bs=1M iflag=direct status=none; }
# Per-cp CPU of the sgfs daemon, in clock ticks (utime + stime of /proc/PID/stat).
daemon_ticks() {
	local pid fields
	pid=$(pidof sgfs) || {
		echo 0
		return
	}
	read -ra fields <"/proc/$pid/stat"
	echo $((fields[13] + fields[14]))
}

# A LUN E on a second tpgt of the tcm_loop target: another SCSI target (H:0:2:0), outside the
# I_T nexus of A's copy manager. lio_setup makes one tpgt, so this one is built here the
# same way (configfs: backstore, unit serial, enable, nexus, LUN link) and undone by
# other_target_teardown before lio_teardown.
other_tpg=/sys/kernel/config/target/loopback/naa.50014050000000a1/tpgt_2
other_store=/sys/kernel/config/target/core/fileio_0/E
other_target_setup() {
	local dev nodes
	mkdir "$other_store" &&
		echo "fd_dev_name=$work/e.img,fd_dev_size=$small" >"$other_store/control" &&
		printf 'lun%03d%013x\n' 9 233 >"$other_store/wwn/vpd_unit_serial" &&
		echo 1 >"$other_store/enable" &&
		mkdir -p "$other_tpg/lun/lun_0" &&
		echo naa.50014050000000a3 >"$other_tpg/nexus" &&
		ln -s "$other_store" "$other_tpg/lun/lun_0/E" || return 1
	for ((i = 0; i < 300; i++)); do
		for dev in /sys/bus/scsi/devices/*:0:2:0; do
			nodes=("$dev"/scsi_generic/* "$dev"/block/*)
			if [[ -e ${nodes[0]} && -e ${nodes[1]} && -e /dev/${nodes[0]##*/} && -e /dev/${nodes[1]##*/} ]]; then
				sg[E]=/dev/${nodes[0]##*/} sd[E]=/dev/${nodes[1]##*/}
				sg_turs "${sg[E]}" >/dev/null 2>&1
				sg_turs "${sg[E]}" >/dev/null 2>&1
				return 0
			fi
		done
		_gl_sleep 0.1
	done
	echo "no sg and sd nodes for H:0:2:0 after 30 s" >&2
	return 1
}
other_target_teardown() {
	rm -f "$other_tpg/lun/lun_0/E"
	[[ -d $other_tpg/lun/lun_0 ]] && rmdir "$other_tpg/lun/lun_0"
	[[ -d $other_tpg ]] && {
		echo NULL >"$other_tpg/nexus" 2>/dev/null
		rmdir "$other_tpg"
	}
	[[ -d $other_store ]] && rmdir "$other_store"
	return 0
}
truncate -s "$small" "$work/e.img"
E=
if other_target_setup; then
	E=${sg[E]#/dev/}
	diag "E (second tpgt) $E ${sd[E]}: $(sg_inq "${sg[E]}" | grep -o '3PC=[01]')"
else
	diag "second tpgt: not set up"
	other_target_teardown
fi

mount -t fuse.sgfs all "$mnt" || exit 1

# --- 1. cp of a whole LUN to another LUN of the same target --------------------------------
before_bytes=$(counter "$A" offload.bytes) before_cmds=$(counter "$A" offload.commands)
before_a=$(sg_path_bytes "$A") before_b=$(sg_path_bytes "$B") ticks=$(daemon_ticks)
TIMEFORMAT="%R s wall, %U s user, %S s sys"
{ time cp "$mnt/$A" "$mnt/$B"; } 2>"$work/time" || fail "cp A B" "$(cat "$work/time")"
diag "cp 64 MiB A -> B with offload: $(tail -n1 "$work/time"); sgfs daemon" \
	"$(($(daemon_ticks) - ticks)) ticks of CPU"
diag "A .stats: $(offload_figures "$A")"
check "cp A B: B's backing file is A's" cmp "${img[B]}" "${img[A]}"
check "cp A B: sgfs reads B as A's backing file" cmp "$mnt/$B" "${img[A]}"
offloaded=$(($(counter "$A" offload.bytes) - before_bytes))
check "cp A B: offload.bytes of A grew by the size ($offloaded of $size)" test "$offloaded" = "$size"
check "cp A B: offload.commands of A grew" test "$(counter "$A" offload.commands)" -gt "$before_cmds"
grown_a=$(($(sg_path_bytes "$A") - before_a)) grown_b=$(($(sg_path_bytes "$B") - before_b))
check "cp A B: copy.user_copy_bytes + copy.sg_copy_bytes of A ($grown_a) and B ($grown_b) only for bytes not offloaded" \
	test $((grown_a + grown_b)) -le $((2 * (size - offloaded)))

# --- 2. ranged copies at unaligned byte offsets ---------------------------------------------
cp "${img[B]}" "$work/expect"
len=$((5 * mib + 123)) before_bytes=$(counter "$A" offload.bytes)
copy_range "$A" 1000 "$B" 3000 "$len"
expect_copy "${img[A]}" 1000 "$work/expect" 3000 "$len"
check "ranged A@1000 -> B@3000, 5 MiB + 123: all copied ($copied, $copy_end)" \
	test "$copied" = "$len" -a "$copy_end" = "done"
check "ranged A@1000 -> B@3000: B's backing file is dd's result" cmp "${img[B]}" "$work/expect"
diag "ranged, different misalignments: offload.bytes of A grew by $(($(counter "$A" offload.bytes) - before_bytes))"

# The same misalignment at both ends: the whole blocks between may go to the copy manager.
len=$((5 * mib + 123)) before_bytes=$(counter "$A" offload.bytes)
copy_range "$A" 1000 "$B" $((8 * mib + 1000)) "$len"
expect_copy "${img[A]}" 1000 "$work/expect" $((8 * mib + 1000)) "$len"
check "ranged A@1000 -> B@8M+1000, 5 MiB + 123: all copied ($copied, $copy_end)" \
	test "$copied" = "$len" -a "$copy_end" = "done"
check "ranged A@1000 -> B@8M+1000: B's backing file is dd's result" cmp "${img[B]}" "$work/expect"
diag "ranged, same misalignment: offload.bytes of A grew by $(($(counter "$A" offload.bytes) - before_bytes))"

# Across B's end: what fits is copied, the rest is short.
out=$((size - mib - 7)) len=$((3 * mib))
copy_range "$A" $((10 * mib + 1)) "$B" "$out" "$len"
expect_copy "${img[A]}" $((10 * mib + 1)) "$work/expect" "$out" $((size - out))
check "ranged across B's end: copied $copied = what fits ($((size - out)))" \
	test "$copied" = $((size - out))
check "ranged across B's end: B's backing file is dd's result (same size)" \
	cmp "${img[B]}" "$work/expect"

# --- 3. the same LUN, overlapping ------------------------------------------------------------
# The VFS refuses an overlapping copy_file_range within one file (EINVAL, in
# generic_copy_file_checks) before FUSE sees it: sgfs's memmove copy (never offloaded) is
# out of reach from here; A must stay as it was.
cp "${img[A]}" "$work/a-before"
before_bytes=$(counter "$A" offload.bytes) before_cmds=$(counter "$A" offload.commands)
copy_range "$A" 0 "$A" "$mib" $((8 * mib))
check "overlap A[0,8M) -> A@1M: the kernel refuses it, EINVAL ($copied bytes, $copy_end)" \
	test "$copied" = 0 -a "$copy_end" = EINVAL
check "overlap A[0,8M) -> A@1M: A's backing file is unchanged" cmp "${img[A]}" "$work/a-before"
check "overlap: offload.bytes and offload.commands of A unchanged" \
	test "$(counter "$A" offload.bytes)" = "$before_bytes" -a "$(counter "$A" offload.commands)" = "$before_cmds"

# --- 4. the same LUN without overlap: offloaded ---------------------------------------------
cp "${img[A]}" "$work/expect"
before_bytes=$(counter "$A" offload.bytes)
copy_range "$A" 0 "$A" $((32 * mib)) $((4 * mib))
expect_copy "$work/expect" 0 "$work/expect" $((32 * mib)) $((4 * mib))
check "A[0,4M) -> A@32M: copied 4 MiB ($copied)" test "$copied" = $((4 * mib))
check "A[0,4M) -> A@32M: A's backing file is dd's result" cmp "${img[A]}" "$work/expect"
check "A[0,4M) -> A@32M: offload.bytes of A grew by 4 MiB" \
	test $(($(counter "$A" offload.bytes) - before_bytes)) = $((4 * mib))

# --- 5. to scsi_debug (no 3PC): no EXTENDED COPY, right data -------------------------------
before_cmds=$(counter "$A" offload.commands)
copy_range "$A" 0 "$D" 0 "$small"
diag "A -> scsi_debug: A .stats: $(offload_figures "$A")"
check "A -> scsi_debug: copied 16 MiB ($copied)" test "$copied" = "$small"
check "A -> scsi_debug: sd (O_DIRECT) holds A's first 16 MiB" \
	cmp <(dio "$sdebug_sd") <(head -c "$small" "${img[A]}")
check "A -> scsi_debug: no EXTENDED COPY sent (offload.commands of A unchanged)" \
	test "$(counter "$A" offload.commands)" = "$before_cmds"
# To E, on another tpgt: A's copy manager cannot reach it; the copy falls back.
if [[ -n $E ]]; then
	before_cmds=$(counter "$A" offload.commands) before_fallback=$(counter "$A" offload.fallback_bytes)
	before_refused=$(($(counter "$A" offload.refused_unsupported) + $(counter "$A" offload.refused_unreachable) + $(counter "$A" offload.refused_other)))
	copy_range "$A" 0 "$E" 0 "$small"
	diag "A -> E (second tpgt): A .stats: $(offload_figures "$A")"
	check "A -> E (second tpgt): copied 16 MiB ($copied)" test "$copied" = "$small"
	check "A -> E (second tpgt): E's backing file holds A's first 16 MiB" \
		cmp "$work/e.img" <(head -c "$small" "${img[A]}")
	refused=$(($(counter "$A" offload.refused_unsupported) + $(counter "$A" offload.refused_unreachable) + $(counter "$A" offload.refused_other)))
	check "A -> E (second tpgt): a refusal counted and the copy fell back" \
		test "$refused" -gt "$before_refused" -a "$(counter "$A" offload.fallback_bytes)" -gt "$before_fallback"
else
	fail "a LUN on a second tpgt" "not set up"
fi

# --- 6. a 4096-byte-block LUN to a 512-byte-block LUN: no offload --------------------------
cp "${img[B]}" "$work/expect"
before_cmds=$(counter "$C" offload.commands)
copy_range "$C" 0 "$B" 0 "$small"
expect_copy "${img[C4k]}" 0 "$work/expect" 0 "$small"
check "C4k -> B: copied 16 MiB ($copied)" test "$copied" = "$small"
check "C4k -> B: B's backing file is dd's result" cmp "${img[B]}" "$work/expect"
check "C4k -> B: no EXTENDED COPY (offload.commands of C4k unchanged)" \
	test "$(counter "$C" offload.commands)" = "$before_cmds"
diag "C4k .stats: $(offload_figures "$C")"
sgfs_umount "$mnt"

# --- 7. nocopy_offload ----------------------------------------------------------------------
if sgfs --help 2>&1 | grep -q nocopy_offload; then
	# A fresh pattern in B first, so that the copy has something to change.
	dd if="${img[C4k]}" of="${sd[B]}" bs=1M oflag=direct status=none
	mount -t fuse.sgfs -o nocopy_offload all "$mnt" || exit 1
	ticks=$(daemon_ticks)
	{ time cp "$mnt/$A" "$mnt/$B"; } 2>"$work/time" || fail "nocopy_offload: cp A B" "$(cat "$work/time")"
	diag "cp 64 MiB A -> B with nocopy_offload: $(tail -n1 "$work/time"); sgfs daemon" \
		"$(($(daemon_ticks) - ticks)) ticks of CPU; copy.user_copy_bytes + copy.sg_copy_bytes" \
		"A $(sg_path_bytes "$A"), B $(sg_path_bytes "$B")"
	check "nocopy_offload: cp A B: B's backing file is A's" cmp "${img[B]}" "${img[A]}"
	check "nocopy_offload: offload.bytes and offload.commands of A stay 0" \
		test "$(counter "$A" offload.bytes)" = 0 -a "$(counter "$A" offload.commands)" = 0
	sgfs_umount "$mnt"
else
	skip_check "nocopy_offload" "sgfs --help has no nocopy_offload yet"
fi

# --- 8. figures: the same 64 MiB by sg_dd (direct IO) and by sg_xcopy -----------------------
blocks=$((size / 512))
{ time sg_dd if="${sg[A]}" of="${sg[B]}" bs=512 bpt=2048 count=$blocks iflag=dio oflag=dio \
	>/dev/null 2>&1; } 2>"$work/time"
diag "sg_dd iflag=dio oflag=dio 64 MiB A -> B: $(tail -n1 "$work/time")"
{ time sg_xcopy if="${sg[A]}" of="${sg[B]}" bs=512 count=$blocks >/dev/null 2>&1; } 2>"$work/time"
diag "sg_xcopy 64 MiB A -> B: $(tail -n1 "$work/time")"
check "sg_xcopy: B's backing file is A's" cmp "${img[B]}" "${img[A]}"

if [[ -n $E ]]; then
	diag "sg_xcopy A -> E (second tpgt) says: $(sg_xcopy -v if="${sg[A]}" of="${sg[E]}" bs=512 count=2048 2>&1 |
		grep -v -E "^ *[0-9a-f]{2} " | grep -i -E "sense|abort|reach|fail|xcopy" | tail -n 6 | tr "\n" ";")"
fi
check "second tpgt: teardown" other_target_teardown
check "LIO: teardown" lio_teardown
diag "offload.sh ran $((SECONDS - started)) s"
rm -rf "$work"
