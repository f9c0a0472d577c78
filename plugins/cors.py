"""CORS for a location (``enable-cors``): answer preflights at the edge, add CORS headers to responses.

Annotations (ignored unless ``enable-cors: "true"``), with ingress-nginx's defaults:
``cors-allow-origin`` (``*``; or a list of ``scheme://host[:port]``, ``scheme://*.host[:port]``
with ``*`` standing for exactly one DNS label, and ``null``), ``cors-allow-methods``,
``cors-allow-headers``, ``cors-expose-headers`` (none), ``cors-allow-credentials`` (true),
``cors-max-age`` (1728000).

A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``, origin
allowed) is answered 204 in the REWRITE phase: before rate limits, allowlists and auth, and
never proxied. Other requests from an allowed origin are proxied and their responses (and
ingressd's own error responses) get the CORS headers, replacing any the backend set. A
request whose origin is not allowed gets no ``Access-Control-*`` header.

Where we differ from ingress-nginx, on purpose: origins are matched whole (nginx's regex is
anchored only at its end); an allowed origin is echoed with ``Vary: Origin`` (and every
response of a list-configured location carries ``Vary: Origin``, since it depends on it);
``*`` is never sent together with ``Allow-Credentials: true`` (the origin is echoed instead,
which is what browsers require); an invalid entry rejects the Ingress instead of falling back
to ``*``.
"""

from __future__ import annotations

import re

from ingressd import (
    Annotation,
    AnnotationError,
    LocalResponse,
    Phase,
    hookimpl,
    parse_bool,
    parse_int,
    parse_list,
)


DEFAULT_METHODS = "GET, PUT, POST, DELETE, PATCH, OPTIONS"
DEFAULT_HEADERS = (
    "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization"
)
DEFAULT_MAX_AGE = 1728000

_ORIGIN = re.compile(r"([a-z][a-z0-9+.-]*)://(\*\.)?([a-z0-9-]+(?:\.[a-z0-9-]+)*)(:[0-9]{1,5})?")
_LABEL = re.compile(r"[a-z0-9-]+")
_METHOD = re.compile(r"[A-Za-z]+")
_HEADER = re.compile(r"[A-Za-z0-9_-]+")

_CORS_HEADERS = frozenset(
    (
        b"access-control-allow-origin",
        b"access-control-allow-credentials",
        b"access-control-allow-methods",
        b"access-control-allow-headers",
        b"access-control-expose-headers",
        b"access-control-max-age",
    )
)


def parse_origins(value: str) -> tuple[str, ...]:
    """The allowed origins, lower-cased; ``("*",)`` if any entry is ``*``."""
    origins = []
    for item in parse_list(value):
        entry = item.lower().rstrip("/")
        if entry == "*":
            return ("*",)
        if entry != "null" and not _ORIGIN.fullmatch(entry):
            raise AnnotationError(f"{item!r} is not *, null or scheme://host[:port] (host may start with *.)")
        origins.append(entry)
    if not origins:
        raise AnnotationError("no origin given")
    return tuple(origins)


def _token_list(pattern: re.Pattern, what: str, allow_star: bool = False):
    def parse(value: str) -> str:
        items = parse_list(value)
        for item in items:
            if not (pattern.fullmatch(item) or (allow_star and item == "*")):
                raise AnnotationError(f"{item!r} is not a valid {what}")
        return ", ".join(items)

    return parse


class OriginMatcher:
    """Whole, case-insensitive matching of an ``Origin`` header against the allowed entries."""

    def __init__(self, origins: tuple[str, ...]):
        self._exact = frozenset(o for o in origins if "://*." not in o)
        # "https://*.example.com:8443" → ("https://", ".example.com", ":8443")
        self._wildcards = []
        for origin in origins:
            if "://*." in origin:
                scheme, _, rest = origin.partition("://*")
                match = re.fullmatch(r"(.*?)(:[0-9]+)?", rest)
                self._wildcards.append((scheme + "://", match.group(1), match.group(2) or ""))

    def __contains__(self, origin: str) -> bool:
        if origin in self._exact:
            return True
        for prefix, suffix, port in self._wildcards:
            if not origin.startswith(prefix):
                continue
            host = origin[len(prefix) :]
            if port:
                if not host.endswith(port):
                    continue
                host = host[: -len(port)]
            if host.endswith(suffix) and _LABEL.fullmatch(host[: -len(suffix)]):
                return True
        return False


