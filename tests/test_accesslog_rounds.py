"""The access log's lines formatted when the reactor's round of events ends (``AccessLog`` with a
reactor that has ``call_at_round_end``): every line exactly the line formatted at once, whatever
the clocks did in between; the held exchanges bounded and counted; nothing lost at a stop."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock

from ingressd import accesslog
from ingressd.accesslog import AccessLog, make_access_log
from ingressd.logformat import DEFAULT_UPSTREAM, log_settings_from
from ingressd.reactor import DirectDispatchEPollReactor

from test_logformat_compiled import _Clock, exchanges
from test_logline import _compiled, join_line_c

OPTIONS = (
    {"access_log_format": "json"},
    {"access_log_format": "combined"},
    {"access_log_format": "nginx"},
    {"log_format_upstream": DEFAULT_UPSTREAM, "log_format_escape_json": True},
    {"log_format_upstream": '$msec "$time_local" $time_iso8601 $request_time $upstream_response_time $status '
                            '"$request" $remote_addr'},
)


class RoundReactor:
    """A reactor's ``call_at_round_end`` alone; ``end_round()`` ends the round."""

    def __init__(self):
        self.ends = []

    def call_at_round_end(self, f):
        self.ends.append(f)

    def end_round(self):
        ends, self.ends = self.ends, []
        for end in ends:
            end()


class _Time:
    """``accesslog.time`` with a ``time()`` the test sets."""

    def __init__(self, now):
        self.now = now
        self.strftime, self.gmtime, self.localtime = time.strftime, time.gmtime, time.localtime

    def time(self):
        return self.now


@pytest.fixture
def wall(monkeypatch):
    clock = _Time(1_790_000_000.25)
    monkeypatch.setattr(accesslog, "time", clock)
    return clock


def _observe_at(log, exchange, wall, now):
    wall.now = now
    log(exchange)


@settings(max_examples=150, deadline=None)
@given(case=exchanges(), options=st.sampled_from(OPTIONS), later=st.floats(0.0005, 5.0))
def test_a_line_formatted_at_the_rounds_end_is_the_line_formatted_at_once(case, options, later):
    now, exchange = case
    wall = _Time(now)
    saved, accesslog.time = accesslog.time, wall
    try:
        at_once = AccessLog("-", settings=log_settings_from(options))
        at_once(exchange)
        reactor = RoundReactor()
        rounds = AccessLog("-", settings=log_settings_from(options), reactor=reactor)
        rounds(exchange)
        assert not rounds.queued_lines() and len(reactor.ends) == 1  # nothing formatted before the round ends
        # The clocks move on before the round ends: the line is still the one of the exchange's end.
        wall.now = now + later
        clock = exchange.proxy.clock
        exchange.proxy = SimpleNamespace(clock=_Clock(clock.seconds() + later))
        reactor.end_round()
        exchange.proxy = SimpleNamespace(clock=clock)
    finally:
        accesslog.time = saved
    assert rounds.queued_lines() == at_once.queued_lines()
    assert rounds.dropped == at_once.dropped


def _exchange(target=b"/a", status=200, started=1.0, ended=1.25):
    from test_accesslog_drops import _exchange as make
    exchange = make()
    exchange.request = SimpleNamespace(target=target)
    exchange.request_uri = target
    exchange.status = status
    exchange.started = started
    exchange.proxy = SimpleNamespace(clock=_Clock(ended))
    return exchange


def test_one_round_end_asked_per_round_and_the_lines_in_the_order_of_the_requests(wall):
    reactor = RoundReactor()
    log = AccessLog("-", settings=log_settings_from({"log_format_upstream": "$request_uri $request_time"}),
                    reactor=reactor)
    for index in range(5):
        log(_exchange(b"/%d" % index, ended=1.0 + index))
    assert len(reactor.ends) == 1 and not log.queued_lines()
    assert log.counts()["pending"] == 5  # held for the round's end: waiting
    reactor.end_round()
    assert log.queued_lines() == ["/0 0.000\n", "/1 1.000\n", "/2 2.000\n", "/3 3.000\n", "/4 4.000\n"]
    log(_exchange(b"/next"))
    assert len(reactor.ends) == 1  # the next round asks again
    reactor.end_round()
    assert log.queued_lines()[-1] == "/next 0.250\n"


