"""Request mirroring: ``mirror-target``, ``mirror-request-body`` and ``mirror-host``.

A copy of each request a route forwards to its backend is sent to the mirror target through
the server's sub-request client (``context.subrequests``), and its answer is discarded.

What ingress-nginx renders (nginx.tmpl, template.go ``buildMirrorLocations``) and so what
ingressd does:

- ``mirror-target: URL`` → ``mirror "/_mirror-<Ingress UID>"`` in every location of the Ingress
  and ``location = /_mirror-<UID> { proxy_set_header Host <mirror-host>; proxy_pass <URL>; }``.
  The value passes ingress-nginx's ``ValidateServerName`` (letters, digits, ``-._~/:`` and
  ``^$[](){}*+?|&=\\``); ingressd also requires a URL it can send to: ``http`` or ``https``, a
  literal host (a name or an IP) and port, no user information; anything else rejects the
  Ingress (ingress-nginx logs a warning and renders a mirror that never answers). What the
  mirror is asked for follows nginx's ``proxy_pass``: a URL with variables (``$request_uri``,
  ``$host``, ``$scheme``, ``$remote_addr``, ``$request_id``) is sent as expanded, nothing
  appended (``https://m/$request_uri`` asks for ``//path?query``, as nginx does); a URL with a
  path and no variable asks for that path, the request's query appended (``?args``); a URL
  without a path asks for the request's own URI (nginx would ask for its internal location
  ``/_mirror-<UID>?args``; ingressd does not know the Ingress's UID).
- ``mirror-request-body: on|off`` (default on; spaces dropped): off sends no body. Any other
  value rejects the Ingress (ingress-nginx falls back to on).
- ``mirror-host``: the Host header of the copy (variables as above); by default the target's
  host name without its port (Go's ``url.Hostname()``), as ingress-nginx.

The copy carries the method, the target as above, and the headers the backend is sent
(ingressd's forwarding headers and the header annotations' changes included). It never slows
or fails the real request: it leaves when the request leaves for its backend (the body read
whole), on its own connection, and the client's answer never waits for it (nginx keeps the
client's keep-alive connection until its mirror sub-requests end; ingressd does not). At
most ``--mirror-max-in-flight`` copies (default 64) are outstanding per mirror target: beyond
that a copy is dropped and counted, so a slow or dead mirror costs bounded memory and sockets
instead of piling up requests. A body over ``--mirror-max-body-size`` (default 1m) is not
copied: that request is not mirrored (a copy without its body would mislead the mirror).
Timeouts are the server's ``--proxy-*-timeout`` (nginx's mirror location has no others).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from twisted.python import log

from ingressd import (
    Annotation,
    AnnotationError,
    Option,
    Phase,
    SubrequestError,
    TargetURL,
    check_plain_text,
    hookimpl,
    parse_size,
    parse_url,
)
from ingressd import same_for_every_path

from ._header_values import parse_value

# ingress-nginx's IsValidRegex, which ValidateServerName applies (parser/validators.go).
_SERVER_NAME = re.compile(r"[/\-._~a-zA-Z0-9:^$\[\](){}*+?|&=\\]*")
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


def parse_target(text: str) -> Target:
    value = check_plain_text(text.strip())
    if not _SERVER_NAME.fullmatch(value):
        raise AnnotationError(f"{value!r} is not a valid mirror target (ingress-nginx allows letters, digits, "
                              "-._~/: and ^$[](){}*+?|&=\\)")
    dollar = value.find("$")
    literal = value if dollar < 0 else value[:dollar]
    scheme_end = literal.find("://")
    if dollar >= 0 and (scheme_end < 0 or not re.search(r"[/?]", literal[scheme_end + 3:])):
        raise AnnotationError(f"{value!r}: variables may only be used in the path of the mirror target, "
                              "after a literal scheme and host")
    authority = literal
    if dollar >= 0:
        cut = min(i for i in (literal.find("/", scheme_end + 3), literal.find("?", scheme_end + 3)) if i >= 0)
        authority = literal[:cut]
    try:
        url = parse_url(authority if dollar >= 0 else value)
    except SubrequestError as exc:
        raise AnnotationError(str(exc)) from None
    if dollar < 0:
        return Target(url, None, value)
    path = parse_value(value[len(authority):], "mirror-target: ")
    return Target(url, path, value)


def parse_request_body(text: str) -> bool:
    value = text.replace(" ", "")
    if value not in ("on", "off"):
        raise AnnotationError(f"expected on or off, got {text!r}")
    return value == "on"


def parse_host(text: str) -> Any:
    value = check_plain_text(text.strip())
    if not value or not _SERVER_NAME.fullmatch(value):
        raise AnnotationError(f"{value!r} is not a valid host name")
    return parse_value(value, "mirror-host: ")


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


@hookimpl
def ingressd_options():
    return [
        Option("mirror-max-in-flight", MAX_IN_FLIGHT, "mirror copies outstanding per mirror target; more are dropped",
               int),
        Option("mirror-max-body-size", "1m", "largest request body copied to a mirror (a larger request is not "
               "mirrored)", parse_size),
    ]


@hookimpl
def ingressd_annotations():
    return [
        Annotation("mirror-target", parse_target, None, "sends a copy of each request to this URL"),
        Annotation("mirror-request-body", parse_request_body, True, "on: the copy carries the request body"),
        Annotation("mirror-host", parse_host, None, "the Host header of the copies (default: the target's host)"),
    ]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    target = values.get("mirror-target")
    if target is None:
        return None
    host = values.get("mirror-host") or parse_value(target.url.host)
    limits = context.plugin_state("mirror").setdefault("limits", {})
    key = (target.url.scheme, target.url.host, target.url.port)
    limit = limits.get(key)
    if limit is None:
        limit = limits[key] = Limit()
    settings = context.settings
    max_in_flight = int(settings.get("mirror_max_in_flight") or MAX_IN_FLIGHT)
    max_body = settings.get("mirror_max_body_size")
    max_body = parse_size(max_body) if isinstance(max_body, str) else int(max_body if max_body is not None else MAX_BODY)
    return Mirror(target, values.get("mirror-request-body", True), host, context.subrequests, limit, max_in_flight,
                  max_body or 2**62)  # 0: any size, as nginx sizes
