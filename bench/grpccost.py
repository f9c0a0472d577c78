#!/usr/bin/env python3
"""A gRPC unary call's own Python cost through ingressd, in memory: ``h2cost.py`` for gRPC.

Builds the real server (``serve_in_memory``: the installed plugins, the options ``twistd
ingressd`` parses) on a ``MemoryReactorClock`` with one route of ``backend-protocol: GRPC``,
and opens one HTTP/2 connection to its plain listener with prior knowledge (h2c: no TLS in
the figure). Each read carries ``--streams`` unary calls (HEADERS, then DATA with a 16-byte
message and END_STREAM, as grpcio sends them, and grpcio's two WINDOW_UPDATEs a call: the
stream's after its HEADERS, the connection's after its DATA); the backend connection (``h2_upstream``'s,
on a ``StringTransport``) then gets every call's answer in one read: HEADERS (``:status
200``, ``content-type``), the message back, trailers (``grpc-status: 0``) with END_STREAM,
as grpcio's server answers. Both peers' frames are encoded beforehand, with HPACK's dynamic
table as grpcio uses it (after a connection's first calls, a repeated field is one index;
the fixed ``grpc-timeout`` here is indexed too, where a real client's varies): what it prints is the
CPU time per call of everything ingressd does between those calls — HTTP/2 in on the client
side, the exchange, the backend stream (``proxy/h2_upstream.py``: request head out, response
head, data and trailers in) and the answer out to the client.

    .venv/bin/python bench/grpccost.py                   # 10,000 calls x 5 rounds, access log off
    .venv/bin/python bench/grpccost.py --profile         # cProfile's table for one round
    .venv/bin/python bench/grpccost.py --profile --only h2_upstream   # its rows only
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import hpack

import memcost

memcost.use_tree_source()

from ingressd.testing import one_route_objects  # noqa: E402

HOST = "bench.local"
BACKEND = ("127.0.0.1", 50051)
MESSAGE = b"\0\0\0\0\x10" + b"0123456789abcdef"  # a gRPC length-prefixed 16-byte message
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REQUEST = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/bench.Echo/Unary"),
           (b":authority", HOST.encode()), (b"te", b"trailers"), (b"content-type", b"application/grpc"),
           (b"user-agent", b"grpc-python/1.66.1 grpc-c/43.0.0 (linux; chttp2)"),
           (b"grpc-accept-encoding", b"identity, deflate, gzip"), (b"grpc-timeout", b"9999763u")]
RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc"),
            (b"grpc-accept-encoding", b"identity, deflate, gzip")]
TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b"")]
DATA, HEADERS, SETTINGS, WINDOW_UPDATE = 0x0, 0x1, 0x4, 0x8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
# grpcio's client sends, with each call, a WINDOW_UPDATE of 5 on the new stream (after its
# HEADERS) and one of 5 on the connection (after its DATA): seen in bench.py's grpc-unary runs
# (2026-12-07, every client read of a call: HEADERS, WINDOW_UPDATE, DATA, WINDOW_UPDATE).
GRPCIO_INCREMENT = struct.pack("!I", 5)


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return struct.pack("!I", len(payload))[1:] + bytes((kind, flags)) + struct.pack("!I", stream_id) + payload


def blocks(*fields_list) -> list[bytes]:
    """The header blocks a peer's stateful HPACK encoder sends for ``fields_list`` once every
    field is in its dynamic table (as grpcio's do after a connection's first call): the
    third round of encoding them in turn, given the table the first two rounds left. The
    peer's first blocks (``first``) are what it sent to get there."""
    encoder = hpack.Encoder()
    first = [encoder.encode(fields) for _ in range(2) for fields in fields_list]
    steady = [encoder.encode(fields) for fields in fields_list]
    again = [encoder.encode(fields) for fields in fields_list]
    if steady != again:
        raise SystemExit("the peer's header blocks do not settle")
    return first, steady


def settings(*pairs: tuple[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack("!HI", key, value) for key, value in pairs))


