#!/bin/bash
# libs3's `s3` tool (it signs with SigV2): create/put/get/list/delete, path
# and virtual-host style.
. "$top_srcdir/tests/integration/lib.sh"
command -v s3 >/dev/null || skip "libs3's s3 tool not installed (Debian package libs3-2)"
mkv_start_server
export S3_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
rand_file "$T/obj" 100000

export S3_HOSTNAME="127.0.0.1:$S3_PORT"
s3 -u create libs3-bucket >"$T/libs3.log" 2>&1 || fail "create"
s3 -u put libs3-bucket/dir/obj.bin filename="$T/obj" >>"$T/libs3.log" 2>&1 || fail "put"
s3 -u put libs3-bucket/x.txt filename="$top_srcdir/README.md" contentType=text/plain >>"$T/libs3.log" 2>&1 || fail "put 2"
s3 -u get libs3-bucket/dir/obj.bin filename="$T/obj.out" >>"$T/libs3.log" 2>&1 || fail "get"
cmp "$T/obj" "$T/obj.out" || fail "object differs"
out=$(s3 -u list libs3-bucket 2>&1) || fail "list"
expect_contains "$out" "dir/obj.bin" "list shows the key"
expect_contains "$out" "x.txt" "list shows the second key"
out=$(s3 -u list libs3-bucket delimiter=/ 2>&1) || fail "list with delimiter"
expect_contains "$out" "dir/" "list with a delimiter shows the common prefix"
s3 -u head libs3-bucket/x.txt >"$T/head.out" 2>&1 || fail "head"
grep -qi "text/plain" "$T/head.out" || fail "content type not kept: $(cat "$T/head.out")"

# Virtual-host style: BUCKET.localhost resolves to 127.0.0.1 on Debian.
export S3_HOSTNAME="localhost:$S3_PORT"
s3 -u -h get libs3-bucket/dir/obj.bin filename="$T/obj.vh" >>"$T/libs3.log" 2>&1 || fail "virtual-host get"
cmp "$T/obj" "$T/obj.vh" || fail "virtual-host object differs"
export S3_HOSTNAME="127.0.0.1:$S3_PORT"

s3 -u delete libs3-bucket/dir/obj.bin >>"$T/libs3.log" 2>&1 || fail "delete"
s3 -u delete libs3-bucket/x.txt >>"$T/libs3.log" 2>&1 || fail "delete 2"
out=$(s3 -u list libs3-bucket 2>&1)
case "$out" in *obj.bin*) fail "deleted key still listed" ;; esac
s3 -u delete libs3-bucket >>"$T/libs3.log" 2>&1 || fail "delete bucket"
log "ok"
