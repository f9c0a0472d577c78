"""Per-backendRef filters (an HTTPRoute backendRef's own ``filters``): parsed onto the member
(config.gateway.httproute ``rule_backends``), built into an entry per member (config.entries
``build_table``: the route's filters, then the member's), and applied through the real Exchange
only to the requests that go to that member (the weighted choice made before the features run):
the conformance cases HTTPRouteRequestHeaderModifierBackendWeights and the backend-level
RequestHeaderModifier, RequestRedirect and URLRewrite manifests."""

from __future__ import annotations

from twisted.internet.task import Clock

from ingressd import AnnotationError
from ingressd.config.entries import build_table
from ingressd.config.filters import (
    REPLACE_FULL_PATH,
    HeaderChanges,
    PathModifier,
    RequestHeaderModifier,
    RequestRedirect,
    ResponseHeaderModifier,
    URLRewrite,
)
from ingressd.config.gateway_api import translate
from ingressd.config.model import Backend, Config, Endpoint, ObjectRef, Route, WeightedBackend
from ingressd.features import BuildContext
from ingressd.proxy.exchange import Proxy, ProxySettings
from ingressd.proxy.upstream import UpstreamError
from ingressd_plugins import gateway_filters

from test_exchange import FakePool, State, request, send
from test_gateway_translate import BASE, conditions, route_yaml, snapshot, status

V1 = Backend("ns", "v1", "8080", (Endpoint("10.0.0.1", 8080),))
V2 = Backend("ns", "v2", "8080", (Endpoint("10.0.0.2", 8080),))


def set_header(name, value):
    return RequestHeaderModifier(HeaderChanges(set=((name, value),)))


# -- the translation -------------------------------------------------------------------------------

WEIGHTS = """
  parentRefs: [{name: same-namespace}]
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
      weight: 10
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {set: [{name: Backend, value: infra-backend-v1}]}
    - name: infra-backend-v2
      port: 8080
      weight: 10
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {set: [{name: Backend, value: infra-backend-v2}]}
"""


def test_a_backend_refs_filters_ride_with_its_member():
    config = translate(snapshot(BASE, route_yaml(WEIGHTS)))
    (route,) = config.routes
    assert route.filters == ()
    assert [(m.backend.service, m.weight, m.filters) for m in route.backends] == [
        ("infra-backend-v1", 10, (set_header("backend", "infra-backend-v1"),)),
        ("infra-backend-v2", 10, (set_header("backend", "infra-backend-v2"),)),
    ]
    (parent,) = status(config, "HTTPRoute", "gateway-conformance-infra", "r")["parents"]
    assert conditions(parent["conditions"]) == {"Accepted": ("True", "Accepted"),
                                                "ResolvedRefs": ("True", "ResolvedRefs")}


def test_backend_level_redirect_and_rewrite_are_parsed_with_the_rules_match():
    spec = """
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /prefix}}]
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters:
      - type: URLRewrite
        urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /rewritten-prefix}}
  - matches: [{path: {type: Exact, value: /full}}]
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters:
      - type: RequestRedirect
        requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /redirected-full}}
"""
    found = {route.path: route.backends[0].filters for route in translate(snapshot(BASE, route_yaml(spec))).routes}
    assert found == {
        "/prefix": (URLRewrite(path=PathModifier("ReplacePrefixMatch", "/rewritten-prefix")),),
        "/full": (RequestRedirect(path=PathModifier(REPLACE_FULL_PATH, "/redirected-full")),),
    }


def test_a_backend_level_redirect_keeps_the_listeners_declared_port():
    gateway = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: odd-port, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: ingressd
  listeners:
  - {name: http, port: 8080, protocol: HTTP}
