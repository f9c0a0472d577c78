"""The conformance case HTTPRouteHTTPSListenerDetectMisdirectedRequests (kubernetes-sigs/gateway-api
``conformance/tests/httproute-https-listener-detect-misdirected-requests``) against the real
``twistd ingressd`` in file mode: four HTTPS listeners on one port (no hostname, an exact one, a
wildcard, an exact one under the wildcard), one certificate for all, and a route on each; every
(SNI name, Host) pair of the suite over HTTP/2 (ALPN h2), as the suite sends them, and some over
HTTP/1.1: 200 from the listener's backend, 421 when the Host belongs to another listener than the
SNI name chose, 404 when no route serves it. (One difference from the suite: a handshake for a
name no route brings, unknown-example.org, gets ingressd's default certificate, not the listener
without hostname's, so those two cases are not verified against the listener's certificate.)"""

from __future__ import annotations

import http.client
import socket
import ssl

import h2.config
import h2.connection
import h2.events
import pytest
import yaml

import certs
from backends import Backend
from harness import Ingressd, service, wait_for, write_manifests
from test_e2e_gateway_https import tls_secret

pytestmark = pytest.mark.slow

INFRA = "gateway-conformance-infra"
GROUP = "gateway.networking.k8s.io/v1"


def _listener(name: str, hostname: str | None) -> str:
    host = f", hostname: '{hostname}'" if hostname else ""
    return (f"  - {{name: {name}, port: 443, protocol: HTTPS{host}, allowedRoutes: {{namespaces: {{from: Same}}}}, "
            f"tls: {{certificateRefs: [{{group: '', kind: Secret, name: tls-validity-checks-certificate}}]}}}}\n")


def _route(number: int, section: str, backend: str, hostnames: str = "") -> str:
    return f"""---
apiVersion: {GROUP}
kind: HTTPRoute
metadata: {{name: https-listener-detect-misdirected-requests-test-{number}, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace-with-https-listener, sectionName: {section}}}]
{hostnames}  rules:
  - matches: [{{path: {{type: PathPrefix, value: /detect-misdirected-requests}}}}]
    backendRefs: [{{name: {backend}, port: 8080}}]
"""


MANIFESTS = f"""
apiVersion: {GROUP}
kind: GatewayClass
metadata: {{name: ingressd}}
spec: {{controllerName: ingressd.io/gateway-controller}}
---
apiVersion: {GROUP}
kind: Gateway
metadata: {{name: same-namespace-with-https-listener, namespace: {INFRA}}}
spec:
  gatewayClassName: ingressd
  listeners:
{_listener("https", None)}{_listener("https-with-hostname", "second-example.org")}\
{_listener("https-with-wildcard-hostname", "*.wildcard.org")}\
{_listener("https-with-hostname-matching-wildcard", "fourth-example.wildcard.org")}\
{_route(1, "https", "infra-backend-v1", "  hostnames: [example.org]" + chr(10))}\
{_route(2, "https-with-hostname", "infra-backend-v2")}\
{_route(3, "https-with-wildcard-hostname", "infra-backend-v3")}\
{_route(4, "https-with-hostname-matching-wildcard", "infra-backend-v1")}
"""

