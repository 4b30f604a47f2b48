# shellcheck shell=bash disable=SC2154 # $build, $mnt, $work: set by ../safety.sh
# Safety part (sourced by ../safety.sh): errors that point the right way. Each case is
# checked against the exact line sgfs puts on stderr, and whether a mount is left.

sdebug_reload add_host=1 dev_size_mb=32 delay=0
msg_sg=$(sdebug_sg_nodes | head -n 1)
msg_file=$mnt/$(basename "$msg_sg")

# msg_stderr_is LINE COMMAND...: COMMAND's stderr is exactly LINE.
msg_stderr_is() {
	local want=$1
	shift
	"$@" 2>"$work/msg-err" >/dev/null
	sed 's/^/#   stderr: /' "$work/msg-err"
	[ "$(cat "$work/msg-err")" = "$want" ]
}
# msg_refused LINE COMMAND...: COMMAND fails, its stderr is exactly LINE, nothing mounted.
msg_refused() {
	local want=$1
	shift
	if "$@" 2>"$work/msg-err" >/dev/null; then
		echo "# succeeded: $*"
		return 1
	fi
	sed 's/^/#   stderr: /' "$work/msg-err"
	[ "$(cat "$work/msg-err")" = "$want" ] && ! sgfs_mounted "$mnt"
}

# A mount whose daemon was killed: mounting there again names the cause and the cure.
sgfs -f "$msg_sg" "$mnt" &
msg_daemon=$!
for _ in $(seq 100); do sgfs_mounted "$mnt" && break; sleep 0.1; done
{
	kill -9 "$msg_daemon"
	wait "$msg_daemon"
} 2>/dev/null
msg_dead="sgfs: $mnt is a dead FUSE mount (its daemon is gone: Transport endpoint is not connected); run fusermount3 -u $mnt"
check "messages: stat of the dead mount fails with ENOTCONN" \
	bash -c "stat '$mnt' 2>&1 | grep -q 'Transport endpoint is not connected'"
check "messages: sgfs over a dead mount says so and names fusermount3 -u" \
	msg_stderr_is "$msg_dead" sgfs "$msg_sg" "$mnt"
check "messages: mount -t fuse.sgfs over a dead mount says the same" \
	msg_stderr_is "$msg_dead" mount -t fuse.sgfs "$msg_sg" "$mnt"
check "messages: fusermount3 -u clears the dead mount" fusermount3 -u "$mnt"
check "messages: nothing is mounted after that" bash -c "! grep -q ' $mnt ' /proc/mounts"

# io=direct when the sg driver does no direct IO: a warning at mount, and the mount works.
read -r msg_dio </sys/module/sg/parameters/allow_dio
set_allow_dio 0
check "messages: io=direct with allow_dio=0 warns naming allow_dio" \
	msg_stderr_is "sgfs: warning: io=direct falls back to indirect IO for every command: /sys/module/sg/parameters/allow_dio is 0 (echo 1 > /sys/module/sg/parameters/allow_dio to allow direct IO)" \
	sgfs "$msg_sg" "$mnt" -o io=direct
check "messages: io=direct with allow_dio=0 still mounts" sgfs_mounted "$mnt"
sgfs_umount "$mnt"
check "messages: io=auto with allow_dio=0 asks for nothing that falls back: no warning" \
	msg_stderr_is "" sgfs "$msg_sg" "$mnt" -o io=auto
sgfs_umount "$mnt"
set_allow_dio 1
check "messages: io=direct with allow_dio=1: no warning" \
	msg_stderr_is "" sgfs "$msg_sg" "$mnt" -o io=direct
sgfs_umount "$mnt"
set_allow_dio "$msg_dio"

# max_io below the logical block size: refused at probe, naming both numbers.
check "messages: max_io=100 on 512-byte blocks is refused" \
	msg_refused "sgfs: cannot open $msg_sg: max_io=100 is below the disk's logical block size (512 bytes)" \
	sgfs "$msg_sg" "$mnt" -o max_io=100
check "messages: max_io=512 on 512-byte blocks mounts" sgfs "$msg_sg" "$mnt" -o max_io=512
sgfs_umount "$mnt"

# mmap(2) of a disk file: with cache=none (FUSE direct_io) the kernel refuses MAP_SHARED
# with ENODEV and maps MAP_PRIVATE; cache=page maps both (what the man page says).
msg_mmap() {
	python3 - "$1" "$2" <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
flags = mmap.MAP_SHARED if sys.argv[2] == "shared" else mmap.MAP_PRIVATE
try:
    mmap.mmap(fd, 4096, flags=flags).close()
    print("ok")
except OSError as error:
    print(os.strerror(error.errno))
PY
}
if command -v python3 >/dev/null; then
	check "messages: cache=none: mount" sgfs "$msg_sg" "$mnt" -o cache=none
	check "messages: cache=none: MAP_SHARED fails with ENODEV" \
		test "$(msg_mmap "$msg_file" shared)" = "No such device"
	check "messages: cache=none: MAP_PRIVATE maps" test "$(msg_mmap "$msg_file" private)" = ok
	sgfs_umount "$mnt"
	check "messages: cache=page: mount" sgfs "$msg_sg" "$mnt" -o cache=page
	check "messages: cache=page: MAP_SHARED maps" test "$(msg_mmap "$msg_file" shared)" = ok
	sgfs_umount "$mnt"
else
	skip_check "messages: mmap with cache=none and cache=page" "no python3 in the guest"
fi
