"""The access log's fast paths against their references, for any request.

``_json_line_of`` / ``_combined_line_of`` (read straight from the exchange, a route's part
cached) must write exactly ``_json_line`` / ``_combined_line`` of ``_record(exchange)``
(which tests/test_accesslog.py holds to ``json.dumps`` and nginx's escaping). (The compiled
``log_format`` lines: tests/test_logformat_compiled.py, with this module's exchanges.)
"""

from __future__ import annotations

import time
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from ingressd.accesslog import (AccessLog, _combined_line, _combined_line_of, _json, _json_line, _json_line_of,
                                _record, _RouteParts, _seconds)
from ingressd.http.headers import Headers
from ingressd.logformat import log_settings_from

from test_logformat_compiled import _Clock, _Protocol, exchanges

@settings(max_examples=400)
@given(exchanges())
def test_the_json_line_read_from_the_exchange_is_the_reference_line(case):
    now, exchange = case
    assert _json_line_of(exchange, now, _RouteParts()) == _json_line(_record(exchange, now))


@settings(max_examples=400)
@given(exchanges())
def test_the_combined_line_read_from_the_exchange_is_the_reference_line(case):
    now, exchange = case
    assert _combined_line_of(exchange, now, _RouteParts()) == _combined_line(_record(exchange, now))


@settings(max_examples=300)
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e7, max_value=1e7),
                 st.floats(min_value=0, max_value=0.001), st.integers(-10, 10**7),
                 st.sampled_from([0.0, -0.0, 0.0001, 0.00009999999, 999999.9999995, 1e6, 0.1234565])))
def test_seconds_is_json_of_the_value_rounded_to_microseconds(value):
    assert _seconds(value) == _json(round(value, 6))


def test_a_routes_part_is_made_once_and_never_taken_for_another_routes():
    parts = _RouteParts(limit=2)
    one = SimpleNamespace(ingress=SimpleNamespace(namespace="a", name="b"), backend=SimpleNamespace(service="s", port=80))
    other = SimpleNamespace(ingress=SimpleNamespace(namespace="c", name="d"), backend=SimpleNamespace(service="t", port=81))
    first = parts.of(one)
    assert parts.of(one) is first
    assert first[1] == ',"namespace":"a","ingress":"b","service":"s","service_port":80,'
    assert first[2:] == ("[a-s-80] [] ", "a/b")
    assert parts.of(other)[2:] == ("[c-t-81] [] ", "c/d")
    assert parts.of(None)[1:] == (',"namespace":"","ingress":"","service":"","service_port":"",', "[] [] ", "-")
    assert len(parts._parts) <= 2  # bounded: emptied when full


def test_the_access_log_writes_the_fast_lines(monkeypatch):
    from ingressd import accesslog
    now = 1_790_000_000.25
    monkeypatch.setattr(accesslog, "time", SimpleNamespace(time=lambda: now, strftime=time.strftime, gmtime=time.gmtime,
                                                           localtime=time.localtime))
    exchange = SimpleNamespace(
        method=b"GET", request=SimpleNamespace(target=b"/x"), request_uri=b"/x", version=b"1.1", host="h",
        scheme="http", headers=Headers([(b"user-agent", b"ua")]), client_ip="10.0.0.1", status=200, bytes_sent=3,
        request_bytes=30, started=1.0, proxy=SimpleNamespace(clock=_Clock(1.5)), route=None, entry=None,
        upstream_address="10.0.0.2:80", upstream_statuses=200, upstream_status=200, upstream_trail="", upstream_started=1.1, upstream_ended=1.4,
        request_id="rid", protocol=_Protocol("http", ("", "")), tunnel_bytes=(0, 0))
    for fmt, reference in (("json", _json_line), ("combined", _combined_line)):
        log = AccessLog("-", settings=log_settings_from({"access_log_format": fmt}))
        log(exchange)
        assert log.queued_lines() == [reference(_record(exchange, now))] and log.dropped == 0
