# shellcheck shell=bash
# Helpers for guest test suites (scripts run inside the VM by tests/vm/vm-run).
#
#   #!/bin/bash
#   . "$(dirname "$0")/../guest-lib.sh"     # from tests/vm/suites/
#   check "sg0 exists" test -c /dev/sg0
#   ...                                    # the summary is printed on exit
#
# Devices:
#   sdebug_reload [PARAMS...]   reload scsi_debug with PARAMS (none: module defaults) and
#                               wait for its /dev nodes; silent on success. File systems
#                               on its disks are unmounted first; if a process still
#                               holds a node open after SDEBUG_RELOAD_WAIT seconds
#                               (default 5), it returns 1 naming the holders on stderr
#   sdebug_devices              "H:C:T:L /dev/sgN /dev/sdX" per scsi_debug device, in
#                               H:C:T:L order ("-" when the device has no block node)
#   sdebug_sg_nodes             the /dev/sgN of the scsi_debug devices, one per line
#   sdebug_block_nodes          their /dev/sdX, same order ("-" when none)
#   set_allow_dio 0|1           set the sg driver's allow_dio parameter
#   lio_setup NAME:SIZE[:OPT,...]...
#                               LIO LUNs (lun_0, lun_1, ... in that order) under one
#                               tcm_loop target and tpgt, backed by sparse files in
#                               /run/sgfs-lio; OPTs: block=512|4096, thin (emulate_tpu=1
#                               and emulate_tpws=1), tpu, tpws, ro, file=PATH (an existing
#                               backing file, kept), iblock=DEV (iblock over the block
#                               device DEV, kept). Waits for the sg and sd nodes; silent
#                               on success, says why on stderr and undoes it all on failure
#   lio_devices                 "NAME /dev/sgN /dev/sdX BACKING_FILE" per LUN, LUN order
#   lio_teardown                remove the LUNs, target, backstores and files it made
#   lio_iscsi_export [PORTAL]   the same LUNs over LIO's iSCSI target on the loopback
#                               (127.0.0.1:3260), logged in with open-iscsi; waits for nodes
#   lio_iscsi_devices           "NAME /dev/sgN /dev/sdX BACKING_FILE" per LUN over iSCSI
#   lio_iscsi_teardown          log out, stop that iscsid, remove the iSCSI target (before
#                               lio_teardown)
#
# sgfs mounts and checks against an oracle:
#   sgfs_mounted DIR, sgfs_umount DIR, mount_gets_ebusy DEV DIR
#   sgfs_stat MOUNT DEVICE KEY  one counter of DEVICE (sgN) in MOUNT/.stats ("absent:KEY"
#                               and a failure if it is not there)
#   odd_io_against_backing FILE BACKING LABEL [BLOCK_DEVICE]
#                               odd writes through FILE, fsync, then checks: BACKING (and
#                               BLOCK_DEVICE with O_DIRECT) hold them, odd reads equal BACKING
#
# TAP-like checks (numbered "ok N - NAME" / "not ok N - NAME" lines on stdout):
#   check NAME COMMAND [ARGS...]  run COMMAND (may be a shell function; it runs in a
#                                 subshell, output captured); pass if it succeeds,
#                                 else fail and show its output as "#" comments
#   pass NAME | fail NAME [WHY]   record a result directly
#   skip_check NAME WHY           "ok N - NAME # SKIP WHY"
#   skip_all WHY                  print "1..0 # SKIP WHY" and exit 77
#   diag TEXT...                  "# TEXT" comment line
# On exit the plan ("1..N") and a summary are printed, and the script's exit status is
# 1 if any check failed (a non-zero status the script chose itself is kept).
#
# Safety: these helpers rewrite disks. They refuse to run outside the VM (vm-run sets
# SGFS_IN_VM=1), and the device lists only ever contain scsi_debug devices.

if [[ ${SGFS_IN_VM:-} != 1 ]]; then
	echo "guest-lib.sh: not inside the sgfs test VM (run this through tests/vm/vm-run)" >&2
	exit 2
fi

# --- scsi_debug devices -------------------------------------------------------------
#
# Every exec costs tens of milliseconds in the emulated guest, so these helpers use bash
# builtins only (except modprobe/rmmod/umount where needed).

# A pipe nobody writes to: "read -t" on it is a sleep without forking sleep(1).
exec {_GL_SLEEP_FD}<> <(:)
_gl_sleep() { read -rt "$1" -u "$_GL_SLEEP_FD" _ || :; }

