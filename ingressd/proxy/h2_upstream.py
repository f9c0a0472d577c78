"""The HTTP/2 upstream protocol (``backend-protocol: GRPC`` and ``GRPCS``): many streams per
backend connection, pooled per endpoint.

``H2Upstream.acquire`` hands out an ``H2Stream`` (one request, the seam's
``UpstreamConnection``) on a connection to the endpoint that has room for one more stream
(the backend's SETTINGS_MAX_CONCURRENT_STREAMS, at most ``max_streams`` of ours), or on a new
connection: cleartext HTTP/2 with prior knowledge (GRPC, nginx's ``grpc_pass grpc://``) or
HTTP/2 over TLS with ALPN ``h2`` (GRPCS, the route's ``proxy-ssl-*`` settings through
``backend_tls``). ``h2_client.ClientConnection`` (sans-IO, our own) does the framing,
flow control and stream states; the request head comes encoded from ``h2_request_head``.

- Request bodies are streamed (gRPC client streaming and bidi): the protocol says so with
  ``streams_request_body``; what the backend's window does not take waits in the stream,
  and past ``_HIGH_WATER`` the exchange is told to stop (``upstream_write_paused``), which
  stops reading the client.
- Response data is acknowledged to the backend only while the client takes it: a slow
  client (``pause_reading``) leaves the stream's window closed, so the backend stops.
- Trailers (``grpc-status``, ``grpc-message``, custom trailing metadata) go to the exchange
  with ``upstream_trailers`` before the end.
- ``grpc-timeout`` of the request is a deadline on the stream (besides the read timeout):
  when it passes, the stream is reset and the exchange told (a 504, answered the gRPC way).
- GOAWAY: no new stream on that connection; streams above its last-stream-id were never
  processed and fail as retryable (``refused``); the others finish.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from h2.errors import ErrorCodes
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python import log
from zope.interface import implementer

from ingressd.features import BackendTLS
from ingressd.http.deadline import Deadline
from ingressd.proxy.backend_tls import BackendConnectionCreator, BackendTLSError, make_context
from ingressd.proxy import h2_client
from ingressd.proxy.h2_client import ClientConnection, H2ClientError, StreamClosed, TooManyStreams
from ingressd.proxy.h2_request_head import FieldMemo, InvalidRequestHead
from ingressd.proxy.transport import connect_tcp
from ingressd.proxy.upstream import STREAMED, UpstreamError
from ingressd.tls.lean import LeanTLSFactory

# Request headers HTTP/2 forbids (RFC 9113 8.2.2) or that become pseudo-headers.
_NOT_SENT = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
                       b"te", b"http2-settings", b"host", b"content-length"))
_LOOKED_AT = _NOT_SENT | {b"grpc-timeout"}  # the names ``start`` does more with than pass on
_HIGH_WATER = 256 * 1024  # request bytes queued per stream before the exchange is paused
_LOW_WATER = 64 * 1024
_STREAM_WINDOW = 1024 * 1024  # what the backend may send a stream before the client took it
_CONNECTION_WINDOW = 16 * 1024 * 1024
_GRPC_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
_NEVER = float("inf")


def grpc_timeout(value: bytes | None) -> float | None:
    """Seconds of a ``grpc-timeout`` header (``"100m"``: 100 ms); None when absent or invalid."""
    if not value or len(value) > 9:  # at most 8 digits and a unit (the gRPC spec)
        return None
    digits, unit = value[:-1], value[-1:]
    if not digits.isdigit() or unit not in _GRPC_UNITS:
        return None
    return int(digits) * _GRPC_UNITS[unit]


# What we tell a backend (h2's order and values, as the connection sent them over h2).
_LOCAL_SETTINGS = ((0x1, 4096), (0x2, 0), (0x4, _STREAM_WINDOW), (0x5, 16384), (0x8, 0), (0x3, 100))
_RESPONSE, _DATA, _TRAILERS, _ENDED, _RESET, _GOAWAY_EVENT, _WINDOW = (
    h2_client.RESPONSE, h2_client.DATA, h2_client.TRAILERS, h2_client.ENDED, h2_client.RESET, h2_client.GOAWAY,
    h2_client.WINDOW)


class _StreamTimers:
    """A connection's streams' timeouts (read, send, ``grpc-timeout``) on one ``Deadline``:
    a stream stores when each of its own is due (a number, no reactor call per stream), the
    ``Deadline`` is set for the earliest, and when it fires the sweep times out the streams
    whose time passed and sets it for the next. Never late, as a ``Deadline`` per timeout."""

    __slots__ = ("_seconds", "_deadline", "_due", "streams")

    def __init__(self, clock: Any):
        self._seconds = clock.seconds
        self._deadline = Deadline(clock, self._sweep)
        self._due = _NEVER  # when the Deadline is set for
        self.streams: set[H2Stream] = set()  # the streams with a timeout set

    def now(self) -> float:
        return self._seconds()

    def watch(self, stream: "H2Stream", at: float, after: float) -> None:
        """``stream`` has a timeout due at ``at`` (``after`` seconds from now)."""
        self.streams.add(stream)
        if at < self._due:
            self._due = at
            self._deadline.set(after)

    def _sweep(self) -> None:
        self._due = _NEVER
        now = self._seconds()
        for stream in list(self.streams):
            stream.time_passed(now)
        due = min((stream.next_due() for stream in self.streams), default=_NEVER)
        if due < _NEVER:
            self._due = due
            self._deadline.set(due - now)

    def stop(self) -> None:
        """The connection is gone (its streams failed): no more sweeps."""
        self.streams.clear()
        self._deadline.stop()


@implementer(IPushProducer)
class H2Connection(Protocol):
    """One HTTP/2 connection to a backend endpoint, carrying many ``H2Stream``s."""

    # While a read is handled: when it arrived (its streams' read timeouts start over from
    # then), taken once, by the first stream that needs it; None between reads.
    read_time: float | None = None

    def __init__(self, pool: "H2Upstream", key: Any, scheme: bytes):
        self.pool = pool
        self.key = key
        self.scheme = scheme
        # A request's header block is normalised, validated and encoded by ``h2_request_head``
        # (one pass, memoised); ``h2_client`` frames it.
        self.h2 = ClientConnection(_LOCAL_SETTINGS, _CONNECTION_WINDOW)
        self.streams: dict[int, H2Stream] = {}
        self.waiting: deque[H2Stream] = deque()  # started, waiting for a stream slot
        self.reserved = 0  # streams handed out, not yet started
        self.connected = False
        self.going_away = False
        self.transport_paused = False
        self.idle_since = 0.0
        self.served = 0  # streams opened on it
        self.timers = _StreamTimers(pool.clock)
        self.on_connected: Callable | None = None
        self.tls_creator = None

    # -- room for streams -----------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return self.connected and not self.going_away

    def room(self) -> int:
        """How many more streams it takes: the backend's limit and ours."""
        limit = min(self.h2.max_concurrent_streams, self.pool.max_streams)
        return limit - len(self.streams) - len(self.waiting) - self.reserved

    # -- lifecycle ------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected = True
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            no_delay(True)
        self.transport.registerProducer(self, True)
        self.h2.initiate_connection()
        self.flush()
        notify, self.on_connected = self.on_connected, None
        if notify is not None:
            notify(self)

    def connectionLost(self, reason=None) -> None:
        self.connected = False
        self.pool.forget(self)
        streams = list(self.streams.values()) + list(self.waiting)
        self.streams = {}
        self.waiting.clear()
        for stream in streams:
            stream.lost("backend closed the connection")
        self.timers.stop()

    # -- incoming -------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except H2ClientError as exc:
            log.msg(f"ingressd: HTTP/2 protocol error from backend {self.key[0]}:{self.key[1]}: {exc}")
            self.flush()
            self.transport.abortConnection()
            return
        streams = self.streams
        # The clients answered by this read are corked until its end: a unary answer's
        # HEADERS, DATA and trailers (and every answer of the read to one client connection)
        # leave in one write.
        held: list = []
        try:
            for event in events:
                kind = event[0]
                if kind == _DATA:
                    stream = streams.get(event[1])
                    if stream is not None:
                        if stream.exchange is not None and not stream.held:
                            stream.hold(held)
                        stream.data(event[2], event[3])
                    else:
                        self.acknowledge(event[1], event[3])
                elif kind == _RESPONSE:
                    stream = streams.get(event[1])
                    if stream is not None:
                        if stream.exchange is not None and not stream.held:
                            stream.hold(held)
                        stream.head(event[2], event[3], event[4])
                elif kind == _ENDED:
                    stream = streams.get(event[1])
                    if stream is not None:
                        if stream.exchange is not None and not stream.held:
                            stream.hold(held)
                        self._close_stream(stream)
                        stream.ended()
                elif kind == _TRAILERS:
                    stream = streams.get(event[1])
                    if stream is not None:
                        if stream.exchange is not None and not stream.held:
                            stream.hold(held)
                        stream.trailers(event[2])
                elif kind == _RESET:
                    stream = streams.get(event[1])
                    if stream is not None:
                        self._close_stream(stream)
                        stream.reset_by_backend(event[2])
                elif kind == _WINDOW:
                    self.send_all()
                    self._start_waiting()
                elif kind == _GOAWAY_EVENT:
                    self._goaway(event[1])
        finally:
            self.read_time = None
            for stream, client in held:
                stream.held = False
                client.uncork()
        self.flush()

    def _goaway(self, last_stream: int) -> None:
        self.going_away = True
        self.pool.forget(self)  # no new streams here
        waiting, self.waiting = list(self.waiting), deque()
        refused = [s for i, s in self.streams.items() if i > last_stream]
        for stream in refused:
            self._close_stream(stream)
            self._reset(stream.stream_id, ErrorCodes.CANCEL)
            stream.refused()
        for stream in waiting:
            stream.refused()
        self.maybe_close()

    # -- used by the streams --------------------------------------------------------------

    def open(self, stream: "H2Stream") -> None:
        """Open ``stream`` now if there is room, else when a stream closes."""
        self.reserved -= 1
        if self.going_away or not self.connected:
            stream.refused()
            return
        limit = min(self.h2.max_concurrent_streams, self.pool.max_streams)
        if self.waiting or len(self.streams) >= limit:
            self.waiting.append(stream)
            return
        self._open(stream)

    def _open(self, stream: "H2Stream") -> None:
        stream_id = self.h2.get_next_available_stream_id()
        try:
            self.h2.send_headers(stream_id, stream.block, stream.no_body, stream.head_request)
        except TooManyStreams:
            self.waiting.appendleft(stream)
            return
        except StreamClosed as exc:
            stream.failed(UpstreamError(f"cannot send the request to the backend: {exc}", cause="invalid_request"))
            return
        self.served += 1
        stream.stream_id = stream_id
        self.streams[stream_id] = stream
        stream.opened()
        self.flush()

    def _start_waiting(self) -> None:
        limit = min(self.h2.max_concurrent_streams, self.pool.max_streams)
        while self.waiting and len(self.streams) < limit and self.connected and not self.going_away:
            self._open(self.waiting.popleft())

    def unreserve(self) -> None:
        self.reserved -= 1
        self.maybe_close()

    def _close_stream(self, stream: "H2Stream") -> None:
        if self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]
        self._start_waiting()
        self.maybe_close()

    def drop(self, stream: "H2Stream", code: ErrorCodes) -> None:
        """The exchange gave up on ``stream``: reset it (the connection serves the others)."""
        if stream in self.waiting:
            self.waiting.remove(stream)
            self.maybe_close()
            return
        if self.streams.get(stream.stream_id) is stream:
            self._reset(stream.stream_id, code)
            self._close_stream(stream)
            self.flush()

    def _reset(self, stream_id: int, code: ErrorCodes) -> None:
        self.h2.reset_stream(stream_id, code)

    def maybe_close(self) -> None:
        """Idle: back to the pool's count of idle connections, or closed when going away."""
        if self.streams or self.waiting or self.reserved:
            return
        if self.going_away:
            if self.transport is not None and self.connected:
                self.flush()
                self.transport.loseConnection()
            return
        self.idle_since = self.pool.clock.seconds()
        self.pool.idle(self)

    def acknowledge(self, stream_id: int, length: int) -> None:
        if length and self.connected:
            self.h2.acknowledge_received_data(length, stream_id)

    def send_all(self) -> None:
        if self.transport_paused:
            return
        for stream in list(self.streams.values()):
            if stream.pending:
                stream.send_pending()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.connected:
            self.transport.write(data)

    def shut(self) -> None:
        """The server stops: close now."""
        if self.transport is not None and self.connected:
            self.h2.close_connection()
            self.flush()
            self.transport.loseConnection()

    # -- IPushProducer: the backend does not read fast enough ------------------------------

    def pauseProducing(self) -> None:
        self.transport_paused = True
        for stream in list(self.streams.values()):
            stream.write_paused()

    def resumeProducing(self) -> None:
        self.transport_paused = False
        self.send_all()
        self.flush()

    def stopProducing(self) -> None:
        pass


