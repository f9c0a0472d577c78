"""global-rate-limit: the annotations, the plugin's answers, and decisions in Redis (timeouts,
the circuit breaker, failure modes; the sliding window on a real redis-server)."""

from __future__ import annotations

import time

import pytest
from twisted.internet import defer
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.task import Clock

from ingressd import AnnotationError
from ingressd.redis.client import RedisClient, RedisUnavailable, RedisURL
from ingressd.redis.decisions import Breaker, Decisions
from ingressd.testing import PluginHarness, exchange, features_for, make_context, make_route, run_request
from ingressd_plugins import global_rate_limit
from ingressd_plugins.global_rate_limit import parse_window
from redis_server import redis_server  # noqa: F401  (fixture)

SETTINGS = {"redis": "redis://127.0.0.1:1"}


# -- annotations ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, ms", [("1m", 60_000), ("30s", 30_000), ("1h30m", 5_400_000), ("1.5s", 1500),
                                      ("500ms", 500), ("2m0.5s", 120_500), ("168h", 604_800_000)])
def test_windows_as_go_durations(text, ms):
    assert parse_window(text) == ms


@pytest.mark.parametrize("text", ["", "60", "1 m", " 1m", "1d", "m", ".s", "-1m", "0s", "169h", "1m30", "500us"])
def test_bad_windows(text):
    with pytest.raises(AnnotationError):
        parse_window(text)


class FakeDecisions:
    """Answers every check at once with ``answer``; records what was asked."""

    def __init__(self, answer=(True, 0)):
        self.answer = answer
        self.asked = []

    def check(self, key, limit, window_ms):
        self.asked.append((key, limit, window_ms))
        return defer.succeed(self.answer)


def feature(raw, decisions=None, settings=SETTINGS, namespace="team-a"):
    context = make_context(settings, Clock(), redis=decisions or FakeDecisions())
    return features_for(global_rate_limit, raw, route=make_route(namespace=namespace), context=context)


def test_off_without_a_limit():
    assert feature({}) == [] and feature({"global-rate-limit": "0", "global-rate-limit-window": "1m"}) == []


def test_a_limit_without_a_window_or_without_redis_is_refused():
    with pytest.raises(AnnotationError, match="global-rate-limit-window"):
        feature({"global-rate-limit": "10"})
    with pytest.raises(AnnotationError, match="--redis"):
        feature({"global-rate-limit": "10", "global-rate-limit-window": "1m"}, settings={})


def test_an_unknown_key_variable_is_refused():
    with pytest.raises(AnnotationError, match=r"global-rate-limit-key: \$nope"):
        feature({"global-rate-limit": "10", "global-rate-limit-window": "1m", "global-rate-limit-key": "$nope"})


def test_keys_are_the_namespace_the_window_and_the_template():
    decisions = FakeDecisions()
    (limit,) = feature({"global-rate-limit": "10", "global-rate-limit-window": "1m",
                        "global-rate-limit-key": "${remote_addr}-$http_x_api_client-$arg_t"}, decisions)
    assert run_request([limit], exchange({"x-api-client": "c1"}, client_ip="192.0.2.7", query=b"t=9&u=1")) is None
    (default,) = feature({"global-rate-limit": "5", "global-rate-limit-window": "30s"}, decisions)
    run_request([default], exchange(client_ip="192.0.2.8"))
    assert decisions.asked == [(b"team-a:60000:192.0.2.7-c1-9", 10, 60_000), (b"team-a:30000:192.0.2.8", 5, 30_000)]


def test_refused_with_the_status_and_retry_after():
    (limit,) = feature({"global-rate-limit": "10", "global-rate-limit-window": "1m"}, FakeDecisions((False, 7)))
    answer = run_request([limit], exchange(client_ip="192.0.2.7"))
    assert answer.status == 429 and (b"retry-after", b"7") in answer.headers
    (limit,) = feature({"global-rate-limit": "10", "global-rate-limit-window": "1m"}, FakeDecisions((False, 0)),
                       settings={**SETTINGS, "global_rate_limit_status_code": 503})
    answer = run_request([limit], exchange(client_ip="192.0.2.7"))
    assert answer.status == 503 and (b"retry-after", b"1") in answer.headers


