"""The HTTP/1.1 upstream protocol: pooled keep-alive connections to backend endpoints.

``HTTP1Upstream.acquire`` hands out an idle connection to an endpoint or opens a new one;
an ``HTTP1Connection`` frames one request (head, body as it is or chunked), parses the
response with llhttp and reports to its exchange (head, body pieces, end, failure) with read
and send timeouts. Connections go back to the pool only after a complete, reusable response.
A plain response head that arrives whole in one read is parsed in one call instead
(``ingressd.proxy.response_head``) and its Content-Length body counted here, with the same
callbacks and results as llhttp's; a whole response in one read goes to an exchange that
takes it so (``takes_whole``) in one ``upstream_whole`` call; anything else goes to llhttp.
Both implement the seam of ``ingressd.interfaces`` (its UpstreamProtocol and UpstreamConnection).
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import ClientFactory, Protocol

from ingressd.http import parser as parsing
from ingressd.http.deadline import Deadline
from ingressd.http.headers import HIDDEN_FROM_BACKEND, HOP_BY_HOP, serialize
from ingressd.features import BackendTLS
from ingressd.proxy.backend_tls import BackendConnectionCreator, BackendTLSError, make_context
from ingressd.proxy.response_head import ACCELERATED, parse_response_relay
from ingressd.proxy.transport import connect_tcp
from ingressd.proxy.upstream import STREAMED, StreamedConnection, UpstreamError
from ingressd.tls.lean import LeanTLSFactory
from zope.interface import implementer


@implementer(IPushProducer)
class HTTP1Connection(StreamedConnection, Protocol):
    """One HTTP/1.1 connection to a backend endpoint, reused for successive requests."""

    # Whether plain heads skip llhttp (``_fast_head``).
    fast_head = parsing.one_call_head_pays(ACCELERATED)
    _fast_left = 0  # body bytes still due of a response read by _fast_head
    # The response's headers as the client gets them (``headers.from_backend``), when
    # _fast_head read them: the exchange need not filter them again; None after llhttp.
    for_client: list | None = None
    _parser_mid = False  # llhttp has begun a message it has not completed

    def __init__(self, pool: "HTTP1Upstream", key: tuple[str, int]):
        self.pool = pool
        self.key = key
        self.address = f"{key[0]}:{key[1]}"  # nginx's $upstream_addr for it (the exchange's plain lane)
        self.exchange = None
        self.parser = None
        self.connected = False
        self.reused = False
        self.idle_since = 0.0
        self.opened_at = pool.clock.seconds()  # upstream-keepalive-time: not reused past max_age after this
        self.served = 0  # complete responses: upstream-keepalive-requests closes it after that many
        self._status = 0
        self.response_headers: list[tuple[bytes, bytes]] = []  # the current response's, as received
        self._head_delivered = False
        self._complete = False
        self._keep_alive = False
        self._head_request = False
        self._chunked = False  # the request body goes chunked (its length unknown)
        self._http10 = False  # the request went as HTTP/1.0
        self._read_timer = Deadline(pool.clock, self._read_timed_out)
        self._read_timeout = 60.0
        self._send_timer = Deadline(pool.clock, self._send_timed_out)
        self._send_timeout = 60.0
        self._read_paused = False
        self._received_any = False
        self.on_connected: Callable | None = None
        self._tunnel = None  # after divert() (a 101): the tunnel that takes every byte
        self.tls_creator = None  # HTTPS: what made its TLS side (remembers the session)

    # -- lifecycle ------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected = True
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            no_delay(True)  # heads and bodies go out as written: never wait for an ACK
        self.transport.registerProducer(self, True)
        notify, self.on_connected = self.on_connected, None
        if notify is not None:
            notify(self)

    def connectionLost(self, reason=None) -> None:
        self.connected = False
        self._read_timer.stop()
        self._send_timer.stop()
        self.parser = None  # it holds our bound methods: no cycle left for the collector
        if self._tunnel is not None:
            self._tunnel.backend_lost()
            return
        self.pool._forget(self)
        exchange, self.exchange = self.exchange, None
        if exchange is None:
            return
        if self._head_delivered and not self._complete and self._close_delimited():
            exchange.upstream_done(self, reusable=False)
            return
        if not self._complete:
            exchange.upstream_failed(
                self,
                UpstreamError(
                    "backend closed the connection" + (" before answering" if not self._received_any else ""),
                    retryable=not self._received_any and self.reused,
                    cause="backend_closed",
                ),
            )

    def _close_delimited(self) -> bool:
        for name, value in self.response_headers:
            if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
                return False
        return True

    # -- one request ----------------------------------------------------------------------

    def start(self, exchange, method: bytes, target: bytes, headers: list, body_length: int | None,
              read_timeout: float, send_timeout: float, version: bytes = b"1.1") -> None:
        """Send a request head; the exchange streams the body with ``send_body``/``end_body``."""
        chunked = body_length == STREAMED
        if chunked:
            headers.append((b"transfer-encoding", b"chunked"))
        elif body_length is not None:
            headers.append((b"content-length", b"%d" % body_length))
        self.start_head(exchange, b"%s %s HTTP/%s\r\n%s\r\n" % (method, target, version, serialize(headers)),
                        method == b"HEAD", read_timeout, send_timeout, chunked, version == b"1.0")

    def start_head(self, exchange, head: bytes, head_request: bool, read_timeout: float, send_timeout: float,
                   chunked: bool = False, http10: bool = False) -> None:
        """Send a request head given whole, framing included (``start``'s second half; the
        exchange's plain lane makes it in one call, ``proxy.backend_request``): ``head_request``
        for a HEAD request, ``chunked`` when the body goes chunked, ``http10`` for an HTTP/1.0 one."""
        self.exchange = exchange
        if self.parser is None or self._head_request:
            # A parser is good for the next response once the last one ended where it
            # ended for llhttp too; after a HEAD, llhttp still waits for the body it announced.
            self.parser = parsing.HttpResponseParser(self)
            self._parser_mid = False
        self._status = 0
        self._fast_left = 0
        self.response_headers = []
        self._head_delivered = False
        self._complete = False
        self._received_any = False
        self._head_request = head_request
        self._read_timeout = read_timeout
        self._send_timeout = send_timeout
        self._chunked = chunked
        self._http10 = http10  # nginx's proxy_http_version 1.0: no reuse after it
        # A previous exchange may have paused reading (its client was slow) just as its
        # response completed: this request must be read. (Only then: resuming a transport
        # that reads already costs the reactor's registration check on every request.)
        if self._read_paused:
            self.transport.resumeProducing()
            self._read_paused = False
        self.transport.write(head)
        self._read_timer.set(read_timeout)

    def send_body(self, data: bytes) -> None:
        if self._chunked:
            self.transport.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.transport.write(data)

    def end_body(self) -> None:
        if self._chunked:
            self.transport.write(b"0\r\n\r\n")

    def write_raw(self, data: bytes) -> None:
        """After a 101: the tunnel's bytes, as they are."""
        self.transport.write(data)

    def release(self) -> None:
        """The response is complete and the connection may serve another request."""
        self.pool.release(self)

    def close(self) -> None:
        """Close once what was written is sent: a response that cannot be reused."""
        if self.transport is not None:
            self.transport.loseConnection()

    def divert(self, tunnel) -> None:
        """After a 101: every byte read goes to ``tunnel.backend_data``."""
        self._tunnel = tunnel

    def abort(self) -> None:
        """The exchange gave up (client gone): drop this connection, never reuse it."""
        self.exchange = None
        self._stop_timers()
        if self.transport is not None:
            self.transport.abortConnection()

    # -- parsing the response -------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel.backend_data(data)
            return
        if self.exchange is None:
            # Bytes on an idle connection: the backend is confused or closing; drop it.
            self.transport.abortConnection()
            return
        first = not self._received_any
        self._received_any = True
        client = self.exchange.protocol
        client.cork()  # what this read produces for the client leaves in one write
        try:
            # The read timeout starts over with each read, before anything this read makes
            # happens (which may pause reading: no timeout then); a response that is all here
            # (_fast_head's one step) stops it at once, so that one skips it.
            if first and self.fast_head and not self._parser_mid and self._fast_head(data):
                return
            if not self._read_paused:
                self._read_timer.set(self._read_timeout)
            if self._fast_left:
                self._fast_body(data)
            else:
                self._feed(data)
        finally:
            client.uncork()

    def _fast_head(self, data: bytes) -> bool:
        """A response's first read: when it holds a plain head (``parse_response_relay``) and
        no byte past the response, deliver it as llhttp's callbacks would and count the
        Content-Length body from here on (``_fast_body``), the read timeout started as
        dataReceived would; a whole response to an exchange that takes it so goes in one
        ``upstream_whole`` call (no timeout to start). False: llhttp takes it all."""
        head = parse_response_relay(data, _NOT_FOR_CLIENT)
        if head is None:
            return False  # (the caller starts the read timeout, then llhttp reads it)
        end, _minor, status, _reason, headers, length, keep_alive, for_client, lines = head
        after = len(data) - end
        if self._head_request or status == 204 or status == 304:
            due = 0  # no body, whatever the length says (llhttp knows no HEAD: after it, a new parser)
        elif length is None:
            return False  # until the close: llhttp's
        else:
            due = length
        if after > due:
            return False  # bytes past the response: llhttp decides what they are
        if after == due:  # the whole response: in one call to an exchange that takes it so
            # (_fast_left stays start_head's 0; the head is the exchange's, not kept here: the
            # next response's head replaces response_headers and for_client before they are read)
            exchange = self.exchange
            takes_whole = getattr(exchange, "takes_whole", None)
            if takes_whole is not None and takes_whole(headers):
                # Settled as _headers_complete, on_message_complete and _message_done leave it.
                self._status = status
                self._keep_alive = reusable = keep_alive and not self._http10
                self._head_delivered = self._complete = True
                if self.tls_creator is not None:
                    self.tls_creator.remember(self.transport)
                self._read_timer.at = None  # clear()'s one line, inline: once per request
                if self._send_timer.at is not None:  # (set only while the backend is slow to read)
                    self._send_timer.clear()
                self.exchange = None
                # Back to the pool (release's call, inline) or closed before the exchange
                # writes and finishes the response: a pipelined next request can take it.
                if reusable:
                    self.pool.release(self)  # (release's one line: once a request)
                else:
                    self.close()
                exchange.upstream_whole(status, headers, for_client, lines, length, data[end:] if after else b"")
                return True
        self._fast_left = due - after
        self._fast_keep_alive = keep_alive
        self.response_headers = headers
        self.for_client = for_client
        if not self._read_paused:  # (dataReceived's, for a response not all here or not taken whole)
            self._read_timer.set(self._read_timeout)
        self._headers_complete(status, keep_alive, length)
        if after:
            self.on_body(data[end:])
        if not self._fast_left:
            self.on_message_complete()
        return True

    def _fast_body(self, data: bytes) -> None:
        """More of a Content-Length body after ``_fast_head``."""
        left = self._fast_left
        if len(data) <= left:
            self._fast_left = left = left - len(data)
            self.on_body(data)
            if not left:
                self.on_message_complete()
            return
        # Bytes past the response: what llhttp, which never saw this response, would have
        # made of them after it; so a parser in the state llhttp would be in takes them.
        self._fast_left = 0
        self.parser = parsing.HttpResponseParser(self) if self._fast_keep_alive else _closed_parser(self)
        self._parser_mid = False
        self.on_body(data[:left])
        self.on_message_complete()
        self._feed(data[left:])

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except parsing.HttpParserUpgrade as upgrade:
            exchange = self.exchange
            rest = data[upgrade.args[0]:]
            self.exchange = None
            self._stop_timers()
            if exchange is not None:
                exchange.upstream_upgraded(self, rest)
            return
        except parsing.HttpParserError as exc:
            self._fail(UpstreamError(f"invalid response from backend: {exc}", cause="invalid_response"))
            return
        if self._head_request and self._head_delivered and not self._complete:
            self._message_done()

    def on_message_begin(self) -> None:
        self._parser_mid = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.response_headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.response_headers = []  # interim response (100 Continue…): not relayed
            return
        self.for_client = None
        length = None
        for name, value in self.response_headers:
            if name == b"content-length":
                length = int(value)
        self._headers_complete(status, self.parser.should_keep_alive(), length)

    def _headers_complete(self, status: int, keep_alive: bool, length: int | None) -> None:
        self._status = status
        self._keep_alive = keep_alive and not self._http10
        self._head_delivered = True
        if self.exchange is not None:
            self.exchange.upstream_head(self, status, self.response_headers, length)

    def on_body(self, data: bytes) -> None:
        if self.exchange is not None and not self._head_request:
            self.exchange.upstream_body(data)

    def on_message_complete(self) -> None:
        self._parser_mid = False
        if self._status == 101:
            return  # llhttp completes a 101 before pausing on it: dataReceived hands over the upgrade
        if self._head_delivered and not self._complete:
            self._message_done()

    def _message_done(self) -> None:
        self._complete = True
        if self.tls_creator is not None:  # a whole response: its session (and 1.3 tickets) are in
            self.tls_creator.remember(self.transport)
        self._stop_timers()
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.upstream_done(self, reusable=self._keep_alive)

    # -- flow control ---------------------------------------------------------------------

    def pauseProducing(self) -> None:
        """The backend is not reading our request body fast enough."""
        if self._tunnel is not None:
            self._tunnel.backend_paused()
            return
        if self.exchange is not None:
            self.exchange.upstream_write_paused()
            if not self._send_timer.armed:
                self._send_timer.set(self._send_timeout)

    def resumeProducing(self) -> None:
        if self._tunnel is not None:
            self._tunnel.backend_resumed()
            return
        self._send_timer.clear()
        if self.exchange is not None:
            self.exchange.upstream_write_resumed()



class _ConnectFactory(ClientFactory):
    noisy = False

    def __init__(self, pool: "HTTP1Upstream", key, on_ready: Callable, on_error: Callable):
        self.pool = pool
        self.key = key
        self.on_ready = on_ready
        self.on_error = on_error
        self.done = False
        self.tls_creator = None  # HTTPS: the connection's BackendConnectionCreator

    def buildProtocol(self, addr):
        protocol = HTTP1Connection(self.pool, self.key)
        protocol.tls_creator = self.tls_creator
        protocol.on_connected = self.made
        return protocol

    def made(self, connection: HTTP1Connection) -> None:
        if self.done:  # cancelled while connecting
            connection.transport.loseConnection()
            return
        self.done = True
        connection.reused = False
        self.on_ready(connection)

    def clientConnectionFailed(self, connector, reason) -> None:
        if not self.done:
            self.done = True
            message = reason.getErrorMessage()
            timeout = "timeout" in message.lower() or "timed out" in message.lower()
            self.on_error(UpstreamError(f"connect to {self.key[0]}:{self.key[1]} failed: {message}",
                                        timeout=timeout, retryable=True,
                                        cause="connect_timeout" if timeout else "connect_failed"))


class HTTP1Upstream:
    """The HTTP/1.1 upstream protocol: idle keep-alive connections per endpoint, bounded in
    number, idle time (on ``clock``'s time), requests served (``max_requests``, nginx's
    ``keepalive_requests`` in the upstream block; 0: no limit) and age (``max_age`` seconds since
    the connection was opened, nginx's ``keepalive_time``: a connection that old is closed once
    its request is done instead of being kept; 0: no limit). With ``tls`` it is ``HTTPS``: each connection
    speaks TLS as the route's ``UpstreamSettings.tls`` says (``ingressd.proxy.backend_tls``),
    pooled per endpoint and TLS settings, resuming its endpoint's last session."""

    def __init__(self, clock: Any, max_idle_per_endpoint: int = 320, idle_timeout: float = 60.0,
                 tls: bool = False, max_requests: int = 10000, max_age: float = 3600.0):
        self.name = "HTTPS" if tls else "HTTP"
        self.tls = tls
        self._contexts: dict = {}  # BackendTLS → its OpenSSL context
        self._sessions: dict = {}  # pool key → the last TLS session
        self.clock = clock
        self.max_idle = max_idle_per_endpoint
        self.idle_timeout = idle_timeout
        self.max_requests = max_requests
        self.max_age = max_age
        self.idle: dict[tuple[str, int], list[HTTP1Connection]] = {}
        self.opened = 0
        self.reused = 0
        self._sweeper = None

    def acquire(self, host: str, port: int, settings: Any,
                on_ready: Callable[[HTTP1Connection], None],
                on_error: Callable[[UpstreamError], None]) -> Callable[[], None]:
        """Call ``on_ready`` with a connection (at once when one is idle); returns a canceller.
        ``settings``: the route's ``UpstreamSettings`` (connect timeout, TLS)."""
        tls = (settings.tls or _NGINX_TLS) if self.tls else None
        key = (host, port) if tls is None else (host, port, tls)
        idle = self.idle.get(key)
        while idle:
            connection = idle.pop()
            if connection.connected:
                connection.reused = True
                self.reused += 1
                on_ready(connection)
                return _noop
        factory = outer = _ConnectFactory(self, key, on_ready, on_error)
        if tls is not None:
            try:
                creator = self._creator(tls, key)
            except BackendTLSError as exc:
                on_error(UpstreamError(f"TLS to {host}:{port}: {exc}", cause="tls_settings"))
                return _noop
            factory.tls_creator = creator
            outer = LeanTLSFactory(creator, True, factory)
        connector = connect_tcp(self.clock, host, port, outer, settings.connect_timeout)
        self.opened += 1

        def cancel() -> None:
            if not factory.done:
                factory.done = True
                connector.disconnect()

        return cancel

    def take_idle(self, host: str, port: int, settings: Any = None) -> HTTP1Connection | None:
        """An idle connection to ``host:port`` (over TLS: made with ``settings.tls``, as
        ``acquire`` keys it), marked reused, or None (``acquire``'s first step, for the
        exchange's plain lane: the end of ``Exchange.begin``)."""
        if self.tls:
            idle = self.idle.get((host, port, (settings.tls if settings is not None else None) or _NGINX_TLS))
        else:
            idle = self.idle.get((host, port))
        while idle:
            connection = idle.pop()
            if connection.connected:
                connection.reused = True
                self.reused += 1
                return connection
        return None

    def _creator(self, tls: Any, key: Any) -> BackendConnectionCreator:
        context = self._contexts.get(tls)
        if context is None:
            context = self._contexts[tls] = make_context(tls)
        return BackendConnectionCreator(tls, context, self._sessions, key)

    def use_limits(self, max_idle_per_endpoint: int, idle_timeout: float, max_requests: int,
                   max_age: float = 3600.0) -> None:
        """New keep-alive limits (a ConfigMap change): read at each release and sweep from now on;
        no connection is dropped for the change itself."""
        self.max_idle, self.idle_timeout, self.max_requests = max_idle_per_endpoint, idle_timeout, max_requests
        self.max_age = max_age

    def release(self, connection: HTTP1Connection) -> None:
        """Return a connection after a complete response; closes it when the pool is full, it
        has served ``max_requests`` or it was opened ``max_age`` seconds ago or more."""
        if not connection.connected:
            return
        connection.served += 1
        idle = self.idle.get(connection.key)
        if idle is None:  # (not setdefault: no new list per release)
            idle = self.idle[connection.key] = []
        now = self.clock.seconds()
        if (len(idle) >= self.max_idle or self.idle_timeout <= 0
                or (self.max_requests and connection.served >= self.max_requests)
                or (self.max_age and now - connection.opened_at >= self.max_age)):
            connection.transport.loseConnection()
            return
        connection.idle_since = now
        idle.append(connection)
        if self._sweeper is None:
            self._sweeper = self.clock.callLater(min(5.0, self.idle_timeout), self._sweep)

    def _forget(self, connection: HTTP1Connection) -> None:
        idle = self.idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)

    def _sweep(self) -> None:
        self._sweeper = None
        limit = self.clock.seconds() - self.idle_timeout
        remaining = False
        for key, idle in list(self.idle.items()):
            for connection in [c for c in idle if c.idle_since < limit]:
                idle.remove(connection)
                if connection.transport is not None:
                    connection.transport.loseConnection()
            if idle:
                remaining = True
            else:
                del self.idle[key]
        if remaining:
            self._sweeper = self.clock.callLater(min(5.0, self.idle_timeout), self._sweep)

    def close(self) -> None:
        if self._sweeper is not None and self._sweeper.active():
            self._sweeper.cancel()
        self._sweeper = None
        for idle in self.idle.values():
            for connection in idle:
                if connection.transport is not None:
                    connection.transport.loseConnection()
        self.idle.clear()

    def idle_count(self) -> int:
        return sum(len(idle) for idle in self.idle.values())


