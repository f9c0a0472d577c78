"""The access-log line of one TCP connection or UDP session: ingress-nginx's default
``log-format-stream``, ``[$remote_addr] [$time_local] $protocol $status $bytes_sent
$bytes_received $session_time`` (internal/ingress/controller/config/config.go).

``$status`` as nginx's stream module sets it: 200 a session that reached its backend, 400
a client that did not send what was required (a PROXY protocol header), 502 no backend could
be reached, 503 the port's connection limit. ``$bytes_sent`` went to the client,
``$bytes_received`` came from it; ``$session_time`` in seconds, millisecond resolution.

A ``log-format-stream`` of the ConfigMap is compiled by ``compile_stream_format`` (nginx's stream
variables: ``$remote_addr``, ``$remote_port``, ``$server_port``, ``$protocol``, ``$status``,
``$bytes_sent``, ``$bytes_received``, ``$session_time``, ``$time_local``, ``$time_iso8601``,
``$msec``, ``$pid``, ``$hostname``, ``$upstream_addr``, ``$upstream_bytes_sent``,
``$upstream_bytes_received``, ``$upstream_connect_time``, ``$proxy_protocol_addr``) and
rendered from a ``StreamRecord``; the default format gives the same line as ``stream_line``.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

from ingressd.logformat import escape_default, unquote_nginx

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def time_local(now: float) -> str:
    """nginx's ``$time_local``: ``06/Dec/2026:20:40:34 +0000`` (the process's time zone)."""
    local = time.localtime(now)
    offset = local.tm_gmtoff or 0
    sign = "+" if offset >= 0 else "-"
    offset = abs(offset) // 60
    return (f"{local.tm_mday:02d}/{_MONTHS[local.tm_mon - 1]}/{local.tm_year}:"
            f"{local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d} {sign}{offset // 60:02d}{offset % 60:02d}")


def stream_line(remote_addr: str, now: float, protocol: str, status: int, bytes_sent: int,
                bytes_received: int, session_time: float) -> str:
    """One line, newline included."""
    return (f"[{remote_addr}] [{time_local(now)}] {protocol} {status} {bytes_sent} {bytes_received} "
            f"{max(0.0, session_time):.3f}\n")


# -- log-format-stream: nginx's stream log_format, compiled once ------------------------------

DEFAULT_STREAM = "[$remote_addr] [$time_local] $protocol $status $bytes_sent $bytes_received $session_time"


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """What one finished TCP connection or UDP session gives its log line (None: not known,
    written ``-`` as nginx writes a variable that is not found)."""

    remote_addr: str
    now: float
    protocol: str
    status: int
    bytes_sent: int
    bytes_received: int
    session_time: float
    remote_port: int | None = None
    server_port: int | None = None
    upstream_addr: str | None = None
    upstream_bytes_sent: int | None = None
    upstream_bytes_received: int | None = None
    upstream_connect_time: float | None = None
    proxy_protocol_addr: str | None = None


def _seconds(value: float | None) -> str | None:
    return None if value is None else f"{max(0.0, value):.3f}"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# nginx's stream variables (ngx_stream_variables.c, ngx_stream_upstream.c, ngx_stream_proxy_protocol)
_VARIABLES: Mapping[str, Callable[[StreamRecord], str | None]] = MappingProxyType({
    "remote_addr": lambda r: r.remote_addr,
    "binary_remote_addr": None,  # not text
    "remote_port": lambda r: _text(r.remote_port),
    "server_port": lambda r: _text(r.server_port),
    "protocol": lambda r: r.protocol,
    "status": lambda r: str(r.status),
    "bytes_sent": lambda r: str(r.bytes_sent),
    "bytes_received": lambda r: str(r.bytes_received),
    "session_time": lambda r: _seconds(r.session_time),
    "time_local": lambda r: time_local(r.now),
    "time_iso8601": lambda r: _iso8601(r.now),
    "msec": lambda r: f"{r.now:.3f}",
    "pid": lambda r: str(os.getpid()),
    "hostname": lambda r: _HOSTNAME,
    "upstream_addr": lambda r: r.upstream_addr,
    "upstream_bytes_sent": lambda r: _text(r.upstream_bytes_sent),
    "upstream_bytes_received": lambda r: _text(r.upstream_bytes_received),
    "upstream_connect_time": lambda r: _seconds(r.upstream_connect_time),
    "proxy_protocol_addr": lambda r: r.proxy_protocol_addr,
})
_HOSTNAME = socket.gethostname()
_PIECE = re.compile(r"\$(?:\{([A-Za-z0-9_]*)\}|([A-Za-z0-9_]*))")


def _iso8601(now: float) -> str:
    text = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now))
    return f"{text[:-2]}:{text[-2:]}"


@dataclass(frozen=True)
class StreamLogFormat:
    """A compiled ``log-format-stream``: literal text and variable pieces (default escaping:
    nginx's stream ``log_format`` has no ``escape=`` in ingress-nginx's template)."""

    text: str
    pieces: tuple[tuple[str, Callable[[StreamRecord], str | None]], ...]
    tail: str

    def render(self, record: StreamRecord) -> str:
        out = []
        for literal, getter in self.pieces:
            out.append(literal)
            value = getter(record)
            out.append("-" if value is None else escape_default(value))
        out.append(self.tail)
        return "".join(out)


def compile_stream_format(text: str) -> StreamLogFormat:
    """``log-format-stream`` as nginx reads it between ingress-nginx's single quotes; a variable
    nginx's stream module would not know (or ingressd cannot give: ``$binary_remote_addr``) or
    a line break is a ``ValueError`` naming it."""
    text = unquote_nginx(str(text))
    if "\n" in text or "\r" in text:
        raise ValueError("log-format-stream must be one line")
    pieces = []
    position = 0
    for match in _PIECE.finditer(text):
        name = (match.group(1) if match.group(1) is not None else match.group(2)).lower()
        if not name:
            raise ValueError(f"log-format-stream: invalid variable name at {text[match.start():match.start() + 10]!r}")
        if name not in _VARIABLES:
            raise ValueError(f"log-format-stream: unknown stream log variable ${name}")
        getter = _VARIABLES[name]
        if getter is None:
            raise ValueError(f"log-format-stream: ${name} is not supported (not text)")
        pieces.append((text[position:match.start()], getter))
        position = match.end()
    return StreamLogFormat(text, tuple(pieces), text[position:] + "\n")
