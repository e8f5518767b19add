#!/usr/bin/python3
"""Checks the outcome of crashload.py runs after restarts: every
acknowledged upload reads back identical; an attempt that was not
acknowledged is absent, or whole if its commit landed before the kill.
Usage: crashverify.py BUCKET ATTEMPTS_FILE ACKS_FILE (lines "KEY SHA256 ...")"""
import hashlib
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s3req  # noqa: E402

bucket, attempts_path, acks_path = sys.argv[1:4]
acks = dict(line.split()[:2] for line in open(acks_path) if line.strip())
attempts = [line.split() for line in open(attempts_path) if line.strip()]
sock = socket.create_connection(s3req.endpoint(), timeout=30)
bad = 0
whole = 0
for key, digest in acks.items():
    r = s3req.request("GET", f"/{bucket}/{key}", sock=sock)
    if r is None or r.status != 200 or hashlib.sha256(r.body).hexdigest() != digest:
        print(f"acknowledged {key}: {'missing' if r is None or r.status == 404 else 'differs'} ({r})")
        bad += 1
unacked = 0
for key, digest in attempts:
    if key in acks:
        continue
    unacked += 1
    r = s3req.request("GET", f"/{bucket}/{key}", sock=sock)
    if r is not None and r.status == 200:
        if hashlib.sha256(r.body).hexdigest() != digest:
            print(f"unacknowledged {key} is visible and partial")
            bad += 1
        else:
            whole += 1
    elif r is None or r.status != 404:
        print(f"unacknowledged {key}: unexpected answer {r}")
        bad += 1
print(f"{len(acks)} acknowledged uploads intact; {unacked} unacknowledged attempts: "
      f"{whole} whole (committed before the kill), {unacked - whole} absent")
sys.exit(1 if bad or len(acks) < 20 else 0)
