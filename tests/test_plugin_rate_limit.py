"""rate_limit: nginx limit_req (burst, nodelay) and limit_conn semantics on a fake clock."""

import pytest
from twisted.internet.task import Clock

from fakes import annotation_values, exchange, features_for, header, make_context, make_route, run_request
from ingressd.features import AnnotationError, Phase
from ingressd_plugins import rate_limit


@pytest.fixture(autouse=True)
def empty_registry():
    rate_limit._limiters.clear()
    rate_limit._used_since_applied.clear()
    yield
    rate_limit._limiters.clear()
    rate_limit._used_since_applied.clear()


def limited(raw, clock, settings=None, route=None):
    [feature] = features_for(rate_limit, raw, route=route, context=make_context(settings, reactor=clock))
    assert feature.phase == Phase.PREACCESS
    return feature


def send(feature, ip="192.0.2.1", finish=True):
    ex = exchange(client_ip=ip)
    answer = run_request([feature], ex)
    if finish:
        ex.finish()
    return answer


def passed(feature, count, ip="192.0.2.1"):
    return sum(send(feature, ip) is None for _ in range(count))


def test_off_without_limits():
    assert features_for(rate_limit, {"limit-burst-multiplier": "3"}, context=make_context(reactor=Clock())) == []
    assert features_for(rate_limit, {"limit-rps": "0"}, context=make_context(reactor=Clock())) == []


def test_rps_burst_is_rate_times_multiplier_plus_one_and_then_503_with_retry_after():
    clock = Clock()
    feature = limited({"limit-rps": "1"}, clock)
    assert passed(feature, 6) == 6  # burst 5 + the first
    answer = send(feature)
    assert answer.status == 503
    assert header(answer.headers, b"retry-after") == [b"1"]
    clock.advance(1)
    assert send(feature) is None
    assert send(feature).status == 503


def test_steady_traffic_at_the_rate_always_passes():
    clock = Clock()
    feature = limited({"limit-rps": "10", "limit-burst-multiplier": "1"}, clock)
    assert passed(feature, 11) == 11
    assert send(feature) is not None
    for _ in range(50):
        clock.advance(0.1)
        assert send(feature) is None


def test_rejected_requests_do_not_count():
    clock = Clock()
    feature = limited({"limit-rps": "2", "limit-burst-multiplier": "1"}, clock)
    assert passed(feature, 10) == 3
    clock.advance(0.5)  # one request drained
    assert passed(feature, 10) == 1


def test_clients_are_limited_separately():
    clock = Clock()
    feature = limited({"limit-rps": "1", "limit-burst-multiplier": "1"}, clock)
    assert passed(feature, 5, "192.0.2.1") == 2
    assert passed(feature, 5, "192.0.2.2") == 2
    assert passed(feature, 5, "2001:db8::1") == 2


def test_rpm_and_retry_after_in_seconds():
    clock = Clock()
    feature = limited({"limit-rpm": "2", "limit-burst-multiplier": "1"}, clock)
    assert passed(feature, 3) == 3
    answer = send(feature)
    # nginx's rate for 2 r/m is 2000 // 60 = 33 thousandths per second: 30.3 s per request.
    assert answer.status == 503 and header(answer.headers, b"retry-after") == [b"31"]
    clock.advance(30)
    assert send(feature) is not None
    clock.advance(1)
    assert send(feature) is None


def test_rps_and_rpm_both_apply_and_a_rejection_by_one_is_counted_by_neither():
    clock = Clock()
    feature = limited({"limit-rps": "100", "limit-rpm": "1", "limit-burst-multiplier": "1"}, clock)
    assert passed(feature, 5) == 2  # rpm: first + burst 1
    rps_bucket, rpm_bucket = feature.limiter.buckets
    assert rps_bucket._states["192.0.2.1"][0] == 1000  # only the two admitted requests (in 1/1000)


def test_status_code_option():
    clock = Clock()
    feature = limited({"limit-rps": "1", "limit-burst-multiplier": "1", "limit-connections": "1"}, clock,
                      settings={"limit_req_status_code": 429, "limit_conn_status_code": 503})
    assert passed(feature, 2) == 2
    assert send(feature).status == 429
    with pytest.raises(ValueError):
        rate_limit._status_code("200")
    assert rate_limit._status_code("429") == 429


def test_connections_are_limited_while_requests_are_in_progress():
    feature = limited({"limit-connections": "2"}, Clock())
    first, second, third = (exchange(client_ip="192.0.2.1") for _ in range(3))
    assert run_request([feature], first) is None
    assert run_request([feature], second) is None
    answer = run_request([feature], third)
    assert answer.status == 503 and header(answer.headers, b"retry-after") == [b"1"]
    assert run_request([feature], exchange(client_ip="192.0.2.9")) is None  # other clients unaffected
    first.finish()
    fourth = exchange(client_ip="192.0.2.1")
    assert run_request([feature], fourth) is None
    for ex in (second, fourth):
        ex.finish()
    assert "192.0.2.1" not in feature.limiter.connections._counts


