"""End to end: client certificates (auth-tls-*) through the real ``twistd ingressd``.

Certificates are generated here (``mtls``: a CA with a CRL, a second CA, valid, expired,
wrong-CA, revoked and other-CN client certificates) and written as Secret manifests. Clients:
Python's ``ssl`` (HTTP/1.1), a small ``h2`` client (HTTP/2) and ``openssl s_client``; each
verify-client mode, the error page, match-cn, the headers the backend receives (forged client
copies replaced), a host without auth-tls on the same port asking for nothing, SNI against Host,
and a CA rotated by changing the Secret's file without a restart. Every client call has a timeout.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import time
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.events
import pytest

import certs
import mtls
from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests

pytestmark = pytest.mark.slow

N = "nginx.ingress.kubernetes.io/"
OPENSSL = shutil.which("openssl")
TIMEOUT = 10.0

# host → auth-tls annotations (every host is in the TLS section, certificate "tls").
HOSTS = {
    "on.example": {N + "auth-tls-secret": "default/ca", N + "auth-tls-pass-certificate-to-upstream": "true"},
    "optional.example": {N + "auth-tls-secret": "ca", N + "auth-tls-verify-client": "optional"},
    "noca.example": {N + "auth-tls-secret": "ca", N + "auth-tls-verify-client": "optional_no_ca"},
    "off.example": {N + "auth-tls-secret": "ca", N + "auth-tls-verify-client": "off"},
    "errpage.example": {N + "auth-tls-secret": "ca", N + "auth-tls-error-page": "http://errors.example/ssl"},
    "cn.example": {N + "auth-tls-secret": "ca", N + "auth-tls-match-cn": "CN=(nomatch|authtls)"},
    "plain.example": {N + "auth-tls-secret": "ca", N + "ssl-redirect": "false"},
    "missing.example": {N + "auth-tls-secret": "nosuch"},
    "rotate.example": {N + "auth-tls-secret": "rotating"},
    "open.example": {},
}


def ca_secret(name: str, ca: bytes, crl: bytes | None = None) -> dict:
    data = {"ca.crt": base64.b64encode(ca).decode()}
    if crl:
        data["ca.crl"] = base64.b64encode(crl).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"namespace": "default", "name": name}, "data": data}


class World:
    def __init__(self, root):
        self.root = root
        self.pki = mtls.make_world()
        self.files = {}
        for kind in ("valid", "expired", "wrong_ca", "revoked", "other_cn"):
            issued = getattr(self.pki, kind)
            cert, key = root / f"{kind}.crt", root / f"{kind}.key"
            cert.write_bytes(issued.cert_pem)
            key.write_bytes(issued.key_pem())
            self.files[kind] = (str(cert), str(key))

    def identity(self, kind: str | None):
        return self.files[kind] if kind else None


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-auth-tls")
    manifests = root / "manifests"
    manifests.mkdir()
    state = World(root)
    web = Backend("web")
    server = certs.make_leaf(*HOSTS, "shared.example", issuer=state.pki.other_ca)
    objects = [INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
               certs.secret_manifest("default", "tls", server.cert_pem, server.key_pem()),
               ca_secret("ca", state.pki.ca.cert_pem, state.pki.crl)]
    for host, annotations in HOSTS.items():
        objects.append(ingress(host.split(".")[0], [(host, [("/", "Prefix", "web", 80)])], annotations=annotations,
                               tls=[{"hosts": [host], "secretName": "tls"}]))
    # One host, three Ingresses: the oldest with auth-tls decides for all (as ingress-nginx's server).
    shared_tls = [{"hosts": ["shared.example"], "secretName": "tls"}]
    objects.append(ingress("shared-old", [("shared.example", [("/", "Prefix", "web", 80)])], tls=shared_tls,
                           annotations={N + "auth-tls-secret": "ca"}, created="2020-01-01T00:00:00Z"))
    objects.append(ingress("shared-new", [("shared.example", [("/other", "Prefix", "web", 80)])], tls=shared_tls,
                           annotations={N + "auth-tls-secret": "ca", N + "auth-tls-verify-client": "optional"},
                           created="2021-01-01T00:00:00Z"))
    objects.append(ingress("shared-plain", [("shared.example", [("/plain", "Prefix", "web", 80)])], tls=shared_tls,
                           created="2019-01-01T00:00:00Z"))
    write_manifests(manifests / "all.yaml", objects)
    write_manifests(manifests / "rotating.yaml", [ca_secret("rotating", state.pki.ca.cert_pem)])
    proc = Ingressd(manifests)
    state.proc, state.web, state.manifests = proc, web, manifests
    yield state
    proc.stop()
    web.stop()


def client_context(identity=None, alpn=("http/1.1",)) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(list(alpn))
    if identity:
        context.load_cert_chain(*identity)
    return context


def tls_socket(port: int, sni: str, identity=None, alpn=("http/1.1",)) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        return client_context(identity, alpn).wrap_socket(sock, server_hostname=sni)
    except Exception:
        sock.close()
        raise


def get(world, host: str, kind: str | None = None, sni: str | None = None, headers=None, path="/"):
    """(status, headers, body, the backend's view of the request headers or None) over HTTP/1.1."""
    conn = http.client.HTTPConnection("127.0.0.1", world.proc.https_port, timeout=TIMEOUT)
    conn.sock = tls_socket(world.proc.https_port, sni or host, world.identity(kind))
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        body = response.read()
        seen = None
        if response.status == 200 and response.getheader("x-backend") == "web":
            seen = {}
            for name, value in json.loads(body)["headers"]:
                seen.setdefault(name, []).append(value)
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body, seen
    finally:
        conn.close()


def test_verify_client_on(world):
    status, _, _, seen = get(world, "on.example", "valid")
    assert status == 200
    assert seen["ssl-client-verify"] == ["SUCCESS"]
    assert seen["ssl-client-subject-dn"] == ["CN=authtls,O=Foo\\, Inc."]
    assert seen["ssl-client-issuer-dn"] == ["CN=mtls test CA"]
    assert seen["ssl-client-cert"][0].startswith("-----BEGIN%20CERTIFICATE-----%0A")
    assert unquote(seen["ssl-client-cert"][0]).encode() == world.pki.valid.cert_pem
    for kind in ("expired", "wrong_ca", "revoked"):
        status, _, body, _ = get(world, "on.example", kind)
        assert (status, body) == (400, b"400 The SSL certificate error\n"), kind
    status, _, body, _ = get(world, "on.example")
    assert (status, body) == (400, b"400 No required SSL certificate was sent\n")


@pytest.mark.parametrize("host, kind, status, verify", [
    ("optional.example", "valid", 200, "SUCCESS"),
    ("optional.example", None, 200, "NONE"),
    ("optional.example", "wrong_ca", 400, None),
    ("optional.example", "expired", 400, None),
    ("optional.example", "revoked", 400, None),
    ("noca.example", "valid", 200, "SUCCESS"),
    ("noca.example", None, 200, "NONE"),
    ("noca.example", "wrong_ca", 200, "FAILED:unable to verify the first certificate"),
    ("noca.example", "expired", 400, None),
    ("noca.example", "revoked", 400, None),
    ("off.example", "valid", 200, "NONE"),
    ("off.example", "wrong_ca", 200, "NONE"),
    ("off.example", None, 200, "NONE"),
])
def test_each_verify_client_mode(world, host, kind, status, verify):
    got, _, body, seen = get(world, host, kind)
    assert got == status, body
    if verify is not None:
        assert seen["ssl-client-verify"] == [verify]
        assert "ssl-client-cert" not in seen  # not asked to pass it


def test_error_page_match_cn_and_a_missing_secret(world):
    status, headers, _, _ = get(world, "errpage.example")
    assert (status, headers["location"]) == (302, "http://errors.example/ssl")
    status, headers, _, _ = get(world, "errpage.example", "expired")
    assert (status, headers["location"]) == (302, "http://errors.example/ssl")
    assert get(world, "errpage.example", "valid")[0] == 200
    assert get(world, "cn.example", "valid")[0] == 200
    status, _, body, _ = get(world, "cn.example", "other_cn")
    assert (status, body) == (403, b"client certificate unauthorized")
    assert get(world, "missing.example", "valid")[0] == 403  # fails closed


def test_forged_headers_never_reach_the_backend(world):
    forged = {"ssl-client-verify": "SUCCESS", "ssl-client-subject-dn": "CN=admin",
              "ssl-client-issuer-dn": "CN=mtls test CA", "ssl-client-cert": "forged"}
    before = len(world.web.requests)
    status, _, body, _ = get(world, "on.example", None, headers=forged)
    assert status == 400 and len(world.web.requests) == before
    status, _, _, seen = get(world, "optional.example", None, headers=forged)
    assert status == 200
    assert seen["ssl-client-verify"] == ["NONE"]
    assert "ssl-client-subject-dn" not in seen and "ssl-client-issuer-dn" not in seen
    assert "ssl-client-cert" not in seen
    status, _, _, seen = get(world, "on.example", "valid", headers=forged)
    assert seen["ssl-client-subject-dn"] == ["CN=authtls,O=Foo\\, Inc."]
    assert seen["ssl-client-cert"] != ["forged"]


def test_sni_decides_which_hosts_ask(world):
    # The host without auth-tls asks for no certificate, on the same port.
    with tls_socket(world.proc.https_port, "open.example", world.identity("valid")) as sock:
        assert sock.getpeercert(binary_form=True)
    status, _, _, seen = get(world, "open.example", "valid")
    assert status == 200 and "ssl-client-verify" not in seen
    # A connection made for a host that asked nothing cannot be used for one that asks (421);
    # and one made for an auth-tls host not for another auth-tls host's policy either.
    assert get(world, "on.example", "valid", sni="open.example")[0] == 421
    assert get(world, "rotate.example", "valid", sni="noca.example")[0] == 421


def test_one_host_one_policy_the_oldest_ingress_decides(world):
    for path in ("/", "/other", "/plain"):
        status, _, body, _ = get(world, "shared.example", path=path)
        assert (status, body) == (400, b"400 No required SSL certificate was sent\n"), path
        status, _, _, seen = get(world, "shared.example", "valid", path=path)
        assert status == 200 and seen["ssl-client-verify"] == ["SUCCESS"], path


def test_plain_http(world):
    conn = http.client.HTTPConnection("127.0.0.1", world.proc.http_port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/", headers={"Host": "on.example"})
        response = conn.getresponse()
        response.read()
        assert response.status == 308  # ssl-redirect first
        conn.request("GET", "/", headers={"Host": "plain.example", "ssl-client-verify": "SUCCESS"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (400, b"400 No required SSL certificate was sent\n")
    finally:
        conn.close()


@pytest.mark.skipif(OPENSSL is None, reason="no openssl binary")
def test_openssl_s_client(world):
    def s_client(host, kind=None):
        args = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{world.proc.https_port}", "-servername", host,
                "-ign_eof"]
        if kind:
            args += ["-cert", world.files[kind][0], "-key", world.files[kind][1]]
        request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        result = subprocess.run(args, input=request, capture_output=True, timeout=TIMEOUT * 2)
        return result.stdout.decode("latin-1")

    out = s_client("on.example", "valid")
    assert "Acceptable client certificate CA names" in out and "mtls test CA" in out
    assert "HTTP/1.1 200 OK" in out and '"ssl-client-verify", "SUCCESS"' in out
    out = s_client("on.example")
    assert "HTTP/1.1 400 Bad Request" in out and "No required SSL certificate was sent" in out
    out = s_client("on.example", "revoked")
    assert "HTTP/1.1 400 Bad Request" in out and "The SSL certificate error" in out
    out = s_client("open.example")
    assert "No client certificate CA names sent" in out and "HTTP/1.1 200 OK" in out
    out = s_client("optional.example")
    assert "Acceptable client certificate CA names" in out and '"ssl-client-verify", "NONE"' in out
    out = s_client("noca.example", "wrong_ca")
    assert "HTTP/1.1 200 OK" in out and '"FAILED:unable to verify the first certificate"' in out
    out = s_client("off.example", "valid")
    assert "No client certificate CA names sent" in out and '"ssl-client-verify", "NONE"' in out


class H2:
    """A minimal HTTP/2 client over TLS with an optional client certificate."""

    def __init__(self, port: int, sni: str, identity=None):
        self.sock = tls_socket(port, sni, identity, alpn=("h2",))
        assert self.sock.selected_alpn_protocol() == "h2"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())

    def get(self, host: str, path: str = "/") -> tuple[int, bytes]:
        stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream, [(b":method", b"GET"), (b":scheme", b"https"),
                                        (b":authority", host.encode()), (b":path", path.encode())], end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        status, body = 0, bytearray()
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            data = self.sock.recv(65536)
            assert data, "connection closed"
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
                    body += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                    self.sock.sendall(self.conn.data_to_send())
                    return status, bytes(body)
            self.sock.sendall(self.conn.data_to_send())
        raise AssertionError("no HTTP/2 answer in time")

    def close(self):
        self.sock.close()


def _verify_header(body: bytes) -> list:
    return [value for name, value in json.loads(body)["headers"] if name == "ssl-client-verify"]


@pytest.mark.parametrize("host, kind, status, verify", [
    ("on.example", "valid", 200, "SUCCESS"),
    ("on.example", None, 400, None),
    ("on.example", "wrong_ca", 400, None),
    ("on.example", "revoked", 400, None),
    ("optional.example", None, 200, "NONE"),
    ("optional.example", "expired", 400, None),
    ("noca.example", "wrong_ca", 200, "FAILED:unable to verify the first certificate"),
    ("off.example", "valid", 200, "NONE"),
])
def test_http2_clients(world, host, kind, status, verify):
    client = H2(world.proc.https_port, host, world.identity(kind))
    try:
        for _ in range(2):  # two streams on one connection: the same answer
            got, body = client.get(host)
            assert got == status, body
            if verify is not None:
                assert _verify_header(body) == [verify]
    finally:
        client.close()


def test_ca_rotation_without_restart(world):
    assert get(world, "rotate.example", "valid")[0] == 200
    assert get(world, "rotate.example", "wrong_ca")[0] == 400
    write_manifests(world.manifests / "rotating.yaml", [ca_secret("rotating", world.pki.other_ca.cert_pem)])
    deadline = time.monotonic() + 30
    while get(world, "rotate.example", "wrong_ca")[0] != 200:
        assert time.monotonic() < deadline, "the new CA was not served in time"
        time.sleep(0.2)
    assert get(world, "rotate.example", "valid")[0] == 400
    assert world.proc.process.poll() is None  # the same process
