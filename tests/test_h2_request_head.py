"""The header block of a request to an HTTP/2 backend (``proxy/h2_request_head.py``): the
same fields h2's outbound normalisation, validation and encoding sent (or the same refusals),
differentially against h2 itself; nginx's encoding (no dynamic table, no Huffman); the memo."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.exceptions
import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingressd.proxy import h2_request_head
from ingressd.proxy.h2_request_head import FieldMemo, InvalidRequestHead, PreparedBlock, encode_field

from test_h2_upstream import SETTINGS, FakeExchange, connect, setup

NAMES = [b"content-type", b"user-agent", b"x-forwarded-for", b"grpc-timeout", b"te", b"TE", b"Connection",
         b"keep-alive", b"upgrade", b"transfer-encoding", b"proxy-connection", b"authorization",
         b"Proxy-Authorization", b"cookie", b"Cookie", b"X-Mixed", b" x-spaced ", b"", b" ", b":path",
         b":status", b":protocol", b":custom", b"accept-encoding", b"content-length", b"x-\xff", b"host"]
VALUES = [b"", b"trailers", b"Trailers", b" trailers ", b"gzip", b"application/grpc", b" padded\t", b"a=b",
          b"a-cookie-longer-than-twenty-bytes", b"Basic dXNlcjpwYXNz", b"\x00\r\n", b"\xff\x80", b"x" * 200]


def _reference(method, authority, scheme, path, fields):
    """The fields h2 (its defaults: normalisation and validation on, hpack's encoder) sends
    for this request, decoded; ``"refused"`` when it refuses them."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    conn.data_to_send()
    block = [(b":method", method), (b":authority", authority), (b":scheme", scheme), (b":path", path), *fields]
    try:
        conn.send_headers(1, block)
    except (h2.exceptions.ProtocolError, IndexError):  # IndexError: h2's check of an empty name
        return "refused"
    return _decode(_payload(conn.data_to_send()))


def _ours(method, authority, scheme, path, fields, memo=None):
    try:
        return _decode((memo or FieldMemo()).block(method, authority, scheme, path, fields))
    except InvalidRequestHead:
        return "refused"


def _payload(frame: bytes) -> bytes:
    assert frame[3] == 0x1 and int.from_bytes(frame[:3], "big") == len(frame) - 9
    return frame[9:]


def _decode(block: bytes):
    """(name, value, never indexed) of every field, by a decoder that has seen nothing else."""
    return [(name, value, isinstance(field, hpack.NeverIndexedHeaderTuple))
            for field in hpack.Decoder().decode(block, raw=True) for name, value in (field,)]


@pytest.mark.parametrize("fields", [
    [(b"content-type", b"application/grpc"), (b"te", b"trailers")],
    [(b"Content-Type", b" application/grpc "), (b"X-Forwarded-For", b"10.0.0.1")],
    [(b"connection", b"close"), (b"keep-alive", b"5"), (b"upgrade", b"h2c"), (b"x", b"1")],
    [(b"authorization", b"Basic dXNlcjpwYXNz"), (b"proxy-authorization", b"x"), (b"cookie", b"a=b"),
     (b"cookie", b"a-cookie-longer-than-twenty-bytes")],
    [(b"te", b"gzip")], [(b"TE", b" Trailers ")], [(b":path", b"/again")], [(b":custom", b"1")], [(b"", b"x")],
    [(b" ", b"x")], [(b"x-empty", b"")], [(b"x-long", b"v" * 300)], [(b"accept-encoding", b"gzip, deflate")],
    [(b"Host", b"grpc.test")], [(b"Host", b" grpc.test ")], [(b"Host", b"other.test")],
    [(b"Host", b"grpc.test"), (b"HOST", b"grpc.test")], [(b"authorization", b"")],
])
def test_a_block_is_what_h2_sent_or_refused(fields):
    assert _ours(b"POST", b"grpc.test", b"http", b"/pkg.Svc/Call", fields) == \
        _reference(b"POST", b"grpc.test", b"http", b"/pkg.Svc/Call", fields)


@pytest.mark.parametrize("method, authority, scheme, path", [
    (b"POST", b"grpc.test", b"http", b""), (b"POST", b"grpc.test", b"https", b" "),
    (b"GET", b" padded.test ", b"https", b" /x "), (b"post", b"a:8443", b"http", b"/" + b"p" * 200),
])
def test_pseudo_header_fields_as_h2_sent_them(method, authority, scheme, path):
    assert _ours(method, authority, scheme, path, []) == _reference(method, authority, scheme, path, [])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.sampled_from(NAMES), st.binary(max_size=12)),
                          st.one_of(st.sampled_from(VALUES), st.binary(max_size=40))), max_size=12),
       st.sampled_from([b"/a", b"/pkg.Svc/Call", b" /s ", b"", b"/\xff"]))
