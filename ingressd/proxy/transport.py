"""TCP connections that send their writes in one burst per reactor round, without epoll.

Twisted's transports queue every ``write``, ask epoll to watch for writability and send on
the next turn (twisted/twisted#5303): two epoll_ctl calls and a loop iteration per
response. ``Server`` (client connections) and ``Client`` (backend connections, through
``connect_tcp``) send straight to the socket when the reactor's current round of events
ends, each connection's writes of the round in one send, and fall back to Twisted's
buffering (and its producer/consumer flow control) for whatever the socket does not take.
A connection closed with nothing left to send closes when the round ends, without Twisted's
extra turn through epoll. Accepted sockets take TCP_NODELAY from their listener (Linux).
``listen`` builds a listening service from an endpoint string: ``tcp:`` strings
get our ``Port`` (optionally with SO_REUSEPORT, for several worker processes), anything
else goes through Twisted's strports.
"""

from __future__ import annotations

import _socket
import socket
import sys
from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService, Service
from twisted.internet import abstract, main, tcp
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import CannotListenError, ConnectionAborted
from twisted.internet.posixbase import PosixReactorBase
from twisted.python import failure, log

from ingressd.startup import ListenError


class _WriteRound:
    """The writes made while the reactor handles one round of events, sent when it ends.

    One proxied request is two sends (the request to the backend, the response to the
    client) and each may wake a sleeping peer; sent one by one as they are made, every
    send paid that wake-up. Gathered until the round ends (a call for the reactor's next
    turn, which comes right after the round), a peer woken by the first of a burst is still
    awake for the rest: measured with bench.py keepalive on this machine, 56 → 47 µs of
    proxy CPU per request. Each connection's writes of the round leave in one send.

    The round ends when ``ingressd.reactor``'s reactor says so (``call_at_round_end``: no
    timer per round); on another reactor, with a call for its next turn (``callLater(0)``).
    """

    __slots__ = ("pending", "closing", "call")

    def __init__(self) -> None:
        self.pending: dict[Any, list[bytes]] = {}  # connection → its data, in write order
        self.closing: dict[Any, None] = {}  # connections whose every write has left, to close
        self.call = None

    def add(self, connection: "_BatchedWrites", data: bytes) -> None:
        chunks = self.pending.get(connection)
        if chunks is not None:
            chunks.append(data)
            return
        self.pending[connection] = [data]
        if self.call is None:
            self._arm(connection.reactor)

    def close(self, connection: "_BatchedWrites") -> None:
        """Close ``connection`` when this round ends (after the round's writes)."""
        self.closing[connection] = None
        if self.call is None:
            self._arm(connection.reactor)

    def _arm(self, reactor: Any) -> None:
        at_round_end = getattr(reactor, "call_at_round_end", None)
        if at_round_end is not None:
            at_round_end(self.flush)
            self.call = _AT_ROUND_END
        else:
            self.call = reactor.callLater(0, self.flush)

    def take(self, connection: "_BatchedWrites") -> bytes:
        """What ``connection`` wrote this round and is not sent yet (now removed)."""
        chunks = self.pending.pop(connection, None)
        return b"".join(chunks) if chunks else b""

    def flush(self) -> None:
        self.call = None
        pending, self.pending = self.pending, {}
        for connection, chunks in pending.items():
            try:
                connection.send_now(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            except Exception:  # one connection's surprise must not cost the others their writes
                log.err(None, "ingressd: sending a connection's writes failed")
                connection.abortConnection()
        closing, self.closing = self.closing, {}
        for connection in closing:
            try:
                connection.close_now()
            except Exception:
                log.err(None, "ingressd: closing a connection failed")


_AT_ROUND_END = object()  # _WriteRound.call when the reactor ends the round itself
_round = _WriteRound()
# One failure for every orderly close, as Twisted's reactor passes one (_disconnectSelectable).
_CONNECTION_DONE = failure.Failure(main.CONNECTION_DONE)


class _BatchedWrites:
    """Mixin for a Twisted TCP connection: writes leave at the end of the reactor's round
    of events, straight to the socket when nothing is queued (no epoll registration, no
    extra turn); what the socket does not take goes to Twisted's own buffer, with its
    producer/consumer flow control."""

    _queued = False  # our own record: True from a queued write until Twisted's queue drains

    def write(self, data: bytes) -> None:
        if data and self.connected and not self.disconnecting:
            _round.add(self, data)
        else:
            if data and self.disconnecting:
                self._queued = True  # written after loseConnection: Twisted's write path closes it
            super().write(data)

    def writeSequence(self, iovec) -> None:
        self.write(b"".join(iovec))

    def send_now(self, data: bytes) -> None:
        if not self._queued and self.connected and not self.disconnecting:
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

    def loseConnection(self, *args, **kwargs):
        self._send_pending()  # what was written before the close goes first
        if (self.connected and not self.disconnecting and not self._queued and not self._writeDisconnected
                and (self.producer is None or (self.streamingProducer and not self.producerPaused))):
            # Everything written has left and no producer holds the close back (Twisted's own
            # conditions): close when the round ends. Twisted's way watches for writability and
            # closes on the next turn after an empty send, three system calls more a connection
            # (epoll_ctl DEL and ADD, a zero-byte sendto).
            self.stopReading()
            self.disconnecting = 1
            _round.close(self)
            return None
        return super().loseConnection(*args, **kwargs)

    def close_now(self) -> None:
        """The end of a close ``loseConnection`` left to the round: as Twisted ends it once
        its buffer is empty, unless something was written since (Twisted then sends it and
        closes) or the connection is already gone."""
        if self.connected and not self._queued:
            self.stopWriting()
            self.connectionLost(_CONNECTION_DONE)

    def loseWriteConnection(self) -> None:
        self._send_pending()
        super().loseWriteConnection()

    def abortConnection(self) -> None:
        _round.take(self)  # dropped with the connection
        _round.closing.pop(self, None)  # aborted, not closed
        super().abortConnection()

    def _send_pending(self) -> None:
        data = _round.take(self)
        if data:
            self.send_now(data)

    def stopWriting(self) -> None:
        # Twisted stops watching for writability once its queue is empty (or the
        # connection is going away): from then on writes may go straight out again.
        self._queued = False
        super().stopWriting()


# CPython's socket module: accept without socket.socket's Python layer (Port._accept_one).
_RAW_ACCEPT = sys.implementation.name == "cpython" and hasattr(_socket.socket, "_accept")

# Linux gives an accepted socket its listener's TCP_NODELAY: set once on the listener, not per
# connection (elsewhere each connection sets it).
_ACCEPTED_INHERIT_NO_DELAY = sys.platform.startswith("linux")


class Server(_BatchedWrites, tcp.Server):
    _no_delay = False  # what TCP_NODELAY is on this socket
    _host = None  # getHost(), asked once: the local address of a connection never changes
    _peer = None  # getPeer(), made once
    _log_prefix = None  # logstr, made when first asked
    _repr = None  # repstr, made when first asked

    def __init__(self, sock, protocol, client, server, sessionno, reactor):
        # tcp.Server.__init__ (with Connection's and FileDescriptor's), the same state set
        # directly: without the log prefix and the repr it formats for every connection (read
        # by a legacy log line or a repr, rarely: made when asked, below) and three calls up
        # the class chain. tests/test_transport.py compares the state with Twisted's.
        self.reactor = reactor
        self._tempDataBuffer = []
        self._tempDataLen = 0
        self.socket = sock
        sock.setblocking(False)
        self.fileno = sock.fileno
        self.protocol = protocol
        if len(client) != 2:
            self._addressType = IPv6Address
        self.server = server
        self.client = client
        self.sessionno = sessionno
        self.hostname = client[0]
        self._protocol_class = protocol.__class__  # for the repr after the close (no reference to the protocol: no cycle)
        self.startReading()
        self.connected = 1
        # Responses (and TLS records, HTTP/2 frames) are written whole: never hold a small
        # segment back waiting for an ACK (Nagle + delayed ACK cost 40 ms a request).
        if getattr(server, "no_delay_inherited", False):
            self._no_delay = True
        else:
            self.setTcpNoDelay(True)

    @property
    def logstr(self) -> str:
        if self._log_prefix is None:
            protocol = self.__dict__.get("protocol")  # Twisted lets it go at the close
            prefix = self._protocol_class.__name__ if protocol is None else self._getLogPrefix(protocol)
            self._log_prefix = f"{prefix},{self.sessionno},{self.hostname}"
        return self._log_prefix

    @logstr.setter
    def logstr(self, value: str) -> None:
        self._log_prefix = value

    @property
    def repstr(self) -> str:
        if self._repr is None:
            number = getattr(self.server, "_realPortNumber", None) if self.server is not None else None
            self._repr = f"<{self._protocol_class.__name__} #{self.sessionno} on {number}>"
        return self._repr

    @repstr.setter
    def repstr(self, value: str) -> None:
        self._repr = value

    def connectionLost(self, reason) -> None:
        """``tcp.Connection.connectionLost``, step for step, with one difference: whether the
        connection was aborted is read off the reason's type (``issubclass``) instead of
        ``Failure.check``, which formats the qualified name of the class it is given to
        compare it with the names of the reason's classes, a microsecond a connection."""
        if not hasattr(self, "socket"):  # called twice (Twisted's own guard)
            return
        abstract.FileDescriptor.connectionLost(self, reason)
        self._closeSocket(not issubclass(reason.type, ConnectionAborted))
        protocol = self.protocol
        del self.protocol
        del self.socket
        del self.fileno
        protocol.connectionLost(reason)

    def setTcpNoDelay(self, enabled) -> None:
        # The HTTP/1.1 protocol asks again (directly or through TLS): no system call for a no-op.
        if bool(enabled) != self._no_delay:
            super().setTcpNoDelay(enabled)
            self._no_delay = bool(enabled)

    def getHost(self):
        # Asked for $server_port and $server_addr: the listener's own address when it listens on
        # one address (every connection it accepts has it: no system call), else one getsockname
        # a connection, not one each.
        if self._host is None:
            self._host = getattr(self.server, "accepted_host", None) or super().getHost()
        return self._host

    def getPeer(self):
        if self._peer is None:
            self._peer = super().getPeer()
        return self._peer


class Port(tcp.Port):
    transport = Server
    no_delay_inherited = False  # the accepted sockets come with TCP_NODELAY set
    accepts_per_read = 64  # connections accepted at most each time the listener is readable
    _kind: tuple[int, int, int] | None = None  # (family, type, proto) of accepted sockets: see _accept_one
    # The local address of every connection accepted, when the listener is bound to one IPv4
    # address (not 0.0.0.0): Server.getHost without a getsockname a connection. None: ask each.
    accepted_host: IPv4Address | None = None

    def startListening(self) -> None:
        super().startListening()
        host = self.getHost()
        if isinstance(host, IPv4Address) and host.host != "0.0.0.0":
            self.accepted_host = host

    def createInternetSocket(self):
        skt = super().createInternetSocket()
        if _RAW_ACCEPT:
            self._kind = (int(skt.family), int(skt.type), skt.proto)
        if _ACCEPTED_INHERIT_NO_DELAY:
            try:
                skt.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.no_delay_inherited = True
            except OSError:
                pass
        return skt

    def doRead(self) -> None:
        """The waiting connections accepted, up to ``accepts_per_read`` each time the listener
        is readable, as ingress-nginx's default (enable-multi-accept: nginx's ``multi_accept
        on``); epoll reports the listener again while more are waiting.

        Twisted's ``Port.doRead`` accepts in a loop it sizes by the last round's count inside a
        context that holds its log lines back (two ``Logger`` objects made per call); accepting
        one connection per readiness instead cost 118 µs a connection against Twisted's 95 and
        this loop's 72 under `bench/bench.py --scenario new-connection` (2026-12-07, quiet: many
        clients connect at once, and each epoll round costs more than a failed accept). An accept
        that fails for any reason but "nothing waiting" is left to Twisted's loop, which knows
        what to do (the descriptor it keeps in reserve for EMFILE, its log lines)."""
        for _ in range(self.accepts_per_read):
            if self._accept_and_serve():
                return

    def _accept_and_serve(self) -> bool:
        """Accept one waiting connection and start its protocol; True when the loop is done
        (nothing waiting, or Twisted's loop took over)."""
        try:
            try:
                skt, addr = self._accept_one()
            except BlockingIOError:
                return True
            except OSError:
                super().doRead()
                return True
            if len(addr) == 4:  # IPv6: the scope id in the host, as Twisted's
                host = socket.getnameinfo(addr, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
                addr = (host[0], *addr[1:])
            protocol = self.factory.buildProtocol(self._buildAddr(addr))
            if protocol is None:
                skt.close()
                return False
            session = self.sessionno
            self.sessionno = session + 1
            protocol.makeConnection(self.transport(skt, protocol, addr, self, session, self.reactor))
        except BaseException:
            # As Twisted's: nothing may reach the reactor from here, which would close the listener.
            log.deferr()
            return True
        return False

    def _accept_one(self):
        """(socket, address) of a waiting connection. On CPython, what ``socket.accept`` does
        without its Python: the listening socket's own accept (``_accept``, the C method
        ``socket.accept`` calls) and the C socket type made over the descriptor, skipping
        ``socket.socket.__init__`` and two enum conversions a connection. (The C type has every
        method a transport calls; only ``socket.socket``'s Python additions, makefile and
        sendfile, which nothing here uses, are missing.) Elsewhere, ``socket.accept``."""
        kind = self._kind
        if kind is None:
            return self.socket.accept()
        fd, addr = self.socket._accept()
        return _socket.socket(*kind, fd), addr


class Client(_BatchedWrites, tcp.Client):
    """An outgoing connection (to a backend) whose writes are sent like ``Server``'s."""


class Connector(tcp.Connector):
    """``tcp.Connector`` making our ``Client``.

    ``_makeTransport`` is the factory method ``BaseConnector`` leaves to its subclasses (each
    of Twisted's own connectors fills it in); this is that hook, not a reach into state.
    """

    def _makeTransport(self) -> Client:
        return Client(self.host, self.port, self.bindAddress, self, self.reactor)


def connect_tcp(reactor: Any, host: str, port: int, factory: Any, timeout: float):
    """``reactor.connectTCP`` making our ``Client`` on a real (POSIX) reactor.

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
                 reuse_port: bool = False, option: str = "", description: str = ""):
        self.option = option
        self.description = description or f"tcp:{port}"
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
        port = Port(binding, self.factory, self.backlog, self.interface, self.reactor)
        try:
            port.startListening()
        except CannotListenError as exc:
            raise ListenError(cannot_listen(self.option, self.description, exc)) from None
        self.port = port

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


class _NamedListener(MultiService):
    """Twisted's listening service for ``description``; failing to listen is a ListenError naming ``option``."""

    def __init__(self, option: str, description: str, listener: Service):
        super().__init__()
        self.option = option
        self.description = description
        listener.setServiceParent(self)

    def startService(self) -> None:
        try:
            super().startService()
        except CannotListenError as exc:
            raise ListenError(cannot_listen(self.option, self.description, exc)) from None


def cannot_listen(option: str, description: str, exc: CannotListenError) -> str:
    """One line: which option, which address, and why (``--http tcp:8080: cannot listen on …``)."""
    reason = getattr(exc.socketError, "strerror", None) or str(exc.socketError)
    address = f"{exc.interface or '*'}:{exc.port}"
    return f"{option or 'listener'} {description}: cannot listen on {address}: {reason}"


def listen(description: str, factory: Any, reactor: Any, reuse_port: bool = False, option: str = ""):
    """A service listening on ``description`` (a Twisted server endpoint string); when it cannot
    listen, starting it raises ``ListenError`` naming ``option`` (``--http``) and the address."""
    parsed = parse_tcp(description)
    if parsed is None:
        if reuse_port:
            raise ValueError(f"{description!r}: several workers need a plain tcp: endpoint")
        return _NamedListener(option, description, strports.service(description, factory, reactor=reactor))
    port, interface, backlog = parsed
    return TCPListener(port, factory, reactor, interface, backlog, reuse_port, option, description)
