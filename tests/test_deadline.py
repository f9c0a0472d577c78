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


def test_moving_later_schedules_nothing_and_a_set_after_stop_schedules_again():
    clock, fired = Clock(), []
    deadline = Deadline(clock, lambda: fired.append(clock.seconds()), horizon=60)
    deadline.set(5)
    (call,) = clock.getDelayedCalls()
    deadline.set(30)  # later than the pending call: it fires early and re-arms
    assert clock.getDelayedCalls() == [call] and call.getTime() == 5
    clock.advance(5)
    (rearmed,) = clock.getDelayedCalls()
    assert rearmed is not call and rearmed.getTime() == 30 and fired == []
    clock.advance(25)
    assert fired == [30] and clock.getDelayedCalls() == []
    deadline.stop()
    deadline.set(1)  # after stop, nothing pending: a new call (whose callback is let go)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(1)
    assert fired == [30]


def test_a_set_after_the_call_fired_schedules_a_new_one():
    clock, fired = Clock(), []
    deadline = Deadline(clock, lambda: fired.append(clock.seconds()), horizon=60)
    deadline.set(1)
    clock.advance(1)
    assert fired == [1] and clock.getDelayedCalls() == []
    deadline.set(2)
    assert [c.getTime() for c in clock.getDelayedCalls()] == [3]
    clock.advance(2)
    assert fired == [1, 3]


def test_the_horizon_bounds_how_far_ahead_the_pending_call_is():
    clock, fired = Clock(), []
    deadline = Deadline(clock, lambda: fired.append(clock.seconds()), horizon=10)
    deadline.set(25)
    assert [c.getTime() for c in clock.getDelayedCalls()] == [10]
    clock.advance(10)
    assert [c.getTime() for c in clock.getDelayedCalls()] == [20]
    clock.advance(10)
    assert [c.getTime() for c in clock.getDelayedCalls()] == [25]
    clock.advance(5)
    assert fired == [25]


def test_at_is_when_it_is_due_and_none_when_not_armed():
    """``at`` (read by the request path instead of ``armed``'s property): the clock's time the
    callback is due, None when cleared, stopped or fired."""
    clock, fired = Clock(), []
    deadline = Deadline(clock, lambda: fired.append(1), horizon=10)
    assert deadline.at is None and not deadline.armed
    clock.advance(5)
    deadline.set(30)
    assert deadline.at == 35 and deadline.armed
    deadline.clear()
    assert deadline.at is None and not deadline.armed
    deadline.set(2)
    clock.advance(2)
    assert fired == [1] and deadline.at is None
    deadline.set(4)
    deadline.stop()
    assert deadline.at is None
