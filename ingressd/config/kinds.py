"""How a source of routes declares a Kubernetes kind it reads (``KindSpec``): what the store,
the file provider and the Kubernetes provider (REST paths, RBAC, what the reflector keeps)
need to know of it. The sources are registered in ``ingressd.config.sources``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KindSpec:
    """One Kubernetes kind a source reads, as the providers need to know it."""

    kind: str
    api_version: str  # "networking.k8s.io/v1"; "v1" for the core group
    plural: str  # the REST resource name (and the RBAC resource)
    namespaced: bool = True
    # The metadata keys the reflector keeps (None: all but managedFields and kubectl's
    # last-applied copy). Dependencies, of which a cluster has many, keep only what is read.
    keep_metadata: tuple[str, ...] | None = None
    # (list field, the keys kept of each of its items): an EndpointSlice's endpoints.
    keep_items: tuple[str, tuple[str, ...]] | None = None
    watched: bool = True  # LISTed and WATCHed in cluster mode
    status: bool = False  # a status writer writes its /status subresource (RBAC: patch)
    # Its API may not be installed (a CustomResourceDefinition: Gateway API): a 404 on LIST
    # reads as none of them, and the reflector looks again now and then.
    optional: bool = False

    @property
    def group(self) -> str:
        """The API group ("" for the core group)."""
        return self.api_version.rpartition("/")[0]


# The metadata a dependency (Service, EndpointSlice, Secret, ConfigMap) keeps.
DEPENDENCY_METADATA = ("name", "namespace", "labels", "annotations")

# What the Ingress translator reads. An Ingress keeps all its metadata: its uid and
# resourceVersion go into Events and status writes, its creationTimestamp decides conflicts.
INGRESS_KINDS: tuple[KindSpec, ...] = (
    KindSpec("Ingress", "networking.k8s.io/v1", "ingresses", status=True),
    KindSpec("IngressClass", "networking.k8s.io/v1", "ingressclasses", namespaced=False),
    KindSpec("Service", "v1", "services", keep_metadata=DEPENDENCY_METADATA),
    KindSpec("EndpointSlice", "discovery.k8s.io/v1", "endpointslices", keep_metadata=DEPENDENCY_METADATA,
             keep_items=("endpoints", ("addresses", "conditions"))),
    KindSpec("Secret", "v1", "secrets", keep_metadata=DEPENDENCY_METADATA),
    KindSpec("ConfigMap", "v1", "configmaps", keep_metadata=DEPENDENCY_METADATA),
)

GATEWAY_GROUP = "gateway.networking.k8s.io"

# What the Gateway API translator reads (standard channel: v1, ReferenceGrant v1beta1), and the
# Namespaces whose labels a listener's ``allowedRoutes`` selector reads (name and labels kept).
GATEWAY_KINDS: tuple[KindSpec, ...] = (
    KindSpec("GatewayClass", f"{GATEWAY_GROUP}/v1", "gatewayclasses", namespaced=False, status=True, optional=True),
    KindSpec("Gateway", f"{GATEWAY_GROUP}/v1", "gateways", status=True, optional=True),
    KindSpec("HTTPRoute", f"{GATEWAY_GROUP}/v1", "httproutes", status=True, optional=True),
    KindSpec("GRPCRoute", f"{GATEWAY_GROUP}/v1", "grpcroutes", status=True, optional=True),
    KindSpec("ListenerSet", f"{GATEWAY_GROUP}/v1", "listenersets", status=True, optional=True),
    KindSpec("TLSRoute", f"{GATEWAY_GROUP}/v1", "tlsroutes", status=True, optional=True),  # v1 only in v1.6
    KindSpec("BackendTLSPolicy", f"{GATEWAY_GROUP}/v1", "backendtlspolicies", status=True, optional=True),
    KindSpec("ReferenceGrant", f"{GATEWAY_GROUP}/v1beta1", "referencegrants", optional=True),
    KindSpec("Namespace", "v1", "namespaces", namespaced=False, keep_metadata=("name", "labels")),
    # and the dependencies it shares with the Ingress translator, declared alike
    *(spec for spec in INGRESS_KINDS if spec.kind in ("Service", "EndpointSlice", "Secret", "ConfigMap")),
)
