"""The Core TLSRoute conformance cases (kubernetes-sigs/gateway-api v1.6.1, ``conformance/tests/
tlsroute-*.go`` with the features ``Gateway`` and ``TLSRoute`` only, and ``ReferenceGrant``; and
TLSRouteListenerTerminateNotSupported, which the suite runs when ``TLSRouteModeTerminate`` is not
claimed), each over
its own YAML as the suite applies it (the class name filled in), asserting what the Go test
asserts: the status conditions, the listeners' ``attachedRoutes`` and ``supportedKinds``, and
where a TLS connection goes (the SNI look-up of the built route table: the Service that would be
spliced to, or None: the connection is closed). The traffic itself, a real TLS backend seen
through ``twistd ingressd``, is tests/test_e2e_gateway_tlsroute.py's. Each Gateway of a case has
an address of its own in the suite; here each is judged in a snapshot of its own where cases
put several on one port (in file mode every TLS listener shares ``--https``)."""

from __future__ import annotations

import json

import pytest
import yaml

from ingressd.config.entries import build_table
from ingressd.config.gateway_api import translate
from ingressd.config.model import Config, ObjectRef
from ingressd.features import BuildContext

from gateway_manifests import snapshot

INFRA = "gateway-conformance-infra"
APP = "gateway-conformance-app-backend"


def _service(name: str, namespace: str, address: str, port: int = 443) -> str:
    return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{ports: [{{port: {port}, name: https}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}, namespace: {namespace}, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{port: 8443, name: https}}]
endpoints: [{{addresses: [{address}]}}]
"""


# conformance/base/manifests.yaml, what these cases use: the class, the namespaces, the backends.
BASE = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: ingressd}}
spec: {{controllerName: ingressd.io/gateway-controller}}
---
kind: Namespace
apiVersion: v1
metadata: {{name: {INFRA}, labels: {{gateway-conformance: infra}}}}
---
kind: Namespace
apiVersion: v1
metadata: {{name: {APP}, labels: {{gateway-conformance: backend}}}}
""" + _service("tls-backend", INFRA, "127.0.0.1") + _service("tls-backend-2", INFRA, "127.0.0.2") + \
    _service("tcp-backend", INFRA, "127.0.0.3", 8443) + _service("tls-backend", APP, "127.0.0.4")

SIMPLE_SAME_NAMESPACE = """
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: gateway-conformance-infra-test
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: gateway-tlsroute
    namespace: gateway-conformance-infra
  hostnames:
  - abc.example.com
  rules:
  - backendRefs:
    - name: tcp-backend
      port: 8443
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-tlsroute
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
  - name: https
    port: 443
    protocol: TLS
    hostname: "*.example.com"
    allowedRoutes:
      namespaces:
        from: Same
      kinds:
      - kind: TLSRoute
    tls:
      mode: Passthrough
"""

