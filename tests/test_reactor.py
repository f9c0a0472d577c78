"""ingressd.reactor: Twisted's epoll reactor with events dispatched without a log context."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from driven_reactor import driven_reactor, spin
from twisted.internet import protocol
from twisted.internet.epollreactor import EPollReactor
from twisted.python import log

from ingressd import reactor as ingressd_reactor
from ingressd.reactor import DirectDispatchEPollReactor


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


@pytest.fixture
def reactor():
    yield from driven_reactor()


def test_serves_connections(reactor):
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
    clients = [socket.create_connection(("127.0.0.1", port.getHost().port), timeout=5) for _ in range(3)]
    replies = {}
    for index, client in enumerate(clients):
        client.setblocking(False)
        client.sendall(b"ping %d" % index)

    def echoed():
        for index, client in enumerate(clients):
            try:
                replies[index] = replies.get(index, b"") + client.recv(100)
            except BlockingIOError:
                pass
        return all(replies.get(i) == b"ping %d" % i for i in range(3))

    spin(reactor, echoed)
    for client in clients:
        client.close()
    port.stopListening()


class _Exploding:
    """A reader whose doRead fails and whose connectionLost raises: the exception gets out of
    the reactor's own handling, into doPoll's."""

    def __init__(self, sock):
        self.sock = sock
        self.lost = 0

    def fileno(self):
        return self.sock.fileno()

    def logPrefix(self):
        return "exploding"

    def doRead(self):
        raise RuntimeError("read failed")

    def connectionLost(self, reason):
        self.lost += 1
        raise ValueError("connectionLost failed too")


def test_a_failing_handler_is_logged_and_the_reactor_goes_on(reactor):
    seen = []
    log.addObserver(seen.append)
    try:
        left, right = socket.socketpair()
        exploding = _Exploding(left)
        reactor.addReader(exploding)
        right.sendall(b"x")
        spin(reactor, lambda: exploding.lost)
        # the other connections still work
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
        client = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=5)
        client.setblocking(False)
        client.sendall(b"still here")
        got = []

        def echoed():
            try:
                got.append(client.recv(100))
            except BlockingIOError:
                pass
            return b"".join(got) == b"still here"

        spin(reactor, echoed)
        client.close()
        port.stopListening()
        left.close()
        right.close()
    finally:
        log.removeObserver(seen.append)
    failures = [event for event in seen if event.get("isError") and event.get("failure") is not None]
    assert any(event["failure"].check(ValueError) for event in failures)
    assert any("handling an event of" in str(event.get("why")) for event in failures)


def test_falls_back_to_twisteds_dispatch_without_the_attributes_it_uses(monkeypatch):
    monkeypatch.setattr(ingressd_reactor, "_RELIED_ON", ("_poller", "_no_such_attribute"))
    r = DirectDispatchEPollReactor()
    try:
        assert r.doIteration.__func__ is EPollReactor.doPoll
        r.iterate(0)  # and it polls
    finally:
        r._poller.close()


def test_install_keeps_a_reactor_already_installed():
    code = ("import sys\n"
            "from ingressd.reactor import install\n"
            "first = install()\n"
            "from twisted.internet import reactor\n"
            "print(first, type(reactor).__name__, install())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "DirectDispatchEPollReactor", "False"], out.stderr