# _sdebug_sysfs_devices ARRAY: store the sysfs directories of the scsi_debug devices
# (/sys/bus/scsi/devices/H:C:T:L) in ARRAY, in numeric H:C:T:L order.
_sdebug_sysfs_devices() {
	local -n _out=$1
	local dev model hctl h c t l
	local -a by_key=()
	for dev in /sys/bus/scsi/devices/*:*:*:*; do
		[[ -r $dev/model ]] || continue
		read -r model <"$dev/model"
		[[ $model == scsi_debug ]] || continue
		hctl=${dev##*/}
		IFS=: read -r h c t l <<<"$hctl"
		# Sparse indexed arrays iterate in index order: that is the sort.
		by_key[h * 10000000000000 + c * 10000000000 + t * 1000000 + l]=$dev
	done
	_out=("${by_key[@]}")
}

sdebug_devices() {
	local -a devs=() sgs blks
	local dev sg blk
	_sdebug_sysfs_devices devs
	for dev in "${devs[@]}"; do
		sgs=("$dev"/scsi_generic/*)
		blks=("$dev"/block/*)
		sg=${sgs[0]##*/} blk=${blks[0]##*/}
		if [[ $sg == '*' ]]; then sg=-; else sg=/dev/$sg; fi
		if [[ $blk == '*' ]]; then blk=-; else blk=/dev/$blk; fi
		echo "${dev##*/} $sg $blk"
	done
}

sdebug_sg_nodes() {
	local _hctl sg _blk
	while read -r _hctl sg _blk; do echo "$sg"; done < <(sdebug_devices)
}

sdebug_block_nodes() {
	local _hctl _sg blk
	while read -r _hctl _sg blk; do echo "$blk"; done < <(sdebug_devices)
}

# What is still missing: sysfs entries or /dev nodes of the scsi_debug devices.
_sdebug_missing() {
	local -a devs=() node subs
	local dev type sub
	_sdebug_sysfs_devices devs
	for dev in "${devs[@]}"; do
		read -r type <"$dev/type"
		subs=(scsi_generic)
		# sd_mod drives disks, optical memory, RBC and zoned block devices.
		case $type in 0 | 7 | 14 | 20) subs+=(block) ;; esac
		for sub in "${subs[@]}"; do
			node=("$dev/$sub"/*)
			if [[ ! -e ${node[0]} ]]; then
				echo "${dev##*/}/$sub"
			elif [[ ! -e /dev/${node[0]##*/} ]]; then
				echo "/dev/${node[0]##*/}"
			fi
		done
	done
}

# Processes holding a scsi_debug /dev node open, as "PID COMMAND NODE" lines.
_sdebug_holders() {
	local -a nodes=()
	local hctl sg blk fd pid n cmd
	while read -r hctl sg blk; do
		[[ $sg != - ]] && nodes+=("$sg")
		[[ $blk != - ]] && nodes+=("$blk")
	done < <(sdebug_devices)
	for fd in /proc/[0-9]*/fd/*; do
		# Not this very subshell (it inherited the caller's descriptors).
		[[ $fd == /proc/$BASHPID/* ]] && continue
		for n in "${nodes[@]}"; do
			# -ef compares what the fd refers to with the node (device and inode).
			if [[ $fd -ef $n ]]; then
				pid=${fd#/proc/}
				pid=${pid%%/*}
				cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)
				echo "$pid ${cmd% } ($n)"
			fi
		done
	done
}

sdebug_reload() {
	local refcnt blk i src mnt
	local -a mounts=()
	if [[ -d /sys/module/scsi_debug ]]; then
		# Unmount file systems on its disks first (a test may have left one mounted),
		# most recent mount first.
		mapfile -t mounts </proc/mounts
		for blk in $(sdebug_block_nodes); do
			[[ $blk == - ]] && continue
			for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
				read -r src mnt _ <<<"${mounts[i]}"
				if [[ $src == "$blk" || $src == "$blk"[0-9]* ]]; then umount "$mnt" || return 1; fi
			done
		done
		# Let closing file descriptors drain before giving up.
		for ((i = 0; ; i++)); do
			read -r refcnt </sys/module/scsi_debug/refcnt
			[[ $refcnt == 0 || $i -ge $((${SDEBUG_RELOAD_WAIT:-5} * 10)) ]] && break
			_gl_sleep 0.1
		done
		if [[ $refcnt != 0 ]]; then
			echo "sdebug_reload: scsi_debug is in use (refcnt $refcnt)" >&2
			while IFS= read -r i; do echo "sdebug_reload:   held open by pid $i" >&2; done < <(_sdebug_holders)
			return 1
		fi
		for ((i = 0; ; i++)); do
			rmmod scsi_debug 2>/dev/null && break
			if ((i >= 20)); then
				rmmod scsi_debug # once more, with its error message
				return 1
			fi
			_gl_sleep 0.1
		done
	fi
	modprobe scsi_debug "$@" || return 1
	# scsi_mod scan=sync: the hosts are scanned when modprobe returns; the sd disks are
	# probed asynchronously, so their nodes can come a little later.
	for ((i = 0; i < 3000; i++)); do
		[[ -z $(_sdebug_missing) ]] && return 0
		_gl_sleep 0.01
	done
	echo "sdebug_reload: device nodes missing after 30 s: $(_sdebug_missing)" >&2
	return 1
}

set_allow_dio() {
	case $1 in
	0 | 1) ;;
	*)
		echo "set_allow_dio: expected 0 or 1, got '$1'" >&2
		return 1
		;;
	esac
	echo "$1" >/sys/module/sg/parameters/allow_dio || return 1
	local now
	read -r now </sys/module/sg/parameters/allow_dio
	[[ $now == "$1" ]] || {
		echo "set_allow_dio: allow_dio is $now after writing $1" >&2
		return 1
	}
}

# --- LIO (the kernel's SCSI target) through tcm_loop -------------------------------------
#
# Disks backed by files, made through configfs alone (no targetcli): one fileio backstore
# per LUN (iblock over a read-only loop device for "ro"), all LUNs under one tcm_loop
# target and ONE tpgt, so that EXTENDED COPY between them works (LIO's copy manager only
# finds LUNs of one device list, by the NAA id it derives from the unit serial).

_LIO_CFG=/sys/kernel/config/target
_LIO_DIR=/run/sgfs-lio
_LIO_TARGET=naa.50014050000000a1 # the tcm_loop target: its virtual SAS HBA
_LIO_NEXUS=naa.50014050000000a2  # the initiator port of the I_T nexus
_LIO_TPGT=1
# What lio_setup made, one "NAME /dev/sgN /dev/sdX FILE BACKSTORE LOOP OWN" line per LUN
# (LOOP "-" for fileio; OWN 1 when lio_setup created FILE): kept in a file, so that
# lio_devices and lio_teardown work from any subshell or a later script.
_LIO_STATE=$_LIO_DIR/luns
_lio_load() { _LIO_LUNS=(); [[ -r $_LIO_STATE ]] && mapfile -t _LIO_LUNS <"$_LIO_STATE"; }
_lio_save() { printf '%s\n' "${_LIO_LUNS[@]}" >"$_LIO_STATE"; }

# _lio_bytes TEXT: TEXT (a number with an optional K, M or G suffix) in bytes.
_lio_bytes() {
	case $1 in
	*[kK]) echo $((${1%?} << 10)) ;;
	*[mM]) echo $((${1%?} << 20)) ;;
	*[gG]) echo $((${1%?} << 30)) ;;
	*) echo $(($1)) ;;
	esac
}

# _lio_write VALUE FILE: write a configfs attribute; say which one failed.
_lio_write() {
	echo "$1" >"$2" 2>/dev/null || {
		echo "lio: writing '$1' to $2 failed" >&2
		return 1
	}
}

# _lio_scsi_device LUN SERIAL: the sysfs directory of the SCSI device tcm_loop made for
# lun_LUN of our tpgt (LIO-ORG, target id = tpgt, LUN = LUN, and VPD 0x80 carrying
# SERIAL), or nothing yet.
_lio_scsi_device() {
	local dev vendor page hctl
	for dev in /sys/bus/scsi/devices/*:*:"$_LIO_TPGT:$1"; do
		[[ -r $dev/vendor ]] || continue
		read -r vendor <"$dev/vendor"
		[[ $vendor == LIO-ORG ]] || continue
		if [[ -r $dev/vpd_pg80 ]]; then
			# The page is binary (4 header bytes, then the serial): drop the NULs.
			page=$(tr -d '\0' <"$dev/vpd_pg80")
			[[ $page == *"$2" ]] || continue
		fi
		echo "$dev"
		return 0
	done
}

lio_setup() {
	local spec name size opts opt block ro tpu tpws file own backstore serial i dev
	local sg blk loop hba sgs blks lun attrib iblock
	local -a attribs
	local -a _LIO_LUNS=()
	_lio_load
	if ((${#_LIO_LUNS[@]})); then
		echo "lio_setup: LUNs are set up already (lio_teardown first)" >&2
		return 1
	fi
	modprobe -a target_core_mod target_core_file target_core_iblock tcm_loop || return 1
	grep -q " /sys/kernel/config configfs " /proc/mounts ||
		mount -t configfs none /sys/kernel/config || return 1
	if [[ -e $_LIO_CFG/loopback/$_LIO_TARGET ]]; then
		echo "lio_setup: $_LIO_CFG/loopback/$_LIO_TARGET exists already" >&2
		return 1
	fi
	mkdir -p "$_LIO_DIR" || return 1
	local tpg=$_LIO_CFG/loopback/$_LIO_TARGET/tpgt_$_LIO_TPGT
	i=0
	for spec in "$@"; do
		IFS=: read -r name size opts <<<"$spec"
		if [[ -z $name || -z $size ]]; then
			echo "lio_setup: bad LUN spec '$spec' (NAME:SIZE[:OPTION,...])" >&2
			lio_teardown
			return 1
		fi
		size=$(_lio_bytes "$size")
		block=512 ro=0 tpu=0 tpws=0 file=$_LIO_DIR/$name.img own=1 loop=- iblock=0
		for opt in ${opts//,/ }; do
			case $opt in
			block=512 | block=4096) block=${opt#block=} ;;
			ro) ro=1 ;;
			thin) tpu=1 tpws=1 ;;
			tpu) tpu=1 ;;
			tpws) tpws=1 ;;
			file=*) file=${opt#file=} own=0 ;;
			iblock=*) file=${opt#iblock=} own=0 iblock=1 ;;
			*)
				echo "lio_setup: unknown option '$opt' in '$spec'" >&2
				lio_teardown
				return 1
				;;
			esac
		done
		if ((own)); then
			rm -f "$file"
			truncate -s "$size" "$file" || { lio_teardown; return 1; }
		fi
		# Hex digits only after "lun": LIO derives the NAA id from the serial's hex digits.
		serial=$(printf 'lun%03d%013x' "$i" $((i + 1)))
		if ((iblock)); then
			# A block device of the caller's (its faults become the LUN's: dm "error").
			hba=iblock_0
			backstore=$_LIO_CFG/core/$hba/$name
			mkdir -p "$backstore" && _lio_write "udev_path=$file" "$backstore/control"
		elif ((ro)); then
			# fileio has no read-only switch; iblock does, over a read-only loop device.
			modprobe loop && loop=$(losetup -r -f --show "$file") || { lio_teardown; return 1; }
			hba=iblock_0
			backstore=$_LIO_CFG/core/$hba/$name
			mkdir -p "$backstore" &&
				_lio_write "udev_path=$loop,readonly=1" "$backstore/control"
		else
			hba=fileio_0
			backstore=$_LIO_CFG/core/$hba/$name
			mkdir -p "$backstore" &&
				_lio_write "fd_dev_name=$file,fd_dev_size=$size" "$backstore/control"
		fi || {
			_LIO_LUNS+=("$name - - $file $backstore $loop $own")
			_lio_save
			lio_teardown
			return 1
		}
		_LIO_LUNS+=("$name - - $file $backstore $loop $own")
		_lio_save
		# Attributes only after enable: emulate_tpu before it oopses 6.1 (fd_configure_unmap).
		attribs=("block_size $block")
		((tpu)) && attribs+=("emulate_tpu 1")
		((tpws)) && attribs+=("emulate_tpws 1")
		for attrib in "wwn/vpd_unit_serial $serial" "enable 1" "${attribs[@]/#/attrib/}"; do
			_lio_write "${attrib#* }" "$backstore/${attrib% *}" || { lio_teardown; return 1; }
		done
		mkdir -p "$tpg/lun/lun_$i" || { lio_teardown; return 1; }
		i=$((i + 1))
	done
	_lio_write "$_LIO_NEXUS" "$tpg/nexus" || { lio_teardown; return 1; }
	# Linking a backstore into the tpgt makes tcm_loop add the SCSI device (H:0:tpgt:LUN);
	# sd probes it asynchronously.
	for ((i = 0; i < ${#_LIO_LUNS[@]}; i++)); do
		read -r name _ _ file backstore loop own <<<"${_LIO_LUNS[i]}"
		ln -s "$backstore" "$tpg/lun/lun_$i/$name" || { lio_teardown; return 1; }
	done
	for ((i = 0; i < ${#_LIO_LUNS[@]}; i++)); do
		read -r name _ _ file backstore loop own <<<"${_LIO_LUNS[i]}"
		serial=$(printf 'lun%03d%013x' "$i" $((i + 1)))
		sg=- blk=-
		for ((lun = 0; lun < 3000; lun++)); do
			dev=$(_lio_scsi_device "$i" "$serial")
			if [[ -n $dev ]]; then
				sgs=("$dev"/scsi_generic/*) blks=("$dev"/block/*)
				sg=/dev/${sgs[0]##*/} blk=/dev/${blks[0]##*/}
				[[ -e $sg && -e $blk && $sg != '/dev/*' && $blk != '/dev/*' ]] && break
			fi
			_gl_sleep 0.01
		done
		if [[ ! -e $sg || ! -e $blk ]]; then
			echo "lio_setup: no sg and sd nodes for LUN $i ($name) after 30 s" >&2
			lio_teardown
			return 1
		fi
		_LIO_LUNS[i]="$name $sg $blk $file $backstore $loop $own"
		_lio_save
	done
	# Each LUN added after another raised a unit attention (REPORTED LUNS DATA HAS CHANGED)
	# on those before it: take them now, so that the first command of a test does not get
	# one. And check the block size took.
	for ((i = 0; i < ${#_LIO_LUNS[@]}; i++)); do
		read -r name sg blk _ <<<"${_LIO_LUNS[i]}"
		sg_turs "$sg" >/dev/null 2>&1
		sg_turs "$sg" >/dev/null 2>&1
	done
	for spec in "$@"; do
		IFS=: read -r name _ opts <<<"$spec"
		block=512
		[[ ,$opts, == *,block=4096,* ]] && block=4096
		for ((i = 0; i < ${#_LIO_LUNS[@]}; i++)); do
			read -r lun _ blk _ <<<"${_LIO_LUNS[i]}"
			[[ $lun == "$name" ]] || continue
			read -r lun <"/sys/block/${blk#/dev/}/queue/logical_block_size"
			if [[ $lun != "$block" ]]; then
				echo "lio_setup: $name ($blk) has $lun-byte blocks, not $block" >&2
				lio_teardown
				return 1
			fi
		done
	done
}

lio_devices() {
	local line name sg blk file
	local -a _LIO_LUNS=()
	_lio_load
	for line in "${_LIO_LUNS[@]}"; do
		read -r name sg blk file _ <<<"$line"
		echo "$name $sg $blk $file"
	done
}

lio_teardown() {
	local tpg=$_LIO_CFG/loopback/$_LIO_TARGET/tpgt_$_LIO_TPGT
	local i name file backstore loop own rc=0 link
	local -a _LIO_LUNS=()
	_lio_load
	for ((i = ${#_LIO_LUNS[@]} - 1; i >= 0; i--)); do
		read -r name _ _ file backstore loop own <<<"${_LIO_LUNS[i]}"
		# Unlinking removes the SCSI device (its sd and sg nodes) first.
		for link in "$tpg/lun/lun_$i"/*; do
			[[ -L $link ]] && { rm -f "$link" || rc=1; }
		done
		[[ -d $tpg/lun/lun_$i ]] && { rmdir "$tpg/lun/lun_$i" || rc=1; }
	done
	if [[ -d $tpg ]]; then
		[[ $(<"$tpg/nexus") == *naa* ]] && { _lio_write NULL "$tpg/nexus" || rc=1; }
		rmdir "$tpg" "${tpg%/*}" || rc=1
	fi
	for ((i = ${#_LIO_LUNS[@]} - 1; i >= 0; i--)); do
		read -r name _ _ file backstore loop own <<<"${_LIO_LUNS[i]}"
		[[ -d $backstore ]] && { rmdir "$backstore" || rc=1; }
		[[ $loop != - ]] && { losetup -d "$loop" || rc=1; }
		((own)) && rm -f "$file"
	done
	for i in fileio_0 iblock_0; do
		[[ -d $_LIO_CFG/core/$i ]] && { rmdir "$_LIO_CFG/core/$i" || rc=1; }
	done
	rm -f "$_LIO_STATE"
	return $rc
}

# --- the same LUNs over iSCSI on the guest's loopback ---------------------------------------
#
# LIO's own iSCSI target (iscsi_target_mod) exports the backstores lio_setup made, all under
# ONE target portal group (so EXTENDED COPY finds them: the copy manager looks for the NAA
# ids among the LUNs of the session's node ACL), in demo mode (no ACL, no CHAP, writable), on
# 127.0.0.1; open-iscsi's iscsid and iscsiadm log in. The same disks then have two paths:
# tcm_loop's and iSCSI's. Undo with lio_iscsi_teardown before lio_teardown.

_LIO_ISCSI_IQN=iqn.2003-01.org.sgfs.test:lio
_LIO_ISCSI_STATE=$_LIO_DIR/iscsi

# _lio_iscsi_sg LUN: the /dev/sgN of LUN's device in the iSCSI session to our target.
_lio_iscsi_sg() {
	local session real dev
	for session in /sys/class/iscsi_session/session*; do
		[[ $(<"$session/targetname") == "$_LIO_ISCSI_IQN" ]] || continue
		# .../hostH/sessionN/iscsi_session/sessionN: the devices are under .../sessionN.
		real=$(readlink -f "$session")
		for dev in "${real%/iscsi_session/*}"/target*/*:"$1"/scsi_generic/*; do
			[[ -e $dev ]] && echo "/dev/${dev##*/}"
		done
	done 2>/dev/null
}

# lio_iscsi_export [PORTAL]: export lio_setup's LUNs over iSCSI at PORTAL (127.0.0.1:3260),
# log in, wait for their sg and sd nodes (30 s). Silent on success.
lio_iscsi_export() {
	local portal=${1:-127.0.0.1:3260} tpg line name sg blk file backstore i j dev blks attrib
	local -a _LIO_LUNS=() lines=()
	_lio_load
	((${#_LIO_LUNS[@]})) || { echo "lio_iscsi_export: no LUNs (lio_setup first)" >&2; return 1; }
	modprobe -a iscsi_target_mod iscsi_tcp || return 1
	tpg=$_LIO_CFG/iscsi/$_LIO_ISCSI_IQN/tpgt_1
	for ((i = 0; i < ${#_LIO_LUNS[@]}; i++)); do
		read -r name _ _ _ backstore _ <<<"${_LIO_LUNS[i]}"
		mkdir -p "$tpg/lun/lun_$i" && ln -s "$backstore" "$tpg/lun/lun_$i/$name" || return 1
	done
	mkdir "$tpg/np/$portal" || return 1
	for attrib in "generate_node_acls 1" "demo_mode_write_protect 0" "authentication 0" \
		"cache_dynamic_acls 1"; do
		_lio_write "${attrib#* }" "$tpg/attrib/${attrib% *}" || return 1
	done
	_lio_write 1 "$tpg/enable" || return 1
	echo "$portal" >"$_LIO_ISCSI_STATE"
	ip link set lo up
	mkdir -p /run/lock /etc/iscsi # iscsiadm locks under /run/lock
	[[ -s /etc/iscsi/initiatorname.iscsi ]] ||
		echo "InitiatorName=$(iscsi-iname)" >/etc/iscsi/initiatorname.iscsi
	if ! grep -q ISCSIADM_ABSTRACT_NAMESPACE /proc/net/unix; then
		# iscsid kills its whole process group when it exits: a session of its own.
		setsid iscsid -f >"$_LIO_DIR/iscsid.log" 2>&1 &
		echo "iscsid $!" >>"$_LIO_ISCSI_STATE"
		for ((i = 0; i < 300; i++)); do
			grep -q ISCSIADM_ABSTRACT_NAMESPACE /proc/net/unix && break
			_gl_sleep 0.1
		done
	fi
	iscsiadm -m discovery -t sendtargets -p "$portal" >/dev/null &&
		iscsiadm -m node -T "$_LIO_ISCSI_IQN" -p "$portal" --login >/dev/null || return 1
	for ((i = 0; i < ${#_LIO_LUNS[@]}; i++)); do
		read -r name _ _ file _ <<<"${_LIO_LUNS[i]}"
		sg=- blk=-
		for ((j = 0; j < 3000; j++)); do
			sg=$(_lio_iscsi_sg "$i")
			if [[ -n $sg ]]; then
				blks=(/sys/class/scsi_generic/"${sg#/dev/}"/device/block/*)
				blk=/dev/${blks[0]##*/}
				[[ -e $sg && -e $blk && $blk != '/dev/*' ]] && break
			fi
			_gl_sleep 0.01
		done
		if [[ ! -e $sg || ! -e $blk ]]; then
			echo "lio_iscsi_export: no sg and sd nodes for LUN $i ($name) after 30 s" >&2
			return 1
		fi
		sg_turs "$sg" >/dev/null 2>&1
		lines+=("lun $name $sg $blk $file")
	done
	printf '%s\n' "${lines[@]}" >>"$_LIO_ISCSI_STATE"
}

# lio_iscsi_devices: "NAME /dev/sgN /dev/sdX BACKING_FILE" per LUN over iSCSI, LUN order.
lio_iscsi_devices() {
	local kind rest
	[[ -r $_LIO_ISCSI_STATE ]] || return 0
	while read -r kind rest; do [[ $kind == lun ]] && echo "$rest"; done <"$_LIO_ISCSI_STATE"
}

# lio_iscsi_teardown: log out, stop the iscsid lio_iscsi_export started, remove the target.
lio_iscsi_teardown() {
	local tpg=$_LIO_CFG/iscsi/$_LIO_ISCSI_IQN/tpgt_1 portal='' kind rest link rc=0 np lun
	if [[ -r $_LIO_ISCSI_STATE ]]; then
		read -r portal <"$_LIO_ISCSI_STATE"
		iscsiadm -m node -T "$_LIO_ISCSI_IQN" -p "$portal" --logout >/dev/null 2>&1
		iscsiadm -m node -T "$_LIO_ISCSI_IQN" -p "$portal" -o delete >/dev/null 2>&1
		while read -r kind rest; do [[ $kind == iscsid ]] && kill "$rest" 2>/dev/null; done <"$_LIO_ISCSI_STATE"
	fi
	if [[ -d $tpg ]]; then
		echo 0 >"$tpg/enable" 2>/dev/null
		for np in "$tpg"/np/*; do [[ -d $np ]] && { rmdir "$np" || rc=1; }; done
		for lun in "$tpg"/lun/lun_*; do
			[[ -d $lun ]] || continue
			for link in "$lun"/*; do [[ -L $link ]] && { rm -f "$link" || rc=1; }; done
			rmdir "$lun" || rc=1
		done
		rmdir "$tpg" "${tpg%/*}" || rc=1
	fi
	rm -f "$_LIO_ISCSI_STATE"
	return $rc
}

# --- sgfs mounts ----------------------------------------------------------------------

# sgfs_mounted DIR: an sgfs file system is mounted at DIR.
sgfs_mounted() { grep -q " $1 fuse.sgfs " /proc/mounts; }
# sgfs_umount DIR: nothing of sgfs is mounted at DIR any more (lazily if it is busy).
sgfs_umount() { while sgfs_mounted "$1"; do umount "$1" 2>/dev/null || umount -l "$1"; done; }
# mount_gets_ebusy DEV DIR: mount(8) refuses DEV as a disk in use, in its own words (shown).
mount_gets_ebusy() {
	local err
	if err=$(mount "$1" "$2" 2>&1); then
		umount "$2"
		return 1
	fi
	printf '%s\n' "$err"
	[[ $err == *"$1 already mounted or mount point busy"* ]]
}

# sgfs_stat MOUNT DEVICE KEY: the value of KEY in DEVICE's block ("device sgN", then
# "  key value" lines) of MOUNT/.stats. An absent key (a misspelt one, or a device that is
# not there) prints "absent:KEY" and fails, so that no numeric check can pass on it.
sgfs_stat() {
	awk -v dev="device $2" -v key="$3" '$0 == dev { in_dev = 1; next } /^device / { in_dev = 0 }
		in_dev && $1 == key { print $2; found = 1; exit }
		END { if (!found) { print "absent:" key; exit 1 } }' "$1/.stats"
}

# --- the filesystem against an oracle it did not write -----------------------------------

# odd_io_against_backing FILE BACKING LABEL [BLOCK_DEVICE]: through FILE (an sgfs disk
# file), 4 MiB of random data, then odd sizes at odd offsets, into a model as well; fsync;
# two checks: BACKING (the LUN's backing file, or anything holding what the disk holds)
# and, when given, BLOCK_DEVICE read with O_DIRECT hold the model; dd reads of FILE at odd
# offsets and sizes equal BACKING.
odd_io_against_backing() {
	local file=$1 backing=$2 label=$3 blk=${4:-} dir spec bs seek skip count bytes ok=1
	local region=$((4 << 20))
	dir=$(mktemp -d) || return 1
	head -c $region /dev/urandom >"$dir/model"
	dd if="$dir/model" of="$file" bs=1M conv=notrunc status=none
	for spec in "512 1537 7" "4096 6000 3" "1M 333333 1" "1000 12345 9" "12345 4194301 3" "1 4194303 1"; do
		read -r bs seek count <<<"$spec"
		dd if=/dev/urandom of="$dir/chunk" bs="$bs" count="$count" iflag=fullblock status=none
		dd if="$dir/chunk" of="$file" bs="$bs" seek="$seek" oflag=seek_bytes conv=notrunc status=none
		dd if="$dir/chunk" of="$dir/model" bs="$bs" seek="$seek" oflag=seek_bytes conv=notrunc status=none
	done
	# The model grew by what the last writes put past the region.
	truncate -s $region "$dir/model"
	dd if=/dev/null of="$file" conv=notrunc,fsync status=none
	check "$label: after odd writes and fsync the backing file holds the data" \
		cmp -n $region "$dir/model" "$backing"
	if [[ -n $blk ]]; then
		check "$label: ${blk#/dev/} read with O_DIRECT holds the data" \
			cmp "$dir/model" <(dd if="$blk" bs=1M count=4 iflag=direct status=none)
	fi
	for spec in "512 0 16" "1000 12345 50" "12345 777 20" "4096 4095 9" "1M 0 2" "1M 5000 3"; do
		read -r bs skip count <<<"$spec"
		dd if="$file" bs="$bs" skip="$skip" count="$count" iflag=skip_bytes status=none >"$dir/got"
		case $bs in 1M) bytes=$((count << 20)) ;; *) bytes=$((bs * count)) ;; esac
		tail -c +$((skip + 1)) "$backing" | head -c "$bytes" >"$dir/want"
		cmp -s "$dir/want" "$dir/got" || { ok=0; diag "read bs=$bs skip=$skip count=$count differs"; }
	done
	check "$label: reads at odd offsets and sizes match the backing file" test $ok = 1
	rm -rf "$dir"
}

# --- TAP-like reporting -------------------------------------------------------------

_TAP_N=0 _TAP_FAILED=0 _TAP_SKIPPED=0 _TAP_FAILED_NAMES=()

diag() { printf '# %s\n' "$*"; }

pass() {
	_TAP_N=$((_TAP_N + 1))
	echo "ok $_TAP_N - $1"
}

fail() {
	_TAP_N=$((_TAP_N + 1))
	_TAP_FAILED=$((_TAP_FAILED + 1))
	_TAP_FAILED_NAMES+=("$_TAP_N - $1")
	echo "not ok $_TAP_N - $1"
	if [[ -n ${2:-} ]]; then diag "$2"; fi
}

skip_check() {
	_TAP_N=$((_TAP_N + 1))
	_TAP_SKIPPED=$((_TAP_SKIPPED + 1))
	echo "ok $_TAP_N - $1 # SKIP ${2:-}"
}

# The output goes to a file, not a pipe: a command that leaves a daemon behind (a FUSE
# mount) must not make check wait for the daemon's end.
_GL_OUT=${TMPDIR:-/tmp}/guest-lib.$$.check
check() {
	local name=$1 rc line
	local -a lines=()
	shift
	if ("$@") >"$_GL_OUT" 2>&1 </dev/null; then
		pass "$name"
	else
		rc=$?
		fail "$name" "command failed with status $rc: $*"
		mapfile -t lines <"$_GL_OUT"
		for line in "${lines[@]}"; do echo "#   $line"; done
	fi
	return 0
}

skip_all() {
	echo "1..0 # SKIP $*"
	_TAP_DONE=1
	exit 77
}

_tap_finish() {
	local rc=$?
	[[ -e $_GL_OUT ]] && rm -f "$_GL_OUT"
	[[ -n ${_TAP_DONE:-} ]] && return
	((_TAP_N)) || exit "$rc" # no checks used: nothing to report
	echo "1..$_TAP_N"
	if ((_TAP_FAILED)); then
		diag "FAILED $_TAP_FAILED of $_TAP_N checks:"
		printf '#   %s\n' "${_TAP_FAILED_NAMES[@]}"
		((rc == 0)) && exit 1
	else
		diag "passed $((_TAP_N - _TAP_SKIPPED)) of $_TAP_N checks ($_TAP_SKIPPED skipped)"
	fi
	exit "$rc"
}
trap _tap_finish EXIT
