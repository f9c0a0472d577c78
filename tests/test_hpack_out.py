"""The client side's HPACK encoder (``http.hpack_out``): nginx's way, no dynamic table; what it
encodes decodes to the same fields with hpack's own decoder, block after block."""

from __future__ import annotations

import hpack
import pytest
from hpack import NeverIndexedHeaderTuple

from ingressd.http import hpack_out
from ingressd.http.hpack_out import ResponseEncoder, encode_field


def test_blocks_decode_to_the_same_fields_with_hpacks_decoder():
    encoder, decoder = ResponseEncoder(), hpack.Decoder()
    blocks = [
        [(b":status", b"200"), (b"content-type", b"text/plain"), (b"content-length", b"3"),
         (b"date", b"Mon, 07 Dec 2026 01:02:03 GMT")],
        [(b":status", b"404"), (b"x-custom", b"v" * 300), (b"content-length", b"0")],
        [(b":status", b"200"), (b"content-type", b"text/plain"), (b"x-empty", b""), (b"set-cookie", b"a=1")],
    ]
    for block in blocks:
        assert decoder.decode(encoder.encode(block), raw=True) == block
    assert len(decoder.header_table.dynamic_entries) == 0  # nothing was ever added to the dynamic table


def test_the_first_block_sets_the_dynamic_table_size_to_zero_as_nginx():
    encoder = ResponseEncoder()
    first = encoder.encode([(b":status", b"200")])
    assert first == b"\x20\x88"  # size update 0, then :status 200 from the static table (index 8)
    assert encoder.encode([(b":status", b"200")]) == b"\x88"
    decoder = hpack.Decoder()
    decoder.decode(first)
    assert decoder.header_table.maxsize == 0


def test_representations():
    assert encode_field(b":status", b"200") == b"\x88"  # indexed, static
    # a static name with another value: literal without indexing, the name's index (content-type: 31)
    literal = encode_field(b"content-type", b"x")
    assert literal[0] == 0x0f and literal[1] == 31 - 15  # 4-bit prefix, continued
    # a new name: 0x00 then the name and the value as strings
    assert encode_field(b"x-a", b"b")[0] == 0x00
    assert encode_field(b"x-a", b"b", never_indexed=True)[0] == 0x10
    # a static field that must never be indexed is not sent as an index either
    assert encode_field(b":status", b"200", never_indexed=True)[0] & 0xf0 == 0x10


@pytest.mark.parametrize("value", [b"aaaaaaaaaa", b"\x01\x02\x03\xff\xfe"])
def test_huffman_only_when_shorter(value):
    encoded = encode_field(b"x-a", value)
    name_part = encode_field(b"x-a", b"")[:-1]
    string = encoded[len(name_part):]
    huffman = bool(string[0] & 0x80)
    assert huffman == (value == b"aaaaaaaaaa")  # 'a' is 5 bits; bytes above 0x7f are longer coded
    assert hpack.Decoder().decode(encoded, raw=True) == [(b"x-a", value)]


def test_never_indexed_fields_stay_never_indexed_and_are_not_memoised():
    hpack_out._memo.clear()
    encoder, decoder = ResponseEncoder(), hpack.Decoder()
    field = NeverIndexedHeaderTuple(b"authorization", b"secret")
    block = encoder.encode([field, (b"x-a", b"b")])
    (decoded, plain) = decoder.decode(block, raw=True)
    assert isinstance(decoded, NeverIndexedHeaderTuple) and decoded == (b"authorization", b"secret")
    assert (b"authorization", b"secret") not in hpack_out._memo and (b"x-a", b"b") in hpack_out._memo


def test_text_fields_are_encoded_as_utf8():
    assert hpack.Decoder().decode(ResponseEncoder().encode([(":status", "200"), ("x-é", "ü")]), raw=True) == [
        (b":status", b"200"), ("x-é".encode(), "ü".encode())]


def test_the_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(hpack_out, "_MEMO_LIMIT", 5)
    hpack_out._memo.clear()
    encoder = ResponseEncoder()
    for n in range(23):
        encoder.encode([(b"x-n", b"%d" % n)])
        assert len(hpack_out._memo) <= 5


def test_header_table_size_is_taken_and_changes_nothing():
    encoder = ResponseEncoder()
    assert encoder.header_table_size == 4096
    encoder.header_table_size = 0
    assert encoder.header_table_size == 0
    assert encoder.encode([(b":status", b"204")]) == b"\x20\x89"


def test_a_tuple_encoded_again_gives_its_block_again_and_the_first_blocks_prefix_is_not_reused():
    """``encode`` remembers the last tuple of fields (after the first block) with its block: the
    same tuple again is the same block as the loop's, and the first block's table size update is
    never handed out twice."""
    trailers = ((b"grpc-status", b"0"), (b"grpc-message", b""), NeverIndexedHeaderTuple(b"x", b"y"))
    fresh = ResponseEncoder()
    fresh.encode([(b":status", b"200")])
    expected = fresh.encode(list(trailers))
    encoder = ResponseEncoder()
    first = encoder.encode(trailers)
    assert first == b"\x20" + expected  # the first block: not remembered
    for _ in range(2):
        assert encoder.encode(trailers) == expected
    assert encoder.encode(list(trailers)) == expected
    assert encoder.encode(((b"grpc-status", b"1"),)) == fresh.encode([(b"grpc-status", b"1")])
    assert hpack.Decoder().decode(expected, raw=True) == [(b"grpc-status", b"0"), (b"grpc-message", b""),
                                                          (b"x", b"y")]
