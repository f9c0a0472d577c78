"""The client side over HTTP/2: our connection (``h2_server``) on a Twisted protocol, one Exchange per stream.

Each stream gets a ``_Stream`` adapter offering what ``proxy.Exchange`` uses on
``http1.HTTP1ServerProtocol`` (``write_head``, ``write_body``, ``finish_response``,
``pause_reading``…) and a ``Request`` like http1's, so HTTP/2 requests take exactly the
same handler, routes and features. ``HTTPSFactory`` is what the TLS listener wraps: it
offers ``h2`` through ALPN (unless disabled) and picks HTTP/2 or HTTP/1.1 for each
connection from the protocol the handshake negotiated. ``PriorKnowledge`` offers HTTP/2 on
the cleartext listener too, to clients that open with the connection preface (h2c).

Flow control, both ways: the client's window for a stream is reopened only as the
request body is handed on (a paused stream stops acknowledging, so a slow backend bounds
what a client can send), and response data waits in a per-stream buffer until the
stream and connection windows allow it; a large buffer pauses the backend.

WebSocket over HTTP/2 (RFC 8441): the server advertises ``SETTINGS_ENABLE_CONNECT_PROTOCOL``;
an Extended CONNECT with ``:protocol websocket`` becomes the HTTP/1.1 upgrade request the
route's backend is sent (``extended_connect``), and after the backend's 101 the stream is one
side of a ``proxy.tunnel.Tunnel`` (``interfaces.RawStream``): DATA frames both ways, with the
stream's flow control as the backpressure, END_STREAM or RST_STREAM for a close. A plain
CONNECT, or another ``:protocol``, is answered 400 as nginx does.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from hpack import NeverIndexedHeaderTuple
from twisted.internet.interfaces import IProtocolNegotiationFactory, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.python import log
from zope.interface import implementer

from ingressd.drain import ConnectionSet
from ingressd.http import extended_connect
from ingressd.http.head_buffers import fits_h2
from ingressd.http import h2_server
from ingressd.http.h2_frames import (CANCEL, ENHANCE_YOUR_CALM, INTERNAL_ERROR, NO_ERROR, REFUSED_STREAM,
                                     goaway_frame)
from ingressd.http.h2_server import ProtocolError, ServerConnection
from ingressd.http.hpack_out import ResponseEncoder
from ingressd.http.http1 import HTTP1Factory, ServerSettings, addresses, error_page, other_ends
from ingressd.tls.client_auth import client_certificate
from ingressd.tls.facts import tls_facts

# Headers that are connection-specific in HTTP/2 (RFC 9113 8.2.2): never sent in a response.
_CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
     b"te", b"http2-settings", b"content-length")
)
# Sent as never indexed (RFC 7541 7.1.3), as h2's outbound normalisation marked them (a cookie if short).
_NEVER_INDEXED = frozenset((b"authorization", b"proxy-authorization", b"cookie"))
_HIGH_WATER = 256 * 1024  # buffered response bytes per stream before the backend is paused
_LOW_WATER = 64 * 1024
_MAX_STREAMS = 100  # sizes the connection window; the streams allowed: ServerSettings.http2_max_concurrent_streams
_STREAM_WINDOW = 65535  # RFC default; also what a paused stream can hold unacknowledged
_CONNECTION_WINDOW = _MAX_STREAMS * _STREAM_WINDOW
_DRAIN_LIMIT = 4 * 1024 * 1024  # request body read and dropped after an early answer
_NEW_STREAMS_PER_READ = 2  # x the streams allowed: nginx's bound on streams opened in one read (rapid reset)


class H2Request:
    """The request head of one stream, shaped like ``http1.Request``."""

    __slots__ = (
        "method", "target", "version", "headers", "keep_alive", "upgrade", "chunked",
        "content_length", "complete", "expect_continue", "head_bytes", "websocket_key", "has_body",
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
        self.websocket_key: bytes | None = None  # an Extended CONNECT: the key the backend is sent
        # http1.Request's property, worked out once (a property's frame on every request: neither
        # field changes after the HEADERS)
        self.has_body = self.chunked or bool(content_length)


class _Reject(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def _request_from(headers, settings: ServerSettings, ended: bool) -> H2Request:
    """Validate a request header block (h2 already checked its HTTP/2 rules)."""
    method = path = authority = protocol = None
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
            elif name == b":protocol":
                protocol = value
            continue
        if b"_" in name and settings.drops_underscores:
            continue  # nginx's underscores_in_headers off: the field is ignored
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
    if method is None or not path:
        raise _Reject(400, "no :method/:path (a plain CONNECT)")  # nginx: "client sent no :path header"
    if authority is None:
        raise _Reject(400, "a request needs :authority or Host")
    if cookies:
        pairs.append((b"cookie", b"; ".join(cookies)))
    pairs.insert(0, (b"host", authority))
    if method == b"CONNECT":
        return _websocket_request(protocol, path, pairs, ended, size)
    request = H2Request(method, path, pairs, content_length, ended, expect_continue)
    request.head_bytes = size
    return request


def _websocket_request(protocol: bytes | None, path: bytes, pairs, ended: bool, size: int) -> H2Request:
    """An Extended CONNECT (RFC 8441) as the WebSocket upgrade request (GET) the backend is
    sent. Any other ``:protocol`` is refused 400, as nginx refuses a ``:protocol`` it does
    not know; so is a CONNECT that ends its stream at once (no tunnel to carry)."""
    if protocol is None or protocol.lower() != extended_connect.WEBSOCKET or ended:
        raise _Reject(400, "Extended CONNECT other than WebSocket")
    if any(name == b"content-length" for name, _ in pairs):
        raise _Reject(400, "an upgrade request cannot carry a body")  # as http1 refuses one
    key = extended_connect.new_key()
    request = H2Request(b"GET", path, extended_connect.upgrade_headers(pairs, key), None, True, False)
    request.upgrade = True
    request.websocket_key = key
    request.head_bytes = size
    return request


# _response_fields' answers for the last few short field lists (a gRPC backend's head and
# trailers are alike call after call): bounded in entries and in fields an entry.
_FIELDS_MEMO: dict[tuple, tuple] = {}
_FIELDS_MEMO_LIMIT = 32
_FIELDS_MEMO_MOST = 8


def _response_fields(headers) -> tuple:
    """``_response_fields_pass``'s answer, remembered for a short list of fields seen lately
    (the same fields in the same order give the same answer: a pure function of them)."""
    if len(headers) > _FIELDS_MEMO_MOST:
        return tuple(_response_fields_pass(headers))
    key = tuple(headers)
    try:
        fields = _FIELDS_MEMO.get(key)
    except TypeError:  # a field that is no tuple (a list): answered without the memo
        return tuple(_response_fields_pass(headers))
    if fields is None:
        fields = tuple(_response_fields_pass(headers))
        if len(_FIELDS_MEMO) >= _FIELDS_MEMO_LIMIT:
            _FIELDS_MEMO.clear()
        _FIELDS_MEMO[key] = fields
    return fields


def _response_fields_pass(headers) -> list:
    """A response's (or its trailers') fields as h2's outbound normalisation and validation
    left them, in one pass (they are switched off: their chains of generators cost more than
    the rest of sending a head): names lower case, whitespace around names and values
    stripped, connection-specific fields and pseudo-headers left out, credentials never
    indexed. ``:status`` is put first by the caller."""
    fields = []
    for name, value in headers:
        name = name.lower().strip()
        if name in _CONNECTION_SPECIFIC or name[:1] == b":":
            continue
        value = value.strip()
        if name in _NEVER_INDEXED and (name != b"cookie" or len(value) < 20):
            fields.append(NeverIndexedHeaderTuple(name, value))
        else:
            fields.append((name, value))
    return fields


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

    transport = None  # no raw byte stream: a WebSocket tunnel goes through ``divert``/``write_raw``
    tunnel = None

    def cork(self) -> None:
        """What the backend's read produces (head, body, end) leaves in one write: the
        connection sends this stream's frames when the last cork is taken out."""
        self.connection.cork()

    def uncork(self) -> None:
        self.connection.uncork()

    def __init__(self, connection: "H2ServerProtocol", stream_id: int):
        self.connection = connection
        self.stream_id = stream_id
        self.peer_ip = connection.peer_ip
        self.server_port = connection.server_port
        self.peer_port, self.server_ip = getattr(connection, "peer_port", 0), getattr(connection, "server_ip", "")
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
        self._body_timer_wanted = False  # the body timer starts when the read ends (wait_for_body)
        self.remote_ended = False  # the client sent END_STREAM
        self._draining: int | None = None  # bytes dropped after an early answer
        # after divert(): takes the DATA (an exchange awaiting a 101, then a tunnel). Read twice
        # a request: an instance value, as a class default read through the instance is not
        # specialised by CPython 3.11 (~230 instructions a read against ~30; docs, "Keep-alive V").
        self._receiver = None

    @property
    def trusted(self):
        return self.connection.trusted

    @trusted.setter
    def trusted(self, value) -> None:
        self.connection.trusted = value

    # -- request side ---------------------------------------------------------------------

    def data_received(self, data: bytes, flow_length: int, ending: bool = False) -> None:
        """A DATA frame's ``data``; ``ending``: the request's last (its END_STREAM; ``request_ended``
        follows at once), and the request is complete as the exchange is handed it: a streamed
        body's end then leaves with its last piece (``Exchange.body_data``)."""
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
        if self._receiver is not None:
            if data:
                self._receiver.client_data(data)
        elif exchange is not None and data:
            if ending and self.request is not None:
                self.request.complete = True
            exchange.body_data(data)

    def request_ended(self) -> None:
        self.remote_ended = True
        if self._receiver is not None:
            self._tunnel_client_ended()
            return
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

    def wait_for_body(self) -> None:
        """The body timer, started when the read that brought the head ends, unless the body
        ended (or the timer was cancelled) by then: a unary call's DATA with END_STREAM
        usually comes in the same read, and its stream then makes no reactor call."""
        self._body_timer_wanted = True
        self.connection.after_read(self)

    def start_body_timer(self) -> None:
        self._body_timer_wanted = False
        clock = self.connection.clock
        self._timer = clock.callLater(self.connection.settings.body_timeout, self._body_timed_out)

    def _body_timed_out(self) -> None:
        self._timer = None
        if self.closed:
            return
        if not self._head_written:
            self.respond(408)
            return
        self.reset(CANCEL)

    def _cancel_timer(self) -> None:
        self._body_timer_wanted = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # -- response side --------------------------------------------------------------------

    def close_after_response(self) -> None:
        """Nothing to do: the connection goes on serving other streams."""

    def tls(self) -> tuple[str, str]:
        return self.connection.tls()

    @property
    def passes_backend_server(self) -> bool:
        # http1's ``passes_backend_server(settings)``, inline (read once per proxied response;
        # test_http2 compares the two)
        settings = self.connection.settings
        return settings.backend_server_header and settings.identity.server is not None

    def client_certificate(self):
        return self.connection.client_certificate()

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
        block.extend(_response_fields(headers))
        if length is not None and not no_body:
            block.append((b"content-length", b"%d" % length))
        settings = self.connection.settings
        if settings.backend_server_header and any(name == b"server" for name, _ in headers):
            block.extend(settings.identity.date_pairs(self.connection.clock.seconds()))  # the backend's Server instead
        else:
            block.extend(settings.identity.pairs(self.connection.clock.seconds()))
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
        self._trailers = _response_fields(trailers)

    def finish_response(self) -> None:
        self._ending = True
        self.exchange = None
        self._receiver = None
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
        self.reset(INTERNAL_ERROR)

    # -- used by the connection -----------------------------------------------------------

    def send_pending(self) -> bool:
        """Send what the windows allow; True when the stream finished sending."""
        connection = self.connection
        h2conn = connection.h2
        out = self._out
        ended = False
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
            # the last DATA frame of an answer carries END_STREAM (no empty frame after it)
            ended = not out and self._ending and not self._trailers
            h2conn.send_data(self.stream_id, chunk, end_stream=ended)
        if self._upstream_paused and self._out_bytes < _LOW_WATER and not connection.transport_paused:
            self.resume_upstream()
        if self._ending and not out and not self.closed:
            if ended:
                pass
            elif self._trailers:
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
        self.connection.h2_reset(self.stream_id, NO_ERROR)

    def pause_upstream(self) -> None:
        reader = self._receiver or self.exchange  # a tunnel's, once diverted
        if not self._upstream_paused and reader is not None:
            self._upstream_paused = True
            reader.client_paused()

    def resume_upstream(self) -> None:
        if self._upstream_paused:
            self._upstream_paused = False
            reader = self._receiver or self.exchange
            if reader is not None:
                reader.client_resumed()

    def reset(self, code: int) -> None:
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
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            receiver.client_lost()
        if self.exchange is not None:
            exchange, self.exchange = self.exchange, None
            if exchange is not receiver:
                exchange.client_lost()

    def _maybe_forget(self) -> None:
        if self.closed:
            self.connection.forget(self)

    # -- a WebSocket tunnel on this stream (RFC 8441; interfaces.RawStream) -----------------

    def divert(self, receiver) -> None:
        """From now on the stream's DATA goes to ``receiver`` (``interfaces.RawReceiver``)."""
        self._receiver = receiver

    def accept_tunnel(self, headers) -> bool:
        """The backend switched protocols: answer the Extended CONNECT ``:status 200`` with
        the backend's headers, or False (nothing sent) when its Sec-WebSocket-Accept is not
        the one for our key."""
        if self.closed:
            return False
        relayed = extended_connect.accepted_head(headers, self.request.websocket_key)
        if relayed is None:
            return False
        block = [(b":status", b"200")]
        block.extend(_response_fields(relayed))
        block.extend(self.connection.settings.identity.pairs(self.connection.clock.seconds()))
        self._head_written = True
        self.connection.send_headers(self.stream_id, block, False)
        return True

    def write_raw(self, data: bytes) -> None:
        """Tunnel bytes to the client: DATA frames as the windows allow (a large backlog
        pauses the backend through ``pause_upstream``)."""
        self.write_body(data)

    def lose_connection(self) -> None:
        """The tunnel is over: END_STREAM once what is pending is sent (as a TCP FIN, RFC 8441
        4); a client still sending is read and dropped for a while, then reset."""
        self._receiver = None
        self.finish_response()

    def going_away(self) -> bool:
        """Shutting down: a tunnel says "going away" to both peers and ends; False when this
        stream is no tunnel."""
        going_away = getattr(self._receiver, "going_away", None)  # a Tunnel's, not an exchange's
        if going_away is None:
            return False
        going_away()
        return True

    def _tunnel_client_ended(self) -> None:
        """END_STREAM from the client of a WebSocket stream: its side is closed (a FIN). The
        tunnel closes both; before the backend's 101 the request is abandoned (499)."""
        receiver, self._receiver = self._receiver, None
        receiver.client_lost()
        if self.exchange is receiver:
            self.exchange = None
        if not self._ending and not self.closed:
            self.reset(CANCEL)  # not answered yet: nothing else to say
        self._maybe_forget()


