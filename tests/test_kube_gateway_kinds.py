"""The Gateway API kinds and Namespaces in cluster mode, against the fake apiserver: LISTed and
WATCHed into the store (the Gateway API source registers them), a status subresource as the
real server has with the CRDs installed, and a cluster without the CRDs still syncs."""

from __future__ import annotations

import json
import urllib.request

from twisted.internet import defer, reactor
from twisted.trial import unittest

from ingressd.config.store import ObjectStore
from ingressd.providers.kube.reflector import KubeTimings
from ingressd.providers.kube.service import KubernetesService

try:
    from tests import fakeapi
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import fakeapi

GATEWAY_GROUP = "gateway.networking.k8s.io"


class GatewayKindsTests(unittest.TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.fake = fakeapi.FakeAPIServer(bookmark_interval=0.2).start()
        self.addCleanup(self.fake.stop)
        self.kubeconfig = self.fake.write_kubeconfig(self.mktemp())
        self.store = ObjectStore()

    @defer.inlineCallbacks
    def start_service(self, **timings):
        service = KubernetesService({"kubernetes": True, "kubeconfig": self.kubeconfig}, self.store, reactor,
                                    timings=KubeTimings(**dict(fakeapi.FAST_TIMINGS, **timings)),
                                    identity="test-replica")
        service.startService()
        self.addCleanup(service.stopService)
        yield fakeapi.wait_until(lambda: self.store.synced, what="the first sync")
        return service

    def reflector(self, service, kind):
        return next(r for r in service.reflectors if r.kind == kind and r.sink is service.sink)

    @defer.inlineCallbacks
    def test_listed_and_watched_into_the_store(self):
        cluster = self.fake.cluster
        cluster.apply(fakeapi.gateway_class())
        cluster.apply(fakeapi.gateway("gw"))
        cluster.apply(fakeapi.http_route("first"))
        cluster.apply(fakeapi.namespace("team-a", {"env": "prod"}))
        service = yield self.start_service()
        snapshot = self.store.snapshot()
        self.assertEqual(set(snapshot["GatewayClass"]), {("", "ingressd")})
        self.assertEqual(set(snapshot["Gateway"]), {("default", "gw")})
        self.assertEqual(set(snapshot["HTTPRoute"]), {("default", "first")})
        self.assertEqual(set(snapshot["GRPCRoute"]), set())
        self.assertEqual(set(snapshot["ReferenceGrant"]), set())
        route = self.store.get("HTTPRoute", ("default", "first"))
        self.assertEqual((route["kind"], route["apiVersion"]), ("HTTPRoute", f"{GATEWAY_GROUP}/v1"))
        self.assertEqual(route["spec"]["hostnames"], ["app.example.com"])
        namespace = self.store.get("Namespace", ("", "team-a"))
        self.assertEqual(namespace["metadata"], {"name": "team-a", "labels": {"env": "prod"}})  # slimmed
        for kind in ("GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "TLSRoute", "BackendTLSPolicy", "ReferenceGrant", "Namespace"):
            self.assertEqual(self.reflector(service, kind).lists, 1, kind)
        self.assertEqual(len(self.fake.calls("GET", rf"^/apis/{GATEWAY_GROUP}/v1beta1/referencegrants$",
                                             watch=False)), 1)
        # a watch event
        cluster.apply(fakeapi.http_route("second", host="other.example"))
        yield fakeapi.wait_until(lambda: ("default", "second") in self.store.snapshot()["HTTPRoute"],
                                 what="the watched HTTPRoute")
        cluster.delete("httproutes", "default", "first")
        yield fakeapi.wait_until(lambda: ("default", "first") not in self.store.snapshot()["HTTPRoute"],
                                 what="the deleted HTTPRoute gone")

    @defer.inlineCallbacks
    def test_a_cluster_without_the_crds_syncs_and_reads_them_once_installed(self):
        self.fake.absent_groups.add(GATEWAY_GROUP)
        self.fake.cluster.apply(fakeapi.http_route("early"))
        self.fake.cluster.apply(fakeapi.ingress("web"))
        service = yield self.start_service(absent_retry=0.2)
        self.assertEqual(set(self.store.snapshot()["Ingress"]), {("default", "web")})
        self.assertEqual(set(self.store.snapshot()["HTTPRoute"]), set())
        reflector = self.reflector(service, "HTTPRoute")
        self.assertTrue(reflector.absent)
        self.assertEqual(reflector.lists, 0)
        self.assertFalse(self.reflector(service, "Namespace").absent)  # a core kind
        self.fake.absent_groups.clear()  # the CRDs are installed
        yield fakeapi.wait_until(lambda: ("default", "early") in self.store.snapshot()["HTTPRoute"],
                                 what="the HTTPRoute once the CRDs exist")
        self.assertFalse(reflector.absent)

    def test_the_status_subresource_as_with_the_crds_installed(self):
        self.fake.cluster.apply(fakeapi.http_route("r"))
        base = f"{self.fake.url}/apis/{GATEWAY_GROUP}/v1/namespaces/default/httproutes/r"
        status = {"status": {"parents": [{"parentRef": {"name": "gw"}, "controllerName": "ingressd.io/gateway-controller",
                                          "conditions": []}]}}
        request = urllib.request.Request(base + "/status", json.dumps(status).encode(), method="PATCH",
                                         headers={"Content-Type": "application/merge-patch+json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            self.assertEqual(response.status, 200)
        stored = self.fake.cluster.get("httproutes", "default", "r")
        self.assertEqual(stored["status"], status["status"])
        # the main resource ignores status, as the real server does for a kind with the subresource
        spec_write = urllib.request.Request(base, json.dumps({"status": {"parents": []}}).encode(), method="PATCH",
                                            headers={"Content-Type": "application/merge-patch+json"})
        with urllib.request.urlopen(spec_write, timeout=10):
            pass
        self.assertEqual(self.fake.cluster.get("httproutes", "default", "r")["status"], status["status"])
