"""The HTTP/2 upstream protocol (``proxy/h2_upstream.py``) against an in-memory h2 server:
no sockets, a clock that only moves when told, every frame exchanged by hand."""

from __future__ import annotations

import struct

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame
from twisted.internet.testing import MemoryReactorClock, StringTransport

from ingressd.features import UpstreamSettings
from ingressd.proxy import grpc_status, h2_upstream
from ingressd.proxy.h2_upstream import H2Upstream, grpc_timeout
from ingressd.proxy.upstream import STREAMED

SETTINGS = UpstreamSettings(connect_timeout=5.0, protocol="GRPC")


class Client:
    def cork(self):
        pass

    def uncork(self):
        pass


class FakeExchange:
    def __init__(self):
        self.protocol = Client()
        self.events: list = []
        self.body = b""
        self.paused = 0
        self.resumed = 0

    def upstream_head(self, connection, status, headers, length):
        self.events.append(("head", status, list(headers)))

    def upstream_body(self, data):
        self.body += data

    def upstream_trailers(self, trailers):
        self.events.append(("trailers", list(trailers)))

    def upstream_done(self, connection, reusable):
        self.events.append(("done", reusable))
        connection.release()

    def upstream_failed(self, connection, error):
        self.events.append(("failed", error.cause, error.retryable, error.timeout))

    def upstream_write_paused(self):
        self.paused += 1

    def upstream_write_resumed(self):
        self.resumed += 1

    def kinds(self):
        return [event[0] for event in self.events]


class Backend:
    """One in-memory HTTP/2 server connection, joined to the client protocol by hand."""

    def __init__(self, protocol, max_streams=100, window=65535):
        self.protocol = protocol
        self.transport = StringTransport()
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.h2.initiate_connection()
        self.events: list = []
        protocol.makeConnection(self.transport)

    def pump(self, rounds=4):
        for _ in range(rounds):
            sent = self.transport.value()
            self.transport.clear()
            if sent:
                self.events.extend(self.h2.receive_data(sent))
            back = self.h2.data_to_send()
            if back:
                self.protocol.dataReceived(back)
            if not sent and not back:
                return

    def requests(self):
        return [e for e in self.events if isinstance(e, h2.events.RequestReceived)]

    def respond(self, stream_id, data=b"", trailers=None, headers=((b"content-type", b"application/grpc"),)):
        self.h2.send_headers(stream_id, [(b":status", b"200"), *headers])
        if data:
            self.h2.send_data(stream_id, data)
        if trailers is not None:
            self.h2.send_headers(stream_id, trailers, end_stream=True)
        elif data is not None:
            self.h2.end_stream(stream_id)
        self.pump()


def setup():
    clock = MemoryReactorClock()
    return clock, H2Upstream(clock)


def connect(clock, upstream, **backend):
    host, port, factory, *_ = clock.tcpClients[-1]
    protocol = factory.buildProtocol(None)
    server = Backend(protocol, **backend)
    server.pump()
    return server


def test_a_unary_call_with_trailers():
    clock, upstream = setup()
    exchange = FakeExchange()
    upstream.acquire("127.0.0.1", 50051, SETTINGS, lambda s: s.start(
        exchange, b"POST", b"/pkg.Svc/Call", [(b"host", b"grpc.test"), (b"content-type", b"application/grpc"),
                                              (b"te", b"trailers"), (b"x-meta", b"1")], STREAMED, 60.0, 60.0),
        lambda e: None)
    server = connect(clock, upstream)
    (request,) = server.requests()
    sent = dict(request.headers)
    assert sent[b":authority"] == b"grpc.test" and sent[b":scheme"] == b"http" and sent[b":method"] == b"POST"
    assert sent[b":path"] == b"/pkg.Svc/Call" and sent[b"te"] == b"trailers" and sent[b"x-meta"] == b"1"
    assert b"host" not in sent
    server.respond(1, b"\0\0\0\0\2hi", trailers=[(b"grpc-status", b"0"), (b"x-trailing", b"yes")])
    assert exchange.kinds() == ["head", "trailers", "done"]
    assert exchange.body == b"\0\0\0\0\2hi"
    assert exchange.events[1] == ("trailers", [(b"grpc-status", b"0"), (b"x-trailing", b"yes")])


