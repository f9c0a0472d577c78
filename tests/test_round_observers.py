"""Finished exchanges handed over once a round (``Proxy.round_observers``, ``Proxy.end_round``):
one call a round with the round's exchanges in order, each with the wall time and the clock a
per-exchange observer reads at its end; at once without a reactor that ends rounds; the metrics'
and the access log's ``observe_round`` give what their per-exchange ``observe`` gives, TLS facts and
``$ssl_cipher`` included when the connection closes first; nothing lost at a stop or a settings change."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from twisted.application.service import MultiService
from twisted.internet.task import Clock
from twisted.python import log as twisted_log

from ingressd import accesslog
from ingressd.accesslog import AccessLog
from ingressd.admin.metrics import FoldAtStop, Metrics
from ingressd.config.routing import RouteTable
from ingressd.logformat import log_settings_from
from ingressd.proxy import exchange as exchange_module
from ingressd.proxy.exchange import Proxy, ProxySettings

from test_accesslog_rounds import ClosingTLSConnection, RoundReactor
from test_exchange import FakeClient, FakePool, State, entry, request, send


class RoundClock(Clock, RoundReactor):
    """The tests' Clock with the server reactor's ``call_at_round_end``; ``end_round()`` ends the round."""

    def __init__(self):
        Clock.__init__(self)
        RoundReactor.__init__(self)


class _Wall:
    """``time.time`` for the proxy's note and the access log alike: the test sets it."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now

    def time(self):  # as accesslog.time
        return self.now


@pytest.fixture
def wall(monkeypatch):
    import time
    clock = _Wall(1_790_000_000.25)
    monkeypatch.setattr(exchange_module, "_wall_clock", clock)
    clock.strftime, clock.gmtime, clock.localtime = time.strftime, time.gmtime, time.localtime
    monkeypatch.setattr(accesslog, "time", clock)
    return clock


def _proxy(clock):
    pool = FakePool()
    return Proxy(State(RouteTable([entry()])), {"HTTP": pool}, ProxySettings(), clock), pool


def _proxied(proxy, pool, target=b"/", client=None, status=200):
    """A request answered by the backend: the exchange, finished."""
    _, exchange = send(proxy, request(target=target), client)
    pool.connect().respond(status, [], b"ok")
    return exchange


class _TLSClient(ClosingTLSConnection, FakeClient):
    """An HTTPS client connection whose TLS facts and handle are gone once it closed
    (``ClosingTLSConnection``'s), answering as the tests' ``FakeClient``."""

    def __init__(self):
        FakeClient.__init__(self, scheme="https")
        ClosingTLSConnection.__init__(self)


def test_one_call_a_round_with_its_exchanges_in_order_and_what_a_per_exchange_observer_read(wall):
    clock = RoundClock()
    proxy, pool = _proxy(clock)
    batches, read = [], []
    proxy.round_observers.append(batches.append)
    proxy.want_rounds()
    proxy.observers.append(lambda exchange: read.append((exchange, exchange_module._wall_clock(), clock.seconds())))
    for index in range(3):
        wall.now += 1.5
        clock.advance(0.25)
        _proxied(proxy, pool, b"/%d" % index)
    proxy.rejected(FakeClient(), None, 408, 10)  # answered by the client side: in the round too
    assert batches == [] and len(clock.ends) == 1  # one round end asked for
    wall.now += 7
    clock.advance(3)  # the clocks move on before the round ends: the notes keep the end's readings
    clock.end_round()
    assert len(batches) == 1 and batches[0] == read
    assert [exchange.request.target for exchange, _, _ in batches[0]] == [b"/0", b"/1", b"/2", b""]
    assert [exchange.status for exchange, _, _ in batches[0]] == [200, 200, 200, 408]
    _proxied(proxy, pool, b"/next")
    assert len(clock.ends) == 1  # the next round asks again
    clock.end_round()
    assert len(batches) == 2 and [note[0].request.target for note in batches[1]] == [b"/next"]
    clock.end_round()
    assert len(batches) == 2  # no exchange, no call


