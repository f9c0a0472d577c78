"""An HTTPRoute rule's ``retry`` (``codes``, ``attempts``, ``backoff``) → the route's retry policy,
a ``NextUpstream`` (``proxy/next_upstream.py``: the machinery ``proxy-next-upstream`` uses).

As the Gateway API says (``HTTPRouteRetry``):

- a rule with a ``retry`` stanza retries connection errors (refused, reset, closed before a whole
  response head, a timeout: the backendRequest timeout cuts each try) and the backend's answers
  with one of ``codes`` (400–599; the spec's 500, 502, 503 and 504 and any other in that range);
  an answer not listed is the client's as it is;
- ``attempts`` counts the **retries** ("the maximum number of times an individual request … should
  be retried"): ``attempts: 2`` is three tries in all; when none is given, two (nginx's three
  tries); when they run out, the last try's answer is the client's, and a last try that failed
  by an error is answered 503 (the conformance suite takes 500 or 503; nginx's 502 is not), one
  cut by the backendRequest timeout 504;
- every try counts, a pooled connection the backend had closed included (``stale_retry`` off: the
  backend is asked at most ``attempts`` + 1 times);
- ``backoff``: the least time between the end of a try and the next, waited by the reactor (never
  a sleep); the rule's ``timeouts.request`` bounds the tries and the waits together (504);
- a request with a body is retried only while the body is held whole (the exchange's rule), and
  POST, LOCK and PATCH once sent only with ``--retry-non-idempotent`` (nginx's rule, which the
  spec leaves to the implementation: a request that changes something is not sent twice unasked).

A value that is not one of these (a code outside 400–599, ``attempts`` below 1, a backoff that
is not a Duration) leaves the rule out (``route_filters.Invalid``). The policy rides on the
routes as the parsed value ``RETRY``, which the ``proxy_settings`` plugin puts in their
``UpstreamSettings`` as it does the annotations' policy.
"""

from __future__ import annotations

from typing import Mapping

from ingressd.config.gateway.route_filters import Invalid
from ingressd.config.gateway.timeouts import parse_duration
from ingressd.proxy.next_upstream import ERROR, TIMEOUT, NextUpstream

RETRY = "gateway-retry"  # the route value: a NextUpstream
DEFAULT_ATTEMPTS = 2  # retries when ``attempts`` is not given (three tries, as nginx's default)
_MAX_ATTEMPTS = 1000


def parse(raw: object) -> NextUpstream | None:
    """A rule's ``retry`` stanza (None when it has none)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise Invalid("retry must be an object")
    codes = raw.get("codes") or []
    if not isinstance(codes, list) or not all(isinstance(code, int) and not isinstance(code, bool)
                                               and 400 <= code <= 599 for code in codes):
        raise Invalid(f"retry.codes {codes!r}: each must be a status code from 400 to 599")
    attempts = raw.get("attempts")
    if attempts is None:
        attempts = DEFAULT_ATTEMPTS
    elif isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= _MAX_ATTEMPTS:
        raise Invalid(f"retry.attempts {attempts!r} must be a whole number from 1 to {_MAX_ATTEMPTS}")
    backoff = parse_duration(raw["backoff"]) if raw.get("backoff") is not None else 0.0
    return NextUpstream(failures=frozenset((ERROR, TIMEOUT)), statuses=frozenset(codes), tries=attempts + 1,
                        backoff=backoff, error_status=503, stale_retry=False)
