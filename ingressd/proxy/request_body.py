"""A request body held back until it is complete (nginx's ``proxy_request_buffering on``).

The exchange reads the whole body before it connects to a backend, so a body that will be
refused (over ``proxy-body-size``) or abandoned by its client never reaches a backend, not
even in part. The first ``MEMORY_BOUND`` bytes stay in memory; the rest is spilled to an
anonymous temporary file (nginx's ``client_body_temp``), so a large allowed body costs disk,
not memory. Once a backend is connected, the body is replayed piece by piece as fast as the
backend takes it (``next_piece`` is called while the backend is not pushing back), and again
from the start (``rewind``) when the request goes on to another endpoint (proxy-next-upstream).

nginx's ``client_body_buffer_size`` is 8k/16k; 64 KiB here keeps every ordinary form or JSON
body in memory (a file per request costs far more in Python than in C).
"""

from __future__ import annotations

import tempfile
from typing import IO

MEMORY_BOUND = 65536  # bytes kept in memory before the body goes to a temporary file
PIECE = 65536  # bytes read back from the file per piece sent


class BufferedBody:
    """The body read so far: ``add`` while it arrives, then ``next_piece`` until it returns b""."""

    __slots__ = ("size", "limit", "_memory", "_memory_bytes", "_file", "_directory", "_reading", "_at")

    def __init__(self, limit: int = 0, directory: str | None = None):
        self.size = 0  # bytes added
        self.limit = limit  # the largest body accepted (0: unlimited)
        self._memory: list[bytes] = []
        self._memory_bytes = 0
        self._file: IO[bytes] | None = None
        self._directory = directory
        self._reading = False
        self._at = 0  # the next piece in memory to send

    @property
    def over_limit(self) -> bool:
        return bool(self.limit) and self.size > self.limit

    @property
    def spilled(self) -> bool:
        """Part of the body is in a temporary file."""
        return self._file is not None

    def add(self, data: bytes) -> bool:
        """Keep ``data``; False (and nothing kept) once the body is over the limit."""
        self.size += len(data)
        if self.over_limit:
            self.discard()
            return False
        if self._file is None and self._memory_bytes + len(data) <= MEMORY_BOUND:
            self._memory.append(data)
            self._memory_bytes += len(data)
        else:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="ingressd-body-", dir=self._directory)
            self._file.write(data)
        return True

    def next_piece(self) -> bytes:
        """The next piece of the body, in order; b"" at the end (kept until ``discard``)."""
        if self._at < len(self._memory):
            self._at += 1
            return self._memory[self._at - 1]
        file = self._file
        if file is None:
            return b""
        if not self._reading:
            file.flush()
            file.seek(0)
            self._reading = True
        return file.read(PIECE)

    def rewind(self) -> None:
        """Send it again from the start (the next ``next_piece`` is the first)."""
        self._at = 0
        self._reading = False

    def discard(self) -> None:
        """Drop what is held (the temporary file goes with its last reference)."""
        self._memory = []
        self._memory_bytes = 0
        self._at = 0
        if self._file is not None:
            self._file.close()
            self._file = None
