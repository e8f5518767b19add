#!/bin/bash
# The S3 operations one by one with `aws s3api` (Debian's awscli 2.x):
# buckets, objects with metadata and conditions, copy, multi-delete,
# ListObjects V1/V2 paging (prefix, delimiter, max-keys, continuation,
# start-after), ListObjectVersions, multipart (out of order, UploadPartCopy,
# ListParts, ListMultipartUploads, abort), directories (key "d/"), and
# NotImplemented for what minikv does not do.
. "$top_srcdir/tests/integration/lib.sh"
mkv_start_server
A=aws_v2
J() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

$A s3api create-bucket --bucket ops >/dev/null || fail "create-bucket"
$A s3api head-bucket --bucket ops || fail "head-bucket"
$A s3api head-bucket --bucket nope 2>/dev/null && fail "head-bucket of a missing bucket succeeded"
out=$($A s3api create-bucket --bucket ops 2>&1) && fail "create-bucket twice succeeded"
expect_contains "$out" "BucketAlreadyOwnedByYou" "second create"
loc=$($A s3api get-bucket-location --bucket ops --output json | J 'd.get("LocationConstraint")')
expect_eq "$loc" "None" "us-east-1 location is empty"
n=$($A s3api list-buckets --output json | J 'len([b for b in d["Buckets"] if b["Name"]=="ops"])')
expect_eq "$n" 1 "list-buckets"

# Objects: metadata, content type, conditions.
echo "hello minikv" >"$T/h"
etag=$($A s3api put-object --bucket ops --key greet/hello.txt --body "$T/h" --content-type text/x-greeting \
    --metadata color=blue,size=small --cache-control max-age=60 --output json | J 'd["ETag"]')
expect_eq "$etag" "\"$(md5sum "$T/h" | cut -d' ' -f1)\"" "ETag is the MD5"
h=$($A s3api head-object --bucket ops --key greet/hello.txt --output json)
expect_eq "$(echo "$h" | J 'd["ContentType"]')" "text/x-greeting" "content type"
expect_eq "$(echo "$h" | J 'd["Metadata"]["color"]')" "blue" "user metadata"
expect_eq "$(echo "$h" | J 'd["CacheControl"]')" "max-age=60" "stored Cache-Control"
expect_eq "$(echo "$h" | J 'd["ContentLength"]')" 13 "content length"
$A s3api get-object --bucket ops --key greet/hello.txt --if-none-match "$etag" "$T/o" >/dev/null 2>&1 &&
    fail "If-None-Match with the current ETag did not give 304"
out=$($A s3api get-object --bucket ops --key greet/hello.txt --if-match '"0000"' "$T/o" 2>&1) &&
    fail "If-Match mismatch succeeded"
expect_contains "$out" "PreconditionFailed" "If-Match mismatch"
$A s3api get-object --bucket ops --key greet/hello.txt --if-match "$etag" "$T/o" >/dev/null || fail "If-Match"
cmp "$T/h" "$T/o" || fail "GET body"
$A s3api get-object --bucket ops --key greet/hello.txt --if-modified-since "2100-01-01T00:00:00Z" "$T/o" \
    >/dev/null 2>&1 && fail "If-Modified-Since in the future did not give 304"
# (awscli 2.9 predates conditional writes: sent with the suite's client)
out=$(s3req PUT /ops/greet/hello.txt -H "If-None-Match: *" --data "other")
expect_eq "$(echo "$out" | head -n1)" 412 "If-None-Match: * on PUT over an existing key"
expect_contains "$out" "<Code>PreconditionFailed</Code>" "If-None-Match: * error code"
out=$(s3req PUT /ops/greet/new.txt -H "If-None-Match: *" --data "new")
expect_eq "$(echo "$out" | head -n1)" 200 "If-None-Match: * on a new key"
out=$(s3req PUT /ops/greet/new.txt -H "If-Match: \"00000000000000000000000000000000\"" --data "x")
expect_eq "$(echo "$out" | head -n1)" 412 "If-Match with another ETag on PUT"

# Copy: to a new key (metadata copied), onto itself with REPLACE.
$A s3api copy-object --bucket ops --key copy.txt --copy-source ops/greet/hello.txt >/dev/null || fail "copy"
expect_eq "$($A s3api head-object --bucket ops --key copy.txt --output json | J 'd["Metadata"]["color"]')" blue \
    "copied metadata"
