"""proxy-next-upstream: the policy (ingressd/proxy/next_upstream.py) and the exchange following it,
in memory (the fakes of tests/test_exchange.py): each condition, tries, the timeout, the
non-idempotent rule, the body sent again, the last answer passed through, the log's lists."""

from __future__ import annotations

import pytest

from ingressd.config.entries import DEFAULT_UPSTREAM, RouteEntry
from ingressd.config.model import Backend, Endpoint, ObjectRef, Route
from ingressd.features import Phase, UpstreamSettings
from ingressd.proxy import next_upstream
from ingressd.proxy.next_upstream import DEFAULT, NextUpstream, exhausted, failure_kind, may_retry, parse_conditions
from ingressd.proxy.upstream import UpstreamError

from test_exchange import FakeClient, proxy_for, request

ONE, TWO, THREE = Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80), Endpoint("10.0.0.3", 80)


# -- the policy --------------------------------------------------------------------------------


def test_the_default_is_ingress_nginx_s_error_timeout_3_tries_no_time_limit():
    assert DEFAULT == NextUpstream(frozenset({"error", "timeout"}), frozenset(), False, 3, 0.0)
    assert DEFAULT_UPSTREAM.next_upstream is DEFAULT


@pytest.mark.parametrize("value, expected", [
    ("error timeout", ({"error", "timeout"}, set(), False)),
    ("error timeout http_502 http_503", ({"error", "timeout"}, {502, 503}, False)),
    ("http_500 http_502 http_503 http_504 http_403 http_404 http_429", (set(), {500, 502, 503, 504, 403, 404, 429}, False)),
    ("invalid_header non_idempotent", ({"invalid_header"}, set(), True)),
    ("off", (set(), set(), False)),
    ("error off http_502 non_idempotent", (set(), set(), False)),  # off wins, as in nginx
    (" error ", ({"error"}, set(), False)),
    ("error  timeout", ({"error", "timeout"}, set(), False)),  # nginx reads words apart
])
def test_parse_conditions(value, expected):
    failures, statuses, non_idempotent = parse_conditions(value)
    assert (set(failures), set(statuses), non_idempotent) == expected


@pytest.mark.parametrize("value", ["", " ", "errortimeout", "http_501", "error,timeout", "ERROR", "on", "error timeout x"])
def test_parse_conditions_refuses_what_ingress_nginx_s_validator_refuses(value):
    with pytest.raises(ValueError):
        parse_conditions(value)


def test_failure_kinds():
    assert failure_kind("read_timeout", True) == "timeout"
    assert failure_kind("connect_timeout", True) == "timeout"
    assert failure_kind("invalid_response", False) == "invalid_header"
    assert failure_kind("connect_failed", False) == "error"
    assert failure_kind("backend_closed", False) == "error"  # nginx: "upstream prematurely closed": FT_ERROR
    assert failure_kind("", False) == "error"


def policy(**changes):
    values = dict(failures=frozenset({"error", "timeout"}), statuses=frozenset(), non_idempotent=False, tries=3,
                  timeout=0.0)
    values.update(changes)
    return NextUpstream(**values)


def test_may_retry_each_condition():
    assert may_retry(policy(), "error", b"GET", True, 1, 0.0)
    assert may_retry(policy(), "timeout", b"GET", True, 1, 0.0)
    assert not may_retry(policy(), "invalid_header", b"GET", True, 1, 0.0)
    assert may_retry(policy(failures=frozenset({"invalid_header"})), "invalid_header", b"GET", True, 1, 0.0)
    assert not may_retry(policy(failures=frozenset({"timeout"})), "error", b"GET", True, 1, 0.0)
    assert not may_retry(policy(), "http_502", b"GET", True, 1, 0.0)
    assert may_retry(policy(statuses=frozenset({502})), "http_502", b"GET", True, 1, 0.0)
    assert not may_retry(policy(statuses=frozenset({502})), "http_503", b"GET", True, 1, 0.0)
    assert not may_retry(policy(failures=frozenset()), "error", b"GET", False, 1, 0.0)  # off


