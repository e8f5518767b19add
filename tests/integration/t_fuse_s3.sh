#!/bin/bash
# One namespace, two fronts: a mount and S3 on the same bucket.
# - S3 keys a/b/c appear in the mount as nested directories, same bytes;
# - a file written through the mount is, once closed, the S3 object of the
#   same key with the same bytes and an MD5 ETag (also when written out of
#   order);
# - mkdir in the mount shows in S3 as the key dir/;
# - a name cannot be a file and a directory: refused on both fronts (S3 409
#   KeyConflict, EEXIST / ENOTDIR in the mount);
# - rename of a directory holding 10,000 files is one metadata command
#   (the Raft applied index moves by one) and S3 sees every key moved;
# - in a directory the mount made (whose names it knows, so that it answers
#   lookups of missing names itself), names S3 adds show through the mount
#   within entry_timeout (1 s here), one at a time and 1,500 at once, and an
#   exclusive create of a name S3 made fails with EEXIST.
. "$top_srcdir/tests/integration/lib.sh"
fuse_usable || skip "needs root, /dev/fuse and fusermount3"
mkv_bucket_mount two
mkdir -p "$T/src"

log "S3 keys a/b/c as nested directories"
rand_file "$T/src/c" 300000
rand_file "$T/src/d" 1000
aws_v2 s3 cp "$T/src/c" s3://two/a/b/c.bin >/dev/null || fail "PUT a/b/c.bin"
aws_v2 s3 cp "$T/src/d" s3://two/a/d.bin >/dev/null || fail "PUT a/d.bin"
sleep 1.2 # the mount's attr_timeout: it listed the bucket root before
expect_eq "$(stat -c %F "$M/a") $(stat -c %F "$M/a/b")" "directory directory" "a and a/b in the mount"
expect_eq "$(ls "$M/a" | tr '\n' ' ')" "b d.bin " "ls a"
cmp "$T/src/c" "$M/a/b/c.bin" || fail "a/b/c.bin read through the mount"
cmp "$T/src/d" "$M/a/d.bin" || fail "a/d.bin read through the mount"

log "written through the mount: the S3 object, with an MD5 ETag"
etag() { aws_v2 s3api head-object --bucket two --key "$1" --query ETag --output text | tr -d '"'; }
rand_file "$T/src/w" 2500000
cp "$T/src/w" "$M/a/w.bin" || fail "cp to the mount"
aws_v2 s3 cp s3://two/a/w.bin "$T/w.s3" >/dev/null || fail "GET a/w.bin"
cmp "$T/src/w" "$T/w.s3" || fail "S3 reads other bytes than the mount wrote"
expect_eq "$(etag a/w.bin)" "$(md5sum <"$T/src/w" | cut -d' ' -f1)" "ETag of a file written in order"
# Out of order: the second half first, then the first.
half=1250000
dd if="$T/src/w" of="$M/a/ooo.bin" bs=$half skip=1 seek=1 count=1 status=none conv=notrunc || fail "dd 2nd half"
dd if="$T/src/w" of="$M/a/ooo.bin" bs=$half count=1 status=none conv=notrunc || fail "dd 1st half"
expect_eq "$(etag a/ooo.bin)" "$(md5sum <"$T/src/w" | cut -d' ' -f1)" "ETag of a file written out of order"

log "mkdir in the mount is the key dir/ in S3"
mkdir "$M/empty" "$M/a/sub" || fail "mkdir"
keys=$(aws_v2 s3api list-objects-v2 --bucket two --query 'Contents[].Key' --output text | tr '\t' '\n')
echo "$keys" | grep -qx "empty/" || fail "no key empty/ in S3: $keys"
echo "$keys" | grep -qx "a/sub/" || fail "no key a/sub/ in S3: $keys"
expect_eq "$(aws_v2 s3api head-object --bucket two --key empty/ --query ContentLength --output text)" 0 \
    "size of the key empty/"

