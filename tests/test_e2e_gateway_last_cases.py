"""The last Gateway API conformance cases ported with traffic (file mode, ``twistd ingressd``):
GRPCRouteListenerHostnameMatching, GRPCRouteWeight and GRPCRouteNamedRule with a real grpcio
client (cleartext HTTP/2 with prior knowledge on ``--http``, the conformance suite's HTTP
listeners) and real grpcio servers behind; HTTPRouteNamedRule and HTTPRoute303/307/308Redirect
with HTTP/1.1. Each case's own YAML, with our GatewayClass for ``{GATEWAY_CLASS_NAME}``."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
import yaml

from backends import Backend
from gateway_manifests import INFRA, SAME_NAMESPACE_GATEWAY
from grpc_backends import GrpcBackend, method
from harness import Ingressd, service, wait_for, write_manifests

pytestmark = pytest.mark.slow

_LISTENER = """
  - name: listener-{n}
    port: 80
    protocol: HTTP
    allowedRoutes: {{namespaces: {{from: Same}}}}
    hostname: "{hostname}"
"""

_ROUTE = """---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: backend-{version}, namespace: gateway-conformance-infra}}
spec:
  parentRefs:
{parents}
  rules:
  - backendRefs:
    - {{name: grpc-infra-backend-{version}, port: 8080}}
"""

_PARENT = "  - {{name: grpcroute-listener-hostname-matching, namespace: gateway-conformance-infra, sectionName: {}}}\n"

LISTENER_HOSTNAME_MATCHING = (
    """---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: grpcroute-listener-hostname-matching, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: ingressd
  listeners:"""
    + "".join(_LISTENER.format(n=n, hostname=hostname)
              for n, hostname in enumerate(("bar.com", "foo.bar.com", "*.bar.com", "*.foo.com"), start=1))
    + _ROUTE.format(version="v1", parents=_PARENT.format("listener-1"))
    + _ROUTE.format(version="v2", parents=_PARENT.format("listener-2"))
    + _ROUTE.format(version="v3", parents=_PARENT.format("listener-3") + _PARENT.format("listener-4"))
)

WEIGHT = """
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: weighted-backends, namespace: gateway-conformance-infra}
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    - {name: grpc-infra-backend-v1, port: 8080, weight: 70}
    - {name: grpc-infra-backend-v2, port: 8080, weight: 30}
    - {name: grpc-infra-backend-v3, port: 8080, weight: 0}
"""


def _grpc_backends(objects_text: str, manifests) -> tuple[Ingressd, dict[str, GrpcBackend]]:
    backends = {version: GrpcBackend() for version in ("v1", "v2", "v3")}
    objects = [obj for obj in yaml.safe_load_all(objects_text) if obj]
    for version, backend in backends.items():
        found = service(f"grpc-infra-backend-{version}", [("grpc", 8080, backend.port)], namespace=INFRA)
        found[0]["spec"]["ports"][0]["appProtocol"] = "kubernetes.io/h2c"
        objects += found
    write_manifests(manifests / "all.yaml", objects)
    return Ingressd(manifests), backends


def _h2c_channel(port: int, authority: str) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.default_authority", authority)])


def _answered_by(server: Ingressd, backends: dict[str, GrpcBackend], authority: str):
    """Which backend answered one Unary call for ``authority``, or the call's error code."""
    before = {version: len(backend.peers) for version, backend in backends.items()}
    with _h2c_channel(server.http_port, authority) as ch:
        try:
            method(ch, "unary_unary", "Unary")(b"hello", timeout=20)
        except grpc.RpcError as error:
            return error.code()
    (version,) = [version for version, backend in backends.items() if len(backend.peers) != before[version]]
    return version


def _stop(server: Ingressd, backends: dict[str, GrpcBackend]) -> None:
    server.stop()
    for backend in backends.values():
        backend.stop()


