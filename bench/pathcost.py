#!/usr/bin/env python3
"""The request path's own Python cost, in memory: no sockets, no reactor turns, no kernel.

Builds the real server (``build_server`` with the installed plugins, the same options
``twistd ingressd`` parses) on a ``MemoryReactorClock``, gives it one Ingress routing
``bench.local`` to one endpoint, and then plays keep-alive requests through it: the
request bytes into the client connection's ``dataReceived``, the backend's answer into the
upstream connection's ``dataReceived``, both connections on ``StringTransport``s. What it
prints is CPU time per request for everything ingressd's code does between those two
calls — parsing, routing, features, forwarded headers, timers, metrics, the access log's
record — which is what the socket benchmark (bench.py) adds on top of the kernel's work.

It is deterministic enough to compare two versions of the code on a noisy machine (the
median of several rounds), and ``--profile`` prints cProfile's table for the same loop.

    .venv/bin/python bench/pathcost.py                  # 20,000 requests x 5 rounds
    .venv/bin/python bench/pathcost.py --profile        # where the time goes
    .venv/bin/python bench/pathcost.py --args '--access-log off'
    .venv/bin/python bench/pathcost.py --args '--access-log off' --sample   # µs per function, by CPU time
    .venv/bin/python bench/pathcost.py --general        # without the exchange's plain lane (A/B)
    .venv/bin/python bench/pathcost.py --halves         # the request half and the backend-answer half apart
    .venv/bin/python bench/pathcost.py --llhttp-heads   # every request head through llhttp (A/B)

``--sample`` samples the stack on CPU time (``ITIMER_PROF``: asked for every 200 µs of CPU,
the kernel's tick makes it every few ms) instead of tracing every call as cProfile does
(which inflates small functions several times): each function's share of the samples, as
itself (self) and with what it calls (total), times the measured CPU per request gives µs
per request.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shlex
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingressd.testing import one_route_objects, serve_in_memory  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: pathcost\r\nAccept: */*\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"


class Rig:
    """One server, one client connection, one pooled backend connection, all in memory."""

    def __init__(self, extra_args: list[str], tmp: Path):
        self.service, self.reactor = serve_in_memory(tmp, one_route_objects("bench.local"), *extra_args)
        if self.service.state.table.match("bench.local", "/") is None:
            raise SystemExit("the route did not load; is the manifest valid?")
        self.client = self.service.http_factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.client_transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
                                                hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
        self.client.makeConnection(self.client_transport)
        # The first request opens the backend connection: complete it by hand.
        self.client.dataReceived(REQUEST)
        host, port, factory, _, _ = self.reactor.tcpClients[-1]
        self.upstream = factory.buildProtocol(IPv4Address("TCP", host, port))
        self.upstream_transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
        self.upstream.makeConnection(self.upstream_transport)
        self.upstream.dataReceived(RESPONSE)
        self.check()

    def check(self) -> None:
        answer = self.client_transport.value()
        if not answer.startswith(b"HTTP/1.1 200 ") or not answer.endswith(b"ok\n"):
            raise SystemExit(f"unexpected answer: {answer[:200]!r}")
        if not self.upstream_transport.value().startswith(b"GET / HTTP/1.1\r\n"):
            raise SystemExit(f"unexpected upstream request: {self.upstream_transport.value()[:200]!r}")
        self.client_transport.clear()
        self.upstream_transport.clear()

    def run(self, count: int) -> None:
        client, upstream = self.client.dataReceived, self.upstream.dataReceived
        client_clear, upstream_clear = self.client_transport.clear, self.upstream_transport.clear
        for _ in range(count):
            client(REQUEST)
            upstream(RESPONSE)
            client_clear()
            upstream_clear()


def sample(rig: Rig, count: int, interval: float = 0.0002) -> tuple[float, Counter, Counter, int]:
    """Run ``count`` requests under a CPU-time stack sampler: (µs per request, self samples,
    total samples, all samples) by function (``file:line(name)``)."""
    own: Counter = Counter()
    total: Counter = Counter()
    taken = [0]

    def name(code) -> str:
        path = code.co_filename
        for marker in ("/ingressd/", "/ingressd_plugins/", "/plugins/", "/site-packages/"):
            at = path.rfind(marker)
            if at >= 0:
                path = path[at + 1:]
                break
        return f"{path}:{code.co_firstlineno}({code.co_name})"

    def on_tick(signum, frame) -> None:
        taken[0] += 1
        seen = set()
        first = True
        while frame is not None:
            code = frame.f_code
            if code.co_name == "run" and code.co_filename == __file__:
                break  # the loop itself: above it is the harness
            key = name(code)
            if first:
                own[key] += 1
                first = False
            if key not in seen:
                seen.add(key)
                total[key] += 1
            frame = frame.f_back

    previous = signal.signal(signal.SIGPROF, on_tick)
    signal.setitimer(signal.ITIMER_PROF, interval, interval)
    started = time.process_time()
    try:
        rig.run(count)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, previous)
    per_request = (time.process_time() - started) / count * 1e6
    return per_request, own, total, taken[0]


def halves(rig: Rig, count: int) -> tuple[float, float]:
    """CPU µs per request of each half of the loop: the client's request bytes in (to the
    request sent to the backend), and the backend's answer in (to the client's response, the
    connection pooled, the observers run). A clock read around each call adds the same
    (about a µs) to both halves and to every version of the code."""
    client, upstream = rig.client.dataReceived, rig.upstream.dataReceived
    client_clear, upstream_clear = rig.client_transport.clear, rig.upstream_transport.clear
    clock = time.process_time
    request_half = answer_half = 0.0
    for _ in range(count):
        started = clock()
        client(REQUEST)
        middle = clock()
        upstream(RESPONSE)
        ended = clock()
        client_clear()
        upstream_clear()
        request_half += middle - started
        answer_half += ended - middle
    return request_half / count * 1e6, answer_half / count * 1e6


def print_samples(per_request: float, own: Counter, total: Counter, taken: int, lines: int) -> None:
    print(f"{per_request:.1f} µs CPU per request while sampled; {taken:,} samples")
    print(f"{'self µs':>8} {'total µs':>9}  function")
    for key, count in own.most_common(lines):
        print(f"{count / taken * per_request:8.2f} {total[key] / taken * per_request:9.2f}  {key}")
    print("by total (with callees):")
    for key, count in total.most_common(lines):
        print(f"{own[key] / taken * per_request:8.2f} {count / taken * per_request:9.2f}  {key}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20_000, help="requests per round (default 20,000)")
    p.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported (default 5)")
    p.add_argument("--args", default="", help="extra 'twistd ingressd' options, e.g. '--access-log off'")
    p.add_argument("--profile", action="store_true", help="print cProfile's table for one round")
    p.add_argument("--sample", action="store_true",
                   help="sample stacks on CPU time: µs per request by function (self and total)")
    p.add_argument("--general", action="store_true",
                   help="every request through the exchange's general steps (Proxy.flat off: no plain lane)")
    p.add_argument("--llhttp-heads", action="store_true",
                   help="every request head through llhttp's callbacks (the one-call plain head off: A/B)")
    p.add_argument("--halves", action="store_true",
                   help="time the request half and the backend-answer half separately (median of the rounds)")
    p.add_argument("--sort", default="tottime", help="cProfile sort key (tottime, cumulative, ncalls)")
    p.add_argument("--lines", type=int, default=30, help="rows of the cProfile table")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingressd-pathcost-") as tmp:
        extra = shlex.split(args.args)
        if "--access-log" not in extra:
            extra += ["--access-log", str(Path(tmp) / "access.log")]  # on, as by default, to a file
        # One client and one backend connection carry every request: lift nginx's
        # per-connection request limits (1,000 and 10,000), which would close them mid-run.
        for option in ("--keepalive-requests", "--upstream-keepalive-requests"):
            if option not in extra:
                extra += [option, "0"]
        rig = Rig(extra, Path(tmp))
        if args.general:
            rig.service.proxy.flat = False
        if args.llhttp_heads:
            rig.client.parse_plain_head = None
        rig.run(2000)  # warm-up
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(rig.run, args.requests)
            pstats.Stats(profile).sort_stats(args.sort).print_stats(args.lines)
            return
        if args.sample:
            print_samples(*sample(rig, args.requests * args.rounds), args.lines)
            return
        if args.halves:
            both = [halves(rig, args.requests) for _ in range(args.rounds)]
            print(f"request half {statistics.median(f[0] for f in both):.2f} µs, backend-answer half "
                  f"{statistics.median(f[1] for f in both):.2f} µs CPU per request (median of {args.rounds} "
                  f"rounds of {args.requests:,}; a clock read around each half included)")
            return
        figures = []
        for _ in range(args.rounds):
            started = time.process_time()
            rig.run(args.requests)
            figures.append((time.process_time() - started) / args.requests * 1e6)
        rig.client.dataReceived(REQUEST)
        rig.upstream.dataReceived(RESPONSE)
        rig.check()
        print(f"python {sys.version.split()[0]}; options: {args.args or '(defaults)'}"
              f"{'; general steps only' if args.general else ''}"
              f"{'; heads through llhttp' if args.llhttp_heads else ''}")
        print(f"request path in memory: {statistics.median(figures):.1f} µs CPU per request "
              f"(median of {args.rounds} rounds of {args.requests:,}; "
              f"all: {', '.join(f'{f:.1f}' for f in figures)})")


if __name__ == "__main__":
    main()
