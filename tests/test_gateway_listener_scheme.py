"""Listener separation: a Gateway API route is served only on the kind of port of the listeners it
attached to (``Route.schemes``: HTTP listeners on ``--http``, HTTPS listeners on ``--https``);
Ingress routes stay served on both. The translation (config.gateway.httproute) and the route
table's split (config.routing.RouteTable.secure)."""

from __future__ import annotations

import pytest

from ingressd.config.filters import RequestRedirect
from ingressd.config.gateway_api import translate
from ingressd.config.model import PREFIX, Backend, ObjectRef, Route
from ingressd.config.routing import RouteTable
from test_gateway_translate import BASE, route_yaml, snapshot

WEB = Backend("default", "web", "80")


class Entry:
    def __init__(self, route):
        self.route = route
        self.regex = False

    def __repr__(self):
        return f"Entry({self.route.ingress.name}:{self.route.host}{self.route.path})"


class Conn:
    """What the route table reads of a request for the split: its connection's kind."""

    def __init__(self, https: bool):
        self.https = https


PLAIN, TLS = Conn(False), Conn(True)


def r(host="h.test", path="/", name="a", schemes=(), kind="HTTPRoute"):
    return Entry(Route(host, path, PREFIX, WEB, ObjectRef(kind, "default", name), "2024-01-01T00:00:00Z",
                       schemes=schemes))


# -- the route table ------------------------------------------------------------------


def test_ingress_routes_keep_one_table_served_on_both():
    ingress = r(kind="Ingress")
    table = RouteTable([ingress])
    assert table.secure is None
    assert table.match("h.test", "/", PLAIN) is ingress
    assert table.match("h.test", "/", TLS) is ingress
    assert table.match("h.test", "/") is ingress


def test_a_route_is_served_only_on_its_listeners_kind():
    plain_only, tls_only = r(path="/plain", name="p", schemes=("http",)), r(path="/tls", name="t", schemes=("https",))
    both = r(path="/both", name="b")
    table = RouteTable([plain_only, tls_only, both])
    assert table.secure is not None and table.secure.secure is None
    assert table.match("h.test", "/plain", PLAIN) is plain_only
    assert table.match("h.test", "/plain", TLS) is None  # 404: no route on that listener
    assert table.match("h.test", "/tls", TLS) is tls_only
    assert table.match("h.test", "/tls", PLAIN) is None
    assert table.match("h.test", "/both", PLAIN) is both
    assert table.match("h.test", "/both", TLS) is both
    assert table.match("h.test", "/tls") is None  # without a request: the plain port's answer


def test_the_same_path_on_each_kind_goes_to_its_own_route():
    plain, tls = r(name="plain", schemes=("http",)), r(name="tls", schemes=("https",))
    table = RouteTable([plain, tls])
    assert table.match("h.test", "/x", PLAIN) is plain
    assert table.match("h.test", "/x", TLS) is tls


def test_a_host_without_routes_on_a_listener_falls_to_the_wildcard_and_catch_all_there():
    # The HTTPS-only host does not exist for the HTTP listener: its requests go where any other
    # host's would (a wildcard, a route without hostname), not to a 404 of their own.
    tls_only = r(host="h.test", name="tls", schemes=("https",))
    wildcard = r(host="*.test", name="wild", schemes=("http",))
    anyhost = r(host="", name="any")
    table = RouteTable([tls_only, wildcard, anyhost])
    assert table.match("h.test", "/", TLS) is tls_only
    assert table.match("h.test", "/", PLAIN) is wildcard
    assert table.match("other.example", "/", PLAIN) is anyhost
    assert table.match("other.test", "/", TLS) is anyhost


def test_the_default_backend_answers_on_both():
    default = r(name="default", kind="Ingress")
    table = RouteTable([r(name="tls", schemes=("https",))], default=default)
    assert table.secure.default is default
    assert table.match("h.test", "/", PLAIN) is default
    assert table.match("nowhere", "/", TLS) is default


def test_each_kind_remembers_its_own_answers():
    plain, tls = r(name="plain", schemes=("http",)), r(name="tls", schemes=("https",))
    table = RouteTable([plain, tls])
    assert table.match("h.test", "/x", PLAIN) is plain
    assert table.match("h.test", "/x", TLS) is tls
    assert table.cache[("h.test", "/x")] is plain
    assert table.secure.cache[("h.test", "/x")] is tls
    assert table.match("h.test", "/x", PLAIN) is plain  # from the memo
    assert table.match("h.test", "/x", TLS) is tls
    assert RouteTable([plain], cache_size=7).cache_size == 7
    assert RouteTable([tls], cache_size=7).secure.cache_size == 7


