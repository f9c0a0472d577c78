"""ListenerSet (gateway.networking.k8s.io/v1, standard channel since v1.5): listeners a Gateway
admits through ``spec.allowedListeners`` (config.gateway.listeners ``judge_listener_set``), routes
attached to them as a parent of their own, their status, the Gateway's ``attachedListenerSets``;
ported from the conformance cases ListenerSetHTTPRouting, ListenerSetHostnameConflict and
ListenerSetDefaultNotAllowed (kubernetes-sigs/gateway-api ``conformance/tests/listenerset-*``),
table-style over their YAML; one end-to-end case against ``twistd ingressd`` in file mode."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import pytest
import yaml
from twisted.internet import defer, reactor
from twisted.trial import unittest

from backends import Backend
from harness import Ingressd, service, wait_for, write_manifests
from ingressd.config.gateway_api import translate
from ingressd.config.kinds import GATEWAY_KINDS
from ingressd.config.store import ObjectStore
from ingressd.providers.kube import gateway_status
from ingressd.providers.kube.reflector import KubeTimings
from ingressd.providers.kube.service import KubernetesService

try:
    from tests import fakeapi
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import fakeapi

from test_gateway_translate import BASE, conditions, snapshot, status

INFRA = "gateway-conformance-infra"

# conformance/tests/listenerset-http-routing.yaml (the class name filled in)
ROUTING = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gateway-with-listener-sets-http-routing, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: ingressd
  listeners:
  - name: gateway-listener-1
    port: 80
    protocol: HTTP
    hostname: gateway-listener-1.com
    allowedRoutes:
      namespaces: {from: All}
  - name: gateway-listener-2
    port: 80
    protocol: HTTP
    hostname: gateway-listener-2.com
    allowedRoutes:
      namespaces: {from: All}
  allowedListeners:
    namespaces: {from: All}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: listener-set-http-routing-1, namespace: gateway-conformance-infra}
spec:
  parentRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gateway-with-listener-sets-http-routing, namespace: gateway-conformance-infra}
  listeners:
  - name: listener-set-http-routing-1-listener-1
    port: 80
    protocol: HTTP
    hostname: listener-set-http-routing-1-listener-1.com
    allowedRoutes:
      namespaces: {from: All}
  - name: listener-set-http-routing-1-listener-2
    port: 80
    protocol: HTTP
    hostname: listener-set-http-routing-1-listener-2.com
    allowedRoutes:
      namespaces: {from: All}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: listener-set-http-routing-2, namespace: gateway-conformance-infra}
spec:
  parentRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gateway-with-listener-sets-http-routing, namespace: gateway-conformance-infra}
  listeners:
  - name: listener-set-http-routing-2-listener-1
    port: 80
    protocol: HTTP
    hostname: listener-set-http-routing-2-listener-1.com
    allowedRoutes:
      namespaces: {from: All}
  - name: listener-set-http-routing-2-listener-2
    port: 80
    protocol: HTTP
    hostname: listener-set-http-routing-2-listener-2.com
    allowedRoutes:
      namespaces: {from: All}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: attaches-to-all-listeners, namespace: gateway-conformance-infra}
spec:
  parentRefs:
  - {name: gateway-with-listener-sets-http-routing, namespace: gateway-conformance-infra}
  - {kind: ListenerSet, group: gateway.networking.k8s.io, name: listener-set-http-routing-1, namespace: gateway-conformance-infra}
  - {kind: ListenerSet, group: gateway.networking.k8s.io, name: listener-set-http-routing-2, namespace: gateway-conformance-infra}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /route}
    backendRefs:
    - {name: infra-backend-v1, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: gateway-route, namespace: gateway-conformance-infra}
spec:
  parentRefs:
  - {name: gateway-with-listener-sets-http-routing, namespace: gateway-conformance-infra}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /gateway-route}
    backendRefs:
    - {name: infra-backend-v2, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: gateway-section-route, namespace: gateway-conformance-infra}
spec:
  parentRefs:
  - {name: gateway-with-listener-sets-http-routing, namespace: gateway-conformance-infra, sectionName: gateway-listener-1}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /gateway-section-route}
    backendRefs:
    - {name: infra-backend-v3, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: listener-set-http-routing-1-route, namespace: gateway-conformance-infra}
spec:
  parentRefs:
  - {kind: ListenerSet, group: gateway.networking.k8s.io, name: listener-set-http-routing-1, namespace: gateway-conformance-infra}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /listener-set-http-routing-1-route}
    backendRefs:
    - {name: infra-backend-v2, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: listener-set-http-routing-1-section-route, namespace: gateway-conformance-infra}
spec:
  parentRefs:
  - {kind: ListenerSet, group: gateway.networking.k8s.io, name: listener-set-http-routing-1, namespace: gateway-conformance-infra,
    sectionName: listener-set-http-routing-1-listener-1}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /listener-set-http-routing-1-section-route}
    backendRefs:
    - {name: infra-backend-v3, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: listener-set-http-routing-2-route, namespace: gateway-conformance-infra}
spec:
  parentRefs:
  - {kind: ListenerSet, group: gateway.networking.k8s.io, name: listener-set-http-routing-2, namespace: gateway-conformance-infra}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /listener-set-http-routing-2-route}
    backendRefs:
    - {name: infra-backend-v2, port: 8080}
"""

