#!/bin/bash
# A bad replica is repaired: three chunk servers hold an object; a bit is
# flipped in one server's copy on disk. With the two good servers killed,
# a GET fails (wrong bytes are never served) and the damaged server's copy
# goes back to filling (the reader and the server itself report it). The
# good servers come back: the damaged one drops its bad copy, copies the
# good one from them and is filled again. With the good servers killed
# once more, the object reads back identical from the repaired server
# alone, and its copy passes its checksums. Then a bit is flipped in a copy
# nobody reads: the scrubber finds it and the copy is repaired the same
# way.
. "$top_srcdir/tests/integration/lib.sh"
MKV_ELECTION=1s
# Long enough that the short outages below leave the map alone.
MKV_META_ARGS="--chunk-heartbeat 300ms --chunk-dead-after 60s"
MKV_EXTRA_CHUNKS=2
MKV_CHUNK_ARGS="--scrub-every 1s"
mkv_start_cluster
mkv_ctl_wait vshards 'len(m["vshards"]) == 256 and all(len(v["replicas"]) == 3 and
    not any(r["filling"] for r in v["replicas"]) for v in m["vshards"])' 15 \
    "three filled replicas for every vshard"

aws_v2 s3 mb s3://rep >/dev/null || fail "mb"
rand_file "$T/victim" $((3 * 65536 + 1000))
aws_v2 s3 cp "$T/victim" s3://rep/victim >/dev/null || fail "put victim"
rand_file "$T/quiet" $((2 * 65536 + 777))
aws_v2 s3 cp "$T/quiet" s3://rep/quiet >/dev/null || fail "put quiet"
A0=127.0.0.1:${CHUNK_PORTS[0]}
for _ in $(seq 50); do
    [ "$(mkv_chunk_stat "$A0" chunks)" -ge 1 ] && break
    sleep 0.1
done

# The good servers down first (else chunk0 would repair at once), then
# one bit flipped in the middle of the object's second block in chunk0's
# copy. Only the damaged copy left: the GET fails, nothing wrong is served.
mkv_daemon_kill chunk
mkv_daemon_kill chunk1
mkv_flip_bit "$T/chunk0" "$T/victim" || fail "could not find the object's bytes in chunk0's segments"
id0=$(cat "$T/chunk0/node.id")
aws_v2 s3 cp s3://rep/victim "$T/got" >/dev/null 2>&1 && fail "GET succeeded from a damaged copy"
bad=$(mkv_chunk_stat "$A0" corrupt_blocks)
[ "$bad" -ge 1 ] || fail "chunk0 counts $bad corrupt blocks"
mkv_ctl_wait vshards "any(r[\"id\"] == $id0 and r[\"filling\"] for v in m[\"vshards\"] for r in v[\"replicas\"])" 10 \
    "chunk0's damaged vshard back to filling"
log "the damaged copy failed its checksum ($bad blocks) and its vshard is filling again"

# The good copies come back: chunk0 repairs its copy from them.
mkv_first_chunk_start
mkv_chunk_start 1
t0=$(date +%s.%N)
mkv_ctl_wait vshards 'm["degraded"] == 0' 30 "every vshard filled again"
log "repaired in $(echo "$(date +%s.%N) - $t0" | bc) s"
grep -q "repairing a bad copy from another replica" "$T/chunk0.log" || fail "chunk0 did not log the repair"

# The repaired copy alone serves the object, and it is sound.
mkv_daemon_kill chunk
mkv_daemon_kill chunk1
before=$(mkv_chunk_stat "$A0" corrupt_blocks)
aws_v2 s3 cp s3://rep/victim "$T/got2" >/dev/null || fail "GET from the repaired copy"
cmp "$T/victim" "$T/got2" || fail "the repaired copy differs"
expect_eq "$(mkv_chunk_stat "$A0" corrupt_blocks)" "$before" "corrupt blocks after reading the repaired copy"
mkv_first_chunk_start
mkv_chunk_start 1

# A bad copy nobody reads: chunk1's scrubber (every second here) finds it,
# and chunk1 repairs it from the others.
mkv_flip_bit "$T/chunk1" "$T/quiet" || fail "could not find the bytes of quiet in chunk1's segments"
for _ in $(seq 150); do
    grep -q "repairing a bad copy from another replica" "$T/chunk1.log" && break
    sleep 0.1
done
grep -q "scrub found bad blocks" "$T/chunk1.log" || fail "chunk1's scrubber did not find the bad block"
grep -q "repairing a bad copy from another replica" "$T/chunk1.log" || fail "chunk1 did not repair its copy"
mkv_ctl_wait vshards 'm["degraded"] == 0' 30 "every vshard filled after the scrub's repair"
mkv_daemon_kill chunk
mkv_daemon_kill chunk0
aws_v2 s3 cp s3://rep/quiet "$T/quiet2" >/dev/null || fail "GET of quiet from chunk1 alone"
cmp "$T/quiet" "$T/quiet2" || fail "chunk1's repaired copy of quiet differs"
log "ok"
