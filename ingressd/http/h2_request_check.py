"""h2's checks of a client's request header block, in one pass for the blocks that pass them.

h2 validates every header block it receives (RFC 9113 8.2 and 8.3: field characters, no
connection-specific fields, ``te`` only "trailers", pseudo-headers first, known, not repeated,
the ones a request needs, ``:authority`` and ``Host`` agreeing, a non-empty ``:path``) through a
chain of seven generators after joining split ``cookie`` fields (moved last), with a loop over
every character of every name and value: about a tenth of an HTTP/2 request's cost.

``request_fields`` makes the same decision in one pass for the ordinary request block, and
returns the fields as h2 would have left them; when it has any doubt (a rule broken, a CONNECT,
something it does not check) it returns None and h2 checks the block itself, so an invalid
block meets exactly h2's error. A field checked once is remembered (bounded): the fields a
client repeats come from the same HPACK table entries.

Our connection (``h2_server``) applies ``request_fields`` to every request block and h2's own
validation functions to the blocks it doubts. (How it was applied on h2's ``H2Connection``,
``CheckingDecoder``, is kept with the old glue in ``tests/h2_glue_before.py``.)
"""

from __future__ import annotations

import re

from hpack import NeverIndexedHeaderTuple

# RFC 9113 8.2.1, as h2 applies it: a name of 0x21-0x7e without upper case or ':'; a value
# without NUL, CR or LF, and neither starting nor ending with a space or a tab.
_BAD_NAME = re.compile(rb"[^\x21-\x39\x3b-\x40\x5b-\x7e]").search
_BAD_VALUE = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z").search
_CONNECTION_SPECIFIC = frozenset((b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding",
                                  b"upgrade"))
_MEMO_LIMIT = 4096  # regular fields remembered as valid; the memo starts again when full

_valid: set = set()


def _regular_field_ok(field: tuple) -> bool:
    """h2's rules for one field that is no pseudo-header (and no cookie: those are joined first)."""
    if field in _valid:
        return True
    name, value = field
    if not name or _BAD_NAME(name) is not None or (value and _BAD_VALUE(value) is not None):
        return False
    if name in _CONNECTION_SPECIFIC or (name == b"te" and value.lower() != b"trailers"):
        return False
    if len(_valid) >= _MEMO_LIMIT:
        _valid.clear()
    _valid.add(field)
    return True


def request_fields(fields: list) -> list | None:
    """``fields`` as h2 leaves a valid request block (cookies joined with "; " into one
    never-indexed field at the end), or None: h2 must check the block itself."""
    method = scheme = path = authority = host = None
    regular = False
    cookies = None
    for field in fields:
        name = field[0]
        if name[:1] == b":":
            if regular or (field[1] and _BAD_VALUE(field[1]) is not None):
                return None
            if name == b":method" and method is None:
                method = field[1]
            elif name == b":path" and path is None:
                path = field[1]
            elif name == b":scheme" and scheme is None:
                scheme = field[1]
            elif name == b":authority" and authority is None:
                authority = field[1]
            else:
                return None  # repeated, :status, :protocol (CONNECT only) or unknown: h2 decides
            continue
        if name == b"cookie":  # h2 moves the cookies last before checking: they never count as regular
            if cookies is None:
                cookies = []
            cookies.append(field[1])
            continue
        regular = True
        if not _regular_field_ok(field):
            return None
        if name == b"host":
            if host is not None:
                return None
            host = field[1]
    if method is None or method == b"CONNECT" or scheme is None or not path:
        return None
    if authority is None:
        if host is None:
            return None
    elif host is not None and host != authority:
        return None
    if cookies is None:
        return fields
    cookie = b"; ".join(cookies)
    if cookie and _BAD_VALUE(cookie) is not None:
        return None
    normalised = [field for field in fields if field[0] != b"cookie"]
    normalised.append(NeverIndexedHeaderTuple(b"cookie", cookie))
    return normalised
