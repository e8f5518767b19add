#!/usr/bin/python3
"""Streams one large object through the gateway and back while watching the
server's resident memory.

  bigobject.py PID BUCKET KEY SIZE_MIB

PUT: a SigV4 request with UNSIGNED-PAYLOAD and a Content-Length of
SIZE_MIB MiB, the body generated on the fly (never held whole, here or
there); the returned ETag must be the MD5 of what was sent. GET: the body
is read in pieces and hashed; it must be the same MD5 and length. A thread
samples VmRSS of PID every 100 ms; the script prints
  baseline_kib=N peak_kib=N put_s=F get_s=F
and exits non-zero on any mismatch.
"""
import hashlib
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s3req  # noqa: E402

MIB = 1 << 20


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except OSError:
                return
            time.sleep(0.1)


def head_of(sock):
    """Reads the status line and headers; returns (status, headers, rest)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = sock.recv(65536)
        if not b:
            raise ConnectionError("closed before the response head")
        buf += b
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    hd = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hd[k.strip().lower()] = v.strip()
    return status, hd, rest


def signed_head(method, path, extra):
    host, port = s3req.endpoint()
    h = {"host": f"{host}:{port}"}
    h.update(extra)
    s3req.sign_v4(method, path, [], h, "UNSIGNED-PAYLOAD",
                  os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in h.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def main():
    pid, bucket, key, mib = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    size = mib * MIB
    path = f"/{bucket}/{key}"
    block = bytearray(os.urandom(MIB))
    baseline = rss_kib(pid)
    sampler = Sampler(pid)
    sampler.start()

    t0 = time.monotonic()
    sent = hashlib.md5()
    sock = socket.create_connection(s3req.endpoint(), timeout=120)
    sock.sendall(signed_head("PUT", path, {"content-length": str(size),
                                           "content-type": "application/octet-stream"}))
    for i in range(mib):
        block[0:8] = i.to_bytes(8, "big")  # every MiB differs
        sent.update(block)
        sock.sendall(block)
    status, hd, _ = head_of(sock)
    sock.close()
    put_s = time.monotonic() - t0
    if status != 200:
        print(f"PUT answered {status}", file=sys.stderr)
        return 1
    if hd.get("etag", "").strip('"') != sent.hexdigest():
        print(f"PUT ETag {hd.get('etag')} is not the MD5 sent ({sent.hexdigest()})", file=sys.stderr)
        return 1

    t0 = time.monotonic()
    got = hashlib.md5()
    sock = socket.create_connection(s3req.endpoint(), timeout=120)
    sock.sendall(signed_head("GET", path, {}))
    status, hd, rest = head_of(sock)
    if status != 200 or int(hd.get("content-length", -1)) != size:
        print(f"GET answered {status}, length {hd.get('content-length')}", file=sys.stderr)
        return 1
    n = len(rest)
    got.update(rest)
    buf = bytearray(4 * MIB)
    view = memoryview(buf)
    while n < size:
        r = sock.recv_into(view, min(len(buf), size - n))
        if r == 0:
            break
        got.update(view[:r])
        n += r
    sock.close()
    get_s = time.monotonic() - t0
    sampler.stop = True
    sampler.join()
    print(f"baseline_kib={baseline} peak_kib={sampler.peak} put_s={put_s:.1f} get_s={get_s:.1f}")
    if n != size or got.hexdigest() != sent.hexdigest():
        print(f"GET returned {n} bytes, MD5 {got.hexdigest()}; expected {size}, {sent.hexdigest()}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
