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

Listener isolation (``claimed_by_another``): a request is served only by the routes of the most
specific listener of its port that matches its host, so a route host that every name it stands
for would find a more specific listener for is not served through the less specific one (a
route on a listener without hostname naming ``*.example.com`` when a ``*.example.com`` listener
exists). A wildcard host that only some of its names leave (``*.example.com`` beside a
``*.foo.example.com`` listener) is kept: the route table tries the more specific host first and
never falls back to a less specific one for a path.
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


def _within(name: str, hostname: str) -> bool:
    """Every name ``name`` stands for (a wildcard: each name it covers) matches the listener
    hostname ``hostname``."""
    if not hostname.startswith("*."):
        return name == hostname
    if name.startswith("*."):
        return name == hostname or name.endswith(hostname[1:])
    return _covers(hostname, name)


def _more_specific(hostname: str, than: str | None) -> bool:
    """A listener hostname is more specific than another: any than none, a name than a wildcard,
    a longer wildcard suffix than a shorter one it lies within."""
    if not than:
        return bool(hostname)
    if not than.startswith("*.") or hostname == than:
        return False
    return not hostname.startswith("*.") or hostname.endswith(than[1:])


def claimed_by_another(name: str, listener: str | None, others: Sequence[str | None]) -> bool:
    """Whether the route host ``name`` (attached through a listener with hostname ``listener``)
    belongs wholly to a more specific listener among ``others`` (the hostnames of the other usable
    listeners on the same port): then it is not served through ``listener``."""
    if name == ANY:
        return False
    return any(other and _more_specific(other, listener) and _within(name, other) for other in others)