def test_the_settings_of_the_exchanges_end_write_its_line(wall):
    reactor = RoundReactor()
    log = AccessLog("-", settings=log_settings_from({"log_format_upstream": "one $request_uri"}), reactor=reactor)
    log(_exchange(b"/a"))
    log.apply(log_settings_from({"log_format_upstream": "two $request_uri"}))
    log(_exchange(b"/b"))
    reactor.end_round()
    assert log.queued_lines() == ["one /a\n", "two /b\n"]


def test_held_exchanges_count_toward_the_bound_and_beyond_it_are_dropped_and_counted(wall):
    reactor = RoundReactor()
    log = AccessLog("-", max_pending=3, settings=log_settings_from({}), reactor=reactor)
    for _ in range(5):
        log(_exchange())
    assert log.dropped == 2 and log.counts()["pending"] == 3
    reactor.end_round()
    assert len(log.queued_lines()) == 3 and log.dropped == 2
    log(_exchange())
    assert log.dropped == 3  # the bound still full: the writer has not run


def test_a_round_holds_a_bounded_number_of_exchanges(wall):
    reactor = RoundReactor()
    log = AccessLog("-", settings=log_settings_from({"log_format_upstream": "$status"}), reactor=reactor)
    for _ in range(accesslog._ROUND_LINES + 3):
        log(_exchange())
    assert len(log.queued_lines()) == accesslog._ROUND_LINES  # formatted when the bound was reached
    assert len(log._round) == 3
    reactor.end_round()
    assert len(log.queued_lines()) == accesslog._ROUND_LINES + 3 and not log._round
    assert log.dropped == 0


def test_a_line_that_fails_is_counted_and_the_rounds_other_lines_are_written(wall):
    reactor = RoundReactor()
    log = AccessLog("-", settings=log_settings_from({"log_format_upstream": "$request_uri"}), reactor=reactor)
    log(_exchange(b"/a"))
    broken = _exchange(b"/b")
    broken.request_uri = 42  # not text: this line cannot be written
    log(broken)
    log(_exchange(b"/c"))
    reactor.end_round()
    assert log.queued_lines() == ["/a\n", "/c\n"] and log.dropped == 1


def test_a_stop_writes_the_lines_of_the_round_in_progress(tmp_path, wall):
    target = tmp_path / "access.log"
    reactor = RoundReactor()
    log = AccessLog(str(target), settings=log_settings_from({"log_format_upstream": "$request_uri"}),
                    reactor=reactor)
    log.startService()
    try:
        log(_exchange(b"/last"))
    finally:
        log.stopService()
    assert target.read_bytes() == b"/last\n"
    assert log.written == 1 and log.dropped == 0
    reactor.end_round()  # the round's own end later finds nothing left
    assert log.written == 1 and not log.queued_lines()


def test_make_access_log_formats_at_round_ends_only_on_a_reactor_that_ends_rounds():
    assert make_access_log({"access_log": "-"}, RoundReactor())._at_round_end is not None
    assert make_access_log({"access_log": "-"}, MemoryReactorClock())._at_round_end is None
    assert make_access_log({"access_log": "-"})._at_round_end is None
    assert make_access_log({"access_log": "off"}, RoundReactor()) is None


def test_on_ingressds_reactor_the_lines_are_formatted_when_its_round_ends(wall):
    reactor = DirectDispatchEPollReactor()
    try:
        log = make_access_log({"access_log": "-", "log_format_upstream": "$request_uri"}, reactor)
        log(_exchange(b"/a"))
        log(_exchange(b"/b"))
        assert not log.queued_lines()
        reactor.runUntilCurrent()  # the round of the poll ends as the timed calls begin
        assert log.queued_lines() == ["/a\n", "/b\n"]
    finally:
        reactor.removeAll()
        reactor.disconnectAll()
        reactor.runUntilCurrent()
        reactor._poller.close()