HOSTNAME_INTERSECTION = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw-tlsroute-exact-hostname-x-1
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
  - name: listener-exact-hostname
    protocol: TLS
    port: 443
    hostname: abc.example.com
    allowedRoutes:
      namespaces:
        from: Same
      kinds:
      - kind: TLSRoute
    tls:
      mode: Passthrough
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw-tlsroute-more-specific-wc-hostname-x-2
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
  - name: listener-more-specific-wc-hostname
    protocol: TLS
    port: 443
    hostname: "*.example.com"
    allowedRoutes:
      namespaces:
        from: Same
      kinds:
      - kind: TLSRoute
    tls:
      mode: Passthrough
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw-tlsroute-less-specific-wc-hostname-x-3
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
  - name: listener-less-specific-wc-hostname
    protocol: TLS
    port: 443
    hostname: "*.com"
    allowedRoutes:
      namespaces:
        from: Same
      kinds:
      - kind: TLSRoute
    tls:
      mode: Passthrough
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw-tlsroute-empty-hostname-x-4
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
  - name: listener-empty-hostname
    protocol: TLS
    port: 443
    allowedRoutes:
      namespaces:
        from: Same
      kinds:
      - kind: TLSRoute
    tls:
      mode: Passthrough
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: tlsroute-more-specific-wc-hostname-x-1
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: gw-tlsroute-exact-hostname-x-1
    namespace: gateway-conformance-infra
  hostnames:
  - "*.example.com"
  rules:
  - backendRefs:
    - name: tls-backend
      port: 443
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: tlsroute-exact-hostname-x-2
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: gw-tlsroute-more-specific-wc-hostname-x-2
    namespace: gateway-conformance-infra
  hostnames:
  - abc.example.com
  rules:
  - backendRefs:
    - name: tls-backend
      port: 443
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: tlsroute-less-specific-wc-hostname-x-2
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: gw-tlsroute-more-specific-wc-hostname-x-2
    namespace: gateway-conformance-infra
  hostnames:
  - "*.com"
  rules:
  - backendRefs:
    - name: tls-backend-2
      port: 443
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: tlsroute-exact-hostname-x-3
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: gw-tlsroute-less-specific-wc-hostname-x-3
    namespace: gateway-conformance-infra
  hostnames:
  - abc.example.com
  rules:
  - backendRefs:
    - name: tls-backend
      port: 443
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: tlsroute-more-specific-wc-hostname-x-3
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: gw-tlsroute-less-specific-wc-hostname-x-3
    namespace: gateway-conformance-infra
  hostnames:
  - "*.example.com"
  rules:
  - backendRefs:
    - name: tls-backend-2
      port: 443
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: tlsroute-exact-hostname-x-4
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: gw-tlsroute-empty-hostname-x-4
    namespace: gateway-conformance-infra
  hostnames:
  - abc.example.com
  rules:
  - backendRefs:
    - name: tls-backend
      port: 443
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: tlsroute-less-specific-wc-hostname-x-4
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: gw-tlsroute-empty-hostname-x-4
    namespace: gateway-conformance-infra
  hostnames:
  - "*.com"
  rules:
  - backendRefs:
    - name: tls-backend-2
      port: 443
"""

INVALID_BACKENDREF_NONEXISTENT = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-tlsroute-invalid-backend-ref-nonexistent
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
  - name: tls
    protocol: TLS
    port: 443
    allowedRoutes:
      namespaces:
        from: Same
    tls:
      mode: Passthrough
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: invalid-backend-ref-nonexistent
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: gateway-tlsroute-invalid-backend-ref-nonexistent
    namespace: gateway-conformance-infra
  hostnames:
  - "example.com"
  rules:
  - backendRefs:
    - name: nonexistent
      namespace: gateway-conformance-infra
      port: 443
"""

INVALID_BACKENDREF_UNKNOWN_KIND = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-tlsroute-invalid-backend-ref-unknown-kind
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
  - name: tls
    protocol: TLS
    port: 443
    allowedRoutes:
      namespaces:
        from: Same
    tls:
      mode: Passthrough
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: invalid-backend-ref-unknown-kind
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: gateway-tlsroute-invalid-backend-ref-unknown-kind
    namespace: gateway-conformance-infra
  hostnames:
  - "example.com"
  rules:
  - backendRefs:
    - group: unknownkind.example.com
      kind: NonExistent
      name: tls-backend
      port: 443
"""

INVALID_NO_MATCHING_LISTENER_HOSTNAME = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-tls-exact-hostname
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
    - name: tls
      port: 443
      protocol: TLS
      hostname: "www.example.com"
      allowedRoutes:
        namespaces:
          from: Same
        kinds:
          - kind: TLSRoute
      tls:
        mode: Passthrough
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-tls-wildcard-hostname
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
    - name: tls
      port: 443
      protocol: TLS
      hostname: "*.example.com"
      allowedRoutes:
        namespaces:
          from: Same
        kinds:
          - kind: TLSRoute
      tls:
        mode: Passthrough
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: tlsroute-hostname-mismatch-1
  namespace: gateway-conformance-infra
spec:
  parentRefs:
    - name: gateway-tls-exact-hostname
  hostnames:
    - "www.nomatch.com"
    - "*.nomatch.com"
  rules:
    - backendRefs:
        - name: tls-backend
          port: 443
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: tlsroute-hostname-mismatch-2
  namespace: gateway-conformance-infra
spec:
  parentRefs:
    - name: gateway-tls-wildcard-hostname
  hostnames:
    - "www.different.com"
    - "*.different.com"
  rules:
    - backendRefs:
        - name: tls-backend
          port: 443
"""

