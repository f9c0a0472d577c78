"""``--workers N``: N processes on the same ports, supervised, with one admin endpoint."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests

pytestmark = pytest.mark.slow


def worker_pids(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    command = handle.read()
            except OSError:
                continue
            if int(fields[1]) == parent and b"--worker-id" in command:
                found.append(int(entry))
    return sorted(found)


@pytest.fixture(scope="module")
def supervised(tmp_path_factory):
    root = tmp_path_factory.mktemp("workers")
    manifests = root / "manifests"
    manifests.mkdir()
    web = Backend("web")
    write_manifests(manifests / "app.yaml", [
        INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
        ingress("app", [("app.example.com", [("/", "Prefix", "web", "http")])]),
    ])
    proc = Ingressd(manifests, ["--workers", "2", "--access-log", "off"])
    yield proc, web
    proc.stop()
    web.stop()


def test_two_workers_serve_the_same_port(supervised):
    proc, web = supervised
    assert len(worker_pids(proc.process.pid)) == 2
    for _ in range(40):  # new connections each: the kernel spreads them over both workers
        assert proc.get("/", host="app.example.com").status == 200
    status, _, body = proc.admin("/metrics")
    assert status == 200
    served = {}
    for match in re.finditer(rb'ingressd_requests_total\{[^}]*worker="(\d)"[^}]*\} (\d+)', body):
        served[match.group(1)] = served.get(match.group(1), 0) + float(match.group(2))
    assert set(served) == {b"0", b"1"}, body[:2000]
    assert sum(served.values()) >= 40
    assert proc.admin("/readyz")[0] == 200
    assert b"app.example.com" in proc.admin("/routes")[2]


def test_a_dead_worker_is_replaced(supervised):
    proc, web = supervised
    before = worker_pids(proc.process.pid)
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        now = worker_pids(proc.process.pid)
        if len(now) == 2 and before[0] not in now and proc.admin("/readyz")[0] == 200:
            break
        assert time.monotonic() < deadline, now
        time.sleep(0.2)
    for _ in range(10):
        assert proc.get("/", host="app.example.com").status == 200


def test_stopping_the_supervisor_stops_the_workers(tmp_path):
    manifests = tmp_path / "m"
    manifests.mkdir()
    write_manifests(manifests / "x.yaml", [INGRESS_CLASS])
    proc = Ingressd(manifests, ["--workers", "2", "--access-log", "off"])
    pids = worker_pids(proc.process.pid)
    assert len(pids) == 2
    proc.stop()
    deadline = time.monotonic() + 15
    while any(os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z"
              for pid in pids):
        assert time.monotonic() < deadline
        time.sleep(0.1)
