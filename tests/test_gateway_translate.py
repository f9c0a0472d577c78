"""The Gateway API translation (config.gateway_api and config.gateway.*): GatewayClass,
Gateway, HTTPRoute and ReferenceGrant → routes, TLS hosts and judged status; table-style over
YAML manifests, as the conformance suite's base manifests are written."""

from __future__ import annotations

import json

import pytest

from ingressd.config import filters
from ingressd.config.gateway.hostnames import intersect
from ingressd.config.gateway_api import GatewayTranslator, translate
from ingressd.config.model import EXACT, PREFIX, Conditions, Config, ObjectRef, ValueMatch
from ingressd.config.translate import TranslateSettings

from gateway_manifests import snapshot

BASE = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ingressd}
spec: {controllerName: ingressd.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other}
spec: {controllerName: example.com/other}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: same-namespace, namespace: gateway-conformance-infra, generation: 3}
spec:
  gatewayClassName: ingressd
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: all-namespaces, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: ingressd
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: not-ours, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: other
  listeners:
  - {name: http, port: 80, protocol: HTTP}
---
apiVersion: v1
kind: Service
metadata: {name: infra-backend-v1, namespace: gateway-conformance-infra}
spec: {ports: [{port: 8080, targetPort: 3000}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: v1, namespace: gateway-conformance-infra, labels: {kubernetes.io/service-name: infra-backend-v1}}
ports: [{port: 3000}]
endpoints: [{addresses: [127.0.0.1]}]
---
apiVersion: v1
kind: Service
metadata: {name: infra-backend-v2, namespace: gateway-conformance-infra}
spec: {ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-backend, namespace: gateway-conformance-web-backend}
spec: {ports: [{port: 8080}]}
"""


def status(config: Config, kind: str, namespace: str, name: str) -> dict:
    body = dict(config.status)[ObjectRef(kind, namespace, name)].body
    return json.loads(body)


def conditions(items) -> dict:
    return {item["type"]: (item["status"], item["reason"]) for item in items}


def route_yaml(spec: str, name: str = "r", namespace: str = "gateway-conformance-infra", created: str = "") -> str:
    meta = f"{{name: {name}, namespace: {namespace}" + (f", creationTimestamp: '{created}'" if created else "") + "}"
    return f"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {meta}\nspec:\n{spec}"


SIMPLE = """
  parentRefs: [{name: same-namespace}]
  rules:
  - backendRefs: [{name: infra-backend-v1, port: 8080}]
"""


def test_only_our_gateway_classes_are_served_and_accepted():
    config = translate(snapshot(BASE))
    assert conditions(status(config, "GatewayClass", "", "ingressd")["conditions"]) == {
        "Accepted": ("True", "Accepted")}
    refs = {ref for ref, _ in config.status}
    assert ObjectRef("GatewayClass", "", "other") not in refs
    assert ObjectRef("Gateway", "gateway-conformance-infra", "not-ours") not in refs


def test_the_controller_name_is_a_setting():
    objects = snapshot(BASE, route_yaml(SIMPLE))
    assert GatewayTranslator().translate(objects, TranslateSettings(gateway_controller="example.com/other"),
                                         ()).routes == ()
    assert GatewayTranslator().translate(objects, TranslateSettings(), ()).routes


def test_a_simple_route_in_the_same_namespace():
    config = translate(snapshot(BASE, route_yaml(SIMPLE, created="2024-01-01T00:00:00Z")))
    (route,) = config.routes
    assert (route.host, route.path, route.path_type, route.conditions) == ("", "/", PREFIX, None)
    assert route.ingress == ObjectRef("HTTPRoute", "gateway-conformance-infra", "r")
    assert route.created == "2024-01-01T00:00:00Z"
    (member,) = route.backends
    assert member.weight == 1 and member.backend.service == "infra-backend-v1"
    assert [(e.address, e.port) for e in member.backend.endpoints] == [("127.0.0.1", 3000)]
    (parent,) = status(config, "HTTPRoute", "gateway-conformance-infra", "r")["parents"]
    assert parent["controllerName"] == "ingressd.io/gateway-controller"
    assert parent["parentRef"] == {"name": "same-namespace"}
    assert conditions(parent["conditions"]) == {"Accepted": ("True", "Accepted"),
                                                "ResolvedRefs": ("True", "ResolvedRefs")}
    gateway = status(config, "Gateway", "gateway-conformance-infra", "same-namespace")
    assert conditions(gateway["conditions"]) == {"Accepted": ("True", "Accepted"),
                                                 "Programmed": ("True", "Programmed")}
    (listener,) = gateway["listeners"]
    assert listener["attachedRoutes"] == 1
    assert listener["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"},
                                          {"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"}]
    assert conditions(listener["conditions"]) == {
        "Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs"),
        "Conflicted": ("False", "NoConflicts"), "Programmed": ("True", "Programmed")}
    assert {c["observedGeneration"] for c in gateway["conditions"]} == {3}
    assert dict(config.status)[ObjectRef("Gateway", "gateway-conformance-infra", "same-namespace")].generation == 3


def test_a_route_of_another_class_only_is_left_alone():
    config = translate(snapshot(BASE, route_yaml("  parentRefs: [{name: not-ours}]\n  rules: [{}]\n")))
    assert config.routes == ()
    assert ObjectRef("HTTPRoute", "gateway-conformance-infra", "r") not in dict(config.status)


@pytest.mark.parametrize("parent, reason", [
    ("{name: same-namespace, sectionName: nope}", "NoMatchingParent"),
    ("{name: same-namespace, port: 8080}", "NoMatchingParent"),
])
def test_a_parent_without_the_listener_named(parent, reason):
    config = translate(snapshot(BASE, route_yaml(f"  parentRefs: [{parent}]\n  rules: [{{}}]\n")))
    assert config.routes == ()
    (found,) = status(config, "HTTPRoute", "gateway-conformance-infra", "r")["parents"]
    assert conditions(found["conditions"])["Accepted"] == ("False", reason)


def test_a_route_from_another_namespace_needs_a_listener_that_admits_it():
    spec = """
  parentRefs: [{name: same-namespace, namespace: gateway-conformance-infra},
               {name: all-namespaces, namespace: gateway-conformance-infra}]
  rules:
  - backendRefs: [{name: web-backend, port: 8080}]
"""
    config = translate(snapshot(BASE, route_yaml(spec, namespace="gateway-conformance-web-backend")))
    same, every = status(config, "HTTPRoute", "gateway-conformance-web-backend", "r")["parents"]
    assert conditions(same["conditions"])["Accepted"] == ("False", "NotAllowedByListeners")
    assert conditions(every["conditions"])["Accepted"] == ("True", "Accepted")
    (route,) = config.routes
    assert route.backends[0].backend.namespace == "gateway-conformance-web-backend"


def test_a_listener_selecting_namespaces_by_label():
    gateway = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: selected, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: ingressd
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces: {from: Selector, selector: {matchLabels: {team: web}}}
---
apiVersion: v1
kind: Namespace
metadata: {name: labelled, labels: {team: web}}
"""
    spec = "  parentRefs: [{name: selected, namespace: gateway-conformance-infra}]\n  rules: [{}]\n"
    config = translate(snapshot(BASE, gateway, route_yaml(spec, name="admitted", namespace="labelled"),
                                route_yaml(spec, name="refused", namespace="plain")))
    assert conditions(status(config, "HTTPRoute", "labelled", "admitted")["parents"][0]["conditions"])["Accepted"][0] \
        == "True"
    assert conditions(status(config, "HTTPRoute", "plain", "refused")["parents"][0]["conditions"])["Accepted"] == \
        ("False", "NotAllowedByListeners")


def test_cross_namespace_backends_need_a_reference_grant():
    spec = """
  parentRefs: [{name: same-namespace}]
  rules:
  - backendRefs: [{name: web-backend, namespace: gateway-conformance-web-backend, port: 8080}]
"""
    config = translate(snapshot(BASE, route_yaml(spec)))
    (route,) = config.routes
    assert route.backends[0].backend is None  # 500 for its share
    parent = status(config, "HTTPRoute", "gateway-conformance-infra", "r")["parents"][0]
    assert conditions(parent["conditions"]) == {"Accepted": ("True", "Accepted"),
                                                "ResolvedRefs": ("False", "RefNotPermitted")}
    grant = """
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: gateway-conformance-web-backend}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: gateway-conformance-infra}]
  to: [{group: "", kind: Service}]
"""
    config = translate(snapshot(BASE, route_yaml(spec), grant))
    assert config.routes[0].backends[0].backend.service == "web-backend"
    wrong_name = grant.replace('kind: Service}', 'kind: Service, name: other}')
    assert translate(snapshot(BASE, route_yaml(spec), wrong_name)).routes[0].backends[0].backend is None


@pytest.mark.parametrize("ref, reason", [
    ("{name: missing, port: 8080}", "BackendNotFound"),
    ("{name: infra-backend-v1, port: 9}", "BackendNotFound"),
    ("{name: infra-backend-v1}", "BackendNotFound"),
    ("{group: example.com, kind: Widget, name: w}", "InvalidKind"),
])
def test_unusable_backends_answer_500_for_their_share(ref, reason):
    spec = f"""
  parentRefs: [{{name: same-namespace}}]
  rules:
  - backendRefs: [{ref}, {{name: infra-backend-v1, port: 8080, weight: 3}}]
"""
    config = translate(snapshot(BASE, route_yaml(spec)))
    (route,) = config.routes
    assert [(m.backend is None, m.weight) for m in route.backends] == [(True, 1), (False, 3)]
    parent = status(config, "HTTPRoute", "gateway-conformance-infra", "r")["parents"][0]
    assert conditions(parent["conditions"])["ResolvedRefs"] == ("False", reason)


def test_a_rule_without_backends_answers_500():
    config = translate(snapshot(BASE, route_yaml("  parentRefs: [{name: same-namespace}]\n  rules: [{}]\n")))
    assert [(m.backend, m.weight) for m in config.routes[0].backends] == [(None, 1)]


def test_matches_become_conditions_one_route_per_match():
    spec = """
  parentRefs: [{name: same-namespace}]
  hostnames: [Example.COM]
  rules:
  - matches:
    - path: {type: Exact, value: /exact}
    - path: {type: PathPrefix, value: /prefix}
      method: POST
      headers: [{name: Version, value: two}, {name: version, value: ignored},
                {name: color, type: RegularExpression, value: 'red|blue'}]
      queryParams: [{name: Q, value: x}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
"""
    config = translate(snapshot(BASE, route_yaml(spec)))
    exact, prefix = config.routes
    assert (exact.host, exact.path, exact.path_type, exact.conditions) == ("example.com", "/exact", EXACT, None)
    assert (prefix.path, prefix.path_type) == ("/prefix", PREFIX)
    assert prefix.conditions == Conditions("POST", (ValueMatch("version", "two"),
                                                    ValueMatch("color", "red|blue", "RegularExpression")),
                                           (ValueMatch("Q", "x"),))


@pytest.mark.parametrize("match, problem", [
    ("{path: {type: RegularExpression, value: '/v(?=1)'}}", "not an RE2 regular expression"),
    ("{path: {type: Exact, value: relative}}", "invalid"),
    ("{headers: [{name: a, type: RegularExpression, value: '(unclosed'}]}", "expression"),
])
def test_a_rule_that_cannot_be_served_is_left_out(match, problem):
    spec = f"""
  parentRefs: [{{name: same-namespace}}]
  rules:
  - matches: [{match}]
  - matches: [{{path: {{value: /ok}}}}]
"""
    config = translate(snapshot(BASE, route_yaml(spec)))
    assert [route.path for route in config.routes] == ["/ok"]
    parent = status(config, "HTTPRoute", "gateway-conformance-infra", "r")["parents"][0]
    assert conditions(parent["conditions"])["PartiallyInvalid"] == ("True", "UnsupportedValue")
    assert problem in config.warnings[0].reason
    alone = translate(snapshot(BASE, route_yaml(f"  parentRefs: [{{name: same-namespace}}]\n  rules:\n"
                                                f"  - matches: [{match}]\n")))
    assert alone.routes == ()
    parent = status(alone, "HTTPRoute", "gateway-conformance-infra", "r")["parents"][0]
    assert conditions(parent["conditions"])["Accepted"] == ("False", "UnsupportedValue")


def test_filters_are_put_on_the_routes_in_order():
    spec = """
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /p}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Set, value: a}], add: [{name: x-add, value: b}], remove: [X-Gone]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: x-r, value: c}]}
    - type: URLRewrite
      urlRewrite: {hostname: Rewritten.example, path: {type: ReplacePrefixMatch, replacePrefixMatch: /q}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: infra-backend-v2, port: 8080}, percent: 50}
    - type: CORS
      cors: {allowOrigins: ['https://a.example'], allowMethods: [GET], maxAge: 10}
    - type: ExtensionRef
      extensionRef: {group: ingressd.io, kind: Plugin, name: p}
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: Exact, value: /r}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, port: 8443, statusCode: 301, path: {type: ReplaceFullPath, replaceFullPath: /n}}
"""
    config = translate(snapshot(BASE, route_yaml(spec)))
    first, second = config.routes
    request, response, rewrite, mirror, cors, extension = first.filters
    assert request == filters.RequestHeaderModifier(filters.HeaderChanges(set=(("x-set", "a"),), add=(("x-add", "b"),),
                                                                          remove=("x-gone",)))
    assert response == filters.ResponseHeaderModifier(filters.HeaderChanges(add=(("x-r", "c"),)))
    assert rewrite == filters.URLRewrite("rewritten.example", filters.PathModifier("ReplacePrefixMatch", "/q"))
    assert mirror.backend.service == "infra-backend-v2" and mirror.percent == 50
    assert cors == filters.CORS(allow_origins=("https://a.example",), allow_methods=("GET",), max_age=10)
    assert extension == filters.ExtensionRef("ingressd.io", "Plugin", "p")
    assert second.filters == (filters.RequestRedirect(scheme="https", port=8443, status_code=301,
                                                      path=filters.PathModifier("ReplaceFullPath", "/n")),)


@pytest.mark.parametrize("filter_", [
    "{type: RequestRedirect, requestRedirect: {statusCode: 200}}",
    "{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}",  # on Exact
    "{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: 'bad name', value: a}]}}",
    "{type: Unknown}",
])
def test_an_invalid_filter_leaves_its_rule_out(filter_):
    spec = f"""
  parentRefs: [{{name: same-namespace}}]
  rules:
  - matches: [{{path: {{type: Exact, value: /x}}}}]
    filters: [{filter_}]
"""
    assert translate(snapshot(BASE, route_yaml(spec))).routes == ()


def test_an_invalid_per_backend_filter_leaves_its_rule_out():
    spec = """
  parentRefs: [{name: same-namespace}]
  rules:
  - backendRefs: [{name: infra-backend-v1, port: 8080, filters: [{type: RequestHeaderModifier}]}]
"""
    config = translate(snapshot(BASE, route_yaml(spec)))
    assert config.routes == ()
    assert "rule 0: a header filter needs its settings" in config.warnings[0].reason


@pytest.mark.parametrize("listener, route, expected", [
    (None, [], ("",)),
    (None, ["a.example"], ("a.example",)),
    ("a.example", [], ("a.example",)),
    ("a.example", ["a.example", "b.example"], ("a.example",)),
    ("a.example", ["*.example"], ("a.example",)),
    ("*.example", ["a.example", "x.y.example", "example"], ("a.example", "x.y.example")),
    ("*.example", ["*.example"], ("*.example",)),
    ("*.example", ["*.a.example"], ("*.a.example",)),
    ("*.a.example", ["*.example"], ("*.a.example",)),
    ("*.example", ["*.other"], ()),
    ("a.example", ["b.example"], ()),
])
def test_hostname_intersection(listener, route, expected):
    assert intersect(listener, route) == expected


def test_no_matching_listener_hostname():
    gateway = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: named, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: ingressd
  listeners:
  - {name: foo, port: 80, protocol: HTTP, hostname: foo.example}
  - {name: wild, port: 80, protocol: HTTP, hostname: '*.bar.example'}
"""
    spec = "  parentRefs: [{name: named}]\n  hostnames: [other.example]\n  rules: [{}]\n"
    config = translate(snapshot(BASE, gateway, route_yaml(spec)))
    parent = status(config, "HTTPRoute", "gateway-conformance-infra", "r")["parents"][0]
    assert conditions(parent["conditions"])["Accepted"] == ("False", "NoMatchingListenerHostname")
    spec = "  parentRefs: [{name: named}]\n  rules: [{}]\n"
    config = translate(snapshot(BASE, gateway, route_yaml(spec)))
    assert sorted((route.host, route.any_depth) for route in config.routes) == [("*.bar.example", True),
                                                                                ("foo.example", False)]
    listeners = status(config, "Gateway", "gateway-conformance-infra", "named")["listeners"]
    assert [listener["attachedRoutes"] for listener in listeners] == [1, 1]


def _https_gateway(cert_namespace: str = "gateway-conformance-infra") -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: secure, namespace: gateway-conformance-infra}}
spec:
  gatewayClassName: ingressd
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    hostname: secure.example
    tls: {{certificateRefs: [{{name: cert, namespace: {cert_namespace}}}]}}
---
apiVersion: v1
kind: Secret
metadata: {{name: cert, namespace: {cert_namespace}}}
type: kubernetes.io/tls
stringData: {{tls.crt: CERT, tls.key: KEY}}
"""


def test_https_listeners_serve_their_certificates():
    config = translate(snapshot(BASE, _https_gateway()))
    (tls_host,) = config.tls_hosts
    assert (tls_host.host, tls_host.secret) == ("secure.example", ObjectRef("Secret", "gateway-conformance-infra",
                                                                             "cert"))
    assert [secret.ref.name for secret in config.secrets] == ["cert"]
    listener = status(config, "Gateway", "gateway-conformance-infra", "secure")["listeners"][0]
    assert conditions(listener["conditions"])["ResolvedRefs"] == ("True", "ResolvedRefs")


def test_a_certificate_in_another_namespace_needs_a_grant():
    config = translate(snapshot(BASE, _https_gateway("elsewhere")))
    assert config.tls_hosts == ()
    listener = status(config, "Gateway", "gateway-conformance-infra", "secure")["listeners"][0]
    assert conditions(listener["conditions"])["ResolvedRefs"] == ("False", "RefNotPermitted")
    assert conditions(listener["conditions"])["Programmed"] == ("False", "Invalid")


def test_a_missing_certificate_is_an_invalid_ref():
    text = _https_gateway().split("---")[0]
    config = translate(snapshot(BASE, text))
    listener = status(config, "Gateway", "gateway-conformance-infra", "secure")["listeners"][0]
    assert conditions(listener["conditions"])["ResolvedRefs"] == ("False", "InvalidCertificateRef")


def test_unsupported_protocols_and_conflicts():
    gateway = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: mixed, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: ingressd
  listeners:
  - {name: tcp, port: 9000, protocol: TCP}
  - {name: a, port: 80, protocol: HTTP, hostname: a.example}
  - {name: b, port: 80, protocol: HTTP, hostname: a.example}
  - {name: c, port: 80, protocol: HTTP, hostname: c.example, allowedRoutes: {kinds: [{kind: TCPRoute}]}}
"""
    config = translate(snapshot(BASE, gateway))
    tcp, a, b, c = status(config, "Gateway", "gateway-conformance-infra", "mixed")["listeners"]
    assert conditions(tcp["conditions"])["Accepted"] == ("False", "UnsupportedProtocol")
    assert conditions(a["conditions"])["Conflicted"] == ("True", "HostnameConflict")
    assert conditions(b["conditions"])["Conflicted"] == ("True", "HostnameConflict")
    assert conditions(c["conditions"])["ResolvedRefs"] == ("False", "InvalidRouteKinds")
    assert c["supportedKinds"] == []


def test_a_redirect_without_scheme_or_port_keeps_the_listeners_declared_port():
    gateway = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ports, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: ingressd
  listeners:
  - {name: odd, port: 8080, protocol: HTTP, hostname: odd.example}
  - {name: plain, port: 80, protocol: HTTP, hostname: plain.example}
"""
    spec = """
  parentRefs: [{name: ports}]
  rules:
  - matches: [{path: {value: /a}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: elsewhere.example}}]
  - matches: [{path: {value: /b}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]
"""
    config = translate(snapshot(BASE, gateway, route_yaml(spec)))
    found = {(route.host, route.path): route.filters[0] for route in config.routes}
    assert found["odd.example", "/a"].port == 8080
    assert found["odd.example", "/b"].port is None  # the scheme's own port
    assert found["plain.example", "/a"].port is None


def grpc_route_yaml(spec: str, name: str = "g") -> str:
    return (f"apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: {name}, "
            f"namespace: gateway-conformance-infra}}\nspec:\n{spec}")


def test_a_grpc_route_becomes_paths_of_services_and_methods_over_grpc():
    spec = """
  parentRefs: [{name: same-namespace}]
  hostnames: [grpc.example]
  rules:
  - matches: [{method: {service: test.Echo, method: Unary}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{method: {service: test.Other}, headers: [{name: X-Kind, value: a}]}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-a, value: b}]}}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
  - backendRefs: [{name: infra-backend-v2, port: 8080}]
"""
    config = translate(snapshot(BASE, grpc_route_yaml(spec)))
    exact, service, every = config.routes
    assert (exact.path, exact.path_type, exact.conditions) == ("/test.Echo/Unary", EXACT, None)
    assert (service.path, service.path_type) == ("/test.Other", PREFIX)
    assert service.conditions == Conditions("", (ValueMatch("x-kind", "a"),), ())
    assert (every.path, every.path_type) == ("/", PREFIX)
    assert all(dict(route.features) == {"backend-protocol": "GRPC"} for route in config.routes)
    assert exact.ingress == ObjectRef("GRPCRoute", "gateway-conformance-infra", "g")
    parent = status(config, "GRPCRoute", "gateway-conformance-infra", "g")["parents"][0]
    assert conditions(parent["conditions"])["Accepted"] == ("True", "Accepted")


@pytest.mark.parametrize("rule", [
    "{matches: [{method: {method: Unary}}]}",
    "{matches: [{method: {type: RegularExpression, service: 'test.*'}}]}",
    "{matches: [{method: {service: 'bad/name'}}]}",
    "{filters: [{type: RequestRedirect, requestRedirect: {statusCode: 301}}]}",
])
def test_grpc_rules_that_cannot_be_served(rule):
    spec = f"  parentRefs: [{{name: same-namespace}}]\n  rules:\n  - {rule}\n  - matches: [{{method: {{service: ok.S}}}}]\n"
    config = translate(snapshot(BASE, grpc_route_yaml(spec)))
    assert [route.path for route in config.routes] == ["/ok.S"]
    parent = status(config, "GRPCRoute", "gateway-conformance-infra", "g")["parents"][0]
    assert conditions(parent["conditions"])["PartiallyInvalid"] == ("True", "UnsupportedValue")