INVALID_NO_MATCHING_LISTENER = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-tlsroute-tls-passthrough-only
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
    - name: tls-passthrough
      protocol: TLS
      port: 443
      allowedRoutes:
        namespaces:
          from: Same
      tls:
        mode: Passthrough
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-tlsroute-http-only
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
    - name: http
      port: 80
      protocol: HTTP
      allowedRoutes:
        namespaces:
          from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-tlsroute-https-only
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
    - name: https
      port: 443
      protocol: HTTPS
      allowedRoutes:
        namespaces:
          from: Same
      tls:
        mode: Terminate
        certificateRefs:
          - name: tls-validity-checks-certificate
            namespace: gateway-conformance-infra
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: tlsroute-not-allowed-protocol-http
  namespace: gateway-conformance-infra
spec:
  parentRefs:
    - name: gateway-tlsroute-http-only
  hostnames:
    - tls.example.com
  rules:
    - backendRefs:
        - name: tls-backend
          port: 443
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: tlsroute-not-allowed-protocol-https
  namespace: gateway-conformance-infra
spec:
  parentRefs:
    - name: gateway-tlsroute-https-only
  hostnames:
    - tls.example.com
  rules:
    - backendRefs:
        - name: tls-backend
          port: 443
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: tlsroute-no-matching-section-name
  namespace: gateway-conformance-infra
spec:
  parentRefs:
    - name: gateway-tlsroute-tls-passthrough-only
      sectionName: nonexistent-listener
  hostnames:
    - tls.example.com
  rules:
    - backendRefs:
        - name: tls-backend
          port: 443
"""

INVALID_REFERENCE_GRANT = """
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-namespace
  namespace: gateway-conformance-infra
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: TLSRoute
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Service
      name: tls-backend
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-from-group
  namespace: gateway-conformance-app-backend
spec:
  from:
    - group: not-the-group-youre-looking-for
      kind: TLSRoute
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Service
      name: tls-backend
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-from-kind
  namespace: gateway-conformance-app-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: Gateway
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Service
      name: tls-backend
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-from-namespace
  namespace: gateway-conformance-app-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: TLSRoute
      namespace: not-the-namespace-youre-looking-for
  to:
    - group: ""
      kind: Service
      name: tls-backend
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-to-group
  namespace: gateway-conformance-app-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: TLSRoute
      namespace: gateway-conformance-infra
  to:
    - group: not-the-group-youre-looking-for
      kind: Service
      name: tls-backend
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-to-kind
  namespace: gateway-conformance-app-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: TLSRoute
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Secret
      name: tls-backend
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-to-name
  namespace: gateway-conformance-app-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: TLSRoute
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Service
      name: not-the-service-youre-looking-for
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: gateway-conformance-infra-test
  namespace: gateway-conformance-infra
spec:
  parentRefs:
    - name: gateway-tlsroute-referencegrant
  hostnames:
    - abc.example.com
  rules:
    - backendRefs:
        - name: tls-backend
          namespace: gateway-conformance-app-backend
          port: 443
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-tlsroute-referencegrant
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
    - name: https
      port: 443
      protocol: TLS
      hostname: "*.example.com"
      allowedRoutes:
        namespaces:
          from: Same
        kinds:
          - kind: TLSRoute
      tls:
        mode: Passthrough
"""

LISTENER_PASSTHROUGH_SUPPORTED_KINDS = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-tlsroute-passthrough-supported-kind
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
    - name: tls-passthrough
      port: 443
      protocol: TLS
      allowedRoutes:
        namespaces:
          from: Same
        kinds:
          - kind: TCPRoute
          - kind: TLSRoute
      tls:
        mode: Passthrough
"""

