#!/bin/bash
# Guest suite: sgfs on iSCSI LUNs, a SAN on the guest's own loopback. tgt's tgtd is the
# target, its LUNs files in the guest's /tmp; open-iscsi's iscsid and iscsiadm the initiator.
# The oracle is the target's backing file: what sgfs wrote and synced must be there, what
# sgfs reads must equal it. Then path loss and return: the target killed with a writer
# running, a logout and a re-login on other sg numbers, while a scsi_debug disk in the same
# mount keeps working.
#   usage (inside the guest, via vm-run): iscsi.sh BUILD_DIR
# Nothing here addresses anything but the loopback (127.0.0.1, and 127.0.0.2 as a second portal).
set -u
build=${1:?usage: iscsi.sh BUILD_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../guest-lib.sh
. "$here/guest-lib.sh"

for tool in tgtd tgtadm tgt-admin iscsid iscsiadm iscsi-iname ip fio; do
	command -v "$tool" >/dev/null || skip_all "$tool is not installed (scripts/install-deps installs tgt and open-iscsi)"
done

cmake --install "$build" --prefix /usr/local >/dev/null
# One small scsi_debug disk: the disk that keeps working while the SAN path is down.
sdebug_reload add_host=1 dev_size_mb=32 delay=0 || exit 1
mnt=/mnt/sg
mkdir -p "$mnt"
work=$(mktemp -d)
luns=$work/luns
mkdir -p "$luns"
iqn=iqn.2024-01.org.sgfs.test:luns
portal=127.0.0.1:3260
export TIMEFORMAT=%R

# The daemonized sgfs logs to syslog: keep what it says.
if command -v busybox >/dev/null; then
	busybox syslogd -n -O "$work/syslog" &
	syslogd_pid=$!
fi

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# The value of KEY in DEVICE's block of /.stats.
stat_of() { awk -v dev="$1" -v key="$2" '$1 == "device" { cur = $2; next } cur == dev && $1 == key { print $2; exit }' "$mnt/.stats"; }
stat_is() { [[ $(stat_of "$1" "$2") == "$3" ]] || { echo "$1 $2 is '$(stat_of "$1" "$2")', not '$3'"; return 1; }; }
# Waits up to SECONDS for COMMAND to succeed, polling. A guard against hanging, not a
# timing check: nothing here depends on how fast the machine is.
wait_until() {
	local seconds=$1 i
	shift
	for ((i = 0; i < seconds * 5; i++)); do
		"$@" 2>/dev/null && return 0
		sleep 0.2
	done
	return 1
}

# --- the target ----------------------------------------------------------------------

# LUN 1: 64 MiB, 512-byte blocks; LUN 2: 64 MiB, 4096-byte blocks; LUN 3: 8 MiB read-only;
# LUN 4: a CD-ROM (not a disk). tgt adds LUN 0 itself, a storage controller (type 0x0c).
truncate -s 64M "$luns/lun1.img" "$luns/lun2.img"
head -c $((8 << 20)) /dev/urandom >"$luns/lun3.img"
truncate -s 4M "$luns/cd.iso"

# Run through check, in a subshell: the pid goes through a file. tgtd listens on a side
# port while the target is set up, and on $portal only once it is: an initiator retrying
# its session (after the target was killed) that logged in between would be told "target
# not found", which open-iscsi takes as final and stops recovering the session.
setup_portal=127.0.0.1:3261
start_target() {
	tgtd -f --iscsi portal=$setup_portal >>"$work/tgtd.log" 2>&1 &
	echo $! >"$work/tgtd.pid"
	wait_until 30 tgtadm --op show --mode system >/dev/null || return 1
	tgtadm --lld iscsi --op new --mode target --tid 1 -T $iqn &&
		tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$luns/lun1.img" &&
		tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 2 -b "$luns/lun2.img" --blocksize 4096 &&
		tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 3 -b "$luns/lun3.img" &&
		tgtadm --lld iscsi --op update --mode logicalunit --tid 1 --lun 3 --params readonly=1 &&
		tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 4 -b "$luns/cd.iso" --device-type cd &&
		tgtadm --lld iscsi --op bind --mode target --tid 1 -I 127.0.0.1 &&
		tgtadm --lld iscsi --op new --mode portal --param portal=$portal &&
		tgtadm --lld iscsi --op delete --mode portal --param portal=$setup_portal
}
# tgtd ignores SIGTERM.
stop_target() {
	tgt-admin --delete ALL -f >/dev/null 2>&1
	tgtadm --op delete --mode system >/dev/null 2>&1
	wait_until 30 bash -c "! kill -0 $(cat "$work/tgtd.pid") 2>/dev/null"
}

# --- the initiator -------------------------------------------------------------------

ip link set lo up
mkdir -p /run/lock /etc/iscsi # iscsiadm locks under /run/lock
echo "InitiatorName=$(iscsi-iname)" >/etc/iscsi/initiatorname.iscsi
modprobe iscsi_tcp
# iscsid kills its whole process group when it exits: its own session keeps ours safe.
setsid iscsid -f >"$work/iscsid.log" 2>&1 &
iscsid_pid=$!
iscsid_ready() { grep -q ISCSIADM_ABSTRACT_NAMESPACE /proc/net/unix; }

# The /dev/sgN of the iSCSI device with LUN number $1 ("" when there is none).
# sgfs_holds_block SG: an sgfs process holds the block device of sg node SG open (its
# O_EXCL hold, see sgfs(8) DISKS IN USE); status 1 when none does, 2 without a block device.
sgfs_holds_block() {
	local blk fd pid
	blk=$(ls "/sys/class/scsi_generic/${1#/dev/}/device/block/" 2>/dev/null)
	[[ -n $blk ]] || return 2
	for fd in $(find /proc/[0-9]*/fd -lname "/dev/$blk" 2>/dev/null); do
		pid=${fd#/proc/} pid=${pid%%/*}
		[[ $(<"/proc/$pid/comm") == sgfs ]] && return 0
	done
	echo "no sgfs process holds /dev/$blk"
	return 1
}
sgfs_lets_go_of_block() {
	sgfs_holds_block "$1"
	(($? == 1))
}

lun_sg() {
	local dev vendor
	for dev in /sys/class/scsi_generic/*; do
		read -r vendor <"$dev/device/vendor" 2>/dev/null || continue
		[[ $vendor == IET ]] || continue
		[[ $(readlink -f "$dev/device") == *:"$1" ]] && { echo "/dev/${dev##*/}"; return; }
	done
}
luns_present() {
	local l sg
	for l in 0 1 2 3 4; do
		sg=$(lun_sg $l)
		[[ -n $sg && -c $sg ]] || return 1
	done
}
login() { iscsiadm -m node -T $iqn -p $portal --login >/dev/null && wait_until 60 luns_present; }
logout() { iscsiadm -m node -T $iqn -p $portal --logout >/dev/null; }

check "tgtd serves four LUNs on $portal" start_target
check "iscsid starts" wait_until 30 iscsid_ready
check "sendtargets discovery finds the target" bash -c "iscsiadm -m discovery -t sendtargets -p $portal | grep -q $iqn"
# The initiator holds IO of a failed session for replacement_timeout (120 s by default)
# before failing it: 5 s here, as on a multipath or failover setup.
iscsiadm -m node -T $iqn -p $portal -o update -n node.session.timeo.replacement_timeout -v 5
# A hung target is noticed by NOP-Out pings (5 s and 5 s by default).
iscsiadm -m node -T $iqn -p $portal -o update -n "node.conn[0].timeo.noop_out_interval" -v 3
iscsiadm -m node -T $iqn -p $portal -o update -n "node.conn[0].timeo.noop_out_timeout" -v 3
check "login; the LUNs get sg nodes" login
if ! luns_present; then
	diag "no iSCSI devices; the rest cannot run"
	exit 1
fi
sg1=$(lun_sg 1) sg2=$(lun_sg 2) sg3=$(lun_sg 3)
n1=${sg1#/dev/} n2=${sg2#/dev/} n3=${sg3#/dev/}
sgsd=$(sdebug_sg_nodes | head -n 1)
sdd=$(sdebug_block_nodes | head -n 1)
nsd=${sgsd#/dev/}
diag "scsi_debug $sgsd; iSCSI LUN 0 $(lun_sg 0), LUN 1 $sg1, LUN 2 $sg2, LUN 3 $sg3, LUN 4 $(lun_sg 4)"

diag "$SECONDS s into the suite"
# --- what a SAN presents: --list and all ----------------------------------------------

sgfs --list >"$work/list" 2>&1
sed 's/^/#   /' "$work/list"
listed() { grep -E "$1" "$work/list"; }
check "--list shows the LUN 0 controller" listed "$(lun_sg 0)\$"
check "--list names it a storage controller" listed "^\[[0-9:]+:0\] +storage +IET "
check "--list shows the CD-ROM LUN" listed "^\[[0-9:]+:4\] +cd/dvd .*$(lun_sg 4)\$"
check "--list shows LUN 1 with 512-byte blocks and an id" listed "$sg1 .* 512/[0-9]+ .* wwn-0x"
check "--list shows LUN 2 with 4096-byte blocks" listed "$sg2 .* 4096/4096 "
check "mount all" mount -t fuse.sgfs all "$mnt"
ls "$mnt" >"$work/ls"
diag "all: $(tr '\n' ' ' <"$work/ls")"
check "all: the three disk LUNs and the scsi_debug disk are files" \
	bash -c "for n in $n1 $n2 $n3 $nsd; do grep -qx \$n $work/ls || exit 1; done"
check "all: the controller and the CD-ROM are not" \
	bash -c "! grep -qx -e $(lun_sg 0 | cut -d/ -f3) -e $(lun_sg 4 | cut -d/ -f3) $work/ls"
check "all: by-id has a link for each LUN" \
	bash -c "for n in $n1 $n2 $n3; do ls -l $mnt/by-id | grep -q \"> ../\$n\$\" || exit 1; done"
sgfs_umount "$mnt"
refused_as_not_a_disk() {
	if sgfs "$1" "$mnt" >"$work/out" 2>&1; then
		sgfs_umount "$mnt"
		return 1
	fi
	cat "$work/out"
	grep -q "is not a disk" "$work/out" && ! sgfs_mounted "$mnt"
}
check "naming the controller is refused as not a disk" refused_as_not_a_disk "$(lun_sg 0)"

diag "$SECONDS s into the suite"
# --- the filesystem's checks on the LUNs, against the backing files -------------------

# Writes through sgfs (whole MiBs, then odd sizes at odd offsets), fsync, the backing file
# compared; then reads at odd offsets against it (guest-lib's odd_io_against_backing).
set_allow_dio 1
for mode in indirect direct mmap auto; do
	check "io=$mode: mount LUN 1 and LUN 2" mount -t fuse.sgfs "$sg1,$sg2" "$mnt" -o io=$mode
	odd_io_against_backing "$mnt/$n1" "$luns/lun1.img" "io=$mode, 512-byte LUN"
	odd_io_against_backing "$mnt/$n2" "$luns/lun2.img" "io=$mode, 4096-byte LUN"
	expect=$mode
	[[ $mode == auto ]] && expect=direct # allow_dio is on
	for n in $n1 $n2; do
		check "io=$mode: .stats of $n shows $expect IO done" \
			bash -c "[[ \$(awk -v d=$n '\$1==\"device\"{c=\$2} c==d && \$1==\"$expect.done_commands\"{print \$2}' $mnt/.stats) -gt 0 ]]"
	done
	sgfs_umount "$mnt"
done

diag "$SECONDS s into the suite"
mount -t fuse.sgfs "$sg1,$sg2,$sg3" "$mnt"
head -c $((32 << 20)) /dev/urandom >"$work/image"
check "cp 32 MiB onto LUN 1, then fsync" bash -c "cp $work/image $mnt/$n1 && dd if=/dev/null of=$mnt/$n1 conv=notrunc,fsync status=none"
check "the backing file holds what cp wrote" cmp -n $((32 << 20)) "$work/image" "$luns/lun1.img"
check "LUN 2 read whole through sgfs equals its backing file" cmp "$mnt/$n2" "$luns/lun2.img"
check "ls shows LUN 2's size" test "$(stat -c %s "$mnt/$n2")" = $((64 << 20))

diag "$SECONDS s into the suite"
# fio: 4 jobs on the 4096-byte LUN, byte ranges disjoint but sharing blocks (bs=1000), so
# read-modify-writes of shared blocks race; then a separate verify-only pass.
fio_jobs=()
for i in 0 1 2 3; do
	fio_jobs+=("--name=job$i" --offset=$((333 + i * 300000)) --size=300000)
done
check "fio: 4 jobs write unaligned ranges sharing blocks, verify=crc32c" \
	fio --filename="$mnt/$n2" --rw=randwrite --bs=1000 --ioengine=psync --verify=crc32c \
	--do_verify=1 --verify_fatal=1 --randrepeat=1 --output="$work/fio.txt" "${fio_jobs[@]}"
check "fio: a later verify-only pass finds no errors" \
	fio --filename="$mnt/$n2" --rw=randwrite --bs=1000 --ioengine=psync --verify=crc32c \
	--verify_only=1 --verify_fatal=1 --randrepeat=1 --output="$work/fio-verify.txt" "${fio_jobs[@]}"
check "after fio the backing file equals what sgfs reads" \
	cmp -n $((2 << 20)) "$mnt/$n2" "$luns/lun2.img"

# The read-only LUN: writes refused with EROFS, reads match.
diag "read-only LUN: write_protected $(stat_of "$n3" write_protected), read_only $(stat_of "$n3" read_only)"
check "read-only LUN: a write fails with EROFS" \
	bash -c "dd if=/dev/zero of=$mnt/$n3 bs=4k count=1 conv=notrunc 2>&1 | grep -q 'Read-only file system'"
check "read-only LUN: reads equal the backing file" cmp "$mnt/$n3" "$luns/lun3.img"
check "read-only LUN: the backing file is unchanged" \
	bash -c "! cmp -s <(head -c 4096 /dev/zero) <(head -c 4096 $luns/lun3.img)"
sgfs_umount "$mnt"

diag "$SECONDS s into the suite"
# --- path loss and return ------------------------------------------------------------

# The scsi_debug disk and two LUNs in one mount; sgfs's own command timeout and retries
# low as well.
check "mount the scsi_debug disk and LUNs 1 and 2, timeout=5,retries=1" \
	mount -t fuse.sgfs "$sgsd,$sg1,$sg2" "$mnt" -o timeout=5,retries=1
head -c $((48 << 20)) /dev/urandom >"$work/pattern"
# Bytes the disk's commands moved, all modes together.
moved() { awk -v d="$1" '$1 == "device" { c = $2 } c == d && $1 ~ /\.done_bytes$/ { n += $2 } END { print n + 0 }' "$mnt/.stats"; }
moved_more() { (($(moved "$1") >= $2)); }

# The writer writes the pattern to LUN 1, 1 MiB at a time, each with its own dd whose
# close (FUSE flush: SYNCHRONIZE CACHE) must succeed too, and counts the MiBs
# acknowledged. It goes over the pattern again and again, writing the same bytes, so once
# it completed a pass all of the pattern was acknowledged.
start_writer() {
	echo 0 >"$work/acked"
	(
		for ((i = 0; i < 20 * 48; i++)); do
			dd if="$work/pattern" of="$mnt/$n1" bs=1M skip=$((i % 48)) seek=$((i % 48)) count=1 \
				conv=notrunc status=none 2>"$work/writer.err" || exit 1
			echo $((i + 1)) >"$work/acked"
		done
	) &
	writer=$!
	wait_until 120 moved_more "$n1" $(($(moved "$n1") + (4 << 20))) || diag "the writer did not get going"
}
# After the cut: the writer must fail (not hang), with ENODEV, and what it was told was
# written must be on the LUN. $1: the case's label, $2: when the cut was.
writer_failed() {
	local label=$1 cut=$2 chunks
	wait $writer
	diag "$label: the writer failed $(elapsed "$cut" "$(now)") s after the cut"
	sed 's/^/#   writer: /' "$work/writer.err"
	check "$label: the writer fails with ENODEV ('No such device')" grep -q "No such device" "$work/writer.err"
	chunks=$(cat "$work/acked")
	acked=$((chunks >= 48 ? 48 << 20 : chunks << 20))
	diag "$label: $chunks MiB were acknowledged before the failure"
	check "$label: every acknowledged write is in the backing file" \
		bash -c "((${acked:-0} > 0)) && cmp -n ${acked:-0} $work/pattern $luns/lun1.img"
	check "$label: .stats of $n1 says state gone" stat_is "$n1" state gone
	diag "$label: .stats $n1: device_state $(stat_of "$n1" device_state), path_losses $(stat_of "$n1" path_losses), errors.transport_error $(stat_of "$n1" errors.transport_error)"
}
readable() { dd if="$mnt/$1" of=/dev/null bs=4k count=1 status=none; }
# The LUN is picked up again: $1 the label, $2 when it returned, $3 the losses so far.
lun1_back() {
	local label=$1 back=$2 losses=$3
	check "$label: LUN 1 is picked up again without a remount" wait_until 120 readable "$n1"
	diag "$label: LUN 1 readable $(elapsed "$back" "$(now)") s after the target returned; path $(stat_of "$n1" path)"
	check "$label: .stats of $n1 says state online" stat_is "$n1" state online
	check "$label: .stats of $n1 counts $losses path losses" stat_is "$n1" path_losses "$losses"
	check "$label: .stats of $n1 counts $losses reattaches" stat_is "$n1" reattaches "$losses"
	check "$label: sgfs reads what was acknowledged before the cut" \
		cmp -n "${acked:-0}" "$work/pattern" "$mnt/$n1"
}

# 1. The target dies with the writer running (a crash, a cable pulled: the initiator sees
# the connection reset at once).
start_writer
cut=$(now)
kill -KILL "$(cat "$work/tgtd.pid")"
writer_failed "target killed" "$cut"
start=$(now)
check "outage: a read of LUN 2 fails with ENODEV" \
	bash -c "dd if=$mnt/$n2 of=/dev/null bs=4k count=1 2>&1 | grep -q 'No such device'"
diag "outage: the read of LUN 2 failed after $(elapsed "$start" "$(now)") s"
check "outage: .stats of $n2 says state gone" stat_is "$n2" state gone
check "outage: sgfs let go of LUN 2's block device" sgfs_lets_go_of_block "$(lun_sg 2)"
head -c $((1 << 20)) /dev/urandom >"$work/other"
check "outage: the scsi_debug disk takes a write" \
	dd if="$work/other" of="$mnt/$nsd" bs=64k conv=notrunc,fsync status=none
check "outage: sd O_DIRECT reads it back" \
	cmp "$work/other" <(dd if="$sdd" bs=1M count=1 iflag=direct status=none)
check "outage: .stats of $nsd says state online" stat_is "$nsd" state online
if [[ -n ${syslogd_pid:-} ]]; then
	check "syslog: sgfs says the LUN is lost" grep -q "sgfs: $n1 (wwn-[0-9a-fx]*): device lost" "$work/syslog"
fi
back=$(now)
check "the target is back" start_target
lun1_back "target back" "$back" 1
check "target back: writing the whole pattern again succeeds" \
	dd if="$work/pattern" of="$mnt/$n1" bs=1M conv=notrunc,fsync status=none
check "target back: the backing file holds it" cmp -n $((48 << 20)) "$work/pattern" "$luns/lun1.img"
check "target back: LUN 2 works again too" wait_until 60 readable "$n2"
check "target back: sgfs holds LUN 2's block device again" sgfs_holds_block "$(lun_sg 2)"
if [[ -n ${syslogd_pid:-} ]]; then
	check "syslog: sgfs says the LUN is back" grep -q "sgfs: $n1 (wwn-[0-9a-fx]*): back as /dev/sg" "$work/syslog"
fi

diag "$SECONDS s into the suite"
# 2. The target hangs with the writer running (SIGSTOP: the connection stays up, nothing
# answers). The initiator's NOP-Out pings notice (interval and timeout set to 3 s at
# login), then replacement_timeout; the sg command timeout does not fire first, as the
# iSCSI error handler keeps resetting it while the session is being recovered.
start_writer
cut=$(now)
kill -STOP "$(cat "$work/tgtd.pid")"
writer_failed "target hung" "$cut"
back=$(now)
kill -CONT "$(cat "$work/tgtd.pid")"
lun1_back "target resumed" "$back" 2

diag "$SECONDS s into the suite"
# 3. A logout with a reader running, and a login on other sg numbers: the session and
# its devices are gone, then new ones come with the same VPD 0x83 ids.
ids_by_lun() { sgfs --list 2>/dev/null | awk '$3 == "IET" && $2 == "disk" { split($1, h, ":"); print h[4], $NF }' | tr -d ']' | sort; }
ids_by_lun >"$work/ids-before"
(for ((i = 0; i < 20; i++)); do dd if="$mnt/$n2" of=/dev/null bs=64k 2>"$work/reader.err" || exit 1; done) &
reader=$!
wait_until 120 moved_more "$n2" $(($(moved "$n2") + (1 << 20))) || diag "the reader did not get going"
cut=$(now)
check "logout while a reader runs" logout
wait $reader
sed 's/^/#   reader: /' "$work/reader.err"
diag "logout: the reader failed $(elapsed "$cut" "$(now)") s after the logout"
check "logout: the reader fails with ENODEV" grep -q 'No such device' "$work/reader.err"
check "logout: .stats of $n2 says state gone" stat_is "$n2" state gone
check "logout: .stats of $n2 says device_state missing" stat_is "$n2" device_state missing
check "logout: the scsi_debug disk still reads" dd if="$mnt/$nsd" of=/dev/null bs=64k count=16 status=none
# Another scsi_debug host takes the lowest free sg numbers, so the LUNs come back elsewhere.
echo 1 >/sys/bus/pseudo/drivers/scsi_debug/add_host
two_sdebug() { (($(sdebug_sg_nodes | wc -l) >= 2)); }
check "another sg device appears" wait_until 30 two_sdebug
check "login again" login
new1=$(lun_sg 1) new2=$(lun_sg 2)
diag "after the re-login: LUN 1 $new1 (was $sg1), LUN 2 $new2 (was $sg2)"
check "re-login: the LUNs have other sg numbers" test "$new1" != "$sg1" -a "$new2" != "$sg2"
ids_by_lun >"$work/ids-after"
sed 's/^/#   ids before: /' "$work/ids-before"
check "re-login: --list shows the same by-id names for each LUN" cmp "$work/ids-before" "$work/ids-after"
# LUN 1 was idle: its first IO finds the old node dead and the LUN already back elsewhere,
# and succeeds there. LUN 2 was marked gone by the reader and is looked for again.
check "re-login: the first IO on LUN 1 (idle meanwhile) succeeds" readable "$n1"
check "re-login: LUN 2 is picked up again without a remount" wait_until 120 readable "$n2"
check "re-login: .stats of $n2 shows its new path $new2" stat_is "$n2" path "$new2"
check "re-login: .stats of $n1 shows its new path $new1" stat_is "$n1" path "$new1"
holds_new_blocks() { sgfs_holds_block "$new1" && sgfs_holds_block "$new2"; }
check "re-login: sgfs holds the LUNs' new block devices" holds_new_blocks
check "re-login: the by-id link still leads to LUN 1's data" \
	cmp -n $((8 << 20)) "$mnt/by-id/$(awk '$1 == 1 { print $2 }' "$work/ids-after")" "$luns/lun1.img"
head -c $((4 << 20)) /dev/urandom >"$work/late"
check "re-login: a write to LUN 2 reaches its backing file" \
	bash -c "dd if=$work/late of=$mnt/$n2 bs=1M conv=notrunc,fsync status=none && cmp -n $((4 << 20)) $work/late $luns/lun2.img"
sed 's/^/#   .stats: /' < <(awk -v d="$n2" '$1 == "device" { c = $2 } c == d' "$mnt/.stats" | head -n 12)
sgfs_umount "$mnt"

if [[ -n ${syslogd_pid:-} ]]; then
	grep "sgfs" "$work/syslog" | tail -n 12 | sed 's/^/#   syslog: /'
fi

diag "$SECONDS s into the suite"
# --- two paths to one LUN without dm-multipath: a second portal, a second session -------
# LUN 1 is then two disks of the same VPD 0x83 id; sgfs serving one path must see a file
# system mounted through the other, and hold both (sgfs(8) DISKS IN USE).
portal2=127.0.0.2:3260
lun1_sgs() {
	local dev vendor
	for dev in /sys/class/scsi_generic/*; do
		read -r vendor <"$dev/device/vendor" 2>/dev/null || continue
		[[ $vendor == IET && $(readlink -f "$dev/device") == *:1 ]] && echo "/dev/${dev##*/}"
	done
}
block_of() { echo "/dev/$(ls "/sys/class/scsi_generic/${1#/dev/}/device/block/")"; }
two_paths() { (($(lun1_sgs | wc -l) == 2)); }
second_login() {
	tgtadm --lld iscsi --op new --mode portal --param portal=$portal2 &&
		iscsiadm -m node -T $iqn -p $portal2 -o new >/dev/null &&
		iscsiadm -m node -T $iqn -p $portal2 --login >/dev/null && wait_until 60 two_paths
}
check "two paths: a second login to the target, through $portal2" second_login
if two_paths; then
	p2_sg=$(lun1_sgs | grep -vx "$new1")
	p1_sd=$(block_of "$new1") p2_sd=$(block_of "$p2_sg")
	diag "two paths: LUN 1 is $new1 ($p1_sd) and $p2_sg ($p2_sd)"
	mkdir -p "$work/p2"
	if ! { mkfs.ext4 -q -F "$p2_sd" && mount "$p2_sd" "$work/p2"; }; then
		fail "two paths: mount $p2_sd"
	fi
	refused_other_path() {
		if sgfs "${new1#/dev/}" "$mnt" 2>"$work/out"; then
			sgfs_umount "$mnt"
			return 1
		fi
		cat "$work/out"
		[[ $(<"$work/out") == "sgfs: $new1 ($p1_sd) is in use: $p2_sd mounted at $work/p2 ($p2_sd is another path to this disk)" ]]
	}
	check "two paths: serving $new1 is refused while $p2_sd is mounted" refused_other_path
	umount "$work/p2"
	check "two paths: e2fsck -fn $p2_sd: the file system was not touched" e2fsck -fn "$p2_sd"
	other_path_busy() {
		sgfs "${new1#/dev/}" "$mnt" || return 1
		mount_gets_ebusy "$p2_sd" "$work/p2"
	}
	check "two paths: while sgfs serves $new1, mount $p2_sd gets EBUSY" other_path_busy
	both_held() { sgfs_holds_block "$new1" && sgfs_holds_block "$p2_sg"; }
	check "two paths: sgfs holds both block devices" both_held
	sgfs_umount "$mnt"

	# Multipath: both nodes named, one file with two paths; fio verify with 4 jobs runs
	# while the session of the path in use is logged out and back in (sgfs(8) PATHS).
	n_p1=${new1#/dev/} n_p2=${p2_sg#/dev/}
	check "multipath: mount both paths of LUN 1" mount -t fuse.sgfs "$n_p1,$n_p2" "$mnt"
	check "multipath: one file, named after the first path" bash -c "[[ \$(ls $mnt | grep -c '^sg') == 1 && -e $mnt/$n_p1 ]]"
	check "multipath: .stats shows two paths" stat_is "$n_p1" paths 2
	check "multipath: path0 is active" stat_is "$n_p1" path0.state active
	check "multipath: path1 is standby" stat_is "$n_p1" path1.state standby
	fio --name=mp --filename="$mnt/$n_p1" --rw=randwrite --bs=16k --size=8M --numjobs=4 \
		--offset_increment=8M --ioengine=psync --verify=crc32c --do_verify=1 --loops=2 \
		--group_reporting >"$work/fio-mp.out" 2>&1 &
	fio_pid=$!
	sleep 1
	check "multipath: log out the session of the path in use, fio running" logout
	sleep 1
	check "multipath: log in again" login
	wait "$fio_pid"
	fio_rc=$?
	grep -E "err=|WRITE:|READ:|verify" "$work/fio-mp.out" | sed 's/^/#   fio: /'
	check "multipath: fio verify with 4 jobs: exit 0, no errors" bash -c "(( $fio_rc == 0 )) && grep -q 'err= 0' $work/fio-mp.out"
	check "multipath: path1 took over" stat_is "$n_p1" path1.state active
	check "multipath: path0 counted a failover" stat_is "$n_p1" path0.failovers 1
	path0_back() {
		dd if="$mnt/$n_p1" of=/dev/null bs=64k count=1 status=none
		stat_is "$n_p1" path0.state standby
	}
	check "multipath: the path is taken back as a standby after the re-login" wait_until 20 path0_back
	check "multipath: the file matches the backing file" cmp -n $((32 << 20)) "$mnt/$n_p1" "$luns/lun1.img"
	sed 's/^/#   .stats: /' < <(awk -v d="$n_p1" '$1 == "device" { c = $2 } c == d' "$mnt/.stats" | grep -E "state|path")
	sgfs_umount "$mnt"
	new1=$(lun_sg 1)
	iscsiadm -m node -T $iqn -p $portal2 --logout >/dev/null
fi

diag "$SECONDS s into the suite"
# --- tear down -----------------------------------------------------------------------
logout
stop_target
kill "$iscsid_pid" 2>/dev/null
[[ -n ${syslogd_pid:-} ]] && kill "$syslogd_pid" 2>/dev/null
rm -rf "$work"