class Cors:
    """Phase REWRITE: the preflight answer, and the CORS headers on every response."""

    phase = Phase.REWRITE

    def __init__(
        self,
        origins: tuple[str, ...] = ("*",),
        methods: str = DEFAULT_METHODS,
        headers: str = DEFAULT_HEADERS,
        expose: str = "",
        credentials: bool = True,
        max_age: int = DEFAULT_MAX_AGE,
    ):
        self._any = origins == ("*",)
        self._matcher = None if self._any else OriginMatcher(origins)
        self._credentials = credentials
        # The answer depends on the Origin header unless it is always a literal "*".
        self._vary = not (self._any and not credentials)
        common = [
            (b"access-control-allow-methods", methods.encode("ascii")),
            (b"access-control-allow-headers", headers.encode("ascii")),
        ]
        if expose:
            common.append((b"access-control-expose-headers", expose.encode("ascii")))
        common.append((b"access-control-max-age", b"%d" % max_age))
        self._common = tuple(common)
        self._with_credentials = ((b"access-control-allow-credentials", b"true"),) + self._common

    def _allowed(self, exchange) -> tuple[bytes, tuple] | None:
        """(Allow-Origin value, the other headers) for this request, or None: no CORS headers."""
        origin = exchange.headers.get(b"origin")
        if self._any:
            # Echo only what looks like an origin; anything else gets the plain "*".
            if origin is not None and self._credentials and _is_origin(origin):
                return origin, self._with_credentials
            return b"*", self._common
        if origin is None or origin.decode("latin-1").lower() not in self._matcher:
            return None
        return origin, self._with_credentials if self._credentials else self._common

    def request(self, exchange) -> LocalResponse | None:
        if exchange.method != b"OPTIONS" or exchange.headers.get(b"origin") is None:
            return None
        if exchange.headers.get(b"access-control-request-method") is None:
            return None
        if self._allowed(exchange) is None:
            return None  # not an allowed origin: the backend answers the OPTIONS request
        # The CORS headers themselves are added by ``response``, as for every response.
        return LocalResponse(204, [(b"content-type", b"text/plain; charset=utf-8")])

    def response(self, exchange, status: int, headers: list) -> None:
        if self._vary:
            _add_vary_origin(headers)
        allowed = self._allowed(exchange)
        if allowed is None:
            return
        allow_origin, others = allowed
        headers[:] = [pair for pair in headers if pair[0] not in _CORS_HEADERS]
        headers.append((b"access-control-allow-origin", allow_origin))
        headers.extend(others)


def _is_origin(value: bytes) -> bool:
    text = value.decode("latin-1").lower()
    return text == "null" or _ORIGIN.fullmatch(text) is not None and "://*." not in text


def _add_vary_origin(headers: list) -> None:
    for name, value in headers:
        if name == b"vary":
            tokens = {token.strip().lower() for token in value.split(b",")}
            if b"origin" in tokens or b"*" in tokens:
                return
    headers.append((b"vary", b"Origin"))


@hookimpl
def ingressd_annotations():
    return [
        Annotation("enable-cors", parse_bool, False, "answer CORS preflights and add CORS headers"),
        Annotation("cors-allow-origin", parse_origins, ("*",), "allowed origins: *, or a list (one-label *.host wildcards)"),
        Annotation("cors-allow-methods", _token_list(_METHOD, "method"), DEFAULT_METHODS, "Access-Control-Allow-Methods"),
        Annotation("cors-allow-headers", _token_list(_HEADER, "header name"), DEFAULT_HEADERS, "Access-Control-Allow-Headers"),
        Annotation("cors-expose-headers", _token_list(_HEADER, "header name", allow_star=True), "", "Access-Control-Expose-Headers"),
        Annotation("cors-allow-credentials", parse_bool, True, "send Access-Control-Allow-Credentials: true"),
        Annotation("cors-max-age", parse_int(0, 2**31 - 1), DEFAULT_MAX_AGE, "Access-Control-Max-Age, seconds"),
    ]


@hookimpl
def ingressd_route_features(route, values, context):
    if not values.get("enable-cors"):
        return None
    return Cors(
        origins=values.get("cors-allow-origin", ("*",)),
        methods=values.get("cors-allow-methods", DEFAULT_METHODS),
        headers=values.get("cors-allow-headers", DEFAULT_HEADERS),
        expose=values.get("cors-expose-headers", ""),
        credentials=values.get("cors-allow-credentials", True),
        max_age=values.get("cors-max-age", DEFAULT_MAX_AGE),
    )
