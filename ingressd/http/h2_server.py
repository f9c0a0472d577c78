"""The server side of an HTTP/2 connection (RFC 9113): h2's ``H2Connection`` rules, without its objects.

``ServerConnection`` is what the client side (``http2.py``) drives: bytes in (``receive``,
returning the read's events as tuples), frames out (``send_headers``, ``send_data``,
``end_stream``, ``reset_stream``, ``acknowledge_received_data``, ``close_connection``, taken
with ``data_to_send``). It is built from the parts tested one by one against h2 and
hyperframe: ``h2_frames`` (frames cut from the stream, frames written), ``h2_windows``
(the receive windows), ``h2_settings`` (a client's SETTINGS values), ``h2_streams`` (each
stream's states), ``hpack_in`` and ``h2_request_check`` (a request block decoded and
checked), ``hpack_out`` (the response encoder).

It keeps h2's decisions, which the client-visible behaviour of ingressd was pinned with
(tests/test_h2_server.py drives whole connections through both and compares the bytes and
the events): the connection states (nothing but SETTINGS, PING, PRIORITY, WINDOW_UPDATE and
GOAWAY before the first request; nothing but GOAWAY after one), which errors close the
connection with which code (a GOAWAY, after the frames the read's earlier frames produced)
and which only reset a stream, the streams a client may open (ascending odd ids, at most
SETTINGS_MAX_CONCURRENT_STREAMS open), the closed streams it remembers (2^16, oldest
forgotten first) and how (by a reset: a late frame is answered RST_STREAM STREAM_CLOSED; by
END_STREAM: a late HEADERS is a connection error), both flow-control directions and
INITIAL_WINDOW_SIZE changes, the request's content-length against its DATA, trailers
(END_STREAM required), h2's header validation for the blocks ``request_fields`` has doubts
about, and a received GOAWAY discarding what was not written yet. A read's events are
handed back together after all its frames (as h2 does), and none of them when a frame of
the read breaks the connection.

Events: ``(REQUEST, stream_id, fields, ended)``, ``(DATA, stream_id, data, flow_length)``,
``(ENDED, stream_id)``, ``(RESET, stream_id)``, ``(WINDOW,)`` (a send window opened or the
client's settings changed), ``(TERMINATED,)`` (the client sent GOAWAY).
"""

from __future__ import annotations

from collections import OrderedDict

from hpack.exceptions import HPACKError, OversizedHeaderListError
from h2.exceptions import ProtocolError as _H2ProtocolError
from h2.utilities import HeaderValidationFlags, normalize_inbound_headers, validate_headers

from ingressd.http import h2_frames as frames
from ingressd.http.h2_frames import (
    ACK, ALTSVC, CONTINUATION, DATA as DATA_FRAME, END_STREAM, ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR, GOAWAY, HEADERS, PING, PRIORITY, PRIORITY_FLAG, PROTOCOL_ERROR, PUSH_PROMISE, REFUSED_STREAM,
    RST_STREAM, SETTINGS, STREAM_CLOSED, WINDOW_UPDATE, FrameError, FrameReader,
)
from ingressd.http.h2_request_check import request_fields
from ingressd.http.h2_settings import (
    ENABLE_CONNECT_PROTOCOL, ENABLE_PUSH, HEADER_TABLE_SIZE, INITIAL_WINDOW_SIZE, MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE, received_setting_error,
)
from ingressd.http.h2_streams import (
    CLOSED, HALF_CLOSED_LOCAL, OPEN, RECEIVED_RST_STREAM, REQUEST as REQUEST_BLOCK, SENT_RST_STREAM, StreamClosed,
    StreamProtocolError, StreamState,
)
from ingressd.http.h2_windows import LARGEST_WINDOW, FlowControlError, ReceiveWindow
from ingressd.http.hpack_in import RequestDecoder

# Events.
REQUEST = 0
DATA = 1
ENDED = 2
RESET = 3
WINDOW = 4
TERMINATED = 5

