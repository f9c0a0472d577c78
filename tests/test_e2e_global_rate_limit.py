"""End to end: global-rate-limit shared by real ``twistd ingressd`` processes through one real
redis-server; Redis killed, restarted and paused under them."""

from __future__ import annotations

import time

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests
from redis_server import RedisServer

pytestmark = pytest.mark.slow

N = "nginx.ingress.kubernetes.io/"
LIMIT = 12


def limited(name, host, annotations):
    return ingress(name, [(host, [("/", "Prefix", "web", 80)])], annotations={
        N + "global-rate-limit": str(LIMIT), N + "global-rate-limit-window": "1h", **annotations})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("global")
    manifests = root / "manifests"
    manifests.mkdir()
    web = Backend("web")
    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS,
        *service("web", [("http", 80, web.port)]),
        limited("shared", "shared.test", {}),
        limited("bykey", "bykey.test", {N + "global-rate-limit-key": "$http_x_client"}),
        limited("ignored", "ignored.test", {N + "global-rate-limit-ignored-cidrs": "127.0.0.0/8"}),
        limited("kill", "kill.test", {N + "global-rate-limit-key": "$http_x_round"}),
        ingress("plain", [("plain.test", [("/", "Prefix", "web", 80)])]),
        ingress("scoped", [("scoped.test", [("/", "Prefix", "web", 80)])], annotations={
            N + "limit-rpm": "1", N + "limit-burst-multiplier": "2", "ingressd.io/limit-scope": "global"}),
    ])
    redis = RedisServer()
    procs = []
    try:
        # Three replicas on one Redis; the third fails closed with 503 instead of 429.
        common = ["--redis", redis.url, "--redis-timeout", "0.25"]
        procs.append(Ingressd(manifests, common, log_path=root / "a.log"))
        procs.append(Ingressd(manifests, common, log_path=root / "b.log"))
        procs.append(Ingressd(manifests, [*common, "--redis-failure", "closed", "--global-rate-limit-status-code",
                                          "503"], log_path=root / "c.log"))
        yield manifests, redis, procs
    finally:
        for proc in procs:
            proc.stop()
        redis.stop()
        web.stop()


def wait_connected(proc, seconds=30.0):
    """Until ``proc`` decides in Redis again: connected, and its breaker closed (a request on a
    throwaway key probes once the cool-down is over)."""
    deadline = time.monotonic() + seconds
    probes = 0
    while time.monotonic() < deadline:
        _, _, body = proc.admin("/metrics")
        text = body.decode()
        if "ingressd_redis_connections 2.0" in text:
            if "ingressd_redis_breaker_open 0.0" in text:
                return
            probes += 1
            proc.get("/", host="kill.test", headers={"X-Round": f"probe-{probes}"})
        time.sleep(0.1)
    raise AssertionError(f"not deciding in redis: {proc.log()[-2000:]}")


@pytest.fixture(autouse=True)
def usable(world):
    for proc in world[2]:
        wait_connected(proc)


def test_three_replicas_share_one_limit(world):
    _, _, procs = world
    statuses = []
    for round_ in range(LIMIT):  # three replicas' worth of traffic: 3 × LIMIT requests
        for proc in procs:
            statuses.append(proc.get("/", host="shared.test"))
    admitted = [r for r in statuses if r.status == 200]
    assert len(admitted) == LIMIT, [r.status for r in statuses]
    refused = [r for r in statuses if r.status != 200]
    assert {r.status for r in refused} <= {429, 503}
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert procs[0].get("/", host="plain.test").status == 200  # no limit there


def test_limit_scope_global_makes_limit_rpm_cluster_wide(world):
    """limit-rpm 1 with burst 2: nginx lets burst + 1 = 3 through at once, for the whole cluster."""
    _, _, procs = world
    answers = [procs[i % 3].get("/", host="scoped.test") for i in range(9)]
    assert [r.status for r in answers].count(200) == 3, [r.status for r in answers]
    assert {r.status for r in answers if r.status != 200} == {503}  # --limit-req-status-code


def test_the_key_template_separates_clients(world):
    _, _, procs = world
    for client in ("alice", "bob"):
        answers = [procs[i % 2].get("/", host="bykey.test", headers={"X-Client": client}).status
                   for i in range(LIMIT + 3)]
        assert answers.count(200) == LIMIT and answers[-1] == 429, (client, answers)


def test_ignored_cidrs_pass(world):
    _, _, procs = world
    assert all(procs[i % 3].get("/", host="ignored.test").status == 200 for i in range(2 * LIMIT))


def test_redis_killed_open_passes_closed_refuses_and_a_restart_recovers(world):
    _, redis, procs = world
    opened, closed = procs[0], procs[2]
    assert opened.get("/", host="kill.test", headers={"X-Round": "before"}).status == 200
    redis.stop()
    assert "not ready" in _readyz(closed, expect=503)  # failing closed: readiness follows Redis
    assert _readyz(opened, expect=200) == "ready\n"
    for _ in range(10):
        assert opened.get("/", host="kill.test", headers={"X-Round": "dead"}).status == 200
        response = closed.get("/", host="kill.test", headers={"X-Round": "dead"})
        assert response.status == 503 and response.headers["retry-after"] == "1"
    _, _, body = opened.admin("/metrics")
    text = body.decode()
    assert 'ingressd_redis_errors_total{kind="RedisUnavailable"}' in text
    assert "ingressd_redis_decision_duration_seconds_bucket" in text
    redis.start()  # the same port: no restart of ingressd
    for proc in procs:
        wait_connected(proc)
    # The breaker probes again within its cool-down; then the limit holds once more.
    deadline = time.monotonic() + 30
    answers = []
    while time.monotonic() < deadline:
        answers.append(opened.get("/", host="kill.test", headers={"X-Round": "after"}).status)
        if answers[-1] == 429:
            break
        time.sleep(0.05)
    assert answers[-1] == 429 and answers.count(200) <= LIMIT, answers
    _readyz(closed, expect=200)


def test_a_paused_redis_costs_at_most_the_timeout(world):
    _, redis, procs = world
    opened, closed = procs[1], procs[2]
    redis.pause()  # SIGSTOP: connections up, nothing answered
    try:
        for _ in range(3):
            started = time.monotonic()
            assert opened.get("/", host="kill.test", headers={"X-Round": "paused"}, timeout=10).status == 200
            assert closed.get("/", host="kill.test", headers={"X-Round": "paused"}, timeout=10).status == 503
            assert time.monotonic() - started < 10  # answered, not stuck behind Redis
        _, _, body = opened.admin("/metrics")
        assert 'ingressd_redis_errors_total{kind="timeout"}' in body.decode()
    finally:
        redis.resume()


def test_without_redis_a_global_limit_is_not_served(world, tmp_path):
    manifests, _, _ = world
    proc = Ingressd(manifests, log_path=tmp_path / "alone.log")
    try:
        assert proc.get("/", host="shared.test").status == 404
        assert proc.get("/", host="scoped.test").status == 404
        assert "ingressd.io/limit-scope: global needs a Redis shared by the replicas" in proc.log()
        assert proc.get("/", host="plain.test").status == 200
        assert "global-rate-limit needs a Redis shared by the replicas: start ingressd with --redis URL" in proc.log()
    finally:
        proc.stop()


def _readyz(proc, expect, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, _, body = proc.admin("/readyz")
        if status == expect:
            return body.decode()
        time.sleep(0.1)
    raise AssertionError(f"/readyz never answered {expect}")
