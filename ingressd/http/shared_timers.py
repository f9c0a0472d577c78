"""Timed calls of one length that share one reactor call: the client connections' timeouts.

Every HTTP/1.1 connection arms its header timeout as it is made (``client_header_timeout``: the
same length for all), and nearly every one is closed before it fires. Through Twisted, that is a
``DelayedCall`` a connection, pushed on the reactor's heap and cancelled again (1.9 µs of the
connection's set-up and close, measured). Calls of one length made in time order fall due in
that order, so a queue per length (first in, first out) needs only one reactor call, for the
queue's first entry: arming is an append, cancelling marks the entry.

``SharedTimers`` has the two methods of a clock that ``Deadline`` uses (``seconds`` and
``callLater``; its calls answer ``cancel``, ``active`` and ``getTime``), so a ``Deadline`` made
over it works as over the reactor. A call is never made later than the reactor would make it
(its queue's reactor call is set for its own time; a call whose time would come before the
queue's last one, as after the clock went back, gets a reactor call of its own), and the number
of queues is bounded (``max_queues``: lengths beyond it get reactor calls of their own).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from twisted.python import log


class _Call:
    """One call in a queue (``Deadline`` uses ``cancel``, ``active`` and ``getTime``)."""

    __slots__ = ("time", "func", "queue", "done")

    def __init__(self, time: float, func: Callable[[], None], queue: "_Queue"):
        self.time = time
        self.func = func
        self.queue = queue
        self.done = False  # called or cancelled

    def getTime(self) -> float:
        return self.time

    def active(self) -> bool:
        return not self.done

    def cancel(self) -> None:
        if not self.done:
            self.done = True
            self.func = None
            self.queue.cancelled()


class _Queue:
    """The calls of one length, in the order they fall due; one reactor call for the first."""

    __slots__ = ("timers", "delay", "calls", "live", "reactor_call", "armed_for")

    def __init__(self, timers: "SharedTimers", delay: float):
        self.timers = timers
        self.delay = delay
        self.calls: deque[_Call] = deque()
        self.live = 0  # calls neither made nor cancelled
        self.reactor_call = None
        self.armed_for = 0.0  # the time the reactor call is for (a call due then is made)

    def add(self, call: _Call) -> None:
        self.calls.append(call)
        self.live += 1
        if self.reactor_call is None:
            self._arm_first()

    def _arm_first(self) -> None:
        calls = self.calls
        while calls[0].done:  # (live > 0: a call not done is left)
            calls.popleft()
        self._arm(calls[0].time)

    def _arm(self, time: float) -> None:
        # The reactor adds the delay to its clock again: (time - now) + now may miss ``time`` by
        # its last bit, and a call set a bit late would wait for the next turn. Set a nanosecond
        # early instead; the call due then is made (``armed_for``).
        self.armed_for = time
        clock = self.timers.clock
        self.reactor_call = clock.callLater(max(0.0, time - clock.seconds() - 1e-9), self._run)

    def cancelled(self) -> None:
        self.live -= 1
        if not self.live:  # nothing left to call: no reactor call left behind
            self.calls.clear()
            if self.reactor_call is not None:
                self.reactor_call.cancel()
                self.reactor_call = None
        elif len(self.calls) > 64 and len(self.calls) > 2 * self.live:  # mostly cancelled: let them go
            self.calls = deque(call for call in self.calls if not call.done)

    def _run(self) -> None:
        self.reactor_call = None
        # Due: what the reactor's clock has reached, and at least the call this was set for
        # (the reactor computes its own time from a delay: it may differ in the last bit).
        due = max(self.timers.clock.seconds(), self.armed_for)
        while self.calls and self.calls[0].time <= due:  # (self.calls: a cancel may replace it)
            call = self.calls.popleft()
            if call.done:
                continue
            call.done = True
            self.live -= 1
            func, call.func = call.func, None
            try:
                func()
            except Exception:  # as a reactor call's: logged, the others are still made
                log.err(None, "ingressd: a timed call failed")
        if self.reactor_call is not None:  # a call made above added one to this queue and armed it
            return
        if self.live:
            self._arm_first()
        else:
            self.calls.clear()


class SharedTimers:
    """``seconds`` and ``callLater`` of ``clock``, calls of one length sharing one reactor call."""

    max_queues = 4

    def __init__(self, clock: Any):
        self.clock = clock
        self.seconds = clock.seconds
        self._queues: dict[float, _Queue] = {}

    def callLater(self, delay: float, func: Callable[[], None]):
        """Call ``func()`` in ``delay`` seconds; the call answers ``cancel``, ``active``, ``getTime``."""
        queue = self._queues.get(delay)
        if queue is None:
            queue = self._new_queue(delay)
            if queue is None:
                return self.clock.callLater(delay, func)
        time = self.seconds() + delay
        if queue.calls and queue.calls[-1].time > time:  # the clock went back: not in order
            return self.clock.callLater(delay, func)
        call = _Call(time, func, queue)
        queue.add(call)
        return call

    def _new_queue(self, delay: float) -> _Queue | None:
        """A queue for ``delay``, in place of an empty one when there are ``max_queues``; None
        when every queue has calls waiting (the lengths in use are usually one or two: the
        header timeout, a re-armed remainder now and then)."""
        queues = self._queues
        if len(queues) >= self.max_queues:
            empty = next((length for length, queue in queues.items() if not queue.live), None)
            if empty is None:
                return None
            del queues[empty]
        queue = queues[delay] = _Queue(self, delay)
        return queue

    def pending(self) -> int:
        """Calls waiting in the queues (for tests)."""
        return sum(queue.live for queue in self._queues.values())
