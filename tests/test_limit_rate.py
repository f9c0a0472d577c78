"""limit-rate and limit-rate-after: writes to the client paced on the injected clock (nginx's
limit_rate: rate × (elapsed + 1) bytes after the first limit-rate-after), the backend paused
meanwhile unless the response is read ahead. Deterministic: twisted's Clock."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from fakes import features_for
from ingressd.features import UpstreamSettings
from ingressd.proxy.response_buffer import ResponseBuffer
from ingressd_plugins import buffering
from test_exchange import FakeClient, proxy_for, request, send
from test_response_buffering import connect, entry


def paced(rate, after=0, hold=False):
    clock = Clock()
    client = FakeClient()
    events = []
    buffer = ResponseBuffer(client, clock, lambda: events.append("pause"), lambda: events.append("resume"),
                            hold=hold, memory=1 << 20, file_bound=0, rate=rate, rate_after=after)
    return clock, client, buffer, events


def test_after_the_first_bytes_no_more_than_the_rate_leaves_per_second():
    clock, client, buffer, events = paced(rate=1000, after=500)
    buffer.write(b"x" * 5000)
    assert len(client.body) == 1500  # limit-rate-after, and one second's worth ahead, as nginx
    assert events == ["pause"]  # not holding: the backend waits
    clock.advance(1)
    assert len(client.body) <= 2500
    for _ in range(20):  # bounded: the clock moves in steps
        clock.advance(0.25)
    assert len(client.body) == 5000 and events == ["pause", "resume"]
    done = []
    buffer.end(lambda: done.append(True))
    assert done == [True]


def test_the_pace_is_never_ahead_of_the_rate_at_any_clock_point():
    clock, client, buffer, events = paced(rate=2048, after=1024)
    buffer.write(b"y" * 20000)
    for step in range(1, 60):  # bounded
        clock.advance(0.2)
        elapsed = step * 0.2
        assert len(client.body) <= 1024 + 2048 * (elapsed + 1) + 1
        if len(client.body) == 20000:
            break
    assert len(client.body) == 20000
    assert elapsed >= (20000 - 1024) / 2048 - 1  # it took the time the rate asks


def test_the_end_waits_for_the_paced_bytes():
    clock, client, buffer, events = paced(rate=100)
    buffer.write(b"z" * 300)
    done = []
    buffer.end(lambda: done.append(True))
    assert not done
    for _ in range(40):
        clock.advance(0.5)
    assert done == [True] and len(client.body) == 300


def test_holding_reads_the_backend_ahead_while_the_pace_writes():
    clock, client, buffer, events = paced(rate=1000, hold=True)
    buffer.write(b"a" * 5000)
    assert events == []  # read ahead: the backend is not paused
    assert len(client.body) == 1000


def test_no_rate_writes_straight_through():
    clock, client, buffer, events = paced(rate=0)
    buffer.write(b"a" * 100000)
    assert len(client.body) == 100000 and events == []


def test_closing_stops_the_timer():
    clock, client, buffer, events = paced(rate=10)
    buffer.write(b"a" * 100)
    assert clock.getDelayedCalls()
    buffer.close()
    assert not clock.getDelayedCalls()


def test_an_exchange_on_a_limited_route_paces_its_response_from_the_request_start():
    proxy, pool, finished = proxy_for(entry(limit_rate=1000, limit_rate_after=0))
    client, exchange = send(proxy, request())
    connection = connect(pool)
    connection.head(length=3000)
    exchange.upstream_body(b"b" * 3000)
    assert len(client.body) == 1000 and connection.paused
    exchange.upstream_done(connection, True)
    assert pool.released and not client.finished
    for _ in range(20):
        proxy.clock.advance(0.5)
    assert len(client.body) == 3000 and client.finished and finished


@pytest.mark.parametrize(("raw", "expected"), [
    ({"limit-rate": "100"}, dict(limit_rate=102400)),
    ({"limit-rate": "100", "limit-rate-after": "10"}, dict(limit_rate=102400, limit_rate_after=10240)),
    ({"limit-rate": "0", "limit-rate-after": "10"}, None),  # no rate: nothing to pace
    ({"limit-rate": "-5"}, None),
    ({"limit-rate": "1k"}, None),  # not an integer: the default, as ingress-nginx
])
def test_plugin_values(raw, expected):
    found = features_for(buffering, raw)
    if expected is None:
        assert found == []
    else:
        assert found[0].upstream == UpstreamSettings(**expected)
