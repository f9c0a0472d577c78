"""The ingress-nginx ConfigMap's client-side HTTP keys, in memory: large-client-header-buffers
(nginx's packing of a head into buffers, 414 / 400 "Request Header Or Cookie Too Large", HTTP/2's
GOAWAY), enable-underscores-in-headers with ignore-invalid-headers, keep-alive-requests on HTTP/2,
and every key applied live to the running server's shared ``ServerSettings``."""

from __future__ import annotations

from pathlib import Path

import h2.events
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import DataFrame, Frame, HeadersFrame
from twisted.internet.testing import MemoryReactorClock

from test_configmap import NAME, ROOT, _options, _read, configmap
from test_http1 import connect
from test_http2 import Pair

from ingressd.http.head_buffers import DEFAULT, HeadBuffers, fits_h2, parse_header_buffers
from ingressd.http.http1 import ServerSettings
from ingressd.plugin_manager import load_plugins

# a folder that is in mutmut's copy of the checkout too (tests/mutation.py): any manifests will do
HERE = Path(__file__).resolve().parent


# -- large-client-header-buffers -----------------------------------------------------------

@pytest.mark.parametrize("text, parsed", [("4 8k", (4, 8192)), (" 2  16K ", (2, 16384)), ("1 100", (1, 100)),
                                          ("8 1m", (8, 1024 * 1024))])
def test_large_client_header_buffers_reads_as_nginx(text, parsed):
    assert parse_header_buffers(text) == parsed
    assert DEFAULT == (4, 8192) == ServerSettings().header_buffers


@pytest.mark.parametrize("text", ["8k", "4", "four 8k", "0 8k", "4 0", "4 8x", "65 8k", "4 2m", "4 8k 1", ""])
def test_a_bad_large_client_header_buffers_is_refused(text):
    with pytest.raises(ValueError):
        parse_header_buffers(text)


def test_lines_are_packed_into_the_buffers_as_nginx_packs_them():
    buffers = HeadBuffers(2, 10)
    assert buffers.fits(6) and buffers.fits(4)  # one buffer, exactly full
    assert buffers.fits(7)  # the second
    assert not buffers.fits(4)  # 3 bytes left in the last: a line never spans two buffers
    assert not HeadBuffers(4, 10).fits(11)  # longer than any buffer
    assert HeadBuffers(4, 10).fits(10)


def test_an_http2_block_counts_names_and_values_as_nginx():
    assert fits_h2([(b"a" * 10, b"b" * 10)], 2, 10)
    assert not fits_h2([(b"a" * 11, b"")], 2, 10) and not fits_h2([(b"a", b"b" * 11)], 2, 10)
    assert fits_h2([(b"a" * 10, b"b" * 10)] * 1, 1, 20) and not fits_h2([(b"a" * 10, b"b" * 10)] * 2, 1, 20)


def _head(url_length: int, *headers: bytes) -> bytes:
    return b"GET /" + b"u" * (url_length - 1) + b" HTTP/1.1\r\nHost: x\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def test_a_request_line_longer_than_one_buffer_is_414_and_one_that_fits_is_served():
    # "GET " + the target + " HTTP/1.1\r\n" = target + 15 bytes: 100 fits a buffer of 115
    protocol, transport, _, log = connect(header_buffers=(4, 115))
    protocol.dataReceived(_head(100))
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    protocol, transport, _, log = connect(header_buffers=(4, 115))
    protocol.dataReceived(_head(101))
    assert transport.value().startswith(b"HTTP/1.1 414 ") and not log


def test_a_header_line_longer_than_one_buffer_is_nginx_s_400_request_header_or_cookie_too_large():
    # "X-A: " + value + CRLF: a value of 93 is a line of 100
    protocol, transport, _, log = connect(header_buffers=(4, 100))
    protocol.dataReceived(_head(10, b"X-A: " + b"v" * 93))
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    protocol, transport, _, log = connect(header_buffers=(4, 100))
    protocol.dataReceived(_head(10, b"X-A: " + b"v" * 94))
    reply = transport.value()
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n") and not log
    assert b"<title>400 Request Header Or Cookie Too Large</title>" in reply and b"connection: close" in reply