log "a name is a file or a directory: refused on both fronts"
echo file >"$M/f" || fail "create f"
out=$(echo x | aws_v2 s3 cp - s3://two/f/g 2>&1) && fail "S3 PUT f/g over the file f succeeded"
expect_contains "$out" "KeyConflict" "S3 PUT f/g when f is a file"
out=$(mkdir "$M/f" 2>&1) && fail "mkdir over a file succeeded"
expect_contains "$out" "File exists" "mkdir f when f is a file"
expect_try "$(mkv_try create "$M/f/g")" ENOTDIR 5 "create f/g when f is a file"
echo x | aws_v2 s3 cp - s3://two/k/v >/dev/null || fail "PUT k/v"
out=$(echo x | aws_v2 s3 cp - s3://two/k 2>&1) && fail "S3 PUT k over the directory k/ succeeded"
expect_contains "$out" "KeyConflict" "S3 PUT k when k/ holds keys"
sleep 1.2
expect_try "$(mkv_try create "$M/k")" EEXIST 5 "create k in the mount when k is a directory"
expect_eq "$(cat "$M/f")" "file" "f after the refused changes"
expect_eq "$(cat "$M/k/v")" "x" "k/v after the refused changes"

log "a directory the mount made: names S3 adds show within entry_timeout"
# seen_within NAME SECONDS: NAME exists through the mount before SECONDS.
seen_within() {
    local t0=$EPOCHREALTIME
    until [ -e "$1" ]; do
        awk -v a="$t0" -v b="$EPOCHREALTIME" -v m="$2" 'BEGIN { exit !(b - a > m) }' &&
            fail "$1, made through S3, not seen through the mount after $2 s"
        sleep 0.05
    done
    log "$1 seen after $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s"
}
mkdir "$M/nd" || fail "mkdir nd"
echo a >"$M/nd/mine" || fail "create nd/mine"
[ -e "$M/nd/later" ] && fail "nd/later there before anyone made it"
# s3req, not the CLI: the PUT must land well within the mount's 1 s.
expect_contains "$(s3req PUT /two/nd/later --data x 2>&1)" "200" "PUT nd/later"
seen_within "$M/nd/later" 3
[ -e "$M/nd/excl" ] && fail "nd/excl there before anyone made it"
expect_contains "$(s3req PUT /two/nd/excl --data y 2>&1)" "200" "PUT nd/excl"
expect_try "$(mkv_try create "$M/nd/excl")" EEXIST 5 "exclusive create of nd/excl, made through S3"
[ -e "$M/nd/excl" ] || fail "nd/excl not seen right after the EEXIST"
# More names than one refresh page, made while the mount keeps looking.
PYTHONPATH="$top_srcdir/tests/integration" "$PY" - <<'PY' || fail "S3 PUT of 1,500 keys"
import s3req
for i in range(1, 1501):
    r = s3req.request("PUT", "/two/nd/s3-%d" % i, body=b"z")
    if r.status != 200:
        raise SystemExit("PUT nd/s3-%d: %r" % (i, r))
PY
seen_within "$M/nd/s3-1500" 3
for i in 1 750 1499; do [ -e "$M/nd/s3-$i" ] || fail "nd/s3-$i not seen through the mount"; done
expect_eq "$(ls "$M/nd" | wc -l)" 1503 "names in nd"

log "rename of a directory with 10,000 files is one metadata command"
mkdir "$M/big" || fail "mkdir big"
# Four writers (one directory, 2,500 files each).
"$PY" - "$M/big" <<'EOF' || fail "creating 10,000 files"
import os, sys
from concurrent.futures import ThreadPoolExecutor
d = sys.argv[1]
def make(part):
    for i in range(part, 10000, 4):
        with open(os.path.join(d, "f%05d" % i), "w") as f:
            f.write("file %d\n" % i)
with ThreadPoolExecutor(4) as ex:
    list(ex.map(make, range(4)))
EOF
expect_eq "$(ls "$M/big" | wc -l)" 10000 "files in big"
applied() { "$MINIKVCTL" --json status | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["meta"]["applied_index"])'; }
before=$(applied) || fail "minikvctl status"
start=$(date +%s.%N)
mv "$M/big" "$M/moved" || fail "mv big moved"
secs=$(echo "$(date +%s.%N) - $start" | bc)
# The mount takes the reply before the Raft commit (early replies): the
# applied index moves a moment later. Wait for it, then a little more for
# any command that should not be there.
for _ in $(seq 50); do
    after=$(applied)
    [ "$after" -gt "$before" ] && break
    sleep 0.1
done
sleep 0.5
after=$(applied)
log "mv of 10,000 files: $((after - before)) Raft command(s), ${secs}s"
expect_eq "$((after - before))" 1 "Raft commands applied by the rename"
[ -e "$M/big" ] && fail "big still exists after the rename"
expect_eq "$(ls "$M/moved" | wc -l)" 10000 "files in moved"
expect_eq "$(cat "$M/moved/f04321")" "file 4321" "a file in the renamed directory"
# (aws s3 ls --recursive follows the continuation tokens: 11 pages.)
expect_eq "$(aws_v2 s3 ls --recursive s3://two/moved/ | wc -l)" 10001 \
    "S3 keys under moved/ (10,000 files and the directory's own key)"
expect_eq "$(aws_v2 s3 ls --recursive s3://two/big/ | wc -l)" 0 "S3 keys left under big/"
expect_eq "$(aws_v2 s3 cp s3://two/moved/f09999 -)" "file 9999" "S3 GET of a renamed file"

mkv_umount "$M"
log "ok"
