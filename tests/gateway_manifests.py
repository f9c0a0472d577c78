"""The Gateway API objects the conformance suite's tests start from (its
``conformance/base/manifests.yaml``, the part the end-to-end Gateway API tests here share): our
GatewayClass and the ``same-namespace`` Gateway with one HTTP listener in the infra namespace;
and ``snapshot``, YAML documents as the store hands them to the translator."""

import yaml

from ingressd.config.store import object_key, pack

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


def snapshot(*texts: str, created: str = "") -> dict:
    """The store's snapshot of the YAML documents in ``texts`` (kind → key → packed object), as
    the Gateway API translator reads it; ``created``: the creationTimestamp of the documents
    that have none."""
    found: dict = {}
    for text in texts:
        for obj in yaml.safe_load_all(text):
            if obj:
                if created:
                    obj.setdefault("metadata", {}).setdefault("creationTimestamp", created)
                found.setdefault(obj["kind"], {})[object_key(obj)] = pack(obj)
    return found
