"""affinity-canary-behavior end to end: the real ``twistd ingressd``, a main Ingress with session
affinity and a canary Ingress (weight 50) for the same host and path, real clients keeping
their cookies. ``sticky`` (the default): a client sent to the canary gets a cookie naming it and
stays there; ``legacy``: the canary sets no cookie, a client bound to the main backend stays."""

from __future__ import annotations

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, write_manifests
from test_e2e_affinity import pool

pytestmark = pytest.mark.slow

N = "nginx.ingress.kubernetes.io/"
CLIENTS = 24
REPEATS = 4


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("affinity-canary")
    manifests = root / "manifests"
    manifests.mkdir()
    backends = [Backend("main1"), Backend("main2"), Backend("canary")]
    objects = [INGRESS_CLASS, *pool("main", [backends[0].port, backends[1].port]), *pool("canary", [backends[2].port])]
    for behavior in ("sticky", "legacy"):
        host = f"{behavior}.test"
        objects.append(ingress(f"main-{behavior}", [(host, [("/", "Prefix", "main", 80)])],
                               annotations={N + "affinity": "cookie"}))
        canary = {N + "canary": "true", N + "canary-weight": "50"}
        if behavior == "legacy":
            canary[N + "affinity-canary-behavior"] = "legacy"
        objects.append(ingress(f"canary-{behavior}", [(host, [("/", "Prefix", "canary", 80)])], annotations=canary))
    write_manifests(manifests / "all.yaml", objects)
    proc = Ingressd(manifests)
    yield proc
    proc.stop()
    for backend in backends:
        backend.stop()


def _visit(proc, host, cookie=None):
    """One request; (backend, the INGRESSCOOKIE value set or None)."""
    response = proc.get("/", host=host, headers={"Cookie": f"INGRESSCOOKIE={cookie}"} if cookie else None)
    assert response.status == 200
    set_cookie = [value for value in response.all("set-cookie") if value.startswith("INGRESSCOOKIE=")]
    value = set_cookie[0].split(";", 1)[0].split("=", 1)[1] if set_cookie else None
    return response.headers["x-backend"], value


def test_sticky_clients_sent_to_the_canary_stay_on_the_canary(world):
    proc = world
    first = {}
    for client in range(CLIENTS):
        backend, cookie = _visit(proc, "sticky.test")
        assert cookie is not None  # both backends are sticky: every new client gets a cookie
        first[client] = (backend, cookie)
    assert {"canary"} < {backend for backend, _ in first.values()}  # weight 50: both kinds of client
    for backend, cookie in first.values():
        for _ in range(REPEATS):
            again, new_cookie = _visit(proc, "sticky.test", cookie)
            assert again == backend and new_cookie is None  # bound: no new cookie, the same endpoint


def test_legacy_the_canary_sets_no_cookie_and_main_clients_stay(world):
    proc = world
    canary_answers = main_cookies = 0
    bound = []
    for _ in range(CLIENTS):
        backend, cookie = _visit(proc, "legacy.test")
        if backend == "canary":
            canary_answers += 1
            assert cookie is None  # the canary is not sticky in legacy mode
        else:
            main_cookies += 1
            assert cookie is not None
            bound.append((backend, cookie))
    assert canary_answers and main_cookies
    for backend, cookie in bound:
        for _ in range(REPEATS):
            assert _visit(proc, "legacy.test", cookie) == (backend, None)
