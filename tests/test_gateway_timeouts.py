"""HTTPRoute ``timeouts`` (request, backendRequest): the duration format and the CRD's rule
(config.gateway.timeouts), the rule → ``Route.timeouts`` (config.gateway.httproute), and the
exchange honouring them in memory (proxy.route_timeouts): 504 when one passes, ``0s`` disabling
one, a retry getting a new try timer, a started response cut, no timer left behind."""

from __future__ import annotations

import pytest

from ingressd.config.entries import DEFAULT_UPSTREAM, RouteEntry
from ingressd.config.gateway.route_filters import Invalid
from ingressd.config.gateway.timeouts import parse, parse_duration
from ingressd.config.gateway_api import translate
from ingressd.config.model import Backend, Endpoint, ObjectRef, Route, Timeouts

from test_exchange import proxy_for, request, send
from test_gateway_translate import BASE, conditions, route_yaml, snapshot, status

ONE, TWO = Endpoint("10.0.0.1", 8080), Endpoint("10.0.0.2", 8080)


# -- the format ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [
    ("0s", 0.0), ("500ms", 0.5), ("10s", 10.0), ("1m", 60.0), ("1h", 3600.0), ("1h30m", 5400.0),
    ("1m30s500ms", 90.5), ("99999ms", 99.999), ("1h1m1s1ms", 3661.001),
])
def test_gateway_api_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "1.5s", "-1s", "1d", "100000s", "1s1s1s1s1s", "1 s", "10S", "1us",
                                  5, None])
def test_what_is_not_a_gateway_api_duration(text):
    with pytest.raises(Invalid):
        parse_duration(text)


def test_the_stanza():
    assert parse(None) is None and parse({}) is None
    assert parse({"request": "10s"}) == Timeouts(10.0, None)
    assert parse({"backendRequest": "2s"}) == Timeouts(None, 2.0)
    assert parse({"request": "10s", "backendRequest": "10s"}) == Timeouts(10.0, 10.0)
    assert parse({"request": "0s", "backendRequest": "1h"}) == Timeouts(0.0, 3600.0)  # 0s: no limit to exceed


def test_backend_request_longer_than_request_is_invalid():
    with pytest.raises(Invalid, match="backendRequest 2s cannot be longer than request 1s"):
        parse({"request": "1s", "backendRequest": "2s"})


# -- the translation -------------------------------------------------------------------------------

TIMEOUTS = """
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /request-timeout}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
    timeouts: {request: 500ms}
  - matches: [{path: {type: PathPrefix, value: /disable-request-timeout}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
    timeouts: {request: "0s"}
  - matches: [{path: {type: PathPrefix, value: /both}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
    timeouts: {request: 10s, backendRequest: 2s}
  - matches: [{path: {type: PathPrefix, value: /none}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
"""


def test_a_rules_timeouts_go_on_its_routes():
    config = translate(snapshot(BASE, route_yaml(TIMEOUTS)))
    found = {route.path: route.timeouts for route in config.routes}
    assert found == {"/request-timeout": Timeouts(0.5, None), "/disable-request-timeout": Timeouts(0.0, None),
                     "/both": Timeouts(10.0, 2.0), "/none": None}
    (parent,) = status(config, "HTTPRoute", "gateway-conformance-infra", "r")["parents"]
    assert conditions(parent["conditions"]) == {"Accepted": ("True", "Accepted"),
                                                "ResolvedRefs": ("True", "ResolvedRefs")}


def test_an_invalid_timeout_leaves_its_rule_out():
    spec = """
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /bad}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
    timeouts: {request: 1s, backendRequest: 2s}
  - matches: [{path: {type: PathPrefix, value: /typo}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
    timeouts: {request: 10sec}
  - matches: [{path: {type: PathPrefix, value: /good}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
"""
    config = translate(snapshot(BASE, route_yaml(spec)))
    assert [route.path for route in config.routes] == ["/good"]
    (parent,) = status(config, "HTTPRoute", "gateway-conformance-infra", "r")["parents"]
    found = conditions(parent["conditions"])
    assert found["Accepted"] == ("True", "Accepted") and found["PartiallyInvalid"] == ("True", "UnsupportedValue")
    reasons = " ".join(warning.reason for warning in config.warnings)
    assert "rule 0: timeouts: backendRequest 2s cannot be longer than request 1s" in reasons
    assert "rule 1: '10sec' is not a Gateway API duration" in reasons


# -- the route entry: the idle timeouts never cut a try the route allows -------------------------


