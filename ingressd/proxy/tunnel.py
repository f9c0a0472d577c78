"""WebSocket passthrough: after the backend's 101, splice client and backend byte streams.

Backpressure both ways (a slow reader pauses the other side's socket), an idle timeout
per direction (``proxy-read-timeout`` for backend → client, ``proxy-send-timeout`` for
client → backend, as nginx), and a close on either side closes the other. A tunnel holds
its two connections directly, so a configuration change never touches it.

When the server shuts down and ``--shutdown-grace`` is over, ``going_away`` ends the
WebSocket cleanly: a close frame with code 1001 ("going away", RFC 6455 7.4.1) to the client
(unmasked, as a server sends) and to the backend (masked, as a client sends), then the
close. The bytes are relayed as they come, so each direction's frame boundaries are
followed (``FrameCursor``): a close frame is only put between two frames, never inside one.
"""

from __future__ import annotations

import os
import struct
from typing import Any, Callable

GOING_AWAY = 1001


def close_frame(code: int, mask: bytes | None = None) -> bytes:
    """A WebSocket close frame with ``code`` (masked when ``mask``, 4 bytes, is given)."""
    payload = struct.pack("!H", code)
    if mask is None:
        return b"\x88" + bytes((len(payload),)) + payload
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return b"\x88" + bytes((0x80 | len(payload),)) + mask + masked


class FrameCursor:
    """Follows WebSocket frame boundaries in one direction of a byte stream.

    ``at_boundary`` is true between two frames. It reads only frame headers (the first two
    bytes, an extended length, a mask key) and skips payloads by their length.
    """

    __slots__ = ("_head", "_need", "_payload_left")

    def __init__(self) -> None:
        self._head = b""  # a frame header read so far
        self._need = 2  # header bytes needed before the payload length is known
        self._payload_left = 0

    @property
    def at_boundary(self) -> bool:
        return not self._head and self._payload_left == 0

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        position, end = 0, len(data)
        while position < end:
            if self._payload_left:
                step = min(self._payload_left, end - position)
                self._payload_left -= step
                position += step
                continue
            take = min(self._need - len(self._head), end - position)
            self._head += bytes(view[position:position + take])
            position += take
            if len(self._head) < self._need:
                return
            self._advance_head()

    def _advance_head(self) -> None:
        head = self._head
        length = head[1] & 0x7F
        masked = head[1] & 0x80
        extended = 2 if length == 126 else 8 if length == 127 else 0
        need = 2 + extended + (4 if masked else 0)
        if len(head) < need:
            self._need = need
            return
        if extended == 2:
            length = struct.unpack("!H", head[2:4])[0]
        elif extended == 8:
            length = struct.unpack("!Q", head[2:10])[0]
        self._payload_left = length
        self._head = b""
        self._need = 2


class Tunnel:
    def __init__(self, client, backend, clock: Any, read_timeout: float, send_timeout: float,
                 on_close: Callable[[], None]):
        self.client = client  # interfaces.RawStream (an HTTP/1 connection, or an HTTP/2 stream)
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
        self._up = FrameCursor()  # client → backend
        self._down = FrameCursor()  # backend → client

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
        self._up.feed(data)
        self.backend.write_raw(data)

    def backend_data(self, data: bytes) -> None:
        if self.closed:
            return
        self.bytes_down += len(data)
        if self._read_timer is not None:
            self._read_timer.reset(self.read_timeout)
        self._down.feed(data)
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

    def going_away(self) -> None:
        """The server is shutting down: close code 1001 to both sides (where a frame may be
        put: between two frames), then close both connections."""
        if self.closed:
            return
        if self._down.at_boundary:
            self.client.write_raw(close_frame(GOING_AWAY))
        if self._up.at_boundary:
            self.backend.write_raw(close_frame(GOING_AWAY, mask=os.urandom(4)))
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
