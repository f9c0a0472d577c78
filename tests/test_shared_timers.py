"""ingressd.http.shared_timers: calls of one length share one reactor call, and are made exactly
when the reactor would make them (compared with Twisted's own Clock, case by case and with
random schedules)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.base import DelayedCall
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import log

from ingressd.http.deadline import Deadline
from ingressd.http.http1 import HTTP1Factory, ServerSettings
from ingressd.http.shared_timers import SharedTimers


def test_calls_of_one_length_share_one_reactor_call_and_are_made_in_order():
    """The first call of a quiet spell is a reactor call of its own; those made while it waits
    share one reactor call, however many."""
    clock = Clock()
    timers = SharedTimers(clock)
    made = []
    first = timers.callLater(10, lambda: made.append(("first", clock.seconds())))
    assert isinstance(first, DelayedCall)
    for name in "abcdef":
        timers.callLater(10, lambda name=name: made.append((name, clock.seconds())))
        clock.advance(1)
    assert len(clock.getDelayedCalls()) == 2 and timers.pending() == 6
    clock.advance(4.5)  # t = 10.5
    assert made == [("first", 10.5), ("a", 10.5)]
    clock.advance(0.5)  # t = 11: b's own time
    assert made[-1] == ("b", 11)
    clock.advance(4)
    assert [name for name, _ in made] == ["first", *"abcdef"] and made[-1] == ("f", 15)
    assert clock.getDelayedCalls() == [] and timers.pending() == 0


def test_a_lone_call_is_the_reactors_own():
    clock = Clock()
    timers = SharedTimers(clock)
    made = []
    for round_ in range(3):  # one at a time: each the reactor's, nothing queued
        call = timers.callLater(5, lambda: made.append(clock.seconds()))
        assert isinstance(call, DelayedCall) and timers.pending() == 0
        if round_ == 1:
            call.cancel()
        clock.advance(5)
    assert made == [5, 15] and clock.getDelayedCalls() == []


def test_a_call_answers_as_a_reactor_call_does():
    clock = Clock()
    clock.advance(100)
    timers = SharedTimers(clock)
    timers.callLater(5, lambda: None)  # (the reactor's own: the next is queued)
    call = timers.callLater(5, lambda: None)
    assert not isinstance(call, DelayedCall)
    assert call.getTime() == 105 and call.active()
    call.cancel()
    assert not call.active()
    call.cancel()  # again: nothing
    other = timers.callLater(5, lambda: None)
    clock.advance(5)
    assert not other.active()


def test_a_cancelled_call_is_not_made_and_the_last_cancel_leaves_no_reactor_call():
    clock = Clock()
    timers = SharedTimers(clock)
    made = []
    timers.callLater(10, lambda: made.append("lone")).cancel()
    lone = timers.callLater(10, lambda: made.append("lone"))  # the reactor's own: the others queue
    first = timers.callLater(10, lambda: made.append("first"))
    clock.advance(1)
    second = timers.callLater(10, lambda: made.append("second"))
    first.cancel()
    clock.advance(9)  # first's time: the queue's reactor call wakes, finds it cancelled
    assert made == ["lone"]
    clock.advance(1)
    assert made == ["lone", "second"]
    third = timers.callLater(10, lambda: made.append("third"))  # the queue is empty: the reactor's
    fourth = timers.callLater(10, lambda: made.append("fourth"))
    assert len(clock.getDelayedCalls()) == 2
    fourth.cancel()
    assert clock.getDelayedCalls() == [third]
    third.cancel()
    assert clock.getDelayedCalls() == []
    assert second.active() is False and lone.active() is False


def test_a_call_made_by_a_call_is_made_on_time():
    clock = Clock()
    timers = SharedTimers(clock)
    made = []

    def again():
        made.append(clock.seconds())
        if clock.seconds() < 30:
            timers.callLater(10, again)

    timers.callLater(10, again)
    timers.callLater(10, lambda: made.append("other"))  # due with the first, after it
    clock.advance(10)
    assert made == [10, "other"]
    clock.advance(10)
    clock.advance(10)
    assert made == [10, "other", 20, 30] and clock.getDelayedCalls() == []


def test_lengths_beyond_max_queues_get_reactor_calls_of_their_own():
    clock = Clock()
    timers = SharedTimers(clock)
    timers.max_queues = 2
    for length in (1, 2):
        timers.callLater(length, lambda: None)  # (the reactor's own: the next are queued)
    a = timers.callLater(1, lambda: None)
    b = timers.callLater(2, lambda: None)
    c = timers.callLater(3, lambda: None)  # two queues with calls waiting: the reactor's own
    assert not isinstance(a, DelayedCall) and not isinstance(b, DelayedCall)
    assert isinstance(c, DelayedCall)
    clock.advance(1)  # a is made: its queue is empty and may give its place
    timers.callLater(4, lambda: None)
    d = timers.callLater(4, lambda: None)
    assert not isinstance(d, DelayedCall)


def test_a_call_due_before_the_queues_last_gets_a_reactor_call_of_its_own():
    """(A clock that went back.)"""
    clock = Clock()
    clock.advance(50)
    timers = SharedTimers(clock)
    made = []
    timers.callLater(10, lambda: made.append("lone"))
    timers.callLater(10, lambda: made.append("late"))
    clock.rightNow = 40.0  # the clock went back
    early = timers.callLater(10, lambda: made.append("early"))
    assert isinstance(early, DelayedCall) and early.getTime() == 50
    clock.advance(10)
    assert made == ["early"]
    clock.advance(10)
    assert made == ["early", "lone", "late"]


def test_a_failing_call_is_logged_and_the_others_are_made():
    clock = Clock()
    timers = SharedTimers(clock)
    made, seen = [], []

    def fail():
        raise ValueError("boom")

    timers.callLater(5, lambda: made.append(0))  # (the reactor's own: the next are queued)
    timers.callLater(5, fail)
    timers.callLater(5, lambda: made.append(1))
    log.addObserver(seen.append)
    try:
        clock.advance(5)
    finally:
        log.removeObserver(seen.append)
    assert made == [0, 1]
    assert any(event.get("isError") and event["failure"].check(ValueError) for event in seen)


def test_cancelled_calls_are_let_go_when_they_are_most_of_the_queue():
    clock = Clock()
    timers = SharedTimers(clock)
    made = []
    timers.callLater(60, lambda: made.append("lone"))
    keep = [timers.callLater(60, lambda i=i: made.append(i)) for i in range(3)]
    for _ in range(500):
        timers.callLater(60, lambda: made.append("cancelled")).cancel()
    queue = keep[0].queue
    assert len(queue.calls) <= 3 * 2 + 64
    clock.advance(60)
    assert made == ["lone", 0, 1, 2]


def test_a_deadline_over_shared_timers_fires_at_its_time_never_late():
    clock = Clock()
    timers = SharedTimers(clock)
    fired = []
    deadline = Deadline(timers, lambda: fired.append(clock.seconds()), horizon=10)
    deadline.set(10)
    clock.advance(4)
    deadline.set(10)  # moved later: the pending call fires early and re-arms for the rest
    clock.advance(6)
    assert fired == []
    clock.advance(3.9)
    assert fired == []
    clock.advance(0.1)
    assert fired == [14]
    deadline.set(5)
    deadline.stop()
    clock.advance(10)
    assert fired == [14] and clock.getDelayedCalls() == []


_OPS = st.lists(st.one_of(
    st.tuples(st.just("call"), st.sampled_from([0.5, 1.0, 2.5, 7.0, 60.0])),
    st.tuples(st.just("cancel"), st.integers(0, 40)),
    st.tuples(st.just("advance"), st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.5, 7.0])),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_OPS)
def test_random_schedules_are_made_as_the_reactor_makes_them(ops):
    """The same calls, cancels and clock moves on a Clock and on SharedTimers over another
    Clock: the same calls made, at the same times, in the same order."""
    results = []
    for shared in (False, True):
        clock = Clock()
        timers = SharedTimers(clock) if shared else clock
        made: list[tuple[int, float]] = []
        calls = []
        for op, value in ops:
            if op == "call":
                number = len(calls)
                calls.append(timers.callLater(value, lambda number=number: made.append((number, clock.seconds()))))
            elif op == "cancel":
                if value < len(calls) and calls[value].active():
                    calls[value].cancel()
            else:
                clock.advance(value)
        clock.advance(100)
        results.append(made)
        assert clock.getDelayedCalls() == []
    reactor_made, shared_made = results
    assert sorted(shared_made) == sorted(reactor_made)  # each call made, at the same time
    assert [time for _, time in shared_made] == sorted(time for _, time in shared_made)
    for time in {time for _, time in shared_made}:  # calls of one length due together: in order
        numbers = [number for number, at in shared_made if at == time]
        for length in {value for op, value in ops if op == "call"}:
            mine = [n for n in numbers if ops_lengths(ops)[n] == length]
            assert mine == sorted(mine)


def ops_lengths(ops) -> list[float]:
    return [value for op, value in ops if op == "call"]


def test_connections_header_timeouts_share_a_reactor_call():
    clock = Clock()
    factory = HTTP1Factory(lambda protocol, request: None, ServerSettings(header_timeout=10), clock=clock)
    protocols = []
    for port in range(5):
        protocol = factory.buildProtocol(IPv4Address("TCP", "10.0.0.1", 4000 + port))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", 4000 + port),
                                    hostAddress=IPv4Address("TCP", "10.0.0.2", 80))
        protocol.makeConnection(transport)
        protocols.append((protocol, transport))
        clock.advance(1)
    assert len(clock.getDelayedCalls()) == 2  # the first connection's, and the others' shared one
    clock.advance(5.5)  # t = 10.5: the first connection's 10 s are up
    assert protocols[0][1].value().startswith(b"HTTP/1.1 408 ")
    assert protocols[1][1].value() == b""
    clock.advance(1)
    assert protocols[1][1].value().startswith(b"HTTP/1.1 408 ")
    for protocol, _ in protocols:
        protocol.connectionLost(None)
    assert clock.getDelayedCalls() == []
