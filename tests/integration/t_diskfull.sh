#!/bin/bash
# Disk full: the data directory is a small tmpfs. Writes then fail with
# 503 InsufficientStorage (never a hang, never a half-stored object), reads
# keep working, and once space is freed, writes work again -- both when the
# operator frees space and when objects are deleted through S3.
. "$top_srcdir/tests/integration/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root to mount a tmpfs"
mkv_tmpfs_data 192m
mkv_start_server --reserve 16M --segment-size 16M
aws_v2 s3 mb s3://full >/dev/null || fail "mb"
rand_file "$T/keep" 100000
aws_v2 s3 cp "$T/keep" s3://full/keep >/dev/null || fail "first object"
rand_file "$T/small" 3000 # stored inline in the metadata record
aws_v2 s3 cp "$T/small" s3://full/small >/dev/null || fail "first small object"

rand_file "$T/blob" $((4 * 1024 * 1024))
i=0
status=""
while [ $i -lt 100 ]; do
    i=$((i + 1))
    out=$(s3req PUT "/full/blob-$i" --data-file "$T/blob")
    status=$(echo "$out" | head -n1)
    [ "$status" = 200 ] || break
done
log "write $i failed with: $(echo "$out" | tr -d '\n' | head -c 300)"
expect_eq "$status" 503 "status when the disk is full"
expect_contains "$out" "<Code>InsufficientStorage</Code>" "error code when the disk is full"
full_at=$i
out=$(s3req HEAD "/full/blob-$full_at")
expect_eq "$(echo "$out" | head -n1)" 404 "the failed object is not visible"

# Small objects go to the metadata service, which refuses what adds state
# once free space is under the same reserve. A 4 MiB write no longer fits
# above it, a 3 KB one may: take the free space down to 8 MiB.
avail=$(df --output=avail -B1 "$DATA" | tail -n1)
head -c $((avail - 8 * 1024 * 1024)) /dev/zero >"$DATA/filler2" 2>/dev/null
sleep 0.3 # the service looks at free space at most every 100 ms
out=$(s3req PUT "/full/small-while-full" --data-file "$T/small")
expect_eq "$(echo "$out" | head -n1)" 503 "small (inline) write when the disk is full"
expect_contains "$out" "<Code>InsufficientStorage</Code>" "error code of a small write when full"
expect_eq "$(s3req HEAD /full/small-while-full | head -n1)" 404 "the refused small object is not visible"

# Reads keep working while full.
aws_v2 s3 cp s3://full/keep "$T/keep.out" >/dev/null || fail "read while full"
cmp "$T/keep" "$T/keep.out" || fail "object differs while full"
aws_v2 s3 cp s3://full/small "$T/small.out" >/dev/null || fail "read small while full"
cmp "$T/small" "$T/small.out" || fail "small object differs while full"
expect_eq "$(s3req HEAD /full/small | head -n1)" 200 "HEAD while full"
aws_v2 s3 ls s3://full/ >/dev/null || fail "list while full"
aws_v2 s3 cp s3://full/blob-1 "$T/blob.out" >/dev/null || fail "read blob while full"
cmp "$T/blob" "$T/blob.out" || fail "blob differs while full"
curl -fs "$ENDPOINT/health/live" >/dev/null || fail "liveness while full"

# Deleting still works when the disk is full (it frees space).
aws_v2 s3 cp "$T/small" s3://full/small-copy >/dev/null 2>&1 && fail "a small write succeeded under the reserve"
expect_eq "$(s3req DELETE /full/small | head -n1)" 204 "delete under the reserve"
aws_v2 s3 cp "$T/small" s3://full/small >/dev/null 2>&1 && fail "a small write succeeded after a tiny delete"

# The operator frees space: writes work again.
rm -f "$DATA/filler" "$DATA/filler2"
sleep 0.3
out=$(s3req PUT "/full/after-free" --data-file "$T/blob")
expect_eq "$(echo "$out" | head -n1)" 200 "write after space was freed"
out=$(s3req PUT "/full/small-after-free" --data-file "$T/small")
expect_eq "$(echo "$out" | head -n1)" 200 "small write after space was freed"

# Fill again, then free space by deleting objects through S3: garbage
# collection and compaction must give the space back.
j=0
while [ $j -lt 100 ]; do
    j=$((j + 1))
    [ "$(s3req PUT "/full/again-$j" --data-file "$T/blob" | head -n1)" = 200 ] || break
done
for k in $(seq 1 $((full_at - 1))); do s3req DELETE "/full/blob-$k" >/dev/null; done
for k in $(seq 1 $((j - 1))); do s3req DELETE "/full/again-$k" >/dev/null; done
ok=0
for _ in $(seq 60); do
    if [ "$(s3req PUT /full/after-delete --data-file "$T/blob" | head -n1)" = 200 ]; then ok=1; break; fi
    sleep 1
done
[ "$ok" = 1 ] || fail "space was not reclaimed within 60 s after deleting objects"
aws_v2 s3 cp s3://full/keep "$T/keep.out2" >/dev/null || fail "read after reclaim"
cmp "$T/keep" "$T/keep.out2" || fail "object differs after reclaim"
mkv_stop_server
log "ok"