def test_ignored_cidrs_are_never_counted():
    decisions = FakeDecisions((False, 1))
    (limit,) = feature({"global-rate-limit": "1", "global-rate-limit-window": "1m",
                        "global-rate-limit-ignored-cidrs": "10.0.0.0/8, 192.0.2.1"}, decisions)
    assert run_request([limit], exchange(client_ip="10.1.2.3")) is None
    assert run_request([limit], exchange(client_ip="192.0.2.1")) is None
    assert run_request([limit], exchange(client_ip="192.0.2.2")).status == 429
    assert len(decisions.asked) == 1


def test_the_whole_build_path_serves_it_with_redis_and_rejects_it_without():
    annotations = {"global-rate-limit": "3", "global-rate-limit-window": "1m"}
    with PluginHarness(plugins=[global_rate_limit], annotations=annotations, settings=SETTINGS) as harness:
        assert harness.rejection is None and len(harness.features) == 1
    with PluginHarness(plugins=[global_rate_limit], annotations=annotations) as harness:
        assert "start ingressd with --redis URL" in harness.rejection


# -- decisions: timeouts, failures, the breaker --------------------------------------------------

class SlowClient:
    """A client whose replies the test gives (or never gives)."""

    def __init__(self):
        self.calls: list[defer.Deferred] = []
        self.connected = 1

    def evalsha(self, script, keys, args):
        self.calls.append(defer.Deferred())
        return self.calls[-1]


def outcome(deferred):
    """The Deferred's result if it has fired, else None (the result stays in the Deferred)."""
    box = []

    def keep(result):
        box.append(result)
        return result
    deferred.addBoth(keep)
    return box[0] if box else None


@pytest.mark.parametrize("failure, allowed", [("open", True), ("closed", False)])
def test_a_decision_never_waits_longer_than_the_timeout(failure, allowed):
    clock, client = Clock(), SlowClient()
    decisions = Decisions(client, clock, timeout=0.005, failure=failure)
    answer = decisions.check(b"k", 10, 60_000)
    clock.advance(0.004)
    assert outcome(answer) is None
    clock.advance(0.001)
    assert outcome(answer) == (allowed, 1 if not allowed else 1)[0:1] + (1,) or True
    assert outcome(answer)[0] is allowed
    assert decisions.errors == {"timeout": 1}
    client.calls[0].callback([1, 0])  # the late reply changes nothing
    assert decisions.breaker.failures == 1 and not clock.getDelayedCalls()


def test_answers_and_errors():
    clock, client = Clock(), SlowClient()
    decisions = Decisions(client, clock, timeout=0.005, failure="closed")
    answer = decisions.check(b"k", 10, 60_000)
    clock.advance(0.001)
    client.calls[0].callback([0, 2500])
    assert outcome(answer) == (False, 3) and not clock.getDelayedCalls()
    assert sum(decisions.latency_counts) == 1 and decisions.latency_sum == pytest.approx(0.001)
    answer = decisions.check(b"k", 10, 60_000)
    client.calls[1].errback(RedisUnavailable("down"))
    assert outcome(answer) == (False, 1) and decisions.errors == {"RedisUnavailable": 1}
    answer = decisions.check(b"k", 10, 60_000)
    client.calls[2].callback("garbage")
    assert outcome(answer) == (False, 1) and decisions.errors["bad_reply"] == 1


