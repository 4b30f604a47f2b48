# shellcheck shell=bash
# Part of safety.sh (sourced; $build $here $mnt $work set): disks in use are never served,
# and a served disk is the mount's alone (issue 11, items 1 and 2). The oracles are the
# kernel's: mount(8), mke2fs and wipefs get EBUSY from their own O_EXCL opens, e2fsck
# finds the mounted file system intact, /proc/*/fd says which process holds the disk.

iu_e=$work/in_use.e     # /dev/sda's file system
iu_x=$work/in_use.x     # where tools try to mount what sgfs serves
iu_other=$work/in_use.o # a second sgfs mount point
mkdir -p "$iu_e" "$iu_x" "$iu_other"

if ! sdebug_reload add_host=2 dev_size_mb=64 per_host_store=1 delay=0; then
	fail "in_use: scsi_debug reload"
	return 0
fi
mapfile -t iu_sg < <(sdebug_sg_nodes)
mapfile -t iu_sd < <(sdebug_block_nodes)
iu_id0=$(sgfs --list | awk -v sg="${iu_sg[0]}" '$7 == sg { print $NF }')
iu_id1=$(sgfs --list | awk -v sg="${iu_sg[1]}" '$7 == sg { print $NF }')

# iu_mount_fails NAME LINE SOURCE DIR: `mount -t fuse.sgfs SOURCE DIR` fails, says exactly
# LINE on stderr, and leaves nothing mounted at DIR.
iu_mount_fails() {
	local want=$1 source=$2 dir=$3 before after
	before=$(grep -c " $dir " /proc/self/mountinfo)
	if mount -t fuse.sgfs "$source" "$dir" 2>"$work/iu.err"; then
		echo "mount $source $dir succeeded"
		return 1
	fi
	after=$(grep -c " $dir " /proc/self/mountinfo)
	[[ $before == "$after" ]] || {
		echo "mounts at $dir: $before before, $after after"
		return 1
	}
	[[ $(<"$work/iu.err") == "$want" ]] || {
		echo "stderr:   $(<"$work/iu.err")"
		echo "expected: $want"
		return 1
	}
}

