"""custom-headers end to end: a ConfigMap in the manifests, the client's headers, a change applied live."""

from __future__ import annotations

import time

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"


def objects(web, value):
    return [
        INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "custom-headers", "namespace": "default"},
         "data": {"My-Custom-Header": value, "My-Custom-Header-Dollar": "$remote_addr"}},
        ingress("custom", [("custom.test", [("/", "Prefix", "web", 80)])],
                annotations={N + "custom-headers": "default/custom-headers"}),
        ingress("missing", [("missing.test", [("/", "Prefix", "web", 80)])],
                annotations={N + "custom-headers": "default/absent"}),
    ]


def test_headers_from_the_configmap_and_a_live_change(tmp_path):
    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", objects(web, "42"))
    proc = Ingressd(manifests, ["--global-allowed-response-headers", "My-Custom-Header,My-Custom-Header-Dollar"])
    try:
        response = proc.get("/", host="custom.test")
        assert response.status == 200
        assert response.headers["my-custom-header"] == "42"
        assert response.headers["my-custom-header-dollar"] == "$remote_addr"
        assert proc.get("/", host="missing.test").status == 503
        write_manifests(manifests / "all.yaml", objects(web, "43"))
        for _ in range(100):  # bounded: the file provider re-reads within a second
            if proc.get("/", host="custom.test").headers.get("my-custom-header") == "43":
                break
            time.sleep(0.05)
        assert proc.get("/", host="custom.test").headers["my-custom-header"] == "43"
    finally:
        proc.stop()
        web.stop()
