"""The distinct annotation-value tuples (``Route.features``) of a configuration's routes, followed
from one configuration to the next in proportion to what changed.

The routes of one Ingress share one tuple of parsed annotation values, and every Ingress without
annotations of ours shares one with all the others: a plugin deciding on a whole configuration
(``ingressd_host_routes``: from-to-www-redirect, server-alias) reads each distinct tuple once, not
every route. Finding them is a walk of every route (30,000 at 10,000 Ingresses, two plugins, on
every change); a ``ValuesInUse`` counts the tuples of the routes and, for the next configuration,
counts only the routes in the window where its routes differ from the last one's (``config.window``,
by identity) in and out. Each server keeps its own (``BuildContext.values_in_use``); the module's
``values_in_use`` function remembers nothing and walks the routes.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Sequence

from ingressd.config.window import window


def values_in_use(routes: Sequence) -> Mapping[int, tuple]:
    """{id(tuple): tuple}: the distinct ``Route.features`` tuples of ``routes``, by identity (a walk
    of every route; a server follows them from build to build: ``BuildContext.values_in_use``)."""
    return {id(route.features): route.features for route in routes}


class ValuesInUse:
    """``values_in_use`` with a memory: the counts kept for the last routes asked about, so the next
    routes cost the window where they differ. One per server (kept in its plugin state)."""

    def __init__(self) -> None:
        self._routes: Sequence | None = ()
        self._counts: dict[int, int] = {}  # id(tuple) → routes with it
        self._values: dict[int, tuple] = {}  # id(tuple) → the tuple (kept: its id stays its own)
        self._view: Mapping[int, tuple] = MappingProxyType(self._values)

    def __call__(self, routes: Sequence) -> Mapping[int, tuple]:
        """The distinct tuples of ``routes``: a read-only view of the counts, to read before the
        next call (it follows the routes last asked about)."""
        if routes is self._routes:
            return self._view
        counts, values = self._counts, self._values
        # None while counting: if this raised half-way, the next call counts from nothing.
        previous, self._routes = self._routes, None
        if previous is None:
            counts.clear()
            values.clear()
            previous = ()
        if type(routes) not in (tuple, list):
            routes = tuple(routes)
        start, old_end, new_end = window(previous, routes)
        for route in previous[start:old_end]:
            key = id(route.features)
            left = counts[key] - 1
            if left:
                counts[key] = left
            else:
                del counts[key], values[key]
        for route in routes[start:new_end]:
            features = route.features
            key = id(features)
            known = counts.get(key)
            if known is None:
                counts[key] = 1
                values[key] = features
            else:
                counts[key] = known + 1
        self._routes = routes
        return self._view
