"""The ListenerSet conformance cases (kubernetes-sigs/gateway-api v1.6.1, ``conformance/tests/
listenerset-*.go``) not already in tests/test_gateway_listenerset.py (which ports ListenerSetHTTPRouting,
ListenerSetHostnameConflict and ListenerSetDefaultNotAllowed), each over its own YAML as the suite
applies it (the class name filled in), asserting what the Go test asserts: the Gateway's,
the ListenerSets' and their listeners' conditions, ``attachedListenerSets`` and
``attachedRoutes``, the routes' conditions per parentRef, and where each request of the test goes
(the route table built from the translation: the backend Service, or None for a 404). The traffic
over real sockets is tests/test_gateway_listenerset.py's end-to-end case."""

from __future__ import annotations

import json

import pytest
import yaml

from ingressd.config.gateway_api import translate
from ingressd.config.model import Config, ObjectRef
from ingressd.config.routing import RouteTable

from gateway_manifests import snapshot

INFRA = "gateway-conformance-infra"


def _service(name: str, namespace: str = INFRA, port: int = 8080) -> str:
    return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{ports: [{{port: {port}}}]}}
"""


# conformance/base/manifests.yaml, what these cases use: the class, the namespaces, the backends
# and the web-backend namespace's certificate.
BASE = f"""
apiVersion: gateway.networking.k8s.io/v1
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
metadata: {{name: gateway-conformance-web-backend, labels: {{gateway-conformance: backend}}}}
""" + _service("infra-backend-v1") + _service("infra-backend-v2") + _service("infra-backend-v3")

ALLOWED_NAMESPACE_NONE = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-does-not-allow-listenerset
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
  - name: gateway-listener
    port: 80
    protocol: HTTP
    hostname: "gateway-listener.com"
    allowedRoutes:
      namespaces:
        from: All
  allowedListeners:
    namespaces:
      from: None
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: listenerset-not-allowed
  namespace: gateway-conformance-infra
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-does-not-allow-listenerset
    namespace: gateway-conformance-infra
  listeners:
  - name: listener-set-listener
    port: 80
    protocol: HTTP
    hostname: "listener-set-listener.com"
    allowedRoutes:
      namespaces:
        from: All
"""

ALLOWED_NAMESPACE_SAME = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-allows-listenerset-in-same-namespace
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
  - name: gateway-listener
    port: 80
    protocol: HTTP
    hostname: "gateway-listener.com"
    allowedRoutes:
      namespaces:
        from: All
  allowedListeners:
    namespaces:
      from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: listenerset-in-same-namespace
  namespace: gateway-conformance-infra
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-allows-listenerset-in-same-namespace
    namespace: gateway-conformance-infra
  listeners:
  - name: listenerset-in-same-namespace-listener
    port: 80
    protocol: HTTP
    hostname: "listenerset-in-same-namespace-listener.com"
    allowedRoutes:
      namespaces:
        from: All
---
apiVersion: v1
kind: Namespace
metadata:
  name: gateway-api-listenerset-not-allowed-ns
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: listenerset-in-different-namespace
  namespace: gateway-api-listenerset-not-allowed-ns
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-allows-listenerset-in-same-namespace
    namespace: gateway-conformance-infra
  listeners:
  - name: listenerset-in-different-namespace-listener
    port: 80
    protocol: HTTP
    hostname: "listenerset-in-different-namespace-listener"
    allowedRoutes:
      namespaces:
        from: All
"""

ALLOWED_NAMESPACE_SELECTOR = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-allows-listenerset-in-selected-namespace
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
  - name: gateway-listener
    port: 80
    protocol: HTTP
    hostname: "gateway-listener.com"
    allowedRoutes:
      namespaces:
        from: All
  allowedListeners:
    namespaces:
      from: Selector
      selector:
        matchLabels:
          allowed: ns
---
apiVersion: v1
kind: Namespace
metadata:
  name: gateway-api-listenerset-selector-allowed-ns
  labels:
    allowed: ns
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: listenerset-in-selected-namespace
  namespace: gateway-api-listenerset-selector-allowed-ns
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-allows-listenerset-in-selected-namespace
    namespace: gateway-conformance-infra
  listeners:
  - name: listenerset-in-selected-namespace-listener
    port: 80
    protocol: HTTP
    hostname: "listenerset-in-selected-namespace-listener.com"
    allowedRoutes:
      namespaces:
        from: All
---
apiVersion: v1
kind: Namespace
metadata:
  name: gateway-api-listenerset-selector-not-allowed-ns
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: listenerset-not-in-selected-namespace
  namespace: gateway-api-listenerset-selector-not-allowed-ns
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-allows-listenerset-in-selected-namespace
    namespace: gateway-conformance-infra
  listeners:
  - name: listenerset-not-in-selected-namespace-listener
    port: 80
    protocol: HTTP
    hostname: "listenerset-not-in-selected-namespace-listener.com"
    allowedRoutes:
      namespaces:
        from: All
"""

