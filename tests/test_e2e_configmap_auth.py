"""The ConfigMap's ``no-auth-locations`` and ``global-auth-*`` keys end to end, through ``twistd
ingressd --nginx-configmap`` in file mode: a listed Ingress path skips basic and global external
auth while an unlisted one does not (ingress-nginx's e2e settings/no_auth_locations.go), applied
live on a keep-alive connection opened before the change, and a bad value refusing the change
with the previous version kept."""

from __future__ import annotations

import base64
import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import bcrypt
import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, wait_for, write_manifests
from test_e2e_configmap import configmap

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"
CM = "ingress-nginx/ingress-nginx-controller"
PASSWORD = "open sesame"


class AuthService:
    """An external auth service on loopback: 401 with no Authorization, else 200; records what it got."""

    def __init__(self):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                seen.append({name.lower(): value for name, value in self.headers.items()})
                self.send_response(200 if self.headers.get("Authorization") else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _secret() -> dict:
    line = "alice:" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode() + "\n"
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "htfile", "namespace": "default"},
            "type": "Opaque", "data": {"auth": base64.b64encode(line.encode()).decode()}}


def objects(web, data):
    paths = [("/", "Prefix", "web", 80), ("/noauth", "Prefix", "web", 80)]
    return [
        INGRESS_CLASS, *service("web", [("http", 80, web.port)]), configmap(data), _secret(),
        ingress("basic", [("basic.test", paths)],
                annotations={N + "auth-type": "basic", N + "auth-secret": "htfile", N + "auth-realm": "test auth",
                             N + "enable-global-auth": "false"}),
        ingress("global", [("global.test", paths)]),
    ]


def status(conn, host, path):
    conn.request("GET", path, headers={"Host": host})
    response = conn.getresponse()
    response.read()
    return response.status


def test_no_auth_locations_and_global_auth_keys_apply_live_and_a_bad_value_is_refused(tmp_path):
    web = Backend("web")
    auth = AuthService()
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    base = {"global-auth-url": f"http://127.0.0.1:{auth.port}/check"}
    write_manifests(manifests / "all.yaml", objects(web, base))
    proc = Ingressd(manifests, ["--nginx-configmap", CM])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=10)
        assert status(conn, "basic.test", "/noauth") == 401  # the default list: ACME challenges only
        assert status(conn, "global.test", "/noauth") == 401
        local = conn.sock.getsockname()
        asked = len(auth.seen)

        write_manifests(manifests / "all.yaml", objects(web, {
            **base, "no-auth-locations": "/noauth", "global-auth-request-redirect": "/home"}))
        wait_for(lambda: status(conn, "basic.test", "/noauth") == 200, "the list applied")
        assert conn.sock.getsockname() == local  # on the connection opened before the change
        assert status(conn, "global.test", "/noauth") == 200
        assert status(conn, "basic.test", "/") == 401  # unlisted: still authenticated
        assert status(conn, "global.test", "/") == 401
        assert auth.seen[-1].get("x-auth-request-redirect") == "/home"  # global-auth-request-redirect
        token = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
        conn.request("GET", "/", headers={"Host": "basic.test", "Authorization": f"Basic {token}"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        before = len(auth.seen)
        assert before > asked

        # A bad global key refuses the change; the previous version serves on.
        write_manifests(manifests / "all.yaml", objects(web, {
            **base, "no-auth-locations": "/other", "global-auth-cache-duration": "200 forever"}))
        wait_for(lambda: "ConfigMap refused" in proc.log(), "the refusal")
        assert "global-auth-cache-duration" in proc.log()
        assert status(conn, "basic.test", "/noauth") == 200 and conn.sock.getsockname() == local
        conn.close()
        assert json.dumps(proc.admin("/routes")[2].decode()).count("change refused") >= 1
    finally:
        proc.stop()
        auth.stop()
        web.stop()
