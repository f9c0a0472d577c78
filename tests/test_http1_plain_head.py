"""The client protocol with plain request heads read in one call (``request_head``) against the
same protocol with llhttp only: the same byte streams (generated valid and invalid heads,
pipelined, split at every offset, mutated) give the same dispatched requests, the same bytes
written to the client, the same close and keep-alive decisions and the same timeouts."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twins import twins
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.http.http1 import HTTP1ServerProtocol, ServerSettings
from ingressd.http.request_head import parse_request_head_py

try:
    from ingressd.http._request_head import parse_request_head as parse_c
except ImportError:
    parse_c = None

PARSERS = twins(parse_request_head_py, parse_c)


class Exchange:
    """Answers each request when its body is done ("echo"), at once while being created
    ("at_once"), or when the test says so ("later", for pipelining)."""

    def __init__(self, rig, protocol, request):
        self.rig, self.protocol, self.request = rig, protocol, request
        self.body = []
        rig.events.append(("dispatch", snapshot(request)))
        if rig.mode == "at_once":
            self._answer(b"at once")

    def _answer(self, text):
        body = b"%s %s %s" % (self.request.method, self.request.target, text)
        self.protocol.write_head(200, [(b"x-test", b"1")], len(body))
        self.protocol.write_body(body)
        self.protocol.finish_response()

    def body_data(self, data):
        self.rig.events.append(("body", data))
        self.body.append(data)

    def body_done(self):
        self.rig.events.append(("done", self.request.target))
        if self.rig.mode == "echo":
            self._answer(b"".join(self.body))
        elif self.rig.mode == "later":
            self.rig.waiting.append(self)

    def client_lost(self):
        self.rig.events.append(("lost", self.request.target))

    def client_side_answered(self, status, sent):
        self.rig.events.append(("answered", status, sent))

    def client_paused(self):
        self.rig.events.append(("paused",))

    def client_resumed(self):
        self.rig.events.append(("resumed",))

    def wants_tunnel(self):
        return False


_FIELDS = ("method", "target", "version", "headers", "keep_alive", "upgrade", "chunked", "content_length",
           "expect_continue", "head_bytes", "complete")


def snapshot(request):
    """The request's fields as they are now (a half-parsed one has some unset)."""
    return tuple(list(v) if isinstance(v, list) else v
                 for v in (getattr(request, name, "unset") for name in _FIELDS))


class Rig:
    def __init__(self, parse, mode="echo", **overrides):
        self.mode = mode
        self.events = []
        self.waiting = []
        self.clock = Clock()
        self.protocol = HTTP1ServerProtocol(ServerSettings(**overrides), self, self.clock)
        self.protocol.parse_plain_head = parse
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5555),
                                         hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
        self.protocol.makeConnection(self.transport)

    def __call__(self, protocol, request):
        return Exchange(self, protocol, request)

    def rejected(self, protocol, request, status, sent):
        self.events.append(("rejected", status, sent, None if request is None else snapshot(request)))

    def feed(self, chunks):
        for chunk in chunks:
            try:
                self.protocol.dataReceived(chunk)
            except Exception as exc:  # compared, not hidden
                self.events.append(("raised", type(exc).__name__))
                return
            self.events.append(("read", self.transport.value(), self.transport.disconnecting,
                                self.protocol.closed, self.protocol._reading_paused))
        for _ in range(64):  # answer what waits, in order, a bounded number of times
            if not self.waiting:
                break
            self.waiting.pop(0)._answer(b"later")
            self.events.append(("answered later", self.transport.value(), self.transport.disconnecting))
        for seconds in (1, 59, 2, 80):  # header, body and keep-alive timeouts
            self.clock.advance(seconds)
            self.events.append(("time", self.transport.value(), self.transport.disconnecting))
        return self.events


def run_both(parse, chunks, mode="echo", **overrides):
    fast = Rig(parse, mode, **overrides).feed(chunks)
    slow = Rig(None, mode, **overrides).feed(chunks)
    assert fast == slow
    return fast


PLAIN = b"GET /a?b HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nX_U: 1\r\nAccept: */*\r\n\r\n"
STREAMS = [
    PLAIN,
    PLAIN * 3,
    PLAIN + b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" + PLAIN,
    PLAIN + b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + PLAIN,
    PLAIN + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + PLAIN,
    PLAIN + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: x\r\n\r\n" + PLAIN,
    b"GET / HTTP/1.0\r\nHost: x\r\n\r\n\r\n\n\r",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n\r\n ",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na",
    b"GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n" + PLAIN,
    PLAIN + b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + PLAIN,
    PLAIN + b"GET / HTTP/1.1\r\n\r\n",
    PLAIN + b"GARBAGE\r\n\r\n" + PLAIN,
    PLAIN + b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + PLAIN,
    PLAIN + b"PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok" + PLAIN,
    PLAIN + b"PUT /e HTTP/1.1\r\nHost: x\r\nExpect: nothing\r\n\r\n",
    PLAIN + b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    PLAIN + b"\r\n" + PLAIN,
    PLAIN + b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" + PLAIN,
    PLAIN + b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"v" * 9000 + b"\r\n\r\n" + PLAIN,
    PLAIN + b"GET /" + b"p" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    PLAIN + b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 120 + b"\r\n" + PLAIN,
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 99 + b"X_B: 1\r\n\r\n" + PLAIN,
]


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize("mode", ["echo", "at_once", "later"])
@pytest.mark.parametrize("stream", range(len(STREAMS)))
def test_streams_split_at_every_offset_are_answered_alike(parse, mode, stream):
    data = STREAMS[stream]
    run_both(parse, [data], mode)
    step = 1 if len(data) < 600 else 97  # the long ones: every 97th offset (bounded time)
    for cut in range(1, len(data), step):
        run_both(parse, [data[:cut], data[cut:]], mode)


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize("overrides", [
    {"keepalive_requests": 2},
    {"max_pipelined": 1},
    {"max_headers": 3},
    {"header_buffers": (2, 64)},
    {"underscores_in_headers": True},
    {"ignore_invalid_headers": False},
])
def test_settings_are_applied_alike(parse, overrides):
    for mode in ("echo", "at_once", "later"):
        for stream in STREAMS:
            run_both(parse, [stream], mode, **overrides)