ALLOWED_ROUTES_NAMESPACES = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-with-listener-sets-test-allowed-routes
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
  - name: gateway-listener
    port: 80
    protocol: HTTP
    hostname: "gateway-listener.com"
    allowedRoutes:
      namespaces:
        from: All
  allowedListeners:
    namespaces:
      from: All
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: listenerset-test-allowed-routes-namespaces
  namespace: gateway-conformance-infra
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-with-listener-sets-test-allowed-routes
    namespace: gateway-conformance-infra
  listeners:
  - name: listener-set-listener-allowed-routes-all
    port: 80
    protocol: HTTP
    hostname: "listener-set-listener-allowed-routes-all.com"
    allowedRoutes:
      namespaces:
        from: All
  - name: listener-set-listener-allowed-routes-same
    port: 80
    protocol: HTTP
    hostname: "listener-set-listener-allowed-routes-same.com"
    allowedRoutes:
      namespaces:
        from: Same
  - name: listener-set-listener-allowed-routes-selector
    port: 80
    protocol: HTTP
    hostname: "listener-set-listener-allowed-routes-selector.com"
    allowedRoutes:
      namespaces:
        from: Selector
        selector:
          matchLabels:
            allowed: ns
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route-in-same-namespace
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: ListenerSet
    group: gateway.networking.k8s.io
    name: listenerset-test-allowed-routes-namespaces
    namespace: gateway-conformance-infra
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /route-in-same-namespace
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: v1
kind: Namespace
metadata:
  name: gateway-api-routes-allowed-ns
  labels:
    allowed: ns
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route-in-selected-namespace
  namespace: gateway-api-routes-allowed-ns
spec:
  parentRefs:
  - kind: ListenerSet
    group: gateway.networking.k8s.io
    name: listenerset-test-allowed-routes-namespaces
    namespace: gateway-conformance-infra
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /route-in-selected-namespace
    backendRefs:
    - name: infra-backend-v2
      namespace: gateway-conformance-infra
      port: 8080
---
apiVersion: v1
kind: Namespace
metadata:
  name: gateway-api-routes-not-allowed-ns
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route-not-in-selected-namespace
  namespace: gateway-api-routes-not-allowed-ns
spec:
  parentRefs:
  - kind: ListenerSet
    group: gateway.networking.k8s.io
    name: listenerset-test-allowed-routes-namespaces
    namespace: gateway-conformance-infra
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /route-not-in-selected-namespace
    backendRefs:
    - name: infra-backend-v3
      namespace: gateway-conformance-infra
      port: 8080
---
apiVersion: v1
kind: Namespace
metadata:
  name: gateway-api-ls-cross-ns
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: listenerset-test-allowed-routes-cross-ns
  namespace: gateway-api-ls-cross-ns
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-with-listener-sets-test-allowed-routes
    namespace: gateway-conformance-infra
  listeners:
  - name: listener-set-listener-allowed-routes-cross-ns-same
    port: 80
    protocol: HTTP
    hostname: "listener-set-listener-allowed-routes-cross-ns-same.com"
    allowedRoutes:
      namespaces:
        from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route-in-listenerset-namespace
  namespace: gateway-api-ls-cross-ns
spec:
  parentRefs:
  - kind: ListenerSet
    group: gateway.networking.k8s.io
    name: listenerset-test-allowed-routes-cross-ns
    namespace: gateway-api-ls-cross-ns
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /route-in-listenerset-namespace
    backendRefs:
    - name: infra-backend-v1
      namespace: gateway-conformance-infra
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route-in-gateway-namespace
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: ListenerSet
    group: gateway.networking.k8s.io
    name: listenerset-test-allowed-routes-cross-ns
    namespace: gateway-api-ls-cross-ns
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /route-in-gateway-namespace
    backendRefs:
    - name: infra-backend-v2
      port: 8080
---
kind: ReferenceGrant
apiVersion: gateway.networking.k8s.io/v1
metadata:
  name: listenerset-test-allowed-routes-namespaces-reference-grant
  namespace: gateway-conformance-infra
spec:
  from:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    namespace: gateway-api-routes-allowed-ns
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    namespace: gateway-api-routes-not-allowed-ns
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    namespace: gateway-api-ls-cross-ns
  to:
  - group: ""
    kind: "Service"
