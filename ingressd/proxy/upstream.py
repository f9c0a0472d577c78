"""The upstream-protocol seam, protocol-independent parts: how a backend failure is told.

Each upstream protocol (``http1_upstream``: HTTP/1.1 in clear today) implements
``interfaces.UpstreamProtocol`` and its connections ``interfaces.UpstreamConnection``; the
``Proxy`` holds them by name and each route's ``UpstreamSettings.protocol`` picks one.
"""

from __future__ import annotations

# ``body_length`` of a request whose body's length is not known in advance (HTTP/1.1:
# sent chunked); None: no body; a number: that many bytes.
STREAMED = -1


class UpstreamError(Exception):
    """A backend failed. ``timeout`` → 504, otherwise 502; ``retryable`` when nothing was sent.

    ``cause`` is a short fixed word for metrics and logs (``connect_failed``, ``read_timeout``…).
    """

    def __init__(self, message: str, timeout: bool = False, retryable: bool = False, cause: str = ""):
        super().__init__(message)
        self.timeout = timeout
        self.retryable = retryable
        self.cause = cause or ("timeout" if timeout else "error")


class StreamedConnection:
    """What a streaming upstream connection (HTTP/1.1, FastCGI) shares: reading paused while the
    client is slow (the read timeout with it: it is about the backend, as nginx's), and when its
    read or send deadline passes, or it fails, its timers stopped, the connection aborted and its
    exchange (if it still has one) told once. The connection has ``exchange``, ``transport``,
    ``_read_paused``, ``_read_timeout``, ``_read_timer`` and ``_send_timer`` (``http.deadline.Deadline``)."""

    def stopProducing(self) -> None:
        pass

    def pause_reading(self) -> None:
        """The client is slow: stop reading the backend, and the read timeout with it."""
        if self.transport is not None:
            self.transport.pauseProducing()
        self._read_paused = True
        self._read_timer.clear()

    def resume_reading(self) -> None:
        if self.transport is not None:
            self.transport.resumeProducing()
        if self._read_paused:
            self._read_paused = False
            if self.exchange is not None:
                self._read_timer.set(self._read_timeout)

    def _read_timed_out(self) -> None:
        self._fail(UpstreamError("backend read timeout", timeout=True, cause="read_timeout"))

    def _send_timed_out(self) -> None:
        self._fail(UpstreamError("backend send timeout", timeout=True, cause="send_timeout"))

    def _stop_timers(self) -> None:
        self._read_timer.clear()
        self._send_timer.clear()

    def _fail(self, error: UpstreamError) -> None:
        exchange, self.exchange = self.exchange, None
        self._stop_timers()
        if self.transport is not None:
            self.transport.abortConnection()
        if exchange is not None:
            exchange.upstream_failed(self, error)
