"""The backend streams' timeouts (read, send, ``grpc-timeout``) of ``h2_upstream``: swept by
one timer per connection (``_StreamTimers``) instead of reactor calls per stream; each still
fires when due, never late, for the stream it belongs to."""

from __future__ import annotations

import h2.events
from h2.errors import ErrorCodes

from ingressd.proxy.upstream import STREAMED

from test_h2_upstream import SETTINGS, FakeExchange, connect, setup


def _call(upstream, exchange, headers=(), body=None, read=60.0, send=60.0):
    upstream.acquire("127.0.0.1", 50051, SETTINGS, lambda s: s.start(
        exchange, b"POST", b"/x", [(b"host", b"h"), *headers], body, read, send), lambda e: None)


def test_many_streams_keep_one_reactor_call():
    clock, upstream = setup()
    exchanges = [FakeExchange() for _ in range(20)]
    _call(upstream, exchanges[0])
    server = connect(clock, upstream)
    before = len(clock.getDelayedCalls())
    for exchange in exchanges[1:]:
        _call(upstream, exchange, headers=[(b"grpc-timeout", b"30S")])
    server.pump()
    assert len(server.requests()) == 20
    assert len(clock.getDelayedCalls()) == before  # no reactor call per stream
    for stream_id in range(1, 40, 2):
        server.respond(stream_id, b"ok", trailers=[(b"grpc-status", b"0")])
    assert all(e.kinds() == ["head", "trailers", "done"] for e in exchanges)
    assert not upstream.connections[("127.0.0.1", 50051)][0].timers.streams  # nothing left watched


def test_each_stream_times_out_on_its_own_time():
    clock, upstream = setup()
    first, second = FakeExchange(), FakeExchange()
    _call(upstream, first)
    server = connect(clock, upstream)
    clock.advance(30)
    _call(upstream, second)
    server.pump()
    clock.advance(29.9)
    assert first.events == [] and second.events == []
    clock.advance(0.1)  # 60 s after the first stream began
    assert first.events == [("failed", "read_timeout", False, True)] and second.events == []
    clock.advance(29.9)
    assert second.events == []
    clock.advance(0.1)
    assert second.events == [("failed", "read_timeout", False, True)]
    server.pump()
    resets = [e.stream_id for e in server.events if isinstance(e, h2.events.StreamReset)]
    assert resets == [1, 3]


def test_a_read_moves_the_read_timeout():
    clock, upstream = setup()
    exchange = FakeExchange()
    _call(upstream, exchange, read=10.0)
    server = connect(clock, upstream)
    clock.advance(8)
    server.h2.send_headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    server.pump()
    clock.advance(8)  # 16 s after the start, 8 after the head
    assert exchange.kinds() == ["head"]
    server.h2.send_data(1, b"\0\0\0\0\0")
    server.pump()
    clock.advance(9.9)
    assert exchange.kinds() == ["head"]
    clock.advance(0.1)
    assert exchange.events[-1] == ("failed", "read_timeout", False, True)


def test_a_grpc_timeout_sooner_than_the_others_fires_on_time():
    clock, upstream = setup()
    slow, quick = FakeExchange(), FakeExchange()
    _call(upstream, slow)
    server = connect(clock, upstream)
    _call(upstream, quick, headers=[(b"grpc-timeout", b"100m")])
    server.pump()
    clock.advance(0.09)
    assert quick.events == []
    clock.advance(0.011)
    assert quick.events == [("failed", "grpc_deadline", False, True)] and slow.events == []
    server.pump()
    assert [(e.stream_id, e.error_code) for e in server.events if isinstance(e, h2.events.StreamReset)] == \
        [(3, ErrorCodes.CANCEL)]


def test_a_paused_client_stops_the_read_timeout_until_it_resumes():
    clock, upstream = setup()
    exchange = FakeExchange()
    streams = []
    upstream.acquire("127.0.0.1", 50051, SETTINGS, streams.append, lambda e: None)
    server = connect(clock, upstream)
    streams[0].start(exchange, b"POST", b"/x", [(b"host", b"h")], None, 5.0, 5.0)
    streams[0].pause_reading()
    clock.advance(100)
    assert exchange.events == []
    streams[0].resume_reading()
    clock.advance(4.9)
    assert exchange.events == []
    clock.advance(0.1)
    assert exchange.events == [("failed", "read_timeout", False, True)]
    server.pump()


def test_a_backend_that_takes_nothing_times_the_send_out():
    clock, upstream = setup()
    exchange = FakeExchange()
    streams = []
    upstream.acquire("127.0.0.1", 50051, SETTINGS, streams.append, lambda e: None)
    server = connect(clock, upstream, window=16)
    streams[0].start(exchange, b"POST", b"/x", [(b"host", b"h")], STREAMED, 600.0, 7.0)
    streams[0].send_body(b"z" * 1000)  # more than the backend's window: it waits
    server.pump()
    clock.advance(6.9)
    assert exchange.events == []
    clock.advance(0.1)
    assert exchange.events == [("failed", "send_timeout", False, True)]


def test_a_finished_stream_leaves_no_timeout_behind():
    clock, upstream = setup()
    exchange = FakeExchange()
    _call(upstream, exchange, headers=[(b"grpc-timeout", b"1S")], read=2.0)
    server = connect(clock, upstream)
    connection = server.protocol
    server.respond(1, b"ok", trailers=[(b"grpc-status", b"0")])
    assert not connection.timers.streams
    for _ in range(10):  # bounded: ten minutes of the clock (the idle connection is closed)
        clock.advance(60)
    assert exchange.kinds() == ["head", "trailers", "done"]


def test_a_lost_connection_stops_its_sweep():
    clock, upstream = setup()
    exchange = FakeExchange()
    _call(upstream, exchange)
    server = connect(clock, upstream)
    connection = server.protocol
    connection.connectionLost(None)
    assert exchange.events == [("failed", "backend_closed", False, False)]
    clock.advance(120)
    assert exchange.events == [("failed", "backend_closed", False, False)]
    assert not connection.timers.streams
