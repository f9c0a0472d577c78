"""The client side of the proxy: an HTTP/1.1 server protocol on Twisted with llhttp parsing.

It parses and strictly validates requests (smuggling-prone framing, bad bytes, over-long
request lines and header blocks, slow clients), keeps pipelined requests in order, and
writes responses with the right framing. What to do with a request is the handler's job
(``ingressd.proxy.exchange``): this module knows nothing about routes.
"""

from __future__ import annotations

from collections import deque
from types import FunctionType
from typing import Any, Callable

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.python import log
from zope.interface import implementer

from ingressd.drain import ConnectionSet
from ingressd.http import head_buffers
from ingressd.http import parser as parsing
from ingressd.http import request_head
from ingressd.http.deadline import Deadline
from ingressd.http.headers import ResponseIdentity, serialize
from ingressd.http.shared_timers import SharedTimers
from ingressd.tls.client_auth import client_certificate
from ingressd.tls.facts import tls_facts

REASONS = {
    100: b"Continue", 101: b"Switching Protocols", 200: b"OK", 201: b"Created", 202: b"Accepted",
    204: b"No Content", 206: b"Partial Content", 301: b"Moved Permanently", 302: b"Found",
    303: b"See Other", 304: b"Not Modified", 307: b"Temporary Redirect", 308: b"Permanent Redirect",
    400: b"Bad Request", 401: b"Unauthorized", 403: b"Forbidden", 404: b"Not Found",
    405: b"Method Not Allowed", 408: b"Request Timeout", 411: b"Length Required",
    413: b"Request Entity Too Large", 414: b"Request-URI Too Large", 417: b"Expectation Failed", 426: b"Upgrade Required",
    429: b"Too Many Requests", 431: b"Request Header Fields Too Large", 499: b"Client Closed Request",
    500: b"Internal Server Error", 501: b"Not Implemented", 502: b"Bad Gateway",
    503: b"Service Temporarily Unavailable", 504: b"Gateway Timeout", 505: b"HTTP Version Not Supported",
}
# The HTTP/2 connection preface (RFC 9113 3.4): a cleartext connection that opens with it is
# HTTP/2 with prior knowledge (h2c), when the listener's factory offers it (``prior_knowledge``).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# The status lines of the statuses above, made once (a response head is written per request).
_STATUS_LINES = {status: b"HTTP/1.1 %d %s\r\n" % (status, reason) for status, reason in REASONS.items()}
# Content-Length lines made once per length (a dict look-up instead of formatting one per
# response), up to _LENGTH_LINES_HELD lengths; any other length is formatted each time.
_LENGTH_LINES: dict[int, bytes] = {}
_LENGTH_LINES_HELD = 4096


def _length_line(length: int) -> bytes:
    line = b"content-length: %d\r\n" % length
    if len(_LENGTH_LINES) < _LENGTH_LINES_HELD:
        _LENGTH_LINES[length] = line
    return line


# Never in a chunked trailer section (RFC 9110 6.5.1): framing, routing, the response's controls.
_NO_TRAILER = frozenset((b"content-length", b"transfer-encoding", b"host", b"connection", b"trailer", b"te"))
# The one-call plain head, where it pays (measured on CPython with each parser; PyPy is not
# measurable here).
_PLAIN_HEAD = (request_head.parse_request_head
               if parsing.one_call_head_pays(request_head.ACCELERATED) else None)


def error_page(status: int) -> bytes:
    """nginx-style minimal HTML body for a status ingressd answers itself."""
    if status == head_buffers.TOO_LARGE:  # nginx's page for its 494, sent as a 400
        return (b"<html>\r\n<head><title>400 Request Header Or Cookie Too Large</title></head>\r\n<body>\r\n"
                b"<center><h1>400 Bad Request</h1></center>\r\n<center>Request Header Or Cookie Too Large</center>"
                b"\r\n<hr><center>ingressd</center>\r\n</body>\r\n</html>\r\n")
    title = b"%d %s" % (status, REASONS.get(status, b""))
    return (
        b"<html>\r\n<head><title>" + title + b"</title></head>\r\n<body>\r\n<center><h1>"
        + title + b"</h1></center>\r\n<hr><center>ingressd</center>\r\n</body>\r\n</html>\r\n"
    )


def passes_backend_server(settings: "ServerSettings") -> bool:
    """allow-backend-server-header, as ingress-nginx renders it: ``proxy_pass_header Server``,
    and, with server-tokens off, ``more_clear_headers Server`` clears the backend's too."""
    return settings.backend_server_header and settings.identity.server is not None


def addresses(transport) -> tuple[str, int]:
    """The client's address and the port it connected to."""
    return getattr(transport.getPeer(), "host", ""), getattr(transport.getHost(), "port", 0)


def other_ends(transport) -> tuple[int, str]:
    """The client's port and the local address it connected to (nginx's $remote_port, $server_addr)."""
    return getattr(transport.getPeer(), "port", 0), getattr(transport.getHost(), "host", "")