# (SNI name, Host, status, backend): the suite's cases, in its order
CASES = [
    ("example.org", "example.org", 200, "infra-backend-v1"),
    ("example.org", "second-example.org", 421, None),
    ("example.org", "unknown-example.org", 404, None),
    ("second-example.org", "second-example.org", 200, "infra-backend-v2"),
    ("second-example.org", "example.org", 421, None),
    ("second-example.org", "unknown-example.org", 421, None),
    ("third-example.wildcard.org", "third-example.wildcard.org", 200, "infra-backend-v3"),
    ("third-example.wildcard.org", "fith-example.wildcard.org", 200, "infra-backend-v3"),
    ("third-example.wildcard.org", "fourth-example.wildcard.org", 421, None),
    ("third-example.wildcard.org", "second-example.org", 421, None),
    ("third-example.wildcard.org", "unknown-example.org", 421, None),
    ("fourth-example.wildcard.org", "fourth-example.wildcard.org", 200, "infra-backend-v1"),
    ("fourth-example.wildcard.org", "fith-example.wildcard.org", 421, None),
    ("unknown-example.org", "example.org", 200, "infra-backend-v1"),
    ("unknown-example.org", "unknown-example.org", 404, None),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-misdirected")
    manifests = root / "manifests"
    manifests.mkdir()
    ca = certs.make_ca("misdirected test CA")
    cafile = root / "ca.pem"
    cafile.write_bytes(ca.cert_pem)
    leaf = certs.make_leaf("example.org", "second-example.org", "*.wildcard.org", "unknown-example.org", issuer=ca)
    names = [f"infra-backend-v{n}" for n in (1, 2, 3)]
    backends = [Backend(name) for name in names]
    objects = [*yaml.safe_load_all(MANIFESTS), tls_secret("tls-validity-checks-certificate", INFRA, leaf)]
    for name, backend in zip(names, backends):
        objects += service(name, [("http", 8080, backend.port)], namespace=INFRA)
    write_manifests(manifests / "all.yaml", objects)
    server = Ingressd(manifests)
    try:
        wait_for(lambda: h1_get(server, cafile, "example.org", "example.org")[0] == 200, "the routes served",
                 timeout=30)
        yield server, cafile
    finally:
        server.stop()
        for backend in backends:
            backend.stop()


def _context(cafile, alpn: list[str], server_name: str = "") -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cafile))
    if server_name == "unknown-example.org":
        # No route names it: the listener without hostname serves its certificate only for its
        # routes' hosts (docs/gateway-api.md), so this handshake gets ingressd's default one.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(alpn)
    return context


def h1_get(server, cafile, server_name: str, host: str) -> tuple[int, str | None]:
    context = _context(cafile, ["http/1.1"], server_name)
    conn = http.client.HTTPSConnection("127.0.0.1", server.https_port, timeout=20, context=context)
    conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", server.https_port), 20),
                                    server_hostname=server_name)
    try:
        conn.request("GET", "/detect-misdirected-requests", headers={"Host": host})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("x-backend")
    finally:
        conn.close()


def h2_get(server, cafile, server_name: str, host: str, timeout: float = 20.0) -> tuple[int, str | None]:
    """One HTTP/2 request over TLS (ALPN h2) with ``server_name`` as SNI and ``host`` as :authority."""
    context = _context(cafile, ["h2"], server_name)
    with context.wrap_socket(socket.create_connection(("127.0.0.1", server.https_port), timeout),
                             server_hostname=server_name) as sock:
        assert sock.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        conn.initiate_connection()
        conn.send_headers(1, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", host.encode()),
                              (b":path", b"/detect-misdirected-requests")], end_stream=True)
        sock.sendall(conn.data_to_send())
        status, backend = 0, None
        for _ in range(1000):  # bounded: a frame or more each time
            received = sock.recv(65536)
            if not received:
                break
            for event in conn.receive_data(received):
                if isinstance(event, h2.events.ResponseReceived):
                    headers = dict(event.headers)
                    status = int(headers[b":status"])
                    backend = headers.get(b"x-backend", b"").decode() or None
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    return status, backend
            sock.sendall(conn.data_to_send())
        return status, backend


@pytest.mark.parametrize("server_name, host, status, backend", CASES)
def test_the_suites_cases_over_http2(world, server_name, host, status, backend):
    server, cafile = world
    got, answered_by = h2_get(server, cafile, server_name, host)
    assert got == status
    if backend is not None:
        assert answered_by == backend


@pytest.mark.parametrize("server_name, host, status", [
    ("second-example.org", "example.org", 421),
    ("example.org", "second-example.org", 421),
    ("third-example.wildcard.org", "fith-example.wildcard.org", 200),
    ("example.org", "unknown-example.org", 404),
])
def test_over_http1_too(world, server_name, host, status):
    server, cafile = world
    assert h1_get(server, cafile, server_name, host)[0] == status


def test_plain_http_is_never_misdirected(world):
    server, _ = world
    # The routes are on HTTPS listeners only: over plain HTTP no route serves them (404), never 421.
    assert server.get("/detect-misdirected-requests", host="second-example.org").status == 404
