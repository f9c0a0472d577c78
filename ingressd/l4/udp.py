"""A UDP service port: per client address a session with its own socket to one endpoint.

As nginx's stream module with ingress-nginx's settings (``proxy_responses 1``,
``proxy_timeout 600s``): the first datagram from an address starts a session on the next
endpoint (round-robin); the client's datagrams go to that endpoint, its replies back to that
client only; each client datagram expects ``responses`` replies, and a session whose expected
replies have all come ends (``responses`` 0: only the idle timeout ends it); a session idle
for the timeout ends. Sessions per port are bounded: a datagram from a new address beyond
the bound is dropped (logged with status 503). A session whose endpoint refuses (an ICMP
port unreachable) ends with 502.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import DatagramProtocol

from ingressd.features import RoundRobin
from ingressd.l4.table import L4Service
from ingressd.l4.tcp import PortCounters


class UDPPort(DatagramProtocol):
    """One listed UDP port (the listening socket's protocol); ``hub`` as ``tcp.TCPPort``'s,
    plus ``listen_udp(protocol)`` (a socket for a session) and ``responses``."""

    noisy = False

    def __init__(self, service: L4Service, hub: Any):
        self.hub = hub
        self.counters = PortCounters()
        self.service = service
        self.balancer = RoundRobin(service.endpoints)
        self.sessions: dict[tuple[str, int], _Session] = {}

    def update(self, service: L4Service) -> None:
        if service.endpoints != self.service.endpoints:
            self.balancer = RoundRobin(service.endpoints)
        self.service = service

    def datagramReceived(self, data: bytes, addr) -> None:
        session = self.sessions.get(addr)
        if session is None:
            hub = self.hub
            self.counters.accepted += 1
            if len(self.sessions) >= hub.max_connections:
                self.counters.refused += 1
                hub.log_line(addr[0], "UDP", 503, 0, len(data), 0.0)
                return
            endpoint = self.balancer.pick()
            if endpoint is None:
                self.counters.failed += 1
                hub.log_line(addr[0], "UDP", 502, 0, len(data), 0.0)
                return
            session = _Session(self, addr, endpoint)
            try:
                session.socket = hub.listen_udp(_Upstream(session))
                session.socket.connect(endpoint.address, endpoint.port)  # its replies only; refusals seen
            except Exception as exc:  # noqa: BLE001 - out of ports or descriptors: this datagram is lost
                if session.socket is not None:
                    session.socket.stopListening()
                hub.say(f"ingressd: udp port {self.service.port}: cannot open a socket for {addr[0]}: {exc}")
                self.counters.failed += 1
                hub.log_line(addr[0], "UDP", 502, 0, len(data), 0.0)
                return
            self.sessions[addr] = session
            self.counters.open += 1
            hub.connections.add(session)
        session.from_client(data)

    def reply(self, data: bytes, addr) -> None:
        if self.transport is None:
            return
        try:
            self.transport.write(data, addr)
        except OSError:  # the client's address is not reachable now: the reply is lost, as UDP's are
            pass

    def close_sessions(self) -> None:
        for session in list(self.sessions.values()):
            session.close()


class _Session:
    """One client address's traffic through one upstream socket."""

    def __init__(self, port: UDPPort, client: tuple[str, int], endpoint: Any):
        self.port = port
        self.client = client
        self.endpoint = endpoint
        self.socket: Any = None
        self.started = port.hub.clock.seconds()
        self.expected = 0
        self.sent = 0  # to the client
        self.received = 0  # from the client
        self.status = 200
        self.closed = False
        self._idle = port.hub.clock.callLater(port.hub.idle_timeout, self.close)

    def from_client(self, data: bytes) -> None:
        if self.closed:
            return
        self._touch()
        self.received += len(data)
        self.expected += self.port.hub.responses
        try:
            self.socket.write(data)
        except Exception:  # noqa: BLE001 - an address the kernel will not send to
            self.status = 502
            self.close()

    def from_endpoint(self, data: bytes) -> None:
        if self.closed:
            return
        self._touch()
        self.sent += len(data)
        self.port.reply(data, self.client)
        if self.port.hub.responses:
            self.expected -= 1
            if self.expected <= 0:
                self.close()

    def refused(self) -> None:
        if not self.sent:
            self.status = 502
            self.port.counters.failed += 1
        self.close()

    def _touch(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.port.hub.idle_timeout)

    # -- drain (interfaces.Drainable) ----------------------------------------------------

    def drain(self) -> None:
        """A datagram flow has nothing to be told: it has the grace to finish."""

    def shut(self) -> None:
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        port, hub = self.port, self.port.hub
        if port.sessions.get(self.client) is self:
            del port.sessions[self.client]
        port.counters.open -= 1
        port.counters.bytes_received += self.received
        port.counters.bytes_sent += self.sent
        hub.connections.discard(self)
        if self.socket is not None:
            self.socket.stopListening()
        hub.log_line(self.client[0], "UDP", self.status, self.sent, self.received,
                     hub.clock.seconds() - self.started, remote_port=self.client[1],
                     server_port=port.service.port, upstream_addr=f"{self.endpoint.address}:{self.endpoint.port}",
                     upstream_bytes_sent=self.received, upstream_bytes_received=self.sent)


class _Upstream(DatagramProtocol):
    noisy = False

    def __init__(self, session: _Session):
        self.session = session

    def datagramReceived(self, data: bytes, addr) -> None:
        self.session.from_endpoint(data)  # the socket is connected: only the endpoint's replies

    def connectionRefused(self) -> None:
        self.session.refused()
