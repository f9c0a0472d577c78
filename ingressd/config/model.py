"""The configuration model: plain immutable objects that providers' output is translated into.

Everything below the providers (route table, certificate map, proxy) reads only these
objects, never Kubernetes dictionaries or annotation strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EXACT = "Exact"
PREFIX = "Prefix"
IMPLEMENTATION_SPECIFIC = "ImplementationSpecific"
PATH_TYPES = (EXACT, PREFIX, IMPLEMENTATION_SPECIFIC)
REGULAR_EXPRESSION = "RegularExpression"  # a header or query-parameter match's other type; a Gateway API path type


@dataclass(frozen=True, order=True, slots=True)
class ObjectRef:
    """Names one Kubernetes object."""

    kind: str
    namespace: str
    name: str
    # Its hash, worked out once: every change looks ObjectRefs up by the ten thousand (the log
    # line's grouping by Ingress, build_table's checks), and a dataclass hashes its fields anew
    # on every call. Not compared, not shown, not pickled (a string's hash differs by process).
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.kind, self.namespace, self.name)))

    def __hash__(self) -> int:
        return self._hash

    def __getstate__(self) -> tuple:
        return (self.kind, self.namespace, self.name)

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(("kind", "namespace", "name"), state):
            object.__setattr__(self, name, value)
        self.__post_init__()

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address a backend's traffic may go to."""

    address: str
    port: int


@dataclass(frozen=True, slots=True)
class Backend:
    """A Service port an Ingress path points at, with its resolved ready endpoints."""

    namespace: str
    service: str
    port: str  # the Ingress's port reference: a number or a name, as text
    endpoints: tuple[Endpoint, ...] = ()
    external_name: str | None = None
    # The Service's cluster IP and this port's number (where service-upstream sends); None for
    # a Service without one (headless: clusterIP None; ExternalName).
    cluster_endpoint: Endpoint | None = None

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.service}:{self.port}"


@dataclass(frozen=True, slots=True)
class ValueMatch:
    """One header or query parameter a request must carry (Gateway API HTTPHeaderMatch,
    HTTPQueryParamMatch): its value equal to ``value`` (``EXACT``), or matched whole by the RE2
    expression ``value`` (``REGULAR_EXPRESSION``)."""

    name: str  # a header's name in lower case (compared case-insensitively); a parameter's as given
    value: str
    type: str = EXACT


@dataclass(frozen=True, slots=True)
class Conditions:
    """What a request must carry besides its host and path (a Gateway API HTTPRouteMatch's
    method, headers and query parameters); every one of them must hold. Ingress routes have
    none (``Route.conditions`` is None)."""

    method: str = ""  # "" for any method
    headers: tuple[ValueMatch, ...] = ()
    query: tuple[ValueMatch, ...] = ()

    @property
    def rank(self) -> tuple[int, int, int]:
        """The Gateway API's tie-breakers after the path, most specific first when sorted in
        reverse: a method match, then the most header matches, then the most query matches."""
        return (1 if self.method else 0, len(self.headers), len(self.query))


@dataclass(frozen=True, slots=True)
class WeightedBackend:
    """One member of a route's weighted backend set (Gateway API backendRefs). ``backend`` is
    None for a reference that could not be used (missing, not permitted): its share of the
    requests is answered 500. A weight of 0 is never chosen. ``filters``: the backendRef's own
    (``config.filters`` values), applied after the route's only to the requests that go to this
    member (``RouteEntry.weighted``'s member entries)."""

    backend: Backend | None
    weight: int = 1
    filters: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Timeouts:
    """A route's own time limits in seconds (Gateway API HTTPRouteTimeouts); None: not given (the
    server's proxy timeouts alone), 0: disabled. ``request``: from the request's arrival until its
    response is complete; ``backend_request``: one try to a backend, from its connection until its
    response is received whole. Exceeding either answers 504 (``proxy.route_timeouts``)."""

    request: float | None = None
    backend_request: float | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """One host + path of one Ingress, and where its requests go.

    ``annotations`` is the Ingress's annotations as sorted pairs (for display);
    ``features`` holds the values of the annotations plugins declared, already parsed and
    validated (hashable, so two snapshots compare equal when nothing changed). Plugins
    turn those values into the route's prepared request-time objects when the route table
    is built.
    """

    host: str  # lower-case; "" for a rule without host; "*.foo.com" for a wildcard
    path: str
    path_type: str
    backend: Backend
    ingress: ObjectRef
    created: str = ""  # the Ingress's creationTimestamp, for conflict resolution
    annotations: tuple[tuple[str, str], ...] = ()
    features: tuple[tuple[str, Any], ...] = ()  # parsed annotation values, by annotation name
    tls: bool = False  # the host is named in a TLS section of this Ingress
    # Gateway API's extra matches (None: host and path decide, as for every Ingress route).
    conditions: Conditions | None = None
    # A weighted backend set (Gateway API backendRefs); empty: ``backend`` takes every request.
    backends: tuple[WeightedBackend, ...] = ()
    # Gateway API filters, in the object's order (ingressd.config.filters); Ingress routes have none.
    filters: tuple[Any, ...] = ()
    # A wildcard ``host`` matches any number of labels (Gateway API hostnames: ``*.example.com``
    # serves ``a.b.example.com``); False: exactly one label, as every Ingress wildcard.
    any_depth: bool = False
    # Time limits of the route's own (Gateway API timeouts); None: the server's proxy timeouts alone.
    timeouts: Timeouts | None = None
    # The listener kinds the route is served on: "http" (the plain port), "https" (TLS). Empty: both,
    # as every Ingress route; a Gateway API route: the kinds of the listeners it attached to.
    schemes: tuple[str, ...] = ()

    @property
    def age_key(self) -> tuple[str, str, str]:
        """Older Ingresses sort first: creationTimestamp, then namespace/name."""
        return (self.created or "9999", self.ingress.namespace, self.ingress.name)


