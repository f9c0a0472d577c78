#!/usr/bin/env python3
"""The access log's cost on the socket, paired: log off and log on run at once, loaded in turn.

bench.py's ``keepalive-log`` minus ``keepalive`` takes two ~40 µs figures minutes apart; on a
noisy host one scenario's runs differ by up to 2× between minutes, so that difference cannot
resolve a few µs. Here, for each server (nginx, ingressd), every variant runs at the same time,
each its own process on its own ports, all pinned to the proxy CPU (the load and the backend on
the load CPU, as in bench.py):

* ``off``: bench.py's ``keepalive`` (nginx ``access_log off``; ingressd ``--access-log off``);
* ``nginx``: ``keepalive-log`` (ingress-nginx's upstreaminfo line to a file: nginx ``access_log …
  buffer=64k flush=1s``, ingressd ``--access-log FILE --access-log-format nginx``);
* ``json``: ``keepalive-log-json`` (ingressd's JSON line; nginx an ``escape=json`` log_format of
  the same fields).

After a warm-up of each, short wrk slices (``--seconds``, whole seconds: wrk's ``-d``) load one
variant at a time, ``off`` and a format in ABBA order (off,on  on,off  off,on …), so each pair's
two slices are seconds apart and slow drift cancels. A slice's figure is the variant's CPU time
while wrk ran and 0.25 s after (ingressd's log writer writes every 0.1 s: the slice's last lines
are written in the slice) ÷ the requests wrk completed; CPU time is the run time of the process
tree's threads (``/proc/…/schedstat``, ns; ``/proc/…/stat`` ticks where there is none).

The report per server and format: the median of the pairs' differences (µs a request for the
log) with a sign-test 95 % interval (order statistics of the differences; none below 6 pairs),
each variant's median µs a request, requests, non-2xx and socket errors; for ingressd also its
log's drop counter and written lines (admin ``/routes``), the requests it answered
(``ingressd_requests_total`` from ``/metrics``) and the log file's line count, which must equal
them (nothing lost), and what its interval says of the issue's target (the log ≤ 3 µs a request).

Bounded: ``--pairs`` pairs per format, and ``--budget`` seconds of wall time for the whole run
(no new pair starts when it could end past the budget; the report says how many ran).

Standard library only, like bench.py, whose pieces it imports: its nginx configuration and
backend, its scenarios, its ingressd start-up, its wrk driver, its pinning and CPU counters.

    python3 bench/logpair.py                          # both servers, both formats, 10 pairs of 2 s
    python3 bench/logpair.py --only ingressd --format nginx --pairs 20 --json /tmp/logpair.json
    python3 bench/logpair.py --only ingressd --twistd /tmp/base/.venv/bin/twistd
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (bench/bench.py: this script's directory is not a package)

FORMATS = {"nginx": "keepalive-log", "json": "keepalive-log-json"}  # --format → bench.py scenario
OFF = "keepalive"
SERVERS = ("nginx", "ingressd")
SETTLE_TIMEOUT = 10.0  # seconds the log writer gets to write every line after the last slice
AFTER_SLICE = 0.25  # seconds after wrk before a slice's CPU is read: ingressd's log writer runs every 0.1 s
SLICE_OVERHEAD = 0.5  # seconds a slice costs beyond its wrk -d (wrk's start, counters): for the budget
CONFIDENCE = 0.95
TARGET_US = 3.0  # issue 24: the access log ≤ 3 µs a request (ingressd)


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def sign_test_interval(values: list[float], confidence: float = CONFIDENCE) -> dict | None:
    """The distribution-free interval for the median: ``[v(k), v(n+1-k)]`` of the sorted values,
    k the largest with P(Binomial(n, ½) < k) × 2 ≤ 1 − confidence; None when even the widest
    (k = 1) does not reach the confidence (fewer than 6 values at 95 %). Its true coverage is
    returned too (at or above the confidence)."""
    n = len(values)
    tail, k = 0.0, 0
    while k < n:
        nxt = tail + math.comb(n, k) / 2 ** n  # P(X ≤ k)
        if 2 * nxt > 1 - confidence:
            break
        tail, k = nxt, k + 1
    if k == 0:
        return None
    v = sorted(values)
    return {"low": v[k - 1], "high": v[n - k], "coverage": 1 - 2 * tail}


def summary(diffs: list[float]) -> dict:
    interval = sign_test_interval(diffs)
    return {"median": statistics.median(diffs) if diffs else None, "interval": interval,
            "positive": sum(d > 0 for d in diffs), "pairs": len(diffs), "target": verdict(interval)}


def verdict(interval: dict | None, target: float = TARGET_US) -> str:
    """What the interval says of ``≤ target``: shown (all of it at or below), exceeded (all of it
    above), else not resolved (also without an interval)."""
    if interval is None:
        return "not resolved"
    if interval["high"] <= target:
        return "shown"
    return "exceeded" if interval["low"] > target else "not resolved"


# --------------------------------------------------------------------------------------------
# CPU time of a process tree
# --------------------------------------------------------------------------------------------


def cpu_ns(pid: int) -> int:
    """Run time of every thread of pid's process tree in ns (``/proc/PID/task/TID/schedstat``'s
    first field: exact, where bench.cpu_seconds has 10 ms ticks); bench.cpu_seconds where the
    kernel has no schedstat."""
    total = 0
    for p in bench.process_tree(pid):
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                if not os.path.exists("/proc/self/schedstat"):
                    return round(bench.cpu_seconds(pid) * 1e9)
    return total


def cpu_clock() -> str:
    return "schedstat ns" if os.path.exists("/proc/self/schedstat") else "stat ticks"


# --------------------------------------------------------------------------------------------
# The variants
# --------------------------------------------------------------------------------------------


class Variant:
    """One running proxy: a server with the log off or in one format, its own dir and ports."""

    def __init__(self, server: str, name: str, scenario: bench.Scenario, tmp: Path, ports: dict):
        self.server, self.name, self.scenario = server, name, scenario
        self.tmp, self.ports = tmp, ports
        self.proc = None
        self.slices: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://{bench.LOOPBACK}:{self.ports['http']}{self.scenario.path}"

    @property
    def log_path(self) -> Path | None:
        if self.name == "off":
            return None
        return self.tmp / ("nginx-access.log" if self.server == "nginx" else "ingressd-access.log")

    def start(self, procs: bench.Processes, args, nginx: str) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        vargs = copy.copy(args)
        # ingressd's log: off for "off"; for a format, the scenario's --access-log FILE.
        vargs.ingressd_args = ("--access-log off " if self.name == "off" else "") + args.ingressd_args
        self.proc = bench.start_proxy(self.server, procs, vargs, self.scenario, self.tmp, self.ports, None,
                                      nginx)


def make_variants(server: str, formats: list[str], tmp: Path, backend_port: int) -> list[Variant]:
    out = []
    for name in ["off", *formats]:
        sc = bench.SCENARIOS[OFF if name == "off" else FORMATS[name]]
        ports = dict(zip(("http", "https", "admin"), bench.free_ports(3)), backend=backend_port)
        out.append(Variant(server, name, sc, tmp / f"{server}-{name}", ports))
    return out


def run_slice(procs: bench.Processes, args, wrk: str, v: Variant, seconds: int, label: str) -> dict:
    """One wrk run against v; v's CPU time around it (the other variants idle meanwhile)."""
    pcore0 = bench.cpu_core_ticks(args.proxy_cpu)
    c0, t0 = cpu_ns(v.proc.pid), time.monotonic()
    _, res = bench.run_load(procs, wrk, args, v.url, seconds, v.scenario, label)
    time.sleep(AFTER_SLICE)  # ingressd's writer thread writes the slice's last lines in the slice
    c1, t1 = cpu_ns(v.proc.pid), time.monotonic()
    pcore1 = bench.cpu_core_ticks(args.proxy_cpu)
    if v.proc.poll() is not None:
        raise bench.BenchError(f"{v.server}/{v.name} exited during a slice:\n{procs.log_tail(v.proc)}")
    cpu = (c1 - c0) / 1e9
    out = {"requests": res["requests"], "non_2xx": res["non_2xx"], "socket_errors": res["socket_errors"],
           "cpu_s": round(cpu, 6), "wall_s": round(t1 - t0, 3),
           "us_per_request": cpu * 1e6 / res["requests"] if res["requests"] else None,
           "proxy_cpu_percent": round(100 * cpu / (t1 - t0), 1)}
    (b0, n0), (b1, n1) = pcore0, pcore1
    out["proxy_core_busy_percent"] = round(100 * (b1 - b0) / (n1 - n0), 1) if n1 > n0 else None
    return out


