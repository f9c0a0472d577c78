"""End to end: a Gateway's frontend client certificate validation (``spec.tls.frontend``) through
the real ``twistd ingressd`` in file mode, ported from the conformance tests
GatewayFrontendClientCertificateValidation, ...InsecureFallback and
GatewayFrontendInvalidDefaultClientCertificateValidation (their Gateways side by side, each with
hosts of its own: in file mode every HTTPS listener is served on ``--https``, SNI tells them apart).
Certificates are generated here; clients are Python's ``ssl``, every call with a timeout."""

from __future__ import annotations

import http.client
import socket
import ssl

import pytest
import yaml

import certs
import mtls
from backends import Backend
from harness import Ingressd, service, wait_for, write_manifests

pytestmark = pytest.mark.slow

NS = "gateway-conformance-infra"
TIMEOUT = 10.0


def _config_map(name: str, ca: bytes) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS},
            "data": {"ca.crt": ca.decode()}}


def _https(name: str, port: int, hostname: str | None = None) -> dict:
    listener = {"name": name, "port": port, "protocol": "HTTPS", "allowedRoutes": {"namespaces": {"from": "Same"}},
                "tls": {"certificateRefs": [{"group": "", "kind": "Secret", "name": "tls-validity-checks-certificate",
                                             "namespace": NS}]}}
    if hostname:
        listener["hostname"] = hostname
    return listener


def _validation(name: str, mode: str | None = None) -> dict:
    return {"validation": {"caCertificateRefs": [{"kind": "ConfigMap", "group": "", "name": name}],
                           **({"mode": mode} if mode else {})}}


def _gateway(name: str, listeners: list, frontend: dict) -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": name, "namespace": NS},
            "spec": {"gatewayClassName": "ingressd", "tls": {"frontend": frontend}, "listeners": listeners}}


def _route(name: str, gateway: str, hostnames=(), section=None, backend="infra-backend-v1") -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": name, "namespace": NS},
            "spec": {"parentRefs": [{"name": gateway, **({"sectionName": section} if section else {})}],
                     **({"hostnames": list(hostnames)} if hostnames else {}),
                     "rules": [{"backendRefs": [{"name": backend, "port": 8080}]}]}}


def manifests() -> list[dict]:
    per_port = {"port": 8443, "tls": _validation("tls-validity-checks-per-port-ca-certificate")}
    fallback = {"port": 8443, "tls": _validation("tls-validity-checks-per-port-ca-certificate",
                                                 "AllowInsecureFallback")}
    return [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "ingressd"},
         "spec": {"controllerName": "ingressd.io/gateway-controller"}},
        # gateway-with-clientcertificate-validation.yaml
        _gateway("client-validation-default", [_https("https", 443), _https("https-with-hostname", 8443,
                                                                             "second-example.org")],
                 {"default": _validation("tls-validity-checks-ca-certificate"), "perPort": [per_port]}),
        _route("client-certificate-validation-https-test", "client-validation-default", ["example.org"]),
        _route("client-certificate-validation-https-test-no-hostname", "client-validation-default",
               section="https-with-hostname", backend="infra-backend-v2"),
        # gateway-with-clientcertificate-validation-insecure-fallback.yaml (hosts renamed: one server)
        _gateway("client-validation-insecure-fallback",
                 [_https("https", 443, "fallback.example.org"),
                  _https("https-with-hostname", 8443, "second-fallback.example.org")],
                 {"default": _validation("tls-validity-checks-ca-certificate", "AllowInsecureFallback"),
                  "perPort": [fallback]}),
        _route("client-cert-validation-insecure-fallback-test", "client-validation-insecure-fallback",
               section="https"),
        _route("client-cert-validation-insecure-fallback-test-no-hostname", "client-validation-insecure-fallback",
               section="https-with-hostname", backend="infra-backend-v2"),
        # gateway-invalid-default-frontend-client-certificate-validation.yaml (hosts renamed)
        _gateway("invalid-default-client-validation-config",
                 [_https("https", 443, "invalid.example.org"),
                  {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}}],
                 {"default": _validation("does-not-exist"),
                  "perPort": [{"port": 80, "tls": _validation("tls-validity-checks-per-port-ca-certificate")}]}),
        _route("invalid-default-client-validation-config", "invalid-default-client-validation-config",
               ["invalid.example.org"]),
    ]