def test_may_retry_tries_count_the_first_and_zero_is_no_limit():
    assert may_retry(policy(tries=3), "error", b"GET", True, 2, 0.0)
    assert not may_retry(policy(tries=3), "error", b"GET", True, 3, 0.0)
    assert not may_retry(policy(tries=1), "error", b"GET", True, 1, 0.0)
    assert may_retry(policy(tries=0), "error", b"GET", True, 1000, 0.0)


def test_may_retry_timeout_since_the_first_try():
    assert may_retry(policy(timeout=2.0), "error", b"GET", True, 1, 1.999)
    assert not may_retry(policy(timeout=2.0), "error", b"GET", True, 1, 2.0)
    assert may_retry(policy(timeout=0.0), "error", b"GET", True, 1, 10**6)


@pytest.mark.parametrize("method", [b"POST", b"LOCK", b"PATCH"])
def test_post_lock_patch_once_sent_only_with_non_idempotent(method):
    assert not may_retry(policy(), "error", method, True, 1, 0.0)
    assert not may_retry(policy(statuses=frozenset({503})), "http_503", method, True, 1, 0.0)
    assert may_retry(policy(), "error", method, False, 1, 0.0)  # the connect failed: nothing was sent
    assert may_retry(policy(non_idempotent=True), "error", method, True, 1, 0.0)


@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PROPFIND"])
def test_other_methods_are_retried_once_sent(method):
    assert may_retry(policy(), "error", method, True, 1, 0.0)


def test_exhausted_only_without_a_limit():
    assert exhausted(policy(tries=0), ONE, (ONE, TWO))
    assert not exhausted(policy(tries=0), THREE, (ONE, TWO))
    assert not exhausted(policy(tries=3), ONE, (ONE, TWO))


# -- the exchange ------------------------------------------------------------------------------


class Settings:
    phase = Phase.PROXY

    def __init__(self, **changes):
        self.upstream = UpstreamSettings(next_upstream=policy(**changes))


def entry(endpoints=(ONE, TWO, THREE), **changes):
    route = Route("shop.test", "/", "Prefix", Backend("default", "web", "80", tuple(endpoints)),
                  ObjectRef("Ingress", "default", "shop"))
    return RouteEntry(route, [Settings(**changes)] if changes else ())


def asked(pool):
    return [host for (host, _), *_ in pool.asked]


def refused():
    return UpstreamError("connect refused", retryable=True, cause="connect_failed")


def answer(connection, status, headers=(), body=b""):
    """The backend answers (FakeConnection.respond, stopping where the exchange aborts it)."""
    exchange = connection.exchange
    connection.response_headers = list(headers)
    exchange.upstream_head(connection, status, connection.response_headers, len(body))
    if connection.aborted:
        return
    if body:
        exchange.upstream_body(body)
    exchange.upstream_done(connection, True)


def start(proxy, method=b"GET", body=b""):
    client = FakeClient()
    req = request(method=method, content_length=len(body) if body else None)
    exchange = proxy(client, req)
    if body:
        exchange.body_data(body)
    exchange.body_done()
    return client, exchange


def test_never_the_same_endpoint_twice_while_another_is_ready():
    proxy, pool, finished = proxy_for(entry())
    client, exchange = start(proxy)
    for _ in range(3):
        pool.refuse(refused())
    assert asked(pool) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert client.head[0] == 502 and exchange.retries == 2 and finished == [exchange]
    assert exchange.upstream_address == "10.0.0.1:80, 10.0.0.2:80, 10.0.0.3:80"
    assert exchange.upstream_statuses == "502, 502, 502"


def test_tries_limit_the_tries():
    proxy, pool, _ = proxy_for(entry(tries=2))
    client, exchange = start(proxy)
    pool.refuse(refused())
    pool.refuse(refused())
    assert asked(pool) == ["10.0.0.1", "10.0.0.2"] and client.head[0] == 502


