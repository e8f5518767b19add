#!/bin/bash
# A 3-member metadata group (separate minikv-meta processes), a chunk
# server and a gateway; S3 clients and a FUSE mount write while the test
# kill -9s the Raft leader: writes go on within 5 s, no acknowledged write
# is lost (read back through S3 and through the mount), REST transactions
# (bank transfers) stay all or nothing with none acknowledged lost, and the
# killed member rejoins with its old command line. Then the leader is stopped
# (SIGSTOP) for longer than the election timeout and let go: it steps
# down, and nothing acknowledged is lost.
. "$top_srcdir/tests/integration/lib.sh"
fuse_usable || skip "FUSE is not usable here (root, /dev/fuse and fusermount3 needed)"
MKV_ELECTION=1s
mkv_start_cluster
aws_v2 s3 mb s3://fover >/dev/null || fail "mb"
mkv_mount /fover "$T/mnt"
mkdir "$T/mnt/fs" || fail "mkdir through the mount"
aws_v2 s3 mb s3://ftx >/dev/null || fail "mb ftx"
TX="$PY $top_srcdir/tests/integration/txnload.py"
$TX setup ftx 8 100 || fail "accounts"
# 1. kill -9 of the leader under load.
mkv_writers 10 kill fover "$T/mnt/fs"
$TX run ftx 8 10 2 "$T/txack" >"$T/txrun.out" 2>&1 &
txload=$!
sleep 3
l=$(mkv_meta_leader)
[ "$l" != 0 ] || fail "no leader before the kill"
log "kill -9 of leader $l"
mkv_daemon_kill "meta-$l"
t0=$(date +%s.%N)
for _ in $(seq 100); do
    n=$(mkv_meta_leader)
    [ "$n" != 0 ] && [ "$n" != "$l" ] && break
    sleep 0.1
done
log "new leader $n after $(echo "$(date +%s.%N) - $t0" | bc) s"
mkv_check_writers kill 5
wait "$txload" || { cat "$T/txrun.out"; fail "transactions around the kill"; }
log "$(cat "$T/txrun.out")"
$TX check ftx 8 100 "$T/txack" || fail "transactions after the leader's kill"
# The killed member comes back with its old command line and catches up.
mkv_meta_start "$l"
member_status() { # member_status ID FIELD
    { timeout 5 "$MINIKVCTL" --cluster-key "$KEY" --meta "127.0.0.1:${META_PORTS[$(($1 - 1))]}" --json status \
        2>/dev/null || true; } |
        "$PY" -c 'import json,sys
try: print(json.load(sys.stdin)["meta"][sys.argv[1]])
except Exception: print("")' "$2"
}
commit=$(member_status "$n" commit_index)
end=$((SECONDS + 30))
while [ "$SECONDS" -lt "$end" ]; do
    kill -0 "${DAEMONS[meta-$l]}" 2>/dev/null || fail "member $l exited after its restart"
    a=$(member_status "$l" applied_index)
    [ -n "$a" ] && [ "$a" -ge "$commit" ] && break
    sleep 0.1
done
[ -n "$a" ] && [ "$a" -ge "$commit" ] || fail "member $l applied ${a:-nothing} of $commit after its restart"
log "member $l rejoined and applied $a"

# 2. The leader stopped past its election timeout, then let go.
mkv_writers 10 stop fover "$T/mnt/fs"
sleep 2
l=$(mkv_meta_leader)
[ "$l" != 0 ] || fail "no leader before the stop"
kill -STOP "${DAEMONS[meta-$l]}"
t0=$(date +%s.%N)
# Stopped until the others have elected a leader (they ask each other).
end=$((SECONDS + 15))
while [ "$SECONDS" -lt "$end" ]; do
    for o in 1 2 3; do
        [ "$o" = "$l" ] && continue
        n=$(member_status "$o" leader_id)
        [ -n "$n" ] && [ "$n" != 0 ] && [ "$n" != "$l" ] && break 2
    done
    sleep 0.1
done
log "leader $l stopped; member $n leads after $(echo "$(date +%s.%N) - $t0" | bc) s"
[ -n "$n" ] && [ "$n" != 0 ] && [ "$n" != "$l" ] || fail "no new leader while $l was stopped"
sleep 1
kill -CONT "${DAEMONS[meta-$l]}"
end=$((SECONDS + 10))
while [ "$SECONDS" -lt "$end" ]; do
    r=$(member_status "$l" role)
    [ "$r" = follower ] && break
    sleep 0.1
done
expect_eq "$r" follower "the stopped leader after SIGCONT"
# A request in flight to the stopped member waits for the client's
# per-attempt timeout (4 s) before it is sent elsewhere.
mkv_check_writers stop 7

# Everything acknowledged is there, through both fronts; an S3 upload that
# was not acknowledged is absent or whole.
mkv_verify_writes fover "$T/mnt/fs"
mkv_umount "$T/mnt"
log "ok"
