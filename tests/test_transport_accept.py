"""ingressd.proxy.transport's accept path on real loopback sockets: one connection accepted per
readiness (nginx's multi_accept off), failures left to Twisted's loop, a listener that survives a
failing factory, and an accepted connection whose state is Twisted's own ``tcp.Server``'s."""

from __future__ import annotations

import errno
import gc
import platform
import socket

import pytest
from driven_reactor import driven_reactor, spin
from twisted.internet import protocol, tcp

from ingressd.proxy import transport


@pytest.fixture
def reactor():
    yield from driven_reactor()


class Recorder(protocol.Protocol):
    def connectionMade(self):
        self.factory.made.append(self)

    def dataReceived(self, data):
        self.transport.write(data)


def _listen(reactor, build=Recorder):
    factory = protocol.Factory()
    factory.made = []

    def build_protocol(addr):
        built = build()
        built.factory = factory
        return built

    factory.buildProtocol = build_protocol
    port = transport.Port(0, factory, 50, "127.0.0.1", reactor)
    port.startListening()
    return port, factory


def _client(port) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port.getHost().port), timeout=5)


def _read(reactor, client, expected: bytes) -> None:
    """Spin the reactor until ``client`` has read ``expected`` (the echo leaves when the round ends)."""
    client.setblocking(False)
    received = []

    def arrived():
        try:
            received.append(client.recv(100))
        except BlockingIOError:
            pass
        return b"".join(received) == expected

    spin(reactor, arrived)


def _wait_pending(port):
    """Until the kernel holds a connection for the listener (bounded)."""
    import select

    for _ in range(200):
        readable, _, _ = select.select([port.socket], [], [], 0.05)
        if readable:
            return
    raise AssertionError("no connection waiting")


def test_the_waiting_connections_are_accepted_each_time_the_listener_is_readable(reactor):
    port, factory = _listen(reactor)
    clients = [_client(port) for _ in range(3)]  # on loopback each is in the queue once connected
    _wait_pending(port)
    port.doRead()
    assert len(factory.made) == 3
    port.doRead()  # nothing waiting: nothing happens
    assert len(factory.made) == 3
    for client in clients:
        client.close()
    port.stopListening()


def test_at_most_accepts_per_read_connections_are_accepted_at_once(reactor):
    port, factory = _listen(reactor)
    port.accepts_per_read = 2
    clients = [_client(port) for _ in range(5)]
    _wait_pending(port)
    port.doRead()
    assert len(factory.made) == 2
    port.doRead()
    assert len(factory.made) == 4
    spin(reactor, lambda: len(factory.made) == 5)  # the reactor comes back for the rest
    for client in clients:
        client.close()
    port.stopListening()


def test_every_waiting_connection_is_served_through_the_reactor(reactor):
    port, factory = _listen(reactor)
    clients = [_client(port) for _ in range(20)]
    for index, client in enumerate(clients):
        client.sendall(b"%d" % index)
    spin(reactor, lambda: len(factory.made) == 20)
    for index, client in enumerate(clients):
        _read(reactor, client, b"%d" % index)
        client.close()
    port.stopListening()


class _FailingOnce:
    """The listening socket, whose next accept fails with ``code`` once (then the real one)."""

    def __init__(self, real, code):
        self.real = real
        self.code = code
        self.failed = 0

    def accept(self):
        if not self.failed:
            self.failed += 1
            raise OSError(self.code, "made to fail")
        return self.real.accept()

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_an_accept_that_fails_is_left_to_twisteds_loop(reactor):
    port, factory = _listen(reactor)
    client = _client(port)
    _wait_pending(port)
    real = port.socket
    port.socket = _FailingOnce(real, errno.ECONNABORTED)
    try:
        port.doRead()  # ours fails; Twisted's loop skips the aborted one and accepts the next
    finally:
        port.socket = real
    assert len(factory.made) == 1
    client.close()
    port.stopListening()


