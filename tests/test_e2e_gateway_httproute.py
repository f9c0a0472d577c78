"""The Gateway API's Core HTTPRoute and Gateway conformance cases that traffic can observe,
ported from kubernetes-sigs/gateway-api (``conformance/tests/*.go`` and their YAML,
``conformance/base/manifests.yaml``) and run against the real ``twistd ingressd`` in file mode:
which backend answered, the status, the path the backend saw, and the judged status on
``/routes``. Each case has hostnames of its own so that they share one server."""

from __future__ import annotations

import collections

import pytest
import yaml

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, wait_for, write_manifests

pytestmark = pytest.mark.slow

INFRA, WEB, APP = "gateway-conformance-infra", "gateway-conformance-web-backend", "gateway-conformance-app-backend"
GROUP = "gateway.networking.k8s.io/v1"

BASE = f"""
apiVersion: {GROUP}
kind: GatewayClass
metadata: {{name: ingressd}}
spec: {{controllerName: ingressd.io/gateway-controller}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: {INFRA}, labels: {{gateway-conformance: infra}}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: {WEB}, labels: {{gateway-conformance: backend}}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: {APP}, labels: {{gateway-conformance: backend}}}}
---
apiVersion: {GROUP}
kind: Gateway
metadata: {{name: same-namespace, namespace: {INFRA}}}
spec:
  gatewayClassName: ingressd
  listeners:
  - {{name: http, port: 80, protocol: HTTP, allowedRoutes: {{namespaces: {{from: Same}}}}}}
---
apiVersion: {GROUP}
kind: Gateway
metadata: {{name: backend-namespaces, namespace: {INFRA}}}
spec:
  gatewayClassName: ingressd
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces: {{from: Selector, selector: {{matchLabels: {{gateway-conformance: backend}}}}}}
---
apiVersion: {GROUP}
kind: Gateway
metadata: {{name: httproute-listener-hostname-matching, namespace: {INFRA}}}
spec:
  gatewayClassName: ingressd
  listeners:
  - {{name: listener-1, port: 80, protocol: HTTP, hostname: bar.com}}
  - {{name: listener-2, port: 80, protocol: HTTP, hostname: foo.bar.com}}
  - {{name: listener-3, port: 80, protocol: HTTP, hostname: '*.bar.com'}}
  - {{name: listener-4, port: 80, protocol: HTTP, hostname: '*.foo.com'}}
"""


def route(name: str, spec: str, namespace: str = INFRA, created: str = "2024-01-01T00:00:00Z") -> str:
    return (f"apiVersion: {GROUP}\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {namespace}, "
            f"creationTimestamp: '{created}'}}\nspec:\n{spec}")


def rule(backend: str, matches: str = "", weight: int | None = None, namespace: str = "") -> str:
    ref = f"{{name: {backend}, port: 8080" + (f", weight: {weight}" if weight is not None else "") \
        + (f", namespace: {namespace}" if namespace else "") + "}"
    return ("  - " + (f"matches: {matches}\n    " if matches else "") + f"backendRefs: [{ref}]\n")