def test_tries_zero_asks_each_endpoint_once():
    proxy, pool, _ = proxy_for(entry(tries=0))
    client, exchange = start(proxy)
    for _ in range(3):
        pool.refuse(refused())
    assert asked(pool) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"] and client.head[0] == 502


def test_off_asks_one_endpoint():
    proxy, pool, _ = proxy_for(entry(failures=frozenset()))
    client, exchange = start(proxy)
    pool.refuse(refused())
    assert asked(pool) == ["10.0.0.1"] and client.head[0] == 502 and exchange.retries == 0


def test_a_timeout_is_retried_and_the_last_one_is_504():
    proxy, pool, _ = proxy_for(entry(tries=2))
    client, exchange = start(proxy)
    for _ in range(2):
        connection = pool.connect()
        exchange.upstream_failed(connection, UpstreamError("read timeout", timeout=True, cause="read_timeout"))
    assert asked(pool) == ["10.0.0.1", "10.0.0.2"] and client.head[0] == 504
    assert exchange.upstream_statuses == "504, 504"


def test_timeout_only_does_not_retry_an_error():
    proxy, pool, _ = proxy_for(entry(failures=frozenset({"timeout"})))
    client, _ = start(proxy)
    pool.refuse(refused())
    assert len(pool.asked) == 1 and client.head[0] == 502


def test_next_upstream_timeout_stops_the_tries():
    proxy, pool, _ = proxy_for(entry(timeout=5.0))
    client, exchange = start(proxy)
    pool.refuse(refused())  # at once: retried
    proxy.clock.advance(5)
    pool.refuse(refused())
    assert asked(pool) == ["10.0.0.1", "10.0.0.2"] and client.head[0] == 502


def test_invalid_header_only_when_listed():
    proxy, pool, _ = proxy_for(entry())
    client, _ = start(proxy)
    exchange_error = UpstreamError("invalid response from backend", cause="invalid_response")
    connection = pool.connect()
    connection.exchange.upstream_failed(connection, exchange_error)
    assert len(pool.asked) == 1 and client.head[0] == 502
    proxy, pool, _ = proxy_for(entry(failures=frozenset({"invalid_header"})))
    client, exchange = start(proxy)
    connection = pool.connect()
    exchange.upstream_failed(connection, exchange_error)
    assert asked(pool) == ["10.0.0.1", "10.0.0.2"]
    answer(pool.connect(), 200, body=b"ok")
    assert client.head[0] == 200 and client.body == b"ok"


def test_a_listed_status_is_passed_over_and_the_next_answer_is_the_client_s():
    proxy, pool, _ = proxy_for(entry(statuses=frozenset({502, 503})))
    client, exchange = start(proxy)
    first = pool.connect()
    answer(first, 503, body=b"busy")
    assert first.aborted and client.head is None  # closed, as nginx closes it; nothing sent
    answer(pool.connect(), 200, body=b"fine")
    assert client.head[0] == 200 and client.body == b"fine" and exchange.retries == 1
    assert exchange.upstream_statuses == "503, 200" and exchange.upstream_status == 200
    assert exchange.upstream_address == "10.0.0.1:80, 10.0.0.2:80"


def test_with_no_try_left_the_last_answer_is_passed_through():
    proxy, pool, _ = proxy_for(entry(statuses=frozenset({503}), tries=2))
    client, exchange = start(proxy)
    answer(pool.connect(), 503, body=b"first")
    last = pool.connect()
    answer(last, 503, [(b"retry-after", b"7")], body=b"second")
    assert client.head[0] == 503 and client.body == b"second" and not last.aborted
    assert client.header(b"retry-after") == [b"7"]
    assert exchange.upstream_statuses == "503, 503"


def test_a_status_not_listed_is_the_answer():
    proxy, pool, _ = proxy_for(entry(statuses=frozenset({503})))
    client, _ = start(proxy)
    answer(pool.connect(), 500, body=b"oops")
    assert client.head[0] == 500 and len(pool.asked) == 1