class H2Stream:
    """One request on an ``H2Connection``: the seam's ``UpstreamConnection``."""

    reused = False  # a stream is never reused; a refused one says ``refused`` instead
    stream_id = 0
    _reserved = True  # counted in its connection's ``reserved`` until started

    def __init__(self, connection: H2Connection):
        self.connection = connection
        self.exchange = None
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.block = b""  # the request's header block (``h2_request_head``) until the stream opens
        self.head_request = False  # HEAD: the response has no body
        self.no_body = True
        self.pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self._ending = False  # end_body called; END_STREAM once pending is sent
        self._sent_end = False
        self._paused_writer = False
        self._read_paused = False
        self._unacked = 0
        self._head_delivered = False
        self._received_any = False
        self._done = False
        # its client is corked until the end of the connection's read (``hold``); read for each
        # answer: an instance value, not a class default read through the instance (unspecialised)
        self.held = False
        # when each timeout is due (None: not set), swept by the connection's ``_StreamTimers``
        self._read_at: float | None = None
        self._send_at: float | None = None
        self._grpc_at: float | None = None
        self._timers_stopped = False
        self._read_timeout = 60.0
        self._send_timeout = 60.0

    # -- the seam -------------------------------------------------------------------------

    def start(self, exchange, method: bytes, target: bytes, headers: list, body_length: int | None,
              read_timeout: float, send_timeout: float, version: bytes = b"1.1") -> None:
        self.exchange = exchange
        self._read_timeout = read_timeout
        self._send_timeout = send_timeout
        authority = b""
        deadline = None
        rest = []
        for name, value in headers:
            if name not in _LOOKED_AT:  # most fields: one set lookup
                rest.append((name, value))
            elif name == b"host":
                authority = value
            elif name == b"grpc-timeout":
                deadline = grpc_timeout(value)
                rest.append((name, value))
        authority = authority or self.connection.key[0].encode("idna")
        rest.append((b"te", b"trailers"))  # as nginx's grpc module sends
        if body_length is not None and body_length != STREAMED:
            rest.append((b"content-length", b"%d" % body_length))
        connection = self.connection
        try:
            self.block = connection.pool.fields.block(method, authority, connection.scheme, target, rest)
        except InvalidRequestHead as exc:
            self._reserved = False
            connection.unreserve()
            self.failed(UpstreamError(f"cannot send the request to the backend: {exc}", cause="invalid_request"))
            return
        self.head_request = method == b"HEAD"
        self.no_body = body_length is None or body_length == 0
        self._sent_end = self.no_body
        timers = connection.timers
        now = timers.now()
        if not self._timers_stopped:
            self._read_at = at = now + read_timeout
            timers.watch(self, at, read_timeout)
        if deadline is not None:
            self._grpc_at = at = now + deadline
            timers.watch(self, at, deadline)
        self._reserved = False
        self.connection.open(self)

    def opened(self) -> None:
        self.block = b""
        if self.pending or self._ending:  # else nothing to send yet: the connection flushes the HEADERS
            self.send_pending()

    def send_body(self, data: bytes) -> None:
        if self._done or not data:
            return
        self.pending.append(data)
        self._pending_bytes += len(data)
        if self.stream_id:
            self.send_pending()
        if self._pending_bytes > _HIGH_WATER:
            self.write_paused()

    def end_body(self) -> None:
        self._ending = True
        if self.stream_id:
            self.send_pending()

    def send_last(self, data: bytes) -> None:
        """The body's last piece and its end: END_STREAM on the last DATA frame (as nginx's
        grpc_pass sends a whole body), not an empty DATA frame of its own after it."""
        if self._done:
            return
        if data:
            self.pending.append(data)
            self._pending_bytes += len(data)
        self._ending = True
        if self.stream_id:
            self.send_pending()
        if self._pending_bytes > _HIGH_WATER:
            self.write_paused()

    def send_pending(self) -> None:
        connection = self.connection
        if self._done or not self.stream_id or connection.transport_paused:
            return
        h2conn = connection.h2
        pending = self.pending
        try:
            while pending:
                window = min(h2conn.local_flow_control_window(self.stream_id), h2conn.max_outbound_frame_size)
                if window <= 0:
                    break
                chunk = pending[0]
                if len(chunk) <= window:
                    pending.popleft()
                else:
                    pending[0] = chunk[window:]
                    chunk = chunk[:window]
                self._pending_bytes -= len(chunk)
                last = self._ending and not pending  # the body's end in its last DATA frame
                h2conn.send_data(self.stream_id, chunk, last)
                if last:
                    self._sent_end = True
            if self._ending and not pending and not self._sent_end:
                self._sent_end = True
                h2conn.end_stream(self.stream_id)
        except StreamClosed:
            pending.clear()  # the backend closed its side (it answered early): nothing more to send
            self._pending_bytes = 0
        if pending:
            if self._send_at is None:
                self._set_send()
        else:
            self._send_at = None
        if self._paused_writer and self._pending_bytes < _LOW_WATER and not connection.transport_paused:
            self._paused_writer = False
            if self.exchange is not None:
                self.exchange.upstream_write_resumed()
        connection.flush()

    def write_paused(self) -> None:
        if not self._paused_writer and self.exchange is not None:
            self._paused_writer = True
            self.exchange.upstream_write_paused()
            if self._send_at is None:
                self._set_send()

    def pause_reading(self) -> None:
        """The client is slow: stop acknowledging (the backend's window for this stream closes)."""
        self._read_paused = True
        self._read_at = None

    def resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            unacked, self._unacked = self._unacked, 0
            self.connection.acknowledge(self.stream_id, unacked)
            self.connection.flush()
            if self.exchange is not None:
                self._set_read()

    def release(self) -> None:
        """The response is complete (the connection stays). A backend that answered before
        the request body ended gets our end of the stream too: h2 counts a half-open stream
        against the backend's concurrency limit."""
        self._finish()
        if self._reserved:  # handed out, never started (the exchange was over by then)
            self._reserved = False
            self.connection.unreserve()
            return
        if self.stream_id and not self._sent_end:
            self._sent_end = True
            connection = self.connection
            try:
                connection.h2.end_stream(self.stream_id)
            except StreamClosed:
                connection.drop(self, ErrorCodes.NO_ERROR)
            connection.flush()

    def close(self) -> None:
        """A response that cannot be reused: for a stream, the same as release."""
        self.release()

    def abort(self) -> None:
        """The exchange gave up (client gone): reset the stream."""
        if self._done:
            return
        self.exchange = None
        self._finish()
        if self._reserved:
            self._reserved = False
            self.connection.unreserve()
            return
        self.connection.drop(self, ErrorCodes.CANCEL)

    def divert(self, receiver: Any) -> None:
        raise NotImplementedError("no upgrade over an HTTP/2 backend stream")

    def write_raw(self, data: bytes) -> None:
        raise NotImplementedError("no upgrade over an HTTP/2 backend stream")

    # -- from the connection --------------------------------------------------------------

    def hold(self, held: list) -> None:
        """Cork the client until the connection's read ends (it uncorks what ``held`` lists)."""
        client = self.exchange.protocol
        client.cork()
        self.held = True
        held.append((self, client))

    def head(self, status: int, pairs: list, ended: bool = False) -> None:
        """The final response head (``h2_client`` checked it and left informational ones out)."""
        self._received_any = True
        self._head_delivered = True
        self.response_headers = pairs
        self._arm_read()
        length = None
        for name, value in pairs:
            if name == b"content-length":
                length = int(value)
        if self.exchange is None:
            return
        if ended and _is_grpc(pairs):
            # gRPC's Trailers-Only answer (an error at once): its metadata are trailers. Relayed
            # as a head and trailers, which every gRPC client reads the same way.
            head = [(name, value) for name, value in pairs if name == b"content-type"]
            self.exchange.upstream_head(self, status, head, None)
            if self.exchange is not None:
                self.exchange.upstream_trailers([(n, v) for n, v in pairs if n != b"content-type"])
            return
        self.exchange.upstream_head(self, status, pairs, length)

    def data(self, data: bytes, flow_length: int) -> None:
        self._received_any = True
        if self._read_paused:
            self._unacked += flow_length
        else:
            self.connection.acknowledge(self.stream_id, flow_length)
            self._arm_read()
        if self.exchange is not None and data:
            if self.held:  # its client is corked until the connection's read ends (``hold``)
                self.exchange.upstream_body(data)
                return
            client = self.exchange.protocol
            client.cork()
            try:
                self.exchange.upstream_body(data)
            finally:
                client.uncork()

    def trailers(self, pairs: list) -> None:
        if self.exchange is not None:
            self.exchange.upstream_trailers(pairs)

    def ended(self) -> None:
        exchange, self.exchange = self.exchange, None
        self._stop_timers()
        if exchange is None:
            return
        if not self._head_delivered:
            exchange.upstream_failed(self, UpstreamError("backend ended the stream without a response",
                                                          cause="invalid_response"))
            return
        if self.connection.tls_creator is not None:
            self.connection.tls_creator.remember(self.connection.transport)
        exchange.upstream_done(self, reusable=True)

    def reset_by_backend(self, code: int) -> None:
        refused = code == ErrorCodes.REFUSED_STREAM and not self._received_any
        self.failed(UpstreamError(f"backend reset the stream ({_code_name(code)})", retryable=refused,
                                  cause="backend_reset"))

    def refused(self) -> None:
        """The backend never processed this stream (GOAWAY, or its connection went away first)."""
        self.failed(UpstreamError("backend refused the stream (GOAWAY)", retryable=True, cause="backend_closed"))

    def lost(self, message: str) -> None:
        self.failed(UpstreamError(message + ("" if self._received_any else " before answering"),
                                  retryable=not self._received_any and not self.stream_id,
                                  cause="backend_closed"))

    def failed(self, error: UpstreamError) -> None:
        exchange, self.exchange = self.exchange, None
        self._stop_timers()
        self._done = True
        self.pending.clear()
        if exchange is not None:
            exchange.upstream_failed(self, error)

    # -- timeouts -------------------------------------------------------------------------

    def _arm_read(self) -> None:
        """The read timeout starts over (a read from the backend, at the connection's
        ``read_time``). Later than the one it replaces, it needs no new sweep: the sweep set
        for the earlier one finds it not passed and sets itself for it."""
        if not self._read_paused and not self._done and not self._timers_stopped:
            connection = self.connection
            now = connection.read_time
            if now is None:
                now = connection.read_time = connection.timers.now()
            at = now + self._read_timeout
            previous = self._read_at
            self._read_at = at
            if previous is None or at < previous:
                connection.timers.watch(self, at, self._read_timeout)

    def _set_read(self) -> None:
        if not self._timers_stopped:
            timers = self.connection.timers
            self._read_at = at = timers.now() + self._read_timeout
            timers.watch(self, at, self._read_timeout)

    def _set_send(self) -> None:
        if not self._timers_stopped:
            timers = self.connection.timers
            self._send_at = at = timers.now() + self._send_timeout
            timers.watch(self, at, self._send_timeout)

    def next_due(self) -> float:
        """When the earliest of its timeouts is due (``_NEVER``: none set)."""
        due = _NEVER
        for at in (self._read_at, self._send_at, self._grpc_at):
            if at is not None and at < due:
                due = at
        return due

    def time_passed(self, now: float) -> None:
        """The sweep: the earliest of its timeouts that passed by ``now``, if one did."""
        due, expired = _NEVER, None
        for at, expire in ((self._grpc_at, self._deadline_passed), (self._read_at, self._read_timed_out),
                           (self._send_at, self._send_timed_out)):
            if at is not None and at <= now and at < due:
                due, expired = at, expire
        if expired is not None:
            expired()

    def _read_timed_out(self) -> None:
        self._give_up(UpstreamError("backend read timeout", timeout=True, cause="read_timeout"))

    def _send_timed_out(self) -> None:
        self._give_up(UpstreamError("backend send timeout", timeout=True, cause="send_timeout"))

    def _deadline_passed(self) -> None:
        self._give_up(UpstreamError("grpc-timeout passed", timeout=True, cause="grpc_deadline"))

    def _give_up(self, error: UpstreamError) -> None:
        if self._done:
            return
        exchange = self.exchange
        self.exchange = None
        self.abort()
        if exchange is not None:
            exchange.upstream_failed(self, error)

    def _stop_timers(self) -> None:
        self._timers_stopped = True
        self._read_at = self._send_at = self._grpc_at = None
        self.connection.timers.streams.discard(self)

    def _finish(self) -> None:
        self._done = True
        self._stop_timers()
        self.pending.clear()


