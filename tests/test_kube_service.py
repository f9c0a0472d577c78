"""KubernetesService against the fake apiserver: Ingress status, leader election, Events."""

from __future__ import annotations

import time

from twisted.internet import defer, reactor
from twisted.trial import unittest

from ingressd.providers.kube.events import CONTROLLER, REASON
from ingressd.providers.kube.leader import micro_time
from ingressd.providers.kube.reflector import KubeTimings
from ingressd.providers.kube.service import KubernetesService, served_ingresses
from ingressd.config.model import Backend, Config, ObjectRef, Rejection, Route
from ingressd.config.store import ObjectStore

try:
    from tests import fakeapi
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import fakeapi

FakeAPIServer, wait_until, sleep = fakeapi.FakeAPIServer, fakeapi.wait_until, fakeapi.sleep
FAST = KubeTimings(**fakeapi.FAST_TIMINGS)


def route(namespace: str, name: str, host: str = "app.example.com") -> Route:
    return Route(host=host, path="/", path_type="Prefix",
                 backend=Backend(namespace, "web", "80"),
                 ingress=ObjectRef("Ingress", namespace, name))


def config_serving(*refs: tuple[str, str], rejections=()) -> Config:
    return Config(routes=tuple(route(ns, name) for ns, name in refs),
                  rejections=tuple(rejections))


def lb(ingress: dict) -> list:
    return ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []


class _ServiceTestCase(unittest.TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.fake = FakeAPIServer(bookmark_interval=0.2).start()
        self.addCleanup(self.fake.stop)
        self.kubeconfig = self.fake.write_kubeconfig(self.mktemp())
        cluster = self.fake.cluster
        cluster.apply(fakeapi.ingress_class())
        cluster.apply(fakeapi.ingress("web", "team-a"))
        cluster.apply(fakeapi.ingress("other", "team-a", host="other.example.com"))
        cluster.apply(fakeapi.service("web", "team-a"))

    @defer.inlineCallbacks
    def start(self, identity: str = "replica-1", wait_leader: bool = True, **settings):
        settings = dict({"kubernetes": True, "kubeconfig": self.kubeconfig,
                         "election_namespace": "ingressd"}, **settings)
        store = ObjectStore()
        service = KubernetesService(settings, store, reactor, timings=FAST, identity=identity,
                                    environ={})
        service.startService()
        self.addCleanup(self.stop, service)
        yield wait_until(lambda: store.synced, what="the first sync")
        if wait_leader:
            yield wait_until(lambda: service.is_leader, what=f"{identity} leading")
        return service

    @defer.inlineCallbacks
    def stop(self, service: KubernetesService):
        if service.running:
            started = time.monotonic()
            yield service.stopService()
            self.assertLess(time.monotonic() - started, 4.0, "stopping took too long")

    def status_writes(self, namespace: str = "team-a", name: str = "web") -> list:
        return self.fake.calls("PATCH", rf"/namespaces/{namespace}/ingresses/{name}/status$")

    def lease(self) -> dict:
        return self.fake.cluster.get("leases", "ingressd", "ingressd-leader")


class StatusTests(_ServiceTestCase):
    @defer.inlineCallbacks
    def test_written_once_and_only_for_served_ingresses(self):
        service = yield self.start(publish_status_address="192.0.2.10, lb.example.com")
        service.config_applied(config_serving(("team-a", "web")))
        yield wait_until(lambda: lb(self.fake.cluster.get("ingresses", "team-a", "web")),
                         what="the status")
        self.assertEqual(lb(self.fake.cluster.get("ingresses", "team-a", "web")),
                         [{"hostname": "lb.example.com"}, {"ip": "192.0.2.10"}])  # sorted
        request = self.status_writes()[0]
        self.assertEqual(request.headers["content-type"], "application/merge-patch+json")
        # rebuilds with the same value, the watch echo, periodic passes: no second write
        for _ in range(3):
            service.config_applied(config_serving(("team-a", "web")))
            yield sleep(0.1)
        yield sleep(FAST.status_resync + 0.3)
        self.assertEqual(len(self.status_writes()), 1)
        self.assertEqual(self.status_writes("team-a", "other"), [])
        self.assertEqual(lb(self.fake.cluster.get("ingresses", "team-a", "other")), [])

    @defer.inlineCallbacks
    def test_rewritten_when_changed_by_someone_else(self):
        service = yield self.start(publish_status_address="192.0.2.10")
        service.config_applied(config_serving(("team-a", "web")))
        yield wait_until(lambda: len(self.status_writes()) == 1)
        self.fake.cluster.patch("ingresses", "team-a", "web",
                                {"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}}},
                                subresource="status")
        yield wait_until(lambda: lb(self.fake.cluster.get("ingresses", "team-a", "web"))
                         == [{"ip": "192.0.2.10"}], what="the status restored")
        self.assertEqual(len(self.status_writes()), 2)

    @defer.inlineCallbacks
    def test_newly_served_ingress_gets_status(self):
        service = yield self.start(publish_status_address="192.0.2.10")
        service.config_applied(config_serving(("team-a", "web")))
        yield wait_until(lambda: len(self.status_writes()) == 1)
        service.config_applied(config_serving(("team-a", "web"), ("team-a", "other")))
        yield wait_until(lambda: len(self.status_writes("team-a", "other")) == 1)
        self.assertEqual(len(self.status_writes()), 1)

    @defer.inlineCallbacks
    def test_from_publish_service(self):
        self.fake.cluster.apply(fakeapi.service(
            "ingressd", "ingressd", type="LoadBalancer", lb=[{"ip": "203.0.113.5"}]))
        service = yield self.start(publish_service="ingressd/ingressd")
        service.config_applied(config_serving(("team-a", "web")))
        yield wait_until(lambda: lb(self.fake.cluster.get("ingresses", "team-a", "web"))
                         == [{"ip": "203.0.113.5"}], what="the Service's address")
        # the load balancer gets another address: follow it
        self.fake.cluster.apply(fakeapi.service(
            "ingressd", "ingressd", type="LoadBalancer",
            lb=[{"ip": "203.0.113.6"}, {"hostname": "LB.example.net"}]))
        yield wait_until(lambda: lb(self.fake.cluster.get("ingresses", "team-a", "web"))
                         == [{"hostname": "lb.example.net"}, {"ip": "203.0.113.6"}],
                         what="the new address")
        # the publish Service is watched alone, by name, in its namespace
        watched = self.fake.calls("GET", r"^/api/v1/namespaces/ingressd/services$")
        self.assertEqual(watched[0].query["fieldSelector"], "metadata.name=ingressd")

    @defer.inlineCallbacks
    def test_nothing_written_without_publish_settings(self):
        service = yield self.start()
        service.config_applied(config_serving(("team-a", "web")))
        yield sleep(0.5)
        self.assertEqual(self.fake.calls("PATCH"), [])

    @defer.inlineCallbacks
    def test_only_the_leader_writes(self):
        self.fake.cluster.create("leases", {"metadata": {"name": "ingressd-leader"}, "spec": {
            "holderIdentity": "somebody-else", "leaseDurationSeconds": 60,
            "renewTime": micro_time().isoformat()}}, "ingressd")
        service = yield self.start(wait_leader=False, publish_status_address="192.0.2.10")
        service.config_applied(config_serving(("team-a", "web")))
        yield sleep(0.8)
        self.assertFalse(service.is_leader)
        self.assertEqual(self.status_writes(), [])
        self.assertEqual(self.lease()["spec"]["holderIdentity"], "somebody-else")


class LeaderTests(_ServiceTestCase):
    @defer.inlineCallbacks
    def test_creates_and_renews_the_lease(self):
        service = yield self.start(identity="replica-1")
        lease = self.lease()
        self.assertEqual(lease["spec"]["holderIdentity"], "replica-1")
        self.assertEqual(lease["spec"]["leaseDurationSeconds"], 2)  # round(1.5)
        first = lease["spec"]["renewTime"]
        yield wait_until(lambda: self.lease()["spec"]["renewTime"] != first, what="a renewal")
        self.assertEqual(self.lease()["spec"]["acquireTime"], lease["spec"]["acquireTime"])
        self.assertTrue(service.is_leader)

    @defer.inlineCallbacks
    def test_failover_on_clean_stop(self):
        one = yield self.start(identity="replica-1", publish_status_address="192.0.2.10")
        two = yield self.start(identity="replica-2", wait_leader=False,
                               publish_status_address="192.0.2.10")
        yield sleep(0.5)
        self.assertTrue(one.is_leader)
        self.assertFalse(two.is_leader)
        one.config_applied(config_serving(("team-a", "web")))
        two.config_applied(config_serving(("team-a", "web"), ("team-a", "other")))
        yield wait_until(lambda: len(self.status_writes()) == 1)
        yield sleep(0.3)
        self.assertEqual(self.status_writes("team-a", "other"), [])  # two is not leading
        self.assertEqual(two.status.writes, 0)
        # a clean stop releases the lease: replica-2 takes over well before it would expire
        yield self.stop(one)
        self.assertEqual(self.lease()["spec"]["holderIdentity"], "")
        started = time.monotonic()
        yield wait_until(lambda: two.is_leader, what="replica-2 leading")
        self.assertLess(time.monotonic() - started, 1.0)
        self.assertEqual(self.lease()["spec"]["holderIdentity"], "replica-2")
        self.assertEqual(self.lease()["spec"]["leaseTransitions"], 1)  # created at 0
        # the new leader writes what it serves
        yield wait_until(lambda: len(self.status_writes("team-a", "other")) == 1)
        self.assertEqual(len(self.status_writes()), 1)  # web was already right

    @defer.inlineCallbacks
    def test_takeover_after_expiry(self):
        # a leader that died without releasing: its lease stops being renewed
        self.fake.cluster.create("leases", {"metadata": {"name": "ingressd-leader"}, "spec": {
            "holderIdentity": "crashed", "leaseDurationSeconds": 1,
            "renewTime": micro_time().isoformat(), "leaseTransitions": 4}}, "ingressd")
        started = time.monotonic()
        service = yield self.start(identity="replica-2", wait_leader=False)
        yield wait_until(lambda: service.is_leader, what="takeover")
        # judged by its own clock: at least one lease duration after it first saw the lease
        self.assertGreaterEqual(time.monotonic() - started, 1.0)
        spec = self.lease()["spec"]
        self.assertEqual((spec["holderIdentity"], spec["leaseTransitions"]), ("replica-2", 5))

    @defer.inlineCallbacks
    def test_steps_down_when_another_replica_holds_the_lease(self):
        service = yield self.start(identity="replica-1")
        lease = self.lease()
        lease["spec"]["holderIdentity"] = "usurper"
        self.fake.cluster.update("leases", lease)
        yield wait_until(lambda: not service.is_leader, what="stepping down")

    @defer.inlineCallbacks
    def test_steps_down_when_renewal_fails(self):
        service = yield self.start(identity="replica-1", publish_status_address="192.0.2.10")
        self.fake.add_fault("status", code=500, path=r"/leases/", times=1000)
        started = time.monotonic()
        yield wait_until(lambda: not service.is_leader, what="stepping down")
        self.assertGreaterEqual(time.monotonic() - started, FAST.renew_deadline - 0.3)
        self.fake.clear_faults()
        yield wait_until(lambda: service.is_leader, what="leading again")
        self.assertEqual(service.leader.transitions, 2)


class EventTests(_ServiceTestCase):
    def events(self) -> list[dict]:
        return self.fake.cluster.objects_of("Event", "team-a")

    @defer.inlineCallbacks
    def test_warning_event_for_rejected_ingress_once(self):
        service = yield self.start()
        web = self.fake.cluster.get("ingresses", "team-a", "web")
        rejected = Rejection(ObjectRef("Ingress", "team-a", "web"),
                             'annotation "nginx.ingress.kubernetes.io/limit-rps": expected an integer')
        from_file = Rejection(ObjectRef("Ingress", "files", "local"), "bad")
        config = config_serving(rejections=[rejected, from_file])
        service.config_applied(config)
        yield wait_until(lambda: len(self.events()) == 1, what="an Event")
        event = self.events()[0]
        self.assertEqual(event["type"], "Warning")
        self.assertEqual(event["reason"], REASON)
        self.assertEqual(event["message"], rejected.reason)
        self.assertEqual(event["reportingComponent"], CONTROLLER)
        self.assertEqual(event["reportingInstance"], "replica-1")
        self.assertEqual(event["count"], 1)
        self.assertEqual(event["involvedObject"], {
            "kind": "Ingress", "apiVersion": "networking.k8s.io/v1", "namespace": "team-a",
            "name": "web", "uid": web["metadata"]["uid"],
            "resourceVersion": web["metadata"]["resourceVersion"]})
        # every rebuild rejects it again: no more Events
        for _ in range(3):
            service.config_applied(config)
        yield sleep(0.3)
        self.assertEqual(len(self.fake.calls("POST", r"/events$")), 1)
        self.assertEqual(self.fake.calls("PATCH", r"/events/"), [])
        # a different message is a different Event
        service.config_applied(config_serving(rejections=[
            Rejection(rejected.ref, "another problem")]))
        yield wait_until(lambda: len(self.events()) == 2)

    @defer.inlineCallbacks
    def test_recurrence_counts_on_the_same_event(self):
        service = yield self.start()
        rejected = Rejection(ObjectRef("Ingress", "team-a", "web"), "broken")
        service.config_applied(config_serving(rejections=[rejected]))
        # The Event is known once its creation has returned to the reactor (its name is
        # what a recurrence patches), not merely once the fake API server holds it.
        yield wait_until(lambda: service.events.sent == 1, what="the Event created")
        service.config_applied(config_serving(("team-a", "web")))  # fixed
        service.config_applied(config_serving(rejections=[rejected]))  # broken again
        yield wait_until(lambda: self.events()[0]["count"] == 2, what="count 2")
        self.assertEqual(len(self.events()), 1)
        patch = self.fake.calls("PATCH", r"/events/")[0]
        self.assertEqual(patch.headers["content-type"], "application/merge-patch+json")

    @defer.inlineCallbacks
    def test_only_the_leader_reports_and_a_new_leader_catches_up(self):
        self.fake.cluster.create("leases", {"metadata": {"name": "ingressd-leader"}, "spec": {
            "holderIdentity": "somebody-else", "leaseDurationSeconds": 60,
            "renewTime": micro_time().isoformat()}}, "ingressd")
        service = yield self.start(wait_leader=False)
        service.config_applied(config_serving(rejections=[
            Rejection(ObjectRef("Ingress", "team-a", "web"), "broken")]))
        yield sleep(0.5)
        self.assertEqual(self.events(), [])
        lease = self.lease()
        lease["spec"]["holderIdentity"] = ""  # released
        self.fake.cluster.update("leases", lease)
        yield wait_until(lambda: service.is_leader)
        yield wait_until(lambda: len(self.events()) == 1, what="the Event from the new leader")


class SettingsTests(unittest.TestCase):
    def test_served_ingresses(self):
        default = route("team-b", "fallback")
        config = Config(routes=(route("team-a", "web"), route("team-a", "web", "b.example.com")),
                        default_backend=default)
        self.assertEqual(served_ingresses(config), {
            ObjectRef("Ingress", "team-a", "web"), ObjectRef("Ingress", "team-b", "fallback")})

    def test_publish_service_without_namespace_uses_the_pod_namespace(self):
        service = KubernetesService({"kubernetes": True, "publish_service": "lb"}, ObjectStore(),
                                    reactor, environ={"POD_NAMESPACE": "ingressd"})
        self.assertEqual(service.publish_service, ("ingressd", "lb"))
        self.assertEqual(service.election_namespace, "ingressd")

    def test_identity_from_pod_name(self):
        service = KubernetesService({"kubernetes": True}, ObjectStore(), reactor,
                                    environ={"POD_NAME": "ingressd-7d9c-x2"})
        self.assertEqual(service.identity, "ingressd-7d9c-x2")
        other = KubernetesService({"kubernetes": True}, ObjectStore(), reactor, environ={})
        again = KubernetesService({"kubernetes": True}, ObjectStore(), reactor, environ={})
        self.assertNotEqual(other.identity, again.identity)

    def test_disabled_does_nothing(self):
        store = ObjectStore()
        service = KubernetesService({"kubernetes": False}, store, reactor)
        service.startService()
        self.assertIsNone(service.pool)
        self.assertFalse(store.synced)
        return service.stopService()


class StatusPassTests(unittest.TestCase):
    """Which served Ingresses a status pass looks at (a Clock, no API server)."""

    def test_a_change_of_one_ingress_checks_that_one(self):
        from kubernetes import client
        from twisted.internet.task import Clock

        from ingressd.providers.kube.status import StatusWriter

        looked: list[tuple[str, str]] = []
        written: list[tuple[str, str]] = []

        def lookup(namespace, name):
            looked.append((namespace, name))
            return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"}}

        def run_in_thread(function, namespace, name, desired):
            written.append((namespace, name))
            return defer.succeed(None)

        clock = Clock()
        writer = StatusWriter(client.ApiClient(client.Configuration()), clock, run_in_thread, lookup,
                              publish_addresses=("192.0.2.10",))
        refs = [ObjectRef("Ingress", "ns", f"i{n}") for n in range(100)]
        writer.set_served(refs)
        writer.set_leader(True)
        clock.advance(0)
        self.assertEqual(len(looked), 100)  # leadership: every served Ingress
        self.assertEqual(len(written), 100)
        del looked[:]
        writer.ingress_changed("ns", "i7")
        writer.ingress_changed("ns", "not-served")
        clock.advance(0)
        self.assertEqual(looked, [("ns", "i7")])
        del looked[:]
        writer.set_served(refs + [ObjectRef("Ingress", "ns", "new")])
        clock.advance(0)
        self.assertEqual(looked, [("ns", "new")])
        del looked[:]
        clock.advance(KubeTimings().status_resync)  # the periodic pass: all of them again
        self.assertEqual(len(looked), 101)
        writer.stop()