# conformance/tests/listenerset-hostname-conflict.yaml
CONFLICT = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gateway-with-listenerset-hostname-conflict, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: ingressd
  allowedListeners:
    namespaces: {from: Same}
  listeners:
  - name: gateway-listener
    port: 80
    protocol: HTTP
    hostname: gateway-listener.com
    allowedRoutes:
      namespaces: {from: All}
  - name: hostname-conflict-with-gateway-listener
    port: 80
    protocol: HTTP
    hostname: hostname-conflict-with-gateway-listener.com
    allowedRoutes:
      namespaces: {from: All}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: listenerset-with-hostname-conflict-with-gateway-1, namespace: gateway-conformance-infra}
spec:
  parentRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gateway-with-listenerset-hostname-conflict,
    namespace: gateway-conformance-infra}
  listeners:
  - name: listener-set-1-listener
    port: 80
    protocol: HTTP
    hostname: listener-set-1-listener.com
    allowedRoutes:
      namespaces: {from: All}
  - name: hostname-conflict-with-gateway-listener
    port: 80
    protocol: HTTP
    hostname: hostname-conflict-with-gateway-listener.com
    allowedRoutes:
      namespaces: {from: All}
  - name: hostname-conflict-with-listener-set-listener
    port: 80
    protocol: HTTP
    hostname: hostname-conflict-with-listener-set-listener.com
    allowedRoutes:
      namespaces: {from: All}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: listenerset-with-hostname-conflict-with-gateway-2, namespace: gateway-conformance-infra}
spec:
  parentRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gateway-with-listenerset-hostname-conflict,
    namespace: gateway-conformance-infra}
  listeners:
  - name: hostname-conflict-with-gateway-listener
    port: 80
    protocol: HTTP
    hostname: hostname-conflict-with-gateway-listener.com
    allowedRoutes:
      namespaces: {from: All}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: listenerset-with-hostname-conflict-with-listener-set-1, namespace: gateway-conformance-infra}
spec:
  parentRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gateway-with-listenerset-hostname-conflict,
    namespace: gateway-conformance-infra}
  listeners:
  - name: listener-set-2-listener
    port: 80
    protocol: HTTP
    hostname: listener-set-2-listener.com
    allowedRoutes:
      namespaces: {from: All}
  - name: hostname-conflict-with-listener-set-listener
    port: 80
    protocol: HTTP
    hostname: hostname-conflict-with-listener-set-listener.com
    allowedRoutes:
      namespaces: {from: All}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: listenerset-with-hostname-conflict-with-listener-set-2, namespace: gateway-conformance-infra}
spec:
  parentRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gateway-with-listenerset-hostname-conflict,
    namespace: gateway-conformance-infra}
  listeners:
  - name: hostname-conflict-with-listener-set-listener
    port: 80
    protocol: HTTP
    hostname: hostname-conflict-with-listener-set-listener.com
    allowedRoutes:
      namespaces: {from: All}
"""

V3 = """
apiVersion: v1
kind: Service
metadata: {name: infra-backend-v3, namespace: gateway-conformance-infra}
spec: {ports: [{port: 8080}]}
"""

NOT_ALLOWED = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gateway-default-does-not-allow-listenerset, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: ingressd
  listeners:
  - {name: gateway-listener, port: 80, protocol: HTTP, hostname: gateway-listener.com,
     allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: listenerset-default-not-allowed, namespace: gateway-conformance-infra}
spec:
  parentRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gateway-default-does-not-allow-listenerset,
              namespace: gateway-conformance-infra}
  listeners:
  - {name: listenerset-default-not-allowed-listener, port: 80, protocol: HTTP,
     hostname: listenerset-default-not-allowed-listener.com, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: on-the-refused-set, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{kind: ListenerSet, name: listenerset-default-not-allowed}]
  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]
"""