class _ConnectFactory(ClientFactory):
    noisy = False

    def __init__(self, pool: "H2Upstream", key: Any, scheme: bytes):
        self.pool = pool
        self.key = key
        self.scheme = scheme
        self.waiters: list[tuple[Callable, Callable]] = []
        self.connection: H2Connection | None = None
        self.failed = False
        self.tls_creator = None

    def buildProtocol(self, addr):
        connection = H2Connection(self.pool, self.key, self.scheme)
        connection.tls_creator = self.tls_creator
        connection.on_connected = self.made
        self.connection = connection
        return connection

    def made(self, connection: H2Connection) -> None:
        self.pool.connected(self, connection)

    def clientConnectionFailed(self, connector, reason) -> None:
        message = reason.getErrorMessage()
        timeout = "timeout" in message.lower() or "timed out" in message.lower()
        self.pool.connect_failed(self, UpstreamError(
            f"connect to {self.key[0]}:{self.key[1]} failed: {message}", timeout=timeout, retryable=True,
            cause="connect_timeout" if timeout else "connect_failed"))


class H2Upstream:
    """The HTTP/2 upstream protocol: per endpoint (and TLS settings), connections with many
    streams each; a new connection only when the others are full. ``tls``: GRPCS."""

    def __init__(self, clock: Any, tls: bool = False, name: str | None = None, max_streams: int = 100,
                 idle_timeout: float = 60.0):
        # gRPC streams both ways: the exchange does not hold the body. Read a request: an
        # instance value, not a class default read through the instance (unspecialised)
        self.streams_request_body = True
        self.name = name or ("GRPCS" if tls else "GRPC")
        self.tls = tls
        self.clock = clock
        self.max_streams = max_streams
        self.idle_timeout = idle_timeout
        self.connections: dict[Any, list[H2Connection]] = {}
        self._connecting: dict[Any, list[_ConnectFactory]] = {}
        self._contexts: dict = {}
        self._sessions: dict = {}
        self._sweeper = None
        self.opened = 0
        self.fields = FieldMemo()  # request header fields' encodings (``h2_request_head``)

    def acquire(self, host: str, port: int, settings: Any, on_ready: Callable, on_error: Callable) -> Callable[[], None]:
        tls = (settings.tls or _NGINX_TLS) if self.tls else None
        key = (host, port) if tls is None else (host, port, tls)
        for connection in self.connections.get(key, ()):
            # ``usable``'s test, inline (a property is a frame CPython 3.11 does not specialise)
            if connection.connected and not connection.going_away and connection.room() > 0:
                connection.reserved += 1
                on_ready(H2Stream(connection))
                return _noop
        waiter = (on_ready, on_error)
        for factory in self._connecting.get(key, ()):
            if len(factory.waiters) < self.max_streams:
                factory.waiters.append(waiter)
                return _canceller(factory, waiter)
        factory = _ConnectFactory(self, key, b"https" if tls is not None else b"http")
        factory.waiters.append(waiter)
        outer = factory
        if tls is not None:
            try:
                factory.tls_creator = self._creator(tls, key)
            except BackendTLSError as exc:
                on_error(UpstreamError(f"TLS to {host}:{port}: {exc}", cause="tls_settings"))
                return _noop
            outer = LeanTLSFactory(factory.tls_creator, True, factory)
        self._connecting.setdefault(key, []).append(factory)
        factory.connector = connect_tcp(self.clock, host, port, outer, settings.connect_timeout)
        self.opened += 1
        return _canceller(factory, waiter)

    def _creator(self, tls: BackendTLS, key: Any) -> BackendConnectionCreator:
        context = self._contexts.get(tls)
        if context is None:
            context = make_context(tls)
            context.set_alpn_protos([b"h2"])
            self._contexts[tls] = context
        return BackendConnectionCreator(tls, context, self._sessions, key)

    # -- from the connect factories and connections ---------------------------------------

    def connected(self, factory: _ConnectFactory, connection: H2Connection) -> None:
        self._done_connecting(factory)
        waiters, factory.waiters = factory.waiters, []
        if not waiters:
            connection.going_away = True  # every caller cancelled
            connection.maybe_close()
            return
        self.connections.setdefault(factory.key, []).append(connection)
        connection.reserved += len(waiters)
        for on_ready, _ in waiters:
            on_ready(H2Stream(connection))

    def connect_failed(self, factory: _ConnectFactory, error: UpstreamError) -> None:
        self._done_connecting(factory)
        waiters, factory.waiters = factory.waiters, []
        for _, on_error in waiters:
            on_error(error)

    def _done_connecting(self, factory: _ConnectFactory) -> None:
        factories = self._connecting.get(factory.key)
        if factories and factory in factories:
            factories.remove(factory)
            if not factories:
                del self._connecting[factory.key]

    def forget(self, connection: H2Connection) -> None:
        """No new streams on ``connection`` (closed or going away)."""
        connections = self.connections.get(connection.key)
        if connections and connection in connections:
            connections.remove(connection)
            if not connections:
                del self.connections[connection.key]

    def idle(self, connection: H2Connection) -> None:
        """``connection`` has no stream: closed by the sweep if it stays so ``idle_timeout``."""
        if self._sweeper is None:
            self._sweeper = self.clock.callLater(min(5.0, self.idle_timeout), self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        limit = self.clock.seconds() - self.idle_timeout
        remaining = False
        for connections in list(self.connections.values()):
            for connection in list(connections):
                if connection.streams or connection.waiting or connection.reserved:
                    continue
                if connection.idle_since < limit:
                    self.forget(connection)
                    connection.shut()
                else:
                    remaining = True
        if remaining:
            self._sweeper = self.clock.callLater(min(5.0, self.idle_timeout), self._sweep)

    def close(self) -> None:
        if self._sweeper is not None and self._sweeper.active():
            self._sweeper.cancel()
        self._sweeper = None
        for connections in list(self.connections.values()):
            for connection in list(connections):
                if not connection.streams:
                    connection.shut()
        self.connections.clear()

    def connection_count(self) -> int:
        return sum(len(c) for c in self.connections.values())


def _canceller(factory: _ConnectFactory, waiter) -> Callable[[], None]:
    def cancel() -> None:
        if waiter in factory.waiters:
            factory.waiters.remove(waiter)
    return cancel


def _is_grpc(pairs) -> bool:
    for name, value in pairs:
        if name == b"content-type":
            return value[:16].lower() == b"application/grpc"
    return False


def _code_name(code: int) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return str(code)


_NGINX_TLS = BackendTLS()


def _noop() -> None:
    pass
