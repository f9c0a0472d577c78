"""The Gateway API filters of a route (``Route.filters``, ``ingressd.config.filters``) on the request path.

A source of routes (the Gateway API translation) puts an HTTPRoute rule's filters on its
routes, validated; this plugin turns them into the route's features, one per filter, in the
order the rule lists them (all in one phase, so the chain keeps that order), reusing the
implementations the annotations have:

- ``RequestHeaderModifier`` / ``ResponseHeaderModifier``: ``set`` replaces every value of a
  name (at the place of its first one), ``add`` appends another line, ``remove`` drops every
  value; names are case-insensitive (lower case in the model). The request's changes are made
  on the complete header list the backend is sent (after ingressd's forwarding headers); the
  response's on every answer of the route, the backend's and ingressd's own — by
  ``_header_changes.HeaderChange``, the code ``upstream_headers`` and ``response_headers`` use. A
  hop-by-hop or framing name (``Connection``, ``Content-Length``…: ingressd frames every
  message itself) is refused: the route is not served.
- ``RequestRedirect``: answered by ingressd, never forwarded: the request's scheme, host
  (without its port) and path unless the filter replaces them, the query kept. The port: the
  filter's; else the scheme's well-known port when the filter names a scheme; else the
  listener's declared port (``RequestRedirect.listener_port``, set by the source; the scheme's
  port when it is None), never the local port ingressd listens on; left out of the Location
  when it is the scheme's (80 for http, 443 for https). ``ReplacePrefixMatch`` replaces the
  route's matched prefix (``Route.path``) segment-wise: ``/prefix`` → ``/one`` makes
  ``/prefix/two`` ``/one/two`` and ``/prefix`` ``/one``; → ``/`` makes ``/prefix/two``
  ``/two``. The answer is ``_redirects.Redirect``'s, as ``permanent-redirect``'s (the host
  checked as for every redirect ingressd makes; a host that cannot be put in a URL gets 400).
- ``URLRewrite``: the backend is sent the new path (percent-encoded as ``rewrite-target``'s,
  ``_rewrites.rewritten_target``; the query kept) and/or the new Host (``X-Forwarded-Host`` keeps the
  client's, as ``upstream-vhost``). Routing and the other features saw the original request.
- ``RequestMirror``: ``_mirroring.Mirror`` (as ``mirror-target``'s) sends a copy of each forwarded request to
  the backend's endpoints in turn (plain HTTP, the client's Host and request URI), its answer
  discarded, bounded as ``mirror-target`` copies are (``--mirror-max-in-flight``,
  ``--mirror-max-body-size``); ``percent`` < 100 mirrors that share of the requests, spread
  evenly (every request counted: exactly ``percent`` of each hundred). A backend without
  ready endpoints (or an unusable reference) mirrors nothing; the request itself is served.
- ``CORS``: as the Gateway API says (the conformance test ``HTTPRouteCORS``), which differs
  from ``enable-cors`` in its matching: an origin ``https://*.example.com`` allows any number
  of labels before ``.example.com``; ``*`` in the methods or headers answers the preflight
  with what it asked for; ``*`` origins with credentials echo the origin (never ``*`` with
  credentials). A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``)
  is answered 204 by ingressd and never forwarded; from an origin not allowed it gets no
  ``Access-Control-*`` header. Other requests from an allowed origin get Allow-Origin,
  Allow-Credentials and Expose-Headers on their answer (replacing the backend's); ``Vary:
  Origin`` whenever the answer depends on the origin. The work is ``_cors_policy.CorsPolicy``'s,
  as ``enable-cors``'s, the differences given as its parameters.
- ``ExtensionRef``: handled by the plugin that answers the hook ``ingressd_filter_extension``
  for it (the plugin manager asks, after this hook); its features run in the phases they
  declare. A route whose ExtensionRef no plugin handles is not served (its object is rejected,
  saying which reference), never served without what it asks.

- ``ClientCertificateValidation`` (not an HTTPRoute filter: a Gateway's ``spec.tls.frontend``, put
  on the routes of its HTTPS listeners by the source): auth_tls's ``ListenerValidation``, whose
  ``client_auth`` the route table gives to the TLS handshakes of the route's host.

A ``RequestRedirect`` together with a ``URLRewrite`` (the specification forbids it; the
translation refuses it) is refused here too.
"""

from __future__ import annotations

import re
from typing import Any

from ingressd import AnnotationError, Phase, hookimpl
from ingressd.config.filters import (
    CORS,
    REPLACE_FULL_PATH,
    ClientCertificateValidation,
    REPLACE_PREFIX_MATCH,
    ExtensionRef,
    HeaderChanges,
    PathModifier,
    RequestHeaderModifier,
    RequestMirror,
    RequestRedirect,
    ResponseHeaderModifier,
    URLRewrite,
)
from ingressd import parse_url

from .auth_tls import ListenerValidation
from ._header_changes import from_filter, set_host
from ._header_values import Value, parse_value
from ._redirects import DEFAULT_PORTS, Redirect, location
from ._cors_policy import CorsPolicy
from ._mirroring import Target, mirror_to
from ._rewrites import rewritten_target

