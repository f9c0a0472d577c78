#!/usr/bin/env python3
"""A client connection's own Python cost: accepted, one request answered, closed, in one process.

``bench/pathcost.py`` measures a keep-alive request; this measures what a connection adds
(nginx's new-connection scenario: a connection per request, ``Connection: close``). It builds
the real server (``serve_in_memory``: the installed plugins, the options ``twistd ingressd``
parses) and puts its HTTP listener's real factory (PROXY protocol reader, connection limit,
HTTP/1.1) behind ingressd's own ``Port`` on a real, unstarted epoll reactor listening on
127.0.0.1 (an ephemeral port). Each round of the loop is one connection, driven through the
reactor's own dispatch as ``twistd`` drives it:

    client: connect, send the request          (a plain blocking socket: a few C calls)
    reactor.doIteration(0.1)                   the listener is readable: accept, build, connectionMade
    reactor.doIteration(0.1)                   the connection is readable: recv, parse, route, exchange
    upstream.dataReceived(RESPONSE)            the pooled backend connection answers (in memory)
    reactor.runUntilCurrent()                  the round ends: the answer sent, the connection closed
    client: read to the end, close

The backend is in memory (a ``StringTransport``, reused from the pool as the real server
reuses it), so the figure is the client connection's cost plus one request's. The clock of
the HTTP/1.1 connections is the real reactor (their timers on its heap, as in ``twistd``);
the rest of the server keeps the memory clock. What it prints: CPU per connection (user
and system, the median of several rounds), comparable between two versions of the code run
alternately; ``--profile`` prints cProfile's table and the Python calls per connection
(deterministic: counted, not timed); ``--sample`` samples the stacks by CPU time.

    .venv/bin/python bench/conncost.py --args '--access-log off'
    .venv/bin/python bench/conncost.py --args '--access-log off' --profile
    .venv/bin/python bench/conncost.py --args '--access-log off' --calls     # calls per connection only
    .venv/bin/python bench/conncost.py --lifecycle   # the HTTP/1.1 protocol's own life alone
    .venv/bin/python bench/conncost.py --life-request --open 49   # ... with a plain request, 49 more open
    .venv/bin/python bench/conncost.py --args '--access-log off' --open 49   # 49 idle connections meanwhile

``--lifecycle`` times only ``HTTP1Factory.buildProtocol``, ``makeConnection`` and
``connectionLost`` of the HTTP/1.1 protocol on a ``StringTransport`` (its timers on an
unstarted epoll reactor): no socket, no request.
"""

from __future__ import annotations

import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

import memcost
from memcost import RESPONSE, print_samples, sample

# The installed ingressd (not this checkout's sources): run with another tree's venv to compare.
from ingressd.proxy.transport import Port  # noqa: E402
from ingressd.reactor import DirectDispatchEPollReactor  # noqa: E402

REQUEST = (b"GET / HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: conncost\r\nAccept: */*\r\n"
           b"Connection: close\r\n\r\n")
_ROUNDS_BOUND = 50  # reactor iterations allowed to a connection before the loop gives up


