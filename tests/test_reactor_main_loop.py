"""ingressd.reactor's ``mainLoop``: a turn where no timed call is due taken in line, every other
turn Twisted's; the same calls in the same order as Twisted's ``ReactorBase.mainLoop``."""

from __future__ import annotations

import socket

import pytest
from twisted.internet.base import ReactorBase
from twisted.internet.epollreactor import EPollReactor
from twisted.logger import globalLogPublisher

from driven_reactor import close

from ingressd import reactor as ingressd_reactor
from ingressd.reactor import DirectDispatchEPollReactor


class _Reader:
    def __init__(self, sock, on_read):
        self.sock = sock
        self.on_read = on_read

    def fileno(self):
        return self.sock.fileno()

    def logPrefix(self):
        return "reader"

    def doRead(self):
        self.on_read(self.sock.recv(100))

    def connectionLost(self, reason):
        pass


def _script(main_loop) -> tuple[list, list]:
    """Timed calls, round ends asked by timed calls, by a read and by round ends, a call from a
    thread, a cancelled call, a delayed one, then a crash: what ran in which order, and how long
    each poll was allowed to wait (None, 0 or some time)."""
    r = DirectDispatchEPollReactor()
    left, right = socket.socketpair()
    order: list = []
    waits: list = []
    poll = r.doIteration

    def iteration(timeout):
        waits.append(None if timeout is None else ("0" if not timeout else "some"))
        if len(waits) > 100:  # bounded: the script ends in a few turns, unless a call is left behind
            r.crash()
        poll(timeout if timeout is not None and timeout < 0.05 else 0.05)  # and at most 5 s in all

    r.doIteration = iteration

    def read(data):
        order.append(("read", data))
        r.call_at_round_end(lambda: order.append("end of the read's round"))
        r.call_at_round_end(lambda: r.call_at_round_end(lambda: order.append("end asked by an end")))
        r.callLater(30, order.append, "never").cancel()
        r.call_at_round_end(lambda: right.sendall(b"thread"))

    def asks_a_thread_call(data):  # a turn with no timed call new or due: the call from a thread alone
        order.append(("read", data))
        r.callFromThread(thread_call)

    def thread_call():
        order.append("from a thread")
        later = r.callLater(0.02, last)
        later.delay(0.01)

    def last():
        order.append("last")
        r.callLater(3600, order.append, "never either")
        right.sendall(b"bye")

    def bye(data):
        order.append(("bye", data))
        r.call_at_round_end(r.crash)

    def first():
        order.append("first")
        r.call_at_round_end(lambda: order.append("end of the first's round"))
        r.callLater(0, order.append, "second")
        right.sendall(b"hello")

    readers = {b"hello": read, b"thread": asks_a_thread_call, b"bye": bye}
    reader = _Reader(left, lambda data: readers[data](data))
    r.addReader(reader)
    r.callLater(0, first)
    r._started = r.running = True
    try:
        main_loop(r)
    finally:
        r.removeReader(reader)
        close(r)
        left.close()
        right.close()
    return order, waits


def test_the_same_calls_in_the_same_order_as_twisteds_loop():
    ours = _script(DirectDispatchEPollReactor.mainLoop)
    twisteds = _script(ReactorBase.mainLoop)
    assert ours == twisteds
    order, waits = ours
    assert order == ["first", "end of the first's round", ("read", b"hello"), "end of the read's round",
                     "second", "end asked by an end", ("read", b"thread"), "from a thread", "last", ("bye", b"bye")]
    assert "some" in waits  # it waited for the delayed call, as Twisted's loop did


def test_a_turn_with_nothing_due_is_taken_in_line():
    """No timed call due: neither Twisted's runUntilCurrent nor its timeout is called, and the
    poll waits until the first timed call is due (or for events, with none)."""
    r = DirectDispatchEPollReactor()
    calls = []
    r.runUntilCurrent = lambda: calls.append("runUntilCurrent")
    r.timeout = lambda: calls.append("timeout")
    waits = []

    def iteration(timeout):
        waits.append(timeout)
        if len(waits) == 2:
            r._started = False
        else:
            r.callLater(120, lambda: None)
            r._insertNewDelayedCalls()

    r.doIteration = iteration
    r._started = r.running = True
    try:
        r.mainLoop()
    finally:
        del r.runUntilCurrent, r.timeout
        close(r)
    assert calls == []
    assert waits[0] is None
    assert 110 < waits[1] <= 120


def test_an_error_in_a_turn_is_logged_as_twisted_logs_it_and_the_loop_goes_on():
    r = DirectDispatchEPollReactor()
    turns = []
    events = []

    def iteration(timeout):
        turns.append(timeout)
        if len(turns) == 1:
            raise RuntimeError("a poll that failed")
        r._started = False

    r.doIteration = iteration
    r._started = r.running = True
    globalLogPublisher.addObserver(events.append)
    try:
        r.mainLoop()
    finally:
        globalLogPublisher.removeObserver(events.append)
        close(r)
    assert len(turns) == 2
    failures = [event for event in events if event.get("log_failure") is not None]
    assert any(event["log_failure"].check(RuntimeError) for event in failures)
    assert any("Unexpected error in main loop" in event.get("log_format", "") for event in failures)


def test_falls_back_to_twisteds_loop_without_the_attributes_it_uses(monkeypatch):
    monkeypatch.setattr(ingressd_reactor, "_MAIN_LOOP_RELIED_ON", ("_started", "_no_such_attribute"))
    r = DirectDispatchEPollReactor()
    try:
        assert r.mainLoop.__func__ is ReactorBase.mainLoop
        assert EPollReactor.mainLoop is ReactorBase.mainLoop  # the one Twisted's epoll reactor runs
    finally:
        close(r)
