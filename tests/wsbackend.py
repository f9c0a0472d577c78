"""A tiny RFC 6455 WebSocket echo backend for end-to-end tests: raw sockets, one thread per client.

``/refuse`` answers the upgrade with 403 (no switch); any other path switches protocols and
echoes every text and binary message (fragments reassembled), answers pings and closes.
The handshake heads it received are kept in ``handshakes`` for assertions.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _read_exact(conn: socket.socket, count: int) -> bytes:
    parts, got = [], 0
    while got < count:
        piece = conn.recv(min(count - got, 1 << 20))
        if not piece:
            raise ConnectionError("closed")
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)


def frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final frame (server frames are unmasked; pass ``mask`` for a client frame)."""
    length = len(payload)
    head = bytes([0x80 | opcode])
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def read_frame(conn: socket.socket) -> tuple[bool, int, bytes]:
    first, second = _read_exact(conn, 2)
    fin, opcode = bool(first & 0x80), first & 0x0F
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", _read_exact(conn, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", _read_exact(conn, 8))[0]
    mask = _read_exact(conn, 4) if second & 0x80 else None
    payload = _read_exact(conn, length)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return fin, opcode, payload


class WebSocketEcho:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.handshakes: list[tuple[str, dict[str, str]]] = []
        self.closes: list[bytes] = []  # the payload of each close frame a client sent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                piece = conn.recv(4096)
                if not piece:
                    return
                head += piece
            head, _, rest = head.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.handshakes.append((path, headers))
            if path.startswith("/refuse"):
                body = b"refused by backend"
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nX-Refused: yes\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
                return
            key = headers.get("sec-websocket-key", "").encode("latin-1")
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: %s\r\n\r\n" % accept)
            if rest:  # a client that sent frames before our 101 (not expected in these tests)
                conn.close()
                return
            message, message_opcode = [], 0
            while True:
                fin, opcode, payload = read_frame(conn)
                if opcode == 8:
                    self.closes.append(payload)
                    conn.sendall(frame(8, payload[:2]))
                    return
                if opcode == 9:
                    conn.sendall(frame(10, payload))
                    continue
                if opcode in (1, 2):
                    message, message_opcode = [payload], opcode
                elif opcode == 0:
                    message.append(payload)
                else:
                    continue
                if fin:
                    conn.sendall(frame(message_opcode, b"".join(message)))
        except (ConnectionError, OSError):
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
