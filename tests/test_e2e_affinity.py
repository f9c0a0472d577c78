"""Session affinity end to end: the real ``twistd ingressd``, three real backends, a real client.

Stickiness over many requests, the cookie's attributes, a configuration change, a second
ingressd process on the same manifests, an endpoint removed (balanced and persistent), and
``session-cookie-change-on-failure`` with a dead endpoint.
"""

from __future__ import annotations

import time
from hashlib import md5

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, free_port, ingress, write_manifests

pytestmark = pytest.mark.slow

N = "nginx.ingress.kubernetes.io/"
STICKY = {N + "affinity": "cookie", N + "session-cookie-name": "SERVERID", N + "session-cookie-max-age": "100",
          N + "session-cookie-samesite": "Lax"}
PERSISTENT = {N + "affinity": "cookie", N + "affinity-mode": "persistent"}


def pool(name: str, ports) -> list[dict]:
    """A Service whose endpoints are 127.0.0.1 on each of ``ports`` (one EndpointSlice each)."""
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
             "spec": {"ports": [{"name": "http", "port": 80}]}},
            *({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": f"{name}-{port}", "namespace": "default",
                            "labels": {"kubernetes.io/service-name": name}},
               "addressType": "IPv4", "ports": [{"name": "http", "port": port}],
               "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]} for port in ports)]


class World:
    def __init__(self, root):
        self.manifests = root / "manifests"
        self.manifests.mkdir()
        self.backends = [Backend(name) for name in ("a", "b", "c")]
        self.dead = free_port()
        self.extra: list[dict] = []
        self.shrink_ports = [backend.port for backend in self.backends]
        self.write()
        self.proc = Ingressd(self.manifests)

    def objects(self) -> list[dict]:
        ports = [backend.port for backend in self.backends]
        return [
            INGRESS_CLASS,
            *pool("pool", ports),
            *pool("shrink", self.shrink_ports),
            *pool("mixed", [self.dead, ports[0]]),
            ingress("sticky", [("sticky.test", [("/app", "Prefix", "pool", 80)])], annotations=STICKY),
            ingress("persist", [("persist.test", [("/", "Prefix", "pool", 80)])], annotations=PERSISTENT),
            ingress("shrink-balanced", [("shrink-b.test", [("/", "Prefix", "shrink", 80)])],
                    annotations={N + "affinity": "cookie"}),
            ingress("shrink-persistent", [("shrink-p.test", [("/", "Prefix", "shrink", 80)])], annotations=PERSISTENT),
            ingress("change", [("change.test", [("/", "Prefix", "mixed", 80)])],
                    annotations={**PERSISTENT, N + "session-cookie-change-on-failure": "true"}),
            ingress("stay", [("stay.test", [("/", "Prefix", "mixed", 80)])], annotations=PERSISTENT),
            *self.extra,
        ]

    def write(self) -> None:
        write_manifests(self.manifests / "all.yaml", self.objects())

    def stop(self) -> None:
        self.proc.stop()
        for backend in self.backends:
            backend.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("affinity"))
    yield world
    world.stop()
    text = world.proc.log_path.read_text(errors="replace")
    assert "Traceback" not in text, text


def visit(proc, host: str, cookie: str | None = None, path: str = "/", name: str = "INGRESSCOOKIE"):
    """One GET: (the backend that answered, the affinity Set-Cookie or None, the response)."""
    response = proc.get(path, host=host, headers={"Cookie": cookie} if cookie else None)
    ours = [value for value in response.all("set-cookie") if value.startswith(name + "=")]
    assert len(ours) <= 1, ours
    backend = response.json()["backend"] if response.status == 200 else None
    return backend, (ours[0] if ours else None), response


def pair(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0]


def clients_per_backend(proc, host: str, name: str = "INGRESSCOOKIE", path: str = "/") -> dict[str, str]:
    """A cookie for each backend, from new clients (bounded: a few hundred at most)."""
    found: dict[str, str] = {}
    for _ in range(300):
        backend, cookie, _ = visit(proc, host, path=path, name=name)
        assert cookie is not None  # a client without a cookie always gets one
        found.setdefault(backend, pair(cookie))
        if len(found) == 3:
            return found
    raise AssertionError(f"new clients reached only {sorted(found)}")


