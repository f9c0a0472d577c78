"""End to end: HTTPS backends (backend-protocol, proxy-ssl-*) through the real ``twistd ingressd``.

The backend is a small TLS server on loopback that records, per request, the SNI name it was
sent and whether the TLS session was resumed; it closes the connection after each answer so
every request makes a new TLS connection.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading

import pytest

import certs
from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"


class TLSBackend:
    """HTTP/1.1 over TLS, one request per connection; ``seen``: (sni, resumed, path) per request."""

    def __init__(self, leaf, ca):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(*self._files(leaf))
        self.sni: list = []
        self.context.sni_callback = lambda sock, name, ctx: self.sni.append(name) and None
        self.seen: list[tuple] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.running = True
        threading.Thread(target=self._serve, daemon=True).start()

    @staticmethod
    def _files(leaf):
        import tempfile
        folder = tempfile.mkdtemp()
        cert, key = f"{folder}/cert.pem", f"{folder}/key.pem"
        with open(cert, "wb") as f:
            f.write(leaf.cert_pem)
        with open(key, "wb") as f:
            f.write(leaf.key_pem())
        return cert, key

    def _serve(self):
        while self.running:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(raw,), daemon=True).start()

    def _one(self, raw):
        try:
            raw.settimeout(10)
            sni_before = len(self.sni)
            conn = self.context.wrap_socket(raw, server_side=True)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            path = data.split(b" ", 2)[1].decode()
            sni = self.sni[sni_before] if len(self.sni) > sni_before else None
            self.seen.append((sni, conn.session_reused, path))
            body = json.dumps({"sni": sni, "resumed": conn.session_reused, "path": path}).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            try:
                conn.unwrap()  # close_notify, as real servers send it (an unclean end spoils the session)
            except (OSError, ssl.SSLError):
                pass
            conn.close()
        except (OSError, ssl.SSLError):
            raw.close()

    def stop(self):
        self.running = False
        self.sock.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    manifests = tmp_path_factory.mktemp("backend-tls")
    ca = certs.make_ca()
    leaf = certs.make_leaf("backend.test", issuer=ca)
    backend = TLSBackend(leaf, ca)
    plain = Backend("plain")
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "to-backend", "namespace": "default"},
              "type": "Opaque", "data": {"ca.crt": __import__("base64").b64encode(ca.cert_pem).decode()}}
    https = {N + "backend-protocol": "HTTPS"}
    verified = {**https, N + "proxy-ssl-secret": "default/to-backend", N + "proxy-ssl-verify": "on"}
    objects = [
        INGRESS_CLASS, secret,
        *service("tls", [("https", 443, backend.port)]),
        *service("plain", [("http", 80, plain.port)]),
        ingress("https", [("https.test", [("/", "Prefix", "tls", 443)])], annotations=https),
        ingress("lower", [("lower.test", [("/", "Prefix", "tls", 443)])], annotations={N + "backend-protocol": "https"}),
        ingress("verified", [("verified.test", [("/", "Prefix", "tls", 443)])],
                annotations={**verified, N + "proxy-ssl-name": "backend.test", N + "proxy-ssl-server-name": "on"}),
        ingress("wrong-name", [("wrong.test", [("/", "Prefix", "tls", 443)])],
                annotations={**verified, N + "proxy-ssl-name": "other.test"}),
        ingress("no-name", [("noname.test", [("/", "Prefix", "tls", 443)])], annotations=verified),
        ingress("no-secret", [("nosecret.test", [("/", "Prefix", "tls", 443)])],
                annotations={**https, N + "proxy-ssl-secret": "default/absent"}),
        ingress("auto", [("auto.test", [("/", "Prefix", "tls", 443)])], annotations={N + "backend-protocol": "AUTO_HTTP"}),
        ingress("fcgi", [("fcgi.test", [("/", "Prefix", "plain", 80)])],
                annotations={N + "backend-protocol": "FCGI", N + "proxy-read-timeout": "1"}),
        ingress("plain", [("plain.test", [("/", "Prefix", "plain", 80)])], annotations={N + "backend-protocol": "HTTP"}),
    ]
    write_manifests(manifests / "all.yaml", objects)
    proc = Ingressd(manifests)
    yield proc, backend
    proc.stop()
    backend.stop()
    plain.stop()


def answer(response):
    assert response.status == 200, (response.status, response.body[:300])
    return json.loads(response.body)


def test_https_to_the_backend_without_sni_or_verification_by_default(world):
    proc, backend = world
    for host in ("https.test", "lower.test"):
        seen = answer(proc.get("/x?q=1", host=host))
        assert seen["path"] == "/x?q=1" and seen["sni"] is None


def test_sessions_are_resumed_on_the_next_connection(world):
    proc, _ = world
    first = answer(proc.get("/one", host="https.test"))
    second = answer(proc.get("/two", host="https.test"))
    assert second["resumed"]  # nginx's proxy_ssl_session_reuse on


def test_verification_with_the_secrets_ca_and_the_name_as_sni(world):
    proc, _ = world
    seen = answer(proc.get("/v", host="verified.test"))
    assert seen["sni"] == "backend.test"


def test_a_name_the_certificate_does_not_have_is_502(world):
    proc, backend = world
    before = len(backend.seen)
    assert proc.get("/w", host="wrong.test").status == 502
    # ingress-nginx verifies against $proxy_host ("upstream_balancer") without proxy-ssl-name
    assert proc.get("/n", host="noname.test").status == 502
    assert len(backend.seen) == before  # no request reached it


def test_a_missing_proxy_ssl_secret_denies_the_location(world):
    proc, _ = world
    assert proc.get("/", host="nosecret.test").status == 503


def test_auto_http_follows_the_clients_scheme(world):
    proc, _ = world
    assert proc.get("/", host="auto.test").status == 502  # plain HTTP to a TLS port
    status, body = _https_get(proc, "auto.test", "/auto")
    assert status == 200 and json.loads(body)["path"] == "/auto"


def test_fcgi_to_a_backend_that_speaks_http_is_served_and_times_out(world):
    proc, _ = world
    # FastCGI is spoken now: the HTTP server waits for a request line that never ends, as it
    # would behind nginx's fastcgi_pass (tests/test_e2e_fastcgi.py has a real FastCGI application)
    assert proc.get("/", host="fcgi.test").status == 504
    assert proc.get("/", host="plain.test").status == 200
    _, _, body = proc.admin("/routes")
    assert not [r for r in json.loads(body)["rejections"] if r["name"] == "fcgi"]


def _https_get(proc, host, path):
    import http.client
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection("127.0.0.1", proc.https_port, context=context, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