ROUTES = [
    route("gateway-conformance-infra-test", "  parentRefs: [{name: same-namespace}]\n  hostnames: [simple.example]\n"
          "  rules:\n" + rule("infra-backend-v1")),
    route("matching", "  parentRefs: [{name: same-namespace}]\n  hostnames: [matching.example]\n  rules:\n"
          + rule("infra-backend-v1", "[{path: {type: PathPrefix, value: /}}, {headers: [{name: version, value: one}]}]")
          + rule("infra-backend-v2", "[{path: {type: PathPrefix, value: /v2}}, {headers: [{name: version, value: two}]}]")),
    route("header-matching", "  parentRefs: [{name: same-namespace}]\n  hostnames: [headers.example]\n  rules:\n"
          + rule("infra-backend-v1", "[{headers: [{name: version, value: one}]}]")
          + rule("infra-backend-v2", "[{headers: [{name: version, value: two}]}]")
          + rule("infra-backend-v1", "[{headers: [{name: version, value: two}, {name: color, value: orange}]}]")
          + rule("infra-backend-v1", "[{headers: [{name: color, value: blue}]}, {headers: [{name: color, value: green}]}]")
          + rule("infra-backend-v2", "[{headers: [{name: color, value: red}]}, {headers: [{name: color, value: yellow}]}]")),
    route("query-param-matching", "  parentRefs: [{name: same-namespace}]\n  hostnames: [query.example]\n  rules:\n"
          + rule("infra-backend-v1", "[{queryParams: [{name: animal, value: whale}]}]")
          + rule("infra-backend-v2", "[{queryParams: [{name: animal, value: dolphin}]}]")
          + rule("infra-backend-v3", "[{queryParams: [{name: animal, value: dolphin}, {name: color, value: blue}]}, "
                                     "{queryParams: [{name: ANIMAL, value: Whale}]}]")),
    route("method-matching", "  parentRefs: [{name: same-namespace}]\n  hostnames: [method.example]\n  rules:\n"
          + rule("infra-backend-v1", "[{method: POST}]") + rule("infra-backend-v2", "[{method: GET}]")),
    # HTTPRouteMatchingAcrossRoutes: two routes on one hostname; the precedence spans them.
    route("across-a", "  parentRefs: [{name: same-namespace}]\n  hostnames: [across.example]\n  rules:\n"
          + rule("infra-backend-v1", "[{path: {type: PathPrefix, value: /}}]")
          + rule("infra-backend-v1", "[{path: {type: Exact, value: /example}}]"), created="2024-01-01T00:00:00Z"),
    route("across-b", "  parentRefs: [{name: same-namespace}]\n  hostnames: [across.example]\n  rules:\n"
          + rule("infra-backend-v2", "[{path: {type: PathPrefix, value: /v2}}]")
          + rule("infra-backend-v2", "[{headers: [{name: version, value: two}]}]"), created="2024-01-02T00:00:00Z"),
    # HTTPRouteListenerHostnameMatching
    route("backend-v1", "  parentRefs: [{name: httproute-listener-hostname-matching, sectionName: listener-1}]\n"
          "  rules:\n" + rule("infra-backend-v1")),
    route("backend-v2", "  parentRefs: [{name: httproute-listener-hostname-matching, sectionName: listener-2}]\n"
          "  rules:\n" + rule("infra-backend-v2")),
    route("backend-v3", "  parentRefs: [{name: httproute-listener-hostname-matching, sectionName: listener-3},\n"
          "               {name: httproute-listener-hostname-matching, sectionName: listener-4}]\n"
          "  rules:\n" + rule("infra-backend-v3")),
    # HTTPRouteCrossNamespace: a route in a backend namespace, on a Gateway that selects it
    route("cross-namespace", f"  parentRefs: [{{name: backend-namespaces, namespace: {INFRA}}}]\n"
          "  hostnames: [cross.example]\n  rules:\n" + rule("web-backend"), namespace=WEB),
    # HTTPRouteReferenceGrant and HTTPRouteInvalidCrossNamespaceBackendRef
    route("reference-grant", "  parentRefs: [{name: same-namespace}]\n  hostnames: [grant.example]\n  rules:\n"
          + rule("web-backend", namespace=WEB)),
    route("invalid-cross-namespace-backend-ref", "  parentRefs: [{name: same-namespace}]\n"
          "  hostnames: [invalid-cross.example]\n  rules:\n" + rule("app-backend-v1", namespace=APP)),
    route("weight", "  parentRefs: [{name: same-namespace}]\n  hostnames: [weight.example]\n  rules:\n"
          "  - backendRefs: [{name: infra-backend-v1, port: 8080, weight: 70},\n"
          "                  {name: infra-backend-v2, port: 8080, weight: 30},\n"
          "                  {name: infra-backend-v3, port: 8080, weight: 0}]\n"),
    route("exact-path-matching", "  parentRefs: [{name: same-namespace}]\n  hostnames: [exact.example]\n  rules:\n"
          + rule("infra-backend-v1", "[{path: {type: Exact, value: /one}}]")
          + rule("infra-backend-v2", "[{path: {type: Exact, value: /two}}]")),
    # HTTPRoutePathMatchOrder (its precedence cases)
    route("path-match-order", "  parentRefs: [{name: same-namespace}]\n  hostnames: [order.example]\n  rules:\n"
          + rule("infra-backend-v1", "[{path: {type: PathPrefix, value: /match}}]")
          + rule("infra-backend-v2", "[{path: {type: PathPrefix, value: /match/exact}}]")
          + rule("infra-backend-v3", "[{path: {type: Exact, value: /match/exact/one}}]")
          + rule("infra-backend-v2", "[{path: {type: PathPrefix, value: /match}, method: POST}]")
          + rule("infra-backend-v3", "[{path: {type: PathPrefix, value: /match},"
                                     " headers: [{name: version, value: three}]}]")
          + rule("infra-backend-v1", "[{path: {type: PathPrefix, value: /match},"
                                     " headers: [{name: version, value: three}], method: POST}]")),
    route("no-backends", "  parentRefs: [{name: same-namespace}]\n  hostnames: [nobackend.example]\n  rules: [{}]\n"),
    route("no-matching-parent", "  parentRefs: [{name: same-namespace, sectionName: nope}]\n"
          "  hostnames: [nowhere.example]\n  rules:\n" + rule("infra-backend-v1")),
    # An Ingress and an HTTPRoute on one host: the Ingress keeps what it serves (docs/gateway-api.md)
    route("beside-ingress", "  parentRefs: [{name: same-namespace}]\n  hostnames: [mixed.example]\n  rules:\n"
          + rule("infra-backend-v2", "[{path: {type: PathPrefix, value: /}}]")
          + rule("infra-backend-v2", "[{path: {type: PathPrefix, value: /gateway}}]")),
]

