"""The last Gateway API conformance cases ported by their status and translation: each test
names its case (kubernetes-sigs/gateway-api ``conformance/tests/<case>.go``) and uses that case's
own YAML, with our GatewayClass for ``{GATEWAY_CLASS_NAME}``."""

from __future__ import annotations

import pytest

from ingressd.config import filters
from ingressd.config.gateway_api import translate

from test_gateway_translate import BASE, conditions, snapshot, status

INFRA = "gateway-conformance-infra"

_CERTIFICATE = """
apiVersion: v1
kind: Secret
metadata: {name: %s, namespace: %s}
type: kubernetes.io/tls
stringData: {tls.crt: CERT, tls.key: KEY}
"""


def _listeners(config, name: str) -> dict:
    return {listener["name"]: listener for listener in status(config, "Gateway", INFRA, name)["listeners"]}


# -- GatewayModifyListeners: a listener removed ---------------------------------------------------

_REMOVE_LISTENER_HTTPS = """
  - name: https
    port: 443
    protocol: HTTPS
    hostname: "secure.test.com"
    allowedRoutes: {namespaces: {from: All}}
    tls:
      certificateRefs:
      - {group: "", kind: Secret, name: tls-validity-checks-certificate, namespace: gateway-conformance-infra}
"""


def _remove_listener_gateway(with_https: bool) -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gateway-remove-listener, namespace: {INFRA}}}
spec:
  gatewayClassName: ingressd
  listeners:{_REMOVE_LISTENER_HTTPS if with_https else ""}
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes: {{namespaces: {{from: All}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: http-route-2, namespace: {INFRA}}}
spec:
  parentRefs:
  - {{kind: Gateway, name: gateway-remove-listener, namespace: {INFRA}}}
  rules:
  - backendRefs:
    - {{name: infra-backend-v1, port: 8080}}
---
""" + _CERTIFICATE % ("tls-validity-checks-certificate", INFRA)


def test_gateway_modify_listeners_a_listener_removed():
    before = translate(snapshot(BASE, _remove_listener_gateway(with_https=True)))
    listeners = _listeners(before, "gateway-remove-listener")
    assert sorted(listeners) == ["http", "https"]
    assert [listeners[name]["attachedRoutes"] for name in ("https", "http")] == [1, 1]
    assert [tls_host.host for tls_host in before.tls_hosts] == ["secure.test.com"]
    assert sorted(scheme for route in before.routes for scheme in route.schemes) == ["http", "https"]

    after = translate(snapshot(BASE, _remove_listener_gateway(with_https=False)))
    (http,) = status(after, "Gateway", INFRA, "gateway-remove-listener")["listeners"]
    assert http["name"] == "http" and http["attachedRoutes"] == 1
    assert "HTTPRoute" in [kind["kind"] for kind in http["supportedKinds"]]
    assert conditions(http["conditions"])["Accepted"][0] == "True"
    assert conditions(http["conditions"])["ResolvedRefs"][0] == "True"
    # The removed listener's traffic stops: no certificate, no route served over TLS any more.
    assert after.tls_hosts == ()
    assert [route.schemes for route in after.routes] == [("http",)]
    (parent,) = status(after, "HTTPRoute", INFRA, "http-route-2")["parents"]
    assert conditions(parent["conditions"])["Accepted"] == ("True", "Accepted")


# -- GatewaySecretReferenceGrantAllInNamespace, GatewaySecretInvalidReferenceGrant ----------------

_SECRET_GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: %s, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: ingressd
  listeners:
    - name: https
      port: 443
      protocol: HTTPS
      allowedRoutes: {namespaces: {from: All}}
      tls:
        certificateRefs:
          - {group: "", kind: Secret, name: certificate, namespace: gateway-conformance-web-backend}
---
""" + _CERTIFICATE % ("certificate", "gateway-conformance-web-backend")


def _grant(name: str, namespace: str = "gateway-conformance-web-backend", from_group: str = "gateway.networking.k8s.io",
           from_kind: str = "Gateway", from_namespace: str = INFRA, to: str = '{group: "", kind: Secret, name: certificate}') -> str:
    return f"""---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  from:
    - {{group: {from_group}, kind: {from_kind}, namespace: {from_namespace}}}
  to:
    - {to}
"""


def test_gateway_secret_reference_grant_all_in_namespace():
    name = "gateway-secret-reference-grant-all-in-namespace"
    grant = _grant("reference-grant-all-in-namespace", to='{group: "", kind: Secret}')
    config = translate(snapshot(BASE, _SECRET_GATEWAY % name + grant))
    (listener,) = status(config, "Gateway", INFRA, name)["listeners"]
    assert listener["name"] == "https" and listener["attachedRoutes"] == 0
    assert "HTTPRoute" in [kind["kind"] for kind in listener["supportedKinds"]]
    assert conditions(listener["conditions"])["ResolvedRefs"] == ("True", "ResolvedRefs")
    assert conditions(listener["conditions"])["Programmed"][0] == "True"
    assert conditions(status(config, "Gateway", INFRA, name)["conditions"])["Programmed"][0] == "True"


_INVALID_GRANTS = (
    _grant("reference-grant-wrong-namespace", namespace="gateway-conformance-app-backend")
    + _grant("reference-grant-wrong-from-group", from_group="not-the-group-youre-looking-for")
    + _grant("reference-grant-wrong-from-kind", from_kind="HTTPRoute")
    + _grant("reference-grant-wrong-from-namespace", from_namespace="not-the-namespace-youre-looking-for")
    + _grant("reference-grant-wrong-to-group",
             to="{group: not-the-group-youre-looking-for, kind: Secret, name: not-the-certificate-youre-looking-for}")
    + _grant("reference-grant-wrong-to-kind", to='{group: "", kind: Service, name: certificate}')
    + _grant("reference-grant-wrong-to-name", to='{group: "", kind: Secret, name: not-the-certificate-youre-looking-for}')
)


def test_gateway_secret_invalid_reference_grant():
    name = "gateway-secret-invalid-reference-grant"
    config = translate(snapshot(BASE, _SECRET_GATEWAY % name + _INVALID_GRANTS))
    (listener,) = status(config, "Gateway", INFRA, name)["listeners"]
    assert listener["name"] == "https" and listener["attachedRoutes"] == 0
    assert "HTTPRoute" in [kind["kind"] for kind in listener["supportedKinds"]]
    assert conditions(listener["conditions"])["ResolvedRefs"] == ("False", "RefNotPermitted")
    assert config.tls_hosts == ()


@pytest.mark.parametrize("index", range(7))
def test_each_invalid_grant_alone_permits_nothing(index):
    grant = "---" + _INVALID_GRANTS.split("---")[index + 1]
    config = translate(snapshot(BASE, _SECRET_GATEWAY % "alone" + grant))
    (listener,) = status(config, "Gateway", INFRA, "alone")["listeners"]
    assert conditions(listener["conditions"])["ResolvedRefs"] == ("False", "RefNotPermitted")


# -- HTTPRouteDisallowedKind ----------------------------------------------------------------------

_DISALLOWED_KIND = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tlsroutes-only, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: ingressd
  listeners:
  - name: tls
    port: 443
    protocol: TLS
    tls: {mode: Passthrough}
    allowedRoutes:
      namespaces: {from: Same}
      kinds: [{kind: TLSRoute}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: disallowed-kind, namespace: gateway-conformance-infra}
spec:
  parentRefs:
  - {name: tlsroutes-only, namespace: gateway-conformance-infra}
  rules:
  - backendRefs:
    - {name: infra-backend-v1, port: 8080}
"""


def test_httproute_disallowed_kind():
    config = translate(snapshot(BASE, _DISALLOWED_KIND))
    (parent,) = status(config, "HTTPRoute", INFRA, "disallowed-kind")["parents"]
    assert parent["parentRef"]["name"] == "tlsroutes-only"
    found = conditions(parent["conditions"])
    assert found["Accepted"] == ("False", "NotAllowedByListeners")
    assert found["ResolvedRefs"] == ("True", "ResolvedRefs")
    (listener,) = status(config, "Gateway", INFRA, "tlsroutes-only")["listeners"]
    assert listener["attachedRoutes"] == 0
    assert config.routes == ()


# -- HTTPRoute303Redirect, HTTPRoute307Redirect, HTTPRoute308Redirect (provisional) ---------------

@pytest.mark.parametrize("code, path", [(303, "/see-other"), (307, "/temporary"), (308, "/permanent")])
def test_httproute_redirect_status_codes_translate(code, path):
    route = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {code}-redirect, namespace: {INFRA}}}
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path: {{type: PathPrefix, value: {path}}}
    filters:
    - type: RequestRedirect
      requestRedirect: {{statusCode: {code}}}
"""
    config = translate(snapshot(BASE, route))
    (parent,) = status(config, "HTTPRoute", INFRA, f"{code}-redirect")["parents"]
    assert conditions(parent["conditions"])["Accepted"] == ("True", "Accepted")
    assert conditions(parent["conditions"])["ResolvedRefs"] == ("True", "ResolvedRefs")
    (served,) = [route for route in config.routes if route.path == path]
    (redirect,) = [f for f in served.filters if isinstance(f, filters.RequestRedirect)]
    assert redirect.status_code == code and redirect.path is None


# -- HTTPRouteNamedRule, GRPCRouteNamedRule (provisional) -----------------------------------------

def test_httproute_named_rule_is_accepted_and_both_rules_served():
    route = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: http-named-rules, namespace: {INFRA}}}
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - name: named-rule
    matches:
    - path: {{type: PathPrefix, value: /named}}
    backendRefs:
    - {{name: infra-backend-v1, port: 8080}}
  - matches:
    - path: {{type: PathPrefix, value: /unnamed}}
    backendRefs:
    - {{name: infra-backend-v2, port: 8080}}
