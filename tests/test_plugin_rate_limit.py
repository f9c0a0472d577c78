"""rate_limit: nginx limit_req (burst, nodelay) and limit_conn semantics on a fake clock."""

import pytest
from twisted.internet.task import Clock

from fakes import annotation_values, exchange, features_for, header, make_context, make_route, run_request
from ingressd.features import AnnotationError, Phase
from ingressd_plugins import rate_limit
from ingressd_plugins._cidr import CidrMatcher


SERVER: dict = {}  # the plugin state of the one server each test builds for (BuildContext.state)


@pytest.fixture(autouse=True)
def fresh_server():
    SERVER.clear()  # a new server: no limiter of another test's
    yield
    SERVER.clear()


def server_context(settings=None, reactor=None):
    """A build context of this test's server: every build shares its plugin state."""
    return make_context(settings, reactor=reactor, state=SERVER)


def limited(raw, clock, settings=None, route=None):
    [feature] = features_for(rate_limit, raw, route=route, context=server_context(settings, reactor=clock))
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


# (annotations, [(milliseconds since the start, admitted?)]): one client, in time order. As in
# nginx's limit_req, the excess drains at the rate in thousandths of a request per second,
# reckoned in whole milliseconds and rounded down at each admitted request.
TIMING = {
    "one a second, burst 1: the slot comes back after exactly a second, not a millisecond sooner": (
        {"limit-rps": "1", "limit-burst-multiplier": "1"},
        [(0, True), (0, True), (0, False), (999, False), (1000, True), (1000, False), (1999, False), (2000, True)]),
    "2 a minute: 33 thousandths a second, the drain rounded down at each admitted request": (
        {"limit-rpm": "2", "limit-burst-multiplier": "1"},
        [(0, True), (0, True), (0, True), (0, False), (30303, False), (30304, True), (60607, False),
         (60608, True)]),
    "59 a minute: 983 thousandths a second, so a slot takes 1017.3 ms to come back": (
        {"limit-rpm": "59", "limit-burst-multiplier": "1"},
        [(0, True)] * 60 + [(0, False), (1017, False), (1018, True), (1018, False)]),
    "a rate of 1000 a second still admits only burst + 1 in one instant": (
        {"limit-rps": "1000", "limit-burst-multiplier": "1"},
        [(0, True)] * 1001 + [(0, False)] * 3 + [(1, True), (1, False)]),
    "the clock stepping back drains nothing": (
        {"limit-rps": "1", "limit-burst-multiplier": "1"},
        [(5000, True), (5000, True), (4000, False), (5999, False), (6000, True)]),
}


@pytest.mark.parametrize("raw, timeline", TIMING.values(), ids=TIMING)
def test_when_requests_are_admitted(raw, timeline):
    clock = Clock()
    feature = limited(raw, clock)
    for at, admitted in timeline:
        clock.advance(at / 1000 - clock.seconds())
        assert (send(feature) is None) == admitted, f"at {at} ms"


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
    assert send(feature).status == 503  # second and fourth in progress: one slot came back, not two
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


# (limit-connections, steps, what each "+" got): "+a" a request of client a starts, "-a" one
# of a's requests finishes (or, with none in progress, a stray release).
CONNECTIONS = {
    "the limit, then 503": (2, "+a +a +a", "++-"),
    "one of two finishing gives back one slot, not two": (2, "+a +a -a +a +a", "+++-"),
    "both finishing give back both": (2, "+a +a -a -a +a +a +a", "++++-"),
    "clients have their own slots": (1, "+a +b +a +b -a +a", "++--+"),
    "a stray release is harmless and gives no extra slot": (1, "-a +a +a -a -a +a +a", "+-+-"),
}


@pytest.mark.parametrize("limit, steps, expected", CONNECTIONS.values(), ids=CONNECTIONS)
def test_connection_slots(limit, steps, expected):
    counter = rate_limit.ConnectionCounter(limit)
    got = ""
    for step in steps.split():
        if step[0] == "+":
            got += "+" if counter.acquire(step[1:]) else "-"
        else:
            counter.release(step[1:])
    assert got == expected


