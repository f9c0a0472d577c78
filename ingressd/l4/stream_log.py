"""The access-log line of one TCP connection or UDP session: ingress-nginx's default
``log-format-stream``, ``[$remote_addr] [$time_local] $protocol $status $bytes_sent
$bytes_received $session_time`` (internal/ingress/controller/config/config.go).

``$status`` as nginx's stream module sets it: 200 a session that reached its backend, 400
a client that did not send what was required (a PROXY protocol header), 502 no backend could
be reached, 503 the port's connection limit. ``$bytes_sent`` went to the client,
``$bytes_received`` came from it; ``$session_time`` in seconds, millisecond resolution.
"""

from __future__ import annotations

import time

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
