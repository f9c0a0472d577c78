"""``upstream-hash-by``: each request to the endpoint a consistent hash of its key picks, as ingress-nginx's chash balancer.

ingress-nginx (``rootfs/etc/nginx/lua/balancer/chash.lua``) evaluates the annotation's text with
its variables (``util.parse_complex_value``: ``$name``, ``${name}``, literal text between) for
each request and looks the result up on a consistent-hash ring of the endpoints
(``resty.chash``). Here the ring is ``_chash.Ring``: it depends only on the set of endpoints, so
every replica sends a key to the same endpoint, and an endpoint added takes only about 1/n of
the keys (measured in tests/test_plugin_upstream_hash.py). The variables: ``$request_uri``,
``$remote_addr`` (the client's address, behind trusted proxies the real one), ``$host``,
``$uri``, ``$args`` / ``$query_string``, ``$scheme``, ``$request_method``, ``$http_NAME`` (a
request header, ``_`` for ``-``), ``$cookie_NAME`` and ``$arg_NAME`` (a query argument, raw);
one that is absent counts as empty, as in nginx. Any other variable rejects the Ingress (no
guessing at what nginx would have made of it).

As with ingress-nginx, a retry goes to the same endpoint (the key has not changed), and
``affinity: cookie`` wins when both are set (``balancer.lua`` get_implementation).
``upstream-hash-by-subset`` is not implemented: an Ingress that sets it is not served.
"""

from __future__ import annotations

import re
from typing import Any

from ingressd import Annotation, AnnotationError, Phase, hookimpl

from ._cookies import cookie

from ingressd_plugins._chash import Ring

# util.lua parse_complex_value: \$var (literal), ${var}, $var, or text ("jiox": case-insensitive)
_PART = re.compile(r"(\\\$[0-9a-zA-Z_]+)|\$\{([0-9a-zA-Z_]+)\}|\$([0-9a-zA-Z_]+)|(\$|[^$\\]+)")
_SIMPLE = frozenset(("request_uri", "remote_addr", "host", "uri", "args", "query_string", "scheme",
                     "request_method"))
_PREFIXED = ("http_", "cookie_", "arg_")


def parse_hash_by(value: str) -> tuple | None:
    """The annotation's text → parts: ``(None, text)`` for literal text, ``(variable, argument)``
    for a variable; None for an empty value (no hashing)."""
    if not value.strip():
        return None
    parts: list[tuple] = []
    for found in _PART.finditer(value):
        literal, braced, plain, text = found.groups()
        name = braced or plain
        if name is None:
            parts.append((None, (literal or text).encode("utf-8")))
            continue
        name = name.lower()
        if name in _SIMPLE:
            parts.append((name, None))
            continue
        for prefix in _PREFIXED:
            if name.startswith(prefix) and len(name) > len(prefix):
                argument = name[len(prefix):]
                if prefix == "http_":
                    argument = argument.replace("_", "-")
                parts.append((prefix, argument.encode("latin-1")))
                break
        else:
            raise AnnotationError(
                f"${name} is not a variable ingressd hashes on (it knows $request_uri, $remote_addr, $host, $uri, "
                "$args, $query_string, $scheme, $request_method, $http_NAME, $cookie_NAME and $arg_NAME)")
    return tuple(parts)


def _argument(query: bytes, name: bytes) -> bytes:
    for pair in query.split(b"&"):
        key, _, value = pair.partition(b"=")
        if key.lower() == name:  # nginx's ngx_http_arg compares names case-insensitively
            return value
    return b""


def request_key(parts: tuple, exchange) -> bytes:
    """The hash key of one request: the annotation's text with its variables' values."""
    pieces = []
    for kind, argument in parts:
        if kind is None:
            pieces.append(argument)
        elif kind == "request_uri":
            pieces.append(exchange.request_uri)
        elif kind == "remote_addr":
            pieces.append(exchange.client_ip.encode("ascii"))
        elif kind == "host":
            pieces.append(exchange.host.encode("latin-1"))
        elif kind == "uri":
            pieces.append(exchange.path.encode("utf-8"))
        elif kind in ("args", "query_string"):
            pieces.append(exchange.query)
        elif kind == "scheme":
            pieces.append(exchange.scheme.encode("ascii"))
        elif kind == "request_method":
            pieces.append(exchange.method)
        elif kind == "http_":
            pieces.append(exchange.headers.get(argument) or b"")
        elif kind == "cookie_":
            pieces.append(cookie(exchange.headers, argument) or b"")
        else:  # arg_
            pieces.append(_argument(exchange.query, argument))
    return b"".join(pieces)


class HashedEndpoint:
    """One request's balancer: the endpoint its key hashes to, on every try."""

    __slots__ = ("endpoint",)

    def __init__(self, endpoint: Any):
        self.endpoint = endpoint

    def pick(self, exclude=()) -> Any:
        return self.endpoint


class UpstreamHash:
    """The route's consistent hashing: ``request`` gives the exchange the endpoint of its key."""

    phase = Phase.PROXY

    def __init__(self, parts: tuple):
        self.parts = parts
        self._rings: dict[int, tuple[Any, Ring]] = {}  # id(backend) → (backend, its ring), built at first use

    def request(self, exchange) -> None:
        backend = exchange.route.backend
        if not backend.endpoints:
            return None  # a 503, or the default-backend annotation's Service
        known = self._rings.get(id(backend))
        if known is None or known[0] is not backend:
            known = self._rings[id(backend)] = (backend, Ring(backend.endpoints))
        exchange.balancer = HashedEndpoint(known[1].find(request_key(self.parts, exchange)))
        return None


@hookimpl
def ingressd_annotations():
    return [Annotation("upstream-hash-by", parse_hash_by, None,
                       "send each request to the endpoint a consistent hash of this text (with variables) picks")]


@hookimpl
def ingressd_route_features(route, values, context):
    parts = values.get("upstream-hash-by")
    if not parts or values.get("affinity") == "cookie":  # affinity wins, as in ingress-nginx
        return None
    return [UpstreamHash(parts)]
