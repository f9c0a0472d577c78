"""The seam of the sources of routes (ingressd.config.sources): the kinds come from the
registered translators, and their fragments merge into one configuration."""

from __future__ import annotations

import pytest

from ingressd.config import sources
from ingressd.config.gateway_api import GatewayTranslator
from ingressd.config.kinds import GATEWAY_KINDS, INGRESS_KINDS, KindSpec
from ingressd.config.model import Backend, Conditions, Config, ObjectRef, Rejection, Route, SecretData, TLSHost
from ingressd.config.reloader import Reloader, State
from ingressd.config.store import ObjectStore, pack
from ingressd.config.translate import Translator
from ingressd.interfaces import RouteSource
from ingressd.providers import files
from ingressd.providers.kube import config as kube_config
from ingressd.providers.kube import rest
from ingressd.providers.kube.config import ApiCall
from ingressd.providers.kube.reflector import slim
from ingressd.providers.kube.service import STATUS_WRITERS, WATCHED

BACKEND = Backend("default", "svc", "80")


def route(host: str, path: str, kind: str = "Ingress", name: str = "a", conditions=None) -> Route:
    return Route(host, path, "Prefix", BACKEND, ObjectRef(kind, "default", name), conditions=conditions)


class _Other:
    """A second source, as the Gateway API translator will be."""

    name = "other"
    kinds = (KindSpec("Widget", "example.com/v1", "widgets", status=True),
             KindSpec("Service", "v1", "services", keep_metadata=("name", "namespace", "labels", "annotations")))

    def translate(self, objects, settings, annotations):
        return Config()


def test_the_ingress_and_gateway_api_translators_are_the_registered_sources():
    assert sources.ROUTE_SOURCES == (Translator, GatewayTranslator)
    for name in RouteSource.__annotations__:  # structurally a RouteSource: name, kinds, translate
        assert hasattr(Translator, name)
    assert callable(Translator().translate)
    assert Translator.name == "ingress"
    assert sources.KINDS == ("Ingress", "IngressClass", "Service", "EndpointSlice", "Secret", "ConfigMap",
                             "GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "ListenerSet", "TLSRoute",
                             "BackendTLSPolicy", "ReferenceGrant", "Namespace")
    assert sources.KIND_SPECS[:6] == INGRESS_KINDS
    translators = sources.new_translators()
    assert [type(t) for t in translators] == [Translator, GatewayTranslator]
    assert translators[0] is not sources.new_translators()[0]  # one per server


