#!/bin/bash
# The metadata group changed under load, then the whole cluster restarted
# from disk. While two S3 writers and a FUSE writer run: a fourth member
# (started with --join) is added, leadership is handed to it, and member
# 1 is removed and stopped; no writer waits more than 5 s for a write.
# Then every process is stopped (SIGTERM) and started again with the same
# command line: everything acknowledged reads back identical through S3
# and a new mount, and writes go on.
. "$top_srcdir/tests/integration/lib.sh"
fuse_usable || skip "FUSE is not usable here (root, /dev/fuse and fusermount3 needed)"
MKV_ELECTION=1s
mkv_start_cluster
CTL=("$MINIKVCTL" --cluster-key "$KEY")
aws_v2 s3 mb s3://changes >/dev/null || fail "mb"
mkv_mount /changes "$T/mnt"
mkdir "$T/mnt/fs" || fail "mkdir through the mount"

mkv_writers 15 chg changes "$T/mnt/fs"
sleep 2
mkv_meta_start 4
"${CTL[@]}" meta add "127.0.0.1:${META_PORTS[3]}" >"$T/out" || fail "meta add under load: $(cat "$T/out")"
log "$(cat "$T/out")"
"${CTL[@]}" meta transfer 4 >"$T/out" || fail "transfer to 4 under load"
log "$(cat "$T/out")"
for _ in $(seq 50); do [ "$(mkv_meta_leader)" = 4 ] && break; sleep 0.1; done
expect_eq "$(mkv_meta_leader)" 4 "leader after the transfer"
"${CTL[@]}" meta remove 1 >"$T/out" || fail "remove 1 under load"
log "$(cat "$T/out")"
mkv_daemon_stop meta-1
mkv_check_writers chg 5
n=$("${CTL[@]}" --json status | "$PY" -c 'import json,sys; print(sorted(m["id"] for m in json.load(sys.stdin)["meta"]["members"]))')
expect_eq "$n" "[2, 3, 4]" "members after the changes"

# The whole cluster stopped and started again from its data directories.
mkv_umount "$T/mnt"
for d in s3gw chunk meta-2 meta-3 meta-4; do mkv_daemon_stop "$d"; done
log "everything stopped; starting again"
for i in 2 3 4; do mkv_meta_start "$i"; done
mkv_cluster_fronts
mkv_mount /changes "$T/mnt"
mkv_verify_writes changes "$T/mnt/fs"
rand_file "$T/after" 100000
aws_v2 s3 cp "$T/after" s3://changes/after >/dev/null || fail "put after the restart"
cmp "$T/after" "$T/mnt/after" || fail "read through the mount after the restart"
mkv_umount "$T/mnt"
log "ok"