"""
    config = translate(snapshot(BASE, route))
    (parent,) = status(config, "HTTPRoute", INFRA, "http-named-rules")["parents"]
    assert conditions(parent["conditions"])["Accepted"] == ("True", "Accepted")
    assert conditions(parent["conditions"])["ResolvedRefs"] == ("True", "ResolvedRefs")
    assert sorted(route.path for route in config.routes) == ["/named", "/unnamed"]


_GRPC_BACKENDS = """
---
apiVersion: v1
kind: Service
metadata: {name: grpc-infra-backend-v1, namespace: gateway-conformance-infra}
spec: {ports: [{port: 8080, appProtocol: kubernetes.io/h2c}]}
---
apiVersion: v1
kind: Service
metadata: {name: grpc-infra-backend-v2, namespace: gateway-conformance-infra}
spec: {ports: [{port: 8080, appProtocol: kubernetes.io/h2c}]}
"""


def test_grpcroute_named_rule_is_accepted_and_both_rules_served():
    route = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: grpc-named-rules, namespace: {INFRA}}}
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - name: named-rule
    matches:
    - method: {{service: gateway_api_conformance.echo_basic.grpcecho.GrpcEcho, method: Echo}}
    backendRefs:
    - {{name: grpc-infra-backend-v1, port: 8080}}
  - matches:
    - method: {{service: gateway_api_conformance.echo_basic.grpcecho.GrpcEcho, method: EchoTwo}}
    backendRefs:
    - {{name: grpc-infra-backend-v2, port: 8080}}
"""
    config = translate(snapshot(BASE, route + _GRPC_BACKENDS))
    (parent,) = status(config, "GRPCRoute", INFRA, "grpc-named-rules")["parents"]
    assert conditions(parent["conditions"])["Accepted"] == ("True", "Accepted")
    assert conditions(parent["conditions"])["ResolvedRefs"] == ("True", "ResolvedRefs")
    service = "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"
    served = {route.path: route.backend.service for route in config.routes}
    assert served == {f"{service}/Echo": "grpc-infra-backend-v1", f"{service}/EchoTwo": "grpc-infra-backend-v2"}
