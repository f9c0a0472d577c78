"""--replicas-hint: local limits divided by the number of replicas (fixed, or counted live from
the publish Service's EndpointSlices in cluster mode)."""

from pathlib import Path

import pytest
from twisted.internet.task import Clock

from fakes import exchange, features_for, make_context, run_request
from ingressd.replicas import AUTO, ReplicaCount, parse_hint, ready_addresses
from ingressd_plugins import rate_limit
from ingressd_plugins.rate_limit import share


# -- the count and the share ---------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (None, None), ("", None), ("auto", AUTO), ("1", 1), ("3", 3), (4, 4), ("1000", 1000)])
def test_parse_hint(value, expected):
    assert parse_hint(value) == expected


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", "1001", "Auto"])
def test_parse_hint_refuses(value):
    with pytest.raises(ValueError, match="expected auto or a number of replicas from 1 to 1000"):
        parse_hint(value)


@pytest.mark.parametrize("limit, count, expected", [
    (0, 3, 0),  # off stays off
    (10, 1, 10), (10, 2, 5), (10, 3, 4),  # rounded up: 3 × 4 = 12 ≥ 10
    (9, 3, 3), (1, 3, 1), (2, 5, 1),  # never below 1
    (100, 0, 100),  # no replica counted: this one alone
])
def test_share_rounds_up_and_never_below_one(limit, count, expected):
    assert share(limit, count) == expected


def _slice(*endpoints):
    return {"endpoints": [{"addresses": [address], "conditions": {"ready": ready}} if ready is not None
                          else {"addresses": [address]} for address, ready in endpoints]}


def test_ready_addresses_counts_distinct_ready_endpoints():
    slices = [_slice(("10.0.0.1", True), ("10.0.0.2", False), ("10.0.0.3", None)),
              _slice(("10.0.0.1", True), ("10.0.0.4", True)), {"endpoints": None}, {"endpoints": ["junk", {}]}]
    assert ready_addresses(slices) == {"10.0.0.1", "10.0.0.3", "10.0.0.4"}
    assert ready_addresses([]) == frozenset()


def test_replica_count_fixed_and_observed():
    fixed = ReplicaCount(3)
    assert (fixed.auto, fixed.count, fixed.observed) == (False, 3, None)
    auto = ReplicaCount(AUTO)
    assert (auto.auto, auto.count, auto.observed) == (True, 1, None)
    auto.observe(4)
    assert (auto.count, auto.observed) == (4, 4)
    auto.observe(0)  # this replica not ready yet, or the Service has no endpoint: itself
    assert (auto.count, auto.observed) == (1, 0)


# -- the limits follow the count -----------------------------------------------------------------

def _feature(raw, replicas, clock):
    [feature] = features_for(rate_limit, raw, context=make_context(reactor=clock, state={}, replicas=replicas))
    return feature


def _passed(feature, count, ip="192.0.2.1"):
    admitted = 0
    for _ in range(count):
        ex = exchange(client_ip=ip)
        admitted += run_request([feature], ex) is None
        ex.finish()
    return admitted


def test_rps_and_its_burst_are_divided_by_a_fixed_hint():
    clock = Clock()
    # limit-rps 10, multiplier 1 on 3 replicas: rate 4/s, burst 4 → 5 at once
    feature = _feature({"limit-rps": "10", "limit-burst-multiplier": "1"}, ReplicaCount(3), clock)
    assert _passed(feature, 20) == 5
    clock.advance(1)
    assert _passed(feature, 20) == 4  # drained at 4 per second
    # without a hint: rate 10, burst 10 → 11
    alone = _feature({"limit-rps": "10", "limit-burst-multiplier": "1"}, None, clock)
    assert _passed(alone, 20) == 11


def test_rpm_share_and_default_multiplier():
    clock = Clock()
    feature = _feature({"limit-rpm": "60"}, ReplicaCount(4), clock)  # 15/min, burst 75
    assert _passed(feature, 200) == 76
    clock.advance(4)  # one request per 4 s
    assert _passed(feature, 5) == 1


