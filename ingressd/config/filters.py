"""A route's request and response filters, as data (Gateway API HTTPRoute filters).

A source of routes puts them on ``Route.filters`` in the order the object lists them; the
request path applies them through the ``gateway_filters`` built-in plugin, which reuses the
implementations the annotations have (a header change, a redirect, a rewrite, a mirror, CORS),
so one behaviour has one implementation. Ingress routes have none.

Every value here is immutable and already validated by the source: names are lower-case
header names, statuses and ports are in range, a ``PathModifier`` of type ``REPLACE_PREFIX_MATCH``
only appears on a route whose path type is a prefix (its ``Route.path`` is the matched prefix).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingressd.config.model import Backend

REPLACE_FULL_PATH = "ReplaceFullPath"
REPLACE_PREFIX_MATCH = "ReplacePrefixMatch"


@dataclass(frozen=True, slots=True)
class HeaderChanges:
    """HTTPHeaderFilter: ``set`` replaces every value of a name (or adds it), ``add`` appends a
    value (a new line, or joined with ``,`` by the receiver), ``remove`` drops every value.
    Names are lower case; values are sent as given (no variables are expanded)."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestHeaderModifier:
    changes: HeaderChanges


@dataclass(frozen=True, slots=True)
class ResponseHeaderModifier:
    changes: HeaderChanges


@dataclass(frozen=True, slots=True)
class PathModifier:
    """HTTPPathModifier: the whole path replaced (``REPLACE_FULL_PATH``), or the route's matched
    prefix replaced by ``value`` (``REPLACE_PREFIX_MATCH``); the query string is kept."""

    type: str
    value: str


@dataclass(frozen=True, slots=True)
class RequestRedirect:
    """HTTPRequestRedirectFilter: answered by ingressd, never forwarded. ``None`` keeps the
    request's own value. ``port``: None keeps the listener's declared port (none for the
    scheme's default port: 80 for http, 443 for https); never the local port ingressd listens on."""

    scheme: str | None = None  # "http" or "https"
    hostname: str | None = None
    port: int | None = None
    path: PathModifier | None = None
    status_code: int = 302  # 301 or 302 (the standard channel), 303, 307, 308 (extended)
    # The declared port of the listener the route is served for (set by the source); None: the
    # scheme's default port. Used when neither ``port`` nor ``scheme`` is given.
    listener_port: int | None = None


@dataclass(frozen=True, slots=True)
class URLRewrite:
    """HTTPURLRewriteFilter: the Host header the backend sees and/or the path it sees."""

    hostname: str | None = None
    path: PathModifier | None = None


@dataclass(frozen=True, slots=True)
class RequestMirror:
    """HTTPRequestMirrorFilter: a copy of each request (or ``percent`` of them) sent to
    ``backend``; its answer is discarded. ``backend`` None: the reference could not be used
    (nothing is mirrored; the route's status says why)."""

    backend: Backend | None
    percent: int = 100  # percent or fraction (numerator/denominator) as a percentage, 0–100


@dataclass(frozen=True, slots=True)
class CORS:
    """HTTPCORSFilter: a preflight is answered by ingressd and never forwarded; an allowed
    origin's actual request gets the Access-Control-* response headers."""

    allow_origins: tuple[str, ...] = ()  # "*", "https://a.example", "https://*.example.com"
    allow_methods: tuple[str, ...] = ()  # "*" or methods
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age: int = 5  # seconds (the Gateway API's default)


@dataclass(frozen=True, slots=True)
class ExtensionRef:
    """LocalObjectReference to an extension: an ingressd plugin that declared it handles
    ``group``/``kind`` (a route whose ExtensionRef no plugin handles is not served: never fail open)."""

    group: str
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class ClientCertificateValidation:
    """A Gateway's frontend TLS validation (``spec.tls.frontend``), on the routes of the HTTPS
    listeners it applies to: the TLS handshakes of the route's host ask for a certificate under
    ``client_auth`` (a ``tls.client_auth.ClientAuth``; one with ``refuse``: AllowValidOnly, the
    handshake fails without a valid one); a request whose connection was not verified under it
    is refused, unless ``insecure_fallback`` (AllowInsecureFallback: every client served)."""

    client_auth: Any
    insecure_fallback: bool = False


Filter = (RequestHeaderModifier | ResponseHeaderModifier | RequestRedirect | URLRewrite | RequestMirror
          | CORS | ExtensionRef | ClientCertificateValidation)
