"""Faults around the real ``twistd ingressd``: nothing lost, traffic keeps flowing.

Backends that refuse, reset, hang or disappear while requests are in flight, and
configuration that is invalid, unparsable or broken: each fault must affect only itself.
One ingressd process serves the module; see docs/security.md for the table of outcomes.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time

import pytest

from backends import Backend
from certs import make_leaf, secret_manifest
from harness import INGRESS_CLASS, Ingressd, free_port, ingress, service, write_manifests
from rawclient import exchange

pytestmark = pytest.mark.slow


class ResetMidChunked:
    """A backend that starts a chunked response, sends one chunk, then resets the connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                conn.settimeout(3)
                data = b""
                while b"\r\n\r\n" not in data:
                    piece = conn.recv(4096)
                    if not piece:
                        break
                    data += piece
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
                time.sleep(0.1)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            finally:
                conn.close()

    def stop(self):
        self._stop = True
        self.sock.close()


def endpoint_slices(service_name: str, ports) -> list[dict]:
    return [{
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{service_name}-{index}", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service_name}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": port}],
        "endpoints": [{"addresses": ["127.0.0.1"]}],
    } for index, port in enumerate(ports)]


def pool_objects(ports) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "pool", "namespace": "default"},
             "spec": {"ports": [{"name": "http", "port": 80}]}}, *endpoint_slices("pool", ports)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    manifests = root / "manifests"
    manifests.mkdir()
    web, first, second = Backend("web"), Backend("first"), Backend("second")
    resetter = ResetMidChunked()
    good = make_leaf("good.test")
    objects = [
        INGRESS_CLASS,
        *service("web", [("http", 80, web.port)]),
        *service("refused", [("http", 80, free_port())]),
        *service("resetter", [("http", 80, resetter.port)]),
        secret_manifest("default", "good-tls", good.cert_pem, good.key_pem()),
        ingress("main", [
            ("web.test", [("/", "Prefix", "web", 80)]),
            ("refused.test", [("/", "Prefix", "refused", 80)]),
            ("reset.test", [("/", "Prefix", "resetter", 80)]),
        ]),
        ingress("pool", [("pool.test", [("/", "Prefix", "pool", 80)])],
                annotations={"nginx.ingress.kubernetes.io/proxy-read-timeout": "10"}),
        ingress("good-tls", [("good.test", [("/", "Prefix", "web", 80)])],
                tls=[{"hosts": ["good.test"], "secretName": "good-tls"}]),
    ]
    write_manifests(manifests / "main.yaml", objects)
    write_manifests(manifests / "pool.yaml", pool_objects([first.port, second.port]))
    proc = Ingressd(manifests, ["--proxy-read-timeout", "1", "--proxy-connect-timeout", "1"])
    yield proc, manifests, {"web": web, "first": first, "second": second}
    proc.stop()
    for backend in (web, first, second):
        backend.stop()
    resetter.stop()
    text = proc.log_path.read_text(errors="replace")
    assert "Traceback" not in text, text


def wait_for_log(proc, needle: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = proc.log_path.read_text(errors="replace")
        if needle in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} never logged")


# -- backend faults ---------------------------------------------------------------------------


def test_refused_connection_is_502(world):
    """A backend whose port refuses connections: 502 (after one retry for GET), and the
    connection to the client stays usable for the next request."""
    proc, *_ = world
    conn = proc.connection()
    try:
        for _ in range(2):
            conn.request("GET", "/", headers={"Host": "refused.test"})
            response = conn.getresponse()
            response.read()
            assert response.status == 502
        conn.request("GET", "/", headers={"Host": "web.test"})
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_reset_mid_response_is_truncated_never_complete_looking(world):
    """A backend that dies mid-response (Content-Length body cut short; chunked body reset
    before its last chunk): the client gets the head and a truncated body and then the
    close: never a complete-looking response (no final 0-chunk, fewer bytes than declared)."""
    proc, *_ = world
    reply = exchange(proc.http_port, b"GET /close-mid HTTP/1.1\r\nHost: web.test\r\n\r\n")
    assert reply.closed
    [response] = reply.responses
    assert response.status == 200 and not response.complete
    assert int(response.header(b"content-length")) == 100000 and len(response.body) < 100000
    reply = exchange(proc.http_port, b"GET / HTTP/1.1\r\nHost: reset.test\r\n\r\n")
    assert reply.closed
    [response] = reply.responses
    assert response.status == 200 and not response.complete
    assert not reply.data.endswith(b"0\r\n\r\n")
    assert proc.get("/", host="web.test").status == 200


def test_hanging_backend_is_504_at_the_read_timeout(world):
    """A backend that accepts and never answers (here: answers after 4 s against a 1 s
    --proxy-read-timeout): 504, and other requests are served meanwhile."""
    proc, *_ = world
    results = {}

    def slow():
        results["slow"] = proc.get("/slow?delay=4", host="web.test", timeout=10).status

    worker = threading.Thread(target=slow)
    worker.start()
    assert proc.get("/", host="web.test").status == 200
    worker.join(15)
    assert results.get("slow") == 504