def test_a_factory_that_fails_leaves_the_listener_listening(reactor):
    failures = []

    class Failing(protocol.Factory):
        made = []
        calls = 0

        def buildProtocol(self, addr):
            self.calls += 1
            if self.calls == 1:
                failures.append(addr)
                raise RuntimeError("the factory failed")
            built = Recorder()
            built.factory = self
            return built

    factory = Failing()
    port = transport.Port(0, factory, 50, "127.0.0.1", reactor)
    port.startListening()
    first = _client(port)
    spin(reactor, lambda: failures)
    second = _client(port)
    second.sendall(b"still here")
    spin(reactor, lambda: factory.made)
    _read(reactor, second, b"still here")
    assert port.connected
    first.close()
    second.close()
    port.stopListening()


def test_a_refused_connection_is_closed(reactor):
    factory = protocol.Factory()
    factory.buildProtocol = lambda addr: None  # as the connection limit refuses one
    port = transport.Port(0, factory, 50, "127.0.0.1", reactor)
    port.startListening()
    client = _client(port)
    client.setblocking(False)
    spin(reactor, lambda: _closed(client))
    assert port.sessionno == 0 and not [r for r in reactor.getReaders() if isinstance(r, transport.Server)]
    client.close()
    port.stopListening()


def _closed(client) -> bool:
    try:
        return client.recv(10) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def test_the_accepted_connection_has_twisteds_state(reactor):
    port, factory = _listen(reactor)
    client = _client(port)
    spin(reactor, lambda: factory.made)
    ours = factory.made[0].transport
    # Twisted's own tcp.Server over another accepted socket of the same listener.
    other = _client(port)
    _wait_pending(port)
    skt, addr = port.socket.accept()
    theirs = tcp.Server(skt, Recorder(), addr, port, 7, reactor)
    names = set(vars(theirs)) - {"logstr", "repstr"}
    assert names <= set(vars(ours)), names - set(vars(ours))
    assert set(vars(ours)) - names <= {"_protocol_class", "_no_delay"}
    for name in names - {"socket", "fileno", "protocol", "client", "hostname", "sessionno"}:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.hostname == "127.0.0.1" and ours.client == client.getsockname()
    assert ours.connected and not ours.disconnected
    assert ours.fileno() == ours.socket.fileno() and ours.socket.gettimeout() == 0.0
    # The log prefix and the repr, made when asked, say what Twisted's say.
    assert ours.logstr == f"Recorder,{ours.sessionno},127.0.0.1"
    assert ours.logPrefix() == ours.logstr
    assert repr(ours) == f"<Recorder #{ours.sessionno} on {port.getHost().port}>"
    assert theirs.logstr == "Recorder,7,127.0.0.1"
    theirs.loseConnection()
    client.close()
    other.close()
    port.stopListening()


def test_the_repr_and_log_prefix_after_the_close(reactor):
    port, factory = _listen(reactor)
    client = _client(port)
    spin(reactor, lambda: factory.made)
    server = factory.made[0].transport
    server.loseConnection()
    spin(reactor, lambda: not server.connected)
    assert not hasattr(server, "protocol")  # Twisted lets it go
    assert repr(server) == f"<Recorder #{server.sessionno} on {port.getHost().port}>"
    assert server.logstr == f"Recorder,{server.sessionno},127.0.0.1"
    server.logstr = "set"  # Twisted's code may set them, as on its own connections
    server.repstr = "<set>"
    assert server.logPrefix() == "set" and repr(server) == "<set>"
    client.close()
    port.stopListening()


@pytest.mark.skipif(not transport._RAW_ACCEPT, reason="CPython's accept without socket.socket's Python layer")
def test_on_cpython_the_accepted_socket_is_the_c_socket_type(reactor):
    import _socket

    port, factory = _listen(reactor)
    assert port._kind == (socket.AF_INET, socket.SOCK_STREAM, port.socket.proto)
    client = _client(port)
    client.sendall(b"raw")
    spin(reactor, lambda: factory.made)
    accepted = factory.made[0].transport.socket
    assert type(accepted) is _socket.socket
    assert accepted.family == socket.AF_INET and accepted.type == socket.SOCK_STREAM
    assert accepted.getpeername() == client.getsockname()
    _read(reactor, client, b"raw")
    client.close()
    port.stopListening()


