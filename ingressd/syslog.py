"""Access-log lines sent to a syslog server over UDP, as nginx's ``access_log syslog:server=HOST:PORT``
(ingress-nginx's ``enable-syslog``, ``syslog-host``, ``syslog-port``).

Each line is one datagram in nginx's format (``ngx_syslog_add_header``, RFC 3164):
``<190>Dec  6 22:44:23 HOSTNAME nginx: LINE`` — facility local7 (23) and severity info (6),
nginx's defaults for an access log, the local time with the day padded by a space, the host
name as ``gethostname`` gives it in lower case, the tag ``nginx``, and the line without its
line break. Used by the access log's writer thread only: the name is resolved there, the socket
never blocks, and a datagram the kernel does not take is dropped and counted, never retried.
"""

from __future__ import annotations

import socket
import time

_FACILITY_LOCAL7 = 23
_SEVERITY_INFO = 6
PRI = _FACILITY_LOCAL7 * 8 + _SEVERITY_INFO
TAG = "nginx"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MAX_DATAGRAM = 65507  # what one UDP datagram over IPv4 can carry


def syslog_time(now: float) -> str:
    """nginx's ``ngx_cached_syslog_time``: ``Dec  6 22:44:23`` (local time)."""
    local = time.localtime(now)
    return f"{_MONTHS[local.tm_mon - 1]} {local.tm_mday:2d} {local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d}"


def syslog_message(line: str, now: float, hostname: str) -> bytes:
    """One access-log ``line`` (its line break removed) as nginx sends it to syslog."""
    data = f"<{PRI}>{syslog_time(now)} {hostname} {TAG}: {line.rstrip(chr(10))}".encode("utf-8", "surrogateescape")
    return data[:_MAX_DATAGRAM]


class SyslogSender:
    """Sends lines to ``(host, port)`` over UDP; ``dropped`` counts the lines not sent."""

    def __init__(self, host: str, port: int, hostname: str | None = None):
        self.host = host
        self.port = port
        self.hostname = (hostname or socket.gethostname() or "localhost").lower()
        self.sent = 0
        self.dropped = 0
        self._socket: socket.socket | None = None
        self._address = None

    def _open(self) -> bool:
        try:
            family, kind, proto, _, address = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
        except OSError:
            return False
        self._socket, self._address = sock, address
        return True

    def send(self, lines: list[str], now: float) -> None:
        if self._socket is None and not self._open():
            self.dropped += len(lines)  # the name does not resolve (yet): tried again next time
            return
        for line in lines:
            try:
                self._socket.sendto(syslog_message(line, now, self.hostname), self._address)
                self.sent += 1
            except OSError:  # full buffer (EAGAIN), unreachable port (ECONNREFUSED from an ICMP)…
                self.dropped += 1

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
