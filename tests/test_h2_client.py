"""``proxy/h2_client.py`` (the backend connection's HTTP/2 client side) against h2's
``H2Connection`` configured as ``h2_upstream`` used it: the same requests sent, the same
backend frames (an h2 server's, valid, and hand-made invalid ones) cut at random offsets fed
to both; the events, the bytes written and the connection errors compared. Then unit cases
for each error path and for where it deliberately differs from h2."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingressd.http import h2_frames as frames
from ingressd.proxy import h2_client
from ingressd.proxy.h2_client import ClientConnection, H2ClientError, StreamClosed, TooManyStreams
from ingressd.proxy.h2_request_head import FieldMemo, PreparedBlock
from ingressd.proxy.h2_upstream import _CONNECTION_WINDOW, _LOCAL_SETTINGS, _STREAM_WINDOW

_MEMO = FieldMemo()
_BLOCK = _MEMO.block(b"POST", b"grpc.test", b"http", b"/pkg.Svc/Call",
                     [(b"content-type", b"application/grpc"), (b"te", b"trailers")])


def _h2_client():
    """h2's connection as h2_upstream configured it before h2_client replaced it."""
    config = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                       validate_inbound_headers=True, normalize_inbound_headers=True,
                                       validate_outbound_headers=False, normalize_outbound_headers=False)
    conn = h2.connection.H2Connection(config=config)
    conn.encoder = PreparedBlock()
    conn.local_settings = h2.settings.Settings(client=True, initial_values={
        h2.settings.SettingCodes.ENABLE_PUSH: 0,
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
        h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100})
    conn.initiate_connection()
    conn.increment_flow_control_window(_CONNECTION_WINDOW - 65535)
    return conn


def _ours():
    conn = ClientConnection(_LOCAL_SETTINGS, _CONNECTION_WINDOW)
    conn.initiate_connection()
    return conn


def _h2_events(events) -> tuple[list, bool]:
    """h2's events as h2_client's tuples (window events apart: h2 has one per frame)."""
    out, window = [], False
    for event in events:
        if isinstance(event, h2.events.ResponseReceived):
            status = int(dict(event.headers)[b":status"])
            out.append((h2_client.RESPONSE, event.stream_id, status,
                        [tuple(f) for f in event.headers if f[0][:1] != b":"], event.stream_ended is not None))
        elif isinstance(event, h2.events.DataReceived):
            out.append((h2_client.DATA, event.stream_id, event.data, event.flow_controlled_length))
        elif isinstance(event, h2.events.TrailersReceived):
            out.append((h2_client.TRAILERS, event.stream_id, [tuple(f) for f in event.headers]))
        elif isinstance(event, h2.events.StreamEnded):
            out.append((h2_client.ENDED, event.stream_id))
        elif isinstance(event, h2.events.StreamReset):
            out.append((h2_client.RESET, event.stream_id, int(event.error_code)))
        elif isinstance(event, h2.events.ConnectionTerminated):
            out.append((h2_client.GOAWAY, event.last_stream_id, int(event.error_code)))
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            window = True
    return out, window


def _our_events(events) -> tuple[list, bool]:
    out = [tuple(list(f) if isinstance(f, list) else f for f in e) for e in events if e[0] != h2_client.WINDOW]
    out = [(e[0], e[1], e[2], [tuple(f) for f in e[3]], e[4]) if e[0] == h2_client.RESPONSE else e for e in out]
    out = [(e[0], e[1], [tuple(f) for f in e[2]]) if e[0] == h2_client.TRAILERS else e for e in out]
    return out, any(e[0] == h2_client.WINDOW for e in events)


