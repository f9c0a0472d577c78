#!/usr/bin/env python3
"""A/B of the backend response head's one-call parse (``ingressd.proxy.response_head``)
against llhttp's callbacks, in memory, in one process: ``bench/pathcost.py``'s rig (the real
server on a MemoryReactorClock, keep-alive requests through StringTransports), with
``HTTP1Connection.fast_head`` switched off and on in alternate rounds, so that the machine's
load falls on both alike. Prints the median CPU µs per request of each and, with
``--calls``, the Python function calls per request under cProfile.

    .venv/bin/python bench/response_head_ab.py                     # pathcost's 3-header answer
    .venv/bin/python bench/response_head_ab.py --response typical  # 8 headers, as a web app sends
    .venv/bin/python bench/response_head_ab.py --calls
    INGRESSD_HTTP_PARSER=python .venv/bin/python bench/response_head_ab.py --twin   # PyPy's pairing, on CPython
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The installed ingressd (with its C accelerator when it was built), imported before
# pathcost, which puts the source tree (no compiled modules) first on the path.
from ingressd.proxy import http1_upstream
from ingressd.proxy.http1_upstream import HTTP1Connection
from ingressd.proxy.response_head import ACCELERATED, parse_response_head_py

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import pathcost  # noqa: E402

RESPONSES = {
    "pathcost": pathcost.RESPONSE,
    "typical": (b"HTTP/1.1 200 OK\r\nServer: nginx/1.25.3\r\nDate: Mon, 07 Dec 2026 04:00:00 GMT\r\n"
                b"Content-Type: text/html; charset=utf-8\r\nContent-Length: 3\r\nConnection: keep-alive\r\n"
                b"Cache-Control: no-cache\r\nETag: \"65f1c2a3-3\"\r\nX-Request-Id: 9f1c2a3b4c5d6e7f\r\n\r\nok\n"),
}


def calls_per_request(rig, count: int) -> float:
    profile = cProfile.Profile()
    profile.runcall(rig.run, count)
    return pstats.Stats(profile).total_calls / count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=10, help="rounds of each (alternating)")
    p.add_argument("--args", default="")
    p.add_argument("--response", choices=sorted(RESPONSES), default="pathcost")
    p.add_argument("--calls", action="store_true", help="Python calls per request (cProfile) instead")
    p.add_argument("--twin", action="store_true", help="the pure-Python twin instead of the C accelerator")
    p.add_argument("--general", action="store_true", help="the exchange's general steps (Proxy.flat off)")
    args = p.parse_args()
    if args.twin:
        http1_upstream.parse_response_head = parse_response_head_py
    pathcost.RESPONSE = RESPONSES[args.response]
    with tempfile.TemporaryDirectory(prefix="ingressd-resphead-") as tmp:
        extra = shlex.split(args.args)
        if "--access-log" not in extra:
            extra += ["--access-log", str(Path(tmp) / "access.log")]
        extra += ["--keepalive-requests", "0", "--upstream-keepalive-requests", "0"]
        rig = pathcost.Rig(extra, Path(tmp))
        if args.general:
            rig.service.proxy.flat = False
        figures: dict[bool, list[float]] = {False: [], True: []}
        for fast in (False, True):
            HTTP1Connection.fast_head = fast
            rig.run(2000)  # warm-up
            if args.calls:
                print(f"fast_head={fast}: {calls_per_request(rig, 5000):.1f} Python calls per request")
        if args.calls:
            return
        for _ in range(args.rounds):
            for fast in (False, True):
                HTTP1Connection.fast_head = fast
                started = time.process_time()
                rig.run(args.requests)
                figures[fast].append((time.process_time() - started) / args.requests * 1e6)
        rig.run(1)
        rig.client_transport.clear()
        rig.upstream_transport.clear()
        rig.client.dataReceived(pathcost.REQUEST)
        rig.upstream.dataReceived(pathcost.RESPONSE)
        rig.check()
        print(f"python {sys.version.split()[0]}; parser: {http1_upstream.parsing.NAME}; "
              f"head: {'twin' if args.twin or not ACCELERATED else 'C'}; response: {args.response}; "
              f"{'general steps; ' if args.general else ''}"
              f"options: {args.args or '(defaults)'}")
        for fast in (False, True):
            print(f"fast_head={fast!s:5}: {statistics.median(figures[fast]):.2f} µs CPU per request "
                  f"(median of {args.rounds} x {args.requests:,}; "
                  f"all: {', '.join(f'{f:.1f}' for f in figures[fast])})")
        print(f"difference: {statistics.median(figures[True]) - statistics.median(figures[False]):+.2f} µs")


if __name__ == "__main__":
    main()
