"""BackendTLSPolicy end to end (file mode, the real ``twistd ingressd``): an HTTPRoute's requests
to a Service a policy targets go over TLS to a backend with its own certificate, verified against
the policy's CA ConfigMap with its hostname as SNI and name, or its subjectAltNames (DNS, URI);
a mismatched name, SAN or CA fails (502) and a policy whose CA ConfigMap is missing answers 500
(the cases of the conformance tests backendtlspolicy, -san, -invalid-ca-certificate-ref, by
traffic); the judged status shows on ``/routes``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import certs
from harness import Ingressd, service, wait_for, write_manifests
from test_e2e_passthrough import TLSBackend

pytestmark = pytest.mark.slow

NS = "gateway-backend-tls"
SPIFFE = "spiffe://cluster.local/ns/gateway-backend-tls/sa/backend"


def _leaf(issuer, dns: str, uri: str):
    """A server certificate naming ``dns`` and the URI ``uri`` (certs.make_leaf has DNS names only)."""
    key = certs.new_key("ec")
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
            .issuer_name(issuer.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns), x509.UniformResourceIdentifier(uri)]),
                           False)
            .sign(issuer.key, hashes.SHA256()))
    return certs.Issued(cert, key)


# (host of the HTTPRoute = name of its Service and policy, the policy's validation)
CASES = {
    "valid": {"hostname": "abc.example.com", "caCertificateRefs": [{"group": "", "kind": "ConfigMap",
                                                                    "name": "backend-ca"}]},
    "host-mismatch": {"hostname": "other.example.com", "caCertificateRefs": [{"group": "", "kind": "ConfigMap",
                                                                             "name": "backend-ca"}]},
    "cert-mismatch": {"hostname": "abc.example.com", "caCertificateRefs": [{"group": "", "kind": "ConfigMap",
                                                                           "name": "other-ca"}]},
    "no-ca": {"hostname": "abc.example.com", "caCertificateRefs": [{"group": "", "kind": "ConfigMap",
                                                                   "name": "nonexistent"}]},
    "san-uri": {"hostname": "abc.example.com", "subjectAltNames": [{"type": "URI", "uri": SPIFFE}],
                "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "backend-ca"}]},
    "san-dns-mismatch": {"hostname": "abc.example.com",
                         "subjectAltNames": [{"type": "Hostname", "hostname": "nope.example.com"}],
                         "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "backend-ca"}]},
    "san-multiple": {"hostname": "abc.example.com",
                     "subjectAltNames": [{"type": "Hostname", "hostname": "nope.example.com"},
                                         {"type": "Hostname", "hostname": "abc.example.com"}],
                     "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "backend-ca"}]},
}


def _objects(backend_port: int, ca_pem: bytes, other_ca_pem: bytes) -> list:
    objects = [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "ingressd"},
         "spec": {"controllerName": "ingressd.io/gateway-controller"}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw", "namespace": NS},
         "spec": {"gatewayClassName": "ingressd", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "backend-ca", "namespace": NS},
         "data": {"ca.crt": ca_pem.decode()}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other-ca", "namespace": NS},
         "data": {"ca.crt": other_ca_pem.decode()}},
    ]
    for name, validation in CASES.items():
        objects += service(name, [("https", 443, backend_port)], namespace=NS)
        objects.append({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                        "metadata": {"name": name, "namespace": NS},
                        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [f"{name}.example"],
                                 "rules": [{"backendRefs": [{"name": name, "port": 443}]}]}})
        objects.append({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
                        "metadata": {"name": name, "namespace": NS},
                        "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": name}],
                                 "validation": validation}})
    return objects


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-backend-tls")
    manifests = root / "manifests"
    manifests.mkdir()
    ca, other_ca = certs.make_ca("backend CA"), certs.make_ca("another CA")
    backend = TLSBackend(_leaf(ca, "abc.example.com", SPIFFE), root, name="tls-backend")
    write_manifests(manifests / "all.yaml", _objects(backend.port, ca.cert_pem, other_ca.cert_pem))
    server = Ingressd(manifests)
    try:
        wait_for(lambda: server.get("/", host="valid.example").status == 200, "the route served", timeout=30)
        yield server
    finally:
        server.stop()
        backend.stop()


def test_a_valid_policy_reaches_the_backend_over_verified_tls(world):
    response = world.get("/backendtlspolicy", host="valid.example")
    assert response.status == 200
    answer = response.json()
    assert answer["backend"] == "tls-backend" and answer["path"] == "/backendtlspolicy"


def test_a_uri_subject_alt_name_is_verified(world):
    assert world.get("/", host="san-uri.example").status == 200


def test_any_of_several_subject_alt_names_will_do(world):
    assert world.get("/", host="san-multiple.example").status == 200


@pytest.mark.parametrize("host", ["host-mismatch", "cert-mismatch", "san-dns-mismatch"])
def test_a_backend_that_fails_verification_is_never_used(world, host):
    assert world.get("/", host=f"{host}.example").status == 502


def test_a_policy_without_its_ca_answers_500(world):
    assert world.get("/", host="no-ca.example").status == 500


def _policy_status(server, name: str) -> dict:
    _, _, body = server.admin("/routes")
    for item in json.loads(body)["status"]:
        if (item["kind"], item["namespace"], item["name"]) == ("BackendTLSPolicy", NS, name):
            [ancestor] = item["status"]["ancestors"]
            assert ancestor["ancestorRef"]["name"] == "gw"
            return {c["type"]: (c["status"], c["reason"]) for c in ancestor["conditions"]}
    raise AssertionError(f"no status for BackendTLSPolicy {name}")


def test_the_judged_status_is_shown(world):
    assert _policy_status(world, "valid") == {"Accepted": ("True", "Accepted"),
                                              "ResolvedRefs": ("True", "ResolvedRefs")}
    assert _policy_status(world, "no-ca") == {"Accepted": ("False", "NoValidCACertificate"),
                                              "ResolvedRefs": ("False", "InvalidCACertificateRef")}