class Pair:
    """Both clients, driven the same way; every step compared."""

    def __init__(self):
        self.theirs = _h2_client()
        self.ours = _ours()
        self.over = False
        self.error_code = None
        self.initial = self.ours.data_to_send()
        assert self.initial == self.theirs.data_to_send()

    def open(self, end_stream: bool) -> int:
        stream_id = self.theirs.get_next_available_stream_id()
        assert self.ours.get_next_available_stream_id() == stream_id
        self.theirs.encoder.next = _BLOCK
        self.theirs.send_headers(stream_id, [(b":method", b"POST"), (b":authority", b"grpc.test")],
                                 end_stream=end_stream)
        self.ours.send_headers(stream_id, _BLOCK, end_stream)
        return stream_id

    def sent(self) -> bytes:
        ours, theirs = self.ours.data_to_send(), self.theirs.data_to_send()
        assert ours == theirs
        return ours

    def feed(self, data: bytes) -> list:
        """``data`` to both: their events (the same), acknowledged as h2_upstream does."""
        if self.over:
            return []
        theirs_error = ours_error = None
        try:
            their_events = self.theirs.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            theirs_error, their_events = exc, []
        try:
            our_events = self.ours.receive_data(data)
        except H2ClientError as exc:
            ours_error, our_events = exc, []
        assert (theirs_error is None) == (ours_error is None), (theirs_error, ours_error)
        if theirs_error is not None:
            assert ours_error.code == int(theirs_error.error_code), (theirs_error, ours_error)
            self.over, self.error_code = True, ours_error.code
            # our GOAWAY (h2's may name a stream the backend wrongly opened as its last)
            assert self.ours.data_to_send().endswith(frames.goaway_frame(0, ours_error.code))
            self.theirs.data_to_send()
            return []
        theirs, their_window = _h2_events(their_events)
        ours, our_window = _our_events(our_events)
        assert ours == theirs
        assert our_window == their_window
        for event in ours:
            if event[0] == h2_client.DATA:
                self.ours.acknowledge_received_data(event[3], event[1])
                self.theirs.acknowledge_received_data(event[3], event[1])
        return ours


def _server():
    config = h2.config.H2Configuration(client_side=False, header_encoding=None)
    server = h2.connection.H2Connection(config=config)
    server.initiate_connection()
    return server


def _literal(name: bytes, value: bytes) -> bytes:
    """An HPACK literal without indexing, new name (leaves the dynamic table alone)."""
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def _frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream_id.to_bytes(4, "big") + payload


