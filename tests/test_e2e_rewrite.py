"""End to end: regular-expression paths and rewrite-target through the real ``twistd ingressd``,
the cases of ingress-nginx's own e2e tests (test/e2e/annotations/rewrite.go, xforwardedprefix.go)."""

from __future__ import annotations

import json

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"
IS = "ImplementationSpecific"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    manifests = tmp_path_factory.mktemp("rewrite")
    web = Backend("web")
    objects = [
        INGRESS_CLASS,
        *service("web", [("http", 80, web.port)]),
        # rw.test: one plain Prefix Ingress, and one with a rewrite: the whole host is in regex mode
        ingress("plain", [("rw.test", [("/api", "Prefix", "web", 80)])], created="2026-01-01T00:00:00Z"),
        ingress("regex", [("rw.test", [("/something(/|$)(.*)", IS, "web", 80)])],
                annotations={N + "use-regex": "true", N + "rewrite-target": "/$2"}),
        # the same plain Ingress on a host without regex: matched by the Ingress v1 rules
        ingress("plain-elsewhere", [("plain.test", [("/api", "Prefix", "web", 80)])]),
        # e2e "should use correct longest path match"
        ingress("kube-lego", [("lego.test", [("/.well-known/acme/challenge", "Prefix", "web", 80)])]),
        ingress("rewrite-index", [("lego.test", [("/", "Prefix", "web", 80)])],
                annotations={N + "rewrite-target": "/new/backend"}),
        # e2e "should fail to use longest match for documented warning"
        ingress("foo-bar", [("longest.test", [("/foo/bar/bar", "Prefix", "web", 80)])]),
        ingress("foo-regex", [("longest.test", [("/foo/bar/[a-z]{3}", IS, "web", 80)])],
                annotations={N + "use-regex": "true", N + "rewrite-target": "/new/backend"}),
        # x-forwarded-prefix, with a rewrite
        ingress("xfp", [("xfp.test", [("/", "Prefix", "web", 80)])],
                annotations={N + "x-forwarded-prefix": "/test/value", N + "rewrite-target": "/foo"}),
        # a pattern RE2 cannot run in linear time: this Ingress alone is rejected
        ingress("lookaround", [("bad.test", [("/(?!admin).*", IS, "web", 80)])],
                annotations={N + "use-regex": "true"}),
    ]
    write_manifests(manifests / "all.yaml", objects)
    proc = Ingressd(manifests)
    yield proc, web
    proc.stop()
    web.stop()


def backend_saw(response):
    assert response.status == 200, (response.status, response.body[:200])
    seen = json.loads(response.body)
    return seen["path"], dict(seen["headers"])


def test_capture_groups_and_the_query_string(world):
    proc, _ = world
    for asked, expected in (("/something", "/"), ("/something/", "/"), ("/something/new", "/new"),
                            ("/SomeThing/new?a=1&b=2", "/new?a=1&b=2")):
        assert backend_saw(proc.get(asked, host="rw.test"))[0] == expected, asked


def test_the_regex_mode_covers_every_ingress_of_the_host_and_no_other_host(world):
    proc, _ = world
    # /api of the plain Ingress is "^/api", case-insensitive, on rw.test …
    assert backend_saw(proc.get("/APIS/x", host="rw.test"))[0] == "/APIS/x"
    # … and a Prefix path by the Ingress v1 rules elsewhere
    assert proc.get("/apis/x", host="plain.test").status == 404
    assert backend_saw(proc.get("/api/x", host="plain.test"))[0] == "/api/x"


def test_longest_pattern_first(world):
    proc, _ = world
    challenge = "/.well-known/acme/challenge"
    assert backend_saw(proc.get(challenge, host="lego.test"))[0] == challenge
    assert backend_saw(proc.get("/other", host="lego.test"))[0] == "/new/backend"
    assert backend_saw(proc.get("/foo/bar/bar", host="longest.test"))[0] == "/new/backend"


def test_x_forwarded_prefix(world):
    proc, _ = world
    path, headers = backend_saw(proc.get("/", host="xfp.test", headers={"X-Forwarded-Prefix": "/forged"}))
    assert path == "/foo" and headers["x-forwarded-prefix"] == "/test/value"


def test_a_pattern_re2_refuses_rejects_its_ingress_alone(world):
    proc, _ = world
    assert proc.get("/x", host="bad.test").status == 404
    status, _, body = proc.admin("/routes")
    rejected = [r for r in json.loads(body)["rejections"] if r["name"] == "lookaround"]
    assert rejected and "look-around" in rejected[0]["reason"], rejected
    assert backend_saw(proc.get("/something/ok", host="rw.test"))[0] == "/ok"