class World:
    def __init__(self, root):
        self.default_pki, self.per_port_pki = mtls.make_world(), mtls.make_world()
        self.identities = {}
        for name, issued in (("default", self.default_pki.valid), ("per-port", self.per_port_pki.valid)):
            cert, key = root / f"{name}.crt", root / f"{name}.key"
            cert.write_bytes(issued.cert_pem)
            key.write_bytes(issued.key_pem())
            self.identities[name] = (str(cert), str(key))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-gateway-frontend-tls")
    directory = root / "manifests"
    directory.mkdir()
    state = World(root)
    v1, v2 = Backend("infra-backend-v1"), Backend("infra-backend-v2")
    server = certs.make_leaf("example.org", "second-example.org", "fallback.example.org",
                             "second-fallback.example.org", "invalid.example.org", issuer=certs.make_ca("server CA"))
    objects = [*manifests(),
               *service("infra-backend-v1", [("http", 8080, v1.port)], namespace=NS),
               *service("infra-backend-v2", [("http", 8080, v2.port)], namespace=NS),
               certs.secret_manifest(NS, "tls-validity-checks-certificate", server.cert_pem, server.key_pem()),
               _config_map("tls-validity-checks-ca-certificate", state.default_pki.ca.cert_pem),
               _config_map("tls-validity-checks-per-port-ca-certificate", state.per_port_pki.ca.cert_pem)]
    write_manifests(directory / "all.yaml", objects)
    state.proc = Ingressd(directory)
    try:
        wait_for(lambda: state.proc.get("/", host="invalid.example.org").status == 200, "the HTTP route served")
        wait_for(lambda: get(state, "example.org", "default")[0] == 200, "the HTTPS routes served", timeout=30)
        yield state
    finally:
        state.proc.stop()
        v1.stop()
        v2.stop()


def get(world, host: str, identity: str | None = None, sni: str | None = None):
    """(status, the backend that answered), or ("refused", why) when the TLS connection failed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if identity:
        context.load_cert_chain(*world.identities[identity])
    port = world.proc.https_port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), TIMEOUT),
                                        server_hostname=sni or host)
        conn.request("GET", "/", headers={"Host": host})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("x-backend")
    except (ssl.SSLError, ConnectionError, http.client.HTTPException) as exc:
        return "refused", type(exc).__name__
    finally:
        conn.close()


def test_default_validation_serves_only_certificates_of_its_ca(world):
    assert get(world, "example.org", "default") == (200, "infra-backend-v1")
    assert get(world, "example.org", "per-port")[0] == "refused"
    assert get(world, "example.org")[0] == "refused"


def test_per_port_validation_replaces_the_default_for_its_listener(world):
    assert get(world, "second-example.org", "per-port") == (200, "infra-backend-v2")
    assert get(world, "second-example.org", "default")[0] == "refused"
    assert get(world, "second-example.org")[0] == "refused"


def test_a_connection_verified_for_another_name_is_not_served(world):
    # verified for second-example.org, then asking for example.org: 421, never the route
    assert get(world, "example.org", "per-port", sni="second-example.org")[0] == 421
    # a name that asked for no certificate, or no SNI at all: never served unverified
    assert get(world, "example.org", sni="unknown.example.net")[0] == 421


def test_insecure_fallback_serves_every_client(world):
    for identity in ("default", "per-port", None):
        assert get(world, "fallback.example.org", identity) == (200, "infra-backend-v1")
        assert get(world, "second-fallback.example.org", identity) == (200, "infra-backend-v2")


def test_an_invalid_default_validation_affects_the_https_listener_only(world):
    assert world.proc.get("/", host="invalid.example.org").status == 200
    status, _ = get(world, "invalid.example.org")
    assert status != 200  # the listener is not served: no route for its host on the TLS port


def test_the_listener_status_says_why(world):
    status, _, body = world.proc.admin("/routes")
    assert status == 200
    assert b"NoValidCACertificate" in body and b"InvalidCACertificateRef" in body
    assert b"InsecureFrontendValidationMode" in body
