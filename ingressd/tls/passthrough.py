"""TLS passthrough: a connection whose ClientHello names a passthrough host is spliced, still
encrypted, to that host's endpoints (ingress-nginx's ``ssl-passthrough`` with
``--enable-ssl-passthrough``, and the Gateway API's TLSRoutes, which need no flag); every other
connection is terminated as usual.

TLSRoutes: when no Ingress's passthrough host has the name, the route table's ``passthrough``
(``tls.passthrough_hosts.PassthroughHosts``, from ``Config.passthrough``) is asked: exact names,
then wildcards; the connection goes to one member of the route's weighted set (an unusable
member's share, or all when every weight is 0, is closed).

The decision is taken once per connection, when ``client_hello.ClientHelloFirst`` has read
the ClientHello's SNI name: ``PassthroughRouter.divert`` either returns None (terminate) or
takes the connection over. It reads the route table being served (``State.table``, swapped in
one assignment on every configuration change), so a passthrough host added or removed is
honoured by the next connection, without a separate table to keep in step.

Which backend, as ingress-nginx (internal/ingress/controller/controller.go,
``getConfiguration``): the route of the host's ``/`` path (Prefix or ImplementationSpecific),
when that route's features say ``tls_passthrough``. Only exact host names (its TCP proxy
compares the SNI name with the server name: a wildcard host never matches). ingress-nginx
sends to the Service's cluster IP; ingressd balances over the Service's ready endpoints
(round-robin, the next endpoint when a connect fails), as it does for HTTP. A passthrough
host without a ``/`` route is, in ingress-nginx, silently terminated ("has no default
backend, ignoring SSL Passthrough"), and one whose ``/`` route is another Ingress's (without
the annotation) has its TLS passed to that Ingress's Service; ingressd closes such a
connection instead, so a backend that expected to see the TLS itself (its own certificate,
its own client-certificate check) is never served terminated, nor another backend reached, by
surprise.

The splice (``Splice``): the ClientHello bytes held while it was read go to the backend
first (peeked, not consumed), then both byte streams as they come, with backpressure both
ways (each transport is the other's streaming producer), half-close (a FIN one way is passed
on, the connection ends when both ways are done), and the server's connect timeout. A
connection that cannot reach any endpoint is closed; nothing else is said (there is no TLS
to say it in). Splices are counted (``open_connections``, ``accepted``) and, on shutdown,
left to finish within ``--shutdown-grace`` and then closed (``interfaces.DrainableGroup``).
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python import log
from zope.interface import implementer

from ingressd.drain import ConnectionSet

# What ``target`` answers for a host that asks for passthrough but has no ``/`` route.
REFUSED = object()
# Why a connection was closed without a backend (logged, with the name).
NO_ROOT = "ssl-passthrough for {name}: the host has no / path to pass its TLS to; connection closed"
NO_BACKEND = ("TLSRoute for {name}: the backend drawn for this connection cannot be used (missing, not permitted, "
              "or every weight 0); connection closed")


def passes_through(entry: Any) -> bool:
    """Whether a route entry's features ask for TLS passthrough (``tls_passthrough = True``)."""
    return any(getattr(feature, "tls_passthrough", False) for feature in getattr(entry, "features", ()))


def _is_root(entry: Any) -> bool:
    route = entry.route
    return route.path == "/" and route.path_type != "Exact"


class PassthroughRouter:
    """The passthrough decision of one TLS listener (``client_hello.PassthroughDecision``).

    ``state``: what has ``table`` (the served ``RouteTable``); ``connect``: a function
    ``(host, port, factory, timeout)`` opening a TCP connection (``proxy.transport.connect_tcp``
    bound to the reactor); ``connect_timeout``: seconds.
    """

    def __init__(self, state: Any, connect: Callable[..., Any], connect_timeout: float = 5.0,
                 say: Callable[[str], None] = log.msg):
        self.state = state
        self.connect = connect
        self.connect_timeout = connect_timeout
        self.say = say
        self.splices = ConnectionSet()  # the open ones: drained as tunnels are
        self.accepted = 0
        self.failed = 0  # closed without reaching an endpoint

    def target(self, name: str) -> Any:
        """The route entry whose endpoints the TLS of ``name`` goes to, ``REFUSED``, or None
        (terminate it here)."""
        paths = self.state.table.exact_hosts.get(name)
        if paths is None:
            return None
        members = paths.members
        if not any(passes_through(entry) for entry in members):
            return None
        for entry in members:
            if _is_root(entry) and passes_through(entry):
                return entry
        return REFUSED

    def divert(self, name: str | None, transport: Any, held: bytes) -> "Splice | None":
        """Take over ``transport`` (a client connection whose ClientHello, ``held``, asked for
        ``name``) when ``name`` is a passthrough host; None: terminate it as usual. An Ingress's
        ssl-passthrough host is looked up first, then the TLSRoutes' (``RouteTable.passthrough``)."""
        if not name:
            return None
        entry = self.target(name)
        if entry is not None:
            balancer = None if entry is REFUSED else entry.balancer
            refusal = NO_ROOT
        else:
            hosts = self.state.table.passthrough
            chosen = hosts.lookup(name) if hosts is not None else None
            if chosen is None:
                return None
            balancer = chosen.pick()  # one member per connection; None: its share is refused
            refusal = NO_BACKEND
        self.accepted += 1
        splice = Splice(self, name, transport, held, balancer, refusal)
        self.splices.add(splice)
        splice.start()
        return splice

    def open_connections(self) -> int:
        return self.splices.open_connections()

    def drain_connections(self) -> None:
        self.splices.drain_connections()

    def close_connections(self) -> None:
        self.splices.close_connections()


