"""The access log's waiting lines are bounded in bytes as well as in lines: a slow disk
with requests whose URIs and headers are as long as the head limits allow (~100 KB a line)
must not hold 10,000 such lines in memory. Beyond the bound lines are dropped and counted."""

from __future__ import annotations

from types import SimpleNamespace

from ingressd.accesslog import AccessLog
from ingressd.logformat import log_settings_from

from test_accesslog_drops import _exchange, _stall_writer, _wait_for
from test_accesslog_rounds import RoundReactor

SETTINGS = {"log_format_upstream": "$request_uri"}


def _long(size):
    exchange = _exchange()
    exchange.request_uri = b"/" + b"a" * (size - 2)  # the line: the URI and its newline
    exchange.request = SimpleNamespace(target=exchange.request_uri)
    return exchange


def test_lines_beyond_the_character_bound_are_dropped_and_counted_when_written_at_once():
    log = AccessLog("-", max_pending_bytes=100, settings=log_settings_from(SETTINGS))  # not started
    for _ in range(5):
        log(_long(40))
    assert log.counts()["pending"] == 3 and log.dropped == 2  # 120 bytes waiting: the bound reached
    assert log.counts()["dropped"] == 2


def test_lines_beyond_the_character_bound_are_dropped_and_counted_when_a_round_ends():
    reactor = RoundReactor()
    log = AccessLog("-", max_pending_bytes=100, settings=log_settings_from(SETTINGS), reactor=reactor)
    for _ in range(5):
        log(_long(40))
    reactor.end_round()
    assert log.counts()["pending"] == 3 and log.dropped == 2
    log(_long(40))
    reactor.end_round()
    assert log.counts()["pending"] == 3 and log.dropped == 3


def test_the_stream_lines_count_toward_the_same_bound():
    log = AccessLog("-", max_pending_bytes=100, settings=log_settings_from(SETTINGS))
    log.append_line("x" * 99 + "\n")
    log.append_line("y\n")
    assert log.queued_lines(stream=True) == ["x" * 99 + "\n"] and log.dropped == 1
    log(_long(10))
    assert not log.queued_lines() and log.dropped == 2


def test_what_the_writer_took_frees_the_bound_and_every_line_is_written_or_counted(tmp_path):
    """A stalled writer: long lines fill the byte bound (far below the line bound), the
    rest are counted; once the writer is back, the bound is free again."""
    target = tmp_path / "access.log"
    reactor = RoundReactor()
    log = AccessLog(str(target), max_pending_bytes=10_000, settings=log_settings_from(SETTINGS),
                    reactor=reactor)
    stalled, release = _stall_writer(log)
    log.startService()
    offered = 0
    try:
        log(_long(1000))
        offered += 1
        reactor.end_round()
        _wait_for(stalled.is_set, "the writer to be in its write")
        for _ in range(5):  # rounds of 20 lines of 1,000 bytes while the writer is stuck
            for _ in range(20):
                log(_long(1000))
                offered += 1
            reactor.end_round()
            assert log.counts()["pending"] <= 11
        assert log.dropped >= 100 - 11
        release.set()
        _wait_for(lambda: log.counts()["pending"] == 0, "the writer to take the waiting lines")
        for _ in range(5):  # the bound is free again
            log(_long(1000))
            offered += 1
        reactor.end_round()
        assert log.counts()["pending"] == 5 or log.written >= offered - log.dropped - 5
    finally:
        release.set()
        log.stopService()
    data = target.read_bytes()
    lines = data.count(b"\n")
    assert lines == log.written and lines + log.dropped == offered
    assert data.endswith(b"a" * 998 + b"\n")
