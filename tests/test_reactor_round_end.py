"""ingressd.reactor's rounds of events: ``call_at_round_end`` and the batched writes of
``ingressd.proxy.transport`` sent when a round ends, without a timer per round."""

from __future__ import annotations

import socket

import pytest
from twisted.internet import protocol
from twisted.internet.epollreactor import EPollReactor
from twisted.python import log

from driven_reactor import close, driven_reactor, spin

from ingressd.proxy import transport


@pytest.fixture
def reactor():
    yield from driven_reactor()


def test_a_call_at_the_round_end_runs_once_as_the_next_timed_calls_begin(reactor):
    order = []
    reactor.callLater(0, order.append, "timed")
    reactor.call_at_round_end(lambda: order.append("end"))
    reactor.runUntilCurrent()
    assert order == ["end", "timed"]  # the poll's round ends before the timers run
    reactor.runUntilCurrent()
    assert order == ["end", "timed"]  # once


def test_a_round_end_asked_by_a_timed_call_comes_as_the_timed_calls_end(reactor):
    order = []

    def timed():
        order.append("timed")
        reactor.call_at_round_end(lambda: order.append("end"))

    reactor.callLater(0, timed)
    reactor.callLater(0, order.append, "later")
    reactor.runUntilCurrent()
    assert order == ["timed", "later", "end"]  # before the reactor polls again


def test_a_failing_round_end_is_logged_and_the_others_still_run(reactor):
    errors = []
    log.addObserver(errors.append)
    try:
        ran = []
        reactor.call_at_round_end(lambda: 1 / 0)
        reactor.call_at_round_end(lambda: ran.append(True))
        reactor.runUntilCurrent()
    finally:
        log.removeObserver(errors.append)
    assert ran == [True]
    assert any(event.get("isError") and "ending a round" in str(event.get("why")) for event in errors)


class _Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)
        self.factory.delayed.append(list(self.transport.reactor.getDelayedCalls()))


def _echo_round(reactor) -> list:
    factory = protocol.Factory.forProtocol(_Echo)
    factory.delayed = []
    port = transport.Port(0, factory, 50, "127.0.0.1", reactor)
    port.startListening()
    client = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=5)
    client.setblocking(False)
    client.sendall(b"ping")
    received = []

    def echoed():
        try:
            received.append(client.recv(10))
        except BlockingIOError:
            pass
        return b"".join(received) == b"ping"

    spin(reactor, echoed)
    client.close()
    port.stopListening()
    return factory.delayed


def test_writes_leave_when_the_round_ends_without_a_timer(reactor):
    assert _echo_round(reactor) == [[]]  # the write armed no DelayedCall


def test_on_twisteds_own_reactor_the_round_ends_with_a_call_for_the_next_turn():
    plain = EPollReactor()
    try:
        delayed = _echo_round(plain)
    finally:
        close(plain)
    assert len(delayed) == 1 and len(delayed[0]) == 1  # callLater(0, flush)
