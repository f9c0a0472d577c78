"""The client side's HPACK decoder (``http.hpack_in``): RFC 7541 Appendix C, round trips
through hpack's encoder, and differential fuzzing against ``hpack.Decoder`` (the decoder it
replaces on h2's connection): the same fields, the same table, the same exception class."""

from __future__ import annotations

from collections import deque

import hpack
import pytest
from hpack import HPACKDecodingError, InvalidTableIndex, InvalidTableSizeError, NeverIndexedHeaderTuple
from hpack import OversizedHeaderListError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingressd.http import hpack_in
from ingressd.http.hpack_in import RequestDecoder

# RFC 7541 Appendix C: (hex of the block, fields, dynamic table afterwards, its size)
C2 = [
    ("400a637573746f6d2d6b65790d637573746f6d2d686561646572", [(b"custom-key", b"custom-header")],
     [(b"custom-key", b"custom-header")], 55),
    ("040c2f73616d706c652f70617468", [(b":path", b"/sample/path")], [], 0),
    ("100870617373776f726406736563726574", [(b"password", b"secret")], [], 0),
    ("82", [(b":method", b"GET")], [], 0),
]
C3 = [
    ("828684410f7777772e6578616d706c652e636f6d",
     [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"www.example.com")],
     [(b":authority", b"www.example.com")], 57),
    ("828684be58086e6f2d6361636865",
     [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"www.example.com"),
      (b"cache-control", b"no-cache")],
     [(b"cache-control", b"no-cache"), (b":authority", b"www.example.com")], 110),
    ("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
     [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html"),
      (b":authority", b"www.example.com"), (b"custom-key", b"custom-value")],
     [(b"custom-key", b"custom-value"), (b"cache-control", b"no-cache"), (b":authority", b"www.example.com")], 164),
]
C4 = [  # the same requests, Huffman-coded
    ("828684418cf1e3c2e5f23a6ba0ab90f4ff",) + C3[0][1:],
    ("828684be5886a8eb10649cbf",) + C3[1][1:],
    ("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",) + C3[2][1:],
]
_DATE1 = b"Mon, 21 Oct 2013 20:13:21 GMT"
_DATE2 = b"Mon, 21 Oct 2013 20:13:22 GMT"
_LOCATION = b"https://www.example.com"
_COOKIE = b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
C5 = [  # responses, with a 256-byte table: eviction
    ("4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d54"
     "6e1768747470733a2f2f7777772e6578616d706c652e636f6d",
     [(b":status", b"302"), (b"cache-control", b"private"), (b"date", _DATE1), (b"location", _LOCATION)],
     [(b"location", _LOCATION), (b"date", _DATE1), (b"cache-control", b"private"), (b":status", b"302")], 222),
    ("4803333037c1c0bf",
     [(b":status", b"307"), (b"cache-control", b"private"), (b"date", _DATE1), (b"location", _LOCATION)],
     [(b":status", b"307"), (b"location", _LOCATION), (b"date", _DATE1), (b"cache-control", b"private")], 222),
    ("88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d"
     "4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31",
     [(b":status", b"200"), (b"cache-control", b"private"), (b"date", _DATE2), (b"location", _LOCATION),
      (b"content-encoding", b"gzip"), (b"set-cookie", _COOKIE)],
     [(b"set-cookie", _COOKIE), (b"content-encoding", b"gzip"), (b"date", _DATE2)], 215),
]


def _table(decoder) -> list:
    if isinstance(decoder, RequestDecoder):
        return list(decoder._dynamic)
    return list(decoder.header_table.dynamic_entries)


def _size(decoder) -> int:
    if isinstance(decoder, RequestDecoder):
        return decoder._size
    return decoder.header_table._current_size


def _decoders(table_size: int = 4096):
    ours, theirs = RequestDecoder(), hpack.Decoder()
    for decoder in (ours, theirs):
        decoder.max_allowed_table_size = table_size
        decoder.header_table_size = table_size
    return ours, theirs


@pytest.mark.parametrize("sequence,table_size", [(C3, 4096), (C4, 4096), (C5, 256)], ids=["C.3", "C.4", "C.5"])
def test_rfc7541_appendix_c_sequences(sequence, table_size):
    for decoder in _decoders(table_size):
        for block, fields, table, size in sequence:
            assert decoder.decode(bytes.fromhex(block), raw=True) == fields
            assert _table(decoder) == table
            assert _size(decoder) == size


@pytest.mark.parametrize("block,fields,table,size", C2, ids=["C.2.1", "C.2.2", "C.2.3", "C.2.4"])
def test_rfc7541_appendix_c2_single_fields(block, fields, table, size):
    decoder = RequestDecoder()
    decoded = decoder.decode(bytes.fromhex(block), raw=True)
    assert decoded == fields and _table(decoder) == table and _size(decoder) == size
    assert isinstance(decoded[0], NeverIndexedHeaderTuple) == (block[:2] == "10")  # C.2.3: never indexed


