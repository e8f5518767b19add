#!/bin/bash
# Two mounts of one bucket (and S3) at once, as users of a shared file
# system expect them to behave:
# - close-to-open: what one mount wrote and closed, the other reads at its
#   next open, byte for byte (new files, rewrites in place of another size
#   and of the same size), with the default attr_timeout=1; with
#   attr_timeout=0, stat, names, renames and removals are seen at once;
# - an S3 PUT (new key, and over a key both mounts have read) is read by
#   both mounts within 1 s with the default attr_timeout;
# - 2 x 50 concurrent mv of distinct files onto one name, from both mounts:
#   every mv succeeds, one file remains under the name, whole, equal to one
#   of the sources; no source or duplicate entry is left; both mounts and
#   the S3 listing agree;
# - appends under locks from both mounts (200 numbered lines each): with
#   flock(1), and with fcntl locks (python lockf): all 400 lines, none lost,
#   torn or out of order;
# - in a directory one mount made (and whose missing names it answers
#   itself), a link the other mount makes shows within 3 s, and a rename
#   between two links of one file keeps both names.
. "$top_srcdir/tests/integration/lib.sh"
fuse_usable || skip "needs root, /dev/fuse and fusermount3"
command -v flock >/dev/null || skip "flock missing"
mkv_start_server
aws_v2 s3 mb s3://multi >/dev/null || fail "mb"
A=$T/a B=$T/b A0=$T/a0 B0=$T/b0
mkv_mount /multi "$A"
mkv_mount /multi "$B"
mkv_mount /multi "$A0" -o attr_timeout=0
mkv_mount /multi "$B0" -o attr_timeout=0
mkdir -p "$T/src"

log "close-to-open (attr_timeout=1): written and closed on one mount, read on the other"
for round in 1 2 3; do
    for from in A B; do
        if [ $from = A ]; then w=$A r=$B; else w=$B r=$A; fi
        f=c2o-$round-$from.bin
        # New file; then rewritten in place with another size; then with the
        # same size (only the bytes differ); each read on the other mount
        # right after the writer closed it.
        rand_file "$T/src/$f.1" $((1000000 + round * 1000))
        rand_file "$T/src/$f.2" $((300000 + round))
        rand_file "$T/src/$f.3" $((300000 + round))
        for v in 1 2 3; do
            cp "$T/src/$f.$v" "$w/$f" || fail "write $f version $v on $from"
            cmp "$T/src/$f.$v" "$r/$f" || fail "$f version $v written and closed on $from: the other mount read other bytes"
        done
        # Inline-sized, same size.
        echo "small v1 $round" >"$w/small-$from"
        expect_eq "$(cat "$r/small-$from")" "small v1 $round" "small file v1 from $from"
        echo "small v2 $round" >"$w/small-$from"
        expect_eq "$(cat "$r/small-$from")" "small v2 $round" "small file v2 (same size) from $from"
    done
done

log "attr_timeout=0: stat, names, renames and removals are seen at once"
st() { stat -c '%s %a %Y %h' "$1" 2>&1; }
rand_file "$T/src/s0" 777777
cp "$T/src/s0" "$A0/s0" || fail "write s0"
expect_eq "$(st "$B0/s0")" "$(st "$A0/s0")" "stat of a new file on the other mount"
echo "appended" >>"$A0/s0"
expect_eq "$(stat -c %s "$B0/s0")" 777786 "size after an append, on the other mount"
expect_eq "$(st "$B0/s0")" "$(st "$A0/s0")" "stat after an append"
touch -d @1500000000 "$A0/s0" && chmod 600 "$A0/s0"
expect_eq "$(stat -c '%a %Y' "$B0/s0")" "600 1500000000" "mode and mtime set on the other mount"
stat "$B0/later" >/dev/null 2>&1 && fail "later exists before it was made"
echo "later" >"$A0/later"
expect_eq "$(cat "$B0/later" 2>&1)" "later" "a name looked up (missing) just before another mount made it"
mv "$A0/later" "$A0/renamed" || fail "mv"
[ -e "$B0/later" ] && fail "the old name of a renamed file is still seen by the other mount"
expect_eq "$(cat "$B0/renamed" 2>&1)" "later" "the new name of a renamed file"
# An editor's save: a new file renamed over the one the other mount read.
echo "old version" >"$A0/doc"
expect_eq "$(cat "$B0/doc")" "old version" "doc before the save"
echo "new version, longer" >"$A0/.doc.tmp" && mv "$A0/.doc.tmp" "$A0/doc" || fail "save by rename"
expect_eq "$(cat "$B0/doc" 2>&1)" "new version, longer" "doc after a save by rename, on the other mount"
rm "$A0/renamed" "$A0/doc" || fail "rm"
[ -e "$B0/renamed" ] && fail "a removed file is still seen by the other mount"
expect_eq "$(ls -A "$B0" | grep -c -e '^renamed$' -e '^doc$' -e '^\.doc\.tmp$')" 0 "removed names in the other mount's listing"

