"""``h2_upstream._FrameSplitter``: GOAWAY frames taken out of a backend's bytes, the other
frames passed on in one piece per read; differentially against the frame-by-frame splitter
it replaced, for any frames cut at any points."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from ingressd.proxy import h2_upstream
from ingressd.proxy.h2_upstream import _FrameSplitter

_GOAWAY = 0x7


class _FrameByFrame:
    """The splitter as it was (commit 7983ae6): each frame's header and payload a piece."""

    def __init__(self):
        self._head = b""
        self._payload_left = 0
        self._goaway = None

    def split(self, data):
        passed, goaways = [], []
        pos, size = 0, len(data)
        while pos < size:
            if self._payload_left:
                take = min(self._payload_left, size - pos)
                if self._goaway is not None:
                    self._goaway += data[pos:pos + take]
                else:
                    passed.append(data[pos:pos + take])
                pos += take
                self._payload_left -= take
                if not self._payload_left and self._goaway is not None:
                    goaways.append(bytes(self._goaway))
                    self._goaway = None
                continue
            need = 9 - len(self._head)
            head = self._head + data[pos:pos + need]
            pos += min(need, size - pos)
            if len(head) < 9:
                self._head = head
                break
            self._head = b""
            length = int.from_bytes(head[:3], "big")
            if head[3] == _GOAWAY:
                self._goaway = bytearray()
                if not length:
                    goaways.append(b"")
                    self._goaway = None
            else:
                passed.append(head)
            self._payload_left = length
        return passed, goaways


def _frame(kind: int, payload: bytes, stream_id: int = 0, flags: int = 0) -> bytes:
    return struct.pack("!I", len(payload))[1:] + bytes((kind, flags)) + struct.pack("!I", stream_id) + payload


def _run(splitter, pieces):
    passed, goaways, calls = [], [], []
    for piece in pieces:
        p, g = splitter.split(piece)
        passed += p
        goaways += g
        calls.append(len(p))
    return b"".join(passed), goaways, calls


frames = st.lists(st.tuples(st.sampled_from([0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9, 0xFF]),
                            st.binary(max_size=40), st.integers(0, 7)), max_size=12)


@settings(max_examples=500, deadline=None)
@given(frames, st.lists(st.integers(0, 600), max_size=8))
def test_the_same_bytes_and_goaways_as_frame_by_frame_at_any_cuts(spec, cuts):
    data = b"".join(_frame(kind, payload, stream_id) for kind, payload, stream_id in spec)
    points = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    ours = _run(_FrameSplitter(), pieces)
    before = _run(_FrameByFrame(), pieces)
    assert ours[:2] == before[:2]
    assert ours[0] == b"".join(_frame(k, p, i) for k, p, i in spec if k != _GOAWAY)
    assert ours[1] == [p for k, p, _ in spec if k == _GOAWAY]
    # one piece per read and run of frames between GOAWAYs, at most
    runs = 1 + sum(1 for k, _, _ in spec if k == _GOAWAY)
    assert all(count <= runs for count in ours[2])


@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=6))
def test_any_bytes_at_any_cuts_as_frame_by_frame(data, cuts):
    points = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    assert _run(_FrameSplitter(), pieces)[:2] == _run(_FrameByFrame(), pieces)[:2]


def test_a_read_of_many_frames_is_one_piece():
    data = b"".join(_frame(0x1, b"h" * 10, 1) + _frame(0x0, b"d" * 21, 1) for _ in range(10))
    passed, goaways = _FrameSplitter().split(data)
    assert passed == [data] and goaways == []


def test_a_goaway_between_frames_cuts_the_read_in_two():
    before, after = _frame(0x0, b"a", 1), _frame(0x6, b"12345678")
    goaway = _frame(0x7, b"\0\0\0\x07\0\0\0\0debug")
    passed, goaways = _FrameSplitter().split(before + goaway + after)
    assert passed == [before, after] and goaways == [b"\0\0\0\x07\0\0\0\0debug"]


def test_frames_go_to_h2_once_per_read():
    """A read of a unary call's answer (HEADERS, DATA, trailers) costs one ``receive_data``."""
    calls = []

    class _H2:
        def receive_data(self, data):
            calls.append(data)
            return []

        def data_to_send(self):
            return b""

    connection = h2_upstream.H2Connection.__new__(h2_upstream.H2Connection)
    connection.h2 = _H2()
    connection._splitter = _FrameSplitter()
    connection.streams = {}
    connection.connected = False
    data = _frame(0x1, b"\x88", 1, 0x4) + _frame(0x0, b"\0\0\0\0\0", 1) + _frame(0x1, b"\x40", 1, 0x5)
    connection.dataReceived(data)
    assert calls == [data]
