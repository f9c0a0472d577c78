"""The access log's waiting lines as bytes in one buffer (``logline.LineBuffer``): a round's lines
are appended straight into it, the writer takes all that waits and writes it in one write, as it
is, and still by whole lines: a round that crosses the byte bound keeps its first lines and drops
the rest whole, counted; a failed write counts every line it held; syslog gets one datagram a
line, each exactly the line; a reopen or a stop falls between two takes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ingressd.accesslog import AccessLog
from ingressd.logformat import log_settings_from

from test_accesslog_drops import _exchange
from test_accesslog_rounds import RoundReactor

URI = {"log_format_upstream": "$request_uri"}


def _uri(target: bytes):
    exchange = _exchange()
    exchange.request_uri = target
    exchange.request = SimpleNamespace(target=target)
    return exchange


def _round(log, reactor, *targets):
    for target in targets:
        log(_uri(target))
    reactor.end_round()


class _Writes:
    """``AccessLog._write`` recorded: each call's target and bytes; ``ok`` says what it returns."""

    def __init__(self, ok=True):
        self.calls = []
        self.ok = ok

    def __call__(self, target, data):
        self.calls.append((target, bytes(data)))
        return self.ok


def test_the_rounds_lines_wait_as_bytes_in_one_buffer():
    reactor = RoundReactor()
    log = AccessLog("-", settings=log_settings_from(URI), reactor=reactor)
    _round(log, reactor, b"/a", b"/bb")
    _round(log, reactor, b"/\xc3\xa9")
    assert len(log._pending) == 3 and log._pending.size == 17
    assert log.counts()["pending"] == 3
    assert log._pending.take() == (b"/a\n/bb\n/\\xC3\\xA9\n", 3)


def test_the_writer_writes_all_that_waits_in_one_write_and_counts_its_lines():
    reactor = RoundReactor()
    log = AccessLog("-", settings=log_settings_from(URI), reactor=reactor)
    writes = log._write = _Writes()
    _round(log, reactor, b"/a", b"/b")
    _round(log, reactor, b"/c")
    log.append_line("stream\n")
    log._drain(log._pending, "http.log", None)
    log._drain(log._stream_pending, "stream.log", None)
    log._drain(log._pending, "http.log", None)  # nothing waits: no write
    assert writes.calls == [("http.log", b"/a\n/b\n/c\n"), ("stream.log", b"stream\n")]
    assert log.written == 4 and log.dropped == 0 and log.counts()["pending"] == 0


def test_a_failed_write_counts_every_line_it_held_and_frees_the_bounds():
    reactor = RoundReactor()
    log = AccessLog("-", settings=log_settings_from(URI), reactor=reactor, max_pending=5)
    log._write = _Writes(ok=False)
    _round(log, reactor, b"/a", b"/b")
    _round(log, reactor, b"/c", b"/d", b"/e")
    _round(log, reactor, b"/f")  # the line bound (5) reached: dropped before it is formatted
    assert log.dropped == 1 and log.counts()["pending"] == 5
    log._drain(log._pending, "x", None)
    assert log.written == 0 and log.write_failed == 5 and log.dropped == 6
    _round(log, reactor, b"/g")
    assert log.counts()["pending"] == 1 and log.dropped == 6


@pytest.mark.parametrize("waiting, kept", [(0, 3), (93, 3), (94, 2), (96, 2), (97, 1), (99, 1), (100, 0),
                                           (150, 0)])
def test_a_round_crossing_the_byte_bound_keeps_whole_lines_and_counts_the_rest(waiting, kept):
    """Lines of 3 bytes under a bound of 100, ``waiting`` bytes of stream lines already waiting: a
    line is queued when the bytes waiting before it are below the bound."""
    reactor = RoundReactor()
    log = AccessLog("-", settings=log_settings_from(URI), reactor=reactor, max_pending_bytes=100)
    if waiting:
        log.append_line("s" * (waiting - 1) + "\n")
    _round(log, reactor, b"/a", b"/b", b"/c")
    assert log.queued_lines() == ["/a\n", "/b\n", "/c\n"][:kept]
    assert log.dropped == 3 - kept and log.counts()["pending"] == kept + (waiting > 0)
    assert log._pending.size == 3 * kept