GRANT = f"""
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: reference-grant, namespace: {WEB}}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: {INFRA}}}]
  to: [{{group: "", kind: Service, name: web-backend}}]
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway")
    manifests = root / "manifests"
    manifests.mkdir()
    names = ("infra-backend-v1", "infra-backend-v2", "infra-backend-v3", "web-backend", "app-backend-v1")
    backends = {name: Backend(name) for name in names}
    objects = [*yaml.safe_load_all(BASE), *yaml.safe_load_all(GRANT), INGRESS_CLASS,
               *(yaml.safe_load(text) for text in ROUTES)]
    for name, backend in backends.items():
        namespace = WEB if name == "web-backend" else APP if name == "app-backend-v1" else INFRA
        objects += service(name, [("http", 8080, backend.port)], namespace=namespace)
    objects += service("mixed-ingress", [("http", 80, backends["infra-backend-v1"].port)])
    objects.append(ingress("mixed", [("mixed.example", [("/", "Prefix", "mixed-ingress", 80)])]))
    write_manifests(manifests / "all.yaml", objects)
    server = Ingressd(manifests)
    try:
        wait_for(lambda: server.get("/", host="simple.example").status == 200, "the routes served")
        yield server, manifests, backends
    finally:
        server.stop()
        for backend in backends.values():
            backend.stop()


def answered(server, path: str, host: str, method: str = "GET", headers=None):
    response = server.get(path, host=host, method=method, headers=headers)
    if response.status != 200:
        return response.status, None
    return 200, response.headers.get("x-backend")


def seen_path(server, path: str, host: str) -> str:
    return server.get(path, host=host).json()["path"]


def status_of(server, kind: str, namespace: str, name: str) -> dict:
    status, _, body = server.admin("/routes")
    import json

    for item in json.loads(body)["status"]:
        if (item["kind"], item["namespace"], item["name"]) == (kind, namespace, name):
            return item["status"]
    raise AssertionError(f"no status for {kind} {namespace}/{name}")


def conditions(items) -> dict:
    return {item["type"]: (item["status"], item["reason"]) for item in items}


def test_simple_same_namespace(world):
    server, _, _ = world
    assert answered(server, "/", "simple.example") == (200, "infra-backend-v1")
    assert seen_path(server, "/some/path?x=1", "simple.example") == "/some/path?x=1"
    parent = status_of(server, "HTTPRoute", INFRA, "gateway-conformance-infra-test")["parents"][0]
    assert conditions(parent["conditions"]) == {"Accepted": ("True", "Accepted"),
                                                "ResolvedRefs": ("True", "ResolvedRefs")}


@pytest.mark.parametrize("path, headers, expected", [
    ("/", None, "infra-backend-v1"),
    ("/example", None, "infra-backend-v1"),
    ("/", {"Version": "one"}, "infra-backend-v1"),
    ("/v2", None, "infra-backend-v2"),
    ("/v2/example", None, "infra-backend-v2"),
    ("/", {"Version": "two"}, "infra-backend-v2"),
])
def test_matching(world, path, headers, expected):
    assert answered(world[0], path, "matching.example", headers=headers) == (200, expected)


@pytest.mark.parametrize("headers, expected", [
    ({"Version": "one"}, (200, "infra-backend-v1")),
    ({"Version": "two"}, (200, "infra-backend-v2")),
    ({"Version": "two", "Color": "orange"}, (200, "infra-backend-v1")),
    ({"Color": "blue"}, (200, "infra-backend-v1")),
    ({"Color": "green"}, (200, "infra-backend-v1")),
    ({"Color": "red"}, (200, "infra-backend-v2")),
    ({"Color": "yellow"}, (200, "infra-backend-v2")),
    ({"Version": "four", "Color": "purple"}, (404, None)),
    ({}, (404, None)),
])
def test_header_matching(world, headers, expected):
    assert answered(world[0], "/", "headers.example", headers=headers) == expected


@pytest.mark.parametrize("query, expected", [
    ("?animal=whale", (200, "infra-backend-v1")),
    ("?animal=dolphin", (200, "infra-backend-v2")),
    ("?animal=dolphin&color=blue", (200, "infra-backend-v3")),
    ("?ANIMAL=Whale", (200, "infra-backend-v3")),
    ("?animal=whale&otherparam=irrelevant", (200, "infra-backend-v1")),
    ("?animal=dolphin&color=yellow", (200, "infra-backend-v2")),
    ("?color=blue", (404, None)),
    ("?animal=Whale", (404, None)),
    ("", (404, None)),
])
def test_query_param_matching(world, query, expected):
    assert answered(world[0], "/" + query, "query.example") == expected


@pytest.mark.parametrize("method, expected", [
    ("POST", (200, "infra-backend-v1")), ("GET", (200, "infra-backend-v2")), ("HEAD", (404, None)),
])
def test_method_matching(world, method, expected):
    response = world[0].get("/", host="method.example", method=method)
    assert (response.status, response.headers.get("x-backend") if response.status == 200 else None) == expected


@pytest.mark.parametrize("path, headers, expected", [
    ("/", None, "infra-backend-v1"),
    ("/example", None, "infra-backend-v1"),
    ("/v2", None, "infra-backend-v2"),
    ("/v2/example", None, "infra-backend-v2"),
    ("/", {"Version": "two"}, "infra-backend-v2"),
])
def test_matching_across_routes(world, path, headers, expected):
    assert answered(world[0], path, "across.example", headers=headers) == (200, expected)


@pytest.mark.parametrize("host, expected", [
    ("bar.com", (200, "infra-backend-v1")),
    ("foo.bar.com", (200, "infra-backend-v2")),
    ("baz.bar.com", (200, "infra-backend-v3")),
    ("boo.bar.com", (200, "infra-backend-v3")),
    ("foo.foo.com", (200, "infra-backend-v3")),
    ("multiple.prefixes.bar.com", (200, "infra-backend-v3")),
    ("multiple.prefixes.foo.com", (200, "infra-backend-v3")),
    ("foo.com", (404, None)),
    ("no.matching.host", (404, None)),
])
def test_listener_hostname_matching(world, host, expected):
    assert answered(world[0], "/", host) == expected


def test_cross_namespace_route_on_a_gateway_that_selects_its_namespace(world):
    server = world[0]
    assert answered(server, "/", "cross.example") == (200, "web-backend")
    parent = status_of(server, "HTTPRoute", WEB, "cross-namespace")["parents"][0]
    assert conditions(parent["conditions"])["Accepted"] == ("True", "Accepted")


def test_reference_grant_permits_a_cross_namespace_backend(world):
    assert answered(world[0], "/", "grant.example") == (200, "web-backend")


def test_an_invalid_cross_namespace_backend_ref_is_500(world):
    server, _, backends = world
    assert answered(server, "/", "invalid-cross.example") == (500, None)
    assert backends["app-backend-v1"].requests == []
    parent = status_of(server, "HTTPRoute", INFRA, "invalid-cross-namespace-backend-ref")["parents"][0]
    assert conditions(parent["conditions"]) == {"Accepted": ("True", "Accepted"),
                                                "ResolvedRefs": ("False", "RefNotPermitted")}


def test_weight(world):
    counts = collections.Counter(answered(world[0], "/", "weight.example")[1] for _ in range(200))
    assert set(counts) <= {"infra-backend-v1", "infra-backend-v2"}  # weight 0: never
    assert 100 <= counts["infra-backend-v1"] <= 180  # 70 % of 200 = 140, a generous tolerance
    assert counts["infra-backend-v1"] + counts["infra-backend-v2"] == 200


@pytest.mark.parametrize("path, expected", [
    ("/one", (200, "infra-backend-v1")), ("/two", (200, "infra-backend-v2")),
    ("/", (404, None)), ("/one/example", (404, None)), ("/two/", (404, None)), ("/Two", (404, None)),
])
def test_exact_path_matching(world, path, expected):
    assert answered(world[0], path, "exact.example") == expected


@pytest.mark.parametrize("path, method, headers, expected", [
    ("/match/exact/one", "GET", None, "infra-backend-v3"),  # Exact first
    ("/match/exact", "GET", None, "infra-backend-v2"),  # the longest prefix
    ("/match/exact/two", "GET", None, "infra-backend-v2"),
    ("/match", "GET", None, "infra-backend-v1"),
    ("/match", "POST", None, "infra-backend-v2"),  # a method match beats headers' absence
    ("/match", "GET", {"Version": "three"}, "infra-backend-v3"),
    ("/match", "POST", {"Version": "three"}, "infra-backend-v1"),  # method and header
])
def test_path_match_order(world, path, method, headers, expected):
    assert answered(world[0], path, "order.example", method=method, headers=headers) == (200, expected)


def test_unmatched_is_404_and_a_rule_without_backends_is_500(world):
    server = world[0]
    assert server.get("/", host="unknown.example").status == 404
    assert server.get("/", host="nobackend.example").status == 500


def test_a_parent_without_the_named_listener_is_not_served(world):
    server = world[0]
    assert server.get("/", host="nowhere.example").status == 404
    parent = status_of(server, "HTTPRoute", INFRA, "no-matching-parent")["parents"][0]
    assert conditions(parent["conditions"])["Accepted"] == ("False", "NoMatchingParent")


def test_gateway_status_counts_attached_routes(world):
    server = world[0]
    gateway = status_of(server, "Gateway", INFRA, "same-namespace")
    assert conditions(gateway["conditions"]) == {"Accepted": ("True", "Accepted"),
                                                 "Programmed": ("True", "Programmed")}
    (listener,) = gateway["listeners"]
    # every route on same-namespace but the one whose sectionName matches nothing
    on_it = sum("name: same-namespace}" in text and "sectionName: nope" not in text for text in ROUTES)
    assert listener["attachedRoutes"] == on_it
    matching = status_of(server, "Gateway", INFRA, "httproute-listener-hostname-matching")
    assert [item["attachedRoutes"] for item in matching["listeners"]] == [1, 1, 1, 1]
    assert conditions(status_of(server, "GatewayClass", "", "ingressd")["conditions"]) == {
        "Accepted": ("True", "Accepted")}


def test_an_ingress_keeps_its_host_and_path_beside_an_httproute(world):
    server = world[0]
    assert answered(server, "/", "mixed.example") == (200, "infra-backend-v1")  # the Ingress's Service
    assert answered(server, "/gateway/x", "mixed.example") == (200, "infra-backend-v2")  # the route's own path
    status, _, body = server.admin("/routes")
    assert b"beside-ingress" in body and b"takes precedence" in body


def test_a_route_added_to_the_manifests_is_served_live(world):
    server, manifests, _ = world
    write_manifests(manifests / "later.yaml", [yaml.safe_load(route(
        "later", "  parentRefs: [{name: same-namespace}]\n  hostnames: [later.example]\n  rules:\n"
        + rule("infra-backend-v3")))])
    try:
        assert wait_for(lambda: answered(server, "/", "later.example") == (200, "infra-backend-v3"),
                        "the added route served")
    finally:
        (manifests / "later.yaml").unlink()
    assert wait_for(lambda: server.get("/", host="later.example").status == 404, "the removed route gone")


def test_route_changes_under_load_lose_no_request(world):
    """Requests keep flowing to one route while another route of the same host is added,
    changed and removed: every request is answered by its route (bounded in count and time)."""
    import threading

    server, manifests, _ = world
    stop = threading.Event()
    results: list = []

    def load():
        conn = server.connection(timeout=10)
        try:
            while not stop.is_set() and len(results) < 5000:
                conn.request("GET", "/steady", headers={"Host": "churn.example"})
                response = conn.getresponse()
                response.read()
                results.append((response.status, response.getheader("x-backend")))
        finally:
            conn.close()

    def churn_route(version: int) -> dict:
        rules = rule("infra-backend-v1", "[{path: {type: PathPrefix, value: /steady}}]")
        if version % 2:
            rules += rule("infra-backend-v3", f"[{{path: {{type: PathPrefix, value: /v{version}}}}}]")
        return yaml.safe_load(route("churn", "  parentRefs: [{name: same-namespace}]\n"
                                             "  hostnames: [churn.example]\n  rules:\n" + rules))

    write_manifests(manifests / "churn.yaml", [churn_route(0)])
    try:
        wait_for(lambda: answered(server, "/steady", "churn.example") == (200, "infra-backend-v1"), "churn served")
        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        for version in range(1, 7):
            write_manifests(manifests / "churn.yaml", [churn_route(version)])
            expected = (200, "infra-backend-v3") if version % 2 else (404, None)
            wait_for(lambda: answered(server, f"/v{version}", "churn.example") == expected
                     if version % 2 else answered(server, f"/v{version - 1}", "churn.example") == expected,
                     f"version {version} served", timeout=30)
        stop.set()
        worker.join(30)
        assert not worker.is_alive()
    finally:
        stop.set()
        (manifests / "churn.yaml").unlink()
        # gone before the next test (another test counts the routes attached to this Gateway)
        assert wait_for(lambda: server.get("/steady", host="churn.example").status == 404, "the churn route gone")
    assert len(results) > 0
    assert set(results) == {(200, "infra-backend-v1")}


# -- RegularExpression paths (Extended; ingressd: RE2, the whole path, case-sensitive, after Exact and
#    before PathPrefix; docs/gateway-api.md) ------------------------------------------------------------

REGEX_ROUTE = route(
    "regex-paths", "  parentRefs: [{name: same-namespace}]\n  hostnames: [regex.example]\n  rules:\n"
    + rule("infra-backend-v1", "[{path: {type: RegularExpression, value: '/v[0-9]+/users'}}]")
    + rule("infra-backend-v2", "[{path: {type: Exact, value: /v1/users}}]")
    + rule("infra-backend-v3", "[{path: {type: PathPrefix, value: /}}]")
    + rule("infra-backend-v2", "[{path: {type: RegularExpression, value: '/(?!admin).*'}}]"))


@pytest.mark.parametrize("path, expected", [
    ("/v2/users", (200, "infra-backend-v1")),
    ("/v123/users?page=2", (200, "infra-backend-v1")),  # the query is not part of the path
    ("/v1/users", (200, "infra-backend-v2")),  # Exact before an expression
    ("/v2/users/7", (200, "infra-backend-v3")),  # the expression must match the whole path
    ("/V2/users", (200, "infra-backend-v3")),  # case-sensitive
    ("/api/v2/users", (200, "infra-backend-v3")),
])
def test_regular_expression_paths(world, path, expected):
    server, manifests, _ = world
    write_manifests(manifests / "regex.yaml", [yaml.safe_load(REGEX_ROUTE)])
    try:
        assert wait_for(lambda: answered(server, "/v9/users", "regex.example") == (200, "infra-backend-v1"),
                        "the expression served")
        assert answered(server, path, "regex.example") == expected
        parent = status_of(server, "HTTPRoute", INFRA, "regex-paths")["parents"][0]
        # The rule whose expression RE2 refuses (look-ahead) is left out; the others are served.
        assert conditions(parent["conditions"])["PartiallyInvalid"] == ("True", "UnsupportedValue")
        assert conditions(parent["conditions"])["Accepted"] == ("True", "Accepted")
    finally:
        (manifests / "regex.yaml").unlink()
        # gone before the next test (another test counts the routes attached to this Gateway)
        assert wait_for(lambda: server.get("/", host="regex.example").status == 404, "the regex route gone")


# -- Listener separation: a route attached to HTTP listeners only is not served on --https, and one
#    attached to HTTPS listeners only not on --http (the spec: no matching route, 404) ------------------

SPLIT = "split.example"


def _split_objects(leaf) -> list:
    gateway = f"""
