#!/bin/sh
# Control run of posixtest on local filesystems: a fresh mktemp -d directory
# on tmpfs (/dev/shm) and one on disk (/var/tmp, ext4 here), each using the
# other as --other-dir for the EXDEV case. Builds nothing.
#
#   tests/posix/run-local.sh ./posixtest [posixtest options...]
#
# As root, the permission cases run as nobody unless --uid/--gid are given.
# PT_TMPFS and PT_DISK override the two base directories. Exit status: 0 if
# both runs pass, 1 if either fails, 2 on a usage or setup error.
set -u

if [ $# -lt 1 ] || [ ! -x "$1" ]; then
    echo "usage: $0 POSIXTEST-BINARY [posixtest options...]" >&2
    exit 2
fi
bin=$1
shift

tmpfs_base=${PT_TMPFS:-/dev/shm}
disk_base=${PT_DISK:-/var/tmp}
a=
b=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    [ -n "$a" ] && rm -rf -- "$a"
    [ -n "$b" ] && rm -rf -- "$b"
}
trap cleanup EXIT
trap 'exit 2' HUP INT TERM

a=$(mktemp -d "$tmpfs_base/posixtest.XXXXXX") || exit 2
b=$(mktemp -d "$disk_base/posixtest.XXXXXX") || exit 2

uid=
gid=
case " $* " in
*" --uid "*) ;;
*)
    if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
        uid=$(id -u nobody)
        gid=$(id -g nobody)
    fi
    ;;
esac

# run DIR OTHER-DIR [options...]
run() {
    dir=$1
    other=$2
    shift 2
    echo "# run-local: $dir"
    if [ -n "$uid" ]; then
        "$bin" --uid "$uid" --gid "$gid" --other-dir "$other" "$@" "$dir"
    else
        "$bin" --other-dir "$other" "$@" "$dir"
    fi
}

rc=0
run "$a" "$b" "$@" || rc=1
run "$b" "$a" "$@" || rc=1
if [ $rc -eq 0 ]; then
    echo "# run-local: both control runs passed"
else
    echo "# run-local: FAILED (see 'not ok' lines above)"
fi
exit $rc
