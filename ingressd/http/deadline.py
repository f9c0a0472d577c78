"""A timeout that costs almost nothing to move: the request path sets one per request.

Twisted's ``DelayedCall.reset`` to an earlier time scans the reactor's list of timers, and
a cancel plus a new ``callLater`` per request adds up. A ``Deadline`` keeps at most one
pending call, scheduled no further than ``horizon`` ahead; moving the deadline only
stores a number. When the call fires early it re-arms itself for what is left; it never
fires late.
"""

from __future__ import annotations

from typing import Any, Callable

_NEVER = float("inf")


def _nothing() -> None:
    pass


class Deadline:
    # ``at``: when the callback is due (the clock's time), None when not armed: read directly
    # by the request path's owners (an attribute, not ``armed``'s property call), and set to
    # None by them directly where a request clears it (``clear``'s one line, without its call);
    # set to a time only here.
    __slots__ = ("_seconds", "_call_later", "_callback", "_horizon", "at", "_call", "_due")

    def __init__(self, clock: Any, callback: Callable[[], None], horizon: float = 3600.0):
        # The clock's two methods, bound once: ``set`` runs several times per request.
        self._seconds = clock.seconds
        self._call_later = clock.callLater
        self._callback = callback
        self._horizon = horizon
        self.at: float | None = None
        self._call = None
        self._due = _NEVER  # when the pending call fires (its own getTime()); none: never

    @property
    def armed(self) -> bool:
        return self.at is not None

    def set(self, seconds: float) -> None:
        """Call back ``seconds`` from now (replacing any earlier setting)."""
        at = self.at = self._seconds() + seconds
        if self._due > at:  # no pending call, or it would be late: schedule a sooner one
            self._schedule(seconds)

    def _schedule(self, seconds: float) -> None:
        call = self._call
        if call is not None:
            call.cancel()
        self._call = call = self._call_later(min(seconds, self._horizon), self._fire)
        self._due = call.getTime()

    def clear(self) -> None:
        """No callback until ``set`` again (a pending call fires once and does nothing)."""
        self.at = None

    def stop(self) -> None:
        """Clear and drop the pending call (the owner is going away). The callback is let
        go too: it is usually the owner's bound method, and owner and deadline would
        otherwise be a reference cycle left to the cyclic garbage collector."""
        self.at = None
        self._callback = _nothing
        self._due = _NEVER
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _fire(self) -> None:
        self._call = None
        self._due = _NEVER
        at = self.at
        if at is None:
            return
        remaining = at - self._seconds()
        if remaining > 0:
            self._schedule(remaining)
            return
        self.at = None
        self._callback()