class ClosingTLSConnection:
    """A TLS client connection as ``http1.HTTP1Protocol`` is one: ``tls()`` read once and remembered;
    its TLS handle gone once it closed (as Twisted's TLS protocol drops it in connectionLost)."""

    scheme = "https"

    def __init__(self):
        self.open = True
        self._tls = None
        self.transport = SimpleNamespace(getHandle=self._handle)

    def _handle(self):
        return SimpleNamespace(get_cipher_name=lambda: "TLS_AES_128_GCM_SHA256") if self.open else None

    def tls(self):
        if self._tls is None:
            self._tls = ("TLSv1.3", "shop.test") if self.open else ("", "")
        return self._tls


@pytest.mark.parametrize("options", [
    {"access_log_format": "json"},
    {"access_log_format": "combined"},
    {"log_format_upstream": "$scheme $ssl_protocol $ssl_server_name $status"},
    {"log_format_upstream": "$scheme $ssl_protocol [$ssl_cipher] $status"},
    {"access_log_format": "nginx"},
])
def test_a_tls_connection_that_closes_before_the_round_ends_keeps_its_tls_facts_in_the_line(wall, options):
    """The exchange may finish as its TLS connection closes (connectionLost): what the line reads
    of the connection is read before the round ends, so the line is the one written at once."""
    lines = []
    for reactor in (None, RoundReactor()):
        exchange = _exchange()
        exchange.protocol = ClosingTLSConnection()
        log = AccessLog("-", settings=log_settings_from(options), reactor=reactor)
        log(exchange)
        exchange.protocol.open = False  # closed before the round ends
        if reactor is not None:
            reactor.end_round()
        lines.append(log.queued_lines())
    at_once, at_round_end = lines
    assert at_round_end == at_once
    if "ssl_protocol" in str(options) or options.get("access_log_format") in ("json", "combined"):
        assert "TLSv1.3" in at_once[0]
    if "ssl_server_name" in str(options) or options.get("access_log_format") in ("json", "combined"):
        assert "shop.test" in at_once[0]
    if "ssl_cipher" in str(options):
        assert "[TLS_AES_128_GCM_SHA256]" in at_once[0]


def test_a_line_that_reads_the_live_tls_handle_is_formatted_at_once(wall):
    reactor = RoundReactor()
    log = AccessLog("-", settings=log_settings_from({"log_format_upstream": "[$ssl_cipher]"}), reactor=reactor)
    exchange = _exchange()
    exchange.protocol = ClosingTLSConnection()
    log(exchange)
    assert log.queued_lines() == ["[TLS_AES_128_GCM_SHA256]\n"] and not reactor.ends
    plain = _exchange()  # a plain-HTTP connection has no handle to lose: held for the round's end
    log(plain)
    assert len(reactor.ends) == 1
    reactor.end_round()
    assert log.queued_lines() == ["[TLS_AES_128_GCM_SHA256]\n", "[-]\n"]


def test_which_templates_read_the_tls_connection():
    def template(text):
        return log_settings_from({"log_format_upstream": text}).template
    assert (template("$status").tls_facts, template("$status").tls_handle) == (False, False)
    assert template("$ssl_protocol").tls_facts and template("${ssl_server_name}").tls_facts
    assert template("$ssl_cipher").tls_handle and not template("$ssl_cipher").tls_facts


@pytest.mark.parametrize("compiler", ["fstring", "joined-python", "joined-c"])
@settings(max_examples=60, deadline=None)
@given(case=exchanges(), later=st.floats(0.0005, 5.0))
def test_every_compiled_line_takes_the_clock_of_the_exchanges_end_when_given(compiler, case, later):
    """``line(ex, now, end)`` is the line of the exchange whose clock read ``end`` (the f-string line
    and the joined ones, by the twin and by the C code), and without ``end`` the clock is read."""
    if compiler == "joined-c" and join_line_c is None:
        pytest.skip("the C accelerator was not built")
    now, exchange = case
    for text in (DEFAULT_UPSTREAM, "$request_time ${request_time} $msec $status"):
        template = _compiled(compiler, text, "default")
        end = exchange.proxy.clock.seconds()
        expected = template.line(exchange, now)
        clock = exchange.proxy.clock
        exchange.proxy = SimpleNamespace(clock=_Clock(end + later))
        try:
            assert template.line(exchange, now, end) == expected
        finally:
            exchange.proxy = SimpleNamespace(clock=clock)
