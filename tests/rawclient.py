"""Raw-socket helpers for the attack, fault and fuzz suites: send bytes, read what comes back.

``exchange`` reports whether the server closed the connection (as opposed to going quiet),
and ``parse_responses`` splits a byte stream into HTTP/1.1 responses using their framing,
so a test can check how many responses came back and that none is complete-looking when
it should be truncated.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


@dataclass
class Reply:
    data: bytes
    closed: bool  # the server closed (EOF or reset) before ``timeout`` passed quietly
    reset: bool = False

    @property
    def responses(self) -> list["Parsed"]:
        return parse_responses(self.data)[0]

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.responses]


@dataclass
class Parsed:
    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = True

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def exchange(port: int, data: bytes | list[bytes], timeout: float = 5.0, pause: float = 0.0,
             shutdown_write: bool = False) -> Reply:
    """Send ``data`` (pieces separated by ``pause`` seconds) and read until close or quiet."""
    pieces = [data] if isinstance(data, bytes) else list(data)
    chunks: list[bytes] = []
    closed = reset = False
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            for index, piece in enumerate(pieces):
                if index and pause:
                    time.sleep(pause)
                sock.sendall(piece)
            if shutdown_write:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            reset = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                piece = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = reset = True
                break
            if not piece:
                closed = True
                break
            chunks.append(piece)
    return Reply(b"".join(chunks), closed or reset, reset)


def parse_responses(data: bytes, no_body=()) -> tuple[list[Parsed], bytes]:
    """Split ``data`` into responses; the last may be incomplete (``complete`` False).

    ``no_body``: indexes of responses to HEAD requests (framing headers but no body)."""
    out: list[Parsed] = []
    rest = data
    while rest:
        end = rest.find(b"\r\n\r\n")
        if end < 0 or not rest.startswith(b"HTTP/1."):
            break
        lines = rest[:end].split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
        response = Parsed(status, headers)
        rest = rest[end + 4 :]
        names = dict(headers)
        if status < 200 or status in (204, 304) or len(out) in no_body:
            pass
        elif b"content-length" in names:
            length = int(names[b"content-length"])
            response.body = rest[:length]
            response.complete = len(rest) >= length
            rest = rest[length:]
        elif names.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = []
            response.complete = False
            while True:
                line_end = rest.find(b"\r\n")
                if line_end < 0:
                    break
                size = int(rest[:line_end].split(b";")[0], 16)
                if len(rest) < line_end + 2 + size + 2:
                    break
                body.append(rest[line_end + 2 : line_end + 2 + size])
                rest = rest[line_end + 2 + size + 2 :]
                if size == 0:
                    response.complete = True
                    break
            response.body = b"".join(body)
        else:
            response.body, rest = rest, b""
        out.append(response)
        if not response.complete:
            break
    return out, rest


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc/PID/status (VmRSS, KiB)."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    import os

    return len(os.listdir(f"/proc/{pid}/fd"))
