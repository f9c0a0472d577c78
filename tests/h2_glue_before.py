"""The client side's HTTP/2 glue as it was before ``ingressd/http/h2_server.py`` replaced h2's
``H2Connection`` (commit a588a0c's ``ingressd/http/http2.py``): ``tests/test_h2_server.py``
drives the same bytes through it and through the current glue and compares what they write and
what their exchanges receive; ``tests/test_h2_request_check.py`` uses ``CheckingDecoder``, how
``request_fields`` was applied on h2's connection. Not used by ingressd.

Only what changed since is kept here: ``_Stream`` and ``H2ServerProtocol`` are the current
classes with the methods that changed put back as they were (the connection on h2's
``H2Connection`` and its events); the rest (the request and response fields, the stream's
writes and flow of response data, the producer and the drain) was the same text and is
inherited, with the module's helpers and constants imported from ``ingressd.http.http2``.
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
from h2.stream import StreamState
from hyperframe.frame import GoAwayFrame
from twisted.python import log

from ingressd.drain import ConnectionSet
from ingressd.http import http2
from ingressd.http.h2_request_check import request_fields
from ingressd.http.head_buffers import fits_h2
from ingressd.http.hpack_in import RequestDecoder
from ingressd.http.hpack_out import ResponseEncoder
from ingressd.http.http1 import ServerSettings, addresses, other_ends
from ingressd.http.http2 import (_CONNECTION_WINDOW, _DRAIN_LIMIT, _STREAM_WINDOW, H2Request, _known_of, _Reject,
                                 _request_from)

_SENDING = (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL)  # a HEADERS frame here is trailers


class CheckingDecoder(RequestDecoder):
    """The client side's HPACK decoder on an ``H2Connection``: after each block, says whether
    h2 must still check it. h2 decodes a header block and then, for the same frame, checks it
    if its configuration says so; this tells the configuration, block by block, whether h2's
    own check is still needed (``request_fields`` decided it in one pass). The check is a
    request block's, so it is skipped only when the block cannot be trailers: no stream of the
    connection may still send (open or half-closed (local))."""

    def __init__(self, connection) -> None:
        super().__init__(connection.decoder.max_header_list_size)
        self._connection = connection
        self._config = connection.config
        self._last: tuple[list | None, list | None] = (None, None)  # a block's fields, their verdict

    def decode(self, data: bytes, raw: bool = False) -> list:
        fields = super().decode(data, raw)
        if raw and not self._trailers_possible():
            last_fields, checked = self._last
            if fields is not last_fields:  # the decoder hands a repeated block's list back as it was
                checked = request_fields(fields)
                self._last = (fields, checked)
        else:
            checked = None
        h2_checks = checked is None
        config = self._config
        config.validate_inbound_headers = h2_checks
        config.normalize_inbound_headers = h2_checks
        return fields if h2_checks else checked

    def _trailers_possible(self) -> bool:
        for stream in self._connection.streams.values():
            if stream.state_machine.state in _SENDING:
                return True
        return False


class _Stream(http2._Stream):
    """One HTTP/2 stream as the glue of commit a588a0c had it: ``http2._Stream`` with the methods
    that changed since put back as they were."""

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
        self.remote_ended = False  # the client sent END_STREAM
        self._draining: int | None = None  # bytes dropped after an early answer
        self._receiver = None  # a class default then; http2._Stream's methods read it from the stream now

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
        if self._receiver is not None:
            if data:
                self._receiver.client_data(data)
        elif exchange is not None and data:
            exchange.body_data(data)

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

    def abort(self) -> None:
        """The response cannot be completed: reset the stream, so the client sees an error."""
        self.exchange = None
        self.reset(ErrorCodes.INTERNAL_ERROR)

    def _stop_draining(self) -> None:
        self._cancel_timer()
        self.connection.forget(self)
        self.connection.h2_reset(self.stream_id, ErrorCodes.NO_ERROR)

    def reset(self, code: ErrorCodes) -> None:
        if self.closed:
            return
        self.closed = True
        self._out.clear()
        self.connection.reset_stream(self)
        self.connection.h2_reset(self.stream_id, code)
        self.lost()

    def _tunnel_client_ended(self) -> None:
        """END_STREAM from the client of a WebSocket stream: its side is closed (a FIN). The
        tunnel closes both; before the backend's 101 the request is abandoned (499)."""
        receiver, self._receiver = self._receiver, None
        receiver.client_lost()
        if self.exchange is receiver:
            self.exchange = None
        if not self._ending and not self.closed:
            self.reset(ErrorCodes.CANCEL)  # not answered yet: nothing else to say
        self._maybe_forget()


