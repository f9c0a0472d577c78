"""Deadline: moves cheaply, never fires late, fires early only to re-arm."""

from twisted.internet.task import Clock

from ingressd.http.deadline import Deadline


def test_fires_on_time_after_moves():
    clock, fired = Clock(), []
    deadline = Deadline(clock, lambda: fired.append(clock.seconds()), horizon=10)
    deadline.set(60)
    clock.advance(30)
    deadline.set(60)  # now due at 90
    clock.advance(59)
    assert fired == []
    clock.advance(1)
    assert fired == [90]
    assert not deadline.armed


def test_moving_sooner_replaces_the_pending_call():
    clock, fired = Clock(), []
    deadline = Deadline(clock, lambda: fired.append(clock.seconds()))
    deadline.set(75)
    deadline.set(5)
    clock.advance(5)
    assert fired == [5]
    assert len(clock.getDelayedCalls()) == 0 or all(not c.active() for c in clock.getDelayedCalls())


def test_clear_and_stop():
    clock, fired = Clock(), []
    deadline = Deadline(clock, lambda: fired.append(1), horizon=5)
    deadline.set(5)
    deadline.clear()
    clock.advance(10)
    assert fired == []
    deadline.set(3)
    deadline.stop()
    clock.advance(10)
    assert fired == [] and clock.getDelayedCalls() == []


def test_one_pending_call_however_often_it_moves():
    clock = Clock()
    deadline = Deadline(clock, lambda: None, horizon=60)
    for _ in range(1000):
        deadline.set(60)
        clock.advance(0.01)
    assert len(clock.getDelayedCalls()) == 1
