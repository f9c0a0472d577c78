"""Per-client request-rate and connection limits per Ingress, with nginx limit_req/limit_conn semantics.

Annotations: ``limit-rps``, ``limit-rpm``, ``limit-connections`` (0 or absent = off),
``limit-burst-multiplier`` (default 5), ``limit-allowlist`` / ``limit-whitelist`` (CIDRs exempt
from every limit). Options: ``--limit-req-status-code`` and ``--limit-conn-status-code``
(default 503; 429 is the usual alternative). Every rejection carries ``Retry-After``.

As ingress-nginx configures it: ``limit_req zone=… burst=rate×multiplier nodelay`` keyed on
the client address, so up to ``burst + 1`` requests pass at once and the rest are rejected
immediately (never delayed); rps and rpm both apply when both are set, and a request
rejected by one is counted by neither. ``limit_conn`` caps concurrent requests per client
at ``limit-connections``. State is per Ingress, shared by its paths, and survives route-table
rebuilds (limiters live in a registry keyed by the Ingress and its settings). Limits are per
ingressd process, as ingress-nginx's are per replica; with ``--replicas-hint`` (``ingressd.replicas``)
each replica enforces its share of every limit, ``ceil(limit / replicas)`` (at least 1; the burst
is the share × the multiplier), following the replica count live.

``ingressd.io/limit-scope: global`` (default ``local``) makes ``limit-rps``/``limit-rpm``
cluster-wide: the same buckets, kept in the server's Redis (``--redis``; ``ClusterRateLimit``,
one atomic script per request, ``--redis-failure`` and ``--redis-timeout`` as for
global-rate-limit). ``limit-connections`` with it is refused: a count of requests in progress
shared through Redis outlives a replica that dies holding it.

``--limit-conn-zone-variable`` (the ConfigMap's ``limit-conn-zone-variable``, default
``$binary_remote_addr``: the client address) is what every limit counts by, as ingress-nginx maps
each Ingress's ``$limit_ID`` to it for its limit_conn and limit_req zones: nginx variables
(``$http_NAME``, ``$cookie_NAME``, ``$arg_NAME``, ``$host``, ``$remote_addr``…, those
``_auth_variables`` knows); one ingressd cannot evaluate refuses the value. As in nginx, a request
whose key is empty is not counted, and limit-allowlist still checks the client address.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from ingressd import Annotation, AnnotationError, LocalResponse, Option, Phase, hookimpl, parse_int
from ingressd import same_for_every_path

from ._auth_variables import parse_template
from ._cidr import CidrMatcher, parse_cidr_list
from ._responses import plain

# nginx gives each zone 5 MB, room for tens of thousands of addresses; a bucket state here
# costs about as much. Beyond the cap the least recently seen address is forgotten.
MAX_KEYS_PER_ZONE = 65_536
# Like nginx's limit_req expiry: on each request, up to two of the least recently seen
# entries are dropped if they have been idle a minute and fully drained.
_SWEEP_PER_REQUEST = 2
_IDLE_EXPIRY_MS = 60_000


class LeakyBucket:
    """One limit_req zone: per key, an excess that drains at ``rate`` requests per second.

    A request arriving when the drained excess plus one exceeds ``burst`` is rejected and
    changes nothing; otherwise the new excess is stored (nginx's ``nodelay``: no waiting).
    As in nginx, time is whole milliseconds and excess is in thousandths of a request, so
    traffic at exactly the rate never drifts into rejection through rounding.
    """

    def __init__(self, rate: float, burst: int, max_keys: int = MAX_KEYS_PER_ZONE):
        self.resize(rate, burst)
        self.max_keys = max_keys
        self._states: OrderedDict[str, tuple[int, int]] = OrderedDict()  # key → (excess, last ms)

    def __len__(self) -> int:
        return len(self._states)

    def resize(self, rate: float, burst: int) -> None:
        """A new rate and burst; the excess kept per key (in requests) drains at the new rate."""
        self.rate = int(rate * 1000)  # thousandths of a request per second
        self.burst = burst * 1000

    def check(self, key: str, now: float) -> tuple[bool, int]:
        """(True, new excess) if a request for ``key`` is allowed at ``now`` (seconds);
        else (False, milliseconds until one would be)."""
        now_ms = round(now * 1000)
        self._sweep(now_ms)
        state = self._states.get(key)
        if state is None:
            return True, 0
        excess, last = state
        wanted = max(excess - self.rate * max(now_ms - last, 0) // 1000, 0) + 1000
        if wanted > self.burst:
            return False, -(-(wanted - self.burst) * 1000 // self.rate)
        return True, wanted

    def commit(self, key: str, excess: int, now: float) -> None:
        self._states[key] = (excess, round(now * 1000))
        self._states.move_to_end(key)
        while len(self._states) > self.max_keys:
            self._states.popitem(last=False)

    def _sweep(self, now_ms: int) -> None:
        states = self._states
        for _ in range(_SWEEP_PER_REQUEST):
            if not states:
                return
            key = next(iter(states))
            excess, last = states[key]
            idle = now_ms - last
            if idle < _IDLE_EXPIRY_MS or excess - self.rate * idle // 1000 > 0:
                return
            del states[key]


class ConnectionCounter:
    """One limit_conn zone: requests in progress per key, at most ``limit`` each."""

    def __init__(self, limit: int):
        self.limit = limit
        self._counts: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def acquire(self, key: str) -> bool:
        count = self._counts.get(key, 0)
        if count >= self.limit:
            return False
        self._counts[key] = count + 1
        return True

    def release(self, key: str) -> None:
        count = self._counts.get(key, 0) - 1
        if count > 0:
            self._counts[key] = count
        else:
            self._counts.pop(key, None)


class IngressLimiter:
    """The zones of one Ingress (shared by all its paths) and the clock they run on; with a
    ``replicas`` count (``--replicas-hint``), this replica's share of each limit."""

    def __init__(self, clock: Any, rps: int, rpm: int, connections: int, multiplier: int, replicas: Any = None):
        self.clock = clock
        self.limits = (rps, rpm, connections, multiplier)
        self.replicas = replicas
        self.divisor = 1 if replicas is None else replicas.count
        self.connections = ConnectionCounter(share(connections, self.divisor)) if connections else None
        # Order as nginx evaluates them: rps before rpm.
        self.buckets = tuple(LeakyBucket(rate, burst) for rate, burst in self._zones())

    def _zones(self) -> list[tuple[float, int]]:
        """(rate per second, burst) of each bucket for the current divisor."""
        rps, rpm, _, multiplier = self.limits
        rps, rpm = share(rps, self.divisor), share(rpm, self.divisor)
        return [(rate, limit * multiplier) for rate, limit in ((float(rps), rps), (rpm / 60.0, rpm)) if limit]

    def follow(self) -> None:
        """Take the replica count now in effect: every zone resized in place (its clients' state kept)."""
        replicas = self.replicas
        if replicas is None or replicas.count == self.divisor:
            return
        self.divisor = replicas.count
        for bucket, (rate, burst) in zip(self.buckets, self._zones()):
            bucket.resize(rate, burst)
        if self.connections is not None:
            self.connections.limit = share(self.limits[2], self.divisor)


class RateLimit:
    """The per-route feature (phase PREACCESS): admits or rejects a request for its Ingress's limiter."""

    phase = Phase.PREACCESS

    def __init__(self, limiter: IngressLimiter, exempt: CidrMatcher, req_status: int = 503, conn_status: int = 503,
                 zone_key: Any = None):
        self.limiter = limiter
        self._exempt = exempt
        self._req_status = req_status
        self._conn_status = conn_status
        self._zone_key = zone_key  # limit-conn-zone-variable's Template; None: the client address

    def request(self, exchange) -> LocalResponse | None:
        key = exchange.client_ip
        if self._exempt and key in self._exempt:
            return None
        if self._zone_key is not None:
            key = self._zone_key.expand(exchange, safe=False)
            if not key:
                return None  # nginx does not account a request whose key is empty
        limiter = self.limiter
        limiter.follow()
        connections = limiter.connections
        if connections is not None:
            if not connections.acquire(key):
                return _reject(self._conn_status, 1)
            exchange.on_finish(lambda: connections.release(key))
        if not limiter.buckets:
            return None
        now = limiter.clock.seconds()
        admitted = []
        for bucket in limiter.buckets:
            ok, value = bucket.check(key, now)
            if not ok:
                return _reject(self._req_status, value / 1000)
            admitted.append((bucket, value))
        for bucket, excess in admitted:
            bucket.commit(key, excess, now)
        return None


class ClusterRateLimit:
    """limit-rps/limit-rpm shared by the replicas (``limit-scope: global``): one decision in Redis."""

    phase = Phase.PREACCESS

    def __init__(self, decisions, ingress, buckets: tuple, exempt: CidrMatcher, req_status: int, zone_key: Any = None):
        self.decisions = decisions
        self._zone_key = zone_key  # limit-conn-zone-variable's Template; None: the client address
        self.names = tuple(f"limit:{ingress.namespace}/{ingress.name}:{name}:".encode("utf-8")
                           for name, _ in buckets)
        self.buckets = tuple(bucket for _, bucket in buckets)  # (rate, burst) in thousandths
        self._exempt = exempt
        self._req_status = req_status

    def request(self, exchange):
        key = exchange.client_ip
        if self._exempt and key in self._exempt:
            return None
        client = key.encode("ascii") if self._zone_key is None else self._zone_key.expand(exchange, safe=False)
        if not client:
            return None  # nginx does not account a request whose key is empty
        keys = tuple(name + client for name in self.names)
        return self.decisions.check_buckets(keys, self.buckets).addCallback(self._answer)

    def _answer(self, decision):
        allowed, wait = decision
        return None if allowed else _reject(self._req_status, wait)


def share(limit: int, count: int) -> int:
    """One replica's part of ``limit`` when ``count`` replicas share it (``--replicas-hint``): rounded
    up, so an evenly balanced cluster never refuses what the limit admits; at least 1; 0 stays off."""
    if not limit:
        return 0
    return max(1, -(-limit // max(1, count)))


def _reject(status: int, wait: float) -> LocalResponse:
    return plain(status, [(b"retry-after", b"%d" % max(1, math.ceil(wait)))])


# -- registry: limiters outlive route tables, one registry per server ----------------------

STATE = "rate_limit"  # this plugin's name in BuildContext.plugin_state


def registry(context) -> dict:
    """The server's limiters (``limiters``: key → IngressLimiter) and the keys the table
    being built uses (``used``); kept in the server's plugin state, never in this module."""
    state = context.plugin_state(STATE)
    if not state:
        state.update(limiters={}, used=set())
    return state


def limiter_for(context, ingress, clock, rps: int, rpm: int, connections: int, multiplier: int) -> IngressLimiter:
    """The limiter of ``ingress`` with these settings: the server's existing one if there is one
    (following the server's replica count, ``BuildContext.replicas``)."""
    state = registry(context)
    key = (ingress, clock, rps, rpm, connections, multiplier)
    state["used"].add(key)
    limiter = state["limiters"].get(key)
    if limiter is None:
        limiter = state["limiters"][key] = IngressLimiter(clock, rps, rpm, connections, multiplier,
                                                          context.replicas)
    return limiter


def _status_code(value: str) -> int:
    code = int(value)
    if not 400 <= code <= 599:
        raise ValueError(f"expected a 4xx or 5xx status code, got {code}")
    return code


@hookimpl
def ingressd_options():
    return [
        Option("limit-req-status-code", 503, "status for requests over limit-rps/limit-rpm", _status_code),
        Option("limit-conn-status-code", 503, "status for requests over limit-connections", _status_code),
        Option("limit-conn-zone-variable", DEFAULT_ZONE_VARIABLE, "what the limits count by: nginx variables "
               "(default $binary_remote_addr, the client address)", _zone_variable_text),
    ]


DEFAULT_ZONE_VARIABLE = "$binary_remote_addr"
_CLIENT_ADDRESS = ("$binary_remote_addr", "${binary_remote_addr}")


def zone_key(text: Any):
    """``limit-conn-zone-variable`` → the Template a request's key is expanded from, or None for the
    client address (``$binary_remote_addr`` counts each address as ``$remote_addr`` does). Raises
    AnnotationError for a variable ingressd cannot evaluate."""
    value = str(text).strip()
    if not value or value in _CLIENT_ADDRESS:
        return None
    for spelling in _CLIENT_ADDRESS:
        value = value.replace(spelling, "$remote_addr")
    return parse_template(value, "limit-conn-zone-variable: ")


def _zone_variable_text(text: str) -> str:
    try:
        zone_key(text)
    except AnnotationError as exc:
        raise ValueError(str(exc)) from None
    return text


@hookimpl
def ingressd_annotations():
    # As ingress-nginx: whole numbers (strconv.Atoi), 0 = off. ingress-nginx also reads a
    # negative limit as off (its template emits limit_req only for a limit > 0); that turns
    # a typo into no limit at all, so a negative one is refused here instead. A multiplier
    # of 0 makes ingress-nginx emit burst=0, which nginx refuses ("invalid burst value").
    count = parse_int(0, 1_000_000_000)
    return [
        Annotation("limit-rps", count, 0, "requests per second per client address (burst: × multiplier)"),
        Annotation("limit-rpm", count, 0, "requests per minute per client address (burst: × multiplier)"),
        Annotation("limit-connections", count, 0, "concurrent requests per client address"),
        Annotation("limit-burst-multiplier", parse_int(1, 1000), 5, "burst size = limit × this"),
        Annotation("limit-allowlist", parse_cidr_list, (), "client CIDRs exempt from the limits"),
        Annotation("limit-whitelist", parse_cidr_list, (), "old name of limit-allowlist"),
        Annotation("limit-scope", _scope, "local", "global: limit-rps/limit-rpm shared by the replicas "
                   "through --redis (ingressd.io/ only)"),
    ]


def _scope(value: str) -> str:
    if value not in ("local", "global"):
        raise AnnotationError(f"expected local or global, got {value!r}")
    return value


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    rps, rpm, connections = values.get("limit-rps", 0), values.get("limit-rpm", 0), values.get("limit-connections", 0)
    if not (rps or rpm or connections):
        return None
    clock = context.reactor
    if clock is None:
        raise AnnotationError("rate limits need a clock, and no reactor was given")
    settings = context.settings
    exempt = values.get("limit-allowlist") or values.get("limit-whitelist") or ()
    key = zone_key(settings.get("limit_conn_zone_variable") or DEFAULT_ZONE_VARIABLE)
    if values.get("limit-scope", "local") == "global":
        return _cluster_wide(route, values, context, rps, rpm, connections, exempt, key)
    limiter = limiter_for(context, route.ingress, clock, rps, rpm, connections,
                          values.get("limit-burst-multiplier", 5))
    return RateLimit(
        limiter,
        CidrMatcher(exempt),
        settings.get("limit_req_status_code", 503),
        settings.get("limit_conn_status_code", 503),
        key,
    )


def _cluster_wide(route, values, context, rps: int, rpm: int, connections: int, exempt, key=None) -> ClusterRateLimit:
    if connections:
        raise AnnotationError("limit-connections cannot be cluster-wide (ingressd.io/limit-scope: global): a count "
                              "of requests in progress kept in Redis outlives a replica that dies holding it")
    if not context.settings.get("redis"):
        raise AnnotationError("ingressd.io/limit-scope: global needs a Redis shared by the replicas: start "
                              "ingressd with --redis URL")
    multiplier = values["limit-burst-multiplier"]  # its annotation default: 5
    buckets = tuple((name, (int(rate * 1000), limit * multiplier * 1000))
                    for name, rate, limit in (("rps", float(rps), rps), ("rpm", rpm / 60.0, rpm)) if limit)
    return ClusterRateLimit(context.redis, route.ingress, buckets, CidrMatcher(exempt),
                            context.settings.get("limit_req_status_code", 503), key)


@hookimpl
def ingressd_config_applied(config, context):
    """Forget the limiters no route of the new table uses (removed Ingresses, changed limits)."""
    state = registry(context)
    limiters, used = state["limiters"], state["used"]
    for key in [key for key in limiters if key not in used]:
        del limiters[key]
    used.clear()
