"""HTTP/2 frames on the wire (RFC 9113 section 4 and 6): reading them from a byte stream, writing them.

``FrameReader`` is the server side's frame layer: it checks the client's connection preface,
cuts the bytes into frames, parses each frame's body and joins a header block's CONTINUATION
frames onto its HEADERS (or PUSH_PROMISE) frame, with the rules and limits of h2's
``FrameBuffer`` over hyperframe, which it is tested against frame by frame
(tests/test_h2_frames.py): the same frames out, and the same connection error (its RFC 9113
error code) at the same point of the stream. What it does not do is a connection's job: stream
states, flow control, SETTINGS values.

A frame is a ``Frame``: one small object with slots, the fields every type has (type, flags,
stream) and the few its type needs, instead of a class per type. The ``*_frame`` functions
serialise the frames a server sends, byte for byte as hyperframe does.

It is the frame layer of the client side's connection (``h2_server.ServerConnection``); with
``FrameReader(server=False)`` it also reads what backends send to ``proxy/h2_client.py`` (gRPC).
"""

from __future__ import annotations

from collections import deque
from struct import Struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 6; ALTSVC: RFC 7838).
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9
ALTSVC = 0xA

# Flags.
END_STREAM = 0x01
ACK = 0x01
END_HEADERS = 0x04
PADDED = 0x08
PRIORITY_FLAG = 0x20

# Error codes (RFC 9113 7).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xA
ENHANCE_YOUR_CALM = 0xB
INADEQUATE_SECURITY = 0xC
HTTP_1_1_REQUIRED = 0xD

# The flags each known type defines; the others are dropped as a receiver must (RFC 9113 4.1).
_DEFINED_FLAGS = {
    DATA: END_STREAM | PADDED,
    HEADERS: END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG,
    PRIORITY: 0, RST_STREAM: 0, SETTINGS: ACK,
    PUSH_PROMISE: END_HEADERS | PADDED,
    PING: ACK, GOAWAY: 0, WINDOW_UPDATE: 0, CONTINUATION: END_HEADERS, ALTSVC: 0,
}
# Types that must be on a stream, and types that must not (RFC 9113 6); the rest may be either.
_ON_A_STREAM = frozenset((DATA, HEADERS, PRIORITY, RST_STREAM, PUSH_PROMISE, CONTINUATION))
_NOT_ON_A_STREAM = frozenset((SETTINGS, PING, GOAWAY))
# At most this many frames in one header block (HEADERS and its CONTINUATIONs), as h2 allows:
# the CONTINUATION flood bound.
CONTINUATION_BACKLOG = 64

_PADDED_OR_PRIORITY = PADDED | PRIORITY_FLAG
_HEAD = Struct(">HBBBL")
_U32 = Struct(">L")
_U16 = Struct(">H")
_PRIORITY = Struct(">LB")
_SETTING = Struct(">HL")
_TWO_U32 = Struct(">LL")


class FrameError(Exception):
    """A connection error (RFC 9113 5.4.1) found in the frame layer: ``code`` says which."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code


class Frame:
    """One received frame. ``data`` is the frame's payload less padding and fixed fields: the
    header block fragment (HEADERS, PUSH_PROMISE, CONTINUATION), the DATA, PING's opaque data,
    GOAWAY's debug data, an unknown type's whole payload. ``length`` is the payload's length as
    sent (padding included: what DATA costs in flow control). ``value`` is the one number some
    types carry: RST_STREAM's and GOAWAY's error code, WINDOW_UPDATE's increment, PUSH_PROMISE's
    promised stream. ``settings`` is SETTINGS' (identifier, value) pairs in the order sent."""

    # The fields every frame has in slots; the others are class defaults, set on the few
    # frames whose type has them (in the instance's dict): a DATA or HEADERS frame sets five.
    __slots__ = ("type", "flags", "stream_id", "data", "length", "__dict__")

    value = 0
    last_stream_id = 0
    settings: tuple[tuple[int, int], ...] = ()
    pad_length = 0
    depends_on = 0
    weight = 0
    exclusive = False
    origin = b""

    def __init__(self, frame_type: int, flags: int, stream_id: int, length: int, data: bytes = b""):
        self.type = frame_type
        self.flags = flags
        self.stream_id = stream_id
        self.length = length
        self.data = data

    def __repr__(self) -> str:
        return f"Frame(type={self.type}, flags={self.flags:#x}, stream_id={self.stream_id}, length={self.length})"


