"""A timeout that costs almost nothing to move: the request path sets one per request.

Twisted's ``DelayedCall.reset`` to an earlier time scans the reactor's list of timers, and
a cancel plus a new ``callLater`` per request adds up. A ``Deadline`` keeps at most one
pending call, scheduled no further than ``horizon`` ahead; moving the deadline only
stores a number. When the call fires early it re-arms itself for what is left; it never
fires late.
"""

from __future__ import annotations

from typing import Any, Callable


def _nothing() -> None:
    pass


class Deadline:
    __slots__ = ("_clock", "_callback", "_horizon", "_at", "_call")

    def __init__(self, clock: Any, callback: Callable[[], None], horizon: float = 3600.0):
        self._clock = clock
        self._callback = callback
        self._horizon = horizon
        self._at: float | None = None
        self._call = None

    @property
    def armed(self) -> bool:
        return self._at is not None

    def set(self, seconds: float) -> None:
        """Call back ``seconds`` from now (replacing any earlier setting)."""
        clock = self._clock
        at = clock.seconds() + seconds
        self._at = at
        call = self._call
        if call is None:
            self._call = clock.callLater(min(seconds, self._horizon), self._fire)
        elif call.getTime() > at:  # the pending call would be late: schedule a sooner one
            call.cancel()
            self._call = clock.callLater(min(seconds, self._horizon), self._fire)

    def clear(self) -> None:
        """No callback until ``set`` again (a pending call fires once and does nothing)."""
        self._at = None

    def stop(self) -> None:
        """Clear and drop the pending call (the owner is going away). The callback is let
        go too: it is usually the owner's bound method, and owner and deadline would
        otherwise be a reference cycle left to the cyclic garbage collector."""
        self._at = None
        self._callback = _nothing
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _fire(self) -> None:
        self._call = None
        at = self._at
        if at is None:
            return
        remaining = at - self._clock.seconds()
        if remaining > 0:
            self._call = self._clock.callLater(min(remaining, self._horizon), self._fire)
            return
        self._at = None
        self._callback()
