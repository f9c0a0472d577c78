"""nginx's ``large_client_header_buffers NUMBER SIZE`` (ingress-nginx's default ``4 8k``): how
long a request head may be, the one limit both client sides apply.

nginx reads a request head line by line into buffers of SIZE bytes, at most NUMBER of them; a
line never spans two buffers. So a request line longer than one buffer is refused 414, a header
line longer than one buffer 400 ("Request Header Or Cookie Too Large"), and so is a head whose
lines do not all fit, packed in order, into NUMBER buffers. ``HeadBuffers`` follows that packing
for one HTTP/1.1 head; over HTTP/2 nginx counts a field's name and value (``fits_h2``).
(nginx's first, smaller buffer, ``client_header_buffer_size``, only holds a head that is short
anyway: whatever does not fit in it moves to these buffers.)
"""

from __future__ import annotations

from ingressd.features import parse_size

DEFAULT = (4, 8192)  # ingress-nginx's (and nginx's) "4 8k"
TOO_LARGE = 494  # nginx's NGX_HTTP_REQUEST_HEADER_TOO_LARGE: sent as 400 with its own page

def parse_header_buffers(text) -> tuple[int, int]:
    """``NUMBER SIZE`` ("4 8k") → (number, bytes); both at least 1, the size at most 1m (a head
    is held in memory)."""
    if isinstance(text, tuple):
        number, size = text
    else:
        parts = str(text).split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{text!r} is not NUMBER SIZE (as \"4 8k\")")
        number, size = int(parts[0]), parse_size(parts[1])
    if number < 1 or size < 1:
        raise ValueError(f"{text!r}: the number and the size must be at least 1")
    if number > 64 or size > 1024 * 1024:
        raise ValueError(f"{text!r}: at most 64 buffers of at most 1m")
    return number, size


class HeadBuffers:
    """One HTTP/1.1 request head read line by line (each line's length with its CRLF), packed
    into ``number`` buffers of ``size`` bytes as nginx packs them."""

    __slots__ = ("number", "size", "_used", "_room")

    def __init__(self, number: int, size: int):
        self.number = number
        self.size = size
        self._used = 0
        self._room = 0

    def fits(self, length: int) -> bool:
        """Take a line of ``length`` bytes; False when it fits in no buffer left."""
        if length <= self._room:
            self._room -= length
            return True
        if length > self.size or self._used >= self.number:
            return False
        self._used += 1
        self._room = self.size - length
        return True


def fits_h2(fields, number: int, size: int) -> bool:
    """An HTTP/2 header block as nginx reads it: no name or value longer than ``size``, and
    all names and values together at most ``number`` × ``size`` bytes (else nginx ends the
    connection: ENHANCE_YOUR_CALM)."""
    left = number * size
    for name, value in fields:
        if len(name) > size or len(value) > size:
            return False
        left -= len(name) + len(value)
        if left < 0:
            return False
    return True