_STATUS_200 = b"\x88"  # static index 8
# Hand-made frames a backend must not send (or may, oddly), as a function of a stream id.
_RAW = {
    "uppercase": lambda s: _frame(1, 5, s, _STATUS_200 + _literal(b"X-Up", b"1")),
    "connection": lambda s: _frame(1, 5, s, _STATUS_200 + _literal(b"connection", b"close")),
    "te": lambda s: _frame(1, 5, s, _STATUS_200 + _literal(b"te", b"gzip")),
    "no-status": lambda s: _frame(1, 5, s, _literal(b"x", b"1")),
    "request-pseudo": lambda s: _frame(1, 5, s, _STATUS_200 + _literal(b":path", b"/")),
    "custom-pseudo": lambda s: _frame(1, 5, s, _STATUS_200 + _literal(b":x", b"/")),
    "pseudo-late": lambda s: _frame(1, 5, s, _literal(b"x", b"1") + _STATUS_200),
    "two-status": lambda s: _frame(1, 5, s, _STATUS_200 + _STATUS_200),
    "space-value": lambda s: _frame(1, 5, s, _STATUS_200 + _literal(b"x", b" 1")),
    "nul-value": lambda s: _frame(1, 5, s, _STATUS_200 + _literal(b"x", b"a\x00b")),
    "empty-name": lambda s: _frame(1, 5, s, _STATUS_200 + _literal(b"", b"1")),
    "cookies": lambda s: _frame(1, 4, s, _STATUS_200 + _literal(b"cookie", b"a=1") + _literal(b"x", b"y")
                                + _literal(b"cookie", b"b=2")),
    "informational": lambda s: _frame(1, 4, s, b"\x08\x03103"),
    "informational-end": lambda s: _frame(1, 5, s, b"\x08\x03103"),
    "content-length-2": lambda s: _frame(1, 4, s, _STATUS_200 + _literal(b"content-length", b"2")),
    "content-length-bad": lambda s: _frame(1, 4, s, _STATUS_200 + _literal(b"content-length", b"x")),
    "data-3": lambda s: _frame(0, 0, s, b"abc"),
    "data-end": lambda s: _frame(0, 1, s, b"ab"),
    "data-padded": lambda s: _frame(0, 8, s, b"\x02ab\0\0"),
    "trailers-no-end": lambda s: _frame(1, 4, s, _literal(b"grpc-status", b"0")),
    "trailers-pseudo": lambda s: _frame(1, 5, s, _STATUS_200),
    "bad-hpack": lambda s: _frame(1, 5, s, b"\xff\xff\xff\xff\xff\xff\xff"),
    "bad-index": lambda s: _frame(1, 5, s, b"\xbf"),
    "idle-headers": lambda s: _frame(1, 5, 99, _STATUS_200),
    "even-headers": lambda s: _frame(1, 5, 2, _STATUS_200),
    "push": lambda s: _frame(5, 4, s, b"\0\0\0\x02" + _STATUS_200),
    "idle-rst": lambda s: _frame(3, 0, 99, b"\0\0\0\x08"),
    "window-overflow-stream": lambda s: _frame(8, 0, s, b"\x7f\xff\xff\xff"),
    "window-overflow-conn": lambda s: _frame(8, 0, 0, b"\x7f\xff\xff\xff"),
    "window-zero": lambda s: _frame(8, 0, s, b"\0\0\0\0"),
    "settings-push-2": lambda s: _frame(4, 0, 0, b"\0\x02\0\0\0\x02"),
    "settings-window-big": lambda s: _frame(4, 0, 0, b"\0\x04\x80\0\0\0"),
    "settings-frame-small": lambda s: _frame(4, 0, 0, b"\0\x05\0\0\0\x10"),
    "settings-odd": lambda s: _frame(4, 0, 0, b"\0\x05\0"),
    "priority": lambda s: _frame(2, 0, s, b"\0\0\0\0\x10"),
    "unknown": lambda s: _frame(0x42, 0, s, b"hello"),
    "ping-stream": lambda s: _frame(6, 0, s, b"12345678"),
    "data-stream-0": lambda s: _frame(0, 0, 0, b"x"),
    "oversize": lambda s: _frame(0, 0, s, b"x" * 16385),
    "continuation-alone": lambda s: _frame(9, 4, s, _STATUS_200),
    "split-head": lambda s: _frame(1, 0, s, _STATUS_200) + _frame(9, 4, s, _literal(b"x", b"1")),
}