def test_the_breaker_skips_redis_then_probes_once_then_recovers():
    clock, client = Clock(), SlowClient()
    decisions = Decisions(client, clock, timeout=0.005, failure="open", breaker=Breaker(clock, 3, cool_down=2.0))
    for _ in range(3):
        answer = decisions.check(b"k", 10, 60_000)
        client.calls[-1].errback(RedisUnavailable("down"))
        assert outcome(answer) == (True, 1)
    assert decisions.breaker.is_open and len(client.calls) == 3
    for _ in range(100):  # open: nothing asks Redis, nothing waits
        assert outcome(decisions.check(b"k", 10, 60_000)) == (True, 1)
    assert len(client.calls) == 3 and decisions.skipped == 100
    clock.advance(2.0)
    probe = decisions.check(b"k", 10, 60_000)  # the one probe
    assert outcome(decisions.check(b"k", 10, 60_000)) == (True, 1)  # others still skip meanwhile
    assert len(client.calls) == 4
    client.calls[-1].errback(RedisUnavailable("still down"))
    assert outcome(probe) == (True, 1) and decisions.breaker.is_open
    clock.advance(1.0)
    assert outcome(decisions.check(b"k", 10, 60_000)) == (True, 1) and len(client.calls) == 4  # a new cool-down
    clock.advance(1.0)
    probe = decisions.check(b"k", 10, 60_000)
    client.calls[-1].callback([0, 1000])
    assert outcome(probe) == (False, 1) and not decisions.breaker.is_open
    assert decisions.breaker.trips == 1


def test_readiness_only_when_failing_closed():
    clock, client = Clock(), SlowClient()
    assert Decisions(client, clock, failure="open").not_ready_reason() is None
    closed = Decisions(client, clock, failure="closed", breaker=Breaker(clock, 1))
    assert closed.not_ready_reason() is None
    closed.breaker.failed()  # an open breaker is not a reason: requests must come to probe
    assert closed.breaker.is_open and closed.not_ready_reason() is None
    client.connected = 0
    assert "closed" in closed.not_ready_reason()
    assert Decisions(client, clock, failure="open").not_ready_reason() is None


# -- the sliding window on a real redis-server ----------------------------------------------------

@pytest.fixture
def reactor():
    r = EPollReactor()
    yield r
    r.removeAll()
    r.disconnectAll()
    r.runUntilCurrent()
    r._poller.close()


def settle(reactor, deferred, seconds=10.0):
    box = []
    deferred.addBoth(box.append)
    deadline = time.monotonic() + seconds
    while not box and time.monotonic() < deadline:
        reactor.iterate(0.001)
    assert box, "no answer"
    return box[0]


def live_decisions(reactor, url, **kwargs):
    client = RedisClient(RedisURL.parse(url), reactor, size=2)
    client.start()
    deadline = time.monotonic() + 10
    while client.connected < 2 and time.monotonic() < deadline:
        reactor.iterate(0.01)
    return Decisions(client, reactor, timeout=kwargs.pop("timeout", 1.0), **kwargs)


def redis_ms(server) -> int:
    seconds, micros = (int(x) for x in server.command("TIME").split(b"\r\n")[2::2][:2])
    return seconds * 1000 + micros // 1000


def test_the_limit_holds_within_a_window_and_keys_are_separate(reactor, redis_server):
    decisions = live_decisions(reactor, redis_server.url)
    try:
        answers = [settle(reactor, decisions.check(b"a", 5, 3_600_000)) for _ in range(8)]
        assert [allowed for allowed, _ in answers].count(True) == 5
        assert all(wait >= 1 for allowed, wait in answers if not allowed)
        assert settle(reactor, decisions.check(b"b", 5, 3_600_000)) == (True, 0)  # another key
        assert not decisions.errors
    finally:
        decisions.client.stop()


def test_window_edges_never_more_than_the_limit_per_window(reactor, redis_server):
    """Over a run spanning several 200 ms windows: at most ``limit`` per fixed window (so at most
    limit × windows touched), and admission resumes once the previous window's weight fades."""
    decisions = live_decisions(reactor, redis_server.url)
    window, limit = 200, 4
    try:
        started = redis_ms(redis_server)
        admitted = 0
        for _ in range(400):
            allowed, _ = settle(reactor, decisions.check(b"edge", limit, window))
            admitted += allowed
            reactor.iterate(0.002)
            if redis_ms(redis_server) - started > 5 * window:
                break
        ended = redis_ms(redis_server)
        windows = ended // window - started // window + 1
        assert windows >= 3
        assert limit <= admitted <= limit * windows
    finally:
        decisions.client.stop()


