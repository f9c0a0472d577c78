"""Provider logic, table-style: YAML fixtures of Kubernetes objects → the expected routes."""

from pathlib import Path

import pytest
import yaml

from ingressd.features import Annotation, parse_int
from ingressd.config.store import ObjectStore
from ingressd.config.translate import TranslateSettings, translate

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "translate").glob("*.yaml"))


def snapshot(objects):
    store = ObjectStore()
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    for kind, items in by_kind.items():
        store.replace("test", kind, items)
    return store.snapshot()


def describe(route):
    endpoints = ",".join(f"{e.address}:{e.port}" for e in route.backend.endpoints)
    text = f"{route.host} {route.path} {route.path_type} -> {route.backend.label} [{endpoints}]"
    return text + (" tls" if route.tls else "")


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_fixture(fixture):
    case = yaml.safe_load(fixture.read_text())
    config = translate(snapshot(case["objects"]), TranslateSettings(**case.get("settings", {})))
    expect = case["expect"]
    assert sorted(describe(r) for r in config.routes) == sorted(expect.get("routes", []))
    if "default" in expect:
        assert config.default_backend is not None and describe(config.default_backend) == expect["default"]
    rejected = [str(r) for r in config.rejections]
    assert len(rejected) == len(expect.get("rejected", [])), rejected
    for want in expect.get("rejected", []):
        assert any(want in got for got in rejected), (want, rejected)
    for want in expect.get("warnings", []):
        assert any(want in str(w) for w in config.warnings), (want, config.warnings)
    if "tls" in expect:
        assert sorted(f"{t.host} {t.secret}" for t in config.tls_hosts) == sorted(expect["tls"])


def ingress(annotations):
    return {
        "kind": "Ingress",
        "metadata": {"name": "ing", "namespace": "ns", "annotations": annotations},
        "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}},
    }


def test_annotations_parsed_validated_and_unsupported_reported():
    declared = [Annotation("limit-rps", parse_int(low=1), default=0)]
    settings = TranslateSettings(watch_ingress_without_class=True)
    good = translate(snapshot([ingress({
        "nginx.ingress.kubernetes.io/limit-rps": "5",
        "nginx.ingress.kubernetes.io/enable-opentelemetry": "true",
        "nginx.ingress.kubernetes.io/made-up": "1",
    })]), settings, declared)
    assert dict(good.default_backend.features) == {"limit-rps": 5}
    warnings = " | ".join(str(w) for w in good.warnings)
    assert "enable-opentelemetry is not supported by ingressd and is ignored" in warnings
    assert "made-up is not an ingress-nginx annotation" in warnings

    # A snippet no plugin reads (the snippets plugin is not among ``declared``) keeps its Ingress unserved.
    closed = translate(snapshot([ingress({"nginx.ingress.kubernetes.io/configuration-snippet": "return 200;"})]),
                       settings, declared)
    assert closed.default_backend is None
    assert "configuration-snippet: it is not supported by ingressd" in str(closed.rejections[0])

    own_prefix_wins = translate(snapshot([ingress({
        "nginx.ingress.kubernetes.io/limit-rps": "5", "ingressd.io/limit-rps": "7",
    })]), settings, declared)
    assert dict(own_prefix_wins.default_backend.features) == {"limit-rps": 7}

    for bad in ("zero", "0", "5\r\nx"):
        config = translate(snapshot([ingress({"nginx.ingress.kubernetes.io/limit-rps": bad})]), settings, declared)
        assert config.default_backend is None
        assert "annotation nginx.ingress.kubernetes.io/limit-rps" in str(config.rejections[0])


def test_resolved_secret_reference_and_cross_namespace_refusal():
    declared = [Annotation("auth-secret", str, resolve="secret")]
    secret = {"kind": "Secret", "metadata": {"name": "s", "namespace": "ns"}, "type": "Opaque",
              "data": {"auth": "dXNlcjpoYXNo"}}
    settings = TranslateSettings(watch_ingress_without_class=True)
    config = translate(snapshot([secret, ingress({"nginx.ingress.kubernetes.io/auth-secret": "s"})]), settings, declared)
    value = dict(config.default_backend.features)["auth-secret"]
    assert value.get("auth") == b"user:hash"
    missing = translate(snapshot([ingress({"nginx.ingress.kubernetes.io/auth-secret": "nope"})]), settings, declared)
    assert dict(missing.default_backend.features)["auth-secret"] is None
    cross = translate(snapshot([secret, ingress({"nginx.ingress.kubernetes.io/auth-secret": "other/s"})]),
                      settings, declared)
    assert "another namespace" in str(cross.rejections[0])


