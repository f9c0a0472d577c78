"""Reflectors against the fake apiserver, through the official client and a kubeconfig.

Every test runs the production path: ``KubernetesService`` (or a ``Reflector``) loads a
kubeconfig that points at ``tests/fakeapi.py`` on loopback, lists and watches over HTTP, and
feeds a real ``ObjectStore`` on the reactor thread.
"""

from __future__ import annotations

import time

from twisted.internet import defer, reactor
from twisted.trial import unittest

from ingressd.providers.kube.config import load_configuration
from ingressd.providers.kube.reflector import KubeTimings, Reflector
from ingressd.providers.kube.service import KubernetesService, _DaemonThreadPool
from ingressd.config.store import KINDS, ObjectStore

try:
    from tests import fakeapi
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import fakeapi

FakeAPIServer, wait_until, sleep = fakeapi.FakeAPIServer, fakeapi.wait_until, fakeapi.sleep

FAST = KubeTimings(**fakeapi.FAST_TIMINGS)


def populate(cluster: fakeapi.FakeCluster) -> None:
    cluster.apply(fakeapi.ingress_class())
    cluster.apply(fakeapi.ingress("web", "team-a"))
    cluster.apply(fakeapi.ingress("api", "team-b", host="api.example.com"))
    cluster.apply(fakeapi.service("web", "team-a"))
    cluster.apply(fakeapi.service("api", "team-b"))
    cluster.apply(fakeapi.endpoint_slice("web-abc", "web", "team-a"))
    cluster.apply(fakeapi.secret("web-tls", "team-a"))
    cluster.apply(fakeapi.secret("basic-auth", "team-a", type="Opaque"))


def names(store: ObjectStore, kind: str) -> set[tuple[str, str]]:
    return set(store.snapshot()[kind])