def test_a_head_whose_lines_do_not_fit_in_the_buffers_is_400():
    line = b"X-A: " + b"v" * 91  # 98 bytes: one buffer each
    # the request line and Host share the first buffer; three header lines take three more (the
    # head's blank line fits in the last); a fourth needs a fifth buffer
    protocol, transport, _, _ = connect(header_buffers=(4, 100))
    protocol.dataReceived(_head(10, line, line, line))
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    protocol, transport, _, _ = connect(header_buffers=(4, 100))
    protocol.dataReceived(_head(10, line, line, line, line))
    assert transport.value().startswith(b"HTTP/1.1 400 ") and b"Too Large" in transport.value()


def test_a_head_still_arriving_is_bounded_by_the_buffers():
    protocol, transport, _, _ = connect(header_buffers=(2, 100))
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: ")
    for _ in range(10):
        if transport.value():
            break
        protocol.dataReceived(b"v" * 100)
    assert transport.value().startswith(b"HTTP/1.1 400 ")


# -- enable-underscores-in-headers, ignore-invalid-headers -------------------------------------

UNDERSCORED = (b"GET / HTTP/1.1\r\nHost: x\r\nX_Tenant: a\r\nX-Kept: b\r\n"
               b"Content_Length: 5\r\nTransfer_Encoding: chunked\r\n\r\n")


def test_a_header_named_with_an_underscore_is_dropped_by_default_as_nginx():
    protocol, transport, _, log = connect()
    protocol.dataReceived(UNDERSCORED + UNDERSCORED)  # no body framed: two requests
    assert transport.value().count(b"HTTP/1.1 200 ") == 2
    request = log[0].request
    assert request.headers == [(b"host", b"x"), (b"x-kept", b"b")]
    assert not request.has_body


@pytest.mark.parametrize("settings", [{"underscores_in_headers": True}, {"ignore_invalid_headers": False}])
def test_it_is_forwarded_with_underscores_enabled_or_invalid_headers_not_ignored(settings):
    protocol, transport, _, log = connect(**settings)
    protocol.dataReceived(UNDERSCORED + UNDERSCORED)
    request = log[0].request
    assert (b"x_tenant", b"a") in request.headers and (b"content_length", b"5") in request.headers
    assert not request.has_body and transport.value().count(b"HTTP/1.1 200 ") == 2  # still frames nothing


def test_http2_drops_underscored_names_the_same_way():
    pair = Pair()
    pair.request(b"/", headers=[(b"x_tenant", b"a"), (b"x-kept", b"b")])
    assert [n for n, _ in pair.exchanges[0].request.headers] == [b"host", b"x-kept"]
    pair = Pair(underscores_in_headers=True)
    pair.request(b"/", headers=[(b"x_tenant", b"a")])
    assert (b"x_tenant", b"a") in pair.exchanges[0].request.headers


# -- keep-alive-requests on HTTP/2 -----------------------------------------------------------

def _frames(data: bytes):
    frames = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9:9 + length]))
        frames.append(frame)
        data = data[9 + length:]
    return frames


def test_keepalive_requests_ends_an_http2_connection_gracefully_after_that_many_streams():
    """nginx: the stream that reaches keepalive_requests is served; GOAWAY (NO_ERROR) names it
    as the last; then, its answer sent, the connection closes."""
    pair = Pair(keepalive_requests=2)
    first = pair.request(b"/1")
    pair.exchanges[0].respond()
    pair.receive()
    assert pair.body(first) == b"ok" and not pair.of(h2.events.ConnectionTerminated)
    second = pair.request(b"/2")
    (goaway,) = pair.of(h2.events.ConnectionTerminated)
    assert goaway.error_code == ErrorCodes.NO_ERROR and goaway.last_stream_id == second
    assert not pair.transport.disconnecting  # the second stream is still answered
    pair.exchanges[1].respond()  # (h2's client stops reading at a GOAWAY: the frames are read here)
    sent = _frames(pair.transport.value())
    assert isinstance(sent[0], HeadersFrame) and all(isinstance(f, DataFrame) for f in sent[1:])
    assert {f.stream_id for f in sent} == {second} and "END_STREAM" in sent[-1].flags
    assert b"".join(f.data for f in sent[1:]) == b"ok"
    assert pair.transport.disconnecting


def test_keepalive_requests_zero_never_ends_an_http2_connection():
    pair = Pair(keepalive_requests=0)
    for n in range(5):
        pair.request(b"/%d" % n)
    assert not pair.of(h2.events.ConnectionTerminated) and len(pair.exchanges) == 5


# -- applied live ----------------------------------------------------------------------------

