#!/bin/bash
# Cluster benchmark (not a test): minikv server beside a cluster, in one run.
#
#   bench/clusterbench.sh [--build DIR] [--duration SECONDS] [--concurrency N] [--dir DIR]
#                         [--chunk-cpu FRACTION]
#
# Measures, on this machine and in this order, with bench/mkvload (N
# connections, default 64):
#   single   `minikv server` (one process, one node): PUT 4 KiB, PUT 1 MiB,
#            GET 1 MiB;
#   3x3      three minikv-meta members, three minikv-chunk servers
#            (factor 3: every chunk written to all three) and one
#            minikv-s3gw: the same three workloads, then PUT 1 MiB into
#            buckets of 2 and of 1 copies (minikvctl bucket create
#            --replicas);
#   reads    GET 1 MiB with 1, 2 and 3 chunk servers (factor = servers, so
#            every object is on every server and reads spread over them),
#            three metadata members and one gateway each time, each on a
#            fresh cluster.
# Everything runs on this machine's cores: the cluster's processes share
# them with the client, which is the point to keep in mind when reading
# the figures. --chunk-cpu 0.25 puts each chunk server of the clusters in
# its own cgroup (v1 cpu controller, as root) limited to that share of one
# CPU, so that each behaves like a small machine of its own and the read
# figures show what more chunk servers add. Prints a Markdown table. Binds 127.0.0.1 on free ports,
# runs in one temporary directory (default under /var/tmp) removed at the
# end.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build"
dur=10
conc=64
base=/var/tmp
chunk_cpu=""
while [ $# -gt 0 ]; do
    case "$1" in
    --build) build=$(cd "$2" && pwd); shift ;;
    --duration) dur=$2; shift ;;
    --concurrency) conc=$2; shift ;;
    --dir) base=$2; shift ;;
    --chunk-cpu) chunk_cpu=$2; shift ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "clusterbench: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
LOAD="$build/bench/mkvload"
CTL="$build/tools/minikvctl"
[ -x "$LOAD" ] || { echo "clusterbench: build first ($LOAD missing)" >&2; exit 1; }
. "$top/bench/benchlib.sh"
bench_tmp clusterbench
new_key "$T/key"
CG=/sys/fs/cgroup/cpu
cgroups=""
if [ -n "$chunk_cpu" ]; then
    [ -w "$CG" ] || { echo "clusterbench: --chunk-cpu needs the cgroup v1 cpu controller at $CG, as root" >&2; exit 1; }
    quota=$(/usr/bin/python3 -c "print(int(float('$chunk_cpu') * 100000))")
fi
# limit PID NAME: PID into its own cgroup with the --chunk-cpu quota.
limit() {
    [ -n "$chunk_cpu" ] || return 0
    mkdir -p "$CG/minikv-bench-$$-$2"
    echo 100000 >"$CG/minikv-bench-$$-$2/cpu.cfs_period_us"
    echo "$quota" >"$CG/minikv-bench-$$-$2/cpu.cfs_quota_us"
    echo "$1" >"$CG/minikv-bench-$$-$2/cgroup.procs"
    cgroups="$cgroups $CG/minikv-bench-$$-$2"
}
cleanup_all() {
    local g
    bench_cleanup
    sleep 0.5
    for g in $cgroups; do rmdir "$g" 2>/dev/null || true; done
}
trap cleanup_all EXIT
declare -A R

# load NAME ENDPOINT: the three workloads into R[NAME,*].
load() {
    local ep=$2 out
    out=$("$LOAD" --endpoint "$ep" --op put --size 4K --keys 2000 --prefix p4k --concurrency "$conc" \
        --duration "$dur" --json)
    R[$1,put4k]=$(echo "$out" | fmt)
    R[$1,put4k_raw]=$out
    out=$("$LOAD" --endpoint "$ep" --op put --size 1M --keys 200 --prefix p1m --concurrency "$conc" \
        --duration "$dur" --json)
    R[$1,put1m]=$(echo "$out" | fmt)
    R[$1,put1m_raw]=$out
    get1m "$1" "$ep"
}
get1m() {
    local out
    "$LOAD" --endpoint "$2" --op put --size 1M --keys 200 --prefix g1m --concurrency "$conc" --fill >/dev/null
    out=$("$LOAD" --endpoint "$2" --op get --keys 200 --prefix g1m --concurrency "$conc" \
        --duration "$dur" --json)
    R[$1,get1m]=$(echo "$out" | fmt)
    R[$1,get1m_raw]=$out
}
creds() { # creds FILE: the AWS_* variables from a credentials file
    AWS_ACCESS_KEY_ID=$(sed -n 's/^aws_access_key_id = //p' "$1")
    AWS_SECRET_ACCESS_KEY=$(sed -n 's/^aws_secret_access_key = //p' "$1")
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
}
wait_ready() { # wait_ready PORT
    for _ in $(seq 300); do
        curl -fs "http://127.0.0.1:$1/health/ready" >/dev/null && return 0
        sleep 0.1
    done
    echo "clusterbench: the gateway on $1 never became ready" >&2
    exit 1
}

# 1. One node.
read -r -a P <<<"$(port_pairs 3)"
"$build/tools/minikv" server --data "$T/single" --listen "127.0.0.1:${P[0]}" \
    --meta-listen "127.0.0.1:${P[1]}" --chunk-listen "127.0.0.1:${P[2]}" --log-level warn \
    >"$T/single.log" 2>&1 &
spid=$!
pids="$pids $spid"
wait_ready "${P[0]}"
creds "$T/single/credentials"
"$CTL" --meta "127.0.0.1:${P[1]}" bucket create bench >/dev/null
load single "http://127.0.0.1:${P[0]}"
kill "$spid"
wait "$spid" 2>/dev/null || true