_new = Frame.__new__


class FrameReader:
    """Cuts a client's bytes into frames: ``feed`` them, then iterate to take the frames that
    are complete. A frame that breaks a rule raises ``FrameError`` when it is reached (the
    frames before it have been handed out); the reader is of no further use after that."""

    def __init__(self, max_frame_size: int = 16384, server: bool = True):
        self.max_frame_size = max_frame_size
        # What was fed and is not cut into frames yet: ``_data`` from ``_at``. A read's bytes
        # are kept as they came (frames are sliced from them, no copy into a buffer first);
        # a frame cut across reads is put together in a bytearray.
        self._data: bytes | bytearray = b""
        self._at = 0
        self._preface = PREFACE if server else b""
        self._block: list[Frame] = []  # a header block's frames until END_HEADERS
        # For iteration (``__next__``): frames ``cut`` and not handed out yet, and the error
        # that ended the cut, raised once they are.
        self._cut: deque[Frame] = deque()
        self._failed: FrameError | None = None

    def feed(self, data: bytes) -> None:
        if self._preface:
            part = self._preface[:len(data)]
            if data[:len(part)] != part:
                raise FrameError(PROTOCOL_ERROR, "Invalid HTTP/2 preamble.")
            data = data[len(part):]
            self._preface = self._preface[len(part):]
        held = self._data
        if self._at < len(held):  # the start of a frame is waiting for the rest of it
            if type(held) is not bytearray:
                held = bytearray(held[self._at:])
            elif self._at:
                del held[:self._at]
            held += data
            self._data = held
        else:
            self._data = data if type(data) is bytes else bytes(data)
        self._at = 0

    def __iter__(self) -> FrameReader:
        return self

    def __next__(self) -> Frame:
        cut = self._cut
        if not cut:
            if self._failed is not None:
                raise self._failed
            try:
                self.cut(cut)
            except FrameError as exc:
                if not cut:
                    raise
                self._failed = exc  # after the frames before it
            if not cut:
                raise StopIteration
        return cut.popleft()

    def cut(self, out) -> None:
        """Append every complete frame fed so far to ``out`` (a list, a deque), in order. A frame
        that breaks a rule raises ``FrameError`` when it is reached, the frames before it in
        ``out``: the connections take a read's frames in one call (``h2_server.receive``,
        ``h2_client.receive_data``), not one Python call through ``__next__`` each."""
        data = self._data
        at = self._at
        size = len(data)
        while True:  # bounded: every pass consumes a frame or stops
            if size - at < 9:
                return
            high, low, frame_type, flags, stream_id = _HEAD.unpack_from(data, at)
            length = (high << 8) | low
            stream_id &= 0x7FFFFFFF
            if frame_type in _ON_A_STREAM:
                if not stream_id:
                    raise FrameError(PROTOCOL_ERROR, f"frame type {frame_type} on stream 0")
            elif stream_id and frame_type in _NOT_ON_A_STREAM:
                raise FrameError(PROTOCOL_ERROR, f"frame type {frame_type} on stream {stream_id}")
            if size - at < length + 9:
                return
            if length > self.max_frame_size:
                raise FrameError(FRAME_SIZE_ERROR, f"frame of {length} bytes, max {self.max_frame_size}")
            start = at + 9
            at = self._at = start + length
            body = data[start:at]
            if type(body) is not bytes:  # a frame put together across reads
                body = bytes(body)
            # Frame(...)'s fields set here, without a call of its __init__ (a frame is made
            # per frame read; tests/test_h2_frames.py compares the two)
            frame = _new(Frame)
            frame.type = frame_type
            frame.stream_id = stream_id
            frame.length = length
            if frame_type <= HEADERS and not flags & _PADDED_OR_PRIORITY:
                # DATA or HEADERS, neither padded nor prioritised: the payload is the data
                frame.flags = flags & _DEFINED_FLAGS[frame_type]
                frame.data = body
                if frame_type == DATA or flags & END_HEADERS:
                    if not self._block:
                        out.append(frame)
                        continue
            else:
                defined = _DEFINED_FLAGS.get(frame_type)
                frame.flags = flags if defined is None else flags & defined
                frame.data = b""
                _parse_body(frame, body)
                if not self._block and frame_type != HEADERS and frame_type != PUSH_PROMISE:
                    out.append(frame)  # no header block to join it to (_join_block would return it)
                    continue
            frame = self._join_block(frame)
            if frame is not None:
                out.append(frame)

    def _join_block(self, frame: Frame) -> Frame | None:
        """A header block's frames are returned as one frame when the last arrives (h2's rule:
        nothing but its CONTINUATIONs on its stream in between, at most CONTINUATION_BACKLOG)."""
        block = self._block
        if block:
            first = block[0]
            if frame.type != CONTINUATION or frame.stream_id != first.stream_id:
                raise FrameError(PROTOCOL_ERROR, "Invalid frame during header block.")
            block.append(frame)
            if len(block) > CONTINUATION_BACKLOG:
                raise FrameError(PROTOCOL_ERROR, "Too many continuation frames received.")
            if not frame.flags & END_HEADERS:
                return None
            first.flags |= END_HEADERS
            first.data = b"".join([part.data for part in block])
            self._block = []
            return first
        if frame.type in (HEADERS, PUSH_PROMISE) and not frame.flags & END_HEADERS:
            block.append(frame)
            return None
        return frame


