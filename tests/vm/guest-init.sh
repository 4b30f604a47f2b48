#!/bin/busybox sh
# shellcheck shell=dash disable=SC1091,SC2016
# sgfs VM guest init (runs inside the QEMU guest; see tests/vm/README.md).
#
# tests/vm/prepare copies this file into the initramfs as /init, together with a static
# busybox and the kernel modules listed in /modules.order ("GROUP FILE NAME [optional]"
# lines in load order, dependencies first). It runs twice:
#
#   stage 1 (PID 1 in the initramfs): insmod the "boot" group (virtio, 9p, overlay),
#     mount the per-run 9p share (vm.env from vm-run), insmod the "scsi" group (scsi_mod
#     scan=sync, sd_mod, sg, fuse) and the "sdebug" group (scsi_debug with the requested
#     parameters); mount the host's / (9p, read-only) under a tmpfs-backed overlay at
#     /newroot with the API filesystems, the share at /run/sgfs-vm and the cached kernel
#     modules at /lib/modules/KVER, then switch_root and re-run this script as stage 2.
#     Loading modules from the initramfs with busybox insmod is much faster under TCG
#     than running the host's modprobe over 9p.
#   stage 2 (PID 1 in the host-root overlay): wait for the scsi_debug device nodes, run
#     the command written by vm-run (/run/sgfs-vm/cmd.sh) with its output on the
#     virtio-serial port "sgfs.out", store its exit status in /run/sgfs-vm/rc, power off.
#
# Anything that goes wrong before the command starts is reported in /run/sgfs-vm/init.log
# (the host's per-run directory) and on the kernel console, and the guest powers off
# without an rc file, which vm-run reports as a boot failure (exit 100).
#
# Only busybox is used here: stage 2 runs the same static busybox, copied to
# /run/sgfs-vm-init, so this script never depends on the host's shell.

BB=/bin/busybox
SHARE_TAG=sgfsrun
ROOT_TAG=hostroot
# The largest 9p message the Linux 6.1 virtio transport accepts (128 pages minus headers).
MSIZE=512000
LOGFILE=

log() {
	echo "sgfs-vm-init: $*" >/dev/console 2>/dev/null
	[ -n "$LOGFILE" ] && echo "sgfs-vm-init: $*" >>"$LOGFILE" 2>/dev/null
	return 0
}

die() {
	log "FATAL: $*"
	if [ -n "$LOGFILE" ]; then
		{
			echo "--- dmesg (last 60 lines) ---"
			$BB dmesg | $BB tail -n 60
		} >>"$LOGFILE" 2>/dev/null
	fi
	$BB sync
	$BB poweroff -f
	# Not reached; should poweroff fail, PID 1 exiting panics the kernel, and panic=-1
	# with qemu -no-reboot ends the VM.
	exit 1
}

# Boot-phase timestamps (guest uptime), written to /run/sgfs-vm/timing.log.
MARKS=
mark() {
	read -r _up _ </proc/uptime
	MARKS="$MARKS$_up $*
"
	if [ -n "$LOGFILE" ]; then
		printf '%s' "$MARKS" >>"${LOGFILE%/*}/timing.log"
		MARKS=
	fi
}

# wait_for TENTHS_OF_SECONDS COMMAND: poll COMMAND every 10 ms until it succeeds.
wait_for() {
	_n=$(($1 * 10))
	shift
	while ! eval "$1"; do
		_n=$((_n - 1))
		[ "$_n" -le 0 ] && return 1
		$BB usleep 10000
	done
	return 0
}

# insmod_group GROUP: load the initramfs modules of GROUP in order.
insmod_group() {
	while read -r _group _file _name _opt; do
		[ "$_group" = "$1" ] || continue
		case "$_file" in
		scsi_mod.ko) _args="scan=sync" ;; # hosts are fully scanned when insmod returns
		scsi_debug.ko) _args=$SDEBUG_PARAMS ;;
		*) _args= ;;
		esac
		# Skip what is loaded already.
		[ -e "/sys/module/$_name" ] && continue
		# shellcheck disable=SC2086
		insmod "/lib/modules/$_file" $_args || [ "$_opt" = optional ] || die "insmod $_file $_args failed"
	done </modules.order
}

