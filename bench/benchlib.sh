# Shared by the benchmark scripts (sourced, not run): a temporary
# directory $T under $base removed at exit with every process in $pids,
# free ports on 127.0.0.1, and formatting of bench/mkvload --json lines.

# bench_tmp NAME: makes $T and the cleanup.
pids=""
bench_tmp() {
    T=$(mktemp -d "${base:-/var/tmp}/minikv-$1.XXXXXX")
    trap bench_cleanup EXIT
}
bench_cleanup() {
    local p
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$T"
}

# port_pairs N: N ports P on 127.0.0.1 with P+1 free too (a metadata
# member's port and its Raft port), none another's P+1.
port_pairs() {
    /usr/bin/python3 - "$1" <<'PY'
import socket, sys
want, got, socks = int(sys.argv[1]), [], []
while len(got) < want:
    a = socket.socket(); a.bind(("127.0.0.1", 0))
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", a.getsockname()[1] + 1))
    except OSError:
        a.close(); b.close(); continue
    got.append(a.getsockname()[1]); socks += [a, b]
print(" ".join(map(str, got)))
PY
}

# new_key FILE: a cluster key.
new_key() {
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1"
    echo >>"$1"
    chmod 600 "$1"
}

# fmt < JSON: "N ops/s (M MiB/s, p99 X ms)" from a mkvload --json line.
fmt() {
    /usr/bin/python3 -c 'import json, sys
d = json.load(sys.stdin)
print("%.0f ops/s (%.1f MiB/s, p99 %.2f ms)" % (d["ops_per_s"], d["mib_per_s"], d["p99_ms"]))'
}
# ratio A B: ops_per_s of A / ops_per_s of B.
ratio() {
    /usr/bin/python3 -c 'import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("%.2f" % (a["ops_per_s"] / b["ops_per_s"]))' "$1" "$2"
}