def test_endpoints_removed_while_requests_are_in_flight(world):
    """An endpoint leaves the Service while requests on it are in flight (a rolling update):
    the in-flight requests complete with 200; after the change nothing new goes to it;
    once its process is gone, GETs that still land on a dead address (here: a Service
    whose first endpoint refuses) are retried on another endpoint. Nothing is lost."""
    proc, manifests, backends = world
    first, second = backends["first"], backends["second"]
    results: list = []

    def call():
        try:
            results.append(proc.get("/slow?delay=1.5", host="pool.test", timeout=15).json()["backend"])
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            results.append(repr(exc))

    workers = [threading.Thread(target=call) for _ in range(6)]
    for worker in workers:
        worker.start()
    time.sleep(0.5)
    write_manifests(manifests / "pool.yaml", pool_objects([second.port]))
    time.sleep(1.5)  # the file provider polls every 0.5 s
    for worker in workers:
        worker.join(20)
    assert sorted(set(results)) == ["first", "second"], results  # both served, none failed
    before = len(first.requests)
    assert {proc.get("/", host="pool.test").json()["backend"] for _ in range(6)} == {"second"}
    assert len(first.requests) == before
    # a dead endpoint still listed: every GET is retried on the live one
    write_manifests(manifests / "pool.yaml", pool_objects([free_port(), second.port]))
    time.sleep(1.5)
    statuses = [proc.get("/", host="pool.test") for _ in range(6)]
    assert [r.status for r in statuses] == [200] * 6
    assert {r.json()["backend"] for r in statuses} == {"second"}
    write_manifests(manifests / "pool.yaml", pool_objects([first.port, second.port]))


# -- configuration faults ---------------------------------------------------------------------


def test_invalid_ingress_affects_only_itself(world):
    """An Ingress with an invalid pathType and one with an empty paths list are rejected (and
    logged by name); the valid Ingress in the same file and every other one keep serving."""
    proc, manifests, _ = world
    write_manifests(manifests / "invalid.yaml", [
        ingress("bad-type", [("bad1.test", [("/", "Sideways", "web", 80)])]),
        {**ingress("bad-empty", [("bad2.test", [("/", "Prefix", "web", 80)])]),
         "spec": {"ingressClassName": "ingressd", "rules": [{"host": "bad2.test", "http": {"paths": []}}]}},
        ingress("fine", [("fine.test", [("/", "Prefix", "web", 80)])]),
    ])
    text = wait_for_log(proc, "default/bad-empty")
    assert "default/bad-type" in text
    for _ in range(20):
        if proc.get("/", host="fine.test").status == 200:
            break
        time.sleep(0.2)
    assert proc.get("/", host="fine.test").status == 200
    assert proc.get("/", host="bad1.test").status == 404
    assert proc.get("/", host="bad2.test").status == 404
    assert proc.get("/", host="web.test").status == 200


def test_unparsable_manifest_keeps_its_last_good_content(world):
    """A manifest file that stops parsing (a bad edit) is logged and keeps serving what it
    last held; a file that never parsed contributes nothing; the rest keeps serving."""
    proc, manifests, _ = world
    path = manifests / "editable.yaml"
    write_manifests(path, [ingress("editable", [("editable.test", [("/", "Prefix", "web", 80)])])])
    deadline = time.monotonic() + 10
    while proc.get("/", host="editable.test").status != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.get("/", host="editable.test").status == 200
    time.sleep(1.1)  # a new modification time
    path.write_text("kind: Ingress\nmetadata: {name: [unclosed\n  : : :\n")
    (manifests / "garbage.yaml").write_bytes(b"\xff\xfe\x00not yaml: [\n\t- ::")
    wait_for_log(proc, "editable.yaml cannot be read")
    wait_for_log(proc, "garbage.yaml cannot be read")
    assert proc.get("/", host="editable.test").status == 200
    assert proc.get("/", host="web.test").status == 200


def test_broken_tls_secret_affects_only_its_host(world):
    """A TLS Secret with a garbage certificate: its Ingress's host is refused on TLS (no
    certificate of its own; ingressd's default certificate is presented instead) and the
    problem is logged; the other TLS host keeps its certificate and plain HTTP keeps serving."""
    proc, manifests, _ = world
    write_manifests(manifests / "broken-tls.yaml", [
        secret_manifest("default", "broken-tls", b"-----BEGIN CERTIFICATE-----\nnot a cert\n-----END CERTIFICATE-----\n",
                        b"garbage"),
        ingress("broken-tls", [("broken.test", [("/", "Prefix", "web", 80)])],
                tls=[{"hosts": ["broken.test"], "secretName": "broken-tls"}]),
    ])
    wait_for_log(proc, "broken-tls")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    def certificate_for(name: str) -> bytes:
        with socket.create_connection(("127.0.0.1", proc.https_port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=name) as tls:
                return tls.getpeercert(binary_form=True)

    from cryptography import x509

    good = x509.load_der_x509_certificate(certificate_for("good.test"))
    assert "good.test" in str(good.subject) or "good.test" in str(good.extensions)
    broken = x509.load_der_x509_certificate(certificate_for("broken.test"))
    assert "broken.test" not in str(broken.extensions)
    assert proc.get("/", host="web.test").status == 200


def test_deleted_service_affects_only_its_routes(world):
    """A Service deleted while its Ingress stays: that route answers 503 (no endpoints), the
    deletion is reported, and every other route keeps serving; restoring it heals the route."""
    proc, manifests, backends = world
    other = Backend("doomed")
    try:
        write_manifests(manifests / "doomed.yaml", [
            *service("doomed", [("http", 80, other.port)]),
            ingress("doomed", [("doomed.test", [("/", "Prefix", "doomed", 80)])]),
        ])
        deadline = time.monotonic() + 10
        while proc.get("/", host="doomed.test").status != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.get("/", host="doomed.test").json()["backend"] == "doomed"
        write_manifests(manifests / "doomed.yaml", [ingress("doomed", [("doomed.test", [("/", "Prefix", "doomed", 80)])])])
        deadline = time.monotonic() + 10
        while proc.get("/", host="doomed.test").status == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.get("/", host="doomed.test").status == 503
        wait_for_log(proc, "Service default/doomed not found")
        assert proc.get("/", host="web.test").status == 200
    finally:
        other.stop()
