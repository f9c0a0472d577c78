"""The HPACK encoder of the HTTP/2 client side's answers, as nginx's: never the dynamic table.

nginx encodes a response's header fields as static-table indices and literals "without
indexing" (Huffman-coded when that is shorter), and opens each connection's first header
block with a dynamic table size update to 0 (RFC 7541 6.3): its answers never depend on the
fields before them. This encoder does the same, so a field's encoding is a pure function of
the field and is memoised (bounded): a repeated field (``:status 200``, ``content-type``,
this second's ``date``) costs a dictionary lookup instead of ``hpack.Encoder``'s table
search and insertion. ``ResponseEncoder`` is our connection's encoder (``h2_server``; it
also stands in for ``hpack.Encoder`` on an ``h2.connection.H2Connection``: ``encode`` and
``header_table_size``). Fields h2 marks as
never to be indexed (``hpack.NeverIndexedHeaderTuple``) are sent as such, and not memoised.
"""

from __future__ import annotations

from hpack import NeverIndexedHeaderTuple
from hpack.hpack import encode_integer
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

_STATIC_FIELDS = {field: index for index, field in reversed(list(enumerate(HeaderTable.STATIC_TABLE, 1)))}
_STATIC_NAMES = {name: index for index, (name, _) in reversed(list(enumerate(HeaderTable.STATIC_TABLE, 1)))}
_HUFFMAN = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
_TABLE_SIZE_ZERO = b"\x20"  # a dynamic table size update to 0 (RFC 7541 6.3)
_WITHOUT_INDEXING = 0x00  # RFC 7541 6.2.2
_NEVER_INDEXED = 0x10  # RFC 7541 6.2.3
_MEMO_LIMIT = 4096  # distinct fields remembered; the memo starts again when full

_memo: dict[tuple[bytes, bytes], bytes] = {}


def _bytes(text) -> bytes:
    return text if isinstance(text, bytes) else str(text).encode("utf-8")


def _string(data: bytes) -> bytes:
    """A string literal (RFC 7541 5.2), Huffman-coded when that is shorter, as nginx does."""
    coded = _HUFFMAN.encode(data)
    if len(coded) < len(data):
        length = encode_integer(len(coded), 7)
        length[0] |= 0x80
        return bytes(length) + coded
    return bytes(encode_integer(len(data), 7)) + data


def encode_field(name: bytes, value: bytes, never_indexed: bool = False) -> bytes:
    """One header field's representation; the dynamic table is neither read nor changed."""
    if not never_indexed:
        index = _STATIC_FIELDS.get((name, value))
        if index is not None:
            indexed = encode_integer(index, 7)
            indexed[0] |= 0x80
            return bytes(indexed)
    flag = _NEVER_INDEXED if never_indexed else _WITHOUT_INDEXING
    name_index = _STATIC_NAMES.get(name)
    if name_index is not None:
        head = encode_integer(name_index, 4)
        head[0] |= flag
        return bytes(head) + _string(value)
    return bytes((flag,)) + _string(name) + _string(value)


class ResponseEncoder:
    """``hpack.Encoder``'s place on an ``H2Connection`` of the client side (see the module)."""

    def __init__(self) -> None:
        self._first = True
        self._header_table_size = 4096
        # The last tuple of fields encoded after the first block, and its block: a tuple cannot
        # change, and a gRPC answer's trailers are ``http2._response_fields``' remembered tuple
        # call after call (the same object): its block again without the loop.
        self._last_fields: tuple | None = None
        self._last_block = b""

    @property
    def header_table_size(self) -> int:
        return self._header_table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        # The peer's SETTINGS_HEADER_TABLE_SIZE: a limit on a table this encoder never fills.
        self._header_table_size = value

    def encode(self, headers, huffman: bool = True) -> bytes:
        if headers is self._last_fields:
            return self._last_block
        memo = _memo
        first = self._first
        parts = [_TABLE_SIZE_ZERO] if first else []
        self._first = False
        for field in headers:
            if isinstance(field, NeverIndexedHeaderTuple):
                parts.append(encode_field(_bytes(field[0]), _bytes(field[1]), never_indexed=True))
                continue
            encoded = memo.get(field)
            if encoded is None:
                name, value = field
                encoded = encode_field(_bytes(name), _bytes(value))
                if len(memo) >= _MEMO_LIMIT:
                    memo.clear()
                memo[field] = encoded
            parts.append(encoded)
        block = b"".join(parts)
        if type(headers) is tuple and not first:
            self._last_fields = headers
            self._last_block = block
        return block
