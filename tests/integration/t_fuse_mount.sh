#!/bin/bash
# Mounting, as a user does it: mount.minikv returns once the mount answers,
# with its daemon in the background; df -T and findmnt show the source and
# type fuse.minikv; without /BUCKET the whole namespace (mkdir makes a
# bucket); `mount -t minikv` and an fstab line (_netdev,ro,allow_other)
# through /sbin/mount.minikv, umount(8); a read-only mount refuses writes
# with EROFS; a dead server fails the mount at once (status 32, a message
# naming the address); a server that dies under a mount makes operations
# fail with EIO within -o timeout, and the same mount works again by itself
# once the server is back.
. "$top_srcdir/tests/integration/lib.sh"
fuse_usable || skip "needs root, /dev/fuse and fusermount3"
for tool in findmnt df mount umount setpriv timeout; do
    command -v "$tool" >/dev/null || skip "$tool missing"
done
chmod 755 "$T" # the allow_other checks run as nobody
mkv_start_server
aws_v2 s3 mb s3://mnt >/dev/null || fail "mb"
echo "put before the mount" | aws_v2 s3 cp - s3://mnt/pre.txt >/dev/null || fail "S3 PUT"
SRC="127.0.0.1:$META_PORT/mnt"

# Waits (bounded) for the daemon of mountpoint $1 to exit after an unmount.
daemon_gone() {
    for _ in $(seq 100); do
        mkv_fuse_pid "$1" >/dev/null || return 0
        sleep 0.1
    done
    fail "the FUSE daemon of $1 still runs 10 s after the unmount"
}

log "mount.minikv SRC MNT: returns once the mount answers, daemon in the background"
M=$T/m1
mkdir -p "$M"
MOUNTS="$MOUNTS $M"
"$MOUNT_MINIKV" "$SRC" "$M" >"$T/mount1.out" 2>&1 &
mp=$!
for _ in $(seq 150); do kill -0 "$mp" 2>/dev/null || break; sleep 0.1; done
kill -0 "$mp" 2>/dev/null && fail "mount.minikv did not return within 15 s"
wait "$mp"
expect_eq "$?" 0 "mount.minikv exit status ($(cat "$T/mount1.out"))"
# Right after it returned, with no retry: mounted, and answering.
mountpoint -q "$M" || fail "mount.minikv returned before $M was a mount point"
expect_eq "$(stat -c %F "$M")" "directory" "stat of the mount right after mount.minikv returned"
expect_eq "$(cat "$M/pre.txt")" "put before the mount" "a file read right after the mount"
expect_eq "$(mkv_fuse_pid "$M" | wc -l)" 1 "FUSE daemons serving $M"
d=$(mkv_fuse_pid "$M")
[ "$d" != "$mp" ] || fail "the daemon is mount.minikv's own process"
[ "$(ps -o ppid= -p "$d" | tr -d ' ')" != "$$" ] || fail "the daemon is still a child of the shell that mounted"
# Detached from the caller's terminal and pipes: $(mount.minikv ...) or an
# ssh session that ran it do not wait for the daemon.
for fd in 0 1 2; do
    expect_eq "$(readlink "/proc/$d/fd/$fd")" "/dev/null" "the daemon's fd $fd"
done
read -r dsrc dtype _ < <(df -T "$M" | tail -n 1)
expect_eq "$dsrc $dtype" "$SRC fuse.minikv" "df -T source and type"
expect_eq "$(findmnt -no SOURCE,FSTYPE "$M" | tr -s ' ')" "$SRC fuse.minikv" "findmnt source and type"
echo "written through m1" >"$M/first.txt" || fail "write through the mount"
expect_eq "$(aws_v2 s3 cp s3://mnt/first.txt -)" "written through m1" "S3 GET of a file the mount wrote"
# Without allow_other, another user is refused.
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups cat "$M/first.txt" 2>&1) &&
    fail "nobody read a file of a mount without allow_other"
expect_contains "$out" "Permission denied" "another user on a mount without allow_other"

log "without /BUCKET: the whole namespace, buckets as directories"
N=$T/ns
mkdir -p "$N"
MOUNTS="$MOUNTS $N"
"$MOUNT_MINIKV" "127.0.0.1:$META_PORT" "$N" >"$T/mount-ns.out" 2>&1 || fail "mount of the namespace: $(cat "$T/mount-ns.out")"
expect_eq "$(findmnt -no SOURCE,FSTYPE "$N" | tr -s ' ')" "127.0.0.1:$META_PORT fuse.minikv" "findmnt of the namespace mount"
expect_eq "$(ls "$N")" "mnt" "top-level directories of the namespace"
expect_eq "$(cat "$N/mnt/first.txt")" "written through m1" "a file through the namespace mount"
mkdir "$N/newbucket" || fail "mkdir of a bucket"
aws_v2 s3 ls >"$T/buckets" || fail "S3 list buckets"
awk '{print $3}' "$T/buckets" | grep -qx newbucket || fail "the bucket made by mkdir is not listed: $(cat "$T/buckets")"
aws_v2 s3api head-bucket --bucket newbucket || fail "head-bucket of the bucket made by mkdir"
echo "in the new bucket" >"$N/newbucket/k.txt" || fail "write into the new bucket"
expect_eq "$(aws_v2 s3 cp s3://newbucket/k.txt -)" "in the new bucket" "S3 GET from the bucket made by mkdir"
expect_eq "$(ls "$N" | tr '\n' ' ')" "mnt newbucket " "top-level directories after mkdir"
mkv_umount "$N"