def test_connections_are_divided():
    feature = _feature({"limit-connections": "5"}, ReplicaCount(2), Clock())  # 3 each
    held = [exchange(client_ip="192.0.2.1") for _ in range(4)]
    answers = [run_request([feature], ex) for ex in held]
    assert [answer is None for answer in answers] == [True, True, True, False]


def test_a_changed_count_resizes_the_limits_live_keeping_client_state():
    clock = Clock()
    replicas = ReplicaCount(AUTO)
    feature = _feature({"limit-rps": "6", "limit-burst-multiplier": "1", "limit-connections": "4"}, replicas, clock)
    assert _passed(feature, 20) == 7  # alone: rate 6, burst 6
    replicas.observe(3)  # scaled out: rate 2, burst 2
    clock.advance(1)
    assert _passed(feature, 20) == 0  # the excess of 6 requests drains at 2/s now
    clock.advance(2)
    assert _passed(feature, 20) == 2
    held = [exchange(client_ip="192.0.2.9") for _ in range(3)]
    assert [run_request([feature], ex) is None for ex in held] == [True, True, False]  # 4 / 3 → 2
    replicas.observe(1)  # scaled in: the full limits again
    assert run_request([feature], exchange(client_ip="192.0.2.9")) is None  # 3rd of 4 connections
    clock.advance(10)
    assert _passed(feature, 20) == 6  # drained: burst 6 (a client's very first request, as nginx, adds none)


# -- the option ----------------------------------------------------------------------------------

def _options(*args):
    from ingressd.tap import Options

    options = Options()
    options.parseOptions(list(args))
    return options


MANIFESTS = ("--manifests", str(Path(__file__).resolve().parent))


def test_option_values():
    assert _options(*MANIFESTS)["replicas-hint"] is None
    assert _options(*MANIFESTS, "--replicas-hint", "3")["replicas-hint"] == 3
    assert _options("--kubernetes", "--publish-service", "ingressd/ingressd",
                    "--replicas-hint", "auto")["replicas-hint"] == "auto"


@pytest.mark.parametrize("args, message", [
    ((*MANIFESTS, "--replicas-hint", "auto"), "--replicas-hint auto .* needs --kubernetes and --publish-service"),
    (("--kubernetes", "--replicas-hint", "auto"), "--replicas-hint auto .* needs --kubernetes and --publish-service"),
    ((*MANIFESTS, "--replicas-hint", "0"), "--replicas-hint: expected auto or a number"),
])
def test_bad_option_values_are_start_up_errors(args, message):
    with pytest.raises(Exception, match=message):
        _options(*args)


# -- cluster mode: the publish Service's endpoints, counted live (the fake API server) -----------

from twisted.internet import defer, reactor  # noqa: E402
from twisted.trial import unittest  # noqa: E402

import fakeapi  # noqa: E402
from ingressd.config.store import ObjectStore  # noqa: E402
from ingressd.providers.kube.reflector import KubeTimings  # noqa: E402
from ingressd.providers.kube.service import KubernetesService  # noqa: E402


def _replica_slice(name, *addresses, not_ready=(), service="ingressd"):
    piece = fakeapi.endpoint_slice(name, service, "ingressd", addresses=addresses + not_ready)
    for endpoint in piece["endpoints"]:
        endpoint["conditions"]["ready"] = endpoint["addresses"][0] not in not_ready
    return piece


