#!/bin/bash
# Data moves between chunk servers: a cluster of three metadata members and
# three chunk servers (factor 3) is given a fourth chunk server while S3
# clients and a mount write: the leader moves vshards to it (a bounded
# number at a time, each copied before the old replica is dropped) until
# every server holds 192 of the 768 replicas, copying no faster than its
# --fill-rate. The new server is killed: once declared dead, its vshards
# are copied to the others until the factor is back; restarted, it is
# given vshards again (and stopped with SIGTERM in the middle of its
# fills, it exits cleanly). Then one server is drained (minikvctl drain):
# its vshards get replicas on the others, filled, and it ends up holding
# none, and deletes its data. Killed then, it takes nothing with it: every
# acknowledged upload and fsynced file reads back.
. "$top_srcdir/tests/integration/lib.sh"
fuse_usable || skip "FUSE is not usable here (root, /dev/fuse and fusermount3 needed)"
MKV_ELECTION=1s
MKV_META_ARGS="--chunk-heartbeat 300ms --chunk-dead-after 3s"
MKV_EXTRA_CHUNKS=2
FILL_RATE=$((4 * 1024 * 1024))
MKV_CHUNK_ARGS="--release-after 2s --fill-rate $FILL_RATE"
read -r -a CHUNK_PORTS <<<"$(free_ports 3)"
mkv_start_cluster
CTL=("$MINIKVCTL" --cluster-key "$KEY")

aws_v2 s3 mb s3://move >/dev/null || fail "mb"
mkv_mount /move "$T/mnt"
mkdir "$T/mnt/fs" || fail "mkdir"
rand_file "$T/big" 3000000
aws_v2 s3 cp "$T/big" s3://move/big >/dev/null || fail "upload"

# 1. A fourth chunk server, under load.
mkv_writers 5 add move "$T/mnt/fs"
sleep 1
mkv_chunk_start 2
t0=$(date +%s.%N)
mkv_ctl_wait nodes 'len(n) == 4 and all(x["vshards"] == 192 and x["filling"] == 0 for x in n)' 90 \
    "192 filled vshards on each of the four servers"
log "rebalanced onto 4 servers in $(echo "$(date +%s.%N) - $t0" | bc) s"
mkv_check_writers add 5
"${CTL[@]}" nodes
id2=$(cat "$T/chunk2/node.id")
t1=$(date +%s.%N)
n=$(mkv_chunk_stat "127.0.0.1:${CHUNK_PORTS[2]}" chunks)
copied=$(mkv_chunk_stat "127.0.0.1:${CHUNK_PORTS[2]}" fill_bytes)
[ "$n" -gt 0 ] || fail "the new server holds no chunk"
log "the new server (id $id2) holds $n chunk versions; its fills copied $copied bytes"
# No faster than the cap: one second of credit and one 1 MiB piece aside.
awk -v b="$copied" -v r="$FILL_RATE" -v t="$(echo "$t1 - $t0" | bc)" \
    'BEGIN { exit !(b <= r * (t + 1) + 1048576) }' || fail "fills copied $copied bytes faster than --fill-rate"

# 2. kill -9 of a server under load: once it is declared dead its vshards
# get replicas on the three others, which fill: the factor is back.
mkv_writers 4 dead move "$T/mnt/fs"
sleep 1
mkv_daemon_kill chunk2
t0=$(date +%s.%N)
mkv_ctl_wait nodes "([x for x in n if x[\"id\"] == $id2][0][\"state\"] == \"dead\" and
    all(x[\"vshards\"] == 256 and x[\"filling\"] == 0 for x in n if x[\"id\"] != $id2))" 90 \
    "the factor restored on the three others"
log "factor restored $(echo "$(date +%s.%N) - $t0" | bc) s after the kill"
mkv_check_writers dead 5
d=$(mkv_ctl_eval status 'm["vshards"]["degraded"]')
expect_eq "$d" 0 "vshards short of copies after the re-replication"
# Restarted, it is given vshards again, filled before they are read there;
# what it held from before is released. Stopped (SIGTERM) in the middle of
# those fills, it exits at once and cleanly, and picks them up again.
mkv_chunk_start 2
mkv_ctl_wait nodes "[x for x in n if x[\"id\"] == $id2][0][\"filling\"] > 0" 30 \
    "the restarted server filling"
t0=$(date +%s.%N)
mkv_daemon_stop chunk2
log "stopped during its fills in $(echo "$(date +%s.%N) - $t0" | bc) s"
mkv_chunk_start 2
mkv_ctl_wait nodes "([x for x in n if x[\"id\"] == $id2][0][\"vshards\"] > 0 and
    [x for x in n if x[\"id\"] == $id2][0][\"filling\"] == 0)" 60 "the restarted server holding filled vshards"
log "the restarted server holds filled vshards again"

# 3. Drain a server under load; it ends up with no vshard.
id0=$(cat "$T/chunk0/node.id")
mkv_writers 4 drain move "$T/mnt/fs"
"${CTL[@]}" drain "$id0" || fail "minikvctl drain"
t0=$(date +%s.%N)
mkv_ctl_wait nodes "[x for x in n if x[\"id\"] == $id0][0][\"vshards\"] == 0 and all(x[\"filling\"] == 0 for x in n)" 90 \
    "chunk server $id0 drained"
log "chunk server $id0 drained in $(echo "$(date +%s.%N) - $t0" | bc) s"
mkv_check_writers drain 5
d=$(mkv_ctl_eval status 'm["vshards"]["degraded"]')
expect_eq "$d" 0 "vshards short of copies after the drain"

# It deletes what it held once older than --release-after (its index
# scan runs every 10 s at most).
for _ in $(seq 300); do
    n=$(mkv_chunk_stat "127.0.0.1:${CHUNK_PORTS[0]}" chunks)
    [ "$n" = 0 ] && break
    sleep 0.1
done
expect_eq "$n" 0 "chunk versions left on the drained server after 30 s"

# 4. The drained server goes away: nothing is lost.
mkv_daemon_kill chunk0
cmp "$T/big" "$T/mnt/big" || fail "read through the mount after the drain"
mkv_verify_writes move "$T/mnt/fs"
mkv_umount "$T/mnt"
log "OK"