def test_a_trailers_only_answer_becomes_a_head_and_trailers():
    clock, upstream = setup()
    exchange = FakeExchange()
    upstream.acquire("127.0.0.1", 50051, SETTINGS, lambda s: s.start(
        exchange, b"POST", b"/x", [(b"host", b"h")], None, 60.0, 60.0), lambda e: None)
    server = connect(clock, upstream)
    server.h2.send_headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc"),
                               (b"grpc-status", b"5"), (b"grpc-message", b"nope"), (b"x-reason", b"r")],
                           end_stream=True)
    server.pump()
    assert exchange.events == [("head", 200, [(b"content-type", b"application/grpc")]),
                               ("trailers", [(b"grpc-status", b"5"), (b"grpc-message", b"nope"), (b"x-reason", b"r")]),
                               ("done", True)]


def test_streams_share_a_connection_until_the_backend_limit_then_a_new_one():
    clock, upstream = setup()
    first = FakeExchange()
    upstream.acquire("127.0.0.1", 50051, SETTINGS, lambda s: s.start(
        first, b"POST", b"/x", [(b"host", b"h")], STREAMED, 60.0, 60.0), lambda e: None)
    server = connect(clock, upstream, max_streams=2)
    assert len(clock.tcpClients) == 1
    exchanges = [FakeExchange() for _ in range(2)]
    for exchange in exchanges:
        upstream.acquire("127.0.0.1", 50051, SETTINGS, lambda s, e=exchange: s.start(
            e, b"POST", b"/x", [(b"host", b"h")], STREAMED, 60.0, 60.0), lambda e: None)
    server.pump()
    # The backend takes 2 streams at once: the third call needed a second connection.
    assert len(server.requests()) == 2
    assert len(clock.tcpClients) == 2
    second = connect(clock, upstream)
    assert len(second.requests()) == 1
    assert upstream.connection_count() == 2


def test_a_stream_waits_for_room_when_the_backend_lowers_its_limit():
    clock, upstream = setup()
    exchanges = [FakeExchange() for _ in range(3)]
    streams = []
    for exchange in exchanges:
        upstream.acquire("127.0.0.1", 50051, SETTINGS, streams.append, lambda e: None)
    server = connect(clock, upstream, max_streams=1)  # three were promised before its SETTINGS came
    for stream, exchange in zip(streams, exchanges):
        stream.start(exchange, b"POST", b"/x", [(b"host", b"h")], None, 60.0, 60.0)
    server.pump()
    assert len(server.requests()) == 1
    server.respond(1, b"a")
    assert exchanges[0].kinds() == ["head", "done"]
    assert len(server.requests()) == 2  # the next one opened when the first closed
    server.respond(3, b"b")
    server.respond(5, b"c")
    assert [e.body for e in exchanges] == [b"a", b"b", b"c"]


def test_goaway_fails_the_streams_above_its_last_id_and_lets_the_others_finish():
    clock, upstream = setup()
    exchanges = [FakeExchange() for _ in range(2)]
    for exchange in exchanges:
        upstream.acquire("127.0.0.1", 50051, SETTINGS, lambda s, e=exchange: s.start(
            e, b"POST", b"/x", [(b"host", b"h")], None, 60.0, 60.0), lambda e: None)
    server = connect(clock, upstream)
    assert len(server.requests()) == 2
    goaway = GoAwayFrame(0)
    goaway.last_stream_id = 1
    goaway.error_code = ErrorCodes.NO_ERROR
    server.protocol.dataReceived(goaway.serialize())
    assert exchanges[1].events == [("failed", "backend_closed", True, False)]
    server.respond(1, b"ok", trailers=[(b"grpc-status", b"0")])  # stream 1 still answered
    assert exchanges[0].kinds() == ["head", "trailers", "done"]
    assert server.transport.disconnecting  # nothing left on a going-away connection
    third = FakeExchange()
    upstream.acquire("127.0.0.1", 50051, SETTINGS, lambda s: s.start(
        third, b"POST", b"/x", [(b"host", b"h")], None, 60.0, 60.0), lambda e: None)
    assert len(clock.tcpClients) == 2  # a new connection, never a new stream on that one


