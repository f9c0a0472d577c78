"""The request headers the backend is sent: ``upstream-vhost``, ``connection-proxy-header`` and
ingressd's typed ``request-headers`` / ``remove-request-headers``.

What ingress-nginx renders (nginx.tmpl) and so what ingressd does:

- ``upstream-vhost: VALUE`` → ``proxy_set_header Host "VALUE"``: the backend gets ``Host:
  VALUE`` instead of the client's host. ingress-nginx validates it with ``IsValidRegex``
  (letters, digits, ``-._~/:`` and ``^$[](){}*+?|&=\\``) and nginx expands variables in it;
  ingressd takes the same characters and expands ``$host``, ``$request_id``,
  ``$remote_addr``, ``$scheme`` and ``$request_uri`` (any other variable rejects the
  Ingress). ``X-Forwarded-Host`` keeps the client's host, as there.
- ``connection-proxy-header: close|keep-alive`` → ``proxy_set_header Connection VALUE``
  (anything else is refused, as ingress-nginx's ``^(close|keep-alive)$``). Without it
  ingressd sends no Connection header (HTTP/1.1 keep-alive, as ingress-nginx with upstream
  keep-alive on). ``close`` makes the backend close after its answer (RFC 9112 9.6), so the
  connection is not pooled. A WebSocket upgrade keeps ``Connection: upgrade`` (nginx would
  send the annotation's value and the upgrade would fail).
- ``ingressd.io/request-headers``: one ``Name: value`` per line, each set on the request
  (replacing the client's header of that name); values may use the variables above.
  ``ingressd.io/remove-request-headers``: names (comma- or line-separated) removed.
  Hop-by-hop and framing headers are refused; Host and the forwarding headers ingressd
  sets (X-Forwarded-*, X-Real-IP, X-Request-ID, X-Scheme, X-Original-Forwarded-*) are
  refused unless the operator starts ingressd with ``--allow-owned-header-changes``. An
  error names the annotation and the line.

The changes are made on the complete header list, after ingressd's own forwarding headers
(``upstream_request``), for every backend the request is sent to, by
``_header_changes.HeaderChange`` (the code the Gateway API's RequestHeaderModifier uses).
"""

from __future__ import annotations

import re
from typing import Any

from ingressd import Annotation, AnnotationError, Option, Phase, hookimpl
from ingressd import same_for_every_path

from ._header_changes import HeaderChange
from ._header_values import (
    OWNED_REQUEST,
    header_edits,
    parse_header_lines,
    parse_header_names,
    parse_value,
)

# ingress-nginx's IsValidRegex (internal/ingress/annotations/parser/validators.go), which
# ValidateServerName applies to upstream-vhost.
_VHOST = re.compile(r"[/\-._~a-zA-Z0-9:^$\[\](){}*+?|&=\\]*")
_CONNECTION = ("close", "keep-alive")


def _parse_vhost(text: str):
    value = text.strip()
    if not _VHOST.fullmatch(value):
        raise AnnotationError(f"{value!r} is not a valid server name (letters, digits, -._~/: and variables)")
    return parse_value(value)


def _parse_connection(text: str) -> str:
    value = text.replace(" ", "")
    if value not in _CONNECTION:
        raise AnnotationError(f"expected close or keep-alive, got {text!r}")
    return value


class UpstreamHeaders:
    """Changes the request headers sent to the backend, on the complete list."""

    phase = Phase.PROXY

    def __init__(self, drop: frozenset, pairs: tuple, connection: bytes | None):
        self._change = HeaderChange(drop, pairs)
        self._connection = connection

    def upstream_request(self, exchange: Any, headers: list) -> None:
        self._change.apply(headers, exchange)
        connection = self._connection
        if connection is not None and not any(name == b"upgrade" for name, _ in headers):
            headers[:] = [pair for pair in headers if pair[0] != b"connection"]
            headers.append((b"connection", connection))


@hookimpl
def ingressd_options():
    return [
        Option("allow-owned-header-changes", False,
               "let ingressd.io/request-headers and remove-request-headers change Host and the "
               "forwarding headers ingressd sets (X-Forwarded-*, X-Real-IP, X-Request-ID…)", flag=True),
    ]


@hookimpl
def ingressd_annotations():
    return [
        Annotation("upstream-vhost", _parse_vhost, None, "the Host header sent to the backend"),
        Annotation("connection-proxy-header", _parse_connection, None,
                   "the Connection header sent to the backend (close or keep-alive)"),
        Annotation("request-headers", parse_header_lines, (),
                   "request headers set for the backend, one 'Name: value' a line", lines=True),
        Annotation("remove-request-headers", parse_header_names, (),
                   "request headers removed before the backend (comma- or line-separated)", lines=True),
    ]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    vhost = values.get("upstream-vhost")
    connection = values.get("connection-proxy-header")
    lines = values.get("request-headers") or ()
    names = values.get("remove-request-headers") or ()
    if vhost is None and connection is None and not lines and not names:
        return None
    allow_owned = bool(context.settings.get("allow_owned_header_changes"))
    drop, pairs = header_edits(lines, names, OWNED_REQUEST, allow_owned, request=True,
                               annotation="request-headers", remove_annotation="remove-request-headers")
    if vhost is not None:
        if any(name == b"host" for name, _ in pairs):
            raise AnnotationError("request-headers sets Host and so does upstream-vhost: use one of them")
        drop = drop | {b"host"}
        pairs = pairs + ((b"host", vhost),)
    return UpstreamHeaders(drop, pairs, connection.encode("ascii") if connection else None)
