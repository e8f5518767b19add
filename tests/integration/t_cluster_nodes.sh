#!/bin/bash
# Chunk servers register with the metadata group and report to its
# leader: minikvctl nodes lists them with their zones and capacity; one
# killed with kill -9 goes down after three missed heartbeats and dead
# after --chunk-dead-after; restarted, it keeps its id and is up again;
# a new leader learns their states from their next heartbeats. (Data is
# not spread over chunk servers yet: the gateway uses its --chunk, mounts
# the first one that is up.)
. "$top_srcdir/tests/integration/lib.sh"
MKV_ELECTION=500ms
MKV_META_ARGS="--chunk-heartbeat 300ms --chunk-dead-after 3s"
mkv_start_cluster
CTL=("$MINIKVCTL" --cluster-key "$KEY")
C2=$(free_ports 1)
chunk2() {
    mkv_daemon_start chunk2 "$top_builddir/chunk/minikv-chunk" --data "$T/chunk2" \
        --listen "127.0.0.1:$C2" --meta "$MINIKV_META" --cluster-key "$KEY" --zone rack-b
}
chunk2
# state_of ADDRESS: the state minikvctl nodes gives it.
state_of() {
    { timeout 5 "${CTL[@]}" --json nodes 2>/dev/null || true; } | "$PY" -c 'import json,sys
try: print([n["state"] for n in json.load(sys.stdin) if n["address"] == sys.argv[1]][0])
except Exception: print("")' "$1"
}
wait_state() { # wait_state ADDRESS STATE SECONDS
    local s
    for _ in $(seq $(($3 * 10))); do
        s=$(state_of "$1")
        [ "$s" = "$2" ] && return 0
        sleep 0.1
    done
    fail "$1 is ${s:-absent}, not $2, after $3 s"
}
wait_state "127.0.0.1:$CHUNK_PORT" up 10
wait_state "127.0.0.1:$C2" up 10
"${CTL[@]}" nodes >"$T/nodes" || fail "minikvctl nodes"
cat "$T/nodes"
grep -q "127.0.0.1:$C2 *rack-b *up" "$T/nodes" || fail "second chunk server not listed with its zone"
id2=$(cat "$T/chunk2/node.id")
n=$("${CTL[@]}" --json nodes | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(len(d), min(x["capacity"] for x in d) > 0)')
expect_eq "$n" "2 True" "registered chunk servers with a capacity"

# kill -9: down after three missed heartbeats, dead after 3 s.
mkv_daemon_kill chunk2
t0=$(date +%s.%N)
wait_state "127.0.0.1:$C2" down 5
log "down after $(echo "$(date +%s.%N) - $t0" | bc) s"
wait_state "127.0.0.1:$C2" dead 10
log "dead after $(echo "$(date +%s.%N) - $t0" | bc) s"
# A mount made meanwhile reads what the gateway wrote.
aws_v2 s3 mb s3://nodes >/dev/null || fail "mb"
rand_file "$T/f" 300000
aws_v2 s3 cp "$T/f" s3://nodes/f >/dev/null || fail "put"
mkv_mount /nodes "$T/mnt"
cmp "$T/f" "$T/mnt/f" || fail "read through the mount"
mkv_umount "$T/mnt"

# Restarted, it keeps its id and comes back up.
chunk2
wait_state "127.0.0.1:$C2" up 10
expect_eq "$(cat "$T/chunk2/node.id")" "$id2" "node id after restart"
n=$("${CTL[@]}" --json nodes | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')
expect_eq "$n" 2 "chunk servers after the restart (no second registration)"

# A new leader knows the registrations and hears the heartbeats.
l=$(mkv_meta_leader)
mkv_daemon_kill "meta-$l"
wait_state "127.0.0.1:$C2" up 10
wait_state "127.0.0.1:$CHUNK_PORT" up 10
log "leader $l killed; both chunk servers up under leader $(mkv_meta_leader)"
mkv_meta_start "$l"
mkv_meta_wait "$l"
log "ok"
