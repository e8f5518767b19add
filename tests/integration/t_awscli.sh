#!/bin/bash
# The AWS CLI against `minikv server`: Debian's awscli 2.x and, when one is on
# PATH, a newer botocore-based aws (it sends CRC32 checksum headers and
# aws-chunked bodies). mb, cp of 1 KiB and 200 MiB (multipart both ways),
# ls with prefixes and --recursive, sync of 1,000 files, presign + curl,
# rm --recursive, rb; every byte read back is compared.
. "$top_srcdir/tests/integration/lib.sh"
mkv_start_server

rand_file "$T/small" 1024
rand_file "$T/big" $((200 * 1024 * 1024))
mkdir -p "$T/tree"
for d in $(seq 0 9); do
    mkdir -p "$T/tree/d$d"
    for f in $(seq 0 99); do echo "file $d/$f $RANDOM$RANDOM" >"$T/tree/d$d/f$f.txt"; done
done

run_cli() {
    local A=$1 tag=$2 b="cli-$2" out n etag
    log "$tag: $($A --version 2>&1 | head -n1)"
    $A s3 mb "s3://$b" >"$T/$tag-mb.log" 2>&1 || fail "$tag: mb"

    $A s3 cp "$T/small" "s3://$b/dir/small.bin" >"$T/$tag-cp.log" 2>&1 || fail "$tag: cp small"
    $A s3 cp "$T/big" "s3://$b/big.bin" >>"$T/$tag-cp.log" 2>&1 || fail "$tag: cp big"
    etag=$($A s3api head-object --bucket "$b" --key big.bin --query ETag --output text)
    case "$etag" in *-[0-9]*) ;; *) fail "$tag: 200 MiB upload was not multipart (ETag $etag)" ;; esac

    $A s3 cp "s3://$b/dir/small.bin" "$T/$tag-small.out" >>"$T/$tag-cp.log" 2>&1 || fail "$tag: get small"
    cmp "$T/small" "$T/$tag-small.out" || fail "$tag: small object differs"
    $A s3 cp "s3://$b/big.bin" "$T/$tag-big.out" >>"$T/$tag-cp.log" 2>&1 || fail "$tag: get big"
    cmp "$T/big" "$T/$tag-big.out" || fail "$tag: 200 MiB object differs"
    rm -f "$T/$tag-big.out"

    out=$($A s3 ls "s3://$b/")
    expect_contains "$out" "PRE dir/" "$tag: ls shows the prefix"
    expect_contains "$out" "209715200 big.bin" "$tag: ls shows big.bin with its size"
    out=$($A s3 ls "s3://$b/dir/")
    expect_contains "$out" "1024 small.bin" "$tag: ls of a prefix"
    out=$($A s3 ls "s3://$b/di")
    expect_contains "$out" "PRE dir/" "$tag: ls of a partial prefix"
    n=$($A s3 ls --recursive "s3://$b/" | wc -l)
    expect_eq "$n" 2 "$tag: ls --recursive count"

    $A s3 sync "$T/tree" "s3://$b/tree" >"$T/$tag-sync.log" 2>&1 || fail "$tag: sync up"
    n=$($A s3 ls --recursive "s3://$b/tree/" | wc -l)
    expect_eq "$n" 1000 "$tag: objects after sync"
    out=$($A s3 sync "$T/tree" "s3://$b/tree" 2>&1) || fail "$tag: second sync"
    expect_eq "$out" "" "$tag: a second sync copies nothing"
    $A s3 sync "s3://$b/tree" "$T/$tag-tree" >>"$T/$tag-sync.log" 2>&1 || fail "$tag: sync down"
    diff -r "$T/tree" "$T/$tag-tree" || fail "$tag: synced tree differs"

    url=$($A s3 presign "s3://$b/dir/small.bin" --expires-in 300)
    curl -fsS -o "$T/$tag-presigned" "$url" || fail "$tag: presigned GET"
    cmp "$T/small" "$T/$tag-presigned" || fail "$tag: presigned GET differs"

    $A s3 rm --recursive "s3://$b/" >"$T/$tag-rm.log" 2>&1 || fail "$tag: rm --recursive"
    n=$($A s3 ls --recursive "s3://$b/" | wc -l)
    expect_eq "$n" 0 "$tag: objects left after rm --recursive"
    $A s3 rb "s3://$b" >"$T/$tag-rb.log" 2>&1 || fail "$tag: rb"
    out=$($A s3 ls)
    case "$out" in *"$b"*) fail "$tag: bucket still listed after rb" ;; esac
    log "$tag: ok"
}

run_cli aws_v2 v2
if [ -n "$AWS_NEW" ]; then
    run_cli aws_new new
else
    log "no newer botocore-based aws on PATH: tested Debian's awscli only"
fi
