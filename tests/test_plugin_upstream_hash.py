"""upstream-hash-by: consistent hashing of a request's key to an endpoint, as ingress-nginx's chash balancer."""

from __future__ import annotations

from collections import Counter

import pytest

from ingressd.config.model import Endpoint
from ingressd.testing import PluginHarness, one_route_objects
from ingressd_plugins import affinity, upstream_hash

N = "nginx.ingress.kubernetes.io/"
ENDPOINTS = tuple((f"10.0.0.{i}", 8080) for i in range(1, 4))


def harness(value, endpoints=ENDPOINTS, more=None):
    annotations = {N + "upstream-hash-by": value, **{N + k: v for k, v in (more or {}).items()}}
    return PluginHarness([upstream_hash, affinity], annotations, endpoints=endpoints)


def endpoint_for(h, path="/", headers=(), client_ip="192.0.2.10"):
    outcome = h.request(path=path, headers=headers, client_ip=client_ip)
    balancer = outcome.exchange.balancer
    first = balancer.pick(())
    assert balancer.pick((first,)) == first  # a retry keeps the key, so the endpoint (as ingress-nginx)
    return first


def test_the_same_uri_always_goes_to_the_same_endpoint_and_uris_spread():
    with harness("$request_uri") as h:
        chosen = {f"/item/{i}": endpoint_for(h, f"/item/{i}") for i in range(300)}
        for path, endpoint in list(chosen.items())[:50]:
            assert endpoint_for(h, path) == endpoint
        counts = Counter(chosen.values())
        assert len(counts) == 3 and min(counts.values()) > 50


@pytest.mark.parametrize("value, same, other", [
    ("$remote_addr", dict(client_ip="198.51.100.7", path="/a"), dict(client_ip="198.51.100.7", path="/b")),
    ("$http_x_user", dict(headers=[("X-User", "ann")], path="/a"), dict(headers=[("X-User", "ann")], path="/b")),
    ("$cookie_session", dict(headers=[("Cookie", "a=1; session=s1")]), dict(headers=[("Cookie", "session=s1")])),
    ("$arg_id", dict(path="/x?id=7&b=1"), dict(path="/y?b=2&ID=7")),
    ("${host}-$arg_id", dict(path="/x?id=7"), dict(path="/z?id=7&c=3")),
])
def test_requests_with_the_same_key_go_together(value, same, other):
    with harness(value) as h:
        assert endpoint_for(h, **same) == endpoint_for(h, **other)


def test_the_key_is_the_text_with_its_variables_as_ingress_nginx_evaluates_it():
    parts = upstream_hash.parse_hash_by("u=${arg_user}/$http_x_tenant:$request_uri\\$x $")
    with harness("$request_uri") as h:
        outcome = h.request(path="/p?user=bob", headers=[("X-Tenant", "t1")])
        assert upstream_hash.request_key(parts, outcome.exchange) == b"u=bob/t1:/p?user=bob\\$x $"


def test_the_same_key_goes_to_the_same_endpoint_in_another_replica():
    with harness("$arg_k") as first:
        chosen = {k: endpoint_for(first, f"/?k={k}") for k in range(50)}
    with harness("$arg_k", endpoints=tuple(reversed(ENDPOINTS))) as second:
        assert all(endpoint_for(second, f"/?k={k}") == endpoint for k, endpoint in chosen.items())


