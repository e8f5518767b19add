#!/bin/bash
# Metadata benchmark (not a test): minikv's metadata group beside etcd, in
# one run.
#
#   bench/metabench.sh [--build DIR] [--count N] [--concurrency C] [--dir DIR]
#
# Measures, on this machine and in this order (C requests in flight,
# default 64; N operations per phase, default 20000):
#   minikv 1 member and 3 members (separate minikv-meta processes, one
#            Raft group, a cluster key): create, stat, rename, delete of N
#            files in one directory with bench/metaload (the client library
#            a mount uses; every write acknowledged once committed, i.e.
#            fsynced on a majority; stat a linearizable read); then N puts
#            of empty objects batched 16 to a REST transaction (OBJ_TXN,
#            one Raft entry each), counted as N operations;
#   etcd     (Debian etcd-server 3.4) 1 member and 3 members: N puts of
#            64-byte values under distinct keys over its native gRPC API
#            (bench/etcdput.py, python3-grpcio, C in flight), and for 10 s
#            through its HTTP gateway (/v3/kv/put, wrk, C connections);
#            each put is acknowledged once committed on a majority.
# Prints a Markdown table. Everything binds 127.0.0.1 on free ports, runs in
# one temporary directory (default under /var/tmp, the disk under test)
# and is removed at the end.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build"
count=20000
conc=64
base=/var/tmp
while [ $# -gt 0 ]; do
    case "$1" in
    --build) build=$(cd "$2" && pwd); shift ;;
    --count) count=$2; shift ;;
    --concurrency) conc=$2; shift ;;
    --dir) base=$2; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "metabench: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
for tool in etcd wrk curl; do
    command -v "$tool" >/dev/null || { echo "metabench: $tool missing (run tools/install-deps)" >&2; exit 1; }
done
LOAD="$build/bench/metaload"
META="$build/meta/minikv-meta"
CTL="$build/tools/minikvctl"
for b in "$LOAD" "$META" "$CTL"; do
    [ -x "$b" ] || { echo "metabench: build first ($b missing)" >&2; exit 1; }
done

. "$top/bench/benchlib.sh"
bench_tmp metabench
new_key "$T/key"
declare -A R # results: R[system,op] = ops/s (p99)

