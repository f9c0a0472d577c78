"""``ingressd.compat.lint``: each finding code against a case that has it and one that does not.

Objects are built with the harness's builders; certificates are generated per test run.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import certs
from harness import INGRESS_CLASS, ingress, service
from ingressd.compat.lint import CODES, Finding, lint
from ingressd.config.model import ObjectRef

NOW = time.time()
NOW_DT = datetime.fromtimestamp(NOW, timezone.utc)
HOST = "app.example.com"
BASIC = {"nginx.ingress.kubernetes.io/auth-type": "basic", "nginx.ingress.kubernetes.io/auth-secret": "users"}
ALLOW = {"nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8"}


def ours(obj) -> bool:
    """The caller's selector: our class, or no class at all (so no-class can be checked)."""
    spec = obj.get("spec") or {}
    legacy = (obj["metadata"].get("annotations") or {}).get("kubernetes.io/ingress.class")
    return (legacy or spec.get("ingressClassName")) in ("ingressd", None)


def app(name="app", paths=(("/", "Prefix"),), host=HOST, svc="app", port=80, **kwargs) -> dict:
    return ingress(name, [(host, [(path, kind, svc, port) for path, kind in paths])], **kwargs)


def tls_secret(name="app-tls", issued=None, namespace="default", crt=None, key=None) -> dict:
    issued = issued or certs.make_leaf(HOST)
    return certs.secret_manifest(namespace, name, crt if crt is not None else issued.cert_pem,
                                 key if key is not None else issued.key_pem())


def tls(hosts=(HOST,), secret="app-tls") -> list[dict]:
    return [{"hosts": list(hosts), "secretName": secret}]


def world(*extra) -> list[dict]:
    """The Services every case's backends use, the IngressClass, and ``extra``."""
    return [INGRESS_CLASS, *service("app", [("http", 80, 8080)]), *service("api", [("http", 80, 8080)]), *extra]


@dataclass
class Case:
    id: str
    objects: Callable[[], list]  # built per test: certificates are made at run time
    code: str
    refs: list[str] = field(default_factory=list)  # "namespace/name" of each finding of ``code``, in order
    says: tuple[str, ...] = ()  # text every finding of ``code`` (joined) must contain


