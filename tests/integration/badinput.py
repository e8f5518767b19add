#!/usr/bin/python3
"""Hostile and broken requests against a running minikv server.

Every case checks the HTTP status and the S3 error code in the XML body,
then that the server still serves a normal request; at the end, objects
stored before the abuse must read back intact. Run by t_badinput.sh (which
starts the server and sets ENDPOINT and the credentials)."""
import base64
import datetime
import hashlib
import os
import re
import resource
import socket
import sys
import time
import urllib.parse
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s3req  # noqa: E402

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"  FAIL {what}", flush=True)
    return cond


def code_of(r):
    m = re.search(rb"<Code>([^<]*)</Code>", r.body) if r else None
    return m.group(1).decode() if m else None


def expect(r, status, code, what):
    ok = r is not None and r.status == status and (code is None or code_of(r) == code)
    got = f"{r.status} {code_of(r)}" if r else "no response (connection closed)"
    check(ok, f"{what}: expected {status} {code}, got {got}")
    if r is not None and code is not None and r.status >= 400 and r.body:
        check(r.header("Content-Type") == "application/xml", f"{what}: XML error body")


def alive(what):
    r = s3req.request("GET", "/bad/keep-1")
    ok = r is not None and r.status == 200 and r.body == KEEP[0]
    check(ok, f"server still serving after: {what}")


def section(name):
    print(f"- {name}", flush=True)


host, port = s3req.endpoint()
HOSTPORT = f"{host}:{port}"

# Objects that must survive everything below.
KEEP = [os.urandom(1000), os.urandom(300000)]
r = s3req.request("PUT", "/bad")
assert r and r.status == 200, f"create bucket: {r}"
for i, data in enumerate(KEEP, 1):
    r = s3req.request("PUT", f"/bad/keep-{i}", body=data)
    assert r and r.status == 200, f"put keep-{i}: {r}"

