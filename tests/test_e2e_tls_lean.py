"""End to end through the lean TLS layer (``ingressd.tls.lean``): the real ``twistd ingressd``,
real clients on loopback, both the listener's side (client TLS) and the backend's (HTTPS to a
backend).

The cases are the layer's edges: a request's TLS records sent a few bytes at a time (records
split across reads), a large upload and a large download (many records a read, writes larger
than a record), many keep-alive requests on one connection, the client's close_notify and a
connection cut without one, a corrupt record mid-stream, and ``openssl s_client``. Every
client call has a timeout.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest

import certs
from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, wait_for, write_manifests

pytestmark = pytest.mark.slow

OPENSSL = shutil.which("openssl")
TIMEOUT = 10.0
HOST = "lean.example"


def _context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


class _TLSBackend:
    """An HTTPS backend: the echo handler behind a TLS socket (self-signed, not verified)."""

    def __init__(self, tmp_path):
        leaf = certs.make_leaf("backend.example")
        (tmp_path / "backend.crt").write_bytes(leaf.cert_pem)
        (tmp_path / "backend.key").write_bytes(leaf.key_pem())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp_path / "backend.crt", tmp_path / "backend.key")
        self.backend = Backend("tls-web")
        self.backend.server.socket = context.wrap_socket(self.backend.server.socket, server_side=True)
        self.port = self.backend.port

    def stop(self):
        self.backend.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls-lean")
    manifests = root / "manifests"
    manifests.mkdir()
    leaf = certs.make_leaf(HOST)
    web = Backend("web")
    tls_web = _TLSBackend(root)
    write_manifests(manifests / "main.yaml", [
        INGRESS_CLASS,
        *service("web", [("http", 80, web.port)]),
        *service("tls-web", [("https", 443, tls_web.port)]),
        certs.secret_manifest("default", "lean", leaf.cert_pem, leaf.key_pem()),
        ingress("lean", [(HOST, [("/", "Prefix", "web", 80)])], tls=[{"hosts": [HOST], "secretName": "lean"}]),
        ingress("to-tls", [("backend.example", [("/", "Prefix", "tls-web", 443)])],
                annotations={"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}),
    ])
    proc = Ingressd(manifests, ["--access-log", "off"])
    wait_for(lambda: _get(proc, "/ready")[0] == 200, "the TLS host served")
    wait_for(lambda: _plain_get(proc, "backend.example", "/ready")[0] == 200, "the HTTPS backend served")
    yield proc
    proc.stop()
    web.stop()
    tls_web.stop()


def _get(proc, path: str, headers=None, method: str = "GET", body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", proc.https_port, timeout=TIMEOUT)
    conn.sock = _context().wrap_socket(socket.create_connection(("127.0.0.1", proc.https_port), timeout=TIMEOUT),
                                       server_hostname=HOST)
    try:
        conn.request(method, path, body=body, headers={"Host": HOST, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _plain_get(proc, host: str, path: str, method: str = "GET", body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class _Dribbler:
    """A TLS client over a raw socket whose records it sends in pieces of a few bytes."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = _context().wrap_bio(self.incoming, self.outgoing, server_hostname=HOST)
        for _ in range(20):  # bounded
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.send(self.outgoing.read())
                self.incoming.write(self.sock.recv(65536))
        self.send(self.outgoing.read())

    def send(self, records: bytes, piece: int = 0) -> None:
        if not piece:
            self.sock.sendall(records)
            return
        for at in range(0, len(records), piece):
            self.sock.sendall(records[at:at + piece])

    def request(self, data: bytes, piece: int) -> None:
        self.tls.write(data)
        self.send(self.outgoing.read(), piece)

    def response(self) -> bytes:
        """One response with a Content-Length, read to its end."""
        out = bytearray()
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                out += self.tls.read(65536)
            except ssl.SSLWantReadError:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.incoming.write(data)
                continue
            head, sep, body = bytes(out).partition(b"\r\n\r\n")
            if sep:
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:")))
                if len(body) >= length:
                    return bytes(out)
        raise AssertionError(f"no whole response: {bytes(out)[:200]!r}")

    def close(self) -> None:
        self.sock.close()


