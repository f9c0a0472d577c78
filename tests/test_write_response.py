"""``HTTP1ServerProtocol.write_response``: a head and a body in one write, the same bytes as
``write_head`` then ``write_body`` (the exchange's plain lane relays a whole backend response
with it, its headers serialised already by ``response_head.parse_response_relay``)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.http.headers import ResponseIdentity, http_date, serialize
from ingressd.http.http1 import HTTP1ServerProtocol, ServerSettings


class Holds:
    """A handler that answers nothing itself: the test writes the response."""

    def __init__(self, protocol, request):
        self.protocol = protocol
        self.request = request

    def body_data(self, data):
        pass

    def body_done(self):
        pass

    def client_lost(self):
        pass

    def client_side_answered(self, status, bytes_sent):
        pass

    def wants_tunnel(self):
        return False


def _connection(request: bytes, server: bytes | None, backend_server: bool, corked: bool):
    clock = Clock()
    clock.advance(1_700_000_000)
    settings_ = ServerSettings(identity=ResponseIdentity(server), backend_server_header=backend_server)
    protocol = HTTP1ServerProtocol(settings_, Holds, clock)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(request)
    if corked:
        protocol.cork()
    return protocol, transport


_PAIRS = st.lists(st.tuples(st.sampled_from([b"x-a", b"server", b"content-type", b"set-cookie"]),
                            st.binary(max_size=8).filter(lambda v: b"\r" not in v and b"\n" not in v)), max_size=4)


@settings(max_examples=300, deadline=None)
@given(method=st.sampled_from([b"GET", b"HEAD", b"DELETE"]), version=st.sampled_from([b"1.1", b"1.0"]),
       connection=st.sampled_from([b"", b"Connection: close\r\n", b"Connection: keep-alive\r\n"]),
       status=st.sampled_from([200, 204, 206, 299, 304, 404, 502, 101]), pairs=_PAIRS,
       length=st.one_of(st.none(), st.integers(0, 20)), body=st.binary(max_size=20), given_lines=st.booleans(),
       server=st.sampled_from([None, b"ingressd/1"]), backend_server=st.booleans(), corked=st.booleans(),
       closed=st.booleans(), reason=st.sampled_from([None, b"", b"Odd"]))
def test_the_same_bytes_as_write_head_then_write_body(method, version, connection, status, pairs, length, body,
                                                       given_lines, server, backend_server, corked, closed, reason):
    request = b"%s / HTTP/%s\r\nHost: x\r\n%s\r\n" % (method, version, connection)
    outcomes = []
    for whole in (False, True):
        protocol, transport = _connection(request, server, backend_server, corked)
        protocol.closed = closed
        if whole:
            protocol.write_response(status, pairs, serialize(pairs) if given_lines else None, length, body, reason)
        else:
            protocol.write_head(status, pairs, length, reason)
            protocol.write_body(body)
        if corked:
            protocol.uncork()
        protocol.closed = False
        protocol.finish_response()
        outcomes.append((transport.value(), transport.disconnecting))
    assert outcomes[0] == outcomes[1]


def test_one_write_for_head_and_body():
    protocol, transport = _connection(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", None, False, False)
    writes = []
    transport.write = writes.append
    protocol.write_response(200, [(b"x-a", b"1")], b"x-a: 1\r\n", 2, b"ok")
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ndate: ")
    assert writes[0].endswith(b"GMT\r\nx-a: 1\r\n\r\nok")


def test_the_date_line_follows_the_clock_second_by_second():
    """The lines formatted for a second are reused within it (read from the identity, no call)
    and made again as the clock reaches the next second, or goes back to an earlier one; the
    connections of one server share them."""
    clock = Clock()
    clock.advance(1_700_000_000.25)
    identity = ResponseIdentity(b"ingressd/1")
    settings_ = ServerSettings(identity=identity)
    transports = []
    for _ in range(2):
        protocol = HTTP1ServerProtocol(settings_, Holds, clock)
        transport = StringTransport()
        protocol.makeConnection(transport)
        transports.append((protocol, transport))

    def answer(index):
        protocol, transport = transports[index]
        transport.clear()
        protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        protocol.write_response(200, [], b"", 0, b"")
        protocol.finish_response()
        head = transport.value()
        return head[head.index(b"server: "):head.index(b"GMT\r\n") + 5]

    first = b"server: ingressd/1\r\ndate: " + http_date(1_700_000_000) + b"\r\n"
    assert answer(0) == first
    clock.advance(0.7)  # 0.95: the same second
    assert answer(1) == first and identity.second_lines is identity.lines(clock.seconds())
    clock.advance(0.05)  # the next second exactly
    assert answer(0) == b"server: ingressd/1\r\ndate: " + http_date(1_700_000_001) + b"\r\n"
    clock.rightNow = 1_699_999_999.5  # the clock went back: that second's date, not the cached one
    assert answer(1) == b"server: ingressd/1\r\ndate: " + http_date(1_699_999_999) + b"\r\n"
    clock.advance(3600 * 24)
    assert answer(0) == b"server: ingressd/1\r\ndate: " + http_date(1_700_086_399) + b"\r\n"
