"""TCP listeners whose connections write to the socket at once.

Twisted's transports queue every ``write`` until the reactor's next turn and then ask epoll
to watch for writability (twisted/twisted#5303): two epoll_ctl calls and a loop iteration
per response. ``Server`` sends immediately when nothing is queued and falls back to
Twisted's buffering (and its producer/consumer flow control) for whatever the socket does
not take; ``Client`` (through ``connect_tcp``) does the same for connections to backends.
``listen`` builds a listening service from an endpoint string: ``tcp:`` strings
get our ``Port`` (optionally with SO_REUSEPORT, for several worker processes), anything
else goes through Twisted's strports.
"""

from __future__ import annotations

from typing import Any

from twisted.application import strports
from twisted.application.service import Service
from twisted.internet import tcp
from twisted.internet.posixbase import PosixReactorBase

class _ImmediateWrites:
    """Mixin for a Twisted TCP connection: try ``send`` before queueing."""

    _queued = False  # our own record: True from a queued write until the queue drains

    def write(self, data: bytes) -> None:
        if not self._queued and data and self.connected and not self.disconnecting:
            try:
                sent = self.socket.send(data)
            except OSError:
                # Would block, or a real error: either way Twisted's own write path takes
                # it from here and reports a lost connection the usual way.
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        self._queued = True
        super().write(data)

    def writeSequence(self, iovec) -> None:
        self.write(b"".join(iovec))

    def stopWriting(self) -> None:
        # Twisted stops watching for writability once its queue is empty (or the
        # connection is going away): from then on writes may go straight out again.
        self._queued = False
        super().stopWriting()


class Server(_ImmediateWrites, tcp.Server):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Responses (and TLS records, HTTP/2 frames) are written whole: never hold a small
        # segment back waiting for an ACK (Nagle + delayed ACK cost 40 ms a request).
        self.setTcpNoDelay(True)


class Port(tcp.Port):
    transport = Server


class Client(_ImmediateWrites, tcp.Client):
    """An outgoing connection (to a backend) whose writes go out at once, like ``Server``'s."""


class Connector(tcp.Connector):
    """``tcp.Connector`` making our ``Client``.

    ``_makeTransport`` is the factory method ``BaseConnector`` leaves to its subclasses (each
    of Twisted's own connectors fills it in); this is that hook, not a reach into state.
    """

    def _makeTransport(self) -> Client:
        return Client(self.host, self.port, self.bindAddress, self, self.reactor)


def connect_tcp(reactor: Any, host: str, port: int, factory: Any, timeout: float):
    """``reactor.connectTCP`` with immediate writes on a real (POSIX) reactor.

    Any other reactor (a test's MemoryReactor) gets the call unchanged.
    """
    if not isinstance(reactor, PosixReactorBase):
        return reactor.connectTCP(host, port, factory, timeout=timeout)
    connector = Connector(host, port, factory, timeout, None, reactor)
    connector.connect()
    return connector


class TCPListener(Service):
    """Listens on one TCP port with ``Port`` while running."""

    def __init__(self, port: int, factory: Any, reactor: Any, interface: str = "", backlog: int = 511,
                 reuse_port: bool = False):
        self.port_number = port
        self.factory = factory
        self.reactor = reactor
        self.interface = interface
        self.backlog = backlog
        self.reuse_port = reuse_port
        self.port: Port | None = None

    def startService(self) -> None:
        super().startService()
        binding = tcp.makeBinding(self.interface, self.port_number, reuseAddress=True, reusePort=self.reuse_port)
        self.port = Port(binding, self.factory, self.backlog, self.interface, self.reactor)
        self.port.startListening()

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None


def parse_tcp(description: str) -> tuple[int, str, int] | None:
    """``tcp:PORT[:interface=ADDR][:backlog=N]`` → (port, interface, backlog); None otherwise."""
    parts = description.split(":")
    if parts[0] != "tcp" or len(parts) < 2:
        return None
    rest = parts[1:]
    options: dict[str, str] = {}
    if "=" in rest[0]:
        return None
    try:
        port = int(rest[0])
    except ValueError:
        return None
    for item in rest[1:]:
        key, sep, value = item.partition("=")
        if not sep or key not in ("interface", "backlog"):
            return None
        options[key] = value.replace("\\", "")
    return port, options.get("interface", ""), int(options.get("backlog", "511"))


def listen(description: str, factory: Any, reactor: Any, reuse_port: bool = False):
    """A service listening on ``description`` (a Twisted server endpoint string)."""
    parsed = parse_tcp(description)
    if parsed is None:
        if reuse_port:
            raise ValueError(f"{description!r}: several workers need a plain tcp: endpoint")
        return strports.service(description, factory, reactor=reactor)
    port, interface, backlog = parsed
    return TCPListener(port, factory, reactor, interface, backlog, reuse_port)
