#!/bin/bash
# File-system benchmark (not a test): one fixed set of workloads, run on a
# directory, or on a local directory, a FUSE passthrough and the minikv
# mount in one run.
#
#   bench/fs.sh DIR [--label NAME] [--json] [--verify] [--runtime S]
#               [--random-buffered]
#   bench/fs.sh --compare [--minikv MOUNTPOINT] [--passthrough-opts OPTS]
#               [--build DIR] [--base DIR] [--runtime S] [--random-buffered]
#               [--keep-going]
#
# Workloads, in this order, in a fresh subdirectory of DIR removed at the
# end (and on failure or interrupt):
#   seq-write   fio, 1 GiB sequential write, bs=1M, buffered, end_fsync=1
#               (the final fsync is inside fio's runtime), MiB/s;
#   seq-read    the same file after dropping the page cache, bs=1M, MiB/s;
#   rand-read   fio, 4 KiB random reads of that file, O_DIRECT, libaio,
#               iodepth 16, one job, 15 s, IOPS (the request path, not the
#               page cache; --random-buffered: buffered psync, 4 jobs,
#               page cache dropped first);
#   rand-write  the same with random writes and a final fsync, IOPS
#               counted over the run including that fsync;
#   create, stat, rename, unlink of 10,000 4 KiB files in one directory
#               (python3, one phase per process, caches dropped before
#               stat), ops/s; ls -l of that directory between stat and
#               rename, caches dropped, seconds;
#   cp -r /usr/include, then tar x of a tarball of it made beforehand in
#               our temporary directory under /tmp, seconds (each followed
#               by an untimed sync).
# Dropping caches (sync; echo 3 > /proc/sys/vm/drop_caches) needs root; it
# drops the FUSE page cache, the backing file system's and the dentries.
# Note: on a FUSE passthrough, unlink returns before the backing blocks
# are freed (the daemon holds the inode until the kernel's forget), so
# unlink can look faster there than on the local file system.
# Prints one line per figure: name, value, unit (--label adds a first
# column; --json prints one JSON object). --verify also compares the cp -r
# copy with /usr/include (diff -r --no-dereference).
#
# --compare makes a temporary directory (default under /var/tmp) and runs
# the workloads on (a) a local directory there, (b) bench/passthrough
# mounting another local directory there with the minikv mount's cache
# options (default attr_timeout=1,entry_timeout=1), (c) the
# minikv mount given with --minikv, if any. It verifies the cp -r copy on
# each, unmounts what it mounted and prints a Markdown table; ratios are
# speed ratios (for seconds, the inverse of the time ratio): below 1 is
# slower. --keep-going goes on when a workload fails (the cell says so).
# shellcheck disable=SC2317 # steps and cleanups are called indirectly
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build"
base=/var/tmp
label=""
json=0
verify=0
compare=0
keep_going=0
runtime=15
random_buffered=0
rsuffix=direct
minikv=""
ptopts="attr_timeout=1,entry_timeout=1"
dir=""
nfiles=10000

die() { echo "fs.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --label) [ $# -ge 2 ] || die "--label needs a value"; label=$2; shift ;;
    --json) json=1 ;;
    --verify) verify=1 ;;
    --runtime) [ $# -ge 2 ] || die "--runtime needs a value"; runtime=$2; shift ;;
    --compare) compare=1 ;;
    --minikv) [ $# -ge 2 ] || die "--minikv needs a value"; minikv=$2; shift ;;
    --passthrough-opts) [ $# -ge 2 ] || die "--passthrough-opts needs a value"; ptopts=$2; shift ;;
    --build) [ $# -ge 2 ] || die "--build needs a value"; build=$(cd "$2" && pwd) || exit 2; shift ;;
    --base) [ $# -ge 2 ] || die "--base needs a value"; base=$2; shift ;;
    --keep-going) keep_going=1 ;;
    --random-buffered) random_buffered=1; rsuffix=buffered ;;
    -h|--help) sed -n '2,46p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) [ -z "$dir" ] || die "one directory only"; dir=$1 ;;
    esac
    shift
done
case "$runtime" in ''|*[!0-9]*) die "--runtime takes whole seconds" ;; esac
for tool in fio python3 tar cp ls diff timeout; do
    command -v "$tool" >/dev/null || die "$tool missing"
done
log() { echo "fs.sh: $*" >&2; }

