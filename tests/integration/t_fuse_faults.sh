#!/bin/bash
# Faults under a FUSE mount.
# 1. kill -9 of the FUSE daemon: the mountpoint answers ENOTCONN (also to
#    a process that still has a file open there); after fusermount3 -u and a
#    new mount, every file written and fsynced (or closed) before the kill
#    is there with its bytes; a file written and still open at the kill is
#    absent, empty (its create was committed, none of its data) or
#    complete -- never a part of it or other bytes; for one fsynced and then
#    written further while open: exactly the fsynced prefix, or complete.
# 2. kill -9 of the server while a file streams through a mount
#    (-o timeout=5; an fsync every 8 MiB, each logged once it returned):
#    the writer gets EIO within the timeout (plus a margin) and ends with
#    an error; after the restart, once the mount is gone (its write-back
#    drained), the object is exactly a prefix of what was written, ending at
#    an fsync point (a multiple of 8 MiB, or the end), and at least as long
#    as the last fsync that returned. (The file's old content is not a
#    valid outcome here: the kill comes after at least two fsyncs of the new
#    content returned.) Two rounds, killing at different offsets.
# 3. Namespace changes answered early (docs/design.md, "Applying ahead"):
#    300 files created, then fsync of their directory, then kill -9 of the
#    server at once: after the restart all 300 are there. Then 50 more
#    created without a sync, kill -9 again: after the restart the first
#    fsync on the mount answers EIO (those changes may be lost), the next
#    one succeeds.
. "$top_srcdir/tests/integration/lib.sh"
fuse_usable || skip "needs root, /dev/fuse and fusermount3"
MIB=$((1 << 20))
mkv_bucket_mount faults
mkdir -p "$T/src"

log "files written and fsynced, closed, and left open; then kill -9 of the FUSE daemon"
rand_file "$T/src/sync-small.bin" 1000 # inline
rand_file "$T/src/sync-mid.bin" 300000
rand_file "$T/src/sync-big.bin" $((20 * MIB))
rand_file "$T/src/closed.bin" $((5 * MIB))
rand_file "$T/src/rewritten.old" $((2 * MIB))
rand_file "$T/src/rewritten.bin" $((3 * MIB + 5))
rand_file "$T/src/open-unsynced.bin" $((3 * MIB))
rand_file "$T/src/open-synced.bin" $((3 * MIB))
rand_file "$T/src/open-trunc.old" $((1 * MIB))
rand_file "$T/src/open-trunc.bin" $((2 * MIB))
# fsync through python (write, fsync, close) and dd conv=fsync.
fsync_copy() {
    "$PY" -c '
import os, sys
data = open(sys.argv[1], "rb").read()
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, data); os.fsync(fd); os.close(fd)' "$1" "$2"
}
fsync_copy "$T/src/sync-small.bin" "$M/sync-small.bin" || fail "write+fsync sync-small.bin"
fsync_copy "$T/src/sync-mid.bin" "$M/sync-mid.bin" || fail "write+fsync sync-mid.bin"
dd if="$T/src/sync-big.bin" of="$M/sync-big.bin" bs=1M conv=fsync status=none || fail "dd conv=fsync"
cp "$T/src/closed.bin" "$M/closed.bin" || fail "cp (closed, no fsync)"
fsync_copy "$T/src/rewritten.old" "$M/rewritten.bin" || fail "write+fsync rewritten.bin (old)"
fsync_copy "$T/src/rewritten.bin" "$M/rewritten.bin" || fail "write+fsync rewritten.bin (new)"
fsync_copy "$T/src/open-trunc.old" "$M/open-trunc.bin" || fail "write+fsync open-trunc.bin (old)"

# A process holding three files open, written but not closed.
cat >"$T/holder.py" <<'EOF'
import errno, os, sys, time
src, mnt, tdir = sys.argv[1:4]
def data(n): return open(os.path.join(src, n), "rb").read()
def op(n, flags): return os.open(os.path.join(mnt, n), os.O_WRONLY | flags, 0o644)
a = op("open-unsynced.bin", os.O_CREAT | os.O_EXCL)
os.write(a, data("open-unsynced.bin"))
b = op("open-synced.bin", os.O_CREAT | os.O_EXCL)
d = data("open-synced.bin")
os.write(b, d[: 2 << 20])
os.fsync(b)
os.write(b, d[2 << 20 :])
c = op("open-trunc.bin", os.O_TRUNC)
os.write(c, data("open-trunc.bin"))
open(os.path.join(tdir, "holder.ready"), "w").close()
for _ in range(600):
    if os.path.exists(os.path.join(tdir, "holder.go")):
        break
    time.sleep(0.05)
