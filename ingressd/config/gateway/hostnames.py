"""Hostnames of a route on a listener: the Gateway API's intersection (HTTPRoute
``spec.hostnames`` with a listener's ``hostname``).

- A listener without a hostname takes the route's hostnames as they are (a route without any:
  every host, ``""``).
- A route without hostnames takes the listener's.
- Otherwise each route hostname is kept where it and the listener's match: equal; a wildcard
  (``*.example.com``, any number of labels in front) matching the other's name; two wildcards,
  the longer of them. An empty result means the route does not attach to that listener
  (NoMatchingListenerHostname).

Names are lower-cased (DNS names compare case-insensitively).
"""

from __future__ import annotations

from typing import Sequence

ANY = ""  # every host (the route table's rule without host)


def _covers(wildcard: str, name: str) -> bool:
    """``*.example.com`` covers ``a.example.com`` and ``a.b.example.com`` (not ``example.com``)."""
    return name.endswith(wildcard[1:]) and len(name) > len(wildcard) - 1


def _pair(listener: str, route: str) -> str | None:
    if listener == route:
        return route
    listener_wild, route_wild = listener.startswith("*."), route.startswith("*.")
    if listener_wild and route_wild:
        if route.endswith(listener[1:]):
            return route  # *.foo.example.com within *.example.com
        if listener.endswith(route[1:]):
            return listener
        return None
    if listener_wild:
        return route if _covers(listener, route) else None
    if route_wild:
        return listener if _covers(route, listener) else None
    return None


def intersect(listener: str | None, route_hostnames: Sequence[str]) -> tuple[str, ...]:
    """The hosts a route serves on a listener (``ANY`` for every host); () when none."""
    names = tuple(dict.fromkeys(name.lower() for name in route_hostnames))
    if not listener:
        return names or (ANY,)
    listener = listener.lower()
    if not names:
        return (listener,)
    found = (_pair(listener, name) for name in names)
    return tuple(dict.fromkeys(name for name in found if name is not None))
