#!/bin/bash
# S3 benchmark (not a test): minikv server beside its references, in one run.
#
#   bench/s3bench.sh [--build DIR] [--duration SECONDS] [--concurrency N] [--dir DIR]
#
# Measures, on this machine and in this order (N connections, default 64):
#   minikv   PUT/GET/HEAD at 4 KiB, 64 KiB, 1 MiB and 16 MiB, LIST, with
#            bench/mkvload (SigV4-signed, keep-alive, event-driven: 2
#            threads drive the N connections, so the client takes little
#            CPU from the servers on the same cores);
#   nginx    (Debian) serving the same object sizes as static files, with
#            wrk and with mkvload --unsigned (same client as minikv);
#   redis    (Debian) appendonly yes, appendfsync always: SET of 4 KiB values
#            with redis-benchmark at the same concurrency (the durable-write
#            reference);
#   minikv   PUT of 64 MiB objects over 8 keys, the durable large write,
#            in MiB/s beside dd (in-flight PUTs finish after the duration);
#   dd       1 GiB with conv=fsync to the same file system as the data.
# Prints a Markdown table. Everything binds 127.0.0.1 on free ports, runs
# in one temporary directory (default under /var/tmp, the disk under test)
# and is removed at the end.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build"
dur=10
conc=64
base=/var/tmp
while [ $# -gt 0 ]; do
    case "$1" in
    --build) build=$(cd "$2" && pwd); shift ;;
    --duration) dur=$2; shift ;;
    --concurrency) conc=$2; shift ;;
    --dir) base=$2; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "s3bench: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
for tool in nginx wrk redis-server redis-benchmark; do
    command -v "$tool" >/dev/null || { echo "s3bench: $tool missing (run tools/install-deps)" >&2; exit 1; }
done
LOAD="$build/bench/mkvload"
[ -x "$LOAD" ] || { echo "s3bench: build first ($LOAD missing)" >&2; exit 1; }

. "$top/bench/benchlib.sh"
bench_tmp bench
# Ports: the meta port's successor is Raft's.
ports="$(port_pairs 5)"
read -r S3P CHP NGP RDP MP <<<"$ports"

"$build/tools/minikv" server --data "$T/minikv" --listen "127.0.0.1:$S3P" --meta-listen "127.0.0.1:$MP" \
    --chunk-listen "127.0.0.1:$CHP" >"$T/minikv.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 300); do curl -fs "http://127.0.0.1:$S3P/health/ready" >/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=$(sed -n 's/^aws_access_key_id = //p' "$T/minikv/credentials")
export AWS_SECRET_ACCESS_KEY=$(sed -n 's/^aws_secret_access_key = //p' "$T/minikv/credentials")
"$build/tools/minikvctl" --meta "127.0.0.1:$MP" bucket create bench >/dev/null

# nginx with the same object sizes as static files (its workers run as
# www-data: they must be able to read them).
mkdir -p "$T/www" "$T/nginx"
chmod 755 "$T" "$T/www"
cat >"$T/nginx/nginx.conf" <<EOF
daemon off; worker_processes auto; pid $T/nginx/nginx.pid; error_log $T/nginx/error.log;
events { worker_connections 4096; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  client_body_temp_path $T/nginx; proxy_temp_path $T/nginx; fastcgi_temp_path $T/nginx;
  uwsgi_temp_path $T/nginx; scgi_temp_path $T/nginx;
  server { listen 127.0.0.1:$NGP; root $T/www; } }
EOF

