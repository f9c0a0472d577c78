"""Gateway HTTPS listeners end to end (file mode): the certificates of ``certificateRefs`` served
by SNI on ``--https`` (the manifests' port numbers are not bound), a listener without hostname
serving its certificate for the hosts its routes bring, a certificate in another namespace only
with a ReferenceGrant; checked with real TLS clients (Python's ssl, curl)."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import subprocess

import pytest
import yaml

import certs
from backends import Backend
from harness import Ingressd, service, wait_for, write_manifests

pytestmark = pytest.mark.slow

NS = "gateway-tls"


def tls_secret(name: str, namespace: str, leaf) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"tls.crt": base64.b64encode(leaf.cert_pem).decode(),
                     "tls.key": base64.b64encode(leaf.key_pem()).decode()}}


MANIFESTS = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: ingressd}}
spec: {{controllerName: ingressd.io/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: tls, namespace: {NS}}}
spec:
  gatewayClassName: ingressd
  listeners:
  - name: secure
    port: 443
    protocol: HTTPS
    hostname: secure.example
    tls: {{certificateRefs: [{{name: secure-cert}}]}}
  - name: any
    port: 8443
    protocol: HTTPS
    tls: {{certificateRefs: [{{name: any-cert}}]}}
  - name: granted
    port: 443
    protocol: HTTPS
    hostname: granted.example
    tls: {{certificateRefs: [{{name: granted-cert, namespace: certificates}}]}}
  - name: refused
    port: 443
    protocol: HTTPS
    hostname: refused.example
    tls: {{certificateRefs: [{{name: refused-cert, namespace: certificates}}]}}
  - {{name: plain, port: 80, protocol: HTTP, hostname: plain.example}}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: gateway-certificates, namespace: certificates}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: Gateway, namespace: {NS}}}]
  to: [{{group: "", kind: Secret, name: granted-cert}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: {NS}}}
spec:
  parentRefs: [{{name: tls}}]
  hostnames: [secure.example, routed.example, granted.example, plain.example]
  rules:
  - backendRefs: [{{name: web, port: 8080}}]
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-tls")
    manifests = root / "manifests"
    manifests.mkdir()
    ca = certs.make_ca("gateway test CA")
    cafile = root / "ca.pem"
    cafile.write_bytes(ca.cert_pem)
    web = Backend("web")
    objects = [*yaml.safe_load_all(MANIFESTS), *service("web", [("http", 8080, web.port)], namespace=NS),
               tls_secret("secure-cert", NS, certs.make_leaf("secure.example", issuer=ca)),
               tls_secret("any-cert", NS, certs.make_leaf("routed.example", issuer=ca)),
               tls_secret("granted-cert", "certificates", certs.make_leaf("granted.example", issuer=ca)),
               tls_secret("refused-cert", "certificates", certs.make_leaf("refused.example", issuer=ca))]
    write_manifests(manifests / "all.yaml", objects)
    server = Ingressd(manifests)
    try:
        wait_for(lambda: server.get("/", host="plain.example").status == 200, "the route served")
        yield server, cafile
    finally:
        server.stop()
        web.stop()


def https_get(server, host: str, cafile) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(cafile))
    conn = http.client.HTTPSConnection("127.0.0.1", server.https_port, timeout=10, context=context)
    # The SNI name is the host's, not the address connected to.
    conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", server.https_port), 10),
                                    server_hostname=host)
    try:
        conn.request("GET", "/tls", headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.getheader("x-backend")
    finally:
        conn.close()


def test_an_https_listeners_certificate_is_served_by_sni_on_the_https_port(world):
    server, cafile = world
    assert https_get(server, "secure.example", cafile) == (200, "web")
    out = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", str(cafile), "--resolve",
                          f"secure.example:{server.https_port}:127.0.0.1", "-o", "/dev/null", "-w", "%{http_code}",
                          f"https://secure.example:{server.https_port}/curl"],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout == "200", out.stderr


def test_a_listener_without_hostname_serves_its_certificate_for_its_routes_hosts(world):
    server, cafile = world
    assert https_get(server, "routed.example", cafile) == (200, "web")


def test_a_certificate_in_another_namespace_needs_a_reference_grant(world):
    server, cafile = world
    assert https_get(server, "granted.example", cafile) == (200, "web")
    with pytest.raises(ssl.SSLError):
        https_get(server, "refused.example", cafile)  # the default certificate: not refused.example's
    _, _, body = server.admin("/routes")
    gateway = next(item["status"] for item in json.loads(body)["status"] if item["kind"] == "Gateway")
    listeners = {item["name"]: item for item in gateway["listeners"]}
    refused = {c["type"]: (c["status"], c["reason"]) for c in listeners["refused"]["conditions"]}
    assert refused["ResolvedRefs"] == ("False", "RefNotPermitted")
    assert listeners["secure"]["attachedRoutes"] == 1


def test_http_listeners_are_served_on_the_http_port(world):
    server, _ = world
    assert server.get("/", host="plain.example").status == 200
