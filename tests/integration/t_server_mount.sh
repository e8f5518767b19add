#!/bin/bash
# minikv server --mount: the whole namespace is mounted with the server,
# buckets are its directories (mkdir makes one), S3 sees the same keys and
# bytes, and stopping the server unmounts first with what the mount had
# buffered written (it is there after a restart without the mount).
. "$top_srcdir/tests/integration/lib.sh"
fuse_usable || skip "needs root, /dev/fuse and fusermount3"
M=$T/mnt
MOUNTS="$M" # cleaned up even if the server does not get to it
mkv_start_server --mount "$M" --mount-options attr_timeout=0
for _ in $(seq 100); do
    findmnt -no FSTYPE "$M" 2>/dev/null | grep -qx fuse.minikv && break
    sleep 0.1
done
expect_eq "$(findmnt -no SOURCE,FSTYPE "$M")" "127.0.0.1:$META_PORT fuse.minikv" "the mount's source and type"
grep -q "mounted         $M" "$T/server.log" || fail "the server did not report its mount"

log "mkdir makes a bucket; files are objects"
mkdir "$M/photos" || fail "mkdir of a bucket"
out=$(aws_v2 s3 ls) || fail "S3 list of buckets"
grep -qw photos <<<"$out" || fail "the bucket made by mkdir is not listed by S3"
rand_file "$T/big" 3000000
mkdir -p "$M/photos/2024" && cp "$T/big" "$M/photos/2024/big.bin" || fail "cp into the mount"
aws_v2 s3 cp s3://photos/2024/big.bin "$T/big.s3" >/dev/null || fail "S3 GET of a file the mount wrote"
cmp "$T/big" "$T/big.s3" || fail "S3 reads other bytes than the mount wrote"
echo "through S3" | aws_v2 s3 cp - s3://photos/s3.txt >/dev/null || fail "S3 PUT"
expect_eq "$(cat "$M/photos/s3.txt")" "through S3" "an S3 object read through the mount"

log "stopping the server unmounts, after writing what was buffered"
# Written, not closed: the data sits in the mount's buffer at SIGTERM.
exec 7>"$M/photos/open.txt"
printf 'still open at shutdown\n' >&7
mkv_stop_server
exec 7>&-
mountpoint -q "$M" && fail "the mount is still there after the server stopped"
pgrep -f "mount.minikv .* $M( |\$)" >/dev/null && fail "the FUSE daemon outlived the server"
grep -q 'msg="unmounted"' "$T/server.log" || fail "the server did not log the unmount"
mkv_start_server
aws_v2 s3 cp s3://photos/open.txt "$T/open.txt" >/dev/null || fail "the buffered file is missing after the restart"
expect_eq "$(cat "$T/open.txt")" "still open at shutdown" "the buffered file's content"

log "a mountpoint already in use is refused with a clear message"
mkv_mount "" "$M"
set -- $(port_runs 3 2) # the metadata port's next one is Raft's
"$MINIKV" server --data "$T/data2" --listen "127.0.0.1:$1" --meta-listen "127.0.0.1:$3" \
    --chunk-listen "127.0.0.1:$2" --mount "$M" >"$T/server2.log" 2>&1 &
pid2=$!
for _ in $(seq 300); do kill -0 "$pid2" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid2" 2>/dev/null && { kill -KILL "$pid2"; fail "a server whose --mount failed kept running"; }
wait "$pid2"
[ $? -ne 0 ] || fail "a server whose --mount failed exited with status 0"
grep -q "already a FUSE mount" "$T/server2.log" || { cat "$T/server2.log"; fail "no clear message for a mountpoint in use"; }
mkv_umount "$M"
log "ok"
