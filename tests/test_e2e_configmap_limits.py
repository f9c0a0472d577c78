"""The ConfigMap's ``limit-conn-zone-variable`` end to end, live, through ``twistd ingressd
--nginx-configmap``: with the default every client address has its own limit-rps bucket; once the
key says ``$http_x_api_key`` the requests of one key share a bucket whatever the address they
come from (through a trusted proxy here, so both addresses are real to ingressd), requests
without the header are not counted, and a variable ingressd cannot evaluate is refused with the
previous version kept."""

from __future__ import annotations

import http.client

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, wait_for, write_manifests
from test_e2e_configmap import configmap

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"
CM = "ingress-nginx/ingress-nginx-controller"
TRUST = {"use-forwarded-headers": "true", "proxy-real-ip-cidr": "127.0.0.1/32"}


def objects(web, data, rpm="1"):
    # limit-rpm N, burst multiplier 1: N + 1 requests pass per key at once, the next is refused
    return [INGRESS_CLASS, *service("web", [("http", 80, web.port)]), configmap({**TRUST, **data}),
            ingress("limited", [("limited.test", [("/", "Prefix", "web", 80)])],
                    annotations={N + "limit-rpm": rpm, N + "limit-burst-multiplier": "1"})]


def status(conn, client, key=None):
    headers = {"Host": "limited.test", "X-Forwarded-For": client}
    if key is not None:
        headers["X-Api-Key"] = key
    conn.request("GET", "/", headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def test_limit_conn_zone_variable_decides_what_the_limits_count_by_live(tmp_path):
    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", objects(web, {}))
    proc = Ingressd(manifests, ["--nginx-configmap", CM])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=10)
        # the default, $binary_remote_addr: one bucket per client address
        assert [status(conn, "203.0.113.1", "k1") for _ in range(3)] == [200, 200, 503]
        assert status(conn, "203.0.113.2", "k1") == 200  # another address: its own bucket
        local = conn.sock.getsockname()

        # a new limit (rpm 2) gives the Ingress new buckets; the key now counts by X-Api-Key
        write_manifests(manifests / "all.yaml", objects(web, {"limit-conn-zone-variable": "$http_x_api_key"}, "2"))
        wait_for(lambda: status(conn, "203.0.113.9", "probe") == 200 and "configuration 2" in proc.log(),
                 "the key applied")
        assert conn.sock.getsockname() == local  # the connection opened before the change
        statuses = [status(conn, client, "k2") for client in ("203.0.113.1", "203.0.113.2", "203.0.113.3",
                                                               "203.0.113.4", "203.0.113.5")]
        assert statuses == [200, 200, 200, 503, 503]  # burst 2 (rpm 2 × multiplier 1) + 1 for one key, any address
        assert [status(conn, "203.0.113.1") for _ in range(6)] == [200] * 6  # no key: not counted
        assert status(conn, "203.0.113.1", "k3") == 200  # another key: its own bucket

        write_manifests(manifests / "all.yaml", objects(web, {"limit-conn-zone-variable": "$connection"}, "2"))
        wait_for(lambda: "ConfigMap refused" in proc.log(), "the refusal")
        assert "limit-conn-zone-variable" in proc.log() and "$connection" in proc.log()
        assert status(conn, "203.0.113.8", "k2") == 503  # the previous version: k2's bucket is spent
        conn.close()
    finally:
        proc.stop()
        web.stop()
