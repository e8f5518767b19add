# minikv integration tests: shared harness (sourced by every t_*.sh).
#
# Each test runs real processes on 127.0.0.1, on ports it picks, in its own
# temporary directory, and removes its processes, mounts and files on exit
# even when it fails (the directory is kept and its logs printed when a
# test fails). A watchdog ends a test that runs past MKV_TEST_TIMEOUT.
#
# Provides: mkv_start_server [extra server args], mkv_stop_server,
# mkv_kill_server, mkv_start_cluster (3 metadata members, a chunk server, a
# gateway) with mkv_meta_start/mkv_meta_leader/mkv_daemon_*, aws_v2/aws_new (the two AWS CLIs), s3req (python
# signed raw requests), expect_eq/expect_contains/fail, rand_file.

set -u
set -o pipefail

: "${top_builddir:?top_builddir must be set (run through make check)}"
: "${top_srcdir:?top_srcdir must be set}"
MKV_TEST_TIMEOUT=${MKV_TEST_TIMEOUT:-600}
TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "/tmp/minikv-${TEST_NAME}.XXXXXX")
SERVER_PID=""
MOUNTS=""
PY=/usr/bin/python3
MINIKV="$top_builddir/tools/minikv"
MINIKVCTL="$top_builddir/tools/minikvctl"
export PYTHONDONTWRITEBYTECODE=1

CLEANUP_HOOKS=()
# mkv_on_cleanup COMMAND: run at exit, after the daemons have stopped.
mkv_on_cleanup() { CLEANUP_HOOKS+=("$1"); }

log() { printf '[%s %s] %s\n' "$TEST_NAME" "$(date +%H:%M:%S)" "$*"; }

fail() {
    log "FAIL: $*"
    exit 1
}

