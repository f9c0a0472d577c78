"""Our HTTP/2 connection (``http/h2_server.py``) against h2's ``H2Connection``, whole connections.

The client side used h2's ``H2Connection`` until ``h2_server`` took its place; the glue it had
then is kept as ``tests/h2_glue_before.py``. Here the same bytes (the preface, then Hypothesis
sequences of valid and invalid frames: requests, trailers, DATA, windows, SETTINGS, PING,
PRIORITY, RST_STREAM, GOAWAY, CONTINUATION, unknown types, garbage; header blocks valid and
invalid; split at random offsets) go to the protocol before and after, each with the same
handler, and what they write and what they hand to the exchange must be the same after every
read. Plus named cases for the rules the sequences rarely reach.
"""

from __future__ import annotations

import struct

import hpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.http import h2_frames, h2_server
from ingressd.http.http1 import ServerSettings
from ingressd.http.http2 import H2ServerProtocol

from h2_glue_before import H2ServerProtocol as H2ServerProtocolBefore

PREFACE = h2_frames.PREFACE


def _frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    length = len(payload)
    return struct.pack(">HBBBL", length >> 8, length & 0xFF, frame_type, flags, stream_id) + payload


class Recorder:
    """The handler and exchanges of one protocol: what they were handed, in order; answers by path."""

    def __init__(self, log: list):
        self.log = log

    def __call__(self, stream, request):
        log = self.log
        headers = tuple((name, b"<random>" if name == b"sec-websocket-key" else value)
                        for name, value in request.headers)
        log.append(("request", stream.stream_id, request.method, request.target, headers,
                    request.complete, request.content_length, request.upgrade))
        exchange = _Exchange(self, stream, request)
        path = request.target
        if path == b"/a":
            exchange.answer(b"ok")
        elif path == b"/big":
            exchange.answer(b"x" * 70000)
        elif path == b"/reset":
            stream.abort()
        elif path == b"/trailers":
            stream.write_head(200, [(b"content-type", b"application/grpc")], None)
            stream.write_body(b"\0\0\0\0\0")
            stream.write_trailers([(b"grpc-status", b"0")])
            stream.finish_response()
        elif path == b"/head":
            stream.write_head(200, [(b"x-early", b"1")], None)
        return exchange

    def rejected(self, stream, request, status, size):
        self.log.append(("rejected", stream.stream_id, status, size))


class _Exchange:
    def __init__(self, recorder: Recorder, stream, request):
        self.log = recorder.log
        self.stream = stream
        self.request = request
        self.received = 0

    def answer(self, body: bytes) -> None:
        stream = self.stream
        stream.write_head(200, [(b"content-type", b"text/plain"), (b"Set-Cookie", b"a=b")], len(body))
        stream.write_body(body)
        stream.finish_response()

    def body_data(self, data):
        self.received += len(data)
        self.log.append(("body", self.stream.stream_id, data))

    def body_done(self):
        self.log.append(("done", self.stream.stream_id))
        if self.request.target == b"/echo":
            self.answer(b"%d" % self.received)

    def client_lost(self):
        self.log.append(("lost", self.stream.stream_id))

    def client_side_answered(self, status, size):
        self.log.append(("answered", self.stream.stream_id, status, size))

    def client_paused(self):
        self.log.append(("paused", self.stream.stream_id))

    def client_resumed(self):
        self.log.append(("resumed", self.stream.stream_id))

    def wants_tunnel(self):
        self.log.append(("tunnel", self.stream.stream_id))