# After the kill: a write to a file still open.
try:
    os.write(b, b"more")
    print("write OK")
except OSError as e:
    print("write", errno.errorcode[e.errno])
for fd in (a, b, c):
    try:
        os.close(fd)
    except OSError:
        pass
EOF
"$PY" "$T/holder.py" "$T/src" "$M" "$T" >"$T/holder.out" 2>&1 &
holder=$!
for _ in $(seq 300); do
    [ -e "$T/holder.ready" ] && break
    kill -0 "$holder" 2>/dev/null || fail "the holder died: $(cat "$T/holder.out")"
    sleep 0.1
done
[ -e "$T/holder.ready" ] || fail "the holder did not write its files within 30 s"

d=$(mkv_fuse_pid "$M")
[ -n "$d" ] || fail "no FUSE daemon found for $M"
kill -KILL $d
for _ in $(seq 50); do kill -0 $d 2>/dev/null || break; sleep 0.1; done
expect_try "$(MKV_TRY_LIMIT=20 mkv_try stat "$M")" ENOTCONN 5 "stat of the mountpoint after kill -9 of its daemon"
expect_try "$(MKV_TRY_LIMIT=20 mkv_try read "$M/sync-mid.bin")" ENOTCONN 5 "read of a file after kill -9 of the daemon"
out=$(timeout -s KILL 20 ls "$M" 2>&1) && fail "ls of a mount whose daemon was killed succeeded"
expect_contains "$out" "Transport endpoint is not connected" "ls after kill -9 of the daemon"
touch "$T/holder.go"
for _ in $(seq 200); do kill -0 "$holder" 2>/dev/null || break; sleep 0.1; done
kill -0 "$holder" 2>/dev/null && fail "the holder hung on the dead mount"
wait "$holder"
expect_eq "$(cat "$T/holder.out")" "write ENOTCONN" "a write to a file open on the dead mount"

fusermount3 -u "$M" 2>"$T/umount.err" || {
    log "fusermount3 -u: $(cat "$T/umount.err"); trying -uz"
    fusermount3 -uz "$M" || fail "fusermount3 -uz of the dead mount"
}
grep -q " $M fuse" /proc/self/mounts && fail "the dead mount is still in the mount table"
mkv_mount /faults "$M"

check_whole() { # NAME: identical to the source, through the mount and S3
    cmp "$T/src/$1" "$M/$1" || fail "$1 (written before the daemon was killed) differs or is missing"
    aws_v2 s3 cp "s3://faults/$1" "$T/s3.out" >/dev/null || fail "S3 GET $1"
    cmp "$T/src/$1" "$T/s3.out" || fail "$1 differs through S3"
}
for f in sync-small.bin sync-mid.bin sync-big.bin closed.bin rewritten.bin; do check_whole "$f"; done
# Open at the kill: absent, empty or complete.
f=open-unsynced.bin
if [ -e "$M/$f" ]; then
    size=$(stat -c %s "$M/$f")
    [ "$size" = 0 ] || cmp "$T/src/$f" "$M/$f" || fail "$f (open at the kill) is torn: $size bytes, not 0 or whole"
    log "$f: $size bytes after the kill"
else
    log "$f: absent after the kill"
fi
# Fsynced 2 MiB, then 1 MiB more, open at the kill: the prefix or whole.
f=open-synced.bin
[ -e "$M/$f" ] || fail "$f (2 MiB fsynced before the kill) is missing"
size=$(stat -c %s "$M/$f")
case "$size" in
    $((2 * MIB))) cmp -n $((2 * MIB)) "$T/src/$f" "$M/$f" || fail "$f: the fsynced 2 MiB differ" ;;
    $((3 * MIB))) cmp "$T/src/$f" "$M/$f" || fail "$f: whole size but other bytes" ;;
    *) fail "$f is torn: $size bytes (2 MiB fsynced, 3 MiB written)" ;;