mkv_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "${WATCHDOG_PID:-}" ] && kill "$WATCHDOG_PID" 2>/dev/null
    for m in $MOUNTS; do
        fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    # The FUSE daemons end with their mounts (and write any sanitizer report
    # to their log); one that does not within 3 s is killed.
    for m in $MOUNTS; do
        for _ in $(seq 30); do
            pgrep -f "(minikv-fuse|mount\.minikv) .* $m( |\$)" >/dev/null || break
            sleep 0.1
        done
        pkill -KILL -f "minikv-fuse .* $m( |\$)" 2>/dev/null
        pkill -KILL -f "mount.minikv .* $m( |\$)" 2>/dev/null
    done
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        local st=0
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null || st=$?
        if [ "$st" -ne 0 ] && [ "$rc" -eq 0 ]; then
            log "FAIL: the server exited with status $st on SIGTERM"
            rc=1
        fi
    fi
    # Cluster daemons (mkv_daemon_start): stopped like the server.
    local name pid st
    for name in "${!DAEMONS[@]}"; do
        pid=${DAEMONS[$name]}
        kill -CONT "$pid" 2>/dev/null
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        st=0
        wait "$pid" 2>/dev/null || st=$?
        if [ "$st" -ne 0 ] && [ "$rc" -eq 0 ]; then
            log "FAIL: $name exited with status $st on SIGTERM"
            rc=1
        fi
    done
    # What a test set up outside $T (network namespaces): mkv_on_cleanup.
    for h in "${CLEANUP_HOOKS[@]}"; do eval "$h" >/dev/null 2>&1 || true; done
    # A sanitizer report anywhere in the life of the server or of a FUSE
    # daemon (their logs are $T/*.log) fails the test.
    if [ "$rc" -eq 0 ]; then
        for f in "$T"/*.log; do
            [ -f "$f" ] && grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$f" || continue
            log "FAIL: sanitizer report in $(basename "$f")"
            grep -E -A20 "ERROR: (Address|Leak)Sanitizer|runtime error:" "$f" | head -n 60
            rc=1
        done
    fi
    # Anything else this test started (clients in the background).
    pkill -KILL -P $$ 2>/dev/null
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
        log "exit status $rc; logs in $T"
        for f in "$T"/*.log; do
            [ -f "$f" ] || continue
            echo "---- $f (last 60 lines)"
            tail -n 60 "$f"
        done
        if [ "${MKV_KEEP_FAILED:-0}" = 1 ]; then
            log "kept $T"
            exit "$rc"
        fi
    fi
    for m in $MOUNTS; do umount -l "$m" 2>/dev/null; done
    rm -rf "$T"
    exit "$rc"
}
trap mkv_cleanup EXIT
trap 'exit 130' INT TERM

# The watchdog: a test that hangs is a failure, not a stuck CI.
# (Tests wait for their own background clients by PID: a plain `wait` would
# also wait for the server.)
# Its sleep does not hold the test's output open, and the cleanup stops both.
(
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    sleep "$MKV_TEST_TIMEOUT" </dev/null >/dev/null 2>&1 &
    sp=$!
    wait "$sp" || exit 0
    echo "[$TEST_NAME] watchdog: over ${MKV_TEST_TIMEOUT}s, stopping" >&2
    kill -TERM $$
    # The shell runs its trap (the cleanup) only once the command it waits
    # for ends: a client stuck on a hung mount is killed so that it does.
    sleep 3
    for p in $(pgrep -P $$); do
        [ "$p" = "$BASHPID" ] || kill -KILL "$p" 2>/dev/null
    done
) &
WATCHDOG_PID=$!
disown "$WATCHDOG_PID" # a test's plain `wait` must not wait for the watchdog

skip() {
    log "SKIP: $*"
    exit 77
}

# Free TCP ports on 127.0.0.1, taken below the kernel's ephemeral range:
# a client that keeps reconnecting to a port nobody listens on (a server
# the test killed) can otherwise be given that very port as its own
# source port and connect to itself, and the restarted server then finds
# its port taken. Each port is bound and released, so another process
# could take one in between; the server then fails to start and the test
# fails loudly rather than talking to something else.
# port_runs N WIDTH: N ports P with P..P+WIDTH-1 all free.
port_runs() {
    "$PY" - "$1" "$2" <<'EOF'
import random, socket, sys
want, width = int(sys.argv[1]), int(sys.argv[2])
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
socks, got = [], []
rng = random.SystemRandom()
while len(got) < want:
    p = rng.randrange(10000, max(lo, 10000 + width + 1) - width)
    if any(abs(p - q) < width for q in got):
        continue
    held = []
    try:
        for i in range(width):
            s = socket.socket(); held.append(s); s.bind(("127.0.0.1", p + i))
    except OSError:
        for s in held: s.close()
        continue
    socks += held; got.append(p)
print(" ".join(map(str, got)))
EOF
}
free_ports() { port_runs "$1" 1; }

# Starts `minikv server` on fresh ports with its data in $DATA (default
# $T/data) and waits until /health/ready answers 200. Sets S3_PORT,
# META_PORT, CHUNK_PORT, ENDPOINT and the AWS_* variables.
mkv_start_server() {
    DATA=${DATA:-$T/data}
    if [ -z "${S3_PORT:-}" ]; then
        # META_PORT+1 is Raft's: ask for three runs of two free ports, so
        # that no port picked is another one's +1, and use the first of each.
        local ports
        ports=$(port_runs 3 2)
        S3_PORT=$(echo "$ports" | cut -d' ' -f1)
        CHUNK_PORT=$(echo "$ports" | cut -d' ' -f2)
        META_PORT=$(echo "$ports" | cut -d' ' -f3)
    fi
    ENDPOINT="${MKV_SCHEME:-http}://127.0.0.1:$S3_PORT"
    "$MINIKV" server --data "$DATA" --listen "127.0.0.1:$S3_PORT" --meta-listen "127.0.0.1:$META_PORT" \
        --chunk-listen "127.0.0.1:$CHUNK_PORT" "$@" >>"$T/server.log" 2>&1 &
    SERVER_PID=$!
    mkv_wait_ready 30 || fail "server did not become ready"
    if [ -z "${MINIKV_ACCESS_KEY:-}" ]; then
        AWS_ACCESS_KEY_ID=$(sed -n 's/^aws_access_key_id = //p' "$DATA/credentials")
        AWS_SECRET_ACCESS_KEY=$(sed -n 's/^aws_secret_access_key = //p' "$DATA/credentials")
    else
        AWS_ACCESS_KEY_ID=$MINIKV_ACCESS_KEY
        AWS_SECRET_ACCESS_KEY=$MINIKV_SECRET_KEY
    fi
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY ENDPOINT S3_PORT META_PORT CHUNK_PORT DATA
    # The same key for the cluster's own protocol (mount.minikv, minikvctl),
    # and for the server's next start (it is the key it already has).
    export MINIKV_ACCESS_KEY=$AWS_ACCESS_KEY_ID MINIKV_SECRET_KEY=$AWS_SECRET_ACCESS_KEY
    export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
    export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=""
    export MINIKV_META="127.0.0.1:$META_PORT" MINIKV_CHUNK="127.0.0.1:$CHUNK_PORT"
}

# free_port_pairs N: N ports P whose P+1 is free too (a metadata member's
# client port and its Raft port).
free_port_pairs() { port_runs "$1" 2; }

# Daemons besides the server (cluster members): mkv_daemon_start NAME
# CMD... runs CMD with its output in $T/NAME.log; mkv_daemon_stop NAME
# (SIGTERM, which it must survive with status 0), mkv_daemon_kill NAME
# (SIGKILL). The cleanup stops the rest like the server.
declare -A DAEMONS
mkv_daemon_start() {
    local name=$1
    shift
    "$@" >>"$T/$name.log" 2>&1 &
    DAEMONS[$name]=$!
}
mkv_daemon_stop() {
    local pid=${DAEMONS[$1]}
    kill -TERM "$pid"
    wait "$pid" || fail "$1 exited with status $? on SIGTERM"
    unset "DAEMONS[$1]"
}
mkv_daemon_kill() {
    local pid=${DAEMONS[$1]}
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    unset "DAEMONS[$1]"
}

# mkv_start_cluster: three minikv-meta members (one Raft group, bootstrapped
# from --peers), one minikv-chunk and one minikv-s3gw, on fresh ports with
# one cluster key ($KEY); waits until the gateway is ready. Sets what
# mkv_start_server sets (ENDPOINT, AWS_*, MINIKV_META naming all three
# members) plus META_PORTS, PEERS and MKV_MOUNT_SRC (for mkv_mount).
# mkv_meta_start ID [ARGS] (re)starts member ID, mkv_meta_wait ID waits
# until it answers; mkv_meta_leader prints
# the leader's id (0: none known). MKV_META_ARGS: more options for every
# member (word-split).
MKV_ELECTION=${MKV_ELECTION:-1s}
mkv_meta_start() {
    local id=$1 how=(--peers "$PEERS")
    shift
    [ "$id" -le 3 ] || how=(--join) # member 4: a spare port pair, added at run time
    mkv_daemon_start "meta-$id" "$top_builddir/meta/minikv-meta" --data "$T/meta-$id" \
        --listen "127.0.0.1:${META_PORTS[$((id - 1))]}" --id "$id" "${how[@]}" \
        --cluster-key "$KEY" --chunk-servers "127.0.0.1:$CHUNK_PORT" \
        --election-timeout "$MKV_ELECTION" ${MKV_META_ARGS:-} "$@"
}
mkv_meta_leader() {
    # (status exits 1 when the member it asked is not the ready leader)
    { timeout 5 "$MINIKVCTL" --cluster-key "$KEY" --json status 2>/dev/null || true; } |
        "$PY" -c 'import json,sys
try: print(json.load(sys.stdin)["meta"]["leader_id"])
except Exception: print(0)'
}
# mkv_meta_wait ID: until member ID answers as a follower or the leader.
mkv_meta_wait() {
    local r end=$((SECONDS + 20))
    while [ "$SECONDS" -lt "$end" ]; do
        kill -0 "${DAEMONS[meta-$1]}" 2>/dev/null || fail "member $1 exited"
        r=$({ timeout 5 "$MINIKVCTL" --cluster-key "$KEY" --meta "127.0.0.1:${META_PORTS[$(($1 - 1))]}" \
            --json status 2>/dev/null || true; } | "$PY" -c 'import json,sys
try: print(json.load(sys.stdin)["meta"]["role"])
except Exception: print("")')
        case "$r" in follower | leader) return 0 ;; esac
        sleep 0.1
    done
    fail "member $1 did not come up"
}
# mkv_cluster_fronts: (re)starts the cluster's chunk server and gateway,
# and waits until the gateway is ready.
mkv_cluster_fronts() {
    local i
    mkv_first_chunk_start
    # MKV_EXTRA_CHUNKS=N: N more chunk servers (chunk0.., zones z0..) on
    # the ports CHUNK_PORTS, in the first vshard map with the first.
    if [ -z "${CHUNK_PORTS+x}" ] && [ "${MKV_EXTRA_CHUNKS:-0}" -gt 0 ]; then
        read -r -a CHUNK_PORTS <<<"$(free_ports "$MKV_EXTRA_CHUNKS")"
    fi
    for ((i = 0; i < ${MKV_EXTRA_CHUNKS:-0}; i++)); do mkv_chunk_start "$i"; done
    mkv_daemon_start s3gw "$top_builddir/s3gw/minikv-s3gw" --listen "127.0.0.1:$S3_PORT" \
        --meta "$MINIKV_META" --chunk "127.0.0.1:$CHUNK_PORT" --cluster-key-file "$KEY" \
        --credentials-file "$T/credentials"
    mkv_wait_ready 30 || fail "the cluster's gateway did not become ready"
    mkv_wait_map 30
}

# mkv_first_chunk_start: (re)starts the cluster's first chunk server ("chunk").
mkv_first_chunk_start() {
    mkv_daemon_start chunk "$top_builddir/chunk/minikv-chunk" --data "$T/chunk" \
        --listen "127.0.0.1:$CHUNK_PORT" --meta "$MINIKV_META" --cluster-key "$KEY" \
        ${MKV_CHUNK_ARGS:-}
}
# mkv_chunk_start N: (re)starts the extra chunk server N (MKV_EXTRA_CHUNKS).
# MKV_CHUNK_ARGS: more options for every chunk server (word-split).
mkv_chunk_start() {
    mkv_daemon_start "chunk$1" "$top_builddir/chunk/minikv-chunk" --data "$T/chunk$1" \
        --listen "127.0.0.1:${CHUNK_PORTS[$1]}" --meta "$MINIKV_META" --cluster-key "$KEY" \
        --zone "z$1" ${MKV_CHUNK_ARGS:-}
}

# mkv_ctl_eval LISTING EXPR: EXPR (Python) over minikvctl --json LISTING
# (vshards, nodes, status), the parsed JSON as m (and n); "" when it cannot
# be had. mkv_ctl_wait LISTING EXPR SECONDS WHAT: until EXPR is true.
mkv_ctl_eval() {
    { timeout 5 "$MINIKVCTL" --cluster-key "$KEY" --json $1 2>/dev/null || true; } | "$PY" -c 'import json,sys
try: m=n=json.load(sys.stdin)
except Exception: print(""); sys.exit(0)
print(eval(sys.argv[1]))' "$2"
}
# mkv_chunk_stat ADDRESS FIELD: FIELD of the chunk server at ADDRESS
# (minikvctl --chunk ADDRESS --json status), -1 when it cannot be had.
mkv_chunk_stat() {
    { timeout 5 "$MINIKVCTL" --cluster-key "$KEY" --chunk "$1" --json status 2>/dev/null || true; } |
        "$PY" -c 'import json,sys
try: print(json.load(sys.stdin)["chunk"][sys.argv[1]])
except Exception: print(-1)' "$2"
}
mkv_ctl_wait() {
    for _ in $(seq $(($3 * 10))); do
        [ "$(mkv_ctl_eval "$1" "$2")" = True ] && return 0
        sleep 0.1
    done
    "$MINIKVCTL" --cluster-key "$KEY" $1 2>&1 | tail -5 >&2
    fail "not $4 within $3 s"
}

# mkv_wait_map SECONDS: waits until the leader has placed the vshards (a
# new cluster's chunk servers take no data before: writes would wait).
mkv_wait_map() { mkv_ctl_wait vshards 'm["epoch"] > 0' "$1" "a vshard map"; }

# mkv_writers SECONDS TAG BUCKET MOUNTDIR: two S3 writers and one writer in
# MOUNTDIR (create, write, fsync) in the background (failload.py), for
# SECONDS; attempts and acknowledgements go to $T/s3.* and $T/fs.*.
# mkv_check_writers TAG MAX_GAP waits for them: each got writes through
# and none waited longer than MAX_GAP seconds between two.
mkv_writers() {
    local w load="$top_srcdir/tests/integration/failload.py"
    WPIDS=""
    for w in 1 2; do
        "$PY" "$load" s3 "$3" "$2-s3w$w" "$1" "$T/s3.attempts" "$T/s3.acks" >"$T/$2-s3w$w.out" &
        WPIDS="$WPIDS $!"
    done
    "$PY" "$load" fs "$4" "$2-fs" "$1" "$T/fs.attempts" "$T/fs.acks" >"$T/$2-fs.out" &
    WPIDS="$WPIDS $!"
}
mkv_check_writers() {
    local f gap p
    for p in $WPIDS; do wait "$p" || fail "a writer failed"; done
    for f in "$T/$1"-*.out; do
        log "$(basename "$f" .out): $(cat "$f")"
        gap=$(sed -n 's/.*longest_gap=\([0-9.]*\).*/\1/p' "$f")
        awk -v g="$gap" -v m="$2" 'BEGIN { exit !(g <= m) }' ||
            fail "$(basename "$f" .out): no write went through for ${gap}s (more than $2 s)"
    done
}

