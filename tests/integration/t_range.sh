#!/bin/bash
# Range requests with curl (SigV4-signed by curl itself): first/middle/last
# bytes, open-ended, suffix, past the end (416), malformed (ignored, 200),
# and 8 concurrent ranged GETs reassembling a 64 MiB object.
. "$top_srcdir/tests/integration/lib.sh"
mkv_start_server
aws_v2 s3 mb s3://ranges >/dev/null || fail "mb"
rand_file "$T/obj" $((64 * 1024 * 1024 + 4097))
aws_v2 s3 cp "$T/obj" s3://ranges/obj >/dev/null || fail "upload"
size=$(stat -c %s "$T/obj")

c() { curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"; }
check_range() { # $1 range header value, $2 first byte, $3 length
    local code
    code=$(c -o "$T/part" -w '%{http_code}' -H "Range: $1" "$ENDPOINT/ranges/obj")
    expect_eq "$code" 206 "status for $1"
    tail -c +$(( $2 + 1 )) "$T/obj" | head -c "$3" >"$T/want"
    cmp "$T/want" "$T/part" || fail "bytes for $1 differ"
}
check_range "bytes=0-0" 0 1
check_range "bytes=0-65535" 0 65536
check_range "bytes=65535-65536" 65535 2
check_range "bytes=1000000-3000000" 1000000 2000001
check_range "bytes=$((size - 10))-" $((size - 10)) 10
check_range "bytes=-4097" $((size - 4097)) 4097
check_range "bytes=5-$((size + 100))" 5 $((size - 5))
hdrs=$(c -D - -o /dev/null -H "Range: bytes=100-199" "$ENDPOINT/ranges/obj")
expect_contains "$hdrs" "Content-Range: bytes 100-199/$size" "Content-Range header"
expect_contains "$hdrs" "Content-Length: 100" "Content-Length of a range"
code=$(c -o "$T/err" -w '%{http_code}' -H "Range: bytes=$size-" "$ENDPOINT/ranges/obj")
expect_eq "$code" 416 "range past the end"
expect_contains "$(cat "$T/err")" "<Code>InvalidRange</Code>" "416 error code"
code=$(c -o "$T/whole" -w '%{http_code}' -H "Range: bytes=oops" "$ENDPOINT/ranges/obj")
expect_eq "$code" 200 "malformed range is ignored"
cmp "$T/obj" "$T/whole" || fail "whole object after ignored range"

# Concurrent ranged GETs, the last one open-ended, as downloaders do.
part=$((8 * 1024 * 1024))
pids=""
for i in $(seq 0 7); do
    from=$((i * part))
    if [ "$i" = 7 ]; then r="bytes=$from-"; else r="bytes=$from-$((from + part - 1))"; fi
    c -o "$T/p$i" -H "Range: $r" "$ENDPOINT/ranges/obj" &
    pids="$pids $!"
done
for p in $pids; do wait "$p" || fail "a concurrent ranged GET failed"; done
cat "$T"/p0 "$T"/p1 "$T"/p2 "$T"/p3 "$T"/p4 "$T"/p5 "$T"/p6 "$T"/p7 >"$T/joined"
cmp "$T/obj" "$T/joined" || fail "reassembled object differs"
log "ok"
