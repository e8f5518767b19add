#!/bin/bash
# Scattered small writes into one file, more of them than an inode holds
# extents (65,536): 70,000 writes of 100 B to 9 KB at random offsets of a
# 64 MiB file, an fsync every 3,000. The mount compacts the file as it
# goes (it rewrites its most fragmented 1 MiB windows whole), so no write
# fails; the file then reads back as a local shadow copy says, through the
# mount, after the page cache is dropped, on a second mount and through S3
# (ETag: the MD5 of the bytes).
. "$top_srcdir/tests/integration/lib.sh"
fuse_usable || skip "needs root, /dev/fuse and fusermount3"
mkv_bucket_mount frag
log "70,000 scattered writes"
"$PY" - "$M/frag.bin" "$T/shadow" <<'EOF' || fail "the scattered writes failed"
import os, random, sys
p, shadow = sys.argv[1], sys.argv[2]
size = 64 << 20
rnd = random.Random(7)
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
sh = bytearray(size)
os.ftruncate(fd, size)
for i in range(70000):
    off = rnd.randrange(0, size // 4096) * 4096 + rnd.choice((0, 0, 17))
    n = min(rnd.choice((4096, 4096, 100, 9000)), size - off)
    b = rnd.randbytes(n)
    if os.pwrite(fd, b, off) != n:
        sys.exit("short write")
    sh[off:off + n] = b
    if i % 3000 == 2999:
        os.fsync(fd)
os.fsync(fd)
os.close(fd)
open(shadow, "wb").write(sh)
EOF
log "$(grep -c 'msg="compacting"' "$T/fuse.log") compaction rounds"
cmp "$T/shadow" "$M/frag.bin" || fail "the file differs from its shadow copy"
sync
echo 3 >/proc/sys/vm/drop_caches
cmp "$T/shadow" "$M/frag.bin" || fail "the file differs after the page cache was dropped"
mkv_mount /frag "$T/mnt2"
cmp "$T/shadow" "$T/mnt2/frag.bin" || fail "a second mount reads other bytes"
aws_v2 s3 cp s3://frag/frag.bin "$T/frag.s3" >/dev/null || fail "S3 GET"
cmp "$T/shadow" "$T/frag.s3" || fail "S3 reads other bytes"
expect_eq "$(aws_v2 s3api head-object --bucket frag --key frag.bin --query ETag --output text | tr -d '"')" \
    "$(md5sum <"$T/shadow" | cut -d' ' -f1)" "the ETag"
mkv_umount "$T/mnt2"
mkv_umount "$M"
log "ok"
