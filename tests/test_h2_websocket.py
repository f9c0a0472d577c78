"""WebSocket over HTTP/2 (RFC 8441 Extended CONNECT), in memory: an ``h2`` client talks to
``H2ServerProtocol`` over a ``StringTransport``; the stream is spliced by the real
``proxy.tunnel.Tunnel`` to a fake backend connection. The exchange's side (a wrong
Sec-WebSocket-Accept is a 502) is tested with the exchange fakes of test_exchange."""

from __future__ import annotations

import base64
import hashlib

import h2.events
import h2.settings
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import DataFrame, Frame

from ingressd.http import extended_connect
from ingressd.proxy.tunnel import Tunnel, close_frame

from test_exchange import entry, proxy_for, request, send
from test_http2 import FakeExchange, Pair

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_of(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


class WsExchange(FakeExchange):
    """An exchange that takes the stream's DATA until the backend answers (as ``Exchange``)."""

    def __init__(self, stream, request):
        super().__init__(stream, request)
        self.early = []
        self.wanted = 0

    def wants_tunnel(self):
        self.wanted += 1
        self.stream.divert(self)
        return True

    def client_data(self, data):
        self.early.append(data)


class FakeBackend:
    """``interfaces.UpstreamConnection`` after a 101, as the tunnel uses it."""

    def __init__(self):
        self.sent = b""
        self.closed = False
        self.paused = 0
        self.resumed = 0

    def divert(self, tunnel):
        self.tunnel = tunnel

    def write_raw(self, data):
        self.sent += data

    def pause_reading(self):
        self.paused += 1

    def resume_reading(self):
        self.resumed += 1

    def close(self):
        self.closed = True


class WsPair(Pair):
    def __init__(self, **settings):
        super().__init__(**settings)
        handler = self.server.handler

        def ws_handler(stream, request):
            if request.websocket_key is None:
                return handler(stream, request)
            exchange = WsExchange(stream, request)
            self.exchanges.append(exchange)
            return exchange

        self.server.handler = ws_handler

    def connect(self, path=b"/chat", protocol=b"websocket", headers=(), end=False):
        stream_id = self.client.get_next_available_stream_id()
        block = [(b":method", b"CONNECT"), (b":protocol", protocol), (b":scheme", b"https"),
                 (b":authority", b"ws.test"), (b":path", path), (b"sec-websocket-version", b"13"), *headers]
        self.client.send_headers(stream_id, block, end_stream=end)
        self.send()
        return stream_id

    def tunnel(self, stream_id, backend_headers=None):
        """The backend answers 101: the stream is accepted and spliced to a FakeBackend."""
        exchange = self.exchanges[-1]
        key = exchange.request.websocket_key
        headers = backend_headers if backend_headers is not None else [
            (b"upgrade", b"websocket"), (b"connection", b"upgrade"), (b"sec-websocket-accept", accept_of(key))]
        assert exchange.stream.accept_tunnel(headers)
        backend = FakeBackend()
        closed = []
        tunnel = Tunnel(exchange.stream, backend, self.clock, 60.0, 60.0, on_close=lambda: closed.append(True))
        tunnel.start(exchange.early, b"")
        self.receive()
        return tunnel, backend, closed

    def status(self, stream_id):
        (response,) = self.of(h2.events.ResponseReceived, stream_id)
        return dict(response.headers)


def test_the_server_advertises_extended_connect():
    pair = WsPair()
    (changed,) = pair.of(h2.events.RemoteSettingsChanged)
    setting = changed.changed_settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL]
    assert setting.new_value == 1


def test_extended_connect_becomes_a_websocket_upgrade_request():
    pair = WsPair()
    pair.connect(headers=[(b"sec-websocket-protocol", b"chat"), (b"sec-websocket-key", b"client-chosen"),
                          (b"origin", b"https://ws.test")])
    (exchange,) = pair.exchanges
    request = exchange.request
    assert (request.method, request.target, request.upgrade) == (b"GET", b"/chat", True)
    assert request.complete and not request.has_body and not request.chunked
    fields = request.headers
    assert fields[0] == (b"host", b"ws.test")
    assert (b"upgrade", b"websocket") in fields and (b"sec-websocket-version", b"13") in fields
    assert (b"sec-websocket-protocol", b"chat") in fields and (b"origin", b"https://ws.test") in fields
    keys = [value for name, value in fields if name == b"sec-websocket-key"]
    assert keys == [request.websocket_key] and len(base64.b64decode(keys[0])) == 16  # ours, not the client's
    assert exchange.wanted == 1 and exchange.stream._receiver is exchange
    # Two requests get two keys.
    pair.connect()
    assert pair.exchanges[1].request.websocket_key != request.websocket_key


