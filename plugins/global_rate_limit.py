"""Cluster-wide request-rate limits shared by every replica through Redis (``--redis``).

Annotations (ingress-nginx's, removed from its last releases with its memcached-based limiter):
``global-rate-limit`` (requests per window; 0 or absent = off), ``global-rate-limit-window`` (a Go
duration: ``1m``, ``30s``, ``1h30m``), ``global-rate-limit-key`` (an nginx-variable template,
``$remote_addr`` by default: ``$http_x_api_client``, ``${remote_addr}-${arg_token}``…),
``global-rate-limit-ignored-cidrs`` (client CIDRs that are never counted). The counters are the
Ingress's namespace's, as ingress-nginx's (``namespace .. key``), per window length. Over the
limit: ``--global-rate-limit-status-code`` (429, ingress-nginx's default) with ``Retry-After``.

Each decision is one atomic script in Redis (``ingressd.redis.decisions``: a sliding window
counter; its docstring states the accuracy at window edges). When Redis is down, slow or
unreachable the server's ``--redis-failure`` decides (``open``: admitted, as ingress-nginx's
limiter; ``closed``: refused with the same status), never waiting more than ``--redis-timeout``.

Refused (the Ingress not served, failing closed): a limit without a window (ingress-nginx then
limited nothing), and any global limit on a server without ``--redis``.
"""

from __future__ import annotations

import re

from ingressd import Annotation, AnnotationError, Option, Phase, hookimpl, parse_int
from ingressd import same_for_every_path

from ._auth_variables import parse_template
from ._cidr import CidrMatcher, parse_cidr_list
from ._responses import plain

_DURATION = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
MAX_WINDOW_MS = 7 * 24 * 3_600_000


def parse_window(value: str) -> int:
    """A Go ``time.ParseDuration`` value as whole milliseconds (at least 1 ms, at most a week)."""
    text = value.strip()
    if text != value or not text:
        raise AnnotationError(f"expected a duration such as 1m, 30s or 1h30m, got {value!r}")
    total, at = 0.0, 0
    for match in _DURATION.finditer(text):
        number = match.group(1)
        if match.start() != at or number in ("", "."):
            break
        total += float(number) * _UNIT_MS[match.group(2)]
        at = match.end()
    if at != len(text):
        raise AnnotationError(f"expected a duration such as 1m, 30s or 1h30m (Go's time.ParseDuration), "
                              f"got {value!r}")
    window = int(total)
    if not 1 <= window <= MAX_WINDOW_MS:
        raise AnnotationError(f"expected a window from 1ms to 168h, got {value!r}")
    return window


def parse_key(value: str):
    return parse_template(value, "global-rate-limit-key: ")


class GlobalRateLimit:
    """The per-route feature (phase PREACCESS): one decision in Redis per request."""

    phase = Phase.PREACCESS

    def __init__(self, decisions, namespace: str, limit: int, window_ms: int, key, exempt: CidrMatcher,
                 status: int = 429):
        self.decisions = decisions
        self.prefix = f"{namespace}:{window_ms}:".encode("utf-8")
        self.limit = limit
        self.window_ms = window_ms
        self.key = key
        self._exempt = exempt
        self.status = status

    def request(self, exchange):
        if self._exempt and exchange.client_ip in self._exempt:
            return None
        key = self.key.expand(exchange, safe=False) or exchange.client_ip.encode("ascii")
        return self.decisions.check(self.prefix + key, self.limit, self.window_ms).addCallback(self._answer)

    def _answer(self, decision):
        allowed, wait = decision
        if allowed:
            return None
        return plain(self.status, [(b"retry-after", b"%d" % max(1, wait))])


def _status_code(value: str) -> int:
    code = int(value)
    if not 400 <= code <= 599:
        raise ValueError(f"expected a 4xx or 5xx status code, got {code}")
    return code


@hookimpl
def ingressd_options():
    return [Option("global-rate-limit-status-code", 429, "status for requests over global-rate-limit "
                   "(ingress-nginx's ConfigMap key of the same name)", _status_code)]


@hookimpl
def ingressd_annotations():
    return [
        Annotation("global-rate-limit", parse_int(0, 1_000_000_000), 0,
                   "requests per window, counted across every replica in Redis (needs --redis)"),
        Annotation("global-rate-limit-window", parse_window, 0, "the window: a Go duration (1m, 30s)"),
        Annotation("global-rate-limit-key", parse_key, None, "what is counted: nginx variables ($remote_addr)"),
        Annotation("global-rate-limit-ignored-cidrs", parse_cidr_list, (), "client CIDRs never limited"),
    ]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    limit = values.get("global-rate-limit", 0)
    if not limit:
        return None
    window = values.get("global-rate-limit-window", 0)
    if not window:
        raise AnnotationError("global-rate-limit needs global-rate-limit-window (ingress-nginx limits nothing "
                              "without it; ingressd refuses rather than drop a limit)")
    settings = context.settings
    if not settings.get("redis"):
        raise AnnotationError("global-rate-limit needs a Redis shared by the replicas: start ingressd with --redis URL")
    key = values.get("global-rate-limit-key") or parse_key("$remote_addr")
    return GlobalRateLimit(
        getattr(context, "redis", None), route.ingress.namespace, limit, window, key,
        CidrMatcher(values.get("global-rate-limit-ignored-cidrs") or ()),
        settings.get("global_rate_limit_status_code", 429),
    )
