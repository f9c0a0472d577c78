"""End to end: gRPC through the real ``twistd ingressd`` (``backend-protocol: GRPC``/``GRPCS``).

A real grpcio server behind ingressd, a real grpcio client in front (over TLS with ALPN h2,
as ingress-nginx's own e2e test reaches its gRPC routes), and a raw HTTP/2 client for what
grpcio hides (the HTTP status and the trailers of an answer ingressd made itself).
"""

from __future__ import annotations

import base64
import concurrent.futures
import time

import grpc
import pytest

import certs
from grpc_backends import GrpcBackend, channel, frame, h2_call, method
from harness import INGRESS_CLASS, Ingressd, free_port, ingress, service, write_manifests

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"
HOSTS = ["grpc.test", "grpcs.test", "verified.test", "wrong.test", "dead.test"]
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    manifests = tmp_path_factory.mktemp("grpc")
    ca = certs.make_ca()
    front = certs.make_leaf(*HOSTS, issuer=ca)
    back = certs.make_leaf("backend.test", issuer=ca)
    plain = GrpcBackend()
    secure = GrpcBackend(tls=(back.cert_pem, back.key_pem()))
    to_backend = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "to-backend", "namespace": "default"},
                  "type": "Opaque", "data": {"ca.crt": base64.b64encode(ca.cert_pem).decode()}}
    tls = [{"hosts": HOSTS, "secretName": "front"}]
    grpc_route = {N + "backend-protocol": "GRPC", N + "proxy-body-size": "16m"}
    objects = [
        INGRESS_CLASS, to_backend, certs.secret_manifest("default", "front", front.cert_pem, front.key_pem()),
        *service("plain", [("grpc", 9000, plain.port)]),
        *service("secure", [("grpcs", 9443, secure.port)]),
        *service("dead", [("grpc", 9000, free_port())]),
        ingress("grpc", [("grpc.test", [("/", "Prefix", "plain", 9000)])], annotations=grpc_route, tls=tls),
        ingress("grpcs", [("grpcs.test", [("/", "Prefix", "secure", 9443)])],
                annotations={N + "backend-protocol": "GRPCS"}, tls=tls),
        ingress("verified", [("verified.test", [("/", "Prefix", "secure", 9443)])], tls=tls, annotations={
            N + "backend-protocol": "grpcs", N + "proxy-ssl-secret": "default/to-backend",
            N + "proxy-ssl-verify": "on", N + "proxy-ssl-name": "backend.test", N + "proxy-ssl-server-name": "on"}),
        ingress("wrong", [("wrong.test", [("/", "Prefix", "secure", 9443)])], tls=tls, annotations={
            N + "backend-protocol": "GRPCS", N + "proxy-ssl-secret": "default/to-backend",
            N + "proxy-ssl-verify": "on", N + "proxy-ssl-name": "other.test"}),
        ingress("dead", [("dead.test", [("/", "Prefix", "dead", 9000)])], annotations=grpc_route, tls=tls),
        ingress("h1", [("h1.test", [("/", "Prefix", "plain", 9000)])], annotations=grpc_route),  # no TLS: no redirect
    ]
    write_manifests(manifests / "all.yaml", objects)
    proc = Ingressd(manifests)
    channels = {host: channel(proc.https_port, host, ca.cert_pem) for host in HOSTS}
    yield proc, plain, secure, channels
    for ch in channels.values():
        ch.close()
    proc.stop()
    plain.stop()
    secure.stop()


def test_unary_relays_metadata_both_ways_and_trailing_metadata(world):
    _, _, _, channels = world
    unary = method(channels["grpc.test"], "unary_unary", "Unary")
    answer, call = unary.with_call(b"hello", metadata=[("x-client", "abc")], timeout=30)
    assert answer == b"hello"
    assert ("x-seen-client", "abc") in call.initial_metadata()
    assert ("x-trailer", "done") in call.trailing_metadata()
    assert call.code() == grpc.StatusCode.OK


def test_server_streaming(world):
    _, _, _, channels = world
    stream = method(channels["grpc.test"], "unary_stream", "ServerStream")
    messages = list(stream(b"300:1000", timeout=30))
    assert len(messages) == 300
    assert all(len(m) == 1000 for m in messages) and messages[27][:1] == b"B"


def test_client_streaming_is_streamed_not_held(world):
    _, _, _, channels = world
    upload = method(channels["grpc.test"], "stream_unary", "ClientStream")
    assert upload(iter([b"x" * 100] * 500), timeout=30) == b"500:50000"