# mkv_verify_writes BUCKET MOUNTDIR: every acknowledged upload reads back
# identical through S3 (an unacknowledged one is absent or whole), every
# fsynced file through MOUNTDIR, and S3 lists them all.
mkv_verify_writes() {
    local bad=0 key digest got n s3n
    "$PY" "$top_srcdir/tests/integration/crashverify.py" "$1" "$T/s3.attempts" "$T/s3.acks" ||
        fail "S3 writes lost or changed"
    while read -r key digest _; do
        got=$(sha256sum "$2/$key" 2>/dev/null | cut -d' ' -f1)
        [ "$got" = "$digest" ] || { log "fsynced $key: ${got:-missing}"; bad=1; }
    done <"$T/fs.acks"
    [ "$bad" = 0 ] || fail "fsynced files lost or changed"
    n=$(wc -l <"$T/fs.acks")
    s3n=$(aws_v2 s3 ls "s3://$1/${2##*/}/" | wc -l)
    [ "$s3n" -ge "$n" ] || fail "S3 lists $s3n files under ${2##*/}/, the mount acknowledged $n"
    log "$n fsynced files and $(wc -l <"$T/s3.acks") S3 uploads intact"
}

mkv_start_cluster() {
    local ports i
    KEY=$T/cluster.key
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$KEY"
    echo >>"$KEY"
    chmod 600 "$KEY"
    # All in one call, so that none is another's Raft port.
    read -r -a ports <<<"$(free_port_pairs 6)"
    [ "${#ports[@]}" -eq 6 ] || fail "no free ports for the cluster"
    META_PORTS=("${ports[@]:0:4}") # the fourth for a member a test adds
    S3_PORT=${ports[4]}
    CHUNK_PORT=${ports[5]}
    PEERS="1=127.0.0.1:${META_PORTS[0]},2=127.0.0.1:${META_PORTS[1]},3=127.0.0.1:${META_PORTS[2]}"
    MINIKV_META="127.0.0.1:${META_PORTS[0]},127.0.0.1:${META_PORTS[1]},127.0.0.1:${META_PORTS[2]}"
    export MINIKV_META MINIKV_CHUNK="127.0.0.1:$CHUNK_PORT" KEY
    for i in 1 2 3; do mkv_meta_start "$i"; done
    mkv_cluster_fronts
    ENDPOINT="http://127.0.0.1:$S3_PORT"
    AWS_ACCESS_KEY_ID=$(sed -n 's/^aws_access_key_id = //p' "$T/credentials")
    AWS_SECRET_ACCESS_KEY=$(sed -n 's/^aws_secret_access_key = //p' "$T/credentials")
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY ENDPOINT S3_PORT CHUNK_PORT
    export MINIKV_ACCESS_KEY=$AWS_ACCESS_KEY_ID MINIKV_SECRET_KEY=$AWS_SECRET_ACCESS_KEY
    export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
    export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=""
    MKV_MOUNT_SRC=$MINIKV_META
}

