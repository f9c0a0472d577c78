"""The client-side HTTP/1.1 connection's own life, in memory: what it makes when accepted (the
send timeout's deadline only once the client stops reading), the addresses it reads once, and
the timers that still fire: the header timeout on a connection that never sends, the keep-alive
timeout on an idle one, the send timeout on a client that stops reading."""

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.http.http1 import HTTP1Factory, HTTP1ServerProtocol, ServerSettings


class Answer:
    def __init__(self, protocol, request):
        self.protocol = protocol

    def body_data(self, data):
        pass

    def body_done(self):
        self.protocol.write_head(200, [], 2)
        self.protocol.write_body(b"ok")
        self.protocol.finish_response()

    def client_lost(self):
        pass

    def client_side_answered(self, status, sent):
        pass

    def wants_tunnel(self):
        return False


class CountingTransport(StringTransport):
    asked = 0

    def getPeer(self):
        self.asked += 1
        return super().getPeer()

    def getHost(self):
        self.asked += 1
        return super().getHost()


def connect(**settings):
    clock = Clock()
    factory = HTTP1Factory(Answer, ServerSettings(**settings), clock=clock)
    protocol = factory.buildProtocol(IPv4Address("TCP", "10.1.2.3", 5555))
    transport = CountingTransport(peerAddress=IPv4Address("TCP", "10.1.2.3", 5555),
                                  hostAddress=IPv4Address("TCP", "10.0.0.1", 8080))
    protocol.makeConnection(transport)
    return protocol, transport, clock, factory


def test_an_accepted_connection_reads_its_addresses_once():
    protocol, transport, _, factory = connect()
    assert (protocol.peer_ip, protocol.peer_port, protocol.server_ip, protocol.server_port) == (
        "10.1.2.3", 5555, "10.0.0.1", 8080)
    assert transport.asked == 2  # one getPeer, one getHost
    assert transport.producer is protocol and transport.streaming
    assert factory.connections == 1 and factory.accepted == 1 and factory.live.open_connections() == 1


def test_addresses_without_host_or_port_read_as_empty():
    clock = Clock()
    protocol = HTTP1ServerProtocol(ServerSettings(), Answer, clock)

    class Bare(StringTransport):
        def getPeer(self):
            return object()

        def getHost(self):
            return object()

    protocol.makeConnection(Bare())
    assert (protocol.peer_ip, protocol.peer_port, protocol.server_ip, protocol.server_port) == ("", 0, "", 0)


def test_the_send_deadline_is_made_only_when_the_client_stops_reading():
    protocol, transport, clock, _ = connect(send_timeout=30)
    assert protocol._send_deadline is None
    protocol.resumeProducing()  # resumed without a pause: nothing to clear
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert protocol._send_deadline is None
    protocol.pauseProducing()
    assert protocol._send_deadline is not None and protocol._send_deadline.armed
    protocol.resumeProducing()
    assert not protocol._send_deadline.armed
    protocol.pauseProducing()
    clock.advance(31)
    assert protocol.closed and transport.disconnecting


def test_a_connection_that_never_sends_gets_408_at_the_header_timeout():
    protocol, transport, clock, factory = connect(header_timeout=10)
    clock.advance(9.5)
    assert transport.value() == b"" and not transport.disconnecting
    clock.advance(1)
    assert transport.value().startswith(b"HTTP/1.1 408 ")
    assert transport.disconnecting
    protocol.connectionLost(None)
    assert factory.connections == 0 and factory.live.open_connections() == 0
    assert clock.getDelayedCalls() == []  # nothing of the connection left behind


def test_an_idle_keepalive_connection_closes_at_the_keepalive_timeout():
    protocol, transport, clock, _ = connect(keepalive_timeout=5, header_timeout=60)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    transport.clear()
    clock.advance(4.5)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.value() == b"" and transport.disconnecting


def test_a_closed_connection_leaves_no_timer():
    protocol, transport, clock, factory = connect()
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    protocol.pauseProducing()
    protocol.connectionLost(None)
    assert clock.getDelayedCalls() == []
    assert factory.connections == 0