def test_an_answer_before_the_request_body_ended_closes_our_half_of_the_stream():
    clock, upstream = setup()
    exchange = FakeExchange()
    streams = []
    upstream.acquire("127.0.0.1", 50051, SETTINGS, streams.append, lambda e: None)
    server = connect(clock, upstream)
    streams[0].start(exchange, b"POST", b"/x", [(b"host", b"h")], STREAMED, 60.0, 60.0)
    streams[0].send_body(b"part")
    server.pump()
    server.respond(1, b"", trailers=[(b"grpc-status", b"3")])  # answered while the client streams
    assert exchange.kinds() == ["head", "trailers", "done"]
    server.pump()
    assert any(isinstance(e, h2.events.StreamEnded) and e.stream_id == 1 for e in server.events)
    assert streams[0].connection.h2.open_outbound_streams == 0  # nothing left counting against the limit


def test_a_stream_handed_out_but_never_started_gives_its_room_back():
    clock, upstream = setup()
    streams = []
    upstream.acquire("127.0.0.1", 50051, SETTINGS, streams.append, lambda e: None)
    server = connect(clock, upstream, max_streams=2)
    connection = streams[0].connection
    upstream.acquire("127.0.0.1", 50051, SETTINGS, streams.append, lambda e: None)
    assert len(streams) == 2 and connection.room() == 0
    streams[0].release()  # the exchange was over before it could start (client gone)
    streams[1].abort()
    assert connection.room() == 2 and not server.transport.disconnecting


def _frame(kind: int, payload: bytes, stream_id: int = 0, flags: int = 0) -> bytes:
    return struct.pack("!I", len(payload))[1:] + bytes((kind, flags)) + struct.pack("!I", stream_id) + payload


def test_frames_go_to_h2_once_per_read():
    """A read of a unary call's answer (HEADERS, DATA, trailers) costs one ``receive_data``."""
    calls = []

    class _H2:
        def receive_data(self, data):
            calls.append(data)
            return []

        def data_to_send(self):
            return b""

    connection = h2_upstream.H2Connection.__new__(h2_upstream.H2Connection)
    connection.h2 = _H2()
    connection.streams = {}
    connection.connected = False
    data = _frame(0x1, b"\x88", 1, 0x4) + _frame(0x0, b"\0\0\0\0\0", 1) + _frame(0x1, b"\x40", 1, 0x5)
    connection.dataReceived(data)
    assert calls == [data]


def test_a_slow_client_keeps_the_backend_window_closed():
    clock, upstream = setup()
    exchange = FakeExchange()
    streams = []
    upstream.acquire("127.0.0.1", 50051, SETTINGS, streams.append, lambda e: None)
    server = connect(clock, upstream)
    (stream,) = streams
    stream.start(exchange, b"POST", b"/x", [(b"host", b"h")], None, 60.0, 60.0)
    server.pump()
    server.h2.send_headers(1, [(b":status", b"200")])
    stream.pause_reading()
    window = server.h2.local_flow_control_window(1)
    sent = 0
    while server.h2.local_flow_control_window(1) > 0:  # bounded by the window
        piece = b"x" * min(16384, server.h2.local_flow_control_window(1))
        server.h2.send_data(1, piece)
        sent += len(piece)
    server.pump()
    assert sent == window and len(exchange.body) == window
    assert server.h2.local_flow_control_window(1) == 0  # nothing acknowledged while paused
    stream.resume_reading()
    server.pump()
    assert server.h2.local_flow_control_window(1) > 0