class H2ServerProtocol(http2.H2ServerProtocol):
    """One HTTP/2 client connection on h2's ``H2Connection``, as the glue of commit a588a0c had
    it: ``http2.H2ServerProtocol`` with the methods that changed since put back as they were."""

    def __init__(self, settings: ServerSettings, handler: Callable, clock: Any, scheme: str = "https",
                 websocket: bool = True):
        self.settings = settings
        self.websocket = websocket  # RFC 8441 offered (SETTINGS_ENABLE_CONNECT_PROTOCOL)
        self.handler = handler
        self.clock = clock
        self.scheme = scheme
        # What h2 checks of the blocks we send, _response_fields does in one pass; what clients
        # send, h2 validates (CheckingDecoder: in one pass for a request block that passes).
        config = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                           validate_inbound_headers=True, normalize_inbound_headers=True,
                                           validate_outbound_headers=False, normalize_outbound_headers=False)
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.encoder = ResponseEncoder()  # nginx's HPACK: no dynamic table, fields memoised
        # hpack's decoder in one loop, and h2's checks of a request block in one pass when it passes them
        self.h2.decoder = CheckingDecoder(self.h2)
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
        self._group: ConnectionSet | None = None

    def connectionMade(self) -> None:
        self.peer_ip, self.server_port = addresses(self.transport)
        self.peer_port, self.server_ip = other_ends(self.transport)
        self.transport.registerProducer(self, True)
        self._registered = True
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.settings.http2_max_concurrent_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
                # what large_client_header_buffers lets through (fits_h2), with RFC 7541's 32 per field
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE:
                    self.settings.max_header_bytes + 32 * self.settings.max_headers,
                h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: int(self.websocket),  # RFC 8441
            },
        )
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(_CONNECTION_WINDOW - 65535)
        self.flush()
        self._idle(self.settings.header_timeout)
        self._group = getattr(self.factory, "live", None)
        if self._group is not None:
            self._group.add(self)

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
        goaway = GoAwayFrame(0)
        goaway.last_stream_id = self._last_stream
        goaway.error_code = ErrorCodes.NO_ERROR
        self._write_out()
        self.transport.write(goaway.serialize())
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
            self.h2_reset(stream.stream_id, ErrorCodes.CANCEL)
            stream.lost()
        if not self.closed:
            self._write_out()
            self._unregister()  # TLS waits for producers before closing
            self.transport.loseConnection()
            self.closed = True

    def _events(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            log.msg(f"ingressd: HTTP/2 protocol error from {self.peer_ip}: {exc}")
            self._write_out()
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

    def _request(self, event: h2.events.RequestReceived) -> None:
        if self._last_stream is not None and event.stream_id > self._last_stream:
            self.h2_reset(event.stream_id, ErrorCodes.REFUSED_STREAM)  # after our GOAWAY
            return
        if not fits_h2(event.headers, *self.settings.header_buffers):
            # nginx: "client sent too large header field" / "too large header": the connection ends
            log.msg(f"ingressd: HTTP/2 header block beyond large_client_header_buffers from {self.peer_ip}")
            self.h2.close_connection(error_code=ErrorCodes.ENHANCE_YOUR_CALM)
            self._write_out()
            self._unregister()  # TLS waits for producers before closing
            self.transport.loseConnection()
            self.closed = True
            return
        stream = _Stream(self, event.stream_id)
        self.streams[event.stream_id] = stream
        self._cancel_timer()
        self._requests += 1
        limit = self.settings.keepalive_requests
        if limit and self._requests >= limit:
            self._go_away()  # this stream is still answered; the client opens a new connection
        ended = event.stream_ended is not None
        stream.remote_ended = ended
        try:
            request = _request_from(event.headers, self.settings, ended)
        except _Reject as rejected:
            stream.respond(rejected.status, _known_of(event.headers))
            return
        if request.websocket_key is not None and not self.websocket:
            stream.respond(400, request)  # not offered: as nginx, which knows no :protocol
            return
        stream.request = request
        if not ended and request.websocket_key is None:  # a tunnel's DATA is no request body
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
            if request.websocket_key is not None:
                exchange.wants_tunnel()  # it takes the DATA until the backend's 101

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

    def _send_stream(self, stream: _Stream) -> None:
        if self.closed or self.transport_paused:
            return
        try:
            finished = stream.send_pending()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            finished = True
            stream.lost()
        if finished:
            self.forget(stream)

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
