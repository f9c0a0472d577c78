"""The contract between plugins and the request path: annotations, options and route features.

A plugin declares ``Annotation``s (parsed and validated when routes are built) and returns,
per route, objects following ``RouteFeature``: the proxy calls their ``request``,
``response`` and ``error`` methods in phase order. Nothing here runs per request except
those methods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Callable, Mapping, Protocol, Sequence

import re2

NGINX_PREFIX = "nginx.ingress.kubernetes.io/"
INGRESSD_PREFIX = "ingressd.io/"


class AnnotationError(ValueError):
    """An annotation value (or the combination of values) that cannot be used."""


class Phase(IntEnum):
    """Request phases in ingress-nginx's order; lower runs first."""

    REWRITE = 100  # redirects, CORS preflight, HTTPS redirect
    PREACCESS = 200  # rate and connection limits
    ACCESS = 300  # allow and deny lists
    AUTH = 400  # authentication
    PROXY = 500  # upstream request settings (timeouts, body size, headers)


# -- regular-expression paths (use-regex, rewrite-target) ------------------------------------

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a pattern that does not compile is reported by us, once


class PathPatternError(ValueError):
    """A path RE2 cannot compile."""


def compile_path(path: str) -> "PathPattern":
    """A regular-expression path as ingress-nginx's ``location ~* "^PATH"``: compiled by RE2
    (linear-time matching), case-insensitive, anchored at the start. ``match`` (and its
    synonym ``search``) give match objects with ``group(n)`` and ``groups()``. Raises
    ``PathPatternError`` saying why RE2 refuses it."""
    try:
        # Compiled and matched as UTF-8 bytes: the binding's str path maps character offsets
        # on every call (3.9 µs a match here, against 1.1 µs for bytes).
        return PathPattern(re2.compile(("(?i)^" + path).encode("utf-8"), _OPTIONS), path)
    except re2.error as exc:
        raise PathPatternError(
            f"path {path} is not a regular expression ingressd can match in linear time ({re2_reason(exc)}; "
            "look-around and back-references are not supported)") from None


def re2_compile(pattern: bytes) -> Any:
    """``pattern`` compiled by RE2 without RE2's own error logging (the caller reports a
    pattern that does not compile, once, with ``re2_reason``)."""
    return re2.compile(pattern, _OPTIONS)


def re2_reason(exc: Exception) -> str:
    """Why RE2 refused a pattern, as text (the binding gives its reason as bytes)."""
    return exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)


class PathPattern:
    """A compiled regular-expression path (``compile_path``), matched against request paths."""

    __slots__ = ("_regex", "path")

    def __init__(self, regex: Any, path: str):
        self._regex = regex
        self.path = path

    @property
    def groups(self) -> int:
        """How many capture groups the pattern has."""
        return self._regex.groups

    def match(self, text: str) -> "PathMatch | None":
        found = self._regex.match(text.encode("utf-8"))
        return None if found is None else PathMatch(found)

    search = match  # anchored at the start either way


class PathMatch:
    """What a ``PathPattern`` matched: ``group(n)`` (None for a group that took no part)."""

    __slots__ = ("_found",)

    def __init__(self, found: Any):
        self._found = found

    def group(self, index: int = 0) -> str | None:
        value = self._found.group(index)
        return None if value is None else value.decode("utf-8")

    def groups(self) -> tuple[str | None, ...]:
        return tuple(None if value is None else value.decode("utf-8") for value in self._found.groups())


@dataclass(frozen=True)
class Annotation:
    """An annotation a plugin owns, read under both prefixes (``ingressd.io/`` wins).

    ``parse`` turns the string value into a hashable value or raises ValueError /
    AnnotationError with a message saying what is wrong.
    """

    name: str  # without prefix, e.g. "limit-rps"
    parse: Callable[[str], Any]
    default: Any = None
    description: str = ""
    # Resolve the parsed value (a "name" or "namespace/name" string) against the cluster
    # objects when routes are built, so a change of the referenced object rebuilds routes:
    #   "secret"  → the SecretData, or None when missing;
    #   "service" → a model.Backend with its ready endpoints (first port), or None;
    #   "configmap" → the model.ConfigMapData (``get(key)``), or None when missing.
    # "namespace/name" in another namespace is refused unless
    # --allow-cross-namespace-resources is set.
    resolve: str | None = None
    # The value may span lines (LF between them: a list, one item a line); every other
    # control character is still refused.
    lines: bool = False
    # The value may span lines (a snippet): line breaks and tabs pass the control-character
    # check, and it may be up to 65536 characters long.
    multiline: bool = False
    # Where the Ingress's routes send their requests: called when routes are built with the
    # parsed value (for an Ingress that sets the annotation) and each route's resolved
    # ``model.Backend`` (its ``cluster_endpoint`` included), it returns the Backend to use (the
    # same one to change nothing). Every later reader (balancers, affinity, canary) sees that
    # Backend. ``service-upstream``: the Service's cluster IP instead of its endpoints.
    route_backend: Callable[[Any, Any], Any] | None = None