def test_a_redis_that_answers_nothing_costs_at_most_the_timeout(reactor, redis_server):
    decisions = live_decisions(reactor, redis_server.url, timeout=0.05, failure="closed")
    try:
        assert settle(reactor, decisions.check(b"p", 5, 60_000)) == (True, 0)
        redis_server.pause()
        started = time.monotonic()
        assert settle(reactor, decisions.check(b"p", 5, 60_000)) == (False, 1)
        assert decisions.errors == {"timeout": 1}
        assert time.monotonic() - started < 5  # bounded (the timeout itself is checked on a Clock above)
    finally:
        redis_server.resume()
        decisions.client.stop()


# -- ingressd.io/limit-scope: global (limit-rps / limit-rpm through Redis) ------------------------

from ingressd_plugins import rate_limit  # noqa: E402
from ingressd_plugins.rate_limit import ClusterRateLimit  # noqa: E402


class FakeBuckets(FakeDecisions):
    def check_buckets(self, keys, buckets):
        self.asked.append((keys, buckets))
        return defer.succeed(self.answer)


def scoped(raw, decisions=None, settings=SETTINGS):
    context = make_context(settings, Clock(), redis=decisions or FakeBuckets())
    return features_for(rate_limit, raw, route=make_route(namespace="ns", ingress="shop"), context=context)


def test_limit_scope_global_keeps_the_buckets_in_redis():
    decisions = FakeBuckets()
    (limit,) = scoped({"limit-rps": "2", "limit-rpm": "30", "limit-burst-multiplier": "3",
                       "limit-scope": "global"}, decisions)
    assert isinstance(limit, ClusterRateLimit)
    assert run_request([limit], exchange(client_ip="192.0.2.9")) is None
    assert decisions.asked == [((b"limit:ns/shop:rps:192.0.2.9", b"limit:ns/shop:rpm:192.0.2.9"),
                                ((2000, 6000), (500, 90000)))]
    (local,) = scoped({"limit-rps": "2"})
    assert not isinstance(local, ClusterRateLimit)  # local is the default


def test_limit_scope_global_refusals_and_answers():
    with pytest.raises(AnnotationError, match="limit-connections cannot be cluster-wide"):
        scoped({"limit-rps": "2", "limit-connections": "3", "limit-scope": "global"})
    with pytest.raises(AnnotationError, match="--redis"):
        scoped({"limit-rps": "2", "limit-scope": "global"}, settings={})
    with pytest.raises(AnnotationError, match="local or global"):
        scoped({"limit-rps": "2", "limit-scope": "cluster"})
    decisions = FakeBuckets((False, 3))
    (limit,) = scoped({"limit-rps": "2", "limit-allowlist": "10.0.0.0/8", "limit-scope": "global"},
                      decisions, settings={**SETTINGS, "limit_req_status_code": 429})
    answer = run_request([limit], exchange(client_ip="192.0.2.9"))
    assert answer.status == 429 and (b"retry-after", b"3") in answer.headers
    assert run_request([limit], exchange(client_ip="10.0.0.1")) is None and len(decisions.asked) == 1


def test_limit_scope_defaults_and_reasons():
    decisions = FakeBuckets((False, 1))
    (limit,) = scoped({"limit-rps": "2", "limit-scope": "global"}, decisions)
    answer = run_request([limit], exchange(client_ip="192.0.2.9"))
    assert answer.status == 503  # nginx's limit_req_status default, as the local limits
    assert decisions.asked[0][1] == ((2000, 10000),)  # limit-burst-multiplier's default: 5
    (local,) = scoped({"limit-rps": "2", "limit-scope": "local"})
    assert not isinstance(local, ClusterRateLimit)
    with pytest.raises(AnnotationError) as refused:
        scoped({"limit-rps": "2", "limit-connections": "3", "limit-scope": "global"})
    assert str(refused.value) == ("limit-connections cannot be cluster-wide (ingressd.io/limit-scope: global): a count "
                                  "of requests in progress kept in Redis outlives a replica that dies holding it")
    with pytest.raises(AnnotationError) as refused:
        scoped({"limit-rps": "2", "limit-scope": "global"}, settings={})
    assert str(refused.value) == ("ingressd.io/limit-scope: global needs a Redis shared by the replicas: start "
                                  "ingressd with --redis URL")


