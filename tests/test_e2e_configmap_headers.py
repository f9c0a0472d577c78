"""The ingress-nginx ConfigMap's ``add-headers`` and ``proxy-set-headers`` end to end through
``twistd ingressd`` in file mode: the headers of the ConfigMaps they name on every answer (the
backend's and ingressd's own) and on every backend request, an Ingress's own annotation winning
for its names, a change of the referenced ConfigMap applied live on an open connection, and a
header ingressd would not send refusing the change with the previous headers kept; ``hide-headers``
removing the backend's headers (and a hidden header add-headers sets still sent, with its value)."""

from __future__ import annotations

import http.client

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests
from test_e2e_configmap import wait_for

pytestmark = pytest.mark.slow
CM = "ingress-nginx/ingress-nginx-controller"


def _configmap(name, data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ingress-nginx"},
            "data": dict(data)}


def objects(web, added, proxied):
    return [
        INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
        _configmap("ingress-nginx-controller", {"add-headers": "ingress-nginx/added",
                                                "proxy-set-headers": "ingress-nginx/proxied",
                                                "hide-headers": "Content-Type, X-Frame-Options"}),
        _configmap("added", added),
        _configmap("proxied", proxied),
        ingress("plain", [("plain.test", [("/", "Prefix", "web", 80)])]),
        ingress("own", [("own.test", [("/", "Prefix", "web", 80)])],
                annotations={"ingressd.io/response-headers": "X-Frame-Options: SAMEORIGIN",
                             "ingressd.io/request-headers": "X-Tenant: green"}),
    ]


def get(conn, host, path="/"):
    conn.request("GET", path, headers={"Host": host})
    response = conn.getresponse()
    body = response.read()
    return response, body


def sent(body) -> dict:
    import json

    return dict(json.loads(body)["headers"])


def test_add_headers_and_proxy_set_headers_through_twistd(tmp_path):
    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", objects(web, {"X-Frame-Options": "DENY", "X-Served-By": "$host"},
                                                    {"X-Tenant": "blue"}))
    proc = Ingressd(manifests, ["--nginx-configmap", CM])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=10)
        response, body = get(conn, "plain.test")
        assert response.status == 200
        assert response.getheader("X-Frame-Options") == "DENY"
        assert response.getheader("X-Served-By") == "plain.test"
        assert sent(body)["x-tenant"] == "blue"
        assert response.getheader("Content-Type") is None  # hide-headers: the backend's removed
        response, body = get(conn, "plain.test", "/status/503")  # an error answer gets them too
        assert response.status == 503 and response.getheader("X-Frame-Options") == "DENY"
        response, body = get(conn, "nothing.test")  # ingressd's own 404 (no route) keeps its Content-Type
        assert response.status == 404 and response.getheader("Content-Type")

        response, body = get(conn, "own.test")  # the Ingress's own annotations win for their names
        assert response.getheader("X-Frame-Options") == "SAMEORIGIN"
        assert response.getheader("X-Served-By") == "own.test"
        assert sent(body)["x-tenant"] == "green"

        # the referenced ConfigMap changes: applied live, on the connection already open
        write_manifests(manifests / "all.yaml", objects(web, {"X-Frame-Options": "DENY", "X-Version": "2"},
                                                        {"X-Tenant": "blue"}))
        wait_for(lambda: get(conn, "plain.test")[0].getheader("X-Version") == "2")
        assert get(conn, "plain.test")[0].getheader("X-Served-By") is None

        # a header ingressd would not send refuses the change: the previous headers keep serving
        write_manifests(manifests / "all.yaml", objects(web, {"X-Version": "3"}, {"X-Forwarded-For": "1.2.3.4"}))
        wait_for(lambda: "ConfigMap refused" in proc.log())
        assert "X-Forwarded-For" in proc.log()
        response, body = get(conn, "plain.test")
        assert response.getheader("X-Version") == "2" and sent(body)["x-tenant"] == "blue"
        conn.close()
    finally:
        proc.stop()
        web.stop()
