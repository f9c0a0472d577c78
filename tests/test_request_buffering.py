"""proxy-request-buffering and client-body-buffer-size: the request body held whole (spilling to
a temporary file beyond memory) or streamed to the backend as it arrives, with backpressure,
the body limit and no retry once a byte was sent. In memory: fake client side and backend."""

from __future__ import annotations

import os

import pytest

from fakes import features_for
from ingressd.config.entries import RouteEntry
from ingressd.config.model import Backend, ObjectRef, Route
from ingressd.features import Phase, UpstreamSettings
from ingressd.proxy import exchange as exchange_module
from ingressd.proxy.spill import SpillBuffer
from ingressd.proxy.upstream import STREAMED, UpstreamError
from ingressd_plugins import buffering
from test_exchange import ONE, TWO, FakeClient, FakeConnection, proxy_for, request, send


class Settings:
    phase = Phase.PROXY

    def __init__(self, **fields):
        self.upstream = UpstreamSettings(**fields)


def entry(**fields):
    route = Route("shop.test", "/", "Prefix", Backend("default", "web", "80", (ONE, TWO)),
                  ObjectRef("Ingress", "default", "shop"))
    return RouteEntry(route, [Settings(**fields)] if fields else ())


def body_of(connection):
    return connection.sent.partition(b"\r\n\r\n")[2]


# -- the spill buffer shared by both directions ------------------------------------------------


def _drain(buffer, most=4):
    out = []
    for _ in range(1000):  # bounded
        piece = buffer.take(most)
        if not piece:
            return b"".join(out)
        out.append(piece)
    raise AssertionError("never ended")


def test_spill_keeps_order_across_memory_and_file_while_adding_and_taking(tmp_path):
    buffer = SpillBuffer(memory_bound=4, directory=str(tmp_path))
    buffer.add(b"abc")
    buffer.add(b"defg")  # beyond 4 bytes: the file
    assert buffer.spilled and buffer.files_opened == 1 and (buffer.in_memory, buffer.in_file) == (3, 4)
    assert buffer.take(2) == b"ab"
    buffer.add(b"hi")  # the file holds older bytes: after them, in the file
    assert buffer.in_file == 6
    assert _drain(buffer) == b"cdefghi" and buffer.size == 0
    buffer.add(b"jk")  # the file was read to its end: memory again
    assert (buffer.in_memory, buffer.in_file) == (2, 0)
    assert _drain(buffer) == b"jk"
    buffer.close()
    assert not buffer.spilled


def test_spill_file_is_unlinked_and_in_the_directory_asked(tmp_path):
    buffer = SpillBuffer(memory_bound=0, directory=str(tmp_path))
    buffer.add(b"x" * 10)
    fd = buffer._file.fileno()
    target = os.readlink(f"/proc/self/fd/{fd}")
    assert target.startswith(str(tmp_path)) and not os.listdir(tmp_path)  # anonymous: no name left
    buffer.close()


def test_spill_bounds():
    unbounded = SpillBuffer(memory_bound=4)
    unbounded.add(b"x" * 100)
    assert unbounded.capacity is None and not unbounded.full
    unbounded.close()
    memory_only = SpillBuffer(memory_bound=4, file_bound=0)
    memory_only.add(b"abcdef")  # no file allowed: memory beyond the bound, and full
    assert memory_only.full and not memory_only.spilled and _drain(memory_only) == b"abcdef"
    with_file = SpillBuffer(memory_bound=4, file_bound=4)
    with_file.add(b"abcdefg")
    assert not with_file.full and with_file.spilled
    with_file.add(b"h")
    assert with_file.full
    assert _drain(with_file) == b"abcdefgh"
    with_file.close()


# -- buffering on (the default) ----------------------------------------------------------------


def test_a_body_beyond_client_body_buffer_size_spills_to_a_temporary_file_in_the_temp_path(tmp_path):
    proxy, pool, _ = proxy_for(entry(body_buffer_size=8))
    proxy.settings.temp_dir = str(tmp_path)
    client, exchange = send(proxy, request(method=b"POST", content_length=20))
    exchange.body_data(b"0123456")
    assert not exchange._buffer.spilled
    exchange.body_data(b"789abcdefghij")
    assert exchange._buffer.spilled and exchange._buffer.files_opened == 1
    assert pool.asked == []  # whole first
    exchange.body_done()
    connection = pool.connect()
    assert body_of(connection) == b"0123456789abcdefghij" and connection.ended


