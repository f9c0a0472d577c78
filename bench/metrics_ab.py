#!/usr/bin/env python3
"""The metrics' cost inside the request path: an in-process A/B that resolves it under load.

Builds ``bench/pathcost.py``'s in-memory server (access log off), then plays rounds of keep-alive
requests through it, switching the metrics observer every round between: none (``off``), the
observer as it was before the exchanges were held (``before``: ``tests/metrics_before.py``, a
copy of the module at commit a588a0c, each exchange counted as it finishes) and the current one
(``current``: the exchanges held and counted together, here at the bound of 256 since the memory
clock never fires the 0.1 s timer; under load the real reactor reaches the bound first too).
Each variant's figure is the median CPU time per request; ``cost`` is it minus ``off``. The
variants share the process, the server and the load, so a noisy machine moves them together.

    .venv/bin/python bench/metrics_ab.py
    .venv/bin/python bench/metrics_ab.py --rounds 9 --compat nginx  # with ingress-nginx's series too
    .venv/bin/python bench/metrics_ab.py --fold  # Metrics.fold alone: with fold_run.count_run, without

``--fold`` times ``Metrics.fold`` alone over 64 real finished exchanges (taken from the
in-memory server's keep-alive requests), alternating every round between the C
``fold_run.count_run`` and fold's own lines (``count_run`` None, as without the extension).

It imports ingressd from this tree (as pathcost.py does). Prints figures; no assertions about time.
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
sys.path.insert(0, str(REPO / "tests"))

import pathcost  # noqa: E402
import metrics_before  # noqa: E402

from ingressd.admin.metrics import Metrics  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--requests", type=int, default=8000, help="requests per variant and round")
    p.add_argument("--compat", default="", help="--metrics-compat (nginx: ingress-nginx's series too)")
    p.add_argument("--fold", action="store_true", help="time Metrics.fold alone, with and without count_run")
    args = p.parse_args()
    if args.fold:
        fold_only(args)
        return
    with tempfile.TemporaryDirectory(prefix="ingressd-metrics-ab-") as tmp:
        extra = ["--access-log", "off", "--keepalive-requests", "0", "--upstream-keepalive-requests", "0"]
        if args.compat:
            extra += ["--metrics-compat", args.compat]
        rig = pathcost.Rig(extra, Path(tmp))
        observers = rig.service.proxy.observers
        metrics = rig.service.metrics
        at = observers.index(metrics.observe)
        clock = metrics.clock
        before = metrics_before.Metrics(metrics.clock, compat=args.compat)
        current = Metrics(metrics.clock, compat=args.compat)
        variants = {"off": lambda exchange: None, "before": before.observe, "current": current.observe}
        figures: dict[str, list[float]] = {name: [] for name in variants}
        rig.run(2000)
        for _ in range(args.rounds):
            for name, values in figures.items():
                observers[at] = variants[name]
                rig.run(496)
                started = time.process_time()
                rig.run(args.requests)
                values.append((time.process_time() - started) / args.requests * 1e6)
        observers[at] = metrics.observe
        same = before.render()[0].count(b"\n"), current.render()[0].count(b"\n")
        off = statistics.median(figures["off"])
        print(f"median of {args.rounds} rounds of {args.requests:,} requests, CPU µs per request; "
              f"exposition lines {same}")
        for name, values in figures.items():
            median = statistics.median(values)
            print(f"  {name:8} {median:6.2f}  cost {median - off:5.2f}  (all: {', '.join(f'{v:.1f}' for v in values)})")


def fold_only(args) -> None:
    from ingressd.admin import metrics as metrics_module

    with tempfile.TemporaryDirectory(prefix="ingressd-metrics-ab-") as tmp:
        rig = pathcost.Rig(["--access-log", "off"], Path(tmp))
        observers = rig.service.proxy.observers
        metrics = rig.service.metrics
        at = observers.index(metrics.observe)
        seen: list = []
        observers[at] = lambda exchange: seen.append((exchange, metrics.clock.seconds()))
        rig.run(64)
        observers[at] = metrics.observe
        held = seen[:64]
        accelerated = getattr(metrics_module, "_count_run", None)  # (None: a tree from before it)
        variants = {"count_run": accelerated, "lines": None} if accelerated is not None else {"lines": None}
        folds = 2000
        figures: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, values in figures.items():
                metrics_module._count_run = variants[name]
                started = time.process_time()
                for _ in range(folds):
                    metrics._held = list(held)
                    metrics.fold()
                values.append((time.process_time() - started) / (folds * len(held)) * 1e6)
        metrics_module._count_run = accelerated
        print(f"Metrics.fold over {len(held)} exchanges, median of {args.rounds} rounds of {folds:,} folds, "
              f"CPU µs per exchange")
        for name, values in figures.items():
            print(f"  {name:10} {statistics.median(values):6.3f}  (all: {', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
