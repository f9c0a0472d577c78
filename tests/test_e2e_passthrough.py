"""End to end: ``ssl-passthrough`` with ``--enable-ssl-passthrough`` through the real ``twistd ingressd``.

The passthrough backend is a TLS server of the test's own with its own certificate (signed by
a CA only the test knows): a client that verifies against that CA and sees that certificate
has reached the backend without ingressd terminating anything. A terminated host shares the
same HTTPS listener.
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import certs
from backends import Backend
from harness import INGRESS_CLASS, Ingressd, free_port, ingress, service, write_manifests

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"
PASS = {N + "ssl-passthrough": "true"}
CHUNK = 64 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/big/"):
            size = int(self.path[5:])
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            block = bytes(range(256)) * (CHUNK // 256)
            left = size
            while left:
                piece = block[:min(left, CHUNK)]
                self.wfile.write(piece)
                left -= len(piece)
            return
        self._answer({"backend": self.server.name, "path": self.path, "host": self.headers.get("Host")})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        digest = hashlib.sha256()
        left = length
        while left:
            piece = self.rfile.read(min(left, CHUNK))
            if not piece:
                break
            digest.update(piece)
            left -= len(piece)
        self._answer({"backend": self.server.name, "received": length - left, "sha256": digest.hexdigest()})

    def _answer(self, document):
        body = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class TLSBackend(ThreadingHTTPServer):
    """HTTP/1.1 over TLS with its own certificate (``leaf``)."""

    daemon_threads = True

    def __init__(self, leaf, folder, name="passthrough-backend"):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name = name
        cert, key = folder / f"{name}.crt", folder / f"{name}.key"
        cert.write_bytes(leaf.cert_pem)
        key.write_bytes(leaf.key_pem())
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(cert), str(key))
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def get_request(self):
        raw, address = self.socket.accept()
        raw.settimeout(30)
        return self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False), address

    def shutdown_request(self, request):
        try:
            request.unwrap()  # close_notify, as real servers send it
        except (OSError, ValueError, ssl.SSLError):
            pass
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        pass  # clients that go away (the no-hang tests) are expected

    def stop(self):
        self.shutdown()
        self.server_close()


def objects(backend_port: int, down_port: int, extra=()):
    return [
        INGRESS_CLASS,
        certs.secret_manifest("default", "term-cert", WORLD["term_leaf"].cert_pem, WORLD["term_leaf"].key_pem()),
        *service("pass", [("https", 443, backend_port)]),
        *service("down", [("https", 443, down_port)]),
        *service("plain", [("http", 80, WORLD["plain"].port)]),
        ingress("pass", [("pass.test", [("/", "Prefix", "pass", 443)])], annotations=PASS),
        ingress("down", [("down.test", [("/", "Prefix", "down", 443)])], annotations=PASS),
        ingress("term", [("term.test", [("/", "Prefix", "plain", 80)])],
                tls=[{"hosts": ["term.test"], "secretName": "term-cert"}]),
        *extra,
    ]


WORLD: dict = {}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("passthrough")
    manifests = folder / "manifests"
    manifests.mkdir()
    backend_ca = certs.make_ca("passthrough backend CA")
    WORLD["backend_leaf"] = certs.make_leaf("pass.test", "later.test", issuer=backend_ca)
    term_ca = certs.make_ca("terminated host CA")
    WORLD["term_leaf"] = certs.make_leaf("term.test", issuer=term_ca)
    WORLD["plain"] = Backend("plain")
    backend = TLSBackend(WORLD["backend_leaf"], folder)
    (folder / "backend-ca.pem").write_bytes(backend_ca.cert_pem)
    (folder / "term-ca.pem").write_bytes(term_ca.cert_pem)
    WORLD.update(folder=folder, backend=backend, backend_ca=str(folder / "backend-ca.pem"),
                 term_ca=str(folder / "term-ca.pem"), down_port=free_port(), manifests=manifests)
    write_manifests(manifests / "all.yaml", objects(backend.port, WORLD["down_port"]))
    proc = Ingressd(manifests, extra_args=["--enable-ssl-passthrough"])
    WORLD["proc"] = proc
    yield proc
    proc.stop()
    backend.stop()
    WORLD["plain"].stop()


def _client(cafile: str | None, check: bool = True) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is not None:
        context.load_verify_locations(cafile)
    if not check:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _request(conn, request: bytes) -> bytes:
    conn.sendall(request)
    data = b""
    while True:
        piece = conn.recv(CHUNK)
        if not piece:
            return data
        data += piece
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            if length is not None and len(body) >= length:
                return data


def _get(port: int, name: str | None, cafile: str | None, host: str, path: str = "/", check: bool = True):
    """(the server's certificate, DER; status line; body) of one HTTPS GET with SNI ``name``."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with _client(cafile, check).wrap_socket(raw, server_hostname=name) as conn:
            der = conn.getpeercert(binary_form=True)
            answer = _request(conn, f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    return der, head.split(b"\r\n", 1)[0], body


def test_the_client_sees_the_backends_certificate(world):
    der, status, body = _get(world.https_port, "pass.test", WORLD["backend_ca"], "pass.test", "/hello")
    assert der == WORLD["backend_leaf"].der
    assert status == b"HTTP/1.1 200 OK"
    assert json.loads(body) == {"backend": "passthrough-backend", "path": "/hello", "host": "pass.test"}


def test_curl_with_the_backends_ca(world):
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "30", "--cacert", WORLD["backend_ca"],
         "--resolve", f"pass.test:{world.https_port}:127.0.0.1", f"https://pass.test:{world.https_port}/curl"],
        capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["path"] == "/curl"


def test_openssl_s_client_with_the_servername(world):
    request = b"GET /openssl HTTP/1.0\r\nHost: pass.test\r\n\r\n"
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{world.https_port}", "-servername", "pass.test",
         "-CAfile", WORLD["backend_ca"], "-verify_return_error", "-ign_eof", "-quiet"],
        input=request, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert b'"path": "/openssl"' in result.stdout


