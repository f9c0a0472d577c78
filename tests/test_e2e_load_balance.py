"""load-balance: ewma end to end: the real ``twistd ingressd``, three backends, one slow; the
latency-aware balancer moves the load away from it (round-robin, beside it, does not)."""

from __future__ import annotations

from collections import Counter

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, write_manifests
from test_e2e_affinity import pool
from test_e2e_next_upstream import Faulty

pytestmark = pytest.mark.slow

N = "nginx.ingress.kubernetes.io/"
REQUESTS = 60


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("load-balance")
    manifests = root / "manifests"
    manifests.mkdir()
    fast = [Backend("fast1"), Backend("fast2")]
    slow = Faulty("slow", "slow:0.4")
    ports = [fast[0].port, fast[1].port, slow.port]
    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS,
        *pool("trio", ports),
        ingress("ewma", [("ewma.test", [("/", "Prefix", "trio", 80)])], annotations={N + "load-balance": "ewma"}),
        ingress("rr", [("rr.test", [("/", "Prefix", "trio", 80)])], annotations={N + "load-balance": "round_robin"}),
    ])
    proc = Ingressd(manifests)
    yield proc, slow
    proc.stop()
    for backend in (*fast, slow):
        backend.stop()


def _shares(proc, host, count):
    answers = Counter()
    for _ in range(count):
        response = proc.get("/", host=host, timeout=30)
        assert response.status == 200
        answers[response.headers.get("x-backend")] += 1
    return answers


def test_ewma_moves_the_load_away_from_a_slow_endpoint(world):
    proc, slow = world
    answers = _shares(proc, "ewma.test", REQUESTS)
    share = answers["slow"] / REQUESTS
    print(f"load-balance ewma: the slow endpoint took {answers['slow']} of {REQUESTS} requests ({share:.0%}); "
          f"{dict(answers)}")
    # Each endpoint starts unknown (score 0); once the slow one's answer is learned it loses every
    # draw against a fast one until its average decays (10 s time constant).
    assert share < 1 / 6
    assert answers["fast1"] > 0 and answers["fast2"] > 0


def test_round_robin_beside_it_gives_the_slow_endpoint_its_third(world):
    proc, slow = world
    answers = _shares(proc, "rr.test", 15)
    assert answers["slow"] == 5