def test_text_when_not_raw():
    decoded = RequestDecoder().decode(bytes.fromhex("100870617373776f726406736563726574") + b"\x82")
    assert decoded == [("password", "secret"), (":method", "GET")]
    assert isinstance(decoded[0], NeverIndexedHeaderTuple) and not isinstance(decoded[1], NeverIndexedHeaderTuple)
    with pytest.raises(HPACKDecodingError):
        RequestDecoder().decode(b"\x00\x01a\x01\xff")  # not UTF-8


@pytest.mark.parametrize("block,error", [
    (b"\x80", InvalidTableIndex),  # index 0
    (b"\xbe", InvalidTableIndex),  # 62: the dynamic table is empty
    (b"\xff\x80\x80\x80\x80\x80\x01", HPACKDecodingError),  # an integer with too many continuation bytes
    (b"\xff", HPACKDecodingError),  # a truncated integer
    (b"\x40\x05ab", HPACKDecodingError),  # a name shorter than its length
    (b"\x00\x01a", HPACKDecodingError),  # no value
    (b"\x00\x01a\x03xy", HPACKDecodingError),  # a value shorter than its length
    (b"\x00\x81\xff\x01x", HPACKDecodingError),  # a Huffman string that is no code (EOS)
    (b"\x00\x82\x1f\xff\x01x", HPACKDecodingError),  # Huffman padding longer than 7 bits
    (b"\x82\x20", HPACKDecodingError),  # a table size update after a field
    (b"\x3f\xe2\x1f", InvalidTableSizeError),  # a table size update beyond SETTINGS_HEADER_TABLE_SIZE
])
def test_malformed_blocks_are_compression_errors(block, error):
    """hpack's exceptions: h2 ends the connection with an error for them."""
    for decoder in _decoders():
        with pytest.raises(error):
            decoder.decode(block, raw=True)


def test_header_list_size_limit():
    block = b"".join(b"\x00\x03abc\x05value" for _ in range(10))
    for decoder in _decoders():
        decoder.max_header_list_size = 9 * (3 + 5 + 32)
        with pytest.raises(OversizedHeaderListError):
            decoder.decode(block, raw=True)
        decoder.max_header_list_size = 10 * (3 + 5 + 32)
        assert len(decoder.decode(block, raw=True)) == 10


def test_a_table_larger_than_allowed_must_be_shrunk_by_the_peer():
    for decoder in _decoders():
        decoder.max_allowed_table_size = 100  # our SETTINGS_HEADER_TABLE_SIZE was acknowledged
        with pytest.raises(InvalidTableSizeError):
            decoder.decode(b"\x82", raw=True)  # no size update: the table is still 4,096
        assert decoder.decode(b"\x3f\x45\x82", raw=True) == [(b":method", b"GET")]  # update to 100
        assert decoder.header_table_size == 100


def test_an_entry_larger_than_the_table_empties_it():
    for decoder in _decoders(table_size=64):
        decoder.decode(b"\x40\x01a\x01b", raw=True)
        assert _table(decoder) == [(b"a", b"b")]
        decoder.decode(b"\x40\x01a\x20" + b"x" * 32, raw=True)  # 1 + 32 + 32 > 64
        assert _table(decoder) == [] and _size(decoder) == 0


def test_the_huffman_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(hpack_in, "_HUFFMAN_MEMO_LIMIT", 4)
    hpack_in._huffman_memo.clear()
    encoder, decoder = hpack.Encoder(), RequestDecoder()
    for n in range(10):
        fields = [(b"x-n", b"value-%d" % n)]
        assert decoder.decode(encoder.encode(fields, huffman=True), raw=True) == fields
        assert len(hpack_in._huffman_memo) <= 4


# -- Hypothesis: round trips and differential fuzzing against hpack.Decoder ------------------

_names = st.one_of(
    st.sampled_from([b":method", b":path", b":authority", b"user-agent", b"accept", b"cookie", b"content-type"]),
    st.binary(min_size=0, max_size=40),
)
_values = st.one_of(st.sampled_from([b"GET", b"/", b"", b"*/*", b"text/html"]), st.binary(max_size=300))
_fields = st.lists(st.tuples(_names, _values), max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=st.lists(st.tuples(_fields, st.booleans(), st.sampled_from([None, 0, 64, 256, 4096])), max_size=8),
       never=st.booleans())
def test_round_trips_through_hpacks_encoder(blocks, never):
    encoder = hpack.Encoder()
    ours, theirs = _decoders()
    for fields, huffman, table_size in blocks:
        if table_size is not None:
            encoder.header_table_size = table_size  # sent as a size update at the block's start
        sent = [NeverIndexedHeaderTuple(*f) if never and i % 3 == 0 else f for i, f in enumerate(fields)]
        block = encoder.encode(sent, huffman=huffman)
        decoded = ours.decode(block, raw=True)
        assert decoded == fields
        assert [isinstance(f, NeverIndexedHeaderTuple) for f in decoded] == \
            [isinstance(f, NeverIndexedHeaderTuple) for f in theirs.decode(block, raw=True)]
        assert _table(ours) == _table(theirs) and _size(ours) == _size(theirs)


def _outcome(decoder, block: bytes):
    try:
        return ("ok", decoder.decode(block, raw=True))
    except HPACKDecodingError as exc:
        return ("error", type(exc))


