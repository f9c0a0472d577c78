"""The conformance case HTTPRouteMultipleGateways (kubernetes-sigs/gateway-api
``conformance/tests/httproute-multiple-gateways``) against the real ``twistd ingressd`` in file
mode: one HTTPRoute with two parentRefs (Gateways ``same-namespace`` and ``all-namespaces``) is
accepted by each parent, counted by each Gateway and served; each Gateway's dedicated route too.

The suite tells the two Gateways apart by their addresses; ingressd serves every Gateway's HTTP
listeners on the one ``--http`` port (docs/gateway-api.md), so the suite's two dedicated routes
(both ``/``, no hostname) are one match and the spec's precedence serves the older. The
independence the suite checks is shown with two more Gateways whose listeners have hostnames
(``a.example``, ``b.example``): the shared route answers through both, each dedicated route only
through its own."""

from __future__ import annotations

import json

import pytest
import yaml

from backends import Backend
from harness import Ingressd, service, wait_for, write_manifests

pytestmark = pytest.mark.slow

INFRA = "gateway-conformance-infra"
GROUP = "gateway.networking.k8s.io/v1"


def _gateway(name: str, hostname: str = "", from_: str = "Same") -> str:
    host = f", hostname: {hostname}" if hostname else ""
    return f"""---
apiVersion: {GROUP}
kind: Gateway
metadata: {{name: {name}, namespace: {INFRA}}}
spec:
  gatewayClassName: ingressd
  listeners:
  - {{name: http, port: 80, protocol: HTTP{host}, allowedRoutes: {{namespaces: {{from: {from_}}}}}}}
"""


def _route(name: str, parents: list[str], path: str, backend: str, created: str) -> str:
    refs = ", ".join(f"{{name: {parent}}}" for parent in parents)
    return f"""---
apiVersion: {GROUP}
kind: HTTPRoute
metadata: {{name: {name}, namespace: {INFRA}, creationTimestamp: '{created}'}}
spec:
  parentRefs: [{refs}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]
    backendRefs: [{{name: {backend}, port: 8080}}]
"""


MANIFESTS = f"""
apiVersion: {GROUP}
kind: GatewayClass
metadata: {{name: ingressd}}
spec: {{controllerName: ingressd.io/gateway-controller}}
{_gateway("same-namespace")}{_gateway("all-namespaces", from_="All")}\
{_route("multiple-gateways-shared-route", ["same-namespace", "all-namespaces"], "/shared", "infra-backend-v1",
        "2026-01-01T00:00:00Z")}\
{_route("same-namespace-dedicated-route", ["same-namespace"], "/", "infra-backend-v2", "2026-01-01T00:00:01Z")}\
{_route("all-namespaces-dedicated-route", ["all-namespaces"], "/", "infra-backend-v3", "2026-01-01T00:00:02Z")}\
{_gateway("gateway-a", "a.example")}{_gateway("gateway-b", "b.example")}\
{_route("shared-by-hostname", ["gateway-a", "gateway-b"], "/shared", "infra-backend-v1", "2026-01-01T00:00:03Z")}\
{_route("dedicated-a", ["gateway-a"], "/", "infra-backend-v2", "2026-01-01T00:00:04Z")}\
{_route("dedicated-b", ["gateway-b"], "/", "infra-backend-v3", "2026-01-01T00:00:05Z")}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-multiple-gateways")
    manifests = root / "manifests"
    manifests.mkdir()
    names = [f"infra-backend-v{n}" for n in (1, 2, 3)]
    backends = [Backend(name) for name in names]
    objects = list(yaml.safe_load_all(MANIFESTS))
    for name, backend in zip(names, backends):
        objects += service(name, [("http", 8080, backend.port)], namespace=INFRA)
    write_manifests(manifests / "all.yaml", objects)
    ingressd = Ingressd(manifests)
    try:
        wait_for(lambda: ingressd.get("/", host="b.example").headers.get("x-backend") == "infra-backend-v3",
                 "the routes served", timeout=30)
        yield ingressd
    finally:
        ingressd.stop()
        for backend in backends:
            backend.stop()


def _backend(server, path: str, host: str) -> tuple[int, str | None]:
    response = server.get(path, host=host)
    return response.status, response.headers.get("x-backend")


def _status(server) -> dict:
    _, _, body = server.admin("/routes")
    return {(item["kind"], item["name"]): item["status"] for item in json.loads(body)["status"]}


def test_the_shared_route_is_accepted_by_each_parent(server):
    found = _status(server)
    parents = found[("HTTPRoute", "multiple-gateways-shared-route")]["parents"]
    assert sorted(parent["parentRef"]["name"] for parent in parents) == ["all-namespaces", "same-namespace"]
    for parent in parents:
        assert {c["type"]: c["status"] for c in parent["conditions"]} == {"Accepted": "True", "ResolvedRefs": "True"}
    for gateway in ("same-namespace", "all-namespaces"):  # the shared route and its dedicated one
        (listener,) = found[("Gateway", gateway)]["listeners"]
        assert listener["attachedRoutes"] == 2


def test_the_shared_route_and_the_older_dedicated_route_are_served(server):
    assert _backend(server, "/shared", "gateway.example") == (200, "infra-backend-v1")
    # both dedicated routes are "/" on the one HTTP port: the older one's
    assert _backend(server, "/", "gateway.example") == (200, "infra-backend-v2")


@pytest.mark.parametrize("host, path, backend", [
    ("a.example", "/shared", "infra-backend-v1"),
    ("b.example", "/shared", "infra-backend-v1"),
    ("a.example", "/", "infra-backend-v2"),
    ("b.example", "/", "infra-backend-v3"),
])
def test_each_gateway_serves_the_shared_route_and_only_its_dedicated_one(server, host, path, backend):
    assert _backend(server, path, host) == (200, backend)


def test_the_shared_route_by_hostname_has_two_accepted_parents(server):
    parents = _status(server)[("HTTPRoute", "shared-by-hostname")]["parents"]
    assert sorted(parent["parentRef"]["name"] for parent in parents) == ["gateway-a", "gateway-b"]
    assert all(c["status"] == "True" for parent in parents for c in parent["conditions"])
