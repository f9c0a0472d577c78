"""The request body on its way to the backend: held whole first, or streamed as it arrives.

nginx's ``proxy_request_buffering on`` (the default): the exchange reads the whole body
before it connects to a backend, so a body that will be refused (over ``proxy-body-size``)
or abandoned by its client never reaches a backend, not even in part. The first
``memory_bound`` bytes (the route's ``client-body-buffer-size``) stay in memory; the rest is
spilled to an anonymous temporary file (``spill.SpillBuffer``, nginx's ``client_body_temp``),
so a large allowed body costs disk, not memory. Once a backend is connected, the body is
replayed piece by piece as fast as the backend takes it (``next_piece`` is called while the
backend is not pushing back), and again from the start (``rewind``) when the request goes on
to another endpoint (proxy-next-upstream): a held body is read, not taken.

``proxy_request_buffering off``: the same object holds only what the backend has not taken
yet (the exchange pauses the client while ``size`` is over a window), in memory.

nginx's ``client_body_buffer_size`` is 8k/16k; the server's default here is 64 KiB, which
keeps every ordinary form or JSON body in memory (a file per request costs far more in
Python than in C); the annotation sets it per route.
"""

from __future__ import annotations

from ingressd.proxy.spill import SpillBuffer

MEMORY_BOUND = 65536  # bytes kept in memory before the body goes to a temporary file (default)
PIECE = 65536  # bytes read back from the file per piece sent


class BufferedBody:
    """The body read so far: ``add`` while it arrives, then ``next_piece`` until it returns b""."""

    __slots__ = ("limit", "received", "retain", "_held", "_at")

    def __init__(self, limit: int = 0, directory: str | None = None, memory_bound: int | None = None,
                 retain: bool = True):
        self.limit = limit  # the largest body accepted (0: unlimited)
        self.received = 0  # bytes added in all
        # True: a held body, read (not taken) so it can be sent again; False: a streamed one,
        # taken as the backend takes it (only what the backend has not taken is held).
        self.retain = retain
        self._at = 0  # a held body: the offset of the next piece
        self._held = SpillBuffer(MEMORY_BOUND if memory_bound is None else memory_bound, directory)

    @property
    def size(self) -> int:
        """Bytes held now (added, not yet taken)."""
        return self._held.size

    @property
    def over_limit(self) -> bool:
        return bool(self.limit) and self.received > self.limit

    @property
    def spilled(self) -> bool:
        """Part of the body is in a temporary file."""
        return self._held.spilled

    @property
    def files_opened(self) -> int:
        return self._held.files_opened

    def add(self, data: bytes) -> bool:
        """Keep ``data``; False (and nothing kept) once the body is over the limit."""
        self.received += len(data)
        if self.over_limit:
            self.discard()
            return False
        self._held.add(data)
        return True

    def next_piece(self) -> bytes:
        """The next piece of the body, in order; b"" at the end (a held body is kept until
        ``discard``, to be sent again after ``rewind``)."""
        if self.retain:
            piece = self._held.read(self._at, PIECE)
            self._at += len(piece)
            return piece
        return self._held.take(PIECE)

    @property
    def exhausted(self) -> bool:
        """``next_piece`` has nothing more to give (until more is added, or ``rewind``)."""
        return self._at >= self._held.size if self.retain else not self._held.size

    def rewind(self) -> None:
        """Send a held body again from the start (the next ``next_piece`` is the first)."""
        self._at = 0

    def copy(self, limit: int) -> bytes | None:
        """The whole body as bytes, leaving it to be replayed (``next_piece``), or None when it
        is over ``limit`` bytes or part of it was taken already (a mirror's copy)."""
        if self.received > limit or self._held.size != self.received:
            return None
        return self._held.peek()

    def discard(self) -> None:
        """Drop what is held (and close the temporary file)."""
        self._at = 0
        self._held.close()
