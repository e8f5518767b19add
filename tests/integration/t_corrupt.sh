#!/bin/bash
# A flipped bit in a chunk server's segment file, seen through S3: the GET
# of the damaged object fails (with a 5xx error when the damage is in the
# first piece read, else with a body cut short and the connection closed,
# the headers being out) -- wrong bytes are never served --,
# the server logs the chunk, block, segment and offset, the corrupt-block
# counter moves, and other objects keep reading back intact.
. "$top_srcdir/tests/integration/lib.sh"
mkv_start_server
aws_v2 s3 mb s3://rot >/dev/null || fail "mb"
rand_file "$T/victim" $((3 * 65536 + 1000))
rand_file "$T/other" 200000
aws_v2 s3 cp "$T/victim" s3://rot/victim >/dev/null || fail "put victim"
aws_v2 s3 cp "$T/other" s3://rot/other >/dev/null || fail "put other"

# Flip one bit in the middle of the victim's second block, on disk.
mkv_flip_bit "$DATA/chunk" "$T/victim" || fail "could not find the object's bytes in the segments"

c() { curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"; }
rc=0
code=$(c -o "$T/got" -w '%{http_code}' "$ENDPOINT/rot/victim" 2>"$T/curl.err") || rc=$?
if [ "$code" = 200 ]; then
    # The damage came after the headers: a cut body.
    [ "$rc" -ne 0 ] || fail "GET of a corrupt object succeeded"
    grep -q "transfer closed\|Recv failure\|18" "$T/curl.err" || log "curl: $(cat "$T/curl.err")"
    if [ -f "$T/got" ] && [ "$(stat -c %s "$T/got")" -gt 0 ]; then
        # Whatever arrived before the damaged block must be the object's bytes.
        n=$(stat -c %s "$T/got")
        head -c "$n" "$T/victim" | cmp - "$T/got" || fail "the bytes served before the error are wrong"
        [ "$n" -lt $((3 * 65536 + 1000)) ] || fail "the whole object arrived"
    fi
else
    # The damage is in the first piece read: an error before any byte.
    case $code in 5??) log "GET of the corrupt object: HTTP $code $(grep -o '<Code>[A-Za-z]*' "$T/got")" ;;
    *) fail "GET of a corrupt object answered $code" ;; esac
fi
# A range that avoids the damaged block still reads.
code=$(c -o "$T/part" -w '%{http_code}' -H "Range: bytes=0-65535" "$ENDPOINT/rot/victim")
expect_eq "$code" 206 "range before the damage"
head -c 65536 "$T/victim" | cmp - "$T/part" || fail "range before the damage differs"
grep "failed verification" "$T/server.log" | grep -q "chunk=" || fail "no log line naming the chunk"
grep "failed verification" "$T/server.log" | grep "chunk=" | head -n 2
curl -fs "$ENDPOINT/metrics" | grep -E "^minikv_chunk_corrupt_blocks_total [1-9]" >/dev/null ||
    fail "corrupt block counter did not move"
aws_v2 s3 cp s3://rot/other "$T/other.out" >/dev/null || fail "other object"
cmp "$T/other" "$T/other.out" || fail "other object differs"
aws_v2 s3api head-object --bucket rot --key victim >/dev/null || fail "HEAD of the damaged object"
log "ok"