mkv_wait_ready() {
    local limit=$(( $1 * 10 )) i
    for i in $(seq "$limit"); do
        if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "server exited during start-up"
            return 1
        fi
        if curl -kfs "${MKV_SCHEME:-http}://127.0.0.1:$S3_PORT/health/ready" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    return 1
}

mkv_stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || fail "server exited with status $? on SIGTERM"
    SERVER_PID=""
}

mkv_kill_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -KILL "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
}

# mkv_bucket_mount BUCKET: starts the server, makes BUCKET through S3 and
# mounts it at M=$T/mnt.
mkv_bucket_mount() {
    mkv_start_server
    aws_v2 s3 mb "s3://$1" >/dev/null || fail "mb"
    M=$T/mnt
    mkv_mount "/$1" "$M"
}

# mkv_tmpfs_data SIZE: DATA=$T/data on a tmpfs of SIZE (skips where tmpfs
# cannot be mounted), holding a 40 MiB filler the operator can delete to
# free space.
mkv_tmpfs_data() {
    DATA=$T/data
    mkdir -p "$DATA"
    mount -t tmpfs -o "size=$1" tmpfs "$DATA" || skip "cannot mount tmpfs here"
    MOUNTS="$DATA"
    head -c $((40 * 1024 * 1024)) /dev/zero >"$DATA/filler"
}

