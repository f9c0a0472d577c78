"""``FrameReader`` slices frames from each read as it came (no copy into a buffer first) and
puts a frame cut across reads together: the frames and their payloads (always ``bytes``) are
the same however the bytes are cut, from ``bytes``, ``bytearray`` or ``memoryview`` reads.
(tests/test_h2_frames.py checks it against h2's frame buffer, frame by frame.)"""

from __future__ import annotations

import struct

import pytest

from ingressd.http import h2_frames
from ingressd.http.h2_frames import PREFACE, FrameReader


def _raw(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return struct.pack(">HBBBL", len(payload) >> 8, len(payload) & 0xFF, frame_type, flags, stream_id) + payload


STREAM = (PREFACE + _raw(h2_frames.SETTINGS, 0, 0, b"")
          + _raw(h2_frames.HEADERS, 0x4, 1, b"\x82\x86\x84")
          + _raw(h2_frames.DATA, 0x1, 1, b"x" * 300)
          + _raw(h2_frames.HEADERS, 0x1, 3, b"\x82")  # a block continued…
          + _raw(h2_frames.CONTINUATION, 0x4, 3, b"\x86\x84")
          + _raw(h2_frames.DATA, 0x9, 3, b"\x02abc\0\0")  # padded
          + _raw(h2_frames.WINDOW_UPDATE, 0, 0, struct.pack(">L", 1000)))


def _read(chunks) -> list:
    reader = FrameReader()
    out = []
    for chunk in chunks:
        reader.feed(chunk)
        for frame in reader:
            assert type(frame.data) is bytes
            out.append((frame.type, frame.flags, frame.stream_id, frame.length, frame.data, frame.value))
    return out


WHOLE = _read([STREAM])


def test_the_whole_stream_in_one_read():
    assert [frame[:3] for frame in WHOLE] == [(4, 0, 0), (1, 4, 1), (0, 1, 1), (1, 5, 3), (0, 9, 3), (8, 0, 0)]
    assert WHOLE[2][4] == b"x" * 300 and WHOLE[3][4] == b"\x82\x86\x84" and WHOLE[4][4] == b"abc"
    assert WHOLE[5][5] == 1000


@pytest.mark.parametrize("size", [1, 2, 7, 9, 10, 64, 301])
def test_cut_anywhere(size):
    assert _read([STREAM[at:at + size] for at in range(0, len(STREAM), size)]) == WHOLE


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_reads_that_are_not_bytes(kind):
    assert _read([kind(STREAM[:100]), kind(STREAM[100:])]) == WHOLE