esac
log "$f: $size bytes after the kill"
# Opened with O_TRUNC over an old content, rewritten, open at the kill:
# the old content, empty (the truncation), or the new one whole.
f=open-trunc.bin
size=$(stat -c %s "$M/$f") || fail "$f (it existed before) is missing"
if [ "$size" != 0 ] && ! cmp -s "$T/src/open-trunc.old" "$M/$f" && ! cmp -s "$T/src/$f" "$M/$f"; then
    fail "$f is torn: $size bytes, neither old, empty nor new"
fi
log "$f: $size bytes after the kill"
echo "after the remount" >"$M/after.txt" && expect_eq "$(cat "$M/after.txt")" "after the remount" "the new mount"
mkv_umount "$M"

log "kill -9 of the server while a file streams through the mount"
TOUT=5
W=$T/w
mkv_mount /faults "$W" -o timeout=$TOUT
rand_file "$T/src/stream.bin" $((200 * MIB))
rand_file "$T/src/stream.old" $((4 * MIB))
cat >"$T/writer.py" <<'EOF'
# writer.py SRC DST LOG: DST truncated, SRC copied in 1 MiB writes with an
# fsync every 8 MiB; LOG gets "fsynced OFFSET" once each fsync returned,
# "error ERRNO-NAME OP OFFSET TIME" and "close ..." on failure (exit 3).
import errno, os, sys, time
src, dst, log = sys.argv[1:4]
lf = open(log, "w", buffering=1)
off, what = 0, "open"
try:
    fd = os.open(dst, os.O_WRONLY | os.O_TRUNC)
    with open(src, "rb") as s:
        while True:
            b = s.read(1 << 20)
            if not b:
                break
            what = "write"
            if os.write(fd, b) != len(b):
                raise OSError(errno.EIO, "short write")
            off += len(b)
            if off % (8 << 20) == 0:
                what = "fsync"
                os.fsync(fd)
                lf.write("fsynced %d\n" % off)
    what = "fsync"
    os.fsync(fd)
    lf.write("fsynced %d\n" % off)
    what = "close"
    os.close(fd)
    lf.write("done %d\n" % off)
except OSError as e:
    lf.write("error %s %s %d %.3f (%s)\n" % (errno.errorcode.get(e.errno, e.errno), what, off,
                                             time.time(), os.strerror(e.errno)))
    if what != "close" and what != "open":
        t = time.time()
        try:
            os.close(fd)
            lf.write("close OK %.1fs\n" % (time.time() - t))
        except OSError as e2:
            lf.write("close %s %.1fs\n" % (errno.errorcode.get(e2.errno, e2.errno), time.time() - t))
    sys.exit(3)