class Side:
    def __init__(self, protocol_class, **options):
        self.log: list = []
        self.clock = Clock()
        self.protocol = protocol_class(ServerSettings(**options), Recorder(self.log), self.clock, "https")
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.9", 5555),
                                         hostAddress=IPv4Address("TCP", "127.0.0.1", 8443))
        self.protocol.makeConnection(self.transport)

    def feed(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def state(self):
        return (self.transport.value(), self.log, self.protocol.closed, self.transport.disconnecting,
                sorted(self.protocol.streams))


def compare(chunks: list[bytes], rapid_reset_bound: bool = True, **options) -> tuple[Side, Side]:
    before, after = Side(H2ServerProtocolBefore, **options), Side(H2ServerProtocol, **options)
    if not rapid_reset_bound:  # nginx's, which h2 did not have (test_rapid_reset_bound)
        after.protocol.h2.new_streams_per_read = None
    assert after.state() == before.state()
    for chunk in chunks:
        before.feed(chunk)
        after.feed(chunk)
        assert after.state() == before.state(), chunk
    for seconds in (5, 61, 120):  # body and idle timers
        before.clock.advance(seconds)
        after.clock.advance(seconds)
        assert after.state() == before.state()
    return before, after


# -- the client's frames ------------------------------------------------------------------------

_PATHS = [b"/a", b"/big", b"/wait", b"/echo", b"/trailers", b"/reset", b"/head"]
_EXTRA = [
    (b"accept", b"*/*"), (b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"user-agent", b"h2load"),
    (b"Upper", b"x"), (b"connection", b"close"), (b"te", b"trailers"), (b"te", b"gzip"), (b"host", b"other"),
    (b"host", b"example.com"), (b"x", b" lead"), (b"x", b"a\nb"), (b"", b"empty"), (b"content-length", b"3"),
    (b"content-length", b"abc"), (b"content-length", b"0"), (b"expect", b"100-continue"), (b"x_y", b"1"),
    (b":path", b"/again"), (b":status", b"200"), (b":status", b"100"), (b":unknown", b"1"),
]


@st.composite
def connections(draw):
    encoder = hpack.Encoder()
    out = [PREFACE]
    if draw(st.booleans()):
        out.append(_frame(h2_frames.SETTINGS, 0, 0, b""))
    next_id = 1
    opened: list[int] = []
    sending: list[int] = []  # opened without END_STREAM
    chaos = draw(st.sampled_from([0, 0, 1, 2, 3]))  # 0: only what a well-behaved client sends; more: more rules broken

    def broken() -> bool:
        return chaos > 0 and draw(st.integers(0, 9)) < chaos

    def stream_id():
        if broken():
            return draw(st.sampled_from([0, 2, 4, 1, 3, 101, 2**31 - 1, next_id]))
        if opened:
            return draw(st.sampled_from(opened))
        return 1

    def block_frames(sid: int, fields: list, flags: int) -> bytes:
        block = encoder.encode(fields)
        priority = b""
        if draw(st.integers(0, 5)) == 0:
            flags |= h2_frames.PRIORITY_FLAG
            depends = draw(st.sampled_from([0, sid, 3, 2**31 + 1])) if broken() else 0
            priority = struct.pack(">LB", depends, 15)
        pad = b""
        if draw(st.integers(0, 5)) == 0:
            flags |= h2_frames.PADDED
            pad = bytes([draw(st.integers(0, 4))])
            pad += b"\0" * pad[0]
        cut = draw(st.integers(0, len(block))) if draw(st.integers(0, 3)) == 0 else len(block)
        first, rest = block[:cut], block[cut:]
        head_payload = pad[:1] + priority + first + pad[1:]
        if not rest:
            return _frame(h2_frames.HEADERS, flags | h2_frames.END_HEADERS, sid, head_payload)
        parts = [_frame(h2_frames.HEADERS, flags, sid, head_payload)]
        middle = draw(st.integers(1, max(1, len(rest))))
        parts.append(_frame(h2_frames.CONTINUATION, 0, sid, rest[:middle]))
        parts.append(_frame(h2_frames.CONTINUATION, h2_frames.END_HEADERS, sid, rest[middle:]))
        return b"".join(parts)

    for _ in range(draw(st.integers(1, 10))):
        kinds = ["request"] * 6 + ["data"] * 4 + ["trailers", "rst", "window", "window", "settings", "ping",
                                                  "priority", "unknown"]
        if chaos:
            kinds += ["goaway", "push", "continuation", "garbage"]
        kind = draw(st.sampled_from(kinds))
        if not opened and kind in ("data", "trailers", "rst", "window") and not broken():
            kind = "request"  # on a stream not opened yet: an error
        if kind == "request":
            sid = stream_id() if broken() else next_id
            method = draw(st.sampled_from([b"GET", b"GET", b"POST", b"HEAD"] + ([b"CONNECT"] if chaos else [])))
            fields = [(b":method", method), (b":scheme", b"https"), (b":authority", b"example.com"),
                      (b":path", draw(st.sampled_from(_PATHS)))]
            if method == b"CONNECT" and draw(st.booleans()):
                fields.append((b":protocol", b"websocket"))
            if broken():
                del fields[draw(st.integers(0, 3))]
            fields.extend(draw(st.lists(st.sampled_from(_EXTRA if broken() else _EXTRA[:4]), max_size=3)))
            flags = h2_frames.END_STREAM if draw(st.booleans()) else 0
            out.append(block_frames(sid, fields, flags))
            if sid == next_id:
                opened.append(sid)
                if not flags:
                    sending.append(sid)
                next_id += 2
        elif kind == "trailers":
            fields = draw(st.lists(st.sampled_from([(b"grpc-status", b"0"), (b"x-t", b"1"), (b":path", b"/"),
                                                    (b"Upper", b"1")]), min_size=0, max_size=2))
            flags = 0 if broken() else h2_frames.END_STREAM
            out.append(block_frames(stream_id(), fields, flags))
        elif kind == "data":
            size = draw(st.sampled_from([0, 1, 3, 100, 16384] + ([16385] if broken() else [])))
            payload = b"d" * size
            flags = h2_frames.END_STREAM if draw(st.booleans()) else 0
            if draw(st.integers(0, 4)) == 0:
                flags |= h2_frames.PADDED
                payload = bytes([2]) + payload[:16380] + b"\0\0"
            sid = draw(st.sampled_from(sending)) if sending and not broken() else stream_id()
            out.append(_frame(h2_frames.DATA, flags, sid, payload))
            if flags & h2_frames.END_STREAM and sid in sending:
                sending.remove(sid)
        elif kind == "rst":
            out.append(_frame(h2_frames.RST_STREAM, 0, stream_id(), struct.pack(">L", draw(st.integers(0, 13)))))
        elif kind == "window":
            sid = 0 if draw(st.booleans()) else stream_id()
            increment = draw(st.sampled_from([1, 100, 65535] + ([2**31 - 1, 0] if broken() else [])))
            out.append(_frame(h2_frames.WINDOW_UPDATE, 0, sid, struct.pack(">L", increment)))
        elif kind == "settings":
            if draw(st.integers(0, 4)) == 0:
                out.append(_frame(h2_frames.SETTINGS, h2_frames.ACK, 0, b"\0" * 6 if broken() else b""))
                continue
            good = [(4, 0), (4, 100), (4, 65535), (5, 16384), (5, 20000), (1, 0), (1, 4096), (3, 0), (3, 1),
                    (3, 200), (2, 0), (2, 1), (8, 1), (6, 100), (0x99, 7)]
            bad = [(4, 2**31 - 1), (4, 2**31), (5, 100), (2, 2), (8, 3)]
            pairs = draw(st.lists(st.sampled_from(good + bad if broken() else good), max_size=3))
            out.append(_frame(h2_frames.SETTINGS, 0, 0, b"".join(struct.pack(">HL", *pair) for pair in pairs)))
        elif kind == "ping":
            size = 7 if broken() else 8
            flags = h2_frames.ACK if draw(st.integers(0, 3)) == 0 else 0
            out.append(_frame(h2_frames.PING, flags, 0, b"p" * size))
        elif kind == "priority":
            sid = stream_id() or 1
            depends = draw(st.sampled_from([0, sid, 1, 7] if broken() else [0, 7]))
            out.append(_frame(h2_frames.PRIORITY, 0, sid, struct.pack(">LB", depends, 200)))
        elif kind == "goaway":
            out.append(_frame(h2_frames.GOAWAY, 0, 0, struct.pack(">LL", 0, draw(st.integers(0, 2)))))
        elif kind == "unknown":
            out.append(_frame(0xEE, 0xFF, draw(st.sampled_from([0, 1])), b"unknown"))
        elif kind == "push":
            out.append(_frame(h2_frames.PUSH_PROMISE, h2_frames.END_HEADERS, 1, struct.pack(">L", 2) + b"\x82"))
        elif kind == "continuation":
            out.append(_frame(h2_frames.CONTINUATION, h2_frames.END_HEADERS, stream_id() or 1, b"\x82"))
        else:
            out.append(draw(st.binary(min_size=1, max_size=20)))
    data = b"".join(out)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=6))))
    chunks, at = [], 0
    for cut in cuts + [len(data)]:
        if cut > at:
            chunks.append(data[at:cut])
            at = cut
    return chunks


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(connections())
def test_whole_connections_as_with_h2(chunks):
    compare(chunks)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(connections())
