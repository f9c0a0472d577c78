#!/usr/bin/env python3
"""The access log's cost inside the request path: an in-process A/B that resolves it under load.

Builds ``bench/pathcost.py``'s in-memory server with the access log on, then plays rounds of
keep-alive requests through it, switching the exchange observer every round between: no log
(``off``), the line as Python writes it without the C accelerator (``python``: the compiled
f-string for ``nginx``, ``_json_line_of`` for ``json``), and the line as it is written now
(``current``: joined by ``ingressd.logline.join_line`` when the accelerator was built). Each
variant's figure is the median CPU time per request; ``log cost`` is it minus ``off``. The
variants share the process, the server and the load, so a noisy machine moves them together.

    .venv/bin/python bench/accesslog_ab.py nginx        # ingress-nginx's upstreaminfo line
    .venv/bin/python bench/accesslog_ab.py json --rounds 8
    .venv/bin/python bench/accesslog_ab.py nginx --round 16   # the lines formatted per round of 16

``--round N`` gives the access log a reactor that ends a round of events every N requests (the
memory reactor has no rounds) and adds the variant ``rounds``: the current line, each round's
exchanges held and their lines formatted at the round's end, as on ``ingressd.reactor`` in the
real server (``current`` formats each line at once, as on other reactors); the connections'
writes are left as they are (written at once), so only the log's part changes.

It imports ingressd from this tree (as pathcost.py does): build the accelerator next to the
sources first (``.venv/bin/python setup.py build_ext --inplace``), else ``current`` is the
Python line too (the first line printed says which). Prints figures; no assertions about time.
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

from ingressd import accesslog, logformat, logline  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("format", choices=("nginx", "json"))
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--requests", type=int, default=8000, help="requests per variant and round")
    p.add_argument("--round", type=int, default=0, help="end a round of events every N requests (0: no rounds)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingressd-accesslog-ab-") as tmp:
        rig = pathcost.Rig(["--access-log-format", args.format, "--access-log", str(Path(tmp) / "access.log"),
                            "--keepalive-requests", "0", "--upstream-keepalive-requests", "0"], Path(tmp))
        observers = rig.service.proxy.observers
        log = rig.service.access_log
        at = observers.index(log.observe)
        current = log.settings
        saved = logline.accelerated
        logline.accelerated = False  # the template compiled as Python alone writes it
        python = logformat.log_settings_from({"access_log_format": args.format})
        logline.accelerated = saved
        json_now = accesslog._json_line_fast
        ends: list = []
        if args.round:  # the reactor's call_at_round_end for the log, ended every args.round requests
            run = rig.run

            def in_rounds(count: int) -> None:
                for _ in range(count // args.round):
                    run(args.round)
                    while ends:
                        ends.pop(0)()
            rig.run = in_rounds  # type: ignore[method-assign]

        def use(variant: str) -> None:
            observers[at] = (lambda exchange: None) if variant == "off" else log.observe
            log._at_round_end = ends.append if variant == "rounds" else None
            log.settings = python if variant == "python" else current
            accesslog._json_line_fast = accesslog._json_line_of if variant == "python" else json_now

        figures: dict[str, list[float]] = {"off": [], "python": [], "current": []}
        if args.round:
            figures["rounds"] = []
        rig.run(2000)
        for _ in range(args.rounds):
            for variant, values in figures.items():
                use(variant)
                rig.run(500)
                started = time.process_time()
                rig.run(args.requests)
                values.append((time.process_time() - started) / args.requests * 1e6)
        use("rounds" if args.round else "current")
        off = statistics.median(figures["off"])
        print(f"{args.format}: C accelerator {'built' if logline.accelerated else 'absent'}; "
              f"median of {args.rounds} rounds of {args.requests:,} requests, CPU µs per request")
        for variant, values in figures.items():
            median = statistics.median(values)
            print(f"  {variant:8} {median:6.2f}  log cost {median - off:5.2f}  "
                  f"(all: {', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