EOF
for kill_at in 16 96; do
    fsync_copy "$T/src/stream.old" "$W/stream.bin" || fail "the old content"
    rm -f "$T/writer.log"
    "$PY" "$T/writer.py" "$T/src/stream.bin" "$W/stream.bin" "$T/writer.log" &
    wp=$!
    for _ in $(seq 600); do
        grep -qx "fsynced $((kill_at * MIB))" "$T/writer.log" 2>/dev/null && break
        kill -0 "$wp" 2>/dev/null || break
        sleep 0.02
    done
    grep -qx "fsynced $((kill_at * MIB))" "$T/writer.log" 2>/dev/null ||
        fail "the writer did not reach $kill_at MiB: $(tail -n 2 "$T/writer.log" 2>/dev/null)"
    mkv_kill_server
    killed=$(date +%s.%N)
    for _ in $(seq $((TOUT * 30 + 100))); do kill -0 "$wp" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$wp" 2>/dev/null &&
        fail "the writer still runs $((TOUT * 3 + 10)) s after the server was killed (its log ends: $(tail -n 3 "$T/writer.log" | tr '\n' ';'))"
    wait "$wp"
    st=$?
    grep -q '^done' "$T/writer.log" && fail "the writer finished although the server was killed at $kill_at MiB"
    expect_eq "$st" 3 "the writer's exit status"
    err=$(grep '^error' "$T/writer.log")
    log "round $kill_at MiB: $err; $(grep '^close' "$T/writer.log")"
    expect_contains "$err" "error EIO " "the writer's error"
    expect_contains "$err" "(Input/output error)" "the writer's error message"
    at=$(echo "$err" | cut -d' ' -f5)
    awk -v a="$at" -v k="$killed" -v t=$TOUT 'BEGIN { exit !(a - k <= t + 2) }' ||
        fail "the writer's error came $(echo "$at - $killed" | bc)s after the kill (timeout=$TOUT)"
    acked=$(sed -n 's/^fsynced //p' "$T/writer.log" | tail -n 1)
    mkv_start_server
    for _ in $(seq 150); do
        [ "$(MKV_TRY_LIMIT=20 mkv_try stat "$W/stream.bin" | cut -d' ' -f1)" = OK ] && break
        sleep 0.1
    done
    size=$(stat -c %s "$W/stream.bin") || fail "stream.bin is missing after the restart"
    log "round $kill_at MiB: last fsync that returned at $acked; $size bytes seen by the mount after the restart"
    # The mount's view, then what it leaves behind once unmounted.
    mkv_umount "$W"
    aws_v2 s3 cp s3://faults/stream.bin "$T/stream.s3" >/dev/null || fail "S3 GET stream.bin"
    size=$(stat -c %s "$T/stream.s3")
    [ "$size" -ge "$acked" ] || fail "round $kill_at MiB: $size bytes stored, less than the $acked fsynced"
    [ $((size % (8 * MIB))) = 0 ] || [ "$size" = $((200 * MIB)) ] ||
        fail "round $kill_at MiB: $size bytes stored, not an fsync point (fsynced: $acked)"
    cmp -n "$size" "$T/src/stream.bin" "$T/stream.s3" ||
        fail "round $kill_at MiB: the $size bytes stored are not what was written (fsynced: $acked)"
    log "round $kill_at MiB: $size bytes stored, a prefix of what was written"
    mkv_mount /faults "$W" -o timeout=$TOUT
    cmp "$T/stream.s3" "$W/stream.bin" || fail "round $kill_at MiB: a new mount reads other bytes than S3"
done
mkv_umount "$W"

log "namespace changes answered early: fsyncdir, then kill -9 of the server"
mkv_mount /faults "$W" -o timeout=$TOUT
mkdir "$W/ns" || fail "mkdir ns"
cat >"$T/mk.py" <<'EOF'
import os, sys
d, first, n, sync = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for i in range(first, first + n):
    os.close(os.open(os.path.join(d, "f%04d" % i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
if sync == "sync":
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
EOF
"$PY" "$T/mk.py" "$W/ns" 0 300 sync || fail "creating 300 files and fsyncing their directory"
mkv_kill_server
mkv_start_server
n=$(aws_v2 s3api list-objects-v2 --bucket faults --prefix ns/ --query 'length(Contents)' --output text) ||
    fail "listing ns/ after the restart"
# (ns/ itself is a key too: the directory's marker, made by mkdir.)
expect_eq "$n" 301 "keys under ns/ after kill -9 of the server (fsyncdir returned before)"
"$PY" "$T/mk.py" "$W/ns" 300 50 nosync || fail "creating 50 more files"
mkv_kill_server
mkv_start_server
cat >"$T/fsyncdir.py" <<'EOF'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
try:
    os.fsync(fd)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
EOF
first=""
for _ in $(seq 100); do
    first=$(timeout 60 "$PY" "$T/fsyncdir.py" "$W/ns")
    [ "$first" = EIO ] || [ "$first" = OK ] && break
    sleep 0.1 # the mount still reconnecting
done
expect_eq "$first" EIO "the first fsync after a restart that may have lost changes answered early"
expect_eq "$(timeout 60 "$PY" "$T/fsyncdir.py" "$W/ns")" OK "the fsync after that"
n=$(ls "$W/ns" | wc -l)
[ "$n" -ge 300 ] && [ "$n" -le 350 ] || fail "$n files under ns/ after the second kill (300 to 350 expected)"
log "ns/: $n files after the second kill (300 fsynced, 50 not)"
mkv_umount "$W"
log "ok"
