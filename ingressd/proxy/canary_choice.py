"""Which backend a request of a route with a canary goes to: ingress-nginx's
``route_to_alternative_balancer`` (rootfs/etc/nginx/lua/balancer.lua), decided once per request.

1. A request affinitized to the main backend stays there (its balancer's ``affinitized()``:
   the session-affinity cookie names the main backend).
2. One affinitized to the canary goes there (the canary's balancer's ``affinitized()``): with
   ``affinity-canary-behavior: sticky`` (the default) the canary backend is sticky too, with the
   main route's cookie settings (the per-request balancer's ``alternative(backend, rule)``).
3. Otherwise the canary's rule decides (header, cookie, weight: ``rule.wants(exchange)``).

A balancer a request feature set without ``affinitized`` (the ``default-backend`` annotation's
Service) takes no part: the request goes there.
"""

from __future__ import annotations

from typing import Any


def choose(own: Any, entry: Any, exchange: Any) -> Any:
    """The balancer for ``exchange``: ``own`` is the one a request feature set (affinity,
    upstream-hash-by…) or None; ``entry`` the route's entry, with ``alternatives``."""
    rule, canary = entry.alternatives[0]
    if own is None:
        return canary.balancer if rule.wants(exchange) else entry.balancer
    affinitized = getattr(own, "affinitized", None)
    if affinitized is None:
        return own
    if affinitized():
        return own
    alternative = getattr(own, "alternative", None)
    other = alternative(canary.route.backend, rule) if alternative is not None else None
    if other is None:
        other = canary.balancer
    other_affinitized = getattr(other, "affinitized", None)
    if other_affinitized is not None and other_affinitized():
        return other
    return other if rule.wants(exchange) else own