class Rig:
    """The server, its HTTP listener on a real port, one pooled backend connection in memory."""

    def __init__(self, extra_args: list[str], tmp: Path):
        self.service, self.memory = memcost.serve(tmp, extra_args)
        # The listener's whole factory (what Twisted's Port would be given): the memory reactor recorded it.
        factories = [factory for port, factory, *_ in self.memory.tcpServers if port == 8080]
        self.reactor = DirectDispatchEPollReactor()  # never installed, never run: driven below
        self.service.http_factory.clock = self.reactor
        self.port = Port(0, factories[0], 511, "127.0.0.1", self.reactor)
        self.port.startListening()
        self.address = ("127.0.0.1", self.port.getHost().port)
        self.upstream = None
        self.upstream_transport = None
        # The first connection opens the backend connection: complete it by hand; it is pooled after.
        answer = self.connection(first=True)
        if not answer.startswith(b"HTTP/1.1 200 ") or not answer.endswith(b"ok\n") or b"connection: close" not in answer:
            raise SystemExit(f"unexpected answer: {answer[:300]!r}")
        if not self.first_request.startswith(b"GET / HTTP/1.1\r\n"):
            raise SystemExit(f"unexpected upstream request: {self.first_request[:200]!r}")

    def _open_backend(self) -> None:
        self._backends = len(self.memory.tcpClients)
        self.upstream, self.upstream_transport = memcost.connect(self.memory)

    def connection(self, first: bool = False) -> bytes:
        """One client connection, one request; the answer the client read."""
        reactor = self.reactor
        factory = self.service.http_factory
        client = socket.socket()
        try:
            client.connect(self.address)
            client.sendall(REQUEST)
            accepted = factory.accepted
            # Normally one iteration each; more when a signal (--sample's) cut a poll short.
            for _ in range(_ROUNDS_BOUND):
                reactor.doIteration(0.1)  # accept (the poll returns at once: the client is waiting)
                if factory.accepted != accepted:
                    break
            if first:
                for _ in range(_ROUNDS_BOUND):
                    reactor.doIteration(0.1)  # the request: it opens the backend connection
                    if self.memory.tcpClients:
                        break
                self._open_backend()
            for _ in range(_ROUNDS_BOUND):
                if self.upstream_transport.value():
                    break
                if len(self.memory.tcpClients) != self._backends:
                    # The pooled connection served upstream-keepalive-requests (10,000) and was
                    # closed: the server opened another one, completed here as the first was.
                    self._open_backend()
                    continue
                reactor.doIteration(0.1)  # the request
            if first:
                self.first_request = self.upstream_transport.value()
            self.upstream_transport.clear()
            self.upstream.dataReceived(RESPONSE)
            reactor.runUntilCurrent()  # the round's writes and close
            self.memory.end_round()  # … and the access log's line (the log was given the memory reactor)
            answer = b""
            client.settimeout(5)
            for _ in range(_ROUNDS_BOUND):
                try:
                    chunk = client.recv(65536)
                except TimeoutError:
                    raise SystemExit(f"no answer: read {answer!r}; upstream {self.upstream_transport.value()!r}; "
                                     f"open {factory.connections}; calls {reactor.getDelayedCalls()}") from None
                if not chunk:
                    return answer
                answer += chunk
            raise SystemExit("the connection did not close")
        finally:
            client.close()

    idle: list[socket.socket] = []  # open_idle's clients
    _backends = 0  # backend connections the server opened (memory.tcpClients) when the last was completed

    def open_idle(self, count: int) -> None:
        """``--open N``: N more client connections, accepted and left waiting for their request
        (in their header timeout) while the loop runs, as wrk's other connections are: the
        server's timers and sets hold N more entries, as under wrk -c N+1."""
        factory = self.service.http_factory
        for _ in range(count):
            client = socket.create_connection(self.address, timeout=5)
            self.idle.append(client)
            accepted = factory.accepted
            for _ in range(_ROUNDS_BOUND):
                self.reactor.doIteration(0.1)
                if factory.accepted != accepted:
                    break
        if factory.connections != count:
            raise SystemExit(f"{factory.connections} connection(s) open, {count} expected")

    def run(self, count: int) -> None:
        connection = self.connection
        answer = b""
        for _ in range(count):
            answer = connection()
        if not answer.startswith(b"HTTP/1.1 200 ") or not answer.endswith(b"ok\n"):
            raise SystemExit(f"unexpected answer: {answer[:300]!r}")
        # Nothing left open: every connection was closed, none is left for the reactor.
        if self.service.http_factory.connections != len(self.idle):
            raise SystemExit(f"{self.service.http_factory.connections - len(self.idle)} connection(s) left open")


