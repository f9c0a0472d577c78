"""proxy-http-version end to end: the backend receives HTTP/1.0 requests, and a new connection each time."""

from __future__ import annotations

import json

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"


def test_http_1_0_to_the_backend(tmp_path):
    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
        ingress("old", [("old.test", [("/", "Prefix", "web", 80)])], annotations={N + "proxy-http-version": "1.0"}),
        ingress("new", [("new.test", [("/", "Prefix", "web", 80)])]),
    ])
    proc = Ingressd(manifests)
    try:
        for _ in range(3):
            seen = json.loads(proc.get("/x", host="old.test").body)
            assert seen["version"] == "HTTP/1.0" and seen["path"] == "/x"
        assert json.loads(proc.get("/", host="new.test").body)["version"] == "HTTP/1.1"
    finally:
        proc.stop()
        web.stop()