# mkv_mount SRC_SUFFIX MOUNTPOINT [mount options]: mounts /BUCKET (or "")
# of the running server with mount.minikv, registers it for cleanup, and
# waits until it answers. FUSE tests skip where /dev/fuse is unusable.
MOUNT_MINIKV="$top_builddir/fs/mount.minikv"
fuse_usable() {
    [ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && command -v fusermount3 >/dev/null
}
mkv_mount() {
    local src="${MKV_MOUNT_SRC:-127.0.0.1:$META_PORT}$1" mnt=$2
    shift 2
    mkdir -p "$mnt"
    MOUNTS="$MOUNTS $mnt"
    "$MOUNT_MINIKV" "$src" "$mnt" -o "log=$T/fuse.log" "$@" >>"$T/fuse.log" 2>&1 ||
        fail "mount.minikv $src $mnt failed"
    for _ in $(seq 50); do
        mountpoint -q "$mnt" && stat "$mnt" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "mount of $src on $mnt did not become ready"
}
mkv_umount() {
    # EBUSY can outlive a process that just ended by a moment (its last
    # file references go after it is reaped): a few tries, then who holds it.
    local i
    for i in $(seq 20); do
        fusermount3 -u "$1" 2>"$T/umount.err" && break
        grep -q "busy" "$T/umount.err" || { cat "$T/umount.err"; fail "fusermount3 -u $1"; }
        [ "$i" = 20 ] && { cat "$T/umount.err"; fuser -vm "$1" 2>&1 | head; fail "fusermount3 -u $1: busy for 5 s"; }
        sleep 0.25
    done
    for _ in $(seq 100); do
        pgrep -f "minikv-fuse .* $1( |\$)" >/dev/null || pgrep -f "mount.minikv .* $1( |\$)" >/dev/null || return 0
        sleep 0.1
    done
    fail "the FUSE daemon of $1 did not exit after the unmount"
}

# The two AWS CLIs: Debian's awscli 2.x, and a newer botocore-based aws
# found on PATH (it sends CRC32 checksums and aws-chunked bodies).
aws_v2() { /usr/bin/aws --endpoint-url "$ENDPOINT" --cli-read-timeout 60 "$@"; }
AWS_NEW=""
for a in $(type -ap aws); do
    [ "$a" = /usr/bin/aws ] && continue
    AWS_NEW=$a
    break
done
aws_new() { "$AWS_NEW" --endpoint-url "$ENDPOINT" "$@"; }

# Signed raw requests from the test suite's own SigV4 client.
s3req() { "$PY" "$top_srcdir/tests/integration/s3req.py" "$@"; }

expect_eq() {
    [ "$1" = "$2" ] || fail "${3:-values differ}: expected '$2', got '$1'"
}

expect_contains() {
    case "$1" in *"$2"*) ;; *) fail "${3:-missing text}: '$2' not in: $(printf '%s' "$1" | head -c 600)" ;; esac
}

