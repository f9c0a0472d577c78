"""A Gateway's ``spec.tls.backend.clientCertificateRef`` (config.gateway.backend_client_cert): the
Gateway's ResolvedRefs as the conformance test GatewayInvalidTLSBackendConfiguration expects it,
the certificate put on the BackendTLSPolicy routes attached to it, and end to end
(GatewayTLSBackendClientCertificate, ported): the real ``twistd ingressd`` presents it to a TLS
backend that requires a client certificate."""

from __future__ import annotations

import base64
import json
import ssl

import pytest

import certs
import mtls
from harness import Ingressd, service, wait_for, write_manifests
from ingressd.config.gateway.backend_tls_policy import BACKEND_TLS
from ingressd.config.gateway_api import translate
from ingressd.config.model import ObjectRef
from ingressd.config.store import object_key, pack
from ingressd.features import BackendTLS
from test_e2e_passthrough import TLSBackend

NS = "gateway-conformance-infra"
SERVER_CA = certs.make_ca("backend CA")
CLIENT = mtls.make_world()


def _secret(name: str, certificate: bytes, key: bytes, namespace: str = NS, type_: str = "kubernetes.io/tls") -> dict:
    data = {}
    if certificate:
        data["tls.crt"] = base64.b64encode(certificate).decode()
    if key:
        data["tls.key"] = base64.b64encode(key).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": type_, "metadata": {"name": name, "namespace": namespace},
            "data": data}


def _gateway(name: str, ref: dict | None) -> dict:
    spec = {"gatewayClassName": "ingressd", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                                                           "allowedRoutes": {"namespaces": {"from": "Same"}}}]}
    if ref is not None:
        spec["tls"] = {"backend": {"clientCertificateRef": ref}}
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": name, "namespace": NS},
            "spec": spec}


def _route(name: str, gateway: str, host: str, service_name: str) -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": name, "namespace": NS},
            "spec": {"parentRefs": [{"name": gateway}], "hostnames": [host],
                     "rules": [{"backendRefs": [{"name": service_name, "port": 443}]}]}}


def _policy(name: str, service_name: str) -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": service_name}],
                     "validation": {"caCertificateRefs": [{"group": "", "kind": "ConfigMap",
                                                           "name": "tls-checks-ca-certificate"}],
                                    "hostname": "abc.example.com"}}}


def objects(backend_port: int = 8443) -> list[dict]:
    other = mtls.client_leaf("other", CLIENT.ca)
    return [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "ingressd"},
         "spec": {"controllerName": "ingressd.io/gateway-controller"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tls-checks-ca-certificate", "namespace": NS},
         "data": {"ca.crt": SERVER_CA.cert_pem.decode()}},
        _secret("tls-checks-client-certificate", CLIENT.valid.cert_pem, CLIENT.valid.key_pem()),
        _secret("malformed-client-certificate", b"", b"", type_="Opaque"),
        _secret("mismatched-client-certificate", CLIENT.valid.cert_pem, other.key_pem()),
        _secret("certificate", CLIENT.valid.cert_pem, CLIENT.valid.key_pem(), namespace="gateway-conformance-web-backend"),
        # gateway-tls-backend-client-certificate.yaml
        _gateway("gateway-tls-backend-client-certificate",
                 {"group": "", "kind": "Secret", "name": "tls-checks-client-certificate"}),
        _route("gateway-tls-backend-client-certificate", "gateway-tls-backend-client-certificate",
               "abc.example.com", "tls-backend-with-client-cert-validation"),
        _policy("gateway-tls-backend-client-certificate-test", "tls-backend-with-client-cert-validation"),
        *service("tls-backend-with-client-cert-validation", [("https", 443, backend_port)], namespace=NS),
        # the same backend through a Gateway that presents nothing
        _gateway("no-client-certificate", None),
        _route("no-client-certificate", "no-client-certificate", "none.example.com", "also-validating"),
        _policy("also-validating", "also-validating"),
        *service("also-validating", [("https", 443, backend_port)], namespace=NS),
        # gateway-invalid-tls-backend-configuration.yaml
        _gateway("gateway-client-certificate-nonexistent-secret",
                 {"group": "", "kind": "Secret", "name": "nonexistent-certificate"}),
        _gateway("gateway-client-certificate-unsupported-group",
                 {"group": "wrong.group.company.io", "kind": "Secret", "name": "tls-validity-checks-certificate"}),
        _gateway("gateway-client-certificate-unsupported-kind",
                 {"group": "", "kind": "WrongKind", "name": "tls-validity-checks-certificate"}),
        _gateway("gateway-client-certificate-malformed-secret",
                 {"group": "", "kind": "Secret", "name": "malformed-client-certificate"}),
        _gateway("gateway-client-certificate-mismatched-key",
                 {"group": "", "kind": "Secret", "name": "mismatched-client-certificate"}),
        _gateway("gateway-client-certificate-missing-reference-grant",
                 {"group": "", "kind": "Secret", "name": "certificate", "namespace": "gateway-conformance-web-backend"}),
    ]