def test_a_slow_backend_pauses_the_request_body_and_resumes_it():
    clock, upstream = setup()
    exchange = FakeExchange()
    streams = []
    upstream.acquire("127.0.0.1", 50051, SETTINGS, streams.append, lambda e: None)
    server = connect(clock, upstream, window=16384)
    (stream,) = streams
    stream.start(exchange, b"POST", b"/x", [(b"host", b"h")], STREAMED, 60.0, 60.0)
    for _ in range(40):
        stream.send_body(b"y" * 10000)
    server.pump()
    assert exchange.paused == 1 and exchange.resumed == 0
    received = sum(len(e.data) for e in server.events if isinstance(e, h2.events.DataReceived))
    assert received == 16384  # the backend's window, no more
    for _ in range(100):  # the backend reads: acknowledge as it goes (bounded)
        for event in [e for e in server.events if isinstance(e, h2.events.DataReceived)]:
            server.h2.acknowledge_received_data(event.flow_controlled_length, 1)
        server.events.clear()
        server.pump()
        if exchange.resumed:
            break
    assert exchange.resumed == 1


def test_grpc_timeout_resets_the_backend_stream():
    clock, upstream = setup()
    exchange = FakeExchange()
    upstream.acquire("127.0.0.1", 50051, SETTINGS, lambda s: s.start(
        exchange, b"POST", b"/x", [(b"host", b"h"), (b"grpc-timeout", b"250m")], None, 60.0, 60.0),
        lambda e: None)
    server = connect(clock, upstream)
    clock.advance(0.2)
    assert exchange.events == []
    clock.advance(0.1)
    assert exchange.events == [("failed", "grpc_deadline", False, True)]
    server.pump()
    assert any(isinstance(e, h2.events.StreamReset) and e.error_code == ErrorCodes.CANCEL for e in server.events)


def test_an_aborted_stream_is_reset_and_the_connection_kept():
    clock, upstream = setup()
    exchange = FakeExchange()
    streams = []
    upstream.acquire("127.0.0.1", 50051, SETTINGS, streams.append, lambda e: None)
    server = connect(clock, upstream)
    streams[0].start(exchange, b"POST", b"/x", [(b"host", b"h")], STREAMED, 60.0, 60.0)
    streams[0].abort()
    server.pump()
    assert any(isinstance(e, h2.events.StreamReset) for e in server.events)
    assert not server.transport.disconnecting and upstream.connection_count() == 1


def test_a_failed_connect_fails_every_waiting_call_retryably():
    clock, upstream = setup()
    errors = []
    for _ in range(3):
        upstream.acquire("127.0.0.1", 50051, SETTINGS, lambda s: None, errors.append)
    assert len(clock.tcpClients) == 1  # one connection being opened serves all three
    factory = clock.tcpClients[0][2]
    from twisted.internet.error import ConnectionRefusedError
    from twisted.python.failure import Failure
    factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
    assert [(e.cause, e.retryable) for e in errors] == [("connect_failed", True)] * 3


@pytest.mark.parametrize("value, seconds", [
    (b"1H", 3600.0), (b"2M", 120.0), (b"3S", 3.0), (b"250m", 0.25), (b"5u", 5e-6), (b"7n", 7e-9),
    (b"", None), (b"10", None), (b"x5S", None), (b"123456789S", None), (b"1s", None), (None, None),
])
def test_grpc_timeout_values(value, seconds):
    assert grpc_timeout(value) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize("status, cause, code", [
    (502, "connect_failed", 14), (503, "no_endpoints", 14), (504, "read_timeout", 14), (429, "", 14),
    (504, "grpc_deadline", 4), (401, "", 16), (403, "", 7), (404, "", 12), (400, "", 13), (413, "", 2), (500, "", 2),
])
def test_http_errors_become_the_grpc_status_a_client_would_derive(status, cause, code):
    assert grpc_status.of_http(status, cause)[0] == code


