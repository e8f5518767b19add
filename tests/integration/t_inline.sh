#!/bin/bash
# Small objects stored inline in their metadata record (--inline-max):
# PUT through aws/curl (plain and aws-chunked bodies), GET whole and by
# range, HEAD, copies inline -> inline, inline -> chunks (UploadPartCopy)
# and chunks -> inline, replacing either way, minikvctl stat saying where
# the data lives, and everything read back identical after kill -9 and
# after a clean restart. --inline-max 0 keeps every object in chunks.
. "$top_srcdir/tests/integration/lib.sh"
mkv_start_server --inline-max 16K
aws_v2 s3 mb s3://inl >/dev/null || fail "mb"

stat_data() { "$MINIKVCTL" stat inl "$1" | sed -n 's/^data *//p'; }
c() { curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$@"; }

for size in 0 1 4096 16384 16385; do
    rand_file "$T/f$size" "$size"
    aws_v2 s3 cp "$T/f$size" "s3://inl/f$size" >/dev/null || fail "put $size"
done
expect_contains "$(stat_data f1)" "inline, 1 bytes" "1 byte object is inline"
expect_contains "$(stat_data f4096)" "inline, 4096 bytes" "4 KiB object is inline"
expect_contains "$(stat_data f16384)" "inline, 16384 bytes" "16 KiB object is inline"
expect_eq "$(stat_data f16385)" "" "16 KiB + 1 goes to chunks"
expect_contains "$("$MINIKVCTL" stat inl f16385)" "chunk " "16 KiB + 1 has an extent"
if [ -n "$AWS_NEW" ]; then # aws-chunked body with a trailing CRC32
    aws_new s3 cp "$T/f4096" s3://inl/new4096 >/dev/null || fail "put with the newer aws"
    expect_contains "$(stat_data new4096)" "inline, 4096 bytes" "aws-chunked small body is inline"
    aws_new s3 cp s3://inl/new4096 "$T/g" >/dev/null || fail "get with the newer aws"
    cmp "$T/f4096" "$T/g" || fail "aws-chunked inline object differs"
fi

check_all() {
    for size in 0 1 4096 16384 16385; do
        aws_v2 s3 cp "s3://inl/f$size" "$T/g" >/dev/null || fail "get $size ($1)"
        cmp "$T/f$size" "$T/g" || fail "object of $size bytes differs ($1)"
    done
}
check_all "after put"

# ETag is the MD5 of the bytes; ranges come from the inline bytes.
etag=$(aws_v2 s3api head-object --bucket inl --key f4096 --query ETag --output text)
expect_eq "$etag" "\"$(md5sum "$T/f4096" | cut -d' ' -f1)\"" "ETag of an inline object"
code=$(c -o "$T/part" -w '%{http_code}' -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    -H "Range: bytes=100-1099" "$ENDPOINT/inl/f4096")
expect_eq "$code" 206 "ranged GET of an inline object"
tail -c +101 "$T/f4096" | head -c 1000 | cmp - "$T/part" || fail "inline range bytes"
code=$(c -o "$T/part" -w '%{http_code}' -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    -H "Range: bytes=-10" "$ENDPOINT/inl/f4096")
tail -c 10 "$T/f4096" | cmp - "$T/part" || fail "inline suffix range"
code=$(c -o /dev/null -w '%{http_code}' -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    -H "Range: bytes=4096-" "$ENDPOINT/inl/f4096")
expect_eq "$code" 416 "range past the end of an inline object"

# Copies: inline -> inline, chunks -> inline is impossible (bigger), inline
# -> chunks as a multipart part, and a metadata-only self copy.
aws_v2 s3 cp s3://inl/f4096 s3://inl/copy4096 >/dev/null || fail "copy inline"
expect_contains "$(stat_data copy4096)" "inline, 4096 bytes" "copy of an inline object is inline"
aws_v2 s3 cp s3://inl/copy4096 "$T/g" >/dev/null && cmp "$T/f4096" "$T/g" || fail "copied inline bytes"
aws_v2 s3api copy-object --bucket inl --key f4096 --copy-source inl/f4096 --metadata-directive REPLACE \
    --content-type text/x-test >/dev/null || fail "self copy with new metadata"
expect_contains "$(stat_data f4096)" "inline, 4096 bytes" "self copy keeps the inline bytes"
aws_v2 s3 cp s3://inl/f4096 "$T/g" >/dev/null && cmp "$T/f4096" "$T/g" || fail "bytes after self copy"
rand_file "$T/big" $((5 * 1024 * 1024))
aws_v2 s3 cp "$T/big" s3://inl/src-big >/dev/null || fail "put 5 MiB"
up=$(aws_v2 s3api create-multipart-upload --bucket inl --key joined --query UploadId --output text)
e1=$(aws_v2 s3api upload-part-copy --bucket inl --key joined --upload-id "$up" --part-number 1 \
    --copy-source inl/src-big --query CopyPartResult.ETag --output text) || fail "part 1"
e2=$(aws_v2 s3api upload-part-copy --bucket inl --key joined --upload-id "$up" --part-number 2 \
    --copy-source inl/f4096 --query CopyPartResult.ETag --output text) || fail "part 2 from an inline object"
aws_v2 s3api complete-multipart-upload --bucket inl --key joined --upload-id "$up" \
    --multipart-upload "{\"Parts\":[{\"PartNumber\":1,\"ETag\":$e1},{\"PartNumber\":2,\"ETag\":$e2}]}" \
    >/dev/null || fail "complete"
aws_v2 s3 cp s3://inl/joined "$T/g" >/dev/null || fail "get joined"
cat "$T/big" "$T/f4096" | cmp - "$T/g" || fail "multipart object with an inline part's bytes"

# Replacing: chunks -> inline -> chunks.
aws_v2 s3 cp "$T/f1" s3://inl/f16385 >/dev/null || fail "shrink"
expect_contains "$(stat_data f16385)" "inline, 1 bytes" "replaced by a small object"
aws_v2 s3 cp "$T/f16385" s3://inl/f16385 >/dev/null || fail "grow"
expect_eq "$(stat_data f16385)" "" "replaced by a large object"
check_all "after replacing"

# Acknowledged inline writes survive kill -9 (they are in the Raft log).
mkv_kill_server
mkv_start_server --inline-max 16K
check_all "after kill -9"
expect_contains "$(stat_data f4096)" "inline, 4096 bytes" "still inline after kill -9"
mkv_stop_server
mkv_start_server --inline-max 0
check_all "after a clean restart"
aws_v2 s3 cp "$T/f1" s3://inl/zero-inline >/dev/null || fail "put with inlining off"
expect_eq "$(stat_data zero-inline)" "" "--inline-max 0 stores nothing inline"
"$MINIKV" server --data "$T/other" --listen 127.0.0.1:1 --meta-listen 127.0.0.1:1 --chunk-listen 127.0.0.1:1 \
    --inline-max 65537 >"$T/bad.log" 2>&1 && fail "inline-max over 64K accepted"
[ -e "$T/other" ] && fail "a refused option still created the data directory"
expect_contains "$(cat "$T/bad.log")" "inline-max" "error names inline-max"
log "ok"
