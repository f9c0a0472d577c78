"""BackendTLSPolicy (config.gateway.backend_tls_policy): judged from the manifests, put on the
HTTPRoute and GRPCRoute routes to the Services it targets as a ``BackendTLS``, turned into the
route's upstream by the backend_protocol plugin; status on the policy's ancestors as the
conformance tests (backendtlspolicy*.yaml) expect it; a policy that cannot be honoured answers 500
and never lets a request go in clear."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import yaml
from twisted.internet import defer, reactor
from twisted.trial import unittest

import certs
from ingressd.config.gateway.backend_tls_policy import BACKEND_TLS, Refused
from ingressd.config.gateway_api import translate
from ingressd.config.model import ObjectRef
from ingressd.config.store import ObjectStore
from ingressd.features import BackendTLS, BuildContext
from ingressd.providers.kube import gateway_status
from ingressd.providers.kube.reflector import KubeTimings
from ingressd.providers.kube.service import STATUS_WRITERS, KubernetesService
from ingressd_plugins import backend_protocol

import fakeapi
from gateway_manifests import snapshot

NS = "gateway-conformance-infra"
CA = certs.make_ca("backend CA").cert_pem.decode()

BASE = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: ingressd}}
spec: {{controllerName: ingressd.io/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: same-namespace, namespace: {NS}}}
spec:
  gatewayClassName: ingressd
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
---
apiVersion: v1
kind: Service
metadata: {{name: tls-backend, namespace: {NS}}}
spec: {{ports: [{{name: btls, port: 443}}, {{name: other, port: 8443}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: plain-backend, namespace: {NS}}}
spec: {{ports: [{{port: 8080}}]}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: backend-tls-checks-certificate, namespace: {NS}}}
data:
  ca.crt: |
{chr(10).join('    ' + line for line in CA.splitlines())}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: malformed, namespace: {NS}}}
data: {{ca.crt: "not a certificate"}}
"""


def route(name="backendtlspolicy", backends=({"name": "tls-backend", "port": 443},), kind="HTTPRoute"):
    return yaml.safe_dump({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": {"parentRefs": [{"name": "same-namespace"}], "hostnames": ["abc.example.com"],
                 "rules": [{"backendRefs": list(backends)}]},
    })


def policy(name="normative-test", hostname="abc.example.com", ca_refs=None, section=None, service="tls-backend",
           created="2026-01-01T00:00:00Z", **validation):
    target = {"group": "", "kind": "Service", "name": service}
    if section:
        target["sectionName"] = section
    refs = ca_refs if ca_refs is not None else [{"group": "", "kind": "ConfigMap",
                                                 "name": "backend-tls-checks-certificate"}]
    body = {"hostname": hostname, **validation}
    if refs:
        body["caCertificateRefs"] = refs
    return yaml.safe_dump({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": created, "generation": 2},
        "spec": {"targetRefs": [target], "validation": body},
    })


def judged(config, name: str) -> dict:
    """The policy's conditions on its one ancestor, the Gateway same-namespace."""
    body = json.loads(dict(config.status)[ObjectRef("BackendTLSPolicy", NS, name)].body)
    [ancestor] = body["ancestors"]
    assert ancestor["ancestorRef"] == {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                       "namespace": NS, "name": "same-namespace"}
    assert ancestor["controllerName"] == "ingressd.io/gateway-controller"
    return {c["type"]: (c["status"], c["reason"]) for c in ancestor["conditions"]}


def tls_of(config):
    [served] = config.routes
    return dict(served.features).get(BACKEND_TLS)


def test_a_valid_policy_puts_verified_tls_on_the_route():
    config = translate(snapshot(BASE, route(), policy()))
    tls = tls_of(config)
    assert isinstance(tls, BackendTLS)
    assert (tls.verify, tls.verify_name, tls.server_name) == (True, "abc.example.com", "abc.example.com")
    assert CA.encode().strip() in tls.ca
    assert judged(config, "normative-test") == {"Accepted": ("True", "Accepted"),
                                                "ResolvedRefs": ("True", "ResolvedRefs")}