def test_entries_lists_each_served_route_once():
    plain, tls, both = r(path="/p", schemes=("http",)), r(path="/t", schemes=("https",)), r(path="/b")
    table = RouteTable([plain, tls, both])
    listed = list(table.entries())
    assert sorted(entry.route.path for entry in listed) == ["/b", "/p", "/t"]
    wildcard = r(host="*.test", path="/w", schemes=("https",))
    anyhost = r(host="", path="/a")
    listed = list(RouteTable([wildcard, anyhost]).entries())
    assert sorted(entry.route.path for entry in listed) == ["/a", "/w"]


def test_an_unchanged_host_keeps_its_path_tables_across_builds():
    plain, tls, ingress = r(name="plain", schemes=("http",)), r(name="tls", schemes=("https",)), \
        r(host="i.test", kind="Ingress")
    first = RouteTable([plain, tls, ingress])
    second = RouteTable([plain, tls, ingress], previous=first)
    assert second.exact_hosts["h.test"] is first.exact_hosts["h.test"]
    assert second.secure.exact_hosts["h.test"] is first.secure.exact_hosts["h.test"]
    assert second.secure.exact_hosts["i.test"] is first.secure.exact_hosts["i.test"]
    # The first split reuses the plain table's (the same members on both).
    split = RouteTable([tls, ingress], previous=RouteTable([ingress]))
    assert split.secure.exact_hosts["i.test"] is split.exact_hosts["i.test"]


# -- the translation ------------------------------------------------------------------

GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: both, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: ingressd
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - {name: alt, port: 8080, protocol: HTTP}
  - name: https
    port: 443
    protocol: HTTPS
    tls: {certificateRefs: [{name: cert}]}
---
apiVersion: v1
kind: Secret
metadata: {name: cert, namespace: gateway-conformance-infra}
type: kubernetes.io/tls
stringData: {tls.crt: CERT, tls.key: KEY}
"""


def _routes(parent: str, filters: str = ""):
    spec = f"""
  parentRefs: [{parent}]
  hostnames: [app.example]
  rules:
  - backendRefs: [{{name: infra-backend-v1, port: 8080}}]
{filters}"""
    return translate(snapshot(BASE, GATEWAY, route_yaml(spec))).routes


@pytest.mark.parametrize("parent, schemes", [
    ("{name: both, sectionName: http}", [("http",)]),
    ("{name: both, port: 8080}", [("http",)]),
    ("{name: both, sectionName: https}", [("https",)]),
    ("{name: both}", [()]),  # both kinds, the same filters: one route for both
    ("{name: same-namespace}", [("http",)]),
])
def test_a_route_takes_the_kinds_of_the_listeners_it_attached_to(parent, schemes):
    assert [route.schemes for route in _routes(parent)] == schemes


def test_a_redirect_keeping_the_listeners_port_makes_one_route_per_kind():
    redirect = "    filters: [{type: RequestRedirect, requestRedirect: {hostname: elsewhere.example}}]"
    routes = _routes("{name: both, sectionName: alt}, {name: both, sectionName: https}", redirect)
    by_scheme = {route.schemes: route.filters[0] for route in routes}
    assert set(by_scheme) == {("http",), ("https",)}
    assert isinstance(by_scheme[("http",)], RequestRedirect)
    assert by_scheme[("http",)].port == 8080  # the HTTP listener's declared port
    assert by_scheme[("https",)].port is None  # 443: the scheme's own


def test_the_first_listener_of_a_kind_gives_the_port():
    redirect = "    filters: [{type: RequestRedirect, requestRedirect: {hostname: elsewhere.example}}]"
    routes = _routes("{name: both, sectionName: alt}, {name: both, sectionName: http}", redirect)
    assert [(route.schemes, route.filters[0].port) for route in routes] == [(("http",), 8080)]


def test_extra_matches_of_a_route_on_https_listeners_are_tested_against_the_tls_request():
    """The TLS table is asked with the request itself: a route there with extra matches (here:
    GET only) takes the requests that pass them."""
    from ingressd.config.model import Conditions
    from ingressd.http.headers import Headers

    class TlsRequest(Conn):
        def __init__(self, method):
            super().__init__(True)
            self.method, self.headers, self.query = method, Headers([]), b""

    get_only = Entry(Route("h.test", "/", PREFIX, WEB, ObjectRef("HTTPRoute", "default", "g"),
                           "2024-01-01T00:00:00Z", conditions=Conditions(method="GET"), schemes=("https",)))
    table = RouteTable([get_only, r(path="/plain", name="p", schemes=("http",))])
    assert table.match("h.test", "/x", TlsRequest(b"GET")) is get_only
    assert table.match("h.test", "/x", TlsRequest(b"POST")) is None
