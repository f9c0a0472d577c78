"""Bytes held in order: in memory up to a bound, then in an anonymous temporary file.

One queue for both directions of the request path: a request body read ahead of its
backend (``request_body``, nginx's ``client_body_buffer_size`` / ``client_body_temp``) and a
response read ahead of a slow client (``response_buffer``, nginx's ``proxy_buffers`` /
``proxy_max_temp_file_size``). Bytes may be added while others are taken: the file is written
and read at separate offsets (``os.pwrite``/``os.pread``), never seeked. Memory holds only
bytes older than everything in the file, so order is kept; once the file has been read to
its end it starts over at offset 0. The file is unlinked at once (``tempfile.TemporaryFile``)
and closed by ``close`` or when everything was taken and nothing more is expected.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from typing import IO

PIECE = 65536  # the most bytes ``take`` returns from the file at once


class SpillBuffer:
    """A FIFO of bytes: ``add`` at the end, ``take`` from the front. ``size`` is what it holds;
    ``in_memory`` and ``in_file`` say where. ``files_opened`` counts temporary files made."""

    __slots__ = ("memory_bound", "file_bound", "directory", "size", "in_memory", "files_opened",
                 "_memory", "_file", "_read_at", "_write_at")

    def __init__(self, memory_bound: int, directory: str | None = None, file_bound: int | None = None):
        self.memory_bound = memory_bound  # bytes held in memory before the file is used
        self.file_bound = file_bound  # most bytes in the file at once (None: unbounded; 0: no file)
        self.directory = directory  # where the temporary file is made (None: the system's)
        self.size = 0
        self.in_memory = 0
        self.files_opened = 0
        self._memory: deque[bytes] = deque()
        self._file: IO[bytes] | None = None
        self._read_at = 0
        self._write_at = 0

    @property
    def in_file(self) -> int:
        return self._write_at - self._read_at

    @property
    def spilled(self) -> bool:
        """A temporary file is open."""
        return self._file is not None

    @property
    def capacity(self) -> int | None:
        """The most bytes it should hold (memory and file); None: unbounded."""
        if self.file_bound is None:
            return None
        return self.memory_bound + self.file_bound

    @property
    def full(self) -> bool:
        capacity = self.capacity
        return capacity is not None and self.size >= capacity

    def add(self, data: bytes) -> None:
        """Keep ``data`` after everything held. Bytes beyond the memory bound go to the file
        (even beyond ``file_bound``: the caller stops adding once ``full``)."""
        if not data:
            return
        self.size += len(data)
        # Memory while the file holds nothing (its bytes would be newer), up to the bound; with
        # no file allowed, memory beyond the bound (the caller pushes back once ``full``).
        if self._write_at == self._read_at and (
                self.file_bound == 0 or self.in_memory + len(data) <= self.memory_bound):
            self._memory.append(data)
            self.in_memory += len(data)
            return
        file = self._file
        if file is None:
            file = self._file = tempfile.TemporaryFile(prefix="ingressd-", dir=self.directory, buffering=0)
            self.files_opened += 1
        view = memoryview(data)
        fd = file.fileno()
        while view:
            written = os.pwrite(fd, view, self._write_at)
            self._write_at += written
            view = view[written:]

    def take(self, most: int = PIECE) -> bytes:
        """Up to ``most`` bytes from the front (b"" when empty)."""
        memory = self._memory
        if memory:
            piece = memory.popleft()
            if len(piece) > most:
                memory.appendleft(piece[most:])
                piece = piece[:most]
            self.in_memory -= len(piece)
            self.size -= len(piece)
            return piece
        if self._write_at == self._read_at:
            return b""
        piece = os.pread(self._file.fileno(), min(most, self._write_at - self._read_at), self._read_at)
        self._read_at += len(piece)
        self.size -= len(piece)
        if self._read_at == self._write_at:  # read to its end: start over (kept for reuse)
            self._read_at = self._write_at = 0
        return piece

    def peek(self) -> bytes:
        """Everything held, as bytes, without taking it (a copy: a mirror's)."""
        data = b"".join(self._memory)
        if self._write_at != self._read_at:
            data += os.pread(self._file.fileno(), self._write_at - self._read_at, self._read_at)
        return data

    def read(self, offset: int, most: int = PIECE) -> bytes:
        """Up to ``most`` bytes from ``offset`` bytes after the front, without taking them (a
        body sent again to another endpoint); b"" past the end."""
        if offset < self.in_memory:
            at = 0
            for piece in self._memory:  # memory holds few pieces: it is bounded
                if offset < at + len(piece):
                    start = offset - at
                    return piece[start:start + most]
                at += len(piece)
        offset -= self.in_memory
        available = self._write_at - self._read_at - offset
        if available <= 0:
            return b""
        return os.pread(self._file.fileno(), min(most, available), self._read_at + offset)

    def close(self) -> None:
        """Drop what is held and close the file."""
        self._memory.clear()
        self.in_memory = self.size = 0
        self._read_at = self._write_at = 0
        if self._file is not None:
            self._file.close()
            self._file = None