# minikv_group N: a group of N members; runs the four phases.
minikv_group() {
    local n=$1 peers="" meta="" i p gpids=""
    read -r -a ports <<<"$(port_pairs "$n")"
    for i in $(seq 1 "$n"); do
        peers="$peers${peers:+,}$i=127.0.0.1:${ports[$((i - 1))]}"
        meta="$meta${meta:+,}127.0.0.1:${ports[$((i - 1))]}"
    done
    for i in $(seq 1 "$n"); do
        "$META" --data "$T/m$n-$i" --listen "127.0.0.1:${ports[$((i - 1))]}" --id "$i" \
            $([ "$n" -gt 1 ] && echo --peers "$peers") --cluster-key "$T/key" \
            --log-level warn >>"$T/m$n-$i.log" 2>&1 &
        gpids="$gpids $!"
    done
    pids="$pids $gpids"
    for _ in $(seq 100); do
        "$CTL" --meta "$meta" --cluster-key "$T/key" bucket create bench >/dev/null 2>&1 && break
        sleep 0.2
    done
    for op in create stat rename delete txn; do
        out=$("$LOAD" --meta "$meta" --cluster-key "$T/key" --bucket bench --op "$op" \
            --count "$count" --concurrency "$conc" --batch 16 --json) || { echo "metabench: metaload $op failed" >&2; exit 1; }
        R[minikv-$n,$op]=$(echo "$out" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f (p99 %.1f ms)" % (d["ops_per_s"], d["p99_ms"]))')
        echo "minikv $n member(s) $op: $out" >&2
    done
    for p in $gpids; do kill "$p"; done
    for p in $gpids; do wait "$p" 2>/dev/null || true; done
}

cat >"$T/put.lua" <<'EOF'
-- etcd v3 HTTP gateway puts with distinct keys (base64 in JSON).
local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(s)
    return ((s:gsub(".", function(x)
        local r, b = "", x:byte()
        for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
        return r
    end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
        if #x < 6 then return "" end
        local c = 0
        for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
        return chars:sub(c + 1, c + 1)
    end) .. ({ "", "==", "=" })[#s % 3 + 1])
end
local nthreads = 0
function setup(thread)
    nthreads = nthreads + 1
    thread:set("tid", nthreads)
end
local value = b64(string.rep("v", 64))
local n = 0
function request()
    n = n + 1
    local body = '{"key":"' .. b64(string.format("k-%d-%d", tid, n)) .. '","value":"' .. value .. '"}'
    return wrk.format("POST", "/v3/kv/put", { ["Content-Type"] = "application/json" }, body)
end
EOF

# etcd_group N: N etcd members; N puts' worth of time with wrk.
etcd_group() {
    local n=$1 cluster="" i leader="" epids=""
    read -r -a ports <<<"$(port_pairs "$n")"
    for i in $(seq 1 "$n"); do
        cluster="$cluster${cluster:+,}e$i=http://127.0.0.1:$((ports[i - 1] + 1))"
    done
    for i in $(seq 1 "$n"); do
        etcd --name "e$i" --data-dir "$T/e$n-$i" \
            --listen-client-urls "http://127.0.0.1:${ports[$((i - 1))]}" \
            --advertise-client-urls "http://127.0.0.1:${ports[$((i - 1))]}" \
            --listen-peer-urls "http://127.0.0.1:$((ports[i - 1] + 1))" \
            --initial-advertise-peer-urls "http://127.0.0.1:$((ports[i - 1] + 1))" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --log-level error >>"$T/e$n-$i.log" 2>&1 &
        epids="$epids $!"
    done
    pids="$pids $epids"
    # The leader: its member id equals the leader its status names.
    for _ in $(seq 100); do
        for i in $(seq 1 "$n"); do
            st=$(curl -s -X POST "http://127.0.0.1:${ports[$((i - 1))]}/v3/maintenance/status" -d '{}' || true)
            if echo "$st" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d.get("leader") and d["leader"] == d["header"]["member_id"] else 1)' 2>/dev/null; then
                leader=${ports[$((i - 1))]}
                break 2
            fi
        done
        sleep 0.2
    done
    [ -n "$leader" ] || { echo "metabench: etcd $n: no leader" >&2; exit 1; }
    # As long as minikv took for as many operations: a fixed time instead,
    # long enough for tens of thousands of puts.
    out=$(wrk -t 2 -c "$conc" -d 10s --latency -s "$T/put.lua" "http://127.0.0.1:$leader" 2>&1)
    echo "etcd $n member(s): $out" >&2
    rate=$(echo "$out" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
    p99=$(echo "$out" | sed -n 's/^ *99% *\([0-9.]*[a-z]*\).*/\1/p')
    errs=$(echo "$out" | sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p')
    R[etcd-$n,http]="$(printf '%.0f' "$rate") (p99 $p99)${errs:+, $errs errors}"
    out=$(/usr/bin/python3 "$top/bench/etcdput.py" "127.0.0.1:$leader" "$count" "$conc") ||
        { echo "metabench: etcdput failed: $out" >&2; exit 1; }
    echo "etcd $n member(s) gRPC: $out" >&2
    R[etcd-$n,grpc]=$(echo "$out" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f (p99 %.1f ms)" % (d["ops_per_s"], d["p99_ms"]))')
    for p in $epids; do kill "$p"; done
    for p in $epids; do wait "$p" 2>/dev/null || true; done
}

minikv_group 1
minikv_group 3
etcd_group 1
etcd_group 3

echo
echo "| operation ($conc in flight) | minikv, 1 member | minikv, 3 members | etcd, 1 member | etcd, 3 members |"
echo "|---|---|---|---|---|"
for op in create stat rename delete; do
    echo "| $op | ${R[minikv-1,$op]} | ${R[minikv-3,$op]} | | |"
done
echo "| put, 16 per transaction (counted each) | ${R[minikv-1,txn]} | ${R[minikv-3,txn]} | | |"
echo "| put (gRPC, bench/etcdput.py) | | | ${R[etcd-1,grpc]} | ${R[etcd-3,grpc]} |"
echo "| put (HTTP gateway, wrk) | | | ${R[etcd-1,http]} | ${R[etcd-3,http]} |"
echo
echo "(ops/s; etcd: put of a 64-byte value; $(nproc) CPUs, $(date -u +%Y-%m-%d), commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown))"
