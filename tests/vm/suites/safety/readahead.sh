# shellcheck shell=bash disable=SC2154 # $build, $mnt, $work: set by ../safety.sh
# Safety part (sourced by ../safety.sh): read-ahead is never older than the open. A
# sequential reader leaves read-ahead windows behind; the disk is then written through its
# sd node with O_DIRECT (another path to it, as another host on a shared LUN would); a
# reader opened after that write must read the new data, not what was read ahead before.
# The oracle is the data written through /dev/sdX itself.

sdebug_reload add_host=1 dev_size_mb=32 delay=0
ra_sg=$(sdebug_sg_nodes | head -n 1)
ra_sd=$(sdebug_block_nodes | head -n 1)
ra_file=$mnt/$(basename "$ra_sg")
# 64 KiB requests; the reader stops after 4 MiB, where the next 4 MiB are rewritten.
ra_count=64
ra_skip=$ra_count

# Old data everywhere; new data for the 4 MiB after the first reader stopped.
ra_prepare() {
	head -c $((32 << 20)) /dev/urandom >"$work/ra-old"
	dd if="$work/ra-old" of="$ra_sd" bs=1M oflag=direct status=none
	head -c $((ra_count << 16)) /dev/urandom >"$work/ra-new"
}
ra_write_behind() {
	dd if="$work/ra-new" of="$ra_sd" bs=64k seek=$ra_skip oflag=direct conv=notrunc status=none
}
ra_read_on() {
	dd if="$ra_file" bs=64k skip=$ra_skip count=$ra_count status=none
}
ra_read_ahead_bytes() { awk '$1 == "readahead_bytes" { print $2; exit }' "$mnt/.stats"; }

ra_prepare
check "read-ahead: mount with default options" sgfs "$ra_sg" "$mnt"
dd if="$ra_file" of=/dev/null bs=64k count=$ra_count status=none
ra_ahead=$(ra_read_ahead_bytes)
check "read-ahead: the first reader read ahead past where it stopped ($ra_ahead bytes)" \
	test "${ra_ahead:-0}" -gt $((ra_count << 16))
ra_write_behind
check "read-ahead: a fresh open reading on gets the data written through $ra_sd since" \
	cmp "$work/ra-new" <(ra_read_on)
sgfs_umount "$mnt"

# Two readers at once: the first stays open (its windows too) while the disk is written;
# the second, opened after the write, must not be answered from the first one's windows.
ra_prepare
check "read-ahead, two readers: mount" sgfs "$ra_sg" "$mnt"
exec {ra_first}<"$ra_file"
dd of=/dev/null bs=64k count=$ra_count status=none <&"$ra_first"
ra_write_behind
check "read-ahead, two readers: one opened after the write gets the new data" \
	cmp "$work/ra-new" <(ra_read_on)
exec {ra_first}<&-
sgfs_umount "$mnt"