_stream = st.integers(0, 2)
_data = st.tuples(st.just("data"), _stream, st.integers(0, 70000), st.booleans(), st.integers(0, 20))
_action = st.one_of(
    _data, _data, _data,  # weighted: most of what a backend sends
    st.tuples(st.just("response"), _stream, st.sampled_from([200, 204, 404, 100]), st.booleans(),
              st.sampled_from([(), ((b"content-type", b"application/grpc"),), ((b"x-a", b"1"), (b"x-b", b"2"))])),
    st.tuples(st.just("trailers"), _stream, st.sampled_from([b"0", b"13"])),
    st.tuples(st.just("trailers"), _stream, st.sampled_from([b"0", b"13"])),
    st.tuples(st.just("reset"), _stream, st.sampled_from([0, 2, 7, 8])),
    st.tuples(st.just("window"), st.integers(0, 2), st.integers(1, 100000)),
    st.tuples(st.just("settings"), st.integers(0, 5), st.integers(0, 200000), st.sampled_from([16384, 32768])),
    st.tuples(st.just("ping"), st.binary(min_size=8, max_size=8)),
    st.tuples(st.just("raw"), _stream, st.sampled_from(sorted(_RAW))),
    st.tuples(st.just("client-data"), _stream, st.integers(1, 40000), st.booleans()),
    st.tuples(st.just("client-reset"), _stream),
    st.tuples(st.just("client-end"), _stream),
    st.tuples(st.just("goaway"), st.integers(0, 7)),
)


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def _server_act(server, pair: Pair, streams: list[int], action) -> bytes:
    """What the backend sends for ``action`` (b"" when h2's server refuses it: not valid)."""
    kind = action[0]
    try:
        if kind == "response":
            _, index, status, ended, extra = action
            server.send_headers(streams[index], [(b":status", b"%d" % status), *extra],
                                end_stream=ended and status >= 200)
        elif kind == "data":
            _, index, size, ended, padding = action
            stream_id = streams[index]
            room = min(server.local_flow_control_window(stream_id), server.max_outbound_frame_size)
            padding = min(padding, max(0, room - 1))
            size = max(0, min(size, room - (padding + 1 if padding else 0)))
            server.send_data(stream_id, b"d" * size, end_stream=ended, pad_length=padding or None)
        elif kind == "trailers":
            server.send_headers(streams[action[1]], [(b"grpc-status", action[2])], end_stream=True)
        elif kind == "reset":
            server.reset_stream(streams[action[1]], action[2])
        elif kind == "window":
            stream_id = 0 if action[1] == 0 else streams[action[1] - 1]
            server.increment_flow_control_window(action[2], stream_id=stream_id or None)
        elif kind == "settings":
            server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: action[1],
                                    h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: action[2],
                                    h2.settings.SettingCodes.MAX_FRAME_SIZE: action[3]})
        elif kind == "ping":
            server.ping(action[1])
        elif kind == "goaway":
            return frames.goaway_frame(action[1], 0)
        elif kind == "raw":
            return _RAW[action[2]](streams[action[1]])
    except (h2.exceptions.ProtocolError, h2.exceptions.FlowControlError, ValueError):
        server.clear_outbound_data_buffer()
        return b""
    return server.data_to_send()


def _client_act(pair: Pair, streams: list[int], action) -> None:
    """The same call on both clients; both refuse it or neither."""
    kind, stream_id = action[0], streams[action[1]]
    if kind == "client-reset":
        pair.ours.reset_stream(stream_id, 8)
        try:
            pair.theirs.reset_stream(stream_id, 8)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        return
    ours_refused = theirs_refused = False
    if kind == "client-data":
        size = action[2]
        try:
            size = min(size, pair.ours.local_flow_control_window(stream_id), pair.ours.max_outbound_frame_size)
            pair.ours.send_data(stream_id, b"u" * size, action[3])
        except StreamClosed:
            ours_refused = True
        try:
            size = min(action[2], pair.theirs.local_flow_control_window(stream_id), pair.theirs.max_outbound_frame_size)
            pair.theirs.send_data(stream_id, b"u" * size, end_stream=action[3])
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            theirs_refused = True
    else:  # client-end
        try:
            pair.ours.end_stream(stream_id)
        except StreamClosed:
            ours_refused = True
        try:
            pair.theirs.end_stream(stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            theirs_refused = True
    assert ours_refused == theirs_refused




@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.booleans(), min_size=1, max_size=3), st.lists(st.booleans(), min_size=3, max_size=3),
       st.lists(_action, min_size=2, max_size=14), st.lists(st.integers(0, 10**6), max_size=5))
