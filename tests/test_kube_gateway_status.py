"""The Gateway API status writers: the merge rules (unit), and in cluster mode against the fake
apiserver with ``Config.status`` entries given by the test (standing in for the Gateway API
source's judgement): written once, not rewritten when unchanged, rewritten on change with the
condition times kept or updated, other controllers' route parents kept, nothing written by a
replica that does not lead, a conflict re-read and re-merged, a failure retried."""

from __future__ import annotations

import calendar
import json
import time

from twisted.internet import defer, reactor
from twisted.trial import unittest

from ingressd.config.model import Config, ObjectRef, StatusDocument
from ingressd.config.store import ObjectStore
from ingressd.providers.kube import gateway_status
from ingressd.providers.kube.gateway_status import (DEFAULT_CONTROLLER_NAME, desired_status, rfc3339,
                                                    status_patch, timed_conditions)
from ingressd.providers.kube.leader import micro_time
from ingressd.providers.kube.reflector import KubeTimings
from ingressd.providers.kube.service import STATUS_WRITERS, KubernetesService

try:
    from tests import fakeapi
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import fakeapi

FAST = KubeTimings(**fakeapi.FAST_TIMINGS)
OURS = DEFAULT_CONTROLLER_NAME
OTHER = "example.com/other-controller"
OLD = "2020-01-02T03:04:05Z"
NOW = "2026-12-07T00:00:00Z"


def condition(type_: str, status: str = "True", reason: str | None = None, generation: int = 1,
              message: str = "") -> dict:
    return {"type": type_, "status": status, "reason": reason or type_, "message": message,
            "observedGeneration": generation}


def parent(name: str, controller: str = OURS, conditions: list | None = None, section: str | None = None) -> dict:
    ref = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": name}
    if section:
        ref["sectionName"] = section
    return {"parentRef": ref, "controllerName": controller,
            "conditions": conditions if conditions is not None else [condition("Accepted"),
                                                                      condition("ResolvedRefs")]}


def document(body: dict, generation: int = 1) -> StatusDocument:
    return StatusDocument(generation, json.dumps(body, sort_keys=True))


def with_time(conditions: list, when: str) -> list:
    return [dict(item, lastTransitionTime=when) for item in conditions]


# -- the merge rules ---------------------------------------------------------------------------


