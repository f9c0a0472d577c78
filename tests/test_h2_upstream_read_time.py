"""A backend read restarts its streams' read timeouts from the moment it arrived, taken once
per read (``H2Connection.read_time``), and a later timeout than the one it replaces sets no
new sweep: the sweep set for the earlier one finds it not passed and moves on to it. Never
late, never early; a clock that went back is watched again."""

from __future__ import annotations

from ingressd.proxy import h2_upstream
from test_h2_upstream import FakeExchange, connect, setup
from test_h2_upstream_timers import _call


def test_reads_move_the_timeout_without_a_new_sweep_and_it_fires_after_the_last(monkeypatch):
    clock, upstream = setup()
    exchange = FakeExchange()
    _call(upstream, exchange, read=10.0)
    server = connect(clock, upstream)
    connection = upstream.connections[("127.0.0.1", 50051)][0]
    watched = []
    watch = h2_upstream._StreamTimers.watch
    monkeypatch.setattr(h2_upstream._StreamTimers, "watch",
                        lambda timers, stream, at, after: (watched.append(at), watch(timers, stream, at, after)))
    clock.advance(4)
    server.h2.send_headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    server.pump()
    for _ in range(3):
        clock.advance(4)
        server.h2.send_data(1, b"\0\0\0\0\0")
        server.pump()
    assert watched == []  # each read's timeout is later than the one before
    assert connection.read_time is None  # between reads
    clock.advance(9.9)  # 9.9 s after the last read (25.9 after the start)
    assert exchange.kinds() == ["head"]
    clock.advance(0.1)
    assert exchange.events[-1] == ("failed", "read_timeout", False, True)


def test_a_read_at_an_earlier_time_than_the_timeout_it_replaces_is_watched_again():
    clock, upstream = setup()
    exchange = FakeExchange()
    _call(upstream, exchange, read=10.0)
    server = connect(clock, upstream)
    clock.advance(5)
    clock.rightNow -= 4  # the clock went back
    server.h2.send_headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    server.pump()
    clock.advance(9.9)
    assert exchange.kinds() == ["head"]
    clock.advance(0.1)  # 10 s after the head, by the clock as it is now
    assert exchange.events[-1] == ("failed", "read_timeout", False, True)
