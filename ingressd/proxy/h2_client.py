"""The client side of an HTTP/2 connection to a backend (RFC 9113), sans-IO: ``h2``'s
``H2Connection`` in its place on ``proxy/h2_upstream.py``'s connections, doing only what a
proxy's client needs.

Bytes in (``receive_data``) become a list of events, tuples whose first item says what happened:
``(RESPONSE, stream, status, fields, ended)``, ``(DATA, stream, data, flow_length)``, ``(TRAILERS,
stream, fields)``, ``(ENDED, stream)``, ``(RESET, stream, code)``, ``(GOAWAY, last_stream,
code)`` and ``(WINDOW,)`` (a send window opened or the backend's settings changed: at most one
per ``receive_data``, last). Fields are the regular ones (no pseudo-header), as ``h2_response_check``
leaves them. What to send accumulates for ``data_to_send``.

- Frames are cut and parsed by ``http/h2_frames.FrameReader`` (client side: no preface to
  check), header blocks decoded by ``http/hpack_in.RequestDecoder`` (an HPACK decoder; the
  backend's dynamic table) and checked by ``h2_response_check`` as h2 checks them (a block
  repeated as the last one, the decoder's same list, once).
- Request header blocks come encoded (``h2_request_head``: no dynamic table, so the backend's
  SETTINGS_HEADER_TABLE_SIZE does not matter to them), framed to the backend's frame size.
- Flow control: what the backend sends is counted against a ``ReceiveWindow`` per stream
  and one for the connection, reopened as the caller acknowledges it (``h2``'s policy);
  what we send is held to the backend's windows (SETTINGS_INITIAL_WINDOW_SIZE, its
  WINDOW_UPDATEs); ``local_flow_control_window`` says how much a stream may send now.
- Streams: odd ids in order; at most the backend's SETTINGS_MAX_CONCURRENT_STREAMS open
  (``TooManyStreams``); a stream is closed when both sides ended it or either reset it.
- A GOAWAY is an event, not the end: the streams at or below its last-stream-id go on.
- PINGs are answered, SETTINGS acknowledged, PRIORITY, ALTSVC and unknown frames ignored.
- A connection error raises ``H2ClientError`` with its code, a GOAWAY with that code queued
  (what h2 does); the connection is of no further use.

Where it differs from h2 (a backend that breaks the protocol): a HEADERS or DATA frame on a
stream the backend had ended is a stream error (RST_STREAM STREAM_CLOSED, the stream closed)
here, as on a reset stream, where h2 makes it a connection error; a ``:status`` that is not
three digits is a connection error (h2 passes it on; ``int()`` of it then failed here).
"""

from __future__ import annotations

from hpack.exceptions import HPACKError, OversizedHeaderListError

from ingressd.http import h2_frames as frames
from ingressd.http.h2_frames import FrameError, FrameReader
from ingressd.http.h2_windows import LARGEST_WINDOW, FlowControlError, ReceiveWindow
from ingressd.http.hpack_in import RequestDecoder
from ingressd.proxy.h2_response_check import MalformedHeaders, content_length, response_fields, trailer_fields

RESPONSE, DATA, TRAILERS, ENDED, RESET, GOAWAY, WINDOW = range(1, 8)
WINDOW_OPENED = (WINDOW,)

_PREFACE = frames.PREFACE
_DEFAULT_WINDOW = 65535
_HEADER_TABLE_SIZE, _ENABLE_PUSH, _MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
_INITIAL_WINDOW_SIZE, _MAX_FRAME_SIZE, _ENABLE_CONNECT_PROTOCOL = 0x4, 0x5, 0x8


class H2ClientError(Exception):
    """A connection error (RFC 9113 5.4.1): ``code`` is the one the GOAWAY carries."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code


class StreamClosed(Exception):
    """Sending on a stream that is not open (any more) on our side."""


class TooManyStreams(Exception):
    """The backend's SETTINGS_MAX_CONCURRENT_STREAMS are open."""


class _Stream:
    """One stream's state: what each side has done, the windows, the body's length."""

    __slots__ = ("stream_id", "send_window", "receive", "local_ended", "remote_ended", "head_seen",
                 "expected_length", "received_length", "no_body")

    def __init__(self, stream_id: int, send_window: int, receive_window: int, end_stream: bool, no_body: bool):
        self.stream_id = stream_id
        self.send_window = send_window
        self.receive = ReceiveWindow(receive_window)
        self.local_ended = end_stream
        self.remote_ended = False
        self.head_seen = False  # a final (not 1xx) response head came
        self.expected_length: int | None = None
        self.received_length = 0
        self.no_body = no_body  # a HEAD request: the response has no body whatever it says