apiVersion: {GROUP}
kind: Gateway
metadata: {{name: split, namespace: {INFRA}}}
spec:
  gatewayClassName: ingressd
  listeners:
  - {{name: plain, port: 80, protocol: HTTP, hostname: {SPLIT}}}
  - name: secure
    port: 443
    protocol: HTTPS
    hostname: {SPLIT}
    tls: {{certificateRefs: [{{name: split-cert}}]}}
"""
    routes = [
        route("split-plain", "  parentRefs: [{name: split, sectionName: plain}]\n  rules:\n"
              + rule("infra-backend-v1", "[{path: {type: PathPrefix, value: /plain}}, "
                                         "{path: {type: PathPrefix, value: /same}}]")),
        route("split-secure", "  parentRefs: [{name: split, sectionName: secure}]\n  rules:\n"
              + rule("infra-backend-v2", "[{path: {type: PathPrefix, value: /secure}}, "
                                         "{path: {type: PathPrefix, value: /same}}]")),
        route("split-both", "  parentRefs: [{name: split}]\n  rules:\n"
              + rule("infra-backend-v3", "[{path: {type: PathPrefix, value: /both}}]")),
    ]
    import certs

    return [yaml.safe_load(gateway), certs.secret_manifest(INFRA, "split-cert", leaf.cert_pem, leaf.key_pem()),
            *(yaml.safe_load(text) for text in routes)]


def _https_answered(server, cafile, path: str) -> tuple[int, str | None]:
    import http.client
    import socket
    import ssl

    context = ssl.create_default_context(cafile=str(cafile))
    conn = http.client.HTTPSConnection("127.0.0.1", server.https_port, timeout=10, context=context)
    conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", server.https_port), 10),
                                    server_hostname=SPLIT)
    try:
        conn.request("GET", path, headers={"Host": SPLIT})
        response = conn.getresponse()
        response.read()
        return response.status, (response.getheader("x-backend") if response.status == 200 else None)
    finally:
        conn.close()


def test_routes_are_served_only_on_the_port_of_their_listeners_kind(world, tmp_path):
    import subprocess

    import certs

    server, manifests, _ = world
    ca = certs.make_ca("split test CA")
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(ca.cert_pem)
    write_manifests(manifests / "split.yaml", _split_objects(certs.make_leaf(SPLIT, issuer=ca)))
    try:
        assert wait_for(lambda: answered(server, "/plain", SPLIT) == (200, "infra-backend-v1"), "split served")
        assert wait_for(lambda: _https_answered(server, cafile, "/secure") == (200, "infra-backend-v2"),
                        "split served over TLS")
        # the plain port (Python's http.client)
        assert answered(server, "/plain", SPLIT) == (200, "infra-backend-v1")
        assert answered(server, "/secure", SPLIT) == (404, None)
        assert answered(server, "/same", SPLIT) == (200, "infra-backend-v1")
        assert answered(server, "/both", SPLIT) == (200, "infra-backend-v3")
        # the TLS port (Python's ssl)
        assert _https_answered(server, cafile, "/secure") == (200, "infra-backend-v2")
        assert _https_answered(server, cafile, "/plain") == (404, None)
        assert _https_answered(server, cafile, "/same") == (200, "infra-backend-v2")
        assert _https_answered(server, cafile, "/both") == (200, "infra-backend-v3")
        # and curl on both
        for scheme, port, path, expected in (("http", server.http_port, "/secure", "404"),
                                             ("https", server.https_port, "/plain", "404"),
                                             ("https", server.https_port, "/secure", "200")):
            out = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", str(cafile), "--resolve",
                                  f"{SPLIT}:{port}:127.0.0.1", "-o", "/dev/null", "-w", "%{http_code}",
                                  f"{scheme}://{SPLIT}:{port}{path}"], capture_output=True, text=True, timeout=30)
            assert out.stdout == expected, (scheme, path, out.stderr)
        listeners = {item["name"]: item for item in status_of(server, "Gateway", INFRA, "split")["listeners"]}
        assert (listeners["plain"]["attachedRoutes"], listeners["secure"]["attachedRoutes"]) == (2, 2)
    finally:
        (manifests / "split.yaml").unlink()
        assert wait_for(lambda: server.get("/both", host=SPLIT).status == 404, "the split routes gone")
