"""The HPACK decoder of the HTTP/2 client side's requests (RFC 7541): ``hpack.Decoder``'s
behaviour in one loop, on our connection (``h2_server``; it also fits an ``h2.connection.H2Connection``).

``hpack.Decoder`` spends most of a request's decoding in function calls and objects: a
memoryview slice, ``decode_integer`` and a ``HeaderTuple`` per field, a debug log call per
field, and a second pass that copies every name and value. Clients index the fields they
repeat (nghttp2, curl, browsers, grpc), so in a steady stream of requests nearly every field
is a one-byte index into the static or dynamic table; here that field is an index check and
a list lookup that hands back the table's own ``(name, value)`` tuple.

It is a drop-in: the same ``decode(data, raw=True)``, the same attributes h2 sets
(``max_header_list_size``, ``max_allowed_table_size``, ``header_table_size``), the same
results, and hpack's own exceptions for the same malformed input (``HPACKDecodingError``
for a truncated block, a bad Huffman string or an over-long integer, ``InvalidTableIndex``,
``InvalidTableSizeError``, ``OversizedHeaderListError``), which h2 turns into the connection
error it sends. Fields sent as never indexed come back as ``hpack.NeverIndexedHeaderTuple``,
as hpack returns them; the others as plain tuples. Huffman strings are decoded by hpack's
table-driven ``decode_huffman``, remembered (bounded) when short, since a client that does not
index a field usually sends it the same way each time.
"""

from __future__ import annotations

from collections import deque

from hpack.exceptions import HPACKDecodingError, InvalidTableIndex, InvalidTableSizeError, OversizedHeaderListError
from hpack.huffman_table import decode_huffman
from hpack.struct import NeverIndexedHeaderTuple
from hpack.table import HeaderTable

_STATIC = HeaderTable.STATIC_TABLE  # 61 entries: index 1 is _STATIC[0]
_STATIC_LENGTH = len(_STATIC)
_DEFAULT_TABLE_SIZE = 4096  # RFC 7541 4.2 (SETTINGS_HEADER_TABLE_SIZE's initial value)
_DEFAULT_MAX_HEADER_LIST_SIZE = 2**16  # hpack.Decoder's default
_ENTRY_OVERHEAD = 32  # RFC 7541 4.1
_INTEGER_CONTINUATIONS = 5  # hpack's bound on an integer's continuation bytes
_HUFFMAN_MEMO_STRING = 256  # longest Huffman string remembered
_HUFFMAN_MEMO_LIMIT = 2048  # strings remembered; the memo starts again when full
_KNOWN_BLOCKS = 32  # blocks remembered per connection (see RequestDecoder.decode)
_KNOWN_BLOCK_SIZE = 4096  # the largest decoded block remembered

_huffman_memo: dict[bytes, bytes] = {}


def _truncated() -> HPACKDecodingError:
    return HPACKDecodingError("Truncated header block")


def _integer(data: bytes, pos: int, end: int, mask: int) -> tuple[int, int]:
    """The integer (RFC 7541 5.1) whose prefix is the low bits ``mask`` of ``data[pos]``, and
    the position after it. As hpack: at most five continuation bytes."""
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    for _ in range(_INTEGER_CONTINUATIONS):
        if pos >= end:
            raise HPACKDecodingError("Unable to decode HPACK integer representation")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise HPACKDecodingError("Variable integer representation is too long")


