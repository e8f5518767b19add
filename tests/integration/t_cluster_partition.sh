#!/bin/bash
# A network partition, with network namespaces: the three metadata members
# each live in a namespace of their own, joined by a bridge in the test's
# namespace, where the chunk server, the gateway and the clients run.
# While S3 clients write and a history of PUTs and GETs on three keys is
# recorded, the leader's link is cut: the two others elect a leader and the
# clients go on; the isolated member refuses a write from its own side (it
# cannot commit); the link comes back and every member converges to the
# same log. Then: every acknowledged upload reads back, the refused write
# never appears, and the history is linearizable key by key
# (linearize.py). Skipped, saying so, where namespaces cannot be made.
. "$top_srcdir/tests/integration/lib.sh"
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
command -v ip >/dev/null || skip "no ip(8) here"
NS="mkv$$"
SUB="10.213.$((RANDOM % 250)).0"
NET=${SUB%.0}
mkv_on_cleanup "for i in 1 2 3; do ip netns del $NS-\$i; done; ip link del ${NS}b"
ip link add "${NS}b" type bridge 2>/dev/null || skip "cannot make a bridge here"
ip addr add "$NET.254/24" dev "${NS}b" && ip link set "${NS}b" up || fail "bridge address"
for i in 1 2 3; do
    ip netns add "$NS-$i" 2>/dev/null || skip "cannot make network namespaces here"
    ip link add "${NS}h$i" type veth peer name "${NS}n$i" || fail "veth $i"
    ip link set "${NS}h$i" master "${NS}b" up || fail "bridge port $i"
    ip link set "${NS}n$i" netns "$NS-$i" || fail "veth into namespace $i"
    ip -n "$NS-$i" addr add "$NET.$i/24" dev "${NS}n$i" || fail "address $i"
    ip -n "$NS-$i" link set "${NS}n$i" up && ip -n "$NS-$i" link set lo up || fail "links up $i"
done
ping -c1 -W2 "$NET.1" >/dev/null 2>&1 || log "(no ping reply from $NET.1; going on)"

MKV_ELECTION=1s
KEY=$T/cluster.key
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$KEY"
echo >>"$KEY"
chmod 600 "$KEY"
PORT=7000 # each member has a namespace of its own
PEERS="1=$NET.1:$PORT,2=$NET.2:$PORT,3=$NET.3:$PORT"
MINIKV_META="$NET.1:$PORT,$NET.2:$PORT,$NET.3:$PORT"
read -r S3_PORT CHUNK_PORT <<<"$(free_ports 2)"
export MINIKV_META
member() { # member ID: (re)starts member ID in its namespace
    mkv_daemon_start "meta-$1" ip netns exec "$NS-$1" "$top_builddir/meta/minikv-meta" \
        --data "$T/meta-$1" --listen "$NET.$1:$PORT" --id "$1" --peers "$PEERS" \
        --cluster-key "$KEY" --election-timeout "$MKV_ELECTION" --chunk-heartbeat 300ms
}
for i in 1 2 3; do member "$i"; done
mkv_first_chunk_start
mkv_daemon_start s3gw "$top_builddir/s3gw/minikv-s3gw" --listen "127.0.0.1:$S3_PORT" \
    --meta "$MINIKV_META" --cluster-key-file "$KEY" --credentials-file "$T/credentials"
mkv_wait_ready 30 || fail "the gateway did not become ready"
mkv_wait_map 30
ENDPOINT="http://127.0.0.1:$S3_PORT"
AWS_ACCESS_KEY_ID=$(sed -n 's/^aws_access_key_id = //p' "$T/credentials")
AWS_SECRET_ACCESS_KEY=$(sed -n 's/^aws_secret_access_key = //p' "$T/credentials")
export ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
CTL=("$MINIKVCTL" --cluster-key "$KEY")
"${CTL[@]}" bucket create part >/dev/null || fail "bucket part"
"${CTL[@]}" bucket create hist >/dev/null || fail "bucket hist"

