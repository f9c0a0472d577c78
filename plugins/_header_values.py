"""Header lines given in annotations, as data: parsed, validated, and their variables expanded.

Used by the header plugins (``upstream_headers``, ``response_headers``): ``Name: value`` lines,
lists of names, and values with a fixed set of variables (``$host``, ``$request_id``,
``$remote_addr``, ``$scheme``, ``$request_uri``) that are substituted as bytes, never
interpreted. Every error names the line it is on.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from ingressd import AnnotationError

# RFC 9110 5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]*)\}|([A-Za-z0-9_]*))")

# Hop-by-hop and framing headers: ingressd frames every message itself (the same names as
# ingressd.http.headers.HOP_BY_HOP, with Expect, which ingressd answers; a test keeps them equal).
HOP_BY_HOP = frozenset((
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
    "http2-settings", "content-length", "expect",
))
# Request headers ingressd sets itself (ingressd.proxy.forwarding.FORWARDED, and Host): changed
# only with --allow-owned-header-changes. Any X-Forwarded-* name counts.
OWNED_REQUEST = frozenset((
    "host", "x-real-ip", "x-request-id", "x-scheme", "x-original-forwarded-for", "x-original-forwarded-host",
))
# Response headers ingressd writes on every answer itself (Server with --server-tokens, Date).
OWNED_RESPONSE = frozenset(("server", "date"))


def _variables() -> dict[str, Callable[[Any], bytes]]:
    return {
        "host": lambda exchange: exchange.host.encode("utf-8"),
        "request_id": lambda exchange: exchange.request_id.encode("ascii"),
        "remote_addr": lambda exchange: exchange.client_ip.encode("ascii"),
        "scheme": lambda exchange: exchange.scheme.encode("ascii"),
        "request_uri": lambda exchange: exchange.request_uri,
    }


VARIABLES = _variables()


class Value:
    """A header value: literal bytes and variables, expanded per request."""

    __slots__ = ("parts", "constant")

    def __init__(self, parts: tuple):
        self.parts = parts  # bytes, or a function of the exchange giving bytes
        self.constant = parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else None

    def expand(self, exchange: Any) -> bytes:
        if self.constant is not None:
            return self.constant
        return b"".join(part if isinstance(part, bytes) else part(exchange) for part in self.parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Value) and self.parts == other.parts

    def __hash__(self) -> int:
        return hash(self.parts)


def parse_value(text: str, where: str = "") -> Value:
    """``text`` with ``$name`` / ``${name}`` from ``VARIABLES``; anything else after ``$`` is an error."""
    found = _CONTROL.search(text)
    if found:
        raise AnnotationError(f"{where}the value contains the control character {found.group()!r}")
    parts: list = []
    at = 0
    for match in _VARIABLE.finditer(text):
        name = match.group(1) if match.group(1) is not None else match.group(2)
        if name not in VARIABLES:
            shown = match.group() if name else "$"
            raise AnnotationError(
                f"{where}{shown} is not a variable ingressd substitutes (supported: "
                f"{', '.join('$' + v for v in VARIABLES)})")
        if match.start() > at:
            parts.append(text[at:match.start()].encode("utf-8"))
        parts.append(VARIABLES[name])
        at = match.end()
    if at < len(text) or not parts:
        parts.append(text[at:].encode("utf-8"))
    return Value(tuple(parts))


def check_name(name: str, where: str, owned: frozenset[str], allow_owned: bool, request: bool) -> str:
    """The lower-cased name, or AnnotationError if it is not a token or is ingressd's own."""
    if not _TOKEN.fullmatch(name):
        raise AnnotationError(f"{where}{name!r} is not a valid header name")
    lowered = name.lower()
    if lowered in HOP_BY_HOP:
        raise AnnotationError(f"{where}{name} is a hop-by-hop or framing header: ingressd sets it itself")
    if lowered in owned or (request and lowered.startswith("x-forwarded-")):
        if not request:
            raise AnnotationError(f"{where}{name} is written by ingressd on every response")
        if not allow_owned:
            raise AnnotationError(
                f"{where}{name} is set by ingressd (forwarding headers, Host: see upstream-vhost); "
                "the operator may allow changing it with --allow-owned-header-changes")
    return lowered


def _lines(text: str):
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r").strip()
        if line:
            yield number, line


def parse_header_lines(text: str) -> tuple[tuple[str, str, str], ...]:
    """``Name: value`` per line → ((where, name, value), …); only the syntax is checked here."""
    if len(text) > 16384:
        raise AnnotationError(f"value is {len(text)} characters long (at most 16384)")
    result = []
    for number, line in _lines(text):
        where = f"line {number}: "
        name, colon, value = line.partition(":")
        if not colon:
            raise AnnotationError(f"{where}expected 'Name: value', got {line!r}")
        name, value = name.strip(), value.strip()
        if not _TOKEN.fullmatch(name):
            raise AnnotationError(f"{where}{name!r} is not a valid header name")
        if not value:
            raise AnnotationError(f"{where}{name} has no value (to remove a header, list it in remove-…-headers)")
        parse_value(value, where)  # variables and control characters
        result.append((where, name, value))
    return tuple(result)


def parse_header_names(text: str) -> tuple[tuple[str, str], ...]:
    """Names separated by commas or lines → ((where, name), …)."""
    if len(text) > 16384:
        raise AnnotationError(f"value is {len(text)} characters long (at most 16384)")
    result = []
    for number, line in _lines(text):
        for name in line.split(","):
            name = name.strip()
            if not name:
                continue
            where = f"line {number}: "
            if not _TOKEN.fullmatch(name):
                raise AnnotationError(f"{where}{name!r} is not a valid header name")
            result.append((where, name))
    return tuple(result)


def header_edits(lines, names, owned: frozenset[str], allow_owned: bool, request: bool, annotation: str,
                 remove_annotation: str) -> tuple[frozenset[bytes], tuple[tuple[bytes, Value], ...]]:
    """The names to drop and the (name, Value) pairs to set, checked against what ingressd owns."""
    drop: set[bytes] = set()
    for where, name in names:
        lowered = check_name(name, f"{remove_annotation}: {where}", owned, allow_owned, request)
        if request and lowered == "host":
            raise AnnotationError(f"{remove_annotation}: {where}Host cannot be removed (HTTP/1.1 requires it)")
        drop.add(lowered.encode("ascii"))
    pairs = []
    for where, name, value in lines:
        lowered = check_name(name, f"{annotation}: {where}", owned, allow_owned, request)
        pairs.append((lowered.encode("ascii"), parse_value(value, f"{annotation}: {where}")))
    return frozenset(drop | {name for name, _ in pairs}), tuple(pairs)


def apply_edits(headers: list, drop: frozenset[bytes], pairs: tuple, exchange: Any) -> None:
    """Drop the named headers from ``headers`` (in place) and set the pairs, expanded: a set
    header takes the place of the first one of its name, else it goes at the end."""
    kept: list = []
    places: dict[bytes, int] = {}
    for pair in headers:
        name = pair[0]
        if name in drop:
            if name not in places:
                places[name] = len(kept)
                kept.append(None)
        else:
            kept.append(pair)
    for name, value in pairs:
        line = (name, value.expand(exchange))
        place = places.pop(name, None)
        if place is None:
            kept.append(line)
        else:
            kept[place] = line
    headers[:] = [pair for pair in kept if pair is not None]
