"""End to end: what a client sees of ingressd's own doing, with the real ``twistd ingressd``.

Server and Date as nginx sends them (HTTP/1.1 and HTTP/2), every answer ingressd gives itself
in the access log and /metrics, and request bodies read whole before a backend sees them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests
from rawclient import rss_kib

pytestmark = pytest.mark.slow

CURL = shutil.which("curl")
DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                  r"\d{4} \d\d:\d\d:\d\d GMT$")


class CountingListener:
    """A TCP listener that only counts the connections and bytes it gets (a backend that
    must see nothing)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.bytes = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.settimeout(0.5)
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    self.bytes += len(data)
            except OSError:
                pass
            conn.close()

    def stop(self):
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("visible")
    manifests = root / "manifests"
    manifests.mkdir()
    web = Backend("web")
    sink = CountingListener()
    write_manifests(manifests / "main.yaml", [
        INGRESS_CLASS,
        *service("web", [("http", 80, web.port)]),
        *service("sink", [("http", 80, sink.port)]),
        ingress("main", [("example.com", [("/", "Prefix", "web", "http")]),
                         ("sink.test", [("/", "Prefix", "sink", "http")])]),
        ingress("unlimited", [("big.test", [("/", "Prefix", "web", "http")])],
                annotations={"nginx.ingress.kubernetes.io/proxy-body-size": "0"}),
    ])
    access_log = root / "access.log"
    proc = Ingressd(manifests, ["--access-log", str(access_log), "--client-header-timeout", "1"])
    yield proc, web, sink, access_log
    proc.stop()
    web.stop()
    sink.stop()


