#!/bin/bash
# s3cmd against `minikv server`, SigV4 (s3cmd's default) and SigV2:
# put/get/ls/del, a multipart put (5 MiB parts) and a multipart get; every
# byte read back is compared.
. "$top_srcdir/tests/integration/lib.sh"
command -v s3cmd >/dev/null || skip "s3cmd not installed"
mkv_start_server

rand_file "$T/small" 3000
rand_file "$T/multi" $((17 * 1024 * 1024 + 123))
for sigv2 in False True; do
    cfg="$T/s3cfg-$sigv2"
    cat >"$cfg" <<CFG
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $AWS_SECRET_ACCESS_KEY
host_base = 127.0.0.1:$S3_PORT
host_bucket = 127.0.0.1:$S3_PORT
use_https = False
signature_v2 = $sigv2
bucket_location = us-east-1
multipart_chunk_size_mb = 5
check_ssl_certificate = False
CFG
    S="s3cmd -c $cfg --no-progress"
    b="s3cmd-$(echo "$sigv2" | tr 'A-Z' 'a-z')"
    $S mb "s3://$b" >"$T/s3cmd.log" 2>&1 || fail "sigv2=$sigv2: mb"
    $S put "$T/small" "s3://$b/a/small.bin" >>"$T/s3cmd.log" 2>&1 || fail "sigv2=$sigv2: put"
    $S put "$T/multi" "s3://$b/multi.bin" >>"$T/s3cmd.log" 2>&1 || fail "sigv2=$sigv2: multipart put"
    etag=$(s3req HEAD "/$b/multi.bin" --show-headers | sed -n 's/^ETag: //p' | tr -d '\r')
    case "$etag" in *-4\") ;; *) fail "sigv2=$sigv2: not a 4-part multipart upload (ETag $etag)" ;; esac
    $S get --force "s3://$b/a/small.bin" "$T/small.out" >>"$T/s3cmd.log" 2>&1 || fail "sigv2=$sigv2: get"
    cmp "$T/small" "$T/small.out" || fail "sigv2=$sigv2: small differs"
    $S get --force "s3://$b/multi.bin" "$T/multi.out" >>"$T/s3cmd.log" 2>&1 || fail "sigv2=$sigv2: get multipart"
    cmp "$T/multi" "$T/multi.out" || fail "sigv2=$sigv2: multipart object differs"
    out=$($S ls "s3://$b/")
    expect_contains "$out" "DIR  s3://$b/a/" "sigv2=$sigv2: ls shows the directory"
    expect_contains "$out" "s3://$b/multi.bin" "sigv2=$sigv2: ls shows the object"
    out=$($S ls --recursive "s3://$b/")
    expect_contains "$out" "3000  s3://$b/a/small.bin" "sigv2=$sigv2: recursive ls with size"
    $S del "s3://$b/a/small.bin" "s3://$b/multi.bin" >>"$T/s3cmd.log" 2>&1 || fail "sigv2=$sigv2: del"
    out=$($S ls --recursive "s3://$b/")
    expect_eq "$out" "" "sigv2=$sigv2: bucket empty after del"
    $S rb "s3://$b" >>"$T/s3cmd.log" 2>&1 || fail "sigv2=$sigv2: rb"
    log "sigv2=$sigv2: ok"
done