def wait_until(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_client_stays_on_its_backend_over_many_requests(world):
    cookies = clients_per_backend(world.proc, "sticky.test", "SERVERID", "/app")
    for backend, cookie in cookies.items():
        for _ in range(15):
            again, set_again, _ = visit(world.proc, "sticky.test", cookie, "/app/page", "SERVERID")
            assert (again, set_again) == (backend, None)


def test_the_cookie_attributes(world):
    _, cookie, response = visit(world.proc, "sticky.test", path="/app/x", name="SERVERID")
    assert response.status == 200
    name_value, *attributes = cookie.split("; ")
    key, _, backend_key = name_value.partition("=")[2].partition("|")
    assert key and backend_key == md5((md5(b"default-pool-80").hexdigest() + "default-pool-80").encode()).hexdigest()
    assert attributes == ["Max-Age=100", "Path=/app", "HttpOnly", "SameSite=Lax"]
    assert "127.0.0.1" not in cookie
    # the backend's own cookies pass untouched
    assert {"a=1", "b=2"} <= set(response.all("set-cookie"))


def test_stickiness_survives_a_configuration_change(world):
    cookies = clients_per_backend(world.proc, "persist.test")
    world.extra = [ingress("later", [("later.test", [("/", "Prefix", "pool", 80)])])]
    world.write()
    wait_until(lambda: world.proc.get("/", host="later.test").status == 200, "the new Ingress to be served")
    for backend, cookie in cookies.items():
        for _ in range(5):
            assert visit(world.proc, "persist.test", cookie)[:2] == (backend, None)
    balanced = clients_per_backend(world.proc, "sticky.test", "SERVERID", "/app")
    world.extra = []
    world.write()
    wait_until(lambda: world.proc.get("/", host="later.test").status == 404, "the Ingress to be gone")
    for backend, cookie in balanced.items():
        assert visit(world.proc, "sticky.test", cookie, "/app", "SERVERID")[:2] == (backend, None)


def test_a_second_ingressd_on_the_same_manifests_sends_each_cookie_to_the_same_backend(world):
    issued = {host: clients_per_backend(world.proc, host, name, path)
              for host, name, path in (("sticky.test", "SERVERID", "/app"), ("persist.test", "INGRESSCOOKIE", "/"))}
    second = Ingressd(world.manifests)
    try:
        for (host, name, path), cookies in zip((("sticky.test", "SERVERID", "/app"),
                                                ("persist.test", "INGRESSCOOKIE", "/")), issued.values()):
            for backend, cookie in cookies.items():
                for _ in range(5):
                    assert visit(second, host, cookie, path, name)[:2] == (backend, None)
    finally:
        second.stop()
    assert "Traceback" not in second.log_path.read_text(errors="replace")


def test_an_endpoint_removed_balanced_moves_its_clients_persistent_sets_a_new_cookie(world):
    balanced = clients_per_backend(world.proc, "shrink-b.test")
    persistent = clients_per_backend(world.proc, "shrink-p.test")
    gone = world.backends[2]
    world.shrink_ports = [backend.port for backend in world.backends[:2]]
    world.write()
    # Until the change is served, the removed backend still answers its clients.
    wait_until(lambda: visit(world.proc, "shrink-b.test", balanced["c"])[0] != "c", "the endpoint to be removed")
    for backend, cookie in balanced.items():
        now, set_cookie, _ = visit(world.proc, "shrink-b.test", cookie)
        assert set_cookie is None  # the key still maps, the same way in every replica
        assert now in ("a", "b") and (now == backend or backend == gone.server.name)
    for backend, cookie in persistent.items():
        now, set_cookie, _ = visit(world.proc, "shrink-p.test", cookie)
        if backend == gone.server.name:
            assert now in ("a", "b") and set_cookie is not None
            assert visit(world.proc, "shrink-p.test", pair(set_cookie))[:2] == (now, None)
        else:
            assert (now, set_cookie) == (backend, None)


def test_change_on_failure_moves_a_client_off_a_dead_endpoint_and_its_cookie_with_it(world):
    dead = md5(f"default-mixed-80127.0.0.1:{world.dead}".encode()).hexdigest()  # its persistent key
    cookie = f"INGRESSCOOKIE={dead}|x"
    backend, set_cookie, response = visit(world.proc, "change.test", cookie)
    assert response.status == 200 and backend == "a" and set_cookie is not None
    assert visit(world.proc, "change.test", pair(set_cookie))[:2] == ("a", None)
    # Without it, the retry goes back to the cookie's endpoint, as ingress-nginx's does: 502.
    _, set_cookie, response = visit(world.proc, "stay.test", cookie)
    assert response.status == 502 and set_cookie is None
