"""Weighted backend sets on the request path (Route.backends → RouteEntry.weighted → one member
per request, chosen by the exchange): shares by weight, weight 0 never, an unusable member or an
all-zero set answered 500, retries kept on the chosen member."""

from __future__ import annotations

from ingressd.config.entries import RouteEntry
from ingressd.config.model import Backend, Endpoint, ObjectRef, Route, WeightedBackend
from ingressd.config.weighted import WeightedBalancers
from ingressd.features import RoundRobin
from ingressd.proxy.upstream import UpstreamError

from test_exchange import proxy_for, request, send

A = Backend("ns", "a", "80", (Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80)))
B = Backend("ns", "b", "80", (Endpoint("10.0.1.1", 80),))


def gateway_entry(*members, draws=None):
    route = Route("shop.test", "/", "Prefix", A, ObjectRef("HTTPRoute", "ns", "r"), backends=tuple(members))
    entry = RouteEntry(route)
    if draws is not None:
        entry.weighted.draw = iter(draws).__next__
    return entry


def test_an_ingress_route_has_no_weighted_set():
    assert RouteEntry(Route("h", "/", "Prefix", A, ObjectRef("Ingress", "ns", "i"))).weighted is None


def test_members_take_their_share_by_weight():
    draws = [i / 100 for i in range(100)]
    proxy, pool, _ = proxy_for(gateway_entry(WeightedBackend(A, 3), WeightedBackend(B, 1), draws=draws))
    for _ in range(100):
        send(proxy, request())
    hosts = [asked[0][0] for asked in pool.asked]
    assert sum(host.startswith("10.0.0.") for host in hosts) == 75 and hosts.count("10.0.1.1") == 25
    assert {"10.0.0.1", "10.0.0.2"} <= set(hosts)  # a member's endpoints take turns


def test_weight_zero_is_never_chosen():
    proxy, pool, _ = proxy_for(gateway_entry(WeightedBackend(A, 0), WeightedBackend(B, 1),
                                             draws=[0.0, 0.5, 0.99]))
    for _ in range(3):
        send(proxy, request())
    assert [asked[0][0] for asked in pool.asked] == ["10.0.1.1"] * 3


def test_all_weights_zero_is_500():
    proxy, pool, _ = proxy_for(gateway_entry(WeightedBackend(A, 0), WeightedBackend(B, 0)))
    client, exchange = send(proxy, request())
    assert client.head[0] == 500 and pool.asked == [] and exchange.error_cause == "no_backend"


def test_an_unusable_member_answers_500_for_its_share():
    proxy, pool, _ = proxy_for(gateway_entry(WeightedBackend(None, 1), WeightedBackend(B, 1),
                                             draws=[0.1, 0.6, 0.2, 0.9]))
    statuses = []
    for _ in range(4):
        client, _ = send(proxy, request())
        if client.head is not None:
            statuses.append(client.head[0])
        else:
            statuses.append("forwarded")
    assert statuses == [500, "forwarded", 500, "forwarded"]


def test_a_retry_stays_on_the_chosen_member():
    proxy, pool, _ = proxy_for(gateway_entry(WeightedBackend(A, 1), WeightedBackend(B, 1), draws=[0.1, 0.9]))
    send(proxy, request())
    pool.refuse(UpstreamError("refused", cause="connect_error"))
    assert [asked[0][0] for asked in pool.asked] == ["10.0.0.1", "10.0.0.2"]


def test_members_naming_one_backend_share_its_round_robin():
    weighted = WeightedBalancers((WeightedBackend(A, 1), WeightedBackend(A, 1)),
                                 lambda backend: RoundRobin(backend.endpoints), draw=lambda: 0.0)
    first, second = weighted.choice.members
    assert first is second