def test_backend_frames_at_any_cut_as_h2(ends, heads, actions, cuts):
    pair = Pair()
    server = _server()
    server.receive_data(pair.initial)
    streams = [pair.open(end) for end in ends]
    streams += [streams[-1]] * (3 - len(streams))
    server.receive_data(pair.sent())
    pair.feed(server.data_to_send())  # the backend's SETTINGS and ACK
    server.receive_data(pair.sent())
    closed: set[int] = set()  # streams the backend ended or either side reset (differences below)
    ended = {stream_id for stream_id, end in zip(streams, ends) if end}  # by the client
    answered = [("response", index, 200, False, ((b"content-type", b"application/grpc"),))
                for index, head in enumerate(heads) if head]  # most answers start so
    for action in answered + actions:
        if pair.over:
            break
        kind = action[0]
        if kind.startswith("client-"):
            stream_id = streams[action[1]]
            if stream_id in ended and kind != "client-reset":
                continue  # refused by both; h2 closes the stream on the way (h2_upstream does not try)
            _client_act(pair, streams, action)
            if kind == "client-reset":
                closed.add(stream_id)
            elif kind == "client-end" or action[3]:
                ended.add(stream_id)
            data = pair.sent()
            try:
                server.receive_data(data)
            except h2.exceptions.ProtocolError:
                break
            continue
        if kind == "raw" and streams[action[1]] in closed:
            frame = _RAW[action[2]](streams[action[1]])
            if frame[3] in (frames.DATA, frames.HEADERS, frames.CONTINUATION, frames.PUSH_PROMISE):
                continue  # h2: a connection error or not depending on how it closed; here a stream error
        data = _server_act(server, pair, streams, action)
        if not data:
            continue
        events = []
        for piece in _cut(data, cuts):
            events += pair.feed(piece)
        for event in events:
            if event[0] in (h2_client.ENDED, h2_client.RESET):
                closed.add(event[1])
        if kind == "goaway" or kind == "raw":
            break  # h2 takes a GOAWAY as the end; a raw frame leaves the h2 server out of step
        reply = pair.sent()
        try:
            server.receive_data(reply)
        except h2.exceptions.ProtocolError:
            break


def test_the_preface_settings_and_window_are_h2s():
    assert _ours().data_to_send() == _h2_client().data_to_send()


def test_a_unary_call_in_three_frames_each_way():
    conn = _ours()
    conn.data_to_send()
    conn.send_headers(1, _BLOCK, False)
    conn.send_data(1, b"\0\0\0\0\x02hi", end_stream=True)
    server = _server()
    events = server.receive_data(_PREFACE_AND(conn))
    kinds = [type(e).__name__ for e in events]
    assert kinds.count("RequestReceived") == 1 and kinds.count("DataReceived") == 1 and "StreamEnded" in kinds
    data = [e for e in events if isinstance(e, h2.events.DataReceived)][0]
    assert data.stream_ended is not None  # the body and its end in one DATA frame
    server.send_headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    server.send_data(1, b"\0\0\0\0\x02ok")
    server.send_headers(1, [(b"grpc-status", b"0")], end_stream=True)
    got = conn.receive_data(server.data_to_send())
    assert [e[0] for e in got] == [h2_client.RESPONSE, h2_client.DATA, h2_client.TRAILERS, h2_client.ENDED,
                                   h2_client.WINDOW]  # the backend's SETTINGS came in the same read
    assert got[0] == (h2_client.RESPONSE, 1, 200, [(b"content-type", b"application/grpc")], False)
    assert conn.open_outbound_streams == 0


def _PREFACE_AND(conn) -> bytes:
    return frames.PREFACE + frames.settings_frame(_LOCAL_SETTINGS) + \
        frames.window_update_frame(0, _CONNECTION_WINDOW - 65535) + conn.data_to_send()


def _connected(max_streams=None, window=None):
    conn = _ours()
    conn.data_to_send()
    values = []
    if max_streams is not None:
        values.append((3, max_streams))
    if window is not None:
        values.append((4, window))
    assert conn.receive_data(frames.settings_frame(values)) == [(h2_client.WINDOW,)]
    assert conn.data_to_send() == frames.SETTINGS_ACK
    return conn


def _error(conn, data: bytes) -> int:
    with pytest.raises(H2ClientError) as caught:
        conn.receive_data(data)
    sent = conn.data_to_send()
    assert sent == frames.goaway_frame(0, caught.value.code)  # the GOAWAY h2 sends
    assert conn.receive_data(b"anything") == []  # nothing more after a connection error
    return caught.value.code


def test_the_backends_stream_limit_is_kept():
    conn = _connected(max_streams=1)
    conn.send_headers(1, _BLOCK, True)
    with pytest.raises(TooManyStreams):
        conn.send_headers(3, _BLOCK, True)
    conn.receive_data(_frame(3, 0, 1, b"\0\0\0\x07"))  # refused: the room is back
    conn.send_headers(3, _BLOCK, True)
    assert conn.open_outbound_streams == 1