LISTENER_TERMINATE_NOT_SUPPORTED = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-tlsroute-terminate-unsupported
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
    - name: tls-terminate
      port: 8443
      protocol: TLS
      hostname: terminate.example.com
      allowedRoutes:
        namespaces:
          from: Same
        kinds:
          - kind: TLSRoute
      tls:
        mode: Terminate
        certificateRefs:
          - name: tls-terminate-checks-certificate
"""


_BY_ADDRESS = {"127.0.0.1": f"{INFRA}/tls-backend", "127.0.0.2": f"{INFRA}/tls-backend-2",
               "127.0.0.3": f"{INFRA}/tcp-backend", "127.0.0.4": f"{APP}/tls-backend"}


def _snapshot(*texts: str) -> dict:
    return snapshot(*texts, created="2026-01-01T00:00:00Z")


def _only(text: str, *names: str) -> str:
    """The documents of ``text`` whose metadata.name is one of ``names``."""
    docs = [doc for doc in yaml.safe_load_all(text) if doc and doc["metadata"]["name"] in names]
    return yaml.safe_dump_all(docs)


def _judge(*texts: str) -> Config:
    return translate(_snapshot(BASE, *texts))


def _status(config: Config, kind: str, name: str, namespace: str = INFRA) -> dict:
    return json.loads(dict(config.status)[ObjectRef(kind, namespace, name)].body)


def _route_conditions(config: Config, route: str, gateway: str) -> dict:
    """The route's conditions for its parentRef naming ``gateway`` (TLSRouteMustHaveCondition)."""
    (parent,) = [p for p in _status(config, "TLSRoute", route)["parents"] if p["parentRef"]["name"] == gateway]
    assert parent["controllerName"] == "ingressd.io/gateway-controller"
    return {c["type"]: (c["status"], c["reason"]) for c in parent["conditions"]}


def _no_accepted_parents(config: Config, route: str) -> bool:
    """TLSRouteMustHaveNoAcceptedParents: no parent says Accepted=True."""
    parents = _status(config, "TLSRoute", route).get("parents") or []
    return not any(c["type"] == "Accepted" and c["status"] == "True" for p in parents for c in p["conditions"])


def _attached(config: Config, gateway: str) -> int:
    """GatewayMustHaveZeroRoutes reads the sum of the listeners' attachedRoutes."""
    return sum(item["attachedRoutes"] for item in _status(config, "Gateway", gateway)["listeners"])


def _accepted(config: Config, gateway: str, *routes: str) -> None:
    """GatewayAndTLSRoutesMustBeAccepted: the Gateway Accepted and Programmed, each route Accepted
    by it."""
    gateway_conditions = {c["type"]: c["status"] for c in _status(config, "Gateway", gateway)["conditions"]}
    assert gateway_conditions["Accepted"] == "True" and gateway_conditions["Programmed"] == "True"
    for route in routes:
        assert _route_conditions(config, route, gateway)["Accepted"] == ("True", "Accepted")


def _resolved(config: Config, gateway: str, *routes: str) -> None:
    for route in routes:
        assert _route_conditions(config, route, gateway)["ResolvedRefs"] == ("True", "ResolvedRefs")


def _spliced_to(config: Config, sni: str) -> str | None:
    """Where a TLS connection naming ``sni`` goes: ``namespace/service``, None when closed, or
    "not passed through" when no TLSRoute names it (ingressd then terminates or rejects it)."""
    table, _ = build_table(config, None, BuildContext(settings={}, reactor=None))
    found = table.passthrough.lookup(sni) if table.passthrough is not None else None
    if found is None:
        return "not passed through"
    balancer = found.pick()
    if balancer is None:
        return None
    endpoint = balancer.pick()  # each backend of BASE has an address of its own
    return None if endpoint is None else _BY_ADDRESS[endpoint.address]


