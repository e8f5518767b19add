#!/bin/bash
# Replication factor per bucket, and min_replicas: four chunk servers,
# factor 3. Buckets of
# 1 and 2 copies are made with minikvctl (more than the cluster's factor
# is refused); uploads through S3, files copied into a whole-namespace
# mount and into a bucket mount take exactly their bucket's number of
# copies across the servers (counted on the servers), and read back the
# same through both fronts. A chunk server is killed (-9): uploads to the
# 2-copy bucket go on at once, the 2- and 3-copy buckets read back whole,
# a mount with min_replicas=3 refuses writes that cannot get three copies,
# the 1-copy bucket either reads back right or fails (its only copy was
# there), never wrong bytes, and an error rather than a cut body. Once
# the server is declared dead, its vshards are re-replicated and every
# chunk is back to its bucket's number of copies: no fewer, and no more
# for the 1- and 2-copy buckets. Deleted objects are collected from every
# server that holds a copy. Restarted with its disk, the dead server hands
# back the 1-copy chunks only it held; a new server then gets vshards
# moved to it, and nothing is lost.
. "$top_srcdir/tests/integration/lib.sh"
fuse_usable || skip "FUSE is not usable here (root, /dev/fuse and fusermount3 needed)"
MKV_ELECTION=1s
MKV_META_ARGS="--chunk-heartbeat 300ms --chunk-dead-after 4s"
MKV_EXTRA_CHUNKS=3
MKV_CHUNK_ARGS="--release-after 2s"
mkv_start_cluster
CTL=("$MINIKVCTL" --cluster-key "$KEY")
ADDRS=("127.0.0.1:$CHUNK_PORT")
for p in "${CHUNK_PORTS[@]}"; do ADDRS+=("127.0.0.1:$p"); done
mkv_ctl_wait vshards 'len(m["vshards"]) == 256 and all(len(v["replicas"]) == 3 and
    not any(r["filling"] for r in v["replicas"]) for v in m["vshards"])' 20 \
    "three filled replicas for every vshard"

# 1. Buckets of their own factor; more than the cluster's is refused.
"${CTL[@]}" bucket create one --replicas 1 >/dev/null || fail "bucket create one --replicas 1"
"${CTL[@]}" bucket create two --replicas 2 >/dev/null || fail "bucket create two --replicas 2"
aws_v2 s3 mb s3://three >/dev/null || fail "mb three"
rc=0
"${CTL[@]}" bucket create big --replicas 4 2>"$T/big.err" || rc=$?
[ "$rc" -ne 0 ] || fail "a bucket of 4 copies on a cluster of factor 3 was made"
grep -q "at most the cluster's factor (3" "$T/big.err" || fail "refusal says: $(cat "$T/big.err")"
"${CTL[@]}" --json buckets >"$T/buckets.json"
"$PY" -c 'import json,sys
b={x["name"]: x["replicas"] for x in json.load(open(sys.argv[1]))}
assert b == {"one": 1, "two": 2, "three": 0}, b' "$T/buckets.json" ||
    fail "buckets --json: $(cat "$T/buckets.json")"
"${CTL[@]}" buckets

# total_chunks: chunk versions held by the live servers (each object here
# is one chunk, one version); settled: the same twice, 0.5 s apart (a
# commit reaches the servers just after the upload's answer).
total_chunks() {
    local a n s=0
    for a in "${ADDRS[@]}"; do
        [ "$a" = "$DEAD" ] && continue
        n=$(mkv_chunk_stat "$a" chunks)
        [ "$n" -ge 0 ] || { echo -1; return; }
        s=$((s + n))
    done
    echo "$s"
}
expect_total() {
    local now prev=-2
    for _ in $(seq 40); do
        now=$(total_chunks)
        [ "$now" = "$1" ] && [ "$prev" = "$1" ] && return 0
        prev=$now
        sleep 0.5
    done
    fail "$2: the servers hold $now chunks, $1 expected"
}
DEAD=""
N=12
mkdir -p "$T/src"
for i in $(seq $N); do rand_file "$T/src/o$i" $((200000 + i * 1000)); done
base=$(total_chunks)
aws_v2 s3 cp --recursive "$T/src" s3://one/s3/ >/dev/null || fail "upload to one"
expect_total $((base + N)) "1-copy bucket"
aws_v2 s3 cp --recursive "$T/src" s3://two/s3/ >/dev/null || fail "upload to two"
expect_total $((base + 3 * N)) "2-copy bucket"
aws_v2 s3 cp --recursive "$T/src" s3://three/s3/ >/dev/null || fail "upload to three"
expect_total $((base + 6 * N)) "3-copy bucket"
log "S3: $N uploads each took 1, 2 and 3 copies"