def test_the_gateway_api_kinds():
    specs = sources.SPECS
    for kind in ("GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "ListenerSet"):
        assert specs[kind].api_version == "gateway.networking.k8s.io/v1" and specs[kind].optional
    assert specs["ReferenceGrant"].api_version == "gateway.networking.k8s.io/v1beta1"
    assert not specs["GatewayClass"].namespaced and specs["HTTPRoute"].namespaced
    namespace = specs["Namespace"]
    assert (namespace.api_version, namespace.namespaced, namespace.optional) == ("v1", False, False)
    assert namespace.keep_metadata == ("name", "labels")
    # a status writer each for GatewayClass, Gateway, HTTPRoute, GRPCRoute, ListenerSet, TLSRoute and BackendTLSPolicy
    assert [spec.kind for spec in GATEWAY_KINDS if spec.status] == ["GatewayClass", "Gateway", "HTTPRoute",
                                                                     "GRPCRoute", "ListenerSet", "TLSRoute", "BackendTLSPolicy"]
    assert [spec.kind for spec in GATEWAY_KINDS if spec.kind in ("Service", "EndpointSlice", "Secret")] == \
        ["Service", "EndpointSlice", "Secret"]
    assert not any(spec.optional for spec in INGRESS_KINDS)


def test_the_gateway_api_fragment_is_empty_without_a_gateway_class_of_ours():
    objects = {"HTTPRoute": {("default", "r"): pack({"kind": "HTTPRoute", "metadata": {"name": "r"}})}}
    assert GatewayTranslator().translate(objects, None, ()) == Config()


def test_kinds_everywhere_come_from_the_sources():
    from ingressd.config import store

    assert store.KINDS == sources.KINDS
    assert ObjectStore().kinds == sources.KINDS
    assert WATCHED == sources.KINDS
    for spec in sources.KIND_SPECS:
        assert rest.RESOURCES[spec.kind] == (spec.api_version, spec.plural, spec.namespaced)
        assert ApiCall(spec.group, spec.plural, "list") in kube_config.API_CALLS
        assert ApiCall(spec.group, spec.plural, "watch") in kube_config.API_CALLS
        assert (ApiCall(spec.group, f"{spec.plural}/status", "patch") in kube_config.API_CALLS) == spec.status
        assert (spec.kind in STATUS_WRITERS) == spec.status


def test_kind_specs_of_two_sources_each_kind_once_and_alike():
    specs = sources.kind_specs((Translator, _Other))
    assert [spec.kind for spec in specs] == [*(spec.kind for spec in INGRESS_KINDS), "Widget"]
    assert specs[-1].group == "example.com"

    class Unlike(_Other):
        kinds = (KindSpec("Service", "v1", "services"),)  # keeps all metadata: not as the Ingress source

    with pytest.raises(ValueError, match="declares Service unlike"):
        sources.kind_specs((Translator, Unlike))


def test_core_group_and_cluster_scope():
    specs = sources.SPECS
    assert specs["Service"].group == "" and specs["Ingress"].group == "networking.k8s.io"
    assert not specs["IngressClass"].namespaced and specs["Ingress"].namespaced
    assert [kind for kind, spec in specs.items() if spec.status] == ["Ingress", "GatewayClass", "Gateway",
                                                                      "HTTPRoute", "GRPCRoute", "ListenerSet",
                                                                      "TLSRoute", "BackendTLSPolicy"]
    assert not specs["Namespace"].namespaced


def test_slim_keeps_what_the_kind_declares():
    service = {"metadata": {"name": "s", "namespace": "n", "uid": "u", "resourceVersion": "1",
                            "managedFields": [1], "labels": {"a": "b"}}}
    assert slim(service, "Service") == {"metadata": {"name": "s", "namespace": "n", "labels": {"a": "b"}}}
    ingress = {"metadata": {"name": "i", "uid": "u", "managedFields": [1]}}
    assert slim(ingress, "Ingress") == {"metadata": {"name": "i", "uid": "u"}}
    endpoints = {"metadata": {"name": "e"}, "endpoints": [{"addresses": ["1.2.3.4"], "nodeName": "x",
                                                            "conditions": {"ready": True}}, "odd"]}
    assert slim(endpoints, "EndpointSlice")["endpoints"] == [{"addresses": ["1.2.3.4"],
                                                              "conditions": {"ready": True}}, "odd"]
    unknown = {"metadata": {"name": "w", "uid": "u"}, "endpoints": [{"nodeName": "x"}]}
    assert slim(unknown, "Widget") == {"metadata": {"name": "w", "uid": "u"}, "endpoints": [{"nodeName": "x"}]}


def test_file_provider_reads_the_sources_kinds_and_namespaces_only_namespaced_ones():
    text = """
kind: IngressClass
metadata: {name: c}
---
kind: Service
metadata: {name: s}
---
kind: Widget
metadata: {name: w}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gc}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
---
kind: Namespace
metadata: {name: team, labels: {env: prod}}
"""
    objects, problems = files.parse_manifest(text)
    assert problems == []
    assert [(o["kind"], o["metadata"].get("namespace")) for o in objects] == [
        ("IngressClass", None), ("Service", "default"), ("GatewayClass", None), ("HTTPRoute", "default"),
        ("Namespace", None)]


# -- merging ------------------------------------------------------------------------------


def test_one_fragment_is_the_configuration_itself():
    fragment = Config(routes=(route("a.example", "/"),))
    assert sources.merge([fragment]) is fragment
    assert sources.merge([fragment, Config()]) is fragment
    assert sources.merge([Config(), fragment]) is fragment
    empty = Config()
    assert sources.merge([empty, Config()]) is empty
    assert sources.merge([]) == Config()


def test_the_earlier_source_keeps_the_same_host_and_path():
    ingress = route("a.example", "/x")
    same = route("a.example", "/x", kind="HTTPRoute", name="h")
    other_path = route("a.example", "/y", kind="HTTPRoute", name="h")
    with_header = route("a.example", "/x", kind="HTTPRoute", name="h", conditions=Conditions(method="GET"))
    first = Config(routes=(ingress, route("a.example", "/x", name="b")), warnings=(Rejection(ingress.ingress, "w1"),))
    second = Config(routes=(same, other_path, with_header), rejections=(Rejection(same.ingress, "r2"),),
                    status=((same.ingress, "accepted"),))
    merged = sources.merge([first, second])
    # the Ingress's two routes stay (the route table decides between them), the HTTPRoute's
    # identical one is dropped with a warning, the others coexist
    assert merged.routes == (ingress, route("a.example", "/x", name="b"), other_path, with_header)
    assert merged.rejections == (Rejection(same.ingress, "r2"),)
    assert merged.warnings == (
        Rejection(ingress.ingress, "w1"),
        Rejection(same.ingress, "a.example/x (Prefix) is served by Ingress default/a, which takes precedence"))
    assert merged.status == ((same.ingress, "accepted"),)


def test_merge_defaults_tls_and_secrets():
    secret = SecretData(ObjectRef("Secret", "default", "s"), "kubernetes.io/tls", ())
    other_secret = SecretData(ObjectRef("Secret", "default", "t"), "Opaque", ())
    default_one, default_two = route("", "/", name="d1"), route("", "/", name="d2")
    tls_one = TLSHost("a.example", secret.ref, ObjectRef("Ingress", "default", "a"))
    tls_two = TLSHost("b.example", secret.ref, ObjectRef("HTTPRoute", "default", "h"))
    first = Config(routes=(route("a.example", "/"),), tls_hosts=(tls_one,), secrets=(secret,))
    second = Config(routes=(route("b.example", "/", kind="HTTPRoute"),), default_backend=default_two,
                    tls_hosts=(tls_two,), secrets=(secret, other_secret))
    merged = sources.merge([first, second])
    assert merged.default_backend == default_two  # the first source with one
    assert merged.tls_hosts == (tls_one, tls_two)
    assert merged.secrets == (secret, other_secret)
    merged = sources.merge([Config(routes=first.routes, default_backend=default_one), second])
    assert merged.default_backend == default_one
    assert sources.match_key(route("h", "/p")) == ("h", "/p", "Prefix", None)


def test_the_reloader_builds_from_every_source(monkeypatch):
    calls = []

    class Recording(_Other):
        def translate(self, objects, settings, annotations):
            calls.append(sorted(objects))
            return Config(routes=(route("w.example", "/", kind="Widget", name="w"),))

    monkeypatch.setattr(sources, "ROUTE_SOURCES", (Translator, GatewayTranslator, Recording))
    from twisted.internet.task import Clock

    store = ObjectStore()
    store.set_synced("test")
    state = State()
    reloader = Reloader(store, state, Clock())
    reloader.rebuild()
    assert calls == [sorted(sources.KINDS)]
    assert [r.ingress for r in state.config.routes] == [ObjectRef("Widget", "default", "w")]
    assert state.table.match("w.example", "/") is not None


def test_file_mode_reads_gateway_api_manifests_beside_ingresses_unchanged(tmp_path):
    from twisted.internet.task import Clock

    ingress = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  ingressClassName: ingressd
  rules:
  - host: app.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 80}]}