def _same(blocks, table_size=4096, list_size=2**16):
    ours, theirs = _decoders(table_size)
    ours.max_header_list_size = theirs.max_header_list_size = list_size
    for block in blocks:
        mine, reference = _outcome(ours, block), _outcome(theirs, block)
        assert mine == reference, block
        assert _table(ours) == _table(theirs) and _size(ours) == _size(theirs)
        assert ours.header_table_size == theirs.header_table_size
        if mine[0] == "error":
            return  # h2 ends the connection: the table is not used again


@settings(max_examples=1000, deadline=None)
@given(blocks=st.lists(st.binary(max_size=64), min_size=1, max_size=4),
       table_size=st.sampled_from([0, 100, 4096]), list_size=st.sampled_from([64, 2**16]))
def test_random_bytes_against_hpack(blocks, table_size, list_size):
    _same(blocks, table_size, list_size)


@settings(max_examples=1000, deadline=None)
@given(byte=st.integers(0, 255), tail=st.binary(max_size=8))
def test_every_first_byte_against_hpack(byte, tail):
    _same([bytes((byte,)) + tail])


@settings(max_examples=500, deadline=None)
@given(fields=_fields.filter(bool), huffman=st.booleans(), data=st.data())
def test_mutated_and_truncated_blocks_against_hpack(fields, huffman, data):
    block = bytearray(hpack.Encoder().encode(fields, huffman=huffman))
    for _ in range(data.draw(st.integers(0, 3))):
        position = data.draw(st.integers(0, len(block) - 1))
        block[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(block)))
    extra = data.draw(st.binary(max_size=4))
    _same([bytes(block[:cut]) + extra, bytes(block)])


@pytest.mark.parametrize("size", [10_000, 70_000])
def test_oversize_blocks_against_hpack(size):
    _same([b"\x00\x01a\x7f" + bytes([0xff, 0xff, 0x03]) + b"v" * (size - 7)])
    _same([b"\x82" * size])


# -- repeated blocks: remembered while the dynamic table stays as it was ---------------------

def test_a_repeated_block_is_remembered_until_the_table_changes():
    decoder = RequestDecoder()
    decoder.decode(b"\x40\x01a\x01b", raw=True)  # a: b at index 62
    first = decoder.decode(b"\x82\xbe", raw=True)
    assert first == [(b":method", b"GET"), (b"a", b"b")]
    assert decoder.decode(b"\x82\xbe", raw=True) is first  # remembered
    decoder.decode(b"\x40\x01c\x01d", raw=True)  # c: d is 62 now
    assert decoder.decode(b"\x82\xbe", raw=True) == [(b":method", b"GET"), (b"c", b"d")]
    decoder.header_table_size = 0  # a size update empties the table: 62 is no entry now
    with pytest.raises(InvalidTableIndex):
        decoder.decode(b"\x82\xbe", raw=True)


def test_a_block_that_changes_the_table_is_not_remembered():
    decoder = RequestDecoder()
    block = b"\x40\x01a\x01b"
    decoder.decode(block, raw=True)
    decoder.decode(block, raw=True)
    assert decoder._dynamic == deque([(b"a", b"b"), (b"a", b"b")])  # inserted twice, as hpack does


def test_remembered_blocks_still_meet_the_limits():
    decoder = RequestDecoder()
    block = b"\x00\x03abc\x05value"
    assert decoder.decode(block, raw=True) == [(b"abc", b"value")]
    decoder.max_header_list_size = 39
    with pytest.raises(OversizedHeaderListError):
        decoder.decode(block, raw=True)
    decoder.max_header_list_size = 40
    decoder.max_allowed_table_size = 100
    with pytest.raises(InvalidTableSizeError):
        decoder.decode(block, raw=True)


def test_remembered_blocks_are_bounded():
    decoder = RequestDecoder()
    for n in range(100):
        decoder.decode(b"\x00\x01a\x02%02d" % n, raw=True)
        assert len(decoder._known) <= hpack_in._KNOWN_BLOCKS


@settings(max_examples=500, deadline=None)
@given(pool=st.lists(st.one_of(
    st.binary(max_size=12),
    st.lists(st.integers(0x80, 0xC5), max_size=4).map(bytes),  # indices, static and dynamic
    st.sampled_from([b"\x40\x01a\x01b", b"\x40\x01c\x01d", b"\x3f\x21", b"\x20", b"\x3f\xe1\x1f"]),
), min_size=1, max_size=4),
       picks=st.lists(st.integers(0, 3), min_size=1, max_size=12), raw=st.booleans())
def test_repeated_blocks_against_hpack(pool, picks, raw):
    ours, theirs = _decoders()
    for pick in picks:
        block = pool[pick % len(pool)]
        try:
            expected = ("ok", theirs.decode(block, raw=raw))
        except HPACKDecodingError as exc:
            expected = ("error", type(exc))
        try:
            seen = ("ok", ours.decode(block, raw=raw))
        except HPACKDecodingError as exc:
            seen = ("error", type(exc))
        assert seen == expected
        if expected[0] == "error":
            return
        assert _table(ours) == _table(theirs)
