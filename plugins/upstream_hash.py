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

``upstream-hash-by-subset: "true"`` is ingress-nginx's ``chashsubset.lua``: the endpoints (here
in address order, so every replica makes the same sets) are cut into sets of
``upstream-hash-by-subset-size`` (default 3; ``0`` means 3, as ingress-nginx reads it), the last
one filled up with endpoints from the start; the key hashes to a set on a ring of the sets, and
each request goes to an endpoint of that set at random (a retry: one of the set not tried yet,
while one remains).
"""

from __future__ import annotations

import math
import random
import re
from typing import Any

from ingressd import Annotation, AnnotationError, Phase, hookimpl, parse_bool, parse_int
from ingressd import same_for_every_path

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

    def affinitized(self) -> bool:
        """Never bound to the route's backend: a canary's rule decides first (chash.lua's is_affinitized)."""
        return False


class HashedSubset:
    """One request's balancer with ``upstream-hash-by-subset``: an endpoint of its key's set, at random."""

    __slots__ = ("subset", "_rng")

    def __init__(self, subset: tuple, rng: random.Random):
        self.subset = subset
        self._rng = rng

    def pick(self, exclude=()) -> Any:
        candidates = [endpoint for endpoint in self.subset if endpoint not in exclude] or self.subset
        return self._rng.choice(candidates)

    def affinitized(self) -> bool:
        return False  # as HashedEndpoint: a canary's rule decides first


def subsets(endpoints, size: int) -> tuple[tuple, ...]:
    """chashsubset.lua's build_subset_map: the endpoints in address order cut into sets of
    ``size``, the last one filled up with endpoints from the start."""
    ordered = sorted(endpoints, key=lambda endpoint: (endpoint.address, endpoint.port))
    if not ordered:
        return ()
    count = math.ceil(len(ordered) / size)
    padded = ordered + [ordered[index % len(ordered)] for index in range(count * size - len(ordered))]
    return tuple(tuple(padded[start:start + size]) for start in range(0, count * size, size))


def _set_name(subset: tuple) -> str:
    return "set:" + ",".join(f"{endpoint.address}:{endpoint.port}" for endpoint in subset)


class UpstreamHash:
    """The route's consistent hashing: ``request`` gives the exchange the endpoint of its key
    (or, with ``subset_size``, the set of endpoints of its key)."""

    phase = Phase.PROXY

    def __init__(self, parts: tuple, subset_size: int | None = None, rng: random.Random | None = None):
        self.parts = parts
        self.subset_size = subset_size
        self._rng = rng or random.Random()
        self._rings: dict[int, tuple[Any, Ring]] = {}  # id(backend) → (backend, its ring), built at first use

    def request(self, exchange) -> None:
        backend = exchange.route.backend
        if not backend.endpoints:
            return None  # a 503, or the default-backend annotation's Service
        known = self._rings.get(id(backend))
        if known is None or known[0] is not backend:
            if self.subset_size:  # a ring of the sets, each placed by its members' names
                ring = Ring(subsets(backend.endpoints, self.subset_size), name=_set_name)
            else:
                ring = Ring(backend.endpoints)
            known = self._rings[id(backend)] = (backend, ring)
        found = known[1].find(request_key(self.parts, exchange))
        exchange.balancer = HashedSubset(found, self._rng) if self.subset_size else HashedEndpoint(found)
        return None


def _parse_subset_size(value: str) -> int:
    size = parse_int(0, 2**31 - 1)(value)
    return size or 3  # ingress-nginx: 0 means the default


@hookimpl
def ingressd_annotations():
    return [Annotation("upstream-hash-by", parse_hash_by, None,
                       "send each request to the endpoint a consistent hash of this text (with variables) picks"),
            Annotation("upstream-hash-by-subset", parse_bool, False,
                       "hash to a set of endpoints, then one of the set at random"),
            Annotation("upstream-hash-by-subset-size", _parse_subset_size, 3,
                       "how many endpoints a set has (default 3)")]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    parts = values.get("upstream-hash-by")
    if not parts or values.get("affinity") == "cookie":  # affinity wins, as in ingress-nginx
        return None
    return [UpstreamHash(parts, values.get("upstream-hash-by-subset-size") or 3
                         if values.get("upstream-hash-by-subset") else None)]