section("malformed request lines and headers")
for raw in [b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /bad HTTP/1.1\r\nNoColon\r\n\r\n",
            b"GET /bad HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n",
            b"GET /bad HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"\x00\x01\x02\xff\r\n\r\n"]:
    r = s3req.raw(raw)
    check(r is None or r.status == 400, f"malformed {raw[:30]!r}: 400 or closed (got {r})")
alive("malformed requests")
r = s3req.raw(b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
check(r is None or r.status == 414, f"over-long request line: 414 (got {r})")
r = s3req.raw(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100000 + b"\r\n\r\n")
check(r is None or r.status == 431, f"over-long header block: 431 (got {r})")
r = s3req.raw(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(500)) + b"\r\n")
check(r is None or r.status == 431, f"too many headers: 431 (got {r})")
alive("oversized requests")

section("bodies shorter and longer than Content-Length")
s = socket.create_connection((host, port), timeout=10)
h = {"host": HOSTPORT, "content-length": "100000"}
body = os.urandom(5000)
s3req.sign_v4("PUT", "/bad/short", [], h, "UNSIGNED-PAYLOAD", os.environ["AWS_ACCESS_KEY_ID"],
              os.environ["AWS_SECRET_ACCESS_KEY"])
s.sendall(("PUT /bad/short HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n").encode() + body)
time.sleep(0.3)
s.close()
time.sleep(0.5)
r = s3req.request("HEAD", "/bad/short")
expect(r, 404, None, "an upload cut short is not visible")
alive("short body")
data = os.urandom(1000)
h = {"host": HOSTPORT}
s3req.sign_v4("PUT", "/bad/long", [], h, hashlib.sha256(data).hexdigest(), os.environ["AWS_ACCESS_KEY_ID"],
              os.environ["AWS_SECRET_ACCESS_KEY"])
h["content-length"] = "1000"
s = socket.create_connection((host, port), timeout=10)
s.sendall(("PUT /bad/long HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n").encode()
          + data + b"EXTRA BYTES THAT ARE NOT A REQUEST\r\n\r\n")
r1 = s3req.read_response(s)
expect(r1, 200, None, "declared part of a longer body is stored")
try:
    r2 = s3req.read_response(s)
except (ConnectionError, ValueError):
    r2 = None
check(r2 is None or r2.status == 400, f"bytes past Content-Length are a bad next request (got {r2})")
s.close()
r = s3req.request("GET", "/bad/long")
check(r is not None and r.body == data, "the stored object has exactly Content-Length bytes")
# A signed payload hash that does not match the body.
r = s3req.request("PUT", "/bad/sha", body=b"abc", payload_hash=hashlib.sha256(b"abd").hexdigest())
expect(r, 400, "XAmzContentSHA256Mismatch", "x-amz-content-sha256 mismatch")
r = s3req.request("PUT", "/bad/md5", headers={"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="}, body=b"not empty")
expect(r, 400, "BadDigest", "Content-MD5 mismatch")
r = s3req.request("PUT", "/bad/md5", headers={"Content-MD5": "not base64!"}, body=b"x")
expect(r, 400, "InvalidDigest", "malformed Content-MD5")
r = s3req.request("PUT", "/bad/crc", headers={"x-amz-checksum-crc32": "AAAAAA=="}, body=b"hello")
expect(r, 400, "BadDigest", "x-amz-checksum-crc32 mismatch")
for k in ("sha", "md5", "crc"):
    expect(s3req.request("HEAD", f"/bad/{k}"), 404, None, f"nothing stored for a failed {k} check")
alive("body checks")

section("signatures")
expect(s3req.request("GET", "/bad/keep-1", sign=None), 403, "AccessDenied", "unsigned request")
expect(s3req.request("GET", "/bad/keep-1", secret="wrong-secret-wrong-secret"), 403, "SignatureDoesNotMatch",
       "wrong secret")
expect(s3req.request("GET", "/bad/keep-1", access="NOSUCHKEY123"), 403, "InvalidAccessKeyId", "unknown access key")
expect(s3req.request("GET", "/bad/keep-1", sign="v2", secret="wrong"), 403, "SignatureDoesNotMatch", "wrong SigV2")
expect(s3req.request("GET", "/bad/keep-1", sign="v2"), 200, None, "correct SigV2")
old = datetime.datetime.utcnow() - datetime.timedelta(hours=1)
expect(s3req.request("GET", "/bad/keep-1", when=old), 403, "RequestTimeTooSkewed", "request an hour old")
h = {"host": HOSTPORT}
s3req.sign_v4("GET", "/bad/keep-1", [], h, s3req.EMPTY_SHA, os.environ["AWS_ACCESS_KEY_ID"],
              os.environ["AWS_SECRET_ACCESS_KEY"])
# Tampered after signing: another second (not the same one by chance).
h["x-amz-date"] = h["x-amz-date"][:-3] + ("58Z" if h["x-amz-date"].endswith("59Z") else "59Z")
r = s3req.raw(("GET /bad/keep-1 HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n").encode())
expect(r, 403, "SignatureDoesNotMatch", "header changed after signing")
r = s3req.raw(b"GET /bad/keep-1 HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 garbage\r\n\r\n")
check(r is not None and r.status in (400, 403), f"malformed Authorization header: 400/403 (got {r})")
url = s3req.presign_v4("GET", HOSTPORT, "/bad/keep-1", [], os.environ["AWS_ACCESS_KEY_ID"],
                       os.environ["AWS_SECRET_ACCESS_KEY"], 60)
r = s3req.raw(f"GET {url} HTTP/1.1\r\nHost: {HOSTPORT}\r\n\r\n".encode())
check(r is not None and r.status == 200 and r.body == KEEP[0], "valid presigned URL works")
tampered = url.replace("/bad/keep-1", "/bad/keep-2")
r = s3req.raw(f"GET {tampered} HTTP/1.1\r\nHost: {HOSTPORT}\r\n\r\n".encode())
expect(r, 403, "SignatureDoesNotMatch", "presigned URL with another key")
expired = s3req.presign_v4("GET", HOSTPORT, "/bad/keep-1", [], os.environ["AWS_ACCESS_KEY_ID"],
                           os.environ["AWS_SECRET_ACCESS_KEY"], 1,
                           when=datetime.datetime.utcnow() - datetime.timedelta(seconds=30))
r = s3req.raw(f"GET {expired} HTTP/1.1\r\nHost: {HOSTPORT}\r\n\r\n".encode())
expect(r, 403, "AccessDenied", "expired presigned URL")
# A chunk signature that breaks the chain.
data = os.urandom(200000)
h = {"host": HOSTPORT, "x-amz-decoded-content-length": str(len(data)), "content-encoding": "aws-chunked"}
key, amz, scope, seed = s3req.sign_v4("PUT", "/bad/chunked", [], h, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                      os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
good = s3req.chunked_signed_body(data, key, amz, scope, seed)
i = good.index(b"chunk-signature=") + len(b"chunk-signature=")
bad = good[:i] + (b"1" if good[i:i + 1] == b"0" else b"0") + good[i + 1:]  # one hex digit changed
for body, status, code, what in [(good, 200, None, "aws-chunked signed upload"),
                                 (bad, 403, "SignatureDoesNotMatch", "aws-chunked with a broken chunk signature")]:
    hh = dict(h)
    hh["content-length"] = str(len(body))
    r = s3req.raw(("PUT /bad/chunked HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hh.items())
                   + "\r\n").encode() + body)
    expect(r, status, code, what)
    if status == 200:
        g = s3req.request("GET", "/bad/chunked")
        check(g is not None and g.body == data, "aws-chunked object reads back")
        s3req.request("DELETE", "/bad/chunked")
expect(s3req.request("HEAD", "/bad/chunked"), 404, None, "nothing visible after a broken chunk signature")
# STREAMING-UNSIGNED-PAYLOAD-TRAILER, as current SDKs send by default: the
# CRC32 comes after the last chunk and is checked before the object exists.
data = os.urandom(150000)
crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
wrong = base64.b64encode((zlib.crc32(data) ^ 1).to_bytes(4, "big")).decode()
h = {"host": HOSTPORT, "x-amz-decoded-content-length": str(len(data)), "content-encoding": "aws-chunked",
     "x-amz-trailer": "x-amz-checksum-crc32"}
s3req.sign_v4("PUT", "/bad/trailer", [], h, "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
              os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
chunks = b"".join(f"{len(data[i:i + 65536]):x}\r\n".encode() + data[i:i + 65536] + b"\r\n"
                  for i in range(0, len(data), 65536))
for value, status, code, what in [(wrong, 400, "BadDigest", "trailing CRC32 that does not match"),
                                  (crc, 200, None, "trailing CRC32 upload")]:
    body = chunks + f"0\r\nx-amz-checksum-crc32:{value}\r\n\r\n".encode()
    hh = dict(h)
    hh["content-length"] = str(len(body))
    r = s3req.raw(("PUT /bad/trailer HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hh.items())
                   + "\r\n").encode() + body)
    expect(r, status, code, what)
    if status != 200:
        expect(s3req.request("HEAD", "/bad/trailer"), 404, None, "nothing stored for a bad trailing CRC32")
g = s3req.request("GET", "/bad/trailer", headers={"x-amz-checksum-mode": "ENABLED"})
check(g is not None and g.body == data, "trailer upload reads back")
check(g is not None and g.header("x-amz-checksum-crc32") == crc, "the trailing CRC32 is stored and returned")
s3req.request("DELETE", "/bad/trailer")
alive("signatures")

section("names")
for name in ["AB", "a", "bad_bucket", "-abc", "abc-", "a..b", "192.168.1.1", "x" * 64, "xn--abc"]:
    expect(s3req.request("PUT", "/" + urllib.parse.quote(name)), 400, "InvalidBucketName", f"bucket name {name!r}")
expect(s3req.request("GET", "/nosuchbucket/x"), 404, "NoSuchBucket", "missing bucket")
expect(s3req.request("GET", "/bad/nosuchkey"), 404, "NoSuchKey", "missing key")
for key, code in [("a/../b", "InvalidArgument"), ("../x", "InvalidArgument"), ("a/./b", "InvalidArgument"),
                  ("a//b", "InvalidArgument"), ("%FF%FE", "InvalidArgument"), ("k" * 1025, "KeyTooLongError"),
                  ("d/" + "n" * 256, "KeyTooLongError")]:
    expect(s3req.request("PUT", "/bad/" + key, body=b"x"), 400, code, f"key {key[:40]!r}")
r = s3req.request("PUT", "/bad/nul%00byte", body=b"x")
check(r is not None and r.status == 400, f"key with NUL: 400 (got {r})")
# A key that would make a file and a directory share a name.
expect(s3req.request("PUT", "/bad/file", body=b"f"), 200, None, "plain key")
expect(s3req.request("PUT", "/bad/file/child", body=b"c"), 409, "KeyConflict", "key under a file")
expect(s3req.request("PUT", "/bad/dir/child", body=b"c"), 200, None, "nested key")
expect(s3req.request("PUT", "/bad/dir", body=b"d"), 409, "KeyConflict", "file over a directory")
alive("names")

section("multipart")
r = s3req.request("POST", "/bad/mpu?uploads")
expect(r, 200, None, "create multipart upload")
uid = re.search(rb"<UploadId>([^<]+)</UploadId>", r.body).group(1).decode()
for pn in ["0", "10001", "-1", "abc"]:
    expect(s3req.request("PUT", f"/bad/mpu?partNumber={pn}&uploadId={uid}", body=b"x"), 400, "InvalidArgument",
           f"part number {pn}")
expect(s3req.request("PUT", "/bad/mpu?partNumber=1&uploadId=nosuchupload", body=b"x"), 404, "NoSuchUpload",
       "unknown upload id")
parts = [os.urandom(5 * 1024 * 1024), os.urandom(1000)]
etags = []
for i, p in enumerate(parts, 1):
    r = s3req.request("PUT", f"/bad/mpu?partNumber={i}&uploadId={uid}", body=p)
    expect(r, 200, None, f"upload part {i}")
    etags.append(r.header("ETag"))


def complete(pairs):
    xml = "<CompleteMultipartUpload>" + "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in pairs) + "</CompleteMultipartUpload>"
    return s3req.request("POST", f"/bad/mpu?uploadId={uid}", body=xml.encode())


expect(complete([(1, '"00000000000000000000000000000000"'), (2, etags[1])]), 400, "InvalidPart", "wrong ETag")
expect(complete([(2, etags[1]), (1, etags[0])]), 400, "InvalidPartOrder", "parts out of order")
expect(complete([(1, etags[0]), (3, etags[1])]), 400, "InvalidPart", "missing part")
r = s3req.request("POST", f"/bad/mpu?uploadId={uid}", body=b"<CompleteMultipartUpload><Part>")
expect(r, 400, "MalformedXML", "truncated XML")
r = s3req.request("POST", f"/bad/mpu?uploadId={uid}",
                  body=b'<!DOCTYPE x [<!ENTITY a "aaaa">]><CompleteMultipartUpload/>')
expect(r, 400, "MalformedXML", "XML with a DOCTYPE")
expect(s3req.request("HEAD", "/bad/mpu"), 404, None, "failed completions leave no object")
r = complete([(1, etags[0]), (2, etags[1])])
expect(r, 200, None, "correct completion after the failed ones")
g = s3req.request("GET", "/bad/mpu")
check(g is not None and g.body == parts[0] + parts[1], "completed object reads back")
check(g is not None and (g.header("ETag") or "").endswith('-2"'), "multipart ETag ends in -2")
alive("multipart")

section("not implemented, never faked")
for method, target in [("GET", "/bad?acl"), ("PUT", "/bad?policy"), ("GET", "/bad/keep-1?tagging"),
                       ("PUT", "/bad?versioning"), ("POST", "/bad/keep-1?select")]:
    expect(s3req.request(method, target, body=b"" if method == "GET" else b"<x/>"), 501, "NotImplemented",
           f"{method} {target}")

section("10,000 idle connections")
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 10000 + 200
if hard < want:
    print(f"  SKIP: RLIMIT_NOFILE hard limit {hard} < {want}")
else:
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    idle = []
    try:
        for _ in range(10000):
            idle.append(socket.create_connection((host, port), timeout=10))
        t0 = time.time()
        r = s3req.request("GET", "/bad/keep-2")
        check(r is not None and r.status == 200 and r.body == KEEP[1],
              f"a request is served while 10,000 idle connections are open (got {r})")
        check(time.time() - t0 < 5, f"and promptly ({time.time() - t0:.2f}s)")
    finally:
        for c in idle:
            c.close()
    time.sleep(1)
    alive("10,000 idle connections")

section("nothing lost")
for i, data in enumerate(KEEP, 1):
    r = s3req.request("GET", f"/bad/keep-{i}")
    check(r is not None and r.status == 200 and r.body == data, f"keep-{i} intact")

if FAILURES:
    print(f"{len(FAILURES)} failure(s)")
    sys.exit(1)
print("all bad-input cases answered correctly")
