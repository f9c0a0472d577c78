"""FastCGI records (``ingressd.proxy.fastcgi_records``): encoded as the specification says, read
however the bytes are cut, malformed ones refused."""

from __future__ import annotations

import struct

import pytest

from ingressd.proxy import fastcgi_records as records
from ingressd.proxy.fastcgi_records import FastCGIError, RecordReader


def header(kind, length, padding=0, request_id=1, version=1):
    return struct.pack(">BBHHBx", version, kind, request_id, length, padding)


def test_a_record_is_padded_to_eight_bytes():
    data = records.record(records.STDIN, b"abc")
    assert data == header(records.STDIN, 3, 5) + b"abc" + b"\0" * 5
    assert len(records.record(records.STDIN, b"12345678")) == 16  # no padding needed
    assert records.record(records.PARAMS) == header(records.PARAMS, 0)  # the end of a stream


def test_a_record_holds_at_most_65535_bytes():
    with pytest.raises(ValueError):
        records.record(records.STDIN, b"x" * 65536)


def test_a_long_stream_is_cut_into_records_of_at_most_65535_bytes():
    data = bytes(range(256)) * 1000  # 256000 bytes
    encoded = records.stream(records.STDIN, data)
    found = RecordReader(accepted=frozenset((records.STDIN,))).feed(encoded)
    assert [len(content) for _, content in found] == [65535, 65535, 65535, 59395]
    assert b"".join(content for _, content in found) == data
    assert records.stream(records.STDIN, b"") == b""


def test_begin_request_as_a_responder_without_keep_conn():
    data = records.begin_request()
    assert data[:8] == header(records.BEGIN_REQUEST, 8)
    assert data[8:] == b"\x00\x01\x00" + b"\0" * 5  # role 1, flags 0 (nginx's fastcgi_keep_conn off)
    assert records.begin_request(keep_conn=True)[10] == records.KEEP_CONN


def test_params_use_one_byte_lengths_below_128_and_four_above():
    pairs = [(b"A", b"1"), (b"LONG", b"v" * 200), (b"N" * 130, b"")]
    encoded = records.encode_params(pairs)
    assert encoded[:2] == b"\x01\x01"
    assert encoded[4:10] == b"\x04\x80\x00\x00\xc8" + b"L"
    assert records.decode_params(encoded) == pairs


def test_truncated_params_are_refused():
    encoded = records.encode_params([(b"NAME", b"value")])
    for cut in range(1, len(encoded)):
        with pytest.raises(FastCGIError):
            records.decode_params(encoded[:cut])


def test_records_are_read_however_the_bytes_are_cut():
    body = b"".join([
        records.record(records.STDOUT, b"Status: 200 OK\r\n\r\nhello"),
        records.record(records.STDERR, b"warning"),
        records.record(records.STDOUT, b""),
        records.record(records.END_REQUEST, records.end_request_body(0)),
    ])
    whole = RecordReader().feed(body)
    assert [kind for kind, _ in whole] == [records.STDOUT, records.STDERR, records.STDOUT, records.END_REQUEST]
    for size in (1, 3, 7, 8, 9, 13):
        reader = RecordReader()
        found = []
        for at in range(0, len(body), size):
            found += reader.feed(body[at:at + size])
        assert found == whole, size
        assert reader.pending == 0


def test_a_reader_holds_at_most_one_record():
    reader = RecordReader()
    big = records.record(records.STDOUT, b"x" * 65535)
    assert reader.feed(big[:-1]) == []
    assert reader.pending == len(big) - 1
    assert reader.feed(big[-1:]) == [(records.STDOUT, b"x" * 65535)]
    assert reader.pending == 0


def test_padding_is_skipped_even_when_it_arrives_later():
    reader = RecordReader()
    record = records.record(records.STDOUT, b"abc")  # 5 bytes of padding
    assert reader.feed(record[:11]) == []  # the content, not all its padding
    assert reader.feed(record[11:] + records.record(records.STDOUT, b"d")) == [
        (records.STDOUT, b"abc"), (records.STDOUT, b"d")]


@pytest.mark.parametrize("data, message", [
    (header(records.STDOUT, 0, version=2), "version 2"),
    (header(records.STDIN, 0), "type 5"),
    (header(records.BEGIN_REQUEST, 8), "type 1"),
    (header(10, 0, request_id=0), "type 10"),  # GET_VALUES_RESULT: we never asked
    (header(11, 8, request_id=0), "type 11"),  # UNKNOWN_TYPE
    (header(records.STDOUT, 0, request_id=2), "request 2"),
    (header(records.STDOUT, 0, request_id=0), "request 0"),
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "version 72"),  # an HTTP server on the port
])
def test_malformed_records_are_refused_from_their_header(data, message):
    with pytest.raises(FastCGIError, match=message):
        RecordReader().feed(data)


def test_a_malformed_record_after_good_ones_is_refused():
    reader = RecordReader()
    with pytest.raises(FastCGIError):
        reader.feed(records.record(records.STDOUT, b"ok") + header(records.STDOUT, 0, version=0))


def test_end_request_must_be_eight_bytes():
    assert records.parse_end_request(records.end_request_body(3, records.OVERLOADED)) == (3, records.OVERLOADED)
    for content in (b"", b"\0" * 7, b"\0" * 9):
        with pytest.raises(FastCGIError):
            records.parse_end_request(content)
    assert records.protocol_status_word(records.OVERLOADED) == "overloaded"
    assert records.protocol_status_word(9) == "protocol status 9"
