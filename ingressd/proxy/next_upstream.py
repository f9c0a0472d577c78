"""When a request goes to the next endpoint: nginx's ``proxy_next_upstream``, pure functions.

ingress-nginx renders ``proxy-next-upstream`` (default ``error timeout``),
``proxy-next-upstream-tries`` (default 3) and ``proxy-next-upstream-timeout`` (default 0: no
limit) into each location; nginx (``ngx_http_upstream_next``, ``ngx_http_upstream_test_next``)
then decides, after each failed try:

- the kind of failure: ``error`` (the connection could not be made, broke, or closed before a
  whole response head), ``timeout`` (connecting, sending or waiting for the head), or
  ``invalid_header`` (a response head that is not HTTP); or the backend's answer itself,
  ``http_500``, ``http_502``, ``http_503``, ``http_504``, ``http_403``, ``http_404``,
  ``http_429`` — that answer is then discarded and the next endpoint asked, unless no try is
  left: then it is what the client gets, as it is;
- the kind must be listed; ``off`` lists nothing;
- once the request was sent to a backend, POST, LOCK and PATCH go on only with
  ``non_idempotent`` (a connect that failed sent nothing: those are retried like any other);
  the ConfigMap's ``retry-non-idempotent: "true"`` adds ``non_idempotent`` to every location's
  list (ingress-nginx's ``buildNextUpstream``; the proxy_settings plugin applies it);
- ``tries`` counts every try, the first included (0: no limit in nginx; here at most one try
  per endpoint, so it ends);
- ``timeout``: no new try once that many seconds passed since the first one began;
- nothing is retried once the response has started towards the client (the exchange's rule).
- ``backoff`` (an HTTPRoute rule's ``retry.backoff``, ``config/gateway/retry.py``; nginx has
  none): seconds the exchange waits, on the reactor, between a failed try and the next.
- ``error_status``: what the client gets when the last try failed by an error (refused, reset,
  closed early): nginx's 502; an HTTPRoute retry's 503, the answer the Gateway API's conformance
  suite takes (500 or 503) once the retries are spent.
- ``stale_retry``: a pooled keep-alive connection the backend had closed is tried once more on a
  new connection without counting a try (nginx's rule, the exchange's); an HTTPRoute retry counts
  that try among its ``attempts`` instead, so that a backend that resets connections is asked
  exactly as many times as the route says.

Which endpoint the next try goes to is the balancer's (``pick(exclude)`` with those tried).
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR, TIMEOUT, INVALID_HEADER = "error", "timeout", "invalid_header"
NON_IDEMPOTENT, OFF = "non_idempotent", "off"
STATUSES = (500, 502, 503, 504, 403, 404, 429)  # the http_XXX conditions nginx knows
# nginx's NGX_HTTP_POST|NGX_HTTP_LOCK|NGX_HTTP_PATCH: the methods it will not send twice unasked.
NOT_IDEMPOTENT = frozenset((b"POST", b"LOCK", b"PATCH"))

# The words of ingress-nginx's validUpstreamAnnotation (internal/ingress/annotations/proxy/main.go).
_WORDS = "error|timeout|invalid_header|http_500|http_502|http_503|http_504|http_403|http_404|http_429|non_idempotent|off"
_KNOWN = frozenset(_WORDS.split("|"))
# UpstreamError.cause → the failure kind nginx would see (anything unlisted is an ``error``).
_CAUSES = {"invalid_response": INVALID_HEADER}


@dataclass(frozen=True, slots=True)
class NextUpstream:
    """A route's retry policy: the failure kinds and statuses that pass a request on, and limits."""

    failures: frozenset[str] = frozenset((ERROR, TIMEOUT))  # of error, timeout, invalid_header
    statuses: frozenset[int] = frozenset()  # backend answers passed over (http_XXX)
    non_idempotent: bool = False  # POST, LOCK and PATCH too, once sent
    tries: int = 3  # every try counts, the first included; 0: no limit
    timeout: float = 0.0  # seconds since the first try after which none begins; 0: no limit
    backoff: float = 0.0  # seconds between a failed try and the next (HTTPRoute retry.backoff)
    error_status: int = 502  # the answer when the last try failed by an error (not a timeout: 504)
    stale_retry: bool = True  # a reused connection closed before the answer: once more, not counted


DEFAULT = NextUpstream()


CALL_DEADLINE = "call_deadline"  # a kind no policy lists: never retried


def parse_conditions(value: str) -> tuple[frozenset[str], frozenset[int], bool]:
    """``proxy-next-upstream`` → (failure kinds, statuses, non_idempotent); ``off`` wins over
    everything else, as in nginx. Raises ValueError for a word nginx does not know."""
    words = value.split()
    # Words apart, as nginx reads them (ingress-nginx's expression, ``((word)\s?)+``, refuses
    # two spaces in a row and lets "errortimeout" by, which nginx then refuses).
    if not words or not all(word in _KNOWN for word in words):
        raise ValueError(f"expected space-separated words among {_WORDS.replace('|', ', ')}, got {value!r}")
    if OFF in words:
        return frozenset(), frozenset(), False
    failures = frozenset(word for word in words if word in (ERROR, TIMEOUT, INVALID_HEADER))
    statuses = frozenset(int(word[5:]) for word in words if word.startswith("http_"))
    return failures, statuses, NON_IDEMPOTENT in words


def failure_kind(cause: str, timeout: bool) -> str:
    """The nginx failure kind of an ``UpstreamError`` (its ``cause`` and ``timeout``)."""
    if cause == "grpc_deadline":  # the call's own deadline (grpc-timeout) passed: no endpoint can help
        return CALL_DEADLINE
    if timeout:
        return TIMEOUT
    return _CAUSES.get(cause, ERROR)


def may_retry(policy: NextUpstream, kind: str, method: bytes, sent: bool, tries: int, elapsed: float) -> bool:
    """Whether a request goes on to the next endpoint after a failed try.

    ``kind``: a failure kind (``failure_kind``) or ``http_XXX`` for a backend's answer;
    ``sent``: the request reached the backend (the connection was made); ``tries``: how many
    were made, this one included; ``elapsed``: seconds since the first began.
    """
    if kind.startswith("http_"):
        if int(kind[5:]) not in policy.statuses:
            return False
    elif kind not in policy.failures:
        return False
    if sent and method in NOT_IDEMPOTENT and not policy.non_idempotent:
        return False
    if policy.tries and tries >= policy.tries:
        return False
    return not (policy.timeout and elapsed >= policy.timeout)


def exhausted(policy: NextUpstream, endpoint: object, tried: tuple) -> bool:
    """Whether the balancer's next ``endpoint`` ends the tries: with ``tries: 0`` (no limit in
    nginx) each endpoint is asked at most once, so the tries end; with a limit, the balancer
    may go back to one asked already (round-robin, when every endpoint was; a cookie's or a
    hash's endpoint), as nginx's does, until the limit."""
    return not policy.tries and endpoint in tried
