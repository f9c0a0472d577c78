"""The client-side HTTP/2 protocol, in memory: an ``h2`` client talks to ``H2ServerProtocol``
over a ``StringTransport``, with a fake handler standing in for ``proxy.Exchange``."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
from h2.errors import ErrorCodes
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.http.http1 import HTTP1Factory, ServerSettings
from ingressd.http.http2 import H2ServerProtocol, HTTPSFactory


class FakeExchange:
    """Records what the protocol calls; the test drives the response through ``stream``."""

    def __init__(self, stream, request):
        self.stream = stream
        self.request = request
        self.body = []
        self.done = False
        self.lost = False
        self.paused = 0
        self.resumed = 0

    def body_data(self, data):
        self.body.append(data)

    def body_done(self):
        self.done = True

    def client_lost(self):
        self.lost = True

    def client_side_answered(self, status, bytes_sent):
        self.lost = True
        self.answered = status

    def client_paused(self):
        self.paused += 1

    def client_resumed(self):
        self.resumed += 1

    def respond(self, status=200, headers=(), body=b"ok"):
        self.stream.write_head(status, list(headers), len(body) if body is not None else None)
        if body:
            self.stream.write_body(body)
        self.stream.finish_response()


class Pair:
    def __init__(self, **settings):
        self.exchanges: list[FakeExchange] = []
        self.clock = Clock()

        def handler(stream, request):
            exchange = FakeExchange(stream, request)
            self.exchanges.append(exchange)
            return exchange

        self.server = H2ServerProtocol(ServerSettings(**settings), handler, self.clock)
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.9", 5555),
                                         hostAddress=IPv4Address("TCP", "127.0.0.1", 8443))
        self.server.makeConnection(self.transport)
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.client.initiate_connection()
        self.events: list = []
        self.send()

    def send(self):
        data = self.client.data_to_send()
        if data:
            self.server.dataReceived(data)
        self.receive()

    def receive(self):
        data = self.transport.value()
        self.transport.clear()
        if data:
            self.events.extend(self.client.receive_data(data))
            more = self.client.data_to_send()
            if more:
                self.server.dataReceived(more)
                self.receive()

    def request(self, path=b"/", method=b"GET", headers=(), end=True, authority=b"example.com"):
        stream_id = self.client.get_next_available_stream_id()
        self.client.send_headers(stream_id, [(b":method", method), (b":scheme", b"https"),
                                             (b":authority", authority), (b":path", path), *headers],
                                 end_stream=end)
        self.send()
        return stream_id

    def send_body(self, stream_id, data, end=False):
        for at in range(0, len(data), 16384):
            self.client.send_data(stream_id, data[at:at + 16384],
                                  end_stream=end and at + 16384 >= len(data))
        self.send()

    def of(self, kind, stream_id=None):
        return [e for e in self.events if isinstance(e, kind) and (stream_id is None or e.stream_id == stream_id)]

    def body(self, stream_id):
        return b"".join(e.data for e in self.of(h2.events.DataReceived, stream_id))


def test_request_shape_matches_http1():
    pair = Pair()
    pair.request(b"/a?b=1", headers=[(b"cookie", b"x=1"), (b"cookie", b"y=2"), (b"accept", b"*/*")])
    (exchange,) = pair.exchanges
    request = exchange.request
    assert (request.method, request.target, request.version) == (b"GET", b"/a?b=1", b"2")
    assert request.headers[0] == (b"host", b"example.com")
    assert (b"cookie", b"x=1; y=2") in request.headers
    assert not any(name.startswith(b":") for name, _ in request.headers)
    assert request.complete and not request.has_body and not request.upgrade and not request.chunked
    assert exchange.done  # END_STREAM on the HEADERS frame
    stream = exchange.stream
    assert (stream.peer_ip, stream.server_port, stream.scheme) == ("10.0.0.9", 8443, "https")


def test_body_without_length_is_chunked_upstream():
    pair = Pair()
    stream_id = pair.request(b"/up", method=b"POST", end=False)
    (exchange,) = pair.exchanges
    assert exchange.request.chunked and exchange.request.content_length is None
    pair.client.send_data(stream_id, b"hello ")
    pair.client.send_data(stream_id, b"world", end_stream=True)
    pair.send()
    assert b"".join(exchange.body) == b"hello world" and exchange.done
    assert exchange.request.complete


def test_body_with_length_is_not_chunked():
    pair = Pair()
    pair.request(b"/up", method=b"POST", end=False, headers=[(b"content-length", b"5")])
    assert pair.exchanges[0].request.content_length == 5
    assert not pair.exchanges[0].request.chunked


def test_response_headers_lower_case_without_connection_headers():
    pair = Pair()
    stream_id = pair.request()
    pair.exchanges[0].respond(200, [(b"X-Up", b"1"), (b"connection", b"close"), (b"keep-alive", b"5"),
                                    (b"transfer-encoding", b"chunked"), (b"upgrade", b"h2c")], b"hello")
    pair.receive()
    (response,) = pair.of(h2.events.ResponseReceived, stream_id)
    assert response.headers == [(b":status", b"200"), (b"x-up", b"1"), (b"content-length", b"5"),
                                (b"date", b"Thu, 01 Jan 1970 00:00:00 GMT")]
    assert pair.body(stream_id) == b"hello"
    assert pair.of(h2.events.StreamEnded, stream_id)


def test_send_respects_the_window_and_pauses_the_backend():
    pair = Pair()
    stream_id = pair.request(b"/big")
    exchange = pair.exchanges[0]
    exchange.stream.write_head(200, [], None)
    chunk = b"x" * 65536
    for _ in range(6):  # 384 KiB: more than the 64 KiB window and the buffer's high mark
        exchange.stream.write_body(chunk)
    pair.receive()
    assert len(pair.body(stream_id)) == 65535  # the client's initial window, not one byte more
    assert exchange.paused == 1 and exchange.resumed == 0
    # The client reads: windows open, the rest flows and the backend is resumed.
    received = 65535
    for _ in range(20):
        pair.client.acknowledge_received_data(received, stream_id)
        before = len(pair.body(stream_id))
        pair.send()
        received = len(pair.body(stream_id)) - before
        if not received:
            break
    assert len(pair.body(stream_id)) == 6 * 65536
    assert exchange.resumed == 1


def test_window_updates_of_one_read_release_every_blocked_stream():
    """A read with several WINDOW_UPDATEs (the streams' and the connection's, as grpcio sends
    them) walks the streams once: every stream held back by a window still gets its frames."""
    pair = Pair()
    first, second = pair.request(b"/a"), pair.request(b"/b")
    for exchange, size in zip(pair.exchanges, (70000, 30000)):
        exchange.stream.write_head(200, [], None)
        exchange.stream.write_body(b"x" * size)
        exchange.stream.finish_response()
    pair.receive()
    # the first stream took its window and the connection's (65,535): the second got nothing
    assert (len(pair.body(first)), len(pair.body(second))) == (65535, 0)
    # one read: a WINDOW_UPDATE on the second stream, one on the first, the connection's
    pair.client.increment_flow_control_window(10, stream_id=second)
    pair.client.increment_flow_control_window(10000, stream_id=first)
    pair.client.increment_flow_control_window(40000)
    pair.send()
    assert (len(pair.body(first)), len(pair.body(second))) == (70000, 30000)
    assert pair.of(h2.events.StreamEnded, first) and pair.of(h2.events.StreamEnded, second)


def test_request_body_window_reopens_only_when_reading_resumes():
    pair = Pair()
    stream_id = pair.request(b"/up", method=b"POST", end=False)
    exchange = pair.exchanges[0]
    exchange.stream.pause_reading()  # e.g. the backend is slow to take the body
    pair.send_body(stream_id, b"y" * 65535)
    assert pair.client.local_flow_control_window(stream_id) == 0
    exchange.stream.resume_reading()
    pair.receive()
    assert pair.client.local_flow_control_window(stream_id) > 0


def test_client_reset_abandons_the_exchange():
    pair = Pair()
    stream_id = pair.request(b"/slow")
    pair.client.reset_stream(stream_id, ErrorCodes.CANCEL)
    pair.send()
    exchange = pair.exchanges[0]
    assert exchange.lost and exchange.stream.closed
    assert not pair.server.streams


def test_connection_lost_abandons_every_exchange():
    pair = Pair()
    pair.request(b"/1")
    pair.request(b"/2")
    pair.server.connectionLost(None)
    assert all(exchange.lost for exchange in pair.exchanges)


def test_abort_resets_the_stream():
    pair = Pair()
    stream_id = pair.request()
    stream = pair.exchanges[0].stream
    stream.write_head(200, [], 100)
    stream.write_body(b"partial")
    stream.abort()
    pair.receive()
    (reset,) = pair.of(h2.events.StreamReset, stream_id)
    assert reset.error_code == ErrorCodes.INTERNAL_ERROR
    assert not pair.exchanges[0].lost  # the Exchange aborted itself


def test_early_answer_drains_the_body_then_ends():
    pair = Pair()
    stream_id = pair.request(b"/up", method=b"POST", end=False, headers=[(b"content-length", b"70000")])
    pair.exchanges[0].respond(413, [], b"too big")
    pair.receive()
    assert pair.of(h2.events.StreamEnded, stream_id)
    assert not pair.of(h2.events.StreamReset, stream_id)  # curl 7.x fails on an immediate reset
    pair.send_body(stream_id, b"z" * 60000)
    assert not pair.exchanges[0].body  # dropped, but acknowledged
    pair.send_body(stream_id, b"z" * 10000, end=True)
    assert not pair.server.streams


def test_a_header_block_beyond_large_client_header_buffers_ends_the_connection_as_nginx():
    """nginx: a name or value longer than one buffer, or all of them together longer than the
    buffers, is a connection error (GOAWAY ENHANCE_YOUR_CALM); nothing reaches a backend."""
    pair = Pair(header_buffers=(2, 100))
    pair.request(b"/", headers=[(b"x-big", b"v" * 101)])
    (ended,) = pair.of(h2.events.ConnectionTerminated)
    assert ended.error_code == ErrorCodes.ENHANCE_YOUR_CALM and not pair.exchanges
    pair = Pair(header_buffers=(2, 100))
    pair.request(b"/" + b"a" * 101)
    assert pair.of(h2.events.ConnectionTerminated) and not pair.exchanges
    pair = Pair(header_buffers=(2, 100))
    pair.request(b"/", headers=[(b"x-a", b"v" * 90), (b"x-b", b"v" * 90)])  # 2 × 93 + the pseudo-headers > 200
    assert pair.of(h2.events.ConnectionTerminated) and not pair.exchanges
    pair = Pair(header_buffers=(2, 100))
    pair.request(b"/fine", headers=[(b"x-a", b"v" * 97)])  # one value of 97: fits
    assert [e.request.target for e in pair.exchanges] == [b"/fine"] and not pair.of(h2.events.ConnectionTerminated)


def test_connect_is_refused():
    pair = Pair()
    stream_id = pair.client.get_next_available_stream_id()
    pair.client.send_headers(stream_id, [(b":method", b"CONNECT"), (b":authority", b"example.com:443")])
    pair.send()
    (response,) = pair.of(h2.events.ResponseReceived, stream_id)
    assert dict(response.headers)[b":status"] == b"400"  # as nginx: "client sent no :path header"
    assert not pair.exchanges


def test_idle_connection_is_closed_with_goaway():
    pair = Pair(keepalive_timeout=5)
    pair.request()
    pair.exchanges[0].respond()
    pair.receive()
    pair.clock.advance(6)
    pair.receive()
    assert pair.of(h2.events.ConnectionTerminated)
    assert pair.transport.disconnecting


def test_body_timeout_answers_408():
    pair = Pair(body_timeout=3)
    stream_id = pair.request(b"/up", method=b"POST", end=False)
    pair.clock.advance(4)
    pair.receive()
    (response,) = pair.of(h2.events.ResponseReceived, stream_id)
    assert dict(response.headers)[b":status"] == b"408"
    assert pair.exchanges[0].lost


def test_factory_offers_h2_unless_disabled():
    http1 = HTTP1Factory(lambda p, r: None, clock=Clock())
    assert HTTPSFactory(http1).acceptableProtocols() == [b"h2", b"http/1.1"]
    assert HTTPSFactory(http1, http2=False).acceptableProtocols() == [b"http/1.1"]


def test_expect_continue_sends_an_interim_100():
    pair = Pair()
    stream_id = pair.request(b"/up", method=b"PUT", end=False,
                             headers=[(b"expect", b"100-continue"), (b"content-length", b"3")])
    exchange = pair.exchanges[0]
    assert exchange.request.expect_continue
    exchange.stream.send_continue()
    pair.receive()
    (interim,) = pair.of(h2.events.InformationalResponseReceived, stream_id)
    assert dict(interim.headers)[b":status"] == b"100"
    pair.send_body(stream_id, b"abc", end=True)
    exchange.respond(201, [], b"")
    pair.receive()
    (final,) = pair.of(h2.events.ResponseReceived, stream_id)
    assert dict(final.headers)[b":status"] == b"201"
    assert b"".join(exchange.body) == b"abc"


def test_max_concurrent_streams_is_announced_as_configured():
    for configured, expected in (({}, 128), ({"http2_max_concurrent_streams": 7}, 7)):
        pair = Pair(**configured)
        changed = pair.of(h2.events.RemoteSettingsChanged)
        announced = {code: setting.new_value for event in changed for code, setting in event.changed_settings.items()}
        assert announced[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] == expected


def _frames(data: bytes):
    from hyperframe.frame import Frame

    frames = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9:9 + length]))
        frames.append(frame)
        data = data[9 + length:]
    return frames


def _count_writes(pair):
    writes = []
    original = pair.transport.write

    def write(data):
        writes.append(data)
        original(data)

    pair.transport.write = write
    return writes


def test_a_corked_answer_leaves_in_one_write_its_last_data_frame_ending_the_stream():
    pair = Pair()
    stream_id = pair.request(b"/")
    pair.transport.clear()
    writes = _count_writes(pair)
    exchange = pair.exchanges[0]
    exchange.stream.cork()  # as the upstream does around the relay of one backend read
    exchange.respond(200, [(b"content-type", b"text/plain")], b"hello")
    assert writes == []
    exchange.stream.uncork()
    (written,) = writes
    kinds = [(type(frame).__name__, stream_id == frame.stream_id, sorted(frame.flags)) for frame in _frames(written)]
    assert kinds == [("HeadersFrame", True, ["END_HEADERS"]), ("DataFrame", True, ["END_STREAM"])]
    pair.receive()
    assert pair.body(stream_id) == b"hello"
    assert pair.of(h2.events.StreamEnded, stream_id)


def test_answers_made_while_a_read_is_handled_leave_in_one_write():
    pair = Pair()
    pair.transport.clear()
    writes = _count_writes(pair)

    def answer_at_once(stream, request):
        exchange = FakeExchange(stream, request)
        exchange.respond(200, [], b"now")
        return None

    pair.server.handler = answer_at_once
    ids = []
    for n in range(3):
        stream_id = pair.client.get_next_available_stream_id()
        pair.client.send_headers(stream_id, [(b":method", b"GET"), (b":scheme", b"https"),
                                             (b":authority", b"example.com"), (b":path", b"/%d" % n)],
                                 end_stream=True)
        ids.append(stream_id)
    pair.server.dataReceived(pair.client.data_to_send())
    assert len(writes) == 1
    pair.receive()
    assert [pair.body(i) for i in ids] == [b"now"] * 3


def test_trailers_still_follow_the_data_uncorked_or_corked():
    for corked in (False, True):
        pair = Pair()
        stream_id = pair.request(b"/", method=b"POST")
        exchange = pair.exchanges[0]
        stream = exchange.stream
        if corked:
            stream.cork()
        stream.write_head(200, [(b"content-type", b"application/grpc")], None)
        stream.write_body(b"\0\0\0\0\0")
        stream.write_trailers([(b"grpc-status", b"0")])
        stream.finish_response()
        if corked:
            stream.uncork()
        pair.receive()
        assert pair.body(stream_id) == b"\0\0\0\0\0"
        (trailers,) = pair.of(h2.events.TrailersReceived, stream_id)
        assert dict(trailers.headers)[b"grpc-status"] == b"0"


def test_response_fields_are_normalised_as_h2_did_before_its_outbound_checks_were_switched_off():
    import hpack

    pair = Pair()
    stream_id = pair.request(b"/")
    pair.transport.clear()
    exchange = pair.exchanges[0]
    exchange.respond(200, [(b"X-Padded", b"  spaced\t"), (b"TE", b"trailers"), (b"Connection", b"close"),
                           (b"Authorization", b"Bearer t"), (b"Cookie", b"short=1"), (b"cookie", b"x" * 40),
                           (b":path", b"/sneaky"), (b"Keep-Alive", b"5")], b"ok")
    headers_frame = _frames(pair.transport.value())[0]
    fields = hpack.Decoder().decode(headers_frame.data, raw=True)
    plain = [(name, value) for name, value in fields if name not in (b"date", b"server")]
    assert plain == [(b":status", b"200"), (b"x-padded", b"spaced"), (b"authorization", b"Bearer t"),
                     (b"cookie", b"short=1"), (b"cookie", b"x" * 40), (b"content-length", b"2")]
    never = {field[0]: isinstance(field, hpack.NeverIndexedHeaderTuple) for field in fields}
    assert never[b"authorization"] and not never[b"x-padded"]
    assert [isinstance(f, hpack.NeverIndexedHeaderTuple) for f in fields if f[0] == b"cookie"] == [True, False]
    pair.receive()
    (response,) = pair.of(h2.events.ResponseReceived, stream_id)
    assert (b"x-padded", b"spaced") in response.headers


def test_trailers_are_normalised_too():
    pair = Pair()
    stream_id = pair.request(b"/", method=b"POST")
    stream = pair.exchanges[0].stream
    stream.write_head(200, [(b"content-type", b"application/grpc")], None)
    stream.write_body(b"x")
    stream.write_trailers([(b"Grpc-Status", b" 0 "), (b":status", b"500"), (b"Transfer-Encoding", b"chunked")])
    stream.finish_response()
    pair.receive()
    (trailers,) = pair.of(h2.events.TrailersReceived, stream_id)
    assert list(trailers.headers) == [(b"grpc-status", b"0")]


def test_remembered_response_fields_are_the_one_pass_answer():
    """``_response_fields`` answers a short list seen lately from its memo: the same fields as
    ``_response_fields_pass`` (never-indexed credentials kept), a long or unhashable list
    without the memo, and the memo bounded."""
    from hpack import NeverIndexedHeaderTuple

    from ingressd.http import http2

    http2._FIELDS_MEMO.clear()
    head = [(b"Content-Type", b" application/grpc"), (b"te", b"trailers"), (b"Cookie", b"a=1"),
            (b":status", b"200"), (b"grpc-accept-encoding", b"identity")]
    first = http2._response_fields(head)
    assert list(first) == http2._response_fields_pass(head)
    again = http2._response_fields(list(head))  # another list of the same fields: the memo's answer
    assert again is first
    assert [type(field) for field in again] == [tuple, NeverIndexedHeaderTuple, tuple]
    other = [(b"grpc-status", b"0"), (b"grpc-message", b"")]
    assert list(http2._response_fields(other)) == [(b"grpc-status", b"0"), (b"grpc-message", b"")]
    assert http2._response_fields(other) is not first
    long = [(b"x-%d" % i, b"v") for i in range(http2._FIELDS_MEMO_MOST + 1)]
    assert list(http2._response_fields(long)) == http2._response_fields_pass(long)
    assert tuple(long) not in http2._FIELDS_MEMO
    unhashable = [[b"X-List", b" v "]]
    assert list(http2._response_fields(unhashable)) == [(b"x-list", b"v")]
    for i in range(3 * http2._FIELDS_MEMO_LIMIT):
        http2._response_fields([(b"x-n", b"%d" % i)])
        assert len(http2._FIELDS_MEMO) <= http2._FIELDS_MEMO_LIMIT
    assert list(http2._response_fields(head)) == list(first)


def test_a_stream_reads_its_receiver_from_itself_not_its_class():
    """The DATA's receiver (set by ``divert``) is the stream's own value from the start (a
    class default read through the instance is not specialised by CPython 3.11)."""
    pair = Pair()
    pair.request(b"/", method=b"POST")
    stream = pair.exchanges[0].stream
    assert "_receiver" in vars(stream) and stream._receiver is None


def test_a_requests_has_body_is_http1s_rule_worked_out_once():
    """``H2Request.has_body`` is set with the request (no property frame a request): it says what
    ``http1.Request.has_body`` says of the same fields."""
    from ingressd.http.http1 import Request
    from ingressd.http.http2 import H2Request

    for content_length in (None, 0, 5):
        for complete in (True, False):
            h2_request = H2Request(b"POST", b"/", [], content_length, complete, False)
            h1_request = Request.__new__(Request)
            h1_request.chunked, h1_request.content_length = h2_request.chunked, content_length
            assert h2_request.has_body is Request.has_body.fget(h1_request), (content_length, complete)


def test_a_streams_passes_backend_server_is_http1s_rule():
    """``_Stream.passes_backend_server`` has http1's ``passes_backend_server`` test inline: the
    same answer for every setting, read from the connection's settings as they are now."""
    from ingressd.http.headers import ResponseIdentity
    from ingressd.http.http1 import passes_backend_server

    pair = Pair()
    pair.request(b"/", method=b"POST")
    stream = pair.exchanges[0].stream
    settings = stream.connection.settings
    for allowed in (False, True):
        for server in (None, b"ingressd"):
            settings.backend_server_header = allowed
            settings.identity = ResponseIdentity(server)
            assert stream.passes_backend_server is passes_backend_server(settings), (allowed, server)