def test_send_windows_follow_settings_and_window_updates():
    conn = _connected(window=10)
    conn.send_headers(1, _BLOCK, False)
    assert conn.local_flow_control_window(1) == 10
    conn.send_data(1, b"x" * 10)
    assert conn.local_flow_control_window(1) == 0
    with pytest.raises(ValueError):
        conn.send_data(1, b"y")
    assert conn.receive_data(_frame(8, 0, 1, b"\0\0\0\x05")) == [(h2_client.WINDOW,)]
    assert conn.local_flow_control_window(1) == 5
    conn.receive_data(frames.settings_frame([(4, 20)]))  # +10 on every open stream
    assert conn.local_flow_control_window(1) == 15
    assert conn.send_window == 65535 - 10


def test_a_stream_window_overflow_resets_that_stream():
    conn = _connected()
    conn.send_headers(1, _BLOCK, False)
    conn.data_to_send()
    events = conn.receive_data(_frame(8, 0, 1, b"\x7f\xff\xff\xff"))
    assert events == [(h2_client.RESET, 1, frames.FLOW_CONTROL_ERROR)]
    assert conn.data_to_send() == frames.rst_stream_frame(1, frames.FLOW_CONTROL_ERROR)


@pytest.mark.parametrize("raw, code", [
    ("uppercase", frames.PROTOCOL_ERROR), ("connection", frames.PROTOCOL_ERROR), ("te", frames.PROTOCOL_ERROR),
    ("no-status", frames.PROTOCOL_ERROR), ("request-pseudo", frames.PROTOCOL_ERROR),
    ("custom-pseudo", frames.PROTOCOL_ERROR), ("pseudo-late", frames.PROTOCOL_ERROR),
    ("two-status", frames.PROTOCOL_ERROR), ("space-value", frames.PROTOCOL_ERROR),
    ("nul-value", frames.PROTOCOL_ERROR), ("empty-name", frames.PROTOCOL_ERROR),
    ("informational-end", frames.PROTOCOL_ERROR), ("content-length-bad", frames.PROTOCOL_ERROR),
    ("data-3", frames.PROTOCOL_ERROR), ("bad-hpack", frames.PROTOCOL_ERROR),
    ("bad-index", frames.PROTOCOL_ERROR), ("idle-headers", frames.PROTOCOL_ERROR),
    ("even-headers", frames.PROTOCOL_ERROR), ("push", frames.PROTOCOL_ERROR),
    ("window-overflow-conn", frames.FLOW_CONTROL_ERROR), ("window-zero", frames.PROTOCOL_ERROR),
    ("settings-push-2", frames.PROTOCOL_ERROR), ("settings-window-big", frames.FLOW_CONTROL_ERROR),
    ("settings-frame-small", frames.PROTOCOL_ERROR), ("settings-odd", frames.FRAME_SIZE_ERROR),
    ("ping-stream", frames.PROTOCOL_ERROR), ("data-stream-0", frames.PROTOCOL_ERROR),
    ("oversize", frames.FRAME_SIZE_ERROR), ("continuation-alone", frames.PROTOCOL_ERROR),
])
def test_each_connection_error_as_h2(raw, code):
    """Each error path: our code and GOAWAY, and h2's code for the same bytes."""
    conn = _connected()
    conn.send_headers(1, _BLOCK, True)
    conn.data_to_send()
    assert _error(conn, _RAW[raw](1)) == code
    theirs = _h2_client()
    theirs.encoder.next = _BLOCK
    theirs.send_headers(1, [(b":method", b"POST"), (b":authority", b"grpc.test")], end_stream=True)
    theirs.receive_data(frames.settings_frame([]))
    with pytest.raises(h2.exceptions.ProtocolError) as caught:
        theirs.receive_data(_RAW[raw](1))
    assert int(caught.value.error_code) == code


def test_content_length_against_the_body():
    conn = _connected()
    conn.send_headers(1, _BLOCK, True)
    conn.receive_data(_RAW["content-length-2"](1))
    conn.data_to_send()
    assert _error(conn, _RAW["data-3"](1)) == frames.PROTOCOL_ERROR
    conn = _connected()
    conn.send_headers(1, _BLOCK, True)
    conn.receive_data(_RAW["content-length-2"](1))
    conn.data_to_send()
    assert _error(conn, _frame(0, 1, 1, b"a")) == frames.PROTOCOL_ERROR


