"""ingressd.proxy.transport on real loopback sockets: TCP_NODELAY from the listener, one getsockname a
connection, and a close that leaves at the end of the round when every write has left."""

from __future__ import annotations

import socket
import sys

import pytest
from twisted.internet import protocol
from twisted.internet.error import ConnectionAborted, ConnectionDone

from driven_reactor import driven_reactor, spin

from ingressd.proxy import transport


@pytest.fixture
def reactor():
    yield from driven_reactor()


class Recorder(protocol.Protocol):
    """Answers its first read with ``answer`` (``then`` may act on the transport after), records the end."""

    def __init__(self, answer=b"", then=None):
        self.answer, self.then = answer, then
        self.reason = None
        self.writing_watched = 0

    def connectionMade(self):
        self.factory.made.append(self)

    def dataReceived(self, data):
        if self.answer:
            self.transport.write(self.answer)
        if self.then:
            self.then(self.transport)

    def connectionLost(self, reason=None):
        self.reason = reason


def _listen(reactor, build):
    factory = protocol.Factory()
    factory.made = []
    factory.buildProtocol = lambda addr: _built(factory, build())
    port = transport.Port(0, factory, 50, "127.0.0.1", reactor)
    port.startListening()
    return port, factory


def _built(factory, proto):
    proto.factory = factory
    return proto


def _client(port) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=5)
    client.setblocking(False)
    return client


def _read_to_end(reactor, client) -> bytes:
    received, ended = [], []

    def done():
        try:
            data = client.recv(65536)
        except BlockingIOError:
            return False
        if not data:
            ended.append(True)
            return True
        received.append(data)
        return False

    spin(reactor, done)
    return b"".join(received)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux: accepted sockets inherit TCP_NODELAY")
def test_no_delay_is_set_on_the_listener_and_inherited(reactor, monkeypatch):
    calls = []
    monkeypatch.setattr(transport.tcp.Server, "setTcpNoDelay", lambda self, on: calls.append(on))
    port, factory = _listen(reactor, Recorder)
    assert port.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    client = _client(port)
    spin(reactor, lambda: factory.made)
    server = factory.made[0].transport
    assert server.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    server.setTcpNoDelay(True)  # the HTTP/1.1 protocol asks again: no system call
    assert calls == []
    server.setTcpNoDelay(False)  # a real change still goes through
    assert calls == [False]
    client.close()
    port.stopListening()


def test_without_inheritance_each_connection_sets_no_delay(reactor, monkeypatch):
    monkeypatch.setattr(transport, "_ACCEPTED_INHERIT_NO_DELAY", False)
    port, factory = _listen(reactor, Recorder)
    assert not port.no_delay_inherited
    client = _client(port)
    spin(reactor, lambda: factory.made)
    assert factory.made[0].transport.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    client.close()
    port.stopListening()


def test_get_host_asks_the_socket_once_and_get_peer_is_made_once(reactor):
    port, factory = _listen(reactor, Recorder)
    client = _client(port)
    spin(reactor, lambda: factory.made)
    server = factory.made[0].transport
    first = server.getHost()
    assert (first.host, first.port) == ("127.0.0.1", port.getHost().port)
    assert server.getHost() is first
    peer = server.getPeer()
    assert (peer.host, peer.port) == client.getsockname()
    assert server.getPeer() is peer
    client.close()
    port.stopListening()


def test_a_close_with_everything_sent_leaves_at_the_end_of_the_round(reactor, monkeypatch):
    watched = []
    original = transport.Server.startWriting
    monkeypatch.setattr(transport.Server, "startWriting", lambda self: (watched.append(self), original(self)))
    port, factory = _listen(reactor, lambda: Recorder(b"answer", then=lambda t: t.loseConnection()))
    client = _client(port)
    client.sendall(b"ask")
    assert _read_to_end(reactor, client) == b"answer"
    spin(reactor, lambda: factory.made[0].reason is not None)
    assert factory.made[0].reason.check(ConnectionDone)
    assert watched == []  # never watched for writability: no epoll round trip to close
    client.close()
    port.stopListening()


def test_writes_after_lose_connection_still_leave_before_the_close(reactor):
    def close_then_write(t):
        t.loseConnection()
        t.write(b" and more")

    port, factory = _listen(reactor, lambda: Recorder(b"answer", then=close_then_write))
    client = _client(port)
    client.sendall(b"ask")
    assert _read_to_end(reactor, client) == b"answer and more"
    spin(reactor, lambda: factory.made[0].reason is not None)
    assert factory.made[0].reason.check(ConnectionDone)
    client.close()
    port.stopListening()


def test_a_large_answer_is_sent_whole_before_the_close(reactor):
    answer = b"x" * (8 << 20)  # more than the socket takes at once: Twisted's buffer closes it
    port, factory = _listen(reactor, lambda: Recorder(answer, then=lambda t: t.loseConnection()))
    client = _client(port)
    client.sendall(b"ask")
    assert _read_to_end(reactor, client) == answer
    spin(reactor, lambda: factory.made[0].reason is not None)
    assert factory.made[0].reason.check(ConnectionDone)
    client.close()
    port.stopListening()


def test_a_paused_producer_holds_the_close_back_as_in_twisted(reactor):
    class Producer:
        resumed = 0

        def resumeProducing(self):
            self.resumed += 1

        def pauseProducing(self):
            pass

        def stopProducing(self):
            pass

    producer = Producer()

    def close_while_paused(t):
        t.registerProducer(producer, True)
        t.producerPaused = True
        t.loseConnection()

    port, factory = _listen(reactor, lambda: Recorder(b"answer", then=close_while_paused))
    client = _client(port)
    client.sendall(b"ask")
    spin(reactor, lambda: producer.resumed)  # Twisted's way: the producer is asked for more
    server = factory.made[0].transport
    assert factory.made[0].reason is None
    server.unregisterProducer()  # done producing: now the connection closes
    spin(reactor, lambda: factory.made[0].reason is not None)
    assert factory.made[0].reason.check(ConnectionDone)
    client.close()
    port.stopListening()


def test_an_abort_after_the_close_is_an_abort(reactor):
    def close_then_abort(t):
        t.loseConnection()
        t.abortConnection()

    port, factory = _listen(reactor, lambda: Recorder(b"answer", then=close_then_abort))
    client = _client(port)
    client.sendall(b"ask")
    spin(reactor, lambda: factory.made and factory.made[0].reason is not None)
    assert factory.made[0].reason.check(ConnectionAborted)
    client.close()
    port.stopListening()
