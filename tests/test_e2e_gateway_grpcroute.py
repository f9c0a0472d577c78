"""GRPCRoute end to end (file mode): a real grpcio client over TLS (ALPN h2) to an HTTPS
listener, a real grpcio server behind, reached over h2c as the route kind says; service and
method matches, header matches, weights of zero, 404 for an unmatched method."""

from __future__ import annotations

import grpc
import pytest
import yaml

import certs
from grpc_backends import GrpcBackend, channel, frame, h2_call, method
from harness import Ingressd, service, wait_for, write_manifests

pytestmark = pytest.mark.slow

NS = "gateway-grpc"

MANIFESTS = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: ingressd}}
spec: {{controllerName: ingressd.io/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: grpc, namespace: {NS}}}
spec:
  gatewayClassName: ingressd
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    hostname: grpc.example
    tls: {{certificateRefs: [{{name: front}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: echo, namespace: {NS}}}
spec:
  parentRefs: [{{name: grpc}}]
  rules:
  - matches: [{{method: {{service: test.Echo, method: Unary}}}}]
    backendRefs: [{{name: one, port: 9000}}]
  - matches: [{{method: {{service: test.Echo, method: Unary}}, headers: [{{name: x-pick, value: two}}]}}]
    backendRefs: [{{name: one, port: 9000, weight: 0}}, {{name: two, port: 9000}}]
  - matches: [{{method: {{service: test.Echo}}}}]
    backendRefs: [{{name: two, port: 9000}}]
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    manifests = tmp_path_factory.mktemp("gateway-grpc")
    ca = certs.make_ca()
    front = certs.make_leaf("grpc.example", issuer=ca)
    one, two = GrpcBackend(), GrpcBackend()
    objects = [*yaml.safe_load_all(MANIFESTS),
               certs.secret_manifest(NS, "front", front.cert_pem, front.key_pem()),
               *service("one", [("grpc", 9000, one.port)], namespace=NS),
               *service("two", [("grpc", 9000, two.port)], namespace=NS)]
    write_manifests(manifests / "all.yaml", objects)
    server = Ingressd(manifests)
    ch = channel(server.https_port, "grpc.example", ca.cert_pem)
    try:
        wait_for(lambda: h2_call(server.https_port, "grpc.example", "/test.Echo/Unary", frame(b"x"))["status"] == 200,
                 "the GRPCRoute served")
        yield server, ch, one, two
    finally:
        ch.close()
        server.stop()
        one.stop()
        two.stop()


def test_a_service_and_method_match_reaches_its_backend_over_h2c(world):
    _, ch, one, two = world
    before = (len(one.peers), len(two.peers))
    reply, call = method(ch, "unary_unary", "Unary").with_call(b"hello", metadata=(("x-a", "1"),), timeout=20)
    assert reply == b"hello" and call.code() == grpc.StatusCode.OK
    assert ("x-seen-a", "1") in call.initial_metadata()
    assert (len(one.peers), len(two.peers)) == (before[0] + 1, before[1])


def test_a_header_match_wins_and_weight_zero_is_never_chosen(world):
    _, ch, one, two = world
    before = (len(one.peers), len(two.peers))
    for _ in range(5):
        method(ch, "unary_unary", "Unary")(b"x", metadata=(("x-pick", "two"),), timeout=20)
    assert (len(one.peers), len(two.peers)) == (before[0], before[1] + 5)


def test_a_service_match_takes_its_other_methods(world):
    _, ch, one, two = world
    before = len(two.peers)
    replies = list(method(ch, "unary_stream", "ServerStream")(b"3:4", timeout=20))
    assert len(replies) == 3 and len(two.peers) == before + 1


def test_an_unmatched_service_is_404(world):
    server = world[0]
    assert h2_call(server.https_port, "grpc.example", "/other.Service/Call", frame(b"x"))["status"] == 404