def _padding(frame: Frame, body: bytes) -> int:
    """The pad length byte's size (0 or 1), with the pad length recorded."""
    if not frame.flags & PADDED:
        return 0
    if not body:
        raise FrameError(FRAME_SIZE_ERROR, "Invalid Padding data")
    frame.pad_length = body[0]
    return 1


def _check_padding(frame: Frame, covered: int) -> None:
    if frame.pad_length and frame.pad_length >= covered:
        raise FrameError(PROTOCOL_ERROR, "Padding is too long.")


def _priority(frame: Frame, body: bytes, at: int) -> None:
    if len(body) - at < 5:
        raise FrameError(FRAME_SIZE_ERROR, "Invalid Priority data")
    depends_on, frame.weight = _PRIORITY.unpack_from(body, at)
    frame.exclusive = bool(depends_on >> 31)
    frame.depends_on = depends_on & 0x7FFFFFFF


def _parse_body(frame: Frame, body: bytes) -> None:
    """A frame's payload into its fields, with hyperframe's checks: a wrong size is a
    FRAME_SIZE_ERROR, a wrong value a PROTOCOL_ERROR."""
    frame_type = frame.type
    size = len(body)
    if frame_type == WINDOW_UPDATE:  # first: the most frequent here (grpcio sends two a call)
        if size != 4:
            raise FrameError(FRAME_SIZE_ERROR, "WINDOW_UPDATE frame must have 4 byte length")
        frame.value = increment = _U32.unpack(body)[0]
        if not 1 <= increment <= 0x7FFFFFFF:
            raise FrameError(PROTOCOL_ERROR, "WINDOW_UPDATE increment must be between 1 to 2^31-1")
    elif frame_type == DATA:
        at = _padding(frame, body)
        frame.data = body[at:size - frame.pad_length]
        _check_padding(frame, size)
    elif frame_type == HEADERS:
        at = _padding(frame, body)
        rest = size - at  # what follows the pad length byte
        fixed = 0
        if frame.flags & PRIORITY_FLAG:
            _priority(frame, body, at)
            fixed = 5
        frame.data = body[at + fixed:size - frame.pad_length]  # empty if the padding leaves no room
        _check_padding(frame, rest)
    elif frame_type == CONTINUATION:
        frame.data = body
    elif frame_type == SETTINGS:
        if frame.flags & ACK and size:
            raise FrameError(PROTOCOL_ERROR, "SETTINGS ack frame must not have payload")
        if size % 6:
            raise FrameError(FRAME_SIZE_ERROR, "Invalid SETTINGS body")
        frame.settings = tuple(_SETTING.iter_unpack(body))
    elif frame_type == RST_STREAM:
        if size != 4:
            raise FrameError(FRAME_SIZE_ERROR, "RST_STREAM must have 4 byte body")
        frame.value = _U32.unpack(body)[0]
    elif frame_type == PING:
        if size != 8:
            raise FrameError(FRAME_SIZE_ERROR, "PING frame must have 8 byte length")
        frame.data = body
    elif frame_type == PRIORITY:
        if size != 5:
            raise FrameError(FRAME_SIZE_ERROR, "PRIORITY must have 5 byte body")
        _priority(frame, body, 0)
    elif frame_type == GOAWAY:
        if size < 8:
            raise FrameError(FRAME_SIZE_ERROR, "Invalid GOAWAY body.")
        frame.last_stream_id, frame.value = _TWO_U32.unpack_from(body)
        frame.data = body[8:]
    elif frame_type == PUSH_PROMISE:
        at = _padding(frame, body)
        if size - at < 4:
            raise FrameError(FRAME_SIZE_ERROR, "Invalid PUSH_PROMISE body")
        frame.value = promised = _U32.unpack_from(body, at)[0]
        frame.data = body[at + 4:size - frame.pad_length]
        if promised == 0 or promised % 2:
            raise FrameError(PROTOCOL_ERROR, "Invalid PUSH_PROMISE promised stream id")
        _check_padding(frame, size)
    elif frame_type == ALTSVC:
        if size < 2:
            raise FrameError(FRAME_SIZE_ERROR, "Invalid ALTSVC frame body.")
        origin_length = _U16.unpack_from(body)[0]
        if size - 2 < origin_length:
            raise FrameError(FRAME_SIZE_ERROR, "Invalid ALTSVC frame body.")
        frame.origin = body[2:2 + origin_length]
        frame.data = body[2 + origin_length:]
    else:  # an extension frame: kept whole, for the connection to ignore
        frame.data = body


