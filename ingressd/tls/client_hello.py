"""The SNI name of a TLS connection, read from its ClientHello before OpenSSL sees it.

Why: OpenSSL resumes sessions (session ids and tickets) from the context a connection was
*created* on, before the SNI callback can switch it. Creating every connection on one
default context would let a session made for one host name be resumed for another, which
RFC 6066 §3 forbids (and which would become a bypass once hosts differ in client-certificate
requirements). So a TLS connection waits for its ClientHello, the name is read here, and
the connection is created on that host's own context (``CertificateStore.context_for_name``):
its own session cache and ticket keys. Anything else — no SNI, an unknown name, a hello that
cannot be read — starts on the default context, which resumes nothing.

``server_name`` is a pure function over the bytes received so far; ``ClientHelloFirst`` is
the TLS protocol (``lean.LeanTLSProtocol``) that holds the connection until the hello (or its timeout).
Once the name is known, the factory's ``passthrough`` (``interfaces.TLSPassthrough``, set
with ``--enable-ssl-passthrough``: ``ingressd.tls.passthrough``) may take the connection over
instead, with the held bytes, never terminating it. Then the factory's ``reject_handshake`` (a
callable of the name, set by the server from ``ssl-reject-handshake``) may refuse it: an
``unrecognized_name`` alert and the connection closed, as nginx's ``ssl_reject_handshake``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol
from zope.interface import alsoProvides

from ingressd.tls.lean import LeanTLSProtocol

MORE = object()  # not enough bytes yet
# A fatal unrecognized_name alert (RFC 6066 §3, 112) in a plaintext TLS record: what a handshake the
# factory's ``reject_handshake`` refuses is answered with, before OpenSSL sees it.
UNRECOGNIZED_NAME_ALERT = bytes((0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70))
# A ClientHello larger than this (post-quantum key shares make ~1.3 KB ones) is not waited
# for: the connection starts on the default context.
MAX_HELLO = 32 * 1024
_HANDSHAKE = 0x16
_CLIENT_HELLO = 0x01
_SERVER_NAME = 0x0000
_HOST_NAME = 0x00
_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")


def server_name(data: bytes | bytearray) -> Any:
    """The host name a ClientHello at the start of ``data`` asks for, lower-case; None when
    there is none or ``data`` is not a readable ClientHello; ``MORE`` when more bytes are
    needed to tell."""
    hello = _handshake_message(data)
    if hello is MORE or hello is None:
        return hello
    return _name_in(hello)


def _handshake_message(data: bytes | bytearray) -> Any:
    """The ClientHello's body, joined from the records it spans; MORE, or None."""
    body = bytearray()
    offset = 0
    needed = None
    while True:
        if len(data) < offset + 5:
            return MORE if len(data) < MAX_HELLO else None
        if data[offset] != _HANDSHAKE:
            return None
        length = (data[offset + 3] << 8) | data[offset + 4]
        if length == 0:
            return None
        end = offset + 5 + length
        if len(data) < end:
            return MORE if end <= MAX_HELLO else None
        body += data[offset + 5:end]
        offset = end
        if needed is None and len(body) >= 4:
            if body[0] != _CLIENT_HELLO:
                return None
            needed = 4 + ((body[1] << 16) | (body[2] << 8) | body[3])
            if needed > MAX_HELLO:
                return None
        if needed is not None and len(body) >= needed:
            return bytes(body[4:needed])


def _name_in(hello: bytes) -> str | None:
    at = 2 + 32  # client_version, random
    at = _skip(hello, at, 1)  # session_id
    at = _skip(hello, at, 2)  # cipher_suites
    at = _skip(hello, at, 1)  # compression_methods
    if at is None or at + 2 > len(hello):
        return None  # no extensions
    end = at + 2 + ((hello[at] << 8) | hello[at + 1])
    if end > len(hello):
        return None
    at += 2
    while at + 4 <= end:
        kind = (hello[at] << 8) | hello[at + 1]
        size = (hello[at + 2] << 8) | hello[at + 3]
        at += 4
        if at + size > end:
            return None
        if kind == _SERVER_NAME:
            return _host_name(hello[at:at + size])
        at += size
    return None