def test_a_connection_slot_taken_before_a_rate_rejection_is_given_back():
    feature = limited({"limit-connections": "1", "limit-rps": "1", "limit-burst-multiplier": "1"}, Clock())
    assert passed(feature, 2) == 2
    ex = exchange(client_ip="192.0.2.1")
    assert run_request([feature], ex).status == 503
    ex.finish()
    assert len(feature.limiter.connections) == 0


@pytest.mark.parametrize("name", ["limit-allowlist", "limit-whitelist"])
def test_allowlisted_clients_are_exempt(name):
    feature = limited({"limit-rps": "1", "limit-burst-multiplier": "1", "limit-connections": "1",
                       name: "10.0.0.0/8, 192.0.2.7"}, Clock())
    assert passed(feature, 20, "10.1.2.3") == 20
    assert passed(feature, 20, "192.0.2.7") == 20
    assert passed(feature, 20, "::ffff:10.9.9.9") == 20
    assert passed(feature, 20, "192.0.2.8") == 2


def test_allowlist_wins_over_its_old_name():
    feature = limited({"limit-rps": "1", "limit-burst-multiplier": "1",
                       "limit-allowlist": "10.0.0.1", "limit-whitelist": "10.0.0.2"}, Clock())
    assert passed(feature, 5, "10.0.0.1") == 5
    assert passed(feature, 5, "10.0.0.2") == 2


@pytest.mark.parametrize("raw", [
    {"limit-allowlist": "10.0.0.0/33"}, {"limit-whitelist": "example.com"}, {"limit-rps": "-1"},
    {"limit-rps": "ten"}, {"limit-burst-multiplier": "0"},
])
def test_bad_values_reject_the_ingress(raw):
    with pytest.raises((AnnotationError, ValueError)):
        annotation_values(rate_limit, raw)


def test_state_is_shared_by_an_ingress_paths_and_survives_a_rebuild():
    clock = Clock()
    raw = {"limit-rps": "1", "limit-burst-multiplier": "1"}
    a = limited(raw, clock, route=make_route(path="/a"))
    b = limited(raw, clock, route=make_route(path="/b"))
    other = limited(raw, clock, route=make_route(ingress="other"))
    assert passed(a, 1) == 1 and passed(b, 5) == 1
    assert passed(other, 5) == 2
    rate_limit.ingressd_config_applied(config=None, context=None)
    # The next table: same Ingress, same settings → same state.
    rebuilt = limited(raw, clock, route=make_route(path="/a"))
    assert rebuilt.limiter is a.limiter
    assert send(rebuilt).status == 503
    rate_limit.ingressd_config_applied(config=None, context=None)
    # "other" was not in that table: its limiter is gone. Changed settings → new state.
    assert all(key[0].name == "web" for key in rate_limit._limiters)
    changed = limited({"limit-rps": "2", "limit-burst-multiplier": "1"}, clock, route=make_route(path="/a"))
    assert changed.limiter is not a.limiter and passed(changed, 5) == 3


def test_bucket_memory_is_bounded_and_drained_keys_expire():
    bucket = rate_limit.LeakyBucket(rate=1.0, burst=1, max_keys=3)
    for i in range(5):
        ok, excess = bucket.check(f"k{i}", 0.0)
        bucket.commit(f"k{i}", excess + 1000, 0.0)
    assert len(bucket) == 3 and list(bucket._states) == ["k2", "k3", "k4"]
    bucket.check("new", 59.0)  # drained, but idle for less than a minute: kept
    assert len(bucket) == 3
    bucket.check("new", 60.0)  # idle a minute and drained: swept, two per request
    assert len(bucket) == 1
    bucket.check("new", 60.0)
    assert len(bucket) == 0
    busy = rate_limit.LeakyBucket(rate=0.001, burst=100)
    busy.commit("k", 50_000, 0.0)
    busy.check("other", 120.0)  # idle but not drained: kept
    assert len(busy) == 1


def test_needs_a_clock():
    with pytest.raises(AnnotationError):
        features_for(rate_limit, {"limit-rps": "1"}, context=make_context(reactor=None))
    rate_limit.ingressd_configure(settings={"limit_req_status_code": 429}, reactor=Clock())
    try:
        [feature] = features_for(rate_limit, {"limit-rps": "1", "limit-burst-multiplier": "1"}, context=make_context(reactor=None))
        assert passed(feature, 3) == 2
        assert send(feature).status == 429
    finally:
        rate_limit.ingressd_configure(settings={}, reactor=None)
