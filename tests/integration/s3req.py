#!/usr/bin/python3
"""The test suite's own S3 client: SigV4 (header and presigned), SigV2 and
aws-chunked bodies, written from the AWS documentation with the standard
library only, so that tests can send exactly the bytes they mean to --
including malformed ones -- over a raw socket.

As a command:
  s3req.py [--presign SECONDS] [--sigv2] [--unsigned] [-H 'Name: value']...
           [--data TEXT | --data-file FILE] [--chunked-signed] METHOD PATH[?QUERY]
prints the status code on the first line, then the response body.
Environment: ENDPOINT (http://127.0.0.1:PORT), AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY.
"""
import base64
import datetime
import hashlib
import hmac
import os
import socket
import sys
import urllib.parse

EMPTY_SHA = hashlib.sha256(b"").hexdigest()
REGION = "us-east-1"


def _uri_encode(s, keep_slash):
    safe = "-_.~" + ("/" if keep_slash else "")
    return urllib.parse.quote(s, safe=safe)


def _hmac(key, msg):
    return hmac.new(key, msg.encode() if isinstance(msg, str) else msg, hashlib.sha256).digest()


def signing_key(secret, date8, region=REGION, service="s3"):
    k = _hmac(("AWS4" + secret).encode(), date8)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def canonical_query(query):
    """query: list of (name, value) already decoded."""
    items = sorted((_uri_encode(k, False), _uri_encode(v, False)) for k, v in query)
    return "&".join(f"{k}={v}" for k, v in items)


def sign_v4(method, path, query, headers, payload_hash, access, secret, when=None, region=REGION):
    """Adds x-amz-date, x-amz-content-sha256 and Authorization to headers
    (a dict, names lower-case). path is the raw (encoded) path."""
    when = when or datetime.datetime.utcnow()
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    date8 = amz_date[:8]
    headers["x-amz-date"] = amz_date
    headers["x-amz-content-sha256"] = payload_hash
    signed = sorted(headers)
    canon_headers = "".join(f"{h}:{' '.join(str(headers[h]).split())}\n" for h in signed)
    creq = "\n".join([method, path, canonical_query(query), canon_headers, ";".join(signed), payload_hash])
    scope = f"{date8}/{region}/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = signing_key(secret, date8, region)
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access}/{scope}, "
                                f"SignedHeaders={';'.join(signed)}, Signature={sig}")
    return key, amz_date, scope, sig


def presign_v4(method, host, path, query, access, secret, expires, when=None, region=REGION):
    when = when or datetime.datetime.utcnow()
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    q = list(query) + [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Credential", f"{access}/{scope}"),
                       ("X-Amz-Date", amz_date), ("X-Amz-Expires", str(expires)), ("X-Amz-SignedHeaders", "host")]
    creq = "\n".join([method, path, canonical_query(q), f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    sig = hmac.new(signing_key(secret, amz_date[:8], region), sts.encode(), hashlib.sha256).hexdigest()
    q.append(("X-Amz-Signature", sig))
    return path + "?" + canonical_query(q)


def sign_v2(method, path, headers, access, secret):
    headers["date"] = datetime.datetime.utcnow().strftime("%a, %d %b %Y %H:%M:%S GMT")
    amz = "".join(f"{k}:{headers[k]}\n" for k in sorted(h for h in headers if h.startswith("x-amz-")))
    sts = "\n".join([method, headers.get("content-md5", ""), headers.get("content-type", ""), headers["date"]])
    sts += "\n" + amz + urllib.parse.unquote(path.split("?")[0])
    sig = base64.b64encode(hmac.new(secret.encode(), sts.encode(), hashlib.sha1).digest()).decode()
    headers["authorization"] = f"AWS {access}:{sig}"


def chunked_signed_body(data, key, amz_date, scope, seed_sig, chunk=65536):
    """aws-chunked body with a chunk-signature chain
    (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)."""
    out, prev = [], seed_sig
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for p in pieces:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA,
                         hashlib.sha256(p).hexdigest()])
        prev = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        out.append(f"{len(p):x};chunk-signature={prev}\r\n".encode() + p + b"\r\n")
    return b"".join(out)


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return f"<{self.status} {self.body[:200]!r}>"


