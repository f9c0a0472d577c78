"""The ConfigMap's ``retry-non-idempotent`` end to end, live, through ``twistd ingressd
--nginx-configmap``: a POST that reached an endpoint closing without answering is not sent to the
next one by default (nginx: 502), and is once the key says true (applied on a keep-alive
connection opened before the change), except on a route whose proxy-next-upstream is off."""

from __future__ import annotations

import http.client

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, wait_for, write_manifests
from test_e2e_affinity import pool
from test_e2e_configmap import configmap
from test_e2e_next_upstream import Faulty

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"
CM = "ingress-nginx/ingress-nginx-controller"


def objects(closer, ok, data):
    return [
        INGRESS_CLASS, configmap(data),
        *pool("plain", [closer.port, ok.port]),
        ingress("plain", [("plain.test", [("/", "Prefix", "plain", 80)])]),
        *pool("off", [closer.port, ok.port]),
        ingress("off", [("off.test", [("/", "Prefix", "off", 80)])], annotations={N + "proxy-next-upstream": "off"}),
    ]


def posts(conn, host, count=4):
    statuses = []
    for _ in range(count):
        conn.request("POST", "/form", body=b"a=1", headers={"Host": host})
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
        if response.will_close:
            conn.close()
    return sorted(statuses)


def test_retry_non_idempotent_applies_live(tmp_path):
    closer, ok = Faulty("closer", "close"), Backend("ok")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", objects(closer, ok, {}))
    proc = Ingressd(manifests, ["--nginx-configmap", CM])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=10)
        conn.request("GET", "/warm", headers={"Host": "plain.test"})  # a GET is retried: 200
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        local = conn.sock.getsockname()
        assert posts(proc.connection(), "plain.test") == [200, 200, 502, 502]  # round-robin: half met the closer

        write_manifests(manifests / "all.yaml", objects(closer, ok, {"retry-non-idempotent": "true"}))
        wait_for(lambda: posts(proc.connection(), "plain.test") == [200] * 4, "POSTs retried")
        assert posts(conn, "plain.test") == [200] * 4
        assert conn.sock is not None and conn.sock.getsockname() == local  # the connection from before
        assert 502 in posts(proc.connection(), "off.test")  # proxy-next-upstream: off wins

        write_manifests(manifests / "all.yaml", objects(closer, ok, {"retry-non-idempotent": "perhaps"}))
        wait_for(lambda: "ConfigMap refused" in proc.log(), "the refusal")
        assert "retry-non-idempotent" in proc.log()
        assert posts(proc.connection(), "plain.test") == [200] * 4  # the previous version serves on
        conn.close()
    finally:
        proc.stop()
        closer.stop()
        ok.stop()