class _KubeTestCase(unittest.TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.fake = FakeAPIServer(bookmark_interval=0.2).start()
        self.addCleanup(self.fake.stop)
        self.kubeconfig = self.fake.write_kubeconfig(self.mktemp())
        self.store = ObjectStore()

    @defer.inlineCallbacks
    def start_service(self, timings: KubeTimings = FAST, **settings):
        settings = dict({"kubernetes": True, "kubeconfig": self.kubeconfig}, **settings)
        service = KubernetesService(settings, self.store, reactor, timings=timings,
                                    identity=settings.pop("identity", "test-replica"),
                                    environ={})
        service.startService()
        self.addCleanup(self.stop_service, service)
        yield wait_until(lambda: self.store.synced, what="the first sync")
        return service

    @defer.inlineCallbacks
    def stop_service(self, service: KubernetesService):
        if service.running:
            started = time.monotonic()
            yield service.stopService()
            self.assertLess(time.monotonic() - started, 4.0, "stopping took too long")

    def reflector(self, service: KubernetesService, kind: str) -> Reflector:
        return next(r for r in service.reflectors
                    if r.kind == kind and r.sink is service.sink)


class InitialSyncTests(_KubeTestCase):
    @defer.inlineCallbacks
    def test_all_kinds_synced(self):
        populate(self.fake.cluster)
        populated_at = self.fake.cluster.rv
        self.assertFalse(self.store.synced)
        service = yield self.start_service()
        snapshot = self.store.snapshot()
        self.assertEqual(set(snapshot["Ingress"]), {("team-a", "web"), ("team-b", "api")})
        self.assertEqual(set(snapshot["IngressClass"]), {("", "ingressd")})
        self.assertEqual(set(snapshot["Service"]), {("team-a", "web"), ("team-b", "api")})
        self.assertEqual(set(snapshot["EndpointSlice"]), {("team-a", "web-abc")})
        # every Secret, Opaque (auth) as well as TLS
        self.assertEqual(set(snapshot["Secret"]), {("team-a", "web-tls"), ("team-a", "basic-auth")})
        web = self.store.get("Ingress", ("team-a", "web"))
        # list items come without kind/apiVersion; the reflector adds them
        self.assertEqual((web["kind"], web["apiVersion"]), ("Ingress", "networking.k8s.io/v1"))
        self.assertEqual(web["spec"]["rules"][0]["host"], "app.example.com")
        for kind in KINDS:
            self.assertEqual(self.reflector(service, kind).lists, 1, kind)
        # cluster-wide paths, a LIST then a WATCH from the list's resourceVersion
        lists = self.fake.calls("GET", r"^/apis/networking.k8s.io/v1/ingresses$", watch=False)
        watches = self.fake.calls("GET", r"^/apis/networking.k8s.io/v1/ingresses$", watch=True)
        self.assertEqual(len(lists), 1)
        # (the leader's Lease writes move the global resourceVersion too)
        self.assertGreaterEqual(int(watches[0].query["resourceVersion"]), populated_at)
        self.assertNotIn("resourceVersion", lists[0].query)  # a consistent read
        self.assertEqual(watches[0].query["allowWatchBookmarks"], "true")
        self.assertIn("timeoutSeconds", watches[0].query)

    @defer.inlineCallbacks
    def test_paged_list(self):
        for index in range(7):
            self.fake.cluster.apply(fakeapi.ingress(f"web-{index}"))
        timings = KubeTimings(**dict(FAST.__dict__, page_size=3))
        yield self.start_service(timings)
        self.assertEqual(len(self.store.snapshot()["Ingress"]), 7)
        pages = self.fake.calls("GET", r"/ingresses$", watch=False)
        self.assertEqual(len(pages), 3)
        self.assertEqual([p.query.get("limit") for p in pages], ["3", "3", "3"])
        self.assertNotIn("continue", pages[0].query)
        self.assertIn("continue", pages[1].query)

    @defer.inlineCallbacks
    def test_expired_continue_token_restarts_the_list(self):
        for index in range(4):
            self.fake.cluster.apply(fakeapi.ingress(f"web-{index}"))
        self.fake.add_fault("status", code=410, path=r"/ingresses$", watch=False)
        timings = KubeTimings(**dict(FAST.__dict__, page_size=2))
        yield self.start_service(timings)
        self.assertEqual(len(self.store.snapshot()["Ingress"]), 4)

    @defer.inlineCallbacks
    def test_namespace_limits_namespaced_kinds(self):
        populate(self.fake.cluster)
        yield self.start_service(namespace="team-a")
        snapshot = self.store.snapshot()
        self.assertEqual(set(snapshot["Ingress"]), {("team-a", "web")})
        self.assertEqual(set(snapshot["Service"]), {("team-a", "web")})
        self.assertEqual(set(snapshot["IngressClass"]), {("", "ingressd")})  # cluster-scoped
        self.assertTrue(self.fake.calls("GET", r"^/apis/networking.k8s.io/v1/namespaces/team-a/ingresses$"))
        self.assertFalse(self.fake.calls("GET", r"^/apis/networking.k8s.io/v1/ingresses$"))
        self.assertFalse(self.fake.calls("GET", r"^/api/v1/secrets$"))


class EventTests(_KubeTestCase):
    @defer.inlineCallbacks
    def test_add_modify_delete_each_kind(self):
        yield self.start_service()
        cluster = self.fake.cluster
        cases = [
            ("Ingress", fakeapi.ingress("web", "team-a"), ("team-a", "web"),
             lambda o: o["spec"]["rules"][0].update(host="changed.example.com"),
             lambda o: o["spec"]["rules"][0]["host"]),
            ("IngressClass", fakeapi.ingress_class("other"), ("", "other"),
             lambda o: o["spec"].update(controller="example.com/other"),
             lambda o: o["spec"]["controller"]),
            ("Service", fakeapi.service("web", "team-a"), ("team-a", "web"),
             lambda o: o["spec"]["ports"][0].update(port=8081),
             lambda o: o["spec"]["ports"][0]["port"]),
            ("EndpointSlice", fakeapi.endpoint_slice("web-1", "web", "team-a"), ("team-a", "web-1"),
             lambda o: o["endpoints"][0].update(addresses=["10.0.0.99"]),
             lambda o: o["endpoints"][0]["addresses"]),
            ("Secret", fakeapi.secret("creds", "team-a", type="Opaque"), ("team-a", "creds"),
             lambda o: o["data"].update(auth="Y2hhbmdlZA=="),
             lambda o: o["data"]["auth"]),
        ]
        for kind, obj, key, change, read in cases:
            cluster.apply(obj)
            yield wait_until(lambda: key in self.store.snapshot()[kind], what=f"{kind} added")
            before = read(self.store.get(kind, key))
            change(obj)
            cluster.apply(obj)
            yield wait_until(lambda: read(self.store.get(kind, key)) != before,
                             what=f"{kind} modified")
            self.assertEqual(read(self.store.get(kind, key)), read(obj))
            cluster.remove(kind, key[0], key[1])
            yield wait_until(lambda: key not in self.store.snapshot()[kind],
                             what=f"{kind} deleted")
        # all of it through the first watches: no re-list
        self.assertEqual(len(self.fake.calls("GET", r"/ingresses$", watch=False)), 1)

    @defer.inlineCallbacks
    def test_bookmarks_advance_the_resource_version(self):
        self.fake.cluster.apply(fakeapi.ingress("web"))
        service = yield self.start_service()
        reflector = self.reflector(service, "Ingress")
        listed_at = reflector.resource_version
        # other kinds move the global resourceVersion; only bookmarks tell the Ingress watch
        for index in range(5):
            self.fake.cluster.apply(fakeapi.service(f"svc-{index}"))
        yield wait_until(lambda: int(reflector.resource_version) >= self.fake.cluster.rv,
                         what="a bookmark at the latest resourceVersion")
        self.assertGreater(reflector.bookmarks, 0)
        self.assertGreater(int(reflector.resource_version), int(listed_at))
        # history before now is gone: a re-watch from the list's version would get 410,
        # from the bookmark's it does not
        self.fake.cluster.compact()
        self.fake.cluster.kill_all_watches()
        yield wait_until(lambda: len(self.fake.calls("GET", r"^/apis/networking.k8s.io/v1/ingresses$",
                                                      watch=True)) >= 2, what="a re-watch")
        rewatch = self.fake.calls("GET", r"^/apis/networking.k8s.io/v1/ingresses$", watch=True)[1]
        self.assertEqual(int(rewatch.query["resourceVersion"]), self.fake.cluster.compacted_rv)
        self.fake.cluster.apply(fakeapi.ingress("new"))
        yield wait_until(lambda: ("default", "new") in self.store.snapshot()["Ingress"])
        self.assertEqual(reflector.expired, 0)
        self.assertEqual(reflector.lists, 1)

    @defer.inlineCallbacks
    def test_garbage_line_is_skipped(self):
        service = yield self.start_service()
        reflector = self.reflector(service, "Ingress")
        self.fake.add_fault("garbage", path=r"/ingresses$", watch=True)
        self.fake.cluster.kill_all_watches()
        yield wait_until(lambda: reflector.bad_lines == 1)
        self.fake.cluster.apply(fakeapi.ingress("web"))
        yield wait_until(lambda: ("default", "web") in self.store.snapshot()["Ingress"])
        self.assertEqual(reflector.lists, 1)

    @defer.inlineCallbacks
    def test_periodic_resync_relists_without_spurious_changes(self):
        populate(self.fake.cluster)
        timings = KubeTimings(**dict(FAST.__dict__, resync_period=0.3))
        service = yield self.start_service(timings)
        generation = self.store.generation
        reflector = self.reflector(service, "Ingress")
        yield wait_until(lambda: reflector.lists >= 3, what="two resyncs")
        # re-listed objects equal the watched ones (kind/apiVersion added to list items)
        self.assertEqual(self.store.generation, generation)


class RecoveryTests(_KubeTestCase):
    @defer.inlineCallbacks
    def test_410_error_event_relists_and_replaces(self):
        cluster = self.fake.cluster
        cluster.apply(fakeapi.ingress("stays"))
        cluster.apply(fakeapi.ingress("goes"))
        service = yield self.start_service()
        reflector = self.reflector(service, "Ingress")
        # changes the open watch does not see, then their history compacted away
        cluster.pause_events()
        cluster.apply(fakeapi.ingress("arrives"))
        cluster.remove("Ingress", "default", "goes")
        cluster.compact()
        cluster.resume_events()
        yield wait_until(lambda: names(self.store, "Ingress") == {
            ("default", "stays"), ("default", "arrives")}, what="the re-list")
        self.assertEqual(reflector.expired, 1)
        self.assertEqual(reflector.lists, 2)  # exactly one re-list
        self.assertEqual(len(self.fake.calls("GET", r"^/apis/networking.k8s.io/v1/ingresses$",
                                             watch=False)), 2)
        # the others kinds' watches hit the same compaction and re-listed too, without errors
        self.assertEqual(self.reflector(service, "Service").failures, 0)

    @defer.inlineCallbacks
    def test_http_410_on_watch_relists(self):
        self.fake.cluster.apply(fakeapi.ingress("web"))
        service = yield self.start_service()
        reflector = self.reflector(service, "Ingress")
        self.fake.add_fault("status", code=410, path=r"/ingresses$", watch=True)
        self.fake.cluster.kill_all_watches()
        yield wait_until(lambda: reflector.lists == 2, what="a re-list after HTTP 410")
        self.assertEqual(reflector.expired, 1)
        self.assertEqual(reflector.failures, 1)  # the killed stream; the 410 is no failure

    @defer.inlineCallbacks
    def test_410_error_event_injected(self):
        service = yield self.start_service()
        reflector = self.reflector(service, "Secret")
        self.fake.add_fault("error_event", code=410, path=r"/secrets$", watch=True)
        self.fake.cluster.kill_all_watches()
        yield wait_until(lambda: reflector.lists == 2)
        self.assertEqual(reflector.expired, 1)

    @defer.inlineCallbacks
    def test_other_error_event_rewatches_from_last_version(self):
        service = yield self.start_service()
        reflector = self.reflector(service, "Secret")
        # Kill the Secret watch only once it is open: killed earlier, there is no stream
        # to fail, and only the ERROR event counts (seen once under PyPy).
        yield wait_until(lambda: reflector.watches >= 1, what="the first Secret watch")
        self.fake.add_fault("error_event", code=500, path=r"/secrets$", watch=True)
        self.fake.cluster.kill_all_watches()
        # the killed stream, then the ERROR event: two failures, re-watched, never re-listed
        yield wait_until(lambda: reflector.failures >= 2 and reflector.watches >= 3)
        self.assertEqual(reflector.lists, 1)
        self.assertEqual(reflector.expired, 0)

    @defer.inlineCallbacks
    def test_dropped_stream_rewatches_from_last_event(self):
        service = yield self.start_service()
        reflector = self.reflector(service, "Ingress")
        self.fake.add_fault("drop_after", events=1, path=r"/ingresses$", watch=True)
        self.fake.cluster.kill_all_watches()
        yield wait_until(lambda: len(self.fake.calls("GET", r"/ingresses$", watch=True)) >= 2)
        first = self.fake.cluster.apply(fakeapi.ingress("one"))
        self.fake.cluster.apply(fakeapi.ingress("two"))
        yield wait_until(lambda: names(self.store, "Ingress") == {
            ("default", "one"), ("default", "two")}, what="both Ingresses")
        watches = self.fake.calls("GET", r"/ingresses$", watch=True)
        self.assertEqual(watches[-1].query["resourceVersion"], first["metadata"]["resourceVersion"])
        self.assertEqual(reflector.lists, 1)
        self.assertGreaterEqual(reflector.failures, 1)

    @defer.inlineCallbacks
    def test_errors_on_list_back_off_then_sync(self):
        self.fake.cluster.apply(fakeapi.ingress("web"))
        self.fake.add_fault("status", code=500, path=r"/ingresses$", watch=False, times=3)
        self.fake.add_fault("reset", path=r"/services$", watch=False, times=2)
        self.fake.add_fault("status", code=429, retry_after=1, path=r"/secrets$", watch=False)
        service = yield self.start_service()
        self.assertEqual(names(self.store, "Ingress"), {("default", "web")})
        self.assertEqual(self.reflector(service, "Ingress").failures, 3)
        self.assertEqual(self.reflector(service, "Service").failures, 2)
        # urllib3 retries are off: each failure is one request, and ours are spaced out
        lists = self.fake.calls("GET", r"^/apis/networking.k8s.io/v1/ingresses$", watch=False)
        self.assertEqual(len(lists), 4)

    @defer.inlineCallbacks
    def test_api_outage_keeps_store_then_converges(self):
        cluster = self.fake.cluster
        populate(cluster)
        service = yield self.start_service()
        before = self.store.snapshot()
        self.fake.stop()
        # changes made while the apiserver does not answer
        cluster.apply(fakeapi.ingress("during-outage"))
        cluster.remove("Ingress", "team-b", "api")
        cluster.remove("Secret", "team-a", "basic-auth")
        yield sleep(0.8)
        self.assertEqual(self.store.snapshot(), before)  # the last content is kept
        self.assertTrue(self.store.synced)
        failures = self.reflector(service, "Ingress").failures
        self.assertGreaterEqual(failures, 1)
        self.fake.start()  # same port
        yield wait_until(lambda: names(self.store, "Ingress") == {
            ("team-a", "web"), ("default", "during-outage")}, what="convergence")
        yield wait_until(lambda: names(self.store, "Secret") == {("team-a", "web-tls")})
        # history was still there: re-watched from the last version, no re-list
        self.assertEqual(self.reflector(service, "Ingress").lists, 1)

    @defer.inlineCallbacks
    def test_api_outage_with_compaction_relists(self):
        cluster = self.fake.cluster
        populate(cluster)
        service = yield self.start_service()
        self.fake.stop()
        cluster.remove("Ingress", "team-b", "api")
        cluster.compact()
        yield sleep(0.3)
        self.fake.start()
        yield wait_until(lambda: names(self.store, "Ingress") == {("team-a", "web")})
        self.assertEqual(self.reflector(service, "Ingress").lists, 2)
        self.assertEqual(self.reflector(service, "Ingress").expired, 1)

    @defer.inlineCallbacks
    def test_slow_apiserver_does_not_block_the_reactor(self):
        self.fake.add_fault("delay", seconds=1.0, path=r"/ingresses$", watch=False)
        ticks = []
        from twisted.internet import task
        loop = task.LoopingCall(lambda: ticks.append(time.monotonic()))
        loop.start(0.05)
        self.addCleanup(loop.stop)
        started = time.monotonic()
        yield self.start_service()
        self.assertGreaterEqual(time.monotonic() - started, 1.0)
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        self.assertLess(max(gaps), 0.5)


class ReflectorUnitTests(unittest.TestCase):
    """One Reflector with a fixed jitter, for the timing-sensitive cases."""

    timeout = 20

    def setUp(self) -> None:
        self.fake = FakeAPIServer(bookmark_interval=0.2).start()
        self.addCleanup(self.fake.stop)
        self.configuration = load_configuration(self.fake.write_kubeconfig(self.mktemp()))
        self.pool = _DaemonThreadPool(0, 2)
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.store = ObjectStore()

    def make(self, kind: str = "Ingress", **timings) -> Reflector:
        from kubernetes import client

        sink = _Sink(self.store)
        reflector = Reflector(kind, client.ApiClient(self.configuration), sink, reactor,
                              timings=KubeTimings(**dict(FAST.__dict__, **timings)),
                              rng=lambda: 0.0)
        self.pool.callInThread(reflector.run)
        self.addCleanup(reflector.stop)
        return reflector

    @defer.inlineCallbacks
    def test_hung_watch_times_out_and_rewatches(self):
        self.fake.add_fault("hang", seconds=30, path=r"/ingresses$", watch=True)
        reflector = self.make(watch_timeout=1, watch_read_slack=0.5)
        yield wait_until(lambda: reflector.watches >= 1)
        self.fake.cluster.apply(fakeapi.ingress("web"))
        started = time.monotonic()
        yield wait_until(lambda: ("default", "web") in self.store.snapshot()["Ingress"],
                         timeout=6)
        self.assertGreaterEqual(reflector.failures, 1)  # the read timeout
        self.assertLess(time.monotonic() - started, 4)

    @defer.inlineCallbacks
    def test_clean_watch_end_rewatches_from_last_version(self):
        reflector = self.make(watch_timeout=1)
        yield wait_until(lambda: reflector.watches >= 3, timeout=6, what="re-watches")
        self.assertEqual(reflector.failures, 0)
        self.assertEqual(reflector.lists, 1)
        watches = self.fake.calls("GET", r"/ingresses$", watch=True)
        self.assertEqual(watches[0].query["timeoutSeconds"], "1")

    @defer.inlineCallbacks
    def test_empty_stream_closing_at_once_backs_off(self):
        self.fake.add_fault("close_after", events=0, path=r"/ingresses$", watch=True, times=3)
        reflector = self.make(backoff_initial=0.2, backoff_max=1)
        yield wait_until(lambda: reflector.watches >= 4, timeout=6)
        self.assertEqual(reflector.failures, 3)

    @defer.inlineCallbacks
    def test_stop_unblocks_an_open_watch(self):
        reflector = self.make(watch_timeout=60, watch_read_slack=60)
        yield wait_until(lambda: reflector.watches >= 1)
        yield sleep(0.1)
        started = time.monotonic()
        reflector.stop()
        yield wait_until(reflector.done.is_set, timeout=2)
        self.assertLess(time.monotonic() - started, 1.0)


class _Sink:
    def __init__(self, store: ObjectStore):
        self.store = store

    def replace(self, kind, items):
        self.store.replace_packed("kubernetes", kind, items)

    def apply(self, kind, event_type, obj):
        self.store.apply("kubernetes", kind, event_type, obj)


def test_slim_drops_managed_fields_and_the_last_applied_copy():
    from ingressd.providers.kube.reflector import slim

    obj = {"kind": "Ingress", "metadata": {
        "name": "x", "managedFields": [{"manager": "kubectl"}],
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...huge...}",
                        "nginx.ingress.kubernetes.io/limit-rps": "5"}}}
    assert slim(obj)["metadata"] == {"name": "x", "annotations": {"nginx.ingress.kubernetes.io/limit-rps": "5"}}
    assert slim({"kind": "Secret"}) == {"kind": "Secret"}


