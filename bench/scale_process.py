"""Resident memory of the real ``twistd ingressd`` process on bench/scale.py's objects.

    python bench/scale_process.py --ingresses 10000                 # --manifests (a JSON List file)
    python bench/scale_process.py --ingresses 10000 --kubernetes    # --kubernetes against tests/fakeapi.py

bench/scale.py measures the configuration in a process of its own; this starts the server
as it is deployed: from one manifest file, or against the repository's fake API server
(tests/fakeapi.py, the same REST protocol the tests drive: paged LISTs, WATCH) through the
official kubernetes client. It waits for /readyz, then prints VmRSS and VmHWM (the peak) a
few seconds later, and the same for 10 Ingresses (the process without the configuration).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

import scale  # noqa: E402
from bench import free_ports  # noqa: E402  (bench/bench.py)

API_VERSIONS = {"Ingress": "networking.k8s.io/v1", "IngressClass": "networking.k8s.io/v1",
                "EndpointSlice": "discovery.k8s.io/v1"}


def api_objects(count: int) -> list[dict]:
    items = []
    for kind, objects in scale.objects(count).items():
        for obj in objects:
            obj = dict(obj, kind=kind, apiVersion=API_VERSIONS.get(kind, "v1"))
            if kind == "EndpointSlice":
                obj["addressType"] = "IPv4"
            items.append(obj)
    return items


def memory_kib(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/status") as handle:
        return {line.split(":")[0]: int(line.split()[1]) for line in handle
                if line.startswith(("VmRSS", "VmHWM", "RssAnon", "RssFile"))}


def run(twistd: str, source_args: list[str], workdir: Path, settle: float) -> tuple[float, dict[str, int]]:
    """Start ingressd, wait until ready, settle, return (seconds to ready, memory)."""
    ports = free_ports(3)
    argv = [twistd, "-n", "--pidfile=", "ingressd", *source_args, "--access-log", "off",
            "--http", f"tcp:{ports[0]}:interface=127.0.0.1", "--https", f"tcp:{ports[1]}:interface=127.0.0.1",
            "--admin", f"tcp:{ports[2]}:interface=127.0.0.1"]
    with open(workdir / "ingressd.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    started = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"ingressd exited with {proc.returncode}; see {workdir / 'ingressd.log'}")
            if time.monotonic() - started > 300:
                raise SystemExit("ingressd was not ready after 300 s")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports[2]}/readyz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.2)
        ready = time.monotonic() - started
        time.sleep(settle)
        return ready, memory_kib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def measure(count: int, kubernetes: bool, twistd: str, settle: float) -> str:
    with tempfile.TemporaryDirectory(prefix="ingressd-scale-") as tmp:
        workdir = Path(tmp)
        if kubernetes:
            import fakeapi  # tests/fakeapi.py: the repository's fake kube-apiserver

            api = fakeapi.FakeAPIServer(bookmark_interval=5).start()
            try:
                for obj in api_objects(count):
                    api.cluster.apply(obj)
                kubeconfig = api.write_kubeconfig(str(workdir / "kubeconfig"))
                ready, memory = run(twistd, ["--kubernetes", "--kubeconfig", kubeconfig], workdir, settle)
            finally:
                api.stop()
        else:
            manifest = workdir / "objects.json"
            manifest.write_text(json.dumps({"kind": "List", "items": api_objects(count)}))
            ready, memory = run(twistd, ["--manifests", str(manifest)], workdir, settle)
    return (f"{count:>6} Ingresses: ready after {ready:5.1f} s, resident {memory['VmRSS'] / 1024:4.0f} MiB, "
            f"peak {memory['VmHWM'] / 1024:4.0f} MiB (anonymous {memory['RssAnon'] / 1024:.0f}, "
            f"files {memory['RssFile'] / 1024:.0f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ingresses", type=int, default=10000)
    parser.add_argument("--kubernetes", action="store_true", help="against tests/fakeapi.py (else a manifest)")
    parser.add_argument("--twistd", default=str(REPO / ".venv" / "bin" / "twistd"))
    parser.add_argument("--settle", type=float, default=5.0, help="seconds between ready and the reading")
    args = parser.parse_args()
    mode = "--kubernetes (fake API server)" if args.kubernetes else "--manifests (one JSON List file)"
    print(f"twistd ingressd {mode}")
    print(measure(10, args.kubernetes, args.twistd, args.settle), flush=True)
    print(measure(args.ingresses, args.kubernetes, args.twistd, args.settle), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
