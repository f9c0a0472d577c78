"""The FastCGI upstream protocol (``backend-protocol: FCGI``): one request per connection.

As nginx's ``fastcgi_pass`` in an ingress-nginx location (``fastcgi_keep_conn off``, its
default): a new connection per request, FCGI_BEGIN_REQUEST as a responder, the request's
parameters (``proxy.fastcgi_params``), the body as FCGI_STDIN records as the exchange streams
it, then the application's FCGI_STDOUT read as a CGI response — its head (``Status:``, or 302
with a ``Location`` and no ``Status``, else 200; at most ``HEAD_LIMIT`` bytes, nginx's
``fastcgi_buffer_size``) and the body relayed as it comes — until FCGI_END_REQUEST. FCGI_STDERR
is logged, bounded. A malformed record or head, a connection closed before the end, a
protocol status other than REQUEST_COMPLETE: 502 (or a dropped response once it started);
the read and send timeouts: 504; the route's ``proxy-*-timeout`` apply.
Implements ``interfaces.UpstreamProtocol`` and ``interfaces.UpstreamConnection``.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python import log
from zope.interface import implementer

from ingressd.http.deadline import Deadline
from ingressd.proxy import fastcgi_records as records
from ingressd.proxy.fastcgi_params import cgi_params
from ingressd.proxy.transport import connect_tcp
from ingressd.proxy.upstream import StreamedConnection, UpstreamError

HEAD_LIMIT = 4096  # nginx's fastcgi_buffer_size (one page): a longer head is "too big header"
STDERR_LIMIT = 4096  # bytes of an application's stderr logged per request
_DROPPED = frozenset((b"status", b"transfer-encoding", b"connection", b"keep-alive"))


class _BadHead(Exception):
    pass


def parse_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    """A CGI response head (lines, without the blank line): (status, headers) as nginx reads
    it: ``Status: NNN …`` sets the status, a ``Location`` without it makes a 302."""
    status = None
    location = False
    headers: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\n") if head else ():
        line = line[:-1] if line.endswith(b"\r") else line
        name, colon, value = line.partition(b":")
        name = name.lower()
        if not colon or not name or not all(33 <= c < 127 and c != 58 for c in name) \
                or any(c < 32 and c != 9 or c == 127 for c in value):
            raise _BadHead(f"invalid header line {line[:80]!r}")
        value = value.strip(b" \t")
        if name == b"status":
            code = value[:3]
            if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 599 \
                    or (len(value) > 3 and value[3:4] != b" "):
                raise _BadHead(f"invalid Status {value[:40]!r}")
            status = int(code)
        elif name == b"location":
            location = True
        if name not in _DROPPED:
            headers.append((name, value))
    if status is None:
        status = 302 if location else 200
    return status, headers


@implementer(IPushProducer)
class FastCGIConnection(StreamedConnection, Protocol):
    """One connection to a FastCGI application, for one request."""

    reused = False  # never: one request per connection

    def __init__(self, clock: Any, fastcgi: Any = None):
        self.clock = clock
        self.fastcgi = fastcgi  # the route's fastcgi_params.FastCGI (index, parameters), or None
        self.exchange = None
        self.connected = False
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.on_connected: Callable | None = None
        self._reader = records.RecordReader()
        self._head = bytearray()
        self._head_delivered = False
        self._head_request = False
        self._length: int | None = None
        self._body_bytes = 0
        self._complete = False
        self._stdin_closed = False
        self._stderr_logged = 0
        self._read_paused = False
        self._read_timer = Deadline(clock, self._read_timed_out)
        self._read_timeout = 60.0
        self._send_timer = Deadline(clock, self._send_timed_out)
        self._send_timeout = 60.0

    # -- lifecycle ------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected = True
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            no_delay(True)
        self.transport.registerProducer(self, True)
        notify, self.on_connected = self.on_connected, None
        if notify is not None:
            notify(self)

    def connectionLost(self, reason=None) -> None:
        self.connected = False
        self._stop_timers()
        exchange, self.exchange = self.exchange, None
        if exchange is not None and not self._complete:
            exchange.upstream_failed(self, UpstreamError(
                "FastCGI application closed the connection before the end of the request",
                cause="backend_closed"))

    # -- one request ----------------------------------------------------------------------

    def start(self, exchange, method: bytes, target: bytes, headers: list, body_length: int | None,
              read_timeout: float, send_timeout: float, version: bytes = b"1.1") -> None:
        """Begin the request: its parameters from ``exchange`` (an ``interfaces.RequestView``;
        nginx sends the client's request headers, not ``headers``, which are for HTTP)."""
        self.exchange = exchange
        self._head_request = method == b"HEAD"
        self._read_timeout = read_timeout
        self._send_timeout = send_timeout
        params = records.encode_params(cgi_params(exchange, self.fastcgi, body_length))
        out = [records.begin_request(), records.stream(records.PARAMS, params), records.record(records.PARAMS)]
        if not body_length:  # no body (or an empty one): the stream ends now
            out.append(records.record(records.STDIN))
            self._stdin_closed = True
        self.transport.write(b"".join(out))
        self._read_timer.set(read_timeout)

    def send_body(self, data: bytes) -> None:
        if data and not self._stdin_closed:
            self.transport.write(records.stream(records.STDIN, data))

    def end_body(self) -> None:
        if not self._stdin_closed:
            self._stdin_closed = True
            self.transport.write(records.record(records.STDIN))

    def write_raw(self, data: bytes) -> None:
        raise NotImplementedError("FastCGI has no upgrade")

    def divert(self, receiver: Any) -> None:
        raise NotImplementedError("FastCGI has no upgrade")

    def release(self) -> None:
        """No connection is kept (``fastcgi_keep_conn off``): closed."""
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def abort(self) -> None:
        self.exchange = None
        self._stop_timers()
        if self.transport is not None:
            self.transport.abortConnection()

    def _invalid(self, message: str) -> None:
        self._fail(UpstreamError(f"invalid response from FastCGI application: {message}",
                                 cause="invalid_response"))

    # -- the application's records --------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.exchange is None:
            self.transport.abortConnection()
            return
        if not self._read_paused:
            self._read_timer.set(self._read_timeout)
        client = self.exchange.protocol
        client.cork()
        try:
            try:
                found = self._reader.feed(data)
            except records.FastCGIError as exc:
                self._invalid(str(exc))
                return
            for kind, content in found:
                if self.exchange is None:
                    return
                if kind == records.STDOUT:
                    self._stdout(content)
                elif kind == records.STDERR:
                    self._stderr(content)
                else:
                    self._end(content)
        finally:
            client.uncork()

    def _stdout(self, content: bytes) -> None:
        if self._head_delivered:
            self._body(content)
            return
        head = self._head
        head += content
        if head.startswith(b"\r\n") or head.startswith(b"\n"):  # no header at all
            end, skip = 0, 2 if head[0] == 13 else 1
        else:
            end, skip = head.find(b"\r\n\r\n"), 4
            lf_end = head.find(b"\n\n")
            if lf_end >= 0 and (end < 0 or lf_end < end):
                end, skip = lf_end, 2
        if end < 0:
            if len(head) > HEAD_LIMIT:
                self._invalid("too big header")
            return
        if end > HEAD_LIMIT:
            self._invalid("too big header")
            return
        try:
            status, headers = parse_head(bytes(head[:end]))
        except _BadHead as exc:
            self._invalid(str(exc))
            return
        rest = bytes(head[end + skip:])
        self._head = bytearray()
        length = None
        for name, value in headers:
            if name == b"content-length":
                if not value.isdigit() or (length is not None and int(value) != length):
                    self._invalid(f"invalid Content-Length {value[:40]!r}")
                    return
                length = int(value)
        self._length = length
        self.response_headers = headers
        self._head_delivered = True
        self.exchange.upstream_head(self, status, headers, length)
        if rest and self.exchange is not None:
            self._body(rest)

    def _body(self, data: bytes) -> None:
        if not data or self._head_request:
            return
        self._body_bytes += len(data)
        if self._length is not None and self._body_bytes > self._length:
            self._invalid("more body than its Content-Length")
            return
        self.exchange.upstream_body(data)

    def _stderr(self, content: bytes) -> None:
        room = STDERR_LIMIT - self._stderr_logged
        if room > 0 and content:
            text = content[:room].decode("utf-8", "replace").strip()
            self._stderr_logged += min(len(content), room)
            log.msg(f"ingressd: FastCGI sent in stderr: {text!r}")

    def _end(self, content: bytes) -> None:
        try:
            _app_status, protocol_status = records.parse_end_request(content)
        except records.FastCGIError as exc:
            self._invalid(str(exc))
            return
        if protocol_status != records.REQUEST_COMPLETE:
            self._invalid(records.protocol_status_word(protocol_status))
            return
        if not self._head_delivered:
            self._invalid("the application ended the request before its head" if not self._head
                          else "the application's head has no end")
            return
        if self._length is not None and self._body_bytes != self._length and not self._head_request:
            self._invalid("less body than its Content-Length")
            return
        self._complete = True
        self._stop_timers()
        exchange, self.exchange = self.exchange, None
        exchange.upstream_done(self, reusable=False)

    # -- flow control ---------------------------------------------------------------------

    def pauseProducing(self) -> None:
        """The application is not reading the request body fast enough."""
        if self.exchange is not None:
            self.exchange.upstream_write_paused()
            if not self._send_timer.armed:
                self._send_timer.set(self._send_timeout)

    def resumeProducing(self) -> None:
        self._send_timer.clear()
        if self.exchange is not None:
            self.exchange.upstream_write_resumed()



class _ConnectFactory(ClientFactory):
    noisy = False

    def __init__(self, clock: Any, address: str, fastcgi: Any, on_ready: Callable, on_error: Callable):
        self.clock = clock
        self.fastcgi = fastcgi
        self.address = address
        self.on_ready = on_ready
        self.on_error = on_error
        self.done = False

    def buildProtocol(self, addr):
        connection = FastCGIConnection(self.clock, self.fastcgi)
        connection.on_connected = self.made
        return connection

    def made(self, connection: FastCGIConnection) -> None:
        if self.done:  # cancelled while connecting
            connection.transport.loseConnection()
            return
        self.done = True
        self.on_ready(connection)

    def clientConnectionFailed(self, connector, reason) -> None:
        if not self.done:
            self.done = True
            message = reason.getErrorMessage()
            timeout = "timeout" in message.lower() or "timed out" in message.lower()
            self.on_error(UpstreamError(f"connect to {self.address} failed: {message}", timeout=timeout,
                                        retryable=True, cause="connect_timeout" if timeout else "connect_failed"))


class FastCGIUpstream:
    """``FCGI``: a new connection for each request (nothing pooled, nothing to sweep)."""

    name = "FCGI"
    streams_request_body = False

    def __init__(self, clock: Any):
        self.clock = clock
        self.opened = 0

    def acquire(self, host: str, port: int, settings: Any,
                on_ready: Callable[[FastCGIConnection], None],
                on_error: Callable[[UpstreamError], None]) -> Callable[[], None]:
        factory = _ConnectFactory(self.clock, f"{host}:{port}", getattr(settings, "fastcgi", None), on_ready, on_error)
        connector = connect_tcp(self.clock, host, port, factory, settings.connect_timeout)
        self.opened += 1

        def cancel() -> None:
            if not factory.done:
                factory.done = True
                connector.disconnect()

        return cancel

    def close(self) -> None:
        """Nothing idle to close."""