PHASE = Phase.REWRITE - 1  # as a location's ``return``: before ingressd's other rewrite-phase features


# -- headers -----------------------------------------------------------------------------------


class RequestHeaders:
    """RequestHeaderModifier: the changes on the complete request headers the backend is sent."""

    phase = PHASE

    def __init__(self, changes: HeaderChanges):
        self._change = from_filter(changes, "RequestHeaderModifier")

    def upstream_request(self, exchange: Any, headers: list) -> None:
        self._change.apply(headers, exchange)


class ResponseHeaders:
    """ResponseHeaderModifier: the changes on every answer of the route."""

    phase = PHASE

    def __init__(self, changes: HeaderChanges):
        self._change = from_filter(changes, "ResponseHeaderModifier")

    def response(self, exchange: Any, status: int, headers: list) -> None:
        self._change.apply(headers, exchange)


# -- paths -------------------------------------------------------------------------------------


def modified_path(path: str, modifier: PathModifier, prefix: str) -> str:
    """``path`` as ``modifier`` makes it; ``prefix``: the route's matched path prefix."""
    if modifier.type == REPLACE_FULL_PATH:
        return modifier.value
    cut = prefix.rstrip("/")
    rest = path[len(cut):] if path.startswith(cut) else path  # "" or "/…": the match is segment-wise
    value = modifier.value.rstrip("/")
    if not rest or rest == "/":
        return value + rest if value else "/"
    return value + rest


def _check_modifier(modifier: PathModifier | None, route: Any, which: str) -> None:
    if modifier is None:
        return
    if modifier.type not in (REPLACE_FULL_PATH, REPLACE_PREFIX_MATCH):
        raise AnnotationError(f"{which}: path modifier {modifier.type!r} is not ReplaceFullPath or ReplacePrefixMatch")
    if modifier.type == REPLACE_PREFIX_MATCH and route.path_type not in ("Prefix", "PathPrefix"):
        raise AnnotationError(f"{which}: ReplacePrefixMatch needs a PathPrefix match, the route's is "
                              f"{route.path_type}")


# -- redirect and rewrite ---------------------------------------------------------------------


class FilterLocation:
    """RequestRedirect's Location: the request's scheme, host, port and path with the filter's
    replacements (``_redirects.location``)."""

    def __init__(self, redirect: RequestRedirect, prefix: str):
        self._redirect = redirect
        self._prefix = prefix

    def __call__(self, exchange: Any) -> bytes | None:
        redirect = self._redirect
        scheme = redirect.scheme or exchange.scheme
        if redirect.port is not None:
            port = redirect.port
        elif redirect.scheme is not None:
            port = DEFAULT_PORTS.get(scheme, redirect.listener_port)
        else:
            port = redirect.listener_port
        if redirect.path is None:
            uri = exchange.target if exchange.target.startswith(b"/") else rewritten_target(
                exchange.path, exchange.query)
        else:
            uri = rewritten_target(modified_path(exchange.path, redirect.path, self._prefix), exchange.query)
        return location(scheme, (redirect.hostname or exchange.host).lower(), port, uri)


class Rewrite:
    """URLRewrite: the path and/or Host the backend is sent."""

    phase = PHASE

    def __init__(self, rewrite: URLRewrite, prefix: str):
        self._path = rewrite.path
        self._prefix = prefix
        self._host = set_host(Value((rewrite.hostname.encode("ascii"),))) if rewrite.hostname else None
        if self._path is not None:
            self.request = self._rewrite_path
        if self._host is not None:
            self.upstream_request = self._rewrite_host

    def _rewrite_path(self, exchange: Any) -> None:
        path = modified_path(exchange.path, self._path, self._prefix)
        exchange.target = rewritten_target(path, exchange.query)

    def _rewrite_host(self, exchange: Any, headers: list) -> None:
        self._host.apply(headers, exchange)


# -- mirror ------------------------------------------------------------------------------------


class Sampled:
    """RequestMirror: the copies go to the backend's endpoints in turn, ``percent`` of the
    requests (every request counted, spread evenly)."""

    phase = PHASE

    def __init__(self, mirrors: tuple, percent: int):
        self._mirrors = mirrors
        self._percent = percent
        self._count = 0
        self._next = 0

    def request(self, exchange: Any) -> None:
        count = self._count = self._count + 1
        if count * self._percent // 100 == (count - 1) * self._percent // 100:
            return None  # not this one
        mirror = self._mirrors[self._next % len(self._mirrors)]
        self._next += 1
        return mirror.request(exchange)