def test_a_post_sent_is_retried_only_with_non_idempotent():
    proxy, pool, _ = proxy_for(entry(statuses=frozenset({503})))
    client, _ = start(proxy, method=b"POST", body=b"data")
    answer(pool.connect(), 503)
    assert client.head[0] == 503 and len(pool.asked) == 1
    proxy, pool, _ = proxy_for(entry(statuses=frozenset({503}), non_idempotent=True))
    client, _ = start(proxy, method=b"POST", body=b"data")
    first = pool.connect()
    answer(first, 503)
    second = pool.connect()
    answer(second, 200)
    assert client.head[0] == 200
    assert first.sent.endswith(b"\r\n\r\ndata") and second.sent.endswith(b"\r\n\r\ndata")  # the body sent again


def test_a_post_whose_connect_failed_is_retried_without_non_idempotent():
    proxy, pool, _ = proxy_for(entry())
    client, _ = start(proxy, method=b"POST", body=b"data")
    pool.refuse(refused())
    connection = pool.connect()
    answer(connection, 201)
    assert client.head[0] == 201 and connection.sent.endswith(b"data") and connection.ended


def test_the_body_is_sent_whole_to_each_endpoint():
    proxy, pool, _ = proxy_for(entry())
    body = b"x" * 300000  # several pieces, some sent in later reactor rounds
    client, exchange = start(proxy, method=b"PUT", body=body)
    first = pool.connect()
    proxy.clock.advance(0)
    exchange.upstream_failed(first, UpstreamError("backend closed", cause="backend_closed"))
    second = pool.connect()
    for _ in range(10):
        proxy.clock.advance(0)
    assert second.sent.split(b"\r\n\r\n", 1)[1] == body and second.ended
    answer(second, 200)
    assert client.head[0] == 200


def test_nothing_is_retried_once_the_response_started():
    proxy, pool, _ = proxy_for(entry())
    client, exchange = start(proxy)
    connection = pool.connect()
    exchange.upstream_head(connection, 200, [], 10)
    exchange.upstream_failed(connection, UpstreamError("read timeout", timeout=True, cause="read_timeout"))
    assert client.aborted and len(pool.asked) == 1


def test_a_stale_pooled_connection_is_tried_again_without_counting_a_try():
    proxy, pool, _ = proxy_for(entry(tries=1))
    client, exchange = start(proxy, method=b"POST", body=b"d")
    stale = pool.connect(reused=True)
    exchange.upstream_failed(stale, UpstreamError("closed before answering", retryable=True, cause="backend_closed"))
    assert asked(pool) == ["10.0.0.1", "10.0.0.1"]
    answer(pool.connect(), 200)
    assert client.head[0] == 200


def test_server_settings_without_a_policy_use_the_default():
    proxy, pool, _ = proxy_for(entry())
    proxy.settings.upstream = UpstreamSettings()
    # the route's entry carries the default (DEFAULT_UPSTREAM): a route retries as ingress-nginx
    client, _ = start(proxy)
    pool.refuse(refused())
    assert len(pool.asked) == 2
    assert next_upstream.DEFAULT.tries == 3


def test_the_time_limit_counts_from_the_first_try_even_at_time_zero():
    proxy, pool, _ = proxy_for(entry(timeout=5.0))
    assert proxy.clock.seconds() == 0
    client, exchange = start(proxy)
    connection = pool.connect()
    proxy.clock.advance(3)
    exchange.upstream_failed(connection, UpstreamError("backend closed", cause="backend_closed"))  # 3 s: retried
    connection = pool.connect()
    proxy.clock.advance(3)
    exchange.upstream_failed(connection, UpstreamError("backend closed", cause="backend_closed"))  # 6 s: over
    assert len(pool.asked) == 2 and client.head[0] == 502


def test_a_passed_grpc_deadline_is_never_tried_again():
    from ingressd.proxy.next_upstream import CALL_DEADLINE, failure_kind

    assert failure_kind("grpc_deadline", True) == CALL_DEADLINE
    assert not may_retry(DEFAULT, CALL_DEADLINE, b"POST", False, 1, 0.0)
