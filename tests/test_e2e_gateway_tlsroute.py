"""TLSRoute end to end (file mode, the real ``twistd ingressd`` without --enable-ssl-passthrough):
a Gateway's TLS Passthrough listener served on ``--https``; a ClientHello naming a TLSRoute's
hostname is spliced unterminated to its backend, so a client verifying against the backend's own
CA sees the backend's certificate (the conformance tests tlsroute-simple-same-namespace,
-hostname-intersection, -invalid-backendref-nonexistent, by traffic); an HTTPS listener on the
same port keeps terminating its own host; a TLSRoute added later is honoured live; the judged
status shows on ``/routes``."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl

import pytest
import yaml

import certs
from backends import Backend
from harness import Ingressd, service, wait_for, write_manifests
from test_e2e_gateway_https import tls_secret
from test_e2e_passthrough import TLSBackend

pytestmark = pytest.mark.slow

NS = "gateway-tlsroute"

GATEWAY = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: ingressd}}
spec: {{controllerName: ingressd.io/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge, namespace: {NS}}}
spec:
  gatewayClassName: ingressd
  listeners:
  - name: passthrough
    port: 443
    protocol: TLS
    hostname: "*.example.com"
    tls: {{mode: Passthrough}}
  - name: web
    port: 443
    protocol: HTTPS
    hostname: web.example.org
    tls: {{certificateRefs: [{{name: web-cert}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {{name: abc, namespace: {NS}}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [abc.example.com, abc.example.net]
  rules: [{{backendRefs: [{{name: tls-one, port: 443}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {{name: wild, namespace: {NS}}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: ["*.wild.example.com"]
  rules: [{{backendRefs: [{{name: tls-two, port: 443}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {{name: gone, namespace: {NS}}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [gone.example.com]
  rules: [{{backendRefs: [{{name: nonexistent, port: 443}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: {NS}}}
spec:
  parentRefs: [{{name: edge, sectionName: web}}]
  rules: [{{backendRefs: [{{name: web, port: 8080}}]}}]
"""

LATER = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {{name: later, namespace: {NS}}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [later.example.com]
  rules: [{{backendRefs: [{{name: tls-two, port: 443}}]}}]
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-tlsroute")
    manifests = root / "manifests"
    manifests.mkdir()
    backend_ca = certs.make_ca("TLSRoute backends' own CA")
    gateway_ca = certs.make_ca("gateway CA")
    (root / "backend-ca.pem").write_bytes(backend_ca.cert_pem)
    (root / "gateway-ca.pem").write_bytes(gateway_ca.cert_pem)
    one = TLSBackend(certs.make_leaf("abc.example.com", "abc.example.net", issuer=backend_ca), root, name="tls-one")
    two = TLSBackend(certs.make_leaf("*.wild.example.com", "later.example.com", issuer=backend_ca), root,
                     name="tls-two")
    web = Backend("web")
    objects = [*yaml.safe_load_all(GATEWAY),
               *service("tls-one", [("https", 443, one.port)], namespace=NS),
               *service("tls-two", [("https", 443, two.port)], namespace=NS),
               *service("web", [("http", 8080, web.port)], namespace=NS),
               tls_secret("web-cert", NS, certs.make_leaf("web.example.org", issuer=gateway_ca))]
    write_manifests(manifests / "all.yaml", objects)
    server = Ingressd(manifests)
    try:
        wait_for(lambda: _reached(server, "abc.example.com", root) is not None, "the TLSRoute served", timeout=30)
        yield server, root, manifests
    finally:
        server.stop()
        for backend in (one, two, web):
            backend.stop()


def _get(server, name: str, cafile) -> tuple[dict, dict]:
    """GET / over TLS with SNI ``name``, verified against ``cafile``: (the JSON answer, the peer's
    certificate)."""
    context = ssl.create_default_context(cafile=str(cafile))
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", server.https_port), 10),
                               server_hostname=name)
    conn = http.client.HTTPSConnection("127.0.0.1", server.https_port, timeout=10, context=context)
    conn.sock = sock
    try:
        peer = sock.getpeercert()
        conn.request("GET", "/seen", headers={"Host": name})
        response = conn.getresponse()
        return json.loads(response.read()), peer
    finally:
        conn.close()


def _reached(server, name: str, root) -> str | None:
    try:
        answer, _ = _get(server, name, root / "backend-ca.pem")
    except (OSError, ssl.SSLError, ValueError):
        return None
    return answer.get("backend")


def _subject(peer: dict) -> str:
    return dict(item[0] for item in peer["subject"]).get("commonName", "") or str(peer.get("subjectAltName"))