def test_no_body_timeout_on_a_tunnel_stream():
    pair = WsPair(body_timeout=5)
    stream_id = pair.connect()
    pair.clock.advance(30)
    pair.receive()
    assert not pair.of(h2.events.ResponseReceived, stream_id) and not pair.of(h2.events.StreamReset)


def test_early_data_waits_for_the_backend_then_reaches_it():
    pair = WsPair()
    stream_id = pair.connect()
    pair.client.send_data(stream_id, b"\x81\x02hi")
    pair.send()
    (exchange,) = pair.exchanges
    assert exchange.early == [b"\x81\x02hi"] and exchange.body == []
    _, backend, _ = pair.tunnel(stream_id)
    assert backend.sent == b"\x81\x02hi"


def test_accepted_with_200_and_the_backends_websocket_headers():
    pair = WsPair()
    stream_id = pair.connect()
    key = pair.exchanges[0].request.websocket_key
    pair.tunnel(stream_id, [(b"upgrade", b"websocket"), (b"connection", b"upgrade"),
                            (b"sec-websocket-accept", accept_of(key)), (b"sec-websocket-protocol", b"chat"),
                            (b"sec-websocket-extensions", b"permessage-deflate"), (b"x-stamp", b"101")])
    head = pair.status(stream_id)
    assert head[b":status"] == b"200"
    assert head[b"sec-websocket-protocol"] == b"chat" and head[b"sec-websocket-extensions"] == b"permessage-deflate"
    assert head[b"x-stamp"] == b"101" and b"date" in head  # the client side's Date, as on every answer
    for hidden in (b"upgrade", b"connection", b"sec-websocket-accept"):
        assert hidden not in head
    assert not pair.of(h2.events.StreamEnded, stream_id)


@pytest.mark.parametrize("accept", [None, b"wrong", b"twice"])
def test_a_wrong_accept_is_refused_and_nothing_is_sent(accept):
    pair = WsPair()
    stream_id = pair.connect()
    (exchange,) = pair.exchanges
    key = exchange.request.websocket_key
    headers = [(b"upgrade", b"websocket")]
    if accept == b"twice":
        headers += [(b"sec-websocket-accept", accept_of(key))] * 2
    elif accept is not None:
        headers.append((b"sec-websocket-accept", accept))
    assert exchange.stream.accept_tunnel(headers) is False
    pair.receive()
    assert not pair.of(h2.events.ResponseReceived, stream_id)


def test_data_both_ways_and_other_streams_keep_working():
    pair = WsPair()
    stream_id = pair.connect()
    tunnel, backend, _ = pair.tunnel(stream_id)
    pair.client.send_data(stream_id, b"up-1")
    pair.send()
    tunnel.backend_data(b"down-1")
    pair.receive()
    assert backend.sent == b"up-1" and pair.body(stream_id) == b"down-1"
    # An ordinary request on the same connection is answered while the tunnel is open.
    other = pair.request(b"/plain")
    pair.exchanges[-1].respond(200, body=b"plain")
    pair.receive()
    assert pair.body(other) == b"plain" and pair.status(other)[b":status"] == b"200"
    tunnel.backend_data(b"down-2")
    pair.receive()
    assert pair.body(stream_id) == b"down-1down-2" and tunnel.bytes_up == 4 and tunnel.bytes_down == 12


def test_a_slow_client_pauses_the_backend_until_it_reads():
    pair = WsPair()
    pair.client.local_settings.initial_window_size = 16384  # the client reads slowly
    pair.send()
    stream_id = pair.connect()
    tunnel, backend, _ = pair.tunnel(stream_id)
    for _ in range(20):  # 320 KiB from the backend; the stream's window is 16 KiB
        tunnel.backend_data(b"x" * 16384)
    assert backend.paused == 1 and backend.resumed == 0
    # The client reads (acknowledges) what it got, again and again: the rest follows, then
    # the backend is read again.
    acked = 0
    for _ in range(100):
        pair.receive()
        received = sum(event.flow_controlled_length for event in pair.of(h2.events.DataReceived, stream_id))
        if received == 20 * 16384:
            break
        if received > acked:
            pair.client.acknowledge_received_data(received - acked, stream_id)
            acked = received
            pair.send()
    assert len(pair.body(stream_id)) == 20 * 16384 and backend.resumed == 1