def test_a_terminated_host_on_the_same_listener(world):
    der, status, body = _get(world.https_port, "term.test", WORLD["term_ca"], "term.test", "/t")
    assert der == WORLD["term_leaf"].der
    assert status == b"HTTP/1.1 200 OK"
    assert json.loads(body)["path"] == "/t"  # the plain backend's echo


@pytest.mark.parametrize("name, ca, leaf", [("pass.test", "backend_ca", "backend_leaf"),
                                            ("term.test", "term_ca", "term_leaf")])
def test_a_client_hello_split_in_small_pieces(world, name, ca, leaf):
    # Passed through or terminated alike: the hello is read whole before anything is decided.
    context = _client(WORLD[ca])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=name)
    with socket.create_connection(("127.0.0.1", world.https_port), timeout=30) as sock:
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = outgoing.read()
        assert len(hello) > 100
        for at in range(0, len(hello), 7):  # seven bytes a segment (TCP_NODELAY: each its own packet)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(hello[at:at + 7])
            time.sleep(0.002)
        for _ in range(100):  # the rest of the handshake, over the same socket
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                data = sock.recv(CHUNK)
                assert data, "closed during the handshake"
                incoming.write(data)
        sock.sendall(outgoing.read())
        assert tls.getpeercert(binary_form=True) == WORLD[leaf].der
        tls.write(f"GET /split HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        sock.sendall(outgoing.read())
        answer = b""
        while b'"/split"' not in answer:
            data = sock.recv(CHUNK)
            assert data, answer
            incoming.write(data)
            while True:
                try:
                    piece = tls.read(CHUNK)
                except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                    break
                if not piece:
                    break
                answer += piece
    assert answer.startswith(b"HTTP/1.1 200 OK")


def test_no_sni_is_terminated_and_routed_by_host_to_the_backend_over_tls(world):
    # As ingress-nginx: no SNI → nginx terminates; its location proxies with https:// to the
    # passthrough Service, so the request still reaches the backend (over TLS from ingressd).
    der, status, body = _get(world.https_port, None, None, "pass.test", "/nosni", check=False)
    assert der != WORLD["backend_leaf"].der
    assert status == b"HTTP/1.1 200 OK"
    assert json.loads(body)["path"] == "/nosni"


def test_an_unknown_name_is_terminated_with_the_default_certificate(world):
    der, status, _ = _get(world.https_port, "unknown.test", None, "unknown.test", check=False)
    assert der not in (WORLD["backend_leaf"].der, WORLD["term_leaf"].der)
    assert status == b"HTTP/1.1 404 Not Found"


def test_plain_http_for_the_host_goes_to_the_backend_over_tls(world):
    response = world.get("/over-port-80", host="pass.test")
    assert response.status == 200
    assert json.loads(response.body)["path"] == "/over-port-80"


def test_non_tls_bytes_are_closed_without_a_hang(world):
    with socket.create_connection(("127.0.0.1", world.https_port), timeout=30) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: pass.test\r\n\r\n")
        received = b""
        while True:
            data = sock.recv(CHUNK)  # the timeout fails the test if ingressd holds the connection
            if not data:
                break
            received += data
    assert b"passthrough-backend" not in received
    assert _get(world.https_port, "pass.test", WORLD["backend_ca"], "pass.test")[1] == b"HTTP/1.1 200 OK"


def test_a_backend_that_is_down_closes_the_connection(world):
    with socket.create_connection(("127.0.0.1", world.https_port), timeout=30) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)) as failure:
            _client(WORLD["backend_ca"]).wrap_socket(raw, server_hostname="down.test")
    assert not isinstance(failure.value, TimeoutError)
    status, _, text = world.admin("/metrics")
    assert status == 200
    failed = [line for line in text.decode().splitlines()
              if line.startswith("ingressd_tls_passthrough_connections_failed_total ")]
    assert failed and float(failed[0].split()[1]) >= 1


