#!/bin/bash
# The project's POSIX test program (tests/posix) against a minikv FUSE mount,
# with a local directory as the control: the same cases, the same expected
# results and errno values, every case covering an item of the POSIX part
# of the FUSE issue. Run as root with an unprivileged user (nobody) for the
# permission cases and a second file system for EXDEV.
. "$top_srcdir/tests/integration/lib.sh"
fuse_usable || skip "needs root, /dev/fuse and fusermount3"
PT="$top_builddir/tests/posix/posixtest"
mkdir -p "$T/local" "$T/other"
chmod 755 "$T"
# The control's EXDEV needs a second file system: a directory in /dev/shm.
SHM=$(mktemp -d /dev/shm/minikv-posix.XXXXXX) || skip "no /dev/shm"
trap 'rm -rf "$SHM"; mkv_cleanup' EXIT
chmod 755 "$SHM"
log "control run on a local directory"
"$PT" --uid 65534 --gid 65534 --other-dir "$SHM" "$T/local" >"$T/control.log" 2>&1 ||
    { cat "$T/control.log"; fail "posixtest failed on the local control directory"; }
tail -n 1 "$T/control.log"

mkv_start_server
aws_v2 s3 mb s3://posix >/dev/null || fail "mb"
mkv_mount /posix "$T/mnt" -o allow_other
mkdir "$T/mnt/pt" && chmod 777 "$T/mnt/pt" || fail "mkdir in the mount"
log "run on the mount"
"$PT" --uid 65534 --gid 65534 --other-dir "$T/other" "$T/mnt/pt" >"$T/posix.log" 2>&1 ||
    { grep -v '^ok' "$T/posix.log"; fail "posixtest failed on the minikv mount"; }
tail -n 1 "$T/posix.log"
mkv_umount "$T/mnt"
log "ok"
