"""A response body on its way to the client: read ahead of a slow client, and paced.

nginx's ``proxy_buffering on`` (``proxy-buffering``): the backend's response is read as fast
as the backend sends it, whatever the client takes: what the client has not taken yet is
held, in memory up to ``proxy-buffers-number`` × ``proxy-buffer-size``, then in a temporary
file up to ``proxy-max-temp-file-size`` (``spill.SpillBuffer``); only when both are full is
the backend paused. So the backend connection is released as soon as the backend is done,
however slowly the client reads. Without holding (ingress-nginx's default ``off``) nothing
beyond the piece in hand is kept: the backend is paused while the client is.

nginx's ``limit_rate`` / ``limit_rate_after`` (``limit-rate``, ``limit-rate-after``): after the
first ``rate_after`` bytes, at most ``rate`` bytes per second, counted from the request's start
with one second's worth ahead as nginx does (``rate × (elapsed + 1)``); the writes wait on the
injected clock, and the backend is paused meanwhile (or read ahead, when holding).

The exchange creates one only for a route that asks for either (or a backend that says
``X-Accel-Buffering: yes``); every other response is written straight through.
"""

from __future__ import annotations

from typing import Any, Callable

from ingressd.interfaces import ClientSide
from ingressd.proxy.spill import SpillBuffer

PIECE = 65536  # the most bytes written to the client at once


class ResponseBuffer:
    """Between the backend's body and the client: ``write`` each piece, ``end`` once; the
    client side's ``client_paused``/``client_resumed`` come here; ``pause_upstream`` and
    ``resume_upstream`` stop and restart reading the backend."""

    def __init__(self, client: ClientSide, clock: Any, pause_upstream: Callable[[], None],
                 resume_upstream: Callable[[], None], *, hold: bool, memory: int = 16384,
                 file_bound: int = 0, directory: str | None = None, rate: int = 0, rate_after: int = 0,
                 started: float | None = None):
        self.client = client
        self.clock = clock
        self._pause_upstream = pause_upstream
        self._resume_upstream = resume_upstream
        self.hold = hold
        # Holding: memory, then the file; not holding: whatever was in hand when the client
        # or the pace stopped taking it (the backend is paused at once).
        self.held = SpillBuffer(memory, directory, file_bound) if hold else SpillBuffer(0, None, 0)
        self.rate = rate  # bytes per second; 0: no limit
        self.rate_after = rate_after
        self.started = clock.seconds() if started is None else started
        self.sent = 0  # bytes written to the client
        self.upstream_paused = False
        self._client_ready = True
        self._timer = None
        self._on_end: Callable[[], None] | None = None
        self._closed = False

    # -- from the backend -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.held.size and self._client_ready:
            budget = self._budget()
            if budget is None or budget >= len(data):  # the common case: straight through
                self.sent += len(data)
                self.client.write_body(data)
                self._check_upstream()
                return
        self.held.add(data)
        self._drain()

    def end(self, on_end: Callable[[], None]) -> None:
        """The backend's response is complete: ``on_end`` once the client was given all of it."""
        self._on_end = on_end
        if not self.held.size:
            self._ended()

    # -- from the client side ---------------------------------------------------------------

    def client_paused(self) -> None:
        self._client_ready = False
        self._check_upstream()

    def client_resumed(self) -> None:
        self._client_ready = True
        self._drain()

    def close(self) -> None:
        """The exchange is over (answered or abandoned): drop what is held."""
        self._closed = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self.held.close()

    # -- inside -----------------------------------------------------------------------------

    def _budget(self) -> int | None:
        """Bytes the pace allows now (None: no limit)."""
        rate = self.rate
        if not rate:
            return None
        elapsed = max(0.0, self.clock.seconds() - self.started)
        return int(self.rate_after + rate * (elapsed + 1)) - self.sent

    def _drain(self) -> None:
        held = self.held
        for _ in range(100000):  # bounded: each turn writes a piece or stops
            if not held.size or not self._client_ready or self._closed:
                break
            budget = self._budget()
            if budget is not None and budget <= 0:
                self._wait(-budget)
                break
            piece = held.take(PIECE if budget is None else min(PIECE, budget))
            self.sent += len(piece)
            self.client.write_body(piece)  # may pause the client at once
        if self._closed:
            return
        if not held.size and self._on_end is not None:
            self._ended()
            return
        self._check_upstream()

    def _wait(self, deficit: int) -> None:
        """Write again once the pace allows a useful piece (about a tenth of a second's worth)."""
        if self._timer is not None and self._timer.active():
            return
        step = max(1, min(16384, self.rate // 10))
        self._timer = self.clock.callLater((deficit + step) / self.rate, self._paced)

    def _paced(self) -> None:
        self._timer = None
        self._drain()

    def _check_upstream(self) -> None:
        held = self.held
        if self.hold:
            stop = held.full
        else:
            stop = bool(held.size) or not self._client_ready
        if stop and not self.upstream_paused:
            self.upstream_paused = True
            self._pause_upstream()
        elif not stop and self.upstream_paused:
            self.upstream_paused = False
            self._resume_upstream()

    def _ended(self) -> None:
        on_end, self._on_end = self._on_end, None
        self.held.close()
        if on_end is not None:
            on_end()
