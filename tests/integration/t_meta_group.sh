#!/bin/bash
# The metadata group as separate minikv-meta processes, changed with
# minikvctl: three members bootstrap from --peers; a fourth started with
# --join is added (it catches up from a snapshot) and becomes a voter;
# leadership is handed to it and back; a member is removed; kill -9 of the
# leader leaves a serving group within 5 s and the killed member rejoins
# with its old command line; a member that bootstrapped a group of its own
# and an unreachable one are refused and leave the group as it was.
. "$top_srcdir/tests/integration/lib.sh"
META="$top_builddir/meta/minikv-meta"
KEY="$T/cluster.key"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$KEY"
echo >>"$KEY"
chmod 600 "$KEY"
CTL=("$MINIKVCTL" --cluster-key "$KEY")

# Six members' ports: each needs PORT and PORT+1 (Raft) free.
read -r -a PORTS <<<"$(free_port_pairs 6)"
addr() { echo "127.0.0.1:${PORTS[$(($1 - 1))]}"; }
PEERS="1=$(addr 1),2=$(addr 2),3=$(addr 3)"
declare -A PID
# start ID ARGS...: one member, its log in $T/meta-ID.log.
start() {
    local id=$1
    shift
    "$META" --data "$T/m$id" --listen "$(addr "$id")" --id "$id" --cluster-key "$KEY" \
        --election-timeout 500ms --heartbeat 50ms --snapshot-threshold 64 --snapshot-trailing 16 \
        --catch-up-timeout 3s \
        "$@" >>"$T/meta-$id.log" 2>&1 &
    PID[$id]=$!
}
stop() { # stop ID: SIGTERM, and it must exit with status 0
    kill -TERM "${PID[$1]}"
    wait "${PID[$1]}" || fail "member $1 exited with status $? on SIGTERM"
    unset "PID[$1]"
}
export MINIKV_META="$(addr 1),$(addr 2),$(addr 3)"
# The JSON status of the member at $1 (default: the group); its exit status
# is 1 without a chunk server, which these members do not have.
status_of() { timeout 5 "${CTL[@]}" --meta "${1:-$MINIKV_META}" --json status 2>/dev/null || true; }
field() { "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
# The leader's id, as the member asked knows it (waits while it knows none).
leader() {
    local l
    for _ in $(seq 50); do
        l=$(status_of | field 'd["meta"]["leader_id"]')
        [ -n "$l" ] && [ "$l" != 0 ] && break
        sleep 0.1
    done
    echo "$l"
}
# wait_members EXPR VALUE: until EXPR over the status of the group's leader
# (it has the latest configuration) gives VALUE.
wait_members() {
    local v
    for _ in $(seq 50); do
        v=$(status_of "$(addr "$(leader)")" | field "$1")
        [ "$v" = "$2" ] && return 0
        sleep 0.1
    done
    fail "$1 is $v, not $2"
}

for i in 1 2 3; do start "$i" --peers "$PEERS"; done
for _ in $(seq 100); do [ "$(leader)" != 0 ] && [ -n "$(leader)" ] && break; sleep 0.1; done
log "leader $(leader)"
"${CTL[@]}" meta remove 7 2>"$T/err" && fail "removing a member that is not there worked"
grep -q "no member 7" "$T/err" || fail "remove 7: $(cat "$T/err")"

# Enough entries for a snapshot (threshold 64), so the new member needs it.
for i in $(seq 1 80); do "${CTL[@]}" bucket create "bkt-$i" >/dev/null || fail "bucket $i"; done

# A fourth member, added while empty.
start 4 --join
"${CTL[@]}" meta add "$(addr 4)" >"$T/out" || fail "meta add 4: $(cat "$T/out")"
expect_contains "$(cat "$T/out")" "added as a voter (4 voters)"
wait_members 'len([m for m in d["meta"]["members"] if m["role"] == "voter"])' 4
# It has the state: it restored a snapshot and applied up to the commit.
commit=$(status_of "$(addr "$(leader)")" | field 'd["meta"]["commit_index"]')
for _ in $(seq 50); do
    a=$(status_of "$(addr 4)" | field 'd["meta"]["applied_index"]')
    [ "$a" -ge "$commit" ] && break
    sleep 0.1
done
[ "$a" -ge "$commit" ] || fail "member 4 applied $a of $commit"
grep -q "snapshot restored" "$T/meta-4.log" || fail "member 4 caught up without the snapshot"
# A retried add (unknown outcome) is harmless.
"${CTL[@]}" meta add "$(addr 4)" >/dev/null || fail "meta add 4 again"

# Leadership to the new member, then back to whoever is most up to date.
"${CTL[@]}" meta transfer 4 >"$T/out" || fail "transfer to 4"
expect_eq "$(leader)" 4 "leader after transfer"
"${CTL[@]}" bucket create after-transfer >/dev/null || fail "write through the new leader"
"${CTL[@]}" buckets | grep -q bkt-80 || fail "state read from the new leader"
"${CTL[@]}" meta remove 4 2>"$T/err" && fail "removing the leader worked"
grep -q "hand leadership over first" "$T/err" || fail "remove leader: $(cat "$T/err")"
"${CTL[@]}" meta transfer >/dev/null || fail "transfer to any"
l=$(leader)
[ "$l" != 4 ] || fail "leader still 4 after transfer"

# Remove a follower, then stop it.
f=1
[ "$l" = 1 ] && f=2
"${CTL[@]}" meta remove "$f" >"$T/out" || fail "remove $f"
expect_contains "$(cat "$T/out")" "(3 voters)"
stop "$f"
export MINIKV_META="$(addr 1),$(addr 2),$(addr 3),$(addr 4)"

# kill -9 of the leader: a new leader serves within 5 s; the old one comes
# back with the same command line and follows.
l=$(leader)
kill -KILL "${PID[$l]}"
wait "${PID[$l]}" 2>/dev/null
unset "PID[$l]"
t0=$(date +%s.%N)
"${CTL[@]}" bucket create after-kill >/dev/null || fail "write after killing the leader"
t1=$(date +%s.%N)
secs=$(echo "$t1 - $t0" | bc)
log "write after kill -9 of leader $l took ${secs}s"
awk -v s="$secs" 'BEGIN { exit !(s <= 5) }' || fail "no leader within 5 s (${secs}s)"
if [ "$l" -le 3 ]; then start "$l" --peers "$PEERS"; else start "$l" --join; fi
for _ in $(seq 100); do
    r=$(status_of "$(addr "$l")" | field 'd["meta"]["role"]') && [ "$r" = follower ] && break
    sleep 0.1
done
expect_eq "$r" follower "restarted member $l"
"${CTL[@]}" buckets | grep -q after-kill || fail "after-kill bucket missing"

log "member $l rejoined"
# Refused: a member that bootstrapped a group of its own, and one that is
# not running (the group stays as it was).
start 5
for _ in $(seq 50); do [ "$(status_of "$(addr 5)" | field 'd["meta"]["role"]')" = leader ] && break; sleep 0.1; done
"${CTL[@]}" meta add "$(addr 5)" 2>"$T/err" && fail "a member with its own group was added"
grep -q "start it with --join" "$T/err" || fail "add 5: $(cat "$T/err")"
log "refused a member with a group of its own"
rc=0
"${CTL[@]}" meta add "$(addr 6)" --id 6 2>"$T/err" || rc=$?
expect_eq "$rc" 1 "exit status of adding an unreachable member"
grep -q "did not catch up" "$T/err" || fail "add 6: $(cat "$T/err")"
wait_members 'len(d["meta"]["members"])' 3

for id in "${!PID[@]}"; do stop "$id"; done
log "ok"
