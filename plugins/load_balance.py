"""``load-balance``: ``round_robin`` (the default) or ``ewma``, as ingress-nginx's Lua balancers.

``ewma`` is ingress-nginx's ``rootfs/etc/nginx/lua/balancer/ewma.lua`` (after Finagle's
PeakEwma): each endpoint (``address:port``) has an exponentially weighted moving average of
its answers' upstream time (connect and response), decaying with a time constant of
``DECAY_TIME`` (10 s): after an answer taking ``rtt`` seconds, ``ewma = ewma·w + rtt·(1−w)``
with ``w = exp(−Δt/10)``, Δt the time since the endpoint last learned (the first answer sets
it outright). An endpoint's score is its average decayed towards 0 since then, so an endpoint
left alone for a while is tried again. Each pick takes two endpoints at random among those not
tried yet for the request (all of them when every one was) and sends to the lower score
(the power of two choices; a tie keeps the first drawn). An endpoint added to a Service starts
at the average of the others' (ingress-nginx's slow start); one removed forgets its average.

The averages are the server's (``BuildContext.plugin_state``), one table per Service port
(ingress-nginx's backend), kept across configuration changes for the endpoints that stay. The
route's balancer is the ``balancer`` its feature declares (read when the route's entry is
built); it learns from each exchange's ``upstream_started``/``upstream_ended`` and
``upstream_endpoint`` when the exchange is over (``on_finish``).

As in ingress-nginx, ``affinity: cookie`` and then ``upstream-hash-by`` win over
``load-balance``; its other values name those balancers (``chash``, ``chashsubset``,
``sticky_balanced``, ``sticky_persistent``), which ingress-nginx only configures through their
own annotations: they reject the Ingress here rather than guess.
"""

from __future__ import annotations

import math
import random
from typing import Any, Sequence

from ingressd import Annotation, AnnotationError, Phase, hookimpl

ROUND_ROBIN, EWMA = "round_robin", "ewma"
DECAY_TIME = 10.0  # seconds: ewma.lua's DECAY_TIME
PICK_SET_SIZE = 2  # ewma.lua's PICK_SET_SIZE: the power of two choices
_OTHERS = ("chash", "chashsubset", "sticky_balanced", "sticky_persistent")


def parse_load_balance(value: str) -> str | None:
    value = value.strip()
    if value == "":
        return None
    if value in _OTHERS:
        raise AnnotationError(f"load-balance {value} is chosen through its own annotations in ingressd "
                              "(affinity: cookie, upstream-hash-by, upstream-hash-by-subset)")
    if value not in (ROUND_ROBIN, EWMA):
        raise AnnotationError(f"expected round_robin or ewma, got {value!r}")
    return value


def _name(endpoint: Any) -> str:
    return f"{endpoint.address}:{endpoint.port}"


class EwmaStats:
    """One backend's endpoints' moving averages: ``score`` to pick, ``learn`` after an answer,
    ``sync`` when its endpoints change. ``clock``: ``seconds()`` (the reactor)."""

    def __init__(self, clock: Any, rng: random.Random | None = None):
        self.clock = clock
        self.rng = rng or random.Random()
        self.averages: dict[str, tuple[float, float]] = {}  # address:port → (ewma, last learned at)
        self.endpoints: frozenset[str] = frozenset()  # the backend's endpoints at the last sync

    def score(self, endpoint: Any, now: float) -> float:
        ewma, touched = self.averages.get(_name(endpoint), (0.0, 0.0))
        return _decayed(ewma, touched, 0.0, now)

    def learn(self, endpoint: Any, rtt: float) -> None:
        name = _name(endpoint)
        now = self.clock.seconds()
        known = self.averages.get(name)
        # The first answer sets it outright (ewma.lua: last touched at 0, epoch seconds ago).
        self.averages[name] = (rtt if known is None else _decayed(known[0], known[1], rtt, now), now)

    def sync(self, endpoints: Sequence[Any]) -> None:
        """The backend's endpoints now: forget the removed ones', start the added ones at the
        average of the others' (when any has one)."""
        names = frozenset(_name(endpoint) for endpoint in endpoints)
        if names == self.endpoints:
            return
        added, removed = names - self.endpoints, self.endpoints - names
        self.endpoints = names
        for name in removed:
            self.averages.pop(name, None)
        known = [self.averages[name][0] for name in names if name in self.averages and name not in added]
        if known and added:
            start, now = sum(known) / len(known), self.clock.seconds()
            for name in added:
                self.averages[name] = (start, now)


def _decayed(ewma: float, touched: float, rtt: float, now: float) -> float:
    weight = math.exp(-max(now - touched, 0.0) / DECAY_TIME)
    return ewma * weight + rtt * (1.0 - weight)


class EwmaBalancer:
    """A route's balancer (``pick(exclude)``, as ``RoundRobin``) over ``EwmaStats``."""

    __slots__ = ("endpoints", "stats")

    def __init__(self, endpoints: Sequence[Any], stats: EwmaStats):
        self.endpoints = tuple(endpoints)
        self.stats = stats

    def pick(self, exclude: Sequence[Any] = ()) -> Any:
        endpoints = self.endpoints
        if len(endpoints) < 2:
            return endpoints[0] if endpoints else None
        candidates = [endpoint for endpoint in endpoints if endpoint not in exclude] or list(endpoints)
        if len(candidates) == 1:
            return candidates[0]
        stats = self.stats
        drawn = stats.rng.sample(candidates, PICK_SET_SIZE)
        now = stats.clock.seconds()
        best, best_score = drawn[0], stats.score(drawn[0], now)
        for endpoint in drawn[1:]:
            score = stats.score(endpoint, now)
            if score < best_score:
                best, best_score = endpoint, score
        return best


class Ewma:
    """Phase PROXY: the route's balancer (``balancer``), and, per request, learning from its answer."""

    phase = Phase.PROXY

    def __init__(self, balancer: EwmaBalancer):
        self.balancer = balancer
        self._stats = balancer.stats

    def request(self, exchange) -> None:
        exchange.on_finish(lambda: self._learn(exchange))
        return None

    def _learn(self, exchange) -> None:
        endpoint = getattr(exchange, "upstream_endpoint", None)
        started, ended = exchange.upstream_started, exchange.upstream_ended
        if endpoint is not None and started and ended >= started:
            self._stats.learn(endpoint, ended - started)


@hookimpl
def ingressd_annotations():
    return [Annotation("load-balance", parse_load_balance, None,
                       "round_robin (default) or ewma: the least latency of two endpoints drawn at random")]


@hookimpl
def ingressd_route_features(route, values, context):
    if values.get("load-balance") != EWMA:
        return None
    if values.get("affinity") == "cookie" or values.get("upstream-hash-by"):
        return None  # their balancers win, as in ingress-nginx's balancer.lua get_implementation
    backend = route.backend
    tables = context.plugin_state("load_balance")
    key = (backend.namespace, backend.service, backend.port)
    stats = tables.get(key)
    if stats is None:
        stats = tables[key] = EwmaStats(context.reactor)
    stats.sync(backend.endpoints)
    return Ewma(EwmaBalancer(backend.endpoints, stats))