# cluster NAME CHUNKS: 3 metadata members, CHUNKS chunk servers (factor
# CHUNKS), one gateway; sets EP and CPIDS.
cluster() {
    local name=$1 nc=$2 i peers="" meta=""
    read -r -a P <<<"$(port_pairs $((3 + nc + 1)))"
    for i in 1 2 3; do
        peers="$peers${peers:+,}$i=127.0.0.1:${P[$((i - 1))]}"
        meta="$meta${meta:+,}127.0.0.1:${P[$((i - 1))]}"
    done
    CPIDS=""
    for i in 1 2 3; do
        "$build/meta/minikv-meta" --data "$T/$name-m$i" --listen "127.0.0.1:${P[$((i - 1))]}" --id "$i" \
            --peers "$peers" --cluster-key "$T/key" --replicas "$nc" --log-level warn \
            >>"$T/$name-m$i.log" 2>&1 &
        CPIDS="$CPIDS $!"
    done
    for i in $(seq 1 "$nc"); do
        "$build/chunk/minikv-chunk" --data "$T/$name-c$i" --listen "127.0.0.1:${P[$((2 + i))]}" \
            --meta "$meta" --cluster-key "$T/key" --log-level warn >>"$T/$name-c$i.log" 2>&1 &
        CPIDS="$CPIDS $!"
        limit "$!" "$name-c$i"
    done
    "$build/s3gw/minikv-s3gw" --listen "127.0.0.1:${P[$((3 + nc))]}" --meta "$meta" \
        --cluster-key-file "$T/key" --credentials-file "$T/$name.credentials" --log-level warn \
        >>"$T/$name-gw.log" 2>&1 &
    CPIDS="$CPIDS $!"
    pids="$pids $CPIDS"
    wait_ready "${P[$((3 + nc))]}"
    # The first vshard map, with every chunk server in it.
    for _ in $(seq 300); do
        n=$("$CTL" --meta "$meta" --cluster-key "$T/key" --json vshards 2>/dev/null | /usr/bin/python3 -c '
import json, sys
m = json.load(sys.stdin)
print(min((len(v["replicas"]) for v in m["vshards"]), default=0))' || echo 0)
        [ "$n" = "$nc" ] && break
        sleep 0.2
    done
    [ "$n" = "$nc" ] || { echo "clusterbench: $name: no map with $nc replicas" >&2; exit 1; }
    creds "$T/$name.credentials"
    "$CTL" --meta "$meta" --cluster-key "$T/key" bucket create bench >/dev/null
    EP="http://127.0.0.1:${P[$((3 + nc))]}"
    meta_addrs=$meta
}
stop_cluster() {
    local p
    for p in $CPIDS; do kill "$p" 2>/dev/null || true; done
    for p in $CPIDS; do wait "$p" 2>/dev/null || true; done
}

# 2. 3 metadata members x 3 chunk servers; then buckets of fewer copies.
cluster c3x3 3
load c3x3 "$EP"
for r in 2 1; do
    "$CTL" --meta "$meta_addrs" --cluster-key "$T/key" bucket create "bench$r" --replicas "$r" >/dev/null
    out=$("$LOAD" --endpoint "$EP" --bucket "bench$r" --op put --size 1M --keys 200 --prefix p1m \
        --concurrency "$conc" --duration "$dur" --json)
    R[c3x3,put1m_r$r]=$(echo "$out" | fmt)
    R[c3x3,put1m_r${r}_raw]=$out
done
stop_cluster

# 3. Reads with 1, 2 and 3 chunk servers, each on a fresh cluster (the 3x3
# cluster above has just taken gigabytes of writes, which its chunk
# servers are still flushing and compacting: its GET row measures that).
for n in 1 2 3; do
    cluster "reads$n" "$n"
    get1m "reads$n" "$EP"
    stop_cluster
done

echo
echo "| workload ($conc connections) | minikv server (1 node) | cluster 3 meta x 3 chunk (factor 3)${chunk_cpu:+, chunk servers limited to $chunk_cpu CPU} | ratio cluster/single |"
echo "|---|---|---|---|"
for w in put4k put1m get1m; do
    case $w in put4k) label="PUT 4 KiB" ;; put1m) label="PUT 1 MiB" ;; get1m) label="GET 1 MiB" ;; esac
    echo "| $label | ${R[single,$w]} | ${R[c3x3,$w]} | $(ratio "${R[c3x3,${w}_raw]}" "${R[single,${w}_raw]}") |"
done
echo
echo "| PUT 1 MiB on the 3x3 cluster, by bucket factor | ops/s | ratio to factor 3 |"
echo "|---|---|---|"
echo "| 3 copies (the cluster's) | ${R[c3x3,put1m]} | 1.00 |"
for r in 2 1; do
    echo "| $r cop$([ "$r" = 1 ] && echo y || echo ies) | ${R[c3x3,put1m_r$r]} | $(ratio "${R[c3x3,put1m_r${r}_raw]}" "${R[c3x3,put1m_raw]}") |"
done
echo
echo "| GET 1 MiB, 3 meta + N chunk servers (factor N)${chunk_cpu:+, each limited to $chunk_cpu CPU} | ops/s |"
echo "|---|---|"
echo "| 1 chunk server | ${R[reads1,get1m]} |"
echo "| 2 chunk servers | ${R[reads2,get1m]} |"
echo "| 3 chunk servers | ${R[reads3,get1m]} |"
echo
echo "($(nproc) CPUs, $(date -u +%Y-%m-%d), commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown))"