class KeepAlive:
    """``--keepalive``: one client connection of ``rig``'s server, kept open, many requests on it:
    the keep-alive request path through the real epoll reactor (each request a poll that reads
    it and a round's end that sends the answer), which ``bench/pathcost.py`` (a memory reactor)
    leaves out."""

    request = b"GET / HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: conncost\r\nAccept: */*\r\n\r\n"

    def __init__(self, rig: Rig):
        self.rig = rig
        self.client = socket.socket()
        self.client.connect(rig.address)
        self.client.settimeout(5)

    def one(self) -> bytes:
        rig, reactor, client = self.rig, self.rig.reactor, self.client
        client.sendall(self.request)
        for _ in range(_ROUNDS_BOUND):
            if rig.upstream_transport.value():
                break
            reactor.doIteration(0.1)  # accept (the first time), then the request
        rig.upstream_transport.clear()
        rig.upstream.dataReceived(RESPONSE)
        reactor.runUntilCurrent()  # the round's end: the answer sent
        rig.memory.end_round()  # … and the access log's line (the log was given the memory reactor)
        answer = b""
        for _ in range(_ROUNDS_BOUND):
            answer += client.recv(65536)
            if answer.endswith(b"ok\n"):
                return answer
        raise SystemExit(f"no whole answer: {answer[:300]!r}")

    def run(self, count: int) -> None:
        one = self.one
        answer = b""
        for _ in range(count):
            answer = one()
        if not answer.startswith(b"HTTP/1.1 200 ") or b"connection: close" in answer:
            raise SystemExit(f"unexpected answer: {answer[:300]!r}")


def cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def lifecycle(rounds: int, count: int) -> list[float]:
    """µs per HTTP/1.1 connection's build, ``makeConnection`` and ``connectionLost``, in memory."""
    from twisted.internet import main as twisted_main
    from twisted.python.failure import Failure

    from ingressd.http.http1 import HTTP1Factory

    reactor = DirectDispatchEPollReactor()
    factory = HTTP1Factory(lambda protocol, request: None, clock=reactor)
    peer, host = IPv4Address("TCP", "127.0.0.1", 40000), IPv4Address("TCP", "127.0.0.1", 8080)
    done = Failure(twisted_main.CONNECTION_DONE)

    class Transport(StringTransport):
        def setTcpNoDelay(self, enabled) -> None:
            pass

    def run(n: int) -> None:
        for _ in range(n):
            protocol = factory.buildProtocol(peer)
            protocol.makeConnection(Transport(hostAddress=host, peerAddress=peer))
            protocol.connectionLost(done)

    run(2000)
    figures = []
    for _ in range(rounds):
        figures.append(memcost.cpu_per(count, run, count))
        reactor.runUntilCurrent()
    return figures


def life_with_request(rounds: int, count: int, open_at_once: int) -> list[float]:
    """``--life-request``: µs per HTTP/1.1 connection with one plain ``Connection: close`` request
    answered at once, through the listener's factory chain (PROXY protocol reader off, connection
    limit, HTTP/1.1) on a memory transport: build, ``makeConnection``, ``dataReceived``, the
    answer, ``connectionLost``, and the reactor's ``runUntilCurrent`` after each, as after each
    round; ``open_at_once`` connections stay open meanwhile (each closed ``open_at_once`` later)."""
    from collections import deque

    from twisted.internet import main as twisted_main
    from twisted.python.failure import Failure

    from ingressd.http.connection_limit import ConnectionLimit
    from ingressd.http.http1 import HTTP1Factory
    from ingressd.http.proxy_protocol import ProxyProtocolFactory

    class Answer:  # the exchange: answers when the request is complete
        def __init__(self, protocol, request) -> None:
            self.protocol = protocol

        def body_data(self, data) -> None:
            pass

        def body_done(self) -> None:
            self.protocol.write_head(200, [], 2)
            self.protocol.write_body(b"ok")
            self.protocol.finish_response()

        def client_lost(self) -> None:
            pass

    class Forwarding:
        proxy_protocol = False

    class Transport(StringTransport):
        def setTcpNoDelay(self, enabled) -> None:
            pass

    reactor = DirectDispatchEPollReactor()
    forwarding = Forwarding()
    chain = ProxyProtocolFactory(ConnectionLimit().wrap(HTTP1Factory(Answer, clock=reactor)),
                                 lambda: forwarding, reactor)
    peer, host = IPv4Address("TCP", "127.0.0.1", 40000), IPv4Address("TCP", "127.0.0.1", 8080)
    done = Failure(twisted_main.CONNECTION_DONE)

    def run(n: int) -> float:
        ring: deque = deque()
        started = time.process_time()
        transport = None
        for _ in range(n):
            protocol = chain.buildProtocol(peer)
            transport = Transport(hostAddress=host, peerAddress=peer)
            protocol.makeConnection(transport)
            protocol.dataReceived(REQUEST)
            ring.append(protocol)
            if len(ring) > open_at_once:
                ring.popleft().connectionLost(done)
            reactor.runUntilCurrent()
        spent = (time.process_time() - started) / n * 1e6
        while ring:
            ring.popleft().connectionLost(done)
        reactor.runUntilCurrent()
        if transport is None or not transport.value().startswith(b"HTTP/1.1 200 ") or not transport.disconnecting:
            raise SystemExit(f"unexpected answer: {transport.value()[:300] if transport else b''!r}")
        return spent

    run(min(count, 3000))
    return [run(count) for _ in range(rounds)]


