"""End to end: cleartext HTTP/2 with prior knowledge (h2c) on ``--http`` through the real
``twistd ingressd``: curl ``--http2-prior-knowledge``, h2load, the h2 library over a raw socket
(the preface split over several writes, a preface that never completes), a real grpcio client
over ``grpc.insecure_channel`` to an Ingress with ``backend-protocol: GRPC`` and to a GRPCRoute
on an HTTP listener; HTTP/1.1 on the same port unchanged, ``Upgrade: h2c`` still not honoured,
and with ``--no-http2`` the preface gets HTTP/1.1's 400 as before."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import grpc
import h2.config
import h2.connection
import h2.events
import pytest
import yaml

from backends import Backend
from grpc_backends import GrpcBackend, method
from harness import INGRESS_CLASS, Ingressd, ingress, service, wait_for, write_manifests

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"
NS = "h2c"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

GATEWAY = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: ingressd}}
spec: {{controllerName: ingressd.io/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: plain, namespace: {NS}}}
spec:
  gatewayClassName: ingressd
  listeners:
  - {{name: http, port: 80, protocol: HTTP, hostname: grpc.gateway.example}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: echo, namespace: {NS}}}
spec:
  parentRefs: [{{name: plain}}]
  rules:
  - matches: [{{method: {{service: test.Echo}}}}]
    backendRefs: [{{name: echo, port: 9000}}]
"""