def test_whole_connections_as_with_h2_few_streams_allowed(chunks):
    compare(chunks, rapid_reset_bound=False, http2_max_concurrent_streams=2, keepalive_requests=3)


# -- named cases ----------------------------------------------------------------------------------

def _request(encoder, sid, path=b"/a", end=True, extra=()):
    fields = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"example.com"), (b":path", path),
              *extra]
    return _frame(h2_frames.HEADERS, h2_frames.END_HEADERS | (h2_frames.END_STREAM if end else 0), sid,
                  encoder.encode(fields))


@pytest.mark.parametrize("case", [
    "ping", "settings-window", "too-many-streams", "reset-then-data", "reset-then-headers", "ended-then-headers",
    "low-id", "even-id", "bad-preface", "body-too-long", "flow-control", "window-overflow", "goaway-in",
    "trailers", "continuation-flood", "repeated-block-body-too-long",
])
def test_named(case):
    encoder = hpack.Encoder()
    frames = [PREFACE, _frame(h2_frames.SETTINGS, 0, 0, b"")]
    if case == "ping":
        frames.append(_frame(h2_frames.PING, 0, 0, b"12345678"))
    elif case == "settings-window":
        frames += [_request(encoder, 1, b"/big"),
                   _frame(h2_frames.SETTINGS, 0, 0, struct.pack(">HL", 4, 100000)),
                   _frame(h2_frames.WINDOW_UPDATE, 0, 0, struct.pack(">L", 100000))]
    elif case == "too-many-streams":
        frames += [_request(encoder, sid, b"/wait") for sid in range(1, 12, 2)]
    elif case == "reset-then-data":
        frames += [_request(encoder, 1, b"/wait", end=False), _frame(h2_frames.RST_STREAM, 0, 1, b"\0\0\0\x08"),
                   _frame(h2_frames.DATA, 0, 1, b"late")]
    elif case == "reset-then-headers":
        frames += [_request(encoder, 1, b"/reset"), _request(encoder, 3), _request(encoder, 1)]
    elif case == "ended-then-headers":
        frames += [_request(encoder, 1), _request(encoder, 3), _request(encoder, 1)]
    elif case == "low-id":
        frames += [_request(encoder, 5), _request(encoder, 3)]
    elif case == "even-id":
        frames += [_request(encoder, 2)]
    elif case == "bad-preface":
        frames = [b"PRI * HTTP/1.1\r\n\r\n"]
    elif case == "body-too-long":
        frames += [_request(encoder, 1, b"/echo", end=False, extra=[(b"content-length", b"2")]),
                   _frame(h2_frames.DATA, h2_frames.END_STREAM, 1, b"abc")]
    elif case == "flow-control":
        frames += [_request(encoder, 1, b"/wait", end=False)]
        frames += [_frame(h2_frames.DATA, 0, 1, b"x" * 16384)] * 5
    elif case == "window-overflow":
        frames += [_request(encoder, 1, b"/wait", end=False),
                   _frame(h2_frames.WINDOW_UPDATE, 0, 1, struct.pack(">L", 2**31 - 1)),
                   _frame(h2_frames.WINDOW_UPDATE, 0, 0, struct.pack(">L", 2**31 - 1))]
    elif case == "goaway-in":
        frames += [_request(encoder, 1, b"/wait"), _frame(h2_frames.GOAWAY, 0, 0, b"\0" * 8), _request(encoder, 3)]
    elif case == "trailers":
        frames += [_request(encoder, 1, b"/echo", end=False), _frame(h2_frames.DATA, 0, 1, b"abc"),
                   _frame(h2_frames.HEADERS, h2_frames.END_HEADERS | h2_frames.END_STREAM, 1,
                          encoder.encode([(b"x-t", b"1")]))]
    elif case == "repeated-block-body-too-long":  # the third block is the second's bytes: remembered
        for sid, body in ((1, b"ab"), (3, b"ab"), (5, b"abc")):
            frames += [_request(encoder, sid, b"/echo", end=False, extra=[(b"content-length", b"2")]),
                       _frame(h2_frames.DATA, h2_frames.END_STREAM, sid, body)]
    elif case == "continuation-flood":
        frames += [_frame(h2_frames.HEADERS, 0, 1, b"")] + [_frame(h2_frames.CONTINUATION, 0, 1, b"")] * 70
    data = b"".join(frames)
    compare([data])
    compare([data[at:at + 7] for at in range(0, len(data), 7)])