# ---- one directory ---------------------------------------------------------

# Our own scratch (fio output, the tarball, the python helper) stays here.
T=""
W=""
child=""
# run CMD...: CMD in the background, waited for, so that a signal reaches
# our trap at once; the trap then stops it.
run() {
    "$@" &
    child=$!
    wait "$child"
    local rc=$?
    child=""
    return "$rc"
}
cleanup_dir() {
    if [ -n "$child" ]; then
        kill "$child" 2>/dev/null
        wait "$child" 2>/dev/null
        child=""
    fi
    [ -n "$W" ] && rm -rf "$W"
    [ -n "$T" ] && rm -rf "$T"
    W=""
    T=""
}

can_drop=1
[ -w /proc/sys/vm/drop_caches ] || can_drop=0
drop_caches() {
    sync
    [ "$can_drop" = 1 ] && echo 3 >/proc/sys/vm/drop_caches
    return 0
}

# elapsed START: seconds since $EPOCHREALTIME was START.
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

# figure NAME VALUE UNIT: one result line into $R.
figure() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$R"; }

# fio_get FILE EXPR: evaluate EXPR over the first job of a fio JSON report
# (j: the job, with group_reporting the group), print it with one decimal.
fio_get() {
    python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
print("%.1f" % eval(sys.argv[2]))' "$1" "$2"
}

# fio_run NAME TIMEOUT ARGS...: one fio job on $W/big, report in $T/NAME.json.
fio_run() {
    local name=$1 limit=$2
    shift 2
    run timeout --kill-after=10 "$limit" fio --name="$name" --filename="$W/big" --output-format=json \
        --output="$T/$name.json" "$@" >"$T/$name.log" 2>&1 || {
        log "$name failed:"; cat "$T/$name.log" >&2; return 1; }
}

write_meta_helper() {
    cat >"$T/meta.py" <<'EOF'
# meta.py PHASE DIR N: create/stat/rename/unlink N files in DIR, print ops/s.
import os, sys, time
phase, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = [os.path.join(d, "f%05d" % i) for i in range(n)]
moved = [os.path.join(d, "r%05d" % i) for i in range(n)]
data = b"x" * 4096
t = time.perf_counter()
if phase == "create":
    for p in names:
        fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.write(fd, data)
        os.close(fd)
elif phase == "stat":
    for p in names:
        if os.stat(p).st_size != len(data):
            sys.exit("stat: wrong size for " + p)
elif phase == "rename":
    for a, b in zip(names, moved):
        os.rename(a, b)
elif phase == "unlink":
    for p in moved:
        os.unlink(p)
else:
    sys.exit("unknown phase " + phase)
print("%.1f" % (n / (time.perf_counter() - t)))
EOF
}

# meta PHASE: one metadata phase as a figure.
meta() {
    run timeout --kill-after=10 300 python3 "$T/meta.py" "$1" "$W/meta" "$nfiles" >"$T/meta.out" || {
        log "$1 failed"; return 1; }
    figure "$1-10k" "$(cat "$T/meta.out")" ops/s
}

# timed NAME CMD...: wall seconds of CMD as a figure.
timed() {
    local name=$1 t0
    shift
    t0=$EPOCHREALTIME
    run timeout --kill-after=10 600 "$@" || { log "$name failed"; return 1; }
    figure "$name" "$(elapsed "$t0")" s
}

# workloads DIR RESULTS: run everything in a fresh subdirectory of DIR,
# append "name<TAB>value<TAB>unit" lines to RESULTS. Returns 1 at the first
# failure (or goes on with --keep-going).
workloads() {
    local d=$1 rc=0 step
    R=$2
    T=$(mktemp -d /tmp/fsbench.XXXXXX) || return 1
    W=$(mktemp -d "$d/fsbench.XXXXXX") || { cleanup_dir; return 1; }
    [ "$can_drop" = 1 ] || log "not root: page caches are not dropped, reads may be warm"
    write_meta_helper
    for step in seq_write seq_read rand_read rand_write metadata copies; do
        log "${label:-$d}: $step"
        if ! "step_$step"; then
            rc=1
            figure "$step" failed -
            [ "$keep_going" = 1 ] || break
        fi
    done
    cleanup_dir
    return "$rc"
}