def endpoint():
    e = os.environ["ENDPOINT"]
    u = urllib.parse.urlparse(e)
    return u.hostname, u.port


def read_response(sock, head=False):
    """Reads one HTTP/1.1 response (Content-Length or chunked)."""
    f = sock.makefile("rb")
    line = f.readline()
    if not line:
        raise ConnectionError("connection closed before a response")
    parts = line.decode("latin-1").split(" ", 2)
    status = int(parts[1])
    headers = []
    while True:
        h = f.readline().decode("latin-1")
        if h in ("\r\n", "\n", ""):
            break
        k, _, v = h.partition(":")
        headers.append((k.strip(), v.strip()))
    hd = {k.lower(): v for k, v in headers}
    body = b""
    if head or status in (204, 304) or 100 <= status < 200:
        pass
    elif "content-length" in hd:
        n = int(hd["content-length"])
        while len(body) < n:
            b = f.read(n - len(body))
            if not b:
                break
            body += b
    elif hd.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                f.readline()
                break
            body += f.read(size)
            f.readline()
    return Response(status, headers, body)


def raw(data, timeout=10, head=False, sock=None):
    """Sends raw bytes, returns the response (None if the server closed)."""
    own = sock is None
    if own:
        sock = socket.create_connection(endpoint(), timeout=timeout)
    try:
        sock.sendall(data)
        try:
            return read_response(sock, head)
        except (ConnectionError, ValueError, IndexError, socket.timeout):
            return None
    finally:
        if own:
            sock.close()


def request(method, target, headers=None, body=b"", access=None, secret=None, sign="v4",
            payload_hash=None, sock=None, send_body=None, when=None):
    """A signed request. target is the raw path with an optional query."""
    access = access or os.environ["AWS_ACCESS_KEY_ID"]
    secret = secret or os.environ["AWS_SECRET_ACCESS_KEY"]
    host, port = endpoint()
    h = {k.lower(): v for k, v in (headers or {}).items()}
    h.setdefault("host", f"{host}:{port}")
    path, _, qs = target.partition("?")
    query = urllib.parse.parse_qsl(qs, keep_blank_values=True)
    if sign == "v4":
        sign_v4(method, path, query, h, payload_hash or hashlib.sha256(body).hexdigest(), access, secret, when)
    elif sign == "v2":
        sign_v2(method, target, h, access, secret)
    data = send_body if send_body is not None else body
    if data or method in ("PUT", "POST"):
        h.setdefault("content-length", str(len(data)))
    lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in h.items()]
    return raw(("\r\n".join(lines) + "\r\n\r\n").encode() + data, head=(method == "HEAD"), sock=sock)


def main(argv):
    import argparse
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("method")
    p.add_argument("target")
    p.add_argument("-H", "--header", action="append", default=[])
    p.add_argument("--data")
    p.add_argument("--data-file")
    p.add_argument("--presign", type=int)
    p.add_argument("--sigv2", action="store_true")
    p.add_argument("--unsigned", action="store_true")
    p.add_argument("--show-headers", action="store_true")
    a = p.parse_args(argv)
    body = a.data.encode() if a.data is not None else (open(a.data_file, "rb").read() if a.data_file else b"")
    headers = dict(h.split(": ", 1) for h in a.header)
    if a.presign is not None:
        host, port = endpoint()
        path, _, qs = a.target.partition("?")
        url = presign_v4(a.method, f"{host}:{port}", path, urllib.parse.parse_qsl(qs),
                         os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], a.presign)
        print(f"http://{host}:{port}{url}")
        return 0
    sign = None if a.unsigned else ("v2" if a.sigv2 else "v4")
    r = request(a.method, a.target, headers, body, sign=sign)
    if r is None:
        print("000")
        return 1
    print(r.status)
    if a.show_headers:
        for k, v in r.headers:
            print(f"{k}: {v}")
        print()
    sys.stdout.flush()
    sys.stdout.buffer.write(r.body)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