@implementer(IPushProducer)
class H2ServerProtocol(Protocol):
    """One HTTP/2 client connection; ``handler(stream, request)`` returns an exchange per stream."""

    def __init__(self, settings: ServerSettings, handler: Callable, clock: Any, scheme: str = "https",
                 websocket: bool = True):
        self.settings = settings
        self.websocket = websocket  # RFC 8441 offered (SETTINGS_ENABLE_CONNECT_PROTOCOL)
        self.handler = handler
        self.clock = clock
        self.scheme = scheme
        # Our HTTP/2 connection (h2's rules, h2_server); what h2 checked of the blocks we send,
        # _response_fields does in one pass. Made at connectionMade, when the settings are known.
        self.h2: ServerConnection | None = None
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
        self._requests = 0  # streams taken (nginx's keepalive_requests counts them too)
        self._corked = 0  # a read is being handled: frames are written once, at its end
        self._pending: dict[int, _Stream] = {}  # streams with frames to send at the uncork
        self._repeat: tuple | None = None  # the last request block, its settings, what was read of it
        self._body_timers: list[_Stream] = []  # streams whose body timer starts when the read ends
        self._group: ConnectionSet | None = None

    # -- connection lifecycle -------------------------------------------------------------

    def tls(self) -> tuple[str, str]:
        """(TLS version, SNI name) of this connection."""
        if self._tls is None:
            self._tls = tls_facts(self.transport)
        return self._tls

    _client_certificate = None  # read once, on the first request that asks

    def client_certificate(self):
        """What the client's certificate proved (``tls.client_auth.ClientCertificate``)."""
        if self._client_certificate is None:
            self._client_certificate = client_certificate(self.transport)
        return self._client_certificate

    def connectionMade(self) -> None:
        self.peer_ip, self.server_port = addresses(self.transport)
        self.peer_port, self.server_ip = other_ends(self.transport)
        self.transport.registerProducer(self, True)
        self._registered = True
        local = h2_server.local_settings(
            self.settings.http2_max_concurrent_streams,
            # what large_client_header_buffers lets through (fits_h2), with RFC 7541's 32 per field
            self.settings.max_header_bytes + 32 * self.settings.max_headers,
            self.websocket,  # RFC 8441
        )
        # nginx's HPACK for the answers: no dynamic table, fields memoised
        streams = self.settings.http2_max_concurrent_streams
        self.h2 = ServerConnection(local, streams, ResponseEncoder(),
                                   new_streams_per_read=_NEW_STREAMS_PER_READ * streams)
        self.h2.initiate_connection(_CONNECTION_WINDOW)
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
            self._write_out()
            self._unregister()  # TLS waits for producers before closing
            self.transport.loseConnection()
            self.closed = True

    # -- graceful drain (interfaces.Drainable) ----------------------------------------------

    def drain(self) -> None:
        """Shutting down: GOAWAY with the last stream id taken; those streams are answered,
        later ones refused (the client retries them elsewhere), then the connection closes."""
        self._go_away()

    def _go_away(self) -> None:
        """GOAWAY (NO_ERROR) with the last stream id taken: shutting down, or the connection
        served its keepalive_requests streams (nginx, as on an HTTP/1.1 connection)."""
        if self.closed or self._last_stream is not None:
            return
        self._last_stream = self.h2.highest_inbound_stream_id
        self._going_away = True
        # Written here, not through h2's close_connection: h2 takes a GOAWAY it sends as the
        # end of the connection and refuses to send anything after it, where RFC 9113 6.8
        # lets the streams up to the last id be answered.
        self._write_out()
        self.transport.write(goaway_frame(self._last_stream, NO_ERROR))
        self._check_idle()

    def shut(self) -> None:
        """The grace is over: the streams still open are reset (CANCEL), the connection closed."""
        if self.closed:
            return
        self.drain()
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            if stream.going_away():  # a WebSocket: close code 1001, as an HTTP/1.1 tunnel's
                continue
            self.h2_reset(stream.stream_id, CANCEL)
            stream.lost()
        if not self.closed:
            self._write_out()
            self._unregister()  # TLS waits for producers before closing
            self.transport.loseConnection()
            self.closed = True

    # -- incoming -------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.closed:
            return
        self._corked += 1  # the answers this read produces leave in one write, after it
        try:
            self._events(data)
        finally:
            self.uncork()
        self._check_idle()

    def _events(self, data: bytes) -> None:
        try:
            events = self.h2.receive(data)
        except ProtocolError as exc:
            log.msg(f"ingressd: HTTP/2 protocol error from {self.peer_ip}: {exc}")
            self._write_out()
            self._unregister()  # TLS waits for producers before closing
            self.transport.loseConnection()
            self.closed = True
            return
        last = len(events) - 1
        windows_seen = False
        for index, event in enumerate(events):  # h2_server's event tuples
            kind = event[0]
            if kind == h2_server.REQUEST:
                self._request(event[1], event[2], event[3])
            elif kind == h2_server.DATA:
                stream = self.streams.get(event[1])
                if stream is not None:
                    # DATA with END_STREAM: its ENDED is the next event
                    ending = index < last and events[index + 1] == (h2_server.ENDED, event[1])
                    stream.data_received(event[2], event[3], ending)
                else:
                    self.acknowledge(event[1], event[3])
            elif kind == h2_server.ENDED:
                stream = self.streams.get(event[1])
                if stream is not None:
                    stream.request_ended()
            elif kind == h2_server.RESET:
                stream = self.streams.pop(event[1], None)
                if stream is not None:
                    stream.lost()
            elif kind == h2_server.WINDOW:
                # Once a read (grpcio sends two WINDOW_UPDATEs a call): the read is corked, so
                # the walk only notes the streams with frames to send for the uncork, and a
                # stream that has some later in the read was noted by the write that gave it
                # them (write_body, finish_response: flush_stream). A later walk adds nothing.
                if not windows_seen:
                    windows_seen = True
                    self._send_all()
            elif kind == h2_server.TERMINATED:
                self._going_away = True  # the streams in flight are still answered
        waiting = self._body_timers
        if waiting:
            self._body_timers = []
            for stream in waiting:
                if stream._body_timer_wanted:  # (a timer cancelled since, or the body ended: no)
                    stream.start_body_timer()

    def _request(self, stream_id: int, headers: list, ended: bool) -> None:
        if self._last_stream is not None and stream_id > self._last_stream:
            self.h2_reset(stream_id, REFUSED_STREAM)  # after our GOAWAY
            return
        settings = self.settings
        # A client repeating a request sends the same block: h2_server hands back the same
        # list, and what was read from it last time holds while the settings read stay the same.
        key = (ended, settings.header_buffers, settings.max_headers, settings.drops_underscores)
        repeat = self._repeat
        if repeat is not None and repeat[0] is headers and repeat[1] == key:
            known = repeat[2]
        elif not fits_h2(headers, *settings.header_buffers):
            # nginx: "client sent too large header field" / "too large header": the connection ends
            log.msg(f"ingressd: HTTP/2 header block beyond large_client_header_buffers from {self.peer_ip}")
            self.h2.close_connection(error_code=ENHANCE_YOUR_CALM)
            self._write_out()
            self._unregister()  # TLS waits for producers before closing
            self.transport.loseConnection()
            self.closed = True
            return
        else:
            known = None
        stream = _Stream(self, stream_id)
        self.streams[stream_id] = stream
        self._cancel_timer()
        self._requests += 1
        limit = self.settings.keepalive_requests
        if limit and self._requests >= limit:
            self._go_away()  # this stream is still answered; the client opens a new connection
        stream.remote_ended = ended
        if known is not None:
            method, target, pairs, content_length, expect_continue, head_bytes = known
            request = H2Request(method, target, list(pairs), content_length, ended, expect_continue)
            request.head_bytes = head_bytes
        else:
            try:
                request = _request_from(headers, settings, ended)
            except _Reject as rejected:
                stream.respond(rejected.status, _known_of(headers))
                return
            if request.websocket_key is None:  # a WebSocket's key is new each time
                self._repeat = (headers, key, (request.method, request.target, tuple(request.headers),
                                               request.content_length, request.expect_continue, request.head_bytes))
        if request.websocket_key is not None and not self.websocket:
            stream.respond(400, request)  # not offered: as nginx, which knows no :protocol
            return
        stream.request = request
        if not ended and request.websocket_key is None:  # a tunnel's DATA is no request body
            stream.wait_for_body()
        try:
            exchange = self.handler(stream, request)
        except Exception:
            log.err(None, "ingressd: request handler failed")
            if not stream._head_written:
                stream.respond(500)
            else:
                stream.reset(INTERNAL_ERROR)
            return
        if exchange is not None and not stream._ending and not stream.closed:
            stream.exchange = exchange  # StreamEnded (next event when ``ended``) calls body_done
            if request.websocket_key is not None:
                exchange.wants_tunnel()  # it takes the DATA until the backend's 101

    def after_read(self, stream: _Stream) -> None:
        """Start ``stream``'s body timer when the read being handled ends (``wait_for_body``)."""
        self._body_timers.append(stream)

    # -- outgoing -------------------------------------------------------------------------

    def send_headers(self, stream_id: int, headers, end_stream: bool) -> None:
        try:
            self.h2.send_headers(stream_id, headers, end_stream=end_stream)
        except ProtocolError as exc:
            log.msg(f"ingressd: cannot send HTTP/2 headers: {exc}")
            stream = self.streams.get(stream_id)
            if stream is not None:
                stream.reset(INTERNAL_ERROR)
            return
        self.flush()

    def flush_stream(self, stream: _Stream) -> None:
        if self._corked:  # sent at uncork, with whatever else the same read produces
            self._pending[stream.stream_id] = stream
            return
        self._send_stream(stream)
        self.flush()

    def _send_stream(self, stream: _Stream) -> None:
        if self.closed or self.transport_paused:
            return
        try:
            finished = stream.send_pending()
        except ProtocolError:
            finished = True
            stream.lost()
        if finished:
            self.forget(stream)

    def cork(self) -> None:
        self._corked += 1

    def uncork(self) -> None:
        self._corked -= 1
        if self._corked:
            return
        if self._pending:  # streams whose frames waited for the end of the read
            pending, self._pending = self._pending, {}
            for stream in pending.values():
                self._send_stream(stream)
        self.flush()

    def _send_all(self) -> None:
        if self.closed or self.transport_paused:
            return
        for stream in list(self.streams.values()):
            if stream._out or stream._ending or stream._upstream_paused:
                self.flush_stream(stream)

    def flush(self) -> None:
        """Write what h2 has ready, unless a read is being relayed (``cork``): then at its end."""
        if not self._corked:
            self._write_out()

    def _write_out(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closed:
            self.transport.write(data)

    def acknowledge(self, stream_id: int, length: int) -> None:
        if length and not self.closed:
            try:
                self.h2.acknowledge_received_data(length, stream_id)
            except ProtocolError:
                pass

    def h2_reset(self, stream_id: int, code: int) -> None:
        if self.closed:
            return
        try:
            self.h2.reset_stream(stream_id, code)
        except ProtocolError:
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
            self._write_out()
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
            protocol = H2ServerProtocol(http1.settings, http1.handler, http1.clock, http1.scheme,
                                        websocket=self.factory.websocket)
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


class PriorKnowledge:
    """HTTP/2 with prior knowledge (h2c, RFC 9113 3.3) on a cleartext listener: set as its
    ``HTTP1Factory.prior_knowledge``, it builds the HTTP/2 protocol for a connection that
    opened with the connection preface (``http1.PREFACE``). ``enabled`` is the same switch
    as h2 through ALPN (--no-http2, use-http2), read as each connection opens; ``live``: the
    connections that became HTTP/2, for a graceful drain."""

    def __init__(self, http1: HTTP1Factory, enabled: bool = True, websocket: bool = True):
        self.http1 = http1
        self.enabled = enabled
        self.websocket = websocket  # WebSocket over HTTP/2 (RFC 8441) offered
        self.live = ConnectionSet()
        http1.prior_knowledge = self

    def build(self) -> "H2ServerProtocol":
        http1 = self.http1
        protocol = H2ServerProtocol(http1.settings, http1.handler, http1.clock, http1.scheme,
                                    websocket=self.websocket)
        protocol.factory = self
        return protocol


@implementer(IProtocolNegotiationFactory)
class HTTPSFactory(Factory):
    """What the TLS listener wraps: offers h2 (unless ``http2`` is false) and http/1.1."""

    noisy = False

    def __init__(self, http1: HTTP1Factory, http2: bool = True, websocket: bool = True):
        self.http1 = http1
        self.http2 = http2
        self.websocket = websocket  # WebSocket over HTTP/2 (RFC 8441) offered
        self.clock = http1.clock
        self.live = ConnectionSet()  # the HTTP/2 connections (HTTP/1 ones are http1's)

    def acceptableProtocols(self) -> list[bytes]:
        return [b"h2", b"http/1.1"] if self.http2 else [b"http/1.1"]

    def buildProtocol(self, addr):
        protocol = _NegotiatingProtocol(self, addr)
        return protocol