def test_the_fields_sent_keep_their_order_without_the_ones_http2_forbids():
    """``start``'s filter: host becomes the :authority (the last one), connection-specific
    fields and content-length are left out, grpc-timeout and the rest pass in their order."""
    clock, upstream = setup()
    exchange = FakeExchange()
    fields = [(b"x-first", b"1"), (b"host", b"old.test"), (b"connection", b"close"), (b"grpc-timeout", b"5S"),
              (b"keep-alive", b"5"), (b"proxy-connection", b"x"), (b"transfer-encoding", b"chunked"),
              (b"upgrade", b"h2c"), (b"te", b"gzip"), (b"http2-settings", b"AAA"), (b"content-length", b"9"),
              (b"host", b"grpc.test"), (b"x-last", b"2")]
    upstream.acquire("127.0.0.1", 50051, SETTINGS, lambda s: s.start(
        exchange, b"POST", b"/pkg.Svc/Call", fields, STREAMED, 60.0, 60.0), lambda e: None)
    server = connect(clock, upstream)
    (request,) = server.requests()
    assert list(request.headers) == [
        (b":method", b"POST"), (b":authority", b"grpc.test"), (b":scheme", b"http"), (b":path", b"/pkg.Svc/Call"),
        (b"x-first", b"1"), (b"grpc-timeout", b"5S"), (b"x-last", b"2"), (b"te", b"trailers")]


class _CountingClient(Client):
    """A client that counts its corks: how deep it is corked, and the corks taken in all."""

    def __init__(self):
        self.depth = 0
        self.corks = 0

    def cork(self):
        self.depth += 1
        self.corks += 1

    def uncork(self):
        self.depth -= 1


class _CorkWatchingExchange(FakeExchange):
    """Notes how deep its client was corked at each part of the answer."""

    def __init__(self):
        super().__init__()
        self.protocol = _CountingClient()
        self.depths: list = []

    def upstream_head(self, connection, status, headers, length):
        self.depths.append(("head", self.protocol.depth))
        super().upstream_head(connection, status, headers, length)

    def upstream_body(self, data):
        self.depths.append(("body", self.protocol.depth))
        super().upstream_body(data)

    def upstream_trailers(self, trailers):
        self.depths.append(("trailers", self.protocol.depth))
        super().upstream_trailers(trailers)

    def upstream_done(self, connection, reusable):
        self.depths.append(("done", self.protocol.depth))
        super().upstream_done(connection, reusable)


def test_a_read_answer_reaches_the_client_corked_throughout_with_one_cork():
    """A backend read's answer (head, message, trailers, end) is relayed with the client corked
    for the whole read (its frames leave in one write at the uncork): the message too, without
    a cork of its own inside the read's."""
    clock, upstream = setup()
    exchange = _CorkWatchingExchange()
    upstream.acquire("127.0.0.1", 50051, SETTINGS, lambda s: s.start(
        exchange, b"POST", b"/pkg.Svc/Call", [(b"host", b"grpc.test"), (b"content-type", b"application/grpc")],
        STREAMED, 60.0, 60.0), lambda e: None)
    server = connect(clock, upstream)
    server.respond(1, b"\0\0\0\0\2hi", trailers=[(b"grpc-status", b"0")])
    assert exchange.depths == [("head", 1), ("body", 1), ("trailers", 1), ("done", 1)]
    assert exchange.protocol.depth == 0 and exchange.protocol.corks == 1
    assert exchange.body == b"\0\0\0\0\2hi"


def test_a_message_relayed_outside_a_read_is_corked_around_itself():
    """``data`` called with the client not held (outside a connection's read) corks it itself."""
    clock, upstream = setup()
    exchange = _CorkWatchingExchange()
    streams = []
    upstream.acquire("127.0.0.1", 50051, SETTINGS, lambda s: (streams.append(s), s.start(
        exchange, b"POST", b"/pkg.Svc/Call", [(b"host", b"grpc.test")], STREAMED, 60.0, 60.0)),
        lambda e: None)
    server = connect(clock, upstream)
    server.respond(1, None)  # the head alone, the stream left open
    (stream,) = streams
    stream.data(b"\0\0\0\0\2hi", 7)
    assert exchange.depths[-1] == ("body", 1) and exchange.protocol.depth == 0