_IDLE, _OPEN, _CLOSED = 0, 1, 2  # the connection's states (h2's IDLE, SERVER_OPEN, CLOSED)
_DEFAULT_WINDOW = 65535
_MAX_CLOSED_STREAMS = 2**16  # closed streams remembered (h2's MAX_CLOSED_STREAMS)
_MAX_HEADER_LIST_SIZE = 2**16  # what h2's decoder enforces (its default: our SETTINGS are never "changed")
_REQUEST_FLAGS = HeaderValidationFlags(is_client=False, is_trailer=False, is_response_header=False,
                                       is_push_promise=False)
_TRAILER_FLAGS = HeaderValidationFlags(is_client=False, is_trailer=True, is_response_header=False,
                                       is_push_promise=False)
_BY_RESET = (SENT_RST_STREAM, RECEIVED_RST_STREAM)


class ProtocolError(Exception):
    """A rule of HTTP/2 broken: received (the connection is over; ``receive`` has queued its
    GOAWAY, with ``code``) or about to be sent (nothing was queued)."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code


class StreamClosedError(ProtocolError):
    """A frame to send on a stream that is closed or unknown."""

    def __init__(self, stream_id: int):
        super().__init__(STREAM_CLOSED, f"stream {stream_id} is closed")


class _Stream(StreamState):
    """A stream's states with its windows and the request body's length."""

    __slots__ = ("outbound", "inbound", "expected_length", "received_length")

    def __init__(self, stream_id: int, outbound: int):
        super().__init__(stream_id)
        self.outbound = outbound  # what we may still send
        self.inbound = ReceiveWindow(_DEFAULT_WINDOW)
        self.expected_length: int | None = None
        self.received_length = 0


def _informational(fields) -> bool:
    """h2's ``is_informational_response``: a ``:status`` 1xx among the leading pseudo-headers."""
    for name, value in fields:
        if name[:1] != b":":
            return False
        if name == b":status":
            return value[:1] == b"1"
    return False


def _content_length(fields) -> int | None:
    """h2's reading of a block's content-length fields (digits only, all the same)."""
    length = None
    for name, value in fields:
        if name == b"content-length":
            if not value.isdigit():
                raise ProtocolError(PROTOCOL_ERROR, f"Invalid content-length header: {value!r}")
            parsed = int(value, 10)
            if length is None:
                length = parsed
            elif parsed != length:
                raise ProtocolError(PROTOCOL_ERROR, "Conflicting content-length headers")
    return length


def _h2_checked(fields, flags: HeaderValidationFlags) -> list:
    """h2's own normalisation and validation of a block (the blocks ``request_fields`` doubts)."""
    try:
        return list(validate_headers(normalize_inbound_headers(fields, flags), flags))
    except _H2ProtocolError as exc:
        raise ProtocolError(PROTOCOL_ERROR, str(exc)) from None


