"""TLS facts for metrics and the access log: handshakes, failures, open connections, version, SNI.

``ObservedTLSFactory`` is the listener's ``TLSMemoryBIOFactory`` with counters; they are read
when metrics are scraped. ``tls_facts`` reads a connection's negotiated version and SNI
name from pyOpenSSL (each client connection caches it: ``tls()``).
"""

from __future__ import annotations

from types import MethodType
from typing import Any

from OpenSSL import SSL
from twisted.protocols.tls import TLSMemoryBIOFactory

from ingressd.tls.client_hello import ClientHelloFirst
from ingressd.tls.lean import LeanTLSProtocol


class _ObservedTLSProtocol(ClientHelloFirst):
    _observed = False

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        if not self._observed:
            handle = self.getHandle()
            if handle is not None and handle.get_finished() is not None:  # the handshake is done
                self._observed = True
                version = handle.get_protocol_version_name() or "unknown"
                counts = self.factory.handshakes
                counts[version] = counts.get(version, 0) + 1
                # From now on a read is the TLS layer's alone (no hello to wait for, nothing to
                # count): the reactor calls it directly (undone in connectionLost: no cycle left).
                self.dataReceived = MethodType(LeanTLSProtocol.dataReceived, self)

    def connectionLost(self, reason) -> None:
        self.__dict__.pop("dataReceived", None)
        factory = self.factory
        factory.connections -= 1
        if not self._observed and self.passthrough is None:
            factory.handshake_failures += 1  # includes clients that closed before finishing
            self._observed = True
        super().connectionLost(reason)


class ObservedTLSFactory(TLSMemoryBIOFactory):
    """``clock``: the reactor; a client that sends no ClientHello in ``hello_timeout``
    seconds is dropped (each connection waits for its hello: ``client_hello``)."""

    protocol = _ObservedTLSProtocol

    def __init__(self, *args, clock: Any, hello_timeout: float = 60.0, passthrough: Any = None,
                 reject_handshake: Any = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.clock = clock
        self.hello_timeout = hello_timeout
        self.passthrough = passthrough  # interfaces.TLSPassthrough (--enable-ssl-passthrough), or None
        # SNI name (None: none) → whether to refuse the handshake (ssl-reject-handshake), or None
        self.reject_handshake = reject_handshake
        self.handshakes: dict[str, int] = {}  # by protocol version ("TLSv1.3"…)
        self.handshake_failures = 0
        self.connections = 0  # open now
        self.accepted = 0

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        self.connections += 1
        self.accepted += 1
        return protocol


def tls_facts(transport) -> tuple[str, str]:
    """(TLS version, SNI name) of a connection's ``transport``, or ("", "") for plain HTTP."""
    handle = transport.getHandle() if hasattr(transport, "getHandle") else None
    if not isinstance(handle, SSL.Connection):
        return ("", "")
    try:
        name = handle.get_servername()
        return (handle.get_protocol_version_name() or "", name.decode("ascii", "replace") if name else "")
    except SSL.Error:
        return ("", "")
