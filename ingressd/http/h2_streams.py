"""HTTP/2 stream states on a server (RFC 9113 5.1), with h2's choices where the RFC leaves one.

``StreamState`` is one client-opened stream's state machine: what each frame received or sent
does to it, and which are errors. It is h2's ``H2StreamStateMachine`` less what a server never
meets (push, ALTSVC, Upgrade, a header block sent on a stream the client has not opened), tested input for input against it (tests/test_h2_streams.py). A
``received_*`` or ``sent_*`` call returns what happened (``REQUEST`` or ``TRAILERS`` for a header
block) or raises:

- ``StreamProtocolError``: a connection error PROTOCOL_ERROR (the stream is closed);
- ``StreamClosed``: a frame on a stream that is closed; ``reset`` says h2 would answer it with
  RST_STREAM STREAM_CLOSED at once (DATA or HEADERS after the client's END_STREAM, DATA on an idle
  stream); otherwise the connection decides by how the stream closed, as h2 does.
"""

from __future__ import annotations

IDLE = 0
OPEN = 3
HALF_CLOSED_REMOTE = 4
HALF_CLOSED_LOCAL = 5
CLOSED = 6

# How a stream closed (h2's StreamClosedBy).
SENT_END_STREAM = 0
RECEIVED_END_STREAM = 1
SENT_RST_STREAM = 2
RECEIVED_RST_STREAM = 3

# What a received header block was.
REQUEST = 1
TRAILERS = 2


class StreamProtocolError(Exception):
    """A connection error PROTOCOL_ERROR."""


class StreamClosed(Exception):
    def __init__(self, stream_id: int, reset: bool):
        super().__init__(f"stream {stream_id} is closed")
        self.stream_id = stream_id
        self.reset = reset


class StreamState:
    __slots__ = ("stream_id", "state", "closed_by", "headers_sent", "trailers_sent",
                 "headers_received", "trailers_received")

    def __init__(self, stream_id: int):
        self.stream_id = stream_id
        self.state = IDLE
        self.closed_by: int | None = None
        self.headers_sent = False
        self.trailers_sent = False
        self.headers_received = False
        self.trailers_received = False

    @property
    def open(self) -> bool:
        return OPEN <= self.state <= HALF_CLOSED_LOCAL

    def _protocol_error(self, reason: str) -> StreamProtocolError:
        self.state = CLOSED
        return StreamProtocolError(reason)

    def _reset_on_error(self) -> StreamClosed:
        self.state = CLOSED
        self.closed_by = SENT_RST_STREAM
        return StreamClosed(self.stream_id, True)

    # Received.

    def received_headers(self) -> int:
        state = self.state
        if state == IDLE:
            self.state = OPEN
            self.headers_received = True
            return REQUEST
        if state == OPEN or state == HALF_CLOSED_LOCAL:
            if self.trailers_received:
                raise self._protocol_error("a third header block")
            self.trailers_received = True
            return TRAILERS
        if state == HALF_CLOSED_REMOTE:
            raise self._reset_on_error()
        raise StreamClosed(self.stream_id, False)

    def received_data(self) -> None:
        state = self.state
        if state == OPEN or state == HALF_CLOSED_LOCAL:
            return  # headers were received: a server stream opens only with them
        if state == CLOSED:
            raise StreamClosed(self.stream_id, False)
        raise self._reset_on_error()  # idle, or after the client's END_STREAM

    def received_end_stream(self) -> None:
        state = self.state
        if state == OPEN:
            self.state = HALF_CLOSED_REMOTE
        elif state == HALF_CLOSED_LOCAL:
            self.state = CLOSED
            self.closed_by = RECEIVED_END_STREAM
        elif state != CLOSED:
            raise self._protocol_error("END_STREAM in state %d" % state)

    def received_reset(self) -> None:
        state = self.state
        if state == IDLE:
            raise self._protocol_error("RST_STREAM on an idle stream")
        if state != CLOSED:
            self.state = CLOSED
            self.closed_by = RECEIVED_RST_STREAM

    def received_window_update(self) -> None:
        if self.state == IDLE:
            raise self._protocol_error("WINDOW_UPDATE on an idle stream")

    # Sent.

    def sent_headers(self) -> int:
        state = self.state
        if state == OPEN or state == HALF_CLOSED_REMOTE:
            if not self.headers_sent:
                self.headers_sent = True
                return REQUEST  # the response
            if self.trailers_sent:
                raise self._protocol_error("a third header block sent")
            self.trailers_sent = True
            return TRAILERS
        if state == CLOSED:
            raise StreamClosed(self.stream_id, False)
        raise self._protocol_error("HEADERS sent in state %d" % state)

    def sent_informational(self) -> None:
        state = self.state
        if state != OPEN and state != HALF_CLOSED_REMOTE:
            raise self._protocol_error("1xx sent in state %d" % state)
        if self.headers_sent:
            raise self._protocol_error("Information response after final response")

    def sent_data(self) -> None:
        state = self.state
        if state == CLOSED:
            raise StreamClosed(self.stream_id, False)
        if state != OPEN and state != HALF_CLOSED_REMOTE:
            raise self._protocol_error("DATA sent in state %d" % state)

    def sent_end_stream(self) -> None:
        state = self.state
        if state == OPEN:
            self.state = HALF_CLOSED_LOCAL
        elif state == HALF_CLOSED_REMOTE:
            self.state = CLOSED
            self.closed_by = SENT_END_STREAM
        elif state == CLOSED:
            raise StreamClosed(self.stream_id, False)
        else:
            raise self._protocol_error("END_STREAM sent in state %d" % state)

    def sent_reset(self) -> None:
        state = self.state
        if state == CLOSED:
            raise StreamClosed(self.stream_id, False)
        if state == IDLE:
            raise self._protocol_error("RST_STREAM sent on an idle stream")
        self.state = CLOSED
        self.closed_by = SENT_RST_STREAM

    def sent_window_update(self) -> None:
        state = self.state
        if state == CLOSED:
            raise StreamClosed(self.stream_id, False)
        if state == IDLE:
            raise self._protocol_error("WINDOW_UPDATE sent on an idle stream")
