"""A consistent-hash ring over endpoints: a key goes to the same endpoint in every process.

Each endpoint owns ``POINTS`` points on a 64-bit ring (BLAKE2b of ``address:port#i``); a key
goes to the owner of the first point at or after its own hash. The ring depends only on the
set of endpoints (not their order, not the process), so replicas and restarts agree, and an
endpoint added or removed moves only the keys of the arcs it takes or gives back (about
1/n of them), as ingress-nginx's ``resty.chash`` does. Used by session affinity
(``affinity-mode: balanced``) and ``upstream-hash-by``.
"""

from __future__ import annotations

from bisect import bisect_left
from hashlib import blake2b
from typing import Any, Callable, Sequence

POINTS = 160  # points per endpoint: ketama's and resty.chash's count; spreads keys within a few per cent


def key_hash(key: bytes) -> int:
    return int.from_bytes(blake2b(key, digest_size=8).digest(), "big")


class Ring:
    """The endpoints (or any members, each placed by its ``name``) on the ring; ``find(key)`` →
    one, None when there are none."""

    __slots__ = ("endpoints", "_points", "_owners")

    def __init__(self, endpoints: Sequence[Any], name: Callable[[Any], str] | None = None):
        self.endpoints = tuple(endpoints)
        placed = []
        for endpoint in self.endpoints:
            # ``name``: what places a member on the ring (an endpoint's address:port by default)
            label = name(endpoint) if name is not None else f"{endpoint.address}:{endpoint.port}"
            prefix = f"{label}#".encode("utf-8")
            for index in range(POINTS):
                placed.append((key_hash(prefix + str(index).encode("ascii")), label, endpoint))
        placed.sort(key=lambda point: point[:2])  # ties broken by the endpoint's name, not by input order
        self._points = [point for point, _, _ in placed]
        self._owners = [endpoint for _, _, endpoint in placed]

    def find(self, key: bytes) -> Any:
        points = self._points
        if not points:
            return None
        index = bisect_left(points, key_hash(key))
        return self._owners[index if index < len(points) else 0]
