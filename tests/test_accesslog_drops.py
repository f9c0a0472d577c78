"""Nothing lost silently: when the access log's writer cannot keep up, lines are dropped (the
reactor never waits, the queue never grows past its bound) and every dropped line is counted,
in ``ingressd_access_log_dropped_lines_total``, on /routes and on the admin page."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

from twisted.internet.task import Clock

from ingressd.accesslog import AccessLog
from ingressd.admin.metrics import Metrics
from ingressd.admin.routes import RoutesJSON, RoutesPage
from ingressd.config.reloader import State
from ingressd.http.headers import Headers
from ingressd.logformat import log_settings_from


def _exchange():
    return SimpleNamespace(
        method=b"GET", request=SimpleNamespace(target=b"/x"), request_uri=b"/x", version=b"1.1", host="h",
        scheme="http", headers=Headers([]), client_ip="10.0.0.1", status=200, bytes_sent=3, request_bytes=30,
        started=1.0, proxy=SimpleNamespace(clock=SimpleNamespace(seconds=lambda: 1.5)), route=None, entry=None,
        upstream_address="", upstream_statuses=0, upstream_status=0, upstream_trail="", upstream_started=0.0, upstream_ended=0.0, request_id="rid",
        protocol=SimpleNamespace(scheme="http", tls=lambda: ("", "")), tunnel_bytes=(0, 0))


def _stall_writer(log):
    """Make ``log``'s writer thread stall in its next write: ``(stalled, release)``, events set
    when the write has begun and to let it (and every later write) go on (at most 60 s)."""
    stalled, release = threading.Event(), threading.Event()
    write = log._write

    def slow_write(where, data):
        stalled.set()
        release.wait(60)
        return write(where, data)

    log._write = slow_write
    return stalled, release


def _wait_for(condition, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.01) + 1):
        if condition():
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _render(resource, service) -> bytes:
    request = SimpleNamespace(postpath=[], setHeader=lambda *a: None, setResponseCode=lambda *a: None)
    return resource(service).render_GET(request)


def test_lines_beyond_the_bound_are_dropped_counted_and_shown():
    log = AccessLog("-", max_pending=3, settings=log_settings_from({}))  # not started: nothing drains
    exchange = _exchange()
    for _ in range(5):
        log(exchange)
    assert log.counts()["pending"] == 3 and log.dropped == 2
    assert log.counts() == {"written": 0, "dropped": 2, "syslog_dropped": 0, "pending": 3}

    metrics = Metrics(Clock())
    metrics.attach(access_log=log)
    text = metrics.render()[0].decode()
    assert "ingressd_access_log_dropped_lines_total 2.0" in text

    service = SimpleNamespace(state=State(), reloader=None, access_log=log)
    assert json.loads(_render(RoutesJSON, service))["access_log"]["dropped"] == 2
    page = _render(RoutesPage, service).decode()
    assert "<h2>Access log</h2>" in page and "2 dropped" in page and "3 waiting" in page


def test_the_page_says_none_dropped_and_has_no_section_without_a_log():
    log = AccessLog("-", settings=log_settings_from({}))
    page = _render(RoutesPage, SimpleNamespace(state=State(), reloader=None, access_log=log)).decode()
    assert "0 lines written, 0 waiting, none dropped" in page
    page = _render(RoutesPage, SimpleNamespace(state=State(), reloader=None)).decode()
    assert "Access log" not in page


def test_a_stalled_writer_never_holds_the_reactor_and_every_line_is_written_or_counted(tmp_path):
    """The writer thread is stuck in a write (a slow disk): the reactor side keeps returning,
    the queue stays within its bound, and once the disk is back every line offered is either
    in the file or counted as dropped."""
    target = tmp_path / "access.log"
    log = AccessLog(str(target), max_pending=50, settings=log_settings_from({"access_log_format": "combined"}))
    stalled, release = _stall_writer(log)
    log.startService()
    try:
        exchange = _exchange()
        log(exchange)  # the writer takes this one and stalls in its write
        _wait_for(stalled.is_set, "the writer to be in its write")
        offered = 1
        for _ in range(500):  # far more than the bound while the writer is stuck
            log(exchange)
            offered += 1
            assert log.counts()["pending"] <= 50
        assert log.dropped >= 500 - 50
    finally:
        release.set()
        log.stopService()
    lines = target.read_bytes().count(b"\n")
    assert lines == log.written and lines + log.dropped == offered and lines >= 1
