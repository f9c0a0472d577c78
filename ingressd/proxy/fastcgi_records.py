"""FastCGI records on the wire (the FastCGI 1.0 specification): encoded, and read strictly.

Pure: bytes in, records out. What ingressd sends as a web server (BEGIN_REQUEST, PARAMS,
STDIN, padded to 8 bytes as nginx pads them) is encoded here; what an application sends back
is read by ``RecordReader``, which accepts only what a responder may send for the one request
of the connection (STDOUT, STDERR, END_REQUEST) and refuses anything else with a
``FastCGIError``: another version, another request id, a management record, an END_REQUEST
of the wrong size. Nothing read is kept beyond one record (at most 8 + 65535 + 255 bytes).
"""

from __future__ import annotations

import struct
from typing import Iterable

VERSION = 1
BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7
RESPONDER = 1
KEEP_CONN = 1
REQUEST_COMPLETE, CANT_MPX_CONN, OVERLOADED, UNKNOWN_ROLE = 0, 1, 2, 3
MAX_CONTENT = 65535  # a record's content length is two bytes
REQUEST_ID = 1  # one request per connection, as nginx numbers it

_HEADER = struct.Struct(">BBHHBx")
_END_BODY = struct.Struct(">IB3x")
_FROM_APPLICATION = frozenset((STDOUT, STDERR, END_REQUEST))
_STATUS_WORDS = {CANT_MPX_CONN: "cannot multiplex", OVERLOADED: "overloaded", UNKNOWN_ROLE: "unknown role"}


class FastCGIError(Exception):
    """The application sent something that is not a valid FastCGI record for this request."""


def record(kind: int, content: bytes = b"", request_id: int = REQUEST_ID) -> bytes:
    """One record (content at most 65535 bytes), padded to a multiple of 8 bytes."""
    if len(content) > MAX_CONTENT:
        raise ValueError("a FastCGI record holds at most 65535 bytes")
    padding = -len(content) % 8
    return _HEADER.pack(VERSION, kind, request_id, len(content), padding) + content + b"\0" * padding


def stream(kind: int, data: bytes, request_id: int = REQUEST_ID) -> bytes:
    """``data`` as records of one stream (PARAMS, STDIN), as many as needed; none for b""
    (the empty record that ends a stream is ``record(kind)``)."""
    view = memoryview(data)
    return b"".join(record(kind, bytes(view[at:at + MAX_CONTENT]), request_id)
                    for at in range(0, len(data), MAX_CONTENT))


def begin_request(role: int = RESPONDER, keep_conn: bool = False, request_id: int = REQUEST_ID) -> bytes:
    """FCGI_BEGIN_REQUEST; without ``keep_conn`` the application closes the connection after
    the request (nginx's ``fastcgi_keep_conn off``, its default and ingress-nginx's)."""
    return record(BEGIN_REQUEST, struct.pack(">HB5x", role, KEEP_CONN if keep_conn else 0), request_id)


def _length(size: int) -> bytes:
    return bytes((size,)) if size < 128 else struct.pack(">I", size | 0x80000000)


def encode_params(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Name-value pairs as the content of a PARAMS stream (lengths in 1 or 4 bytes)."""
    return b"".join(_length(len(name)) + _length(len(value)) + name + value for name, value in pairs)


def decode_params(data: bytes) -> list[tuple[bytes, bytes]]:
    """The pairs of a PARAMS stream's content (the tests' application reads them this way)."""
    pairs, at = [], 0

    def length() -> int:
        nonlocal at
        if at >= len(data):
            raise FastCGIError("truncated name-value pair")
        if data[at] < 128:
            at += 1
            return data[at - 1]
        if at + 4 > len(data):
            raise FastCGIError("truncated name-value pair")
        at += 4
        return struct.unpack(">I", data[at - 4:at])[0] & 0x7FFFFFFF

    while at < len(data):
        name_length, value_length = length(), length()
        if at + name_length + value_length > len(data):
            raise FastCGIError("truncated name-value pair")
        name = data[at:at + name_length]
        at += name_length
        pairs.append((name, data[at:at + value_length]))
        at += value_length
    return pairs


def end_request_body(app_status: int, protocol_status: int = REQUEST_COMPLETE) -> bytes:
    """An FCGI_END_REQUEST's content (for the tests' application)."""
    return _END_BODY.pack(app_status, protocol_status)


def parse_end_request(content: bytes) -> tuple[int, int]:
    """(appStatus, protocolStatus) of an FCGI_END_REQUEST."""
    if len(content) != _END_BODY.size:
        raise FastCGIError(f"END_REQUEST of {len(content)} bytes (8 expected)")
    return _END_BODY.unpack(content)


def protocol_status_word(status: int) -> str:
    return _STATUS_WORDS.get(status, f"protocol status {status}")


class RecordReader:
    """Records from an application's bytes, however they were cut: ``feed`` returns the
    complete records so far as (type, content), keeps the rest (less than one record)."""

    def __init__(self, request_id: int = REQUEST_ID, accepted: frozenset = _FROM_APPLICATION):
        self.request_id = request_id
        self.accepted = accepted
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        pending = self._pending
        pending += data
        records, at = [], 0
        while len(pending) - at >= _HEADER.size:
            version, kind, request_id, length, padding = _HEADER.unpack_from(pending, at)
            if version != VERSION:
                raise FastCGIError(f"record of version {version}")
            if kind not in self.accepted:
                raise FastCGIError(f"unexpected record type {kind}")
            if request_id != self.request_id:
                raise FastCGIError(f"record for request {request_id}")
            end = at + _HEADER.size + length
            if len(pending) < end + padding:
                break
            records.append((kind, bytes(pending[at + _HEADER.size:end])))
            at = end + padding
        del pending[:at]
        return records

    @property
    def pending(self) -> int:
        """Bytes held of a record not complete yet."""
        return len(self._pending)
