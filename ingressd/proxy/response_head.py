"""A backend's HTTP/1.1 response head in one call, for the common case (issue 24).

``parse_response_head(buffer, drop)`` reads a complete response head at the start of
``buffer`` and returns ``(head_end, minor, status, reason, headers, content_length,
keep_alive, kept)``:
the offset of the first byte after the head's blank line, the HTTP/1.x minor version, the
status code, the reason phrase, the header pairs as ``HTTP1Connection`` collects them from
llhttp's callbacks (names lower-cased, values without their leading whitespace, trailing
whitespace kept, in order), the Content-Length (None without one) and llhttp's
``should_keep_alive()`` for it, and the headers without the names in ``drop`` and those
Connection lists (``ingressd.http.headers.without_hop_by_hop(headers, drop)``: with
``drop`` = HOP_BY_HOP | HIDDEN_FROM_BACKEND, what the client is sent). It **declines** (None) whatever is not plain: an incomplete
head, a head longer than 64 KiB or with more than 100 fields, a status outside 200–599
(interim answers and 101 included), a version other than 1.0 or 1.1, anything llhttp's
strict mode refuses (bare LF, obs-fold, a control byte, a space before the colon),
Transfer-Encoding, Upgrade or Proxy-Connection, a Content-Length that is not 1–18 digits
or comes twice, a Connection value other than ``close`` or ``keep-alive``. A declined head
goes to llhttp as it always did, so every error and edge case keeps its old code; what is
accepted gives exactly what llhttp would (``tests/test_response_head.py`` checks both
implementations against each other and against llhttp).

``parse_response_relay(buffer, drop)`` gives the same and, as a ninth item, the kept headers
as the client's head carries them, ``name: value\r\n`` each (``headers.serialize(kept)``):
the plain lane relays a whole response without another pass over its headers
(``Exchange.upstream_whole``).

The work is done by the C accelerator ``ingressd.proxy._response_head`` when it was built
(``setup.py``'s ``ACCELERATORS``); ``parse_response_head_py`` below is its pure-Python twin,
used without it (PyPy, no compiler, ``INGRESSD_NO_ACCEL=1``).
"""

from __future__ import annotations

import re

from ingressd.http.headers import serialize, without_hop_by_hop

MAX_HEAD = 65536
MAX_HEADERS = 100

_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([2-5][0-9][0-9])(?: ([\t\x20-\x7e\x80-\xff]*))?\r\n")
_FIELD = rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\t\x20-\x7e\x80-\xff]*)\r\n"
_FIELDS = re.compile(rb"(?:%s)*\r\n" % _FIELD)
_FIELD_PARTS = re.compile(_FIELD)
_SPECIAL = frozenset((b"content-length", b"connection", b"transfer-encoding", b"upgrade", b"proxy-connection"))
_DIGITS = re.compile(rb"[0-9]{1,18}")


def parse_response_head_py(buffer: bytes, drop: frozenset):
    """The pure-Python twin of the C ``parse_response_head`` (same arguments, same results)."""
    if not isinstance(buffer, bytes) or not isinstance(drop, (set, frozenset)):
        raise TypeError("parse_response_head() takes bytes and a set of names")
    if len(buffer) > MAX_HEAD:
        buffer = buffer[:MAX_HEAD]
    status_line = _STATUS_LINE.match(buffer)
    if status_line is None:
        return None
    fields = _FIELDS.match(buffer, status_line.end())
    if fields is None:
        return None
    headers = []
    length = None
    close = keep = False
    for name, value in _FIELD_PARTS.findall(buffer, status_line.end(), fields.end() - 2):
        name = name.lower()
        if name in _SPECIAL:
            if name == b"content-length":
                if length is not None or _DIGITS.fullmatch(value) is None:
                    return None
                length = int(value)
            elif name == b"connection":
                word = value.lower()
                if word == b"close":
                    close = True
                elif word == b"keep-alive":
                    keep = True
                else:
                    return None
            else:
                return None
        headers.append((name, value))
    if len(headers) > MAX_HEADERS or (close and keep):
        return None
    minor = int(status_line.group(1))
    status = int(status_line.group(2))
    keep_alive = (not close) if minor == 1 else keep
    if length is None and status != 204 and status != 304:
        keep_alive = False
    return (fields.end(), minor, status, status_line.group(3) or b"", headers, length, keep_alive,
            without_hop_by_hop(headers, drop))


def parse_response_relay_py(buffer: bytes, drop: frozenset):
    """The pure-Python twin of the C ``parse_response_relay``: ``parse_response_head_py``'s
    tuple and ``serialize(kept)``."""
    if not isinstance(buffer, bytes) or not isinstance(drop, (set, frozenset)):
        raise TypeError("parse_response_relay() takes bytes and a set of names")
    head = parse_response_head_py(buffer, drop)
    if head is None:
        return None
    return (*head, serialize(head[7]))


try:
    from ingressd.proxy._response_head import parse_response_head, parse_response_relay
    ACCELERATED = True
except ImportError:  # not built (PyPy, no compiler, INGRESSD_NO_ACCEL=1): the twin does the work
    parse_response_head = parse_response_head_py
    parse_response_relay = parse_response_relay_py
    ACCELERATED = False

__all__ = ["ACCELERATED", "MAX_HEAD", "MAX_HEADERS", "parse_response_head", "parse_response_head_py",
           "parse_response_relay", "parse_response_relay_py"]
