"""``HTTP1Connection``'s one-call response head (``_fast_head``) against llhttp's callbacks.

The same backend byte streams go through the real server in memory (the rig of
``test_flat_path``) twice, with ``HTTP1Connection.fast_head`` off (every response through
llhttp) and on: generated heads and bodies, split into reads at any offsets, keep-alive and
close, HEAD, 204 and 304 answers, interim answers, bytes past the response, answers cut
short. What the backend receives, what the client receives, what the observers read of the
exchange and what becomes of the backend connection (kept in the pool, closed, aborted; and
the next request on it) must be the same.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from ingressd.proxy import exchange as exchange_module
from ingressd.proxy import http1_upstream
from ingressd.proxy.http1_upstream import HTTP1Connection
from ingressd.proxy.response_head import parse_response_relay, parse_response_relay_py
from test_flat_path import _DATE, _RID, Rig, _observed, get

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    rig = Rig(tmp_path_factory.mktemp("fasthead"), "--keepalive-requests", "0")
    yield rig
    rig.service.stopService()
    HTTP1Connection.fast_head = _DEFAULT


_DEFAULT = HTTP1Connection.fast_head


def _one(rig: Rig, request: bytes, reads: list[bytes], backend=None, transport=None) -> tuple:
    """One request; the backend answers with ``reads`` (while it is read), then closes if
    the exchange still waits. Returns what everyone saw and the connection's fate."""
    del rig.seen[:]
    clients_before = len(rig.reactor.tcpClients)
    client, client_transport = rig.client()
    client.dataReceived(request)
    if len(rig.reactor.tcpClients) > clients_before:
        backend, transport = rig.connect_new()
    for data in reads:
        if transport.disconnecting or not backend.connected:
            break
        backend.dataReceived(data)
    if backend.connected and backend.exchange is not None:
        backend.connectionLost(Failure(ConnectionDone()))
    rig.reactor.advance(0)
    sent = _RID.sub(rb"\1*", transport.value())
    transport.clear()
    answer = _DATE.sub(rb"\1*", _RID.sub(rb"\1*", client_transport.value()))
    records = [_observed(exchange) for exchange in rig.seen]
    client.connectionLost(Failure(ConnectionDone()))
    fate = (transport.disconnecting, transport.disconnected, rig.pool.idle_count(), backend.served)
    return sent, answer, records, fate, backend, transport


def play(rig: Rig, fast: bool, request: bytes, reads: list[bytes], then: list[bytes], flat: bool = True) -> tuple:
    """``request`` answered with ``reads`` on a pooled connection; then, when that
    connection is idle again, another GET on it answered with ``then``. ``flat``: the
    exchange's plain lane allowed (the route's permitting), else its general steps."""
    HTTP1Connection.fast_head = fast
    rig.service.proxy.flat = flat
    try:
        backend, transport = rig.pooled()
        first = _one(rig, request, reads, backend, transport)
        second = None
        if rig.pool.idle_count() and backend.connected and not transport.disconnecting:
            second = _one(rig, get(), then, backend, transport)[:4]
        return first[:4], second
    finally:
        HTTP1Connection.fast_head = _DEFAULT


def both(rig: Rig, request: bytes, reads: list[bytes], then: list[bytes] = (OK,), flat: bool = True) -> tuple:
    slow = play(rig, False, request, reads, list(then), flat)
    fast = play(rig, True, request, reads, list(then), flat)
    assert fast == slow
    return fast


