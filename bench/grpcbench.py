#!/usr/bin/env python3
"""gRPC load for bench/bench.py's grpc-unary and grpc-stream scenarios (needs grpcio: the
``test`` extra; h2load cannot speak gRPC and ghz is not packaged here).

Subcommands:

* ``server --port P``: a grpcio server (generic handlers, bytes messages, no protoc) with
  ``bench.Echo/Unary`` (the request back) and ``bench.Echo/Bidi`` (each message back).
* ``probe --port P [--tls CERT] [--host H]``: one Unary call; exit 0 when it answers.
* ``client --port P --tls CERT --host H -c N --seconds S --mode unary|stream``: grpc.aio,
  ``N / 10`` channels (HTTP/2 connections, at least one) with ``N`` calls in flight in all,
  as bench.py's h2load runs 10 streams per connection. ``unary``: back-to-back unary calls of
  a 16-byte message; ``stream``: ``N`` bidi streams, each doing back-to-back round trips of a
  16-byte message (a round trip counts as a request). Prints one JSON line: requests,
  seconds, requests_per_s, p50/p90/p99 latency (ms) and errors.

The client and the backend are Python (grpcio's C core underneath): on one load CPU they are
usually the bottleneck, so the proxy's CPU time per request is the figure to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from concurrent import futures

import grpc

SERVICE = "bench.Echo"
MESSAGE = b"0123456789abcdef"
STREAMS_PER_CHANNEL = 10


def serve(port: int) -> None:
    def unary(request, context):
        return request

    def bidi(requests, context):
        for message in requests:
            yield message

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    }),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def _target(args) -> tuple[str, dict]:
    options = [("grpc.default_authority", args.host)]
    if args.tls:
        options.append(("grpc.ssl_target_name_override", args.host))
    return f"127.0.0.1:{args.port}", dict(options=options)


def _credentials(args):
    with open(args.tls, "rb") as f:
        return grpc.ssl_channel_credentials(root_certificates=f.read())


def probe(args) -> int:
    target, kw = _target(args)
    channel = grpc.secure_channel(target, _credentials(args), **kw) if args.tls else \
        grpc.insecure_channel(target, **kw)
    try:
        answer = channel.unary_unary(f"/{SERVICE}/Unary")(MESSAGE, timeout=2)
        return 0 if answer == MESSAGE else 1
    except grpc.RpcError as error:
        print(f"probe: {error.code()}: {error.details()}", file=sys.stderr)
        return 1
    finally:
        channel.close()


async def _load(args) -> dict:
    target, kw = _target(args)
    count = max(1, args.connections // STREAMS_PER_CHANNEL)
    channels = [grpc.aio.secure_channel(target, _credentials(args), **kw) if args.tls else
                grpc.aio.insecure_channel(target, **kw) for _ in range(count)]
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + args.seconds

    async def unary_worker(channel) -> None:
        nonlocal errors
        call = channel.unary_unary(f"/{SERVICE}/Unary")
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                await call(MESSAGE, timeout=10)
            except grpc.RpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)

    async def stream_worker(channel) -> None:
        nonlocal errors
        stream = channel.stream_stream(f"/{SERVICE}/Bidi")(timeout=args.seconds + 30)
        try:
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                await stream.write(MESSAGE)
                await stream.read()
                latencies.append(time.perf_counter() - t0)
            await stream.done_writing()
            while await stream.read() is not grpc.aio.EOF:
                pass
        except grpc.RpcError:
            errors += 1

    worker = unary_worker if args.mode == "unary" else stream_worker
    started = time.monotonic()
    await asyncio.gather(*(worker(channels[i % count]) for i in range(args.connections)))
    seconds = time.monotonic() - started
    for channel in channels:
        await channel.close()
    latencies.sort()

    def pct(p: int):
        return round(latencies[min(len(latencies) - 1, len(latencies) * p // 100)] * 1e3, 3) if latencies else None

    return {"requests": len(latencies), "seconds": round(seconds, 3),
            "requests_per_s": round(len(latencies) / seconds, 1) if seconds else 0.0,
            "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "errors": errors}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, required=True)
    for name in ("probe", "client"):
        c = sub.add_parser(name)
        c.add_argument("--port", type=int, required=True)
        c.add_argument("--host", default="bench.local")
        c.add_argument("--tls", help="the proxy's certificate (PEM), trusted as the root")
        if name == "client":
            c.add_argument("-c", "--connections", type=int, default=50, help="calls in flight")
            c.add_argument("--seconds", type=float, default=10.0)
            c.add_argument("--mode", choices=("unary", "stream"), default="unary")
    args = parser.parse_args(argv)
    if args.command == "server":
        serve(args.port)
        return 0
    if args.command == "probe":
        return probe(args)
    print(json.dumps(asyncio.run(_load(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