def test_records_sent_a_few_bytes_at_a_time_are_served(world):
    client = _Dribbler(world.https_port)
    try:
        body = bytes(range(256)) * 40
        client.request(b"POST /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n" % (HOST.encode(), len(body))
                       + body, piece=7)
        answer = client.response()
        assert answer.startswith(b"HTTP/1.1 200 ")
        echoed = json.loads(answer.partition(b"\r\n\r\n")[2])
        assert echoed["body_length"] == len(body)
        assert echoed["sha256"] == hashlib.sha256(body).hexdigest()
        # The same connection goes on: a second request, its records in one send.
        client.request(b"GET /second HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode(), piece=0)
        assert client.response().startswith(b"HTTP/1.1 200 ")
    finally:
        client.close()


def test_a_large_upload_and_download(world):
    body = bytes(range(256)) * 4096  # 1 MiB: many records in each read
    status, answer = _get(world, "/echo", method="POST", body=body)
    assert status == 200
    echoed = json.loads(answer)
    assert echoed["body_length"] == len(body) and echoed["sha256"] == hashlib.sha256(body).hexdigest()
    status, answer = _get(world, "/big?n=3000000")  # writes far larger than a record
    assert status == 200 and answer == b"x" * 3_000_000


def test_many_requests_on_one_connection(world):
    conn = http.client.HTTPConnection("127.0.0.1", world.https_port, timeout=TIMEOUT)
    conn.sock = _context().wrap_socket(socket.create_connection(("127.0.0.1", world.https_port), timeout=TIMEOUT),
                                       server_hostname=HOST)
    try:
        for n in range(200):
            conn.request("GET", f"/n{n}", headers={"Host": HOST})
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["path"] == f"/n{n}"
    finally:
        conn.close()


def _whole_response(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    raise AssertionError(f"no Content-Length in {head!r}")


def test_close_notify_ends_the_connection_cleanly(world):
    sock = _context().wrap_socket(socket.create_connection(("127.0.0.1", world.https_port), timeout=TIMEOUT),
                                  server_hostname=HOST)
    sock.sendall(b"GET /bye HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode())
    data = b""
    deadline = time.monotonic() + TIMEOUT
    while not _whole_response(data) and time.monotonic() < deadline:
        data += sock.recv(65536)  # the whole response: its body may follow the head in a record of its own,
    raw = sock.unwrap()  # and data after our close_notify is an error to ssl; this returns once the server's arrived
    raw.settimeout(TIMEOUT)
    assert raw.recv(1) == b""  # and then the server closed the TCP connection
    raw.close()
    assert _get(world, "/after")[0] == 200


def test_a_cut_connection_and_a_corrupt_record_leave_the_server_serving(world):
    client = _Dribbler(world.https_port)
    client.tls.write(b"GET /cut HTTP/1.1\r\nHost: %s\r\n" % HOST.encode())
    client.send(client.outgoing.read()[:-5])  # half a request, its record truncated
    client.close()  # no close_notify
    client = _Dribbler(world.https_port)
    client.tls.write(b"GET /corrupt HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode())
    records = bytearray(client.outgoing.read())
    records[-1] ^= 0x55
    client.send(bytes(records))
    client.sock.settimeout(TIMEOUT)
    closed = b""
    try:
        for _ in range(10):  # bounded: an alert, then the end of the connection
            data = client.sock.recv(65536)
            if not data:
                break
            closed += data
    except ConnectionResetError:
        pass
    client.close()
    assert closed[:1] in (b"", b"\x15", b"\x17")  # an alert record (encrypted in 1.3), or nothing
    assert _get(world, "/still")[0] == 200


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_openssl_s_client(world):
    request = b"GET /s-client HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % HOST.encode()
    result = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{world.https_port}", "-servername", HOST,
                             "-alpn", "http/1.1", "-quiet", "-ign_eof"],
                            input=request, capture_output=True, timeout=TIMEOUT * 2)
    assert result.stdout.startswith(b"HTTP/1.1 200 "), result.stderr[-500:]
    assert b'"path": "/s-client"' in result.stdout


def test_https_backend_requests_large_bodies_and_concurrency(world):
    body = bytes(range(256)) * 2048  # 512 KiB up: the backend side's writes span many records
    status, answer = _plain_get(world, "backend.example", "/echo", method="POST", body=body)
    assert status == 200
    echoed = json.loads(answer)
    assert echoed["body_length"] == len(body) and echoed["sha256"] == hashlib.sha256(body).hexdigest()
    status, answer = _plain_get(world, "backend.example", "/big?n=2000000")
    assert status == 200 and answer == b"x" * 2_000_000
    failures: list[str] = []

    def client(n: int) -> None:
        try:
            for k in range(20):
                status, answer = _plain_get(world, "backend.example", f"/c{n}-{k}")
                if status != 200 or json.loads(answer)["path"] != f"/c{n}-{k}":
                    failures.append(f"{n}-{k}: {status}")
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(repr(exc))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 6)
    assert not failures