# -- the cases --------------------------------------------------------------------------------


def test_tlsroute_simple_same_namespace():
    config = _judge(SIMPLE_SAME_NAMESPACE)
    _accepted(config, "gateway-tlsroute", "gateway-conformance-infra-test")
    assert [item.host for item in config.passthrough] == ["abc.example.com"]
    assert _spliced_to(config, "abc.example.com") == f"{INFRA}/tcp-backend"
    assert config.routes == ()  # nothing of it is served as HTTP


_INTERSECTION = {
    # gateway: (its routes, {SNI name: where it goes})
    "gw-tlsroute-exact-hostname-x-1": (("tlsroute-more-specific-wc-hostname-x-1",), {
        "abc.example.com": f"{INFRA}/tls-backend", "non.matching.com": "not passed through"}),
    "gw-tlsroute-more-specific-wc-hostname-x-2": (
        ("tlsroute-exact-hostname-x-2", "tlsroute-less-specific-wc-hostname-x-2"), {
            "abc.example.com": f"{INFRA}/tls-backend", "other.example.com": f"{INFRA}/tls-backend-2",
            "non.matching.com": "not passed through"}),
    "gw-tlsroute-less-specific-wc-hostname-x-3": (
        ("tlsroute-exact-hostname-x-3", "tlsroute-more-specific-wc-hostname-x-3"), {
            "abc.example.com": f"{INFRA}/tls-backend", "other.example.com": f"{INFRA}/tls-backend-2",
            "non.matching.com": "not passed through"}),
    "gw-tlsroute-empty-hostname-x-4": (
        ("tlsroute-exact-hostname-x-4", "tlsroute-less-specific-wc-hostname-x-4"), {
            "abc.example.com": f"{INFRA}/tls-backend", "other.example.com": f"{INFRA}/tls-backend-2",
            "non.matching.org": "not passed through"}),
}


@pytest.mark.parametrize("gateway", sorted(_INTERSECTION))
def test_tlsroute_hostname_intersection(gateway):
    routes, expected = _INTERSECTION[gateway]
    config = _judge(_only(HOSTNAME_INTERSECTION, gateway, *routes))
    _accepted(config, gateway, *routes)
    _resolved(config, gateway, *routes)
    assert {name: _spliced_to(config, name) for name in expected} == expected


def test_tlsroute_hostname_intersection_all_on_one_port():
    # File mode: the four Gateways' TLS listeners share --https. Every route is still accepted;
    # the names they pass through are the union, the oldest route keeping a name two give.
    config = _judge(HOSTNAME_INTERSECTION)
    for gateway, (routes, _) in _INTERSECTION.items():
        _accepted(config, gateway, *routes)
    assert _spliced_to(config, "abc.example.com") == f"{INFRA}/tls-backend"
    assert _spliced_to(config, "other.example.com") == f"{INFRA}/tls-backend-2"
    # The one difference a shared address makes (docs/gateway-api.md): x-1's "non.matching.com
    # is rejected" holds on x-1's own address only; on the shared port x-4's "*.com" takes it.
    assert _spliced_to(config, "non.matching.com") == f"{INFRA}/tls-backend-2"
    assert _spliced_to(config, "non.matching.org") == "not passed through"


def test_tlsroute_invalid_backendref_nonexistent():
    config = _judge(INVALID_BACKENDREF_NONEXISTENT)
    gateway, route = "gateway-tlsroute-invalid-backend-ref-nonexistent", "invalid-backend-ref-nonexistent"
    _accepted(config, gateway, route)
    assert _route_conditions(config, route, gateway)["ResolvedRefs"] == ("False", "BackendNotFound")
    assert _spliced_to(config, "example.com") is None  # the connection is rejected


def test_tlsroute_invalid_backendref_unknown_kind():
    config = _judge(INVALID_BACKENDREF_UNKNOWN_KIND)
    gateway, route = "gateway-tlsroute-invalid-backend-ref-unknown-kind", "invalid-backend-ref-unknown-kind"
    _accepted(config, gateway, route)
    assert _route_conditions(config, route, gateway)["ResolvedRefs"] == ("False", "InvalidKind")
    assert _spliced_to(config, "example.com") is None


