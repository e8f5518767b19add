#!/bin/bash
# The seed's endpoints and the ways in: /health/live, /health/ready,
# /metrics (checked with promtool), /admin/status (JSON, signed), S3 under
# /s3/, virtual-host style, and HTTPS with a certificate.
. "$top_srcdir/tests/integration/lib.sh"
mkv_start_server
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' "$ENDPOINT/health/live")" 200 "live"
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' "$ENDPOINT/health/ready")" 200 "ready"
aws_v2 s3 mb s3://epb >/dev/null || fail "mb"
echo "some data" >"$T/f"
aws_v2 s3 cp "$T/f" s3://epb/f >/dev/null || fail "put"
aws_v2 s3 cp s3://epb/f - >/dev/null || fail "get"

curl -fsS "$ENDPOINT/metrics" >"$T/metrics.txt" || fail "metrics"
if command -v promtool >/dev/null; then
    promtool check metrics <"$T/metrics.txt" >"$T/promtool.log" 2>&1 || { cat "$T/promtool.log"; fail "promtool"; }
fi
for m in 'minikv_s3_requests_total{op="PutObject",code="2xx"}' 'minikv_s3_request_duration_seconds_bucket{op="GetObject"' \
         minikv_s3_received_bytes_total minikv_s3_sent_bytes_total minikv_raft_term minikv_raft_commit_index \
         minikv_chunk_wal_fsync_duration_seconds_bucket 'minikv_ready 1'; do
    grep -qF "$m" "$T/metrics.txt" || fail "metric $m missing"
done

code=$(curl -s -o /dev/null -w '%{http_code}' "$ENDPOINT/admin/status")
expect_eq "$code" 403 "unsigned /admin/status"
curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    "$ENDPOINT/admin/status" >"$T/status.json" || fail "signed /admin/status"
"$PY" - "$T/status.json" <<'PY' || fail "admin status content"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ready"] is True, d
assert d["meta"]["role"] == "leader" and d["meta"]["objects"] >= 1, d
assert d["chunk"]["io_backend"] in ("io_uring", "sync"), d
PY
"$MINIKVCTL" status >"$T/ctl.txt" || fail "minikvctl status"
grep -q "leader" "$T/ctl.txt" || fail "minikvctl status output"
"$MINIKVCTL" --json ls epb | "$PY" -c 'import json,sys; assert [e["key"] for e in json.load(sys.stdin)] == ["f"]' ||
    fail "minikvctl ls"

# S3 under /s3/, as in the seed.
/usr/bin/aws --endpoint-url "$ENDPOINT/s3" s3 cp s3://epb/f "$T/f2" >/dev/null || fail "S3 under /s3/"
cmp "$T/f" "$T/f2" || fail "/s3/ body"
# Virtual-host style: Host epb.localhost.
out=$(curl -fsS --resolve "epb.localhost:$S3_PORT:127.0.0.1" --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "http://epb.localhost:$S3_PORT/f") || fail "virtual-host GET"
expect_eq "$out" "some data" "virtual-host body"
out=$(curl -fsS --resolve "epb.localhost:$S3_PORT:127.0.0.1" --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "http://epb.localhost:$S3_PORT/?list-type=2") || fail "virtual-host list"
expect_contains "$out" "<Key>f</Key>" "virtual-host listing"
# Path style with a trailing slash after the bucket.
out=$(curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$ENDPOINT/epb/?list-type=2")
expect_contains "$out" "<Key>f</Key>" "path style with a trailing slash"
mkv_stop_server

# HTTPS: the same data through TLS.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 1 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1 || fail "openssl"
MKV_SCHEME=https mkv_start_server --tls-cert "$T/cert.pem" --tls-key "$T/key.pem"
expect_eq "$ENDPOINT" "https://127.0.0.1:$S3_PORT" "TLS endpoint"
export AWS_CA_BUNDLE="$T/cert.pem"
aws_v2 s3 cp s3://epb/f "$T/f3" >/dev/null || fail "GET over HTTPS"
cmp "$T/f" "$T/f3" || fail "HTTPS body"
rand_file "$T/big" $((20 * 1024 * 1024))
aws_v2 s3 cp "$T/big" s3://epb/big >/dev/null || fail "multipart PUT over HTTPS"
aws_v2 s3 cp s3://epb/big "$T/big.out" >/dev/null || fail "GET over HTTPS"
cmp "$T/big" "$T/big.out" || fail "HTTPS big object"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/cert.pem" "$ENDPOINT/health/ready")
expect_eq "$code" 200 "ready over HTTPS"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S3_PORT/health/live")
[ "$code" != 200 ] || fail "plain HTTP answered on the TLS port"
mkv_stop_server
log "ok"