def test_settings_applied_in_place_reach_an_open_connection_s_next_request():
    settings = ServerSettings()
    protocol, transport, _, log = connect()
    protocol.settings = settings  # as the listeners share theirs
    protocol.dataReceived(b"GET /1 HTTP/1.1\r\nHost: x\r\nA_B: 1\r\n\r\n")
    assert b"connection: close" not in transport.value() and log[0].request.headers == [(b"host", b"x")]
    settings.apply(keepalive_requests=2, underscores_in_headers=True)
    protocol.dataReceived(b"GET /2 HTTP/1.1\r\nHost: x\r\nA_B: 1\r\n\r\n")
    assert b"connection: close" in transport.value() and (b"a_b", b"1") in log[1].request.headers
    with pytest.raises(TypeError):
        settings.apply(max_header_bytes=1)  # derived from header_buffers


def _service(*args):
    from ingressd.server import IngressdService
    from ingressd.tap import settings_from

    argv = ["--manifests", str(HERE), "--nginx-configmap", NAME, *args]
    service = IngressdService(settings_from(_options(*argv[2:])), load_plugins(), MemoryReactorClock(), argv)

    def put(data):
        service.store.replace("test", "ConfigMap", [configmap(data)])
        service.store.set_synced("test")
        service.store.set_synced("files")
        service.reloader.rebuild()

    return service, put


def _client_side(service):
    s = service.server_settings
    return {"header": s.header_timeout, "body": s.body_timeout, "keepalive": s.keepalive_timeout,
            "requests": s.keepalive_requests, "streams": s.http2_max_concurrent_streams,
            "buffers": s.header_buffers, "underscores": s.underscores_in_headers,
            "invalid": s.ignore_invalid_headers, "server": s.identity.server, "h2": service.tls_factory.http2,
            "backend_server": s.backend_server_header}


def test_a_configmap_change_applies_the_client_side_keys_to_the_running_server():
    service, put = _service("--keepalive-requests", "50")
    shared = service.server_settings
    put({})
    options = {"header": 60.0, "body": 60.0, "keepalive": 75.0, "requests": 50, "streams": 128,
               "buffers": (4, 8192), "underscores": False, "invalid": True, "server": None, "h2": True,
               "backend_server": False}
    assert _client_side(service) == options
    put({"client-header-timeout": "7", "client-body-timeout": "8s", "keep-alive": "9",
         "keep-alive-requests": "10", "http2-max-concurrent-streams": "11",
         "large-client-header-buffers": "2 16k", "enable-underscores-in-headers": "true",
         "ignore-invalid-headers": "false", "server-tokens": "true", "use-http2": "false",
         "allow-backend-server-header": "true"})
    changed = _client_side(service)
    assert changed.pop("server").startswith(b"ingressd/")
    assert changed == {"header": 7.0, "body": 8.0, "keepalive": 9.0, "requests": 10, "streams": 11,
                       "buffers": (2, 16384), "underscores": True, "invalid": False, "h2": False,
                       "backend_server": True}
    assert service.server_settings is shared  # changed in place: every connection reads it
    assert service.tls_listener.hello_timeout == 7.0  # a TLS client's ClientHello has as long
    assert not service.reloader.configmap.warnings
    put({})  # the keys gone: the options again
    assert _client_side(service) == options


def test_http2_max_requests_and_client_header_buffer_size_ask_for_nothing():
    reading = _read({"http2-max-requests": "100", "client-header-buffer-size": "4k"})
    assert reading.usable and not reading.settings and not reading.warnings


@pytest.mark.parametrize("data", [{"large-client-header-buffers": "4 huge"}, {"keep-alive-requests": "-1"},
                                  {"client-header-timeout": "soon"}, {"http2-max-concurrent-streams": "0"},
                                  {"enable-underscores-in-headers": "perhaps"}, {"use-http2": "maybe"}])
def test_a_bad_client_side_value_refuses_the_configmap_and_keeps_the_previous(data):
    key = next(iter(data))
    reading = _read(data)
    assert not reading.usable and key in "\n".join(reading.refusals)
    service, put = _service()
    put({"keep-alive-requests": "10"})
    put({"keep-alive-requests": "20", **data})
    assert service.server_settings.keepalive_requests == 10  # the previous version stays in effect


# -- max-worker-connections --------------------------------------------------------------------