class ServerConnection:
    """One client connection's HTTP/2 state (see the module). ``settings``: the SETTINGS we send
    first, as (identifier, value) pairs in h2's order; ``max_concurrent_streams`` the streams
    a client may have open; ``encoder`` the response encoder (``hpack_out.ResponseEncoder``)."""

    def __init__(self, settings, max_concurrent_streams: int, encoder,
                 new_streams_per_read: int | None = None) -> None:
        self._local_settings = tuple(settings)
        self.max_concurrent_streams = max_concurrent_streams
        # Rapid reset (CVE-2023-44487): h2 bounds the streams open at once, which a client that
        # resets each stream as it opens it never reaches. nginx also bounds the streams opened
        # in one read (2 x http2_max_concurrent_streams): the ones beyond are refused
        # (RST_STREAM REFUSED_STREAM, never handed on), their header block still decoded.
        self.new_streams_per_read = new_streams_per_read
        self._new_streams = 0
        self.encoder = encoder
        self.decoder = RequestDecoder(_MAX_HEADER_LIST_SIZE)
        self._reader = FrameReader(16384)
        self._state = _IDLE
        self.streams: dict[int, _Stream] = {}
        # closed stream id -> how it closed (h2's _closed_streams, also an OrderedDict): once full,
        # each newly closed stream drops the oldest. A dict's ``del d[next(iter(d))]`` scans the
        # deleted entries left at the front (~38 µs a stream past 65,536 on one connection).
        self._closed: OrderedDict[int, int | None] = OrderedDict()
        # Streams that may have closed since the last ``_open_count``: every change of a stream's
        # state that can close it notes the stream here (``_may_close``), so the count looks at
        # these alone, not at every stream of the connection.
        self._closing: list[int] = []
        self.highest_inbound_stream_id = 0
        self._out = bytearray()
        self.outbound_window = _DEFAULT_WINDOW  # the connection's send window
        self._inbound = ReceiveWindow(_DEFAULT_WINDOW)
        self._remote_initial_window = _DEFAULT_WINDOW
        self.remote_max_concurrent_streams = 2**32 + 1
        self.max_outbound_frame_size = 16384
        # The last request block's fields (the decoder hands a repeated block's list back as it
        # was), their checked form and content-length: what was read of them holds for a repeat.
        self._last_block: tuple = (None, None, None)
        self._dispatch = {
            DATA_FRAME: self._data, HEADERS: self._headers, PRIORITY: self._priority,
            RST_STREAM: self._rst_stream, SETTINGS: self._settings, PUSH_PROMISE: self._push_promise,
            PING: self._ping, GOAWAY: self._goaway, WINDOW_UPDATE: self._window_update,
            CONTINUATION: self._continuation, ALTSVC: self._altsvc,
        }

    # -- the connection -----------------------------------------------------------------------

    def initiate_connection(self, connection_window: int) -> None:
        """Our SETTINGS, and the connection's receive window opened to ``connection_window``."""
        self._out += frames.settings_frame(self._local_settings)
        increment = connection_window - _DEFAULT_WINDOW
        if increment > 0:
            self._inbound.opened(increment)
            self._out += frames.window_update_frame(0, increment)

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = bytes(out)
        out.clear()
        return data

    def close_connection(self, error_code: int = 0) -> None:
        self._state = _CLOSED
        self._out += frames.goaway_frame(self.highest_inbound_stream_id, error_code)

    def _open_count(self) -> int:
        """Open streams; the closed ones are moved to the closed streams' memory (as h2 does).

        h2 walks every stream for this at each new stream. Here only the streams noted in
        ``_closing`` can have closed since the last count, so only they are looked at, in
        ascending id (the walk's order: streams are added with ascending ids); every other
        stream of ``streams`` is open (a stream is added by its request's HEADERS, which opens
        it at once, or closed as it is added). Same count, same streams moved, same order."""
        closing = self._closing
        streams = self.streams
        if closing:
            self._closing = []
            closed = self._closed
            for stream_id in sorted(set(closing)) if len(closing) > 1 else closing:
                stream = streams.get(stream_id)
                if stream is not None and stream.state == CLOSED:
                    del streams[stream_id]
                    closed[stream_id] = stream.closed_by
                    if len(closed) > _MAX_CLOSED_STREAMS:
                        closed.popitem(last=False)
        return len(streams)

    def _may_close(self, stream: _Stream) -> None:
        """Note ``stream`` for the next ``_open_count`` if a change of its state closed it."""
        if stream.state == CLOSED:
            self._closing.append(stream.stream_id)

    def _closed_by(self, stream_id: int):
        stream = self.streams.get(stream_id)
        if stream is not None:
            return stream.closed_by
        return self._closed.get(stream_id)

    def _known(self, stream_id: int) -> _Stream:
        """h2's ``_get_stream_by_id`` for what we send: the stream, or StreamClosedError."""
        stream = self.streams.get(stream_id)
        if stream is None:
            raise StreamClosedError(stream_id)
        return stream

    # -- receiving ----------------------------------------------------------------------------

    def receive(self, data: bytes) -> list:
        """The events of a read, or ProtocolError (the GOAWAY queued, except for a bad preface,
        which h2 answers with nothing)."""
        reader = self._reader
        try:
            reader.feed(data)
        except FrameError as exc:
            raise ProtocolError(exc.code, str(exc)) from None
        events: list = []
        dispatch = self._dispatch
        self._new_streams = 0
        cut: list = []
        failed = None
        try:
            reader.cut(cut)  # the read's frames in one call; a broken one's error after those before it
        except FrameError as exc:
            failed = exc
        try:
            for frame in cut:
                handler = dispatch.get(frame.type)
                if handler is not None:
                    handler(frame, events)
            if failed is not None:
                raise failed
        except FrameError as exc:
            self._terminate(exc.code)
            raise ProtocolError(exc.code, str(exc)) from None
        except ProtocolError as exc:
            self._terminate(exc.code)
            raise
        return events

    def _terminate(self, code: int) -> None:
        self._state = _CLOSED
        self._out += frames.goaway_frame(self.highest_inbound_stream_id, code)

    def _frame_in(self, allowed_idle: bool) -> None:
        """The connection's state for a received frame (h2's connection state machine)."""
        state = self._state
        if state == _CLOSED or (state == _IDLE and not allowed_idle):
            self._state = _CLOSED
            raise ProtocolError(PROTOCOL_ERROR, "frame not allowed in this connection state")

    def _decode(self, block: bytes) -> list:
        try:
            return self.decoder.decode(block, raw=True)
        except OversizedHeaderListError as exc:
            raise ProtocolError(ENHANCE_YOUR_CALM, f"Oversized header block: {exc}") from None
        except (HPACKError, IndexError, TypeError, UnicodeDecodeError) as exc:
            raise ProtocolError(PROTOCOL_ERROR, f"Error decoding header block: {exc}") from None

    def _closed_stream_frame(self, stream_id: int, events: list, reset_event: bool) -> None:
        """A frame on a closed stream (h2's StreamClosedError in ``_receive_frame``): answered
        RST_STREAM STREAM_CLOSED if a reset closed it, else a connection error STREAM_CLOSED."""
        if self._closed_by(stream_id) in _BY_RESET:
            self._out += frames.rst_stream_frame(stream_id, STREAM_CLOSED)
            if reset_event:
                events.append((RESET, stream_id))
            return
        raise ProtocolError(STREAM_CLOSED, f"stream {stream_id} is closed")

    def _headers(self, frame, events: list) -> None:
        stream_id = frame.stream_id
        stream = self.streams.get(stream_id)
        if stream is None and self._open_count() + 1 > self.max_concurrent_streams:
            raise ProtocolError(PROTOCOL_ERROR, f"Max inbound streams is {self.max_concurrent_streams}")
        fields = self._decode(frame.data)
        if self._state != _OPEN:
            self._frame_in(True)
            self._state = _OPEN
        if stream is None:
            if stream_id <= self.highest_inbound_stream_id:
                closed_by = self._closed_by(stream_id)
                if closed_by in _BY_RESET:
                    self._out += frames.rst_stream_frame(stream_id, STREAM_CLOSED)
                    return
                if closed_by is not None:
                    raise ProtocolError(STREAM_CLOSED, f"stream {stream_id} is closed")
                raise ProtocolError(PROTOCOL_ERROR, f"stream id {stream_id} too low")
            if not stream_id % 2:
                raise ProtocolError(PROTOCOL_ERROR, "Invalid stream ID for peer.")
            stream = _Stream(stream_id, self._remote_initial_window)
            self.streams[stream_id] = stream
            self.highest_inbound_stream_id = stream_id
            self._new_streams += 1
            limit = self.new_streams_per_read
            if limit is not None and self._new_streams > limit:
                stream.state = CLOSED  # as if we had reset it: later frames on it meet STREAM_CLOSED
                stream.closed_by = SENT_RST_STREAM
                self._closing.append(stream_id)
                self._out += frames.rst_stream_frame(stream_id, REFUSED_STREAM)
                return
        ended = bool(frame.flags & END_STREAM)
        last_fields, checked, expected_length = self._last_block
        repeat = fields is last_fields  # (not informational: a remembered block passed that check)
        if not repeat and _informational(fields):
            stream.state = CLOSED
            self._closing.append(stream_id)
            raise ProtocolError(PROTOCOL_ERROR, "informational headers from a client")
        try:
            kind = stream.received_headers()
            if ended:
                stream.received_end_stream()
        except StreamClosed as closed:
            self._may_close(stream)
            self._closed_stream_frame(stream_id, events, closed.reset)
            return
        except StreamProtocolError as exc:
            self._may_close(stream)
            raise ProtocolError(PROTOCOL_ERROR, str(exc)) from None
        if ended and stream.state == CLOSED:
            self._closing.append(stream_id)
        stream.expected_length = expected_length if repeat else _content_length(fields)
        if kind == REQUEST_BLOCK:
            if not repeat:
                checked = request_fields(fields)
                self._last_block = (fields, checked, stream.expected_length)
            if checked is None:
                checked = _h2_checked(fields, _REQUEST_FLAGS)
            events.append((REQUEST, stream_id, checked, ended))
        else:
            if not ended:
                raise ProtocolError(PROTOCOL_ERROR, "Trailers must have END_STREAM set")
            _h2_checked(fields, _TRAILER_FLAGS)
        if ended:
            events.append((ENDED, stream_id))
        if frame.flags & PRIORITY_FLAG and frame.depends_on == stream_id:
            raise ProtocolError(PROTOCOL_ERROR, f"Stream {stream_id} may not depend on itself")

    def _data(self, frame, events: list) -> None:
        if self._state != _OPEN:
            self._frame_in(False)
        length = frame.length
        try:
            self._inbound.consumed(length)
        except FlowControlError as exc:
            raise ProtocolError(FLOW_CONTROL_ERROR, str(exc)) from None
        stream_id = frame.stream_id
        stream = self.streams.get(stream_id)
        if stream is None:
            if not stream_id % 2 or stream_id > self.highest_inbound_stream_id:
                raise ProtocolError(PROTOCOL_ERROR, f"DATA on unknown stream {stream_id}")
            self._data_on_closed(stream_id, length)
            return
        try:
            stream.received_data()
        except StreamClosed as closed:
            self._may_close(stream)
            self._data_on_closed(stream_id, length)
            if closed.reset:
                events.append((RESET, stream_id))
            return
        try:
            stream.inbound.consumed(length)
        except FlowControlError as exc:
            raise ProtocolError(FLOW_CONTROL_ERROR, str(exc)) from None
        data = frame.data
        ended = frame.flags & END_STREAM
        received = stream.received_length = stream.received_length + len(data)
        expected = stream.expected_length
        if expected is not None and (expected < received or (ended and expected != received)):
            raise ProtocolError(PROTOCOL_ERROR, f"body of {received} bytes, content-length {expected}")
        if ended:
            try:
                stream.received_end_stream()
            except StreamProtocolError as exc:
                raise ProtocolError(PROTOCOL_ERROR, str(exc)) from None
            finally:
                if stream.state == CLOSED:
                    self._closing.append(stream_id)
        events.append((DATA, stream_id, data, length))
        if ended:
            events.append((ENDED, stream_id))

    def _data_on_closed(self, stream_id: int, length: int) -> None:
        increment = self._inbound.processed(length)
        if increment:
            self._out += frames.window_update_frame(0, increment)
        self._out += frames.rst_stream_frame(stream_id, STREAM_CLOSED)

    def _window_update(self, frame, events: list) -> None:
        if self._state != _OPEN:  # (an open connection takes it: no call)
            self._frame_in(True)
        stream_id = frame.stream_id
        increment = frame.value
        if not stream_id:
            window = self.outbound_window + increment
            if window > LARGEST_WINDOW:
                raise ProtocolError(FLOW_CONTROL_ERROR, "Flow control window mustn't exceed 2**31 - 1")
            self.outbound_window = window
            events.append((WINDOW,))
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            if not stream_id % 2 or stream_id > self.highest_inbound_stream_id:
                raise ProtocolError(PROTOCOL_ERROR, f"WINDOW_UPDATE on unknown stream {stream_id}")
            return  # a closed stream's: ignored
        if stream.state == CLOSED:
            return
        window = stream.outbound + increment
        if window > LARGEST_WINDOW:  # the stream's error, not the connection's
            stream.state = CLOSED
            stream.closed_by = SENT_RST_STREAM
            self._closing.append(stream_id)
            self._out += frames.rst_stream_frame(stream_id, FLOW_CONTROL_ERROR)
            events.append((RESET, stream_id))
            return
        stream.outbound = window
        events.append((WINDOW,))

    def _settings(self, frame, events: list) -> None:
        self._frame_in(True)
        if frame.flags & ACK:
            return  # our settings were in force from the start: nothing changes
        received = dict(frame.settings)  # a repeated identifier: the last value
        for identifier, value in received.items():
            code = received_setting_error(identifier, value)
            if code:
                raise ProtocolError(code, f"Setting {identifier} has invalid value {value}")
        for identifier, value in received.items():
            if identifier == INITIAL_WINDOW_SIZE:
                delta = value - self._remote_initial_window
                self._remote_initial_window = value
                for stream in self.streams.values():
                    window = stream.outbound + delta
                    if window > LARGEST_WINDOW:
                        raise ProtocolError(FLOW_CONTROL_ERROR, "Flow control window mustn't exceed 2**31 - 1")
                    stream.outbound = window
            elif identifier == HEADER_TABLE_SIZE:
                self.encoder.header_table_size = value
            elif identifier == MAX_FRAME_SIZE:
                self.max_outbound_frame_size = value
            elif identifier == MAX_CONCURRENT_STREAMS:
                self.remote_max_concurrent_streams = value
        self._out += frames.SETTINGS_ACK
        events.append((WINDOW,))

    def _ping(self, frame, events: list) -> None:
        self._frame_in(True)
        if not frame.flags & ACK:
            self._out += frames.ping_ack(frame.data)

    def _rst_stream(self, frame, events: list) -> None:
        self._frame_in(False)
        stream = self.streams.get(frame.stream_id)
        if stream is None or stream.state == CLOSED:
            return
        try:
            stream.received_reset()
        finally:
            self._closing.append(frame.stream_id)
        events.append((RESET, frame.stream_id))

    def _priority(self, frame, events: list) -> None:
        self._frame_in(True)
        if frame.depends_on == frame.stream_id:
            raise ProtocolError(PROTOCOL_ERROR, f"Stream {frame.stream_id} may not depend on itself")

    def _goaway(self, frame, events: list) -> None:
        self._state = _CLOSED
        self._out.clear()  # as h2: what was not written yet is dropped
        events.append((TERMINATED,))

    def _continuation(self, frame, events: list) -> None:
        stream_id = frame.stream_id
        if stream_id in self.streams or not stream_id % 2 or stream_id > self.highest_inbound_stream_id:
            raise ProtocolError(PROTOCOL_ERROR, "Received unexpected CONTINUATION frame")
        self._closed_stream_frame(stream_id, events, False)

    def _altsvc(self, frame, events: list) -> None:
        self._frame_in(True)
        self._state = _OPEN  # h2 counts it as the connection's opening (and ignores it on a server)

    def _push_promise(self, frame, events: list) -> None:
        raise ProtocolError(PROTOCOL_ERROR, "Received pushed stream")

    # -- sending ------------------------------------------------------------------------------

    def _frame_out(self, allowed_idle: bool) -> None:
        state = self._state
        if state == _CLOSED or (state == _IDLE and not allowed_idle):
            self._state = _CLOSED
            raise ProtocolError(PROTOCOL_ERROR, "cannot send in this connection state")

    def send_headers(self, stream_id: int, fields, end_stream: bool = False) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            if self._open_count_outbound() + 1 > self.remote_max_concurrent_streams:
                raise ProtocolError(PROTOCOL_ERROR, "Max outbound streams reached")
            self._frame_out(True)
            self._state = _OPEN
            raise ProtocolError(PROTOCOL_ERROR, "Invalid stream ID for peer.")
        if self._state != _OPEN:
            self._frame_out(True)
            self._state = _OPEN
        informational = _informational(fields)
        try:
            if informational:
                if end_stream:
                    raise ProtocolError(PROTOCOL_ERROR, "Cannot set END_STREAM on informational responses.")
                stream.sent_informational()
            else:
                stream.sent_headers()
            block = self.encoder.encode(fields)
            out = frames.headers_frames(stream_id, block, end_stream, self.max_outbound_frame_size)
            if end_stream:
                stream.sent_end_stream()
            elif stream.trailers_sent:
                raise ProtocolError(PROTOCOL_ERROR, "Trailers must have END_STREAM set.")
        except StreamClosed:
            raise StreamClosedError(stream_id) from None
        except StreamProtocolError as exc:
            raise ProtocolError(PROTOCOL_ERROR, str(exc)) from None
        finally:
            if stream.state == CLOSED:
                self._closing.append(stream_id)
        self._out += out

    def _open_count_outbound(self) -> int:
        self._open_count()  # h2 counts its own streams here, and forgets the closed ones on the way
        return 0

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        size = len(data)
        stream = self.streams.get(stream_id)
        if size:
            if stream is None:
                raise StreamClosedError(stream_id)
            window = stream.outbound if stream.outbound < self.outbound_window else self.outbound_window
            if size > window:
                raise ProtocolError(FLOW_CONTROL_ERROR, f"Cannot send {size} bytes, flow control window is {window}")
        if size > self.max_outbound_frame_size:
            raise ProtocolError(FRAME_SIZE_ERROR, f"Cannot send frame size {size}")
        if self._state != _OPEN:
            self._frame_out(False)
        if stream is None:
            raise StreamClosedError(stream_id)
        try:
            stream.sent_data()
            if end_stream:
                stream.sent_end_stream()
        except StreamClosed:
            raise StreamClosedError(stream_id) from None
        except StreamProtocolError as exc:
            raise ProtocolError(PROTOCOL_ERROR, str(exc)) from None
        finally:
            if stream.state == CLOSED:
                self._closing.append(stream_id)
        stream.outbound -= size
        self.outbound_window -= size
        self._out += frames.data_frame(stream_id, data, end_stream)

    def end_stream(self, stream_id: int) -> None:
        self._frame_out(False)
        stream = self._known(stream_id)
        try:
            stream.sent_end_stream()
        except StreamClosed:
            raise StreamClosedError(stream_id) from None
        except StreamProtocolError as exc:
            raise ProtocolError(PROTOCOL_ERROR, str(exc)) from None
        finally:
            self._may_close(stream)
        self._out += frames.data_frame(stream_id, b"", True)

    def reset_stream(self, stream_id: int, error_code: int = 0) -> None:
        self._frame_out(False)
        stream = self._known(stream_id)
        try:
            stream.sent_reset()
        except StreamClosed:
            raise StreamClosedError(stream_id) from None
        except StreamProtocolError as exc:
            raise ProtocolError(PROTOCOL_ERROR, str(exc)) from None
        finally:
            self._may_close(stream)
        self._out += frames.rst_stream_frame(stream_id, int(error_code))

    def local_flow_control_window(self, stream_id: int) -> int:
        """What may be sent on the stream now: the smaller of its window and the connection's."""
        stream = self._known(stream_id)
        window = self.outbound_window
        return stream.outbound if stream.outbound < window else window

    def acknowledge_received_data(self, size: int, stream_id: int) -> None:
        """``size`` bytes of the stream's DATA were handed on: WINDOW_UPDATEs as h2 sends them."""
        increment = self._inbound.processed(size)
        stream = self.streams.get(stream_id)
        if stream is None and (not stream_id % 2 or stream_id > self.highest_inbound_stream_id):
            raise ProtocolError(PROTOCOL_ERROR, f"unknown stream {stream_id}")  # h2 drops the update too
        if increment:
            self._out += frames.window_update_frame(0, increment)
        if stream is not None and OPEN <= stream.state <= HALF_CLOSED_LOCAL:
            increment = stream.inbound.processed(size)
            if increment:
                self._out += frames.window_update_frame(stream_id, increment)


def local_settings(max_concurrent_streams: int, max_header_list_size: int, enable_connect_protocol: bool):
    """The SETTINGS a server sends first, in the order h2 sent them."""
    return (
        (HEADER_TABLE_SIZE, 4096), (ENABLE_PUSH, 0), (INITIAL_WINDOW_SIZE, _DEFAULT_WINDOW),
        (MAX_FRAME_SIZE, 16384), (ENABLE_CONNECT_PROTOCOL, int(enable_connect_protocol)),
        (MAX_CONCURRENT_STREAMS, max_concurrent_streams), (MAX_HEADER_LIST_SIZE, max_header_list_size),
    )