def test_a_slow_backend_stops_the_clients_window():
    pair = WsPair()
    stream_id = pair.connect()
    tunnel, backend, _ = pair.tunnel(stream_id)
    tunnel.backend_paused()  # the backend does not read: its socket pushes back
    window = pair.client.local_flow_control_window(stream_id)
    pair.send_body(stream_id, b"y" * window)
    assert pair.client.local_flow_control_window(stream_id) == 0  # nothing acknowledged
    assert len(backend.sent) == window  # relayed; it is the backend's socket that holds them
    tunnel.backend_resumed()
    pair.receive()
    assert pair.client.local_flow_control_window(stream_id) == window


def test_client_end_stream_closes_the_tunnel_and_ends_ours():
    pair = WsPair()
    stream_id = pair.connect()
    _, backend, closed = pair.tunnel(stream_id)
    pair.client.end_stream(stream_id)
    pair.send()
    assert backend.closed and closed == [True]
    assert pair.of(h2.events.StreamEnded, stream_id) and not pair.of(h2.events.StreamReset, stream_id)
    assert stream_id not in pair.server.streams


def test_client_reset_closes_the_backend():
    pair = WsPair()
    stream_id = pair.connect()
    _, backend, closed = pair.tunnel(stream_id)
    pair.client.reset_stream(stream_id, ErrorCodes.CANCEL)
    pair.send()
    assert backend.closed and closed == [True] and stream_id not in pair.server.streams


def test_backend_close_ends_the_stream_after_its_last_bytes():
    pair = WsPair()
    stream_id = pair.connect()
    tunnel, backend, closed = pair.tunnel(stream_id)
    tunnel.backend_data(b"\x88\x02\x03\xe8")  # the backend's close frame, then its FIN
    tunnel.backend_lost()
    pair.receive()
    assert pair.body(stream_id) == b"\x88\x02\x03\xe8" and pair.of(h2.events.StreamEnded, stream_id)
    assert closed == [True]
    # The client's own END_STREAM completes the close; the stream is forgotten.
    pair.client.end_stream(stream_id)
    pair.send()
    assert stream_id not in pair.server.streams


def test_end_stream_before_the_backend_answers_abandons_the_request():
    pair = WsPair()
    stream_id = pair.connect()
    (exchange,) = pair.exchanges
    pair.client.end_stream(stream_id)
    pair.send()
    assert exchange.lost and stream_id not in pair.server.streams
    (reset,) = pair.of(h2.events.StreamReset, stream_id)
    assert reset.error_code == ErrorCodes.CANCEL


def test_a_refused_upgrade_is_an_ordinary_answer():
    pair = WsPair()
    stream_id = pair.connect(b"/refuse")
    pair.exchanges[0].respond(403, [(b"content-type", b"text/plain")], b"refused by backend")
    pair.receive()
    assert pair.status(stream_id)[b":status"] == b"403" and pair.body(stream_id) == b"refused by backend"
    assert pair.of(h2.events.StreamEnded, stream_id)


def test_shutting_down_says_going_away_to_both_sides():
    pair = WsPair()
    stream_id = pair.connect()
    _, backend, closed = pair.tunnel(stream_id)
    pair.server.shut()
    # Read the frames ourselves: the h2 client takes a GOAWAY as the end of everything.
    data, ended = _frames(pair.transport.value(), stream_id)
    assert data == close_frame(1001) and ended
    assert backend.sent[:2] == b"\x88\x82" and backend.closed and closed == [True]
    assert pair.transport.disconnecting


def _frames(raw: bytes, stream_id: int) -> tuple[bytes, bool]:
    """The DATA sent on ``stream_id`` in ``raw`` frames, and whether one ended the stream."""
    data, ended = b"", False
    while len(raw) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(raw[:9]))
        frame.parse_body(memoryview(raw[9:9 + length]))
        raw = raw[9 + length:]
        if frame.stream_id == stream_id and isinstance(frame, DataFrame):
            data += frame.data
            ended = ended or "END_STREAM" in frame.flags
    return data, ended


