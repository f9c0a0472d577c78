#!/usr/bin/env python3
"""The frame layer alone, in memory: ``ingressd.http.h2_frames.FrameReader`` against h2's
``FrameBuffer`` over hyperframe (what ``H2Connection.receive_data`` runs before its state
machine, plus the ``repr(frame)`` it makes for its trace logger on every frame).

The input is what ``bench/h2cost.py`` sends: an h2 client's requests (HEADERS with END_STREAM,
the header block mostly indexed after the first), ``--streams`` to a read, and optionally a
DATA frame of ``--body`` bytes on each. Prints CPU µs per frame for each reader, the two
alternately, and the Python calls per frame under cProfile; then the writing of a response's
HEADERS and DATA frames, as h2 builds them with hyperframe and with ``h2_frames``' writers.

    .venv/bin/python bench/h2frames.py
    .venv/bin/python bench/h2frames.py --body 1024
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

import h2.config
import h2.connection
from h2.frame_buffer import FrameBuffer

from hyperframe.frame import DataFrame, HeadersFrame

from ingressd.http.h2_frames import FrameReader, data_frame, headers_frames

HEADERS = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"bench.local"), (b":path", b"/"),
           (b"user-agent", b"h2cost"), (b"accept", b"*/*")]


def _reads(requests: int, streams: int, body: int) -> tuple[bytes, list[bytes], int]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    client.increment_flow_control_window(2**31 - 1 - 65535)
    opening = client.data_to_send()
    reads, frames = [], 0
    for _ in range(requests // streams):
        read = b""
        for _ in range(streams):
            stream_id = client.get_next_available_stream_id()
            client.send_headers(stream_id, HEADERS, end_stream=not body)
            read += client.data_to_send()
            frames += 1
            if body:  # written here: h2's client would wait for a window no server opens
                read += data_frame(stream_id, b"x" * body, True)
                frames += 1
        reads.append(read)
    return opening, reads, frames


def _theirs(opening: bytes, reads: list[bytes]) -> None:
    buffer = FrameBuffer(server=True)
    buffer.max_frame_size = 16384
    buffer.add_data(opening)
    for frame in buffer:
        repr(frame)
    for data in reads:
        buffer.add_data(data)
        for frame in buffer:
            repr(frame)  # h2's trace log line, made whether or not it is written


def _theirs_no_repr(opening: bytes, reads: list[bytes]) -> None:
    buffer = FrameBuffer(server=True)
    buffer.max_frame_size = 16384
    buffer.add_data(opening)
    for _frame in buffer:
        pass
    for data in reads:
        buffer.add_data(data)
        for _frame in buffer:
            pass


def _ours(opening: bytes, reads: list[bytes]) -> None:
    reader = FrameReader(16384)
    reader.feed(opening)
    for _frame in reader:
        pass
    for data in reads:
        reader.feed(data)
        for _frame in reader:
            pass


def _write_theirs(count: int) -> None:
    block, body = b"\x88\x5f\x8b\x1d\x75\xd0\x62\x0d\x26\x3d\x4c\x74\x41\xea\x5c\x01\x33", b"ok\n"
    for stream_id in range(1, 2 * count, 2):  # as h2's send_headers + send_data build and serialise them
        headers = HeadersFrame(stream_id)
        headers.data = block
        headers.flags.add("END_HEADERS")
        data = DataFrame(stream_id)
        data.data = body
        data.flags.add("END_STREAM")
        headers.serialize() + data.serialize()


def _write_ours(count: int) -> None:
    block, body = b"\x88\x5f\x8b\x1d\x75\xd0\x62\x0d\x26\x3d\x4c\x74\x41\xea\x5c\x01\x33", b"ok\n"
    for stream_id in range(1, 2 * count, 2):
        headers_frames(stream_id, block, False, 16384) + data_frame(stream_id, body, True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--body", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    opening, reads, frames = _reads(args.requests, args.streams, args.body)
    runs = {"h2 FrameBuffer + repr": _theirs, "h2 FrameBuffer": _theirs_no_repr, "h2_frames.FrameReader": _ours}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            start = time.process_time()
            run(opening, reads)
            times[name].append((time.process_time() - start) / frames * 1e6)
    print(f"{frames} frames a round ({args.requests} requests, {args.streams} a read, body {args.body} B), "
          f"{args.rounds} rounds alternately; CPU µs per frame, median (min-max); Python calls per frame")
    writes: dict[str, list[float]] = {"hyperframe HEADERS + DATA": [], "h2_frames writers": []}
    for _ in range(args.rounds):
        for name, run in (("hyperframe HEADERS + DATA", _write_theirs), ("h2_frames writers", _write_ours)):
            start = time.process_time()
            run(args.requests)
            writes[name].append((time.process_time() - start) / args.requests * 1e6)
    for name, run in runs.items():
        profile = cProfile.Profile()
        profile.runcall(run, opening, reads)
        calls = pstats.Stats(profile).total_calls / frames
        values = times[name]
        print(f"  {name:24} {statistics.median(values):6.2f} ({min(values):.2f}-{max(values):.2f})  {calls:6.1f} calls")
    print("writing a response's HEADERS and DATA frames: CPU µs per response, median (min-max)")
    for name, values in writes.items():
        print(f"  {name:24} {statistics.median(values):6.2f} ({min(values):.2f}-{max(values):.2f})")


if __name__ == "__main__":
    main()