"""

ALLOWED_ROUTES_SUPPORTED_KINDS = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-with-listener-sets-test-supported-route-kinds
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
  - name: gateway-listener
    port: 80
    protocol: HTTP
    hostname: "gateway-listener.com"
    allowedRoutes:
      namespaces:
        from: All
  allowedListeners:
    namespaces:
      from: All
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: listenerset-test-allowed-routes-supported-kinds
  namespace: gateway-conformance-infra
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-with-listener-sets-test-supported-route-kinds
    namespace: gateway-conformance-infra
  listeners:
  - name: listener-set-listener-allowed-routes-tls-only
    port: 443
    protocol: TLS
    hostname: "listener-set-listener-allowed-routes-tls-only.com"
    allowedRoutes:
      namespaces:
        from: All
      kinds:
      - kind: HTTPRoute
    tls:
      mode: Passthrough
"""

DUAL_PARENTREF_INDEPENDENCE = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-dual-parentref
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
  - name: gw-dual-parentref-listener
    port: 80
    protocol: HTTP
    hostname: "gw-dual.com"
    allowedRoutes:
      namespaces:
        from: Same
  allowedListeners:
    namespaces:
      from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: ls-dual-parentref
  namespace: gateway-conformance-infra
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-dual-parentref
    namespace: gateway-conformance-infra
  listeners:
  - name: ls-dual-parentref-listener
    port: 80
    protocol: HTTP
    hostname: "ls-dual.com"
    allowedRoutes:
      namespaces:
        from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route-dual-parentref-both
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: gateway-dual-parentref
    namespace: gateway-conformance-infra
  - kind: ListenerSet
    group: gateway.networking.k8s.io
    name: ls-dual-parentref
    namespace: gateway-conformance-infra
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /dualboth
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route-dual-parentref-one
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: gateway-dual-parentref
    namespace: gateway-conformance-infra
    sectionName: ls-dual-parentref-listener
  - kind: ListenerSet
    group: gateway.networking.k8s.io
    name: ls-dual-parentref
    namespace: gateway-conformance-infra
    sectionName: ls-dual-parentref-listener
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /dualone
    backendRefs:
    - name: infra-backend-v2
      port: 8080
"""

GATEWAY_PARENT_SECTION_NAME_NOT_FOUND = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-section-name
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
  - name: gw-listener
    port: 80
    protocol: HTTP
    hostname: "gw-section.com"
    allowedRoutes:
      namespaces:
        from: Same
  allowedListeners:
    namespaces:
      from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: listenerset-section-name
  namespace: gateway-conformance-infra
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-section-name
    namespace: gateway-conformance-infra
  listeners:
  - name: ls-only-listener
    port: 80
    protocol: HTTP
    hostname: "ls-section-name.com"
    allowedRoutes:
      namespaces:
        from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route-via-listenerset
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: ListenerSet
    group: gateway.networking.k8s.io
    name: listenerset-section-name
    namespace: gateway-conformance-infra
    sectionName: ls-only-listener
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /goodsection
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route-via-gateway
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: gateway-section-name
    namespace: gateway-conformance-infra
    sectionName: ls-only-listener
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /badsection
    backendRefs:
    - name: infra-backend-v2
      port: 8080
"""

PROTOCOL_CONFLICT = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-with-listenerset-protocol-conflict
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  allowedListeners:
    namespaces:
      from: Same
  listeners:
  - name: gateway-listener
    port: 80
    protocol: HTTP
    hostname: "gateway-listener.com"
    allowedRoutes:
      namespaces:
        from: All
  - name: protocol-conflict-with-gateway-listener
    port: 80
    protocol: HTTP
    hostname: "protocol-conflict-with-gateway-listener.com"
    allowedRoutes:
      namespaces:
        from: All
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: listenerset-with-protocol-conflict-with-gateway-1
  namespace: gateway-conformance-infra
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-with-listenerset-protocol-conflict
    namespace: gateway-conformance-infra
  listeners:
  - name: listener-set-1-listener
    port: 80
    protocol: HTTP
    hostname: "listener-set-1-listener.com"
    allowedRoutes:
      namespaces:
        from: All
  - name: protocol-conflict-with-gateway-listener
    port: 80
    protocol: TCP
    allowedRoutes:
      namespaces:
        from: All
  - name: protocol-conflict-with-listener-set-listener
    port: 80
    protocol: HTTP
    hostname: "protocol-conflict-with-listener-set-listener.com"
    allowedRoutes:
      namespaces:
        from: All
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: listenerset-with-protocol-conflict-with-gateway-2
  namespace: gateway-conformance-infra
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-with-listenerset-protocol-conflict
    namespace: gateway-conformance-infra
  listeners:
  - name: protocol-conflict-with-gateway-listener
    port: 80
    protocol: TCP
    allowedRoutes:
      namespaces:
        from: All
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: listenerset-with-protocol-conflict-with-listener-set-1
  namespace: gateway-conformance-infra
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-with-listenerset-protocol-conflict
    namespace: gateway-conformance-infra
  listeners:
  - name: listener-set-2-listener
    port: 80
    protocol: HTTP
    hostname: "listener-set-2-listener.com"
    allowedRoutes:
      namespaces:
        from: All
  - name: protocol-conflict-with-listener-set-listener
    port: 80
    protocol: TCP
    allowedRoutes:
      namespaces:
        from: All
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: listenerset-with-protocol-conflict-with-listener-set-2
  namespace: gateway-conformance-infra
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-with-listenerset-protocol-conflict
    namespace: gateway-conformance-infra
  listeners:
  - name: protocol-conflict-with-listener-set-listener
    port: 80
    protocol: TCP
    allowedRoutes:
      namespaces:
        from: All
