"""Timed calls of one length that share one reactor call: the client connections' timeouts.

Every HTTP/1.1 connection arms its header timeout as it is made (``client_header_timeout``: the
same length for all), and nearly every one is closed before it fires. Through Twisted, that is a
``DelayedCall`` a connection, pushed on the reactor's heap and cancelled again (1.9 µs of the
connection's set-up and close, measured). Calls of one length made in time order fall due in
that order, so a queue per length (first in, first out) needs only one reactor call, for the
queue's first entry: arming is an append, cancelling marks the entry. The first call of a quiet
spell (the queue empty) is a reactor call of its own, so a lone connection costs what it costs
without the queue; the queue serves the connections that come while one waits.

``SharedTimers`` has the two methods of a clock that ``Deadline`` uses (``seconds`` and
``callLater``; its calls answer ``cancel``, ``active`` and ``getTime``), so a ``Deadline`` made
over it works as over the reactor. A call is never made later than the reactor would make it
(its queue's reactor call is set for its own time; a call whose time would come before the
queue's last one, as after the clock went back, gets a reactor call of its own), and the number
of queues is bounded (``max_queues``: lengths beyond it get reactor calls of their own).
"""

from __future__ import annotations

import math
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
            queue = self.queue
            queue.live -= 1
            if not queue.live:  # nothing left to call: no reactor call left behind
                queue.clear()
            elif len(queue.calls) > 64 and len(queue.calls) > 2 * queue.live:  # mostly cancelled: let them go
                queue.calls = deque(call for call in queue.calls if not call.done)


class _Queue:
    """The calls of one length, in the order they fall due; one reactor call for the first."""

    __slots__ = ("timers", "delay", "calls", "live", "reactor_call", "armed_for", "lone")

    def __init__(self, timers: "SharedTimers", delay: float):
        self.timers = timers
        self.delay = delay
        self.calls: deque[_Call] = deque()
        self.live = 0  # calls neither made nor cancelled
        self.reactor_call = None
        self.armed_for = 0.0  # the time the reactor call is for (a call due then is made)
        self.lone = None  # the reactor call made for the last call asked for with the queue empty

    def _arm_first(self) -> None:
        calls = self.calls
        while calls[0].done:  # (live > 0: a call not done is left)
            calls.popleft()
        self._arm(calls[0].time)

    def _arm(self, time: float, delay: float | None = None) -> None:
        """The reactor call for ``time`` (``delay`` from now when the caller knows it)."""
        self.armed_for = time
        clock = self.timers.clock
        if delay is None:
            # The reactor adds the delay to its clock again: (time - now) + now may miss ``time``
            # by its last bit, and a call set that bit late would wait for the next turn.
            now = clock.seconds()
            delay = time - now
            for _ in range(4):
                if now + delay <= time:
                    break
                delay = math.nextafter(delay, -math.inf)
        self.reactor_call = clock.callLater(max(0.0, delay), self._run)

    def clear(self) -> None:
        self.calls.clear()
        reactor_call, self.reactor_call = self.reactor_call, None
        if reactor_call is not None:
            reactor_call.cancel()

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
        if not queue.live:
            # Nothing waits in the queue: the first call of a quiet spell is a reactor call of its
            # own (a lone connection costs what it costs without the queue); the calls made while
            # it waits share the queue's.
            lone = queue.lone
            if lone is None or not lone.active():
                queue.lone = lone = self.clock.callLater(delay, func)
                return lone
        time = self.seconds() + delay
        calls = queue.calls
        if calls and calls[-1].time > time:  # the clock went back: not in order
            return self.clock.callLater(delay, func)
        call = _Call(time, func, queue)
        calls.append(call)
        queue.live += 1
        if queue.reactor_call is None:
            if queue.live == 1:  # the only one (the usual way an empty queue starts): its own delay
                queue._arm(time, delay)
            else:  # (made by a call of this queue as it runs)
                queue._arm_first()
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