log "an S3 PUT is read by both mounts within 1 s"
# put_and_check KEY LOCALFILE: PUT through S3 while both default mounts keep
# looking the key up and reading it (so that what they cache is fresh when
# the PUT completes); then both read LOCALFILE's bytes within 1 s of the
# PUT's reply (polled every 0.05 s; 0.25 s more allowed for the polling).
put_and_check() {
    local key=$1 want=$2 start now ok m reader
    rm -f "$T/stop-reading"
    while [ ! -e "$T/stop-reading" ]; do
        cat "$A/$key" "$B/$key" >/dev/null 2>&1
        sleep 0.05
    done &
    reader=$!
    aws_v2 s3 cp "$want" "s3://multi/$key" >/dev/null || fail "S3 PUT $key"
    start=$(date +%s.%N)
    touch "$T/stop-reading"
    wait $reader
    for m in "$A" "$B"; do
        ok=0
        while :; do
            cmp -s "$want" "$m/$key" && { ok=1; break; }
            now=$(date +%s.%N)
            awk -v n="$now" -v s="$start" 'BEGIN { exit !(n - s > 1.25) }' && break
            sleep 0.05
        done
        [ "$ok" = 1 ] || fail "$key put through S3 is not read by $m 1 s after the PUT"
    done
    log "$key: read by both mounts $(echo "$(date +%s.%N) - $start" | bc)s after the PUT"
}
# A new key (both mounts kept missing it), then over a key both mounts
# have read: another size, then the same size.
rand_file "$T/src/s3.1" 2000000
put_and_check s3.bin "$T/src/s3.1"
rand_file "$T/src/s3.2" 1500000
put_and_check s3.bin "$T/src/s3.2"
rand_file "$T/src/s3.3" 1500000
put_and_check s3.bin "$T/src/s3.3"

log "rename races: 2 x 50 concurrent mv onto one name"
mkdir "$A/race" || fail "mkdir race"
mkdir -p "$T/rsrc"
for side in a b; do
    for i in $(seq 1 50); do
        f=src-$side-$i
        # Sizes both inline and in chunks; the name inside to tell them apart.
        { echo "$f"; head -c $(( (i % 2) ? i * 37 : 20000 + i * 1111 )) /dev/urandom; } >"$T/rsrc/$f"
    done
done
for i in $(seq 1 50); do cp "$T/rsrc/src-a-$i" "$A/race/" && cp "$T/rsrc/src-b-$i" "$B/race/" || fail "cp sources"; done
(cd "$T/rsrc" && md5sum src-* | sort) >"$T/rsrc.md5"
mover() { # MOUNT SIDE
    local i rc=0
    for i in $(seq 1 50); do
        mv "$1/race/src-$2-$i" "$1/race/target" 2>>"$T/mv-$2.err" || { echo "$i" >>"$T/mv-$2.failed"; rc=1; }
    done
    return $rc
}
mover "$A" a &
pa=$!
mover "$B" b &
pb=$!
for _ in $(seq 1200); do kill -0 $pa 2>/dev/null || kill -0 $pb 2>/dev/null || break; sleep 0.1; done
kill -0 $pa 2>/dev/null || kill -0 $pb 2>/dev/null && fail "the mv loops did not finish within 120 s"
wait $pa; sta=$?
wait $pb; stb=$?
[ $sta = 0 ] && [ $stb = 0 ] ||
    fail "mv failed (mount A: $(cat "$T/mv-a.failed" 2>/dev/null | wc -l), mount B: $(cat "$T/mv-b.failed" 2>/dev/null | wc -l) of 50): $(cat "$T"/mv-*.err | sort | uniq -c | head -5)"
sleep 1.2 # the default mounts' attr_timeout
for m in "$A0" "$B0" "$A" "$B"; do
    expect_eq "$(ls -A "$m/race" | tr '\n' ' ')" "target " "the race directory listed on $m"
done
# (race/ is the directory's own marker, made by mkdir.)
expect_eq "$(aws_v2 s3api list-objects-v2 --bucket multi --prefix race/ --query 'Contents[].Key' --output text | tr '\t' ' ')" \
    "race/ race/target" "the race directory listed through S3"
sum=$(md5sum <"$A0/race/target" | cut -d' ' -f1)
winner=$(awk -v s="$sum" '$1 == s { print $2 }' "$T/rsrc.md5")
[ -n "$winner" ] || fail "the target is not one of the sources, whole ($(stat -c %s "$A0/race/target") bytes, first line '$(head -n 1 "$A0/race/target" | tr -dc '[:print:]' | head -c 40)')"
log "target is $winner"
for m in "$B0" "$A" "$B"; do
    expect_eq "$(md5sum <"$m/race/target" | cut -d' ' -f1)" "$sum" "the target read on $m"
