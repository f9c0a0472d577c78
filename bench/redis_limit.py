#!/usr/bin/env python3
"""What a global rate limit costs: ingressd with no limit, a local limit (limit-rps) and a global
limit in Redis (global-rate-limit; limit-scope: global), Redis on the same machine.

Starts on 127.0.0.1 free ports: an nginx backend answering ``ok`` (keep-alive), a redis-server,
and ``twistd -n ingressd --redis …`` serving one host per case, each limit far above the load so
every request is admitted (the cost of deciding, not of refusing). For each case, wrk runs
(``-t1 -cN``) and this prints requests/s, p50/p99 and the ingressd process's CPU time per request
(utime+stime from /proc), and for the Redis cases the decisions per Redis read event
(``total_reads_processed`` of ``INFO stats``: how many decisions one round trip carried, the
pipelining across concurrent requests). Figures, no assertions.

    python3 bench/redis_limit.py --seconds 10 --connections 32
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import cpu_seconds, free_ports, parse_wrk  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
N = "nginx.ingress.kubernetes.io/"
CASES = {
    "none": {},
    "local": {N + "limit-rps": "1000000"},
    "global": {N + "global-rate-limit": "1000000000", N + "global-rate-limit-window": "1h"},
    "scope-global": {N + "limit-rps": "1000000", "ingressd.io/limit-scope": "global"},
}


def manifests(backend_port: int) -> str:
    import json

    docs = [
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "ingressd"},
         "spec": {"controller": "ingressd.io/ingress-controller"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": backend_port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": backend_port}],
         "endpoints": [{"addresses": ["127.0.0.1"]}]},
    ]
    for case, annotations in CASES.items():
        docs.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                     "metadata": {"name": case, "namespace": "default", "annotations": annotations},
                     "spec": {"ingressClassName": "ingressd", "rules": [{"host": f"{case}.bench", "http": {"paths": [
                         {"path": "/", "pathType": "Prefix",
                          "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
    return "\n---\n".join(json.dumps(doc) for doc in docs)


def redis_stats(port: int) -> dict:
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "all"], capture_output=True, text=True).stdout
    stats = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key in ("total_reads_processed", "total_commands_processed"):
            stats[key] = int(value)
        if key == "cmdstat_evalsha":
            stats["evalsha"] = int(value.split("calls=")[1].split(",")[0])
    return stats


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--redis-timeout", default="0.005")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="redis-bench-"))
    backend_port, redis_port, http_port, https_port, admin_port = free_ports(5)
    procs = []
    try:
        (tmp / "nginx.conf").write_text(
            f"daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/error.log;\n"
            f"events {{ worker_connections 1024; }}\n"
            f"http {{ access_log off; client_body_temp_path {tmp}; proxy_temp_path {tmp};\n"
            f" fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};\n"
            f" keepalive_requests 1000000;\n"
            f" server {{ listen 127.0.0.1:{backend_port}; location / {{ return 200 \"ok\\n\"; }} }} }}\n")
        procs.append(subprocess.Popen(["taskset", "-c", "1", shutil.which("nginx") or "/usr/sbin/nginx",
                                       "-p", str(tmp), "-c", str(tmp / "nginx.conf")]))
        procs.append(subprocess.Popen(["taskset", "-c", "1", "redis-server", "--port", str(redis_port), "--bind",
                                       "127.0.0.1", "--save", "", "--appendonly", "no"],
                                      stdout=subprocess.DEVNULL))
        (tmp / "m").mkdir()
        (tmp / "m" / "all.yaml").write_text(manifests(backend_port))
        twistd = str(Path(sys.executable).with_name("twistd"))
        ingressd = subprocess.Popen(
            ["taskset", "-c", "0", twistd, "-n", "--pidfile=", "ingressd", "--manifests", str(tmp / "m"),
             "--http", f"tcp:{http_port}:interface=127.0.0.1", "--https", f"tcp:{https_port}:interface=127.0.0.1",
             "--admin", f"tcp:{admin_port}:interface=127.0.0.1", "--access-log", "off", "--no-metrics",
             "--redis", f"redis://127.0.0.1:{redis_port}", "--redis-timeout", args.redis_timeout],
            stdout=open(tmp / "ingressd.log", "wb"), stderr=subprocess.STDOUT, cwd=str(tmp))
        procs.append(ingressd)
        deadline = time.monotonic() + 30
        import urllib.request
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        print(f"{'case':<14}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/req':>12}{'decisions/read':>16}"
              f"{'non-2xx':>9}")
        for case in CASES:
            url = f"http://127.0.0.1:{http_port}/"
            wrk = ["taskset", "-c", "1", "wrk", "-t1", f"-c{args.connections}", "--latency",
                   "-H", f"Host: {case}.bench", url]
            subprocess.run([*wrk[:5], "-d2s", *wrk[5:]], capture_output=True)  # warm-up
            before_cpu, before = cpu_seconds(ingressd.pid), redis_stats(redis_port)
            out = subprocess.run([*wrk[:5], f"-d{args.seconds:g}s", *wrk[5:]], capture_output=True,
                                 text=True).stdout
            cpu, after = cpu_seconds(ingressd.pid) - before_cpu, redis_stats(redis_port)
            figures = parse_wrk(out)
            decisions = after.get("evalsha", 0) - before.get("evalsha", 0)
            reads = after["total_reads_processed"] - before["total_reads_processed"]
            per_read = f"{decisions / reads:.2f}" if decisions and reads else "-"
            print(f"{case:<14}{figures['requests_per_s']:>10.0f}{figures['p50_ms']:>9.2f}{figures['p99_ms']:>9.2f}"
                  f"{cpu / figures['requests'] * 1e6:>12.1f}{per_read:>16}{figures['non_2xx']:>9}")
        return 0
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
