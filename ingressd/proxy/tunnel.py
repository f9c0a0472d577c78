"""WebSocket passthrough: after the backend's 101, splice client and backend byte streams.

Backpressure both ways (a slow reader pauses the other side's socket), an idle timeout
per direction (``proxy-read-timeout`` for backend → client, ``proxy-send-timeout`` for
client → backend, as nginx), and a close on either side closes the other. A tunnel holds
its two connections directly, so a configuration change never touches it.
"""

from __future__ import annotations

from typing import Any, Callable


class Tunnel:
    def __init__(self, client, backend, clock: Any, read_timeout: float, send_timeout: float,
                 on_close: Callable[[], None]):
        self.client = client  # interfaces.RawStream (an HTTP/1 client connection)
        self.backend = backend  # interfaces.UpstreamConnection
        self.clock = clock
        self.read_timeout = read_timeout
        self.send_timeout = send_timeout
        self.on_close = on_close
        self.closed = False
        self._read_timer = None
        self._send_timer = None
        self.bytes_up = 0
        self.bytes_down = 0

    def start(self, pending: list[bytes] | None, backend_rest: bytes) -> None:
        self.client.divert(self)
        self.backend.divert(self)
        self.client.resume_reading()
        self._read_timer = self.clock.callLater(self.read_timeout, self._idle, "read")
        self._send_timer = self.clock.callLater(self.send_timeout, self._idle, "send")
        if backend_rest:
            self.backend_data(backend_rest)
        for data in pending or ():
            self.client_data(data)

    def client_data(self, data: bytes) -> None:
        if self.closed:
            return
        self.bytes_up += len(data)
        if self._send_timer is not None:
            self._send_timer.reset(self.send_timeout)
        self.backend.write_raw(data)

    def backend_data(self, data: bytes) -> None:
        if self.closed:
            return
        self.bytes_down += len(data)
        if self._read_timer is not None:
            self._read_timer.reset(self.read_timeout)
        self.client.write_raw(data)

    # flow control: a slow client pauses the backend socket, and the reverse
    def client_paused(self) -> None:
        self.backend.pause_reading()

    def client_resumed(self) -> None:
        self.backend.resume_reading()

    def backend_paused(self) -> None:
        self.client.pause_reading()

    def backend_resumed(self) -> None:
        self.client.resume_reading()

    def _idle(self, direction: str) -> None:
        if direction == "read":
            self._read_timer = None
        else:
            self._send_timer = None
        self.close()

    def client_lost(self) -> None:
        self.close()

    def backend_lost(self) -> None:
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for timer in (self._read_timer, self._send_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._read_timer = self._send_timer = None
        self.backend.close()
        self.client.lose_connection()
        self.on_close()