def test_a_route_to_another_service_is_untouched():
    config = translate(snapshot(BASE, route(backends=({"name": "plain-backend", "port": 8080},)), policy()))
    assert tls_of(config) is None
    body = json.loads(dict(config.status)[ObjectRef("BackendTLSPolicy", NS, "normative-test")].body)
    assert body == {"ancestors": []}  # no route of ours uses it


def test_subject_alt_names_replace_the_hostname_for_authentication():
    config = translate(snapshot(BASE, route(), policy(subjectAltNames=[
        {"type": "Hostname", "hostname": "abc.example.com"}, {"type": "URI", "uri": "spiffe://abc.example.com/x"}])))
    tls = tls_of(config)
    assert tls.subject_alt_names == (("Hostname", "abc.example.com"), ("URI", "spiffe://abc.example.com/x"))
    assert tls.server_name == "abc.example.com"


def test_a_missing_or_malformed_ca_refuses_the_routes_requests():
    for name, refs in (("nonexistent-ca-certificate-ref", [{"group": "", "kind": "ConfigMap", "name": "nope"}]),
                       ("malformed-ca-certificate-ref", [{"group": "", "kind": "ConfigMap", "name": "malformed"}])):
        config = translate(snapshot(BASE, route(), policy(name=name, ca_refs=refs)))
        assert isinstance(tls_of(config), Refused)
        assert judged(config, name) == {"Accepted": ("False", "NoValidCACertificate"),
                                        "ResolvedRefs": ("False", "InvalidCACertificateRef")}


def test_a_ca_reference_of_another_kind_is_invalid_kind():
    config = translate(snapshot(BASE, route(), policy(ca_refs=[{"group": "", "kind": "Secret", "name": "x"}])))
    assert isinstance(tls_of(config), Refused)
    assert judged(config, "normative-test") == {"Accepted": ("False", "NoValidCACertificate"),
                                                "ResolvedRefs": ("False", "InvalidKind")}


def test_well_known_ca_certificates_are_not_supported_and_refuse():
    config = translate(snapshot(BASE, route(), policy(ca_refs=[], wellKnownCACertificates="System")))
    assert isinstance(tls_of(config), Refused)
    assert judged(config, "normative-test")["Accepted"] == ("False", "Invalid")


def test_a_section_name_policy_wins_for_its_port_only():
    config = translate(snapshot(BASE, route(backends=({"name": "tls-backend", "port": 443},)),
                                policy("whole", hostname="whole.example"),
                                policy("port", hostname="port.example", section="btls")))
    assert tls_of(config).verify_name == "port.example"
    other = translate(snapshot(BASE, route(backends=({"name": "tls-backend", "port": 8443},)),
                               policy("whole", hostname="whole.example"),
                               policy("port", hostname="port.example", section="btls")))
    assert tls_of(other).verify_name == "whole.example"


def test_the_older_of_two_policies_on_one_target_wins():
    config = translate(snapshot(BASE, route(), policy("newer", hostname="new.example", created="2026-02-01T00:00:00Z"),
                                policy("older", hostname="old.example", created="2026-01-01T00:00:00Z")))
    assert tls_of(config).verify_name == "old.example"
    assert judged(config, "newer")["Accepted"] == ("False", "Conflicted")
    assert judged(config, "older")["Accepted"] == ("True", "Accepted")


def test_a_rule_mixing_backends_with_and_without_the_policy_is_not_served():
    config = translate(snapshot(BASE, route(backends=({"name": "tls-backend", "port": 443},
                                                      {"name": "plain-backend", "port": 8080})), policy()))
    assert config.routes == ()
    assert any("BackendTLSPolicy" in warning.reason for warning in config.warnings)


def test_a_grpcroute_to_a_policy_service_gets_its_tls_too():
    grpc = yaml.safe_dump({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
        "metadata": {"name": "grpc", "namespace": NS},
        "spec": {"parentRefs": [{"name": "same-namespace"}], "hostnames": ["grpc.example.com"],
                 "rules": [{"backendRefs": [{"name": "tls-backend", "port": 443}]}]}})
    config = translate(snapshot(BASE, grpc, policy()))
    [served] = config.routes
    values = dict(served.features)
    assert values["backend-protocol"] == "GRPC" and isinstance(values[BACKEND_TLS], BackendTLS)