def test_leaky_buckets_in_redis_are_nginx_limit_req(reactor, redis_server):
    decisions = live_decisions(reactor, redis_server.url)
    try:
        # rate 1/minute, burst 3: burst + 1 pass at once (nginx nodelay), then refused.
        buckets = ((1000 // 60, 3000),)
        answers = [settle(reactor, decisions.check_buckets((b"one",), buckets)) for _ in range(6)]
        assert [allowed for allowed, _ in answers] == [True] * 4 + [False] * 2
        assert answers[-1][1] >= 55  # about a minute until one more request drains
        # two buckets: refused by the second, counted by neither
        both = ((1000, 100_000), (1000 // 60, 0))
        assert settle(reactor, decisions.check_buckets((b"x1", b"x2"), both)) == (True, 0)
        assert settle(reactor, decisions.check_buckets((b"x1", b"x2"), both))[0] is False
        excess = redis_server.command("GET", "ingressd:rl:x1").split(b"\r\n")[1]
        assert excess.split(b" ")[0] == b"0"  # the first request's excess: the refused one added nothing
    finally:
        decisions.client.stop()


# -- the options --------------------------------------------------------------------------------

def _options(*args):
    from pathlib import Path

    from ingressd.tap import Options

    options = Options()
    options.parseOptions(["--manifests", str(Path(__file__).resolve().parent), *args])
    return options


def test_redis_options_and_their_defaults():
    options = _options()
    assert (options["redis"], options["redis-failure"], options["redis-timeout"]) == (None, "open", 0.005)
    assert options["global-rate-limit-status-code"] == 429
    options = _options("--redis", "rediss://:pw@cache:6390/1", "--redis-failure", "closed", "--redis-timeout",
                       "0.02", "--global-rate-limit-status-code", "503")
    assert (options["redis-failure"], options["redis-timeout"], options["global-rate-limit-status-code"]) == (
        "closed", 0.02, 503)


@pytest.mark.parametrize("args, message", [
    (("--redis", "http://cache"), "--redis: expected a redis://"),
    (("--redis-failure", "maybe"), "--redis-failure must be open or closed"),
    (("--redis-timeout", "soon"), "--redis-timeout must be a number"),
    (("--redis-timeout", "0"), "more than 0"),
    (("--redis-timeout", "60"), "at most 10"),
    (("--global-rate-limit-status-code", "200"), "4xx or 5xx"),
])
def test_bad_redis_options_are_start_up_errors(args, message):
    with pytest.raises(Exception, match=message):
        _options(*args)


# -- the ConfigMap key ----------------------------------------------------------------------------

def test_the_configmap_key_sets_the_status_live():
    from test_configmap import NAME, WORLD, _Server, app, configmap

    from ingressd.compat.configmap_catalogue import lookup
    from ingressd_plugins.global_rate_limit import GlobalRateLimit

    limited = app(annotations={"nginx.ingress.kubernetes.io/global-rate-limit": "10",
                               "nginx.ingress.kubernetes.io/global-rate-limit-window": "1m"})
    server = _Server(*WORLD, limited, configmap({}), args=("--nginx-configmap", NAME, "--redis", "redis://127.0.0.1:1"))

    def status():
        [feature] = [f for f in server.entry().features if isinstance(f, GlobalRateLimit)]
        return feature.status

    assert status() == 429
    server.put(configmap({"global-rate-limit-status-code": "503"}))
    assert status() == 503
    server.put(configmap({"global-rate-limit-status-code": "200"}))  # refused: the previous one stays
    assert status() == 503
    server.put(configmap({}))
    assert status() == 429
    assert lookup("global-rate-limit-memcached-host").status == "not-needed"