step_seq_write() {
    fio_run seq-write 600 --rw=write --bs=1M --size=1G --direct=0 --ioengine=psync \
        --end_fsync=1 || return 1
    # bw is KiB/s over the job's runtime, which includes the final fsync.
    figure seq-write-1GiB-fsync "$(fio_get "$T/seq-write.json" 'j["write"]["bw"] / 1024')" MiB/s
}

step_seq_read() {
    drop_caches
    fio_run seq-read 600 --rw=read --bs=1M --size=1G --direct=0 --ioengine=psync || return 1
    figure seq-read-1GiB "$(fio_get "$T/seq-read.json" 'j["read"]["bw"] / 1024')" MiB/s
}

rand_args() {
    if [ "$random_buffered" = 1 ]; then
        echo --direct=0 --ioengine=psync --iodepth=1 --numjobs=4
    else
        echo --direct=1 --ioengine=libaio --iodepth=16 --numjobs=1
    fi
    echo --bs=4k --size=1G --group_reporting --time_based --runtime="$runtime" --randrepeat=0
}

step_rand_read() {
    [ "$random_buffered" = 1 ] && drop_caches
    # shellcheck disable=SC2046
    fio_run rand-read $((runtime + 120)) --rw=randread $(rand_args) || return 1
    figure "rand-read-4KiB-$rsuffix" "$(fio_get "$T/rand-read.json" 'j["read"]["iops"]')" IOPS
}

step_rand_write() {
    # shellcheck disable=SC2046
    fio_run rand-write $((runtime + 300)) --rw=randwrite $(rand_args) --end_fsync=1 || return 1
    # Writes done over the whole job runtime, the final fsync included.
    figure "rand-write-4KiB-$rsuffix-fsync" \
        "$(fio_get "$T/rand-write.json" 'j["write"]["total_ios"] * 1000.0 / j["write"]["runtime"]')" IOPS
}

step_metadata() {
    mkdir "$W/meta" || return 1
    meta create || return 1
    drop_caches
    meta stat || return 1
    drop_caches
    timed ls-l-10k ls -l "$W/meta" >/dev/null || return 1
    meta rename || return 1
    meta unlink || return 1
    rmdir "$W/meta"
}

step_copies() {
    rm -f "$W/big"
    # The tarball is made first: /usr/include is then in the page cache
    # for both copies.
    run tar cf "$T/include.tar" -C /usr include || return 1
    sync
    timed cp-r-usr-include cp -r /usr/include "$W/cp" || return 1
    sync
    if [ "$verify" = 1 ]; then
        if run diff -r --no-dereference /usr/include "$W/cp" >"$T/diff.log" 2>&1; then
            figure cp-r-identical yes -
        else
            figure cp-r-identical NO -
            log "cp -r copy differs from /usr/include:"
            head -n 20 "$T/diff.log" >&2
            return 1
        fi
    fi
    mkdir "$W/tar" || return 1
    timed tar-x-usr-include tar xf "$T/include.tar" -C "$W/tar" || return 1
    sync
}

# print RESULTS: lines, or one JSON object.
print_results() {
    if [ "$json" = 1 ]; then
        python3 -c 'import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
def val(v):
    try:
        return float(v)
    except ValueError:
        return v
print(json.dumps({"label": sys.argv[2], "dir": sys.argv[3],
                  "figures": [{"name": n, "value": val(v), "unit": u} for n, v, u in rows]}))' \
            "$1" "$label" "$dir"
    else
        awk -F'\t' -v l="$label" '{ if (l != "") printf "%-12s ", l; printf "%-30s %12s %s\n", $1, $2, $3 }' "$1"
    fi
}

if [ "$compare" = 0 ]; then
    [ -n "$dir" ] || die "usage: fs.sh DIR [--label NAME] [--json] | fs.sh --compare (see --help)"
    [ -d "$dir" ] || die "$dir is not a directory"
    dir=$(cd "$dir" && pwd)
    RES=$(mktemp /tmp/fsbench-res.XXXXXX) || exit 1
    trap 'cleanup_dir; rm -f "$RES"' EXIT
    trap 'exit 130' INT TERM
    workloads "$dir" "$RES"
    rc=$?
    print_results "$RES"
    exit $rc
fi

# ---- --compare -------------------------------------------------------------

