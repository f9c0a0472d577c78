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

The server's reactor ends rounds of events (``memcost.RoundsReactor``), as ``twistd ingressd``'s
does: with the access log on, each round's exchanges are held and their lines formatted when the
round ends (``AccessLog._end_round``, the server's path), here after every request's answer
(``--round N``: after every N requests, as a busy server's poll hands it several connections'
reads at once). With the log off no round end is asked for (the metrics alone take the proxy's
notes at their bound or when read: ``Proxy.want_rounds``), and the loop has none to call, as before.

It is deterministic enough to compare two versions of the code on a noisy machine (the
median of several rounds), and ``--profile`` prints cProfile's table for the same loop.

    .venv/bin/python bench/pathcost.py                  # 20,000 requests x 5 rounds
    .venv/bin/python bench/pathcost.py --profile        # where the time goes
    .venv/bin/python bench/pathcost.py --args '--access-log off'
    .venv/bin/python bench/pathcost.py --args '--access-log off' --sample   # µs per function, by CPU time
    .venv/bin/python bench/pathcost.py --general        # without the exchange's plain lane (A/B)
    .venv/bin/python bench/pathcost.py --halves         # the request half and the backend-answer half apart
    .venv/bin/python bench/pathcost.py --llhttp-heads   # every request head through llhttp (A/B)
    .venv/bin/python bench/pathcost.py --round 16       # the log's lines formatted every 16 requests

``--sample`` samples the stack on CPU time (``ITIMER_PROF``: asked for every 200 µs of CPU,
the kernel's tick makes it every few ms) instead of tracing every call as cProfile does
(which inflates small functions several times): each function's share of the samples, as
itself (self) and with what it calls (total), times the measured CPU per request gives µs
per request.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import memcost
from memcost import RESPONSE, print_samples, sample

memcost.use_tree_source()

REQUEST = b"GET / HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: pathcost\r\nAccept: */*\r\n\r\n"


class Rig:
    """One server, one client connection, one pooled backend connection, all in memory."""

    def __init__(self, extra_args: list[str], tmp: Path):
        self.service, self.reactor = memcost.serve(tmp, extra_args)
        self.client, self.client_transport = memcost.accept(self.service.http_factory)
        # The first request opens the backend connection: complete it by hand.
        self.client.dataReceived(REQUEST)
        self.upstream, self.upstream_transport = memcost.connect(self.reactor)
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

    per_round = 1  # --round: requests answered in one round of events (the log's lines formatted at its end)

    def run(self, count: int) -> None:
        client, upstream = self.client.dataReceived, self.upstream.dataReceived
        client_clear, upstream_clear = self.client_transport.clear, self.upstream_transport.clear
        if not getattr(self.service.proxy, "rounds_wanted", self.service.access_log is not None):
            # no round ends asked for (no access log: the metrics alone take the proxy's notes when
            # they are read or at their bound): the loop as it always was
            for _ in range(count):
                client(REQUEST)
                upstream(RESPONSE)
                client_clear()
                upstream_clear()
            return
        end_round = self.reactor.end_round
        if self.per_round == 1:  # the server's round ends after the backend's answer was read
            for _ in range(count):
                client(REQUEST)
                upstream(RESPONSE)
                end_round()
                client_clear()
                upstream_clear()
            return
        rounds, rest = divmod(count, self.per_round)
        for size in [self.per_round] * rounds + [rest]:
            for _ in range(size):
                client(REQUEST)
                upstream(RESPONSE)
                client_clear()
                upstream_clear()
            end_round()


def halves(rig: Rig, count: int) -> tuple[float, float]:
    """CPU µs per request of each half of the loop: the client's request bytes in (to the
    request sent to the backend), and the backend's answer in (to the client's response, the
    connection pooled, the observers run). A clock read around each call adds the same
    (about a µs) to both halves and to every version of the code."""
    client, upstream = rig.client.dataReceived, rig.upstream.dataReceived
    client_clear, upstream_clear = rig.client_transport.clear, rig.upstream_transport.clear
    end_round = rig.reactor.end_round
    clock = time.process_time
    request_half = answer_half = 0.0
    for _ in range(count):
        started = clock()
        client(REQUEST)
        middle = clock()
        upstream(RESPONSE)
        end_round()  # the round of the backend's answer ends: the access log's line
        ended = clock()
        client_clear()
        upstream_clear()
        request_half += middle - started
        answer_half += ended - middle
    return request_half / count * 1e6, answer_half / count * 1e6


def main() -> None:
    p = memcost.options(__doc__)
    p.add_argument("--general", action="store_true",
                   help="every request through the exchange's general steps (Proxy.flat off: no plain lane)")
    p.add_argument("--llhttp-heads", action="store_true",
                   help="every request head through llhttp's callbacks (the one-call plain head off: A/B)")
    p.add_argument("--round", type=int, default=1,
                   help="requests answered in one round of events, whose access-log lines are formatted at its "
                        "end as in the server (default 1: each request's round ends after the backend's answer)")
    p.add_argument("--halves", action="store_true",
                   help="time the request half and the backend-answer half separately (median of the rounds)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingressd-pathcost-") as tmp:
        rig = Rig(memcost.server_args(args.args, Path(tmp)), Path(tmp))
        rig.per_round = max(1, args.round)
        if args.general:
            rig.service.proxy.flat = False
        if args.llhttp_heads:
            rig.client.parse_plain_head = None
        rig.run(2000)  # warm-up
        if args.profile:
            memcost.profiled(rig.run, args.requests).sort_stats(args.sort).print_stats(args.lines)
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
        figures = [memcost.cpu_per(args.requests, rig.run, args.requests) for _ in range(args.rounds)]
        rig.client.dataReceived(REQUEST)
        rig.upstream.dataReceived(RESPONSE)
        rig.reactor.end_round()
        rig.check()
        print(memcost.python_line(args.args, "general steps only" if args.general else "",
                                  "heads through llhttp" if args.llhttp_heads else "",
                                  f"{rig.per_round} requests a round" if rig.per_round != 1 else ""))
        print(f"request path in memory: {memcost.per_text(figures, args.requests)}")


if __name__ == "__main__":
    main()