# -- the backend_protocol plugin ------------------------------------------------------------------


class _Route:
    annotations = ()


def _features(values):
    return backend_protocol.ingressd_route_features(_Route(), values, BuildContext(settings={}, reactor=None))


def test_the_plugin_makes_the_upstream_https_with_the_policys_tls():
    tls = BackendTLS(verify=True, verify_name="abc.example.com", server_name="abc.example.com", ca=CA.encode())
    feature = _features({BACKEND_TLS: tls})
    assert (feature.upstream.protocol, feature.upstream.tls) == ("HTTPS", tls)
    assert _features({BACKEND_TLS: tls, "backend-protocol": "GRPC"}).upstream.protocol == "GRPCS"


def test_the_plugin_answers_500_for_a_policy_that_cannot_be_honoured():
    feature = _features({BACKEND_TLS: Refused("ConfigMap x does not exist")})
    answer = feature.request(None)
    assert answer.status == 500
    assert not hasattr(feature, "upstream")  # nothing is sent to the backend


# -- the status in cluster mode: ancestors of ours merged as a route's parents are ---------------------


def test_other_controllers_ancestors_are_kept_and_ours_timed():
    other = {"ancestorRef": {"name": "theirs", "namespace": NS}, "controllerName": "example.com/other",
             "conditions": [{"type": "Accepted", "status": "True"}]}
    ours = {"ancestorRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": NS,
                            "name": "same-namespace"},
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}]}
    wanted = gateway_status.desired_status("BackendTLSPolicy", {"ancestors": [other]}, {"ancestors": [ours]},
                                           "ingressd.io/gateway-controller", NS, "2026-12-07T00:00:00Z")
    assert wanted["ancestors"][0] == other
    assert wanted["ancestors"][1]["controllerName"] == "ingressd.io/gateway-controller"
    assert wanted["ancestors"][1]["conditions"][0]["lastTransitionTime"] == "2026-12-07T00:00:00Z"
    again = gateway_status.desired_status("BackendTLSPolicy", wanted, {"ancestors": [ours]},
                                          "ingressd.io/gateway-controller", NS, "2026-12-08T00:00:00Z")
    assert again is None  # unchanged: not written again


class ClusterStatusTests(unittest.TestCase):
    timeout = 40

    @defer.inlineCallbacks
    def test_the_policys_ancestors_are_written(self):
        self.assertIs(STATUS_WRITERS["BackendTLSPolicy"], gateway_status.GatewayStatusWriter)
        fake = fakeapi.FakeAPIServer(bookmark_interval=0.2).start()
        self.addCleanup(fake.stop)
        for obj in yaml.safe_load_all(BASE + "---\n" + route() + "---\n" + policy()):
            obj["metadata"].pop("generation", None)
            obj["metadata"].pop("creationTimestamp", None)
            fake.cluster.apply(obj)
        folder = tempfile.mkdtemp(prefix="ingressd-backend-tls-")
        self.addCleanup(shutil.rmtree, folder, True)
        settings = {"kubernetes": True, "kubeconfig": fake.write_kubeconfig(os.path.join(folder, "kubeconfig")),
                    "election_namespace": "ingressd"}
        store = ObjectStore()
        service = KubernetesService(settings, store, reactor, timings=KubeTimings(**fakeapi.FAST_TIMINGS),
                                    identity="replica-1", environ={})
        service.startService()
        self.addCleanup(service.stopService)
        yield fakeapi.wait_until(lambda: store.synced and service.is_leader, what="synced and leading")
        config = translate(store.snapshot())
        self.assertIsInstance(tls_of(config), BackendTLS)
        service.config_applied(config)

        def written():
            return (fake.cluster.get("backendtlspolicies", NS, "normative-test").get("status") or {}).get("ancestors")

        yield fakeapi.wait_until(written, what="the policy's status written")
        [ancestor] = written()
        self.assertEqual(ancestor["ancestorRef"]["name"], "same-namespace")
        self.assertEqual({c["type"]: (c["status"], c["reason"]) for c in ancestor["conditions"]},
                         {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")})