def served(config) -> dict:
    """host → {path: backend service}."""
    found: dict = {}
    for route in config.routes:
        found.setdefault(route.host, {})[route.path] = route.backends[0].backend.service \
            if route.backends[0].backend is not None else None
    return found


def listener_status(config, kind, name) -> dict:
    return {item["name"]: (item["attachedRoutes"], conditions(item["conditions"]))
            for item in status(config, kind, INFRA, name)["listeners"]}


ACCEPTED = {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs"),
            "Conflicted": ("False", "NoConflicts"), "Programmed": ("True", "Programmed")}


def test_listener_set_is_a_gateway_api_kind_read_in_both_modes():
    (spec,) = [spec for spec in GATEWAY_KINDS if spec.kind == "ListenerSet"]
    assert (spec.api_version, spec.plural, spec.namespaced, spec.status, spec.optional) == (
        "gateway.networking.k8s.io/v1", "listenersets", True, True, True)


def test_http_routing_through_listener_sets():
    config = translate(snapshot(BASE, V3, ROUTING))
    hosts = served(config)
    for host in ("gateway-listener-1.com", "gateway-listener-2.com"):
        assert hosts[host]["/route"] == "infra-backend-v1" and hosts[host]["/gateway-route"] == "infra-backend-v2"
    assert hosts["gateway-listener-1.com"]["/gateway-section-route"] == "infra-backend-v3"
    assert "/gateway-section-route" not in hosts["gateway-listener-2.com"]
    for host in ("listener-set-http-routing-1-listener-1.com", "listener-set-http-routing-1-listener-2.com",
                 "listener-set-http-routing-2-listener-1.com", "listener-set-http-routing-2-listener-2.com"):
        assert hosts[host]["/route"] == "infra-backend-v1"
        assert "/gateway-route" not in hosts[host] and "/gateway-section-route" not in hosts[host]
    assert hosts["listener-set-http-routing-1-listener-1.com"]["/listener-set-http-routing-1-section-route"] \
        == "infra-backend-v3"
    assert "/listener-set-http-routing-1-section-route" not in hosts["listener-set-http-routing-1-listener-2.com"]
    assert hosts["listener-set-http-routing-2-listener-2.com"]["/listener-set-http-routing-2-route"] \
        == "infra-backend-v2"


def test_http_routing_status():
    config = translate(snapshot(BASE, V3, ROUTING))
    gateway = status(config, "Gateway", INFRA, "gateway-with-listener-sets-http-routing")
    assert gateway["attachedListenerSets"] == 2
    assert {name: attached for name, (attached, _) in listener_status(
        config, "Gateway", "gateway-with-listener-sets-http-routing").items()} == {
        "gateway-listener-1": 3, "gateway-listener-2": 2}
    first = status(config, "ListenerSet", INFRA, "listener-set-http-routing-1")
    assert conditions(first["conditions"]) == {"Accepted": ("True", "Accepted"), "Programmed": ("True", "Programmed")}
    assert "addresses" not in first
    assert listener_status(config, "ListenerSet", "listener-set-http-routing-1") == {
        "listener-set-http-routing-1-listener-1": (3, ACCEPTED), "listener-set-http-routing-1-listener-2": (2, ACCEPTED)}
    assert listener_status(config, "ListenerSet", "listener-set-http-routing-2") == {
        "listener-set-http-routing-2-listener-1": (2, ACCEPTED), "listener-set-http-routing-2-listener-2": (2, ACCEPTED)}
    assert [item["supportedKinds"] for item in first["listeners"]][0] == [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"},
        {"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"}]
    for name in ("attaches-to-all-listeners", "listener-set-http-routing-1-route",
                 "listener-set-http-routing-1-section-route"):
        parents = status(config, "HTTPRoute", INFRA, name)["parents"]
        for parent in parents:
            assert conditions(parent["conditions"]) == {"Accepted": ("True", "Accepted"),
                                                        "ResolvedRefs": ("True", "ResolvedRefs")}
    kinds = [parent["parentRef"].get("kind", "Gateway")
             for parent in status(config, "HTTPRoute", INFRA, "attaches-to-all-listeners")["parents"]]
    assert kinds == ["Gateway", "ListenerSet", "ListenerSet"]