# (requests per second, committed at s, excess left after the idle time in thousandths of a
# request, checked at s, kept?): an entry is dropped only after a minute idle *and* fully
# drained; one with any excess left is a client still being limited, and forgetting it would
# let it in again. The last two are at the largest rate the annotations allow (limit-rpm
# 10^9), where reckoning the drain in floats would drop an entry with a thousandth left.
SWEEP = {
    "idle 59.999 s, drained": (1.0, 100.0, -59_000, 159.999, True),
    "idle 60 s, drained exactly": (1.0, 100.0, 0, 160.0, False),
    "idle 60 s, long drained": (1.0, 100.0, -1_000_000, 160.0, False),
    "idle 60 s, a thousandth left": (1.0, 100.0, 1, 160.0, True),
    "idle 10 min, a request left": (0.5, 100.0, 1000, 700.0, True),
    "largest rate, idle 42.5 min, a thousandth left": (1e9 / 60, 0.0, 1, 2551.503, True),
    "largest rate, idle 42.5 min, drained exactly": (1e9 / 60, 0.0, 0, 2551.503, False),
}


@pytest.mark.parametrize("rate, committed, left, checked, kept", SWEEP.values(), ids=SWEEP)
def test_idle_entries_are_forgotten_only_when_drained(rate, committed, left, checked, kept):
    bucket = rate_limit.LeakyBucket(rate=rate, burst=10**12)
    idle_ms = round(checked * 1000) - round(committed * 1000)
    drained = bucket.rate * idle_ms // 1000
    bucket.commit("client", max(drained + left, 0), committed)
    bucket.check("someone else", checked)
    assert ("client" in bucket._states) == kept


# (settings, or None for a RateLimit made without them; over-rate status, over-connections status)
STATUSES = {
    "no options: 503 for both, as ingress-nginx": ({}, 503, 503),
    "--limit-req-status-code 429": ({"limit_req_status_code": 429}, 429, 503),
    "--limit-conn-status-code 429": ({"limit_conn_status_code": 429}, 503, 429),
    "both 429": ({"limit_req_status_code": 429, "limit_conn_status_code": 429}, 429, 429),
    "the feature's own defaults": (None, 503, 503),
}


@pytest.mark.parametrize("settings, over_rate, over_connections", STATUSES.values(), ids=STATUSES)
def test_rejection_statuses(settings, over_rate, over_connections):
    raw = {"limit-rps": "1", "limit-burst-multiplier": "1", "limit-connections": "1"}
    if settings is None:
        feature = rate_limit.RateLimit(rate_limit.IngressLimiter(Clock(), 1, 0, 1, 1), CidrMatcher(()))
    else:
        feature = limited(raw, Clock(), settings=settings)
    held = exchange(client_ip="192.0.2.1")
    assert run_request([feature], held) is None
    assert send(feature).status == over_connections
    held.finish()
    assert send(feature) is None
    assert send(feature).status == over_rate


@pytest.mark.parametrize("option", ["limit-req-status-code", "limit-conn-status-code"])
@pytest.mark.parametrize("value, code", [("400", 400), ("429", 429), ("503", 503), ("599", 599),
                                         ("399", None), ("600", None), ("200", None), ("4xx", None)])
def test_status_code_options_take_4xx_and_5xx_only(option, value, code):
    [coerce] = [o.coerce for o in rate_limit.ingressd_options() if o.name == option]
    if code is None:
        with pytest.raises(ValueError):
            coerce(value)
    else:
        assert coerce(value) == code


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
    rate_limit.ingressd_config_applied(config=None, context=server_context())
    # The next table: same Ingress, same settings → same state.
    rebuilt = limited(raw, clock, route=make_route(path="/a"))
    assert rebuilt.limiter is a.limiter
    assert send(rebuilt).status == 503
    rate_limit.ingressd_config_applied(config=None, context=server_context())
    # "other" was not in that table: its limiter is gone. Changed settings → new state.
    assert all(key[0].name == "web" for key in SERVER[rate_limit.STATE]["limiters"])
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
        features_for(rate_limit, {"limit-rps": "1"}, context=server_context(reactor=None))
    [feature] = features_for(rate_limit, {"limit-rps": "1", "limit-burst-multiplier": "1"},
                             context=server_context({"limit_req_status_code": 429}, reactor=Clock()))
    assert passed(feature, 3) == 2
    assert send(feature).status == 429


def test_two_servers_share_no_limiter():
    raw = {"limit-rps": "1", "limit-burst-multiplier": "1"}
    clock = Clock()
    first = features_for(rate_limit, raw, context=make_context(reactor=clock, state={}))[0]
    second = features_for(rate_limit, raw, context=make_context(reactor=clock, state={}))[0]
    assert first.limiter is not second.limiter
    assert passed(first, 5) == 2 and passed(second, 5) == 2