$A s3api copy-object --bucket ops --key copy.txt --copy-source ops/copy.txt --metadata-directive REPLACE \
    --metadata color=red >/dev/null || fail "copy onto itself with REPLACE"
expect_eq "$($A s3api head-object --bucket ops --key copy.txt --output json | J 'd["Metadata"]["color"]')" red \
    "replaced metadata"
$A s3api get-object --bucket ops --key copy.txt "$T/c" >/dev/null && cmp "$T/h" "$T/c" || fail "copy body"

# Directories: an explicit "d/" key, file/directory conflicts.
$A s3api put-object --bucket ops --key emptydir/ >/dev/null || fail "directory marker"
keys=$($A s3api list-objects-v2 --bucket ops --prefix emptydir --output json | J '[o["Key"] for o in d["Contents"]]')
expect_eq "$keys" "['emptydir/']" "directory marker listed as a key"
out=$($A s3api put-object --bucket ops --key greet --body "$T/h" 2>&1) && fail "file over a directory"
expect_contains "$out" "KeyConflict" "file over a directory"

# Listing: 25 keys with paging.
for i in $(seq -w 1 25); do
    echo "$i" >"$T/k"
    $A s3api put-object --bucket ops --key "list/k$i" --body "$T/k" >/dev/null || fail "put list/k$i"
done
$A s3api put-object --bucket ops --key "list/sub/x" --body "$T/h" >/dev/null
p=$($A s3api list-objects-v2 --bucket ops --prefix list/ --delimiter / --max-keys 10 --output json)
expect_eq "$(echo "$p" | J 'd["KeyCount"]')" 10 "V2 page size"
expect_eq "$(echo "$p" | J 'd["IsTruncated"]')" True "V2 truncated"
tok=$(echo "$p" | J 'd["NextContinuationToken"]')
all=$($A s3api list-objects-v2 --bucket ops --prefix list/ --delimiter / --output json |
    J '[o["Key"] for o in d["Contents"]] + [c["Prefix"] for c in d["CommonPrefixes"]]')
expect_contains "$all" "'list/sub/'" "common prefix"
p2=$($A s3api list-objects-v2 --bucket ops --prefix list/ --delimiter / --max-keys 10 --continuation-token "$tok" --output json)
expect_eq "$(echo "$p2" | J 'd["Contents"][0]["Key"]')" "list/k11" "continuation"
p3=$($A s3api list-objects-v2 --bucket ops --prefix list/ --start-after list/k23 --output json)
expect_eq "$(echo "$p3" | J '[o["Key"] for o in d["Contents"]]')" "['list/k24', 'list/k25', 'list/sub/x']" "start-after"
v1=$($A s3api list-objects --bucket ops --prefix list/ --max-keys 5 --marker list/k05 --output json)
expect_eq "$(echo "$v1" | J '[o["Key"] for o in d["Contents"]]')" "['list/k06', 'list/k07', 'list/k08', 'list/k09', 'list/k10']" "V1 marker"
n=$($A s3api list-objects --bucket ops --prefix list/ --output json | J 'len(d["Contents"])')
expect_eq "$n" 26 "V1 through the CLI's own paging"
vers=$($A s3api list-object-versions --bucket ops --prefix greet/ --output json)
expect_eq "$(echo "$vers" | J '[(v["Key"], v["VersionId"], v["IsLatest"]) for v in d["Versions"]]')" \
    "[('greet/hello.txt', 'null', True), ('greet/new.txt', 'null', True)]" "list-object-versions of an unversioned bucket"

# DeleteObjects (with a missing key, which S3 reports as deleted).
res=$($A s3api delete-objects --bucket ops --delete 'Objects=[{Key=list/k01},{Key=list/k02},{Key=nope}]' --output json)
expect_eq "$(echo "$res" | J 'sorted(x["Key"] for x in d["Deleted"])')" "['list/k01', 'list/k02', 'nope']" "delete-objects"
$A s3api head-object --bucket ops --key list/k01 >/dev/null 2>&1 && fail "deleted key still there"

