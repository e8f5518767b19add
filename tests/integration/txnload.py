#!/usr/bin/python3
"""Bank transfers as REST transactions (POST /transaction), to check that a
transaction is all or nothing and that an acknowledged one survives faults.

  txnload.py setup BUCKET ACCOUNTS AMOUNT
      puts ACCOUNTS account keys holding AMOUNT each, in one transaction.
  txnload.py run BUCKET ACCOUNTS SECONDS WORKERS ACKFILE
      WORKERS threads move one unit between two random accounts for SECONDS:
      GET both (value and ETag), then one transaction that puts both with
      if_match on the ETags (a compare-and-swap) and puts a unique log key.
      Each acknowledged transfer's log key goes to ACKFILE. Errors are
      counted, not fatal: faults are being injected meanwhile.
  txnload.py check BUCKET ACCOUNTS AMOUNT ACKFILE
      the balances still sum to ACCOUNTS * AMOUNT; each account also counts
      the transfers that touched it, and those counts sum to twice the number
      of log keys (a transfer applied in part breaks one or the other); every
      acknowledged log key exists.
Environment: as s3req.py (ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
"""
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s3req  # noqa: E402


def call(method, target, body=b""):
    try:
        return s3req.request(method, target, body=body)
    except OSError:
        return None


def txn(ops):
    return call("POST", "/transaction", json.dumps({"operations": ops}).encode())


def account(bucket, i):
    return f"{bucket}/acct/{i:03d}"


def setup(bucket, n, amount):
    ops = [{"op": "put", "key": account(bucket, i), "value": f"{amount}:0:"} for i in range(n)]
    r = txn(ops)
    if r is None or r.status != 200:
        sys.exit(f"setup failed: {r}")


def run(bucket, n, seconds, workers, ackfile):
    stop = time.monotonic() + seconds
    acks, lock = [], threading.Lock()
    stats = {"ok": 0, "conflict": 0, "error": 0}

    def worker(w):
        seq = 0
        rnd = random.Random(w * 7919 + os.getpid())
        while time.monotonic() < stop:
            a, b = rnd.sample(range(n), 2)
            ra = call("GET", "/" + account(bucket, a))
            rb = call("GET", "/" + account(bucket, b))
            if not ra or not rb or ra.status != 200 or rb.status != 200:
                with lock:
                    stats["error"] += 1
                time.sleep(0.05)
                continue
            (va, ca), (vb, cb) = ([int(v) for v in x.body.split(b":")[:2]] for x in (ra, rb))
            seq += 1
            log = f"{bucket}/log/w{w}/{seq:07d}"
            # The value carries the log key so that every version is unique.
            r = txn([
                {"op": "put", "key": account(bucket, a), "value": f"{va - 1}:{ca + 1}:{log}",
                 "if_match": ra.header("ETag")},
                {"op": "put", "key": account(bucket, b), "value": f"{vb + 1}:{cb + 1}:{log}",
                 "if_match": rb.header("ETag")},
                {"op": "put", "key": log, "value": f"{a}->{b}", "if_none_match": "*"},
            ])
            with lock:
                if r is not None and r.status == 200:
                    stats["ok"] += 1
                    acks.append(log)
                elif r is not None and r.status == 412:
                    stats["conflict"] += 1
                else:
                    stats["error"] += 1
                    time.sleep(0.05)

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    with open(ackfile, "w") as f:
        f.write("".join(k + "\n" for k in acks))
    print(f"transfers acknowledged={stats['ok']} conflicts={stats['conflict']} errors={stats['error']}")
    if stats["ok"] == 0:
        sys.exit("no transfer was acknowledged")


def list_keys(bucket, prefix):
    keys, token = [], None
    while True:
        q = f"/{bucket}?list-type=2&prefix={prefix}"
        if token:
            q += "&continuation-token=" + s3req._uri_encode(token, False)
        r = call("GET", q)
        if r is None or r.status != 200:
            sys.exit(f"listing failed: {r}")
        body = r.body.decode()
        for part in body.split("<Key>")[1:]:
            keys.append(part.split("</Key>")[0])
        if "<IsTruncated>true</IsTruncated>" not in body:
            return keys
        token = body.split("<NextContinuationToken>")[1].split("</NextContinuationToken>")[0]


def check(bucket, n, amount, ackfile):
    total = touches = 0
    for i in range(n):
        r = call("GET", "/" + account(bucket, i))
        if r is None or r.status != 200:
            sys.exit(f"account {i} unreadable: {r}")
        balance, count = (int(v) for v in r.body.split(b":")[:2])
        total += balance
        touches += count
    logs = set(list_keys(bucket, "log/"))
    acked = [k.split("/", 1)[1] for k in open(ackfile).read().split()]
    missing = [k for k in acked if k not in logs]
    print(f"sum={total} want={n * amount} touches={touches} logs={len(logs)} "
          f"acknowledged={len(acked)} lost={len(missing)}")
    if total != n * amount:
        sys.exit("the balances' sum changed: a transaction was applied in part")
    if touches != 2 * len(logs):
        sys.exit("account counts and log keys disagree: a transaction was applied in part")
    if missing:
        sys.exit(f"acknowledged transfers lost: {missing[:5]}")


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "setup":
        setup(args[0], int(args[1]), int(args[2]))
    elif cmd == "run":
        run(args[0], int(args[1]), float(args[2]), int(args[3]), args[4])
    elif cmd == "check":
        check(args[0], int(args[1]), int(args[2]), args[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