def test_the_stream_lines_see_the_http_lines_bytes_too():
    log = AccessLog("-", settings=log_settings_from(URI), max_pending_bytes=10)
    log(_uri(b"/123456789"))  # 11 bytes: the bound was not reached before it
    log.append_line("s\n")
    log(_uri(b"/x"))
    assert log.queued_lines() == ["/123456789\n"] and not log.queued_lines(stream=True)
    assert log.dropped == 2
    log._write = _Writes()
    log._drain(log._pending, "x", None)
    log.append_line("s\n")
    assert log.queued_lines(stream=True) == ["s\n"] and log.dropped == 2


def test_syslog_gets_each_line_as_it_was_one_datagram_a_line():
    """Lines with what a split at line breaks would get wrong (escape=none writes a value's line
    break as it is) and bytes that are not UTF-8: each datagram is the line's own text."""
    reactor = RoundReactor()
    log = AccessLog("-", settings=log_settings_from({"log_format_upstream": "$request_uri",
                                                     "log_format_escape_none": True}), reactor=reactor)
    sent = []
    log._sender = lambda server: SimpleNamespace(send=lambda lines, now: sent.append(list(lines)))
    at_once = AccessLog("-", settings=log.settings)
    targets = (b"/a\nb", b"/\xff\xfe", b"/plain")
    _round(log, reactor, *targets)
    for target in targets:
        at_once(_uri(target))
    log._drain(log._pending, "-", ("127.0.0.1", 514))
    expected = [target.decode("utf-8", "surrogateescape") + "\n" for target in targets]
    assert sent == [expected] and log.written == 3 and not len(log._pending)
    assert at_once.queued_lines() == expected  # the line formatted at once: the same text


def test_a_reopen_falls_between_two_takes(tmp_path):
    target = tmp_path / "access.log"
    reactor = RoundReactor()
    log = AccessLog(str(target), settings=log_settings_from(URI), reactor=reactor)
    log._open(str(target))
    _round(log, reactor, b"/one", b"/two")
    log._drain(log._pending, str(target), None)
    target.rename(tmp_path / "access.log.1")
    log._reopen_files()
    _round(log, reactor, b"/three", b"/four")
    log._drain(log._pending, str(target), None)
    for file in log._files.values():
        file.close()
    assert (tmp_path / "access.log.1").read_bytes() == b"/one\n/two\n"
    assert target.read_bytes() == b"/three\n/four\n"


def test_a_stop_writes_the_round_in_progress_and_all_that_waits(tmp_path):
    target = tmp_path / "access.log"
    reactor = RoundReactor()
    log = AccessLog(str(target), settings=log_settings_from(URI), reactor=reactor)
    log.startService()
    try:
        _round(log, reactor, b"/a", b"/b")
        _round(log, reactor, b"/c")
        log(_uri(b"/in-progress"))  # its round has not ended
    finally:
        log.stopService()
    assert target.read_bytes() == b"/a\n/b\n/c\n/in-progress\n"
    assert log.written == 4 and log.dropped == 0


def test_a_line_utf8_cannot_write_is_counted_not_queued():
    """A str value with a lone surrogate, which escape=none passes on: the line is dropped and
    counted where it is encoded (before, the writer's encode of its whole batch would have failed)."""
    settings = log_settings_from({"log_format_upstream": "$host", "log_format_escape_none": True})
    reactor = RoundReactor()
    log = AccessLog("-", settings=settings, reactor=reactor)
    exchange = _uri(b"/x")
    exchange.host = "\ud800"
    log(exchange)
    log(_uri(b"/y"))
    reactor.end_round()
    log.append_line("\ud800\n")
    assert log.queued_lines() == ["h\n"] and log.dropped == 2