# 2. Through FUSE: a whole-namespace mount (into a subdirectory) and a
# mount of the 1-copy bucket.
F=5
mkv_mount "" "$T/ns"
mkv_mount /one "$T/m1"
mkv_mount "" "$T/strict" -o min_replicas=3
mkdir -p "$T/ns/two/fuse/sub"
for i in $(seq $F); do cp "$T/src/o$i" "$T/ns/two/fuse/sub/f$i"; done
sync -f "$T/ns/two/fuse/sub"
expect_total $((base + 6 * N + 2 * F)) "files copied into two through the namespace mount"
for i in $(seq $F); do cp "$T/src/o$i" "$T/m1/f$i"; done
sync -f "$T/m1"
expect_total $((base + 6 * N + 3 * F)) "files copied into one through its bucket mount"
log "FUSE: $F files each took 2 copies (namespace mount) and 1 copy (bucket mount)"
for i in $(seq $F); do
    aws_v2 s3 cp "s3://two/fuse/sub/f$i" "$T/got" >/dev/null && cmp -s "$T/src/o$i" "$T/got" ||
        fail "two/fuse/sub/f$i read through S3"
    cmp -s "$T/src/o$i" "$T/ns/one/f$i" || fail "one/f$i read through the namespace mount"
done
for b in one two three; do
    for i in $(seq $N); do
        cmp -s "$T/src/o$i" "$T/ns/$b/s3/o$i" || fail "$b/s3/o$i read through the mount"
    done
done

# 3. kill -9 of one chunk server: the 2-copy bucket takes uploads at once.
DEAD=${ADDRS[2]}
held=$(mkv_chunk_stat "$DEAD" chunks)
mkv_daemon_kill chunk1
W=6
mkdir -p "$T/after"
for i in $(seq $W); do cp "$T/src/o$i" "$T/after/o$i"; done
aws_v2 s3 cp --recursive "$T/after" s3://two/after/ >/dev/null || fail "uploads to two with a server down"
log "$W uploads to the 2-copy bucket went through with a server down (it held $held chunks)"
# and the mount: a write-back a server fails is written again elsewhere
mkdir -p "$T/ns/two/down"
for i in $(seq $F); do cp "$T/src/o$i" "$T/ns/two/down/f$i" || fail "cp to two with a server down"; done
sync -f "$T/ns/two/down" || fail "sync of two with a server down"
W=$((W + F))
log "and $F files through the mount (write-backs written again after a failure: $(grep -c "writing it again" "$T/fuse.log"))"
# A mount that wants every copy (min_replicas=3) gets EIO for the files
# whose vshard has a replica on the killed server (3 of 4 vshards).
failed=0
for i in $(seq 8); do cp "$T/src/o$i" "$T/strict/three/strict$i" 2>/dev/null || failed=$((failed + 1)); done
[ "$failed" -ge 1 ] || fail "min_replicas=3: every write went through with a server down"
log "min_replicas=3 mount: $failed of 8 files refused (EIO) with a server down"
S=$((8 - failed)) # those stored: three copies each
for b in two three; do
    aws_v2 s3 cp --recursive "s3://$b/s3/" "$T/get-$b" >/dev/null || fail "download of $b with a server down"
    for i in $(seq $N); do
        cmp -s "$T/src/o$i" "$T/get-$b/o$i" || fail "$b/s3/o$i with a server down"
    done
