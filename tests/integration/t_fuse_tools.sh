#!/bin/bash
# Real tools on a minikv mount, each compared with the same run on a local
# directory: cp -a of /usr/include and diff -r (modes, owners and times
# too); a tar round trip (times too) and rsync -a twice (the second copies
# nothing) of a fixed part of it (linux, asm-generic, the arch's directory
# and the top-level headers: ~1,500 files); git init/add/commit/log/status,
# a small C project built with make -j2, sqlite3 with 10,000 rows, python3
# writing and mmap-reading a file, an editor-style save by rename; and what the
# mount wrote is the same bytes (and MD5 ETags) through S3.
. "$top_srcdir/tests/integration/lib.sh"
fuse_usable || skip "needs root, /dev/fuse and fusermount3"
for tool in rsync git sqlite3 make gcc tar; do
    command -v "$tool" >/dev/null || skip "$tool missing (tools/install-deps)"
done
mkv_start_server
aws_v2 s3 mb s3://tools >/dev/null || fail "mb"
mkv_mount /tools "$T/mnt"
M=$T/mnt
L=$T/local
mkdir -p "$L"
# A fixed part of /usr/include for tar and rsync, so that their share of
# the run does not grow with what the machine happens to have installed.
S=$T/src
mkdir "$S"
cp -a /usr/include/linux /usr/include/asm-generic "/usr/include/$(gcc -dumpmachine)" /usr/include/*.h "$S/" ||
    fail "copying the header tree"

log "cp -a /usr/include"
cp -a /usr/include "$M/include" || fail "cp -a to the mount"
diff -r --no-dereference /usr/include "$M/include" >"$T/diff.log" 2>&1 || { head -20 "$T/diff.log"; fail "cp -a: trees differ"; }
# Owners, modes, times and symlinks survived (-a).
(cd /usr/include && find . -printf '%p %m %u %g %y %l %T@\n' | sort) >"$T/meta.src"
(cd "$M/include" && find . -printf '%p %m %u %g %y %l %T@\n' | sort) >"$T/meta.dst"
cmp "$T/meta.src" "$T/meta.dst" || { diff "$T/meta.src" "$T/meta.dst" | head; fail "cp -a: metadata differs"; }

log "tar round trip of $(find "$S" | wc -l) files"
tar -C "$S" -cf "$T/inc.tar" . || fail "tar c"
mkdir "$M/untar" "$L/untar"
tar -C "$M/untar" -xf "$T/inc.tar" || fail "tar x into the mount"
tar -C "$L/untar" -xf "$T/inc.tar" || fail "tar x locally"
diff -r --no-dereference "$L/untar" "$M/untar" >/dev/null || fail "tar x: trees differ"
(cd "$M/untar" && tar -cf - .) | tar -tvf - | awk '{print $1, $2, $6}' | sort >"$T/tar.m"
(cd "$L/untar" && tar -cf - .) | tar -tvf - | awk '{print $1, $2, $6}' | sort >"$T/tar.l"
cmp "$T/tar.m" "$T/tar.l" || fail "tar c of the mount differs from tar c of the local copy"
# The archive's times were set (futimens after the data: the write-back
# must not stamp its own).
(cd "$M/untar" && find . -printf '%p %m %T@\n' | sort) >"$T/times.m"
(cd "$L/untar" && find . -printf '%p %m %T@\n' | sort) >"$T/times.l"
cmp "$T/times.m" "$T/times.l" || { diff "$T/times.l" "$T/times.m" | head; fail "tar x: times differ"; }

log "rsync -a twice"
rsync -a "$S/" "$M/rs/" || fail "rsync 1"
out=$(rsync -a --itemize-changes "$S/" "$M/rs/") || fail "rsync 2"
[ -z "$out" ] || { echo "$out" | head; fail "the second rsync copied something"; }
diff -r --no-dereference "$S" "$M/rs" >/dev/null || fail "rsync: trees differ"

log "git"
gitrun() {
    (cd "$1" && git init -q repo && cd repo && git config user.email t@example.com &&
        git config user.name t && cp -a /usr/include/linux . && git add -A &&
        git commit -qm one && echo change >>linux/types.h && git commit -qam two &&
        git log --format=%s && git status --porcelain && git fsck --no-progress 2>&1 &&
        git ls-files | wc -l)
}
gitrun "$M" >"$T/git.m" 2>&1 || { cat "$T/git.m"; fail "git on the mount"; }
gitrun "$L" >"$T/git.l" 2>&1 || fail "git locally"
cmp "$T/git.m" "$T/git.l" || { diff "$T/git.m" "$T/git.l"; fail "git output differs"; }

log "make -j2 of a small C project"
mkproj() {
    unset MAKEFLAGS MFLAGS MAKELEVEL # a make of its own, not part of make check
    mkdir -p "$1/proj" && cd "$1/proj" || return 1
    for i in 1 2 3 4 5 6; do
        printf 'int f%d(int x) { return x * %d; }\n' "$i" "$i" >"f$i.c"
    done
    printf 'int f1(int);int f2(int);int f3(int);int f4(int);int f5(int);int f6(int);\n#include <stdio.h>\nint main(void){printf("%%d\\n", f1(1)+f2(2)+f3(3)+f4(4)+f5(5)+f6(6));return 0;}\n' >main.c
    printf 'OBJS=main.o f1.o f2.o f3.o f4.o f5.o f6.o\nprog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n%%.o: %%.c\n\t$(CC) -O2 -c $<\n' >Makefile
    make -s --no-print-directory -j2 && ./prog && touch f3.c && make --no-print-directory -j2 2>&1 | grep -c 'f3.c' && ./prog
}
(mkproj "$M") >"$T/make.m" 2>&1 || { cat "$T/make.m"; fail "make on the mount"; }
(mkproj "$L") >"$T/make.l" 2>&1 || fail "make locally"
cmp "$T/make.m" "$T/make.l" || { diff "$T/make.m" "$T/make.l"; fail "make output differs"; }

log "sqlite3, 10,000 rows"
sq() {
    sqlite3 "$1/db.sqlite" "create table t(k integer primary key, v text);" &&
        { echo "begin;"; for i in $(seq 1 10000); do echo "insert into t values($i, 'row $i');"; done; echo "commit;"; } |
        sqlite3 "$1/db.sqlite" &&
        sqlite3 "$1/db.sqlite" "select count(*), sum(k), max(v) from t; pragma integrity_check;"
}
sq "$M" >"$T/sq.m" 2>&1 || { cat "$T/sq.m"; fail "sqlite3 on the mount"; }
sq "$L" >"$T/sq.l" 2>&1 || fail "sqlite3 locally"
cmp "$T/sq.m" "$T/sq.l" || { diff "$T/sq.m" "$T/sq.l"; fail "sqlite3 output differs"; }

log "python3 write and mmap read"
py() {
    /usr/bin/python3 - "$1/py.bin" <<'PYEOF'
import mmap, os, sys, hashlib
p = sys.argv[1]
data = bytes((i * 7 + 3) % 251 for i in range(3 * 1024 * 1024 + 17))
with open(p, "wb") as f:
    f.write(data)
with open(p, "r+b") as f:
    m = mmap.mmap(f.fileno(), 0)
    assert m[:] == data
    m[100:105] = b"HELLO"
    m.flush()
    m.close()
with open(p, "rb") as f:
    back = f.read()
print(len(back), hashlib.sha256(back).hexdigest(), back[100:105])
PYEOF
}
py "$M" >"$T/py.m" 2>&1 || { cat "$T/py.m"; fail "python3 on the mount"; }
py "$L" >"$T/py.l" 2>&1 || fail "python3 locally"
cmp "$T/py.m" "$T/py.l" || { diff "$T/py.m" "$T/py.l"; fail "python3 output differs"; }

log "an editor's save: write a temporary file, fsync, rename over"
printf 'version 1\n' >"$M/doc.txt"
printf 'version 2\n' >"$M/.doc.txt.swp" && sync "$M/.doc.txt.swp" && mv "$M/.doc.txt.swp" "$M/doc.txt" ||
    fail "save by rename"
expect_eq "$(cat "$M/doc.txt")" "version 2" "content after the rename"

log "the same bytes through S3"
for f in include/stdio.h untar/linux/types.h doc.txt py.bin; do
    aws_v2 s3 cp "s3://tools/$f" "$T/s3.out" >/dev/null || fail "S3 GET $f"
    cmp "$T/s3.out" "$M/$f" || fail "$f differs through S3"
    etag=$(aws_v2 s3api head-object --bucket tools --key "$f" --query ETag --output text)
    expect_eq "$etag" "\"$(md5sum "$M/$f" | cut -d' ' -f1)\"" "ETag of $f (written through the mount)"
done
mkv_umount "$M"
log "ok"