def _string(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """A string literal (RFC 7541 5.2) at ``pos``, and the position after it."""
    if pos >= end:
        raise HPACKDecodingError("Unable to decode HPACK integer representation")
    huffman = data[pos] & 0x80
    length, pos = _integer(data, pos, end, 0x7F)
    stop = pos + length
    if stop > end:
        raise _truncated()
    raw = data[pos:stop]
    if not huffman:
        return raw, stop
    decoded = _huffman_memo.get(raw)
    if decoded is None:
        decoded = decode_huffman(raw)  # HPACKDecodingError when it is no valid Huffman string
        if length <= _HUFFMAN_MEMO_STRING:
            if len(_huffman_memo) >= _HUFFMAN_MEMO_LIMIT:
                _huffman_memo.clear()
            _huffman_memo[raw] = decoded
    return decoded, stop


def _texts(fields: list) -> list:
    try:
        return [_text(field) for field in fields]
    except UnicodeDecodeError as exc:
        raise HPACKDecodingError("Unable to decode headers as UTF-8") from exc


def _text(field: tuple) -> tuple:
    name, value = field[0].decode("utf-8"), field[1].decode("utf-8")
    return NeverIndexedHeaderTuple(name, value) if isinstance(field, NeverIndexedHeaderTuple) else (name, value)


class RequestDecoder:
    """``hpack.Decoder``'s place on an ``H2Connection`` of the client side (see the module)."""

    def __init__(self, max_header_list_size: int = _DEFAULT_MAX_HEADER_LIST_SIZE) -> None:
        self.max_header_list_size = max_header_list_size
        self.max_allowed_table_size = _DEFAULT_TABLE_SIZE
        self._maxsize = _DEFAULT_TABLE_SIZE
        self._size = 0  # the dynamic table's size (RFC 7541 4.1)
        self._dynamic: deque[tuple[bytes, bytes]] = deque()  # newest first: index 62 is [0]
        # blocks that left the table as it was -> (their fields, decoded size), while it stays so
        self._known: dict[bytes, tuple[list, int]] = {}

    # -- the dynamic table -------------------------------------------------------------------

    @property
    def header_table_size(self) -> int:
        return self._maxsize

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self._maxsize = int(value)
        self._known.clear()
        self._shrink()

    def _shrink(self) -> None:
        dynamic, maxsize = self._dynamic, self._maxsize
        while self._size > maxsize:
            name, value = dynamic.pop()
            self._size -= len(name) + len(value) + _ENTRY_OVERHEAD

    def _add(self, field: tuple[bytes, bytes]) -> None:
        self._known.clear()
        size = len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
        if size > self._maxsize:  # larger than the table: it empties it (RFC 7541 4.4)
            self._dynamic.clear()
            self._size = 0
            return
        self._dynamic.appendleft(field)
        self._size += size
        self._shrink()

    def _entry(self, index: int) -> tuple[bytes, bytes]:
        if 0 < index <= _STATIC_LENGTH:
            return _STATIC[index - 1]
        dynamic_index = index - _STATIC_LENGTH - 1
        if 0 <= dynamic_index < len(self._dynamic):
            return self._dynamic[dynamic_index]
        raise InvalidTableIndex("Invalid table index %d" % index)

    # -- decoding ----------------------------------------------------------------------------

    def decode(self, data: bytes, raw: bool = False) -> list:
        """The header block ``data`` as a list of ``(name, value)`` fields (bytes when
        ``raw``, else text), in order; the dynamic table updated as the block says.

        A client repeating a request sends the same block, all indices, again and again: a
        block that left the dynamic table as it found it decodes the same way until the table
        changes, so it is remembered until then (bounded) and its fields handed back as they
        are (the same list: callers copy it, as h2 does)."""
        data = bytes(data)
        known = self._known.get(data)
        if known is not None and known[1] <= self.max_header_list_size:
            if self._maxsize > self.max_allowed_table_size:
                raise InvalidTableSizeError("Encoder did not shrink table size to within the max")
            return known[0] if raw else _texts(known[0])
        fields, inflated, table_used = self._decode(data)
        if not table_used and inflated <= _KNOWN_BLOCK_SIZE:
            known_blocks = self._known
            if len(known_blocks) >= _KNOWN_BLOCKS:
                known_blocks.clear()
            known_blocks[data] = (fields, inflated)
        return fields if raw else _texts(fields)

    def _decode(self, data: bytes) -> tuple[list, int, bool]:
        """The fields of ``data``, their size (RFC 7541 4.1), and whether the block changed
        the dynamic table."""
        table_used = False
        end = len(data)
        pos = 0
        fields: list = []
        inflated = 0
        limit = self.max_header_list_size
        entry = self._entry
        dynamic = self._dynamic
        while pos < end:
            byte = data[pos]
            if byte & 0x80:  # indexed field (6.1)
                index = byte & 0x7F
                if 0 < index <= _STATIC_LENGTH:  # one byte, static: the common case
                    field = _STATIC[index - 1]
                    pos += 1
                elif _STATIC_LENGTH < index < 0x7F and index - _STATIC_LENGTH <= len(dynamic):  # one byte, dynamic
                    field = dynamic[index - _STATIC_LENGTH - 1]
                    pos += 1
                else:
                    index, pos = _integer(data, pos, end, 0x7F)
                    field = entry(index)
            elif byte & 0x40:  # literal with incremental indexing (6.2.1)
                field, pos = self._literal(data, pos, end, 0x3F, False)
                self._add(field)
                table_used = True
            elif byte & 0x20:  # dynamic table size update (6.3), only before the first field
                if fields:
                    raise HPACKDecodingError("Table size update not at the start of the block")
                size, pos = _integer(data, pos, end, 0x1F)
                if size > self.max_allowed_table_size:
                    raise InvalidTableSizeError("Encoder exceeded max allowable table size")
                self.header_table_size = size
                table_used = True
                continue
            else:  # literal without indexing (6.2.2) or never indexed (6.2.3)
                field, pos = self._literal(data, pos, end, 0x0F, bool(byte & 0x10))
            fields.append(field)
            inflated += len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
            if inflated > limit:
                raise OversizedHeaderListError(f"A header list larger than {limit} has been received")
        if self._maxsize > self.max_allowed_table_size:  # the peer did not shrink the table
            raise InvalidTableSizeError("Encoder did not shrink table size to within the max")
        return fields, inflated, table_used

    def _literal(self, data: bytes, pos: int, end: int, mask: int, never_indexed: bool) -> tuple[tuple, int]:
        """A literal field (6.2): an indexed name or a name string, then the value string."""
        if data[pos] & mask:
            index, pos = _integer(data, pos, end, mask)
            name = self._entry(index)[0]
        else:
            name, pos = _string(data, pos + 1, end)
        value, pos = _string(data, pos, end)
        if never_indexed:
            return NeverIndexedHeaderTuple(name, value), pos
        return (name, value), pos