def snapshot(items) -> dict:
    found: dict = {}
    for obj in items:
        found.setdefault(obj["kind"], {})[object_key(obj)] = pack(obj)
    return found


def gateway_conditions(config, name: str) -> dict:
    body = json.loads(dict(config.status)[ObjectRef("Gateway", NS, name)].body)
    return {c["type"]: (c["status"], c["reason"]) for c in body["conditions"]}


@pytest.mark.parametrize("name,reason", [
    ("gateway-client-certificate-nonexistent-secret", "InvalidClientCertificateRef"),
    ("gateway-client-certificate-unsupported-group", "InvalidClientCertificateRef"),
    ("gateway-client-certificate-unsupported-kind", "InvalidClientCertificateRef"),
    ("gateway-client-certificate-malformed-secret", "InvalidClientCertificateRef"),
    ("gateway-client-certificate-mismatched-key", "InvalidClientCertificateRef"),
    ("gateway-client-certificate-missing-reference-grant", "RefNotPermitted"),
])
def test_an_unusable_client_certificate_ref_is_said_and_the_gateway_stays_accepted(name, reason):
    conditions = gateway_conditions(translate(snapshot(objects())), name)
    assert conditions["ResolvedRefs"] == ("False", reason)
    assert conditions["Accepted"] == ("True", "Accepted")


def test_a_usable_one_is_resolved_and_put_on_the_tls_routes():
    config = translate(snapshot(objects()))
    assert gateway_conditions(config, "gateway-tls-backend-client-certificate")["ResolvedRefs"] == \
        ("True", "ResolvedRefs")
    assert "ResolvedRefs" not in gateway_conditions(config, "no-client-certificate")  # none named
    tls = {route.host: dict(route.features)[BACKEND_TLS] for route in config.routes}
    assert isinstance(tls["abc.example.com"], BackendTLS)
    assert (tls["abc.example.com"].certificate, tls["abc.example.com"].key) == \
        (CLIENT.valid.cert_pem, CLIENT.valid.key_pem())
    assert tls["none.example.com"].certificate is None


def test_a_reference_grant_permits_another_namespaces_secret():
    grant = {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
             "metadata": {"name": "certs", "namespace": "gateway-conformance-web-backend"},
             "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": NS}],
                      "to": [{"group": "", "kind": "Secret", "name": "certificate"}]}}
    config = translate(snapshot([*objects(), grant]))
    assert gateway_conditions(config, "gateway-client-certificate-missing-reference-grant")["ResolvedRefs"] == \
        ("True", "ResolvedRefs")


# -- end to end ---------------------------------------------------------------------------------


class ValidatingBackend(TLSBackend):
    """A TLS backend that requires a client certificate of ``client_ca`` (the conformance
    echo-basic with TLS_CLIENT_CACERTS)."""

    def __init__(self, leaf, folder, client_ca: bytes):
        super().__init__(leaf, folder, name="tls-backend-with-client-cert-validation")
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.load_verify_locations(cadata=client_ca.decode())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-backend-client-cert")
    manifests = root / "manifests"
    manifests.mkdir()
    backend = ValidatingBackend(certs.make_leaf("abc.example.com", issuer=SERVER_CA), root, CLIENT.ca.cert_pem)
    write_manifests(manifests / "all.yaml", objects(backend.port))
    server = Ingressd(manifests)
    try:
        wait_for(lambda: server.get("/", host="abc.example.com").status == 200, "the route served", timeout=30)
        yield server
    finally:
        server.stop()
        backend.stop()


@pytest.mark.slow
def test_the_gateways_client_certificate_is_presented_to_the_tls_backend(world):
    response = world.get("/", host="abc.example.com")
    assert response.status == 200
    assert response.json()["backend"] == "tls-backend-with-client-cert-validation"


@pytest.mark.slow
def test_a_gateway_without_one_is_refused_by_that_backend(world):
    assert world.get("/", host="none.example.com").status == 502
