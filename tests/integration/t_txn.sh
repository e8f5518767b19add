#!/bin/bash
# Multi-key transactions over REST (POST /transaction, POST /batch), sent by
# curl (SigV4-signed by curl itself) and read back with aws s3 and through
# a FUSE mount: puts and deletes across buckets apply together; a failing
# operation (precondition, missing bucket) leaves nothing; malformed
# requests get a clear JSON error; bank transfers as compare-and-swap
# transactions keep their invariants and lose nothing acknowledged across
# kill -9 of the server.
. "$top_srcdir/tests/integration/lib.sh"
mkv_start_server
aws_v2 s3 mb s3://tx1 >/dev/null || fail "mb tx1"
aws_v2 s3 mb s3://tx2 >/dev/null || fail "mb tx2"

# post PATH JSON: prints the status code, the body goes to $T/out.
post() {
    curl -sS -o "$T/out" -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
        -H "x-amz-content-sha256: $(printf '%s' "$2" | sha256sum | cut -d' ' -f1)" \
        -H "Content-Type: application/json" --data-binary "$2" "$ENDPOINT$1"
}
field() { /usr/bin/python3 -c "import json,sys; d=json.load(open('$T/out')); print($1)"; }

aws_v2 s3 cp - s3://tx1/old <<<"to be deleted" >/dev/null || fail "put old"

# All applied: two buckets, text and binary values, a delete.
code=$(post /transaction '{"operations": [
  {"op": "put", "key": "tx1/docs/a.txt", "value": "alpha\n", "content_type": "text/plain"},
  {"op": "put", "key": "tx2/bin", "value_base64": "AAECA/8="},
  {"op": "delete", "key": "tx1/old", "must_exist": true}]}')
expect_eq "$code" 200 "transaction status ($(cat "$T/out"))"
expect_eq "$(field 'd["committed"], d["successful_operations"], d["results"][2]["success"]')" \
    "True 3 True" "transaction answer"
aws_v2 s3 cp s3://tx1/docs/a.txt "$T/a" >/dev/null || fail "get a.txt"
printf 'alpha\n' | cmp - "$T/a" || fail "a.txt bytes"
aws_v2 s3 cp s3://tx2/bin "$T/bin" >/dev/null || fail "get bin"
printf '\0\1\2\3\377' | cmp - "$T/bin" || fail "binary value bytes"
etag=$(aws_v2 s3api head-object --bucket tx1 --key docs/a.txt --query ETag --output text)
expect_eq "$etag" "\"$(printf 'alpha\n' | md5sum | cut -d' ' -f1)\"" "ETag is the MD5"
ctype=$(aws_v2 s3api head-object --bucket tx1 --key docs/a.txt --query ContentType --output text)
expect_eq "$ctype" "text/plain" "content type"
aws_v2 s3api head-object --bucket tx1 --key old >/dev/null 2>&1 && fail "deleted key still there"

# The same bytes through a FUSE mount of the bucket.
if fuse_usable; then
    M=$T/mnt
    mkv_mount /tx1 "$M"
    expect_eq "$(cat "$M/docs/a.txt")" "alpha" "a.txt through FUSE"
    [ -e "$M/old" ] && fail "deleted key visible through FUSE"
    mkv_umount "$M"
else
    log "FUSE unavailable: mount check skipped"
fi

# The third operation fails (the key exists): nothing of the first two.
code=$(post /transaction '{"operations": [
  {"op": "put", "key": "tx1/new/x", "value": "x"},
  {"op": "delete", "key": "tx1/docs/a.txt"},
  {"op": "put", "key": "tx2/bin", "value": "again", "if_none_match": "*"}]}')
expect_eq "$code" 412 "failed precondition ($(cat "$T/out"))"
expect_eq "$(field 'd["committed"], d["error"]["code"], d["error"]["operation"]')" \
    "False PreconditionFailed 3" "failure answer"
expect_eq "$(field 'd["results"][0]["success"], d["results"][2]["error"][:18]')" \
    "False PreconditionFailed" "per-operation results"
aws_v2 s3api head-object --bucket tx1 --key new/x >/dev/null 2>&1 && fail "put of a failed transaction applied"
aws_v2 s3api head-object --bucket tx1 --key docs/a.txt >/dev/null || fail "delete of a failed transaction applied"