_NGINX_TLS = BackendTLS()  # a route that says nothing: nginx's proxy_ssl_* defaults
_NOT_FOR_CLIENT = HOP_BY_HOP | HIDDEN_FROM_BACKEND  # headers.from_backend's

# A response that leaves llhttp refusing more bytes (``Data after `Connection: close```).
_CLOSING_RESPONSE = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"


class _Muted:
    """Relays a parser's callbacks to ``target`` once ``live`` (not while it is primed)."""

    def __init__(self, target: HTTP1Connection):
        self.target = target
        self.live = False

    def on_message_begin(self) -> None:
        if self.live:
            self.target.on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.live:
            self.target.on_header(name, value)

    def on_headers_complete(self) -> None:
        if self.live:
            self.target.on_headers_complete()

    def on_body(self, data: bytes) -> None:
        if self.live:
            self.target.on_body(data)

    def on_message_complete(self) -> None:
        if self.live:
            self.target.on_message_complete()


def _closed_parser(connection: HTTP1Connection):
    """A parser for ``connection`` in llhttp's state after a response that closes the
    connection: primed with one, silently."""
    relay = _Muted(connection)
    parser = parsing.HttpResponseParser(relay)
    parser.feed_data(_CLOSING_RESPONSE)
    relay.live = True
    return parser


def _noop() -> None:
    pass