def _head(length: int, frame_type: int, flags: int, stream_id: int) -> bytes:
    return _HEAD.pack(length >> 8, length & 0xFF, frame_type, flags, stream_id & 0x7FFFFFFF)


_pack_head = _HEAD.pack


def data_frame(stream_id: int, data: bytes, end_stream: bool = False) -> bytes:
    size = len(data)  # _head's packing, written out: a frame made per DATA sent
    return _pack_head(size >> 8, size & 0xFF, DATA, END_STREAM if end_stream else 0, stream_id & 0x7FFFFFFF) + data


def headers_frames(stream_id: int, block: bytes, end_stream: bool, max_frame_size: int) -> bytes:
    """A header block as HEADERS and as many CONTINUATIONs as the peer's frame size needs (h2's
    cut: every frame but the last full)."""
    size = len(block)
    if size <= max_frame_size:  # _head's packing, written out: the usual block, one frame
        return _pack_head(size >> 8, size & 0xFF, HEADERS, (END_STREAM | END_HEADERS) if end_stream else END_HEADERS,
                          stream_id & 0x7FFFFFFF) + block
    parts = [block[at:at + max_frame_size] for at in range(0, len(block), max_frame_size)]
    out = [_head(len(parts[0]), HEADERS, END_STREAM if end_stream else 0, stream_id), parts[0]]
    last = len(parts) - 1
    for index in range(1, len(parts)):
        part = parts[index]
        out.append(_head(len(part), CONTINUATION, END_HEADERS if index == last else 0, stream_id))
        out.append(part)
    return b"".join(out)


def settings_frame(settings: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> bytes:
    body = b"".join([_SETTING.pack(identifier & 0xFF, value) for identifier, value in settings])
    return _head(len(body), SETTINGS, 0, 0) + body


SETTINGS_ACK = _head(0, SETTINGS, ACK, 0)


def ping_ack(opaque: bytes) -> bytes:
    return _head(8, PING, ACK, 0) + opaque


def window_update_frame(stream_id: int, increment: int) -> bytes:
    return _head(4, WINDOW_UPDATE, 0, stream_id) + _U32.pack(increment & 0x7FFFFFFF)


def rst_stream_frame(stream_id: int, error_code: int) -> bytes:
    return _head(4, RST_STREAM, 0, stream_id) + _U32.pack(error_code)


def goaway_frame(last_stream_id: int, error_code: int, debug: bytes = b"") -> bytes:
    return _head(8 + len(debug), GOAWAY, 0, 0) + _TWO_U32.pack(last_stream_id & 0x7FFFFFFF, error_code) + debug
