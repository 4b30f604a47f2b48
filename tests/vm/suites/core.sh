#!/bin/bash
# Guest suite: core against the real sg driver, every IO mode, 512- and 4096-byte sector
# disks, allow_dio on and off, and the errors a user can cause. Oracle: the kernel's sd
# driver read and written with O_DIRECT.
#   usage (inside the guest, via vm-run): core.sh BUILD_DIR
set -u
build=${1:?usage: core.sh BUILD_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../guest-lib.sh
. "$here/guest-lib.sh"

failed=0
run() {
	echo "# --- $*"
	"$@" || { failed=$((failed + 1)); echo "# FAILED: $*"; }
}

for sector in 512 4096; do
	sdebug_reload add_host=2 dev_size_mb=64 delay=0 per_host_store=1 sector_size=$sector
	sg=$(sdebug_sg_nodes | head -n 1)
	sd=$(sdebug_block_nodes | head -n 1)
	echo "# sector size $sector: $sg $sd"
	set_allow_dio 1
	for mode in indirect direct mmap auto; do
		run "$build/tests/vm/vm_core_io" "$sg" "$sd" "$mode"
	done
	set_allow_dio 0
	run "$build/tests/vm/vm_core_io" "$sg" "$sd" direct --expect-fallback
	run "$build/tests/vm/vm_core_io" "$sg" "$sd" auto
done

# opts=2: scsi_debug fails reads of LBA 0x1234 onwards with MEDIUM ERROR.
sdebug_reload add_host=1 dev_size_mb=64 delay=0 opts=2
sg=$(sdebug_sg_nodes | head -n 1)
sd=$(sdebug_block_nodes | head -n 1)
run "$build/tests/vm/vm_core_errors" "$sg" "$sd" --medium-error-lba 0x1234

echo "# core suite: $failed program(s) failed"
[ "$failed" -eq 0 ]
