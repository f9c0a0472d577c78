"""Canary Ingresses: ``canary`` and ``canary-by-*`` / ``canary-weight*``, as ingress-nginx.

An Ingress with ``canary: "true"`` is not served on its own: its route becomes the alternative
backend of the main Ingress's route with the same host and path (the core attaches it; one
canary per main route, the first met, as ingress-nginx's balancer uses its first alternative;
a canary with no such main route is not served). For each request of the main route, the
rule decides once, in ingress-nginx's order (rootfs/etc/nginx/lua/balancer.lua,
``route_to_alternative_balancer``):

1. the request header ``canary-by-header`` (if present): equal to ``canary-by-header-value``
   when that is set, else matching ``canary-by-header-pattern`` (RE2) when that is set, else
   ``always`` → the canary, ``never`` → the main backend; any other value falls through;
2. the cookie ``canary-by-cookie`` (if present): ``always`` / ``never``; other values fall through;
3. ``canary-weight`` out of ``canary-weight-total`` (100, or the total when it is larger):
   the canary for that share of requests, at random.

The main Ingress's features (authentication, rewrites, timeouts…) apply to every request; the
canary Ingress contributes only its backend (ingress-nginx ignores its other annotations).

With session affinity on the main route (``ingressd/proxy/canary_choice.py``): a request whose
cookie names the main backend stays there; with the canary Ingress's
``affinity-canary-behavior: sticky`` (the default) the canary backend is sticky too, with the
main route's cookie settings, so a client the rule sent to the canary gets a cookie naming it
and stays there; with ``legacy`` the canary is not sticky (no cookie: each request not bound to
the main backend is decided by the rule again). With ``upstream-hash-by`` the rule decides first.
"""

from __future__ import annotations

import random
from typing import Any, Callable

import re2

from ingressd import Annotation, AnnotationError, Phase, compile_path, hookimpl, parse_bool
from ingressd import same_for_every_path

from ._cookies import cookie


def _parse_int(default: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            return int(value.strip())
        except ValueError:
            return default  # ingress-nginx: "… is invalid, defaulting to …"
    return parse


def _parse_pattern(value: str) -> str:
    value = value.strip()
    if value:
        try:
            compile_path(value)
        except ValueError as exc:
            raise AnnotationError(f"canary-by-header-pattern: {exc}") from None
    return value


class CanaryRule:
    """Whether a request goes to the canary backend (``wants``)."""

    def __init__(self, header: str, header_value: str, header_pattern: str, cookie: str, weight: int,
                 weight_total: int, random_fraction: Callable[[], float] = random.random,
                 sticky_affinity: bool = True):
        self.header = header.lower().encode("latin-1") if header else b""
        self.header_value = header_value
        self._pattern = _compile(header_pattern) if header_pattern else None
        self.cookie = cookie.encode("latin-1")
        self.weight = weight
        self.weight_total = weight_total if weight_total > 100 else 100
        self._random = random_fraction
        # affinity-canary-behavior (this canary Ingress's): sticky (the default) makes the canary
        # backend sticky with the main route's cookie settings; legacy leaves it unaffinitized.
        self.sticky_affinity = sticky_affinity

    def wants(self, exchange: Any) -> bool:
        if self.header:
            value = exchange.headers.get(self.header)
            if value is not None:
                text = value.decode("latin-1")
                if self.header_value:
                    if text == self.header_value:
                        return True
                elif self._pattern is not None:
                    if self._pattern.search(text) is not None:
                        return True
                elif text == "always":
                    return True
                elif text == "never":
                    return False
        if self.cookie:
            value = cookie(exchange.headers, self.cookie)
            if value == b"always":
                return True
            if value == b"never":
                return False
        # math.random(total) <= weight: an integer in 1..total
        return int(self._random() * self.weight_total) + 1 <= self.weight


def _compile(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


class Canary:
    """Marks the route as a canary (``canary``): the core attaches it to its main route."""

    phase = Phase.PROXY

    def __init__(self, rule: CanaryRule):
        self.canary = rule


@hookimpl
def ingressd_annotations():
    return [
        Annotation("canary", parse_bool, False, "this Ingress is the canary of the main Ingress of its host and path"),
        Annotation("canary-by-header", str.strip, "", "a request header that sends the request to the canary"),
        Annotation("canary-by-header-value", str.strip, "", "the value of canary-by-header that does"),
        Annotation("canary-by-header-pattern", _parse_pattern, "", "a regular expression (RE2) the header matches"),
        Annotation("canary-by-cookie", str.strip, "", "a cookie: always / never"),
        Annotation("canary-weight", _parse_int(0), 0, "share of the requests sent to the canary"),
        Annotation("canary-weight-total", _parse_int(100), 100, "what canary-weight is out of (default 100)"),
        Annotation("affinity-canary-behavior", _parse_behavior, "sticky",
                   "with session affinity on the main Ingress: sticky (clients stay on the canary) or legacy"),
    ]


def _parse_behavior(value: str) -> str:
    value = value.strip()
    if value not in ("sticky", "legacy"):
        raise AnnotationError(f"expected sticky or legacy, got {value!r}")
    return value


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    configured = any(values.get(name) for name in ("canary-by-header", "canary-by-header-value",
                                                    "canary-by-header-pattern", "canary-by-cookie", "canary-weight"))
    if not values.get("canary"):
        if configured:
            raise AnnotationError("canary annotations are configured but canary is not enabled")
        return None
    return Canary(CanaryRule(values.get("canary-by-header") or "", values.get("canary-by-header-value") or "",
                             values.get("canary-by-header-pattern") or "", values.get("canary-by-cookie") or "",
                             int(values.get("canary-weight") or 0), int(values.get("canary-weight-total") or 100),
                             sticky_affinity=values.get("affinity-canary-behavior") != "legacy"))