"""

REFERENCE_GRANT = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-with-listener-sets-test-reference-grant
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
  - name: gateway-listener
    port: 443
    protocol: HTTPS
    hostname: "gateway-listener.com"
    allowedRoutes:
      namespaces:
        from: All
    tls:
      certificateRefs:
      - group: ""
        kind: Secret
        name: certificate
        namespace: gateway-conformance-web-backend
  allowedListeners:
    namespaces:
      from: All
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-for-gateway
  namespace: gateway-conformance-web-backend
spec:
  from:
  - group: gateway.networking.k8s.io
    kind: Gateway
    namespace: gateway-conformance-infra
  to:
  - group: ""
    kind: Secret
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: listenerset-with-reference-grant
  namespace: gateway-conformance-infra
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-with-listener-sets-test-reference-grant
    namespace: gateway-conformance-infra
  listeners:
  - name: listenerset-with-reference-grant-listener
    port: 443
    protocol: HTTPS
    hostname: "listenerset-with-reference-grant-listener.com"
    allowedRoutes:
      namespaces:
        from: All
    tls:
      certificateRefs:
      - group: ""
        kind: Secret
        name: certificate
        namespace: gateway-conformance-web-backend
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-for-listener-set
  namespace: gateway-conformance-web-backend
spec:
  from:
  - group: gateway.networking.k8s.io
    kind: ListenerSet
    namespace: gateway-conformance-infra
  to:
  - group: ""
    kind: Secret
---
apiVersion: v1
kind: Namespace
metadata:
  name: gateway-api-listener-sets-test-reference-grant-ns
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: listenerset-without-reference-grant
  namespace: gateway-api-listener-sets-test-reference-grant-ns
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-with-listener-sets-test-reference-grant
    namespace: gateway-conformance-infra
  listeners:
  - name: listenerset-without-reference-grant-listener
    port: 443
    protocol: HTTPS
    hostname: "listenerset-without-reference-grant-listener-1.com"
    allowedRoutes:
      namespaces:
        from: All
    tls:
      certificateRefs:
      - group: ""
        kind: Secret
        name: certificate
        namespace: gateway-conformance-web-backend
"""

ROUTE_STATUS_SCOPED_TO_PARENTREF = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-parentref
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: ingressd
  listeners:
  - name: gw-parentref-listener
    port: 80
    protocol: HTTP
    hostname: "gw-parentref.com"
    allowedRoutes:
      namespaces:
        from: Same
  allowedListeners:
    namespaces:
      from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: listenerset-parentref
  namespace: gateway-conformance-infra
spec:
  parentRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: gateway-parentref
    namespace: gateway-conformance-infra
  listeners:
  - name: listenerset-parentref-listener
    port: 80
    protocol: HTTP
    hostname: "listenerset-parentref.com"
    allowedRoutes:
      namespaces:
        from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route-parentref-gwonly
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: gateway-parentref
    namespace: gateway-conformance-infra
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /gwonly
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route-parentref-lsonly
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: ListenerSet
    group: gateway.networking.k8s.io
    name: listenerset-parentref
    namespace: gateway-conformance-infra
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /lsonly
    backendRefs:
    - name: infra-backend-v2
      port: 8080
"""


def _certificate() -> str:
    """conformance/base's ``certificate`` Secret, generated at test time."""
    import base64

    import certs

    leaf = certs.make_leaf("gateway-listener.com", "listenerset-with-reference-grant-listener.com",
                           "listenerset-without-reference-grant-listener-1.com", issuer=certs.make_ca())
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                           "metadata": {"name": "certificate", "namespace": "gateway-conformance-web-backend"},
                           "data": {"tls.crt": base64.b64encode(leaf.cert_pem).decode(),
                                    "tls.key": base64.b64encode(leaf.key_pem()).decode()}})


def _judge(*texts: str) -> Config:
    return translate(snapshot(BASE, *texts, created="2026-01-01T00:00:00Z"))


