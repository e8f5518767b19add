#!/usr/bin/python3
"""A history recorder and a linearizability checker for single keys.

  linearize.py run BUCKET SECONDS CLIENTS HISTORY
      CLIENTS threads each loop for SECONDS: pick one of a few keys, then
      PUT a value no one else writes or GET it, through the S3 endpoint
      (ENDPOINT, AWS_*), and append one JSON line per operation to
      HISTORY: client, op, key, value (what was written or read; null for
      a key not found), invocation and completion times (monotonic
      seconds), and the outcome: ok, fail (a clear refusal: 4xx/5xx), or
      unknown (no answer: a PUT may or may not have taken effect).
  linearize.py check HISTORY
      Checks, key by key, that some order of the operations agrees with
      their real-time order (an operation that completed before another
      was invoked comes first) and with a register: every read returns the
      value of the latest write before it. PUTs that failed are left out;
      PUTs of unknown outcome may be placed anywhere after their
      invocation, or nowhere (nowhere when no read saw their value). Reads
      that failed are left out. Exits 1 with
      the key and the operations around the violation when there is none
      (Wing & Gong's search, with memoisation on the set of operations
      placed and the register's value, as in Lowe's refinement).
"""
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s3req  # noqa: E402

KEYS = ["k0", "k1", "k2"]


def run(bucket, seconds, clients, path):
    out = open(path, "w")
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(cid):
        rng = random.Random(cid * 7919 + os.getpid())
        n = 0
        while time.monotonic() < stop:
            key = rng.choice(KEYS)
            n += 1
            rec = {"client": cid, "key": key}
            t0 = time.monotonic()
            try:
                if rng.random() < 0.5:
                    value = f"c{cid}-{n}"
                    rec.update(op="put", value=value)
                    r = s3req.request("PUT", f"/{bucket}/{key}", body=value.encode())
                    if r is None:
                        outcome = "unknown"  # no answer
                    else:
                        outcome = "ok" if r.status == 200 else "unknown" if r.status >= 500 else "fail"
                else:
                    rec.update(op="get", value=None)
                    r = s3req.request("GET", f"/{bucket}/{key}")
                    if r is None:
                        outcome = "fail"
                    elif r.status == 200:
                        rec["value"] = r.body.decode()
                        outcome = "ok"
                    elif r.status == 404:
                        outcome = "ok"  # not found: the initial value
                    else:
                        outcome = "fail"
            except (OSError, ValueError):
                outcome = "unknown" if rec["op"] == "put" else "fail"
            rec.update(inv=t0, ret=time.monotonic(), outcome=outcome)
            with lock:
                out.write(json.dumps(rec) + "\n")
                out.flush()
            if outcome != "ok":
                time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.close()


def check_key(ops):
    """ops: dicts with op, value, inv, ret (None: completed at an unknown
    time, for a PUT whose outcome is unknown but whose value was read).
    Returns None when linearizable, else a message."""
    n = len(ops)
    ops = sorted(ops, key=lambda o: o["inv"])
    inf = float("inf")
    ret = [o["ret"] if o["ret"] is not None else inf for o in ops]
    must = (1 << n) - 1  # every operation left has to be placed
    seen = set()
    sys.setrecursionlimit(10000)
    # Iterative depth-first search over (placed set, value).
    stack = [(0, None)]
    best = 0
    while stack:
        placed, value = stack.pop()
        if (placed, value) in seen:
            continue
        seen.add((placed, value))
        if placed & must == must:
            return None
        best = max(best, bin(placed & must).count("1"))
        # An operation can go next if no unplaced operation completed
        # before it was invoked.
        bound = min((ret[j] for j in range(n) if not placed >> j & 1), default=inf)
        for i in range(n):
            if placed >> i & 1:
                continue
            o = ops[i]
            if o["inv"] > bound:
                break  # sorted by invocation: none after can go either
            if o["op"] == "put":
                stack.append((placed | 1 << i, o["value"]))
            elif o["value"] == value:
                stack.append((placed | 1 << i, value))
    return f"no linearization: at most {best} of {bin(must).count('1')} operations could be placed"


def check(path):
    per_key = {}
    total = 0
    for line in open(path):
        r = json.loads(line)
        if r["outcome"] == "fail":
            continue
        if r["outcome"] == "unknown":
            if r["op"] != "put":
                continue
            r["ret"] = None
        per_key.setdefault(r["key"], []).append(r)
        total += 1
    bad = 0
    for key, ops in sorted(per_key.items()):
        # A PUT of unknown outcome whose value nobody read may as well not
        # have happened (placing it can only make reads harder to explain);
        # one whose value was read did happen, at some time after its
        # invocation.
        read = {o["value"] for o in ops if o["op"] == "get"}
        ops = [o for o in ops if o["ret"] is not None or o["value"] in read]
        msg = check_key(ops)
        reads = sum(1 for o in ops if o["op"] == "get")
        print(f"{key}: {len(ops)} operations ({reads} reads): {'linearizable' if msg is None else msg}")
        if msg is not None:
            bad = 1
    print(f"{total} operations checked")
    return bad


def main(argv):
    if len(argv) == 6 and argv[1] == "run":
        run(argv[2], float(argv[3]), int(argv[4]), argv[5])
        return 0
    if len(argv) == 3 and argv[1] == "check":
        return check(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
