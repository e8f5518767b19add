#!/bin/bash
# A full cluster seen through a mount: the data directory is a small tmpfs.
# statfs reports the real capacity and free space; writes past the free
# space fail with ENOSPC (at write, fsync or close: never a hang, never a
# torn file), fallocate beyond it too; reads, listings and unlink keep
# working; once space is freed, writes work again.
. "$top_srcdir/tests/integration/lib.sh"
fuse_usable || skip "needs root, /dev/fuse and fusermount3"
mkv_tmpfs_data 160m
mkv_start_server --reserve 16M --segment-size 16M
aws_v2 s3 mb s3://full >/dev/null || fail "mb"
M=$T/mnt
mkv_mount /full "$M"

log "statfs: the data directory's capacity and free space"
read -r size avail < <(df --output=size,avail -B1 "$DATA" | tail -n 1)
read -r msize mavail < <(df --output=size,avail -B1 "$M" | tail -n 1)
expect_eq "$msize" "$size" "capacity seen by the mount (df)"
# Free space moves a little between the two df calls (the WAL, the log).
awk -v a="$mavail" -v b="$avail" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 32 * 1048576) }' ||
    fail "free space seen by the mount ($mavail) is not the data directory's ($avail)"

rand_file "$T/keep" 300000
cp "$T/keep" "$M/keep" || fail "first file"
rand_file "$T/blob" $((4 * 1024 * 1024))

log "writes until the cluster is full"
i=0
err=""
while [ $i -lt 60 ]; do
    i=$((i + 1))
    if ! err=$(dd if="$T/blob" of="$M/blob-$i" bs=1M conv=fsync status=none 2>&1); then
        break
    fi
    err=""
done
[ -n "$err" ] || fail "60 files of 4 MiB fit in a 160 MiB data directory"
log "file $i: $err"
expect_contains "$err" "No space left on device" "the error of a write to a full cluster"
full_at=$i
# What was refused is absent or a prefix of the data (never other bytes).
if [ -e "$M/blob-$full_at" ]; then
    n=$(stat -c %s "$M/blob-$full_at")
    cmp -n "$n" "$T/blob" "$M/blob-$full_at" || fail "the refused file holds other bytes"
fi
out=$(fallocate -l 1G "$M/falloc" 2>&1) && fail "fallocate of 1 GiB on a full cluster succeeded"
expect_contains "$out" "No space left on device" "fallocate on a full cluster"

log "reads, listings and unlink while full"
cmp "$T/keep" "$M/keep" || fail "read while full"
cmp "$T/blob" "$M/blob-1" || fail "read of a 4 MiB file while full"
[ "$(ls "$M" | grep -c '^blob-')" -ge $((full_at - 1)) ] || fail "listing while full"
rm "$M/blob-1" || fail "unlink while full"
[ -e "$M/blob-1" ] && fail "blob-1 still there after rm"

log "space freed: writes work again"
rm -f "$DATA/filler" "$M/blob-$full_at"
ok=0
for _ in $(seq 30); do
    if dd if="$T/blob" of="$M/after" bs=1M conv=fsync status=none 2>/dev/null; then ok=1; break; fi
    sleep 1
done
[ "$ok" = 1 ] || fail "no write succeeded within 30 s after space was freed"
cmp "$T/blob" "$M/after" || fail "the file written after freeing space differs"
aws_v2 s3 cp s3://full/after "$T/after.s3" >/dev/null || fail "S3 GET after"
cmp "$T/blob" "$T/after.s3" || fail "S3 reads other bytes"
mkv_umount "$M"
mkv_stop_server
log "ok"
