"""A backendRef's Service port ``appProtocol`` → the upstream its route's requests go over
(config/gateway/backends.py ``upstream_protocol``, httproute ``rule_protocol``): the conformance
cases HTTPRouteBackendProtocolH2C and HTTPRouteBackendProtocolWebSocket translated (their
traffic: tests/test_e2e_gateway_backend_protocol.py), an appProtocol a route kind cannot use is
ResolvedRefs False UnsupportedProtocol and 500 for its share, and a rule whose backends need
different upstreams is left out."""

from __future__ import annotations

import pytest

from ingressd.config.gateway.backends import Services
from ingressd.config.gateway_api import translate
from ingressd.config.model import Backend
from ingressd.config.store import pack

from test_gateway_translate import BASE, conditions, route_yaml, snapshot, status

NS = "gateway-conformance-infra"

# The conformance base's infra-backend-v1 ports (conformance/base/manifests.yaml), and more.
SERVICE = f"""
apiVersion: v1
kind: Service
metadata: {{name: proto, namespace: {NS}}}
spec:
  ports:
  - {{name: first-port, port: 8080, targetPort: 3000}}
  - {{name: second-port, port: 8081, targetPort: 3001, appProtocol: kubernetes.io/h2c}}
  - {{name: third-port, port: 8082, targetPort: 3000, appProtocol: kubernetes.io/ws}}
  - {{name: wss, port: 8443, appProtocol: kubernetes.io/wss}}
  - {{name: http-word, port: 8090, appProtocol: HTTP}}
  - {{name: unknown, port: 9000, appProtocol: example.com/custom}}
  - {{name: grpc-word, port: 9090, appProtocol: grpc}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: proto, namespace: {NS}, labels: {{kubernetes.io/service-name: proto}}}}
ports: [{{name: first-port, port: 3000}}, {{name: second-port, port: 3001}}, {{name: third-port, port: 3000}},
        {{name: wss, port: 8443}}, {{name: http-word, port: 8090}}, {{name: unknown, port: 9000}},
        {{name: grpc-word, port: 9090}}]
endpoints: [{{addresses: [127.0.0.1]}}]
"""


def _route(*ports: int) -> str:
    refs = "".join(f"\n    - {{name: proto, port: {port}}}" for port in ports)
    return f"""
  parentRefs: [{{name: same-namespace}}]
  rules:
  - backendRefs:{refs}
"""


def _grpc_route(port: int) -> str:
    return f"""apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: g, namespace: {NS}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules:
  - backendRefs: [{{name: proto, port: {port}}}]
"""


@pytest.mark.parametrize("port, features", [
    (8080, ()),  # no appProtocol: HTTP/1.1
    (8081, (("backend-protocol", "GRPC"),)),  # kubernetes.io/h2c: the h2c upstream
    (8082, ()),  # kubernetes.io/ws: HTTP/1.1, the upgrade passes
    (8443, (("backend-protocol", "HTTPS"),)),  # kubernetes.io/wss: TLS
    (8090, ()),  # "HTTP", any case
])
def test_the_app_protocol_chooses_the_upstream(port, features):
    config = translate(snapshot(BASE, SERVICE, route_yaml(_route(port))))
    (route,) = config.routes
    assert route.features == features
    assert route.backends[0].backend is not None
    (parent,) = status(config, "HTTPRoute", NS, "r")["parents"]
    assert conditions(parent["conditions"]) == {"Accepted": ("True", "Accepted"),
                                                "ResolvedRefs": ("True", "ResolvedRefs")}


def test_an_unknown_app_protocol_is_unsupported_and_keeps_its_share():
    config = translate(snapshot(BASE, SERVICE, route_yaml(_route(8080, 9000))))
    (route,) = config.routes
    assert [member.backend is not None for member in route.backends] == [True, False]
    assert [member.weight for member in route.backends] == [1, 1]
    (parent,) = status(config, "HTTPRoute", NS, "r")["parents"]
    found = conditions(parent["conditions"])
    assert found["ResolvedRefs"] == ("False", "UnsupportedProtocol")
    assert found["Accepted"] == ("True", "Accepted")
    message = next(c["message"] for c in parent["conditions"] if c["type"] == "ResolvedRefs")
    assert "example.com/custom" in message


def test_a_grpc_app_protocol_is_not_for_an_httproute():
    config = translate(snapshot(BASE, SERVICE, route_yaml(_route(9090))))
    (route,) = config.routes
    assert route.backends[0].backend is None
    (parent,) = status(config, "HTTPRoute", NS, "r")["parents"]
    assert conditions(parent["conditions"])["ResolvedRefs"] == ("False", "UnsupportedProtocol")


def test_backends_needing_different_upstreams_leave_their_rule_out():
    config = translate(snapshot(BASE, SERVICE, route_yaml(_route(8080, 8081))))
    assert config.routes == ()
    assert any("appProtocol" in warning.reason for warning in config.warnings)
    (parent,) = status(config, "HTTPRoute", NS, "r")["parents"]
    assert conditions(parent["conditions"])["Accepted"] == ("False", "UnsupportedValue")


def test_ws_and_plain_http_share_a_rule():
    config = translate(snapshot(BASE, SERVICE, route_yaml(_route(8080, 8082))))
    (route,) = config.routes
    assert route.features == ()
    assert all(member.backend is not None for member in route.backends)


@pytest.mark.parametrize("port, usable", [(8081, True), (9090, True), (8080, True), (8082, False), (8443, False)])
def test_a_grpcroute_takes_h2c_and_grpc_only(port, usable):
    config = translate(snapshot(BASE, SERVICE, _grpc_route(port)))
    (route,) = config.routes
    assert route.features == (("backend-protocol", "GRPC"),)
    assert (route.backends[0].backend is not None) is usable
    (parent,) = status(config, "GRPCRoute", NS, "g")["parents"]
    expected = ("True", "ResolvedRefs") if usable else ("False", "UnsupportedProtocol")
    assert conditions(parent["conditions"])["ResolvedRefs"] == expected


def test_app_protocol_lookup():
    services = Services({(NS, "s"): pack({"spec": {"ports": [
        {"port": 80, "appProtocol": "HTTPS"}, {"port": 81, "appProtocol": "kubernetes.io/H2C"}, {"port": 82}]}})}, {})
    assert services.app_protocol(NS, "s", 80) == "https"  # unprefixed names: any case
    assert services.app_protocol(NS, "s", "81") == "kubernetes.io/H2C"  # prefixed ones: exactly
    assert services.app_protocol(NS, "s", 82) == ""
    assert services.app_protocol(NS, "missing", 80) == ""
    assert services.upstream_protocol(Backend(NS, "s", "80"), "HTTPRoute") == "HTTPS"
    assert services.upstream_protocol(Backend(NS, "s", "81"), "HTTPRoute") is None
    assert services.upstream_protocol(Backend(NS, "s", "82"), "GRPCRoute") == "GRPC"