class _Reject(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


class ServerSettings:
    """Limits and timeouts of the client side (nginx's defaults unless configured)."""

    def __init__(self, **overrides: Any):
        self.header_buffers = head_buffers.DEFAULT  # nginx's large_client_header_buffers: (number, size)
        self.max_headers = 100
        # nginx's underscores_in_headers and ignore_invalid_headers: by default a header field
        # whose name has an underscore is dropped (never forwarded, never seen by a feature).
        self.underscores_in_headers = False
        self.ignore_invalid_headers = True
        # allow-backend-server-header (nginx's proxy_pass_header Server): with a Server header of
        # ingressd's own (server-tokens), the backend's replaces it; without, none is sent.
        self.backend_server_header = False
        self.header_timeout = 60.0
        self.body_timeout = 60.0
        self.keepalive_timeout = 75.0
        self.keepalive_requests = 1000  # nginx's keepalive_requests: then the connection closes (0: no limit)
        self.http2_max_concurrent_streams = 128  # nginx's http2_max_concurrent_streams, sent in SETTINGS
        self.send_timeout = 60.0  # a client that reads nothing of a response for this long is dropped
        self.max_pipelined = 16
        # Server and Date on every response (ingressd's own answers and the backends', whose
        # own Server and Date are hidden as nginx does): --server-tokens picks the Server value.
        self.identity = ResponseIdentity()
        self.apply(**overrides)

    def apply(self, **values: Any) -> None:
        """Change settings in place: the connections share this object, so a new connection,
        and the next request of an open one, read the new values (the ConfigMap, SIGHUP)."""
        for key, value in values.items():
            if not hasattr(self, key) or key in ("max_url_bytes", "max_header_bytes", "drops_underscores"):
                raise TypeError(f"unknown server setting {key}")
            setattr(self, key, value)

    @property
    def max_url_bytes(self) -> int:
        """The longest request line: one of nginx's large header buffers."""
        return self.header_buffers[1]

    @property
    def max_header_bytes(self) -> int:
        """The longest request head: all of nginx's large header buffers."""
        return self.header_buffers[0] * self.header_buffers[1]

    @property
    def drops_underscores(self) -> bool:
        """Whether a header field named with an underscore is dropped (nginx: underscores_in_headers
        off and ignore_invalid_headers on; with ignore_invalid_headers off nginx keeps it)."""
        return not self.underscores_in_headers and self.ignore_invalid_headers


class Request:
    """A parsed request head, and its body while it waits behind a pipelined request."""

    __slots__ = (
        "method", "target", "version", "headers", "keep_alive", "upgrade", "chunked",
        "content_length", "complete", "pending_body", "pending_bytes", "expect_continue",
        "head_bytes",
    )

    def __init__(self) -> None:
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False
        self.pending_body: list[bytes] | None = []
        self.pending_bytes = 0
        self.chunked = False
        self.content_length: int | None = None
        self.expect_continue = False
        self.upgrade = False
        self.head_bytes = 0  # request line and headers as received (for metrics and logs)

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


_new_request = object.__new__  # a Request without __init__, for a plain head (all slots set by the caller)


@implementer(IPushProducer)
class _ParserWhenAsked:
    """``HTTP1ServerProtocol.parser``: llhttp's parser, made the first time it is asked for and
    kept on the connection (as its own attribute, which hides this one: no cost after). A plain
    request head is read in one call before llhttp (``request_head``), so a connection whose
    requests are all plain never makes one (1.1 µs, and a reference cycle, a connection)."""

    def __get__(self, protocol, owner=None):
        if protocol is None:
            return self
        parser = protocol.__dict__["parser"] = parsing.HttpRequestParser(protocol)
        return parser


class HTTP1ServerProtocol(Protocol):
    """One client connection. ``factory.handler(protocol, request)`` returns an exchange."""

    scheme = "http"
    # A plain request head in one call (``request_head``), before llhttp; None: llhttp only
    # (the differential tests compare both).
    parse_plain_head = staticmethod(_PLAIN_HEAD) if _PLAIN_HEAD is not None else None

    _send_deadline: Deadline | None = None  # made when the client first stops reading (pauseProducing)

    # A connection's state starts as these class attributes: each is set on the connection only
    # when it changes (an object with fewer attributes set is quicker to make: a connection that
    # sets more than CPython's 30 shared attribute names gets a dict of its own, grown as it goes).
    # The few every request reads are slots instead, set in __init__: CPython 3.11 reads a slot
    # for ~30 instructions but a class attribute through the instance for ~230 (it does not
    # specialise that read), and they were read eleven times a request; as slots they add no
    # names to the connection's dict either.
    __slots__ = ("closed", "_receiver", "_deferred_reject", "_plain_closed", "_draining", "_reading_paused",
                 "_corked", "trusted")
    _parsing: Request | None = None
    _active = None  # the exchange being answered
    _active_request: Request | None = None
    _head_bytes = 0
    _in_head = True
    _url_bytes = 0
    _header_bytes = 0
    _response_keep_alive = True
    _chunked_response = False
    _response_body_allowed = True
    _timer_status = 0
    _head_written = False
    _registered = False
    peer_ip = ""
    server_port = 0
    _tls: tuple[str, str] | None = None  # (TLS version, SNI name), read once
    _requests = 0  # requests dispatched on this connection
    # The head being read, in nginx's buffers (see _fits): made only when its lines outgrow
    # one buffer; until then they are a sum, _packed, of at most _one_buffer bytes.
    _buffers: head_buffers.HeadBuffers | None = None
    _one_buffer = 0
    _packed = 0
    _line_checked = False
    _preface: bytes | None = None  # the first bytes, while they may be the HTTP/2 preface
    _http2 = None  # the HTTP/2 protocol this connection became (prior knowledge)
    parser = _ParserWhenAsked()  # llhttp's, made when first needed

    def __init__(self, settings: ServerSettings, handler: Callable, clock: Any, timers: Any = None):
        # ``timers``: where the connection's timeouts are armed (the factory's SharedTimers: one
        # reactor call for all connections' header timeouts); the clock itself when not given.
        self.settings = settings
        self.handler = handler
        # What a request calls: an object's __call__ bound once a connection (a call through
        # the type's __call__ slot costs more than a bound method's, once a request).
        self._handle = handler.__call__ if isinstance(getattr(type(handler), "__call__", None), FunctionType) \
            else handler
        self.clock = clock
        self._queue: deque[Request] = deque()
        self._timer = Deadline(clock if timers is None else timers, self._timed_out, horizon=min(
            settings.header_timeout, settings.body_timeout, settings.keepalive_timeout))
        self._out: list[bytes] = []
        self._buffer_limits = settings.header_buffers
        # The slots (see __slots__):
        self.closed = False
        self._receiver = None  # after divert(): takes every byte read (a WebSocket tunnel)
        self._deferred_reject: tuple[int, str] | None = None  # a malformed pipelined request
        self._plain_closed = False  # a plain head (not seen by llhttp) said the connection closes
        self._draining = False  # shutting down: the next answer says Connection: close
        self._reading_paused = False
        self._corked = 0  # cork()s not yet uncorked: writes wait in _out
        self.trusted: tuple | None = None  # (policy, the peer is a trusted proxy): decided by the proxy

    # -- connection lifecycle -------------------------------------------------------------

    def connectionMade(self) -> None:
        transport = self.transport
        peer, host = transport.getPeer(), transport.getHost()  # addresses() and other_ends(), asked once
        self.peer_ip, self.server_port = getattr(peer, "host", ""), getattr(host, "port", 0)
        self.peer_port, self.server_ip = getattr(peer, "port", 0), getattr(host, "host", "")
        transport.registerProducer(self, True)
        self._registered = True
        try:
            self.transport.setTcpNoDelay(True)  # responses are written whole; never wait for an ACK
        except (AttributeError, OSError):
            pass
        self._set_timer(self.settings.header_timeout, 408)
        if self.factory is not None:
            self.factory.connections += 1
            self.factory.accepted += 1
            self.factory.live.add(self)
            prior_knowledge = getattr(self.factory, "prior_knowledge", None)
            if prior_knowledge is not None and prior_knowledge.enabled:
                self._preface = b""

    def connectionLost(self, reason=None) -> None:
        self.closed = True
        self._timer.stop()
        if self._send_deadline is not None:
            self._send_deadline.stop()
        # The parser holds our bound methods: let it go so this connection's objects are
        # freed at once instead of by a full garbage collection (30 ms at a time, measured).
        self.parser = None
        if self.factory is not None:
            self.factory.connections -= 1
            self.factory.live.discard(self)
        if self._receiver is not None:
            self._receiver.client_lost()
        if self._active is not None:
            active, self._active = self._active, None
            active.client_lost()
        self._queue.clear()
        if self._http2 is not None:  # the transport still calls us: the end is the HTTP/2 side's
            self._http2.connectionLost(reason)

    # -- timers -----------------------------------------------------------------------------

    def _set_timer(self, seconds: float, status: int) -> None:
        self._timer_status = status
        self._timer.set(seconds)

    def _cancel_timer(self) -> None:
        self._timer.clear()

    def _timed_out(self) -> None:
        if self.closed:
            return
        if self._timer_status:
            self.reject(self._timer_status, "timeout")
        else:
            self._close()

    # -- parsing ------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._preface is not None:
            self._read_preface(data)
            return
        if self._receiver is not None:
            self._receiver.client_data(data)
            return
        if self.closed or self._deferred_reject is not None:
            return
        current = self._parsing
        if current is None or current.complete:
            if self._plain_closed:
                self._after_close(data)
                return
            parse = self.parse_plain_head
            if parse is not None:
                # llhttp is between messages (the last one complete, nothing of the next fed):
                # the plain heads at the front of the read are taken here (inline: once a read),
                # the rest goes on. The complete plain request heads at the front of ``data``
                # (``request_head``: no body, no upgrade, within one header buffer) are
                # dispatched or queued each as the llhttp callbacks would, in the same order
                # with the same timers. A head it declines, or a partial one, is left to llhttp
                # (a partial head is rare, and llhttp's reading of it keeps today's limits as it
                # grows). After a head that closes the connection, llhttp (which has not seen
                # it) is not asked again: ``_after_close`` refuses what follows as llhttp would.
                settings = self.settings
                start = 0
                size = len(data)
                try:
                    while start < size:
                        current = self._parsing
                        if current is not None and not (current.complete and current.keep_alive
                                                        and not current.upgrade):
                            break  # llhttp is reading a message, or closed after one, or switched protocols
                        head = parse(data, start, settings.header_buffers[1], settings.max_headers,
                                     # drops_underscores, without its property call
                                     not settings.underscores_in_headers and settings.ignore_invalid_headers)
                        if head is None:
                            break
                        start = head[5]
                        # One plain head: llhttp's on_message_begin, on_headers_complete and
                        # on_message_complete of a request without a body in one, and _dispatch's steps
                        # for it inline when nothing is ahead of it (once a request: no two frames).
                        request = _new_request(Request)  # every slot set here: no __init__ frame
                        request.method, request.target, request.version, request.headers, request.keep_alive, _, \
                            request.head_bytes, request.content_length = head
                        request.upgrade = request.chunked = request.expect_continue = request.complete = False
                        request.pending_body = None  # (no body to wait behind a pipelined request)
                        request.pending_bytes = 0
                        self._parsing = request
                        self._in_head = False
                        self._head_bytes = 0
                        if self._active is None and not self._queue:
                            # on_message_begin's header timer, which _dispatch clears at once (no body):
                            # only its status is left of it, so the timer is not moved twice.
                            self._timer_status = 408
                            requests = self._requests = self._requests + 1
                            self._active_request = request
                            self._head_written = False
                            limit = settings.keepalive_requests
                            self._response_keep_alive = request.keep_alive and not (limit and requests >= limit)
                            self._timer.at = None  # (no body to come) clear()'s one line, inline
                            try:
                                active = self._handle(self, request)
                            except Exception:
                                log.err(None, "ingressd: request handler failed")
                                self._active = None
                                self.reject(500, "internal error")
                            else:
                                if active is not None and self._active_request is request:
                                    self._active = active  # (not answered already, nor the next one begun)
                        else:
                            if self._active is None:
                                self._set_timer(settings.header_timeout, 408)
                            if len(self._queue) >= settings.max_pipelined:
                                self.pause_reading()
                            self._queue.append(request)
                        request.complete = True
                        if request is self._active_request and self._active is not None:
                            self._active.body_done()
                        if not head[4]:
                            self._plain_closed = True
                            self._after_close(data[start:])
                            return
                except Exception as exc:  # as llhttp turns a callback's exception into a parse error
                    self._reject_parsing(400, str(exc))
                    return
                if start:
                    if start == size:
                        return
                    data = data[start:]  # (even if closed meanwhile: llhttp, too, reads on to the end)
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except parsing.HttpParserUpgrade as upgrade:
            self._upgraded(data[upgrade.args[0]:])
            return
        except parsing.HttpParserError as exc:
            rejected = exc.__context__ if isinstance(exc.__context__, _Reject) else None
            if rejected is not None:
                self._reject_parsing(rejected.status, str(rejected))
            else:
                self._reject_parsing(400, str(exc))
            return
        if self._in_head and self._head_bytes > self.settings.max_header_bytes + self.settings.max_url_bytes:
            # A line still arriving that no buffer could hold (what nginx refuses as it reads).
            in_line = self._parsing is not None and not self._line_checked and self._url_bytes
            self._reject_parsing(414 if in_line else head_buffers.TOO_LARGE, "request head too large")

    def _after_close(self, data: bytes) -> None:
        """Bytes after a plain head that closes the connection: llhttp skips blank lines there
        and refuses anything else ("Data after `Connection: close`")."""
        if data.strip(b"\r\n"):
            self._reject_parsing(400, "Data after `Connection: close`")

    def _read_preface(self, data: bytes) -> None:
        """The connection's first bytes, while they are a prefix of the HTTP/2 preface: held
        until they diverge (HTTP/1.1, parsed as ever) or the preface is whole (HTTP/2). As
        nginx's ``listen ... http2`` on a plain port, a preface that stops half-way is closed
        at the client header timeout without an answer."""
        seen = self._preface + data
        size = min(len(seen), len(PREFACE))
        if seen[:size] != PREFACE[:size]:
            self._preface = None
            self._timer_status = 408  # an HTTP/1.1 request after all
            self.dataReceived(seen)
            return
        if size < len(PREFACE):
            self._preface = seen
            self._timer_status = 0
            return
        self._preface = None
        self._become_http2(seen)

    def _become_http2(self, data: bytes) -> None:
        """Hand the connection to the HTTP/2 protocol the factory's ``prior_knowledge`` builds.
        The transport keeps calling this object: its reads go straight to the new protocol
        (an instance attribute), its end through ``connectionLost``."""
        protocol = self.factory.prior_knowledge.build()
        self.closed = True
        self.parser = None
        self._timer.stop()
        if self._send_deadline is not None:
            self._send_deadline.stop()
        if self._registered:  # the HTTP/2 protocol registers itself as the producer
            self._registered = False
            self.transport.unregisterProducer()
        self.factory.live.discard(self)  # drained as an HTTP/2 connection from now on
        self._http2 = protocol
        self.dataReceived = protocol.dataReceived
        protocol.makeConnection(self.transport)
        protocol.dataReceived(data)

    def _reject_parsing(self, status: int, reason: str) -> None:
        """A malformed request. If requests before it are still being answered, it is
        answered in its turn (after them), so no earlier request gets its 400."""
        if self._active is not None and self._parsing is not self._active_request:
            if self._queue and self._queue[-1] is self._parsing:
                self._queue.pop()
            self._deferred_reject = (status, reason)
            self.pause_reading()
            return
        self.reject(status, reason)

    def on_message_begin(self) -> None:
        self._parsing = Request()
        self._in_head = True
        self._url_bytes = 0
        self._header_bytes = 0
        self._buffers = None
        self._buffer_limits = limits = self.settings.header_buffers
        self._one_buffer = limits[1]
        self._packed = 0
        self._line_checked = False
        if self._active is None:
            self._set_timer(self.settings.header_timeout, 408)

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > self.settings.max_url_bytes:
            raise _Reject(414, "request line too long")
        request = self._parsing
        request.target = request.target + url if request.target else url

    def _check_request_line(self) -> None:
        """The request line, once complete, in nginx's header buffers (414 if it fits none)."""
        self._line_checked = True
        # method, a space, the target, a space, "HTTP/1.1" and CRLF
        if not self._fits(len(self.parser.get_method() or b"") + self._url_bytes + 12):
            raise _Reject(414, "request line too long")

    def _fits(self, length: int) -> bool:
        """Take a line of ``length`` bytes into the head's buffers (``head_buffers.HeadBuffers``,
        nginx's packing). While every line so far fits in the first buffer the packing is a sum:
        most heads never need the buffers made at all."""
        packed = self._packed + length
        if packed <= self._one_buffer:
            self._packed = packed
            return True
        buffers = self._buffers
        if buffers is None:
            buffers = self._buffers = head_buffers.HeadBuffers(*self._buffer_limits)
            if self._packed:
                buffers.fits(self._packed)  # the lines so far: all in the first buffer
            self._one_buffer = -1  # from now on every line goes through the buffers
        return buffers.fits(length)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Called for every header line: what it reads is kept in locals (one lookup each).
        size = len(name) + len(value) + 4
        self._header_bytes += size
        if not self._in_head:  # a chunked body's trailer: counted, never merged into the (proxied) headers
            if self._header_bytes > self.settings.max_header_bytes:
                raise _Reject(head_buffers.TOO_LARGE, "request trailer section too large")
            return
        if not self._line_checked:
            self._check_request_line()
        packed = self._packed + size  # _fits's first step, without its call (most lines stop there)
        if packed <= self._one_buffer:
            self._packed = packed
        elif not self._fits(size):
            raise _Reject(head_buffers.TOO_LARGE, "request header too large")  # nginx: "too long header line"
        headers = self._parsing.headers
        settings = self.settings
        if len(headers) >= settings.max_headers:
            raise _Reject(431, "too many request header fields")
        if b"_" in name and settings.drops_underscores:
            return  # nginx's underscores_in_headers off: the field is ignored (no framing name has one)
        headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        request = self._parsing
        parser = self.parser
        if not self._line_checked:
            self._check_request_line()
        if not self._fits(2):  # the blank line ending the head
            raise _Reject(head_buffers.TOO_LARGE, "request head too large")
        self._in_head = False
        self._head_bytes = 0
        request.method = parser.get_method()
        # + the method, two spaces, "HTTP/1.1", the line's CRLF and the blank line's: nginx's $request_length
        request.head_bytes = self._url_bytes + self._header_bytes + len(request.method) + 14
        request.version = parser.get_http_version().encode("ascii")
        if request.version not in (b"1.1", b"1.0"):
            raise _Reject(505, "only HTTP/1.0 and HTTP/1.1 are served here")
        request.keep_alive = parser.should_keep_alive()
        request.upgrade = parser.should_upgrade()
        hosts = 0
        for name, value in request.headers:
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                request.content_length = int(value)
            elif name == b"transfer-encoding":
                if value.strip().lower() != b"chunked" or request.version != b"1.1":
                    raise _Reject(400, "unsupported Transfer-Encoding")
                request.chunked = True
            elif name == b"expect":
                if value.strip().lower() != b"100-continue":
                    raise _Reject(417, "unsupported Expect")
                request.expect_continue = True
        if hosts > 1 or (hosts == 0 and request.version == b"1.1"):
            raise _Reject(400, "a request needs exactly one Host header")
        has_body = request.chunked or request.content_length  # Request.has_body, read once
        if request.upgrade and has_body:
            raise _Reject(400, "an upgrade request cannot carry a body")
        if self._active is None and not self._queue:
            self._dispatch(request)
        else:
            if len(self._queue) >= self.settings.max_pipelined:
                self.pause_reading()
            self._queue.append(request)
            if has_body:
                self._set_timer(self.settings.body_timeout, 408)

    def on_body(self, data: bytes) -> None:
        request = self._parsing
        if request is self._active_request and self._active is not None:
            self._active.body_data(data)
        elif request.pending_body is not None:
            request.pending_body.append(data)
            request.pending_bytes += len(data)
            if request.pending_bytes > 65536:
                self.pause_reading()

    def on_message_complete(self) -> None:
        request = self._parsing
        request.complete = True
        if request is self._active_request and self._active is not None:
            self._active.body_done()

    def _upgraded(self, rest: bytes) -> None:
        """The parser stopped after an Upgrade request; a tunnel may take the bytes after it."""
        request = self._parsing
        if request is self._active_request and self._active is not None and self._active.wants_tunnel():
            self._active.tunnel_early_data(rest)
            return
        # Not tunnelled (another request is in progress, or not a WebSocket): parse on.
        if rest:
            self.dataReceived(rest)

    # -- dispatch -------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> None:
        self._requests += 1
        self._active_request = request
        self._head_written = False
        limit = self.settings.keepalive_requests
        self._response_keep_alive = request.keep_alive and not (limit and self._requests >= limit)
        if not request.complete and (request.chunked or request.content_length):  # a body to come
            self._set_timer(self.settings.body_timeout, 408)
        else:
            self._timer.at = None  # clear()'s one line, inline: once per request
        try:
            active = self._handle(self, request)
        except Exception:
            log.err(None, "ingressd: request handler failed")
            self._active = None
            self.reject(500, "internal error")
            return
        if active is None or self._active_request is not request:
            return  # answered already (a local response), perhaps the next one begun
        self._active = active
        pending, request.pending_body = request.pending_body, None
        if pending:
            for chunk in pending:
                self._active.body_data(chunk)
        if request.complete:
            self._active.body_done()

    def body_progress(self) -> None:
        """The exchange read request-body bytes: the body timeout starts over."""
        if self._timer.at is not None and self._timer_status == 408:
            self._timer.set(self.settings.body_timeout)

    def body_finished(self) -> None:
        if self._timer_status == 408 and self._timer.at is not None:  # (at: armed, without a call)
            self._timer.clear()

    # -- responses ------------------------------------------------------------------------

    def send_continue(self) -> None:
        self._send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def write_head(self, status: int, headers, length: int | None, reason: bytes | None = None) -> None:
        """Write a response head; framing headers are added here, never taken from the caller."""
        self.write_response(status, headers, None, length, b"", reason)

    def write_response(self, status: int, headers, lines: bytes | None, length: int | None, body: bytes,
                       reason: bytes | None = None) -> None:
        """A response head and ``body`` (all of it, or the first of it) in one write: what
        ``write_head`` and ``write_body`` write, joined. ``lines``: ``headers`` serialised
        already (``headers.serialize``), or None (the exchange's plain lane relays a backend's
        head from ``response_head.parse_response_relay``)."""
        request = self._active_request
        keep_alive = self._response_keep_alive and not self.closed and not self._draining
        head_only = request is not None and request.method == b"HEAD"
        no_body = status < 200 or status in (204, 304)
        self._response_body_allowed = not (head_only or no_body)
        self._chunked_response = False
        line = None if reason else _STATUS_LINES.get(status)
        if line is None:
            line = b"HTTP/1.1 %d %s\r\n" % (status, reason or REASONS.get(status, b"Unknown"))
        framing = b""
        if no_body:
            pass
        elif length is not None:
            framing = _LENGTH_LINES.get(length) or _length_line(length)
        elif head_only:
            pass
        elif request is not None and request.version == b"1.1":
            self._chunked_response = True
            framing = b"transfer-encoding: chunked\r\n"
        else:
            keep_alive = False  # HTTP/1.0 client and no length: the close ends the body
        self._response_keep_alive = keep_alive
        if not keep_alive:
            framing += b"connection: close\r\n"
        elif request is not None and request.version == b"1.0":
            framing += b"connection: keep-alive\r\n"
        settings = self.settings
        identity = settings.identity
        now = self.clock.seconds()
        if settings.backend_server_header and any(name == b"server" for name, _ in headers):
            own = identity.date_lines(now)  # the backend's Server instead
        elif int(now) == identity.second:  # formatted for this second already: no call (nginx's cached time)
            own = identity.second_lines
        else:
            own = identity.lines(now)
        self._head_written = True
        if lines is None:
            lines = serialize(headers)
        if body and self._response_body_allowed and not self.closed:
            if self._chunked_response:
                body = b"%x\r\n%s\r\n" % (len(body), body)
            data = b"".join((line, framing, own, lines, b"\r\n", body))  # one bytes object (join: no % parse)
        else:
            data = b"".join((line, framing, own, lines, b"\r\n"))
        if self._corked:  # _send's work, inline: once per response
            self._out.append(data)
        else:
            self.transport.write(data)

    def write_body(self, data: bytes) -> None:
        if not data or not self._response_body_allowed or self.closed:
            return
        if self._chunked_response:
            self._send(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self._send(data)

    _trailers = b""

    def write_trailers(self, trailers) -> None:
        """Trailer fields (gRPC's grpc-status…): in a chunked response's last chunk, as nginx
        sends them; a response with a length has no room for them."""
        self._trailers = serialize([(n, v) for n, v in trailers if n not in _NO_TRAILER])

    def finish_response(self) -> None:
        """The response is complete: start the next pipelined request or close."""
        trailers, self._trailers = self._trailers, b""
        if self._chunked_response and self._response_body_allowed and not self.closed:
            self._send(b"0\r\n%s\r\n" % trailers)
        request = self._active_request
        self._active = None
        self._active_request = None
        self._head_written = False
        if self.closed:
            return
        if (not self._response_keep_alive or self._draining or request is None
                or (not request.complete and request.has_body)):
            # A body we did not read (an early answer) would be parsed as the next request.
            # (Without a body, an answer given at once only came before the parser's end.)
            self._close()
            self.closed = True
            return
        if self._reading_paused and len(self._queue) < self.settings.max_pipelined:
            self.resume_reading()
        if self._queue:
            self._dispatch(self._queue.popleft())
        elif self._deferred_reject is not None:
            self.reject(*self._deferred_reject)
        else:
            self._timer_status = 0  # _set_timer's, inline: once per keep-alive request
            self._timer.set(self.settings.keepalive_timeout)

    def reject(self, status: int, reason: str) -> None:
        """A malformed or timed-out request: answer with ``status`` (if we may) and close.
        The answer is reported like any other: through the exchange that has the request, or
        else the handler's ``rejected`` (``interfaces.RequestHandler``)."""
        if self.closed:
            return
        self._response_keep_alive = False
        answered = not self._head_written
        sent = 0
        if answered:
            body = error_page(status)
            if status == head_buffers.TOO_LARGE:
                status = 400  # with nginx's page for it
            sent = len(body)
            self._send(
                b"HTTP/1.1 %d %s\r\n%scontent-type: text/html\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                % (status, REASONS.get(status, b"Error"), self.settings.identity.lines(self.clock.seconds()),
                   len(body), body)
            )
        self.closed = True
        self._cancel_timer()
        self._close()
        active, self._active = self._active, None
        if active is not None:
            if answered:
                active.client_side_answered(status, sent)
            else:
                active.client_lost()
        elif answered:
            report = getattr(self.handler, "rejected", None)  # a test's bare handler counts nothing
            if report is not None:
                report(self, self._parsing, status, sent)

    def tls(self) -> tuple[str, str]:
        """(TLS version, SNI name) of this connection, ("", "") for plain HTTP."""
        if self._tls is None:
            self._tls = tls_facts(self.transport)
        return self._tls

    @property
    def passes_backend_server(self) -> bool:
        """Whether a backend's Server header is passed on (``interfaces.ClientSide``):
        ``passes_backend_server``'s test, inline (read once per proxied response)."""
        settings = self.settings
        return settings.backend_server_header and settings.identity.server is not None

    _client_certificate = None  # read once, on the first request that asks

    def client_certificate(self):
        """What the client's certificate proved (``tls.client_auth.ClientCertificate``)."""
        if self._client_certificate is None:
            self._client_certificate = client_certificate(self.transport)
        return self._client_certificate

    def close_after_response(self) -> None:
        """Close the connection after the current response (no keep-alive)."""
        self._response_keep_alive = False

    # -- graceful drain (interfaces.Drainable) ------------------------------------------------

    def drain(self) -> None:
        """Shutting down: an idle keep-alive connection closes now; a busy one answers what it
        is answering with ``Connection: close`` and closes after it. A connection that has not
        sent its first request yet (accepted as the listener closed) gets that one answered.
        A tunnel is left alone until ``shut``."""
        self._draining = True
        if self.closed or self._receiver is not None:
            return
        idle = (self._active is None and not self._queue and self._deferred_reject is None
                and (self._parsing is None or self._parsing.complete))
        if idle and self._requests:
            self.closed = True
            self._cancel_timer()
            self._close()

    def shut(self) -> None:
        """The grace is over: a tunnel says "going away" to both sides; anything else is closed
        (a response in flight ends truncated, never complete-looking)."""
        if self.closed:
            return
        going_away = getattr(self._receiver, "going_away", None)  # interfaces.RawReceiver
        if going_away is not None:
            going_away()
            return
        self.closed = True
        active, self._active = self._active, None
        self._cancel_timer()
        self._close()
        if active is not None:
            active.client_lost()

    # -- a connection that leaves HTTP (interfaces.RawStream) -------------------------------

    def divert(self, receiver) -> None:
        """Every byte read from now on goes to ``receiver`` (``interfaces.RawReceiver``)."""
        self._receiver = receiver

    def write_raw(self, data: bytes) -> None:
        self.transport.write(data)

    def own_headers(self) -> bytes:
        """The Server and Date lines this side puts on every response (a 101 head written raw)."""
        return self.settings.identity.lines(self.clock.seconds())

    def accept_tunnel(self, headers) -> bool:
        """The backend switched protocols: the client gets its 101 head, our Server and Date
        lines with the backend's headers (the client checks Sec-WebSocket-Accept itself)."""
        self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\n%s%s\r\n"
                             % (self.own_headers(), serialize(headers)))
        return True

    def lose_connection(self) -> None:
        self.transport.loseConnection()

    def abort(self) -> None:
        """End a response that cannot be completed: flush what was written, then close,
        so the client sees a truncated body (never a complete-looking one)."""
        self.closed = True
        self._active = None
        self._cancel_timer()
        self._close()

    def _close(self) -> None:
        """Close after what was written is flushed. Our producer registration goes first:
        TLS transports postpone their close while a producer is registered."""
        self._flush()
        if self._registered:
            self._registered = False
            self.transport.unregisterProducer()
        self.transport.loseConnection()

    # -- output batching --------------------------------------------------------------------
    # While corked (the backend's bytes of one read are being relayed), writes are joined
    # and go out as one send when uncorked: a response head and a small body leave in one
    # segment, as nginx's writev does.

    def cork(self) -> None:
        self._corked += 1

    def uncork(self) -> None:
        self._corked -= 1
        if not self._corked:
            out = self._out
            if out:  # _flush's work, inline: once per backend read (the list kept: no new one a read)
                data = b"".join(out) if len(out) > 1 else out[0]
                out.clear()
                self.transport.write(data)

    def _send(self, data: bytes) -> None:
        if self._corked:
            self._out.append(data)
        else:
            self.transport.write(data)

    def _flush(self) -> None:
        if self._out:
            data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
            self._out = []
            self.transport.write(data)

    # -- flow control ---------------------------------------------------------------------

    def pause_reading(self) -> None:
        if not self._reading_paused:
            self._reading_paused = True
            self.transport.pauseProducing()

    def resume_reading(self) -> None:
        if self._reading_paused and not self.closed:
            self._reading_paused = False
            self.transport.resumeProducing()

    # IPushProducer, registered on our own transport: the client is slow to read.
    def pauseProducing(self) -> None:
        # The client does not take what we write: it has send_timeout to start again
        # (nginx's send_timeout), or the connection is closed.
        if self._send_deadline is None:
            self._send_deadline = Deadline(self.clock, self._send_timed_out)
        self._send_deadline.set(self.settings.send_timeout)
        if self._active is not None:
            self._active.client_paused()
        elif self._receiver is not None:
            self._receiver.client_paused()

    def resumeProducing(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.clear()
        if self._active is not None:
            self._active.client_resumed()
        elif self._receiver is not None:
            self._receiver.client_resumed()

    def _send_timed_out(self) -> None:
        if not self.closed:
            self.closed = True
            active, self._active = self._active, None
            self.transport.abortConnection()
            if active is not None:
                active.client_lost()

    def stopProducing(self) -> None:
        pass


class HTTP1Factory(Factory):
    """Builds a protocol per client connection; ``handler`` decides what each request gets."""

    protocol = HTTP1ServerProtocol
    noisy = False
    # HTTP/2 with prior knowledge on this (cleartext) listener: an object with ``enabled`` and
    # ``build()`` (``http2.PriorKnowledge``), or None.
    prior_knowledge = None

    def __init__(self, handler: Callable, settings: ServerSettings | None = None, clock: Any = None,
                 scheme: str = "http"):
        if clock is None:
            from twisted.internet import reactor as clock
        self.handler = handler
        self.settings = settings or ServerSettings()
        self.clock = clock
        self.scheme = scheme
        self.connections = 0  # open now (for metrics)
        self.accepted = 0
        self.live = ConnectionSet()  # the open connections, for a graceful drain

    _timers: SharedTimers | None = None

    def buildProtocol(self, addr):
        timers = self._timers
        if timers is None or timers.clock is not self.clock:  # (a test or a bench may swap the clock)
            timers = self._timers = SharedTimers(self.clock)
        protocol = HTTP1ServerProtocol(self.settings, self.handler, self.clock, timers)
        protocol.factory = self
        protocol.scheme = self.scheme
        return protocol
