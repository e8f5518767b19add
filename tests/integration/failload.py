#!/usr/bin/python3
"""Writes for a fixed time while the test injects faults, recording every
attempt before it is made and every acknowledgement after it.

Usage: failload.py s3 BUCKET PREFIX SECONDS ATTEMPTS ACKS
       failload.py fs DIR PREFIX SECONDS ATTEMPTS ACKS

s3: PUT objects (SigV4, through s3req); acknowledged = HTTP 200.
fs: create a file, write it, fsync, close; acknowledged = all of those
returned without error (fsync is the mount's durability point).
ATTEMPTS lines: "KEY SHA256"; ACKS lines: "KEY SHA256 START END" (monotonic
seconds). On exit prints one line: "acks=N errors=E longest_gap=S" where
longest_gap is the longest time between two acknowledgements (or from the
start to the first), i.e. how long this client could not get a write
through."""
import hashlib
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s3req  # noqa: E402

mode, where, prefix, seconds, attempts_path, acks_path = sys.argv[1:7]
seconds = float(seconds)
rng = random.Random(os.getpid())
start = time.monotonic()
last_ack = start
longest = 0.0
n_acks = 0
errors = 0
why = []  # the first few failures, for the log
i = 0
with open(attempts_path, "a") as attempts, open(acks_path, "a") as acks:
    while time.monotonic() - start < seconds:
        i += 1
        key = f"{prefix}-{i}"
        data = os.urandom(rng.choice([100, 4096, 20000, 200000]))
        digest = hashlib.sha256(data).hexdigest()
        attempts.write(f"{key} {digest}\n")
        attempts.flush()
        t0 = time.monotonic()
        ok = False
        try:
            if mode == "s3":
                r = s3req.request("PUT", f"/{where}/{key}", body=data)
                ok = r is not None and r.status == 200
                if not ok and len(why) < 3:
                    why.append(f"{r.status} {r.body[:160]!r}" if r is not None else "no answer")
            else:
                fd = os.open(os.path.join(where, key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                ok = True
        except OSError as e:
            ok = False
            if len(why) < 3:
                why.append(str(e))
        t1 = time.monotonic()
        if ok:
            longest = max(longest, t1 - last_ack)
            last_ack = t1
            n_acks += 1
            acks.write(f"{key} {digest} {t0 - start:.3f} {t1 - start:.3f}\n")
            acks.flush()
        else:
            errors += 1
            time.sleep(0.05)
longest = max(longest, time.monotonic() - last_ack)
print(f"acks={n_acks} errors={errors} longest_gap={longest:.2f}" + "".join(f" [{w}]" for w in why))