log "several metadata addresses in SRC (the first one dead)"
V=$T/multi
mkdir -p "$V"
MOUNTS="$MOUNTS $V"
VSRC="127.0.0.1:$(free_ports 1),127.0.0.1:$META_PORT/mnt"
"$MOUNT_MINIKV" "$VSRC" "$V" >"$T/mount-v.out" 2>&1 || fail "mount of $VSRC: $(cat "$T/mount-v.out")"
expect_eq "$(findmnt -no SOURCE,FSTYPE "$V" | tr -s ' ')" "$VSRC fuse.minikv" "findmnt of a mount with two addresses"
expect_eq "$(cat "$V/first.txt")" "written through m1" "a file through a mount with two addresses"
mkv_umount "$V"

log "mount -t minikv: mount(8) runs /sbin/mount.minikv"
HELPER=/sbin/mount.minikv
OURS=$(readlink -f "$top_builddir/fs/minikv-fuse")
if [ -e "$HELPER" ] || [ -L "$HELPER" ]; then
    log "using the installed $HELPER -> $(readlink -f "$HELPER")"
else
    ln -s "$OURS" "$HELPER" || fail "cannot install $HELPER"
    # Removed at exit, unless something else replaced it meanwhile.
    mkv_on_exit "[ \"\$(readlink $HELPER)\" = \"$OURS\" ] && rm -f $HELPER"
fi
P=$T/m2
mkdir -p "$P"
MOUNTS="$MOUNTS $P"
mount -t minikv "$SRC" "$P" >"$T/mount-t.out" 2>&1 || fail "mount -t minikv: $(cat "$T/mount-t.out")"
expect_eq "$(findmnt -no SOURCE,FSTYPE "$P" | tr -s ' ')" "$SRC fuse.minikv" "findmnt after mount -t minikv"
# The daemon is the helper mount(8) found in /sbin.
expect_eq "$(ps -o args= -p "$(mkv_fuse_pid "$P")" | cut -d' ' -f1)" "$HELPER" "the program mount(8) ran"
expect_eq "$(cat "$P/first.txt")" "written through m1" "a file through mount -t minikv"
echo "through m2" >"$P/second.txt" || fail "write through mount -t"
expect_eq "$(cat "$M/second.txt")" "through m2" "m2's file on m1"
umount "$P" || fail "umount of a mount -t minikv"
mountpoint -q "$P" && fail "still mounted after umount"
daemon_gone "$P"

log "an fstab line: _netdev,ro,allow_other"
F=$T/m3
mkdir -p "$F"
MOUNTS="$MOUNTS $F"
printf '%s %s minikv _netdev,ro,allow_other 0 0\n' "$SRC" "$F" >"$T/fstab"
mount --fstab "$T/fstab" "$F" >"$T/mount-fstab.out" 2>&1 || fail "mount --fstab: $(cat "$T/mount-fstab.out")"
expect_eq "$(findmnt -no SOURCE,FSTYPE "$F" | tr -s ' ')" "$SRC fuse.minikv" "findmnt of the fstab mount"
opts=$(findmnt -no OPTIONS "$F")
case ",$opts," in *,ro,*) ;; *) fail "the fstab mount is not ro: $opts" ;; esac
case ",$opts," in *,allow_other,*) ;; *) fail "the fstab mount has no allow_other: $opts" ;; esac
expect_eq "$(cat "$F/first.txt")" "written through m1" "a read on the read-only mount"
expect_eq "$(setpriv --reuid=65534 --regid=65534 --clear-groups cat "$F/first.txt" 2>&1)" \
    "written through m1" "another user reads through allow_other"
out=$(touch "$F/new.txt" 2>&1) && fail "touch on a read-only mount succeeded"
expect_contains "$out" "Read-only file system" "touch on the read-only mount"
out=$(sh -c "echo x >>'$F/first.txt'" 2>&1) && fail "append on a read-only mount succeeded"
expect_contains "$out" "Read-only file system" "append on the read-only mount"
expect_try "$(mkv_try create "$F/new.txt")" EROFS 10 "create on the read-only mount"
expect_try "$(mkv_try write "$F/first.txt")" EROFS 10 "open for writing on the read-only mount"
expect_try "$(mkv_try mkdir "$F/dir")" EROFS 10 "mkdir on the read-only mount"
expect_try "$(mkv_try unlink "$F/first.txt")" EROFS 10 "unlink on the read-only mount"
expect_eq "$(cat "$M/first.txt")" "written through m1" "the file after refused writes"
umount "$F" || fail "umount of the fstab mount"
mountpoint -q "$F" && fail "still mounted after umount"
daemon_gone "$F"