echo "| workload | minikv | nginx (wrk) | nginx (mkvload) | ratio minikv/nginx |"
echo "|---|---|---|---|---|"
for size in 4K 64K 1M 16M; do
    case $size in 4K) bytes=4096; keys=2000 ;; 64K) bytes=65536; keys=1000 ;; 1M) bytes=1048576; keys=200 ;;
    16M) bytes=16777216; keys=40 ;; esac
    mkdir -p "$T/www/s$size"
    head -c "$bytes" /dev/urandom >"$T/www/s$size/obj-0"
    for i in $(seq 1 $((keys - 1))); do ln "$T/www/s$size/obj-0" "$T/www/s$size/obj-$i"; done
    "$LOAD" --endpoint "http://127.0.0.1:$S3P" --op put --size "$size" --keys "$keys" --prefix "s$size" \
        --concurrency "$conc" --fill >/dev/null
    put=$("$LOAD" --endpoint "http://127.0.0.1:$S3P" --op put --size "$size" --keys "$keys" --prefix "s$size" \
        --concurrency "$conc" --duration "$dur" --json)
    get=$("$LOAD" --endpoint "http://127.0.0.1:$S3P" --op get --keys "$keys" --prefix "s$size" \
        --concurrency "$conc" --duration "$dur" --json)
    [ -n "$(pgrep -f "$T/nginx/nginx.conf")" ] || { nginx -c "$T/nginx/nginx.conf" & pids="$pids $!"; sleep 0.5; }
    ngl=$("$LOAD" --endpoint "http://127.0.0.1:$NGP" --unsigned --bucket "" --op get --keys "$keys" \
        --prefix "s$size/obj" --concurrency "$conc" --duration "$dur" --json)
    wrkout=$(wrk -t2 -c"$conc" -d"${dur}s" "http://127.0.0.1:$NGP/s$size/obj-0" 2>&1)
    wrkrps=$(echo "$wrkout" | awk '/Requests\/sec/ {print $2}')
    g=$(echo "$get" | fmt)
    n=$(echo "$ngl" | fmt)
    r=$(ratio "$get" "$ngl")
    p=$(echo "$put" | fmt)
    echo "| GET $size | $g | $wrkrps req/s | $n | $r |"
    echo "| PUT $size | $p | (static files: no PUT) | | |"
    if [ "$size" = 4K ]; then
        head=$("$LOAD" --endpoint "http://127.0.0.1:$S3P" --op head --keys "$keys" --prefix "s$size" \
            --concurrency "$conc" --duration "$dur" --json)
        h=$(echo "$head" | fmt)
        echo "| HEAD 4K | $h | | | |"
        list=$("$LOAD" --endpoint "http://127.0.0.1:$S3P" --op list --prefix "s4K" --concurrency "$conc" \
            --duration "$dur" --json)
        l=$(echo "$list" | fmt)
        echo "| LIST (100 keys) | $l | | | |"
    fi
done

# Durable-write references.
mkdir -p "$T/redis"
redis-server --port "$RDP" --bind 127.0.0.1 --dir "$T/redis" --appendonly yes --appendfsync always \
    --save "" --daemonize no >"$T/redis.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 50); do redis-cli -p "$RDP" ping >/dev/null 2>&1 && break; sleep 0.1; done
rb=$(redis-benchmark -p "$RDP" -t set -d 4096 -c "$conc" -n 100000 -q 2>/dev/null | tr '\r' '\n' | grep -E '^SET' | tail -n1)
echo "| redis SET 4K, appendfsync always (reference for durable PUT 4K) | | | | $rb |"
"$LOAD" --endpoint "http://127.0.0.1:$S3P" --op put --size 64M --keys 8 --prefix s64M --concurrency "$conc" \
    --fill >/dev/null
big=$("$LOAD" --endpoint "http://127.0.0.1:$S3P" --op put --size 64M --keys 8 --prefix s64M \
    --concurrency "$conc" --duration "$dur" --json)
ddout=$(dd if=/dev/zero of="$T/dd.bin" bs=1M count=1024 conv=fsync 2>&1 | tail -n1)
rm -f "$T/dd.bin"
# "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 2.5 s, 430 MB/s": 1024 MiB in that many seconds.
ddsec=$(echo "$ddout" | sed -n 's/.* copied, \([0-9.]*\) s,.*/\1/p')
b=$(echo "$big" | fmt)
bigratio=$(/usr/bin/python3 -c 'import json, sys
d, s = json.loads(sys.argv[1]), float(sys.argv[2] or "nan")
print("%.2f of dd (MiB/s: %.0f / %.0f)" % (d["mib_per_s"] / (1024 / s), d["mib_per_s"], 1024 / s))' "$big" "$ddsec")
echo "| PUT 64M, 8 keys (durable large write) | $b | | | $bigratio |"
echo "| dd 1 GiB conv=fsync, same file system (reference for large PUT) | | | | $ddout |"
echo
echo "(concurrency $conc, ${dur}s per workload, $(nproc) cores, data in $base)"