def _status(config: Config, kind: str, name: str, namespace: str = INFRA) -> dict:
    return json.loads(dict(config.status)[ObjectRef(kind, namespace, name)].body)


def _conditions(items) -> dict:
    return {item["type"]: (item["status"], item["reason"]) for item in items}


def _gateway(config: Config, name: str, attached_sets: int) -> None:
    """GatewayMustHaveCondition Accepted=True and GatewayMustHaveAttachedListeners."""
    found = _status(config, "Gateway", name)
    assert _conditions(found["conditions"])["Accepted"][0] == "True"
    assert found.get("attachedListenerSets", 0) == attached_sets


def _set(config: Config, name: str, namespace: str = INFRA) -> dict:
    """A ListenerSet's own conditions (ListenerSetMustHaveCondition)."""
    return _conditions(_status(config, "ListenerSet", name, namespace)["conditions"])


def _set_listeners(config: Config, name: str, namespace: str = INFRA) -> dict:
    """name → (attachedRoutes, conditions, supportedKinds) of a ListenerSet's listeners."""
    return {item["name"]: (item["attachedRoutes"], _conditions(item["conditions"]),
                           [kind["kind"] for kind in item.get("supportedKinds") or ()])
            for item in _status(config, "ListenerSet", name, namespace)["listeners"]}


def _gateway_listeners(config: Config, name: str) -> dict:
    return {item["name"]: _conditions(item["conditions"]) for item in _status(config, "Gateway", name)["listeners"]}


def _accepted_listener(conditions: dict) -> bool:
    """generateAcceptedListenerConditions: ResolvedRefs, Accepted, Programmed True (any reason)."""
    return all(conditions[kind][0] == "True" for kind in ("ResolvedRefs", "Accepted", "Programmed"))


def _route_parent(config: Config, route: str, parent: str, namespace: str = INFRA) -> dict:
    """The conditions of a route's parentRef naming ``parent`` (HTTPRouteMustHaveCondition)."""
    (found,) = [p for p in _status(config, "HTTPRoute", route, namespace)["parents"]
                if p["parentRef"]["name"] == parent]
    assert found["controllerName"] == "ingressd.io/gateway-controller"
    return _conditions(found["conditions"])


class _Entry:
    def __init__(self, route):
        self.route = route
        self.regex = False


class _Plain:
    https = False


def _goes_to(config: Config, host: str, path: str) -> str | None:
    """The backend Service a plain-HTTP request reaches, or None: 404."""
    entry = RouteTable([_Entry(route) for route in config.routes]).match(host, path, _Plain())
    if entry is None:
        return None
    (member,) = entry.route.backends
    return member.backend.service


# -- the cases --------------------------------------------------------------------------------


def test_listenerset_allowed_namespace_none():
    config = _judge(ALLOWED_NAMESPACE_NONE)
    _gateway(config, "gateway-does-not-allow-listenerset", 0)
    assert _set(config, "listenerset-not-allowed") == {"Accepted": ("False", "NotAllowed"),
                                                       "Programmed": ("False", "NotAllowed")}


def test_listenerset_allowed_namespace_same():
    config = _judge(ALLOWED_NAMESPACE_SAME)
    _gateway(config, "gateway-allows-listenerset-in-same-namespace", 1)
    assert _set(config, "listenerset-in-same-namespace") == {"Accepted": ("True", "Accepted"),
                                                             "Programmed": ("True", "Programmed")}
    listeners = _set_listeners(config, "listenerset-in-same-namespace")
    assert _accepted_listener(listeners["listenerset-in-same-namespace-listener"][1])
    assert _set(config, "listenerset-in-different-namespace", "gateway-api-listenerset-not-allowed-ns") == {
        "Accepted": ("False", "NotAllowed"), "Programmed": ("False", "NotAllowed")}


def test_listenerset_allowed_namespace_selector():
    config = _judge(ALLOWED_NAMESPACE_SELECTOR)
    _gateway(config, "gateway-allows-listenerset-in-selected-namespace", 1)
    allowed = "gateway-api-listenerset-selector-allowed-ns"
    assert _set(config, "listenerset-in-selected-namespace", allowed) == {"Accepted": ("True", "Accepted"),
                                                                          "Programmed": ("True", "Programmed")}
    listeners = _set_listeners(config, "listenerset-in-selected-namespace", allowed)
    assert _accepted_listener(listeners["listenerset-in-selected-namespace-listener"][1])
    assert _set(config, "listenerset-not-in-selected-namespace", "gateway-api-listenerset-selector-not-allowed-ns") \
        == {"Accepted": ("False", "NotAllowed"), "Programmed": ("False", "NotAllowed")}