def test_the_backend_presents_its_own_certificate(world):
    server, root, _ = world
    answer, peer = _get(server, "abc.example.com", root / "backend-ca.pem")
    assert answer["backend"] == "tls-one" and answer["host"] == "abc.example.com"
    assert ("DNS", "abc.example.com") in peer["subjectAltName"]  # verified against the backend's CA


def test_a_wildcard_tlsroute_takes_names_below_it(world):
    server, root, _ = world
    assert _reached(server, "x.wild.example.com", root) == "tls-two"
    assert _reached(server, "y.z.wild.example.com", root) is None  # the backend's *. covers one label only
    # ...but the splice happened: the name is passed through (the backend's certificate, not ingressd's)
    context = ssl.create_default_context(cafile=str(root / "backend-ca.pem"))
    context.check_hostname = False
    with context.wrap_socket(socket.create_connection(("127.0.0.1", server.https_port), 10),
                             server_hostname="y.z.wild.example.com") as sock:
        assert ("DNS", "*.wild.example.com") in sock.getpeercert()["subjectAltName"]


def test_a_hostname_outside_the_listeners_is_not_passed_through(world):
    server, root, _ = world
    # abc.example.net does not intersect the listener's *.example.com: ingressd terminates it itself
    assert _reached(server, "abc.example.net", root) is None
    context = ssl.create_default_context(cafile=str(root / "backend-ca.pem"))
    with pytest.raises(ssl.SSLError):
        context.wrap_socket(socket.create_connection(("127.0.0.1", server.https_port), 10),
                            server_hostname="abc.example.net").close()


def test_a_nonexistent_backend_has_its_connections_closed(world):
    server, root, _ = world
    context = ssl.create_default_context(cafile=str(root / "backend-ca.pem"))
    with pytest.raises((ssl.SSLError, OSError)):
        context.wrap_socket(socket.create_connection(("127.0.0.1", server.https_port), 10),
                            server_hostname="gone.example.com").close()


def test_the_https_listener_on_the_same_port_still_terminates(world):
    server, root, _ = world
    context = ssl.create_default_context(cafile=str(root / "gateway-ca.pem"))
    conn = http.client.HTTPSConnection("127.0.0.1", server.https_port, timeout=10, context=context)
    conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", server.https_port), 10),
                                    server_hostname="web.example.org")
    try:
        conn.request("GET", "/", headers={"Host": "web.example.org"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200 and response.getheader("x-backend") == "web"
    finally:
        conn.close()


def test_openssl_s_client_sees_the_backends_certificate(world):
    import shutil
    import subprocess

    server, root, _ = world
    if shutil.which("openssl") is None:  # .ci/run installs it: missing there is a failure
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("no openssl binary: .ci/run installs it")
        pytest.skip("no openssl binary")
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{server.https_port}",
                           "-servername", "abc.example.com", "-CAfile", str(root / "backend-ca.pem"),
                           "-verify_return_error", "-brief"],
                          input=b"", capture_output=True, timeout=30)
    said = (done.stdout + done.stderr).decode("latin-1")
    assert "Verification: OK" in said or "Verify return code: 0" in said, said


def status_of(server, kind: str, name: str) -> dict:
    _, _, body = server.admin("/routes")
    for item in json.loads(body)["status"]:
        if (item["kind"], item["namespace"], item["name"]) == (kind, NS, name):
            return item["status"]
    raise AssertionError(f"no status for {kind} {NS}/{name}")


def test_the_judged_status_is_shown(world):
    server, _, _ = world
    abc = {c["type"]: (c["status"], c["reason"]) for c in status_of(server, "TLSRoute", "abc")["parents"][0]["conditions"]}
    assert abc == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    gone = {c["type"]: (c["status"], c["reason"])
            for c in status_of(server, "TLSRoute", "gone")["parents"][0]["conditions"]}
    assert gone["ResolvedRefs"] == ("False", "BackendNotFound")
    listeners = {item["name"]: item for item in status_of(server, "Gateway", "edge")["listeners"]}
    assert listeners["passthrough"]["attachedRoutes"] == 3


def test_a_tlsroute_added_later_is_honoured_live(world):
    server, root, manifests = world
    assert _reached(server, "later.example.com", root) is None
    write_manifests(manifests / "later.yaml", list(yaml.safe_load_all(LATER)))
    try:
        wait_for(lambda: _reached(server, "later.example.com", root) == "tls-two", "the new TLSRoute served",
                 timeout=30)
    finally:
        (manifests / "later.yaml").unlink()
    wait_for(lambda: _reached(server, "later.example.com", root) is None, "the TLSRoute gone", timeout=30)
