"""h2's checks of a backend's response header block and trailers, in one pass.

What ``h2.connection.H2Connection`` (client side, ``validate_inbound_headers`` and
``normalize_inbound_headers`` on) does to a header block a backend sends, for the backend
connection of ``proxy/h2_client.py``: field characters (RFC 9113 8.2.1: a name of 0x21-0x7e
without upper case or an inner ``:``; a value without NUL, CR or LF that neither starts nor
ends with a space or a tab), no empty name, no connection-specific field, ``te`` only
"trailers", pseudo-header fields first, known and not repeated, ``:status`` in a response and
no request pseudo-header, none in trailers; split ``cookie`` fields joined and moved last.
Beyond h2: ``:status`` must be three digits (h2 passes anything; the proxy needs a number)
and ``content-length`` all digits (h2's own check, applied where h2 applies it).

A block breaking a rule raises ``MalformedHeaders``: a connection error (PROTOCOL_ERROR), as
h2 treats it. A regular field checked once is remembered (bounded): a backend's HPACK table
hands back the same tuples call after call.
"""

from __future__ import annotations

import re

_BAD_NAME = re.compile(rb"[^\x21-\x39\x3b-\x40\x5b-\x7e]").search
_BAD_VALUE = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z").search
_CONNECTION_SPECIFIC = frozenset((b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding",
                                  b"upgrade"))
_KNOWN_PSEUDO = frozenset((b":method", b":scheme", b":authority", b":path", b":status", b":protocol"))
_MEMO_LIMIT = 4096  # regular fields remembered as valid; the memo starts again when full

_valid: set = set()


class MalformedHeaders(Exception):
    """A header block h2 would refuse (a connection error, PROTOCOL_ERROR)."""


def _check_field(field: tuple) -> None:
    name, value = field[0], field[1]
    if not name:
        raise MalformedHeaders("Received header name with zero length.")
    if _BAD_NAME(name, 1) or (name[0] != 0x3A and _BAD_NAME(name, 0, 1)):
        raise MalformedHeaders(f"Illegal character in header name: {name!r}")
    if value and _BAD_VALUE(value):
        raise MalformedHeaders(f"Illegal character or surrounding whitespace in header value: {value!r}")


def _check_regular(field: tuple) -> None:
    if field in _valid:
        return
    _check_field(field)
    name = field[0]
    if name in _CONNECTION_SPECIFIC:
        raise MalformedHeaders(f"Connection-specific header field present: {name!r}.")
    if name == b"te" and field[1].lower() != b"trailers":
        raise MalformedHeaders(f"Invalid value for TE header: {field[1]!r}")
    if len(_valid) >= _MEMO_LIMIT:
        _valid.clear()
    _valid.add((field[0], field[1]))


def _joined_cookies(fields: list) -> list:
    cookies = [field[1] for field in fields if field[0] == b"cookie"]
    if not cookies:
        return fields
    rest = [field for field in fields if field[0] != b"cookie"]
    rest.append((b"cookie", b"; ".join(cookies)))
    return rest


def response_fields(fields: list) -> tuple[int, list]:
    """The ``:status`` of a response (or informational) header block and its regular fields,
    in order (cookies joined, last); ``MalformedHeaders`` when h2 would refuse it."""
    status = None
    at = 0
    count = len(fields)
    while at < count:
        field = fields[at]
        name = field[0]
        if not name or name[0] != 0x3A:
            break
        _check_field(field)
        if name != b":status":
            if name in _KNOWN_PSEUDO:
                raise MalformedHeaders(f"Encountered request-only header {name!r}")
            raise MalformedHeaders(f"Received custom pseudo-header field {name!r}")
        if status is not None:
            raise MalformedHeaders("Received duplicate pseudo-header field b':status'")
        value = field[1]
        if len(value) != 3 or not value.isdigit():
            raise MalformedHeaders(f"Invalid :status {value!r}")
        status = int(value)
        at += 1
    if status is None:
        raise MalformedHeaders("Header block missing mandatory b':status' header")
    regular = fields[at:]
    length = None
    for field in regular:
        name = field[0]
        if name and name[0] == 0x3A:
            raise MalformedHeaders(f"Received pseudo-header field out of sequence: {name!r}")
        _check_regular(field)
        if name == b"content-length":
            if not field[1].isdigit():
                raise MalformedHeaders(f"Invalid content-length header: {field[1]!r}")
            if length is not None and int(field[1]) != length:
                raise MalformedHeaders("Conflicting content-length headers")
            length = int(field[1])
    return status, _joined_cookies(list(regular))


def trailer_fields(fields: list) -> list:
    """A trailer block's fields (cookies joined, last); ``MalformedHeaders`` when h2 would
    refuse it (a pseudo-header field among them, or a field as in a response)."""
    for field in fields:
        name = field[0]
        if name and name[0] == 0x3A:
            _check_field(field)
            raise MalformedHeaders(f"Received pseudo-header in trailer {name!r}")
        _check_regular(field)
    return _joined_cookies(list(fields))


def content_length(fields: list) -> int | None:
    """The (checked) ``content-length`` of a response's regular fields, or None."""
    for field in fields:
        if field[0] == b"content-length":
            return int(field[1])
    return None