def test_listenerset_allowed_routes_namespaces():
    config = _judge(ALLOWED_ROUTES_NAMESPACES)
    _gateway(config, "gateway-with-listener-sets-test-allowed-routes", 2)
    # Same-namespace ListenerSet
    routes = (("route-in-same-namespace", INFRA), ("route-in-selected-namespace", "gateway-api-routes-allowed-ns"),
              ("route-not-in-selected-namespace", "gateway-api-routes-not-allowed-ns"))
    for route, namespace in routes:
        assert _route_parent(config, route, "listenerset-test-allowed-routes-namespaces", namespace)["Accepted"] \
            == ("True", "Accepted")
    listeners = _set_listeners(config, "listenerset-test-allowed-routes-namespaces")
    assert {name: attached for name, (attached, _, _) in listeners.items()} == {
        "listener-set-listener-allowed-routes-all": 3, "listener-set-listener-allowed-routes-same": 1,
        "listener-set-listener-allowed-routes-selector": 1}
    assert all(_accepted_listener(found) and "HTTPRoute" in kinds for _, found, kinds in listeners.values())
    expected = {
        ("listener-set-listener-allowed-routes-all.com", "/route-in-same-namespace"): "infra-backend-v1",
        ("listener-set-listener-allowed-routes-all.com", "/route-in-selected-namespace"): "infra-backend-v2",
        ("listener-set-listener-allowed-routes-all.com", "/route-not-in-selected-namespace"): "infra-backend-v3",
        ("listener-set-listener-allowed-routes-same.com", "/route-in-same-namespace"): "infra-backend-v1",
        ("listener-set-listener-allowed-routes-same.com", "/route-in-selected-namespace"): None,
        ("listener-set-listener-allowed-routes-same.com", "/route-not-in-selected-namespace"): None,
        ("listener-set-listener-allowed-routes-selector.com", "/route-in-same-namespace"): None,
        ("listener-set-listener-allowed-routes-selector.com", "/route-in-selected-namespace"): "infra-backend-v2",
        ("listener-set-listener-allowed-routes-selector.com", "/route-not-in-selected-namespace"): None,
    }
    assert {key: _goes_to(config, *key) for key in expected} == expected
    # Cross-namespace ListenerSet: "Same" means the ListenerSet's namespace, not the Gateway's
    cross = "gateway-api-ls-cross-ns"
    assert _route_parent(config, "route-in-listenerset-namespace", "listenerset-test-allowed-routes-cross-ns",
                         cross)["Accepted"] == ("True", "Accepted")
    assert _route_parent(config, "route-in-gateway-namespace", "listenerset-test-allowed-routes-cross-ns")[
        "Accepted"] == ("False", "NotAllowedByListeners")
    listeners = _set_listeners(config, "listenerset-test-allowed-routes-cross-ns", cross)
    (attached, found, kinds) = listeners["listener-set-listener-allowed-routes-cross-ns-same"]
    assert attached == 1 and _accepted_listener(found) and "HTTPRoute" in kinds
    host = "listener-set-listener-allowed-routes-cross-ns-same.com"
    assert _goes_to(config, host, "/route-in-listenerset-namespace") == "infra-backend-v1"
    assert _goes_to(config, host, "/route-in-gateway-namespace") is None


def test_listenerset_allowed_routes_supported_kinds():
    config = _judge(ALLOWED_ROUTES_SUPPORTED_KINDS)
    _gateway(config, "gateway-with-listener-sets-test-supported-route-kinds", 1)
    listeners = _set_listeners(config, "listenerset-test-allowed-routes-supported-kinds")
    (_, found, kinds) = listeners["listener-set-listener-allowed-routes-tls-only"]
    assert found["ResolvedRefs"] == ("False", "InvalidRouteKinds")
    assert kinds == []  # an HTTPRoute is no kind a TLS listener takes


def test_listenerset_dual_parentref_independence():
    config = _judge(DUAL_PARENTREF_INDEPENDENCE)
    _gateway(config, "gateway-dual-parentref", 1)
    listeners = _set_listeners(config, "ls-dual-parentref")
    (attached, found, kinds) = listeners["ls-dual-parentref-listener"]
    assert attached == 2 and _accepted_listener(found) and "HTTPRoute" in kinds
    # Both parentRefs are Accepted
    assert _route_parent(config, "route-dual-parentref-both", "gateway-dual-parentref")["Accepted"][0] == "True"
    assert _route_parent(config, "route-dual-parentref-both", "ls-dual-parentref")["Accepted"][0] == "True"
    assert _goes_to(config, "gw-dual.com", "/dualboth") == "infra-backend-v1"
    assert _goes_to(config, "ls-dual.com", "/dualboth") == "infra-backend-v1"
    # One of two: the Gateway has no listener of the ListenerSet's name
    assert _route_parent(config, "route-dual-parentref-one", "gateway-dual-parentref")["Accepted"] == (
        "False", "NoMatchingParent")
    assert _route_parent(config, "route-dual-parentref-one", "ls-dual-parentref")["Accepted"] == (
        "True", "Accepted")
    assert _goes_to(config, "ls-dual.com", "/dualone") == "infra-backend-v2"
    assert _goes_to(config, "gw-dual.com", "/dualone") is None