def _accept(factory, peer_port: int):
    """A connection accepted by ``factory`` as the reactor accepts one: (protocol or None, transport)."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", peer_port))
    transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 80),
                                peerAddress=IPv4Address("TCP", "127.0.0.1", peer_port))
    if protocol is not None:
        transport.protocol = protocol
        protocol.makeConnection(transport)
    return protocol, transport


def test_max_worker_connections_closes_a_connection_beyond_it_as_accepted_and_counts_it(tmp_path):
    from ingressd.testing import one_route_objects, serve_in_memory

    reports = []
    service, _ = serve_in_memory(tmp_path, one_route_objects("limit"), "--access-log", "off",
                                 "--max-worker-connections", "2")
    limit = service.connection_limit
    limit._report = reports.append
    listener = service.proxy_protocol_listeners[0]  # the HTTP listener's factory
    first, _ = _accept(listener, 40001)
    second, _ = _accept(listener, 40002)
    third, _ = _accept(listener, 40003)
    assert first is not None and second is not None and third is None  # Twisted closes the socket
    _accept(listener, 40004)
    assert (limit.open, limit.refused) == (2, 2)
    assert len(reports) == 1 and "worker_connections are not enough" in reports[0]  # once
    first.connectionLost(None)  # one closes: the next is served
    assert limit.open == 1
    fourth, _ = _accept(listener, 40005)
    assert fourth is not None and limit.open == 2
    limit.limit = 0  # live: no limit of ingressd's own
    assert _accept(listener, 40006)[0] is not None and limit.open == 3
    assert "ingressd_client_connections_refused_total 2.0" in service.metrics.render()[0].decode()


def test_max_worker_connections_from_the_configmap_applies_to_the_next_connection():
    service, put = _service("--max-worker-connections", "100")
    assert service.connection_limit.limit == 100
    put({"max-worker-connections": "3"})
    assert service.connection_limit.limit == 3 and not service.reloader.configmap.warnings
    put({"max-worker-connections": "many"})  # refused: the previous version stays
    assert service.connection_limit.limit == 3
    put({})
    assert service.connection_limit.limit == 100


# -- allow-backend-server-header ---------------------------------------------------------------

def test_the_identity_s_date_alone():
    from ingressd.http.headers import ResponseIdentity

    identity = ResponseIdentity(b"ingressd/1")
    assert identity.date_lines(784111777) == b"date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
    assert identity.date_pairs(784111777) == [(b"date", b"Sun, 06 Nov 1994 08:49:37 GMT")]
    assert identity.lines(784111777) == b"server: ingressd/1\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"


def _served_server_headers(tmp_path, backend_head: bytes, *options) -> list[bytes]:
    """The Server header lines the client gets for the backend's answer ``backend_head``."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    from ingressd.testing import one_route_objects, serve_in_memory

    service, reactor = serve_in_memory(tmp_path, one_route_objects("srv"), "--access-log", "off", *options)
    try:
        protocol, transport = _accept(service.proxy_protocol_listeners[0], 40100)
        protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: srv\r\n\r\n")
        host, port, backend_factory, _, _ = reactor.tcpClients[-1]
        backend = backend_factory.buildProtocol(IPv4Address("TCP", host, port))
        backend.makeConnection(StringTransport())
        backend.dataReceived(backend_head + b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        head = transport.value().split(b"\r\n\r\n")[0]
        assert head.startswith(b"HTTP/1.1 200 ") and head.count(b"\r\ndate: ") == 1
        return [line for line in head.split(b"\r\n") if line.lower().startswith(b"server:")]
    finally:
        service.stopService()


@pytest.mark.parametrize("options, backend_server, expected", [
    ((), True, []),  # ingress-nginx's defaults: no Server header at all
    (("--allow-backend-server-header",), True, []),  # server-tokens off clears the backend's too
    (("--server-tokens",), True, [b"server: ingressd/"]),  # ours, the backend's hidden
    (("--server-tokens", "--allow-backend-server-header"), True, [b"server: backend/2.0"]),
    (("--server-tokens", "--allow-backend-server-header"), False, [b"server: ingressd/"]),  # none: ours
])
def test_allow_backend_server_header_as_ingress_nginx_renders_it(tmp_path, options, backend_server, expected):
    head = b"HTTP/1.1 200 OK\r\n" + (b"Server: backend/2.0\r\n" if backend_server else b"")
    lines = _served_server_headers(tmp_path, head, *options)
    assert len(lines) == len(expected) and all(line.startswith(want) for line, want in zip(lines, expected))