"""
    spec = """
  parentRefs: [{name: odd-port}]
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters: [{type: RequestRedirect, requestRedirect: {hostname: elsewhere.example}}]
"""
    (route,) = translate(snapshot(BASE, gateway, route_yaml(spec))).routes
    (redirect,) = route.backends[0].filters
    assert (redirect.hostname, redirect.port) == ("elsewhere.example", 8080)


def test_an_invalid_combination_with_the_rules_filters_leaves_the_rule_out():
    spec = """
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /both}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: a.example}}]
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters: [{type: URLRewrite, urlRewrite: {hostname: b.example}}]
  - matches: [{path: {type: Exact, value: /exact}}]
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}]
  - matches: [{path: {type: PathPrefix, value: /good}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
"""
    config = translate(snapshot(BASE, route_yaml(spec)))
    assert [route.path for route in config.routes] == ["/good"]
    reasons = " ".join(warning.reason for warning in config.warnings)
    assert "rule 0: a rule may have one RequestRedirect, and not with a URLRewrite" in reasons
    assert "rule 1: ReplacePrefixMatch needs a PathPrefix match" in reasons


def test_a_grpc_routes_backend_filters_are_those_a_grpc_route_allows():
    grpc = """
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [grpc.example]
  rules:
  - matches: [{method: {service: a.Svc}}]
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-b, value: "1"}]}}]
  - matches: [{method: {service: b.Svc}}]
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters: [{type: URLRewrite, urlRewrite: {hostname: b.example}}]
"""
    same = BASE.replace("allowedRoutes: {namespaces: {from: Same}}",
                        "allowedRoutes: {namespaces: {from: Same}, kinds: [{kind: HTTPRoute}, {kind: GRPCRoute}]}")
    config = translate(snapshot(same, grpc))
    assert [(route.path, route.backends[0].filters) for route in config.routes] == [
        ("/a.Svc", (set_header("x-b", "1"),))]


# -- build_table and the exchange ------------------------------------------------------------------


class Plugins:
    """The gateway_filters plugin alone, as build_table asks plugins."""

    def route_features(self, route, context):
        return list(gateway_filters.ingressd_route_features(route, {}, context) or ())

    def host_routes(self, config, context):
        return ()


def served(*members, filters=(), path="/", path_type="Prefix"):
    route = Route("shop.test", path, path_type, V1, ObjectRef("HTTPRoute", "ns", "r"), filters=tuple(filters),
                  backends=tuple(members))
    table, config = build_table(Config(routes=(route,)), Plugins(), BuildContext(settings={}, reactor=None))
    pool = FakePool()
    proxy = Proxy(State(table), {"HTTP": pool}, ProxySettings(), Clock())
    return proxy, pool, table, config


def test_an_entry_per_member_with_filters_of_its_own():
    proxy, _, table, config = served(WeightedBackend(V1, 1, (set_header("backend", "v1"),)), WeightedBackend(V2, 1))
    assert config.rejections == ()
    entry = table.match("shop.test", "/", None)
    own, plain = entry.weighted.entries
    assert plain is None and own.route.filters == (set_header("backend", "v1"),)
    assert own.upstream_request_features and not entry.upstream_request_features


def test_the_members_filters_apply_only_to_its_requests():
    proxy, pool, table, _ = served(WeightedBackend(V1, 1, (set_header("backend", "v1"),)),
                                   WeightedBackend(V2, 1, (set_header("backend", "v2"),)))
    entry = table.match("shop.test", "/", None)
    entry.weighted.draw = iter([0.1, 0.9, 0.2, 0.7] * 25).__next__
    for _ in range(100):
        client, _ = send(proxy, request(headers=[(b"backend", b"client")]))
        connection = pool.connect()
        head = connection.sent.decode("latin-1").lower()
        address = connection.endpoint.address
        assert head.count("\r\nbackend:") == 1  # set: the client's value replaced, one line
        assert f"\r\nbackend: {'v1' if address == '10.0.0.1' else 'v2'}\r\n" in head
        connection.respond(200, body=b"ok")
        assert client.head[0] == 200
    assert {asked[0][0] for asked in pool.asked} == {"10.0.0.1", "10.0.0.2"}


def test_the_rules_filters_run_first_then_the_members():
    proxy, pool, table, _ = served(
        WeightedBackend(V1, 1, (set_header("x-order", "member"), ResponseHeaderModifier(
            HeaderChanges(add=(("x-member", "v1"),))))),
        filters=[set_header("x-order", "rule"), RequestHeaderModifier(HeaderChanges(add=(("x-rule", "1"),)))])
    client, _ = send(proxy, request())
    connection = pool.connect()
    head = connection.sent.decode("latin-1").lower()
    assert "\r\nx-order: member\r\n" in head and "\r\nx-rule: 1\r\n" in head and "x-order: rule" not in head
    connection.respond(200, body=b"ok")
    assert client.header(b"x-member") == [b"v1"]


def test_a_members_redirect_answers_without_a_backend():
    proxy, pool, table, _ = served(
        WeightedBackend(V1, 1, (RequestRedirect(path=PathModifier(REPLACE_FULL_PATH, "/redirected-full")),)),
        path="/full")
    client, _ = send(proxy, request(target=b"/full/path?q=1"))
    assert client.head[0] == 302 and pool.asked == []
    assert client.header(b"location") == [b"http://shop.test/redirected-full?q=1"]


def test_a_members_rewrite_changes_only_its_requests_path():
    rewrite = URLRewrite(path=PathModifier("ReplacePrefixMatch", "/rewritten-prefix"))
    proxy, pool, table, _ = served(WeightedBackend(V1, 1, (rewrite,)), WeightedBackend(V2, 1), path="/prefix")
    table.match("shop.test", "/prefix", None).weighted.draw = iter([0.1, 0.9]).__next__
    send(proxy, request(target=b"/prefix/one"))
    first = pool.connect()
    send(proxy, request(target=b"/prefix/one"))
    second = pool.connect()
    assert first.sent.startswith(b"GET /rewritten-prefix/one HTTP/1.1\r\n") and first.endpoint.address == "10.0.0.1"
    assert second.sent.startswith(b"GET /prefix/one HTTP/1.1\r\n") and second.endpoint.address == "10.0.0.2"


def test_an_unusable_member_chosen_first_is_still_500():
    proxy, pool, table, _ = served(WeightedBackend(None, 1), WeightedBackend(V2, 1, (set_header("b", "2"),)))
    table.match("shop.test", "/", None).weighted.draw = iter([0.1, 0.9]).__next__
    client, exchange = send(proxy, request())
    assert client.head[0] == 500 and exchange.error_cause == "no_backend" and pool.asked == []
    client, _ = send(proxy, request())
    assert client.head is None and [asked[0][0] for asked in pool.asked] == ["10.0.0.2"]


def test_a_retry_stays_on_the_member_and_its_filters():
    two = Backend("ns", "v1", "8080", (Endpoint("10.0.0.1", 8080), Endpoint("10.0.0.3", 8080)))
    proxy, pool, table, _ = served(WeightedBackend(two, 1, (set_header("backend", "v1"),)), WeightedBackend(V2, 1))
    table.match("shop.test", "/", None).weighted.draw = iter([0.1]).__next__
    send(proxy, request())
    pool.refuse(UpstreamError("refused", cause="connect_error"))
    assert [asked[0][0] for asked in pool.asked] == ["10.0.0.1", "10.0.0.3"]
    assert "\r\nbackend: v1\r\n" in pool.connect().sent.decode("latin-1")


def test_a_member_filter_no_plugin_applies_rejects_the_route():
    class Unowned:
        pass

    class Checking(Plugins):
        def route_features(self, route, context):
            if any(isinstance(item, Unowned) for item in route.filters):
                raise AnnotationError("filter Unowned: no loaded ingressd plugin applies it")
            return super().route_features(route, context)

    route = Route("shop.test", "/", "Prefix", V1, ObjectRef("HTTPRoute", "ns", "r"),
                  backends=(WeightedBackend(V1, 1, (Unowned(),)),))
    table, config = build_table(Config(routes=(route,)), Checking(), BuildContext(settings={}, reactor=None))
    assert table.match("shop.test", "/", None) is None
    assert [str(rejection) for rejection in config.rejections] == [
        "HTTPRoute ns/r: filter Unowned: no loaded ingressd plugin applies it"]