def test_without_the_raw_accept_the_socket_is_pythons(reactor):
    port, factory = _listen(reactor)
    port._kind = None  # as on PyPy
    client = _client(port)
    client.sendall(b"plain")
    spin(reactor, lambda: factory.made)
    assert isinstance(factory.made[0].transport.socket, socket.socket)
    _read(reactor, client, b"plain")
    client.close()
    port.stopListening()


def test_an_orderly_close_and_an_abort_end_the_connection_as_twisted_does(reactor):
    """Server.connectionLost tells an abort from a close by the reason's type: an abort resets
    the connection (SO_LINGER 0), a close ends it with a FIN after everything written."""
    port, factory = _listen(reactor)
    closed, aborted = _client(port), _client(port)
    spin(reactor, lambda: len(factory.made) == 2)
    by_peer = {proto.transport.getPeer().port: proto for proto in factory.made}
    closing, aborting = by_peer[closed.getsockname()[1]], by_peer[aborted.getsockname()[1]]
    lost = []
    for proto in (closing, aborting):
        proto.connectionLost = lambda reason, proto=proto: lost.append((proto, reason))
    closing.transport.write(b"bye")
    closing.transport.loseConnection()
    aborting.transport.abortConnection()
    spin(reactor, lambda: len(lost) == 2)
    reasons = dict(lost)
    assert reasons[closing].type.__name__ == "ConnectionDone"
    assert reasons[aborting].type.__name__ == "ConnectionAborted"
    for proto in (closing, aborting):
        assert not proto.transport.connected and not hasattr(proto.transport, "socket")
        proto.transport.connectionLost(reasons[proto])  # a second call does nothing
    closed.settimeout(5)
    assert closed.recv(10) == b"bye" and closed.recv(10) == b""
    aborted.settimeout(5)
    with pytest.raises(ConnectionResetError):
        aborted.recv(10)
    assert len(lost) == 2
    closed.close()
    aborted.close()
    port.stopListening()


@pytest.mark.skipif(platform.python_implementation() != "CPython",
                    reason="CPython's reference counting frees everything else at once (PyPy has no gc.set_debug)")
def test_closed_accepted_connections_leave_no_cycles(reactor):
    """The state set directly (and the log prefix and repr made when asked) keeps no reference
    from the transport back to its protocol after the close: freed at once, not by the collector."""
    port, factory = _listen(reactor)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(10):
            client = _client(port)
            client.sendall(b"x")
            spin(reactor, lambda: factory.made)
            server = factory.made.pop().transport
            repr(server), server.logPrefix()
            server.loseConnection()
            spin(reactor, lambda: not server.connected)
            client.close()
            del server
        gc.collect()
        ours = [type(o).__qualname__ for o in gc.garbage
                if type(o).__module__.startswith(("ingressd", "twisted.internet.tcp"))]
        assert ours == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    port.stopListening()


def test_a_listener_on_one_address_gives_its_connections_that_address_without_asking_the_socket(reactor):
    """Bound to one IPv4 address, every connection's local address is the listener's: getHost
    is the listener's own address (no getsockname a connection), the same as the socket says."""
    port, factory = _listen(reactor)
    assert port.accepted_host == port.getHost() and port.accepted_host.host == "127.0.0.1"
    client = _client(port)
    spin(reactor, lambda: factory.made)
    server = factory.made[0].transport
    assert server.getHost() is port.accepted_host
    assert (server.getHost().host, server.getHost().port) == server.socket.getsockname()
    client.close()
    port.stopListening()


def test_a_listener_on_every_address_asks_each_connection_its_local_address(reactor):
    factory = protocol.Factory()
    factory.made = []
    factory.protocol = Recorder
    port = transport.Port(0, factory, 50, "", reactor)  # 0.0.0.0: the address depends on the connection
    port.startListening()
    assert port.accepted_host is None
    client = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=5)
    spin(reactor, lambda: factory.made)
    server = factory.made[0].transport
    host = server.getHost()
    assert (host.host, host.port) == ("127.0.0.1", port.getHost().port) == server.socket.getsockname()
    assert server.getHost() is host
    client.close()
    port.stopListening()

