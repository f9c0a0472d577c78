"""What a backend sees of a gRPC call's request, frame by frame, through the real server in
memory (``serve_in_memory``: h2c from the client, ``backend-protocol: GRPC``): a unary call
whose DATA came with END_STREAM arrives as HEADERS and one DATA frame carrying END_STREAM, as
nginx's ``grpc_pass`` sends a whole body (not DATA, then an empty DATA with END_STREAM); a body
whose end comes in a later read still ends with its own empty DATA frame; the exchange's body
path (``send_last``, ``BufferedBody.exhausted``) under both, and a unary body in one piece handed
over with its end, never held in a ``BufferedBody``."""

from __future__ import annotations

import dataclasses
import struct

import hpack
import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.config.routing import RouteTable
from ingressd.proxy.exchange import Proxy, ProxySettings
from ingressd.proxy.request_body import BufferedBody
from ingressd.testing import one_route_objects, serve_in_memory
from test_exchange import FakeClient, FakePool, Grpc, State, entry, request

HOST = "grpc.frames"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, WINDOW_UPDATE = 0x0, 0x1, 0x4, 0x8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
MESSAGE = b"\0\0\0\0\x05hello"
CALL = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/pkg.Echo/Unary"), (b":authority", HOST.encode()),
        (b"te", b"trailers"), (b"content-type", b"application/grpc")]


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack("!I", len(payload))[1:] + bytes((kind, flags)) + struct.pack("!I", stream_id) + payload


def frames_of(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of every frame in ``data`` (whole frames only)."""
    out, pos = [], 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        out.append((data[pos + 3], data[pos + 4], int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF,
                    data[pos + 9:pos + 9 + length]))
        pos += 9 + length
    assert pos == len(data)
    return out


class Rig:
    """A client connection and the one backend connection it leads to, joined by hand."""

    def __init__(self, tmp_path):
        objects = one_route_objects(HOST, [("127.0.0.1", 50051)],
                                    annotations={"nginx.ingress.kubernetes.io/backend-protocol": "GRPC"})
        self.service, self.reactor = serve_in_memory(tmp_path, objects, "--access-log", "off")
        self.encoder = hpack.Encoder()
        self.client = self.service.http_factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.client_transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
                                                hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
        self.client.makeConnection(self.client_transport)
        self.client.dataReceived(PREFACE + frame(SETTINGS, 0, 0))
        self.backend = None
        self.backend_transport = None
        self.received = b""  # what the backend was sent, after its preface
        # a first call opens the backend connection (its body waits for it: not what is tested);
        # the tests' calls then go straight to an open connection, streams 3 and on
        self.send(self.headers(1) + frame(DATA, END_STREAM, 1, MESSAGE))
        assert self.backend is not None and self.received

    def send(self, data: bytes) -> None:
        self.client.dataReceived(data)
        if self.backend is None and self.reactor.tcpClients:
            host, port, factory, _, _ = self.reactor.tcpClients[0]
            self.backend = factory.buildProtocol(IPv4Address("TCP", host, port))
            self.backend_transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
            self.backend.makeConnection(self.backend_transport)
            # its SETTINGS (a window wide enough) and the ack of ours: the streams then open
            self.backend.dataReceived(frame(SETTINGS, 0, 0, struct.pack("!HI", 0x4, 1 << 20)) + frame(SETTINGS, ACK, 0))
        if self.backend_transport is not None:
            self.received += self.backend_transport.value()
            self.backend_transport.clear()

    def headers(self, stream_id: int, end_stream: bool = False) -> bytes:
        return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), stream_id, self.encoder.encode(CALL))

    def request_frames(self) -> list[tuple[int, int, int, bytes]]:
        """The backend's HEADERS and DATA frames (its connection's own frames left out)."""
        data = self.received[len(PREFACE):] if self.received.startswith(PREFACE) else self.received
        return [f for f in frames_of(data) if f[0] in (HEADERS, DATA) and f[2] > 1]

    def answer(self, stream_ids) -> int:
        """The backend answers each of ``stream_ids`` in one read (HEADERS, DATA, trailers):
        how many writes the client's connection made while it was handled."""
        encoder = hpack.Encoder()
        answer = b"".join(frame(HEADERS, END_HEADERS, i, encoder.encode([(b":status", b"200"),
                                                                        (b"content-type", b"application/grpc")]))
                          + frame(DATA, 0, i, MESSAGE)
                          + frame(HEADERS, END_HEADERS | END_STREAM, i, encoder.encode([(b"grpc-status", b"0")]))
                          for i in stream_ids)
        writes = []
        write = self.client_transport.write
        self.client_transport.write = lambda data: (writes.append(data), write(data))
        try:
            self.backend.dataReceived(answer)
        finally:
            del self.client_transport.write
        return len(writes)

    def close(self) -> None:
        self.service.stopService()