def main() -> None:
    p = memcost.options(__doc__, count="connections", default=5_000, lines=40, unit="connection")
    p.add_argument("--open", type=int, default=0,
                   help="client connections kept open and idle meanwhile, as wrk's others (default 0)")
    p.add_argument("--calls", action="store_true", help="print only the calls per connection (cProfile)")
    p.add_argument("--life-request", action="store_true",
                   help="an HTTP/1.1 connection with one plain request through the listener's factory chain, in "
                        "memory, the reactor's round's end after each (with --open: N more open meanwhile)")
    p.add_argument("--lifecycle", action="store_true",
                   help="time only the HTTP/1.1 protocol's build, connectionMade and connectionLost (in memory)")
    p.add_argument("--keepalive", action="store_true",
                   help="requests on one kept-alive connection instead of a connection each (the same loop)")
    args = p.parse_args()
    if args.life_request:
        figures = life_with_request(args.rounds, args.connections * 2, args.open)
        print(f"python {sys.version.split()[0]}; an HTTP/1.1 connection with one plain request, in memory, "
              f"{args.open} more open: {memcost.per_text(figures, args.connections * 2, 'connection', 2)}")
        return
    if args.lifecycle:
        figures = lifecycle(args.rounds, args.connections * 4)
        print(f"python {sys.version.split()[0]}; the HTTP/1.1 protocol's life alone: "
              f"{memcost.per_text(figures, args.connections * 4, 'connection', 2)}")
        return
    with tempfile.TemporaryDirectory(prefix="ingressd-conncost-") as tmp:
        # One backend connection (and with --keepalive one client connection) carries every request.
        rig = Rig(memcost.server_args(args.args, Path(tmp)), Path(tmp))
        rig.open_idle(args.open)
        if args.keepalive:
            rig = KeepAlive(rig)
        rig.run(500)  # warm-up
        if args.profile or args.calls:
            stats = memcost.profiled(rig.run, args.connections)
            if args.profile:
                stats.sort_stats(args.sort).print_stats(args.lines)
            unit = "request" if args.keepalive else "connection"
            print(f"calls per {unit} under cProfile: {stats.total_calls / args.connections:.1f} "
                  f"(the loop's own socket calls included)")
            return
        if args.sample:
            print_samples(*sample(rig, args.connections * args.rounds), args.lines, "connection")
            return
        figures, users, systems = [], [], []
        for _ in range(args.rounds):
            user, system = cpu()
            figures.append(memcost.cpu_per(args.connections, rig.run, args.connections))
            after_user, after_system = cpu()
            users.append((after_user - user) / args.connections * 1e6)
            systems.append((after_system - system) / args.connections * 1e6)
        print(memcost.python_line(args.args))
        what = "a request on a kept-alive connection" if args.keepalive else "a connection with one request"
        print(f"{what}: {statistics.median(figures):.1f} µs CPU "
              f"(user {statistics.median(users):.1f}, system {statistics.median(systems):.1f}; "
              f"{memcost.rounds_text(figures, args.connections)})")


if __name__ == "__main__":
    main()