def test_without_a_reactor_that_ends_rounds_each_exchange_is_handed_over_at_once():
    proxy, pool = _proxy(Clock())
    batches = []
    proxy.round_observers.append(batches.append)
    proxy.want_rounds()
    first = _proxied(proxy, pool, b"/a")
    assert [[note[0] for note in batch] for batch in batches] == [[first]]
    second = _proxied(proxy, pool, b"/b")
    assert [[note[0] for note in batch] for batch in batches] == [[first], [second]]


def test_a_round_hands_over_a_bounded_number_of_exchanges():
    clock = RoundClock()
    proxy, pool = _proxy(clock)
    batches = []
    proxy.round_observers.append(batches.append)
    proxy.want_rounds()
    for _ in range(exchange_module._ROUND_NOTES + 3):
        proxy.rejected(FakeClient(), None, 408, 10)
    assert [len(batch) for batch in batches] == [exchange_module._ROUND_NOTES]
    clock.end_round()
    assert [len(batch) for batch in batches] == [exchange_module._ROUND_NOTES, 3]


def test_without_an_observer_wanting_rounds_no_round_end_is_asked_and_the_notes_wait_for_their_bound():
    """The metrics alone (they hand the round over themselves before a read): no round end asked
    for, the notes handed over at ``_UNHURRIED_NOTES`` or when an observer calls ``end_round``."""
    clock = RoundClock()
    proxy, pool = _proxy(clock)
    batches = []
    proxy.round_observers.append(batches.append)
    for _ in range(exchange_module._UNHURRIED_NOTES + 3):
        proxy.rejected(FakeClient(), None, 408, 10)
    assert clock.ends == [] and [len(batch) for batch in batches] == [exchange_module._UNHURRIED_NOTES]
    proxy.end_round()
    assert [len(batch) for batch in batches] == [exchange_module._UNHURRIED_NOTES, 3]
    proxy.rejected(FakeClient(), None, 408, 10)
    proxy.want_rounds()  # the notes so far handed over: none of them asked for a round end
    assert [len(batch) for batch in batches] == [exchange_module._UNHURRIED_NOTES, 3, 1] and clock.ends == []
    proxy.rejected(FakeClient(), None, 408, 10)
    assert len(clock.ends) == 1 and len(batches) == 3
    clock.end_round()
    assert [len(batch) for batch in batches] == [exchange_module._UNHURRIED_NOTES, 3, 1, 1]


def test_a_server_with_metrics_alone_asks_no_round_end_and_one_with_the_log_does():
    from ingressd.admin import observability
    for access_log, asked in (("off", False), ("-", True)):
        clock = RoundClock()
        proxy, pool = _proxy(clock)
        service = MultiService()  # (FoldAtStop and the log join it as the server's do)
        service.proxy, service.reactor, service.pool, service.state = proxy, clock, None, None
        service.reloader = SimpleNamespace(listeners=[])
        observability.install(service, {"access_log": access_log})
        service.metrics.attach(reloader=None)  # (nothing of the reloader's to scrape here)
        _proxied(proxy, pool, b"/a")
        assert (len(clock.ends) == 1) is asked
        assert _requests(service.metrics) == 1.0  # a read hands the notes over either way


def test_a_failing_round_observer_is_logged_and_the_others_get_the_batch():
    clock = RoundClock()
    proxy, pool = _proxy(clock)
    errors, batches = [], []

    def failing(batch):
        raise RuntimeError("broken observer")

    def caught(event):
        if event.get("isError"):
            errors.append(event)

    proxy.round_observers.extend([failing, batches.append])
    proxy.want_rounds()
    twisted_log.addObserver(caught)
    try:
        _proxied(proxy, pool)
        clock.end_round()
    finally:
        twisted_log.removeObserver(caught)
    assert len(batches) == 1 and len(batches[0]) == 1
    assert any("a round observer failed" in str(event.get("why")) for event in errors)


