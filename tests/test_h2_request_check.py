"""h2's checks of a request header block in one pass (``http.h2_request_check``): the same
decision and the same fields as h2's own pipeline, block by block and connection by connection
(differentially, with Hypothesis, against an ``H2Connection`` with hpack's decoder and h2's
checks), and h2 still checking every block that could be trailers."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.exceptions
import hpack
import pytest
from h2.utilities import HeaderValidationFlags, normalize_inbound_headers, validate_headers
from hpack import NeverIndexedHeaderTuple
from hyperframe.frame import ContinuationFrame, DataFrame, HeadersFrame, SettingsFrame
from hypothesis import given, settings
from hypothesis import strategies as st

from ingressd.http import h2_request_check
from ingressd.http.h2_request_check import request_fields

from h2_glue_before import CheckingDecoder  # how request_fields was applied on h2's H2Connection

_REQUEST = HeaderValidationFlags(is_client=False, is_trailer=False, is_response_header=False, is_push_promise=False)
_BASE = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b":authority", b"example.com")]


def _h2_verdict(fields):
    try:
        return list(validate_headers(normalize_inbound_headers(list(fields), _REQUEST), _REQUEST))
    except h2.exceptions.ProtocolError:
        return None


@pytest.mark.parametrize("fields", [
    _BASE,
    _BASE + [(b"user-agent", b"curl/8"), (b"accept", b"*/*"), (b"te", b"trailers"), (b"x-empty", b"")],
    _BASE + [(b"cookie", b"a=1"), (b"x", b"y"), (b"cookie", b"b=2")],
    [(b"cookie", b"a=1")] + _BASE,  # a cookie first: h2 moves it last before checking the order
    [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"host", b"example.com")],
    _BASE + [(b"host", b"example.com")],
    _BASE + [(b"cookie", b""), (b"cookie", b"a=1")],  # joined "; a=1": fine
])
def test_valid_blocks_pass_with_h2s_fields(fields):
    checked = request_fields(fields)
    assert checked is not None and checked == _h2_verdict(fields)
    assert [isinstance(f, NeverIndexedHeaderTuple) for f in checked] == \
        [isinstance(f, NeverIndexedHeaderTuple) for f in _h2_verdict(fields)]


@pytest.mark.parametrize("fields", [
    _BASE + [(b"X-Upper", b"v")],
    _BASE + [(b"x:colon", b"v")],
    _BASE + [(b"", b"v")],
    _BASE + [(b"x", b" lead")],
    _BASE + [(b"x", b"trail\t")],
    _BASE + [(b"x", b"a\r\nb")],
    _BASE + [(b"x", b"nul\x00")],
    _BASE + [(b"connection", b"close")],
    _BASE + [(b"transfer-encoding", b"chunked")],
    _BASE + [(b"te", b"gzip")],
    _BASE + [(b"x", b"y"), (b":method", b"GET")],  # a pseudo-header after a regular field
    _BASE + [(b":path", b"/again")],  # repeated
    _BASE + [(b":status", b"200")],
    _BASE + [(b":custom", b"x")],
    [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b""), (b":authority", b"a")],  # empty :path
    [(b":method", b"GET"), (b":path", b"/"), (b":authority", b"a")],  # no :scheme
    [(b":scheme", b"https"), (b":path", b"/"), (b":authority", b"a")],  # no :method
    [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")],  # neither :authority nor Host
    _BASE + [(b"host", b"other.example")],
    _BASE + [(b"host", b"example.com"), (b"host", b"example.com")],
    _BASE + [(b"cookie", b"a=1"), (b"cookie", b"")],  # joined "a=1; ": ends with a space
    [(b"x", b"y")],  # trailers-shaped: h2 checks it
])
def test_blocks_in_doubt_are_left_to_h2(fields):
    assert request_fields(fields) is None


@pytest.mark.parametrize("fields", [
    [(b":method", b"CONNECT"), (b":authority", b"a:443")],
    [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"https"), (b":path", b"/"),
     (b":authority", b"a")],
])
def test_connect_is_always_left_to_h2(fields):
    assert _h2_verdict(fields) is not None and request_fields(fields) is None


_names = st.one_of(
    st.sampled_from([b":method", b":scheme", b":path", b":authority", b":status", b":protocol", b"host",
                     b"cookie", b"te", b"connection", b"x-a", b"X-A", b"", b"a:b", b"user-agent"]),
    st.binary(max_size=6),
)
_values = st.one_of(st.sampled_from([b"GET", b"CONNECT", b"https", b"/", b"", b"a", b"trailers", b" a", b"a\t"]),
                    st.binary(max_size=6))
_pairs = st.tuples(_names, _values)


@settings(max_examples=3000, deadline=None)
@given(extra=st.lists(_pairs, max_size=6), base=st.booleans(), position=st.integers(0, 6))
def test_request_fields_never_passes_what_h2_refuses(extra, base, position):
    fields = list(extra)
    if base:
        fields[position:position] = _BASE
    checked = request_fields(fields)
    if checked is not None:
        assert checked == _h2_verdict(fields)


def test_the_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(h2_request_check, "_MEMO_LIMIT", 3)
    h2_request_check._valid.clear()
    for n in range(10):
        assert request_fields(_BASE + [(b"x-n", b"%d" % n)]) is not None
        assert len(h2_request_check._valid) <= 3


# -- connection level: the same events, bytes and errors as h2 with hpack's decoder ----------

def _server(checking: bool) -> h2.connection.H2Connection:
    config = h2.config.H2Configuration(client_side=False, header_encoding=None)
    connection = h2.connection.H2Connection(config=config)
    if checking:
        connection.decoder = CheckingDecoder(connection)
    connection.initiate_connection()
    connection.data_to_send()
    return connection


def _feed(connection, data: bytes):
    try:
        events = connection.receive_data(data)
    except h2.exceptions.ProtocolError as exc:
        return ("error", type(exc), connection.data_to_send())
    return ("ok", [(type(e).__name__, getattr(e, "stream_id", None), getattr(e, "headers", None))
                   for e in events], connection.data_to_send())


def _frames(blocks) -> bytes:
    """The client's preface, then a HEADERS frame per block (some split with CONTINUATION,
    some on a stream left open, some trailers on it, some DATA)."""
    encoder = hpack.Encoder()
    out = [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", SettingsFrame(0).serialize()]
    stream_id = 1
    for fields, kind in blocks:
        block = encoder.encode(fields)
        if kind == "trailers" and stream_id > 1:
            sid = stream_id - 2
        else:
            sid = stream_id
            stream_id += 2
        flags = [] if kind == "open" else ["END_STREAM"]
        if kind == "split" and len(block) > 1:
            headers = HeadersFrame(sid, flags=flags)
            headers.data = block[:1]
            continuation = ContinuationFrame(sid, flags=["END_HEADERS"])
            continuation.data = block[1:]
            out += [headers.serialize(), continuation.serialize()]
            continue
        headers = HeadersFrame(sid, flags=flags + ["END_HEADERS"])
        headers.data = block
        out.append(headers.serialize())
        if kind == "data":
            out.append(DataFrame(sid, data=b"x", flags=[]).serialize())
    return b"".join(out)


_kinds = st.sampled_from(["end", "open", "trailers", "split", "data"])


@settings(max_examples=600, deadline=None)
@given(blocks=st.lists(st.tuples(st.lists(_pairs, max_size=5).map(lambda extra: _BASE + extra) | st.lists(_pairs,
                                                                                                         max_size=5),
                                 _kinds), min_size=1, max_size=5),
       chunk=st.integers(1, 400))
def test_a_connection_sees_what_h2_with_hpack_sees(blocks, chunk):
    data = _frames(blocks)
    stock, ours = _server(False), _server(True)
    for start in range(0, len(data), chunk):  # the same reads for both
        piece = data[start:start + chunk]
        expected, seen = _feed(stock, piece), _feed(ours, piece)
        assert seen == expected
        if expected[0] == "error":
            break


def test_pseudo_headers_in_trailers_are_still_refused():
    stock, ours = _server(False), _server(True)
    data = _frames([(_BASE + [(b"content-type", b"a")], "open"), (_BASE, "trailers")])
    assert _feed(ours, data) == _feed(stock, data)
    assert _feed(_server(True), data)[0] == "error"


def test_ordinary_requests_skip_h2s_checks():
    connection = _server(True)
    connection.receive_data(_frames([(_BASE + [(b"user-agent", b"u")], "end")]))
    assert connection.config.validate_inbound_headers is False
    refused = _server(True)
    with pytest.raises(h2.exceptions.ProtocolError):
        refused.receive_data(_frames([([(b":method", b"GET")], "end")]))  # no :path: left to h2, which refuses it
    assert refused.config.validate_inbound_headers is True


def test_repeated_requests_and_a_changed_one_as_h2_sees_them():
    """The same block again and again (remembered with its verdict), then other fields."""
    ordinary = (_BASE + [(b"user-agent", b"u"), (b"cookie", b"a=1"), (b"cookie", b"b=2")], "end")
    blocks = [ordinary] * 4 + [(_BASE + [(b"user-agent", b"v")], "end"), ordinary,
                               (_BASE + [(b"x", b" bad")], "end")]
    stock, ours = _server(False), _server(True)
    data = _frames(blocks)
    assert _feed(ours, data) == _feed(stock, data)
    assert _feed(_server(True), _frames(blocks[:-1]))[0] == "ok"
