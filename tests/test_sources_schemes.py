"""The merge of the sources' fragments and ``Route.schemes`` (config.sources ``merge``): an
Ingress route is served on both listener kinds and keeps what it serves; a later source's route
with the same host, path, path type and extra matches is not served where the two overlap (the
plain port, TLS) and is warned; where they do not overlap both are served. ``/routes`` and the
admin page show a route's schemes (empty: both)."""

from __future__ import annotations

from ingressd.admin.routes import render_page, routes_document
from ingressd.config import sources
from ingressd.config.model import PREFIX, Backend, Config, ObjectRef, Rejection, Route
from ingressd.config.reloader import State
from ingressd.config.routing import RouteTable

WEB = Backend("default", "web", "80")
OTHER = Backend("default", "other", "80")


def route(name="a", kind="Ingress", schemes=(), host="h.test", path="/x", backend=WEB) -> Route:
    return Route(host, path, PREFIX, backend, ObjectRef(kind, "default", name), schemes=schemes)


class Entry:
    def __init__(self, route):
        self.route = route
        self.regex = False


class Conn:
    def __init__(self, https: bool):
        self.https = https


PLAIN, TLS = Conn(False), Conn(True)
INGRESS = ObjectRef("Ingress", "default", "a")


def served(config: Config, https: bool) -> ObjectRef | None:
    table = RouteTable([Entry(item) for item in config.routes])
    entry = table.match("h.test", "/x", Conn(https))
    return entry.route.ingress if entry is not None else None


def test_an_httproute_on_an_https_listener_only_yields_to_the_ingress_entirely():
    ingress, tls_only = route(), route("h", "HTTPRoute", ("https",), backend=OTHER)
    merged = sources.merge([Config(routes=(ingress,)), Config(routes=(tls_only,))])
    assert merged.routes == (ingress,)
    assert merged.warnings == (Rejection(tls_only.ingress, "h.test/x (Prefix) is served by Ingress default/a, "
                                                           "which takes precedence"),)
    assert served(merged, False) == INGRESS and served(merged, True) == INGRESS


def test_an_httproute_on_an_http_listener_only_yields_to_the_ingress_entirely():
    ingress, plain_only = route(), route("h", "HTTPRoute", ("http",))
    merged = sources.merge([Config(routes=(ingress,)), Config(routes=(plain_only,))])
    assert merged.routes == (ingress,)
    assert [warning.ref for warning in merged.warnings] == [plain_only.ingress]


def test_a_later_route_on_both_kinds_keeps_the_kind_the_earlier_one_does_not_serve():
    # The other direction: the earlier source's route is served over TLS only; the later one
    # keeps the plain port (narrowed to it) and is warned for TLS.
    first, later = route("g", "HTTPRoute", ("https",)), route("b", "Widget", backend=OTHER)
    merged = sources.merge([Config(routes=(first,)), Config(routes=(later,))])
    narrowed = Route("h.test", "/x", PREFIX, OTHER, later.ingress, schemes=("http",))
    assert merged.routes == (first, narrowed)
    assert merged.warnings == (Rejection(later.ingress, "h.test/x (Prefix) is served by HTTPRoute default/g, "
                                                        "which takes precedence on HTTPS"),)
    assert served(merged, True) == first.ingress
    assert served(merged, False) == later.ingress


def test_routes_on_different_kinds_do_not_conflict():
    first, later = route("g", "HTTPRoute", ("https",)), route("b", "Widget", ("http",), backend=OTHER)
    merged = sources.merge([Config(routes=(first,)), Config(routes=(later,))])
    assert merged.routes == (first, later)
    assert merged.warnings == ()
    # a third source finds both kinds owned
    third = route("c", "Gadget")
    merged = sources.merge([Config(routes=(first,)), Config(routes=(later,)), Config(routes=(third,))])
    assert merged.routes == (first, later)
    assert [warning.ref for warning in merged.warnings] == [third.ingress]