# Multipart: parts out of order, UploadPartCopy, ListParts, ListMultipartUploads, abort.
rand_file "$T/p1" $((5 * 1024 * 1024))
rand_file "$T/p3" 12345
uid=$($A s3api create-multipart-upload --bucket ops --key mpu.bin --content-type application/x-test --output json | J 'd["UploadId"]')
e3=$($A s3api upload-part --bucket ops --key mpu.bin --upload-id "$uid" --part-number 3 --body "$T/p3" --output json | J 'd["ETag"]')
e1=$($A s3api upload-part --bucket ops --key mpu.bin --upload-id "$uid" --part-number 1 --body "$T/p1" --output json | J 'd["ETag"]')
head -c $((6 * 1024 * 1024)) /dev/urandom >"$T/src"
$A s3api put-object --bucket ops --key src.bin --body "$T/src" >/dev/null
e2=$($A s3api upload-part-copy --bucket ops --key mpu.bin --upload-id "$uid" --part-number 2 --copy-source ops/src.bin \
    --copy-source-range bytes=1000-5243879 --output json | J 'd["CopyPartResult"]["ETag"]')
parts=$($A s3api list-parts --bucket ops --key mpu.bin --upload-id "$uid" --output json | J '[p["PartNumber"] for p in d["Parts"]]')
expect_eq "$parts" "[1, 2, 3]" "list-parts"
ups=$($A s3api list-multipart-uploads --bucket ops --output json | J '[u["UploadId"] for u in d["Uploads"]]')
expect_contains "$ups" "$uid" "list-multipart-uploads"
cat >"$T/complete.json" <<JSON
{"Parts":[{"PartNumber":1,"ETag":$e1},{"PartNumber":2,"ETag":$e2},{"PartNumber":3,"ETag":$e3}]}
JSON
$A s3api complete-multipart-upload --bucket ops --key mpu.bin --upload-id "$uid" --multipart-upload "file://$T/complete.json" >/dev/null ||
    fail "complete"
{ cat "$T/p1"; tail -c +1001 "$T/src" | head -c 5242880; cat "$T/p3"; } >"$T/want"
$A s3api get-object --bucket ops --key mpu.bin "$T/got" >"$T/get.json" || fail "get multipart object"
cmp "$T/want" "$T/got" || fail "multipart object differs"
expect_eq "$(J 'd["ContentType"]' <"$T/get.json")" application/x-test "content type set at create"
etag=$(J 'd["ETag"]' <"$T/get.json")
want_etag=$("$PY" -c "
import hashlib,sys
m=b''.join(hashlib.md5(open(f,'rb').read()).digest() for f in sys.argv[1:])
print('\"'+hashlib.md5(m).hexdigest()+'-3\"')" "$T/p1" <(tail -c +1001 "$T/src" | head -c 5242880) "$T/p3")
expect_eq "$etag" "$want_etag" "multipart ETag is md5-of-md5s-N"
uid2=$($A s3api create-multipart-upload --bucket ops --key aborted --output json | J 'd["UploadId"]')
$A s3api abort-multipart-upload --bucket ops --key aborted --upload-id "$uid2" || fail "abort"
out=$($A s3api list-parts --bucket ops --key aborted --upload-id "$uid2" 2>&1) && fail "list-parts after abort"
expect_contains "$out" "NoSuchUpload" "aborted upload is gone"

# What minikv does not implement says so.
out=$($A s3api get-bucket-acl --bucket ops 2>&1) && fail "get-bucket-acl succeeded"
expect_contains "$out" "NotImplemented" "ACLs"
out=$($A s3api put-bucket-versioning --bucket ops --versioning-configuration Status=Enabled 2>&1) &&
    fail "versioning was accepted"
expect_contains "$out" "NotImplemented" "versioning"
st=$($A s3api get-bucket-versioning --bucket ops --output json 2>&1 | tr -d ' \n')
case "$st" in ""|"{}") ;; *) fail "get-bucket-versioning: $st" ;; esac

# Bucket deletion refuses a non-empty bucket.
out=$($A s3api delete-bucket --bucket ops 2>&1) && fail "deleted a non-empty bucket"
expect_contains "$out" "BucketNotEmpty" "non-empty bucket"
log "ok"
