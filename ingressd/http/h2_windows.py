"""HTTP/2 flow control on what a peer sends us (RFC 9113 6.9): one receive window and when to reopen it.

``ReceiveWindow`` is h2's ``WindowManager`` policy, which the client side's WINDOW_UPDATE frames
follow today (tests/test_h2_windows.py drives both with the same calls): a DATA frame shrinks
the window (below zero is a FLOW_CONTROL_ERROR); the bytes the application has handed on are
counted, and they are given back in one increment once they reach half the window, or, with the
window shut, more than min(1024, a quarter of it). One per stream and one for the connection;
whether an error is the stream's or the connection's is the caller's to say.
"""

from __future__ import annotations

LARGEST_WINDOW = 2**31 - 1


class FlowControlError(Exception):
    """The peer sent more than the window allowed, or opened it beyond 2^31-1."""


class ReceiveWindow:
    __slots__ = ("size", "largest", "_processed")

    def __init__(self, size: int):
        if not 0 <= size <= LARGEST_WINDOW:
            raise ValueError(f"window size {size}")
        self.size = size  # what the peer may still send
        self.largest = size  # the window's size at its widest: what reopening aims at
        self._processed = 0  # handed on and not given back yet

    def consumed(self, size: int) -> None:
        """The peer sent ``size`` flow-controlled bytes."""
        self.size -= size
        if self.size < 0:
            raise FlowControlError("Flow control window shrunk below 0")

    def opened(self, size: int) -> None:
        """The window was widened by ``size`` other than by ``processed`` (a SETTINGS change)."""
        self.size += size
        if self.size > LARGEST_WINDOW:
            raise FlowControlError(f"Flow control window mustn't exceed {LARGEST_WINDOW}")
        if self.size > self.largest:
            self.largest = self.size

    def processed(self, size: int) -> int:
        """``size`` bytes were handed on: the WINDOW_UPDATE increment to send now, or 0."""
        processed = self._processed + size
        self._processed = processed
        if not processed:
            return 0
        largest = self.largest
        if processed >= largest // 2 or (self.size == 0 and processed > min(1024, largest // 4)):
            increment = min(processed, largest - self.size)
            self._processed = 0
            self.size += increment
            return increment
        return 0