def test_hostname_conflicts_yield_to_the_listeners_before():
    config = translate(snapshot(BASE, CONFLICT))
    gateway = "gateway-with-listenerset-hostname-conflict"
    assert {name: found for name, (_, found) in listener_status(config, "Gateway", gateway).items()} == {
        "gateway-listener": ACCEPTED, "hostname-conflict-with-gateway-listener": ACCEPTED}
    conflicted = {"Accepted": ("False", "HostnameConflict"), "ResolvedRefs": ("True", "ResolvedRefs"),
                  "Conflicted": ("True", "HostnameConflict"), "Programmed": ("False", "HostnameConflict")}
    first = "listenerset-with-hostname-conflict-with-gateway-1"
    assert {name: found for name, (_, found) in listener_status(config, "ListenerSet", first).items()} == {
        "listener-set-1-listener": ACCEPTED, "hostname-conflict-with-gateway-listener": conflicted,
        "hostname-conflict-with-listener-set-listener": ACCEPTED}
    assert conditions(status(config, "ListenerSet", INFRA, first)["conditions"])["Accepted"] == ("True", "Accepted")
    second = "listenerset-with-hostname-conflict-with-gateway-2"
    assert conditions(status(config, "ListenerSet", INFRA, second)["conditions"]) == {
        "Accepted": ("False", "ListenersNotValid"), "Programmed": ("False", "ListenersNotValid")}
    third = "listenerset-with-hostname-conflict-with-listener-set-1"
    assert {name: found for name, (_, found) in listener_status(config, "ListenerSet", third).items()} == {
        "listener-set-2-listener": ACCEPTED, "hostname-conflict-with-listener-set-listener": conflicted}
    fourth = "listenerset-with-hostname-conflict-with-listener-set-2"
    assert conditions(status(config, "ListenerSet", INFRA, fourth)["conditions"])["Accepted"] == (
        "False", "ListenersNotValid")
    assert status(config, "Gateway", INFRA, gateway)["attachedListenerSets"] == 2


def test_a_gateway_admits_no_listener_set_by_default():
    config = translate(snapshot(BASE, NOT_ALLOWED))
    gateway = status(config, "Gateway", INFRA, "gateway-default-does-not-allow-listenerset")
    assert "attachedListenerSets" not in gateway  # unset: 0
    assert conditions(gateway["conditions"])["Accepted"] == ("True", "Accepted")
    refused = status(config, "ListenerSet", INFRA, "listenerset-default-not-allowed")
    assert conditions(refused["conditions"]) == {"Accepted": ("False", "NotAllowed"),
                                                 "Programmed": ("False", "NotAllowed")}
    assert refused["listeners"] == []
    assert "listenerset-default-not-allowed-listener.com" not in served(config)
    (parent,) = status(config, "HTTPRoute", INFRA, "on-the-refused-set")["parents"]
    assert conditions(parent["conditions"])["Accepted"][0] == "False"


@pytest.mark.parametrize("allowed, namespace, labels, admitted", [
    ("{from: Same}", INFRA, {}, True),
    ("{from: Same}", "other", {}, False),
    ("{from: All}", "other", {}, True),
    ("{from: None}", INFRA, {}, False),
    ("{from: Selector, selector: {matchLabels: {sets: ok}}}", "other", {"sets": "ok"}, True),
    ("{from: Selector, selector: {matchLabels: {sets: ok}}}", "other", {"sets": "no"}, False),
])
def test_allowed_listeners_namespaces(allowed, namespace, labels, admitted):
    text = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: parent, namespace: {INFRA}}}
spec:
  gatewayClassName: ingressd
  allowedListeners: {{namespaces: {allowed}}}
  listeners: [{{name: http, port: 80, protocol: HTTP, hostname: gateway.example}}]