class MergeRuleTests(unittest.TestCase):
    def test_rfc3339_is_utc_whole_seconds(self):
        self.assertEqual(rfc3339(0), "1970-01-01T00:00:00Z")
        self.assertEqual(rfc3339(1700000000.9), "2023-11-14T22:13:20Z")

    def test_times_kept_while_the_status_stays(self):
        current = [dict(condition("Accepted"), lastTransitionTime=OLD),
                   dict(condition("Programmed", "False"), lastTransitionTime=OLD)]
        judged = [condition("Accepted", reason="Accepted", message="changed text"), condition("Programmed"),
                  condition("ResolvedRefs")]
        timed = timed_conditions(judged, current, NOW)
        self.assertEqual([item["lastTransitionTime"] for item in timed], [OLD, NOW, NOW])
        self.assertEqual(timed[0]["message"], "changed text")

    def test_gateway_class_unchanged_is_not_written(self):
        judged = {"conditions": [condition("Accepted")]}
        current = {"conditions": with_time(judged["conditions"], OLD)}
        self.assertIsNone(desired_status("GatewayClass", current, judged, OURS, "", NOW))
        # a different observedGeneration is a change
        newer = {"conditions": [condition("Accepted", generation=2)]}
        self.assertEqual(desired_status("GatewayClass", current, newer, OURS, "", NOW),
                         {"conditions": with_time(newer["conditions"], OLD)})

    def test_gateway_listeners_timed_by_name_and_removed_fields_nulled(self):
        listener = {"name": "http", "attachedRoutes": 2, "supportedKinds": [{"kind": "HTTPRoute"}],
                    "conditions": [condition("Accepted"), condition("Programmed")]}
        current = {"addresses": [{"type": "IPAddress", "value": "192.0.2.1"}],
                   "conditions": with_time([condition("Accepted")], OLD),
                   "listeners": [dict(listener, attachedRoutes=1,
                                      conditions=with_time([condition("Accepted"), condition("Programmed", "False")],
                                                           OLD))]}
        judged = {"conditions": [condition("Accepted"), condition("Programmed")], "listeners": [listener]}
        wanted = desired_status("Gateway", current, judged, OURS, "default", NOW)
        self.assertEqual(wanted["conditions"], [dict(condition("Accepted"), lastTransitionTime=OLD),
                                                dict(condition("Programmed"), lastTransitionTime=NOW)])
        self.assertEqual([item["lastTransitionTime"] for item in wanted["listeners"][0]["conditions"]], [OLD, NOW])
        self.assertEqual(wanted["listeners"][0]["attachedRoutes"], 2)
        self.assertNotIn("addresses", wanted)
        self.assertIsNone(status_patch(current, wanted)["addresses"])  # a merge patch removes it

    def test_route_parents_of_other_controllers_kept(self):
        theirs = dict(parent("their-gw", OTHER), conditions=with_time([condition("Accepted")], OLD))
        mine = dict(parent("gw"), conditions=with_time([condition("Accepted"), condition("ResolvedRefs")], OLD))
        current = {"parents": [mine, theirs]}
        self.assertIsNone(desired_status("HTTPRoute", current, {"parents": [parent("gw")]}, OURS, "default", NOW))
        refused = parent("gw", conditions=[condition("Accepted"),
                                           condition("ResolvedRefs", "False", "BackendNotFound")])
        wanted = desired_status("HTTPRoute", current, {"parents": [refused]}, OURS, "default", NOW)
        self.assertEqual(wanted["parents"][0], theirs)
        self.assertEqual([item["lastTransitionTime"] for item in wanted["parents"][1]["conditions"]], [OLD, NOW])
        # a parent no longer ours is dropped; the other controller's stays
        wanted = desired_status("GRPCRoute", current, {"parents": []}, OURS, "default", NOW)
        self.assertEqual(wanted, {"parents": [theirs]})

    def test_route_parent_matched_with_defaults_filled_in(self):
        stored = dict(parent("gw"), conditions=with_time([condition("Accepted")], OLD))
        stored["parentRef"] = {"name": "gw"}  # as a user wrote it: group and kind defaulted
        judged = dict(parent("gw"), conditions=[condition("Accepted", reason="Accepted", message="m")])
        wanted = desired_status("HTTPRoute", {"parents": [stored]}, {"parents": [judged]}, OURS, "default", NOW)
        self.assertEqual(wanted["parents"][0]["conditions"][0]["lastTransitionTime"], OLD)

    def test_every_gateway_kind_with_a_status_has_a_writer(self):
        for kind in ("GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute"):
            self.assertIs(STATUS_WRITERS[kind], gateway_status.GatewayStatusWriter)
        self.assertNotIn("ReferenceGrant", STATUS_WRITERS)


# -- in cluster mode, against the fake apiserver ---------------------------------------------


GATEWAY_STATUS = {"addresses": [{"type": "IPAddress", "value": "192.0.2.10"}],
                  "conditions": [condition("Accepted"), condition("Programmed")],
                  "listeners": [{"name": "http", "attachedRoutes": 1,
                                 "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                                 "conditions": [condition("Accepted"), condition("Programmed"),
                                                condition("ResolvedRefs"), condition("Conflicted", "False",
                                                                                     "NoConflicts")]}]}
ROUTE_STATUS = {"parents": [parent("gw")]}
CLASS_REF = ObjectRef("GatewayClass", "", "ingressd")
GATEWAY_REF = ObjectRef("Gateway", "default", "gw")
ROUTE_REF = ObjectRef("HTTPRoute", "default", "web")


def judged(gateway_class=None, gateway=None, route=None) -> Config:
    entries = []
    if gateway_class is not None:
        entries.append((CLASS_REF, document(gateway_class)))
    if gateway is not None:
        entries.append((GATEWAY_REF, document(gateway)))
    if route is not None:
        entries.append((ROUTE_REF, document(route)))
    return Config(status=tuple(entries))