@pytest.mark.parametrize("path", ["/a b", "/a{b", "/a}b", "/a;b", '/a"b', "/a'b", "/a\\b", "/a`b", "/a$b", "/a\tb"])
def test_exact_and_prefix_paths_refuse_characters_config_languages_interpret(path):
    obj = ingress({})
    obj["spec"] = {"rules": [{"http": {"paths": [
        {"path": path, "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}
    config = translate(snapshot([obj]), TranslateSettings(watch_ingress_without_class=True))
    assert not config.routes and "contains" in str(config.rejections[0])


def test_translator_memory_of_tls_routes_holds_only_current_routes():
    """An Ingress changed over and over leaves nothing behind in the translator's memo
    (it kept a marked copy of every TLS route it had ever seen, up to 16 per Ingress)."""
    from ingressd.config.store import pack
    from ingressd.config.translate import Translator

    def ingress(n):
        return pack({"metadata": {"name": "web", "namespace": "default", "generation": n},
                "spec": {"ingressClassName": "ingressd",
                         "tls": [{"hosts": ["web.test"], "secretName": "web-tls"}],
                         "rules": [{"host": "web.test", "http": {"paths": [
                             {"path": f"/v{n}", "pathType": "Prefix",
                              "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})

    translator = Translator()
    objects = {"IngressClass": {("", "ingressd"): pack({"metadata": {"name": "ingressd"},
                                                        "spec": {"controller": "ingressd.io/ingress-controller"}})},
               "Service": {}, "EndpointSlice": {}, "Secret": {}}
    for n in range(50):
        config = translator(dict(objects, Ingress={("default", "web"): ingress(n)}),
                            TranslateSettings(ingress_class="ingressd"))
        assert [(route.path, route.tls) for route in config.routes] == [(f"/v{n}", True)]
    kept = [route for done in translator._cache.values() for route in done.served[1]]
    assert [(route.path, route.tls) for route in kept] == [("/v49", True)]


def test_unchanged_routes_stay_identical_and_follow_tls_hosts():
    """Routes of an unchanged Ingress are the very same objects in the next configuration
    (their route table entries are kept), marked or unmarked as TLS hosts come and go."""
    from harness import ingress as make_ingress
    from ingressd.config.translate import Translator

    def ingress(name, host, tls=False, annotations=None):
        return make_ingress(name, [(host, [("/", "Prefix", "web", 80)])], annotations=annotations,
                            tls=[{"hosts": [host], "secretName": "tls"}] if tls else None)

    store = ObjectStore()
    translator = Translator()
    store.replace("t", "Ingress", [ingress("a", "a.test"), ingress("b", "b.test")])
    first = {route.host: route for route in translator(store.snapshot()).routes}
    assert not first["a.test"].tls
    # Another Ingress makes a.test a TLS host: a's route is marked, b's stays the same object.
    store.replace("t", "Ingress", [ingress("a", "a.test"), ingress("b", "b.test"), ingress("c", "a.test", tls=True)])
    second = {(route.host, route.ingress.name): route for route in translator(store.snapshot()).routes}
    assert second[("a.test", "a")].tls and second[("b.test", "b")] is first["b.test"]
    store.apply("t", "Ingress", "MODIFIED", ingress("b", "b.test", annotations={"x": "y"}))
    third = {(route.host, route.ingress.name): route for route in translator(store.snapshot()).routes}
    assert third[("a.test", "a")] is second[("a.test", "a")]  # marked copy kept while unchanged
    # b.test becomes a TLS host too: the set of TLS hosts changes, every route is marked again,
    # and a's route keeps the marked copy it had.
    store.apply("t", "Ingress", "MODIFIED", ingress("b", "b.test", tls=True))
    again = {(route.host, route.ingress.name): route for route in translator(store.snapshot()).routes}
    assert again[("b.test", "b")].tls and again[("a.test", "a")] is second[("a.test", "a")]
    store.apply("t", "Ingress", "DELETED", ingress("c", "a.test"))
    fourth = {(route.host, route.ingress.name): route for route in translator(store.snapshot()).routes}
    assert not fourth[("a.test", "a")].tls


def test_hosts_and_port_labels_are_one_string_each_whatever_names_them():
    """At 10,000 Ingresses each route kept its own copies of its host and of its backend's
    port label ("80"): the translator shares one copy of each (interned)."""
    import sys

    from ingressd.config.store import pack

    def ingress(name, host):
        return pack({"metadata": {"name": name, "namespace": "default"},
                     "spec": {"ingressClassName": "ingressd", "rules": [{"host": host, "http": {"paths": [
                         {"path": f"/{name}/{n}", "pathType": "Prefix",
                          "backend": {"service": {"name": "web", "port": {"number": 80}}}} for n in range(2)]}}]}})

    objects = {"IngressClass": {("", "ingressd"): pack({"metadata": {"name": "ingressd"},
                                                        "spec": {"controller": "ingressd.io/ingress-controller"}})},
               "Ingress": {("default", "a"): ingress("a", "Shared.Test"), ("default", "b"): ingress("b", "shared.test")},
               "Service": {}, "EndpointSlice": {}, "Secret": {}}
    config = translate(objects, TranslateSettings(ingress_class="ingressd"))
    routes = config.routes
    assert len(routes) == 4
    assert all(route.host is sys.intern("shared.test") for route in routes)
    assert all(route.backend.port is sys.intern("80") for route in routes)
