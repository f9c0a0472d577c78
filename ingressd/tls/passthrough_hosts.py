"""The TLS hosts passed through by SNI name (``Config.passthrough``: Gateway API TLSRoutes),
prepared once per route table for ``tls.passthrough.PassthroughRouter``.

A ClientHello's name is looked up exactly first, then against the wildcards from the most
specific: ``*.example.com`` takes any name below ``example.com`` (``a.example.com``,
``a.b.example.com``; not ``example.com``), as the Gateway API's hostnames do, and
``*.b.example.com`` wins over it for ``a.b.example.com``. Two routes naming one host: the first
(the oldest TLSRoute, as the translator orders them) keeps it. Each host has its weighted
backend set (``config.weighted.WeightedBalancers``): one member per connection, an unusable
member's share (or every connection, when all weights are 0) closed.
"""

from __future__ import annotations

from typing import Callable, Iterable

from ingressd.config.model import PassthroughRoute
from ingressd.config.weighted import WeightedBalancers


class PassthroughHosts:
    """SNI name → the weighted set of balancers its connections go to."""

    __slots__ = ("exact", "wildcards")

    def __init__(self, routes: Iterable[PassthroughRoute], balancer_for: Callable, draw=None):
        self.exact: dict[str, WeightedBalancers] = {}
        self.wildcards: dict[str, WeightedBalancers] = {}  # ".example.com" (from "*.example.com") → set
        for route in routes:
            host = route.host.lower()
            if host.startswith("*."):
                table, key = self.wildcards, host[1:]
            else:
                table, key = self.exact, host
            if key not in table:
                table[key] = WeightedBalancers(route.backends, balancer_for, draw)

    def lookup(self, name: str) -> WeightedBalancers | None:
        """The set for the SNI ``name`` (lower-case), or None: not a passthrough host."""
        found = self.exact.get(name)
        if found is not None or not self.wildcards:
            return found
        at = name.find(".")
        while at > 0:  # a label in front of the suffix, longest suffix (most specific) first
            found = self.wildcards.get(name[at:])
            if found is not None:
                return found
            at = name.find(".", at + 1)
        return None

    def __len__(self) -> int:
        return len(self.exact) + len(self.wildcards)