@pytest.fixture(scope="module")
def hostname_matching(tmp_path_factory):
    server, backends = _grpc_backends(SAME_NAMESPACE_GATEWAY.split("---")[0] + LISTENER_HOSTNAME_MATCHING,
                                      tmp_path_factory.mktemp("grpc-hostnames"))
    try:
        wait_for(lambda: _answered_by(server, backends, "bar.com") == "v1", "the GRPCRoutes served", timeout=30)
        yield server, backends
    finally:
        _stop(server, backends)


@pytest.mark.parametrize("authority, expected", [
    ("bar.com", "v1"),
    ("foo.bar.com", "v2"),
    ("baz.bar.com", "v3"),
    ("boo.bar.com", "v3"),
    ("multiple.prefixes.bar.com", "v3"),
    ("multiple.prefixes.foo.com", "v3"),
    ("foo.com", grpc.StatusCode.UNIMPLEMENTED),  # 404: no listener hostname covers it
    ("no.matching.host", grpc.StatusCode.UNIMPLEMENTED),
])
def test_grpcroute_listener_hostname_matching(hostname_matching, authority, expected):
    server, backends = hostname_matching
    assert _answered_by(server, backends, authority) == expected


# GRPCRouteWeight: the conformance suite's weight.TestWeightedDistribution sends 500 requests
# and allows 5 points either side of each share, retrying the whole measure up to 10 times; so do we.
_TOTAL, _TOLERANCE, _TRIES = 500, 0.05, 10


@pytest.fixture(scope="module")
def weighted(tmp_path_factory):
    server, backends = _grpc_backends(SAME_NAMESPACE_GATEWAY + WEIGHT, tmp_path_factory.mktemp("grpc-weight"))
    try:
        wait_for(lambda: _answered_by(server, backends, "weight.example") in ("v1", "v2"), "the GRPCRoute served",
                 timeout=30)
        yield server, backends
    finally:
        _stop(server, backends)


def _shares(server: Ingressd, backends: dict[str, GrpcBackend]) -> dict[str, float]:
    before = {version: len(backend.peers) for version, backend in backends.items()}
    with _h2c_channel(server.http_port, "weight.example") as ch:
        call = method(ch, "unary_unary", "Unary")
        for _ in range(_TOTAL):
            assert call(b"x", timeout=20) == b"x"
    return {version: (len(backend.peers) - before[version]) / _TOTAL for version, backend in backends.items()}


def test_grpcroute_weight(weighted):
    server, backends = weighted
    expected = {"v1": 0.7, "v2": 0.3, "v3": 0.0}
    for _ in range(_TRIES):
        shares = _shares(server, backends)
        assert shares["v3"] == 0.0  # weight 0 is never chosen, in any try
        if all(abs(shares[version] - want) <= _TOLERANCE for version, want in expected.items()):
            return
    pytest.fail(f"the shares {shares} are not within {_TOLERANCE} of {expected} in {_TRIES} tries")


# -- HTTPRouteNamedRule, HTTPRoute303Redirect / 307 / 308 (provisional) --------------------------

HTTP_CASES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: http-named-rules, namespace: gateway-conformance-infra}
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - name: named-rule
    matches:
    - path: {type: PathPrefix, value: /named}
    backendRefs:
    - {name: infra-backend-v1, port: 8080}
  - matches:
    - path: {type: PathPrefix, value: /unnamed}
    backendRefs:
    - {name: infra-backend-v2, port: 8080}
""" + "".join(f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {code}-redirect, namespace: gateway-conformance-infra}}
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path: {{type: PathPrefix, value: {path}}}
    filters:
    - type: RequestRedirect
      requestRedirect: {{statusCode: {code}}}
""" for code, path in ((303, "/see-other"), (307, "/temporary"), (308, "/permanent")))


