#!/bin/bash
# Data on three chunk servers: a 3-member metadata group, three chunk
# servers (two zones) and a gateway. The leader places the 256 vshards on
# all three (factor 3); an S3 upload and a file written through a mount
# land on every chunk server and read back the same through the other
# front; a deleted one is collected from all three. kill -9 of one chunk server while S3 clients and the mount write:
# writes and reads go on (two copies of three are enough), nothing
# acknowledged is lost, and once the server is declared dead the map drops
# it. Restarted, it is given its vshards back as filling replicas, copies
# what it missed, and is a full replica again. With the two others gone, a
# write is refused (it could not reach two copies) and everything
# acknowledged reads back from the restarted server alone.
. "$top_srcdir/tests/integration/lib.sh"
fuse_usable || skip "FUSE is not usable here (root, /dev/fuse and fusermount3 needed)"
MKV_ELECTION=1s
MKV_META_ARGS="--chunk-heartbeat 300ms --chunk-dead-after 3s"
MKV_EXTRA_CHUNKS=2
mkv_start_cluster
CTL=("$MINIKVCTL" --cluster-key "$KEY")
CP=("${CHUNK_PORTS[@]}")
ADDRS=("127.0.0.1:$CHUNK_PORT" "127.0.0.1:${CP[0]}" "127.0.0.1:${CP[1]}")

mkv_ctl_wait vshards 'len(m["vshards"]) == 256 and all(len(v["replicas"]) == 3 and
    not any(r["filling"] for r in v["replicas"]) for v in m["vshards"])' 15 \
    "three filled replicas for every vshard"
"${CTL[@]}" status | sed -n '/^vshard map/,/degraded/p'
"${CTL[@]}" nodes

# 1. One upload, one file: on every chunk server, the same on both fronts.
aws_v2 s3 mb s3://data >/dev/null || fail "mb"
rand_file "$T/big" 3000000
aws_v2 s3 cp "$T/big" s3://data/big >/dev/null || fail "upload"
mkv_mount /data "$T/mnt"
rand_file "$T/file" 1500000
cp "$T/file" "$T/mnt/file" && sync "$T/mnt/file" || fail "write through the mount"
cmp "$T/big" "$T/mnt/big" || fail "the upload read through the mount"
aws_v2 s3 cp s3://data/file "$T/file.s3" >/dev/null && cmp "$T/file" "$T/file.s3" ||
    fail "the file read through S3"
chunks_on() { mkv_chunk_stat "$1" chunks; } # chunks_on ADDRESS: chunks the server holds
# at_least ADDRESS N: the server counts N chunks within 5 s (its count
# follows its index, which is written a moment after the data).
at_least() {
    local n
    for _ in $(seq 50); do
        n=$(chunks_on "$1")
        [ "$n" -ge "$2" ] && return 0
        sleep 0.1
    done
    fail "chunk server $1 holds $n chunks, not $2"
}
for a in "${ADDRS[@]}"; do at_least "$a" 2; done
log "both objects are on all three chunk servers"

# A deleted object's chunk is collected on every server: the garbage entry
# stays until all three have deleted their copy.
aws_v2 s3 cp "$T/big" s3://data/gone >/dev/null || fail "upload gone"
for a in "${ADDRS[@]}"; do at_least "$a" 3; done
aws_v2 s3 rm s3://data/gone >/dev/null || fail "delete gone"
gc_pending() { mkv_ctl_eval status 'm["namespace"]["gc_pending"]'; }
for _ in $(seq 100); do
    g=$(gc_pending)
    [ "$g" = 0 ] && break
    sleep 0.1
done
expect_eq "$g" 0 "garbage entries left 10 s after the delete"
for a in "${ADDRS[@]}"; do
    for _ in $(seq 50); do
        n=$(chunks_on "$a")
        [ "$n" = 2 ] && break
        sleep 0.1
    done
    expect_eq "$n" 2 "chunks on $a after the collection"
done
log "the deleted object's chunk is gone from all three"

# 2. kill -9 of a chunk server under load.
mkdir "$T/mnt/fs" || fail "mkdir"
mkv_writers 8 kill data "$T/mnt/fs"
sleep 2
id0=$(cat "$T/chunk0/node.id")
log "kill -9 of chunk server $id0 (${CP[0]})"
mkv_daemon_kill chunk0
for i in 1 2 3; do
    aws_v2 s3 cp s3://data/big "$T/big.$i" >/dev/null && cmp "$T/big" "$T/big.$i" ||
        fail "read $i after the kill"
done
mkv_check_writers kill 3
mkv_verify_writes data "$T/mnt/fs"
mkv_ctl_wait vshards "all($id0 not in [r[\"id\"] for r in v[\"replicas\"]] for v in m[\"vshards\"])" 15 \
    "chunk server $id0 dropped once dead"
d=$(mkv_ctl_eval vshards 'm["degraded"]')
expect_eq "$d" 256 "vshards reported short of copies with two servers left"
cmp "$T/big" "$T/mnt/big" || fail "read through the mount after the map changed"

# 3. Restarted: it is given its vshards back as a filling replica, copies
# what it missed from the others (while an upload goes on), and is a full
# replica again: the factor is back.
mkv_chunk_start 0
mkv_ctl_wait vshards "all(any(r[\"id\"] == $id0 for r in v[\"replicas\"]) for v in m[\"vshards\"])" 15 \
    "chunk server $id0 back in every vshard"
aws_v2 s3 cp "$T/file" s3://data/after >/dev/null || fail "upload after the restart"
t0=$(date +%s.%N)
mkv_ctl_wait vshards 'm["degraded"] == 0' 60 "every vshard filled again"
log "chunk server $id0 filled its 256 vshards in $(echo "$(date +%s.%N) - $t0" | bc) s"
"${CTL[@]}" status | sed -n '/^vshard map/,/degraded/p'

# 4. The two others gone: writes refused (one copy of three is not
# enough), and everything acknowledged so far reads back from the
# restarted server alone: what it missed while it was dead was copied.
mkv_daemon_kill chunk
mkv_daemon_kill chunk1
rand_file "$T/more" 300000
if aws_v2 s3 cp "$T/more" s3://data/more >"$T/more.out" 2>&1; then
    fail "an upload was acknowledged with one copy of three"
fi
log "refused: $(tr -d '\r' <"$T/more.out" | grep -o 'An error.*' | head -1)"
for k in big file after; do
    aws_v2 s3 cp "s3://data/$k" "$T/$k.last" >/dev/null || fail "read $k from the last chunk server"
done
cmp "$T/big" "$T/big.last" && cmp "$T/file" "$T/file.last" && cmp "$T/file" "$T/after.last" ||
    fail "data read from the last chunk server differs"
mkv_verify_writes data "$T/mnt/fs"
mkv_umount "$T/mnt"
log "OK"