# --------------------------------------------------------------------------------------------
# ingressd's own counts, and the log files
# --------------------------------------------------------------------------------------------


def count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def ingressd_counts(v: Variant) -> dict:
    """The access log's counts (admin /routes: written, dropped, pending) and the requests answered
    (the sum of /metrics' ingressd_requests_total)."""
    status, body = bench.http_get(v.ports["admin"], "/routes", False, host=bench.LOOPBACK, timeout=10)
    if status != 200:
        raise bench.BenchError(f"ingressd/{v.name}: /routes answered {status}")
    counts = json.loads(body).get("access_log", {})
    status, body = bench.http_get(v.ports["admin"], "/metrics", False, host=bench.LOOPBACK, timeout=10)
    if status != 200:
        raise bench.BenchError(f"ingressd/{v.name}: /metrics answered {status}")
    served = sum(float(m.group(1)) for m in
                 re.finditer(rb"^ingressd_requests_total(?:\{[^}]*\})? (\S+)$", body, re.M))
    return {"written": counts.get("written"), "dropped": counts.get("dropped"),
            "pending": counts.get("pending"), "served": int(served)}


def settle_ingressd(v: Variant) -> dict:
    """Wait (bounded) until the writer has nothing pending and the file holds every written line."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        c = ingressd_counts(v)
        c["log_lines"] = count_lines(v.log_path) if v.log_path.exists() else 0
        done = c["pending"] == 0 and c["log_lines"] == c["written"]
        if done or time.monotonic() > deadline:
            c["settled"] = done
            return c
        time.sleep(0.2)


def log_check(v: Variant, procs: bench.Processes) -> dict:
    """What the variant's log holds against what it served. ingressd: its own counts (read while it
    runs); nginx: the file's lines after its stop (the buffer flushed), beside wrk's requests."""
    wrk_requests = sum(s["requests"] for s in v.slices)  # warm-up and measured slices
    if v.server == "ingressd":
        c = settle_ingressd(v)
        c["lost"] = c["served"] - c["log_lines"]
        c["nothing_lost"] = c["lost"] == 0 and c["dropped"] == 0
    else:
        procs.stop(v.proc)
        c = {"log_lines": count_lines(v.log_path) if v.log_path.exists() else 0}
    c["wrk_requests"] = wrk_requests
    return c


# --------------------------------------------------------------------------------------------
# One server's run
# --------------------------------------------------------------------------------------------


def run_server(server: str, args, procs: bench.Processes, tmp: Path, backend_port: int, nginx: str, wrk: str,
               deadline: float) -> dict:
    keep = len(procs.procs)
    variants = make_variants(server, args.formats, tmp, backend_port)
    try:
        for v in variants:
            v.start(procs, args, nginx)
        off, on = variants[0], {v.name: v for v in variants[1:]}
        if args.warmup:
            for v in variants:
                v.slices.append({**run_slice(procs, args, wrk, v, args.warmup, f"wrk-{server}-{v.name}-warmup"),
                                 "warmup": True})
        pairs: dict[str, list[tuple[dict, dict]]] = {f: [] for f in args.formats}
        stopped_by_budget = False
        pair_seconds = len(args.formats) * 2 * (args.seconds + SLICE_OVERHEAD)
        for i in range(args.pairs):
            if time.monotonic() + pair_seconds > deadline:
                stopped_by_budget = True
                break
            for fmt in args.formats:
                order = (off, on[fmt]) if i % 2 == 0 else (on[fmt], off)  # ABBA: off,on  on,off  …
                got = {}
                for v in order:
                    s = run_slice(procs, args, wrk, v, args.seconds, f"wrk-{server}-{v.name}-{i}")
                    v.slices.append(s)
                    got[v.name] = s
                pairs[fmt].append((got["off"], got[fmt]))
            print(f"   {server} pair {i + 1}: " + ", ".join(
                f"{fmt} {_f(pairs[fmt][-1][1]['us_per_request'])} - off {_f(pairs[fmt][-1][0]['us_per_request'])} µs"
                for fmt in args.formats), flush=True)
        out = {"pairs_done": len(pairs[args.formats[0]]), "stopped_by_budget": stopped_by_budget,
               "variants": {v.name: variant_report(v) for v in variants}, "formats": {}}
        for fmt in args.formats:
            diffs = [b["us_per_request"] - a["us_per_request"] for a, b in pairs[fmt]
                     if a["us_per_request"] is not None and b["us_per_request"] is not None]
            res = {"log_us_per_request": summary(diffs), "differences": [round(d, 3) for d in diffs],
                   "log": log_check(on[fmt], procs)}
            out["formats"][fmt] = res
        return out
    finally:
        procs.stop_all(keep)


def variant_report(v: Variant) -> dict:
    measured = [s for s in v.slices if not s.get("warmup")]
    per = [s["us_per_request"] for s in measured if s["us_per_request"] is not None]
    return {"median_us_per_request": statistics.median(per) if per else None,
            "slices": len(measured),
            "requests": sum(s["requests"] for s in measured),
            "non_2xx": sum(s["non_2xx"] for s in v.slices),
            "socket_errors": sum(s["socket_errors"] for s in v.slices),
            # the proxy CPU's busy share and the variant's own: other processes took the difference
            "median_proxy_core_busy_percent": _median_or_none(s["proxy_core_busy_percent"] for s in measured),
            "median_proxy_cpu_percent": _median_or_none(s["proxy_cpu_percent"] for s in measured),
            "each": v.slices}


def _median_or_none(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _f(x, fmt="{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def print_report(report: dict) -> None:
    s = report["settings"]
    print(f"\n== the access log's cost, paired: {s['pairs']} pairs of {s['seconds']} s slices (ABBA), "
          f"wrk -t1 -c{s['connections']}, warm-up {s['warmup']} s; proxy on CPU {s['proxy_cpu']}, "
          f"wrk+backend on CPU {s['load_cpu']}; CPU from {s['cpu_clock']}")
    for server, r in report["results"].items():
        vs = r["variants"]
        print(f"   {server}: {r['pairs_done']} pairs" + (" (stopped by --budget)" if r["stopped_by_budget"] else "")
              + "; off " + _f(vs["off"]["median_us_per_request"]) + " µs/req; the proxy CPU "
              + _f(vs["off"]["median_proxy_core_busy_percent"], "{:.0f}") + " % busy while off was loaded, "
              + _f(vs["off"]["median_proxy_cpu_percent"], "{:.0f}") + " % of it off's own (medians)")
        for fmt, f in r["formats"].items():
            m = f["log_us_per_request"]
            iv = m["interval"]
            ci = (f"[{iv['low']:.2f}, {iv['high']:.2f}] ({100 * iv['coverage']:.1f} %, sign test)" if iv
                  else "(no interval below 6 pairs)")
            v = vs[fmt]
            print(f"     {fmt:5}: log {_f(m['median'])} µs/req {ci}, {m['positive']}/{m['pairs']} pairs above 0; "
                  f"on {_f(v['median_us_per_request'])} µs/req; requests {v['requests']:,} on / "
                  f"{vs['off']['requests']:,} off; non-2xx {v['non_2xx'] + vs['off']['non_2xx']}, "
                  f"socket errors {v['socket_errors'] + vs['off']['socket_errors']}")
            log = f["log"]
            if server == "ingressd":
                print(f"            the target, the log ≤ {TARGET_US:g} µs/req: {m['target']}")
                print(f"            log file {log['log_lines']:,} lines, served {log['served']:,}, "
                      f"written {log['written']:,}, dropped {log['dropped']:,}: "
                      + ("nothing lost" if log["nothing_lost"] else f"LOST {log['lost']:,}")
                      + ("" if log["settled"] else " (the writer had not settled)"))
            else:
                print(f"            log file {log['log_lines']:,} lines; wrk completed {log['wrk_requests']:,}")
    sys.stdout.flush()


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=2, help="a slice's length, whole seconds (wrk -d; default 2)")
    p.add_argument("--pairs", type=int, default=10, help="pairs per server and format (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="each variant's warm-up, whole seconds (default 2; 0: none)")
    p.add_argument("--budget", type=float, default=290,
                   help="wall-time bound of the whole run in seconds (default 290): no pair starts past it")
    p.add_argument("--format", default="both", choices=["nginx", "json", "both"],
                   help="the log's format: nginx (upstreaminfo), json, or both (default)")
    p.add_argument("--only", default="nginx,ingressd", help="comma-separated servers (default nginx,ingressd)")
    p.add_argument("--connections", "-c", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument("--json", metavar="FILE", help="save machine info, settings and every slice as JSON")
    p.add_argument("--ingressd-args", default="", help="extra arguments for every ingressd variant")
    p.add_argument("--twistd", default=str(bench.REPO / ".venv" / "bin" / "twistd"),
                   help="twistd to run ingressd with (default: the repo's .venv)")
    p.add_argument("--proxy-cpu", type=int, default=0, help="CPU for the proxies (default 0)")
    p.add_argument("--load-cpu", type=int, default=1, help="CPU for wrk and the backend (default 1)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = p.parse_args(argv)
    args.formats = ["nginx", "json"] if args.format == "both" else [args.format]
    args.servers = args.only.split(",")
    for s in args.servers:
        if s not in SERVERS:
            p.error(f"unknown server {s!r}; known: {', '.join(SERVERS)}")
    if not 1 <= args.seconds <= 60 or not 0 <= args.warmup <= 60:
        p.error("--seconds must be in [1, 60], --warmup in [0, 60]")
    if not 1 <= args.pairs <= 200 or not 0 < args.budget <= 3600:
        p.error("--pairs must be in [1, 200], --budget in (0, 3600]")
    if not 1 <= args.connections <= 1000:
        p.error("--connections must be in [1, 1000]")
    return args


def _raise_exit(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    deadline = start + args.budget
    nginx, wrk = bench.find_nginx(), shutil.which("wrk")
    missing = [n for n, path in (("nginx", nginx), ("wrk", wrk), ("taskset", shutil.which("taskset")))
               if not path]
    if missing:
        print(f"missing: {', '.join(missing)}. Install with:\n    {bench.APT_COMMAND}", file=sys.stderr)
        return 2
    if "ingressd" in args.servers and not os.access(args.twistd, os.X_OK):
        print(f"no twistd at {args.twistd} (make the venv, or pass --twistd, or --only nginx)", file=sys.stderr)
        return 2
    for opt in ("proxy_cpu", "load_cpu"):
        if getattr(args, opt) not in os.sched_getaffinity(0):
            setattr(args, opt, None)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _raise_exit)
    tmp = Path(tempfile.mkdtemp(prefix="ingressd-logpair-"))
    report = {"machine": {**bench.machine_info(), "loadavg": os.getloadavg()},
              "settings": {"seconds": args.seconds, "pairs": args.pairs, "warmup": args.warmup,
                           "budget": args.budget, "formats": args.formats, "connections": args.connections,
                           "proxy_cpu": args.proxy_cpu, "load_cpu": args.load_cpu, "twistd": args.twistd,
                           "ingressd_args": args.ingressd_args, "cpu_clock": cpu_clock()},
              "results": {}}
    m = report["machine"]
    print(f"{m['date']}  {m['nproc']} CPUs ({m['cpu_model']}), {m['nginx']}, {m['wrk']}; load average "
          f"{' '.join(f'{x:.2f}' for x in m['loadavg'])}; temp dir {tmp}", flush=True)
    procs = bench.Processes(tmp)
    rc = 0
    try:
        sc = bench.SCENARIOS[OFF]
        backend_port = bench.free_ports(1)[0]
        bprefix = tmp / "backend"
        (bprefix / "docroot").mkdir(parents=True)
        backend = bench.start_nginx(procs, nginx, "backend", bprefix, bench.backend_conf(bprefix, backend_port, sc),
                                    args.load_cpu)
        bench.wait_until("backend", lambda: bench.http_get(backend_port, sc.path, False)[0] == 200, backend, procs)
        for server in args.servers:
            print(f"-- {server}: off and {', '.join(args.formats)} at once", flush=True)
            try:
                report["results"][server] = run_server(server, args, procs, tmp, backend_port, nginx, wrk, deadline)
            except bench.BenchError as e:
                print(f"ERROR {server}: {e}", file=sys.stderr)
                rc = 1
        report["machine"]["loadavg_end"] = os.getloadavg()
        report["wall_s"] = round(time.monotonic() - start, 1)
        if report["results"]:
            print_report(report)
            print(f"   {report['wall_s']:.0f} s in all; load average at the end "
                  f"{' '.join(f'{x:.2f}' for x in report['machine']['loadavg_end'])}")
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        rc = 130
    finally:
        bench.finish(procs, report, args.json, tmp, args.keep)
    return rc


if __name__ == "__main__":
    sys.exit(main())