def test_connection_lost_closes_the_tunnel():
    pair = WsPair()
    stream_id = pair.connect()
    _, backend, closed = pair.tunnel(stream_id)
    pair.server.connectionLost(None)
    assert backend.closed and closed == [True]


@pytest.mark.parametrize("block", [
    [(b":method", b"CONNECT"), (b":authority", b"example.com:443")],  # plain CONNECT: nginx says 400
    [(b":method", b"CONNECT"), (b":protocol", b"connect-udp"), (b":scheme", b"https"),
     (b":authority", b"example.com"), (b":path", b"/udp")],
])
def test_other_connects_are_400(block):
    pair = WsPair()
    stream_id = pair.client.get_next_available_stream_id()
    pair.client.send_headers(stream_id, block)
    pair.send()
    assert pair.status(stream_id)[b":status"] == b"400" and not pair.exchanges


def test_websocket_connect_with_a_content_length_is_400():
    pair = WsPair()
    stream_id = pair.connect(headers=[(b"content-length", b"5")])
    assert pair.status(stream_id)[b":status"] == b"400" and not pair.exchanges


def test_websocket_connect_that_ends_its_stream_is_400():
    pair = WsPair()
    stream_id = pair.connect(end=True)
    assert pair.status(stream_id)[b":status"] == b"400" and not pair.exchanges


# -- the exchange: the client side's word on the handshake -------------------------------------


def test_a_handshake_the_client_side_refuses_is_a_502():
    proxy, pool, finished = proxy_for(entry())
    req = request(headers=[(b"upgrade", b"websocket"), (b"connection", b"Upgrade")])
    req.upgrade = True
    client, exchange = send(proxy, req)
    client.tunnel_accepted = False
    assert exchange.wants_tunnel()
    connection = pool.connect()
    connection.response_headers = [(b"upgrade", b"websocket"), (b"sec-websocket-accept", b"wrong")]
    exchange.upstream_upgraded(connection, b"")
    assert client.head[0] == 502 and exchange.error_cause == "invalid_upgrade"
    assert connection.aborted and proxy.tunnels_open == 0 and finished == [exchange] and client.raw == b""


def test_accept_helpers_follow_rfc_6455():
    # RFC 6455 1.3's own example.
    assert extended_connect.accept_for(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert extended_connect.accepted_head([(b"sec-websocket-accept", b" s3pPLMBiTxaQ9kYGzzhZRbK+xOo= "),
                                           (b"x", b"1")], b"dGhlIHNhbXBsZSBub25jZQ==") == [(b"x", b"1")]


def test_not_offered_with_no_http2_websocket(monkeypatch):
    import functools

    import test_http2
    from ingressd.http.http2 import H2ServerProtocol

    monkeypatch.setattr(test_http2, "H2ServerProtocol", functools.partial(H2ServerProtocol, websocket=False))
    pair = WsPair()
    assert pair.client.remote_settings.enable_connect_protocol == 0
    stream_id = pair.connect()
    assert pair.status(stream_id)[b":status"] == b"400" and not pair.exchanges


@pytest.mark.parametrize("offered", [True, False])
def test_the_https_factory_passes_the_choice_to_each_h2_connection(offered):
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    import h2.config
    import h2.connection
    from ingressd.http.http1 import HTTP1Factory
    from ingressd.http.http2 import HTTPSFactory

    factory = HTTPSFactory(HTTP1Factory(lambda p, r: None, clock=Clock()), websocket=offered)
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    transport.negotiatedProtocol = b"h2"
    protocol.makeConnection(transport)
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    protocol.dataReceived(client.data_to_send())
    client.receive_data(transport.value())
    assert client.remote_settings.enable_connect_protocol == int(offered)


def test_an_idle_tunnel_ends_its_stream_after_the_read_timeout():
    pair = WsPair()
    stream_id = pair.connect()
    _, backend, closed = pair.tunnel(stream_id)  # read and send timeouts: 60 s
    pair.clock.advance(59)
    pair.receive()
    assert not pair.of(h2.events.StreamEnded, stream_id) and not backend.closed
    pair.clock.advance(2)
    pair.receive()
    assert pair.of(h2.events.StreamEnded, stream_id) and backend.closed and closed == [True]
    assert not pair.of(h2.events.StreamReset, stream_id)