stage1() {
	$BB mount -t proc proc /proc
	$BB mount -t sysfs sysfs /sys
	$BB mount -t devtmpfs devtmpfs /dev
	# The initramfs has no /dev/console node (prepare may run unprivileged), so the kernel
	# started us without stdio: take it from devtmpfs.
	exec </dev/console >/dev/console 2>&1
	$BB --install -s /bin
	export PATH=/bin
	mark "stage 1"

	insmod_group boot
	mkdir -p /share /lower /rw /newroot
	# virtio_pci probes its devices synchronously; retry briefly in case one is late.
	wait_for 10 "mount -t 9p -o trans=virtio,version=9p2000.L,msize=$MSIZE,access=any $SHARE_TAG /share 2>/dev/null" ||
		die "cannot mount the 9p results share ($SHARE_TAG)"
	LOGFILE=/share/init.log
	[ -r /share/vm.env ] || die "run configuration vm.env is missing"
	# KVER, CACHE_DIR, HOST_CWD, SCSI_DEBUG, SDEBUG_PARAMS (written by vm-run).
	. /share/vm.env
	[ "$(uname -r)" = "$KVER" ] || die "kernel is $(uname -r), expected $KVER"
	mark "boot modules loaded, share mounted"

	insmod_group scsi
	mark "scsi_mod sd_mod sg fuse loaded"
	if [ "$SCSI_DEBUG" = 1 ]; then
		insmod_group sdebug
		mark "scsi_debug loaded"
	fi

	mount -t 9p -o "ro,trans=virtio,version=9p2000.L,msize=$MSIZE,cache=loose,access=any" "$ROOT_TAG" /lower ||
		die "cannot mount the host root over 9p ($ROOT_TAG)"
	mount -t tmpfs -o mode=0755 tmpfs /rw || die "cannot mount tmpfs for the overlay"
	mkdir -p /rw/upper /rw/work
	# Everything the guest writes goes to the tmpfs upper layer, never to the host.
	mount -t overlay -o "lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work,index=off,xino=off,redirect_dir=off,metacopy=off" \
		overlay /newroot || die "cannot mount the overlay root"

	R=/newroot
	# The guest kernel's modules for the host's modprobe (read-only, from the cache).
	mods="/lower$CACHE_DIR/kernel/$KVER/lib/modules/$KVER"
	[ -d "$mods/kernel" ] || die "kernel modules not found at ${mods#/lower} (through 9p)"
	mkdir -p "$R/lib/modules/$KVER" || die "cannot create /lib/modules/$KVER"
	mount --bind "$mods" "$R/lib/modules/$KVER" || die "cannot bind the kernel modules"

	# Keep the working directory reachable if it lives in a directory that gets a fresh
	# tmpfs below (e.g. a build tree under /tmp): park a bind of it, re-attach it later.
	keep=
	case "$HOST_CWD" in
	/run/* | /dev/shm/*)
		if [ -d "$R$HOST_CWD" ]; then
			mkdir -p /keep
			mount --bind "$R$HOST_CWD" /keep && keep=1
		fi
		;;
	esac

	mount -t proc proc "$R/proc" || die "cannot mount /proc"
	mount -t sysfs sysfs "$R/sys" || die "cannot mount /sys"
	mount --move /dev "$R/dev" || die "cannot move /dev"
	mkdir -p "$R/dev/pts" "$R/dev/shm"
	# What udev/systemd would add to devtmpfs (bash process substitution needs /dev/fd).
	ln -sf /proc/self/fd "$R/dev/fd"
	ln -sf /proc/self/fd/0 "$R/dev/stdin"
	ln -sf /proc/self/fd/1 "$R/dev/stdout"
	ln -sf /proc/self/fd/2 "$R/dev/stderr"
	ln -sf /proc/kcore "$R/dev/core"
	mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts "$R/dev/pts" || die "cannot mount /dev/pts"
	mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm" || die "cannot mount /dev/shm"
	# No fresh tmpfs on /tmp: the overlay already keeps guest writes in RAM, and a clone
	# under the host's /tmp (CI's, say) must stay visible: the build dir and the scripts.
	mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$R/run" || die "cannot mount /run"
	mkdir -p "$R/run/sgfs-vm" "$R/run/sgfs-vm-init" "$R/run/lock"
	mount --move /share "$R/run/sgfs-vm" || die "cannot move the results share"
	LOGFILE=$R/run/sgfs-vm/init.log
	if [ -n "$keep" ]; then
		{ mkdir -p "$R$HOST_CWD" && mount --move /keep "$R$HOST_CWD"; } ||
			die "cannot re-attach the working directory $HOST_CWD"
	fi

	cp /bin/busybox /init "$R/run/sgfs-vm-init/" || die "cannot copy busybox to the new root"
	mark "root mounted"
	# shellcheck disable=SC2093 # exec only returns on failure
	exec switch_root "$R" /run/sgfs-vm-init/busybox sh /run/sgfs-vm-init/init stage2
	die "switch_root failed"
}

# List what is missing among the scsi_debug devices' sysfs entries and /dev nodes (sgN
# always, sdX for the types sd_mod drives); nothing when all are there.
missing_sdebug_nodes() {
	for dev in /sys/bus/scsi/devices/*:*:*:*; do
		[ -r "$dev/model" ] || continue
		read -r model <"$dev/model"
		[ "$model" = scsi_debug ] || continue
		read -r type <"$dev/type"
		subs=scsi_generic
		# disk, optical memory, RBC, zoned block
		case "$type" in 0 | 7 | 14 | 20) subs="$subs block" ;; esac
		for sub in $subs; do
			set -- "$dev/$sub"/*
			[ -e "$1" ] || { echo "${dev##*/}/$sub"; continue; }
			[ -e "/dev/${1##*/}" ] || echo "/dev/${1##*/}"
		done
	done
}