def test_listenerset_gateway_parent_section_name_not_found():
    config = _judge(GATEWAY_PARENT_SECTION_NAME_NOT_FOUND)
    _gateway(config, "gateway-section-name", 1)
    assert _route_parent(config, "route-via-listenerset", "listenerset-section-name")["Accepted"] == (
        "True", "Accepted")
    assert _route_parent(config, "route-via-gateway", "gateway-section-name")["Accepted"] == (
        "False", "NoMatchingParent")
    assert _goes_to(config, "ls-section-name.com", "/goodsection") == "infra-backend-v1"
    assert _goes_to(config, "gw-section.com", "/badsection") is None


def test_listenerset_protocol_conflict():
    config = _judge(PROTOCOL_CONFLICT)
    gateway = "gateway-with-listenerset-protocol-conflict"
    _gateway(config, gateway, 2)
    listeners = _gateway_listeners(config, gateway)
    assert _accepted_listener(listeners["gateway-listener"])
    assert _accepted_listener(listeners["protocol-conflict-with-gateway-listener"])
    conflicted = {"Accepted": ("False", "ProtocolConflict"), "Programmed": ("False", "ProtocolConflict"),
                  "Conflicted": ("True", "ProtocolConflict")}

    def is_conflicted(found: dict) -> bool:
        return all(found[kind] == value for kind, value in conflicted.items())

    first = "listenerset-with-protocol-conflict-with-gateway-1"
    assert _set(config, first)["Accepted"][0] == "True"
    assert _set(config, first)["Programmed"] == ("True", "Programmed")
    found = {name: conditions for name, (_, conditions, _) in _set_listeners(config, first).items()}
    assert _accepted_listener(found["listener-set-1-listener"])
    assert is_conflicted(found["protocol-conflict-with-gateway-listener"])
    assert _accepted_listener(found["protocol-conflict-with-listener-set-listener"])
    second = "listenerset-with-protocol-conflict-with-gateway-2"
    assert _set(config, second) == {"Accepted": ("False", "ListenersNotValid"),
                                    "Programmed": ("False", "ListenersNotValid")}
    found = {name: conditions for name, (_, conditions, _) in _set_listeners(config, second).items()}
    assert is_conflicted(found["protocol-conflict-with-gateway-listener"])
    third = "listenerset-with-protocol-conflict-with-listener-set-1"
    assert _set(config, third)["Accepted"][0] == "True"
    assert _set(config, third)["Programmed"] == ("True", "Programmed")
    found = {name: conditions for name, (_, conditions, _) in _set_listeners(config, third).items()}
    assert _accepted_listener(found["listener-set-2-listener"])
    assert is_conflicted(found["protocol-conflict-with-listener-set-listener"])
    fourth = "listenerset-with-protocol-conflict-with-listener-set-2"
    assert _set(config, fourth) == {"Accepted": ("False", "ListenersNotValid"),
                                    "Programmed": ("False", "ListenersNotValid")}
    found = {name: conditions for name, (_, conditions, _) in _set_listeners(config, fourth).items()}
    assert is_conflicted(found["protocol-conflict-with-listener-set-listener"])


def test_listenerset_reference_grant():
    config = _judge(REFERENCE_GRANT, _certificate())
    _gateway(config, "gateway-with-listener-sets-test-reference-grant", 1)
    granted = "listenerset-with-reference-grant"
    assert _set(config, granted)["Accepted"][0] == "True" and _set(config, granted)["Programmed"][0] == "True"
    (_, found, _) = _set_listeners(config, granted)["listenerset-with-reference-grant-listener"]
    assert found["ResolvedRefs"][0] == "True"
    refused, namespace = "listenerset-without-reference-grant", "gateway-api-listener-sets-test-reference-grant-ns"
    assert _set(config, refused, namespace) == {"Accepted": ("False", "ListenersNotValid"),
                                                "Programmed": ("False", "ListenersNotValid")}
    (_, found, _) = _set_listeners(config, refused, namespace)["listenerset-without-reference-grant-listener"]
    assert found["ResolvedRefs"] == ("False", "RefNotPermitted")