CASES = [
    # -- auth-without-tls
    Case("auth-basic-no-tls", lambda: world(app(annotations=BASIC)), "auth-without-tls", ["default/app"],
         ("basic authentication", f"host {HOST}", "clear text")),
    Case("auth-ingressd-prefix-no-tls", lambda: world(app(annotations={"ingressd.io/auth-type": "basic"})),
         "auth-without-tls", ["default/app"]),
    Case("auth-url-rule-without-host", lambda: world(app(host=None, annotations={
        "nginx.ingress.kubernetes.io/auth-url": "http://auth.default.svc/check"})),
         "auth-without-tls", ["default/app"], ("external authentication (auth-url)", "rule without host")),
    Case("auth-tls-only-in-unselected-ingress", lambda: world(
        app(annotations=BASIC),
        app("other", paths=(("/x", "Prefix"),), tls=tls(), class_name="nginx"), tls_secret()),
         "auth-without-tls", ["default/app"]),
    Case("auth-with-tls-in-another-ingress", lambda: world(
        app(annotations=BASIC), app("tls", paths=(("/x", "Prefix"),), tls=tls()), tls_secret()),
         "auth-without-tls", []),
    Case("auth-with-tls", lambda: world(app(annotations=BASIC, tls=tls()), tls_secret()), "auth-without-tls", []),
    Case("no-auth-no-tls", lambda: world(app(annotations=ALLOW)), "auth-without-tls", []),

    # -- catch-all-shadows
    Case("catch-all-shadows-exact", lambda: world(
        app("site"), app("admin", paths=(("/admin", "Exact"),), svc="api", annotations=ALLOW)),
         "catch-all-shadows", ["default/admin"],
         ("default/site", "default/admin", "/admin (Exact)", "e.g. /admin/x or /Admin", "source-address allowlist",
          "whitelist-source-range", f"host {HOST}")),
    Case("catch-all-shadows-implementation-specific", lambda: world(
        app("site", paths=(("/", "ImplementationSpecific"),)),
        app("admin", paths=(("/admin", "Prefix"), ("/ops", "Prefix")), svc="api", annotations=BASIC)),
         "catch-all-shadows", ["default/admin"], ("/admin (Prefix) and /ops (Prefix)", "/Admin", "auth-type")),
    Case("catch-all-has-same-protection", lambda: world(
        app("site", annotations={"nginx.ingress.kubernetes.io/allowlist-source-range": "192.168.0.0/16"}),
        app("admin", paths=(("/admin", "Exact"),), svc="api", annotations=ALLOW)),
         "catch-all-shadows", []),
    Case("catch-all-same-ingress", lambda: world(
        app("site", paths=(("/", "Prefix"), ("/admin", "Exact")), annotations=ALLOW)),
         "catch-all-shadows", []),
    Case("catch-all-other-host", lambda: world(
        app("site", host="www.example.com"), app("admin", paths=(("/admin", "Exact"),), annotations=ALLOW)),
         "catch-all-shadows", []),

    # -- duplicate-path
    Case("duplicate-older-wins", lambda: world(
        app("new", paths=(("/api", "Prefix"),), created="2024-02-01T00:00:00Z"),
        app("old", paths=(("/api", "Prefix"),), svc="api", created="2024-01-01T00:00:00Z")),
         "duplicate-path", ["default/new"],
         ("default/old", "older", "never served", f"Host {HOST} path /api (Prefix)")),
    Case("duplicate-trailing-slash", lambda: world(
        app("a", paths=(("/api", "Prefix"),), created="2024-01-01T00:00:00Z"),
        app("b", paths=(("/api/", "Prefix"),), created="2024-02-01T00:00:00Z")),
         "duplicate-path", ["default/a"], ("/api/ has priority over /api",)),
    Case("duplicate-no-timestamps", lambda: world(
        app("b", paths=(("/api", "Exact"),)), app("a", paths=(("/api", "Exact"),))),
         "duplicate-path", ["default/b"], ("default/a", "namespace/name")),
    Case("duplicate-prefix-beats-implementation-specific", lambda: world(
        app("a", paths=(("/api", "ImplementationSpecific"),), created="2024-01-01T00:00:00Z"),
        app("b", paths=(("/api", "Prefix"),), created="2024-02-01T00:00:00Z")),
         "duplicate-path", ["default/a"], ("Prefix has priority over ImplementationSpecific",)),
    Case("duplicate-exact-and-prefix-differ", lambda: world(
        app("a", paths=(("/api", "Exact"),)), app("b", paths=(("/api", "Prefix"),))),
         "duplicate-path", []),
    Case("duplicate-other-host", lambda: world(
        app("a", paths=(("/api", "Prefix"),)), app("b", paths=(("/api", "Prefix"),), host="b.example.com")),
         "duplicate-path", []),
    Case("duplicate-with-unselected", lambda: world(
        app("a", paths=(("/api", "Prefix"),)), app("b", paths=(("/api", "Prefix"),), class_name="nginx")),
         "duplicate-path", []),

    # -- missing-service, missing-service-port
    Case("missing-service", lambda: world(app(svc="gone"), app("d", paths=(("/d", "Prefix"),), default=("gone2", 80))),
         "missing-service", ["default/app", "default/d"], ("default/gone", "503", "spec.defaultBackend")),
    Case("service-exists", lambda: world(app()), "missing-service", []),
    Case("missing-service-port-number", lambda: world(app(port=8080)), "missing-service-port", ["default/app"],
         ("Service default/app has no port 8080", "rejects the whole Ingress")),
    Case("missing-service-port-name", lambda: world(app(port="grpc")), "missing-service-port", ["default/app"],
         ("no port grpc",)),
    Case("service-port-by-name", lambda: world(app(port="http")), "missing-service-port", []),

    # -- missing-tls-secret
    Case("missing-tls-secret", lambda: world(app(tls=tls())), "missing-tls-secret", ["default/app"],
         ("Secret default/app-tls", HOST, "does not exist")),
    Case("tls-secret-in-other-namespace", lambda: world(app(tls=tls()), tls_secret(namespace="other")),
         "missing-tls-secret", ["default/app"]),
    Case("tls-secret-exists", lambda: world(app(tls=tls()), tls_secret()), "missing-tls-secret", []),

    # -- tls-secret-invalid
    Case("tls-secret-malformed-pem", lambda: world(app(tls=tls()), tls_secret(
        crt=b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")),
         "tls-secret-invalid", ["default/app"], ("no readable PEM certificate",)),
    Case("tls-secret-key-mismatch", lambda: world(app(tls=tls()), tls_secret(
        crt=certs.make_mismatched(HOST)[0], key=certs.make_mismatched(HOST)[1])),
         "tls-secret-invalid", ["default/app"], ("does not match",)),
    Case("tls-secret-garbage-key", lambda: world(app(tls=tls()), tls_secret(key=b"\x00\xffjunk")),
         "tls-secret-invalid", ["default/app"], ("tls.key",)),
    Case("tls-secret-without-key", lambda: world(app(tls=tls()), {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"namespace": "default", "name": "app-tls"},
        "data": {"tls.crt": base64.b64encode(certs.make_leaf(HOST).cert_pem).decode(), "tls.key": "!!"}}),
         "tls-secret-invalid", ["default/app"], ("no tls.key",)),
    Case("tls-secret-valid", lambda: world(app(tls=tls()), tls_secret()), "tls-secret-invalid", []),

    # -- tls-host-not-covered
    Case("tls-host-not-covered", lambda: world(app(tls=tls()), tls_secret(issued=certs.make_leaf("other.example.com"))),
         "tls-host-not-covered", ["default/app"], (f"does not cover host {HOST}", "other.example.com")),
    Case("tls-wildcard-one-label-only", lambda: world(
        app(host="a.b.example.com", tls=tls(["a.b.example.com"])), tls_secret(issued=certs.make_leaf("*.example.com"))),
         "tls-host-not-covered", ["default/app"], ("a.b.example.com",)),
    Case("tls-cn-only", lambda: world(app(tls=tls()), tls_secret(issued=certs.make_leaf(HOST, san=False))),
         "tls-host-not-covered", ["default/app"], ("no DNS name in subjectAltName",)),
    Case("tls-wildcard-covers", lambda: world(app(tls=tls()), tls_secret(issued=certs.make_leaf("*.example.com"))),
         "tls-host-not-covered", []),

    # -- certificate-expiring
    Case("certificate-expires-soon", lambda: world(app(tls=tls()), tls_secret(
        issued=certs.make_leaf(HOST, not_after=NOW_DT + timedelta(days=5, hours=1)))),
         "certificate-expiring", ["default/app"], ("expires on", "in 5 days")),
    Case("certificate-expires-today", lambda: world(app(tls=tls()), tls_secret(
        issued=certs.make_leaf(HOST, not_after=NOW_DT + timedelta(hours=3)))),
         "certificate-expiring", ["default/app"], ("in less than a day",)),
    Case("certificate-expired", lambda: world(app(tls=tls()), tls_secret(issued=certs.make_leaf(  # NOW's day, not today's
        HOST, not_before=NOW_DT - timedelta(days=60), not_after=NOW_DT - timedelta(days=1)))),
         "certificate-expiring", ["default/app"],
         (f"expired on {(NOW_DT - timedelta(days=1)):%Y-%m-%d}",)),
    Case("certificate-valid-long", lambda: world(app(tls=tls()), tls_secret(
        issued=certs.make_leaf(HOST, not_after=NOW_DT + timedelta(days=15)))),
         "certificate-expiring", []),

    # -- no-class
    Case("no-class", lambda: world(app(class_name=None)), "no-class", ["default/app"],
         ("neither spec.ingressClassName", "--watch-ingress-without-class")),
    Case("no-class-with-default-class", lambda: world(app(class_name=None), {
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "k8s.io/ingress-nginx"}}), "no-class", []),
    Case("class-by-annotation", lambda: world(app(class_name=None, annotations={
        "kubernetes.io/ingress.class": "ingressd"})), "no-class", []),
    Case("class-by-field", lambda: world(app()), "no-class", []),
]