def test_the_default_keeps_a_small_body_in_memory():
    proxy, pool, _ = proxy_for(entry())
    client, exchange = send(proxy, request(method=b"POST", content_length=3))
    exchange.body_data(b"abc")
    assert not exchange._buffer.spilled


# -- buffering off: streamed --------------------------------------------------------------------


def test_streamed_the_backend_is_asked_at_once_and_gets_the_body_as_it_arrives():
    proxy, pool, _ = proxy_for(entry(request_buffering=False))
    client, exchange = send(proxy, request(method=b"POST", content_length=6))
    assert len(pool.asked) == 1  # before any byte of the body
    connection = pool.connect()
    assert connection.body_length == 6  # the client's length is kept
    exchange.body_data(b"abc")
    assert body_of(connection) == b"abc" and not connection.ended
    exchange.body_data(b"def")
    exchange.body_done()
    assert body_of(connection) == b"abcdef" and connection.ended


def test_streamed_bytes_that_arrive_before_the_connection_follow_it():
    proxy, pool, _ = proxy_for(entry(request_buffering=False))
    client, exchange = send(proxy, request(method=b"POST", content_length=6))
    exchange.body_data(b"abc")
    connection = pool.connect()
    assert body_of(connection) == b"abc"
    exchange.body_data(b"def")
    exchange.body_done()
    assert body_of(connection) == b"abcdef" and connection.ended


def chunked_request(**kwargs):
    req = request(method=b"POST", headers=[(b"transfer-encoding", b"chunked")], **kwargs)
    req.chunked, req.complete = True, False
    return req


def test_a_chunked_body_streamed_goes_chunked_and_held_goes_with_its_length():
    proxy, pool, _ = proxy_for(entry(request_buffering=False))
    client, exchange = send(proxy, chunked_request())
    assert pool.connect().body_length == STREAMED
    proxy, pool, _ = proxy_for(entry())
    client, exchange = send(proxy, chunked_request())
    exchange.body_data(b"hello")
    exchange.body_done()
    assert pool.connect().body_length == 5


def test_a_chunked_body_to_an_http10_backend_is_held_whole_as_nginx_does():
    proxy, pool, _ = proxy_for(entry(request_buffering=False, http_version="1.0"))
    client, exchange = send(proxy, chunked_request())
    exchange.body_data(b"hello")
    assert pool.asked == []
    exchange.body_done()
    assert pool.connect().body_length == 5


def test_expect_continue_is_answered_when_streaming():
    proxy, pool, _ = proxy_for(entry(request_buffering=False))
    req = request(method=b"POST", content_length=3, headers=[(b"expect", b"100-continue")])
    req.expect_continue = True
    client, exchange = send(proxy, req)
    assert client.continued and len(pool.asked) == 1


class Backpressure(FakeConnection):
    """A backend that takes nothing more after each piece until resumed."""

    def send_body(self, data):
        super().send_body(data)
        self.exchange.upstream_write_paused()


def test_a_slow_backend_pauses_the_client_and_its_catching_up_resumes_it(monkeypatch):
    monkeypatch.setattr(exchange_module, "_STREAM_WINDOW", 8)
    proxy, pool, _ = proxy_for(entry(request_buffering=False))
    client, exchange = send(proxy, request(method=b"POST", content_length=20))
    (host, port), _, on_ready, _ = pool.asked[-1]
    connection = Backpressure(pool, ONE, False)
    on_ready(connection)
    exchange.body_data(b"abcd")  # sent; the backend pushes back
    assert body_of(connection) == b"abcd" and client.paused == 0
    exchange.body_data(b"efgh")
    assert client.paused == 0  # 4 held
    exchange.body_data(b"ijkl")  # 8 held: the client waits
    assert client.paused == 1 and body_of(connection) == b"abcd"
    for _ in range(10):  # bounded: one piece per resume
        if client.paused == 0:
            break
        exchange.upstream_write_resumed()
    assert client.paused == 0 and body_of(connection).startswith(b"abcdefgh")
    exchange.body_data(b"mnopqrst")
    exchange.body_done()
    for _ in range(10):
        if connection.ended:
            break
        exchange.upstream_write_resumed()
    assert body_of(connection) == b"abcdefghijklmnopqrst" and connection.ended


