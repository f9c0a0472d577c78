"""An HTTPRoute rule's ``retry`` (config/gateway/retry.py): parsed into the route's retry policy
(a ``NextUpstream``: codes, attempts counting the retries, backoff), carried to the route's
``UpstreamSettings`` by the proxy_settings plugin, and followed by the real Exchange in memory:
the backoff waited on the clock between tries, the request timeout bounding tries and waits,
the conformance cases of HTTPRouteRetry as the policy decides them (their traffic:
tests/test_e2e_gateway_retry.py)."""

from __future__ import annotations

import pytest

from ingressd.config.entries import RouteEntry
from ingressd.config.gateway import retry
from ingressd.config.gateway.route_filters import Invalid
from ingressd.config.gateway_api import translate
from ingressd.config.model import Backend, Endpoint, ObjectRef, Route, Timeouts
from ingressd.features import Phase, UpstreamSettings
from ingressd.proxy.next_upstream import NextUpstream
from ingressd.proxy.upstream import UpstreamError
from ingressd_plugins import proxy_settings

from test_exchange import proxy_for
from test_gateway_translate import BASE, conditions, route_yaml, snapshot, status
from test_next_upstream import answer, asked, refused, start

ONE = Endpoint("10.0.0.1", 80)


# -- the stanza ----------------------------------------------------------------------------------

def test_no_stanza_no_policy():
    assert retry.parse(None) is None


def test_codes_and_attempts_count_the_retries():
    policy = retry.parse({"codes": [500, 502], "attempts": 3})
    assert policy == NextUpstream(failures=frozenset(("error", "timeout")), statuses=frozenset((500, 502)),
                                  non_idempotent=False, tries=4, timeout=0.0, backoff=0.0, error_status=503,
                                  stale_retry=False)


def test_without_attempts_two_retries_and_without_codes_connection_errors_only():
    policy = retry.parse({})
    assert policy.tries == 3 and policy.statuses == frozenset() and policy.failures == {"error", "timeout"}


def test_backoff_is_a_duration():
    assert retry.parse({"backoff": "100ms"}).backoff == pytest.approx(0.1)
    assert retry.parse({"backoff": "1m30s"}).backoff == pytest.approx(90.0)


@pytest.mark.parametrize("raw", [
    "often", {"codes": [399]}, {"codes": [600]}, {"codes": ["500"]}, {"codes": 500}, {"attempts": 0},
    {"attempts": "3"}, {"attempts": True}, {"backoff": "100"}, {"backoff": 1},
])
def test_invalid_stanzas(raw):
    with pytest.raises(Invalid):
        retry.parse(raw)


# -- the translation -----------------------------------------------------------------------------

RULES = """
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /retry/code-500-attempts-3}}]
    retry: {codes: [500], attempts: 3}
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /plain}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /bad}}]
    retry: {codes: [200]}
    backendRefs: [{name: infra-backend-v1, port: 8080}]
"""


def test_the_policy_rides_on_the_rules_routes_and_a_bad_stanza_leaves_its_rule_out():
    config = translate(snapshot(BASE, route_yaml(RULES)))
    routes = {route.path: route for route in config.routes}
    assert set(routes) == {"/retry/code-500-attempts-3", "/plain"}
    values = dict(routes["/retry/code-500-attempts-3"].features)
    assert values[retry.RETRY].statuses == {500} and values[retry.RETRY].tries == 4
    assert retry.RETRY not in dict(routes["/plain"].features)
    (parent,) = status(config, "HTTPRoute", "gateway-conformance-infra", "r")["parents"]
    assert conditions(parent["conditions"])["PartiallyInvalid"] == ("True", "UnsupportedValue")
    assert any("retry.codes" in warning.reason for warning in config.warnings)


def test_proxy_settings_makes_it_the_routes_policy():
    policy = retry.parse({"codes": [503], "attempts": 1})
    route = Route("h", "/", "Prefix", Backend("ns", "s", "80"), ObjectRef("HTTPRoute", "ns", "r"),
                  features=((retry.RETRY, policy),))
    feature = proxy_settings.ingressd_route_features(route, dict(route.features), None)
    assert feature.upstream.next_upstream == policy


# -- the exchange --------------------------------------------------------------------------------

class _Policy:
    phase = Phase.PROXY

    def __init__(self, policy: NextUpstream):
        self.upstream = UpstreamSettings(next_upstream=policy)