"""
    gateway = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ingressd}
spec: {controllerName: ingressd.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  hostnames: [app.example]
  rules: [{backendRefs: [{name: web, port: 80}]}]
---
apiVersion: v1
kind: Namespace
metadata: {name: default, labels: {team: a}}
"""
    (tmp_path / "ingress.yaml").write_text(ingress)
    clock = Clock()

    def served(paths):
        store = ObjectStore()
        state = State()
        reloader = Reloader(store, state, clock)
        provider = files.ManifestProvider(paths, store, clock)
        provider.scan()
        reloader.rebuild()
        return store, provider, reloader, state

    _, _, _, alone = served([str(tmp_path / "ingress.yaml")])
    (tmp_path / "gateway.yaml").write_text(gateway)
    store, provider, reloader, state = served([str(tmp_path)])
    assert set(store.snapshot()["HTTPRoute"]) == {("default", "r")}
    assert set(store.snapshot()["GatewayClass"]) == {("", "ingressd")}
    assert set(store.snapshot()["Namespace"]) == {("", "default")}
    # the HTTPRoute has no parent Gateway: only the GatewayClass's status; the Ingress is served as before
    assert state.config.routes == alone.config.routes
    assert [ref.kind for ref, _ in state.config.status] == ["GatewayClass"]
    assert state.table.match("app.example", "/").route.ingress == ObjectRef("Ingress", "default", "web")
    # a change to the Gateway API manifests is read live and changes nothing served
    (tmp_path / "gateway.yaml").write_text(gateway.replace("name: r,", "name: r2,"))
    import os

    os.utime(tmp_path / "gateway.yaml", (1, 1))  # a new modification time even within the clock's second
    provider.scan()
    reloader.rebuild()
    assert set(store.snapshot()["HTTPRoute"]) == {("default", "r2")}
    assert state.config.routes == alone.config.routes
