#!/bin/bash
# A 5 GiB object through the gateway and back, streamed both ways: the
# bytes match (MD5 = ETag) and the server's resident memory stays flat --
# its peak during the transfer may exceed the idle figure by at most
# MKV_BIG_RSS_MIB (default 256 MiB; the sanitizer build keeps freed memory
# in quarantine, so it is allowed more).
# MKV_BIG_MIB sets the size (default 5120). The test needs room for the
# object in its temp dir and says SKIP when there is none.
. "$top_srcdir/tests/integration/lib.sh"
mib=${MKV_BIG_MIB:-5120}
limit=${MKV_BIG_RSS_MIB:-256}
if [ "$(nm "$MINIKV" 2>/dev/null | grep -c __asan_init)" -gt 0 ]; then limit=${MKV_BIG_RSS_MIB:-640}; fi
free_mib=$(df -Pm "$T" | awk 'NR == 2 { print $4 }')
[ "$free_mib" -gt $((mib + 1024)) ] || skip "needs $((mib + 1024)) MiB free in $T, has $free_mib"

mkv_start_server
aws_v2 s3 mb s3://big >/dev/null || fail "mb"
out=$("$PY" "$top_srcdir/tests/integration/bigobject.py" "$SERVER_PID" big five-gib "$mib") ||
    fail "the big object did not go through intact"
log "$mib MiB: $out"
base=$(echo "$out" | sed -n 's/.*baseline_kib=\([0-9]*\).*/\1/p')
peak=$(echo "$out" | sed -n 's/.*peak_kib=\([0-9]*\).*/\1/p')
grow=$(((peak - base) / 1024))
[ "$grow" -le "$limit" ] || fail "server memory grew by $grow MiB during the transfer (limit $limit MiB)"
# S3 clients see the same size.
len=$(aws_v2 s3api head-object --bucket big --key five-gib --query ContentLength --output text) ||
    fail "head-object"
expect_eq "$len" $((mib * 1048576)) "ContentLength"
log "ok (memory grew by $grow MiB)"