def test_one_sources_own_routes_with_the_same_key_are_left_to_the_route_table():
    one, two = route("a"), route("b")
    merged = sources.merge([Config(routes=(one, two)), Config(routes=(route("w", "Widget", path="/y"),))])
    assert merged.routes[:2] == (one, two) and merged.warnings == ()


def test_different_matches_on_the_same_host_coexist_whatever_their_schemes():
    ingress, other_path = route(), route("h", "HTTPRoute", ("https",), path="/y")
    merged = sources.merge([Config(routes=(ingress,)), Config(routes=(other_path,))])
    assert merged.routes == (ingress, other_path) and merged.warnings == ()


def _state(*routes: Route) -> State:
    state = State()
    state.config = Config(routes=routes)
    state.table = RouteTable([Entry(item) for item in routes])
    return state


def test_routes_json_and_the_admin_page_show_the_schemes():
    both, tls_only = route(path="/both"), route("h", "HTTPRoute", ("https",), path="/tls")
    plain_only = route("p", "HTTPRoute", ("http",), path="/plain")
    document = routes_document(_state(both, tls_only, plain_only))
    assert [(item["path"], item["schemes"]) for item in document["routes"]] == [
        ("/both", []), ("/tls", ["https"]), ("/plain", ["http"])]
    assert all(item["served"] for item in document["routes"])
    page = render_page(document).decode()
    assert page.count("(HTTPS only)") == 1 and page.count("(HTTP only)") == 1
    assert "only)" not in page.split("/both")[0].split("<table id=routes>")[-1]


# -- from manifests: the Ingress and Gateway API translators, the reloader's merge -----------

_MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  ingressClassName: ingressd
  rules:
  - host: app.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: default}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ingressd}
spec: {controllerName: ingressd.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: ingressd
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - name: https
    port: 443
    protocol: HTTPS
    tls: {certificateRefs: [{name: cert}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default, creationTimestamp: "2023-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, sectionName: SECTION}]
  hostnames: [app.example]
  rules: [{backendRefs: [{name: other, port: 80}]}]
"""


def _served_from_manifests(tmp_path, section: str) -> State:
    import base64

    import certs
    import yaml
    from twisted.internet.task import Clock

    from ingressd.config.reloader import Reloader
    from ingressd.config.store import ObjectStore
    from ingressd.providers import files

    leaf = certs.make_leaf("app.example")
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "cert", "namespace": "default"},
              "data": {"tls.crt": base64.b64encode(leaf.cert_pem).decode(),
                       "tls.key": base64.b64encode(leaf.key_pem()).decode()}}
    (tmp_path / "all.yaml").write_text(_MANIFESTS.replace("SECTION", section) + "---\n" + yaml.safe_dump(secret))
    clock = Clock()
    store, state = ObjectStore(), State()
    reloader = Reloader(store, state, clock)
    files.ManifestProvider([str(tmp_path)], store, clock).scan()
    reloader.rebuild()
    return state


def _who(state: State, https: bool) -> str | None:
    entry = state.table.match("app.example", "/", Conn(https))
    return None if entry is None else f"{entry.route.ingress.kind}/{entry.route.ingress.name}"


def test_from_manifests_an_httproute_on_the_https_listener_only_is_not_served_where_the_ingress_is(tmp_path):
    state = _served_from_manifests(tmp_path, "https")
    # the HTTPRoute is older, but the Ingress keeps both ports: the documented rule
    assert _who(state, False) == "Ingress/web" and _who(state, True) == "Ingress/web"
    assert [(w.ref.kind, w.ref.name) for w in state.config.warnings] == [("HTTPRoute", "r")]
    assert "takes precedence" in state.config.warnings[0].reason
    document = routes_document(state)
    assert [(item["ingress"]["kind"], item["schemes"]) for item in document["routes"]] == [("Ingress", [])]


def test_from_manifests_an_httproute_on_the_http_listener_only_is_not_served_either(tmp_path):
    state = _served_from_manifests(tmp_path, "http")
    assert _who(state, False) == "Ingress/web" and _who(state, True) == "Ingress/web"
    assert [(w.ref.kind, w.ref.name) for w in state.config.warnings] == [("HTTPRoute", "r")]
