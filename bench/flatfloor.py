#!/usr/bin/env python3
"""What a flat keep-alive path could cost at best: a measuring prototype, not a server path.

``bench/pathcost.py`` measures the real request path in memory. This script plays the same
requests (a keep-alive GET to a route without features, answered with Content-Length by a
pooled backend connection) through a *minimal* flat state machine built from the request
path's own helpers — llhttp with the callbacks its validation needs, ``pathnorm.normalize``,
the route table's ``match``, ``ForwardingPolicy.decide``, the hop-by-hop filters, the Date
line, two ``Deadline`` sets and ``Metrics.observe`` — with no Exchange, no chain and one
write per connection per request; a second, checked prototype adds the client side's checks
and accounting that a flat path could not skip (``CheckedFlatClient``). Both leave out what a
real flat path would also need (pipelining, bodies, error answers, timeouts' callbacks, the
access log's record, retries), so their figures are floors: the most a flat path made of
today's helpers could save.

Before measuring it checks that each prototype sends the backend and the client the same
bytes as the general path (the request id aside: random in both).

    .venv/bin/python bench/flatfloor.py            # the general path and both floors, interleaved
    .venv/bin/python bench/flatfloor.py --sample   # where the checked floor's time goes
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import httptools as parsing

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import memcost  # noqa: E402
from memcost import RESPONSE, sample  # noqa: E402
from pathcost import REQUEST, Rig  # noqa: E402

from ingressd.http.deadline import Deadline  # noqa: E402
from ingressd.http.headers import HOP_BY_HOP, from_backend, serialize  # noqa: E402
from ingressd.http.http1 import _STATUS_LINES  # noqa: E402
from ingressd.http.pathnorm import lenient_views, normalize, split_target  # noqa: E402
from ingressd.config.routing import host_of  # noqa: E402
from ingressd.proxy.forwarding import FORWARDED, SPOOFABLE  # noqa: E402

_DROP = HOP_BY_HOP | FORWARDED
_RID = re.compile(rb"x-request-id: [0-9a-f]{32}")


class _Record:
    """What the metrics observer reads of a finished request (the Exchange's names)."""

    __slots__ = ("path", "entry", "route", "status", "method", "started", "bytes_sent", "request_bytes",
                 "upstream_started", "upstream_ended", "retries", "answered_by")

    def __init__(self, entry, method, started, request_bytes):
        self.entry = entry
        self.route = entry.route
        self.method = method
        self.started = started
        self.request_bytes = request_bytes
        self.status = 0
        self.bytes_sent = 0
        self.upstream_started = started
        self.upstream_ended = 0.0
        self.retries = 0
        self.answered_by = ""


class FlatBackend:
    """One pooled backend connection: its response parsed, relayed in one client write."""

    def __init__(self, transport, clock):
        self.transport = transport
        self.clock = clock
        self.parser = parsing.HttpResponseParser(self)
        self.timer = Deadline(clock, self._timed_out)
        self.client = None

    def _timed_out(self):
        pass

    def start(self, client, head: bytes, read_timeout: float):
        self.client = client
        self.headers = []
        self.body = []
        self.length = None
        self.transport.write(head)
        self.timer.set(read_timeout)

    def dataReceived(self, data: bytes):
        self.parser.feed_data(data)

    def on_header(self, name, value):
        self.headers.append((name.lower(), value))

    def on_headers_complete(self):
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        for name, value in self.headers:
            if name == b"content-length":
                self.length = int(value)

    def on_body(self, data):
        self.body.append(data)

    def on_message_complete(self):
        self.timer.clear()
        client, self.client = self.client, None
        client.answered(self, self.status, from_backend(self.headers), self.length, b"".join(self.body))


class FlatClient:
    """One client connection: a GET/HEAD without a body, straight to a pooled connection."""

    def __init__(self, transport, rig):
        service = rig.service
        self.transport = transport
        self.clock = rig.reactor
        self.proxy = service.proxy
        self.state = service.state
        self.identity = rig.client.settings.identity
        self.settings = rig.client.settings
        self.observe = service.metrics.observe
        self.idle = [rig.flat_backend]
        self.parser = parsing.HttpRequestParser(self)
        self.timer = Deadline(self.clock, self._timed_out)
        self.peer_ip = "127.0.0.1"
        self.server_port = 8080
        self.trusted = None

    def _timed_out(self):
        pass

    def dataReceived(self, data: bytes):
        self.parser.feed_data(data)

    def on_message_begin(self):
        self.target = b""
        self.headers = []
        self.size = 0

    def on_url(self, url):
        self.target += url

    def on_header(self, name, value):
        self.size += len(name) + len(value) + 4
        self.headers.append((name.lower(), value))

    def on_headers_complete(self):
        parser = self.parser
        method = parser.get_method()
        version = parser.get_http_version()
        keep_alive = parser.should_keep_alive()
        host = rid = None
        spoofed = forwarded = False
        for name, value in self.headers:
            if name == b"host":
                host = value
            elif name == b"x-request-id":
                rid = value
            elif name.startswith(b"x-forwarded-"):
                forwarded = True
                spoofed = spoofed or name not in FORWARDED
            elif name in SPOOFABLE:
                spoofed = True
        self.timer.clear()
        started = self.clock.seconds()
        raw_path, query = split_target(self.target)
        path, upstream_path = normalize(raw_path)
        host_name = host_of(host)
        proxy = self.proxy
        policy = proxy.settings.forwarding
        from ingressd.http.headers import Headers
        headers = Headers(self.headers)
        _, _, _, added = policy.decide(headers, host, rid, spoofed, forwarded, self.peer_ip, "http",
                                       self.server_port, proxy.is_trusted(self), b"")
        entry = self.state.table.match(host_name, path, None)
        lines = [pair for pair in headers.pairs if pair[0] not in _DROP]
        lines.extend(added)
        self.record = _Record(entry, method, started, len(self.target) + self.size + len(method) + 14)
        self.record.path = path
        self.method = method
        self.keep_alive = keep_alive and version == "1.1"
        backend = self.idle.pop()
        entry.balancer.pick(())  # the endpoint: one here, its pooled connection below
        self.record.upstream_started = started
        backend.start(self, b"%s %s HTTP/1.1\r\n%s\r\n" % (method, self.target, serialize(lines)),
                      entry.upstream.read_timeout)

    def on_message_complete(self):
        pass

    def answered(self, backend, status, pairs, length, body):
        self.idle.append(backend)
        record = self.record
        now = self.clock.seconds()
        record.upstream_ended = now
        record.status = status
        record.bytes_sent = len(body)
        line = b"HTTP/1.1 %d OK\r\n" % status
        self.transport.write(b"%scontent-length: %d\r\n%s%s\r\n%s" % (
            line, length, self.identity.lines(now), serialize(pairs), body))
        self.timer.set(self.settings.keepalive_timeout)
        self.observe(record)


class CheckedFlatClient(FlatClient):
    """The same, plus what a flat path could not skip: nginx's header-buffer accounting, the
    header count and underscore rules, the request line's limit, the version, Host, framing
    and Expect checks, the keep-alive request count, the split-view check (``lenient_views``),
    the header timer set at each head and cleared at dispatch, and ``write_head``'s choices
    (status line table, HEAD, keep-alive framing, backend Server)."""

    def __init__(self, transport, rig):
        super().__init__(transport, rig)
        self.requests = 0

    def on_message_begin(self):
        self.target = b""
        self.headers = []
        self.size = 0
        self.packed = 0
        limits = self.settings.header_buffers
        self.one_buffer = limits[1]
        self.checked = False
        self.timer.set(self.settings.header_timeout)

    def on_url(self, url):
        self.target += url
        if len(self.target) > self.settings.max_url_bytes:
            raise ValueError("414")

    def on_header(self, name, value):
        size = len(name) + len(value) + 4
        self.size += size
        if not self.checked:
            self.checked = True
            self.packed += len(self.parser.get_method() or b"") + len(self.target) + 12
        packed = self.packed + size
        if packed > self.one_buffer:
            raise ValueError("494: a flat path would hand this head back")
        self.packed = packed
        headers = self.headers
        settings = self.settings
        if len(headers) >= settings.max_headers:
            raise ValueError("431")
        if b"_" in name and settings.drops_underscores:
            return
        headers.append((name.lower(), value))

    def on_headers_complete(self):
        parser = self.parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise ValueError("505")
        hosts = 0
        length = None
        for name, value in self.headers:
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" or name == b"expect":
                raise ValueError("not for the flat path")
        if hosts != 1 or length or parser.should_upgrade():
            raise ValueError("not for the flat path")
        self.requests += 1
        limit = self.settings.keepalive_requests
        self.last = bool(limit and self.requests >= limit)
        super().on_headers_complete()
        if lenient_views(self.record.path):
            raise ValueError("not for the flat path")

    def answered(self, backend, status, pairs, length, body):
        self.idle.append(backend)
        record = self.record
        now = self.clock.seconds()
        record.upstream_ended = now
        record.status = status
        record.bytes_sent = len(body)
        line = _STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status
        head_only = self.method == b"HEAD"
        framing = b"" if status < 200 or status in (204, 304) or length is None else b"content-length: %d\r\n" % length
        if not self.keep_alive or self.last:
            framing += b"connection: close\r\n"
        settings = self.settings
        if settings.backend_server_header and any(name == b"server" for name, _ in pairs):
            own = self.identity.date_lines(now)
        else:
            own = self.identity.lines(now)
        self.transport.write(b"%s%s%s%s\r\n%s" % (line, framing, own, serialize(pairs), b"" if head_only else body))
        self.timer.set(self.settings.keepalive_timeout)
        self.observe(record)


def _same_bytes(rig: Rig, client: FlatClient, backend: FlatBackend) -> None:
    """The prototype sends what the general path sends (the random request id aside)."""
    rig.client.dataReceived(REQUEST)
    rig.upstream.dataReceived(RESPONSE)
    general = (rig.upstream_transport.value(), rig.client_transport.value())
    rig.upstream_transport.clear()
    rig.client_transport.clear()
    client.dataReceived(REQUEST)
    backend.dataReceived(RESPONSE)
    flat = (backend.transport.value(), client.transport.value())
    backend.transport.clear()
    client.transport.clear()
    for one, other, side in zip(general, flat, ("backend", "client")):
        if _RID.sub(b"x-request-id: *", one) != _RID.sub(b"x-request-id: *", other):
            raise SystemExit(f"the prototype differs from the general path ({side}):\n{one!r}\n{other!r}")


class Floor:
    """Plays the requests through one prototype client and its backend connection."""

    def __init__(self, client, backend):
        self.client, self.backend = client, backend

    def run(self, count: int) -> None:
        feed_client, feed_backend = self.client.dataReceived, self.backend.dataReceived
        client_clear, backend_clear = self.client.transport.clear, self.backend.transport.clear
        for _ in range(count):
            feed_client(REQUEST)
            feed_backend(RESPONSE)
            client_clear()
            backend_clear()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--sample", action="store_true", help="CPU-time samples of the floor, by function")
    args = p.parse_args()
    from twisted.internet.testing import StringTransport

    with tempfile.TemporaryDirectory() as tmp:
        # One connection each way carries every request: no per-connection request limits.
        rig = Rig(["--access-log", "off", "--keepalive-requests", "0", "--upstream-keepalive-requests", "0"],
                  Path(tmp))
        rig.run(2000)  # warm-up
        subjects = {"general": rig}
        pairs = []
        for name, kind in (("lean floor", FlatClient), ("checked floor", CheckedFlatClient)):
            rig.flat_backend = backend = FlatBackend(StringTransport(), rig.reactor)
            client = kind(StringTransport(), rig)
            _same_bytes(rig, client, backend)
            subjects[name] = floor = Floor(client, backend)
            floor.run(2000)
            pairs.append((client, backend))
        floor = subjects["checked floor"]
        if args.sample:
            per, own, total, taken = sample(floor, args.requests * args.rounds)
            print(f"{per:.1f} µs CPU per request while sampled; {taken} samples")
            for key, count in own.most_common(25):
                print(f"{per * count / taken:8.2f} {per * total[key] / taken:9.2f}  {key}")
            return
        times: dict[str, list[float]] = {name: [] for name in subjects}
        for _ in range(args.rounds):
            for name, subject in subjects.items():
                times[name].append(memcost.cpu_per(args.requests, subject.run, args.requests))
        for client, backend in pairs:
            _same_bytes(rig, client, backend)  # still answering, all of them
        for name, values in times.items():
            print(f"{name}: {memcost.per_text(values, args.requests)}")


if __name__ == "__main__":
    main()
