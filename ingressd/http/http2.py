"""The client side over HTTP/2: h2 (sans-IO) on a Twisted protocol, one Exchange per stream.

Each stream gets a ``_Stream`` adapter offering what ``proxy.Exchange`` uses on
``http1.HTTP1ServerProtocol`` (``write_head``, ``write_body``, ``finish_response``,
``pause_reading``…) and a ``Request`` like http1's, so HTTP/2 requests take exactly the
same handler, routes and features. ``HTTPSFactory`` is what the TLS listener wraps: it
offers ``h2`` through ALPN (unless disabled) and picks HTTP/2 or HTTP/1.1 for each
connection from the protocol the handshake negotiated.

Flow control, both ways: the client's window for a stream is reopened only as the
request body is handed on (a paused stream stops acknowledging, so a slow backend bounds
what a client can send), and response data waits in a per-stream buffer until the
stream and connection windows allow it; a large buffer pauses the backend.
WebSocket is not offered over HTTP/2 (no RFC 8441 here): h2 requests never upgrade.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame
from twisted.internet.interfaces import IProtocolNegotiationFactory, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.python import log
from zope.interface import implementer

from ingressd.drain import ConnectionSet
from ingressd.http.http1 import HTTP1Factory, ServerSettings, addresses, error_page
from ingressd.tls.facts import tls_facts

# Headers that are connection-specific in HTTP/2 (RFC 9113 8.2.2): never sent in a response.
_CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
     b"te", b"http2-settings", b"content-length")
)
_HIGH_WATER = 256 * 1024  # buffered response bytes per stream before the backend is paused
_LOW_WATER = 64 * 1024
_MAX_STREAMS = 100
_STREAM_WINDOW = 65535  # RFC default; also what a paused stream can hold unacknowledged
_CONNECTION_WINDOW = _MAX_STREAMS * _STREAM_WINDOW
_DRAIN_LIMIT = 4 * 1024 * 1024  # request body read and dropped after an early answer


class H2Request:
    """The request head of one stream, shaped like ``http1.Request``."""

    __slots__ = (
        "method", "target", "version", "headers", "keep_alive", "upgrade", "chunked",
        "content_length", "complete", "expect_continue", "head_bytes",
    )

    def __init__(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
                 content_length: int | None, complete: bool, expect_continue: bool):
        self.method = method
        self.target = target
        self.version = b"2"
        self.headers = headers
        self.keep_alive = True
        self.upgrade = False
        self.content_length = content_length
        # A body of unknown length is sent chunked to the (HTTP/1.1) backend.
        self.chunked = content_length is None and not complete
        self.complete = complete
        self.expect_continue = expect_continue
        self.head_bytes = 0  # the header block's decoded size (for metrics and logs)

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


class _Reject(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def _request_from(headers, settings: ServerSettings, ended: bool) -> H2Request:
    """Validate a request header block (h2 already checked its HTTP/2 rules)."""
    method = path = authority = None
    pairs: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    size = 0
    content_length = None
    expect_continue = False
    if len(headers) > settings.max_headers:
        raise _Reject(431, "too many header fields")
    for name, value in headers:
        size += len(name) + len(value) + 4
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
            continue
        if name == b"host":
            authority = authority or value
            continue
        if name == b"cookie":  # HTTP/2 may split cookies; HTTP/1.1 wants one header
            cookies.append(value)
            continue
        if name == b"content-length":
            try:
                content_length = int(value)
            except ValueError:
                raise _Reject(400, "bad Content-Length") from None
        elif name == b"expect":
            if value.strip().lower() != b"100-continue":
                raise _Reject(417, "unsupported Expect")
            expect_continue = not ended
        pairs.append((name, value))
    if path is not None and len(path) > settings.max_url_bytes:
        raise _Reject(414, "request target too long")
    if size > settings.max_header_bytes + settings.max_url_bytes:
        raise _Reject(431, "request header block too large")
    if method is None or not path or method == b"CONNECT":
        raise _Reject(400 if method != b"CONNECT" else 501, "no :method/:path, or CONNECT")
    if authority is None:
        raise _Reject(400, "a request needs :authority or Host")
    if cookies:
        pairs.append((b"cookie", b"; ".join(cookies)))
    pairs.insert(0, (b"host", authority))
    request = H2Request(method, path, pairs, content_length, ended, expect_continue)
    request.head_bytes = size
    return request


def _known_of(headers) -> H2Request:
    """What is known of a refused header block: its method, path and fields, for the log."""
    method, path, pairs = b"", b"", []
    for name, value in headers[:200]:  # bounded: a refused block may be very long
        if name == b":method":
            method = value
        elif name == b":path":
            path = value
        elif name == b":authority":
            pairs.append((b"host", value))
        elif name[:1] != b":":
            pairs.append((name, value))
    return H2Request(method, path, pairs, None, True, False)


class _Stream:
    """One HTTP/2 stream, with the interface ``proxy.Exchange`` uses on its protocol."""

    transport = None  # no raw byte stream: WebSocket never happens on HTTP/2
    tunnel = None

    def cork(self) -> None:
        """HTTP/2 frames go out when the connection flushes; nothing to batch here."""

    def uncork(self) -> None:
        pass

    def __init__(self, connection: "H2ServerProtocol", stream_id: int):
        self.connection = connection
        self.stream_id = stream_id
        self.peer_ip = connection.peer_ip
        self.server_port = connection.server_port
        self.scheme = connection.scheme
        self.request: H2Request | None = None
        self.exchange = None
        self.closed = False
        self._head_written = False
        self._body_allowed = True
        self._out: deque[bytes] = deque()
        self._out_bytes = 0
        self._ending = False  # finish_response called; END_STREAM once _out drains
        self._trailers = None  # write_trailers: sent as the last HEADERS frame
        self._upstream_paused = False
        self._reading_paused = False
        self._unacked = 0
        self._timer = None
        self.remote_ended = False  # the client sent END_STREAM
        self._draining: int | None = None  # bytes dropped after an early answer

    @property
    def trusted(self):
        return self.connection.trusted

    @trusted.setter
    def trusted(self, value) -> None:
        self.connection.trusted = value

    # -- request side ---------------------------------------------------------------------

    def data_received(self, data: bytes, flow_length: int) -> None:
        if self._draining is not None:
            self.connection.acknowledge(self.stream_id, flow_length)
            self._draining += flow_length
            if self._draining > _DRAIN_LIMIT:
                self._stop_draining()
            return
        exchange = self.exchange
        if self._reading_paused:
            self._unacked += flow_length
        else:
            self.connection.acknowledge(self.stream_id, flow_length)
        if exchange is not None and data:
            exchange.body_data(data)

    def request_ended(self) -> None:
        self.remote_ended = True
        if self.request is not None:
            self.request.complete = True
        if self.exchange is not None:
            self.exchange.body_done()
        self._maybe_forget()

    def body_progress(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.reset(self.connection.settings.body_timeout)

    def body_finished(self) -> None:
        self._cancel_timer()

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        if self._reading_paused and not self.closed:
            self._reading_paused = False
            unacked, self._unacked = self._unacked, 0
            if unacked:
                self.connection.acknowledge(self.stream_id, unacked)
                self.connection.flush()

    def start_body_timer(self) -> None:
        clock = self.connection.clock
        self._timer = clock.callLater(self.connection.settings.body_timeout, self._body_timed_out)

    def _body_timed_out(self) -> None:
        self._timer = None
        if self.closed:
            return
        if not self._head_written:
            self.respond(408)
            return
        self.reset(ErrorCodes.CANCEL)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # -- response side --------------------------------------------------------------------

    def close_after_response(self) -> None:
        """Nothing to do: the connection goes on serving other streams."""

    def tls(self) -> tuple[str, str]:
        return self.connection.tls()

    def send_continue(self) -> None:
        if not self.closed and not self._head_written:
            self.connection.send_headers(self.stream_id, [(b":status", b"100")], False)

    def write_head(self, status: int, headers, length: int | None, reason: bytes | None = None) -> None:
        if self.closed:
            return
        request = self.request
        no_body = status < 200 or status in (204, 304)
        self._body_allowed = not no_body and not (request is not None and request.method == b"HEAD")
        block = [(b":status", b"%d" % status)]
        for name, value in headers:
            name = name.lower()
            if name not in _CONNECTION_SPECIFIC and name[:1] != b":":
                block.append((name, value))
        if length is not None and not no_body:
            block.append((b"content-length", b"%d" % length))
        block.extend(self.connection.settings.identity.pairs(self.connection.clock.seconds()))
        self._head_written = True
        self.connection.send_headers(self.stream_id, block, False)

    def write_body(self, data: bytes) -> None:
        if not data or not self._body_allowed or self.closed:
            return
        self._out.append(data)
        self._out_bytes += len(data)
        self.connection.flush_stream(self)
        if self._out_bytes > _HIGH_WATER or self.connection.transport_paused:
            self.pause_upstream()

    def write_trailers(self, trailers) -> None:
        """Trailer fields (gRPC's grpc-status…), sent with END_STREAM after the body."""
        self._trailers = [(name.lower(), value) for name, value in trailers
                          if name.lower() not in _CONNECTION_SPECIFIC and name[:1] != b":"]

    def finish_response(self) -> None:
        self._ending = True
        self.exchange = None
        self._cancel_timer()
        if self.closed:
            return
        self.connection.flush_stream(self)

    def respond(self, status: int, request: H2Request | None = None) -> None:
        """Answer this stream ourselves (before any handler ran, or on a timeout), and report
        it: through its exchange, or else the handler's ``rejected`` (``request``: what is
        known of a request refused before it had an exchange)."""
        exchange, self.exchange = self.exchange, None
        body = error_page(status)
        self.write_head(status, [(b"content-type", b"text/html")], len(body))
        self.write_body(body)
        self.finish_response()
        if exchange is not None:
            exchange.client_side_answered(status, len(body))
            return
        report = getattr(self.connection.handler, "rejected", None)  # a test's bare handler counts nothing
        if report is not None:
            report(self, request or self.request, status, len(body))

    def abort(self) -> None:
        """The response cannot be completed: reset the stream, so the client sees an error."""
        self.exchange = None
        self.reset(ErrorCodes.INTERNAL_ERROR)

    # -- used by the connection -----------------------------------------------------------

    def send_pending(self) -> bool:
        """Send what the windows allow; True when the stream finished sending."""
        connection = self.connection
        h2conn = connection.h2
        out = self._out
        while out:
            window = min(h2conn.local_flow_control_window(self.stream_id), h2conn.max_outbound_frame_size)
            if window <= 0:
                break
            chunk = out[0]
            if len(chunk) <= window:
                out.popleft()
            else:
                out[0] = chunk[window:]
                chunk = chunk[:window]
            self._out_bytes -= len(chunk)
            h2conn.send_data(self.stream_id, chunk)
        if self._upstream_paused and self._out_bytes < _LOW_WATER and not connection.transport_paused:
            self.resume_upstream()
        if self._ending and not out and not self.closed:
            if self._trailers:
                h2conn.send_headers(self.stream_id, self._trailers, end_stream=True)
            else:
                h2conn.end_stream(self.stream_id)
            self.closed = True
            if self.remote_ended:
                return True
            # Answered before the body arrived (413, 404…). Some clients (curl 7.x) fail
            # the response on an immediate RST_STREAM(NO_ERROR), so read and drop the
            # rest of the body for a while, then reset if it keeps coming.
            self._draining = self._unacked
            self._unacked = 0
            self.connection.acknowledge(self.stream_id, self._draining)
            self._timer = connection.clock.callLater(connection.settings.body_timeout, self._stop_draining)
        return False

    def _stop_draining(self) -> None:
        self._cancel_timer()
        self.connection.forget(self)
        self.connection.h2_reset(self.stream_id, ErrorCodes.NO_ERROR)

    def pause_upstream(self) -> None:
        if not self._upstream_paused and self.exchange is not None:
            self._upstream_paused = True
            self.exchange.client_paused()

    def resume_upstream(self) -> None:
        if self._upstream_paused:
            self._upstream_paused = False
            if self.exchange is not None:
                self.exchange.client_resumed()

    def reset(self, code: ErrorCodes) -> None:
        if self.closed:
            return
        self.closed = True
        self._out.clear()
        self.connection.reset_stream(self)
        self.connection.h2_reset(self.stream_id, code)
        self.lost()

    def lost(self) -> None:
        """The client reset the stream or went away."""
        self.closed = True
        self._cancel_timer()
        self._out.clear()
        if self.exchange is not None:
            exchange, self.exchange = self.exchange, None
            exchange.client_lost()

    def _maybe_forget(self) -> None:
        if self.closed:
            self.connection.forget(self)


@implementer(IPushProducer)
class H2ServerProtocol(Protocol):
    """One HTTP/2 client connection; ``handler(stream, request)`` returns an exchange per stream."""

    def __init__(self, settings: ServerSettings, handler: Callable, clock: Any, scheme: str = "https"):
        self.settings = settings
        self.handler = handler
        self.clock = clock
        self.scheme = scheme
        config = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                           validate_inbound_headers=True, normalize_inbound_headers=True)
        self.h2 = h2.connection.H2Connection(config=config)
        self.streams: dict[int, _Stream] = {}
        self.peer_ip = ""
        self.server_port = 0
        self.trusted = None
        self._tls: tuple[str, str] | None = None
        self.transport_paused = False
        self.closed = False
        self._timer = None
        self._going_away = False
        self._last_stream: int | None = None  # set when we sent GOAWAY: later streams are refused
        self._group: ConnectionSet | None = None

    # -- connection lifecycle -------------------------------------------------------------

    def tls(self) -> tuple[str, str]:
        """(TLS version, SNI name) of this connection."""
        if self._tls is None:
            self._tls = tls_facts(self.transport)
        return self._tls

    def connectionMade(self) -> None:
        self.peer_ip, self.server_port = addresses(self.transport)
        self.transport.registerProducer(self, True)
        self._registered = True
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: _MAX_STREAMS,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE:
                    self.settings.max_header_bytes + self.settings.max_url_bytes,
            },
        )
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(_CONNECTION_WINDOW - 65535)
        self.flush()
        self._idle(self.settings.header_timeout)
        self._group = getattr(self.factory, "live", None)
        if self._group is not None:
            self._group.add(self)

    _registered = False

    def _unregister(self) -> None:
        if self._registered:
            self._registered = False
            self.transport.unregisterProducer()

    def connectionLost(self, reason=None) -> None:
        self.closed = True
        self._cancel_timer()
        if self._group is not None:
            self._group.discard(self)
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.lost()

    def _idle(self, seconds: float) -> None:
        self._cancel_timer()
        self._timer = self.clock.callLater(seconds, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if not self.closed and not self.streams:
            self.h2.close_connection()
            self.flush()
            self._unregister()  # TLS waits for producers before closing
            self.transport.loseConnection()
            self.closed = True

    # -- graceful drain (interfaces.Drainable) ----------------------------------------------

    def drain(self) -> None:
        """Shutting down: GOAWAY with the last stream id taken; those streams are answered,
        later ones refused (the client retries them elsewhere), then the connection closes."""
        if self.closed or self._last_stream is not None:
            return
        self._last_stream = self.h2.highest_inbound_stream_id
        self._going_away = True
        # Written here, not through h2's close_connection: h2 takes a GOAWAY it sends as the
        # end of the connection and refuses to send anything after it, where RFC 9113 6.8
        # lets the streams up to the last id be answered.
        goaway = GoAwayFrame(0)
        goaway.last_stream_id = self._last_stream
        goaway.error_code = ErrorCodes.NO_ERROR
        self.flush()
        self.transport.write(goaway.serialize())
        self._check_idle()

    def shut(self) -> None:
        """The grace is over: the streams still open are reset (CANCEL), the connection closed."""
        if self.closed:
            return
        self.drain()
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            self.h2_reset(stream.stream_id, ErrorCodes.CANCEL)
            stream.lost()
        if not self.closed:
            self.flush()
            self._unregister()  # TLS waits for producers before closing
            self.transport.loseConnection()
            self.closed = True

    # -- incoming -------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            log.msg(f"ingressd: HTTP/2 protocol error from {self.peer_ip}: {exc}")
            self.flush()
            self._unregister()  # TLS waits for producers before closing
            self.transport.loseConnection()
            self.closed = True
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self._request(event)
            elif isinstance(event, h2.events.DataReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.data_received(event.data, event.flow_controlled_length)
                else:
                    self.acknowledge(event.stream_id, event.flow_controlled_length)
            elif isinstance(event, h2.events.StreamEnded):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.request_ended()
            elif isinstance(event, h2.events.StreamReset):
                stream = self.streams.pop(event.stream_id, None)
                if stream is not None:
                    stream.lost()
            elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
                self._send_all()
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._going_away = True  # the streams in flight are still answered
        self.flush()
        self._check_idle()

    def _request(self, event: h2.events.RequestReceived) -> None:
        if self._last_stream is not None and event.stream_id > self._last_stream:
            self.h2_reset(event.stream_id, ErrorCodes.REFUSED_STREAM)  # after our GOAWAY
            return
        stream = _Stream(self, event.stream_id)
        self.streams[event.stream_id] = stream
        self._cancel_timer()
        ended = event.stream_ended is not None
        stream.remote_ended = ended
        try:
            request = _request_from(event.headers, self.settings, ended)
        except _Reject as rejected:
            stream.respond(rejected.status, _known_of(event.headers))
            return
        stream.request = request
        if not ended:
            stream.start_body_timer()
        try:
            exchange = self.handler(stream, request)
        except Exception:
            log.err(None, "ingressd: request handler failed")
            if not stream._head_written:
                stream.respond(500)
            else:
                stream.reset(ErrorCodes.INTERNAL_ERROR)
            return
        if exchange is not None and not stream._ending and not stream.closed:
            stream.exchange = exchange  # StreamEnded (next event when ``ended``) calls body_done

    # -- outgoing -------------------------------------------------------------------------

    def send_headers(self, stream_id: int, headers, end_stream: bool) -> None:
        try:
            self.h2.send_headers(stream_id, headers, end_stream=end_stream)
        except h2.exceptions.ProtocolError as exc:
            log.msg(f"ingressd: cannot send HTTP/2 headers: {exc}")
            stream = self.streams.get(stream_id)
            if stream is not None:
                stream.reset(ErrorCodes.INTERNAL_ERROR)
            return
        self.flush()

    def flush_stream(self, stream: _Stream) -> None:
        if self.closed or self.transport_paused:
            return
        try:
            finished = stream.send_pending()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            finished = True
            stream.lost()
        if finished:
            self.forget(stream)
        self.flush()

    def _send_all(self) -> None:
        if self.closed or self.transport_paused:
            return
        for stream in list(self.streams.values()):
            if stream._out or stream._ending or stream._upstream_paused:
                self.flush_stream(stream)

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closed:
            self.transport.write(data)

    def acknowledge(self, stream_id: int, length: int) -> None:
        if length and not self.closed:
            try:
                self.h2.acknowledge_received_data(length, stream_id)
            except h2.exceptions.ProtocolError:
                pass

    def h2_reset(self, stream_id: int, code: ErrorCodes) -> None:
        if self.closed:
            return
        try:
            self.h2.reset_stream(stream_id, code)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        self.flush()

    def reset_stream(self, stream: _Stream) -> None:
        self.forget(stream)

    def forget(self, stream: _Stream) -> None:
        if self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]
            stream._cancel_timer()
            self._check_idle()

    def _check_idle(self) -> None:
        if self.streams or self.closed:
            return
        if self._going_away:
            self.flush()
            self._unregister()  # TLS waits for producers before closing
            self.transport.loseConnection()
            self.closed = True
        elif self._timer is None:
            self._idle(self.settings.keepalive_timeout)

    # -- IPushProducer, registered on our own transport: the client is slow to read -------

    def pauseProducing(self) -> None:
        self.transport_paused = True
        for stream in list(self.streams.values()):
            stream.pause_upstream()

    def resumeProducing(self) -> None:
        self.transport_paused = False
        self._send_all()

    def stopProducing(self) -> None:
        pass


class _NegotiatingProtocol(Protocol):
    """Waits for the first bytes after the TLS handshake, then becomes HTTP/2 or HTTP/1.1."""

    def __init__(self, factory: "HTTPSFactory", addr):
        self.factory = factory
        self.addr = addr
        self._timer = None

    def connectionMade(self) -> None:
        # A client that never completes the handshake (or never speaks) is dropped.
        settings = self.factory.http1.settings
        self._timer = self.factory.clock.callLater(settings.header_timeout, self.transport.abortConnection)

    def dataReceived(self, data: bytes) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        negotiated = getattr(self.transport, "negotiatedProtocol", None)
        if negotiated == b"h2" and self.factory.http2:
            http1 = self.factory.http1
            protocol = H2ServerProtocol(http1.settings, http1.handler, http1.clock, http1.scheme)
            protocol.factory = self.factory
        else:
            protocol = self.factory.http1.buildProtocol(self.addr)
        # From now on the TLS layer calls the chosen protocol directly.
        self.dataReceived = protocol.dataReceived
        self.connectionLost = protocol.connectionLost
        protocol.makeConnection(self.transport)
        protocol.dataReceived(data)

    def connectionLost(self, reason=None) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


@implementer(IProtocolNegotiationFactory)
class HTTPSFactory(Factory):
    """What the TLS listener wraps: offers h2 (unless ``http2`` is false) and http/1.1."""

    noisy = False

    def __init__(self, http1: HTTP1Factory, http2: bool = True):
        self.http1 = http1
        self.http2 = http2
        self.clock = http1.clock
        self.live = ConnectionSet()  # the HTTP/2 connections (HTTP/1 ones are http1's)

    def acceptableProtocols(self) -> list[bytes]:
        return [b"h2", b"http/1.1"] if self.http2 else [b"http/1.1"]

    def buildProtocol(self, addr):
        protocol = _NegotiatingProtocol(self, addr)
        return protocol