# field ID NAME: member ID's status field (asked from the test's side).
field() {
    { timeout 5 "${CTL[@]}" --meta "$NET.$1:$PORT" --json status 2>/dev/null || true; } |
        "$PY" -c 'import json,sys
try: print(json.load(sys.stdin)["meta"][sys.argv[1]])
except Exception: print("")' "$2"
}
leader=$(field 1 leader_id)
[ -n "$leader" ] && [ "$leader" != 0 ] || fail "no leader"

# Load: uploads of distinct keys (every acknowledged one must stay), and
# the history of three registers.
"$PY" "$top_srcdir/tests/integration/failload.py" s3 part w1 14 "$T/s3.attempts" "$T/s3.acks" \
    >"$T/w1.out" &
wpid=$!
"$PY" "$top_srcdir/tests/integration/linearize.py" run hist 14 4 "$T/history" &
hpid=$!
sleep 3

# The partition: the leader's link goes down.
log "cutting member $leader off"
ip link set "${NS}h$leader" down || fail "link down"
t0=$(date +%s.%N)
new=""
for _ in $(seq 150); do
    for o in 1 2 3; do
        [ "$o" = "$leader" ] && continue
        n=$(field "$o" leader_id)
        if [ -n "$n" ] && [ "$n" != 0 ] && [ "$n" != "$leader" ]; then new=$n; break 2; fi
    done
    sleep 0.1
done
[ -n "$new" ] || fail "the majority elected no leader within 15 s"
log "member $new seen leading the majority $(echo "$(date +%s.%N) - $t0" | bc) s after the cut"

# The minority side: a write from the isolated member's own namespace
# must not succeed (it cannot reach a majority).
if ip netns exec "$NS-$leader" timeout 20 "${CTL[@]}" --meta "$NET.$leader:$PORT" \
    bucket create minority >"$T/minority.out" 2>&1; then
    fail "the isolated member accepted a write: $(cat "$T/minority.out")"
fi
log "isolated member refused: $(head -1 "$T/minority.out")"
role=$(ip netns exec "$NS-$leader" timeout 5 "${CTL[@]}" --meta "$NET.$leader:$PORT" --json status 2>/dev/null |
    "$PY" -c 'import json,sys
try: print(json.load(sys.stdin)["meta"]["role"])
except Exception: print("")')
log "the isolated member says it is: ${role:-(no answer)}"
[ "$role" != leader ] || fail "the isolated member still says it leads"

sleep 2
ip link set "${NS}h$leader" up || fail "link up"
log "healed"
wait "$wpid" || fail "the uploader failed"
log "uploads: $(cat "$T/w1.out")"
# A request in flight to the cut-off leader gets no reset: it waits for the
# client's per-attempt timeout (4 s), after the election.
gap=$(sed -n 's/.*longest_gap=\([0-9.]*\).*/\1/p' "$T/w1.out")
awk -v g="$gap" 'BEGIN { exit !(g <= 8) }' || fail "no upload went through for ${gap}s (more than 8 s)"
wait "$hpid" || fail "the history recorder failed"

# Convergence: every member applies the leader's commit index.
commit=$(field "$new" commit_index)
for i in 1 2 3; do
    for _ in $(seq 200); do
        a=$(field "$i" applied_index)
        [ -n "$a" ] && [ "$a" -ge "$commit" ] && break
        sleep 0.1
    done
    [ -n "$a" ] && [ "$a" -ge "$commit" ] || fail "member $i applied ${a:-nothing} of $commit after healing"
done
r=$(field "$leader" role)
expect_eq "$r" follower "the old leader after healing"
log "all three members applied $commit"

"${CTL[@]}" buckets | grep -qw minority && fail "the write refused on the minority side appeared"
"$PY" "$top_srcdir/tests/integration/crashverify.py" part "$T/s3.attempts" "$T/s3.acks" ||
    fail "acknowledged uploads lost or changed"
"$PY" "$top_srcdir/tests/integration/linearize.py" check "$T/history" >"$T/check.out" 2>&1
rc=$?
cat "$T/check.out"
[ "$rc" = 0 ] || fail "the history is not linearizable"
log "OK"
