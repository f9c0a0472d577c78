"""load-balance: ewma, as ingress-nginx's balancer/ewma.lua: decay, the power of two choices,
slow start for new endpoints, learning from each answer, state kept across rebuilds."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from twisted.internet.task import Clock

from ingressd.config.model import Endpoint
from ingressd.features import RoundRobin
from ingressd.testing import PluginHarness, one_route_objects
from ingressd_plugins import affinity, load_balance, upstream_hash
from ingressd_plugins.load_balance import DECAY_TIME, EwmaBalancer, EwmaStats

N = "nginx.ingress.kubernetes.io/"
A, B, C, D = (Endpoint(f"10.0.0.{i}", 8080) for i in range(1, 5))
ENDPOINTS = tuple((f"10.0.0.{i}", 8080) for i in range(1, 4))


def stats(seed=1):
    return EwmaStats(Clock(), random.Random(seed))


def test_the_first_answer_sets_the_average_then_it_moves_by_the_decay():
    s = stats()
    s.clock.advance(100)
    s.learn(A, 0.5)
    assert s.averages["10.0.0.1:8080"] == (0.5, 100)
    s.clock.advance(10)
    s.learn(A, 1.5)
    weight = math.exp(-10 / DECAY_TIME)
    assert s.averages["10.0.0.1:8080"][0] == pytest.approx(0.5 * weight + 1.5 * (1 - weight))


def test_the_score_decays_towards_zero_while_the_endpoint_is_left_alone():
    s = stats()
    s.clock.advance(50)
    s.learn(A, 2.0)
    assert s.score(A, 50) == pytest.approx(2.0)
    assert s.score(A, 60) == pytest.approx(2.0 * math.exp(-1))
    assert s.score(B, 60) == 0.0  # never learned


def test_two_drawn_the_lower_score_wins_and_a_slow_endpoint_loses_every_draw():
    s = stats()
    s.clock.advance(1)
    s.learn(A, 1.0)
    s.learn(B, 0.01)
    s.learn(C, 0.02)
    balancer = EwmaBalancer((A, B, C), s)
    picks = Counter(balancer.pick() for _ in range(300))
    assert picks[A] == 0  # in every pair with A, the other is faster
    assert picks[B] > picks[C] > 0  # C wins only when drawn with A


def test_tried_endpoints_are_avoided_while_others_remain():
    s = stats()
    balancer = EwmaBalancer((A, B, C), s)
    for _ in range(50):
        assert balancer.pick((A, B)) == C
        assert balancer.pick((A,)) in (B, C)
    assert balancer.pick((A, B, C)) in (A, B, C)  # every one tried: all of them again
    assert EwmaBalancer((A,), s).pick((A,)) == A
    assert EwmaBalancer((), s).pick() is None


def test_an_added_endpoint_starts_at_the_average_and_a_removed_one_is_forgotten():
    s = stats()
    s.sync((A, B))
    s.clock.advance(5)
    s.learn(A, 0.2)
    s.learn(B, 0.4)
    s.sync((A, B, C))
    assert s.averages["10.0.0.3:8080"] == (pytest.approx(0.3), 5)
    s.sync((B, C))
    assert "10.0.0.1:8080" not in s.averages and "10.0.0.2:8080" in s.averages
    s.sync((B, C))  # unchanged: nothing moves
    assert s.averages["10.0.0.3:8080"][0] == pytest.approx(0.3)


def test_a_new_backend_without_averages_starts_from_nothing():
    s = stats()
    s.sync((A, B))
    assert s.averages == {}


# -- the plugin ----------------------------------------------------------------------------------


def harness(value="ewma", more=None, endpoints=ENDPOINTS):
    annotations = {N + "load-balance": value, **{N + k: v for k, v in (more or {}).items()}}
    return PluginHarness([load_balance, affinity, upstream_hash], annotations, endpoints=endpoints)


def test_ewma_makes_the_route_s_balancer_and_learns_when_the_exchange_is_over():
    with harness() as h:
        balancer = h.entry.balancer
        assert isinstance(balancer, EwmaBalancer) and len(balancer.endpoints) == 3
        outcome = h.request()
        exchange = outcome.exchange
        exchange.upstream_endpoint = balancer.pick()
        h.clock.advance(3)
        exchange.upstream_started, exchange.upstream_ended = 3.0, 3.25
        outcome.response(200)
        name = f"{exchange.upstream_endpoint.address}:{exchange.upstream_endpoint.port}"
        assert balancer.stats.averages[name] == (pytest.approx(0.25), 3)


def test_an_exchange_that_never_reached_a_backend_teaches_nothing():
    with harness() as h:
        outcome = h.request()
        outcome.response(200)
        assert h.entry.balancer.stats.averages == {}


def test_averages_outlive_a_rebuild_for_the_endpoints_that_stay():
    with harness() as h:
        first = h.entry.balancer
        first.stats.learn(first.endpoints[0], 0.5)
        four = ENDPOINTS + (("10.0.0.4", 8080),)
        h.rebuild(one_route_objects(h.host, four, annotations=h.annotations))
        second = h.entry.balancer
        assert second is not first and second.stats is first.stats and len(second.endpoints) == 4
        assert second.stats.averages["10.0.0.1:8080"][0] == 0.5
        assert second.stats.averages["10.0.0.4:8080"][0] == 0.5  # slow start: the others' average


def test_round_robin_is_the_default_balancer():
    with harness("round_robin") as h:
        assert isinstance(h.entry.balancer, RoundRobin)
    with PluginHarness([load_balance], {}, endpoints=ENDPOINTS) as h:
        assert isinstance(h.entry.balancer, RoundRobin)


@pytest.mark.parametrize("more", [{"affinity": "cookie"}, {"upstream-hash-by": "$request_uri"}])
def test_affinity_and_upstream_hash_by_win(more):
    with harness(more=more) as h:
        assert isinstance(h.entry.balancer, RoundRobin)
        assert h.request().exchange.balancer is not None  # theirs, per request


@pytest.mark.parametrize("value", ["EWMA", "least_conn", "chash", "sticky_balanced", "chashsubset"])
def test_other_values_reject_the_ingress(value):
    with harness(value) as h:
        assert h.rejection is not None and "load-balance" in h.rejection