def _mirror(mirror: RequestMirror, context: Any) -> Sampled | None:
    backend = mirror.backend
    if backend is None or not backend.endpoints or mirror.percent <= 0 or context.subrequests is None:
        return None
    limits = context.plugin_state("gateway_filters").setdefault("mirror_limits", {})
    host = parse_value("$host")
    mirrors = []
    for endpoint in backend.endpoints:
        address = f"[{endpoint.address}]" if ":" in endpoint.address else endpoint.address
        text = f"http://{address}:{endpoint.port}"
        mirrors.append(mirror_to(Target(parse_url(text), None, text), True, host, context, limits))
    return Sampled(tuple(mirrors), min(mirror.percent, 100))


# -- CORS --------------------------------------------------------------------------------------


_LABELS = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")  # what a wildcard origin's "*" stands for


class _Origins:
    """Gateway API origin matching: ``*``, exact (case-insensitive), or ``scheme://*.host[:port]``
    where ``*`` stands for one or more labels."""

    def __init__(self, origins: tuple[str, ...]):
        self.any = "*" in origins
        self._exact = frozenset(origin.lower() for origin in origins if "://*" not in origin)
        self._wildcards = []
        for origin in origins:
            if "://*" in origin:
                scheme, _, rest = origin.lower().partition("://*")
                self._wildcards.append((scheme + "://", rest))  # rest: ".example.com[:port]"

    def __contains__(self, origin: str) -> bool:
        if self.any or origin in self._exact:
            return True
        for prefix, suffix in self._wildcards:
            if origin.startswith(prefix) and origin.endswith(suffix) and len(origin) > len(prefix) + len(suffix):
                if _LABELS.fullmatch(origin[len(prefix):-len(suffix)]):
                    return True
        return False


class _Preflight:
    """The Gateway API's Allow-Methods, Allow-Headers and Max-Age for one preflight: ``*``
    answers with what the preflight asked."""

    def __init__(self, cors: CORS):
        self._any_method = "*" in cors.allow_methods
        self._methods = ", ".join(cors.allow_methods).encode("ascii")
        self._any_header = "*" in cors.allow_headers
        self._headers = ", ".join(cors.allow_headers).encode("ascii")
        self._max_age = b"%d" % cors.max_age

    def __call__(self, exchange: Any) -> list:
        headers = []
        if self._any_method or self._methods:
            method = exchange.headers.get(b"access-control-request-method")
            headers.append((b"access-control-allow-methods", method if self._any_method else self._methods))
        requested = exchange.headers.get(b"access-control-request-headers")
        if self._any_header:
            if requested:
                headers.append((b"access-control-allow-headers", requested))
        elif self._headers:
            headers.append((b"access-control-allow-headers", self._headers))
        headers.append((b"access-control-max-age", self._max_age))
        return headers


class Cors(CorsPolicy):
    """CORS: the preflight answered here, the Access-Control-* headers on allowed answers
    (``_cors_policy.CorsPolicy``, the code ``enable-cors`` uses, with the Gateway API's rules)."""

    def __init__(self, cors: CORS):
        origins = _Origins(cors.allow_origins)
        expose = ", ".join(cors.expose_headers).encode("ascii")
        super().__init__(PHASE, origins.any, origins, cors.allow_credentials,
                         ((b"access-control-expose-headers", expose),) if expose else (),
                         star_for_any=False, answer_refused_preflight=True, preflight=_Preflight(cors))


# -- the hook ----------------------------------------------------------------------------------


def features_for(route: Any, context: Any) -> list:
    """The features of ``route.filters``, in their order; AnnotationError for one that cannot be served."""
    filters = route.filters
    kinds = {type(item) for item in filters}
    if RequestRedirect in kinds and URLRewrite in kinds:
        raise AnnotationError("RequestRedirect and URLRewrite cannot be used together on one rule")
    features: list = []
    for item in filters:
        if isinstance(item, RequestHeaderModifier):
            features.append(RequestHeaders(item.changes))
        elif isinstance(item, ResponseHeaderModifier):
            features.append(ResponseHeaders(item.changes))
        elif isinstance(item, RequestRedirect):
            _check_modifier(item.path, route, "RequestRedirect")
            features.append(Redirect(item.status_code, FilterLocation(item, route.path)))
        elif isinstance(item, URLRewrite):
            _check_modifier(item.path, route, "URLRewrite")
            if item.hostname is not None or item.path is not None:
                features.append(Rewrite(item, route.path))
        elif isinstance(item, RequestMirror):
            mirror = _mirror(item, context)
            if mirror is not None:
                features.append(mirror)
        elif isinstance(item, CORS):
            features.append(Cors(item))
        elif isinstance(item, ClientCertificateValidation):
            features.append(ListenerValidation(item.client_auth, item.insecure_fallback))
        elif isinstance(item, ExtensionRef):
            continue  # the plugin claiming it gives its features (hook ingressd_filter_extension)
        else:
            raise AnnotationError(f"filter {type(item).__name__} is not one ingressd applies")
    return features


@hookimpl
def ingressd_filters():
    """Every filter type but ExtensionRef (a plugin claims those one by one)."""
    return (RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror, CORS,
            ClientCertificateValidation)


@hookimpl
def ingressd_route_features(route, values, context):
    if not route.filters:
        return None
    return features_for(route, context) or None