def _without_ids(lines) -> list[str]:
    """The lines with each exchange's random request id written as ``RID``."""
    return [re.sub("[0-9a-f]{32}", "RID", line) for line in lines]


def _logs(options, clock_factory=RoundClock, target="-"):
    """Two proxies on two clocks of the same kind, one logging through ``observe`` (one exchange a
    call, as before), one through the round observers as the server wires them (observability)."""
    made = []
    for rounds in (False, True):
        clock = clock_factory()
        proxy, pool = _proxy(clock)
        log = AccessLog(target, settings=log_settings_from(options), reactor=clock)
        if rounds:
            proxy.round_observers.append(log.observe_round)
            proxy.tls_observers.append(log.observe_tls)
            proxy.want_rounds()
            log.hand_over = proxy.end_round
        else:
            proxy.observers.append(log.observe)
        made.append((proxy, pool, clock, log))
    return made


@pytest.mark.parametrize("options", [
    {"access_log_format": "json"},
    {"access_log_format": "combined"},
    {"access_log_format": "nginx"},
    {"log_format_upstream": "$request_uri $status $request_time $msec $upstream_response_time"},
    {"log_format_upstream": "$request_uri", "skip_access_log_urls": "/skip"},
])
@pytest.mark.parametrize("clock_factory", [RoundClock, Clock])
def test_the_round_observers_lines_are_the_per_exchange_observers_lines(wall, options, clock_factory):
    pending = []
    for proxy, pool, clock, log in _logs(options, clock_factory):
        wall.now = 1_790_000_000.25
        for index, target in enumerate((b"/a", b"/skip", b"/b?x=1")):
            wall.now += 1.25
            clock.advance(0.5)
            _, exchange = send(proxy, request(target=target))
            clock.advance(0.125)
            pool.connect().respond(200 + index, [], b"ok")
        proxy.rejected(FakeClient(), None, 408, 10)
        wall.now += 5
        clock.advance(2)
        if clock_factory is RoundClock:
            clock.end_round()
        pending.append(_without_ids(log.queued_lines()))
    per_exchange, rounds = pending
    assert rounds == per_exchange and len(rounds) == (3 if "skip_access_log_urls" in options else 4)


@pytest.mark.parametrize("options", [
    {"access_log_format": "json"},
    {"access_log_format": "combined"},
    {"log_format_upstream": "$scheme $ssl_protocol $ssl_server_name $status"},
    {"log_format_upstream": "$scheme $ssl_protocol [$ssl_cipher] $status"},
    {"log_format_upstream": "[$ssl_cipher] $request_uri"},
])
def test_an_https_connection_closed_before_the_rounds_end_keeps_its_tls_facts_in_the_line(wall, options):
    pending = []
    for proxy, pool, clock, log in _logs(options):
        wall.now = 1_790_000_000.25
        client = _TLSClient()
        _proxied(proxy, pool, b"/tls", client)
        client.open = False  # closed before the round ends (the exchange may finish as it closes)
        _proxied(proxy, pool, b"/plain")
        clock.end_round()
        pending.append(_without_ids(log.queued_lines()))
    per_exchange, rounds = pending
    assert rounds == per_exchange and len(rounds) == 2
    line = next(line for line in rounds if "/plain" not in line)
    if "ssl_cipher" in str(options):
        assert "[TLS_AES_128_GCM_SHA256]" in line
    else:
        assert "TLSv1.3" in line and "shop.test" in line


def test_a_line_reading_the_live_tls_handle_is_formatted_at_once_and_only_once(wall):
    ((_, _, _, _), (proxy, pool, clock, log)) = _logs({"log_format_upstream": "[$ssl_cipher] $request_uri"})
    client = _TLSClient()
    _proxied(proxy, pool, b"/tls", client)
    assert log.queued_lines() == ["[TLS_AES_128_GCM_SHA256] /tls\n"]  # at once
    _proxied(proxy, pool, b"/plain")
    clock.end_round()
    assert log.queued_lines() == ["[TLS_AES_128_GCM_SHA256] /tls\n", "[-] /plain\n"] and log.dropped == 0