def test_a_plain_head_does_not_go_through_llhttp():
    rig = Rig(parse_c or parse_request_head_py)

    class Refuses:
        def feed_data(self, data):
            raise AssertionError("llhttp was fed %r" % data)

    llhttp, rig.protocol.parser = rig.protocol.parser, Refuses()
    rig.protocol.dataReceived(PLAIN * 3)
    assert rig.transport.value().count(b"HTTP/1.1 200 OK") == 3
    rig.protocol.parser = llhttp
    rig.protocol.dataReceived(PLAIN + b"GET / HT")  # the partial head goes to llhttp
    rig.protocol.dataReceived(b"TP/1.1\r\nHost: x\r\n\r\n")
    assert rig.transport.value().count(b"HTTP/1.1 200 OK") == 5


# -- generated streams -----------------------------------------------------------------------------

_NAMES = [b"Host", b"User-Agent", b"X_U", b"Content-Length", b"Connection", b"Transfer-Encoding",
          b"Upgrade", b"Expect", b"Proxy-Connection", b"Accept", b"Host "]
_VALUES = [b"x", b"", b"0", b"2", b"close", b"keep-alive", b"chunked", b"websocket", b"Upgrade",
           b"100-continue", b"v ", b"\x80", b"v\x00"]


@st.composite
def messages(draw):
    method = draw(st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"GE"]))
    target = draw(st.sampled_from([b"/", b"/a?b", b"/x#f", b"*", b"/\x7f", b"", b"/" + b"p" * 70]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0"]))
    lines = [method + b" " + target + b" " + version]
    if draw(st.booleans()):
        lines.append(b"Host: x")
    for _ in range(draw(st.integers(0, 4))):
        lines.append(draw(st.sampled_from(_NAMES)) + b": " + draw(st.sampled_from(_VALUES)))
    body = draw(st.sampled_from([b"", b"", b"ab", b"2\r\nab\r\n0\r\n\r\n"]))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@st.composite
def streams(draw):
    data = b"".join(draw(st.lists(messages(), min_size=1, max_size=4)))
    for kind, at, byte in draw(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10 ** 6),
                                                  st.integers(0, 255)), max_size=2)):
        if not data:
            break
        at %= len(data)
        data = (data[:at] + bytes([byte]) + data[at + 1:] if kind == 0 else
                data[:at] + bytes([byte]) + data[at:] if kind == 1 else data[:at] + data[at + 1:])
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=3))))
    chunks = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)]) if data[a:b]]
    return chunks


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(streams(), st.sampled_from(["echo", "at_once", "later"]),
       st.sampled_from([{}, {"max_headers": 3}, {"header_buffers": (2, 96)}, {"keepalive_requests": 2},
                        {"underscores_in_headers": True}, {"max_pipelined": 1}]),
       st.booleans())
def test_generated_streams_are_answered_alike(chunks, mode, overrides, use_c):
    parse = parse_c if use_c and parse_c is not None else parse_request_head_py
    run_both(parse, chunks, mode, **overrides)


def test_the_one_call_head_is_on_where_it_is_faster():
    """The C accelerator when built; the Python twin only where the request parser is Python
    too (PyPy's default); with llhttp and no accelerator, llhttp alone (it is faster)."""
    from ingressd.http import parser, request_head

    expected = (request_head.parse_request_head
                if request_head.ACCELERATED or parser.NAME == "python" else None)
    assert HTTP1ServerProtocol.parse_plain_head is expected


@pytest.mark.parametrize("parse", PARSERS)
def test_a_plain_heads_request_has_every_field_set(parse):
    """The one-call head makes its Request without ``__init__``: every slot is set all the same
    (read here for a request dispatched at once and one queued behind it), and the fields a
    body would use say there is none, as llhttp's request does."""
    from ingressd.http.http1 import Request

    rig = Rig(parse, "later")
    rig.protocol.dataReceived(PLAIN + PLAIN.replace(b"/a?b", b"/q"))
    first = rig.waiting[0].request
    queued = rig.protocol._queue[0]
    assert (first.target, queued.target) == (b"/a?b", b"/q")
    for request in (first, queued):
        values = {name: getattr(request, name) for name in Request.__slots__}  # none unset
        assert not request.has_body and not values["pending_body"] and values["pending_bytes"] == 0
        assert values["complete"] and not values["upgrade"] and not values["expect_continue"]