@pytest.fixture
def rig(tmp_path):
    rig = Rig(tmp_path)
    yield rig
    rig.close()


def _shape(frames) -> list[tuple[str, int, bool, bytes]]:
    return [("HEADERS" if kind == HEADERS else "DATA", stream_id, bool(flags & END_STREAM),
             b"" if kind == HEADERS else payload) for kind, flags, stream_id, payload in frames]


def test_a_unary_call_arrives_as_headers_and_one_data_frame_with_end_stream(rig):
    rig.send(rig.headers(3) + frame(DATA, END_STREAM, 3, MESSAGE))
    assert _shape(rig.request_frames()) == [("HEADERS", 3, False, b""), ("DATA", 3, True, MESSAGE)]


def test_every_call_of_a_read_ends_with_its_last_data_frame(rig):
    rig.send(b"".join(rig.headers(i) + frame(DATA, END_STREAM, i, MESSAGE) for i in (3, 5, 7)))
    assert _shape(rig.request_frames()) == [
        ("HEADERS", 3, False, b""), ("DATA", 3, True, MESSAGE),
        ("HEADERS", 5, False, b""), ("DATA", 5, True, MESSAGE),
        ("HEADERS", 7, False, b""), ("DATA", 7, True, MESSAGE)]


def test_a_body_in_two_frames_of_one_read_keeps_its_first_frame_and_ends_with_the_second(rig):
    rig.send(rig.headers(3) + frame(DATA, 0, 3, b"first") + frame(DATA, END_STREAM, 3, b"second"))
    assert _shape(rig.request_frames()) == [("HEADERS", 3, False, b""), ("DATA", 3, False, b"first"),
                                            ("DATA", 3, True, b"second")]


def test_an_end_that_comes_in_a_later_read_is_an_empty_data_frame(rig):
    rig.send(rig.headers(3) + frame(DATA, 0, 3, MESSAGE))
    assert _shape(rig.request_frames()) == [("HEADERS", 3, False, b""), ("DATA", 3, False, MESSAGE)]
    rig.send(frame(DATA, END_STREAM, 3))
    assert _shape(rig.request_frames())[2:] == [("DATA", 3, True, b"")]


def test_an_end_in_an_empty_data_frame_of_the_same_read_is_its_own_frame_still(rig):
    # the client's END_STREAM on a DATA frame with no data: the body's last piece was sent already
    rig.send(rig.headers(3) + frame(DATA, 0, 3, MESSAGE) + frame(DATA, END_STREAM, 3))
    assert _shape(rig.request_frames()) == [("HEADERS", 3, False, b""), ("DATA", 3, False, MESSAGE),
                                            ("DATA", 3, True, b"")]


def test_a_call_without_a_body_ends_with_its_headers(rig):
    rig.send(rig.headers(3, end_stream=True))
    assert _shape(rig.request_frames()) == [("HEADERS", 3, True, b"")]


def test_a_backend_read_s_answers_leave_for_the_client_in_one_write(rig):
    rig.send(b"".join(rig.headers(i) + frame(DATA, END_STREAM, i, MESSAGE) for i in (3, 5, 7)))
    rig.client_transport.clear()
    # backend streams 1 (the warm-up call), 3, 5, 7 carry client streams 1, 3, 5, 7
    assert rig.answer((1, 3, 5, 7)) == 1
    decoder = hpack.Decoder()
    shape = []
    for kind, flags, stream_id, payload in frames_of(rig.client_transport.value()):
        if kind == HEADERS:
            fields = decoder.decode(payload, raw=True)
            shape.append((stream_id, "HEADERS", bool(flags & END_STREAM), fields[0]))
        elif kind == DATA:
            shape.append((stream_id, "DATA", bool(flags & END_STREAM), payload))
    for i in (1, 3, 5, 7):  # each answer's frames in order: head, message, trailers with END_STREAM
        assert [entry[1:] for entry in shape if entry[0] == i] == [
            ("HEADERS", False, (b":status", b"200")), ("DATA", False, MESSAGE),
            ("HEADERS", True, (b"grpc-status", b"0"))]