class ClusterTests(unittest.TestCase):
    timeout = 40

    def setUp(self) -> None:
        self.fake = fakeapi.FakeAPIServer(bookmark_interval=0.2).start()
        self.addCleanup(self.fake.stop)
        self.kubeconfig = self.fake.write_kubeconfig(self.mktemp())
        cluster = self.fake.cluster
        cluster.apply(fakeapi.gateway_class())
        cluster.apply(fakeapi.gateway("gw"))
        cluster.apply(fakeapi.http_route("web"))

    @defer.inlineCallbacks
    def start(self, identity: str = "replica-1", wait_leader: bool = True, **settings):
        settings = dict({"kubernetes": True, "kubeconfig": self.kubeconfig, "election_namespace": "ingressd"},
                        **settings)
        self.store = ObjectStore()
        service = KubernetesService(settings, self.store, reactor, timings=FAST, identity=identity, environ={})
        service.startService()
        self.addCleanup(service.stopService)
        yield fakeapi.wait_until(lambda: self.store.synced, what="the first sync")
        if wait_leader:
            yield fakeapi.wait_until(lambda: service.is_leader, what=f"{identity} leading")
        return service

    def writes(self, plural: str = "httproutes", name: str = "web") -> list:
        return [call for call in self.fake.calls("PATCH", rf"/{plural}/{name}/status$") if call.status == 200]

    def status(self, plural: str = "httproutes", namespace: str = "default", name: str = "web") -> dict:
        return self.fake.cluster.get(plural, namespace, name).get("status") or {}

    def store_rv(self, kind: str, key: tuple) -> str | None:
        obj = self.store.get(kind, key)
        return obj and obj["metadata"]["resourceVersion"]

    @defer.inlineCallbacks
    def settle(self):
        """Long enough for a periodic pass and the watch echoes of any write."""
        yield fakeapi.sleep(FAST.status_resync + 0.5)

    @defer.inlineCallbacks
    def test_written_once_then_not_rewritten_when_unchanged(self):
        service = yield self.start()
        started = time.time()
        config = judged({"conditions": [condition("Accepted")]}, GATEWAY_STATUS, ROUTE_STATUS)
        service.config_applied(config)
        yield fakeapi.wait_until(lambda: self.writes() and self.writes("gateways", "gw")
                                 and self.writes("gatewayclasses", "ingressd"), what="the three writes")
        gateway_class = self.status("gatewayclasses", "", "ingressd")
        self.assertEqual(gateway_status.without_times(gateway_class), {"conditions": [condition("Accepted")]})
        when = gateway_class["conditions"][0]["lastTransitionTime"]
        self.assertRegex(when, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        # the time of the write (a generous bound: no timing is asserted)
        self.assertLess(abs(calendar.timegm(time.strptime(when, "%Y-%m-%dT%H:%M:%SZ")) - started), 600)
        self.assertEqual(gateway_status.without_times(self.status("gateways", "default", "gw")), GATEWAY_STATUS)
        self.assertEqual(gateway_status.without_times(self.status()), ROUTE_STATUS)
        request = self.writes()[0]
        self.assertEqual(request.headers["content-type"], "application/merge-patch+json")
        self.assertIn("resourceVersion", request.body["metadata"])  # the optimistic lock
        # the same judgement again, the watch echoes, periodic passes: no second write
        for _ in range(3):
            service.config_applied(config)
            yield fakeapi.sleep(0.1)
        yield self.settle()
        self.assertEqual((len(self.writes()), len(self.writes("gateways", "gw")),
                          len(self.writes("gatewayclasses", "ingressd"))), (1, 1, 1))
        # a judged object not in the cluster is skipped, and a kind without a writer ignored
        missing = ObjectRef("HTTPRoute", "default", "missing")
        service.config_applied(Config(status=config.status + ((missing, document(ROUTE_STATUS)),)))
        yield self.settle()
        self.assertEqual(self.fake.calls("PATCH", r"/httproutes/missing/status$"), [])

    @defer.inlineCallbacks
    def test_rewritten_on_change_keeping_the_times_of_unchanged_conditions(self):
        # the Gateway already carries a status from earlier (another leader, a restart)
        self.fake.cluster.patch("gateways", "default", "gw", {"status": {
            "conditions": with_time(GATEWAY_STATUS["conditions"], OLD),
            "listeners": [dict(GATEWAY_STATUS["listeners"][0],
                               conditions=with_time(GATEWAY_STATUS["listeners"][0]["conditions"], OLD))],
            "addresses": GATEWAY_STATUS["addresses"]}}, subresource="status")
        service = yield self.start()
        service.config_applied(judged(gateway=GATEWAY_STATUS))
        yield self.settle()
        self.assertEqual(self.writes("gateways", "gw"), [])  # already as judged: nothing written
        # Programmed turns False; the listener's attachedRoutes changes: rewritten
        changed = json.loads(json.dumps(GATEWAY_STATUS))
        changed["conditions"][1] = condition("Programmed", "False", "AddressNotUsable")
        changed["listeners"][0]["attachedRoutes"] = 0
        service.config_applied(judged(gateway=changed))
        yield fakeapi.wait_until(lambda: self.writes("gateways", "gw"), what="the rewrite")
        status = self.status("gateways", "default", "gw")
        self.assertEqual(gateway_status.without_times(status), changed)
        self.assertEqual(status["conditions"][0]["lastTransitionTime"], OLD)  # Accepted stayed True
        self.assertNotEqual(status["conditions"][1]["lastTransitionTime"], OLD)  # Programmed changed
        self.assertEqual({item["lastTransitionTime"] for item in status["listeners"][0]["conditions"]}, {OLD})
        # someone else overwrites the status: put back
        self.fake.cluster.patch("gateways", "default", "gw", {"status": {"conditions": []}}, subresource="status")
        yield fakeapi.wait_until(lambda: gateway_status.without_times(self.status("gateways", "default", "gw"))
                                 == changed, what="the status restored")
        self.assertEqual(len(self.writes("gateways", "gw")), 2)

    @defer.inlineCallbacks
    def test_other_controllers_parents_are_kept(self):
        theirs = dict(parent("their-gw", OTHER), conditions=with_time([condition("Accepted")], OLD))
        self.fake.cluster.patch("httproutes", "default", "web", {"status": {"parents": [theirs]}},
                                subresource="status")
        service = yield self.start()
        service.config_applied(judged(route=ROUTE_STATUS))
        yield fakeapi.wait_until(lambda: len(self.status().get("parents") or ()) == 2, what="our parent added")
        parents = self.status()["parents"]
        self.assertEqual(parents[0], theirs)
        self.assertEqual(gateway_status.without_times(parents[1]), ROUTE_STATUS["parents"][0])
        # our parent goes (the route no longer names our Gateway): theirs stays
        service.config_applied(judged(route={"parents": []}))
        yield fakeapi.wait_until(lambda: self.status()["parents"] == [theirs], what="our parent removed")

    @defer.inlineCallbacks
    def test_a_route_no_longer_judged_loses_our_parents_only(self):
        theirs = dict(parent("their-gw", OTHER), conditions=with_time([condition("Accepted")], OLD))
        self.fake.cluster.patch("httproutes", "default", "web", {"status": {"parents": [theirs]}},
                                subresource="status")
        service = yield self.start()
        service.config_applied(judged(route=ROUTE_STATUS))
        yield fakeapi.wait_until(lambda: len(self.status().get("parents") or ()) == 2, what="our parent added")
        # the route now names no Gateway of ours: the configuration has no status for it
        service.config_applied(Config())
        yield fakeapi.wait_until(lambda: self.status()["parents"] == [theirs], what="our parent removed")
        yield fakeapi.wait_until(lambda: not service.status_writers["HTTPRoute"]._documents,
                                 what="the route forgotten")
        yield self.settle()
        self.assertEqual(len(self.writes()), 2)

    @defer.inlineCallbacks
    def test_a_deleted_route_is_forgotten(self):
        service = yield self.start()
        service.config_applied(judged(route=ROUTE_STATUS))
        yield fakeapi.wait_until(lambda: self.writes(), what="the write")
        self.fake.cluster.delete("httproutes", "default", "web")
        yield fakeapi.wait_until(lambda: self.store.get("HTTPRoute", ("default", "web")) is None,
                                 what="the deletion seen")
        service.config_applied(Config())
        self.assertEqual(service.status_writers["HTTPRoute"]._documents, {})
        yield self.settle()
        self.assertEqual(len(self.fake.calls("PATCH")), 1)

    @defer.inlineCallbacks
    def test_a_new_leader_rewrites_nothing_unchanged_and_catches_up(self):
        config = judged({"conditions": [condition("Accepted")]}, GATEWAY_STATUS, ROUTE_STATUS)
        first = yield self.start("replica-1")
        first.config_applied(config)
        yield fakeapi.wait_until(lambda: self.writes() and self.writes("gateways", "gw")
                                 and self.writes("gatewayclasses", "ingressd"), what="the three writes")
        second = yield self.start("replica-2", wait_leader=False)
        changed = judged({"conditions": [condition("Accepted")]}, GATEWAY_STATUS,
                         {"parents": [parent("gw", conditions=[condition("Accepted", "False", "NotAllowedByListeners"),
                                                                condition("ResolvedRefs")])]})
        second.config_applied(changed)  # the follower's configuration is newer: not written while it follows
        yield fakeapi.sleep(0.5)
        self.assertEqual(len(self.writes()), 1)
        yield first.stopService()  # releases the Lease
        yield fakeapi.wait_until(lambda: second.is_leader, what="replica-2 leading")
        yield fakeapi.wait_until(lambda: len(self.writes()) == 2, what="the new leader's write")
        self.assertEqual(self.status()["parents"][0]["conditions"][0]["reason"], "NotAllowedByListeners")
        yield self.settle()
        self.assertEqual((len(self.writes()), len(self.writes("gateways", "gw")),
                          len(self.writes("gatewayclasses", "ingressd"))), (2, 1, 1))

    @defer.inlineCallbacks
    def test_a_conflict_is_read_again_and_merged_again(self):
        service = yield self.start()
        rv = self.store_rv("HTTPRoute", ("default", "web"))
        # the watch lags: the store keeps the old version while another controller writes its parent
        self.fake.cluster.pause_events()
        theirs = dict(parent("their-gw", OTHER), conditions=with_time([condition("Accepted")], OLD))
        self.fake.cluster.patch("httproutes", "default", "web", {"status": {"parents": [theirs]}},
                                subresource="status")
        self.assertEqual(self.store_rv("HTTPRoute", ("default", "web")), rv)
        service.config_applied(judged(route=ROUTE_STATUS))
        yield fakeapi.wait_until(lambda: self.writes(), what="the write after the conflict")
        self.assertEqual([call.status for call in self.fake.calls("PATCH", r"/httproutes/web/status$")], [409, 200])
        self.assertEqual(len(self.fake.calls("GET", r"/httproutes/web$")), 1)  # read again once
        self.assertEqual(service.status_writers["HTTPRoute"].conflicts, 1)
        parents = self.status()["parents"]
        self.assertEqual(parents[0], theirs)
        self.assertEqual(gateway_status.without_times(parents[1]), ROUTE_STATUS["parents"][0])
        # the periodic pass while the store still lags, then the watch's two versions: no write
        yield self.settle()
        self.fake.cluster.resume_events()
        yield self.settle()
        self.assertEqual([call.status for call in self.fake.calls("PATCH", r"/httproutes/web/status$")], [409, 200])

    @defer.inlineCallbacks
    def test_conflicts_without_end_give_up_and_are_retried_later(self):
        service = yield self.start()
        self.fake.add_fault("status", code=409, method="PATCH", path=r"/httproutes/web/status$",
                            times=gateway_status.MAX_ATTEMPTS)
        service.config_applied(judged(route=ROUTE_STATUS))
        # five refusals in a row: given up (logged); the periodic pass writes it
        yield fakeapi.wait_until(lambda: self.writes(), timeout=15, what="the write on a later pass")
        codes = [call.status for call in self.fake.calls("PATCH", r"/httproutes/web/status$")]
        self.assertEqual(codes, [409] * gateway_status.MAX_ATTEMPTS + [200])
        self.assertEqual(gateway_status.without_times(self.status()), ROUTE_STATUS)

    @defer.inlineCallbacks
    def test_a_failure_is_logged_and_retried(self):
        service = yield self.start()
        self.fake.add_fault("status", code=500, method="PATCH", path=r"/gateways/gw/status$")
        service.config_applied(judged(gateway=GATEWAY_STATUS))
        yield fakeapi.wait_until(lambda: self.writes("gateways", "gw"), timeout=15, what="the retried write")
        self.assertEqual([call.status for call in self.fake.calls("PATCH", r"/gateways/gw/status$")], [500, 200])
        self.assertTrue(service.running)

    @defer.inlineCallbacks
    def test_only_the_leader_writes(self):
        self.fake.cluster.create("leases", {"metadata": {"name": "ingressd-leader"}, "spec": {
            "holderIdentity": "somebody-else", "leaseDurationSeconds": 60,
            "renewTime": micro_time().isoformat()}}, "ingressd")
        service = yield self.start(wait_leader=False)
        service.config_applied(judged({"conditions": [condition("Accepted")]}, GATEWAY_STATUS, ROUTE_STATUS))
        yield fakeapi.sleep(0.8)
        self.assertFalse(service.is_leader)
        self.assertEqual(self.fake.calls("PATCH"), [])

    @defer.inlineCallbacks
    def test_the_controller_name_setting(self):
        mine = "example.net/my-ingressd"
        # an entry under the default name belongs to another controller now
        stale = dict(parent("gw", OURS), conditions=with_time([condition("Accepted")], OLD))
        self.fake.cluster.patch("httproutes", "default", "web", {"status": {"parents": [stale]}},
                                subresource="status")
        service = yield self.start(gateway_controller_name=mine)
        route = {"parents": [dict(parent("gw", mine))]}
        service.config_applied(judged(route=route))
        yield fakeapi.wait_until(lambda: len(self.status().get("parents") or ()) == 2, what="our parent added")
        self.assertEqual([item["controllerName"] for item in self.status()["parents"]], [OURS, mine])


# -- the fake apiserver's status subresource, as the real one behaves -----------------------


class FakeStatusSubresourceTests(unittest.TestCase):
    def setUp(self) -> None:
        self.cluster = fakeapi.FakeCluster()
        self.cluster.apply(fakeapi.http_route("web"))

    def test_a_merge_patch_with_a_stale_resource_version_conflicts(self):
        rv = self.cluster.get("httproutes", "default", "web")["metadata"]["resourceVersion"]
        self.cluster.patch("httproutes", "default", "web", {"spec": {"hostnames": ["b.example"]}})
        with self.assertRaises(fakeapi.APIError) as raised:
            self.cluster.patch("httproutes", "default", "web",
                               {"metadata": {"resourceVersion": rv}, "status": ROUTE_STATUS_TIMED},
                               subresource="status")
        self.assertEqual(raised.exception.code, 409)
        current = self.cluster.get("httproutes", "default", "web")["metadata"]["resourceVersion"]
        written = self.cluster.patch("httproutes", "default", "web",
                                     {"metadata": {"resourceVersion": current}, "status": ROUTE_STATUS_TIMED},
                                     subresource="status")
        self.assertEqual(written["status"], ROUTE_STATUS_TIMED)
        self.assertNotEqual(written["metadata"]["resourceVersion"], current)  # bumped
        self.assertEqual(written["metadata"]["generation"], 2)  # status does not bump the generation
        self.assertEqual((self.cluster.log[-1].type, self.cluster.log[-1].obj["status"]),
                         ("MODIFIED", ROUTE_STATUS_TIMED))  # a watch event

    def test_status_writes_change_only_the_status(self):
        self.cluster.patch("httproutes", "default", "web",
                           {"spec": {"hostnames": ["x.example"]}, "status": ROUTE_STATUS_TIMED}, subresource="status")
        stored = self.cluster.get("httproutes", "default", "web")
        self.assertEqual(stored["spec"]["hostnames"], ["app.example.com"])
        self.assertEqual(stored["status"], ROUTE_STATUS_TIMED)

    def test_the_crd_schema_checks_conditions_and_parents(self):
        bad = [{"parents": [{"parentRef": {"name": "gw"}, "controllerName": OURS,
                             "conditions": [condition("Accepted")]}]},  # no lastTransitionTime
               {"parents": [{"parentRef": {"name": "gw"}, "conditions": []}]},  # no controllerName
               {"parents": [dict(parent("gw"), conditions=with_time([condition("Accepted", "Yes")], OLD))]},
               {"parents": [dict(parent("gw"), conditions=with_time([condition("Accepted")], "yesterday"))]},
               {"parents": [dict(parent(f"gw{i}"), conditions=with_time([condition("Accepted")], OLD))
                            for i in range(33)]}]
        for status in bad:
            with self.assertRaises(fakeapi.APIError) as raised:
                self.cluster.patch("httproutes", "default", "web", {"status": status}, subresource="status")
            self.assertEqual(raised.exception.code, 422, status)
        self.cluster.apply(fakeapi.gateway("gw"))
        with self.assertRaises(fakeapi.APIError):
            self.cluster.patch("gateways", "default", "gw", {"status": {"listeners": [{"name": "http"}]}},
                               subresource="status")


ROUTE_STATUS_TIMED = {"parents": [dict(parent("gw"), conditions=with_time(parent("gw")["conditions"], OLD))]}