def test_slim_keeps_what_translation_reads_of_the_dependencies():
    """A Service, EndpointSlice and Secret as a cluster serves them (uid, owner, target
    references, node, zone) translate to the same configuration slimmed as whole."""
    import base64
    import copy

    from ingressd.providers.kube.reflector import slim
    from ingressd.config.store import pack
    from ingressd.config.translate import translate

    try:
        from tests.harness import INGRESS_CLASS, ingress, service
    except ImportError:
        from harness import INGRESS_CLASS, ingress, service
    cluster_meta = {"uid": "0d6c1f0e-5b8e-4a57-9b1f-6a1f0b7f2a11", "resourceVersion": "812",
                    "generation": 3, "creationTimestamp": "2026-01-02T03:04:05Z",
                    "ownerReferences": [{"kind": "Service", "name": "web", "uid": "x"}],
                    "finalizers": ["example.com/hold"]}
    svc, endpoint_slice = service("web", [("http", 80, 8080)], endpoints=("10.0.0.1", "10.0.0.2"))
    for endpoint in endpoint_slice["endpoints"]:
        endpoint.update(nodeName="node-1", zone="a", targetRef={"kind": "Pod", "name": "web-1", "uid": "y"},
                        hints={"forZones": [{"name": "a"}]})
    endpoint_slice["endpoints"].append({"addresses": ["10.0.0.3"], "conditions": {"ready": False}})
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": "users", "namespace": "default"},
              "data": {"auth": base64.b64encode(b"user:{PLAIN}pass").decode()}}
    for obj in (svc, endpoint_slice, secret):
        obj["metadata"].update(copy.deepcopy(cluster_meta))
    objects = [INGRESS_CLASS, svc, endpoint_slice, secret,
               ingress("site", [("a.example", [("/", "Prefix", "web", 80)])],
                       annotations={"nginx.ingress.kubernetes.io/auth-type": "basic",
                                    "nginx.ingress.kubernetes.io/auth-secret": "users"})]

    def snapshot(objs):
        out: dict = {}
        for obj in objs:
            meta = obj["metadata"]
            out.setdefault(obj["kind"], {})[(meta.get("namespace", ""), meta["name"])] = pack(obj)
        return out

    slimmed = [slim(copy.deepcopy(obj), obj["kind"]) for obj in objects]
    assert "uid" not in slimmed[1]["metadata"] and "targetRef" not in slimmed[2]["endpoints"][0]
    assert slimmed[4]["metadata"] == objects[4]["metadata"]  # an Ingress keeps its metadata
    from ingressd.plugin_manager import load_plugins
    from ingressd.config.translate import TranslateSettings

    declared = load_plugins().annotations  # auth-type is honoured only where its plugin is loaded
    whole = translate(snapshot(objects), TranslateSettings(), declared)
    slim_config = translate(snapshot(slimmed), TranslateSettings(), declared)
    assert whole.secrets and not whole.rejections
    assert len(whole.routes[0].backend.endpoints) == 2
    assert slim_config == whole
