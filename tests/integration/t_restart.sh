#!/bin/bash
# Clean stop on SIGTERM (exit status 0) and restart from the data directory
# with all data; a second server cannot open the same directory; the
# generated credentials survive a restart and are not regenerated.
. "$top_srcdir/tests/integration/lib.sh"
mkv_start_server
grep -q "generated S3 credentials" "$T/server.log" || fail "first start did not print the generated credentials"
perm=$(stat -c %a "$DATA/credentials")
expect_eq "$perm" 600 "credentials file mode"
aws_v2 s3 mb s3://persist >/dev/null || fail "mb"
rand_file "$T/a" 777777
mkdir "$T/up"
for i in $(seq 1 50); do ln "$T/a" "$T/up/obj-$i"; done
aws_v2 s3 cp --recursive "$T/up" s3://persist/ >/dev/null || fail "uploading 50 objects"
"$MINIKV" server --data "$DATA" --listen 127.0.0.1:0 --meta-listen 127.0.0.1:0 --chunk-listen 127.0.0.1:0 \
    >"$T/second.log" 2>&1 && fail "a second server started on the same data directory"
grep -q "in use by another minikv process" "$T/second.log" || fail "second server error: $(cat "$T/second.log")"
for round in 1 2; do
    mkv_stop_server
    mkv_start_server
    n=$(aws_v2 s3 ls s3://persist/ | wc -l)
    expect_eq "$n" 50 "objects after restart $round"
    aws_v2 s3 cp s3://persist/obj-37 "$T/b" >/dev/null || fail "get after restart"
    cmp "$T/a" "$T/b" || fail "object differs after restart $round"
done
count=$(grep -c "generated S3 credentials" "$T/server.log")
expect_eq "$count" 1 "credentials are generated once"
mkv_stop_server
log "ok"
