#!/bin/bash
# Guest suite: the ways ordinary tools lost data through sgfs (issue 11), one part per
# reproduction, each checked against an oracle that is not sgfs: e2fsck and mount's own
# EBUSY for disks in use, /dev/sdX read with O_DIRECT and qemu-img compare for sparse
# writers, a write through /dev/sdX for read-ahead staleness, the exact stderr lines for
# the messages.
#   usage (inside the guest, via vm-run): safety.sh BUILD_DIR
set -u
build=${1:?usage: safety.sh BUILD_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../guest-lib.sh
. "$here/guest-lib.sh"

# mount -t fuse.sgfs finds sgfs on PATH (the guest's / is an overlay: the host is untouched).
cmake --install "$build" --prefix /usr/local >/dev/null
mnt=/mnt/sg
mkdir -p "$mnt"
work=$(mktemp -d)

# Each part is sourced in turn and leaves nothing mounted behind it. A part may reload
# scsi_debug as it needs.
for part in "$here"/suites/safety/*.sh; do
	[ -e "$part" ] || continue
	diag "part $(basename "$part" .sh)"
	# shellcheck disable=SC1090
	. "$part"
	sgfs_umount "$mnt"
done
