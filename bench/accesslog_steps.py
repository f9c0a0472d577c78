#!/usr/bin/env python3
"""The access log's cost in the request path by step, as on ``ingressd.reactor`` (lines per round).

Builds ``bench/pathcost.py``'s in-memory server with the access log on and ends a round of events
every ``--round`` requests (the access log's ``call_at_round_end``), then alternates, every round
of measurement, between: no log (``off``); the observer's note alone, each round's exchanges
dropped at its end (``note``); the note and the round's lines formatted, not queued (``format``);
the whole log, lines queued and written by the writer thread (``full``). Each figure is the
median CPU time of the process per request (the writer thread included); ``cost`` is it minus
``off``. The variants share the process and the load, so a noisy machine moves them together.

    .venv/bin/python bench/accesslog_steps.py nginx           # ingress-nginx's upstreaminfo line
    .venv/bin/python bench/accesslog_steps.py json --rounds 8
    valgrind --tool=callgrind .venv/bin/python bench/accesslog_steps.py nginx --count 2500

``--count N`` runs N requests of ``--variant`` (default ``full``) once and prints nothing else: two runs' instruction
counts under callgrind (N = 2,500 and 500) differ by 2,000 requests' worth (the writer thread then
wakes for each batch of 512 lines only, not every 0.1 s of wall time, which would add a count that
depends on how fast valgrind ran). It imports ingressd
from this tree (as pathcost.py does): build the accelerators next to the sources first
(``.venv/bin/python setup.py build_ext --inplace``). Prints figures; no assertions about time.
"""

from __future__ import annotations

import argparse
import statistics
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
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=8000, help="requests per variant and round")
    p.add_argument("--round", type=int, default=16, help="requests per round of events (default 16)")
    p.add_argument("--count", type=int, default=0, help="run this many requests of --variant once (callgrind)")
    p.add_argument("--variant", choices=("off", "note", "format", "full"), default="full", help="for --count")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingressd-accesslog-steps-") as tmp:
        rig = pathcost.Rig(["--access-log-format", args.format, "--access-log", str(Path(tmp) / "access.log"),
                            "--keepalive-requests", "0", "--upstream-keepalive-requests", "0"], Path(tmp))
        observers = rig.service.proxy.observers
        log = rig.service.access_log
        at = observers.index(log.observe)
        ends: list = []
        log._at_round_end = ends.append
        run = rig.run
        end_round = log._end_round

        def in_rounds(count: int) -> None:
            for _ in range(max(1, count // args.round)):
                run(args.round)
                while ends:
                    ends.pop(0)()

        def note_only() -> None:
            log._round = []

        def format_only() -> None:
            end_round()
            log._pending.take()

        def use(variant: str) -> None:
            observers[at] = (lambda exchange: None) if variant == "off" else log.observe
            log._end_round = {"note": note_only, "format": format_only}.get(variant, end_round)

        if args.count:  # the writer wakes for a batch only, not every 0.1 s of (valgrind's slow) wall time
            accesslog._INTERVAL = 3600.0
        in_rounds(2000)
        if args.count:
            use(args.variant)
            in_rounds(args.count)
            return
        figures: dict[str, list[float]] = {variant: [] for variant in ("off", "note", "format", "full")}
        for _ in range(args.rounds):
            for variant, values in figures.items():
                use(variant)
                in_rounds(512)
                started = time.process_time()
                in_rounds(args.requests)
                values.append((time.process_time() - started) / args.requests * 1e6)
        off = statistics.median(figures["off"])
        print(f"{args.format}: C accelerator {'built' if logline.accelerated else 'absent'}; rounds of "
              f"{args.round} requests; median of {args.rounds} rounds of {args.requests:,}, CPU µs per request")
        for variant, values in figures.items():
            median = statistics.median(values)
            print(f"  {variant:7} {median:6.2f}  cost {median - off:5.2f}  (all: {', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
