#!/usr/bin/python3
"""Uploads objects in a loop until the server goes away, recording each
attempt before it is sent and each acknowledgement (HTTP 200) after it.
Usage: crashload.py BUCKET PREFIX ATTEMPTS_FILE ACKS_FILE"""
import hashlib
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s3req  # noqa: E402

bucket, prefix, attempts_path, acks_path = sys.argv[1:5]
rng = random.Random(os.getpid())
failures = 0
with open(attempts_path, "a") as attempts, open(acks_path, "a") as acks:
    i = 0
    while failures < 20:
        i += 1
        key = f"{prefix}-{i}"
        size = rng.choice([0, 1, 4096, 65536, 65537, 300000, 1 << 20, 3 * (1 << 20) + 7])
        data = os.urandom(size)
        digest = hashlib.sha256(data).hexdigest()
        attempts.write(f"{key} {digest}\n")
        attempts.flush()
        try:
            r = s3req.request("PUT", f"/{bucket}/{key}", body=data)
        except OSError:
            r = None
        if r is not None and r.status == 200:
            acks.write(f"{key} {digest}\n")
            acks.flush()
            os.fsync(acks.fileno())
            failures = 0
        else:
            failures += 1