class AutoCountTests(unittest.TestCase):
    timeout = 60

    def _kubeconfig(self) -> str:
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="ingressd-replicas-")  # not trial's mktemp: nothing left in the checkout
        self.addCleanup(shutil.rmtree, folder, True)
        return str(Path(folder) / "kubeconfig")

    @defer.inlineCallbacks
    def test_the_count_follows_the_publish_services_ready_endpoints(self):
        fake = fakeapi.FakeAPIServer(bookmark_interval=0.2).start()
        self.addCleanup(fake.stop)
        cluster = fake.cluster
        cluster.apply(fakeapi.ingress_class())
        cluster.apply(fakeapi.service("ingressd", "ingressd"))
        cluster.apply(_replica_slice("ingressd-a", "10.0.0.1", "10.0.0.2", not_ready=("10.0.0.3",)))
        cluster.apply(_replica_slice("other-a", "10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4", service="other"))
        replicas = ReplicaCount(AUTO)
        service = KubernetesService(
            {"kubernetes": True, "kubeconfig": fake.write_kubeconfig(self._kubeconfig()),
             "election_namespace": "ingressd", "publish_service": "ingressd/ingressd"},
            ObjectStore(), reactor, timings=KubeTimings(**fakeapi.FAST_TIMINGS), identity="replica-1",
            environ={}, replicas=replicas)
        service.startService()
        self.addCleanup(service.stopService)
        yield fakeapi.wait_until(lambda: replicas.observed == 2, what="two ready replicas counted")
        self.assertEqual(replicas.count, 2)
        # scaled out: a second slice, and the not-ready one becomes ready
        cluster.apply(_replica_slice("ingressd-b", "10.0.0.4"))
        cluster.apply(_replica_slice("ingressd-a", "10.0.0.1", "10.0.0.2", "10.0.0.3"))
        yield fakeapi.wait_until(lambda: replicas.count == 4, what="four ready replicas counted")
        # another Service's endpoints never count
        cluster.apply(_replica_slice("other-b", "10.0.1.5", service="other"))
        # scaled in: a slice removed
        cluster.remove("EndpointSlice", "ingressd", "ingressd-a")
        yield fakeapi.wait_until(lambda: replicas.count == 1, what="one ready replica counted")
        cluster.remove("EndpointSlice", "ingressd", "ingressd-b")
        yield fakeapi.wait_until(lambda: replicas.observed == 0, what="no ready replica")
        self.assertEqual(replicas.count, 1)  # this replica alone
        # the watch is by label, in the Service's namespace
        watched = [call for call in fake.calls("GET", r"/endpointslices") if "labelSelector" in call.query]
        self.assertTrue(watched)
        for call in watched:
            self.assertIn("/namespaces/ingressd/", call.path)
            self.assertEqual(call.query["labelSelector"], "kubernetes.io/service-name=ingressd")

    def test_not_watched_without_auto(self):
        service = KubernetesService({"kubernetes": True, "publish_service": "ingressd/ingressd"}, ObjectStore(),
                                    reactor, environ={}, replicas=ReplicaCount(3))
        self.assertEqual(service.replicas.count, 3)


def test_the_server_hands_its_count_to_the_limiters():
    from twisted.internet.testing import MemoryReactorClock

    from ingressd.plugin_manager import load_plugins
    from ingressd.server import IngressdService
    from ingressd.tap import settings_from

    service = IngressdService(settings_from(_options(*MANIFESTS, "--replicas-hint", "3")), load_plugins(),
                              MemoryReactorClock())
    assert service.replicas.count == 3 and service.reloader.replicas is service.replicas
    objects = [fakeapi.ingress_class(), fakeapi.service("web"), fakeapi.endpoint_slice("web-a", "web"),
               fakeapi.ingress("web")]
    objects[-1]["metadata"]["annotations"] = {"ingressd.io/limit-rps": "10"}
    for kind in ("IngressClass", "Service", "EndpointSlice", "Ingress"):
        service.store.replace("test", kind, [o for o in objects if o["kind"] == kind])
    service.store.set_synced("test")
    service.store.set_synced("files")
    service.reloader.rebuild()
    [limiter] = service.reloader.plugin_state["rate_limit"]["limiters"].values()
    assert (limiter.replicas, limiter.divisor, limiter.buckets[0].rate) == (service.replicas, 3, 4000)
    assert IngressdService(settings_from(_options(*MANIFESTS)), load_plugins(), MemoryReactorClock()).replicas is None