log "a dead server: the mount fails at once, with the address"
D=$T/dead
mkdir -p "$D"
MOUNTS="$MOUNTS $D"
dead=$(free_ports 1)
for how in helper mount8; do
    start=$(date +%s.%N)
    if [ "$how" = helper ]; then
        timeout -s KILL 60 "$MOUNT_MINIKV" "127.0.0.1:$dead/mnt" "$D" >"$T/dead.out" 2>&1
    else
        timeout -s KILL 60 mount -t minikv "127.0.0.1:$dead/mnt" "$D" >"$T/dead.out" 2>&1
    fi
    st=$?
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    log "$how: status $st after ${secs}s: $(cat "$T/dead.out")"
    expect_eq "$st" 32 "exit status of a mount ($how) of a dead server"
    expect_contains "$(cat "$T/dead.out")" "127.0.0.1:$dead" "the message of a mount ($how) of a dead server"
    awk -v s="$secs" 'BEGIN { exit !(s < 5) }' || fail "a mount ($how) of a dead server took ${secs}s (5 s allowed)"
    mountpoint -q "$D" && fail "$D is mounted after a failed mount"
    mkv_fuse_pid "$D" >/dev/null && fail "a daemon runs after a failed mount"
done
"$MOUNT_MINIKV" "127.0.0.1:$META_PORT/nosuchbucket" "$D" >"$T/nobucket.out" 2>&1
expect_eq "$?" 32 "exit status of a mount of a missing bucket"
expect_contains "$(cat "$T/nobucket.out")" "nosuchbucket" "the message of a mount of a missing bucket"

log "the server dies under a mount (-o timeout=3): EIO in time, then it comes back by itself"
S=$T/m4
mkdir -p "$S"
MOUNTS="$MOUNTS $S"
"$MOUNT_MINIKV" "$SRC" "$S" -o timeout=3 >"$T/mount4.out" 2>&1 || fail "mount -o timeout=3: $(cat "$T/mount4.out")"
echo "cached" >"$S/cached.txt" || fail "write before the kill"
echo "only through S3" | aws_v2 s3 cp - s3://mnt/s3only.txt >/dev/null || fail "S3 PUT"
mkv_kill_server
# Each a single system call in a new process; 3 s of -o timeout plus 2 s.
expect_try "$(mkv_try stat "$S/uncached-name")" EIO 5 "stat of an uncached name, server down"
expect_try "$(mkv_try read "$S/s3only.txt")" EIO 5 "read of a file the mount never saw, server down"
expect_try "$(mkv_try create "$S/newfile")" EIO 5 "create, server down"
expect_try "$(mkv_try list "$S")" EIO 5 "readdir, server down"
out=$(timeout -s KILL 30 touch "$S/newfile2" 2>&1) && fail "touch with the server down succeeded"
expect_contains "$out" "Input/output error" "touch with the server down"
# (mountpoint(1) would stat it; the mount table is what tells.)
grep -q " $S fuse.minikv " /proc/self/mounts || fail "the mount went away with the server"

mkv_start_server # the same ports and data directory
start=$(date +%s.%N)
ok=0
for _ in $(seq 150); do
    r=$(MKV_TRY_LIMIT=20 mkv_try stat "$S/cached.txt")
    [ "${r%% *}" = OK ] && { ok=1; break; }
    sleep 0.1
done
[ "$ok" = 1 ] || fail "the mount did not answer within 15 s of the restart (last: $r)"
log "the mount answered $(echo "$(date +%s.%N) - $start" | bc)s after the restart"
rand_file "$T/after" 300000
cp "$T/after" "$S/after.bin" || fail "write through the mount after the restart"
cmp "$T/after" "$S/after.bin" || fail "read back after the restart"
expect_eq "$(cat "$S/s3only.txt")" "only through S3" "a file the mount had not seen, after the restart"
expect_eq "$(cat "$S/cached.txt")" "cached" "a file written before the kill"
expect_try "$(mkv_try stat "$S/uncached-name")" ENOENT 5 "stat of a missing name after the restart"
# What was created while the server was down did not appear later.
for f in newfile newfile2; do
    [ -e "$S/$f" ] && fail "$f, refused while the server was down, exists after the restart"
done
aws_v2 s3 cp s3://mnt/after.bin "$T/after.s3" >/dev/null || fail "S3 GET of the file written after the restart"
cmp "$T/after" "$T/after.s3" || fail "S3 reads other bytes than the mount wrote after the restart"
expect_eq "$(cat "$M/after.bin" | sha256sum)" "$(sha256sum <"$T/after")" "the other mount reads it too"

mkv_umount "$S"
mkv_umount "$M"
log "ok"