def test_the_settings_sent_first_are_h2s():
    before, after = Side(H2ServerProtocolBefore), Side(H2ServerProtocol)
    assert after.transport.value() == before.transport.value()
    before, after = Side(H2ServerProtocolBefore, http2_max_concurrent_streams=7), Side(
        H2ServerProtocol, http2_max_concurrent_streams=7)
    assert after.transport.value() == before.transport.value()


def test_the_connection_alone():
    """``ServerConnection`` without the protocol: a request, its events and the answer's frames."""
    connection = h2_server.ServerConnection(h2_server.local_settings(100, 65536, True), 100, _Encoder())
    connection.initiate_connection(65535)
    assert connection.data_to_send()[3] == h2_frames.SETTINGS
    events = connection.receive(PREFACE + _request(hpack.Encoder(), 1))
    assert [event[0] for event in events] == [h2_server.REQUEST, h2_server.ENDED]
    assert events[0][3] is True
    connection.send_headers(1, [(b":status", b"200")], False)
    connection.send_data(1, b"ok", True)
    out = connection.data_to_send()
    assert out[3] == h2_frames.HEADERS and out[-2:] == b"ok"
    with pytest.raises(h2_server.StreamClosedError):
        connection.send_data(1, b"more")
    with pytest.raises(h2_server.ProtocolError) as failed:
        connection.receive(_frame(h2_frames.DATA, 0, 9, b"x"))
    assert failed.value.code == h2_frames.PROTOCOL_ERROR
    assert connection.data_to_send() == h2_frames.goaway_frame(1, h2_frames.PROTOCOL_ERROR)


