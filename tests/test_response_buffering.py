"""proxy-buffering: the response read ahead of a slow client (memory, then a temporary file,
then backpressure), the backend released as soon as it is done; off: backpressure to the
backend; X-Accel-Buffering overrides per response. In memory: fake client side and backend."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from fakes import features_for
from ingressd.config.entries import RouteEntry
from ingressd.config.model import Backend, ObjectRef, Route
from ingressd.features import Phase, UpstreamSettings
from ingressd.proxy.response_buffer import ResponseBuffer
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


class Reading(FakeConnection):
    """A backend connection that records whether the exchange stopped reading it."""

    paused = False

    def pause_reading(self):
        self.paused = True

    def resume_reading(self):
        self.paused = False

    def head(self, headers=(), length=None):
        self.response_headers = [(k.lower(), v) for k, v in headers]
        self.exchange.upstream_head(self, 200, self.response_headers, length)


def connect(pool):
    (host, port), _, on_ready, _ = pool.asked[-1]
    connection = Reading(pool, ONE, False)
    on_ready(connection)
    return connection


def start(**fields):
    proxy, pool, finished = proxy_for(entry(**fields))
    client, exchange = send(proxy, request())
    connection = connect(pool)
    return proxy, pool, finished, client, exchange, connection


def test_on_a_slow_client_does_not_slow_the_backend_which_is_released_when_done(tmp_path):
    proxy, pool, finished, client, exchange, connection = start(response_buffering=True, response_memory=8,
                                                                max_temp_file_size=1 << 20)
    proxy.settings.temp_dir = str(tmp_path)
    connection.head(length=30)
    exchange.upstream_body(b"0123")
    assert client.body == b"0123"  # the client takes it: straight through
    exchange.client_paused()  # the client is slow
    assert not connection.paused
    for piece in (b"456789", b"abcdefghij", b"klmnopqrst"):
        exchange.upstream_body(piece)
    assert not connection.paused and client.body == b"0123"
    assert exchange._writer.held.spilled and exchange._writer.held.files_opened == 1  # beyond 8 bytes: a file
    exchange.upstream_done(connection, True)
    assert pool.released == [connection]  # the backend is free while the client still reads
    assert not client.finished and not finished
    exchange.client_resumed()
    assert client.body == b"0123456789abcdefghijklmnopqrst" and client.finished and finished


def test_on_memory_and_file_full_pause_the_backend():
    proxy, pool, finished, client, exchange, connection = start(response_buffering=True, response_memory=4,
                                                                max_temp_file_size=0)
    connection.head(length=12)
    exchange.client_paused()
    exchange.upstream_body(b"abc")
    assert not connection.paused
    exchange.upstream_body(b"def")  # 6 ≥ 4 and no file allowed: the backend waits
    assert connection.paused and not exchange._writer.held.spilled
    exchange.client_resumed()
    assert client.body == b"abcdef" and not connection.paused
    exchange.upstream_body(b"ghijkl")
    exchange.upstream_done(connection, True)
    assert client.body == b"abcdefghijkl" and client.finished


class PausingClient(FakeClient):
    """A client side that pushes back after every write, as a full socket does."""

    exchange = None

    def write_body(self, data):
        super().write_body(data)
        if data:
            self.exchange.client_paused()


def test_on_the_held_response_goes_out_as_the_client_takes_it():
    proxy, pool, finished = proxy_for(entry(response_buffering=True, response_memory=1 << 20))
    client = PausingClient()
    client.exchange = exchange = proxy(client, request())
    exchange.body_done()
    connection = connect(pool)
    connection.head(length=9)
    for piece in (b"abc", b"def", b"ghi"):
        exchange.upstream_body(piece)
    exchange.upstream_done(connection, True)
    assert client.body == b"abc" and pool.released and not client.finished
    for _ in range(10):  # bounded: one piece per resume
        if client.finished:
            break
        exchange.client_resumed()
    assert client.body == b"abcdefghi" and client.finished


def test_off_backpressure_reaches_the_backend():
    proxy, pool, finished, client, exchange, connection = start()
    connection.head(length=6)
    assert exchange._writer is None  # the default: straight through
    exchange.client_paused()
    assert connection.paused
    exchange.client_resumed()
    assert not connection.paused


def test_x_accel_buffering_yes_turns_it_on_and_is_not_shown_to_the_client():
    proxy, pool, finished, client, exchange, connection = start()
    connection.head([(b"X-Accel-Buffering", b"yes")], length=6)
    assert exchange._writer is not None and exchange._writer.hold
    assert client.header(b"x-accel-buffering") == []
    exchange.client_paused()
    exchange.upstream_body(b"abcdef")
    assert not connection.paused


def test_x_accel_buffering_no_turns_it_off():
    proxy, pool, finished, client, exchange, connection = start(response_buffering=True)
    connection.head([(b"X-Accel-Buffering", b"NO")], length=6)
    assert exchange._writer is None
    exchange.client_paused()
    assert connection.paused


def test_a_client_gone_while_the_held_response_drains_closes_the_file():
    proxy, pool, finished, client, exchange, connection = start(response_buffering=True, response_memory=0,
                                                                max_temp_file_size=1 << 20)
    connection.head(length=6)
    exchange.client_paused()
    exchange.upstream_body(b"abcdef")
    writer = exchange._writer
    assert writer.held.spilled
    exchange.upstream_done(connection, True)
    exchange.client_lost()
    assert not writer.held.spilled and finished and finished[0].status == 200


def test_the_buffer_alone_holds_order_through_pauses():
    clock = Clock()
    client = FakeClient()
    pauses = []
    buffer = ResponseBuffer(client, clock, lambda: pauses.append("pause"), lambda: pauses.append("resume"),
                            hold=False)
    buffer.write(b"ab")
    buffer.client_paused()
    assert pauses == ["pause"]  # not holding: the backend waits with the client
    buffer.write(b"cd")  # in flight when the backend was paused: kept
    buffer.client_resumed()
    assert client.body == b"abcd" and pauses == ["pause", "resume"]
    done = []
    buffer.end(lambda: done.append(True))
    assert done == [True]


# -- the plugin ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ({"proxy-buffering": "on"}, dict(response_buffering=True)),
    ({"proxy-buffering": " OFF"}, dict(response_buffering=False)),
    ({"proxy-buffering": "yes"}, None),  # invalid: the default, as ingress-nginx
    ({"proxy-buffer-size": "8k"}, dict(response_memory=4 * 8192)),
    ({"proxy-buffers-number": "8"}, dict(response_memory=8 * 4096)),
    ({"proxy-buffers-number": "2", "proxy-buffer-size": "16k"}, dict(response_memory=2 * 16384)),
    ({"proxy-buffers-number": "x"}, None),
    ({"proxy-max-temp-file-size": "0"}, dict(max_temp_file_size=0)),
    ({"proxy-max-temp-file-size": "2g"}, dict(max_temp_file_size=2 << 30)),
    ({"proxy-max-temp-file-size": "2gb"}, None),
])
def test_plugin_values(raw, expected):
    found = features_for(buffering, raw)
    if expected is None:
        assert found == []
    else:
        assert found[0].upstream == UpstreamSettings(**expected)


def test_a_response_that_cannot_be_held_is_dropped_not_truncated_silently(tmp_path):
    proxy, pool, finished, client, exchange, connection = start(response_buffering=True, response_memory=2,
                                                                max_temp_file_size=1 << 20)
    proxy.settings.temp_dir = str(tmp_path / "gone")
    connection.head(length=10)
    exchange.client_paused()
    exchange.upstream_body(b"0123456789")  # beyond memory, and no file can be made
    assert client.aborted and connection.aborted and finished
