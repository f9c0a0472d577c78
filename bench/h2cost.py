#!/usr/bin/env python3
"""The HTTP/2 client side's own Python cost, in memory: ``pathcost.py`` for HTTP/2 streams.

Builds the real server (``serve_in_memory``: the installed plugins, the options ``twistd
ingressd`` parses) on a ``MemoryReactorClock`` and opens one HTTP/2 connection to its plain
listener with prior knowledge (h2c, so no TLS in the figure). The requests' frames are
encoded beforehand by an ``h2`` client, ``--streams`` HEADERS frames per read (as ``h2load
-m``); each batch is fed to the connection's ``dataReceived``, then every backend connection
that was sent a request gets its answer. What it prints is CPU time per request of
everything ingressd does between those calls: HTTP/2 frames and HPACK in and out (the
connection of ``http/h2_server.py`` and its parts), the stream adapters, the exchange and
the HTTP/1.1 upstream.

    .venv/bin/python bench/h2cost.py                     # 20,000 requests x 5 rounds, access log off
    .venv/bin/python bench/h2cost.py --profile           # cProfile's table and Python calls per request
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import h2.config
import h2.connection
import h2.events

import memcost
from memcost import RESPONSE

memcost.use_tree_source()

HEADERS = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"bench.local"), (b":path", b"/"),
           (b"user-agent", b"h2cost"), (b"accept", b"*/*")]


class Client:
    """Encodes the requests beforehand; reads nothing back (its windows are opened wide)."""

    def __init__(self):
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        self.h2.increment_flow_control_window(2**31 - 1 - 65535)

    def opening(self) -> bytes:
        return self.h2.data_to_send()

    def batches(self, requests: int, streams: int) -> list[bytes]:
        out = []
        for _ in range(requests // streams):
            for _ in range(streams):
                self.h2.send_headers(self.h2.get_next_available_stream_id(), HEADERS, end_stream=True)
            out.append(self.h2.data_to_send())
            # the server's streams are closed as it answers: forget ours, as a client reading them would
            for stream_id in [i for i, s in self.h2.streams.items()]:
                del self.h2.streams[stream_id]
        return out


class Rig:
    def __init__(self, extra_args: list[str], tmp: Path, streams: int):
        self.streams = streams
        self.service, self.reactor = memcost.serve(tmp, extra_args)
        self.client = Client()
        self.protocol, self.transport = memcost.accept(self.service.http_factory)
        self.protocol.dataReceived(self.client.opening())
        self.upstreams: list[tuple] = []
        self._backends = memcost.Upstreams(self.reactor)
        self.play(self.client.batches(streams, streams))  # opens the backend connections
        self.check()

    def play(self, batches: list[bytes]) -> None:
        received = self.protocol.dataReceived
        clear = self.transport.clear
        upstreams = self.upstreams
        for batch in batches:
            received(batch)
            if len(self.reactor.tcpClients) != self._backends.seen:  # inline: the loop is timed
                upstreams.extend(self._backends.new())
            for protocol, transport in upstreams:
                if transport.value():
                    transport.clear()
                    protocol.dataReceived(RESPONSE)
            clear()

    def check(self) -> None:
        self.transport.clear()
        self.play(self.client.batches(self.streams, self.streams))
        # nothing reads the answers above; one more batch, read by a fresh decoder, must be 200s
        batch = self.client.batches(self.streams, self.streams)
        self.protocol.dataReceived(batch[0])
        for protocol, transport in self.upstreams:
            if transport.value():
                transport.clear()
                protocol.dataReceived(RESPONSE)
        if b"ok\n" not in self.transport.value():
            raise SystemExit(f"no answer: {self.transport.value()[:300]!r}")
        self.transport.clear()


def main() -> None:
    p = memcost.options(__doc__, args="--access-log off", lines=40, sample=False)
    p.add_argument("--streams", type=int, default=10, help="HEADERS frames per read (default 10, as h2load -m10)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingressd-h2cost-") as tmp:
        rig = Rig(memcost.server_args(args.args, Path(tmp), log_to_file=False), Path(tmp), args.streams)
        rounds = memcost.batch_rounds(rig, args.requests, args.streams, 1 if args.profile else args.rounds)
        if args.profile:
            stats = memcost.profiled(rig.play, rounds[0])
            stats.sort_stats(args.sort).print_stats(args.lines)
            print(f"Python calls per request: {stats.total_calls / args.requests:.1f}")
            return
        figures = [memcost.cpu_per(args.requests, rig.play, batches) for batches in rounds]
        rig.check()
        print(memcost.python_line(args.args, f"{args.streams} streams per read"))
        print(f"HTTP/2 (h2c) request path in memory: {memcost.per_text(figures, args.requests)}")


if __name__ == "__main__":
    main()