def test_listenerset_route_status_scoped_to_parentref():
    config = _judge(ROUTE_STATUS_SCOPED_TO_PARENTREF)
    _gateway(config, "gateway-parentref", 1)
    (attached, found, kinds) = _set_listeners(config, "listenerset-parentref")["listenerset-parentref-listener"]
    assert attached == 1 and _accepted_listener(found) and "HTTPRoute" in kinds
    # each route's status names its own parentRef only (HTTPRouteMustHaveParents)
    for route, parent in (("route-parentref-gwonly", "gateway-parentref"),
                          ("route-parentref-lsonly", "listenerset-parentref")):
        (only,) = _status(config, "HTTPRoute", route)["parents"]
        assert only["parentRef"]["name"] == parent and only["parentRef"]["namespace"] == INFRA
        assert only["controllerName"] == "ingressd.io/gateway-controller"
        assert _conditions(only["conditions"])["Accepted"][0] == "True"
    assert _goes_to(config, "gw-parentref.com", "/gwonly") == "infra-backend-v1"
    assert _goes_to(config, "listenerset-parentref.com", "/lsonly") == "infra-backend-v2"
    assert _goes_to(config, "listenerset-parentref.com", "/gwonly") is None


# -- end to end: where traffic decides, against twistd ingressd in file mode ------------------


@pytest.mark.slow
def test_the_routing_cases_end_to_end(tmp_path):
    """ListenerSetAllowedRoutesNamespaces, ListenerSetDualParentRefIndependence,
    ListenerSetGatewayParentSectionNameNotFound and ListenerSetRouteStatusScopedToParentRef in one
    server (their hostnames differ): each request of their Go tests, with its expected backend or
    404."""
    from backends import Backend
    from harness import Ingressd, service, wait_for, write_manifests

    manifests = tmp_path / "manifests"
    manifests.mkdir()
    backends = {name: Backend(name) for name in ("infra-backend-v1", "infra-backend-v2", "infra-backend-v3")}
    objects = [obj for obj in yaml.safe_load_all(BASE) if obj and obj["kind"] in ("GatewayClass", "Namespace")]
    for text in (ALLOWED_ROUTES_NAMESPACES, DUAL_PARENTREF_INDEPENDENCE, GATEWAY_PARENT_SECTION_NAME_NOT_FOUND,
                 ROUTE_STATUS_SCOPED_TO_PARENTREF):
        objects += [obj for obj in yaml.safe_load_all(text) if obj]
    for name, backend in backends.items():
        objects += service(name, [("http", 8080, backend.port)], namespace=INFRA)
    write_manifests(manifests / "all.yaml", objects)
    expected = {
        ("listener-set-listener-allowed-routes-all.com", "/route-in-same-namespace"): "infra-backend-v1",
        ("listener-set-listener-allowed-routes-all.com", "/route-in-selected-namespace"): "infra-backend-v2",
        ("listener-set-listener-allowed-routes-all.com", "/route-not-in-selected-namespace"): "infra-backend-v3",
        ("listener-set-listener-allowed-routes-same.com", "/route-in-same-namespace"): "infra-backend-v1",
        ("listener-set-listener-allowed-routes-same.com", "/route-in-selected-namespace"): None,
        ("listener-set-listener-allowed-routes-same.com", "/route-not-in-selected-namespace"): None,
        ("listener-set-listener-allowed-routes-selector.com", "/route-in-same-namespace"): None,
        ("listener-set-listener-allowed-routes-selector.com", "/route-in-selected-namespace"): "infra-backend-v2",
        ("listener-set-listener-allowed-routes-selector.com", "/route-not-in-selected-namespace"): None,
        ("listener-set-listener-allowed-routes-cross-ns-same.com", "/route-in-listenerset-namespace"):
            "infra-backend-v1",
        ("listener-set-listener-allowed-routes-cross-ns-same.com", "/route-in-gateway-namespace"): None,
        ("gw-dual.com", "/dualboth"): "infra-backend-v1",
        ("ls-dual.com", "/dualboth"): "infra-backend-v1",
        ("ls-dual.com", "/dualone"): "infra-backend-v2",
        ("gw-dual.com", "/dualone"): None,
        ("ls-section-name.com", "/goodsection"): "infra-backend-v1",
        ("gw-section.com", "/badsection"): None,
        ("gw-parentref.com", "/gwonly"): "infra-backend-v1",
        ("listenerset-parentref.com", "/lsonly"): "infra-backend-v2",
    }
    server = Ingressd(manifests)
    try:
        def answered(host, path):
            response = server.get(path, host=host)
            return response.headers.get("x-backend") if response.status == 200 else \
                (None if response.status == 404 else response.status)

        wait_for(lambda: answered("listenerset-parentref.com", "/lsonly") == "infra-backend-v2",
                 "the ListenerSets' routes served")
        assert {key: answered(*key) for key in expected} == expected
    finally:
        server.stop()
        for backend in backends.values():
            backend.stop()
