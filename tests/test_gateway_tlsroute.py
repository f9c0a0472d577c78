"""TLSRoute (config.gateway.tlsroute) and the TLS listeners it attaches to: the SNI names passed
through (``Config.passthrough``), the judged status as the conformance tests expect it
(tlsroute-*.yaml), the merge with an Ingress's hosts, and the passthrough decision
(``tls.passthrough_hosts``, ``tls.passthrough.PassthroughRouter``) without sockets."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import yaml
from twisted.internet import defer, reactor
from twisted.trial import unittest

from ingressd.config.entries import build_table
from ingressd.config.gateway_api import translate
from ingressd.config.model import Backend, Config, Endpoint, ObjectRef, PassthroughRoute, Route, WeightedBackend
from ingressd.config.routing import RouteTable
from ingressd.config.sources import merge
from ingressd.config.store import ObjectStore
from ingressd.features import BuildContext
from ingressd.providers.kube import gateway_status
from ingressd.providers.kube.reflector import KubeTimings
from ingressd.providers.kube.service import STATUS_WRITERS, KubernetesService
from ingressd.tls.passthrough import PassthroughRouter
from ingressd.tls.passthrough_hosts import PassthroughHosts

import fakeapi
from gateway_manifests import snapshot

NS = "gateway-conformance-infra"

BASE = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: ingressd}}
spec: {{controllerName: ingressd.io/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gateway-tlsroute, namespace: {NS}, generation: 2}}
spec:
  gatewayClassName: ingressd
  listeners:
  - name: https
    port: 443
    protocol: TLS
    hostname: "*.example.com"
    allowedRoutes: {{namespaces: {{from: Same}}, kinds: [{{kind: TLSRoute}}]}}
    tls: {{mode: Passthrough}}
---
apiVersion: v1
kind: Service
metadata: {{name: tls-backend, namespace: {NS}}}
spec: {{ports: [{{port: 443, name: https}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: tls-backend, namespace: {NS}, labels: {{kubernetes.io/service-name: tls-backend}}}}
addressType: IPv4
ports: [{{port: 8443, name: https}}]
endpoints: [{{addresses: [127.0.0.1]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: tls-backend-2, namespace: {NS}}}
spec: {{ports: [{{port: 443, name: https}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: tls-backend-2, namespace: {NS}, labels: {{kubernetes.io/service-name: tls-backend-2}}}}
addressType: IPv4
ports: [{{port: 9443, name: https}}]
endpoints: [{{addresses: [127.0.0.2]}}]
"""


def route(name="tlsroute", hostnames=("abc.example.com",), parent="gateway-tlsroute", backends=None,
          section=None, created="2026-01-01T00:00:00Z"):
    parent_ref = {"name": parent, "namespace": NS}
    if section:
        parent_ref["sectionName"] = section
    return yaml.safe_dump({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "TLSRoute",
        "metadata": {"name": name, "namespace": NS, "generation": 4, "creationTimestamp": created},
        "spec": {"parentRefs": [parent_ref], "hostnames": list(hostnames),
                 "rules": [{"backendRefs": backends if backends is not None
                            else [{"name": "tls-backend", "port": 443}]}]},
    })


def status(config: Config, kind: str, name: str, namespace: str = NS) -> dict:
    return json.loads(dict(config.status)[ObjectRef(kind, namespace, name)].body)


def conditions(config: Config, name: str, parent: int = 0) -> dict:
    found = status(config, "TLSRoute", name)["parents"][parent]["conditions"]
    return {c["type"]: (c["status"], c["reason"]) for c in found}


def listener(config: Config, gateway: str, name: str) -> dict:
    return next(item for item in status(config, "Gateway", gateway)["listeners"] if item["name"] == name)


def gateway(name: str, *listeners: dict) -> str:
    return yaml.safe_dump({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                           "metadata": {"name": name, "namespace": NS},
                           "spec": {"gatewayClassName": "ingressd", "listeners": list(listeners)}})


# -- translation --------------------------------------------------------------------------