def test_a_streamed_body_that_turns_out_too_large_aborts_the_backend_and_is_413():
    proxy, pool, finished = proxy_for(entry(request_buffering=False, max_body_size=5))
    client, exchange = send(proxy, chunked_request())
    connection = pool.connect()
    exchange.body_data(b"abcd")
    assert body_of(connection) == b"abcd"
    exchange.body_data(b"ef")
    assert connection.aborted and client.head[0] == 413 and client.keep_alive_off
    assert finished and finished[0].status == 413


def test_a_streamed_body_is_not_retried_once_sent():
    proxy, pool, finished = proxy_for(entry(request_buffering=False))
    client, exchange = send(proxy, request(method=b"PUT", content_length=4))
    connection = pool.connect(reused=True)
    exchange.body_data(b"ab")
    exchange.upstream_failed(connection, UpstreamError("backend closed", retryable=True))
    assert len(pool.asked) == 1 and client.head[0] == 502


def test_a_websocket_upgrade_is_never_streamed_as_a_body():
    proxy, pool, _ = proxy_for(entry(request_buffering=False))
    req = request(headers=[(b"upgrade", b"websocket"), (b"connection", b"Upgrade")])
    req.upgrade = True
    client, exchange = send(proxy, req)
    assert pool.connect().body_length is None


# -- the plugin ---------------------------------------------------------------------------------


def test_no_annotation_no_feature():
    assert features_for(buffering, {}) == []


@pytest.mark.parametrize(("value", "expected"), [("off", False), ("OFF", False), (" off ", False), ("on", True),
                                                 ("no", None), ("", None)])
def test_proxy_request_buffering_values(value, expected):
    found = features_for(buffering, {"proxy-request-buffering": value})
    if expected is None:
        assert found == []  # ingress-nginx: an invalid value is the default
    else:
        assert found[0].upstream.request_buffering is expected and found[0].phase == Phase.PROXY


@pytest.mark.parametrize(("value", "expected"), [("8k", 8192), ("1m", 1 << 20), ("0", 0), ("8kb", None),
                                                 ("-1", None)])
def test_client_body_buffer_size_values(value, expected):
    found = features_for(buffering, {"client-body-buffer-size": value})
    assert (found[0].upstream.body_buffer_size if found else None) == expected


def test_an_answer_before_the_streamed_body_ended_stops_holding_the_client_back(monkeypatch):
    monkeypatch.setattr(exchange_module, "_STREAM_WINDOW", 4)
    proxy, pool, finished = proxy_for(entry(request_buffering=False))
    client, exchange = send(proxy, request(method=b"POST", content_length=100))
    (host, port), _, on_ready, _ = pool.asked[-1]
    connection = Backpressure(pool, ONE, False)
    on_ready(connection)
    exchange.body_data(b"abcd")
    exchange.body_data(b"efgh")
    assert client.paused == 1
    connection.respond(200, body=b"early")
    assert client.finished and client.paused == 0 and connection.closed  # not reusable: the body did not end


def test_a_body_that_cannot_be_held_is_a_500_and_never_reaches_a_backend(tmp_path):
    proxy, pool, finished = proxy_for(entry(body_buffer_size=2))
    proxy.settings.temp_dir = str(tmp_path / "gone")  # no such directory: no temporary file
    client, exchange = send(proxy, request(method=b"POST", content_length=10))
    exchange.body_data(b"0123456789")
    assert client.head[0] == 500 and client.keep_alive_off and pool.asked == []
    assert finished[0].status == 500


def test_temp_path_must_be_a_writable_directory(tmp_path):
    from twisted.python import usage

    from ingressd import startup

    startup.check_paths("temp-path", [str(tmp_path)])
    with pytest.raises(usage.UsageError, match="--temp-path .*: no such directory"):
        startup.check_paths("temp-path", [str(tmp_path / "nope")])