def test_a_head_request_s_answer_has_no_body():
    conn = _connected()
    conn.send_headers(1, _BLOCK, True, head_request=True)
    events = conn.receive_data(_frame(1, 5, 1, _STATUS_200 + _literal(b"content-length", b"10")))
    assert events == [(h2_client.RESPONSE, 1, 200, [(b"content-length", b"10")], True), (h2_client.ENDED, 1)]


def test_goaway_is_an_event_and_the_streams_below_go_on():
    conn = _connected()
    conn.send_headers(1, _BLOCK, True)
    conn.send_headers(3, _BLOCK, True)
    events = conn.receive_data(frames.goaway_frame(1, 0) + _frame(1, 5, 1, _STATUS_200))
    assert events == [(h2_client.GOAWAY, 1, 0), (h2_client.RESPONSE, 1, 200, [], True), (h2_client.ENDED, 1)]


def test_pings_are_answered_and_acks_not():
    conn = _connected()
    assert conn.receive_data(_frame(6, 0, 0, b"12345678") + _frame(6, 1, 0, b"abcdefgh")) == []
    assert conn.data_to_send() == frames.ping_ack(b"12345678")


def test_frames_on_a_stream_we_reset_are_a_stream_error_only():
    """RFC 9113 5.1: after our RST_STREAM the backend's frames in flight are not a connection
    error; DATA's flow control is given back to the connection. Also after both END_STREAMs
    (where h2 makes it a connection error: the one deliberate difference)."""
    conn = _connected()
    conn.send_headers(1, _BLOCK, False)
    conn.reset_stream(1, frames.CANCEL)
    assert conn.data_to_send() == _PREFIX_HEADERS(1, False) + frames.rst_stream_frame(1, frames.CANCEL)
    events = conn.receive_data(_frame(1, 4, 1, _STATUS_200) + _frame(0, 0, 1, b"x" * 16000)
                               + _frame(0, 0, 1, b"x" * 16000))
    assert events == []
    sent = conn.data_to_send()
    assert frames.rst_stream_frame(1, frames.STREAM_CLOSED) in sent
    assert conn._receive._processed == 32000  # handed back (WINDOW_UPDATE at half the window)
    conn.send_headers(3, _BLOCK, True)
    conn.receive_data(_frame(1, 5, 3, _STATUS_200))
    conn.data_to_send()
    assert conn.receive_data(_frame(0, 0, 3, b"late")) == []
    assert frames.rst_stream_frame(3, frames.STREAM_CLOSED) in conn.data_to_send()


def _PREFIX_HEADERS(stream_id: int, end: bool) -> bytes:
    return frames.headers_frames(stream_id, _BLOCK, end, 16384)


def test_sending_on_a_closed_stream_is_refused():
    conn = _connected()
    conn.send_headers(1, _BLOCK, True)
    with pytest.raises(StreamClosed):
        conn.end_stream(1)
    with pytest.raises(StreamClosed):
        conn.send_data(1, b"x")
    conn.reset_stream(1, frames.CANCEL)
    conn.reset_stream(1, frames.CANCEL)  # twice: nothing the second time
    with pytest.raises(StreamClosed):
        conn.local_flow_control_window(1)
    conn.close_connection()
    with pytest.raises(StreamClosed):
        conn.send_headers(3, _BLOCK, True)


def test_a_large_header_block_is_cut_to_the_backends_frame_size():
    conn = _connected()
    block = _BLOCK + _literal(b"x", b"y" * 100) * 200  # over 20,000 bytes
    conn.send_headers(1, block, True)
    sent = conn.data_to_send()
    assert sent[3] == frames.HEADERS and sent[9 + 16384 + 3] == frames.CONTINUATION
    server = _server()
    server.receive_data(frames.PREFACE + frames.settings_frame(_LOCAL_SETTINGS))
    (request,) = [e for e in server.receive_data(sent) if isinstance(e, h2.events.RequestReceived)]
    assert len(request.headers) == 6 + 200