def test_simple_same_namespace_passes_the_host_through_to_the_service_endpoints():
    config = translate(snapshot(BASE, route()))
    assert config.routes == ()  # no HTTP route: the host's TLS is never terminated for it
    [item] = config.passthrough
    assert item.host == "abc.example.com" and item.source == ObjectRef("TLSRoute", NS, "tlsroute")
    [member] = item.backends
    assert member.weight == 1 and member.backend.endpoints == (Endpoint("127.0.0.1", 8443),)
    assert conditions(config, "tlsroute") == {"Accepted": ("True", "Accepted"),
                                              "ResolvedRefs": ("True", "ResolvedRefs")}
    assert status(config, "TLSRoute", "tlsroute")["parents"][0]["conditions"][0]["observedGeneration"] == 4
    tls = listener(config, "gateway-tlsroute", "https")
    assert tls["attachedRoutes"] == 1
    assert tls["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "TLSRoute"}]
    assert {c["type"]: c["status"] for c in tls["conditions"]}["Accepted"] == "True"


def test_hostnames_are_intersected_with_the_listeners():
    config = translate(snapshot(BASE, route(hostnames=("abc.example.com", "*.example.com", "test.example.net"))))
    assert [item.host for item in config.passthrough] == ["abc.example.com", "*.example.com"]
    none = translate(snapshot(BASE, route(hostnames=("example.net",))))
    assert none.passthrough == ()
    assert conditions(none, "tlsroute")["Accepted"] == ("False", "NoMatchingListenerHostname")


def test_a_listener_wildcard_narrows_a_wider_route_wildcard():
    config = translate(snapshot(BASE, route(hostnames=("*.com",))))
    assert [item.host for item in config.passthrough] == ["*.example.com"]


def test_without_hostnames_the_route_is_not_accepted():
    config = translate(snapshot(BASE, route(hostnames=())))
    assert config.passthrough == ()
    accepted = conditions(config, "tlsroute")["Accepted"]
    assert accepted[0] == "False" and "hostname" in json.dumps(status(config, "TLSRoute", "tlsroute"))


def test_a_nonexistent_backend_keeps_its_share_and_says_backend_not_found():
    config = translate(snapshot(BASE, route(backends=[{"name": "nonexistent", "port": 443}])))
    [item] = config.passthrough
    assert item.backends == (WeightedBackend(None, 1),)
    assert conditions(config, "tlsroute") == {"Accepted": ("True", "Accepted"),
                                              "ResolvedRefs": ("False", "BackendNotFound")}


def test_an_unknown_backend_kind_is_invalid_kind():
    config = translate(snapshot(BASE, route(backends=[{"group": "unknown.io", "kind": "Thing", "name": "x",
                                                       "port": 443}])))
    assert conditions(config, "tlsroute")["ResolvedRefs"] == ("False", "InvalidKind")


def test_another_namespaces_service_needs_a_reference_grant():
    other = """
apiVersion: v1
kind: Service
metadata: {name: tls-backend, namespace: gateway-conformance-app-backend}
spec: {ports: [{port: 443}]}
"""
    backends = [{"name": "tls-backend", "namespace": "gateway-conformance-app-backend", "port": 443}]
    config = translate(snapshot(BASE, other, route(backends=backends)))
    assert conditions(config, "tlsroute")["ResolvedRefs"] == ("False", "RefNotPermitted")
    grant = f"""
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: grant, namespace: gateway-conformance-app-backend}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: TLSRoute, namespace: {NS}}}]
  to: [{{group: "", kind: Service}}]
"""
    granted = translate(snapshot(BASE, other, grant, route(backends=backends)))
    assert conditions(granted, "tlsroute")["ResolvedRefs"] == ("True", "ResolvedRefs")
    # a grant for HTTPRoutes does not cover a TLSRoute
    http_grant = grant.replace("kind: TLSRoute", "kind: HTTPRoute")
    assert conditions(translate(snapshot(BASE, other, http_grant, route(backends=backends))),
                      "tlsroute")["ResolvedRefs"] == ("False", "RefNotPermitted")


def test_weights_are_kept():
    config = translate(snapshot(BASE, route(backends=[{"name": "tls-backend", "port": 443, "weight": 3},
                                                      {"name": "tls-backend-2", "port": 443, "weight": 1}])))
    assert [member.weight for member in config.passthrough[0].backends] == [3, 1]


def test_http_and_https_listeners_do_not_admit_a_tlsroute():
    gateways = (gateway("http-only", {"name": "http", "port": 80, "protocol": "HTTP"})
                + "---\n" + gateway("https-only", {"name": "https", "port": 443, "protocol": "HTTPS",
                                                    "tls": {"mode": "Terminate", "certificateRefs": [{"name": "c"}]}}))
    config = translate(snapshot(BASE, gateways, route("on-http", parent="http-only"),
                                route("on-https", parent="https-only"),
                                route("no-section", section="nope")))
    assert conditions(config, "on-http")["Accepted"] == ("False", "NotAllowedByListeners")
    assert conditions(config, "on-https")["Accepted"] == ("False", "NotAllowedByListeners")
    assert conditions(config, "no-section")["Accepted"] == ("False", "NoMatchingParent")
    assert config.passthrough == ()
    assert listener(config, "http-only", "http")["attachedRoutes"] == 0


def test_an_httproute_does_not_attach_to_a_tls_listener():
    httproute = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: {NS}}}
