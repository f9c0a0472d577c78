"""backendRefs → ``WeightedBackend``s: a Service port and its ready endpoints, or None with
the reason it could not be used (the Gateway API's ResolvedRefs reasons).

- A kind other than core ``Service`` → InvalidKind;
- a Service in another namespace without a ReferenceGrant → RefNotPermitted;
- a missing Service, a missing port, or a port the Service does not have → BackendNotFound;
- a Service port whose ``appProtocol`` the route's kind cannot be sent over → UnsupportedProtocol
  (the spec: "If a Route is not able to send traffic to the backend using the specified protocol
  then the backend is considered invalid").

The port's ``appProtocol`` chooses the upstream (``upstream_protocol``): for an HTTPRoute none or
``http`` is HTTP/1.1, ``kubernetes.io/h2c`` (or ``h2c``) cleartext HTTP/2 with prior knowledge (the
h2c upstream ``backend-protocol: GRPC`` uses: ``proxy/h2_upstream.py``), ``kubernetes.io/ws``
HTTP/1.1 (WebSocket upgrades pass as on every route), ``kubernetes.io/wss`` and ``https`` TLS
(verified as a BackendTLSPolicy says when one targets the port, else as ``backend-protocol:
HTTPS`` without ``proxy-ssl-*``: encrypted, not verified); for a GRPCRoute none, ``grpc`` or
``kubernetes.io/h2c``. Any other value (KEP-3726's names are exact, the unprefixed ones any case)
is UnsupportedProtocol.

The member keeps its weight either way: the requests that fall to an unusable member are
answered 500 (``config.weighted``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ingressd.config.gateway.grants import Grants
from ingressd.config.model import Backend, Endpoint, WeightedBackend
from ingressd.config.store import unpack

BACKEND_NOT_FOUND = "BackendNotFound"
INVALID_KIND = "InvalidKind"
REF_NOT_PERMITTED = "RefNotPermitted"
UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"

# appProtocol (KEP-3726's prefixed names as written, the others lower-cased) → the upstream
# protocol a route of each kind sends over (the backend_protocol plugin's names).
_UPSTREAMS = {
    "HTTPRoute": {"": "HTTP", "http": "HTTP", "kubernetes.io/ws": "HTTP", "kubernetes.io/h2c": "GRPC",
                  "h2c": "GRPC", "kubernetes.io/wss": "HTTPS", "https": "HTTPS"},
    "GRPCRoute": {"": "GRPC", "grpc": "GRPC", "kubernetes.io/h2c": "GRPC", "h2c": "GRPC"},
}


@dataclass(frozen=True)
class Unresolved:
    """Why a backendRef could not be used."""

    reason: str
    message: str


class Services:
    """The snapshot's Services and their EndpointSlices, looked up by namespace and name."""

    def __init__(self, services: Mapping, slices: Mapping):
        self._services = services
        self._slices: dict[tuple[str, str], list] = {}
        for (namespace, _), packed in sorted(slices.items()):
            obj = unpack(packed)
            service = ((obj.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name")
            if service:
                self._slices.setdefault((namespace, service), []).append(obj)
        self._memo: dict[tuple[str, str, int], Backend | None] = {}

    def app_protocol(self, namespace: str, name: str, port: int | str) -> str:
        """The ``appProtocol`` of a Service port ("" when none, or no such port)."""
        packed = self._services.get((namespace, name))
        if packed is None:
            return ""
        for item in (unpack(packed).get("spec") or {}).get("ports") or []:
            if isinstance(item, dict) and str(item.get("port")) == str(port):
                value = str(item.get("appProtocol") or "")
                return value if "/" in value else value.lower()
        return ""

    def upstream_protocol(self, backend: Backend, route_kind: str) -> str | None:
        """The upstream protocol a ``route_kind``'s requests reach ``backend`` over (None: its
        port's appProtocol cannot be used by that kind of route)."""
        table = _UPSTREAMS.get(route_kind, _UPSTREAMS["HTTPRoute"])
        return table.get(self.app_protocol(backend.namespace, backend.service, backend.port))

    def backend(self, namespace: str, name: str, port: int) -> Backend | None:
        key = (namespace, name, port)
        if key not in self._memo:
            self._memo[key] = self._resolve(namespace, name, port)
        return self._memo[key]

    def _resolve(self, namespace: str, name: str, port: int) -> Backend | None:
        packed = self._services.get((namespace, name))
        if packed is None:
            return None
        spec = unpack(packed).get("spec") or {}
        service_port = next((p for p in spec.get("ports") or [] if isinstance(p, dict) and p.get("port") == port),
                            None)
        if service_port is None:
            return None
        if spec.get("type") == "ExternalName":
            external = str(spec.get("externalName") or "")
            return Backend(namespace, name, str(port), (Endpoint(external, port),), external_name=external)
        wanted = service_port.get("name") or ""
        found: dict[tuple[str, int], Endpoint] = {}
        for obj in self._slices.get((namespace, name), ()):
            number = next((p.get("port") for p in obj.get("ports") or []
                           if isinstance(p, dict) and (p.get("name") or "") == wanted), None)
            if not isinstance(number, int):
                continue
            for endpoint in obj.get("endpoints") or []:
                conditions = endpoint.get("conditions") or {}
                if conditions.get("ready") is False or conditions.get("terminating") is True:
                    continue
                for address in endpoint.get("addresses") or []:
                    found[(str(address), number)] = Endpoint(str(address), number)
        address = spec.get("clusterIP")
        cluster = Endpoint(str(address), port) if address and address != "None" else None
        return Backend(namespace, name, str(port), tuple(found[key] for key in sorted(found)),
                       cluster_endpoint=cluster)


def resolve(ref: Mapping, route_kind: str, route_namespace: str, services: Services,
            grants: Grants) -> tuple[WeightedBackend, Unresolved | None]:
    """One backendRef of a route in ``route_namespace`` → its member, and why it is unusable."""
    weight = ref.get("weight", 1)
    weight = weight if isinstance(weight, int) and 0 <= weight <= 1_000_000 else 1
    group, kind = str(ref.get("group") or ""), str(ref.get("kind") or "Service")
    name = str(ref.get("name") or "")
    namespace = str(ref.get("namespace") or route_namespace)
    if group != "" or kind != "Service":
        return WeightedBackend(None, weight), Unresolved(INVALID_KIND, f"{group or 'core'}/{kind} {name} is not "
                                                                       "a kind ingressd routes to (Service)")
    if not grants.permits("gateway.networking.k8s.io", route_kind, route_namespace, "", "Service", namespace, name):
        return WeightedBackend(None, weight), Unresolved(
            REF_NOT_PERMITTED, f"Service {namespace}/{name} is in another namespace and no ReferenceGrant permits it")
    port = ref.get("port")
    if not isinstance(port, int):
        return WeightedBackend(None, weight), Unresolved(BACKEND_NOT_FOUND, f"Service {namespace}/{name}: a port "
                                                                            "is required")
    backend = services.backend(namespace, name, port)
    if backend is None:
        return WeightedBackend(None, weight), Unresolved(BACKEND_NOT_FOUND,
                                                         f"Service {namespace}/{name} port {port} not found")
    if services.upstream_protocol(backend, route_kind) is None:
        return WeightedBackend(None, weight), Unresolved(
            UNSUPPORTED_PROTOCOL, f"Service {namespace}/{name} port {port}: appProtocol "
                                  f"{services.app_protocol(namespace, name, port)!r} is not supported for a {route_kind}")
    return WeightedBackend(backend, weight), None