def objects(web, plain, gateway_backend):
    return [INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
            *service("grpc", [("grpc", 9000, plain.port)]),
            ingress("app", [("app.test", [("/", "Prefix", "web", 80)])]),
            ingress("grpc", [("grpc.test", [("/", "Prefix", "grpc", 9000)])],
                    annotations={N + "backend-protocol": "GRPC"}),
            *yaml.safe_load_all(GATEWAY),
            *service("echo", [("grpc", 9000, gateway_backend.port)], namespace=NS)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    manifests = tmp_path_factory.mktemp("h2c")
    web, plain, gateway_backend = Backend("web"), GrpcBackend(), GrpcBackend()
    write_manifests(manifests / "all.yaml", objects(web, plain, gateway_backend))
    proc = Ingressd(manifests, ["--client-header-timeout", "3"])
    try:
        wait_for(lambda: h2c_get(proc.http_port, "grpc.gateway.example", "/test.Echo/Unary", method=b"POST")[0]
                 not in (0, 404), "the GRPCRoute served")
        yield proc, web, plain, gateway_backend
    finally:
        proc.stop()
        web.stop()
        plain.stop()
        gateway_backend.stop()


def h2c_get(port, authority, path, method=b"GET", pieces=(), timeout=20.0):
    """One request with the h2 library over a plain socket; ``pieces``: sizes the first bytes
    are written in, each a write of its own. Returns (status, body)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    conn.send_headers(1, [(b":method", method), (b":scheme", b"http"), (b":authority", authority.encode()),
                          (b":path", path.encode())], end_stream=True)
    data = conn.data_to_send()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        at = 0
        for size in pieces:
            sock.sendall(data[at:at + size])
            at += size
            time.sleep(0.05)  # not a wait for a condition: it makes each piece a segment (and a read) of its own
        sock.sendall(data[at:])
        status, body = 0, b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = sock.recv(65536)
            if not received:
                break
            for event in conn.receive_data(received):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    return status, body
            sock.sendall(conn.data_to_send())
    return status, body


def insecure(port, authority):
    return grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.default_authority", authority)])


def test_curl_with_prior_knowledge_speaks_http2_on_the_plain_port(world):
    proc, web, _, _ = world
    done = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "--max-time", "20", "-o", "/dev/null",
                           "-w", "%{http_code} %{http_version}", "-H", "Host: app.test",
                           f"http://127.0.0.1:{proc.http_port}/curl-h2c"],
                          capture_output=True, text=True, timeout=40)
    assert done.stdout == "200 2"
    assert any(target == "/curl-h2c" for _, target, _, _ in web.requests)


def test_http1_on_the_same_port_is_unchanged_and_upgrade_h2c_is_not_honoured(world):
    proc, _, _, _ = world
    answer = proc.raw(b"GET /h1 HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                      b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("pieces", [(), (1, 2, 3), (16,), (23, 1)])
def test_the_preface_in_several_segments(world, pieces):
    proc, _, _, _ = world
    status, body = h2c_get(proc.http_port, "app.test", "/split", pieces=pieces)
    assert status == 200 and b"/split" in body


def test_an_unknown_host_over_h2c_gets_404(world):
    proc, _, _, _ = world
    assert h2c_get(proc.http_port, "nobody.test", "/")[0] == 404


def test_a_preface_that_never_completes_is_closed_at_the_client_header_timeout(world):
    proc, _, _, _ = world
    with socket.create_connection(("127.0.0.1", proc.http_port), timeout=30) as sock:
        sock.sendall(PREFACE[:11])
        started = time.monotonic()
        received = sock.recv(1024)  # blocks until ingressd closes (--client-header-timeout 3)
    assert received == b""  # closed without an answer, as nginx's listen ... http2
    assert time.monotonic() - started < 25


def test_grpc_over_an_insecure_channel_to_an_ingress_with_backend_protocol_grpc(world):
    proc, _, plain, _ = world
    with insecure(proc.http_port, "grpc.test") as ch:
        answer, call = method(ch, "unary_unary", "Unary").with_call(b"hello", metadata=[("x-client", "abc")],
                                                                    timeout=30)
        assert answer == b"hello" and call.code() == grpc.StatusCode.OK
        assert ("x-seen-client", "abc") in call.initial_metadata()
        assert ("x-trailer", "done") in call.trailing_metadata()
        messages = list(method(ch, "unary_stream", "ServerStream")(b"50:1000", timeout=30))
        assert len(messages) == 50 and all(len(m) == 1000 for m in messages)
        assert method(ch, "stream_unary", "ClientStream")(iter([b"x" * 100] * 50), timeout=30) == b"50:5000"
    assert plain.peers


def test_grpc_over_an_insecure_channel_to_a_grpcroute_on_an_http_listener(world):
    proc, _, plain, gateway_backend = world
    before = len(plain.peers)
    with insecure(proc.http_port, "grpc.gateway.example") as ch:
        answer, call = method(ch, "unary_unary", "Unary").with_call(b"gateway", timeout=30)
        assert answer == b"gateway" and call.code() == grpc.StatusCode.OK
        with pytest.raises(grpc.RpcError) as failed:
            method(ch, "unary_unary", "Fail")(b"NOT_FOUND:no such thing", timeout=30)
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    assert gateway_backend.peers and len(plain.peers) == before


def _h2load() -> str:
    """h2load's path; missing, the test fails in CI (``CI=true``: ``.ci/run`` installs nghttp2-client)
    and is skipped elsewhere."""
    path = shutil.which("h2load")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("h2load (nghttp2-client) is missing: .ci/run installs it")
        pytest.skip("h2load (nghttp2-client) is not installed")
    return path


def test_h2load_with_prior_knowledge(world):
    proc, _, _, _ = world
    done = subprocess.run([_h2load(), "-n", "200", "-c", "2", "-m", "10", "-H", ":authority: app.test",
                           f"http://127.0.0.1:{proc.http_port}/h2load"],
                          capture_output=True, text=True, timeout=120)
    assert "200 succeeded" in done.stdout and "Application protocol: h2c" in done.stdout, done.stdout
    assert "status codes: 200 2xx" in done.stdout, done.stdout


def test_with_no_http2_the_preface_gets_http1s_400(tmp_path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", [INGRESS_CLASS])
    proc = Ingressd(manifests, ["--no-http2"])
    try:
        assert proc.raw(PREFACE).startswith(b"HTTP/1.1 400 ")
    finally:
        proc.stop()