spec:
  parentRefs: [{{name: gateway-tlsroute}}]
  hostnames: [abc.example.com]
  rules: [{{backendRefs: [{{name: tls-backend, port: 443}}]}}]
"""
    config = translate(snapshot(BASE, httproute))
    assert config.routes == ()
    parents = status(config, "HTTPRoute", "web")["parents"]
    assert parents[0]["conditions"][0]["reason"] == "NotAllowedByListeners"


def test_a_tls_listener_lists_only_tlsroute_and_says_invalid_route_kinds():
    config = translate(snapshot(BASE, gateway("kinds", {
        "name": "tls-passthrough", "port": 443, "protocol": "TLS", "tls": {"mode": "Passthrough"},
        "allowedRoutes": {"namespaces": {"from": "Same"}, "kinds": [{"kind": "TCPRoute"}, {"kind": "TLSRoute"}]}})))
    tls = listener(config, "kinds", "tls-passthrough")
    assert tls["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "TLSRoute"}]
    assert {c["type"]: (c["status"], c["reason"]) for c in tls["conditions"]}["ResolvedRefs"] == (
        "False", "InvalidRouteKinds")


def test_a_tls_listener_in_terminate_mode_is_not_accepted():
    config = translate(snapshot(BASE, gateway("terminate", {
        "name": "tls-terminate", "port": 443, "protocol": "TLS",
        "tls": {"mode": "Terminate", "certificateRefs": [{"name": "c"}]}})))
    tls = listener(config, "terminate", "tls-terminate")
    assert {c["type"]: (c["status"], c["reason"]) for c in tls["conditions"]}["Accepted"] == (
        "False", "UnsupportedValue")
    assert tls["attachedRoutes"] == 0


def test_https_and_tls_listeners_share_a_port_unless_they_share_a_hostname():
    https = {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "web.example.com",
             "tls": {"mode": "Terminate", "certificateRefs": [{"name": "c"}]}}
    tls = {"name": "tls", "port": 443, "protocol": "TLS", "hostname": "db.example.com",
           "tls": {"mode": "Passthrough"}}
    config = translate(snapshot(BASE, gateway("mixed", https, tls)))
    assert {c["type"]: c["reason"] for c in listener(config, "mixed", "tls")["conditions"]}["Conflicted"] == \
        "NoConflicts"
    same = translate(snapshot(BASE, gateway("same", https, dict(tls, hostname="web.example.com"))))
    assert {c["type"]: c["reason"] for c in listener(same, "same", "tls")["conditions"]}["Conflicted"] == \
        "HostnameConflict"
    http = translate(snapshot(BASE, gateway("http", dict(tls, port=80), {"name": "h", "port": 80,
                                                                          "protocol": "HTTP"})))
    assert {c["type"]: c["reason"] for c in listener(http, "http", "tls")["conditions"]}["Conflicted"] == \
        "ProtocolConflict"


def test_the_oldest_tlsroute_keeps_a_host():
    config = translate(snapshot(BASE, route("newer", created="2026-02-01T00:00:00Z",
                                            backends=[{"name": "tls-backend-2", "port": 443}]),
                                route("older", created="2026-01-01T00:00:00Z")))
    assert [item.source.name for item in config.passthrough] == ["older", "newer"]
    hosts = PassthroughHosts(config.passthrough, lambda backend: backend.service)
    assert hosts.lookup("abc.example.com").pick() == "tls-backend"


# -- merged with an Ingress --------------------------------------------------------------------


def test_an_ingress_host_keeps_its_tls_terminated():
    ingress = Config(routes=(Route("abc.example.com", "/", "Prefix", Backend("default", "web", "80"),
                                   ObjectRef("Ingress", "default", "web")),))
    gateway_fragment = translate(snapshot(BASE, route(hostnames=("abc.example.com", "def.example.com"))))
    merged = merge([ingress, gateway_fragment])
    assert [item.host for item in merged.passthrough] == ["def.example.com"]
    assert any(w.ref == ObjectRef("TLSRoute", NS, "tlsroute") and "abc.example.com" in w.reason
               for w in merged.warnings)


def test_build_table_prepares_the_passthrough_hosts():
    config = translate(snapshot(BASE, route()))
    table, _ = build_table(config, None, BuildContext(settings={}, reactor=None))
    assert table.passthrough is not None and table.passthrough.lookup("abc.example.com") is not None
    empty, _ = build_table(Config(), None, BuildContext(settings={}, reactor=None))
    assert empty.passthrough is None


# -- the SNI look-up ------------------------------------------------------------------------------


def _hosts(*names):
    return PassthroughHosts([PassthroughRoute(name, (WeightedBackend(Backend("ns", name, "443"), 1),),
                                              ObjectRef("TLSRoute", "ns", name)) for name in names],
                            lambda backend: backend.service)


def test_exact_names_then_the_most_specific_wildcard():
    hosts = _hosts("a.example.com", "*.example.com", "*.b.example.com")
    assert hosts.lookup("a.example.com").pick() == "a.example.com"
    assert hosts.lookup("c.example.com").pick() == "*.example.com"
    assert hosts.lookup("x.y.example.com").pick() == "*.example.com"  # any depth, as the Gateway API says
    assert hosts.lookup("c.b.example.com").pick() == "*.b.example.com"
    assert hosts.lookup("example.com") is None
    assert hosts.lookup("b.example.org") is None
    assert len(hosts) == 3


def test_weights_pick_per_connection_and_all_zero_picks_nothing():
    draws = iter([0.1, 0.9])
    route_ = PassthroughRoute("h.example", (WeightedBackend(Backend("ns", "a", "443"), 1),
                                            WeightedBackend(Backend("ns", "b", "443"), 1)),
                              ObjectRef("TLSRoute", "ns", "r"))
    hosts = PassthroughHosts([route_], lambda backend: backend.service, draw=lambda: next(draws))
    assert [hosts.lookup("h.example").pick() for _ in range(2)] == ["a", "b"]
    zero = PassthroughHosts([PassthroughRoute("z.example", (WeightedBackend(Backend("ns", "a", "443"), 0),),
                                              ObjectRef("TLSRoute", "ns", "z"))], lambda backend: backend.service)
    assert zero.lookup("z.example").pick() is None


# -- the passthrough router ------------------------------------------------------------------------


class _State:
    def __init__(self, table):
        self.table = table


class _Transport:
    def __init__(self):
        self.closed = False

    def pauseProducing(self):
        pass

    def loseConnection(self):
        self.closed = True


def _router(hosts, calls):
    said: list = []
    router = PassthroughRouter(_State(RouteTable([], passthrough=hosts)),
                               lambda host, port, factory, timeout: calls.append((host, port)), say=said.append)
    return router, said


def test_a_tlsroute_host_is_spliced_to_its_endpoint():
    config = translate(snapshot(BASE, route()))
    table, _ = build_table(config, None, BuildContext(settings={}, reactor=None))
    calls: list = []
    router, _ = _router(table.passthrough, calls)
    assert router.divert("abc.example.com", _Transport(), b"HELLO") is not None
    assert calls == [("127.0.0.1", 8443)] and router.accepted == 1
    assert router.divert("other.example.org", _Transport(), b"HELLO") is None  # terminated as usual


def test_a_connection_whose_backend_cannot_be_used_is_closed_and_said():
    config = translate(snapshot(BASE, route(backends=[{"name": "nonexistent", "port": 443}])))
    table, _ = build_table(config, None, BuildContext(settings={}, reactor=None))
    calls: list = []
    router, said = _router(table.passthrough, calls)
    client = _Transport()
    assert router.divert("abc.example.com", client, b"HELLO") is not None
    assert calls == [] and client.closed and router.failed == 1
    assert "TLSRoute for abc.example.com" in said[0]


# -- in cluster mode: the judged status written on the TLSRoute (the fake API server) ------------



class ClusterStatusTests(unittest.TestCase):
    timeout = 40

    @defer.inlineCallbacks
    def test_the_tlsroute_is_listed_watched_and_its_parents_status_written(self):
        self.assertIs(STATUS_WRITERS["TLSRoute"], gateway_status.GatewayStatusWriter)
        fake = fakeapi.FakeAPIServer(bookmark_interval=0.2).start()
        self.addCleanup(fake.stop)
        for obj in yaml.safe_load_all(BASE + "---\n" + route()):
            obj["metadata"].pop("generation", None)
            obj["metadata"].pop("creationTimestamp", None)
            fake.cluster.apply(obj)
        folder = tempfile.mkdtemp(prefix="ingressd-tlsroute-")  # not trial's mktemp: nothing left in the checkout
        self.addCleanup(shutil.rmtree, folder, True)
        settings = {"kubernetes": True, "kubeconfig": fake.write_kubeconfig(os.path.join(folder, "kubeconfig")),
                    "election_namespace": "ingressd"}
        store = ObjectStore()
        service = KubernetesService(settings, store, reactor, timings=KubeTimings(**fakeapi.FAST_TIMINGS),
                                    identity="replica-1", environ={})
        service.startService()
        self.addCleanup(service.stopService)
        yield fakeapi.wait_until(lambda: store.synced and service.is_leader, what="synced and leading")
        self.assertEqual(set(store.snapshot()["TLSRoute"]), {(NS, "tlsroute")})
        config = translate(store.snapshot())
        self.assertEqual([item.host for item in config.passthrough], ["abc.example.com"])
        service.config_applied(config)

        def written():
            return (fake.cluster.get("tlsroutes", NS, "tlsroute").get("status") or {}).get("parents")

        yield fakeapi.wait_until(written, what="the TLSRoute's status written")
        [parent] = written()
        self.assertEqual(parent["controllerName"], "ingressd.io/gateway-controller")
        self.assertEqual({c["type"]: (c["status"], c["reason"]) for c in parent["conditions"]},
                         {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")})
        yield fakeapi.wait_until(lambda: (fake.cluster.get("gateways", NS, "gateway-tlsroute").get("status")
                                          or {}).get("listeners"), what="the Gateway's status written")
        listeners = fake.cluster.get("gateways", NS, "gateway-tlsroute")["status"]["listeners"]
        self.assertEqual([(item["name"], item["attachedRoutes"]) for item in listeners], [("https", 1)])


def test_the_shipped_example_is_accepted():
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "etc" / "k8s" / "gateway-api"
    texts = [path.read_text() for path in sorted(folder.glob("*.yaml"))]
    db = "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: default}\nspec: {ports: [{port: 5443}]}\n"
    config = translate(snapshot(*texts, db))
    assert [item.host for item in config.passthrough] == ["db.example.com"]
    parents = json.loads(dict(config.status)[ObjectRef("TLSRoute", "default", "db")].body)["parents"]
    assert parents[0]["parentRef"]["sectionName"] == "tls-passthrough"
    assert {c["type"]: c["status"] for c in parents[0]["conditions"]} == {"Accepted": "True", "ResolvedRefs": "True"}
