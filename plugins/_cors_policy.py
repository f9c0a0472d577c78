"""One CORS feature: the preflight answered by ingressd and the ``Access-Control-*`` headers on
the answers — the same code for ``enable-cors`` (``cors``) and the Gateway API's ``CORS`` filter
(``gateway_filters``).

Each plugin gives a ``CorsPolicy`` its own parsed settings: which origins are allowed (its own
matcher: the two specifications match wildcards differently), whether credentials are allowed,
the headers every allowed answer gets after ``Access-Control-Allow-Origin`` (and
``-Allow-Credentials``), and where the two specifications differ, the difference as a parameter:

- ``star_for_any``: ``enable-cors`` with every origin allowed sends ``*`` on every answer (even
  without an ``Origin`` header) unless it echoes the origin with credentials; the Gateway API
  sends nothing to a request without ``Origin`` and, with credentials, only echoes an origin.
- ``answer_refused_preflight``: the Gateway API answers every preflight itself (204, no
  ``Access-Control-*`` header for an origin not allowed); ``enable-cors`` lets the backend
  answer the preflight of an origin not allowed.
- ``preflight``: the Gateway API's preflight headers (``Allow-Methods``, ``-Headers``,
  ``Max-Age``), made per preflight (``*`` answers with what the preflight asked) and sent on
  the preflight's answer only; ``enable-cors`` sends its fixed ones on every answer
  (``answer_headers``).

The rest is done once: what a preflight is (``OPTIONS`` with ``Origin`` and
``Access-Control-Request-Method``), the Allow-Origin (an echoed origin only when it looks like
one, ``*`` never with credentials), the backend's ``Access-Control-*`` headers replaced, and
``Vary: Origin`` whenever the answer depends on the origin.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from ingressd import LocalResponse

CORS_HEADERS = frozenset(
    (
        b"access-control-allow-origin",
        b"access-control-allow-credentials",
        b"access-control-allow-methods",
        b"access-control-allow-headers",
        b"access-control-expose-headers",
        b"access-control-max-age",
    )
)
PREFLIGHT_HEADERS = frozenset((b"access-control-allow-methods", b"access-control-allow-headers",
                               b"access-control-max-age"))
_CREDENTIALS = (b"access-control-allow-credentials", b"true")
_TEXT = (b"content-type", b"text/plain; charset=utf-8")

# What looks like an origin, for echoing an Origin header when every origin is allowed.
_ORIGIN = re.compile(r"([a-z][a-z0-9+.-]*)://(\*\.)?([a-z0-9-]+(?:\.[a-z0-9-]+)*)(:[0-9]{1,5})?")


def is_origin(value: bytes) -> bool:
    text = value.decode("latin-1").lower()
    return text == "null" or _ORIGIN.fullmatch(text) is not None and "://*." not in text


def add_vary_origin(headers: list) -> None:
    for name, value in headers:
        if name == b"vary":
            tokens = {token.strip().lower() for token in value.split(b",")}
            if b"origin" in tokens or b"*" in tokens:
                return
    headers.append((b"vary", b"Origin"))


def is_preflight(exchange: Any) -> bool:
    return (exchange.method == b"OPTIONS" and exchange.headers.get(b"origin") is not None
            and exchange.headers.get(b"access-control-request-method") is not None)


class CorsPolicy:
    """Phase ``phase``: the preflight answer, and the CORS headers on every answer of the route."""

    def __init__(self, phase: int, any_origin: bool, matcher: Any, credentials: bool, answer_headers: tuple,
                 star_for_any: bool, answer_refused_preflight: bool,
                 preflight: Callable[[Any], list] | None = None):
        self.phase = phase
        self._any = any_origin
        self._matcher = matcher  # ``origin in matcher``: the lower-cased Origin is allowed
        self._credentials = credentials
        self._answer_headers = tuple(answer_headers)
        self._star_for_any = star_for_any
        self._answer_refused = answer_refused_preflight
        self._preflight = preflight
        # The answer depends on the Origin header unless it is always a literal "*".
        self._vary = not (any_origin and not credentials)

    def allowed(self, exchange: Any) -> tuple[bytes, bool] | None:
        """(Allow-Origin value, with Allow-Credentials) for this request, or None: no CORS header."""
        origin = exchange.headers.get(b"origin")
        if self._any:
            if origin is not None and self._credentials and is_origin(origin):
                return origin, True  # never "*" with credentials: the origin echoed
            if self._star_for_any:
                return b"*", False
            if origin is None or self._credentials:
                return None
            return b"*", False
        if origin is None or origin.decode("latin-1").lower() not in self._matcher:
            return None
        return origin, self._credentials

    def request(self, exchange: Any) -> LocalResponse | None:
        if not is_preflight(exchange):
            return None
        allowed = self.allowed(exchange) is not None
        if not allowed and not self._answer_refused:
            return None  # not an allowed origin: the backend answers the OPTIONS request
        headers = [_TEXT]
        if allowed and self._preflight is not None:
            headers.extend(self._preflight(exchange))
        # The other CORS headers come with ``response``, as for every answer.
        return LocalResponse(204, headers)

    def response(self, exchange: Any, status: int, headers: list) -> None:
        if self._vary:
            add_vary_origin(headers)
        allowed = self.allowed(exchange)
        if allowed is None:
            return
        kept = ()
        if self._preflight is not None and is_preflight(exchange):
            kept = [pair for pair in headers if pair[0] in PREFLIGHT_HEADERS]  # our own preflight answer's
        headers[:] = [pair for pair in headers if pair[0] not in CORS_HEADERS]
        allow_origin, credentials = allowed
        headers.append((b"access-control-allow-origin", allow_origin))
        if credentials:
            headers.append(_CREDENTIALS)
        headers.extend(self._answer_headers)
        headers.extend(kept)