# mkv_flip_bit DIR FILE: flips one bit in the middle of FILE's second
# 64 KiB block where a chunk store under DIR keeps it (a segment file), on
# disk; fails when those bytes are in no segment.
mkv_flip_bit() {
    "$PY" - "$1" "$2" <<'PY'
import glob, os, sys
marker = open(sys.argv[2], "rb").read()[65536 + 30000:65536 + 30064]
for seg in glob.glob(os.path.join(sys.argv[1], "**", "*.seg"), recursive=True):
    data = open(seg, "rb").read()
    at = data.find(marker)
    if at >= 0:
        with open(seg, "r+b") as f:
            f.seek(at + 17)
            b = f.read(1)
            f.seek(at + 17)
            f.write(bytes([b[0] ^ 0x08]))
            f.flush()
            os.fsync(f.fileno())
        print(f"flipped a bit in {seg} at {at + 17}")
        sys.exit(0)
sys.exit(1)
PY
}

# rand_file PATH SIZE_BYTES
rand_file() {
    head -c "$2" /dev/urandom >"$1"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# ---- helpers for the FUSE mount and fault tests ----

# mkv_on_exit 'COMMANDS': extra cleanup, run (eval) at exit before
# mkv_cleanup, also when the test fails or is stopped by the watchdog; the
# test's exit status is kept. For what mkv_cleanup does not know about,
# e.g. a file installed outside $T.
MKV_EXTRA_CLEANUP=""
mkv_on_exit() { MKV_EXTRA_CLEANUP="$MKV_EXTRA_CLEANUP$1"$'\n'; }
mkv_exit_hooks() {
    local rc=$?
    eval "$MKV_EXTRA_CLEANUP"
    (exit "$rc")
    mkv_cleanup
}
trap mkv_exit_hooks EXIT

# mkv_fuse_pid MOUNTPOINT: the PID(s) of the FUSE daemon serving it.
mkv_fuse_pid() {
    pgrep -f "(minikv-fuse|mount\.minikv) .* $1( |\$)"
}

# mkv_try OP PATH: one operation on PATH in a fresh process, bounded by
# MKV_TRY_LIMIT seconds (default 60, then SIGKILL). Prints the result and
# the seconds it took: "OK 0.01", "EIO 3.02" (the errno's name), or
# "HUNG 60" when it had to be killed. OP: stat; read (open and read to the
# end); create (O_CREAT|O_EXCL, write one byte, close); write (O_TRUNC an
# existing file, write one byte, close); mkdir; list; unlink.
mkv_try() {
    local out limit=${MKV_TRY_LIMIT:-60}
    out=$(timeout -s KILL "$limit" "$PY" - "$1" "$2" <<'PYEOF'
import errno, os, sys, time
op, p = sys.argv[1], sys.argv[2]
t = time.monotonic()
res = "OK"
try:
    if op == "stat":
        os.stat(p)
    elif op == "read":
        with open(p, "rb") as f:
            f.read()
    elif op in ("create", "write"):
        flags = os.O_WRONLY | (os.O_CREAT | os.O_EXCL if op == "create" else os.O_TRUNC)
        fd = os.open(p, flags, 0o644)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
    elif op == "mkdir":
        os.mkdir(p)
    elif op == "list":
        os.listdir(p)
    elif op == "unlink":
        os.unlink(p)
    else:
        res = "BADOP"
except OSError as e:
    res = errno.errorcode.get(e.errno, str(e.errno))
print("%s %.2f" % (res, time.monotonic() - t))
PYEOF
    ) || [ -n "$out" ] || out="HUNG $limit"
    echo "$out"
}

# expect_try "RESULT SECONDS" RESULT MAX_SECONDS what: mkv_try's answer is
# RESULT and came within MAX_SECONDS.
expect_try() {
    local got=${1%% *} secs=${1##* }
    [ "$got" = "$2" ] || fail "$4: expected $2, got $1"
    awk -v s="$secs" -v m="$3" 'BEGIN { exit !(s <= m) }' ||
        fail "$4: $2 came after ${secs}s (more than $3s)"
}