def test_random_fields_differentially_against_h2(fields, path):
    memo = FieldMemo()
    expected = _reference(b"POST", b"grpc.test", b"http", path, fields)
    assert _ours(b"POST", b"grpc.test", b"http", path, fields, memo) == expected
    assert _ours(b"POST", b"grpc.test", b"http", path, fields, memo) == expected  # from the memo


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.sampled_from(NAMES), st.binary(max_size=12)),
                          st.one_of(st.sampled_from(VALUES), st.binary(max_size=40))), max_size=12),
       st.lists(st.one_of(st.sampled_from(VALUES), st.binary(max_size=200)), min_size=1, max_size=12))
def test_new_values_of_remembered_names_differentially_against_h2(fields, values):
    """A name seen before with another value (``x-request-id``, ``grpc-timeout`` each call):
    encoded from the remembered name's start, still exactly what h2 sent or refused."""
    memo = FieldMemo()
    _ours(b"POST", b"grpc.test", b"http", b"/a", fields, memo)  # the names seen once
    again = [(name, values[index % len(values)]) for index, (name, _) in enumerate(fields)]
    assert _ours(b"POST", b"grpc.test", b"http", b"/a", again, memo) == \
        _reference(b"POST", b"grpc.test", b"http", b"/a", again)


PSEUDO_VALUES = [b"", b" ", b"POST", b"post", b"grpc.test", b" padded.test ", b"a:8443", b"http", b"https", b"/a",
                 b" /s ", b"/pkg.Svc/Call", b"\xff", b"/" + b"p" * 200]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(*[st.one_of(st.sampled_from(PSEUDO_VALUES), st.binary(max_size=30))] * 4),
                min_size=1, max_size=6))
def test_pseudo_header_fields_from_one_memo_differentially_against_h2(requests):
    """The pseudo-header fields of requests through one memo (remembered as a whole per
    method, authority, scheme and path), each time and again: what h2 sent or refused."""
    memo = FieldMemo()
    fields = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]
    for _ in range(2):
        for method, authority, scheme, path in requests:
            assert _ours(method, authority, scheme, path, fields, memo) == \
                _reference(method, authority, scheme, path, fields)


def test_the_pseudo_header_memo_is_bounded_and_still_right_after_it_starts_again():
    memo = FieldMemo()
    for number in range(h2_request_head._MEMO_LIMIT + 10):
        path = b"/p%d" % number
        assert memo.block(b"POST", b"grpc.test", b"http", path, []) == \
            FieldMemo().block(b"POST", b"grpc.test", b"http", path, [])
        assert len(memo._pseudo) <= h2_request_head._MEMO_LIMIT
    assert _ours(b"POST", b"grpc.test", b"http", b"/p1", [], memo) == \
        _reference(b"POST", b"grpc.test", b"http", b"/p1", [])


def test_only_plain_names_are_remembered_by_name():
    memo = FieldMemo()
    memo.block(b"POST", b"h", b"http", b"/x", [
        (b"x-request-id", b"1"), (b"grpc-timeout", b"1S"), (b"X-Upper", b"1"), (b" x-spaced", b"1"),
        (b"content-type", b"application/grpc"), (b"te", b"trailers"), (b"cookie", b"a=b"),
        (b"authorization", b"x"), (b"connection", b"close"), (b"host", b"h")])
    assert set(memo._names) == {b"x-request-id", b"grpc-timeout"}
    assert memo._names[b"x-request-id"] == encode_field(b"x-request-id", b"")[:-1]  # the literal less its value


def test_the_names_memo_is_bounded():
    memo = FieldMemo()
    for i in range(3 * h2_request_head._MEMO_LIMIT):  # bounded loop
        memo.block(b"POST", b"h", b"http", b"/x", [(b"x-name-%d" % i, b"v")])
        assert len(memo._names) <= h2_request_head._MEMO_LIMIT


@given(st.binary(max_size=300), st.binary(max_size=300), st.booleans())
def test_every_field_encodes_without_the_dynamic_table(name, value, never):
    encoded = encode_field(name, value, never_indexed=never)
    decoder = hpack.Decoder()
    ((got_name, got_value),) = decoder.decode(encoded, raw=True)
    assert (got_name, got_value) == (name, value)
    assert len(decoder.header_table.dynamic_entries) == 0
    assert encode_field(name, value, never_indexed=never) == encoded  # a pure function of the field


