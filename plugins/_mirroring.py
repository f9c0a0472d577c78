"""One request mirror: a copy of each request a route forwards sent to a mirror target, its
answer discarded, bounded — the same code for ``mirror-target`` (``mirror``) and the Gateway
API's ``RequestMirror`` (``gateway_filters``).

Each plugin makes a ``Target`` (where the copies go and what they ask for) from its own
settings and calls ``mirror_to``; the bounds are the operator's, for both:
``--mirror-max-in-flight`` copies outstanding per mirror target (one ``Limit`` per
(scheme, host, port) in the ``limits`` the plugin keeps in its plugin state) and
``--mirror-max-body-size`` (a larger body: that request is not mirrored).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from twisted.python import log

from ingressd import Phase, TargetURL, parse_size

_VISIBLE = re.compile(rb"[\x21-\x7e]+")
MAX_IN_FLIGHT = 64
MAX_BODY = 1024 * 1024


class Target:
    """A parsed ``mirror-target``: where copies go and how their request target is made."""

    __slots__ = ("url", "path", "text")

    def __init__(self, url: TargetURL, path: Any, text: str):
        self.url = url  # scheme, host, port (and the literal target when ``path`` is None)
        self.path = path  # a _header_values.Value when the URL has variables, else None
        self.text = text

    def target_for(self, exchange: Any) -> bytes | None:
        """The request target the mirror is asked for, or None when the expansion is unusable."""
        if self.path is not None:
            target = self.path.expand(exchange)
            if not target.startswith(b"/"):  # http://m?x=$host: the path is "/"
                target = b"/" + target
            return target if _VISIBLE.fullmatch(target) else None
        if not self.url.has_path:
            return exchange.request_uri or b"/"
        query = exchange.query
        if not query:
            return self.url.target
        return self.url.target + (b"&" if b"?" in self.url.target else b"?") + query

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Target) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)


class Limit:
    """Copies outstanding to one mirror target (host, port), shared by every route sending there."""

    __slots__ = ("in_flight", "sent", "dropped", "failed")

    def __init__(self):
        self.in_flight = 0
        self.sent = 0
        self.dropped = 0  # not sent: too many outstanding, or a body over the bound
        self.failed = 0  # sent, and the mirror did not answer (refused, timed out…)


class Mirror:
    """Sends a copy of each forwarded request to the mirror target; the answer is discarded."""

    phase = Phase.PROXY

    def __init__(self, target: Target, body: bool, host: Any, client: Any, limit: Limit, max_in_flight: int,
                 max_body: int):
        self._target = target
        self._body_limit = max_body if body else 0
        self._body = body
        self._host = host
        self._client = client
        self._limit = limit
        self._max_in_flight = max_in_flight

    def request(self, exchange: Any) -> None:
        if self._client is not None:
            exchange.on_forward(lambda forwarded: self._send(exchange, forwarded), self._body_limit)

    def _send(self, exchange: Any, forwarded: Any) -> None:
        limit = self._limit
        if limit.in_flight >= self._max_in_flight:
            limit.dropped += 1
            if limit.dropped & (limit.dropped - 1) == 0:  # 1, 2, 4, 8…: told, never flooding the log
                log.msg(f"ingressd: mirror {self._target.url.host}:{self._target.url.port}: {self._max_in_flight} "
                        f"copies outstanding, copies dropped: {limit.dropped}")
            return
        body = None
        if self._body and forwarded.body_length:
            body = forwarded.body
            if body is None:  # over the bound: not mirrored rather than mirrored without its body
                limit.dropped += 1
                return
        target = self._target.target_for(exchange)
        if target is None:
            limit.dropped += 1
            return
        host = self._host.expand(exchange)
        headers = [(b"host", host)]
        headers.extend(pair for pair in forwarded.headers if pair[0] != b"host")
        url = dataclasses.replace(self._target.url, target=target)
        limit.in_flight += 1
        limit.sent += 1
        sent = self._client.fetch(forwarded.method, url, headers, body, discard=True)
        sent.addCallbacks(self._answered, self._failed)

    def _answered(self, _response: Any) -> None:
        self._limit.in_flight -= 1

    def _failed(self, failure: Any) -> None:
        self._limit.in_flight -= 1
        self._limit.failed += 1
        if self._limit.failed & (self._limit.failed - 1) == 0:
            log.msg(f"ingressd: mirror copy not delivered ({self._limit.failed} so far): {failure.getErrorMessage()}")


def mirror_to(target: Target, body: bool, host: Any, context: Any, limits: dict) -> Mirror:
    """A ``Mirror`` sending copies to ``target`` (with their body when ``body``; ``host``: the
    Value of their Host header), bounded by the server's settings and the target's ``Limit``."""
    key = (target.url.scheme, target.url.host, target.url.port)
    limit = limits.get(key)
    if limit is None:
        limit = limits[key] = Limit()
    settings = context.settings
    max_in_flight = int(settings.get("mirror_max_in_flight") or MAX_IN_FLIGHT)
    max_body = settings.get("mirror_max_body_size")
    max_body = parse_size(max_body) if isinstance(max_body, str) else int(max_body if max_body is not None else MAX_BODY)
    return Mirror(target, body, host, context.subrequests, limit, max_in_flight,
                  max_body or 2**62)  # 0: any size, as nginx sizes
