"""A TCP service port: each client connection spliced to one of the Service's endpoints.

The splice is ``tls.passthrough.Splice`` (bytes both ways with backpressure, half-close, the
next endpoint when a connect fails, drained like a tunnel); a connection here adds what
nginx's stream ``server`` does for ingress-nginx's TCP services: a PROXY protocol header
read from the client first (``decode``), one sent to the backend (``encode``: v1, as nginx's
``proxy_protocol on``), the next endpoint after a failed connect as ``proxy_next_upstream``,
``_tries`` and ``_timeout`` say (3 endpoints, 600 s in ingress-nginx), the idle timeout
(``proxy_timeout``, 600 s), a bound on the port's open connections, counters and an access-log
line when it ends (``log-format-stream``). The settings are the manager's ``StreamSettings``,
read per connection and per connect attempt, so a change applies without dropping any.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol, ServerFactory
from zope.interface import implementer

from ingressd.features import RoundRobin
from ingressd.http.proxy_protocol import MORE, InvalidHeader, parse
from ingressd.l4.proxy_protocol import v1_header
from ingressd.l4.table import L4Service
from ingressd.tls.passthrough import Splice


class PortCounters:
    """What /metrics shows per port (read at scrape time)."""

    def __init__(self) -> None:
        self.open = 0
        self.accepted = 0
        self.failed = 0  # closed without reaching an endpoint (or no header)
        self.refused = 0  # over the port's connection limit
        self.bytes_received = 0  # from clients
        self.bytes_sent = 0  # to clients


class TCPPort(ServerFactory):
    """One listed TCP port (the listener's factory). ``service`` is replaced when the table
    changes; connections already open keep the endpoint they have.

    ``hub``: the manager (``clock``, ``connect``, ``connect_timeout``, ``idle_timeout``,
    ``header_timeout``, ``max_connections``, ``connections`` (the drain group), ``log_line``,
    ``say``).
    """

    noisy = False

    def __init__(self, service: L4Service, hub: Any):
        self.hub = hub
        self.counters = PortCounters()
        self.splices = hub.connections  # Splice's "router" attributes: shared with the drain
        self.say = hub.say
        self.connect = hub.connect
        self.connect_timeout = hub.connect_timeout
        self.service = service
        self.balancer = RoundRobin(service.endpoints)

    def update(self, service: L4Service) -> None:
        if service.endpoints != self.service.endpoints:
            self.balancer = RoundRobin(service.endpoints)
        self.service = service

    # Splice counts its failures on its router.
    @property
    def failed(self) -> int:
        return self.counters.failed

    @failed.setter
    def failed(self, value: int) -> None:
        self.counters.failed = value

    def buildProtocol(self, addr):
        protocol = _ClientProtocol(self)
        protocol.factory = self
        return protocol


class _Stream(Splice):
    """A splice that resets an idle timer on every read, and logs and counts when it ends."""

    def __init__(self, port: TCPPort, client: Any, header: bytes, remote: str, started: float):
        super().__init__(port, str(port.service.port), client, header, _Tries(port, started))
        self.port = port
        self.header_length = len(header)
        self.remote = remote
        self.started = started
        self.reached = False
        self.status = 502
        self.source_port: int | None = None  # the client's port (the PROXY header's, if one came)
        self.proxy_protocol_addr: str | None = None  # the PROXY header's source address
        self._idle = port.hub.clock.callLater(port.hub.idle_timeout, self._idle_over)

    def _touch(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.port.hub.idle_timeout)

    def _idle_over(self) -> None:
        self._idle = None
        self.close()

    def backend_connected(self, transport: Any) -> None:
        self.reached = True
        self.status = 200
        super().backend_connected(transport)

    def backend_data(self, data: bytes) -> None:
        self._touch()
        super().backend_data(data)

    def client_data(self, data: bytes) -> None:
        self._touch()
        super().client_data(data)

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        hub, counters = self.port.hub, self.port.counters
        received = self.bytes_up - self.header_length
        counters.open -= 1
        counters.bytes_received += received
        counters.bytes_sent += self.bytes_down
        now = hub.clock.seconds()
        tried = ", ".join(f"{endpoint.address}:{endpoint.port}" for endpoint in self.tried) or None
        hub.log_line(self.remote, "TCP", self.status, self.bytes_down, received, now - self.started,
                     remote_port=self.source_port, server_port=self.port.service.port, upstream_addr=tried,
                     upstream_bytes_sent=self.bytes_up if self.reached else None,
                     upstream_bytes_received=self.bytes_down if self.reached else None,
                     proxy_protocol_addr=self.proxy_protocol_addr)


class _Tries:
    """The port's balancer, for one connection: another endpoint only while the port's
    ``StreamSettings`` allow it (next-upstream on, tries and time left)."""

    def __init__(self, port: TCPPort, started: float):
        self.port = port
        self.started = started

    def pick(self, exclude=()):
        port = self.port
        if not port.hub.stream.may_try(len(exclude), port.hub.clock.seconds() - self.started):
            return None
        return port.balancer.pick(exclude)


@implementer(IHalfCloseableProtocol)
class _ClientProtocol(Protocol):
    """The client side: reads the PROXY header first when the port expects one."""

    def __init__(self, port: TCPPort):
        self.port = port
        self.stream: _Stream | None = None
        self.buffer = b""
        self.remote = ""
        self.source: tuple[str, int] | None = None
        self.started = 0.0
        self.proxy_protocol_addr: str | None = None
        self._header_timer = None
        self._done = False

    def connectionMade(self) -> None:
        port, hub = self.port, self.port.hub
        peer = self.transport.getPeer()
        self.source = (peer.host, peer.port)
        self.remote = peer.host
        self.started = hub.clock.seconds()
        port.counters.accepted += 1
        if port.counters.open >= hub.max_connections:
            port.counters.refused += 1
            self._done = True
            hub.log_line(self.remote, "TCP", 503, 0, 0, 0.0)
            self.transport.abortConnection()
            return
        port.counters.open += 1
        if port.service.decode_proxy:
            self._header_timer = hub.clock.callLater(hub.header_timeout, self._refuse)
        else:
            self._start(b"")

    def _start(self, rest: bytes) -> None:
        port = self.port
        header = b""
        if port.service.encode_proxy:
            local = self.transport.getHost()
            header = v1_header(self.source, (local.host, local.port))
        self.stream = _Stream(port, self.transport, header, self.remote, self.started)
        self.stream.source_port = self.source[1] if self.source else None
        self.stream.proxy_protocol_addr = self.proxy_protocol_addr
        port.splices.add(self.stream)
        self.stream.start()
        if rest:
            self.stream.client_data(rest)

    def _refuse(self) -> None:
        """No valid PROXY header (or none in time): closed, as nginx does (status 400)."""
        self._header_timer = None
        if self._done:
            return
        self._done = True
        port = self.port
        port.counters.open -= 1
        port.counters.failed += 1
        port.counters.bytes_received += len(self.buffer)
        port.hub.log_line(self.remote, "TCP", 400, 0, len(self.buffer), port.hub.clock.seconds() - self.started)
        self.buffer = b""
        self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.stream is not None:
            self.stream.client_data(data)
            return
        if self._done:
            return
        self.buffer += data
        try:
            found = parse(self.buffer)
        except InvalidHeader:
            self._refuse()
            return
        if found is MORE:  # parse bounds a header's length: a longer one is InvalidHeader
            return
        length, source = found.length, found.source
        if self._header_timer is not None and self._header_timer.active():
            self._header_timer.cancel()
        self._header_timer = None
        if source is not None:
            self.source = source
            self.remote = source[0]
            self.proxy_protocol_addr = source[0]
        rest, self.buffer = self.buffer[length:], b""
        self._start(rest)

    def readConnectionLost(self) -> None:
        if self.stream is not None:
            self.stream.client_read_lost()
        elif not self._done:
            self._refuse()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason=None) -> None:
        if self._header_timer is not None and self._header_timer.active():
            self._header_timer.cancel()
        self._header_timer = None
        if self.stream is not None:
            self.stream.client_lost()
        elif not self._done:
            self._refuse()