def test_tlsroute_invalid_no_matching_listener_hostname():
    config = _judge(INVALID_NO_MATCHING_LISTENER_HOSTNAME)
    for route, gateway in (("tlsroute-hostname-mismatch-1", "gateway-tls-exact-hostname"),
                           ("tlsroute-hostname-mismatch-2", "gateway-tls-wildcard-hostname")):
        assert _route_conditions(config, route, gateway)["Accepted"] == ("False", "NoMatchingListenerHostname")
        assert _no_accepted_parents(config, route)
        assert _attached(config, gateway) == 0
    assert config.passthrough == ()


def test_tlsroute_invalid_no_matching_listener():
    secret = f"""
apiVersion: v1
kind: Secret
metadata: {{name: tls-validity-checks-certificate, namespace: {INFRA}}}
type: kubernetes.io/tls
data: {{tls.crt: "", tls.key: ""}}
"""
    config = _judge(INVALID_NO_MATCHING_LISTENER, secret)
    cases = (("tlsroute-not-allowed-protocol-http", "gateway-tlsroute-http-only", "NotAllowedByListeners"),
             ("tlsroute-not-allowed-protocol-https", "gateway-tlsroute-https-only", "NotAllowedByListeners"),
             ("tlsroute-no-matching-section-name", "gateway-tlsroute-tls-passthrough-only", "NoMatchingParent"))
    for route, gateway, reason in cases:
        assert _route_conditions(config, route, gateway)["Accepted"] == ("False", reason)
        assert _no_accepted_parents(config, route)
    assert _attached(config, "gateway-tlsroute-http-only") == 0
    assert _attached(config, "gateway-tlsroute-https-only") == 0
    assert config.passthrough == ()


def test_tlsroute_invalid_reference_grant():
    config = _judge(INVALID_REFERENCE_GRANT)
    gateway, route = "gateway-tlsroute-referencegrant", "gateway-conformance-infra-test"
    _accepted(config, gateway, route)
    assert _route_conditions(config, route, gateway)["ResolvedRefs"] == ("False", "RefNotPermitted")
    assert _spliced_to(config, "abc.example.com") is None
    # and with a grant that fits, the other namespace's Service is used
    grant = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata: {{name: fits, namespace: {APP}}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: TLSRoute, namespace: {INFRA}}}]
  to: [{{group: "", kind: Service, name: tls-backend}}]
"""
    granted = _judge(INVALID_REFERENCE_GRANT, grant)
    _resolved(granted, gateway, route)
    assert _spliced_to(granted, "abc.example.com") == f"{APP}/tls-backend"


def test_tlsroute_listener_passthrough_supported_kinds():
    config = _judge(LISTENER_PASSTHROUGH_SUPPORTED_KINDS)
    (listener,) = _status(config, "Gateway", "gateway-tlsroute-passthrough-supported-kind")["listeners"]
    assert listener["name"] == "tls-passthrough"
    assert listener["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "TLSRoute"}]
    conditions = {c["type"]: (c["status"], c["reason"]) for c in listener["conditions"]}
    assert conditions["ResolvedRefs"] == ("False", "InvalidRouteKinds")
    assert listener["attachedRoutes"] == 0


def test_tlsroute_listener_terminate_not_supported():
    # Run by the suite when TLSRouteModeTerminate is not claimed (ingressd does not claim it).
    config = _judge(LISTENER_TERMINATE_NOT_SUPPORTED)
    (listener,) = _status(config, "Gateway", "gateway-tlsroute-terminate-unsupported")["listeners"]
    assert listener["name"] == "tls-terminate"
    conditions = {c["type"]: (c["status"], c["reason"]) for c in listener["conditions"]}
    assert conditions["Accepted"] == ("False", "UnsupportedValue")
    assert listener["attachedRoutes"] == 0