done
# The 1-copy bucket: what downloads is right; what had its copy on the
# killed server fails (one attempt each: the others would fail the same).
AWS_MAX_ATTEMPTS=1 aws_v2 s3 cp --recursive s3://one/ "$T/get-one" >/dev/null 2>&1
ok1=0
for key in $(seq $N | sed 's|^|s3/o|') $(seq $F | sed 's|^|f|'); do
    i=${key##*[a-z]}
    [ -f "$T/get-one/$key" ] || continue
    cmp -s "$T/src/o$i" "$T/get-one/$key" || fail "one/$key: wrong bytes with a server down"
    ok1=$((ok1 + 1))
done
log "1-copy bucket with a server down: $ok1 of $((N + F)) objects readable, the rest had their copy there"
# and an unreadable one is an error (503) before any byte, not a cut body
for key in $(seq $N | sed 's|^|s3/o|'); do
    [ -f "$T/get-one/$key" ] && continue
    code=$(curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -o "$T/err.xml" -w '%{http_code}' "$ENDPOINT/one/$key")
    expect_eq "$code" 503 "GET of one/$key, whose only copy is on the killed server"
    log "GET of one/$key, whose only copy was on the killed server: HTTP $code"
    grep -q "<Code>ServiceUnavailable</Code>" "$T/err.xml" || fail "error body: $(cat "$T/err.xml")"
    break
done
[ "$ok1" -lt $((N + F)) ] || log "(none of them was on the killed server)"

# 4. Declared dead: re-replicated to each bucket's factor, no more.
mkv_ctl_wait vshards "m[\"degraded\"] == 0 and all(len(v[\"replicas\"]) == 3 for v in m[\"vshards\"])" 60 \
    "every vshard back to three filled replicas"
expect_total $((ok1 + 2 * (N + F + W) + 3 * (N + S))) "after re-replication"
for i in $(seq $((W - F))); do
    cmp -s "$T/src/o$i" "$T/ns/two/after/o$i" || fail "two/after/o$i after re-replication"
done
for i in $(seq $F); do
    cmp -s "$T/src/o$i" "$T/ns/two/down/f$i" || fail "two/down/f$i after re-replication"
done
log "$((ok1 + 2 * (N + F + W) + 3 * (N + S))) chunk copies = $ok1 x 1 + $((N + F + W)) x 2 + $((N + S)) x 3"

# 5. Deleted, a bucket's chunks are collected from the replicas that hold
# them (the others confirm a delete of what they never had).
aws_v2 s3 rm --recursive s3://two/ >/dev/null || fail "rm two"
expect_total $((ok1 + 3 * (N + S))) "after deleting the 2-copy bucket's objects"

# 6. The killed server comes back with its disk. It was declared dead and
# its vshards went elsewhere, but the 1-copy chunks only it held are not
# given up: it hands them back to the vshards' replicas before releasing
# its copies, and every object of the 1-copy bucket reads again.
# It is drained first, so that no vshard is given back to it: its copies
# can only come back by the hand-back.
id1=$(cat "$T/chunk1/node.id")
"${CTL[@]}" drain "$id1" >/dev/null || fail "drain $id1"
DEAD=""
mkv_chunk_start 1
one_back() {
    rm -rf "$T/get-one"
    AWS_MAX_ATTEMPTS=1 aws_v2 s3 cp --recursive s3://one/ "$T/get-one" >/dev/null 2>&1
    [ "$(find "$T/get-one" -type f | wc -l)" = $((N + F)) ]
}
for _ in $(seq 60); do one_back && break; sleep 1; done
one_back || fail "the 1-copy objects of the returning server were not handed back: $(find "$T/get-one" -type f | wc -l) of $((N + F)) read"
for key in $(seq $N | sed 's|^|s3/o|') $(seq $F | sed 's|^|f|'); do
    cmp -s "$T/src/o${key##*[a-z]}" "$T/get-one/$key" || fail "one/$key after the hand-back"
done
grep -q "msg=\"handed back\"" "$T/chunk1.log" || fail "chunk1 logged no hand-back"
log "the returning server handed back $(grep -c "msg=\"handed back\"" "$T/chunk1.log") 1-copy chunks: all $((N + F)) objects read"

# 7. A new chunk server: some vshards move to it. A move copies everything
# its vshard holds before the map flips (the replica that leaves may hold
# a 1-copy chunk), so nothing is lost; the 1-copy chunks may then have
# more copies.
CHUNK_PORTS[3]=$(free_ports 1)
ADDRS+=("127.0.0.1:${CHUNK_PORTS[3]}")
mkv_chunk_start 3
for _ in $(seq 100); do [ -s "$T/chunk3/node.id" ] && break; sleep 0.1; done
new=$(cat "$T/chunk3/node.id") || fail "the new chunk server has no node id"
mkv_ctl_wait vshards "all(len(v[\"replicas\"]) == 3 and not any(r[\"filling\"] for r in v[\"replicas\"])
    for v in m[\"vshards\"]) and sum(r[\"id\"] == $new for v in m[\"vshards\"] for r in v[\"replicas\"]) >= 80" 90 \
    "vshards moved to the new server"
rm -rf "$T/get-one" "$T/get-three"
aws_v2 s3 cp --recursive s3://one/ "$T/get-one" >/dev/null || fail "download of one after the moves"
aws_v2 s3 cp --recursive s3://three/ "$T/get-three" >/dev/null || fail "download of three after the moves"
for key in $(seq $N | sed 's|^|s3/o|') $(seq $F | sed 's|^|f|'); do
    cmp -s "$T/src/o${key##*[a-z]}" "$T/get-one/$key" || fail "one/$key after the moves"
done
for i in $(seq $N); do cmp -s "$T/src/o$i" "$T/get-three/s3/o$i" || fail "three/s3/o$i after the moves"; done
now=$(total_chunks)
[ "$now" -ge $((N + F + 3 * N)) ] || fail "after the moves: $now chunk copies, fewer than $((N + F + 3 * N))"
log "ok: after the moves $now chunk copies for $((N + F)) + 3 x $N"