---
apiVersion: v1
kind: Namespace
metadata: {{name: {namespace}, labels: {json.dumps(labels)}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {{name: extra, namespace: {namespace}}}
spec:
  parentRef: {{name: parent, namespace: {INFRA}}}
  listeners: [{{name: more, port: 80, protocol: HTTP, hostname: set.example}}]
"""
    config = translate(snapshot(BASE, text))
    found = conditions(status(config, "ListenerSet", namespace, "extra")["conditions"])
    assert found["Accepted"] == (("True", "Accepted") if admitted else ("False", "NotAllowed"))


def test_a_listener_sets_certificate_needs_a_grant_from_a_listener_set():
    text = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: parent, namespace: {INFRA}}}
spec:
  gatewayClassName: ingressd
  allowedListeners: {{namespaces: {{from: All}}}}
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {{name: tls, namespace: {INFRA}}}
spec:
  parentRef: {{name: parent}}
  listeners:
  - {{name: https, port: 443, protocol: HTTPS, hostname: secure.example,
     tls: {{certificateRefs: [{{name: cert, namespace: certificates}}]}}}}
"""
    config = translate(snapshot(BASE, text))
    ((_, found),) = listener_status(config, "ListenerSet", "tls").values()
    assert found["ResolvedRefs"] == ("False", "RefNotPermitted")


# -- cluster mode: the fake API server serves the kind, the leader writes its status ------------------


class ClusterTests(unittest.TestCase):
    timeout = 40

    def setUp(self) -> None:
        self.fake = fakeapi.FakeAPIServer(bookmark_interval=0.2).start()
        self.addCleanup(self.fake.stop)
        directory = tempfile.mkdtemp()  # not trial's mktemp: no directory left in the working tree
        self.addCleanup(shutil.rmtree, directory, True)
        self.kubeconfig = self.fake.write_kubeconfig(os.path.join(directory, "kubeconfig"))
        cluster = self.fake.cluster
        cluster.apply(fakeapi.gateway_class())
        parent = fakeapi.gateway("gw")
        parent["spec"]["allowedListeners"] = {"namespaces": {"from": "Same"}}
        cluster.apply(parent)
        cluster.apply({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "ListenerSet",
                       "metadata": {"name": "extra", "namespace": "default"},
                       "spec": {"parentRef": {"name": "gw"},
                                "listeners": [{"name": "more", "protocol": "HTTP", "port": 80,
                                               "hostname": "set.example.com"}]}})

    @defer.inlineCallbacks
    def test_listed_watched_and_its_status_written(self):
        store = ObjectStore()
        service = KubernetesService({"kubernetes": True, "kubeconfig": self.kubeconfig,
                                     "election_namespace": "ingressd"}, store, reactor,
                                    timings=KubeTimings(**fakeapi.FAST_TIMINGS), identity="replica-1", environ={})
        service.startService()
        self.addCleanup(service.stopService)
        yield fakeapi.wait_until(lambda: store.synced and service.is_leader, what="synced and leading")
        self.assertEqual(set(store.snapshot()["ListenerSet"]), {("default", "extra")})
        service.config_applied(translate(store.snapshot()))

        def written():
            return (self.fake.cluster.get("listenersets", "default", "extra").get("status") or {}).get("conditions")

        yield fakeapi.wait_until(written, what="the ListenerSet's status written")
        found = gateway_status.without_times(self.fake.cluster.get("listenersets", "default", "extra")["status"])
        self.assertEqual(conditions(found["conditions"]), {"Accepted": ("True", "Accepted"),
                                                           "Programmed": ("True", "Programmed")})
        self.assertEqual([listener["name"] for listener in found["listeners"]], ["more"])
        yield fakeapi.wait_until(lambda: (self.fake.cluster.get("gateways", "default", "gw").get("status") or {})
                                 .get("attachedListenerSets") == 1, what="the Gateway's attachedListenerSets")


# -- end to end ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_listener_sets_served_from_manifests(tmp_path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    backends = {name: Backend(name) for name in ("infra-backend-v1", "infra-backend-v2", "infra-backend-v3")}
    objects = [obj for obj in yaml.safe_load_all(BASE) if obj and obj["kind"] == "GatewayClass"]
    objects += [obj for obj in yaml.safe_load_all(ROUTING) if obj]
    for name, backend in backends.items():
        objects += service(name, [("http", 8080, backend.port)], namespace=INFRA)
    write_manifests(manifests / "all.yaml", objects)
    server = Ingressd(manifests)
    try:
        def answered(host, path):
            response = server.get(path, host=host)
            return response.status, response.headers.get("x-backend") if response.status == 200 else None

        wait_for(lambda: answered("listener-set-http-routing-2-listener-2.com", "/route")[0] == 200,
                 "the ListenerSets' routes served")
        assert answered("gateway-listener-1.com", "/route") == (200, "infra-backend-v1")
        assert answered("listener-set-http-routing-1-listener-1.com", "/route") == (200, "infra-backend-v1")
        assert answered("listener-set-http-routing-1-listener-1.com", "/gateway-route") == (404, None)
        assert answered("listener-set-http-routing-1-listener-1.com",
                        "/listener-set-http-routing-1-section-route") == (200, "infra-backend-v3")
        assert answered("listener-set-http-routing-1-listener-2.com",
                        "/listener-set-http-routing-1-section-route") == (404, None)
        _, _, body = server.admin("/routes")
        found = {(item["kind"], item["name"]): item["status"] for item in json.loads(body)["status"]}
        assert conditions(found[("ListenerSet", "listener-set-http-routing-1")]["conditions"])["Accepted"] == (
            "True", "Accepted")
    finally:
        server.stop()
        for backend in backends.values():
            backend.stop()