done
expect_eq "$(aws_v2 s3 cp s3://multi/race/target - | md5sum | cut -d' ' -f1)" "$sum" "the target through S3"
expect_eq "$(stat -c %s "$A/race/target")" "$(stat -c %s "$T/rsrc/$winner")" "the target's size"

# check_lines FILE WHAT: 200 lines from each mount, each whole, each
# mount's in order.
check_lines() {
    local f=$1 what=$2 n bad got missing
    n=$(wc -l <"$f")
    bad=$(grep -cvE '^[AB] [0-9]{3} x{60}$' "$f")
    expect_eq "$bad" 0 "$what: lines torn or foreign (of $n)"
    for side in A B; do
        got=$(grep "^$side " "$f" | cut -d' ' -f2)
        missing=$(comm -23 <(seq -f '%03g' 1 200) <(echo "$got" | sort -u) | head -n 12 | tr '\n' ' ')
        [ -z "$missing" ] || fail "$what: $(echo "$got" | grep -c .) of mount $side's 200 lines, $n lines in all; lost: $missing..."
        expect_eq "$(echo "$got" | tr '\n' ' ')" "$(seq -f '%03g' 1 200 | tr '\n' ' ')" "$what: mount $side's lines in order"
    done
    expect_eq "$n" 400 "$what: lines"
}
PAD=$(printf 'x%.0s' $(seq 60))

log "appends under flock(1) from both mounts"
: >"$A/flock.txt"
flocker() { # MOUNT SIDE
    local i
    for i in $(seq -f '%03g' 1 200); do
        flock "$1/flock.txt" -c "echo '$2 $i $PAD' >>'$1/flock.txt'" || return 1
    done
}
flocker "$A" A &
pa=$!
flocker "$B" B &
pb=$!
for _ in $(seq 1200); do kill -0 $pa 2>/dev/null || kill -0 $pb 2>/dev/null || break; sleep 0.1; done
kill -0 $pa 2>/dev/null || kill -0 $pb 2>/dev/null && fail "the flock appenders did not finish within 120 s"
wait $pa || fail "flock appends on A failed"
wait $pb || fail "flock appends on B failed"
check_lines "$A0/flock.txt" "flock appends (read on a third mount)"
cmp "$A0/flock.txt" "$A/flock.txt" && cmp "$A0/flock.txt" "$B/flock.txt" || fail "flock.txt differs between mounts"

log "appends under fcntl locks (lockf) from both mounts"
: >"$A/lockf.txt"
cat >"$T/lockf.py" <<'EOF'
import fcntl, sys
path, side, pad = sys.argv[1:4]
for i in range(1, 201):
    with open(path, "a") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        f.write("%s %03d %s\n" % (side, i, pad))
        f.flush()
        fcntl.lockf(f, fcntl.LOCK_UN)
EOF
timeout -s KILL 120 "$PY" "$T/lockf.py" "$A/lockf.txt" A "$PAD" &
pa=$!
timeout -s KILL 120 "$PY" "$T/lockf.py" "$B/lockf.txt" B "$PAD" &
pb=$!
wait $pa || fail "lockf appends on A failed (status $?)"
wait $pb || fail "lockf appends on B failed (status $?)"
check_lines "$A0/lockf.txt" "lockf appends (read on a third mount)"
aws_v2 s3 cp s3://multi/lockf.txt "$T/lockf.s3" >/dev/null || fail "S3 GET lockf.txt"
cmp "$A0/lockf.txt" "$T/lockf.s3" || fail "lockf.txt differs through S3"

log "a directory one mount made: the other's names show there within 1 s"
# The mount that made hl/ answers lookups of missing names in it itself
# (fs/dnames.c); what the other mount adds must show within entry_timeout.
mkdir "$A/hl" && echo one >"$A/hl/a" || fail "mkdir hl, hl/a on A"
[ -e "$A/hl/b" ] && fail "hl/b there before anyone made it"
ln "$B/hl/a" "$B/hl/b" || fail "ln hl/a hl/b on B"
# A still takes hl/b for missing: its rename goes to the cluster, which
# finds two names of one file and does nothing (POSIX). Both names stay,
# also for A once its view of hl/ is renewed.
"$PY" -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' "$A/hl/a" "$A/hl/b" ||
    fail "rename(2) of hl/a to hl/b on A"
[ -e "$A/hl/a" ] || fail "hl/a lost on A after a rename onto another link of it"
sleep 1.2
[ -e "$A/hl/b" ] || fail "hl/b, linked on B, not seen on A after 1.2 s"
expect_eq "$(stat -c %h "$B/hl/a")" 2 "links of hl/a after the rename, on B"

for m in "$A" "$B" "$A0" "$B0"; do mkv_umount "$m"; done
log "ok"