[ -z "$dir" ] || die "--compare takes no DIR (use --base)"
PT="$build/bench/passthrough"
[ -x "$PT" ] || die "build first ($PT missing: make bench/passthrough)"
command -v fusermount3 >/dev/null || die "fusermount3 missing (Debian package fuse3)"
[ -z "$minikv" ] || [ -d "$minikv" ] || die "$minikv is not a directory"
[ -z "$minikv" ] || minikv=$(cd "$minikv" && pwd)

C=$(mktemp -d "$base/fsbench-compare.XXXXXX") || exit 1
ptpid=""
cleanup_compare() {
    cleanup_dir
    if [ -n "$ptpid" ]; then
        if mountpoint -q "$C/ptmnt"; then
            fusermount3 -u "$C/ptmnt" 2>/dev/null || fusermount3 -uz "$C/ptmnt"
        fi
        for _ in $(seq 50); do kill -0 "$ptpid" 2>/dev/null || break; sleep 0.1; done
        kill "$ptpid" 2>/dev/null && wait "$ptpid" 2>/dev/null
        ptpid=""
    fi
    rm -rf "$C"
}
trap cleanup_compare EXIT
trap 'exit 130' INT TERM

mkdir "$C/local" "$C/ptsrc" "$C/ptmnt"
"$PT" "$C/ptsrc" "$C/ptmnt" -f -o "$ptopts" 2>"$C/passthrough.log" &
ptpid=$!
for _ in $(seq 100); do mountpoint -q "$C/ptmnt" && break; sleep 0.1; done
mountpoint -q "$C/ptmnt" || { cat "$C/passthrough.log" >&2; die "passthrough did not mount"; }

verify=1
load0=$(cut -d' ' -f1-3 /proc/loadavg)
targets="local passthrough"
[ -n "$minikv" ] && targets="$targets minikv"
rc=0
for t in $targets; do
    case $t in
    local) d="$C/local" ;;
    passthrough) d="$C/ptmnt" ;;
    minikv) d="$minikv" ;;
    esac
    label=$t
    workloads "$d" "$C/res-$t" || rc=1
    if [ "$t" = passthrough ] && ! kill -0 "$ptpid" 2>/dev/null; then
        log "passthrough died:"; cat "$C/passthrough.log" >&2; ptpid=""; rc=1
    fi
    [ "$rc" = 0 ] || [ "$keep_going" = 1 ] || break
done

rmode="O_DIRECT libaio iodepth 16"
[ "$random_buffered" = 1 ] && rmode="buffered psync 4 jobs"
load1=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$C" "$targets" "$ptopts" "$runtime" "$(nproc)" "$base" "${minikv:-}" "$rmode" \
    "$load0" "$load1" <<'EOF'
import os, sys
c, targets, ptopts, runtime, ncpu, base, minikv, rmode, load0, load1 = sys.argv[1:11]
targets = targets.split()
res, order, units = {}, [], {}
for t in targets:
    res[t] = {}
    p = os.path.join(c, "res-" + t)
    if not os.path.exists(p):
        continue
    for line in open(p):
        n, v, u = line.rstrip("\n").split("\t")
        res[t][n] = v
        if n not in units:
            order.append(n)
            units[n] = u

def cell(t, n):
    v = res.get(t, {}).get(n)
    if v is None:
        return ""
    try:
        f = float(v)
    except ValueError:
        return v
    u = units[n]
    return ("%.2f %s" % (f, u)) if u == "s" else ("{:,.1f} {}".format(f, u))

def speed(a, b, n):
    # speed of a relative to b: rates a/b, times b/a
    try:
        x, y = float(res[a][n]), float(res[b][n])
    except (KeyError, ValueError):
        return ""
    if x == 0 or y == 0:
        return ""
    return "%.2f" % ((y / x) if units[n] == "s" else (x / y))

cols = ["workload"] + targets + ["passthrough / local"]
if "minikv" in targets:
    cols.append("minikv / passthrough")
print("| " + " | ".join(cols) + " |")
print("|" + "---|" * len(cols))
for n in order:
    row = [n] + [cell(t, n) for t in targets] + [speed("passthrough", "local", n)]
    if "minikv" in targets:
        row.append(speed("minikv", "passthrough", n))
    print("| " + " | ".join(row) + " |")
print()
print("(passthrough -o %s; random I/O %s, %s s; %s cores; local dirs under %s%s;"
      " load average %s at start, %s at end)"
      % (ptopts, rmode, runtime, ncpu, base, "; minikv at " + minikv if minikv else "",
         load0, load1))
EOF
exit $rc