def _skip(data: bytes, at: int | None, width: int) -> int | None:
    """Past a vector whose length takes ``width`` bytes; None when it runs out."""
    if at is None or at + width > len(data):
        return None
    size = int.from_bytes(data[at:at + width], "big")
    at += width + size
    return at if at <= len(data) else None


def _host_name(extension: bytes) -> str | None:
    if len(extension) < 2:
        return None
    end = 2 + ((extension[0] << 8) | extension[1])
    at = 2
    while at + 3 <= min(end, len(extension)):
        kind = extension[at]
        size = (extension[at + 1] << 8) | extension[at + 2]
        name = extension[at + 3:at + 3 + size]
        if len(name) != size:
            return None
        if kind == _HOST_NAME:
            if not name or not all(byte in _NAME_BYTES for byte in name):
                return None
            return name.decode("ascii").lower().rstrip(".") or None
        at += 3 + size
    return None


class ClientHelloFirst(LeanTLSProtocol):
    """A TLS connection created only once its ClientHello has arrived (``server_name_hint``
    tells the connection creator the SNI name). The factory gives ``clock`` and
    ``hello_timeout``: a client that sends no hello in that time is dropped."""

    server_name_hint: str | None = None
    passthrough: Any = None  # what took the connection over (interfaces.PassedThrough), or None
    rejected = False  # refused before any handshake (the factory's reject_handshake)
    _held: bytearray | None = None  # the bytes received while the hello is incomplete
    _transport: Any = None
    _timer: Any = None

    def makeConnection(self, transport) -> None:
        self._transport = transport
        self._held = bytearray()
        factory = self.factory
        self._timer = factory.clock.callLater(factory.hello_timeout, self._timed_out)

    def dataReceived(self, data: bytes) -> None:
        held = self._held
        if held is None:
            if self.rejected:
                return  # closing: the rest of the hello is not read
            if self.passthrough is not None:
                self.passthrough.client_data(data)
                return
            super().dataReceived(data)
            return
        held += data
        name = server_name(held)
        if name is MORE:
            return
        self._start(name)

    def _start(self, name: str | None) -> None:
        held, self._held = self._held, None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        decide = getattr(self.factory, "passthrough", None)
        if decide is not None and name is not None:
            self.passthrough = decide.divert(name, self._transport, bytes(held))
            if self.passthrough is not None:
                alsoProvides(self, IHalfCloseableProtocol)  # a client's FIN is passed on, not a close
                return
        reject = getattr(self.factory, "reject_handshake", None)
        if reject is not None and reject(name):
            self.rejected = True
            self._transport.write(UNRECOGNIZED_NAME_ALERT)
            self._transport.loseConnection()
            return
        self.server_name_hint = name
        super().makeConnection(self._transport)
        if held:
            super().dataReceived(bytes(held))

    def getHandle(self):
        """The OpenSSL connection; None while the hello is awaited (there is none yet: a hello
        split across segments reached the handshake counters before it existed) or once the
        connection was passed through (there never is one)."""
        if self._held is not None or self.passthrough is not None or self.rejected:
            return None
        return super().getHandle()

    def _timed_out(self) -> None:
        self._timer = None
        self._transport.abortConnection()

    def readConnectionLost(self) -> None:  # only once passed through (IHalfCloseableProtocol)
        self.passthrough.client_read_lost()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason) -> None:
        if self.passthrough is not None:
            self.passthrough.client_lost()
            return
        if self._held is not None:  # gone before its hello: start, so the layers above end too
            self._start(None)
        if self.rejected:  # no TLS connection was ever made, nor the protocol above
            return
        super().connectionLost(reason)