def test_a_settings_change_mid_round_logs_each_exchange_with_the_settings_it_ended_under(wall):
    ((_, _, _, _), (proxy, pool, clock, log)) = _logs({"log_format_upstream": "one $request_uri"})
    _proxied(proxy, pool, b"/a")
    log.apply(log_settings_from({"log_format_upstream": "two $request_uri"}))
    _proxied(proxy, pool, b"/b")
    clock.end_round()
    assert log.queued_lines() == ["one /a\n", "two /b\n"]


def test_a_stop_mid_round_writes_the_noted_exchanges_lines_and_counts_them(tmp_path, wall):
    target = tmp_path / "access.log"
    ((_, _, _, _), (proxy, pool, clock, log)) = _logs({"log_format_upstream": "$request_uri"}, target=str(target))
    metrics = Metrics(clock)
    proxy.round_observers.insert(0, metrics.observe_round)
    metrics.hand_over = proxy.end_round
    log.startService()
    try:
        _proxied(proxy, pool, b"/last")
        assert len(clock.ends) == 1 and not len(log._pending)  # noted, not handed over yet
    finally:
        log.stopService()
    FoldAtStop(metrics).stopService()
    assert target.read_bytes() == b"/last\n" and log.written == 1 and log.dropped == 0
    assert _requests(metrics) == 1.0
    clock.end_round()  # the round's own end later finds nothing left
    assert log.written == 1 and not len(log._pending) and _requests(metrics) == 1.0


def _requests(metrics) -> float:
    text = metrics.render()[0].decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("ingressd_requests_total{"))


def _request_series(metrics) -> list[str]:
    text = metrics.render()[0].decode()
    return sorted(line for line in text.splitlines() if "_created" not in line and line.startswith((
        "ingressd_requests_total", "ingressd_request_duration_seconds", "ingressd_upstream_response_seconds",
        "ingressd_request_bytes", "ingressd_response_bytes", "ingressd_upstream_retries",
        "ingressd_gateway_errors")))


@pytest.mark.parametrize("compat", ["", "nginx"])
def test_the_metrics_round_observer_counts_what_the_per_exchange_observer_counts(compat):
    counted = []
    for rounds in (False, True):
        clock = RoundClock()
        proxy, pool = _proxy(clock)
        metrics = Metrics(clock, compat=compat)
        if rounds:
            proxy.round_observers.append(metrics.observe_round)
            metrics.hand_over = proxy.end_round
        else:
            proxy.observers.append(metrics.observe)
        for index in range(150):  # past the fold's bound more than once
            clock.advance(0.003 * (index % 7))
            _proxied(proxy, pool, b"/%d" % index, status=(200, 404, 502)[index % 3])
            if index % 40 == 39:
                clock.end_round()
        proxy.rejected(FakeClient(), None, 408, 10)
        assert metrics.waiting == 0 or not rounds or len(clock.ends) == 1
        # a read mid-round sees every exchange finished before it (the round handed over first)
        counted.append((_requests(metrics), _request_series(metrics)))
        clock.end_round()
    per_exchange, rounds = counted
    assert rounds == per_exchange and per_exchange[0] == 151.0


def test_on_a_clock_that_is_the_wall_clock_one_reading_is_both_times():
    """Twisted's reactors' ``seconds`` is ``time.time``: a note's wall time and clock are then one reading."""
    import time
    ends = []
    clock = SimpleNamespace(seconds=time.time, call_at_round_end=ends.append, callLater=Clock().callLater)
    proxy, pool = _proxy(clock)
    batches = []
    proxy.round_observers.append(batches.append)
    proxy.want_rounds()
    before = time.time()
    proxy.rejected(FakeClient(), None, 408, 10)
    for end in ends:
        end()
    ((exchange, wall, now),) = batches[0]
    assert wall == now and before <= now <= time.time()
