"""HTTP header lists: ordered (lower-case name, value) byte pairs, repeated names kept; and
the headers ingressd itself puts on every response (``Server``, ``Date``)."""

from __future__ import annotations

import time
from typing import Iterator

# Hop-by-hop headers (RFC 9110 7.6.1) and the framing headers the proxy re-creates itself.
HOP_BY_HOP = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"http2-settings",
        b"content-length",
    )
)

# What nginx never passes on from a backend's response (ngx_http_proxy_module, proxy_hide_header:
# "Date", "Server", "X-Pad" and "X-Accel-..."): it sends its own Date and Server instead.
HIDDEN_FROM_BACKEND = frozenset(
    (
        b"date",
        b"server",
        b"x-pad",
        b"x-accel-expires",
        b"x-accel-redirect",
        b"x-accel-limit-rate",
        b"x-accel-buffering",
        b"x-accel-charset",
    )
)
_NOT_FROM_BACKEND = HOP_BY_HOP | HIDDEN_FROM_BACKEND


class Headers:
    """A mutable list of header pairs with names lower-cased once, at parse time."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[bytes, bytes]] | None = None):
        self.pairs = pairs if pairs is not None else []

    def get(self, name: bytes) -> bytes | None:
        for key, value in self.pairs:
            if key == name:
                return value
        return None

    def get_all(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.pairs if key == name]

    def add(self, name: bytes, value: bytes) -> None:
        self.pairs.append((name, value))

    def set(self, name: bytes, value: bytes) -> None:
        self.remove(name)
        self.pairs.append((name, value))

    def remove(self, name: bytes) -> None:
        if any(key == name for key, _ in self.pairs):
            self.pairs = [(key, value) for key, value in self.pairs if key != name]

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return f"Headers({self.pairs!r})"


def connection_tokens(pairs: list[tuple[bytes, bytes]]) -> set[bytes]:
    """The header names a Connection header lists (to be removed with it)."""
    tokens: set[bytes] = set()
    for key, value in pairs:
        if key == b"connection":
            for token in value.split(b","):
                token = token.strip().lower()
                if token:
                    tokens.add(token)
    return tokens


def without_hop_by_hop(pairs: list[tuple[bytes, bytes]], drop: frozenset = HOP_BY_HOP) -> list[tuple[bytes, bytes]]:
    """Drop hop-by-hop and framing headers (or the names in ``drop``, which must include
    them) and every header named in Connection."""
    kept = []
    listed = False
    for pair in pairs:
        if pair[0] in drop:
            listed = listed or pair[0] == b"connection"
        else:
            kept.append(pair)
    if listed:
        tokens = connection_tokens(pairs)
        # Another pass only for names not dropped already (a backend's usual
        # "Connection: keep-alive" lists none).
        if not tokens <= drop:
            kept = [pair for pair in kept if pair[0] not in tokens]
    return kept


def serialize(pairs) -> bytes:
    """``name: value\\r\\n`` per pair (an empty list gives b"")."""
    if not pairs:
        return b""
    return b"\r\n".join([b": ".join(pair) for pair in pairs]) + b"\r\n"


def from_backend(pairs: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A backend's response headers as the client gets them: without hop-by-hop and framing
    headers and without what nginx hides from backends (``HIDDEN_FROM_BACKEND``)."""
    return without_hop_by_hop(pairs, _NOT_FROM_BACKEND)


_DAYS = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")


def http_date(second: int) -> bytes:
    """An IMF-fixdate (RFC 9110 5.6.7), ``Sun, 06 Nov 1994 08:49:37 GMT``, locale-independent."""
    t = time.gmtime(second)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)


class ResponseIdentity:
    """The ``Server`` and ``Date`` headers ingressd puts on every response, its own answers
    and the backends' alike (whose own are hidden: ``from_backend``). They are formatted
    once per second: a response costs a clock read and a comparison. ``server`` None: no
    ``Server`` header at all (ingress-nginx's default, ``server-tokens: false``).

    ``second`` and ``second_lines``: the whole second the lines were last formatted for and
    ``lines``' answer for it, read directly by the HTTP/1.1 response writer (``int(now) ==
    second``: no call for a response in the same second); set only here."""

    __slots__ = ("server", "second", "_date", "second_lines", "_pairs")

    def __init__(self, server: bytes | None = None):
        self.server = server
        self.second = -1
        self._date = b""
        self.second_lines = b""
        self._pairs: list[tuple[bytes, bytes]] = []

    def _at(self, now: float) -> None:
        second = int(now)
        if second != self.second:
            self._date = date = http_date(second)
            if self.server is None:
                self.second_lines = b"date: %s\r\n" % date
                self._pairs = [(b"date", date)]
            else:
                self.second_lines = b"server: %s\r\ndate: %s\r\n" % (self.server, date)
                self._pairs = [(b"server", self.server), (b"date", date)]
            self.second = second

    def lines(self, now: float) -> bytes:
        """``[server: …\r\n]date: …\r\n`` at the time ``now`` (seconds since the epoch)."""
        self._at(now)
        return self.second_lines

    def pairs(self, now: float) -> list[tuple[bytes, bytes]]:
        """The same headers as pairs (HTTP/2 header blocks); a new list each time."""
        self._at(now)
        return list(self._pairs)

    def date_lines(self, now: float) -> bytes:
        """``date: …\r\n`` alone: a response that carries the backend's ``Server``
        (allow-backend-server-header)."""
        self._at(now)
        return b"date: %s\r\n" % self._date

    def date_pairs(self, now: float) -> list[tuple[bytes, bytes]]:
        self._at(now)
        return [(b"date", self._date)]


def server_name(tokens: bool, version: str) -> bytes | None:
    """``Server``'s value: none at all by default, as ingress-nginx (its nginx.tmpl clears
    the header, ``more_clear_headers Server``, unless ``server-tokens`` is on), or
    ``ingressd/<version>`` with ``--server-tokens`` (nginx's ``server_tokens on``)."""
    return b"ingressd/" + version.encode("ascii") if tokens else None