def test_an_added_endpoint_takes_about_its_share_of_the_keys_and_no_other_moves():
    with harness("$arg_k") as h:
        keys = range(2000)
        before = {k: endpoint_for(h, f"/?k={k}") for k in keys}
        four = ENDPOINTS + (("10.0.0.4", 8080),)
        h.rebuild(one_route_objects(h.host, four, annotations=h.annotations))
        after = {k: endpoint_for(h, f"/?k={k}") for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert all(after[k] == Endpoint("10.0.0.4", 8080) for k in moved)
    share = len(moved) / len(keys)
    print(f"upstream-hash-by: 3 → 4 endpoints moved {share:.1%} of the keys (ideal 25%)")
    assert 0.15 < share < 0.35


def test_affinity_wins_when_both_are_set():
    with harness("$request_uri", more={"affinity": "cookie"}) as h:
        outcome = h.request()
        assert type(outcome.exchange.balancer) is affinity.StickyChoice


@pytest.mark.parametrize("value", ["$1", "$binary_remote_addr", "$http_", "$request_body"])
def test_a_variable_ingressd_cannot_evaluate_rejects_the_ingress(value):
    with harness(value) as h:
        assert h.rejection is not None and "upstream-hash-by" in h.rejection


def test_an_empty_value_hashes_nothing():
    with harness("  ") as h:
        assert h.features == ()


# -- upstream-hash-by-subset (ingress-nginx's chashsubset.lua) -------------------------------------

SEVEN = tuple((f"10.0.1.{i}", 8080) for i in range(1, 8))


def subset_harness(size=None, endpoints=SEVEN):
    more = {"upstream-hash-by-subset": "true"}
    if size is not None:
        more["upstream-hash-by-subset-size"] = size
    return harness("$arg_k", endpoints=endpoints, more=more)


def test_subsets_cut_the_endpoints_in_address_order_and_fill_the_last_from_the_start():
    endpoints = [Endpoint(f"10.0.1.{i}", 8080) for i in (7, 3, 1, 5, 2, 6, 4)]
    sets = upstream_hash.subsets(endpoints, 3)
    names = [[e.address[-1] for e in subset] for subset in sets]
    assert names == [["1", "2", "3"], ["4", "5", "6"], ["7", "1", "2"]]
    assert upstream_hash.subsets(endpoints[:2], 3) == (tuple(sorted(endpoints[:2], key=lambda e: e.address))
                                                       + (min(endpoints[:2], key=lambda e: e.address),),)
    assert upstream_hash.subsets([], 3) == ()


def test_a_key_goes_to_its_set_and_spreads_over_it_at_random():
    with subset_harness() as h:
        seen = Counter()
        for _ in range(120):
            seen[h.request(path="/?k=42").exchange.balancer.pick(())] += 1
        chosen = set(seen)
        assert len(chosen) == 3 and min(seen.values()) > 15  # one set of three, each used
        sets = {frozenset(s) for s in upstream_hash.subsets([Endpoint(*e) for e in SEVEN], 3)}
        assert frozenset(chosen) in sets
        other_keys = {frozenset({h.request(path=f"/?k={k}").exchange.balancer.subset}.pop()) for k in range(60)}
        assert len(other_keys) == 3  # keys spread over the three sets


def test_a_retry_takes_another_endpoint_of_the_set_while_one_remains():
    with subset_harness() as h:
        balancer = h.request(path="/?k=7").exchange.balancer
        first = balancer.pick(())
        second = balancer.pick((first,))
        third = balancer.pick((first, second))
        assert len({first, second, third}) == 3 and set(balancer.subset) == {first, second, third}
        assert balancer.pick((first, second, third)) in balancer.subset


def test_the_same_key_goes_to_the_same_set_in_another_replica():
    with subset_harness() as one, subset_harness(endpoints=tuple(reversed(SEVEN))) as other:
        for k in range(40):
            assert set(one.request(path=f"/?k={k}").exchange.balancer.subset) == \
                set(other.request(path=f"/?k={k}").exchange.balancer.subset)


@pytest.mark.parametrize("size, expected", [("2", 2), ("0", 3), (None, 3), ("7", 7)])
def test_the_subset_size(size, expected):
    with subset_harness(size) as h:
        assert len(h.request(path="/?k=1").exchange.balancer.subset) == expected


@pytest.mark.parametrize("size", ["-1", "three", "2.5"])
def test_a_subset_size_nginx_would_not_take_rejects_the_ingress(size):
    with subset_harness(size) as h:
        assert h.rejection is not None and "upstream-hash-by-subset-size" in h.rejection


def test_without_subset_a_key_keeps_its_one_endpoint():
    with harness("$arg_k", more={"upstream-hash-by-subset": "false"}) as h:
        assert isinstance(h.request(path="/?k=1").exchange.balancer, upstream_hash.HashedEndpoint)


def test_subsets_move_keys_only_to_a_new_set_when_the_old_sets_stay():
    """6 → 7 endpoints, the new one last in address order: the sets 1-3 and 4-6 stay, a set
    (7, 1, 2) is added; keys move only to it (the ring of sets is consistent). When the new
    endpoint sorts first every set changes, as with ingress-nginx's chashsubset."""
    from ingressd_plugins._chash import Ring

    def sets_for(endpoints):
        ring = Ring(upstream_hash.subsets(endpoints, 3), name=upstream_hash._set_name)
        return {k: ring.find(str(k).encode()) for k in range(3000)}

    six = [Endpoint(f"10.0.2.{i}", 80) for i in range(1, 7)]
    before, after = sets_for(six), sets_for(six + [Endpoint("10.0.2.7", 80)])
    moved = [k for k in before if before[k] != after[k]]
    new_set = (Endpoint("10.0.2.7", 80), Endpoint("10.0.2.1", 80), Endpoint("10.0.2.2", 80))
    assert all(after[k] == new_set for k in moved)
    share = len(moved) / len(before)
    print(f"upstream-hash-by-subset: 6 → 7 endpoints (new last) moved {share:.1%} of the keys to the new set")
    assert 0.2 < share < 0.5
