#!/usr/bin/python3
"""etcd's reference load for bench/metabench.sh (not a test): N puts of
64-byte values under distinct keys over etcd's native gRPC API
(etcdserverpb.KV/Put), C in flight on one asyncio loop.

Usage: etcdput.py HOST:PORT COUNT CONCURRENCY
Prints one JSON line: ops_per_s, p50_ms, p99_ms, errors.

The PutRequest is encoded by hand (field 1 key, field 2 value: protobuf
length-delimited bytes), so no generated stubs are needed; the reply is
not decoded (a call that returns is a put etcd committed)."""
import asyncio
import json
import sys
import time

import grpc


def put_request(key, value):
    def field(num, data):
        n, out = len(data), bytearray([(num << 3) | 2])
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                break
        return bytes(out) + data
    return field(1, key) + field(2, value)


async def main(target, count, conc):
    value = b"v" * 64
    lat = []
    errors = 0
    nxt = 0
    async with grpc.aio.insecure_channel(target) as ch:
        put = ch.unary_unary("/etcdserverpb.KV/Put", request_serializer=None,
                             response_deserializer=None)

        async def worker():
            nonlocal nxt, errors
            while nxt < count:
                i = nxt
                nxt += 1
                t0 = time.monotonic()
                try:
                    await put(put_request(b"k-%d" % i, value))
                except grpc.RpcError:
                    errors += 1
                lat.append(time.monotonic() - t0)

        t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(conc)))
        secs = time.monotonic() - t0
    lat.sort()
    print(json.dumps({"count": count, "concurrency": conc, "seconds": round(secs, 3),
                      "ops_per_s": round(count / secs, 1),
                      "p50_ms": round(lat[len(lat) // 2] * 1000, 3),
                      "p99_ms": round(lat[len(lat) * 99 // 100] * 1000, 3), "errors": errors}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
