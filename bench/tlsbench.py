#!/usr/bin/env python3
"""Full TLS handshakes for the benchmark: one new connection per request, never resumed.

Standard library only, so any python3 >= 3.9 runs it.

    python3 bench/tlsbench.py --port 8443 --host bench.local -c 8 --seconds 10

wrk and h2load resume TLS sessions when they reconnect (the server's session cache or
tickets), so their "new connection" runs measure resumed handshakes. Here each of ``-c``
processes connects, does a full handshake (a fresh SSLContext per connection, no session
offered; SNI ``--host``; certificate not verified: the benchmark's is self-signed), sends
``GET / HTTP/1.1`` with ``Host`` and ``Connection: close``, reads the response to the end,
closes, and starts again, until ``--seconds`` pass or ``--requests`` per process are done
(both bounded). It prints one JSON object: requests, seconds, requests_per_s, p50_ms/p90_ms/
p99_ms (connect to last byte), resumed (handshakes the server resumed: should be 0),
errors, non_2xx.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import ssl
import time


def _one(host: str, port: int, path: str) -> tuple[float, bool, int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # fresh: nothing to resume from
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            while True:
                data = tls.recv(65536)
                if not data:
                    break
                chunks.append(data)
            resumed = tls.session_reused
    head = b"".join(chunks)[:16]
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else 0
    return (time.perf_counter() - started) * 1000, resumed, status


def _worker(args: argparse.Namespace, out) -> None:
    deadline = time.monotonic() + args.seconds
    latencies: list[float] = []
    resumed = errors = non_2xx = 0
    while time.monotonic() < deadline and len(latencies) + errors < args.requests:
        try:
            ms, was_resumed, status = _one(args.host, args.port, args.path)
        except (OSError, ValueError, IndexError):
            errors += 1
            continue
        latencies.append(ms)
        resumed += was_resumed
        non_2xx += not 200 <= status < 300
    out.put((latencies, resumed, errors, non_2xx))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="bench.local", help="SNI and Host")
    parser.add_argument("--path", default="/")
    parser.add_argument("-c", "--connections", type=int, default=8, help="processes, one connection each at a time")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=1_000_000, help="per process, at most")
    args = parser.parse_args()
    out: multiprocessing.Queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_worker, args=(args, out)) for _ in range(args.connections)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    results = [out.get(timeout=args.seconds + 60) for _ in workers]
    for worker in workers:
        worker.join(10)
    seconds = time.monotonic() - started
    latencies = sorted(ms for result in results for ms in result[0])

    def pct(p: int) -> float | None:
        return round(latencies[min(len(latencies) - 1, len(latencies) * p // 100)], 3) if latencies else None

    print(json.dumps({
        "requests": len(latencies), "seconds": round(seconds, 3),
        "requests_per_s": round(len(latencies) / seconds, 1) if seconds else 0.0,
        "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
        "resumed": sum(result[1] for result in results),
        "errors": sum(result[2] for result in results),
        "non_2xx": sum(result[3] for result in results),
    }))


if __name__ == "__main__":
    main()