class Splice:
    """One passed-through connection: the client's TCP connection and one to an endpoint."""

    def __init__(self, router: PassthroughRouter, name: str, client: Any, held: bytes, balancer: Any,
                 refusal: str = NO_ROOT):
        self.router = router
        self.refusal = refusal  # said when there is no balancer
        self.name = name
        self.client = client  # the client's TCP transport
        self.balancer = balancer  # picks endpoints (``pick(exclude)``); None: refused
        self.backend: Any = None  # the backend's TCP transport, once connected
        self.pending = [held] if held else []  # client bytes not yet sent to the backend
        self.tried: list = []
        self.client_done = False  # the client sent its FIN
        self.backend_done = False
        self.closed = False
        self.coupled = False  # each transport registered as the other's producer
        self.bytes_up = len(held)
        self.bytes_down = 0

    def start(self) -> None:
        if self.balancer is None:
            self.router.say("ingressd: " + self.refusal.format(name=self.name))
            self._fail()
            return
        self.client.pauseProducing()  # until the backend is there
        self._connect()

    def _connect(self) -> None:
        endpoint = self.balancer.pick(self.tried)
        if endpoint is None or endpoint in self.tried:
            self._fail()
            return
        self.tried.append(endpoint)
        self.router.connect(endpoint.address, endpoint.port, _BackendFactory(self), self.router.connect_timeout)

    # -- the backend side --------------------------------------------------------------------

    def backend_connected(self, transport: Any) -> None:
        if self.closed:
            transport.abortConnection()
            return
        self.backend = transport
        for data in self.pending:
            transport.write(data)
        self.pending = []
        # Backpressure: a side whose writes back up pauses the other side's reading.
        transport.registerProducer(self.client, True)
        self.client.registerProducer(transport, True)
        self.coupled = True
        if self.client_done:
            transport.loseWriteConnection()
        else:
            self.client.resumeProducing()

    def backend_failed(self) -> None:
        if not self.closed:
            self._connect()  # the next endpoint; none left: closed

    def backend_data(self, data: bytes) -> None:
        if not self.closed:
            self.bytes_down += len(data)
            self.client.write(data)

    def backend_read_lost(self) -> None:
        self.backend_done = True
        if self.client_done:
            self.close()
        else:
            self.client.loseWriteConnection()

    def backend_lost(self) -> None:
        self.backend = None
        self.close()

    # -- the client side (called by client_hello.ClientHelloFirst) ---------------------------

    def client_data(self, data: bytes) -> None:
        if self.closed:
            return
        self.bytes_up += len(data)
        if self.backend is None:
            self.pending.append(data)
        else:
            self.backend.write(data)

    def client_read_lost(self) -> None:
        self.client_done = True
        if self.backend is None:
            return  # passed on once connected
        if self.backend_done:
            self.close()
        else:
            self.backend.loseWriteConnection()

    def client_lost(self) -> None:
        self.client = None
        self.close()

    # -- drain (interfaces.Drainable) --------------------------------------------------------

    def drain(self) -> None:
        """Nothing to tell a byte stream: it has until the end of the grace to finish."""

    def shut(self) -> None:
        self.close()

    def _fail(self) -> None:
        self.router.failed += 1
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.pending = []
        self.router.splices.discard(self)
        client, backend = self.client, self.backend
        if backend is not None:
            if self.coupled:
                backend.unregisterProducer()
            backend.loseConnection()
        if client is not None:
            if self.coupled:
                client.unregisterProducer()
            client.loseConnection()


@implementer(IHalfCloseableProtocol)
class _BackendProtocol(Protocol):
    def __init__(self, splice: Splice):
        self.splice = splice

    def connectionMade(self) -> None:
        self.splice.backend_connected(self.transport)

    def dataReceived(self, data: bytes) -> None:
        self.splice.backend_data(data)

    def readConnectionLost(self) -> None:
        self.splice.backend_read_lost()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason=None) -> None:
        self.splice.backend_lost()


class _BackendFactory(ClientFactory):
    noisy = False

    def __init__(self, splice: Splice):
        self.splice = splice

    def buildProtocol(self, addr):
        protocol = _BackendProtocol(self.splice)
        protocol.factory = self
        return protocol

    def clientConnectionFailed(self, connector, reason) -> None:
        self.splice.backend_failed()
