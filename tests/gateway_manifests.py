"""The Gateway API objects the conformance suite's tests start from (its
``conformance/base/manifests.yaml``, the part the end-to-end Gateway API tests here share): our
GatewayClass and the ``same-namespace`` Gateway with one HTTP listener in the infra namespace."""

INFRA = "gateway-conformance-infra"
GROUP = "gateway.networking.k8s.io/v1"

# YAML documents, each ended by "---": a test appends its routes after them.
SAME_NAMESPACE_GATEWAY = f"""
apiVersion: {GROUP}
kind: GatewayClass
metadata: {{name: ingressd}}
spec: {{controllerName: ingressd.io/gateway-controller}}
---
apiVersion: {GROUP}
kind: Gateway
metadata: {{name: same-namespace, namespace: {INFRA}}}
spec:
  gatewayClassName: ingressd
  listeners:
  - {{name: http, port: 80, protocol: HTTP, allowedRoutes: {{namespaces: {{from: Same}}}}}}
---
"""
