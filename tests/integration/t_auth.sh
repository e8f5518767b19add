#!/bin/bash
# The cluster's own protocol requires an access key, as S3 does: minikvctl
# and mount.minikv without credentials or with a wrong secret are refused
# with a clear message; the server's key (-o credentials=FILE, or
# MINIKV_ACCESS_KEY/MINIKV_SECRET_KEY) and the cluster key work; a client
# that skips authentication gets EACCES from the metadata and chunk ports.
. "$top_srcdir/tests/integration/lib.sh"
mkv_start_server
aws_v2 s3 mb s3://authb >/dev/null || fail "mb"
echo "through S3" | aws_v2 s3 cp - s3://authb/a.txt >/dev/null || fail "S3 PUT (the gateway authenticates as the cluster)"
ANON="env -u MINIKV_ACCESS_KEY -u MINIKV_SECRET_KEY -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY"
printf '[minikv]\naws_access_key_id = %s\naws_secret_access_key = wrong-%s\n' \
    "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$T/wrong.cred"

log "minikvctl"
$ANON "$MINIKVCTL" buckets >"$T/ctl.out" 2>&1
expect_eq "$?" 1 "minikvctl without credentials: exit status"
grep -q "access denied" "$T/ctl.out" || fail "no clear message without credentials: $(cat "$T/ctl.out")"
$ANON "$MINIKVCTL" --credentials "$T/wrong.cred" buckets >"$T/ctl.out" 2>&1
expect_eq "$?" 1 "minikvctl with a wrong secret: exit status"
grep -q "authentication failed.*key=$AWS_ACCESS_KEY_ID" "$T/server.log" || fail "the server did not log the refusal"
$ANON "$MINIKVCTL" --credentials "$DATA/credentials" buckets | grep -qw "authb" || fail "minikvctl --credentials"
$ANON "$MINIKVCTL" --cluster-key "$DATA/cluster.key" status >/dev/null || fail "minikvctl --cluster-key status"
"$MINIKVCTL" status | grep -q "state           up" || fail "minikvctl with MINIKV_ACCESS_KEY: chunk server state"

if fuse_usable; then
    log "mount.minikv"
    mkdir -p "$T/m1" "$T/m2"
    $ANON "$MOUNT_MINIKV" "127.0.0.1:$META_PORT/authb" "$T/m1" >"$T/m1.out" 2>&1
    expect_eq "$?" 32 "mount without credentials: exit status"
    grep -q "access denied (no credentials given)" "$T/m1.out" || fail "mount without credentials: $(cat "$T/m1.out")"
    $ANON "$MOUNT_MINIKV" "127.0.0.1:$META_PORT/authb" "$T/m1" -o credentials="$T/wrong.cred" >"$T/m1.out" 2>&1
    expect_eq "$?" 32 "mount with a wrong secret: exit status"
    grep -q "that access key was refused" "$T/m1.out" || fail "mount with a wrong secret: $(cat "$T/m1.out")"
    mountpoint -q "$T/m1" && fail "a refused mount is mounted"
    MOUNTS="$MOUNTS $T/m1 $T/m2"
    $ANON "$MOUNT_MINIKV" "127.0.0.1:$META_PORT/authb" "$T/m1" -o credentials="$DATA/credentials" \
        >>"$T/fuse.log" 2>&1 || fail "mount -o credentials=FILE"
    expect_eq "$(cat "$T/m1/a.txt")" "through S3" "a file read through a mount with -o credentials"
    mkv_mount /authb "$T/m2" # MINIKV_ACCESS_KEY/MINIKV_SECRET_KEY
    cp "$T/wrong.cred" "$T/m2/b.bin" || fail "write through a mount authenticated from the environment"
    cmp "$T/wrong.cred" "$T/m1/b.bin" || fail "the other mount reads other bytes"
    mkv_umount "$T/m1"
    mkv_umount "$T/m2"
fi

log "a client that skips authentication"
"$PY" - "$META_PORT" "$CHUNK_PORT" <<'EOF' || fail "unauthenticated requests were served"
import socket, struct, sys
# A frame (lib/minikv/wire.h): magic "MK", version 1, flags, type, 0,
# status, length, req_id, then the CRC32C of those 24 bytes and the payload.
def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
def frame(mtype, payload, req_id):
    h = struct.pack("<HBBHHiIQ", 0x4B4D, 1, 0, mtype, 0, 0, len(payload), req_id)
    return h + struct.pack("<I", crc32c(payload, crc32c(h))) + payload
def ask(port, mtype, payload):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(frame(mtype, payload, 7))
    hdr = b""
    while len(hdr) < 28:
        chunk = s.recv(28 - len(hdr))
        if not chunk: raise SystemExit("connection closed without a reply")
        hdr += chunk
    status = struct.unpack_from("<i", hdr, 8)[0]
    s.close()
    return status
EACCES = -13
# META_STATUS (0x0201: one U32 field) to the metadata service.
st = ask(int(sys.argv[1]), 0x0201, struct.pack("<I", 0))
if st != EACCES: raise SystemExit("META_STATUS without authentication: status %d" % st)
# CHUNK_STAT (0x0105: one U32 field) to the chunk server.
st = ask(int(sys.argv[2]), 0x0105, struct.pack("<I", 0))
if st != EACCES: raise SystemExit("CHUNK_STAT without a token: status %d" % st)
EOF
# (The listing is read whole first: grep -q would close the pipe early, and
# aws, writing on, fails with EPIPE under pipefail.)
out=$(aws_v2 s3 ls s3://authb/) || fail "S3 list after the refusals"
grep -q a.txt <<<"$out" || fail "the gateway still serves after the refusals"
log "ok"
