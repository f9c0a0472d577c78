"""WebSocket over HTTP/2 (RFC 8441 Extended CONNECT), as the HTTP/1.1 upgrade a backend expects.

A client that saw ``SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`` may open a WebSocket on a stream:
``:method CONNECT``, ``:protocol websocket``, ``:scheme``, ``:path``, ``:authority``,
``sec-websocket-version`` (and ``-protocol``/``-extensions``), but no ``sec-websocket-key``;
the server answers ``:status 200`` and the stream's DATA frames carry the WebSocket bytes.

The backend is asked the HTTP/1.1 way (RFC 6455): ``GET`` with ``Upgrade: websocket`` and a
fresh random ``Sec-WebSocket-Key``. Here ingressd is the WebSocket client the backend talks to,
so it checks the backend's ``Sec-WebSocket-Accept`` against that key before telling the client
200 (an HTTP/1.1 client checks it itself). The rest of the request path (route, features, the
tunnel after the backend's 101) is the one HTTP/1.1 WebSockets take.
"""

from __future__ import annotations

import base64
import hashlib
import os

WEBSOCKET = b"websocket"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3


def new_key() -> bytes:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64 (RFC 6455 4.1)."""
    return base64.b64encode(os.urandom(16))


def accept_for(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` a backend must answer ``key`` with (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def upgrade_headers(pairs: list[tuple[bytes, bytes]], key: bytes) -> list[tuple[bytes, bytes]]:
    """The request's fields as an HTTP/1.1 upgrade request's: ``upgrade: websocket`` (what marks
    a WebSocket request on the request path) and our own key in place of any the client sent."""
    fields = [(name, value) for name, value in pairs if name != b"sec-websocket-key"]
    fields.append((b"upgrade", WEBSOCKET))
    fields.append((b"sec-websocket-key", key))
    return fields


def accepted_head(headers, key: bytes) -> list[tuple[bytes, bytes]] | None:
    """The backend's 101 headers to relay in the client's ``:status 200`` (without
    ``sec-websocket-accept``, which is about our key), or None when that accept is wrong."""
    accept = None
    relayed = []
    for name, value in headers:
        if name == b"sec-websocket-accept":
            if accept is not None:
                return None  # RFC 6455 4.1: more than one is a failed handshake
            accept = value.strip()
        else:
            relayed.append((name, value))
    if accept != accept_for(key):
        return None
    return relayed
