#!/bin/bash
# kill -9 of the server during a stream of uploads, then restart: every
# upload that was acknowledged reads back identical; an upload that was not
# acknowledged is absent, or whole if its commit landed just before the kill
# (the reply was lost) -- never partial; incomplete multipart uploads are
# listed and can be aborted. Three rounds, killing at different moments.
. "$top_srcdir/tests/integration/lib.sh"
mkv_start_server
aws_v2 s3 mb s3://crash >/dev/null || fail "mb"

for round in 1 2 3; do
    # Two multipart uploads left incomplete on purpose.
    for k in mpu-a mpu-b; do
        uid=$(aws_v2 s3api create-multipart-upload --bucket crash --key "$k-$round" --query UploadId --output text)
        head -c $((5 * 1024 * 1024)) /dev/urandom >"$T/part"
        aws_v2 s3api upload-part --bucket crash --key "$k-$round" --upload-id "$uid" --part-number 1 \
            --body "$T/part" >/dev/null || fail "upload part"
        echo "$k-$round $uid" >>"$T/uploads"
    done
    wpids=""
    for w in 1 2 3; do
        "$PY" "$top_srcdir/tests/integration/crashload.py" crash "r$round-w$w" "$T/attempts" "$T/acks" &
        wpids="$wpids $!"
    done
    sleep $((1 + round))
    log "round $round: kill -9 after $(wc -l <"$T/acks") acknowledged uploads"
    mkv_kill_server
    for p in $wpids; do wait "$p"; done # the writers stop after repeated failures
    mkv_start_server
done

"$PY" "$top_srcdir/tests/integration/crashverify.py" crash "$T/attempts" "$T/acks" || fail "uploads after kill -9"

listed=$(aws_v2 s3api list-multipart-uploads --bucket crash --query 'Uploads[].UploadId' --output text)
while read -r key uid; do
    expect_contains "$listed" "$uid" "incomplete upload $key listed after restarts"
    aws_v2 s3api abort-multipart-upload --bucket crash --key "$key" --upload-id "$uid" || fail "abort $key"
done <"$T/uploads"
left=$(aws_v2 s3api list-multipart-uploads --bucket crash --query 'Uploads[].UploadId' --output text)
case "$left" in ""|None) ;; *) fail "uploads left after abort: $left" ;; esac
mkv_stop_server
log "ok"