@pytest.fixture(scope="module")
def http_cases(tmp_path_factory):
    manifests = tmp_path_factory.mktemp("http-last-cases")
    backends = {name: Backend(name) for name in ("infra-backend-v1", "infra-backend-v2")}
    objects = [obj for obj in yaml.safe_load_all(SAME_NAMESPACE_GATEWAY + HTTP_CASES) if obj]
    for name, backend in backends.items():
        objects += service(name, [("http", 8080, backend.port)], namespace=INFRA)
    write_manifests(manifests / "all.yaml", objects)
    server = Ingressd(manifests)
    try:
        wait_for(lambda: server.get("/named", host="named.example").status == 200, "the HTTPRoutes served", timeout=30)
        yield server
    finally:
        server.stop()
        for backend in backends.values():
            backend.stop()


@pytest.mark.parametrize("path, expected", [("/named", "infra-backend-v1"), ("/unnamed", "infra-backend-v2")])
def test_httproute_named_rule(http_cases, path, expected):
    response = http_cases.get(path, host="named.example")
    assert (response.status, response.headers.get("x-backend")) == (200, expected)


@pytest.mark.parametrize("code, path", [(303, "/see-other"), (307, "/temporary"), (308, "/permanent")])
def test_httproute_redirect_status_codes(http_cases, code, path):
    # The suite's request: a POST, redirects not followed; the Location keeps the path.
    response = http_cases.get(path, host="redirect.example", method="POST", body=b"payload")
    assert response.status == code
    assert response.headers.get("location") == f"http://redirect.example{path}"


# -- GRPCRouteNamedRule (provisional): the suite's own service and methods ------------------------

_ECHO_SERVICE = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"

GRPC_NAMED_RULE = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: grpc-named-rules, namespace: gateway-conformance-infra}}
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - name: named-rule
    matches:
    - method: {{service: {_ECHO_SERVICE}, method: Echo}}
    backendRefs:
    - {{name: grpc-infra-backend-v1, port: 8080}}
  - matches:
    - method: {{service: {_ECHO_SERVICE}, method: EchoTwo}}
    backendRefs:
    - {{name: grpc-infra-backend-v2, port: 8080}}
"""


class _NamedEchoBackend:
    """A gRPC server of the suite's echo service (``Echo``, ``EchoTwo``) that answers its own name."""

    def __init__(self, name: str):
        answer = grpc.unary_unary_rpc_method_handler(lambda request, context: name.encode())
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(_ECHO_SERVICE, {"Echo": answer, "EchoTwo": answer}),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(0)


@pytest.fixture(scope="module")
def grpc_named_rule(tmp_path_factory):
    manifests = tmp_path_factory.mktemp("grpc-named-rule")
    backends = {version: _NamedEchoBackend(f"grpc-infra-backend-{version}") for version in ("v1", "v2")}
    objects = [obj for obj in yaml.safe_load_all(SAME_NAMESPACE_GATEWAY + GRPC_NAMED_RULE) if obj]
    for version, backend in backends.items():
        found = service(f"grpc-infra-backend-{version}", [("grpc", 8080, backend.port)], namespace=INFRA)
        found[0]["spec"]["ports"][0]["appProtocol"] = "kubernetes.io/h2c"
        objects += found
    write_manifests(manifests / "all.yaml", objects)
    server = Ingressd(manifests)
    ch = _h2c_channel(server.http_port, "grpc-named.example")

    def served():
        try:
            return ch.unary_unary(f"/{_ECHO_SERVICE}/Echo")(b"", timeout=5)
        except grpc.RpcError:
            return None

    try:
        wait_for(served, "the GRPCRoute served", timeout=30)
        yield ch
    finally:
        ch.close()
        server.stop()
        for backend in backends.values():
            backend.stop()


@pytest.mark.parametrize("name, expected", [("Echo", b"grpc-infra-backend-v1"), ("EchoTwo", b"grpc-infra-backend-v2")])
def test_grpcroute_named_rule(grpc_named_rule, name, expected):
    assert grpc_named_rule.unary_unary(f"/{_ECHO_SERVICE}/{name}")(b"", timeout=20) == expected
