"""server-alias end to end: an alias serves every path of its host, a name some Ingress has is not taken."""

from __future__ import annotations

import json

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests
from ingressd.testing import PluginHarness
from ingressd_plugins import server_alias

N = "nginx.ingress.kubernetes.io/"


@pytest.mark.parametrize("value, message", [("bad_name", "not a host name"), ("a..b", "not a host name")])
def test_a_value_that_is_no_host_name_rejects_the_ingress(value, message):
    with PluginHarness([server_alias], {N + "server-alias": value}) as harness:
        assert harness.rejection is not None and message in harness.rejection


@pytest.mark.slow
def test_aliases_serve_the_hosts_rules_and_never_take_anothers_host(tmp_path):
    web, api, other = Backend("web"), Backend("api"), Backend("other")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS,
        *service("web", [("http", 80, web.port)]), *service("api", [("http", 80, api.port)]),
        *service("other", [("http", 80, other.port)]),
        ingress("main", [("a.test", [("/", "Prefix", "web", 80)])], created="2026-01-01T00:00:00Z",
                annotations={N + "server-alias": "B.test, c.test, *.wild.test"}),
        ingress("api", [("a.test", [("/api", "Prefix", "api", 80)])]),
        ingress("c", [("c.test", [("/", "Prefix", "other", 80)])]),
    ])
    proc = Ingressd(manifests)
    try:
        assert proc.get("/", host="b.test").headers["x-backend"] == "web"
        assert proc.get("/api/x", host="b.test").headers["x-backend"] == "api"  # another Ingress's path of a.test
        assert proc.get("/", host="x.wild.test").headers["x-backend"] == "web"
        assert proc.get("/", host="c.test").headers["x-backend"] == "other"  # its own Ingress keeps it
        assert "server-alias c.test is already defined for an Ingress rule; skipped" in proc.log()
        _, _, body = proc.admin("/routes")
        hosts = {route["host"] for route in json.loads(body)["routes"]}
        assert {"b.test", "*.wild.test"} <= hosts
    finally:
        proc.stop()
        for backend in (web, api, other):
            backend.stop()