# -- the exchange's body path, with a fake upstream --------------------------------------------


class StreamingPool(FakePool):
    streams_request_body = True


def _exchange(with_send_last: bool):
    pool = StreamingPool("GRPC")
    proxy = Proxy(State(RouteTable([entry([Grpc()])])), {"GRPC": pool, "HTTP": FakePool()}, ProxySettings(), Clock())
    r = request(method=b"POST", target=b"/pkg.Svc/Call", headers=((b"content-type", b"application/grpc"),))
    r.complete = False
    r.chunked = True
    exchange = proxy(FakeClient(), r)
    connection = pool.connect()
    calls = []
    connection.send_body = lambda data: calls.append(("send_body", data))
    connection.end_body = lambda: calls.append(("end_body",))
    if with_send_last:
        connection.send_last = lambda data: calls.append(("send_last", data))
    return exchange, r, calls


def test_the_exchange_hands_the_last_piece_with_its_end_to_an_upstream_that_takes_it():
    exchange, r, calls = _exchange(with_send_last=True)
    exchange.body_data(b"one")
    assert calls == [("send_body", b"one")]
    r.complete = True  # the client side: this piece is the body's last
    exchange.body_data(b"two")
    assert calls == [("send_body", b"one")]  # waits for body_done, which follows at once
    exchange.body_done()
    assert calls == [("send_body", b"one"), ("send_last", b"two")]


def test_an_upstream_without_send_last_is_sent_the_piece_then_the_end():
    exchange, r, calls = _exchange(with_send_last=False)
    r.complete = True
    exchange.body_data(b"two")
    exchange.body_done()
    assert calls == [("send_body", b"two"), ("end_body",)]


def test_an_end_after_every_piece_was_sent_is_end_body():
    exchange, r, calls = _exchange(with_send_last=True)
    exchange.body_data(b"one")
    exchange.body_done()
    assert calls == [("send_body", b"one"), ("end_body",)]


def test_a_unary_body_in_one_piece_is_not_held_in_a_buffered_body():
    exchange, r, calls = _exchange(with_send_last=True)
    r.complete = True  # the request's one DATA frame carried END_STREAM
    exchange.body_data(b"whole")
    assert exchange._buffer is None and exchange._held is None  # nothing to hold: it leaves with the end
    assert calls == []
    exchange.body_done()
    assert calls == [("send_last", b"whole")]
    exchange.body_done()  # (a second end sends nothing more)
    assert calls == [("send_last", b"whole")]


def test_a_last_piece_while_the_backend_pushes_back_waits_in_the_buffer_as_before():
    exchange, r, calls = _exchange(with_send_last=True)
    exchange.upstream_write_paused()
    r.complete = True
    exchange.body_data(b"last")
    assert exchange._buffer is not None and calls == []
    exchange.body_done()
    assert calls == []  # the backend still pushes back
    exchange.upstream_write_resumed()
    assert calls == [("send_last", b"last")]


def test_a_unary_body_over_the_size_limit_is_refused_not_sent():
    exchange, r, calls = _exchange(with_send_last=True)
    exchange.upstream_settings = dataclasses.replace(exchange.upstream_settings, max_body_size=3)
    trailers = []
    exchange.protocol.write_trailers = trailers.extend  # (a gRPC call's local answer ends with trailers)
    r.complete = True
    exchange.body_data(b"four")
    exchange.body_done()
    assert calls == [] and exchange.status == 413 and trailers[0] == (b"grpc-status", b"2")


@pytest.mark.parametrize("retain", [True, False])
def test_a_buffered_body_says_when_it_has_nothing_more_to_give(retain):
    body = BufferedBody(retain=retain)
    assert body.exhausted
    body.add(b"abc")
    assert not body.exhausted
    assert body.next_piece() == b"abc"
    assert body.exhausted
    body.add(b"def")
    assert not body.exhausted
    assert body.next_piece() == b"def" and body.exhausted
    if retain:
        body.rewind()
        assert not body.exhausted