def _entry(policy: NextUpstream, timeouts: Timeouts | None = None) -> RouteEntry:
    route = Route("shop.test", "/", "Prefix", Backend("default", "web", "80", (ONE,)),
                  ObjectRef("HTTPRoute", "default", "shop"), timeouts=timeouts)
    return RouteEntry(route, [_Policy(policy)])


@pytest.mark.parametrize("codes, attempts, failures, answer_status, expected, tries", [
    # HTTPRouteRetry's cases: (codes, attempts, failing answers before a 200, its code) → status, tries
    ([500], 3, 2, 500, 200, 3),
    ([500], 3, 4, 500, 500, 4),
    ([500], 3, 2, 503, 503, 1),
    ([500, 502, 503, 504], 2, 1, 502, 200, 2),
    ([500, 502, 503, 504], 2, 3, 504, 504, 3),
])
def test_the_conformance_cases_by_the_policy(codes, attempts, failures, answer_status, expected, tries):
    proxy, pool, _ = proxy_for(_entry(retry.parse({"codes": codes, "attempts": attempts})))
    client, exchange = start(proxy)
    made = 0
    while client.head is None and made < 10:
        made += 1
        answer(pool.connect(), answer_status if made <= failures else 200, body=b"x")
    assert client.head[0] == expected and made == tries
    assert asked(pool) == ["10.0.0.1"] * tries  # one endpoint: asked again


def test_connection_errors_are_retried_up_to_the_attempts():
    proxy, pool, _ = proxy_for(_entry(retry.parse({"attempts": 3})))
    client, exchange = start(proxy)
    for _ in range(4):
        pool.refuse(refused())
    assert client.head[0] == 503 and len(pool.asked) == 4 and exchange.retries == 3  # 500 or 503, as the suite takes


def test_a_stale_pooled_connection_counts_among_the_attempts():
    proxy, pool, _ = proxy_for(_entry(retry.parse({"attempts": 1})))
    client, exchange = start(proxy)
    for _ in range(2):
        connection = pool.connect(reused=True)
        exchange.upstream_failed(connection, UpstreamError("closed", retryable=True, cause="upstream_closed"))
    assert client.head[0] == 503 and len(pool.asked) == 2


def test_the_backoff_is_waited_on_the_clock():
    proxy, pool, _ = proxy_for(_entry(retry.parse({"codes": [500], "attempts": 2, "backoff": "1s"})))
    client, exchange = start(proxy)
    answer(pool.connect(), 500)
    assert len(pool.asked) == 1  # not yet
    proxy.clock.advance(0.9)
    assert len(pool.asked) == 1
    proxy.clock.advance(0.1)
    assert len(pool.asked) == 2
    answer(pool.connect(), 200, body=b"ok")
    assert client.head[0] == 200 and client.body == b"ok"


def test_the_request_timeout_bounds_the_tries_and_the_waits():
    policy = retry.parse({"codes": [500], "attempts": 5, "backoff": "300ms"})
    proxy, pool, _ = proxy_for(_entry(policy, Timeouts(request=0.5)))
    client, exchange = start(proxy)
    answer(pool.connect(), 500)
    proxy.clock.advance(0.3)
    assert len(pool.asked) == 2
    answer(pool.connect(), 500)
    proxy.clock.advance(0.2)  # the request timeout, during the second wait
    assert client.head[0] == 504
    proxy.clock.advance(1)
    assert len(pool.asked) == 2 and not proxy.clock.getDelayedCalls()


def test_a_client_gone_during_the_backoff_cancels_it():
    proxy, pool, finished = proxy_for(_entry(retry.parse({"codes": [500], "backoff": "1s"})))
    client, exchange = start(proxy)
    answer(pool.connect(), 500)
    exchange.client_lost()
    assert finished == [exchange]
    assert not proxy.clock.getDelayedCalls()
    proxy.clock.advance(2)
    assert len(pool.asked) == 1


def test_a_backend_request_timeout_during_the_backoff_does_not_fire():
    policy = retry.parse({"attempts": 2, "backoff": "1s"})
    proxy, pool, _ = proxy_for(_entry(policy, Timeouts(backend_request=0.5)))
    client, exchange = start(proxy)
    pool.connect()
    proxy.clock.advance(0.5)  # the try's timeout: a retry after the backoff
    assert len(pool.asked) == 1
    proxy.clock.advance(0.5)
    assert len(pool.asked) == 1  # the cut try's timer is not running during the wait
    proxy.clock.advance(0.5)
    assert len(pool.asked) == 2
    answer(pool.connect(), 200, body=b"ok")
    assert client.head[0] == 200
