"""Buffering end to end, with the real ``twistd ingressd``, real sockets and a backend that says
what it sees as it sees it: request bodies held whole (spilling to a temporary file) or
streamed, 413 mid-stream, responses read ahead of a slow client (the backend done early) or
streamed with backpressure (the backend waits), limit-rate, and HTTP/2 clients too."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests
from test_e2e_tls import H2Client

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"
BIG = 64 * 1024 * 1024  # more than every socket buffer on the way can hold (client's: 64 KiB)
WAIT = 60.0  # generous: the machine may be loaded


def wait_for(condition, timeout: float = WAIT, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Recorder:
    """A backend on 127.0.0.1: one request per connection; ``/upload`` reads the body (either
    framing) and answers its length; ``/big?n=N`` sends N bytes. Each request's progress is in
    ``seen[tag]`` (the ``x-tag`` request header): head time, body bytes, bytes sent, done."""

    def __init__(self, rcvbuf: int | None = None):
        self.sock = socket.socket()
        if rcvbuf:  # inherited by accepted connections: a backend that cannot be sent much ahead
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.seen: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.go = threading.Event()  # lets /trickle send the rest of its answer
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        record = None
        try:
            conn.settimeout(WAIT)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                piece = conn.recv(65536)
                if not piece:
                    return
                data += piece
            head, _, rest = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            record = {"head_at": time.monotonic(), "received": 0, "sent": 0, "done": False, "aborted": False,
                      "headers": headers, "first_byte_at": None}
            with self.lock:
                self.seen[headers.get("x-tag", target)] = record
            url = urlsplit(target)
            if url.path == "/slow-upload":  # a slow backend: it reads the body once the test says so
                self.go.wait(WAIT)
            if url.path in ("/upload", "/slow-upload"):
                length = self._read_body(conn, headers, rest, record)
                if length is None:
                    record["aborted"] = True
                    return
                self._answer(conn, json.dumps({"length": length}).encode())
            elif url.path == "/trickle":  # a slow backend: the rest only once the test says so
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\nfirst")
                record["sent"] = 5
                self.go.wait(WAIT)
                conn.sendall(b"-rest")
                record["sent"] = 10
            else:
                size = int(parse_qs(url.query).get("n", ["1000"])[0])
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % size)
                block = b"x" * 65536
                while record["sent"] < size:
                    piece = block[: min(len(block), size - record["sent"])]
                    conn.sendall(piece)
                    record["sent"] += len(piece)
            record["done"] = True
        except OSError:
            if record is not None:
                record["aborted"] = True
        finally:
            conn.close()

    def _read_body(self, conn, headers, rest, record):
        buffer = bytearray(rest)

        def more() -> bool:
            piece = conn.recv(65536)
            if not piece:
                return False
            buffer.extend(piece)
            return True

        def count(n):
            if n and record["first_byte_at"] is None:
                record["first_byte_at"] = time.monotonic()
            record["received"] += n

        if headers.get("transfer-encoding", "").lower() == "chunked":
            total = 0
            while True:
                while b"\r\n" not in buffer:
                    if not more():
                        return None
                line, _, tail = bytes(buffer).partition(b"\r\n")
                size = int(line.split(b";")[0], 16)
                del buffer[: len(line) + 2]
                while len(buffer) < size + 2:
                    count(0)
                    if not more():
                        return None
                count(size)
                total += size
                del buffer[: size + 2]
                if size == 0:
                    return total
        length = int(headers.get("content-length", "0"))
        count(len(buffer))
        while len(buffer) < length:
            before = len(buffer)
            if not more():
                return None
            count(len(buffer) - before)
        return length

    def _answer(self, conn, payload):
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                     b"connection: close\r\n\r\n%s" % (len(payload), payload))

    def record(self, tag):
        with self.lock:
            return self.seen.get(tag)

    def stop(self):
        self.sock.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("buffering")
    manifests = root / "manifests"
    manifests.mkdir()
    spill = root / "spill"
    spill.mkdir()
    backend = Recorder()
    slow = Recorder(rcvbuf=65536)

    def route(name, annotations):
        return ingress(name, [(f"{name}.test", [("/", "Prefix", "rec", 80)])], annotations=annotations)

    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS, *service("rec", [("http", 80, backend.port)]), *service("slow", [("http", 80, slow.port)]),
        ingress("slow", [("slow.test", [("/", "Prefix", "slow", 80)])],
                annotations={N + "proxy-request-buffering": "off", N + "proxy-body-size": "0"}),
        route("held", {N + "client-body-buffer-size": "1k", N + "proxy-body-size": "16m"}),
        route("stream", {N + "proxy-request-buffering": "off", N + "proxy-body-size": "16m"}),
        route("tiny", {N + "proxy-request-buffering": "off", N + "proxy-body-size": "1k"}),
        route("ahead", {N + "proxy-buffering": "on"}),
        route("plain", {}),
        route("rate", {N + "limit-rate": "64", N + "limit-rate-after": "64"}),
    ])
    proc = Ingressd(manifests, extra_args=["--temp-path", str(spill)])
    try:
        yield proc, backend, spill, slow
    finally:
        proc.stop()
        backend.stop()
        slow.stop()


def spill_files(proc, spill) -> list[str]:
    """The temporary files ingressd has open in the spill directory (unlinked: seen through /proc)."""
    found = []
    fd_dir = f"/proc/{proc.process.pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith(str(spill)):
            found.append(target)
    return found


def client(proc, host, head: bytes, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", proc.http_port))
    sock.sendall(head % host.encode() if b"%s" in head else head)
    return sock


def read_response(sock) -> tuple[int, dict, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, data
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    body = bytearray(body)
    while len(body) < length:
        piece = sock.recv(1 << 20)
        assert piece, len(body)
        body.extend(piece)
    return int(lines[0].split()[1]), headers, bytes(body)


def upload_head(tag: str, host: str, length: int | None, path: bytes = b"/upload") -> bytes:
    framing = b"content-length: %d" % length if length is not None else b"transfer-encoding: chunked"
    return b"POST %s HTTP/1.1\r\nhost: %s\r\nx-tag: %s\r\n%s\r\n\r\n" % (path, host.encode(), tag.encode(), framing)


# -- the request body ----------------------------------------------------------------------------


def test_streamed_upload_reaches_the_backend_before_the_client_finished(world):
    proc, backend, *_ = world
    with client(proc, "stream.test", upload_head("s1", "stream.test", 200000)) as sock:
        sock.sendall(b"a" * 100000)
        record = wait_for(lambda: (r := backend.record("s1")) and r["received"] > 0 and r, what="the first bytes")
        assert record["headers"]["content-length"] == "200000"
        sock.sendall(b"b" * 100000)
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["length"] == 200000


def test_streamed_chunked_upload_goes_chunked_as_it_arrives(world):
    proc, backend, *_ = world
    with client(proc, "stream.test", upload_head("s2", "stream.test", None)) as sock:
        sock.sendall(b"4000\r\n" + b"c" * 0x4000 + b"\r\n")
        record = wait_for(lambda: (r := backend.record("s2")) and r["received"] >= 0x4000 and r,
                          what="the first chunk")
        assert record["headers"]["transfer-encoding"] == "chunked"
        sock.sendall(b"10\r\n" + b"d" * 16 + b"\r\n0\r\n\r\n")
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["length"] == 0x4010


def test_held_upload_reaches_the_backend_only_once_complete_spilling_to_the_temp_path(world):
    proc, backend, spill, _ = world
    size = 4 * 1024 * 1024
    with client(proc, "held.test", upload_head("h1", "held.test", size)) as sock:
        sock.sendall(b"e" * (size // 2))
        # Beyond client-body-buffer-size (1k): a temporary file in --temp-path, already unlinked.
        files = wait_for(lambda: spill_files(proc, spill), what="a spill file")
        assert all(name.endswith("(deleted)") or "#" in name for name in files) and not os.listdir(spill)
        time.sleep(0.3)  # a gap in which a streaming proxy would have reached the backend
        assert backend.record("h1") is None
        last_sent_at = time.monotonic()
        sock.sendall(b"f" * (size - size // 2))
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["length"] == size
    assert backend.record("h1")["head_at"] > last_sent_at  # asked only once the body was complete
    wait_for(lambda: not spill_files(proc, spill), what="the spill file closed")


def test_a_slow_backend_holds_a_streamed_upload_back_at_the_client(world):
    proc, _, _, slow = world
    slow.go.clear()
    size = BIG
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", proc.http_port))
    progress = {"sent": 0, "error": None}

    def upload():
        try:
            sock.sendall(upload_head("u1", "slow.test", size, b"/slow-upload"))
            block = b"k" * 65536
            while progress["sent"] < size:
                progress["sent"] += sock.send(block[: min(len(block), size - progress["sent"])])
        except OSError as exc:
            progress["error"] = exc

    sender = threading.Thread(target=upload, daemon=True)
    try:
        sender.start()
        wait_for(lambda: slow.record("u1"), what="the backend asked")
        last, still_since = -1, time.monotonic()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:  # until the client's sending stops moving for a second
            if progress["sent"] != last:
                last, still_since = progress["sent"], time.monotonic()
            elif time.monotonic() - still_since > 1.0:
                break
            time.sleep(0.05)
        assert progress["sent"] < size and progress["error"] is None  # held back: ingressd stopped reading it
        slow.go.set()
        sender.join(WAIT)
        assert progress["sent"] == size
        status, _, body = read_response(sock)
        assert status == 200 and json.loads(body)["length"] == size
    finally:
        slow.go.set()
        sock.close()


def test_a_streamed_body_over_the_limit_is_413_and_the_backend_request_aborted(world):
    proc, backend, *_ = world
    with client(proc, "tiny.test", upload_head("t1", "tiny.test", None)) as sock:
        sock.sendall(b"258\r\n" + b"g" * 600 + b"\r\n")
        wait_for(lambda: (r := backend.record("t1")) and r["received"] >= 600, what="the first chunk")
        sock.sendall(b"3e8\r\n" + b"h" * 1000 + b"\r\n")
        status, headers, _ = read_response(sock)
    assert status == 413 and headers.get("connection") == "close"
    wait_for(lambda: backend.record("t1")["aborted"], what="the backend request aborted")
    assert not backend.record("t1")["done"]


# -- the response --------------------------------------------------------------------------------


def test_proxy_buffering_on_a_slow_client_does_not_hold_the_backend(world):
    proc, backend, spill, _ = world
    head = b"GET /big?n=%d HTTP/1.1\r\nhost: ahead.test\r\nx-tag: r1\r\n\r\n" % BIG
    with client(proc, "ahead.test", head, rcvbuf=65536) as sock:
        # The client reads nothing: the backend still finishes (read ahead, into a file).
        wait_for(lambda: (r := backend.record("r1")) and r["done"], what="the backend done")
        assert spill_files(proc, spill)
        status, _, body = read_response(sock)
    assert status == 200 and len(body) == BIG
    wait_for(lambda: not spill_files(proc, spill), what="the spill file closed")


def test_proxy_buffering_off_backpressure_reaches_the_backend(world):
    proc, backend, *_ = world
    head = b"GET /big?n=%d HTTP/1.1\r\nhost: plain.test\r\nx-tag: r2\r\n\r\n" % BIG
    with client(proc, "plain.test", head, rcvbuf=65536) as sock:
        record = wait_for(lambda: backend.record("r2"), what="the request")
        last, still_since = -1, time.monotonic()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:  # until the backend's writes stop moving for a second
            if record["sent"] != last:
                last, still_since = record["sent"], time.monotonic()
            elif time.monotonic() - still_since > 1.0:
                break
            time.sleep(0.05)
        assert not record["done"] and record["sent"] < BIG  # it waits for the client
        status, _, body = read_response(sock)
    assert status == 200 and len(body) == BIG
    wait_for(lambda: record["done"], what="the backend done")


@pytest.mark.parametrize("host", ["ahead.test", "plain.test"])
def test_a_slow_backends_answer_reaches_the_client_as_it_comes(world, host):
    proc, backend, *_ = world
    backend.go.clear()
    with client(proc, host, b"GET /trickle HTTP/1.1\r\nhost: %s\r\n\r\n" % host.encode()) as sock:
        data = b""
        while not data.endswith(b"first"):  # read ahead or not, what came is passed on
            piece = sock.recv(65536)
            assert piece, data
            data += piece
        backend.go.set()
        while not data.endswith(b"first-rest"):
            piece = sock.recv(65536)
            assert piece, data
            data += piece
    assert data.startswith(b"HTTP/1.1 200")


def test_limit_rate_paces_the_download(world):
    proc, backend, *_ = world
    size = 320 * 1024
    started = time.monotonic()
    with client(proc, "rate.test", b"GET /big?n=%d HTTP/1.1\r\nhost: rate.test\r\n\r\n" % size) as sock:
        status, _, body = read_response(sock)
    elapsed = time.monotonic() - started
    assert status == 200 and len(body) == size
    # 64 KiB at full speed, then 64 KiB/s with one second ahead (nginx's limit_rate): a lower bound.
    assert elapsed >= (size - 64 * 1024) / (64 * 1024) - 1 - 0.5


# -- HTTP/2 clients ------------------------------------------------------------------------------


def test_h2_streamed_upload_and_read_ahead_download(world):
    proc, backend, spill, _ = world
    h2 = H2Client(proc.https_port, "stream.test")
    try:
        upload = h2.request("stream.test", "/upload", method=b"POST", body=b"i" * 16000,
                            headers=[(b"x-tag", b"h2up")], end=False)
        wait_for(lambda: (r := backend.record("h2up")) and r["received"] >= 16000, what="the h2 body streamed")
        assert backend.record("h2up")["headers"]["transfer-encoding"] == "chunked"  # no length given
        h2.conn.send_data(upload, b"j" * 10, end_stream=True)
        h2.sock.sendall(h2.conn.data_to_send())
        h2.pump(lambda: h2.responses[upload]["ended"], timeout=WAIT)
        assert json.loads(bytes(h2.responses[upload]["body"]))["length"] == 16010
    finally:
        h2.close()
    slow = H2Client(proc.https_port, "ahead.test", auto_ack=False)  # never opens its window
    try:
        size = 8 * 1024 * 1024
        stream = slow.request("ahead.test", f"/big?n={size}", headers=[(b"x-tag", b"h2down")])
        wait_for(lambda: (r := backend.record("h2down")) and r["done"], what="the backend done for h2")
        slow.pump(lambda: slow.responses[stream]["headers"] is not None, timeout=WAIT)
    finally:
        slow.close()


def test_h2_limit_rate(world):
    proc, backend, *_ = world
    h2 = H2Client(proc.https_port, "rate.test")
    try:
        size = 256 * 1024
        started = time.monotonic()
        stream = h2.request("rate.test", f"/big?n={size}")
        h2.pump(lambda: h2.responses[stream]["ended"], timeout=WAIT)
        elapsed = time.monotonic() - started
        assert len(h2.responses[stream]["body"]) == size
        assert elapsed >= (size - 64 * 1024) / (64 * 1024) - 1 - 0.5
    finally:
        h2.close()
