"""The header block of a request to an HTTP/2 backend (``h2_upstream``), in one pass.

h2's outbound normalisation and validation (a chain of generators, one pass per rule) and
hpack's encoder (a dynamic-table search and insertion per field) cost more than the rest of
opening a backend stream. They are switched off on the backend connection; this module
does their work for a request's fields and encodes the block as nginx's ``grpc_pass`` does:
static-table indices and literals without indexing, never the dynamic table, and no Huffman
coding. A field's encoding then depends on nothing before it, so a repeated field (the
route's forwarded headers, ``content-type``, ``te``) is a dictionary lookup (``FieldMemo``,
bounded, one per pool), so are the four pseudo-header fields of a method, authority, scheme
and path seen before (together, one lookup), and a new value of a plain name seen before
(``x-request-id``) is the name's remembered literal start and the value.

What h2 did, kept field by field: names lower case; whitespace around names and values
stripped; connection-specific fields (RFC 9113 8.2.2) left out; ``te`` other than
``trailers``, a pseudo-header among the fields, an empty name, an empty ``:path``, or a
``host`` field other than the ``:authority`` refused
(``InvalidRequestHead``, as h2's ``ProtocolError`` was); ``authorization``,
``proxy-authorization`` and a ``cookie`` shorter than 20 bytes sent never-indexed (RFC 7541
7.1.3) and not remembered.
"""

from __future__ import annotations

from hpack.table import HeaderTable

# RFC 9113 8.2.2, as h2's normalisation drops them (``te`` is refused unless "trailers").
_CONNECTION_HEADERS = frozenset((b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding",
                                 b"upgrade"))
_SECURE = frozenset((b"authorization", b"proxy-authorization"))
_STATIC_FIELDS = {field: index for index, field in reversed(list(enumerate(HeaderTable.STATIC_TABLE, 1)))}
_STATIC_NAMES = {name: index for index, (name, _) in reversed(list(enumerate(HeaderTable.STATIC_TABLE, 1)))}
_WITHOUT_INDEXING = 0x00  # RFC 7541 6.2.2
_NEVER_INDEXED = 0x10  # RFC 7541 6.2.3
_MEMO_LIMIT = 4096  # fields remembered per pool; the memo starts again when full
_RULED = frozenset((b"te", b"host", b"cookie")) | _SECURE  # names whose encoding or check depends on the value


class InvalidRequestHead(ValueError):
    """A field h2's outbound validation would have refused."""


def _integer(value: int, prefix_bits: int, flags: int) -> bytes:
    """An HPACK integer (RFC 7541 5.1) with ``flags`` in the first byte's high bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((flags | value,))
    out = bytearray((flags | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(data: bytes) -> bytes:
    """A string literal (RFC 7541 5.2), not Huffman-coded."""
    return _integer(len(data), 7, 0) + data


def encode_field(name: bytes, value: bytes, never_indexed: bool = False) -> bytes:
    """One field's representation; the dynamic table is neither read nor changed. A field of
    the static table is its index even when never to be indexed (as hpack's encoder does:
    ``authorization`` with an empty value)."""
    index = _STATIC_FIELDS.get((name, value))
    if index is not None:
        return _integer(index, 7, 0x80)
    flag = _NEVER_INDEXED if never_indexed else _WITHOUT_INDEXING
    name_index = _STATIC_NAMES.get(name)
    if name_index is not None:
        return _integer(name_index, 4, flag) + _string(value)
    return bytes((flag,)) + _string(name) + _string(value)


def _normalised(name: bytes, value: bytes) -> tuple[bytes, bytes, bytes, bool]:
    """One ordinary field as h2's normalisation and validation left it: its name, value and
    encoding (b"": left out), and whether it may be remembered (not credentials, nor a
    ``host``, which is checked against ``:authority``); ``InvalidRequestHead`` where h2
    refused it."""
    name = name.lower().strip()
    value = value.strip()
    if not name:
        raise InvalidRequestHead("a header field without a name")
    if name in _CONNECTION_HEADERS:
        return name, value, b"", True
    if name[:1] == b":":
        raise InvalidRequestHead(f"pseudo-header field {name!r} among the header fields")
    if name == b"te" and value.lower() != b"trailers":
        raise InvalidRequestHead(f"invalid value for TE header: {value!r}")
    secure = name in _SECURE or (name == b"cookie" and len(value) < 20)
    return name, value, encode_field(name, value, never_indexed=secure), not secure and name != b"host"


class FieldMemo:
    """Fields' encodings, remembered (credentials excepted); bounded."""

    __slots__ = ("_fields", "_pseudo", "_names")

    def __init__(self) -> None:
        self._fields: dict[tuple[bytes, bytes], bytes] = {}
        # (method, authority, scheme, path) -> the pseudo-header fields' encodings, joined.
        self._pseudo: dict[tuple[bytes, bytes, bytes, bytes], bytes] = {}
        # A plain name (lower case, stripped, outside the static table, no rule of its own) ->
        # its literal's start: a new value of it (``x-request-id``, ``grpc-timeout``) is that
        # start and the value's string, without _normalised's checks again.
        self._names: dict[bytes, bytes] = {}

    def block(self, method: bytes, authority: bytes, scheme: bytes, path: bytes, fields) -> bytes:
        """The request's header block: the pseudo-header fields (in this order), then ``fields``."""
        key = (method, authority, scheme, path)
        head = self._pseudo.get(key)
        if head is None:
            if not path.strip():
                raise InvalidRequestHead("an empty :path")
            head = b"".join([encode_field(name, value.strip()) for name, value in
                             ((b":method", method), (b":authority", authority), (b":scheme", scheme),
                              (b":path", path))])
            if len(self._pseudo) >= _MEMO_LIMIT:
                self._pseudo.clear()
            self._pseudo[key] = head
        parts = [head]
        encoded = self._fields
        names = self._names
        hosts = 0
        for field in fields:
            known = encoded.get(field)
            if known is None:
                start = names.get(field[0])
                if start is not None:  # encode_field's literal for a name it has no rule for
                    value = field[1].strip()
                    size = len(value)
                    known = start + (bytes((size,)) if size < 127 else _integer(size, 7, 0)) + value
                    remember = True
                else:
                    name, value, known, remember = _normalised(*field)
                    if name == b"host":  # h2 refused a second one, or one that is not the authority
                        hosts += 1
                        if hosts > 1 or value != authority.strip():
                            raise InvalidRequestHead("a host field other than the :authority")
                    if (name == field[0] and name not in _STATIC_NAMES and name not in _CONNECTION_HEADERS
                            and name not in _RULED):
                        if len(names) >= _MEMO_LIMIT:
                            names.clear()
                        names[name] = bytes((_WITHOUT_INDEXING,)) + _string(name)
                if remember:
                    if len(encoded) >= _MEMO_LIMIT:
                        encoded.clear()
                    encoded[field] = known
            parts.append(known)
        return b"".join(parts)


class PreparedBlock:
    """``hpack.Encoder``'s place on a backend connection's ``H2Connection``: the next
    ``encode`` returns the block ``FieldMemo.block`` made (h2 passes it the fields it needs
    for its own bookkeeping, the method and the authority, and frames what it returns)."""

    __slots__ = ("next", "header_table_size")

    def __init__(self) -> None:
        self.next = b""
        self.header_table_size = 4096  # the backend's SETTINGS_HEADER_TABLE_SIZE: a table never used

    def encode(self, headers, huffman: bool = True) -> bytes:
        block, self.next = self.next, b""
        return block