def test_nginx_encoding_static_indices_and_raw_literals():
    assert encode_field(b":method", b"POST") == b"\x83"  # static index 3
    assert encode_field(b":scheme", b"http") == b"\x86"
    assert encode_field(b"te", b"trailers") == b"\x00\x02te\x08trailers"  # no static name: literal
    assert encode_field(b"content-type", b"application/grpc") == b"\x0f\x10\x10application/grpc"  # name 31
    assert encode_field(b"authorization", b"x", never_indexed=True) == b"\x1f\x08\x01x"  # name 23
    long = encode_field(b"x-long", b"v" * 200)
    assert long[:8] == b"\x00\x06x-long" and long[8:10] == b"\x7f\x49"  # 200 = 127 + 73


def test_repeated_fields_come_from_the_memo_and_credentials_never_do():
    memo = FieldMemo()
    fields = [(b"content-type", b"application/grpc"), (b"authorization", b"Bearer secret"),
              (b"cookie", b"short=1"), (b"cookie", b"a-cookie-longer-than-twenty-bytes")]
    first = memo.block(b"POST", b"h", b"http", b"/x", fields)
    assert memo.block(b"POST", b"h", b"http", b"/x", fields) == first
    remembered = set(memo._fields)
    assert (b"content-type", b"application/grpc") in remembered
    assert (b"cookie", b"a-cookie-longer-than-twenty-bytes") in remembered
    assert (b"authorization", b"Bearer secret") not in remembered and (b"cookie", b"short=1") not in remembered


def test_the_memo_is_bounded():
    memo = FieldMemo()
    for i in range(3 * h2_request_head._MEMO_LIMIT):  # bounded loop
        memo.block(b"POST", b"h", b"http", b"/%d" % i, [(b"x-request-id", b"%032x" % i)])
        assert len(memo._fields) <= h2_request_head._MEMO_LIMIT and len(memo._pseudo) <= h2_request_head._MEMO_LIMIT


def test_the_prepared_block_is_given_once():
    prepared = PreparedBlock()
    prepared.next = b"\x83"
    assert prepared.encode([(b":method", b"POST")]) == b"\x83"
    assert prepared.encode([]) == b""
    prepared.header_table_size = 0  # the backend's SETTINGS_HEADER_TABLE_SIZE: accepted, unused


def test_a_request_h2_would_refuse_fails_alone_and_gives_its_room_back():
    clock, upstream = setup()
    bad, good = FakeExchange(), FakeExchange()
    streams = []
    upstream.acquire("127.0.0.1", 50051, SETTINGS, streams.append, lambda e: None)
    server = connect(clock, upstream)
    connection = streams[0].connection
    room = connection.room()
    streams[0].start(bad, b"POST", b"/x", [(b"host", b"h"), (b"TE", b"gzip")], None, 60.0, 60.0)
    assert bad.events == [("failed", "invalid_request", False, False)]
    assert connection.room() == room + 1 and not connection.streams
    upstream.acquire("127.0.0.1", 50051, SETTINGS, lambda s: s.start(
        good, b"POST", b"/x", [(b"host", b"h"), (b"Content-Type", b"application/grpc")], None, 60.0, 60.0),
        lambda e: None)
    server.pump()
    (request,) = server.requests()
    assert request.stream_id == 1 and dict(request.headers)[b"content-type"] == b"application/grpc"
    assert len(clock.tcpClients) == 1
    clock.advance(120)  # no timer left behind by the refused one
    assert bad.events == [("failed", "invalid_request", False, False)]


def test_backend_streams_carry_the_blocks_without_the_dynamic_table():
    clock, upstream = setup()
    exchanges = [FakeExchange() for _ in range(3)]
    for exchange in exchanges:
        upstream.acquire("127.0.0.1", 50051, SETTINGS, lambda s, e=exchange: s.start(
            e, b"POST", b"/pkg.Svc/Call", [(b"host", b"grpc.test"), (b"content-type", b"application/grpc"),
                                           (b"x-forwarded-for", b"10.0.0.1")], None, 60.0, 60.0), lambda e: None)
    server = connect(clock, upstream)
    requests = server.requests()
    assert [r.stream_id for r in requests] == [1, 3, 5] and len(clock.tcpClients) == 1
    for request in requests:
        assert request.headers == [(b":method", b"POST"), (b":authority", b"grpc.test"), (b":scheme", b"http"),
                                   (b":path", b"/pkg.Svc/Call"), (b"content-type", b"application/grpc"),
                                   (b"x-forwarded-for", b"10.0.0.1"), (b"te", b"trailers")]
    assert len(server.h2.decoder.header_table.dynamic_entries) == 0