class _Encoder:
    header_table_size = 4096

    def encode(self, fields):
        return hpack.Encoder().encode(fields)


def test_rapid_reset_bound():
    """CVE-2023-44487: a read may open at most 2 x http2_max_concurrent_streams streams (nginx's
    bound), however many it also resets; the ones beyond are refused (RST_STREAM
    REFUSED_STREAM) and never reach the handler. The next read starts counting again."""
    encoder = hpack.Encoder()
    side = Side(H2ServerProtocol, http2_max_concurrent_streams=3)
    side.feed(PREFACE + _frame(h2_frames.SETTINGS, 0, 0, b""))
    side.transport.clear()
    read = b"".join(_request(encoder, sid, b"/wait") + _frame(h2_frames.RST_STREAM, 0, sid, b"\0\0\0\x08")
                    for sid in range(1, 17, 2))  # 8 streams opened and reset
    side.feed(read)
    handed = [entry[1] for entry in side.log if entry[0] == "request"]
    assert handed == [1, 3, 5, 7, 9, 11]
    out = side.transport.value()
    for sid in (13, 15):
        assert h2_frames.rst_stream_frame(sid, h2_frames.REFUSED_STREAM) in out
    assert not side.protocol.closed
    side.transport.clear()
    side.feed(_request(encoder, 17, b"/a"))  # a new read: served
    assert [entry[1] for entry in side.log if entry[0] == "request"][-1] == 17
    side.feed(_request(encoder, 13))  # a refused stream is closed: STREAM_CLOSED, as after any reset
    assert h2_frames.rst_stream_frame(13, h2_frames.STREAM_CLOSED) in side.transport.value()


def test_a_repeated_block_is_read_again_when_the_settings_change():
    """A repeated request block is read once (http2's memo of the last block), as long as the
    settings it was read under stay the same: each request still gets its own head."""
    encoder = hpack.Encoder()
    side = Side(H2ServerProtocol)
    side.feed(PREFACE + _frame(h2_frames.SETTINGS, 0, 0, b""))
    extra = [(b"x_y", b"1"), (b"accept", b"*/*")]
    side.feed(_request(encoder, 1, b"/a", extra=extra) + _request(encoder, 3, b"/a", extra=extra))
    requests = [entry for entry in side.log if entry[0] == "request"]
    assert [entry[1] for entry in requests] == [1, 3]
    assert requests[0][2:] == requests[1][2:]
    assert (b"x_y", b"1") not in requests[0][4]  # nginx's underscores_in_headers off
    assert side.protocol._repeat is not None  # the second was the remembered reading
    side.protocol.settings.apply(underscores_in_headers=True)
    side.feed(_request(encoder, 5, b"/a", extra=extra))
    requests = [entry for entry in side.log if entry[0] == "request"]
    assert requests[-1][1] == 5 and (b"x_y", b"1") in requests[-1][4]
    side.protocol.settings.apply(max_headers=2)
    side.feed(_request(encoder, 7, b"/a", extra=extra))
    assert side.log[-1][:3] == ("rejected", 7, 431)
    side.feed(_request(encoder, 9, b"/a", extra=extra, end=False))  # another key (the stream goes on)
    assert side.log[-1][:3] == ("rejected", 9, 431)