def test_the_servers_idle_timeouts_are_lifted_to_the_routes_limits():
    def upstream(timeouts):
        route = Route("h", "/", "Prefix", Backend("ns", "b", "80", (ONE,)), ObjectRef("HTTPRoute", "ns", "r"),
                      timeouts=timeouts)
        return RouteEntry(route).upstream

    assert upstream(None) is DEFAULT_UPSTREAM
    assert upstream(Timeouts(0.5, None)) is DEFAULT_UPSTREAM  # shorter than the 60 s between two reads
    assert upstream(Timeouts(0.0, 0.0)) is DEFAULT_UPSTREAM
    lifted = upstream(Timeouts(300.0, 120.0))
    assert (lifted.read_timeout, lifted.send_timeout, lifted.connect_timeout) == (300.0, 300.0, 5.0)


# -- the exchange ----------------------------------------------------------------------------------


def timed_entry(timeouts, endpoints=(ONE,)):
    route = Route("shop.test", "/", "Prefix", Backend("ns", "b", "80", tuple(endpoints)),
                  ObjectRef("HTTPRoute", "ns", "r"), timeouts=timeouts)
    return RouteEntry(route)


def test_the_request_timeout_answers_504_and_abandons_the_backend():
    proxy, pool, finished = proxy_for(timed_entry(Timeouts(0.5, None)))
    client, exchange = send(proxy, request())
    connection = pool.connect()
    proxy.clock.advance(0.49)
    assert client.head is None
    proxy.clock.advance(0.02)
    assert client.head[0] == 504 and client.finished and connection.aborted
    assert exchange.error_cause == "request_timeout" and finished == [exchange]
    assert proxy.clock.getDelayedCalls() == []


def test_the_request_timeout_counts_from_the_requests_arrival():
    proxy, pool, _ = proxy_for(timed_entry(Timeouts(1.0, None)))
    client, _ = send(proxy, request())
    proxy.clock.advance(0.8)  # still connecting
    pool.connect()
    proxy.clock.advance(0.21)
    assert client.head[0] == 504


def test_a_response_in_time_leaves_no_timer():
    proxy, pool, _ = proxy_for(timed_entry(Timeouts(0.5, 0.2)))
    client, _ = send(proxy, request())
    pool.connect().respond(200, body=b"ok")
    assert client.head[0] == 200 and client.body == b"ok"
    assert proxy.clock.getDelayedCalls() == []


def test_a_request_timeout_after_the_response_started_cuts_the_connection():
    proxy, pool, finished = proxy_for(timed_entry(Timeouts(0.5, None)))
    client, exchange = send(proxy, request())
    connection = pool.connect()
    exchange.upstream_head(connection, 200, [], 100)
    exchange.upstream_body(b"partial")
    proxy.clock.advance(0.6)
    assert client.head[0] == 200 and client.aborted and not client.finished
    assert connection.aborted and finished == [exchange]


def test_zero_disables_the_request_timeout():
    proxy, pool, _ = proxy_for(timed_entry(Timeouts(0.0, 0.0)))
    client, _ = send(proxy, request())
    assert proxy.clock.getDelayedCalls() == []
    connection = pool.connect()
    proxy.clock.advance(3600)
    connection.respond(200, body=b"late")
    assert client.head[0] == 200


def test_the_backend_request_timeout_is_a_504_once_the_tries_are_spent():
    proxy, pool, _ = proxy_for(timed_entry(Timeouts(None, 0.5)))
    client, exchange = send(proxy, request())
    connections = []
    for _ in range(3):  # proxy-next-upstream-tries' default (3): a timeout is tried again
        assert client.head is None
        connections.append(pool.connect())
        proxy.clock.advance(0.51)
    assert client.head[0] == 504 and all(connection.aborted for connection in connections)
    assert exchange.error_cause == "backend_request_timeout" and len(pool.asked) == 3
    assert exchange.upstream_statuses == "504, 504, 504"


def test_each_try_has_its_own_backend_request_timeout():
    proxy, pool, _ = proxy_for(timed_entry(Timeouts(10.0, 0.5), endpoints=(ONE, TWO)))
    client, exchange = send(proxy, request())
    first = pool.connect()
    proxy.clock.advance(0.51)  # a timeout: the next endpoint (proxy-next-upstream's default "error timeout")
    assert first.aborted and client.head is None and len(pool.asked) == 2
    second = pool.connect()
    proxy.clock.advance(0.4)  # 0.91 s since the request: the second try's own 0.5 s has not passed
    second.respond(200, body=b"ok")
    assert client.head[0] == 200 and exchange.retries == 1
    assert proxy.clock.getDelayedCalls() == []


def test_the_backend_request_timeout_covers_the_connection_too():
    proxy, pool, _ = proxy_for(timed_entry(Timeouts(None, 0.5)))
    client, _ = send(proxy, request())
    for _ in range(3):
        proxy.clock.advance(0.51)  # never connected
    assert client.head[0] == 504 and len(pool.asked) == 3


def test_a_route_without_timeouts_starts_no_timer():
    proxy, pool, _ = proxy_for(timed_entry(None))
    send(proxy, request())
    pool.connect()
    assert proxy.clock.getDelayedCalls() == []