# Compare-and-swap with if_match: the right ETag wins, a stale one loses.
code=$(post /transaction "{\"operations\": [{\"op\": \"put\", \"key\": \"tx1/docs/a.txt\", \"value\": \"beta\", \"if_match\": $(printf '%s' "$etag" | /usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')}]}")
expect_eq "$code" 200 "if_match with the current ETag"
code=$(post /transaction "{\"operations\": [{\"op\": \"put\", \"key\": \"tx1/docs/a.txt\", \"value\": \"gamma\", \"if_match\": $(printf '%s' "$etag" | /usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')}]}")
expect_eq "$code" 412 "if_match with a stale ETag"
aws_v2 s3 cp s3://tx1/docs/a.txt "$T/a" >/dev/null || fail "get a.txt"
expect_eq "$(cat "$T/a")" "beta" "value after compare-and-swap"

# /batch: the seed's "ops" and "ok"; a missing bucket fails it whole.
code=$(post /batch '{"ops": [{"op": "put", "key": "tx1/b1", "value": "1"}, {"op": "put", "key": "nosuch/b2", "value": "2"}]}')
expect_eq "$code" 404 "batch with a missing bucket ($(cat "$T/out"))"
expect_eq "$(field 'd["error"]["code"], d["error"]["operation"], d["results"][0]["ok"]')" \
    "NoSuchBucket 2 False" "batch failure answer"
aws_v2 s3api head-object --bucket tx1 --key b1 >/dev/null 2>&1 && fail "batch put applied in part"
code=$(post /batch '{"ops": [{"op": "put", "key": "tx1/b1", "value": "1"}, {"op": "delete", "key": "tx1/nothing"}]}')
expect_eq "$code" 200 "batch"
expect_eq "$(field 'd["results"][0]["ok"], d["results"][1]["ok"]')" "True True" "batch answer"

# Bad requests: each a 400 with a message, and the server goes on.
bad() { # $1 body, $2 words the message must hold
    local c
    c=$(post /transaction "$1")
    expect_eq "$c" 400 "status for $1"
    expect_contains "$(cat "$T/out")" "$2" "message for $1"
}
bad '{"operations": [' "malformed JSON"
bad '[]' "must be"
bad '{"operations": []}' "1 to 1000 operations"
bad '{"operations": [{"op": "get", "key": "tx1/b1"}]}' "not supported"
bad '{"operations": [{"op": "put", "key": "tx1/k"}]}' "value"
bad '{"operations": [{"op": "put", "key": "nobucketslash", "value": "v"}]}' "BUCKET/KEY"
bad '{"operations": [{"op": "put", "key": "tx1/a//b", "value": "v"}]}' "BUCKET/KEY"
bad '{"operations": [{"op": "put", "key": "tx1/k", "value": "v", "colour": 1}]}' "unknown field"
bad '{"operations": [{"op": "put", "key": "tx1/k", "value_base64": "@@@"}]}' "not base64"
bad '{"operations": [{"op": "delete", "key": "tx1/k", "value": "v"}]}' "does not go with"
big=$(head -c 70000 /dev/zero | tr '\0' a)
code=$(post /transaction "{\"operations\": [{\"op\": \"put\", \"key\": \"tx1/big\", \"value\": \"$big\"}]}")
expect_eq "$code" 400 "value over 64 KiB"
expect_contains "$(cat "$T/out")" "EntityTooLarge" "value over 64 KiB"
big64=$(head -c 70000 /dev/zero | base64 -w0)
code=$(post /transaction "{\"operations\": [{\"op\": \"put\", \"key\": \"tx1/big\", \"value_base64\": \"$big64\"}]}")
expect_eq "$code" 400 "base64 value over 64 KiB"
expect_contains "$(cat "$T/out")" "EntityTooLarge" "base64 value over 64 KiB"
code=$(curl -sS -o "$T/out" -w '%{http_code}' -X POST --data-binary '{"operations":[]}' "$ENDPOINT/transaction")
expect_eq "$code" 403 "unsigned transaction"
aws_v2 s3 ls s3://tx1/ >/dev/null || fail "server stopped answering after bad requests"

# Bank transfers, then kill -9 in the middle of them: the invariants hold
# and every acknowledged transfer is there after the restart.
TX="/usr/bin/python3 $top_srcdir/tests/integration/txnload.py"
$TX setup tx2 8 100 || fail "accounts"
$TX run tx2 8 3 4 "$T/ack1" || fail "transfers"
$TX check tx2 8 100 "$T/ack1" || fail "invariants after transfers"
$TX run tx2 8 6 4 "$T/ack2" >"$T/run2.out" 2>&1 &
load=$!
sleep 3
mkv_kill_server
log "server killed during transfers"
mkv_start_server
wait "$load" || { cat "$T/run2.out"; fail "transfers around the kill"; }
cat "$T/run2.out"
cat "$T/ack1" "$T/ack2" >"$T/acks"
$TX check tx2 8 100 "$T/acks" || fail "invariants after kill -9"
log "ok"