class ClientConnection:
    """One HTTP/2 connection's client side (see the module)."""

    def __init__(self, settings: tuple[tuple[int, int], ...], connection_window: int):
        self._local_settings = settings  # what we send; applied at once (our SETTINGS precede any stream)
        local = dict(settings)
        self._stream_window = local.get(_INITIAL_WINDOW_SIZE, _DEFAULT_WINDOW)
        self._connection_window = connection_window
        self._reader = FrameReader(server=False)
        self._decoder = RequestDecoder()
        # The last response head block and trailer block read: the decoder hands a repeated
        # block's list back as it was (a backend answers every call alike), and what was read of
        # it holds: (fields, status, regular fields, content-length) and (fields, trailer fields).
        self._last_head: tuple = (None, 0, (), None)
        self._last_trailers: tuple = (None, ())
        self._out: list[bytes] = []
        self._streams: dict[int, _Stream] = {}
        self._next_id = 1
        self._receive = ReceiveWindow(_DEFAULT_WINDOW)
        self.send_window = _DEFAULT_WINDOW  # the connection's, toward the backend
        self.max_concurrent_streams = 2**31 - 1  # the backend's (unlimited until it says)
        self.max_outbound_frame_size = 16384
        self._initial_send_window = _DEFAULT_WINDOW  # the backend's SETTINGS_INITIAL_WINDOW_SIZE
        self.terminated = False
        self._window_opened = False  # in this ``receive_data``

    # -- the start and the end ------------------------------------------------------------------

    def initiate_connection(self) -> None:
        """The preface, our SETTINGS, and the connection window opened to its size."""
        self._out.append(_PREFACE + frames.settings_frame(self._local_settings))
        increment = self._connection_window - _DEFAULT_WINDOW
        if increment > 0:
            self._receive.opened(increment)
            self._out.append(frames.window_update_frame(0, increment))

    def close_connection(self, code: int = frames.NO_ERROR) -> None:
        """A GOAWAY (we opened every stream: nothing of the backend's was processed)."""
        if not self.terminated:
            self.terminated = True
            self._out.append(frames.goaway_frame(0, code))

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    # -- streams ------------------------------------------------------------------------------

    @property
    def open_outbound_streams(self) -> int:
        return len(self._streams)

    def get_next_available_stream_id(self) -> int:
        return self._next_id

    def send_headers(self, stream_id: int, block: bytes, end_stream: bool, head_request: bool = False) -> None:
        """Open ``stream_id`` (the next id) with the encoded header ``block``."""
        if self.terminated:
            raise StreamClosed("the connection is closed")
        if len(self._streams) >= self.max_concurrent_streams:
            raise TooManyStreams(f"{len(self._streams)} streams open, the backend's limit")
        if stream_id != self._next_id:
            raise ValueError(f"stream {stream_id} is not the next one ({self._next_id})")
        self._next_id = stream_id + 2
        self._streams[stream_id] = _Stream(stream_id, self._initial_send_window, self._stream_window,
                                           end_stream, head_request)
        self._out.append(frames.headers_frames(stream_id, block, end_stream, self.max_outbound_frame_size))

    def local_flow_control_window(self, stream_id: int) -> int:
        """How many bytes ``stream_id`` may send now (both windows)."""
        stream = self._open_stream(stream_id)
        return min(stream.send_window, self.send_window)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """One DATA frame: ``data`` within the windows and the backend's frame size."""
        stream = self._open_stream(stream_id)
        if stream.local_ended:
            raise StreamClosed(f"stream {stream_id} already ended")
        size = len(data)
        if size > min(stream.send_window, self.send_window) or size > self.max_outbound_frame_size:
            raise ValueError(f"{size} bytes do not fit the window or the frame size")
        stream.send_window -= size
        self.send_window -= size
        self._out.append(frames.data_frame(stream_id, data, end_stream))
        if end_stream:
            self._ended_locally(stream)

    def end_stream(self, stream_id: int) -> None:
        stream = self._open_stream(stream_id)
        if stream.local_ended:
            raise StreamClosed(f"stream {stream_id} already ended")
        self._out.append(frames.data_frame(stream_id, b"", True))
        self._ended_locally(stream)

    def reset_stream(self, stream_id: int, code: int) -> None:
        """RST_STREAM on an open stream (nothing when it is closed already)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        self._out.append(frames.rst_stream_frame(stream_id, code))
        self._close(stream)

    def acknowledge_received_data(self, length: int, stream_id: int) -> None:
        """``length`` flow-controlled bytes of ``stream_id`` were handed on: WINDOW_UPDATEs
        when the windows' policy says so (the stream's while it is open or half closed, as h2)."""
        increment = self._receive.processed(length)
        if increment:
            self._out.append(frames.window_update_frame(0, increment))
        stream = self._streams.get(stream_id)
        if stream is not None:
            increment = stream.receive.processed(length)
            if increment:
                self._out.append(frames.window_update_frame(stream_id, increment))

    def _open_stream(self, stream_id: int) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            raise StreamClosed(f"stream {stream_id} is not open")
        return stream

    def _ended_locally(self, stream: _Stream) -> None:
        stream.local_ended = True
        if stream.remote_ended:
            self._close(stream)

    def _close(self, stream: _Stream) -> None:
        del self._streams[stream.stream_id]

    # -- incoming -----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list:
        """The events of the frames ``data`` completes; ``H2ClientError`` on a connection error
        (the events before it are lost, as with h2: the connection is over)."""
        if self.terminated:
            return []
        events: list = []
        try:
            reader = self._reader
            reader.feed(data)
            cut: list = []
            failed = None
            try:
                reader.cut(cut)  # the read's frames in one call; a broken one's error after those before it
            except FrameError as exc:
                failed = exc
            for frame in cut:
                self._frame(frame, events)
            if failed is not None:
                raise failed
            if self._window_opened:
                self._window_opened = False
                events.append(WINDOW_OPENED)
        except FrameError as exc:
            raise self._terminate(exc.code, str(exc)) from None
        except FlowControlError as exc:
            raise self._terminate(frames.FLOW_CONTROL_ERROR, str(exc)) from None
        except MalformedHeaders as exc:
            raise self._terminate(frames.PROTOCOL_ERROR, str(exc)) from None
        return events

    def _terminate(self, code: int, reason: str) -> H2ClientError:
        self.close_connection(code)
        return H2ClientError(code, reason)

    def _frame(self, frame, events: list) -> None:
        kind = frame.type
        if kind == frames.DATA:
            self._data(frame, events)
        elif kind == frames.HEADERS:
            self._headers(frame, events)
        elif kind == frames.WINDOW_UPDATE:
            self._window_update(frame, events)
        elif kind == frames.SETTINGS:
            if not frame.flags & frames.ACK:
                self._settings(frame.settings, events)
        elif kind == frames.RST_STREAM:
            stream = self._streams.get(frame.stream_id)
            if stream is not None:  # else on a closed stream, or (h2 lets it pass too) an idle one
                self._close(stream)
                events.append((RESET, frame.stream_id, frame.value))
        elif kind == frames.PING:
            if not frame.flags & frames.ACK:
                self._out.append(frames.ping_ack(frame.data))
        elif kind == frames.GOAWAY:
            events.append((GOAWAY, frame.last_stream_id & 0x7FFFFFFF, frame.value))
        elif kind == frames.CONTINUATION:  # the reader joins a block's: this one follows none
            raise FrameError(frames.PROTOCOL_ERROR, "Received unexpected CONTINUATION frame")
        elif kind == frames.PUSH_PROMISE:  # we sent SETTINGS_ENABLE_PUSH 0
            raise FrameError(frames.PROTOCOL_ERROR, "Received pushed stream with push disabled")
        # PRIORITY, ALTSVC and unknown types: nothing to do

    def _was_opened(self, stream_id: int) -> bool:
        return stream_id % 2 == 1 and stream_id < self._next_id

    def _closed_stream(self, frame, events: list) -> None:
        """A HEADERS or DATA frame on a stream the backend ended or that is closed: a stream
        error (RST_STREAM, the stream closed if it was not) on a stream we opened, a connection
        error on one never opened."""
        if not self._was_opened(frame.stream_id):
            raise FrameError(frames.PROTOCOL_ERROR, f"frame on idle stream {frame.stream_id}")
        self._out.append(frames.rst_stream_frame(frame.stream_id, frames.STREAM_CLOSED))
        stream = self._streams.get(frame.stream_id)
        if stream is not None:  # half closed (the backend's side): closed now
            self._close(stream)
            events.append((RESET, frame.stream_id, frames.STREAM_CLOSED))

    def _data(self, frame, events: list) -> None:
        length = frame.length
        self._receive.consumed(length)
        stream = self._streams.get(frame.stream_id)
        if stream is None or stream.remote_ended:
            increment = self._receive.processed(length)  # nobody takes it: the connection's credit back
            if increment:
                self._out.append(frames.window_update_frame(0, increment))
            self._closed_stream(frame, events)
            return
        if not stream.head_seen:
            raise FrameError(frames.PROTOCOL_ERROR, f"DATA before a response on stream {stream.stream_id}")
        stream.receive.consumed(length)
        body = frame.data
        stream.received_length += len(body)
        expected = stream.expected_length
        ended = frame.flags & frames.END_STREAM
        if expected is not None and (expected < stream.received_length
                                     or (ended and expected != stream.received_length)):
            raise FrameError(frames.PROTOCOL_ERROR, f"content-length {expected}, "
                             f"{stream.received_length} bytes received")
        events.append((DATA, stream.stream_id, body, length))
        if ended:
            self._ended_remotely(stream, events)

    def _headers(self, frame, events: list) -> None:
        try:
            fields = self._decoder.decode(frame.data, raw=True)
        except OversizedHeaderListError as exc:
            raise FrameError(frames.ENHANCE_YOUR_CALM, str(exc)) from None
        except (HPACKError, IndexError, TypeError, ValueError) as exc:
            # h2's code for it (RFC 9113 4.3 says COMPRESSION_ERROR; the connection ends either way)
            raise FrameError(frames.PROTOCOL_ERROR, f"Error decoding header block: {exc}") from None
        stream = self._streams.get(frame.stream_id)
        if stream is None or stream.remote_ended:
            self._closed_stream(frame, events)
            return
        ended = frame.flags & frames.END_STREAM
        if stream.head_seen:  # trailers
            if not ended:
                raise FrameError(frames.PROTOCOL_ERROR, "Trailers must have END_STREAM set")
            last = self._last_trailers
            if fields is last[0]:
                trailers = list(last[1])  # each stream its own list
            else:
                trailers = trailer_fields(fields)
                self._last_trailers = (fields, tuple(trailers))
            events.append((TRAILERS, stream.stream_id, trailers))
            if stream.expected_length is not None and stream.expected_length != stream.received_length:
                raise FrameError(frames.PROTOCOL_ERROR, f"content-length {stream.expected_length}, "
                                 f"{stream.received_length} bytes received")
            self._ended_remotely(stream, events)
            return
        last = self._last_head
        if fields is last[0]:
            status, regular, length = last[1], list(last[2]), last[3]
        else:
            status, regular = response_fields(fields)
            length = content_length(regular)
            self._last_head = (fields, status, tuple(regular), length)
        if status < 200:
            if ended:
                raise FrameError(frames.PROTOCOL_ERROR, "Cannot set END_STREAM on informational responses")
            return  # informational: not relayed
        stream.head_seen = True
        stream.expected_length = 0 if stream.no_body else length
        if ended and stream.expected_length:
            raise FrameError(frames.PROTOCOL_ERROR, f"content-length {stream.expected_length}, no body")
        events.append((RESPONSE, stream.stream_id, status, regular, bool(ended)))
        if ended:
            self._ended_remotely(stream, events)

    def _ended_remotely(self, stream: _Stream, events: list) -> None:
        stream.remote_ended = True
        events.append((ENDED, stream.stream_id))
        if stream.local_ended:
            self._close(stream)

    def _window_update(self, frame, events: list) -> None:
        increment = frame.value
        if not frame.stream_id:
            self.send_window += increment
            if self.send_window > LARGEST_WINDOW:
                raise FrameError(frames.FLOW_CONTROL_ERROR, "connection window beyond 2^31-1")
        else:
            stream = self._streams.get(frame.stream_id)
            if stream is None:
                if not self._was_opened(frame.stream_id):
                    raise FrameError(frames.PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {frame.stream_id}")
                return
            stream.send_window += increment
            if stream.send_window > LARGEST_WINDOW:  # a stream error (h2: reset, reported)
                self.reset_stream(stream.stream_id, frames.FLOW_CONTROL_ERROR)
                events.append((RESET, stream.stream_id, frames.FLOW_CONTROL_ERROR))
                return
        self._window_opened = True

    def _settings(self, settings: tuple, events: list) -> None:
        for identifier, value in settings:
            if identifier in (_ENABLE_PUSH, _ENABLE_CONNECT_PROTOCOL) and value > 1:
                raise FrameError(frames.PROTOCOL_ERROR, f"setting {identifier} = {value}")
            if identifier == _INITIAL_WINDOW_SIZE:
                if value > LARGEST_WINDOW:
                    raise FrameError(frames.FLOW_CONTROL_ERROR, f"SETTINGS_INITIAL_WINDOW_SIZE {value}")
                delta = value - self._initial_send_window
                self._initial_send_window = value
                for stream in self._streams.values():
                    stream.send_window += delta
                    if stream.send_window > LARGEST_WINDOW:
                        raise FrameError(frames.FLOW_CONTROL_ERROR, "a stream's window beyond 2^31-1")
            elif identifier == _MAX_FRAME_SIZE:
                if not 16384 <= value <= 16777215:
                    raise FrameError(frames.PROTOCOL_ERROR, f"SETTINGS_MAX_FRAME_SIZE {value}")
                self.max_outbound_frame_size = value
            elif identifier == _MAX_CONCURRENT_STREAMS:
                self.max_concurrent_streams = value
        self._out.append(frames.SETTINGS_ACK)
        self._window_opened = True