# Shortly before vm-run's timeout kills the VM, record what every process is doing
# (state, wait channel, kernel stack) and the kernel log in /run/sgfs-vm/hang.log, which
# vm-run shows on a timeout. A read() on an sg fd with nothing queued sleeps
# interruptibly, so the per-process stacks tell more than sysrq-w (blocked tasks only).
start_hang_watchdog() {
	read -r _up _ </proc/uptime
	_left=$((VM_TIMEOUT - ${_up%.*} - 8))
	[ "$_left" -ge 5 ] || return 0
	(
		$BB sleep "$_left"
		exec >/run/sgfs-vm/hang.log 2>&1
		read -r _self _ </proc/self/stat # this subshell (read is a builtin)
		echo "--- processes $((VM_TIMEOUT - 8)) s after the VM started (pid state wchan: cmdline)"
		for _p in /proc/[0-9]*; do
			[ "${_p#/proc/}" = "$_self" ] && continue
			_cmd=$($BB tr '\0' ' ' <"$_p/cmdline" 2>/dev/null)
			[ -n "$_cmd" ] || continue # kernel thread
			read -r _ _ _state _ <"$_p/stat" 2>/dev/null
			read -r _wchan <"$_p/wchan" 2>/dev/null
			echo "${_p#/proc/} $_state ${_wchan:--}: $_cmd"
			[ "$_state" = R ] || $BB sed 's/^/    /' "$_p/stack" 2>/dev/null
		done
		echo w >/proc/sysrq-trigger
		echo "--- kernel log (last 40 lines)"
		$BB dmesg | $BB tail -n 40
	) &
}

stage2() {
	BB=/run/sgfs-vm-init/busybox
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	LOGFILE=/run/sgfs-vm/init.log
	. /run/sgfs-vm/vm.env
	mark "stage 2"
	$BB hostname sgfs-vm
	$BB ip link set lo up 2>/dev/null

	if [ "$SCSI_DEBUG" = 1 ]; then
		# The sg nodes exist when insmod returns (scan=sync); sd probes asynchronously.
		wait_for 300 '[ -z "$(missing_sdebug_nodes)" ]' ||
			die "scsi_debug device nodes did not appear: $(missing_sdebug_nodes)"
		mark "scsi_debug nodes present"
	fi

	port=
	for p in /sys/class/virtio-ports/*; do
		[ -r "$p/name" ] || continue
		read -r name <"$p/name"
		[ "$name" = sgfs.out ] && port=/dev/${p##*/}
	done
	[ -n "$port" ] || die "virtio-serial port sgfs.out not found"
	wait_for 30 '[ -c "$port" ]' || die "$port did not appear"

	start_hang_watchdog
	mark "command start"
	/bin/bash /run/sgfs-vm/cmd.sh </dev/null >"$port" 2>&1
	echo "$?" >/run/sgfs-vm/rc.tmp
	mark "command done"
	$BB mv /run/sgfs-vm/rc.tmp /run/sgfs-vm/rc
	$BB sync
	$BB poweroff -f
	exit 1
}

case "$1" in
stage2) stage2 ;;
*) stage1 ;;
esac