@dataclass(frozen=True)
class Option:
    """A ``twistd ingressd`` option added by a plugin (``--name VALUE``; flags take no value)."""

    name: str
    default: Any = None
    help: str = ""
    coerce: Callable[[str], Any] | None = None
    flag: bool = False


@dataclass(frozen=True)
class HostRoute:
    """A route a plugin adds for a host no Ingress rule lists (hook ``ingressd_host_routes``).

    ``route``: a ``model.Route`` of the Ingress it is for (``dataclasses.replace`` of one of its
    routes, with the new host); ``features``: the only features its requests run (the Ingress's
    annotations are not applied to it again), or None for the features the plugins give that
    route as for any route (a ``server-alias`` name); ``tls_host``: a ``model.TLSHost`` for the new
    host with ``covered_only=True`` (the certificate is served for it only if it names it), or
    None.
    """

    route: Any
    features: tuple = ()
    tls_host: Any = None


@dataclass
class LocalResponse:
    """A response ingressd answers itself instead of proxying."""

    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    # The refusal (401 or 403) an access check's answer stands for when its status says
    # otherwise (external auth's sign-in redirect stands for 401); read by ``satisfy: any``.
    denial: int = 0


@dataclass(frozen=True, slots=True)
class ForwardedRequest:
    """A request as it leaves for its backend (``exchange.on_forward``): method, target and the
    complete headers the backend is sent (ingressd's forwarding headers and the features'
    changes included, framing left to the upstream protocol); ``body_length`` None for no body;
    ``body`` the body when it was asked for and is at most the limit asked, else None."""

    method: bytes
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body_length: int | None = None
    body: bytes | None = None


class RouteFeature(Protocol):
    """What a plugin returns per route. Every method is optional; ``phase`` orders them.

    - ``request(exchange)`` → ``None`` to continue, a ``LocalResponse`` to answer now, or a
      Deferred firing with either.
    - ``response(exchange, status, headers)`` mutates the list of response headers (for
      proxied and locally generated responses alike).
    - ``error(exchange, status)`` → a ``LocalResponse`` (or Deferred of one, or None) to
      replace the body of an error response whose status is in ``error_codes``; a feature
      with ``intercept_upstream = False`` only replaces ingressd's own errors, never the
      backend's.

    - ``upstream_request(exchange, headers)`` mutates the list of request headers sent to
      the backend, once they are complete (ingressd's forwarding headers added, hop-by-hop
      headers removed): the last word on them, for each backend the request is sent to.

    ``access_check = True``: the feature's ``request`` is an access check (allow and deny lists,
    authentication). When a feature of the route says ``satisfy_any = True`` (``satisfy: any``),
    the route's access checks are combined as nginx's ``satisfy any``: one letting the request
    through is enough (``ingressd.proxy.chain.AnyOf``).

    A ``request`` may set ``exchange.balancer`` (an object whose ``pick(exclude)`` returns the
    next Endpoint, such as a ``RoundRobin``) to send the request to other endpoints than the
    route's. ``balancer``: such an object (with ``endpoints``) replacing the route's
    round-robin, read once when the route's entry is built (``load-balance: ewma``).

    ``upstream``: an ``UpstreamSettings`` for the route (timeouts, body limit, protocol), read once when
    the route's entry is built; a later phase's value wins field by field. Nothing runs per
    request for it.

    ``https_response_fields``: a tuple of response header fields (lower-case name, value): the
    feature's word that on a request whose scheme is https its ``request`` continues (None) and
    its ``response`` only sets these fields, each replacing the response's own of that name
    (ssl-redirect's HSTS). The exchange may then forward such requests without calling either
    hook, setting the fields itself, when the feature has nothing else (only ``phase``,
    ``upstream``, ``request``, ``response`` and this); its hooks still run for ingressd's own answers.

    ``host_tls``: a ``HostTLS`` (cipher list, cipher preference) the TLS handshakes of the
    route's host are made with (per SNI name; for each setting the oldest Ingress's wins).

    A ``response`` may set ``exchange.body_filter`` to a ``BodyFilter`` (it may read
    ``exchange.response_length``, the body's length or None when unknown): the response's
    body then passes through it and reaches the client without a length (compression).

    ``host_wide``: truthy when the feature serves every route of its host (the value names its
    kind: the oldest route with features of a kind gives them to the host). ``client_auth``: a
    ``ClientAuth`` the TLS handshakes of the route's host ask for client certificates under.
    """

    phase: int


