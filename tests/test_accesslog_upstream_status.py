"""``$upstream_status`` as the access log writes it: the compiled lines and the json round loop read
the fields ``Exchange.upstream_statuses`` combines (``upstream_trail``, ``upstream_status``) and call
the property only after retries; the text is the property's in every case: one try answered, one
try failed, retries whose last try answered or failed (``status`` then), on real exchanges and on
stand-ins of every combination."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from ingressd import accesslog
from ingressd.accesslog import _json_line, _record
from ingressd.http.headers import Headers
from ingressd.logformat import DEFAULT_UPSTREAM
from ingressd.proxy.exchange import Exchange
from ingressd.proxy.upstream import UpstreamError

from test_accesslog_round_lines import round_lines
from test_logline import COMPILERS, JOINS, _compiled, into_of
from test_next_upstream import answer, entry, proxy_for, refused, start

TRAILS = ["", "502, ", "502, 504, "]
LAST = [0, 200, 503]  # the last try's status (0: it failed, or none was made)
STATUSES = [200, 502, 503, 504]  # the exchange's own status


class _Clock:
    def __init__(self, now):
        self.now = now

    def seconds(self):
        return self.now


def _exchange(trail: str, last: int, status: int):
    exchange = SimpleNamespace(
        method=b"GET", request=SimpleNamespace(target=b"/x"), request_uri=b"/x", path="/x", version=b"1.1",
        host="h", scheme="http", headers=Headers([(b"user-agent", b"ua")]), client_ip="10.0.0.1", peer_ip="10.0.0.1",
        status=status, bytes_sent=3, request_bytes=30, started=1.0, proxy=SimpleNamespace(clock=_Clock(1.5)),
        route=None, entry=None, upstream_address="10.0.0.2:80", upstream_trail=trail, upstream_status=last,
        upstream_started=1.1, upstream_ended=1.4, upstream_connected=1.1, upstream_headed=1.2, request_id="rid",
        server_port=80, protocol=SimpleNamespace(scheme="http", tls=lambda: ("", "")), tunnel_bytes=(0, 0),
        response_headers=[], upstream_endpoint=None)
    exchange.upstream_statuses = Exchange.upstream_statuses.fget(exchange)
    return exchange


def _text(statuses, escape: str = "default") -> str:
    """The property's value as a line writes it (none: "-" with the default escaping, else "")."""
    return str(statuses) if statuses else "-" if escape == "default" else ""


CASES = list(itertools.product(TRAILS, LAST, STATUSES))


@pytest.mark.parametrize("compiler", COMPILERS)
@pytest.mark.parametrize("escape", ["default", "json", "none"])
def test_the_compiled_line_writes_the_property_s_text(compiler, escape):
    for text in ("$upstream_status", DEFAULT_UPSTREAM):
        fmt = _compiled(compiler, text, escape)
        for trail, last, status in CASES:
            exchange = _exchange(trail, last, status)
            line = fmt.render(exchange, 1_790_000_000.0)
            assert line == fmt.render_slowly(exchange, 1_790_000_000.0), (trail, last, status)
            if text == "$upstream_status":
                assert line == _text(exchange.upstream_statuses, escape) + "\n"
            assert round_lines(fmt.lines, [(exchange, 1_790_000_000.0, 1.5)]) == (
                0, [fmt.line(exchange, 1_790_000_000.0, 1.5)])


@pytest.mark.parametrize("join", JOINS)
def test_the_json_round_loop_writes_the_property_s_value(join):
    for trail, last, status in CASES:
        exchange = _exchange(trail, last, status)
        assert round_lines(accesslog._json_lines_joined, [(exchange, 1_790_000_000.0, 1.5)], accesslog._RouteParts(),
                           into=into_of(join)) == (0, [_json_line(_record(exchange, 1_790_000_000.0))]), (trail, last,
                                                                                                        status)


def _retried_exchanges():
    """Real exchanges (``test_next_upstream``'s rig): one answered try, one failed try without a
    retry, a retry answered, retries all failed (the last one's 502, 504), the last answer passed on."""
    proxy, pool, _ = proxy_for(entry())
    _, one = start(proxy)
    answer(pool.connect(), 200, body=b"ok")
    yield one, 200
    proxy, pool, _ = proxy_for(entry(failures=frozenset()))
    _, failed = start(proxy)
    pool.refuse(refused())
    yield failed, 0
    proxy, pool, _ = proxy_for(entry(statuses=frozenset({502, 503})))
    _, passed_over = start(proxy)
    answer(pool.connect(), 503, body=b"busy")
    answer(pool.connect(), 200, body=b"fine")
    yield passed_over, "503, 200"
    proxy, pool, _ = proxy_for(entry())
    _, refusals = start(proxy)
    for _ in range(3):
        pool.refuse(refused())
    yield refusals, "502, 502, 502"
    proxy, pool, _ = proxy_for(entry(tries=2))
    _, timeouts = start(proxy)
    for _ in range(2):
        connection = pool.connect()
        timeouts.upstream_failed(connection, UpstreamError("read timeout", timeout=True, cause="read_timeout"))
    yield timeouts, "504, 504"
    proxy, pool, _ = proxy_for(entry(statuses=frozenset({503}), tries=2))
    _, last_passed_on = start(proxy)
    answer(pool.connect(), 503, body=b"first")
    answer(pool.connect(), 503, body=b"second")
    yield last_passed_on, "503, 503"


@pytest.mark.parametrize("compiler", COMPILERS)
def test_real_exchanges_are_logged_with_the_property_s_text(compiler):
    fmt = _compiled(compiler, "$upstream_status", "default")
    seen = []
    for exchange, statuses in _retried_exchanges():
        assert exchange.upstream_statuses == statuses
        assert fmt.render(exchange, 1_790_000_000.0) == _text(statuses) + "\n"
        seen.append(statuses)
    assert seen == [200, 0, "503, 200", "502, 502, 502", "504, 504", "503, 503"]


def test_both_constructions_start_with_no_trail():
    """``upstream_trail`` is a slot both ``Proxy.__call__``'s inline construction and
    ``Exchange.__init__`` set: an exchange made either way is logged, with no try, as the property says."""
    from test_exchange import FakeClient, request
    proxy, _, _ = proxy_for(entry())
    fmt = _compiled("joined-python", "$upstream_status", "default")
    for exchange in (proxy(FakeClient(), request()), Exchange(proxy, FakeClient(), request())):
        assert exchange.upstream_trail == "" and exchange.upstream_statuses == 0
        assert fmt.render(exchange, 1_790_000_000.0) == "-\n"