def test_large_transfers_both_ways(world):
    size = 16 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", world.https_port), timeout=60) as raw:
        with _client(WORLD["backend_ca"]).wrap_socket(raw, server_hostname="pass.test") as conn:
            conn.sendall(f"GET /big/{size} HTTP/1.1\r\nHost: pass.test\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(CHUNK)
            head, _, body = data.partition(b"\r\n\r\n")
            digest, received = hashlib.sha256(body), len(body)
            while received < size:
                piece = conn.recv(CHUNK)
                assert piece, received
                digest.update(piece)
                received += len(piece)
            block = bytes(range(256)) * (CHUNK // 256)
            assert digest.hexdigest() == hashlib.sha256(block * (size // CHUNK)).hexdigest()
            conn.sendall(f"POST /up HTTP/1.1\r\nHost: pass.test\r\nContent-Length: {size}\r\n"
                         "Connection: close\r\n\r\n".encode())
            for _ in range(size // CHUNK):
                conn.sendall(block)
            answer = _request(conn, b"")
    document = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert document["received"] == size
    assert document["sha256"] == hashlib.sha256(block * (size // CHUNK)).hexdigest()


def _serves_passthrough(port: int, name: str) -> bool:
    try:
        der = _get(port, name, None, name, check=False)[0]
    except (OSError, ssl.SSLError):
        return False
    return der == WORLD["backend_leaf"].der


def _eventually(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_passthrough_host_added_and_removed_without_a_restart(world):
    assert not _serves_passthrough(world.https_port, "later.test")
    later = ingress("later", [("later.test", [("/", "Prefix", "pass", 443)])], annotations=PASS)
    write_manifests(WORLD["manifests"] / "all.yaml",
                    objects(WORLD["backend"].port, WORLD["down_port"], extra=[later]))
    assert _eventually(lambda: _serves_passthrough(world.https_port, "later.test"))
    write_manifests(WORLD["manifests"] / "all.yaml", objects(WORLD["backend"].port, WORLD["down_port"]))
    assert _eventually(lambda: not _serves_passthrough(world.https_port, "later.test"))
    assert _serves_passthrough(world.https_port, "pass.test")


def test_without_the_flag_the_ingress_is_not_served(world, tmp_path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", objects(WORLD["backend"].port, WORLD["down_port"]))
    proc = Ingressd(manifests)
    try:
        der, status, _ = _get(proc.https_port, "pass.test", None, "pass.test", check=False)
        assert der != WORLD["backend_leaf"].der  # terminated here: never passed through
        assert status == b"HTTP/1.1 404 Not Found"  # and the Ingress is not served
        assert proc.get("/", host="pass.test").status == 404
        assert _get(proc.https_port, "term.test", WORLD["term_ca"], "term.test")[1] == b"HTTP/1.1 200 OK"
        assert "without --enable-ssl-passthrough" in proc.log()
    finally:
        proc.stop()
    check = subprocess.run([str(__import__("harness").TWISTD.replace("twistd", "ingressd")), "check",
                            str(manifests)], capture_output=True, timeout=120)
    assert check.returncode == 1
    assert b"without --enable-ssl-passthrough" in check.stdout


def _metric(proc, name: str) -> float:
    status, _, text = proc.admin("/metrics")
    assert status == 200
    lines = [line for line in text.decode().splitlines() if line.startswith(name + " ")]
    return float(lines[0].split()[1]) if lines else -1.0


def test_an_open_passthrough_connection_is_counted_and_closed_by_the_drain(world, tmp_path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", objects(WORLD["backend"].port, WORLD["down_port"]))
    proc = Ingressd(manifests, extra_args=["--enable-ssl-passthrough", "--shutdown-grace", "1"])
    try:
        raw = socket.create_connection(("127.0.0.1", proc.https_port), timeout=30)
        with _client(WORLD["backend_ca"]).wrap_socket(raw, server_hostname="pass.test") as conn:
            answer = _request(conn, b"GET /kept HTTP/1.1\r\nHost: pass.test\r\n\r\n")  # kept alive
            assert b'"/kept"' in answer
            assert _eventually(lambda: _metric(proc, "ingressd_tls_passthrough_connections") == 1)
            assert _metric(proc, "ingressd_tls_passthrough_connections_accepted_total") == 1
            assert _metric(proc, "ingressd_tls_handshake_failures_total") == 0
            proc.process.terminate()
            try:
                assert conn.recv(CHUNK) == b""  # closed by the drain (the timeout fails the test)
            except (ssl.SSLError, ConnectionError):
                pass
        assert proc.process.wait(30) == 0
        assert "closing 1 connection(s)" in proc.log()
    finally:
        proc.stop()
