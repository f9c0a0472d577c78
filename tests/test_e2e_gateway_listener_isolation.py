"""Listener isolation (conformance GatewayHTTPListenerIsolation, both of its manifests, ported):
four HTTP listeners on one port with nested hostnames (none, ``*.example.com``,
``*.foo.example.com``, ``abc.foo.example.com``); a request reaches only the routes of the most
specific listener that matches its host. End to end against the real ``twistd ingressd`` (one
server per manifest: they use the same hostnames), and the rule itself
(``hostnames.claimed_by_another``) table-style."""

from __future__ import annotations

import pytest

from backends import Backend
from harness import Ingressd, service, wait_for, write_manifests
from ingressd.config.gateway.hostnames import claimed_by_another

NS = "gateway-conformance-infra"
LISTENERS = {"empty-hostname": None, "wildcard-example-com": "*.example.com",
             "wildcard-foo-example-com": "*.foo.example.com", "abc-foo-example-com": "abc.foo.example.com"}
INTERSECTING = ["bar.com", "*.example.com", "*.foo.example.com", "abc.foo.example.com"]


def manifests(intersection: bool) -> list[dict]:
    name = "http-listener-isolation" + ("-with-hostname-intersection" if intersection else "")
    objects = [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "ingressd"},
         "spec": {"controllerName": "ingressd.io/gateway-controller"}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": name, "namespace": NS},
         "spec": {"gatewayClassName": "ingressd", "listeners": [
             {"name": listener, "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}},
              **({"hostname": hostname} if hostname else {})} for listener, hostname in LISTENERS.items()]}},
    ]
    for listener in LISTENERS:
        spec = {"parentRefs": [{"name": name, "namespace": NS, "sectionName": listener}],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": f"/{listener}"}}],
                           "backendRefs": [{"name": "infra-backend-v1", "port": 8080}]}]}
        if intersection:
            spec["hostnames"] = INTERSECTING
        objects.append({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                        "metadata": {"name": f"attaches-to-{listener}" + ("-with-hostname-intersection"
                                                                          if intersection else ""),
                                     "namespace": NS}, "spec": spec})
    return objects


# (host, path) → served by infra-backend-v1, or 404: the conformance test's table
CASES = [
    ("bar.com", "/empty-hostname", 200), ("bar.com", "/wildcard-example-com", 404),
    ("bar.com", "/wildcard-foo-example-com", 404), ("bar.com", "/abc-foo-example-com", 404),
    ("bar.example.com", "/empty-hostname", 404), ("bar.example.com", "/wildcard-example-com", 200),
    ("bar.example.com", "/wildcard-foo-example-com", 404), ("bar.example.com", "/abc-foo-example-com", 404),
    ("bar.foo.example.com", "/empty-hostname", 404), ("bar.foo.example.com", "/wildcard-example-com", 404),
    ("bar.foo.example.com", "/wildcard-foo-example-com", 200), ("bar.foo.example.com", "/abc-foo-example-com", 404),
    ("abc.foo.example.com", "/empty-hostname", 404), ("abc.foo.example.com", "/wildcard-example-com", 404),
    ("abc.foo.example.com", "/wildcard-foo-example-com", 404), ("abc.foo.example.com", "/abc-foo-example-com", 200),
]


@pytest.fixture(scope="module", params=[False, True], ids=["hostnames-in-listeners", "hostname-intersection"])
def server(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-listener-isolation")
    backend = Backend("infra-backend-v1")
    write_manifests(root / "all.yaml", [*manifests(request.param),
                                        *service("infra-backend-v1", [("http", 8080, backend.port)], namespace=NS)])
    proc = Ingressd(root)
    try:
        wait_for(lambda: proc.get("/abc-foo-example-com", host="abc.foo.example.com").status == 200,
                 "the routes served", timeout=30)
        yield proc
    finally:
        proc.stop()
        backend.stop()


@pytest.mark.slow
def test_each_request_reaches_only_its_most_specific_listeners_routes(server):
    answered = {(host, path): server.get(path, host=host) for host, path, _ in CASES}
    got = {key: (response.status, response.headers.get("x-backend") if response.status == 200 else None)
           for key, response in answered.items()}
    expected = {(host, path): (status, "infra-backend-v1" if status == 200 else None) for host, path, status in CASES}
    assert got == expected


# -- the rule ----------------------------------------------------------------------------------

OTHERS = list(LISTENERS.values())


@pytest.mark.parametrize("name,listener,claimed", [
    ("", None, False),  # every host: the catch-all listener keeps it
    ("bar.com", None, False),
    ("*.example.com", None, True),  # every name of it finds the *.example.com listener
    ("*.foo.example.com", None, True),
    ("abc.foo.example.com", None, True),
    ("x.example.com", None, True),
    ("*.example.com", "*.example.com", False),  # only some of its names find a more specific one
    ("*.foo.example.com", "*.example.com", True),
    ("abc.foo.example.com", "*.example.com", True),
    ("x.y.example.com", "*.example.com", False),
    ("*.foo.example.com", "*.foo.example.com", False),
    ("abc.foo.example.com", "*.foo.example.com", True),
    ("x.foo.example.com", "*.foo.example.com", False),
    ("abc.foo.example.com", "abc.foo.example.com", False),  # nothing is more specific than a name
])
def test_a_host_wholly_within_a_more_specific_listener_is_claimed_by_it(name, listener, claimed):
    others = [other for other in OTHERS if other != listener]
    assert claimed_by_another(name, listener, others) is claimed


def test_unrelated_or_less_specific_listeners_claim_nothing():
    assert not claimed_by_another("a.example.net", None, ["*.example.com"])
    assert not claimed_by_another("a.example.com", "*.example.com", [None, "*.com"])
    assert not claimed_by_another("*.example.com", "*.example.com", ["*.foo.example.com", "other.example.net"])
    assert not claimed_by_another("a.example.com", "a.example.com", ["*.example.com", None])