def split(data: bytes, *offsets: int) -> list[bytes]:
    cuts = [0, *sorted(min(max(o, 0), len(data)) for o in offsets), len(data)]
    return [data[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]


@pytest.mark.parametrize("response", [
    pytest.param(OK, id="ok"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", id="empty"),
    pytest.param(b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n", id="204"),
    pytest.param(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", id="304-with-length"),
    pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n", id="1.0"),
    pytest.param(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nok\n", id="1.0-keep-alive"),
    pytest.param(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nok\n", id="close"),
    pytest.param(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nok\n", id="close-delimited"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n", id="chunked"),
    pytest.param(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n", id="interim"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", id="cut-short"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                 id="a-second-response"),
    pytest.param(OK + b"HTTP/1.1 200 OK\r\nCont", id="a-partial-second-head"),
    pytest.param(OK + b"\r\n", id="crlf-after"),
    pytest.param(OK + b"X", id="garbage-after"),
    pytest.param(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nok\nX", id="garbage-after-close"),
    pytest.param(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nok\n\r\n", id="crlf-after-close"),
    pytest.param(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", id="502"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-Accel-Buffering: yes\r\nContent-Length: 3\r\n\r\nok\n", id="accel-buffering"),
    pytest.param(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Y\r\nX-Y: 1\r\nKeep-Alive: timeout=5\r\n"
                 b"Content-Length: 3\r\n\r\nok\n", id="connection-tokens"),
])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_answers_split_everywhere(rig, response, method):
    """Every response, split into two reads at every offset (and whole)."""
    request = get(method=method)
    for at in range(len(response) + 1):
        both(rig, request, split(response, at))


def test_a_body_in_many_reads_then_bytes_past_it(rig):
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"
    for extra in (b"", b"\r\n", b"X", OK, OK[:20], b"HTTP/1.1 100 Continue\r\n\r\n"):
        for close in (False, True):
            head = response.replace(b"OK\r\n", b"OK\r\nConnection: close\r\n") if close else response
            stream = head + extra
            for at in range(len(head) - 10, len(stream) + 1):
                both(rig, get(), split(stream, at - 3, at))


def test_the_fast_path_is_taken(rig, monkeypatch):
    """A plain answer read whole never reaches llhttp, nor the exchange's own header filter
    (the differential tests above would pass with a fast path that is never taken)."""
    fed = []
    filtered = []
    original = HTTP1Connection._feed
    original_filter = exchange_module.from_backend

    def spy(self, data):
        fed.append(data)
        return original(self, data)

    def filter_spy(headers):
        filtered.append(headers)
        return original_filter(headers)

    monkeypatch.setattr(HTTP1Connection, "_feed", spy)
    monkeypatch.setattr(exchange_module, "from_backend", filter_spy)
    first, second = play(rig, True, get(), [OK], [OK])
    assert first[1].endswith(b"ok\n") and second[1].endswith(b"ok\n")
    assert fed == [] and filtered == []
    play(rig, True, get(), [OK[:10], OK[10:]], [OK])
    assert fed == [OK[:10], OK[10:]]  # the head in pieces: llhttp's
    assert len(filtered) == 1


# -- generated -------------------------------------------------------------------------------

_NAMES = st.sampled_from([b"Server", b"Date", b"Content-Type", b"X-Accel-Buffering", b"Keep-Alive", b"X-Y", b"TE",
                          b"Trailer", b"Set-Cookie", b"ETag", b"X-Pad", b"Cache-Control", b"x-accel-redirect"])
_VALUES = st.sampled_from([b"", b"x", b"yes", b"no", b"text/plain", b"a=b; Path=/", b"  spaced  ", b"\x80\xff", b"X-Y"])


@st.composite
def streams(draw):
    method = draw(st.sampled_from(["GET", "GET", "HEAD"]))
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.0"]))
    status = draw(st.sampled_from([200, 200, 201, 204, 304, 404, 500, 502, 503]))
    fields = [n + b": " + v for n, v in draw(st.lists(st.tuples(_NAMES, _VALUES), max_size=5))]
    connection = draw(st.sampled_from([None, None, b"close", b"keep-alive", b"keep-alive, X-Y"]))
    if connection is not None:
        fields.append(b"Connection: " + connection)
    body = draw(st.sampled_from([b"", b"ok\n", b"x" * 70]))
    framing = draw(st.sampled_from(["length", "length", "short", "chunked", "none"]))
    if framing in ("length", "short"):
        fields.insert(draw(st.integers(0, len(fields))), b"Content-Length: %d" % (len(body) + (framing == "short")))
        payload = body
    elif framing == "chunked":
        fields.append(b"Transfer-Encoding: chunked")
        payload = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    else:
        payload = body
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" if draw(st.integers(0, 9)) == 0 else b""
    head = b"HTTP/%s %d Whatever\r\n%s\r\n" % (version, status, b"".join(f + b"\r\n" for f in fields))
    extra = draw(st.sampled_from([b""] * 6 + [b"\r\n", b"X", OK, OK[:25]]))
    stream = interim + head + payload + extra
    cuts = draw(st.lists(st.integers(0, len(stream)), max_size=3))
    return get(method=method), split(stream, *cuts)


@pytest.fixture(params=sorted({parse_response_relay, parse_response_relay_py}, key=lambda f: f.__module__ or ""),
                ids=lambda f: "python" if f is parse_response_relay_py else "c")
def implementation(request, monkeypatch):
    """The connection's head parser: the C accelerator (when built) and the Python twin."""
    monkeypatch.setattr(http1_upstream, "parse_response_relay", request.param)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(streams())
def test_generated_streams(rig, implementation, case):
    request, reads = case
    both(rig, request, reads)


@pytest.fixture(scope="module")
def featured(tmp_path_factory):
    """A route with a response feature (CORS headers) and the backend's Server passed on."""
    rig = Rig(tmp_path_factory.mktemp("fasthead-featured"), "--keepalive-requests", "0",
              "--allow-backend-server-header", annotations={"nginx.ingress.kubernetes.io/enable-cors": "true"})
    yield rig
    rig.service.stopService()


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(streams())
def test_generated_streams_in_the_general_steps(rig, featured, case):
    """The exchange's general steps use the connection's filtered headers too: a plain
    route with the lane off, and a route with a response feature."""
    request, reads = case
    both(rig, request, reads, flat=False)
    both(featured, request, reads)
