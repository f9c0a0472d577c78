"""Resident memory of the real ``twistd ingressd`` process on bench/scale.py's objects.

    python bench/scale_process.py --ingresses 10000                 # --manifests (a JSON List file)
    python bench/scale_process.py --ingresses 10000 --kubernetes    # --kubernetes against tests/fakeapi.py
    python bench/scale_process.py --ingresses 10000 --load 10       # and requests over 1,000 routes

bench/scale.py measures the configuration in a process of its own; this starts the server
as it is deployed: from one manifest file, or against the repository's fake API server
(tests/fakeapi.py, the same REST protocol the tests drive: paged LISTs, WATCH) through the
official kubernetes client. It waits for /readyz, then prints VmRSS and VmHWM (the peak) a
few seconds later, and the same for 10 Ingresses (the process without the configuration).

With ``--load SECONDS`` every EndpointSlice points at one local nginx backend and wrk sends
keep-alive requests round the routes of bench/scale.py's lookup (1,000 routes in turn: each
Ingress's host and a path under its ``/app{i}/api`` rule; less the tenth on TLS hosts, which
redirect plain HTTP), to 10 and to N Ingresses alike;
it prints the proxy's CPU per request (ingressd pinned to one CPU, wrk and the backend to the
other), throughput and latency: what the size of the configuration costs a request end to end;
and the resident memory after the load (what the request path's memos and caches hold).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

import scale  # noqa: E402
from bench import (SCENARIOS, Processes, _run_client, backend_conf, cpu_seconds, free_ports,  # noqa: E402
                   http_get, parse_wrk, start_nginx, wait_until)  # (bench/bench.py)

READY_TIMEOUT = 300.0  # 10,000 Ingresses through the fake API server take about 25 s
API_VERSIONS = {"Ingress": "networking.k8s.io/v1", "IngressClass": "networking.k8s.io/v1",
                "EndpointSlice": "discovery.k8s.io/v1"}


def api_objects(count: int, backend_port: int | None = None) -> list[dict]:
    """bench/scale.py's objects as API objects; with ``backend_port`` every endpoint is that
    port on 127.0.0.1 (the generated addresses are 10.x.y.z)."""
    items = []
    for kind, objects in scale.objects(count).items():
        for obj in objects:
            obj = dict(obj, kind=kind, apiVersion=API_VERSIONS.get(kind, "v1"))
            if kind == "EndpointSlice":
                obj["addressType"] = "IPv4"
                if backend_port is not None:
                    obj["ports"] = [{"name": "http", "port": backend_port}]
                    obj["endpoints"] = [{"addresses": ["127.0.0.1"]}]
            items.append(obj)
    return items


def load_keys(count: int, objects: list[dict]) -> list[tuple[str, str]]:
    """bench/scale.py's lookup keys but those of TLS hosts (over HTTP they answer 308);
    ``objects``: ``api_objects(count)``."""
    tls_hosts = {host for obj in objects if obj["kind"] == "Ingress"
                 for tls in obj["spec"].get("tls", ()) for host in tls["hosts"]}
    return [(host, path) for host, path in scale.lookup_keys(count) if host not in tls_hosts]


def wrk_script(keys: list[tuple[str, str]]) -> str:
    """A wrk Lua script sending requests round ``keys`` (host, path)."""
    rows = ",\n".join(f'  {{"{host}", "{path}"}}' for host, path in keys)
    return ("local keys = {\n" + rows + "\n}\n"
            "local requests = {}\n"
            "local n = 0\n"
            "init = function(args)\n"
            "  for i, key in ipairs(keys) do\n"
            '    requests[i] = wrk.format("GET", key[2], {["Host"] = key[1]})\n'
            "  end\n"
            "end\n"
            "request = function()\n"
            "  n = n % #requests + 1\n"
            "  return requests[n]\n"
            "end\n")


def load(port: int, pid: int, keys: list[tuple[str, str]], args, procs: Processes) -> dict:
    """wrk round ``keys`` (a warm-up, then the measured run); its figures, the proxy's CPU
    µs per request (``cpu_us``) and how many keys (``keys``)."""
    script = procs.tmp / "routes.lua"
    script.write_text(wrk_script(keys))
    figures: dict = {}
    for phase, seconds in (("warmup", args.warmup), ("run", args.load)):
        argv = [args.wrk, "-t1", f"-c{args.connections}", f"-d{seconds:g}s", "--latency", "-s", str(script),
                f"http://127.0.0.1:{port}/"]
        before = cpu_seconds(pid)
        figures = parse_wrk(_run_client(procs, argv, seconds, f"wrk-{phase}", args.load_cpu))
        figures["cpu_us"] = (cpu_seconds(pid) - before) * 1e6 / max(1, figures["requests"])
    figures["keys"] = len(keys)
    return figures


def memory_kib(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as handle:
        return {line.split(":")[0]: int(line.split()[1]) for line in handle
                if line.startswith(("VmRSS", "VmHWM", "RssAnon", "RssFile"))}


def smaps_mib(pid: int) -> dict[str, float]:
    """Resident MiB by kind of mapping (/proc/PID/smaps): ``heap`` (the main arena, brk),
    ``anon`` (other anonymous mappings: Python's obmalloc arenas, the threads' malloc arenas,
    large blocks), ``stack`` and ``files`` (code and data of the executable and libraries)."""
    totals = {"heap": 0, "anon": 0, "stack": 0, "files": 0}
    kind = "anon"
    with open(f"/proc/{pid}/smaps") as handle:
        for line in handle:
            fields = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                name = fields[5] if len(fields) > 5 else ""
                kind = ("heap" if name == "[heap]" else "stack" if name.startswith("[stack") else
                        "files" if name.startswith("/") else "anon")
            elif fields[0] == "Rss:":
                totals[kind] += int(fields[1])
    return {kind: kib / 1024 for kind, kib in totals.items()}


def run(procs: Processes, twistd: str, source_args: list[str], settle: float, measure_load=None,
        cpu: int | None = None) -> tuple[float, dict, dict | None]:
    """Start ingressd (pinned to ``cpu`` if given), wait until ready, settle, return (seconds
    to ready, memory, and what ``measure_load(port, pid)`` returns if given)."""
    ports = free_ports(3)
    argv = [twistd, "-n", "--pidfile=", "ingressd", *source_args, "--access-log", "off",
            "--http", f"tcp:{ports[0]}:interface=127.0.0.1", "--https", f"tcp:{ports[1]}:interface=127.0.0.1",
            "--admin", f"tcp:{ports[2]}:interface=127.0.0.1"]
    started = time.monotonic()
    proc = procs.start("ingressd", argv, cpu, cwd=procs.tmp)
    try:
        wait_until("ingressd /readyz", lambda: http_get(ports[2], "/readyz", False)[0] == 200, proc, procs,
                   timeout=READY_TIMEOUT)
        ready = time.monotonic() - started
        time.sleep(settle)
        memory = memory_kib(proc.pid)
        memory["smaps"] = smaps_mib(proc.pid)
        figures = measure_load(ports[0], proc.pid) if measure_load is not None else None
        if proc.poll() is not None:
            raise SystemExit(f"ingressd exited during the load:\n{procs.log_tail(proc)}")
        if figures is not None:  # what the requests' memos and caches added, bounded or not
            figures["memory_after"] = memory_kib(proc.pid)
        return ready, memory, figures
    finally:
        procs.stop(proc)


def measure(count: int, args) -> tuple[str, dict | None]:
    extra = shlex.split(args.ingressd_args)
    with tempfile.TemporaryDirectory(prefix="ingressd-scale-") as tmp:
        workdir = Path(tmp)
        procs = Processes(workdir)
        backend_port = free_ports(1)[0] if args.load else None
        objects = api_objects(count, backend_port)
        measure_load = cpu = None
        try:
            if args.load:
                start_nginx(procs, args.nginx, "backend", workdir / "backend",
                            backend_conf(workdir / "backend", backend_port, SCENARIOS["keepalive"]), args.load_cpu)
                measure_load = functools.partial(load, keys=load_keys(count, objects), args=args, procs=procs)
                cpu = args.proxy_cpu
            if args.kubernetes:
                import fakeapi  # tests/fakeapi.py: the repository's fake kube-apiserver

                api = fakeapi.FakeAPIServer(bookmark_interval=5).start()
                try:
                    for obj in objects:
                        api.cluster.apply(obj)
                    kubeconfig = api.write_kubeconfig(str(workdir / "kubeconfig"))
                    ready, memory, figures = run(procs, args.twistd, ["--kubernetes", "--kubeconfig", kubeconfig,
                                                                      *extra], args.settle, measure_load, cpu)
                finally:
                    api.stop()
            else:
                manifest = workdir / "objects.json"
                manifest.write_text(json.dumps({"kind": "List", "items": objects}))
                ready, memory, figures = run(procs, args.twistd, ["--manifests", str(manifest), *extra],
                                             args.settle, measure_load, cpu)
        finally:
            procs.stop_all()
    line = (f"{count:>6} Ingresses: ready after {ready:5.1f} s, resident {memory['VmRSS'] / 1024:4.0f} MiB, "
            f"peak {memory['VmHWM'] / 1024:4.0f} MiB (anonymous {memory['RssAnon'] / 1024:.0f}, "
            f"files {memory['RssFile'] / 1024:.0f}; "
            + ", ".join(f"{kind} {mib:.1f}" for kind, mib in memory["smaps"].items()) + ")")
    if figures is not None:
        line += (f"\n        requests round {figures['keys']} keys: {figures['requests_per_s']:,.0f} req/s, "
                 f"proxy CPU {figures['cpu_us']:.1f} µs/request, p50 {figures['p50_ms']:.3f} ms, "
                 f"p99 {figures['p99_ms']:.3f} ms, {figures['non_2xx']} non-2xx, "
                 f"{figures['socket_errors']} socket errors"
                 f"\n        after the load: resident {figures['memory_after']['VmRSS'] / 1024:4.0f} MiB, "
                 f"peak {figures['memory_after']['VmHWM'] / 1024:4.0f} MiB")
    return line, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ingresses", type=int, default=10000)
    parser.add_argument("--kubernetes", action="store_true", help="against tests/fakeapi.py (else a manifest)")
    parser.add_argument("--twistd", default=str(REPO / ".venv" / "bin" / "twistd"))
    parser.add_argument("--settle", type=float, default=5.0, help="seconds between ready and the reading")
    parser.add_argument("--ingressd-args", default="", help="more twistd ingressd options (the access log is off)")
    parser.add_argument("--load", type=float, default=0, metavar="SECONDS",
                        help="also send requests round the routes for this long (0: memory only)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before the measured run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--proxy-cpu", type=int, default=0, help="the CPU ingressd is pinned to under --load")
    parser.add_argument("--load-cpu", type=int, default=1, help="the CPU of wrk and the backend")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    parser.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    args = parser.parse_args()
    mode = "--kubernetes (fake API server)" if args.kubernetes else "--manifests (one JSON List file)"
    print(f"twistd ingressd {mode}")
    small, small_figures = measure(10, args)
    print(small, flush=True)
    large, large_figures = measure(args.ingresses, args)
    print(large, flush=True)
    if small_figures and large_figures:
        print(f"proxy CPU per request at {args.ingresses} / at 10 Ingresses: "
              f"{large_figures['cpu_us'] / small_figures['cpu_us']:.2f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
