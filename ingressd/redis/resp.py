"""RESP2, Redis's wire protocol: commands encoded, replies parsed incrementally (pure, no I/O)."""

from __future__ import annotations


class ReplyError(Exception):
    """An error reply (``-ERR ...``, ``-NOSCRIPT ...``): the server refused the command."""

    @property
    def code(self) -> str:
        return str(self.args[0]).split(" ", 1)[0] if self.args else ""


class ProtocolError(Exception):
    """Bytes that are not RESP2: the connection cannot be trusted any more."""


def encode(*args) -> bytes:
    """One command as a RESP array of bulk strings (str, bytes and int arguments)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode("utf-8")
        elif isinstance(arg, int):
            arg = b"%d" % arg
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


_MAX_BULK = 512 * 1024 * 1024
_MAX_DEPTH = 8


class ReplyParser:
    """Bytes in (``feed``), complete replies out (``replies``): bytes, int, str (simple),
    None (nil), lists, or ``ReplyError`` instances for error replies."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list:
        self._buffer += data
        replies = []
        while True:
            parsed = self._parse(0, 0)
            if parsed is None:
                break
            reply, end = parsed
            del self._buffer[:end]
            replies.append(reply)
        return replies

    def _line(self, at: int) -> tuple[bytes, int] | None:
        end = self._buffer.find(b"\r\n", at)
        if end < 0:
            return None
        return bytes(self._buffer[at:end]), end + 2

    def _parse(self, at: int, depth: int):
        if at >= len(self._buffer):
            return None
        if depth > _MAX_DEPTH:
            raise ProtocolError("replies nested too deep")
        kind = self._buffer[at:at + 1]
        line = self._line(at + 1)
        if line is None:
            return None
        text, after = line
        if kind == b"+":
            return text.decode("utf-8", "replace"), after
        if kind == b"-":
            return ReplyError(text.decode("utf-8", "replace")), after
        try:
            number = int(text)
        except ValueError:
            raise ProtocolError(f"not a number: {text[:40]!r}") from None
        if kind == b":":
            return number, after
        if kind == b"$":
            if number < 0:
                return None, after
            if number > _MAX_BULK:
                raise ProtocolError("bulk string too long")
            if len(self._buffer) < after + number + 2:
                return None
            return bytes(self._buffer[after:after + number]), after + number + 2
        if kind == b"*":
            if number < 0:
                return None, after
            items = []
            for _ in range(number):
                parsed = self._parse(after, depth + 1)
                if parsed is None:
                    return None
                item, after = parsed
                items.append(item)
            return items, after
        raise ProtocolError(f"unknown reply type {kind!r}")
