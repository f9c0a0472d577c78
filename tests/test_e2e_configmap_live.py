"""The ingress-nginx ConfigMap's client-address and access-log keys end to end, live, through
``twistd ingressd`` in file mode: ``use-forwarded-headers`` + ``proxy-real-ip-cidr`` changing the
address an allow list sees (on a connection opened before the change), ``log-format-upstream``
changing the next access-log line, a SIGHUP keeping the ConfigMap's values, and
``use-proxy-protocol`` making the next connection need a PROXY header; and in cluster mode, the
ConfigMap changed through the (fake) API server."""

from __future__ import annotations

import http.client
import os
import signal

import pytest

import fakeapi
from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests
from test_e2e_configmap import configmap, wait_for

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"
CM = "ingress-nginx/ingress-nginx-controller"
FORWARDED = {"X-Forwarded-For": "203.0.113.7"}


def objects(web, data):
    return [
        INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"}, "data": dict(data)},
        ingress("allow", [("allow.test", [("/", "Prefix", "web", 80)])],
                annotations={N + "whitelist-source-range": "203.0.113.0/24"}),
    ]


def status(conn, path, headers=FORWARDED):
    conn.request("GET", path, headers={"Host": "allow.test", **headers})
    response = conn.getresponse()
    response.read()
    return response.status


def logged(access_log, marker: str) -> str:
    """The access-log line of the request whose path has ``marker``, once written."""
    def line():
        for text in access_log.read_text().splitlines():
            if marker in text:
                return text
        return None
    return wait_for(line)


def unanswered(proc, request: bytes) -> bool:
    try:
        return proc.raw(request) == b""
    except ConnectionResetError:  # closed with the request unread
        return True


def test_the_configmap_s_client_address_and_log_keys_apply_live_and_survive_sighup(tmp_path):
    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    access_log = tmp_path / "access.log"
    write_manifests(manifests / "all.yaml", objects(web, {}))
    proc = Ingressd(manifests, ["--nginx-configmap", CM, "--access-log", str(access_log)])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=10)
        # No key: the TCP peer is the client (X-Forwarded-For not believed); the log line is
        # ingress-nginx's default upstreaminfo line, as with an ingress-nginx ConfigMap.
        assert status(conn, "/before") == 403
        assert logged(access_log, "/before").startswith('127.0.0.1 - - [')
        local = conn.sock.getsockname()

        custom = {"use-forwarded-headers": "true", "proxy-real-ip-cidr": "127.0.0.1/32",
                  "log-format-upstream": "$remote_addr $status $request_uri custom"}
        write_manifests(manifests / "all.yaml", objects(web, custom))
        wait_for(lambda: status(conn, "/poll") == 200)  # the allow list now sees 203.0.113.7
        assert conn.sock.getsockname() == local  # on the connection opened before the change
        assert status(conn, "/after") == 200
        assert logged(access_log, "/after") == "203.0.113.7 200 /after custom"

        # SIGHUP reads the options again: the ConfigMap's values stay laid over them.
        os.kill(proc.process.pid, signal.SIGHUP)
        wait_for(lambda: "SIGHUP" in proc.log())
        assert status(conn, "/sighup") == 200
        assert logged(access_log, "/sighup") == "203.0.113.7 200 /sighup custom"

        # A template ingressd cannot render refuses the change: the previous one keeps serving.
        write_manifests(manifests / "all.yaml", objects(web, {**custom, "log-format-upstream": "$nope"}))
        wait_for(lambda: "ConfigMap refused" in proc.log())
        assert "unknown log variable $nope" in proc.log()
        assert status(conn, "/refused") == 200
        assert logged(access_log, "/refused") == "203.0.113.7 200 /refused custom"
        conn.close()

        # use-proxy-protocol: the next connection must start with a PROXY header.
        write_manifests(manifests / "all.yaml", objects(web, {"use-proxy-protocol": "true",
                                                              "proxy-real-ip-cidr": "127.0.0.1/32"}))
        request = b"GET /pp HTTP/1.1\r\nHost: allow.test\r\nConnection: close\r\n\r\n"
        wait_for(lambda: unanswered(proc, request))  # no header: closed, no answer
        answer = proc.raw(b"PROXY TCP4 203.0.113.9 127.0.0.1 56324 80\r\n" + request)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]  # the PROXY source is the client
        answer = proc.raw(b"PROXY TCP4 198.51.100.9 127.0.0.1 56324 80\r\n" + request)
        assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
        assert logged(access_log, "198.51.100.9").startswith("198.51.100.9 - - [")  # the default line again
    finally:
        proc.stop()
        web.stop()


def test_cluster_mode_a_configmap_change_through_the_api_changes_the_client_address_and_log_line(tmp_path):
    web = Backend("web")
    (tmp_path / "manifests").mkdir()
    access_log = tmp_path / "access.log"
    api = fakeapi.FakeAPIServer(bookmark_interval=0.5).start()
    c = api.cluster
    c.apply(fakeapi.ingress_class())
    c.apply(fakeapi.service("web"))
    c.apply(fakeapi.endpoint_slice("web-1", "web", addresses=("127.0.0.1",), port=web.port))
    c.apply(fakeapi.ingress("app", host="app.example.com", service="web"))
    c.apply(configmap({"whitelist-source-range": "203.0.113.0/24"}))
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
    proc = Ingressd(tmp_path / "manifests", ["--kubernetes", "--kubeconfig", kubeconfig, f"--configmap={CM}",
                                             "--access-log", str(access_log)])
    try:
        assert proc.get("/before", host="app.example.com", headers=FORWARDED).status == 403
        c.apply(configmap({"whitelist-source-range": "203.0.113.0/24", "use-forwarded-headers": "true",
                           "proxy-real-ip-cidr": "127.0.0.1/32", "log-format-upstream": "$remote_addr $request_uri k"}))
        wait_for(lambda: proc.get("/poll", host="app.example.com", headers=FORWARDED).status == 200)
        assert proc.get("/after", host="app.example.com", headers=FORWARDED).status == 200
        assert logged(access_log, "/after") == "203.0.113.7 /after k"
    finally:
        proc.stop()
        api.stop()
        web.stop()
