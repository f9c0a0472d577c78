#!/usr/bin/env python3
"""The client side's HTTP/2 connection (``http/h2_server.py``) with calls in flight, in memory:
what ``grpccost.py`` does not show, since it answers every read's calls before the next read.

A ``ServerConnection`` gets, in each read, a new unary call (HEADERS, then DATA with a 16-byte
message and END_STREAM, and a connection WINDOW_UPDATE for the answer) while ``--in-flight``
earlier calls are still open (as ``bench.py``'s grpc-unary keeps 10 in flight a channel); then
the oldest is answered (HEADERS, DATA, trailers with END_STREAM) and the bytes taken. Prints
the CPU µs per call, one line per round.

    .venv/bin/python bench/inflightcost.py                    # 10 in flight, 5 rounds of 20,000 calls
"""

from __future__ import annotations

import argparse
import struct
import time
from collections import deque

import hpack

import memcost

memcost.use_tree_source()

from ingressd.http import h2_server  # noqa: E402
from ingressd.http.h2_frames import PREFACE  # noqa: E402
from ingressd.http.hpack_out import ResponseEncoder  # noqa: E402

REQUEST = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/bench.Echo/Unary"), (b":authority", b"b"),
           (b"te", b"trailers"), (b"content-type", b"application/grpc")]
MESSAGE = b"\0\0\0\0\x10" + b"0123456789abcdef"


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return struct.pack("!I", len(payload))[1:] + bytes((kind, flags)) + struct.pack("!I", stream_id) + payload


def per_call(calls: int, in_flight: int) -> float:
    """CPU µs per call of ``calls`` calls with ``in_flight`` open at each new one."""
    block = hpack.Encoder().encode([hpack.NeverIndexedHeaderTuple(n, v) for n, v in REQUEST])
    reads = [frame(0x1, 0x4, sid, block) + frame(0x0, 0x1, sid, MESSAGE) + frame(0x8, 0, 0, struct.pack("!I", 21))
             for sid in range(1, 2 * (calls + in_flight), 2)]
    connection = h2_server.ServerConnection(h2_server.local_settings(128, 65536, False), 128, ResponseEncoder())
    connection.initiate_connection(1 << 24)
    connection.receive(PREFACE + frame(0x4, 0, 0, b""))
    open_ids: deque = deque()
    start = time.process_time()
    for read in reads:
        connection.receive(read)
        open_ids.append(struct.unpack_from("!I", read, 5)[0])
        if len(open_ids) > in_flight:
            stream_id = open_ids.popleft()
            connection.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")])
            connection.send_data(stream_id, MESSAGE)
            connection.send_headers(stream_id, [(b"grpc-status", b"0")], end_stream=True)
        connection.data_to_send()
    return (time.process_time() - start) / len(reads) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=20_000, help="calls per round (default 20,000)")
    p.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--in-flight", type=int, default=10, help="calls open at each new one (default 10)")
    args = p.parse_args()
    for _ in range(args.rounds):
        print(f"HTTP/2 client connection, {args.in_flight} calls in flight: "
              f"{per_call(args.calls, args.in_flight):.2f} µs CPU per call")


if __name__ == "__main__":
    main()
