#!/usr/bin/env python3
"""The access log's per-request instructions by part, for callgrind/cachegrind (deterministic).

Builds ``bench/pathcost.py``'s in-memory server with the access log on, plays one request to get a
real finished exchange, then runs one part of the log ``--count`` times on it and prints nothing:
two runs' instruction counts under cachegrind (e.g. N = 3,000 and 1,000) differ by 2,000 parts' worth.

    bench/accesslog_parts.sh [TREE]    # every part, both formats (cachegrind, this tree's python)

The parts: ``call`` (``AccessLog.__call__``: the checks and the held note, the round's list emptied
each time), ``end`` (``AccessLog._end_round`` for a round of one: its formatting and queue
accounting, the queue emptied each time), ``round`` (``AccessLog.observe_round`` for a round of
one, as the proxy hands it over: its screens, then ``_end_round``'s formatting and queueing; the
server's path since the round branch, where ``call`` is no longer made per exchange), ``lines`` (the
format's round loop alone for a round of
one: the compiled ``LogFormat.lines`` or ``_json_lines_fast``), ``join`` (``join_line`` alone on
the line's values), ``headers`` (``header_values`` alone), ``statuses`` (``upstream_statuses``),
``noop`` (the loop itself), ``drain`` (the writer thread's part, not on the reactor: ``--count``
copies of the exchange's line queued, then ``AccessLog._drain`` writes them to a file in its batches
(since branch logbuf the queue is a ``logline.LineBuffer``: the copies are appended as bytes, one
``append`` call each, which this part then counts too, and the writer takes them in one call and
one write);
the user-space instructions only, not the kernel's write). It imports ingressd from this tree (build the accelerators in place).

``--duration S`` holds the exchange with a clock reading S seconds past the request's start (the
in-memory rig's clock does not move, so its own durations are exactly 0.0, which the log writes
without rounding; a server's are not): ``DURATION=0.00025 bench/accesslog_parts.sh``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import pathcost  # noqa: E402

from ingressd import accesslog, logline  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("format", choices=("nginx", "json"))
    p.add_argument("part", choices=("noop", "call", "end", "round", "lines", "join", "headers", "statuses",
                                       "drain"))
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--duration", type=float, default=0.0,
                   help="seconds from the request's start to the held clock reading (default 0.0, the rig's own)")
    args = p.parse_args()
    accesslog._INTERVAL = 3600.0
    with tempfile.TemporaryDirectory(prefix="ingressd-accesslog-parts-") as tmp:
        rig = pathcost.Rig(["--access-log-format", args.format, "--access-log", str(Path(tmp) / "access.log"),
                            "--keepalive-requests", "0", "--upstream-keepalive-requests", "0"], Path(tmp))
        observers = rig.service.proxy.observers
        log = rig.service.access_log
        caught: list = []
        observers.append(caught.append)
        rig.run(3)
        exchange = caught[-1]
        observers.remove(caught.append)
        log._end_round()
        log._pending.take()
        now, end = time.time(), exchange.proxy.clock.seconds() + args.duration
        held = [(exchange, now, end)]
        settings = log.settings
        template = settings.template
        out = logline.LineBuffer(1 << 60)  # the round loops' output (a list of str lines before logbuf)
        count = args.count
        part = args.part
        if part == "noop":
            for _ in range(count):
                pass
        elif part == "call":
            log._at_round_end = lambda f: None
            observe = getattr(log, "observe", log)  # what the server registers (before alog7: the instance)
            for _ in range(count):
                observe(exchange)
                log._round = []
        elif part == "end":
            pending = log._pending
            for _ in range(count):
                log._round = [(exchange, now, end)]
                log._end_round()
                pending.take()
        elif part == "round":
            if not hasattr(log, "observe_round"):
                raise SystemExit("round: this tree's access log has no observe_round (before the round branch)")
            pending = log._pending
            for _ in range(count):
                log.observe_round(held)
                pending.take()
        elif part == "lines":
            lines = template.lines if template is not None else None
            if lines is not None:
                for _ in range(count):
                    lines(held, out)
                    out.take()
            else:
                parts = log._route_parts
                json_lines = accesslog._json_lines_fast
                for _ in range(count):
                    json_lines(held, parts, out)
                    out.take()
        elif part == "join":
            if template is None:
                raise SystemExit("join: nginx only")
            form = template.line.__globals__["_form"]
            values = _values_of(template, exchange, now, end)
            join = logline.join_line
            for _ in range(count):
                join(form, values)
        elif part == "headers":
            names = (b"referer", b"user-agent")
            header_values = logline.header_values
            headers = exchange.headers
            for _ in range(count):
                header_values(headers, names)
        elif part == "statuses":
            for _ in range(count):
                exchange.upstream_statuses
        elif part == "drain":
            log._round = [(exchange, now, end)]
            log._end_round()
            (line,) = log._pending.take_lines()
            append = log._pending.append
            for _ in range(count):  # the line queued as a round's end queues it (since logbuf: bytes)
                append(line)
            log._drain(log._pending, str(Path(tmp) / "drained.log"), None)
            if log.written != count:
                raise SystemExit(f"drain: {log.written} lines written of {count}")


def _values_of(template, exchange, now, end) -> tuple:
    """The values tuple the compiled line hands join_line: caught by a stand-in join."""
    seen: list = []
    namespace = template.line.__globals__
    real = namespace["_join"]
    namespace["_join"] = lambda form, values: seen.append(values) or real(form, values)
    try:
        template.line(exchange, now, end)
    finally:
        namespace["_join"] = real
    return seen[0]


if __name__ == "__main__":
    main()
