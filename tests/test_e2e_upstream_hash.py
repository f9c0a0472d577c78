"""upstream-hash-by end to end: the real ``twistd ingressd`` and real backends; keys stay put, and an
endpoint added takes only its share of them (measured and printed)."""

from __future__ import annotations

import time

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, write_manifests
from test_e2e_affinity import pool

pytestmark = pytest.mark.slow

N = "nginx.ingress.kubernetes.io/"
USERS = [f"user{i}" for i in range(80)]


def where(proc, user: str) -> str:
    response = proc.get(f"/?user={user}", host="hash.test", headers={"X-Tenant": "t1"})
    assert response.status == 200, response
    return response.json()["backend"]


def test_each_key_stays_on_its_backend_and_an_added_endpoint_takes_only_its_share(tmp_path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    backends = [Backend(name) for name in ("a", "b", "c", "d")]

    def write(count: int) -> None:
        write_manifests(manifests / "all.yaml", [
            INGRESS_CLASS, *pool("hashed", [backend.port for backend in backends[:count]]),
            ingress("hash", [("hash.test", [("/", "Prefix", "hashed", 80)])],
                    annotations={N + "upstream-hash-by": "$http_x_tenant-$arg_user"}),
        ])

    write(3)
    proc = Ingressd(manifests)
    try:
        before = {user: where(proc, user) for user in USERS}
        assert len(set(before.values())) == 3
        for user in USERS[:20]:
            assert where(proc, user) == before[user]
        write(4)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "d" not in {where(proc, user) for user in USERS[:40]}:
            time.sleep(0.1)
        after = {user: where(proc, user) for user in USERS}
        moved = [user for user in USERS if after[user] != before[user]]
        assert moved and all(after[user] == "d" for user in moved)  # keys only move to the new endpoint
        print(f"upstream-hash-by: 3 → 4 endpoints moved {len(moved)}/{len(USERS)} keys (ideal 1/4)")
        assert len(moved) < 0.45 * len(USERS)
    finally:
        proc.stop()
        for backend in backends:
            backend.stop()
    assert "Traceback" not in proc.log_path.read_text(errors="replace")