def test_an_rst_stream_on_an_idle_stream_is_ignored_as_h2_does():
    conn = _connected()
    assert conn.receive_data(_RAW["idle-rst"](1)) == [] and conn.data_to_send() == b""


def test_the_memo_of_valid_fields_is_bounded():
    from ingressd.proxy import h2_response_check
    for index in range(h2_response_check._MEMO_LIMIT + 10):
        h2_response_check.trailer_fields([(b"x-%d" % index, b"v")])
    assert len(h2_response_check._valid) <= h2_response_check._MEMO_LIMIT


def test_a_frame_after_the_backend_ended_its_side_resets_the_stream():
    """The request still streaming, the backend answered and ended: its further DATA closes
    the stream with a stream error (h2: a connection error; see the module)."""
    conn = _connected()
    conn.send_headers(1, _BLOCK, False)
    conn.send_headers(3, _BLOCK, False)
    conn.data_to_send()
    events = conn.receive_data(_frame(1, 5, 1, _STATUS_200) + _frame(0, 0, 1, b"late"))
    assert events == [(h2_client.RESPONSE, 1, 200, [], True), (h2_client.ENDED, 1),
                      (h2_client.RESET, 1, frames.STREAM_CLOSED)]
    assert conn.data_to_send() == frames.rst_stream_frame(1, frames.STREAM_CLOSED)
    assert conn.open_outbound_streams == 1  # stream 3 goes on
    with pytest.raises(StreamClosed):
        conn.end_stream(1)


def test_a_status_that_is_not_three_digits_is_a_connection_error():
    conn = _connected()
    conn.send_headers(1, _BLOCK, True)
    conn.data_to_send()
    assert _error(conn, _frame(1, 5, 1, b"\x08\x04200x")) == frames.PROTOCOL_ERROR


def test_a_repeated_head_and_trailer_block_is_read_once_each_stream_its_own_fields(monkeypatch):
    """A backend answering every call alike sends the same blocks: the last head and trailers
    read are remembered (the decoder's same list), each stream still gets its own list, and
    the remembered content-length still holds a body to it."""
    reads = []
    for name in ("response_fields", "trailer_fields"):
        def counted(fields, _check=getattr(h2_client, name), _name=name):
            reads.append(_name)
            return _check(fields)
        monkeypatch.setattr(h2_client, name, counted)
    conn = _connected()
    head = _frame(1, 4, 0, _STATUS_200 + _literal(b"content-length", b"2") + _literal(b"x-a", b"1"))
    trailers = _literal(b"grpc-status", b"0")
    got = []
    for stream_id in (1, 3, 5):
        conn.send_headers(stream_id, _BLOCK, True)
        block = head[:5] + stream_id.to_bytes(4, "big") + head[9:]
        got += conn.receive_data(block + _frame(0, 0, stream_id, b"ab") + _frame(1, 5, stream_id, trailers))
    responses = [event for event in got if event[0] == h2_client.RESPONSE]
    ended = [event for event in got if event[0] == h2_client.TRAILERS]
    assert [event[3] for event in responses] == [[(b"content-length", b"2"), (b"x-a", b"1")]] * 3
    assert [event[2] for event in ended] == [[(b"grpc-status", b"0")]] * 3
    assert responses[0][3] is not responses[1][3] and ended[1][2] is not ended[2][2]
    assert reads == ["response_fields", "trailer_fields"]  # the second and third read from the memo
    responses[1][3].clear()  # a stream's list is its own
    conn.send_headers(7, _BLOCK, True)
    block = head[:5] + (7).to_bytes(4, "big") + head[9:]
    events = conn.receive_data(block)
    assert events[0][3] == [(b"content-length", b"2"), (b"x-a", b"1")]
    conn.data_to_send()
    assert _error(conn, _frame(0, 1, 7, b"abc")) == frames.PROTOCOL_ERROR  # the remembered length holds