@dataclass(frozen=True, slots=True)
class TLSHost:
    """A host whose certificate comes from a TLS Secret (``spec.tls``)."""

    host: str
    secret: ObjectRef  # kind "Secret"
    ingress: ObjectRef
    # Served only if the certificate names the host, silently the default otherwise (a host a
    # plugin added, as ingress-nginx's from-to-www redirect server gets the Ingress's certificate).
    covered_only: bool = False


@dataclass(frozen=True, slots=True)
class SecretData:
    """A Secret's type and decoded data, as found; its users validate it."""

    ref: ObjectRef  # kind "Secret"
    type: str
    data: tuple[tuple[str, bytes], ...]

    def get(self, key: str) -> bytes | None:
        for name, value in self.data:
            if name == key:
                return value
        return None


@dataclass(frozen=True, slots=True)
class ConfigMapData:
    """A ConfigMap's data (string values), as found; its users validate it."""

    ref: ObjectRef  # kind "ConfigMap"
    data: tuple[tuple[str, str], ...]

    def get(self, key: str) -> str | None:
        for name, value in self.data:
            if name == key:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Rejection:
    """An object (or part of one) that could not be used, and why."""

    ref: ObjectRef
    reason: str
    annotations: tuple[str, ...] = ()  # the annotations (names without prefix) it is about, if any

    def __str__(self) -> str:
        return f"{self.ref}: {self.reason}"


@dataclass(frozen=True, slots=True)
class StatusDocument:
    """The status a source judged for one object, as the API's ``status`` stanza would hold it
    (``body``: canonical JSON, ``json.dumps(..., sort_keys=True)``): conditions carry type,
    status, reason, message and observedGeneration, never lastTransitionTime (the status writer
    keeps a condition's time while its status stays the same). ``generation`` is the
    metadata.generation it was judged at. Value of ``Config.status`` entries for the Gateway API
    kinds: GatewayClass ``{"conditions": [...]}``; Gateway ``{"addresses": [...], "conditions":
    [...], "listeners": [{"name", "supportedKinds", "attachedRoutes", "conditions"}]}``; HTTPRoute
    and GRPCRoute ``{"parents": [{"parentRef", "controllerName", "conditions"}]}`` (only the
    parents that are ours: the writer keeps other controllers' entries)."""

    generation: int
    body: str


@dataclass(frozen=True, slots=True)
class PassthroughRoute:
    """A TLS host whose connections are passed through unterminated (a TLSRoute on a Gateway's
    ``TLS`` / ``Passthrough`` listener): the ClientHello's SNI name ``host`` (exact, or
    ``*.example.com``: any name below it) picks it, and the connection is spliced to one member
    of ``backends`` (weighted; an unusable member's share of the connections is closed)."""

    host: str
    backends: tuple[WeightedBackend, ...]
    source: ObjectRef  # the TLSRoute


@dataclass(frozen=True, slots=True)
class Config:
    """One complete snapshot of what ingressd serves."""

    routes: tuple[Route, ...] = ()
    default_backend: Route | None = None
    tls_hosts: tuple[TLSHost, ...] = ()
    secrets: tuple[SecretData, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    warnings: tuple[Rejection, ...] = ()
    # Hosts whose TLS handshakes ask for client certificates: (host, tls.client_auth.ClientAuth),
    # from the route features' ``client_auth`` (the auth_tls plugin), set by build_table.
    client_auth: tuple[tuple[str, Any], ...] = ()
    # Hosts with TLS settings of their own: (host, tls.settings.HostTLS), from the route features'
    # ``host_tls`` (the ssl_ciphers plugin), set by build_table.
    host_tls: tuple[tuple[str, Any], ...] = ()
    # The ingress-nginx ConfigMap in effect (config.nginx_configmap.ConfigMapReading), if one is named.
    nginx_configmap: Any = None
    # Per object, the status its source judged (ObjectRef, a source-defined status value): written by
    # that kind's status writer in cluster mode, shown on the admin page in file mode.
    status: tuple[tuple[ObjectRef, Any], ...] = ()
    # TLS hosts passed through by SNI (Gateway API TLSRoutes; tls.passthrough reads them from the
    # route table): the Ingress annotation ssl-passthrough is a route feature instead.
    passthrough: tuple[PassthroughRoute, ...] = ()
    # The hostnames of the Gateway HTTPS listeners served on the TLS port ("" for one without):
    # a request whose Host belongs to another listener than its SNI name is answered 421
    # (tls/misdirected.py).
    https_listeners: tuple[str, ...] = ()
