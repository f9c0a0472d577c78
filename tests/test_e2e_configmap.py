"""The ingress-nginx ConfigMap end to end, through ``twistd ingressd``: file mode (keys overriding
the built-in defaults, an annotation overriding a key, a live change on an open keep-alive
connection, a refused change keeping the previous version, not ready at start until usable) and
cluster mode against the fake API server (watched; a Warning Event on the ConfigMap)."""

from __future__ import annotations

import http.client

import pytest

import fakeapi
from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests, wait_for

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"
CM = "ingress-nginx/ingress-nginx-controller"




def configmap(data):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"}, "data": dict(data)}


def objects(web, data):
    return [
        INGRESS_CLASS, *service("web", [("http", 80, web.port)]), configmap(data),
        ingress("plain", [("plain.test", [("/", "Prefix", "web", 80)])]),
        ingress("own", [("own.test", [("/", "Prefix", "web", 80)])],
                annotations={N + "proxy-body-size": "1m", N + "whitelist-source-range": "127.0.0.1/32"}),
    ]


def status(conn, host, method="GET", body=None):
    conn.request(method, "/", body=body, headers={"Host": host})
    response = conn.getresponse()
    response.read()
    return response.status


def test_keys_override_defaults_annotations_override_keys_and_a_live_change_keeps_the_connection(tmp_path):
    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", objects(web, {"proxy-body-size": "1k", "block-user-agents": "~*badbot"}))
    proc = Ingressd(manifests, ["--nginx-configmap", CM])
    try:
        assert proc.get("/", host="own.test", headers={"User-Agent": "Mozilla BadBot/1"}).status == 403
        body = b"x" * 2000
        assert proc.get("/", host="plain.test", method="POST", body=body).status == 413  # the key: 1k
        assert proc.get("/", host="own.test", method="POST", body=body).status == 200  # the annotation: 1m
        conn = http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=10)
        assert status(conn, "plain.test") == 200
        local = conn.sock.getsockname()
        write_manifests(manifests / "all.yaml", objects(web, {"proxy-body-size": "1k",
                                                              "whitelist-source-range": "192.0.2.0/24"}))
        wait_for(lambda: proc.get("/", host="plain.test").status == 403)
        assert status(conn, "plain.test") == 403  # the change, on the connection opened before it
        assert conn.sock is not None and conn.sock.getsockname() == local
        assert status(conn, "own.test") == 200  # the Ingress's own allow list wins
        # A change whose key would widen access if ignored is refused; the previous version serves on.
        write_manifests(manifests / "all.yaml", objects(web, {"enable-owasp-modsecurity-crs": "true"}))
        wait_for(lambda: "ConfigMap refused" in proc.log())
        assert "enable-owasp-modsecurity-crs" in proc.log()
        assert status(conn, "plain.test") == 403 and conn.sock.getsockname() == local
        routes = proc.admin("/routes")[2].decode()
        assert "change refused" in routes
        conn.close()
    finally:
        proc.stop()
        web.stop()


def test_not_ready_at_start_until_the_configmap_is_usable(tmp_path):
    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", objects(web, {"enable-modsecurity": "true"}))
    proc = Ingressd(manifests, ["--configmap", CM], wait=False)
    try:
        wait_for(lambda: "ConfigMap refused" in proc.log())
        assert proc.admin("/readyz")[0] != 200
        assert proc.get("/", host="plain.test").status != 200  # nothing is served open
        write_manifests(manifests / "all.yaml", objects(web, {"enable-modsecurity": "false"}))
        proc.wait_ready()
        assert proc.get("/", host="plain.test").status == 200
    finally:
        proc.stop()
        web.stop()


def test_cluster_mode_watches_the_configmap_and_writes_a_warning_event(tmp_path):
    web = Backend("web")
    (tmp_path / "manifests").mkdir()
    api = fakeapi.FakeAPIServer(bookmark_interval=0.5).start()
    c = api.cluster
    c.apply(fakeapi.ingress_class())
    c.apply(fakeapi.service("web"))
    c.apply(fakeapi.endpoint_slice("web-1", "web", addresses=("127.0.0.1",), port=web.port))
    c.apply(fakeapi.ingress("app", host="app.example.com", service="web"))
    c.apply(configmap({"whitelist-source-range": "192.0.2.0/24"}))
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
    proc = Ingressd(tmp_path / "manifests", ["--kubernetes", "--kubeconfig", kubeconfig, f"--configmap={CM}"])
    try:
        assert proc.get("/", host="app.example.com").status == 403
        c.apply(configmap({"whitelist-source-range": "127.0.0.0/8", "no-such-key": "1"}))
        wait_for(lambda: proc.get("/", host="app.example.com").status == 200)

        def event(words):
            def find():
                for obj in c.objects_of("Event", "ingress-nginx"):
                    involved = obj.get("involvedObject", {})
                    if involved.get("kind") == "ConfigMap" and words in obj.get("message", ""):
                        return obj
                return None
            return find

        assert wait_for(event("no-such-key"))["type"] == "Warning"
        c.apply(configmap({"whitelist-source-range": "127.0.0.0/8", "enable-modsecurity": "true"}))
        assert "change refused" in wait_for(event("enable-modsecurity"))["message"]
        assert proc.get("/", host="app.example.com").status == 200  # the previous version
    finally:
        proc.stop()
        api.stop()
        web.stop()