def test_bidirectional_streaming_answers_each_message_as_it_comes(world):
    _, _, _, channels = world
    bidi = method(channels["grpc.test"], "stream_stream", "Bidi")
    # Lock-step: the next message is sent only after the answer to the last one arrived,
    # which only works when neither direction is held back by ingressd.
    import queue
    outbox: queue.Queue = queue.Queue()

    def requests():
        for _ in range(200):
            item = outbox.get(timeout=30)
            if item is None:
                return
            yield item

    outbox.put(b"m0")
    answers = []
    for i, answer in enumerate(bidi(requests(), timeout=60)):
        answers.append(answer)
        outbox.put(b"m%d" % (i + 1) if i + 1 < 200 else None)
    assert answers == [b"M%d" % i for i in range(200)]


def test_a_failed_call_keeps_its_status_message_and_trailing_metadata(world):
    _, _, _, channels = world
    fail = method(channels["grpc.test"], "unary_unary", "Fail")
    with pytest.raises(grpc.RpcError) as raised:
        fail(b"NOT_FOUND:no such thing", timeout=30)
    error = raised.value
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "no such thing"
    assert ("x-reason", "asked") in error.trailing_metadata()


def test_large_messages_both_ways_go_through_flow_control(world):
    _, _, _, channels = world
    unary = method(channels["grpc.test"], "unary_unary", "Unary")
    big = bytes(range(256)) * (3 * MiB // 256)
    assert unary(big, timeout=60) == big
    stream = method(channels["grpc.test"], "unary_stream", "ServerStream")
    assert [len(m) for m in stream(b"4:%d" % (2 * MiB), timeout=60)] == [2 * MiB] * 4


def test_a_dead_backend_is_unavailable_the_grpc_way(world):
    proc, _, _, channels = world
    unary = method(channels["dead.test"], "unary_unary", "Unary")
    with pytest.raises(grpc.RpcError) as raised:
        unary(b"x", timeout=30)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    answer = h2_call(proc.https_port, "dead.test", "/test.Echo/Unary", frame(b"x"))
    assert answer["status"] == 200 and answer["headers"]["content-type"] == "application/grpc"
    assert answer["data"] == b"" and answer["trailers"]["grpc-status"] == "14"
    assert "502" in answer["trailers"]["grpc-message"]


def test_grpc_timeout_is_a_deadline_on_the_backend_stream(world):
    proc, plain, _, _ = world
    plain.cancelled.clear()
    started = time.monotonic()
    # No deadline of the client's own: only ingressd can end this call.
    answer = h2_call(proc.https_port, "grpc.test", "/test.Echo/Slow", frame(b"20"),
                     headers=[(b"grpc-timeout", b"700m")])
    assert answer["status"] == 200 and answer["trailers"]["grpc-status"] == "4", answer
    assert time.monotonic() - started < 15
    assert plain.cancelled.wait(15), "the backend's stream was not cancelled"


def test_a_client_deadline_expiring_on_a_slow_backend(world):
    _, _, _, channels = world
    slow = method(channels["grpc.test"], "unary_unary", "Slow")
    with pytest.raises(grpc.RpcError) as raised:
        slow(b"20", timeout=0.8)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_many_concurrent_calls_share_few_backend_connections(world):
    _, plain, _, channels = world
    peer = method(channels["grpc.test"], "unary_unary", "Peer")
    with plain.lock:
        before = len(plain.peers)
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        calls = [pool.submit(peer, b"", timeout=60) for _ in range(400)]
        answers = [c.result() for c in calls]
    assert len(answers) == 400
    with plain.lock:
        peers = set(plain.peers[before:])
    # 400 calls, at most 100 streams per backend connection: a handful of connections.
    assert 1 <= len(peers) <= 4, peers


def test_grpcs_to_a_tls_backend(world):
    _, _, secure, channels = world
    for host in ("grpcs.test", "verified.test"):
        unary = method(channels[host], "unary_unary", "Unary")
        answer, call = unary.with_call(b"over tls", timeout=30)
        assert answer == b"over tls" and ("x-trailer", "done") in call.trailing_metadata()
        bidi = method(channels[host], "stream_stream", "Bidi")
        assert list(bidi(iter([b"a", b"b", b"c"] * 50), timeout=30)) == [b"A", b"B", b"C"] * 50


def test_grpcs_to_a_backend_whose_certificate_names_another_name_is_unavailable(world):
    _, _, _, channels = world
    unary = method(channels["wrong.test"], "unary_unary", "Unary")
    with pytest.raises(grpc.RpcError) as raised:
        unary(b"x", timeout=30)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_an_http11_client_gets_the_trailers_in_the_last_chunk(world):
    proc, *_ = world
    body = frame(b"hi")
    reply = proc.raw(b"POST /test.Echo/Unary HTTP/1.1\r\nHost: h1.test\r\nContent-Type: application/grpc\r\n"
                     b"TE: trailers\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body),
                     timeout=15)
    head, _, rest = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower(), reply
    assert b"\r\n0\r\n" in rest and rest.endswith(b"\r\n\r\n"), reply
    last = rest.rsplit(b"\r\n0\r\n", 1)[1]
    assert b"grpc-status: 0" in last and b"x-trailer: done" in last, reply