class Client:
    """A gRPC client's frames, encoded beforehand; reads nothing back (its windows are wide)."""

    def __init__(self, window_updates: bool = True):
        self.next_id = 1
        self.window_updates = window_updates
        self.first, (self.request,) = blocks(REQUEST)

    def opening(self) -> bytes:
        # grpcio's stream window (4 MiB); the connection's opened to 2^30: room for the calls'
        # answers and for the WINDOW_UPDATEs of 5 (a window beyond 2^31-1 is an error)
        return (PREFACE + settings((0x2, 0), (0x4, 4 * 1024 * 1024)) + frame(WINDOW_UPDATE, 0, 0, struct.pack(
            "!I", 2**30 - 65535)))

    def batches(self, calls: int, streams: int) -> list[bytes]:
        out = []
        for _ in range(calls // streams):
            frames = []
            for _ in range(streams):
                request = self.first.pop(0) if self.first else self.request
                frames.append(frame(HEADERS, END_HEADERS, self.next_id, request))
                if self.window_updates:  # grpcio's: the stream's, then the connection's (5 each)
                    frames.append(frame(WINDOW_UPDATE, 0, self.next_id, GRPCIO_INCREMENT))
                frames.append(frame(DATA, END_STREAM, self.next_id, MESSAGE))
                if self.window_updates:
                    frames.append(frame(WINDOW_UPDATE, 0, 0, GRPCIO_INCREMENT))
                self.next_id += 2
            out.append(b"".join(frames))
        return out


class Backend:
    """One backend connection of ``h2_upstream``: answers the streams it was sent, in order
    (a connection's stream ids are 1, 3, 5…; ``check`` verifies the prediction)."""

    def __init__(self, protocol, transport):
        self.protocol = protocol
        self.transport = transport
        self.next_id = 1
        self.first, (self.head, self.trailers) = blocks(RESPONSE, TRAILERS)
        protocol.dataReceived(settings((0x3, 100), (0x4, 4 * 1024 * 1024)) + frame(SETTINGS, ACK, 0, b""))

    def answers(self, count: int) -> bytes:
        frames = []
        for _ in range(count):
            stream_id = self.next_id
            self.next_id += 2
            head, trailers = self.first[:2] or (self.head, self.trailers)
            del self.first[:2]
            frames.append(frame(HEADERS, END_HEADERS, stream_id, head))
            frames.append(frame(DATA, 0, stream_id, MESSAGE))
            frames.append(frame(HEADERS, END_HEADERS | END_STREAM, stream_id, trailers))
        # what the calls' messages took of the connection's window, given back (grpcio does)
        frames.append(frame(WINDOW_UPDATE, 0, 0, struct.pack("!I", len(MESSAGE) * count)))
        return b"".join(frames)


class Rig:
    def __init__(self, extra_args: list[str], tmp: Path, streams: int, window_updates: bool = True):
        self.streams = streams
        objects = one_route_objects(HOST, [BACKEND],
                                    annotations={"nginx.ingress.kubernetes.io/backend-protocol": "GRPC"})
        self.service, self.reactor = memcost.serve(tmp, extra_args, objects)
        self.client = Client(window_updates)
        self.protocol, self.transport = memcost.accept(self.service.http_factory)
        self.protocol.dataReceived(self.client.opening())
        self.backends: list[Backend] = []
        self._upstreams = memcost.Upstreams(self.reactor)
        # for check: what the backend connection and the client were sent
        self.sent: list[bytes] = []
        self.answered: list[bytes] = []
        self.play(self.client.batches(streams, streams))  # opens the backend connection
        self.check()

    def play(self, batches: list[bytes]) -> None:
        received = self.protocol.dataReceived
        clear = self.transport.clear
        backends = self.backends
        streams = self.streams
        keep_sent, keep_answered = self.sent.append, self.answered.append
        for batch in batches:
            received(batch)
            if len(self.reactor.tcpClients) != self._upstreams.seen:  # inline: the loop is timed
                backends.extend(Backend(*made) for made in self._upstreams.new())
            for backend in backends:
                sent = backend.transport.value()
                if sent:
                    keep_sent(sent)
                    backend.transport.clear()
                    # every call of the read went to the one backend connection (checked)
                    backend.protocol.dataReceived(backend.answers(streams))
            keep_answered(self.transport.value())
            clear()

    def check(self) -> None:
        """One more read; every header block either peer was sent since the start decoded
        (HPACK state runs across blocks): the calls' streams opened in order on the backend,
        and every call of the last read answered with grpc-status 0."""
        if len(self.backends) != 1:
            raise SystemExit(f"{len(self.backends)} backend connections, expected 1")
        first = self.backends[0].next_id
        answered = len(self.answered)
        self.play(self.client.batches(self.streams, self.streams))
        opened = [stream_id for stream_id, _, fields in header_blocks(b"".join(self.sent)[len(PREFACE):])
                  if b":path" in dict(fields)]
        if opened[-self.streams:] != list(range(first, first + 2 * self.streams, 2)):
            raise SystemExit(f"backend streams {opened[-self.streams:]}, expected {self.streams} from {first}")
        statuses = [dict(fields).get(b"grpc-status") for _, flags, fields in header_blocks(b"".join(self.answered))
                    if flags & END_STREAM]
        if len(self.answered) == answered or statuses[-self.streams:] != [b"0"] * self.streams:
            raise SystemExit(f"answers: {statuses[-self.streams:]}")


def header_blocks(data: bytes):
    """(stream id, flags, fields) of every HEADERS frame in ``data``, one HPACK decoder."""
    decoder = hpack.Decoder()
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        kind, flags = data[pos + 3], data[pos + 4]
        stream_id = int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF
        payload = data[pos + 9:pos + 9 + length]
        pos += 9 + length
        if kind == HEADERS:
            if flags & 0x28 or not flags & END_HEADERS:
                raise SystemExit("padded, prioritised or continued HEADERS: not decoded here")
            yield stream_id, flags, decoder.decode(payload, raw=True)


def main() -> None:
    p = memcost.options(__doc__, count="calls", default=10_000, args="--access-log off", lines=40, sample=False)
    p.add_argument("--streams", type=int, default=10, help="calls per read (default 10, as bench.py's 10 per channel)")
    p.add_argument("--no-window-updates", action="store_true",
                   help="leave out the client's two WINDOW_UPDATEs a call (as this script did before 2026-12-07 15:00 UTC)")
    p.add_argument("--only", default="", help="with --profile: only rows whose file or function matches")
    p.add_argument("--no-check", action="store_true",
                   help="skip the closing check, which decodes every header block of the run with the pure-Python "
                        "hpack package: for instruction counts of ingressd's own work (with the check, about two "
                        "thirds of the process's instructions a call are the check's; 2026-12-07)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingressd-grpccost-") as tmp:
        # one client connection for every call (its GOAWAY after 1,000 requests off), as h2cost.py
        rig = Rig(memcost.server_args(args.args, Path(tmp), log_to_file=False), Path(tmp), args.streams,
                  not args.no_window_updates)
        rounds = memcost.batch_rounds(rig, args.calls, args.streams, 1 if args.profile else args.rounds)
        if args.profile:
            stats = memcost.profiled(rig.play, rounds[0])
            print(f"{stats.total_calls / args.calls:.1f} Python calls per gRPC call")
            stats.sort_stats(args.sort).print_stats(*((args.only,) if args.only else ()), args.lines)
            return
        figures = [memcost.cpu_per(args.calls, rig.play, batches) for batches in rounds]
        if not args.no_check:
            rig.check()
        print(memcost.python_line(args.args, f"{args.streams} calls per read"))
        print(f"gRPC unary (h2c both sides) in memory: {memcost.per_text(figures, args.calls, 'call')}")


if __name__ == "__main__":
    main()