# The pid of the process holding DEV open, from /proc/*/fd (not from sgfs).
iu_holder_of() {
	local fds
	fds=$(find /proc/[0-9]*/fd -lname "$1" 2>/dev/null)
	fds=${fds%%$'\n'*}
	[[ -n $fds ]] || return 1
	fds=${fds#/proc/}
	echo "${fds%%/*}"
}

# iu_umount DIR DEV: unmount the sgfs at DIR and wait until the daemon that held DEV has
# exited (umount returns before it has let the disks go).
iu_umount() {
	local pid
	pid=$(iu_holder_of "$2")
	sgfs_umount "$1"
	while [[ -n $pid && -e /proc/$pid ]]; do _gl_sleep 0.05; done
}

# ---- a mounted disk ------------------------------------------------------------------
mkfs.ext4 -q -F "${iu_sd[0]}" && mount "${iu_sd[0]}" "$iu_e" || fail "in_use: mount ${iu_sd[0]}"
echo "written before sgfs" >"$iu_e/canary"
sync
mkfs.ext4 -q -F "${iu_sd[1]}" # so that mount(8) gets as far as mount(2) below

iu_all_skips_mounted() {
	mount -t fuse.sgfs all "$mnt" 2>"$work/iu.err" || return 1
	local want="sgfs: skipping ${iu_sg[0]} (${iu_sd[0]}): in use: ${iu_sd[0]} mounted at $iu_e"
	[[ $(<"$work/iu.err") == "$want" ]] || {
		echo "stderr:   $(<"$work/iu.err")"
		echo "expected: $want"
		return 1
	}
	[[ ! -e $mnt/${iu_sg[0]#/dev/} && -e $mnt/${iu_sg[1]#/dev/} ]] || {
		ls "$mnt"
		return 1
	}
}
check "in_use: all leaves the mounted ${iu_sd[0]} out, with one line saying why" iu_all_skips_mounted

# The line after a disk's says why it is in use.
iu_list_says_in_use() {
	local lines
	lines=$(sgfs --list)
	echo "$lines"
	grep -A1 -F " ${iu_sg[0]} " <<<"$lines" | tail -n 1 |
		grep -qxF "             in use: ${iu_sd[0]} mounted at $iu_e" &&
		grep -A1 -F " ${iu_sg[1]} " <<<"$lines" | tail -n 1 |
		grep -qxE " +in use: served by sgfs at $mnt \(pid [0-9]+\)"
}
check "in_use: --list shows the mount and the sgfs serving the other disk" iu_list_says_in_use

iu_in_use_line="sgfs: ${iu_sg[0]} (${iu_sd[0]}) is in use: ${iu_sd[0]} mounted at $iu_e"
check "in_use: naming ${iu_sg[0]} is refused" iu_mount_fails "$iu_in_use_line" "${iu_sg[0]#/dev/}" "$iu_other"
check "in_use: naming ${iu_sd[0]} is refused" iu_mount_fails "$iu_in_use_line" "${iu_sd[0]#/dev/}" "$iu_other"
check "in_use: naming ${iu_sd[0]} by path is refused" iu_mount_fails "$iu_in_use_line" "${iu_sd[0]}" "$iu_other"
check "in_use: naming its stable id is refused" iu_mount_fails "$iu_in_use_line" "$iu_id0" "$iu_other"
check "in_use: a partition as SOURCE is refused" iu_mount_fails \
	"sgfs: '${iu_sd[0]#/dev/}1' is a partition of ${iu_sd[0]}; sgfs serves whole disks (${iu_sd[0]#/dev/} or ${iu_sg[0]})" \
	"${iu_sd[0]#/dev/}1" "$iu_other"

# ---- exclusive while served --------------------------------------------------------
check "in_use: mount ${iu_sd[1]} while sgfs serves it: EBUSY" mount_gets_ebusy "${iu_sd[1]}" "$iu_x"
iu_mkfs_busy() {
	! mkfs.ext4 -q -F "${iu_sd[1]}" 2>"$work/iu.err" || return 1
	cat "$work/iu.err"
	grep -qF "${iu_sd[1]} is apparently in use by the system" "$work/iu.err" || return 1
	# Forced past its own check, mke2fs still gets EBUSY from the kernel.
	! mkfs.ext4 -q -F -F "${iu_sd[1]}" 2>"$work/iu.err" || return 1
	cat "$work/iu.err"
	grep -qF "Device or resource busy" "$work/iu.err"
}
check "in_use: mkfs.ext4 ${iu_sd[1]} while sgfs serves it: EBUSY" iu_mkfs_busy

iu_pid=$(iu_holder_of "${iu_sd[1]}")
iu_served_line="sgfs: ${iu_sg[1]} (${iu_sd[1]}) is already served by sgfs at $mnt (pid $iu_pid)"
check "in_use: a second sgfs mount of ${iu_sg[1]} is refused, naming the first" \
	iu_mount_fails "$iu_served_line" "${iu_sg[1]#/dev/}" "$iu_other"
check "in_use: ... and by its stable id" iu_mount_fails "$iu_served_line" "$iu_id1" "$iu_other"
check "in_use: a second sgfs stacked on $mnt is refused" iu_mount_fails \
	"sgfs: $mnt is already a mount point (fuse.sgfs); umount it first" "${iu_sg[1]#/dev/}" "$mnt"

# The hold keeps /dev/sdX's page cache: a buffered reader must still see what sgfs wrote
# once it is flushed (a close after writing sends SYNCHRONIZE CACHE). At 40 MiB, past the
# file system's metadata: the path loss case below mounts it.
iu_page_cache() {
	local at=$((40 << 20)) size=$((1 << 20))
	head -c $size /dev/urandom >"$work/iu.data"
	# Fill the page cache with the old data: a buffered read of /dev/sdX.
	cmp -s -n $size -i $at:0 "${iu_sd[1]}" "$work/iu.data" && return 1
	dd if="$work/iu.data" of="$mnt/${iu_sg[1]#/dev/}" bs=64k seek=$((at / 65536)) \
		conv=notrunc status=none || return 1
	cmp -n $size -i $at:0 "${iu_sd[1]}" "$work/iu.data"
}
check "in_use: a buffered read of ${iu_sd[1]} after sgfs wrote and closed sees the new data" iu_page_cache

# ---- path loss: the claim is let go, and taken back only if the disk is free -----------
iu_hctl1=$(sdebug_devices | awk -v sg="${iu_sg[1]}" '$2 == sg { print $1 }')
iu_field() { sed -n "/^device ${iu_sg[1]#/dev/}\$/,/^\$/s/^  $1 //p" "$mnt/.stats"; }
iu_read() { dd if="$mnt/${iu_sg[1]#/dev/}" of=/dev/null bs=4k count=1 iflag=direct 2>&1; }
iu_path_loss() {
	echo 1 >"/sys/bus/scsi/devices/$iu_hctl1/delete" || return 1
	! iu_read || return 1 # IO notices: gone, block device let go
	[[ $(iu_field state) == gone ]] || return 1
	echo "- - -" >"/sys/class/scsi_host/host${iu_hctl1%%:*}/scan" || return 1
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -z $(_sdebug_missing) && -n $(sdebug_devices | awk -v h="$iu_hctl1" '$1 == h && $3 != "-"') ]] && break
		_gl_sleep 0.1
	done
	local sd
	sd=$(sdebug_devices | awk -v h="$iu_hctl1" '$1 == h { print $3 }')
	# Someone takes the disk while sgfs has let it go.
	mount "$sd" "$iu_x" || return 1
	_gl_sleep 1.1 # past the retry interval
	! iu_read || return 1
	echo "state $(iu_field state); gone_reason $(iu_field gone_reason)"
	[[ $(iu_field state) == gone ]] &&
		[[ $(iu_field gone_reason) == "refused: "*" ($sd) is in use: $sd mounted at $iu_x" ]] || return 1
	umount "$iu_x"
	_gl_sleep 1.1
	iu_read || return 1
	[[ $(iu_field state) == online && $(iu_field reattaches) == 1 ]] || return 1
	# Held again.
	! mount "$sd" "$iu_x" 2>/dev/null || {
		umount "$iu_x"
		return 1
	}
}
check "in_use: path loss lets the block device go; back in use it stays gone, then is held again" iu_path_loss
mapfile -t iu_sg < <(sdebug_sg_nodes)
mapfile -t iu_sd < <(sdebug_block_nodes)

iu_umount "$mnt" "${iu_sd[1]}"
check "in_use: after umount, mkfs.ext4 ${iu_sd[1]} works" mkfs.ext4 -q -F "${iu_sd[1]}"
umount "$iu_e"
check "in_use: e2fsck -fn ${iu_sd[0]}: the mounted file system was not touched" e2fsck -fn "${iu_sd[0]}"

# ---- a partition: O_EXCL on the whole disk keeps its partitions from being mounted ------
# One MBR partition from 1 MiB, 16 MiB long (printf: no sfdisk needed).
iu_partition() {
	dd if=/dev/zero of="${iu_sd[1]}" bs=1M count=1 conv=fsync status=none &&
		printf '\0\0\0\0\x83\0\0\0\0\x08\0\0\0\x80\0\0' |
		dd of="${iu_sd[1]}" bs=1 seek=446 conv=notrunc,fsync status=none &&
		printf '\x55\xaa' | dd of="${iu_sd[1]}" bs=1 seek=510 conv=notrunc,fsync status=none &&
		blockdev --rereadpt "${iu_sd[1]}" && mkfs.ext4 -q -F "${iu_sd[1]}1"
}
iu_partition_busy() {
	mount -t fuse.sgfs "${iu_sg[1]#/dev/}" "$mnt" || return 1
	mount_gets_ebusy "${iu_sd[1]}1" "$iu_x"
}
iu_partition_mounted() {
	mount "${iu_sd[1]}1" "$iu_x" || return 1
	iu_mount_fails "sgfs: ${iu_sg[1]} (${iu_sd[1]}) is in use: ${iu_sd[1]}1 mounted at $iu_x" \
		"${iu_sg[1]#/dev/}" "$mnt"
	local rc=$?
	umount "$iu_x"
	return $rc
}
if iu_partition; then
	check "in_use: ${iu_sd[1]}1 cannot be mounted while sgfs serves ${iu_sd[1]}" iu_partition_busy
	iu_umount "$mnt" "${iu_sd[1]}"
	check "in_use: a mounted partition makes the disk in use" iu_partition_mounted
else
	fail "in_use: make a partition on ${iu_sd[1]}"
fi

# ---- swap and holders ----------------------------------------------------------------
# On the partition if there is one: the partitions count too.
iu_swap_on=${iu_sd[1]}
[[ -b ${iu_sd[1]}1 ]] && iu_swap_on=${iu_sd[1]}1
iu_swap() {
	mkswap "$iu_swap_on" >/dev/null && swapon "$iu_swap_on" || return 1
	iu_mount_fails "sgfs: ${iu_sg[1]} (${iu_sd[1]}) is in use: $iu_swap_on is active swap" \
		"${iu_sg[1]#/dev/}" "$mnt"
	local rc=$?
	swapoff "$iu_swap_on"
	return $rc
}
check "in_use: active swap on $iu_swap_on makes the disk in use" iu_swap

iu_holder() {
	local sectors dm
	read -r sectors <"/sys/block/${iu_sd[1]#/dev/}/size"
	echo "0 $sectors linear ${iu_sd[1]} 0" | dmsetup create --noudevsync sgfs_in_use || return 1
	dm=$(dmsetup info -c --noheadings -o blkdevname sgfs_in_use) || return 1
	iu_mount_fails "sgfs: ${iu_sg[1]} (${iu_sd[1]}) is in use: ${iu_sd[1]} held by $dm" \
		"${iu_sg[1]#/dev/}" "$mnt"
	local rc=$?
	dmsetup remove --noudevsync sgfs_in_use
	return $rc
}
if command -v dmsetup >/dev/null && modprobe dm-mod 2>/dev/null; then
	check "in_use: a device-mapper holder makes the disk in use" iu_holder
else
	skip_check "in_use: a device-mapper holder makes the disk in use" "no dmsetup or dm-mod"
fi
sgfs_umount "$mnt"