def _wait_for(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# -- Server and Date ------------------------------------------------------------------------


def _identity_ok(headers: list[tuple[str, str]], server: str | None = None) -> None:
    """One Date; no Server (ingress-nginx's default clears it), or ``server`` with --server-tokens."""
    servers = [v for k, v in headers if k.lower() == "server"]
    dates = [v for k, v in headers if k.lower() == "date"]
    assert servers == ([server] if server else []), headers
    assert len(dates) == 1 and DATE.match(dates[0]), headers


def test_proxied_and_own_answers_carry_a_date_and_no_server(world):
    proc, *_ = world
    proxied = proc.get("/x")
    assert proxied.status == 200 and proxied.headers["x-backend"] == "web"
    _identity_ok(proxied.header_list)  # the backend's "echo Python/…" Server is hidden too
    answer = proc.get("/", host="nope.test")
    assert answer.status == 404
    _identity_ok(answer.header_list)
    # Raw requests for what ingressd refuses before reading a body (a client still sending a
    # body could see the connection reset before it reads the answer).
    for request, status in ((b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2097152\r\n\r\n", 413),
                            (b"GET / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n", 400)):
        raw = proc.raw(request)
        head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        assert head[0].startswith(f"HTTP/1.1 {status} "), head
        _identity_ok([tuple(line.split(": ", 1)) for line in head[1:]])


@pytest.mark.skipif(CURL is None, reason="needs curl")
@pytest.mark.parametrize("path, status", [("/x", 200), ("/missing", 404)])
def test_http2_answers_carry_a_date_and_no_server(world, path, status):
    proc, *_ = world
    host = "example.com" if path == "/x" else "nope.test"
    result = subprocess.run([CURL, "-sS", "-k", "--http2", "-D", "-", "-o", os.devnull, "--max-time", "20",
                             "--resolve", f"{host}:{proc.https_port}:127.0.0.1",
                             f"https://{host}:{proc.https_port}{path}"], capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode("latin-1").strip().split("\r\n")
    assert lines[0].strip() == f"HTTP/2 {status}", lines
    _identity_ok([tuple(line.split(": ", 1)) for line in lines[1:] if ": " in line])


def test_server_tokens_send_the_version(world, tmp_path):
    proc = Ingressd(world[0].log_path.parent / "manifests", ["--server-tokens", "--access-log", "off"],
                    log_path=tmp_path / "tokens.log")
    try:
        from ingressd import __version__

        _identity_ok(proc.get("/x").header_list, f"ingressd/{__version__}")
        _identity_ok(proc.get("/", host="nope.test").header_list, f"ingressd/{__version__}")
    finally:
        proc.stop()


# -- every answer ingressd gives itself is logged and counted -------------------------------


def _log_lines(path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _metric(proc, status: int) -> float:
    _, _, body = proc.admin("/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("ingressd_requests_total{") and f'status="{status}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _raw_wait_close(proc, data: bytes, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", proc.http_port), timeout=timeout) as sock:
        sock.sendall(data)
        return _read_to_close(sock)


def _read_to_close(sock) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while True:
        piece = sock.recv(65536)
        if not piece:
            return b"".join(chunks)
        chunks.append(piece)


@pytest.mark.parametrize("status, request_bytes, uri", [
    (400, b"POST /smuggle HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
          b"0\r\n\r\n", "/smuggle"),
    (408, b"GET /slow-head HTTP/1.1\r\nHost: exa", "/slow-head"),
    (413, b"POST /too-big HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2000000\r\n\r\n", "/too-big"),
    (414, b"GET /" + b"u" * 9000 + b" HTTP/1.1\r\nHost: example.com\r\n\r\n", None),
    (400, b"GET /fat-head HTTP/1.1\r\nHost: example.com\r\nX-Fat: " + b"f" * 40000 + b"\r\n\r\n", None),
])
def test_each_answer_of_ingressds_own_is_logged_and_counted(world, status, request_bytes, uri):
    proc, _, _, access_log = world
    before = _metric(proc, status)
    logged_before = sum(1 for line in _log_lines(access_log) if line["status"] == status)
    answer = _raw_wait_close(proc, request_bytes)
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:100]
    _wait_for(lambda: _metric(proc, status) == before + 1)
    lines = _wait_for(lambda: [line for line in _log_lines(access_log) if line["status"] == status]
                      if sum(1 for line in _log_lines(access_log) if line["status"] == status) > logged_before
                      else None)
    line = lines[-1]
    assert line["client"] == "127.0.0.1" and line["bytes_sent"] > 0
    if uri is not None:
        assert line["uri"] == uri
    if status in (400, 413):
        assert line["host"] == "example.com"


def _route_requests(proc, ingress: str, method: str) -> float:
    _, _, body = proc.admin("/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
               if line.startswith("ingressd_requests_total{") and f'ingress="{ingress}"' in line
               and f'method="{method}"' in line)


def _pipelined(sock, prefix: bytes, count: int) -> bytes:
    """``count`` GETs to big.test sent in one write (their exchanges end in few rounds of events),
    the last closing the connection; everything read back until the close."""
    requests = [b"OPTIONS %s%d HTTP/1.1\r\nHost: big.test\r\n\r\n" % (prefix, index) for index in range(count - 1)]
    requests.append(b"OPTIONS %s%d HTTP/1.1\r\nHost: big.test\r\nConnection: close\r\n\r\n" % (prefix, count - 1))
    sock.sendall(b"".join(requests))
    return _read_to_close(sock)


def test_pipelined_requests_in_clear_and_over_tls_are_each_logged_and_counted_once(world):
    """The proxy hands a round's finished exchanges to the metrics and the access log in one call
    (``Proxy.round_observers``): every request of a pipelined burst has its line, in order, and its
    count; over TLS with its TLS facts, though the connection closed right after."""
    import ssl
    proc, _, _, access_log = world
    count = 40
    before = _route_requests(proc, "unlimited", "OPTIONS")
    with socket.create_connection(("127.0.0.1", proc.http_port), timeout=10) as sock:
        answers = _pipelined(sock, b"/round/", count)
    assert answers.count(b"HTTP/1.1 200 ") == count
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", proc.https_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="big.test") as sock:
            answers = _pipelined(sock, b"/tls-round/", count)
    assert answers.count(b"HTTP/1.1 200 ") == count
    _wait_for(lambda: _route_requests(proc, "unlimited", "OPTIONS") == before + 2 * count)

    def logged():
        lines = [line for line in _log_lines(access_log) if line["method"] == "OPTIONS"
                 and line["uri"].startswith(("/round/", "/tls-round/"))]
        return lines if len(lines) >= 2 * count else None
    lines = _wait_for(logged)
    plain = [line for line in lines if line["uri"].startswith("/round/")]
    tls = [line for line in lines if line["uri"].startswith("/tls-round/")]
    assert [line["uri"] for line in plain] == [f"/round/{index}" for index in range(count)]
    assert [line["uri"] for line in tls] == [f"/tls-round/{index}" for index in range(count)]
    assert all(line["status"] == 200 and line["tls_version"] is None for line in plain)
    assert all(line["status"] == 200 and line["tls_version"] and line["sni"] == "big.test" for line in tls)
    time.sleep(0.3)  # past the metrics' hold and the log writer's interval: nothing counted twice
    assert _route_requests(proc, "unlimited", "OPTIONS") == before + 2 * count
    assert len([line for line in _log_lines(access_log) if line["method"] == "OPTIONS"]) == 2 * count


# -- request bodies are read whole before a backend sees them -------------------------------


def _chunked_upload(proc, host: str, body_pieces, timeout: float = 30.0) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", proc.http_port), timeout=timeout) as sock:
        sock.sendall(b"PUT /upload HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % host.encode())
        try:
            for piece in body_pieces:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-way: the answer is already there
        data = b""
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
        while len(rest) < length:
            piece = sock.recv(65536)
            if not piece:
                break
            rest += piece
        return int(head.split(b" ", 2)[1]), rest


def test_a_chunked_body_over_the_limit_is_refused_before_the_backend_sees_a_byte(world):
    proc, _, sink, _ = world
    status, _ = _chunked_upload(proc, "sink.test", (b"z" * 65536 for _ in range(80)))  # 5 MiB, limit 1m
    assert status == 413
    time.sleep(0.5)  # a connection the sink would have had is accepted at once; give it the chance
    assert (sink.connections, sink.bytes) == (0, 0)


@pytest.mark.parametrize("chunked", [True, False])
def test_a_body_under_the_limit_arrives_intact(world, chunked):
    proc, web, *_ = world
    body = os.urandom(700 * 1024)  # beyond the 64 KiB kept in memory: through the temporary file
    if chunked:
        status, answer = _chunked_upload(proc, "example.com", (body[i:i + 10000] for i in range(0, len(body), 10000)))
    else:
        response = proc.get("/upload", method="PUT", body=body)
        status, answer = response.status, response.body
    assert status == 200
    echoed = json.loads(answer)
    assert echoed["body_length"] == len(body) and echoed["sha256"] == hashlib.sha256(body).hexdigest()
    assert "transfer-encoding" not in dict(echoed["headers"])  # read whole: sent with its length


def test_a_large_unlimited_body_goes_through_with_bounded_memory(world):
    proc, *_ = world
    before = rss_kib(proc.process.pid)
    digest = hashlib.sha256()
    block = os.urandom(65536)
    pieces = []
    for _ in range(320):  # 20 MiB
        digest.update(block)
        pieces.append(block)
    status, answer = _chunked_upload(proc, "big.test", iter(pieces), timeout=60)
    after = rss_kib(proc.process.pid)
    assert status == 200
    echoed = json.loads(answer)
    assert echoed["body_length"] == 320 * 65536 and echoed["sha256"] == digest.hexdigest()
    assert after - before < 12 * 1024, (before, after)  # the body waited in a file, not in memory
