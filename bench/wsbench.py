#!/usr/bin/env python3
"""WebSocket echo round-trips for the benchmark: an echo backend and a load client.

Standard library only (asyncio protocols, no uvloop), so any python3 >= 3.9 runs it.

    python3 bench/wsbench.py echo --port 9001
    python3 bench/wsbench.py client --port 8080 --host bench.local -c 50 --seconds 10
    python3 bench/wsbench.py client --port 8080 -c 10 --round-trips 1000

``echo`` answers a WebSocket upgrade with 101 and sends every data frame back unmasked
(opcode kept); a close frame is answered with a close frame. A plain GET (no upgrade) gets
``200 ok\\n`` and the connection is closed, so the benchmark's readiness check works.

``client`` opens N connections through the proxy, upgrades each, then on every connection
sends one small masked text frame, waits for its echo and sends the next, until
``--seconds`` pass or each connection did ``--round-trips`` round-trips (whichever comes
first; both bounded). It prints one JSON object: round_trips, seconds, round_trips_per_s,
p50_ms/p90_ms/p99_ms (per round-trip latency), errors (connections that failed or closed).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import signal
import sys
import time

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PAYLOAD = b"0123456789abcdef"  # 16 bytes: a small frame
MAX_BUFFER = 1 << 20  # a peer that sends more than this without a complete frame is dropped


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key.strip() + _GUID).digest())


def parse_frame(buf: bytearray) -> tuple[int, bytes, int] | None:
    """(opcode, unmasked payload, frame length) of the first complete frame in buf, or None."""
    if len(buf) < 2:
        return None
    opcode, length, masked = buf[0] & 0x0F, buf[1] & 0x7F, buf[1] & 0x80
    pos = 2
    if length == 126:
        if len(buf) < 4:
            return None
        length, pos = int.from_bytes(buf[2:4], "big"), 4
    elif length == 127:
        if len(buf) < 10:
            return None
        length, pos = int.from_bytes(buf[2:10], "big"), 10
    mask = b""
    if masked:
        if len(buf) < pos + 4:
            return None
        mask, pos = bytes(buf[pos:pos + 4]), pos + 4
    if len(buf) < pos + length:
        return None
    payload = bytes(buf[pos:pos + length])
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return opcode, payload, pos + length


def frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    n = len(payload)
    head = bytes([0x80 | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if mask:
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


# ------------------------------------------------------------------------------------------
# Echo backend
# ------------------------------------------------------------------------------------------


class EchoServer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buf, self.upgraded = transport, bytearray(), False

    def data_received(self, data):
        self.buf += data
        if len(self.buf) > MAX_BUFFER:
            self.transport.abort()
            return
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = bytes(self.buf[:end]).decode("latin-1"), self.buf[end + 4:]
            headers = {}
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            key = headers.get("sec-websocket-key")
            if "websocket" not in headers.get("upgrade", "").lower() or not key:
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                     b"Content-Length: 3\r\nConnection: close\r\n\r\nok\n")
                self.transport.close()
                return
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                                 + accept_key(key.encode()) + b"\r\n\r\n")
            self.upgraded = True
        while True:
            parsed = parse_frame(self.buf)
            if parsed is None:
                return
            opcode, payload, used = parsed
            del self.buf[:used]
            if opcode == 8:  # close: answer and hang up
                self.transport.write(frame(8, payload[:2]))
                self.transport.close()
                return
            if opcode == 9:  # ping -> pong
                self.transport.write(frame(10, payload))
            elif opcode != 10:
                self.transport.write(frame(opcode, payload))


async def serve_echo(port: int, host: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoServer, host, port, backlog=1024, reuse_address=True)
    stop = loop.create_future()
    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, lambda: stop.done() or stop.set_result(None))
    print(f"wsbench echo listening on {host}:{port}", flush=True)
    await stop
    server.close()


# ------------------------------------------------------------------------------------------
# Load client
# ------------------------------------------------------------------------------------------


class EchoClient(asyncio.Protocol):
    """One connection: upgrade, then send a frame, await its echo, repeat."""

    def __init__(self, run: "ClientRun"):
        self.run, self.buf, self.upgraded, self.count, self.t0 = run, bytearray(), False, 0, 0.0
        self.key = base64.b64encode(os.urandom(16))
        self.out = frame(1, PAYLOAD, os.urandom(4))  # the mask is fixed per connection
        self.expect = frame(1, PAYLOAD)
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        transport.write(f"GET {self.run.path} HTTP/1.1\r\nHost: {self.run.host}\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {self.key.decode()}\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n".encode())

    def _finish(self, error: str | None) -> None:
        if not self.done.done():
            self.done.set_result(error)

    def _send(self) -> None:
        if self.count >= self.run.round_trips or time.monotonic() >= self.run.deadline:
            self.transport.write(frame(8, (1000).to_bytes(2, "big"), os.urandom(4)))
            self._finish(None)
            return
        self.t0 = time.perf_counter()
        self.transport.write(self.out)

    def data_received(self, data):
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_BUFFER:
                    self.transport.abort()
                return
            status = bytes(self.buf[:end]).split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                self._finish(f"upgrade refused: {status.decode('latin-1')}")
                self.transport.close()
                return
            del self.buf[:end + 4]
            self.upgraded = True
            self._send()
            return
        if self.done.done():
            return  # after our close frame: ignore the peer's close
        n = len(self.expect)
        while len(self.buf) >= n:
            if self.buf[:n] != self.expect:
                self._finish("unexpected frame")
                self.transport.abort()
                return
            del self.buf[:n]
            self.run.latencies.append(time.perf_counter() - self.t0)
            self.count += 1
            self._send()

    def connection_lost(self, exc):
        self._finish(f"connection lost: {exc}" if not self.done.done() else None)


class ClientRun:
    def __init__(self, args):
        self.host, self.path = args.host, args.path
        self.round_trips = args.round_trips
        self.deadline = 0.0
        self.latencies: list[float] = []


async def run_client(args) -> dict:
    loop = asyncio.get_running_loop()
    run = ClientRun(args)
    run.deadline = time.monotonic() + 3600  # set for real once every connection is open
    conns = []
    for _ in range(args.connections):
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: EchoClient(run), args.target, args.port), 10)
        conns.append(proto)
    t0 = time.monotonic()
    run.deadline = t0 + args.seconds
    # Bounded: every connection ends by the deadline; allow slack for a stuck peer.
    await asyncio.wait([c.done for c in conns], timeout=args.seconds + 10)
    elapsed = time.monotonic() - t0
    errors = [(c.done.result() if c.done.done() else "timeout") for c in conns]
    errors = [e for e in errors if e]
    for c in conns:
        c.transport.close()
    await asyncio.sleep(0.05)
    lat = sorted(run.latencies)

    def pct(p: float) -> float | None:
        return lat[min(len(lat) - 1, int(len(lat) * p))] * 1e3 if lat else None

    return {"round_trips": len(lat), "seconds": elapsed,
            "round_trips_per_s": len(lat) / elapsed if elapsed > 0 else None,
            "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
            "connections": args.connections, "errors": len(errors),
            "error_samples": sorted(set(errors))[:5]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("echo", help="run the echo backend until SIGTERM/SIGINT")
    e.add_argument("--port", type=int, required=True)
    e.add_argument("--bind", default="127.0.0.1")
    c = sub.add_parser("client", help="measure echo round-trips")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--target", default="127.0.0.1", choices=["127.0.0.1"],
                   help="address to connect to (loopback only)")
    c.add_argument("--host", default="bench.local", help="Host header")
    c.add_argument("--path", default="/")
    c.add_argument("--connections", "-c", type=int, default=50)
    c.add_argument("--seconds", type=float, default=10, help="run length (at most 600)")
    c.add_argument("--round-trips", type=int, default=10_000_000,
                   help="round-trips per connection at most")
    args = p.parse_args(argv)
    if args.cmd == "echo":
        if args.bind != "127.0.0.1":
            p.error("loopback only")
        asyncio.run(serve_echo(args.port, args.bind))
        return 0
    if not (1 <= args.connections <= 10000 and 0 < args.seconds <= 600 and args.round_trips > 0):
        p.error("--connections in [1, 10000], --seconds in (0, 600], --round-trips > 0")
    res = asyncio.run(run_client(args))
    print(json.dumps(res))
    return 0 if res["round_trips"] else 1


if __name__ == "__main__":
    sys.exit(main())