class BodyFilter(Protocol):
    """What a response feature may put between a response's body and the client
    (``exchange.body_filter``): ``write`` is given each piece as it comes and returns the bytes
    to send now (b"" for none yet); ``finish`` returns the last ones once the body is over."""

    def write(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class BackendTLS:
    """How a route talks TLS to its backends (``backend-protocol: HTTPS`` and ``proxy-ssl-*``),
    with nginx's defaults: no verification, no SNI, TLS 1.2 and 1.3, OpenSSL's DEFAULT ciphers."""

    verify: bool = False  # proxy_ssl_verify: check the chain against ``ca`` and the name
    verify_name: str = "upstream_balancer"  # proxy_ssl_name ($proxy_host in ingress-nginx)
    verify_depth: int = 1  # proxy_ssl_verify_depth
    server_name: str | None = None  # the SNI name sent (proxy_ssl_server_name on), or None
    ca: bytes | None = None  # PEM, the trusted certificates (the Secret's ca.crt)
    certificate: bytes | None = None  # PEM, a client certificate chain (tls.crt) …
    key: bytes | None = None  # … and its key (tls.key)
    protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    ciphers: str = "DEFAULT"
    # With verify: the certificate must name one of these instead of ``verify_name`` (a Gateway API
    # BackendTLSPolicy's subjectAltNames): ("Hostname", a DNS name) or ("URI", a URI), any one.
    subject_alt_names: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """A route's settings of the request to its backend; ``None`` keeps the server's default.

    When a route's entry is built, its features' settings are laid over the server's (each
    field a later phase sets wins), so the request path reads one complete object per route.
    ``protocol`` names the upstream protocol the backend speaks, with ingress-nginx's
    ``backend-protocol`` values (``HTTP``: HTTP/1.1 in clear, the default); a route whose
    protocol the server does not speak is not served (its Ingress is rejected).
    """

    connect_timeout: float | None = None  # seconds
    read_timeout: float | None = None  # seconds between two reads from the backend
    send_timeout: float | None = None  # seconds between two writes to the backend
    max_body_size: int | None = None  # bytes; 0: unlimited
    protocol: str | None = None  # "HTTP", …: how the request goes to the backend
    tls: BackendTLS | None = None  # for HTTPS backends: how; None: nginx's defaults
    http_version: str | None = None  # "1.1" (default) or "1.0": proxy_http_version
    # proxy-request-buffering: True (nginx's default) reads the whole request body before the
    # backend is asked; False streams it as it arrives (gRPC routes need that too).
    request_buffering: bool | None = None
    body_buffer_size: int | None = None  # client-body-buffer-size: request body bytes in memory, then a file
    # proxy-buffering: True reads the response ahead of a slow client (memory, then a file);
    # False (ingress-nginx's default) streams it with backpressure to the backend.
    response_buffering: bool | None = None
    response_memory: int | None = None  # proxy-buffers-number × proxy-buffer-size: bytes in memory
    max_temp_file_size: int | None = None  # proxy-max-temp-file-size: bytes in the file; 0: none
    limit_rate: int | None = None  # bytes per second to the client (limit-rate); 0: no limit
    limit_rate_after: int | None = None  # bytes sent at full speed first (limit-rate-after)
    next_upstream: Any = None  # proxy.next_upstream.NextUpstream: when a request goes to the next endpoint
    fastcgi: Any = None  # FCGI backends: proxy.fastcgi_params.FastCGI (fastcgi-index, fastcgi-params-configmap)

    def over(self, base: "UpstreamSettings | None") -> "UpstreamSettings":
        """These settings, with ``base``'s where these say None."""
        if base is None:
            return self
        return UpstreamSettings(*(mine if mine is not None else theirs
                                  for mine, theirs in zip(self._values(), base._values())))

    def _values(self) -> tuple:
        return (self.connect_timeout, self.read_timeout, self.send_timeout, self.max_body_size, self.protocol,
                self.tls, self.http_version, self.request_buffering, self.body_buffer_size, self.response_buffering,
                self.response_memory, self.max_temp_file_size, self.limit_rate, self.limit_rate_after,
                self.next_upstream, self.fastcgi)

    def apply_to(self, exchange: Any) -> None:
        """Set the fields these give on an object with the same attributes (a test's fake
        exchange: ``ingressd.testing.FakeExchange``)."""
        for name in ("connect_timeout", "read_timeout", "send_timeout", "max_body_size", "protocol", "tls",
                     "http_version", "request_buffering", "body_buffer_size", "response_buffering",
                     "response_memory", "max_temp_file_size", "limit_rate", "limit_rate_after",
                     "next_upstream", "fastcgi"):
            value = getattr(self, name)
            if value is not None:
                setattr(exchange, name, value)


class RoundRobin:
    """A balancer: the next of some endpoints, in turn. A route's own endpoints are picked by
    one; a request feature may set ``exchange.balancer`` to another (e.g. a default backend)."""

    __slots__ = ("endpoints", "_next")

    def __init__(self, endpoints: Sequence[Any]):
        self.endpoints = tuple(endpoints)
        self._next = 0

    def pick(self, exclude: Sequence[Any] = ()) -> Any:
        """The next endpoint, avoiding those in ``exclude`` while others remain; None if none."""
        endpoints = self.endpoints
        count = len(endpoints)
        if not count:
            return None
        start = self._next
        if not exclude:  # (a first try: the next in turn, without the loop)
            self._next = start + 1
            return endpoints[start % count]
        for _ in range(count):
            endpoint = endpoints[self._next % count]
            self._next += 1
            if endpoint not in exclude:
                return endpoint
        self._next = start + 1  # every one was tried: the next in turn, as nginx's round-robin
        return endpoints[start % count]


@dataclass
class BuildContext:
    """What plugins may consult while routes are built."""

    settings: Mapping[str, Any]
    reactor: Any
    secrets: Mapping[tuple[str, str], Any] = field(default_factory=dict)  # (ns, name) → SecretData
    # The server's plugin state: one dict per plugin, kept for the server's life (across
    # rebuilds); two servers in one process share nothing. See ``plugin_state``.
    state: dict = field(default_factory=dict)
    # The controller's default backend (--default-backend-service, or an Ingress's
    # spec.defaultBackend naming a Service): a ``model.Backend`` with its endpoints, or None.
    default_backend: Any = None
    # The server's sub-request client (``interfaces.Subrequests``): HTTP requests a plugin
    # sends itself; None where nothing is sent (``ingressd check``, in-memory tests).
    subrequests: Any = None
    # The server's Redis decisions (``--redis``: ``ingressd.redis.decisions.Decisions``), or None.
    redis: Any = None
    # The server's replica count (``--replicas-hint``: ``ingressd.replicas.ReplicaCount``), or None.
    replicas: Any = None

    def secret(self, namespace: str, name: str):
        return self.secrets.get((namespace, name))

    def plugin_state(self, name: str) -> dict:
        """A dict of the plugin ``name``'s own for this server (e.g. rate limiters that must
        outlive a route table): a plugin keeps its state here, never in its module."""
        return self.state.setdefault(name, {})

    def values_in_use(self, routes) -> Mapping[int, tuple]:
        """{id(tuple): tuple}: the distinct ``Route.features`` tuples of ``routes`` (a configuration's),
        by identity, followed from the routes this server last asked about in proportion to where
        they differ (``ingressd.config.values_in_use.ValuesInUse``, kept in the server's state). A
        read-only view: read it before the next call."""
        counter = self.state.get(_VALUES_IN_USE)
        if counter is None:
            from ingressd.config.values_in_use import ValuesInUse

            counter = self.state[_VALUES_IN_USE] = ValuesInUse()
        return counter(routes)


# Where the server's ``ValuesInUse`` is kept in its plugin state (beside the plugins' own dicts,
# which are under the plugins' names).
_VALUES_IN_USE = "ingressd.values_in_use"


# Go's strconv.ParseBool, with which ingress-nginx reads every boolean annotation
# (internal/ingress/annotations/parser/main.go: parseBool; validators.go: ValidateBool).
_BOOLS = {
    "1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
    "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False,
}


def same_for_every_path(hook: Callable) -> Callable:
    """Mark an ``ingressd_route_features`` implementation whose answer depends only on the
    route's Ingress (its annotation values), host, TLS flag and the build context — never on
    the route's path, path type, backend or Gateway API matches and filters. A route table
    build then asks it once per Ingress and host and gives every path of that host the same
    answer (an Ingress with many paths builds faster). Unmarked implementations are asked
    for every route, which is always correct."""
    hook.ingressd_same_for_every_path = True  # type: ignore[attr-defined]
    return hook


def parse_bool(value: str) -> bool:
    """A boolean spelled as Go's ``strconv.ParseBool`` accepts it, and nothing else.

    Any other spelling (``yes``, ``on``, ``TrUe``, ``" true"``) is an AnnotationError, which
    rejects the Ingress. ingress-nginx does not reject it: ValidateBool fails, the parser
    logs "<annotation> is invalid, defaulting to ..." and uses the default (cors/main.go,
    rewrite/main.go). That default can be the opposite of what was meant and open what was
    meant to be closed: ``cors-allow-credentials: "no"`` would allow credentials (default
    true), ``force-ssl-redirect: "yes"`` would not redirect (default false). A rejected
    Ingress fails closed and says why, so ingressd refuses instead of guessing.
    """
    result = _BOOLS.get(value) if isinstance(value, str) else None
    if result is None:
        raise AnnotationError(
            f"expected true or false as Go's strconv.ParseBool spells them "
            f"(1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False), got {value!r}"
        )
    return result


# Go's strconv.Atoi (ingress-nginx's ValidateInt and parseInt): an optional sign and ASCII
# digits, no spaces, no units, within int64.
_INT = re.compile(r"[+-]?[0-9]+")
_INT64 = (-(2**63), 2**63 - 1)


def parse_int(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if not isinstance(value, str) or not _INT.fullmatch(value):
            raise AnnotationError(f"expected an integer such as 60 (no spaces, units or decimals), got {value!r}")
        number = int(value)
        if not _INT64[0] <= number <= _INT64[1]:
            raise AnnotationError(f"{value!r} is out of range")
        if low is not None and number < low:
            raise AnnotationError(f"must be at least {low}, got {number}")
        if high is not None and number > high:
            raise AnnotationError(f"must be at most {high}, got {number}")
        return number

    return parse


def parse_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def check_plain_text(value: str, max_length: int = 4096, lines: bool = False) -> str:
    """Refuse control characters (CR, LF, NUL…) and absurd lengths in any annotation value;
    ``lines``: LF separates lines (an annotation declared with ``lines=True``)."""
    if len(value) > max_length:
        raise AnnotationError(f"value is {len(value)} characters long (at most {max_length})")
    found = (_CONTROL_IN_LINES if lines else _CONTROL).search(value)
    if found:
        raise AnnotationError(f"value contains the control character {found.group()!r}")
    return value


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_IN_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


Values = Mapping[str, Any]
Features = Sequence[RouteFeature]


# nginx's ngx_parse_offset (client_max_body_size): ASCII digits and an optional k, m or g in
# either case, at most off_t's largest value.
_SIZE = re.compile(r"([0-9]+)([kKmMgG]?)")
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_SIZE_MAX = 2**63 - 1


def parse_size(value: str) -> int:
    """nginx size syntax: ``1024``, ``8k``/``8K``, ``1m``/``1M``, ``1g``/``1G`` → bytes (``0`` means unlimited).

    Spaces around the value are dropped, as ingress-nginx trims them. ingress-nginx's
    SizeRegex also lets a ``b`` suffix through, but nginx refuses ``1b`` ("invalid
    value") and the configuration would not load, so it is refused here.
    """
    match = _SIZE.fullmatch(value.strip(" ")) if isinstance(value, str) else None
    if match is None:
        raise AnnotationError(f"expected an nginx size such as 512, 8k, 1m or 1g (0 = unlimited), got {value!r}")
    size = int(match.group(1)) * _SIZE_FACTORS[match.group(2).lower()]
    if size > _SIZE_MAX:
        raise AnnotationError(f"{value!r} is larger than nginx accepts")
    return size