def test_every_code_has_a_positive_and_a_negative_case():
    assert {case.code for case in CASES if case.refs} == set(CODES)
    assert {case.code for case in CASES if not case.refs} == set(CODES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_lint(case: Case):
    findings = [f for f in lint(case.objects(), ours, NOW) if f.code == case.code]
    assert [f"{f.ref.namespace}/{f.ref.name}" for f in findings] == case.refs, findings
    text = " ".join(f.message for f in findings)
    for expected in case.says:
        assert expected in text


def test_a_correct_setup_has_no_findings():
    objects = world(
        app("site", annotations=BASIC, tls=tls(), created="2024-01-01T00:00:00Z"),
        app("api", paths=(("/api", "Prefix"),), svc="api", tls=tls(), created="2024-01-02T00:00:00Z"),
        tls_secret(),
    )
    assert lint(objects, ours, NOW) == []


def test_findings_are_sorted_and_name_their_ingress():
    objects = world(
        app("b", svc="gone", namespace="ns1", host="b.example.com"),
        app("a", svc="gone", namespace="ns1", host="a.example.com", class_name=None),
        app("z", svc="gone", namespace="ns0", host="z.example.com"),
    )
    findings = lint(objects, ours, NOW)
    assert findings == sorted(findings, key=lambda f: (f.ref.namespace, f.ref.name, f.code, f.message))
    assert [(f.ref.namespace, f.ref.name, f.code) for f in findings] == [
        ("ns0", "z", "missing-service"),
        ("ns1", "a", "missing-service"), ("ns1", "a", "no-class"),
        ("ns1", "b", "missing-service"),
    ]
    assert all(isinstance(f, Finding) and f.ref == ObjectRef("Ingress", f.ref.namespace, f.ref.name) for f in findings)
    assert "Service ns0/gone" in findings[0].message


def test_only_networking_v1_ingresses_are_linted():
    old = app(svc="gone")
    old["apiVersion"] = "extensions/v1beta1"
    assert lint(world(old), ours, NOW) == []


def test_now_defaults_to_the_current_time():
    objects = world(app(tls=tls()), tls_secret(issued=certs.make_expired(HOST)))
    assert [f.code for f in lint(objects, ours)] == ["certificate-expiring"]


ODD = [
    None, "text", 3, [], {}, {"kind": "Ingress"}, {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1"},
    {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1", "metadata": []},
    {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1", "metadata": {"name": 5}},
    {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1", "metadata": {"name": "x", "annotations": []},
     "spec": []},
    {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1", "metadata": {"name": "y", "annotations": None},
     "spec": {"rules": [None, 1, {"host": 7}, {"host": "h", "http": []}, {"host": "h", "http": {"paths": [
         None, {"path": 1, "pathType": "Prefix"}, {"path": "/a", "pathType": "Bogus"},
         {"path": "/b", "pathType": "Exact", "backend": {"service": {"name": "s", "port": []}}},
         {"path": "/c", "pathType": "Exact", "backend": {"service": {"name": ["s"], "port": {"number": 1}}}},
         {"path": "/d", "pathType": "Exact", "backend": {"resource": {"kind": "Bucket"}}},
         {"pathType": "ImplementationSpecific", "backend": "nope"}]}}],
              "tls": [None, "x", {"hosts": "h", "secretName": 5}, {"hosts": [None, 3, "h"], "secretName": "s"}],
              "defaultBackend": []}},
    {"kind": "Service", "metadata": {"name": "s", "namespace": None}, "spec": {"ports": [None, {"port": "x"}]}},
    {"kind": "Secret", "metadata": {"name": "s"}, "data": ["x"], "stringData": {"tls.crt": 5, "tls.key": None}},
    {"kind": "Secret", "metadata": {"name": "t"}, "data": {"tls.crt": "%%%", "tls.key": 5}},
    {"kind": "IngressClass", "metadata": {"name": "c", "annotations": ["x"]}},
    {"kind": "EndpointSlice", "metadata": {"name": "e"}, "endpoints": 5},
]


def test_odd_objects_never_raise():
    findings = lint(ODD, ours, NOW)
    assert all(f.code in CODES for f in findings)
    assert lint(ODD, lambda obj: True, NOW) is not None


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(spec=_json, annotations=_json, secret=_json)
def test_random_fields_never_raise(spec, annotations, secret):
    objects = [
        {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1",
         "metadata": {"name": "x", "namespace": "default", "annotations": annotations}, "spec": spec},
        {"kind": "Secret", "metadata": {"name": "s", "namespace": "default"}, "data": secret},
        app("y", annotations=BASIC, tls=tls(secret="s")),
    ]
    lint(objects, lambda obj: True, NOW)


def test_a_canary_ingress_claims_no_path():
    main = ingress("main", [("a.example", [("/", "Prefix", "web", 80)])], created="2024-01-01T00:00:00Z")
    canary = ingress("canary", [("a.example", [("/", "Prefix", "web", 80)])], created="2023-01-01T00:00:00Z",
                     annotations={"nginx.ingress.kubernetes.io/canary": "true",
                                  "nginx.ingress.kubernetes.io/auth-type": "basic"})
    objects = [*service("web", [("http", 80, 8080)]), main, canary]
    codes = {(f.ref.name, f.code) for f in lint(objects, lambda obj: True)}
    assert not any(code in ("duplicate-path", "catch-all-shadows") for _, code in codes), codes
    canary["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary"] = "false"
    codes = {(f.ref.name, f.code) for f in lint(objects, lambda obj: True)}
    assert ("main", "duplicate-path") in codes
