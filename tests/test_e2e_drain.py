"""SIGTERM under load, end to end: the real ``twistd ingressd``, real clients, nothing cut.

Keep-alive HTTP/1 clients in bounded loops, a slow streaming response over HTTP/1 and one
over HTTP/2, a WebSocket, then SIGTERM: /readyz fails at once while new connections are
still served (--shutdown-delay), then the listeners close, every response in flight
finishes (Connection: close on HTTP/1, GOAWAY on HTTP/2), the WebSocket gets close code
1001 when --shutdown-grace is over, and the process exits 0. Also: a second SIGTERM, and
two --workers draining together.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import shutil
import ssl
import struct
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import h2.config
import h2.connection
import h2.events
import pytest
import websocket

import certs
from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests
from test_e2e_workers import worker_pids
from wsbackend import WebSocketEcho

pytestmark = pytest.mark.slow

CURL = shutil.which("curl")
LINE_EVERY = 0.2  # seconds between two lines of the streaming backend
WAIT = 30.0  # bound of every wait here


class _StreamHandler(BaseHTTPRequestHandler):
    """``/stream?n=N``: N lines, one every LINE_EVERY seconds, chunked."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        count = int(parse_qs(urlsplit(self.path).query).get("n", ["10"])[0])
        self.server.started += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for index in range(count):
                line = b"line %d\n" % index
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
                time.sleep(LINE_EVERY)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass


class StreamBackend:
    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _StreamHandler)
        self.server.daemon_threads = True
        self.server.started = 0  # streams begun
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def expected_lines(count: int) -> bytes:
    return b"".join(b"line %d\n" % index for index in range(count))


def wait_for(condition, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def world(tmp_path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    web, streams, ws = Backend("web"), StreamBackend(), WebSocketEcho()
    leaf = certs.make_leaf("app.test")
    write_manifests(manifests / "app.yaml", [
        INGRESS_CLASS,
        *service("web", [("http", 80, web.port)]),
        *service("streams", [("http", 80, streams.port)]),
        *service("ws", [("http", 80, ws.port)]),
        certs.secret_manifest("default", "app-tls", leaf.cert_pem, leaf.key_pem()),
        ingress("plain", [("plain.test", [("/", "Prefix", "web", 80), ("/stream", "Prefix", "streams", 80),
                                          ("/ws", "Prefix", "ws", 80)])]),
        ingress("tls", [("app.test", [("/stream", "Prefix", "streams", 80)])],
                tls=[{"hosts": ["app.test"], "secretName": "app-tls"}]),
    ])
    yield manifests, web, streams, ws
    web.stop()
    streams.stop()
    ws.stop()


def start(manifests, *args) -> Ingressd:
    proc = Ingressd(manifests, ["--access-log", "off", *args])
    wait_for(lambda: proc.get("/", host="plain.test").status == 200, "the route")
    return proc


def in_thread(target, *args) -> tuple[threading.Thread, dict]:
    result: dict = {}
    thread = threading.Thread(target=target, args=(*args, result), daemon=True)
    thread.start()
    return thread, result


# -- the clients --------------------------------------------------------------------------


def keepalive_loop(port: int, result: dict) -> None:
    """Requests on one keep-alive connection until ingressd says Connection: close (or
    closes it while idle, before a request: RFC 9112 9.3.1, a client retries elsewhere)."""
    result.update(ok=0, failures=[], ended="cap")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        for number in range(20000):
            try:
                conn.request("GET", f"/n/{number}", headers={"Host": "plain.test"})
                response = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if result["ok"]:  # a reused connection closed while idle: nothing was answered
                    result["ended"] = "closed while idle"
                else:
                    result["failures"].append("the first request failed")
                return
            try:
                body = response.read()
            except Exception as exc:  # noqa: BLE001 - a response cut short
                result["failures"].append(f"request {number}: {exc!r}")
                return
            if response.status != 200 or f"/n/{number}".encode() not in body:
                result["failures"].append(f"request {number}: {response.status} {body[:100]!r}")
                return
            result["ok"] += 1
            if (response.getheader("connection") or "").lower() == "close":
                result["ended"] = "Connection: close"
                return
    finally:
        conn.close()


def http1_stream(port: int, count: int, result: dict) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.request("GET", f"/stream?n={count}", headers={"Host": "plain.test"})
        response = conn.getresponse()
        result["status"] = response.status
        result["body"] = response.read()
    except Exception as exc:  # noqa: BLE001
        result["error"] = repr(exc)
    finally:
        conn.close()


def slow_request_after_one(port: int, ready: threading.Event, go: threading.Event, result: dict) -> None:
    """One request on a keep-alive connection, then (when told) a slow one on the same."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.request("GET", "/first", headers={"Host": "plain.test"})
        first = conn.getresponse()
        first.read()
        result["first"] = (first.status, first.getheader("connection"))
        ready.set()
        go.wait(WAIT)
        conn.request("GET", "/slow?delay=3", headers={"Host": "plain.test"})
        response = conn.getresponse()
        result["status"] = response.status
        result["connection"] = response.getheader("connection")
        result["body"] = response.read()
    except Exception as exc:  # noqa: BLE001
        result["error"] = repr(exc)
    finally:
        conn.close()


def h2_stream(port: int, count: int, result: dict) -> None:
    """An HTTP/2 request for a slow stream; records the body, its end, GOAWAY's last stream id."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    result.update(body=bytearray(), ended=False, goaway=None, reset=None, closed=False)
    try:
        sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=WAIT),
                                   server_hostname="app.test")
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        conn.initiate_connection()
        stream_id = conn.get_next_available_stream_id()
        result["stream_id"] = stream_id
        conn.send_headers(stream_id, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"app.test"),
                                      (b":path", b"/stream?n=%d" % count)], end_stream=True)
        sock.sendall(conn.data_to_send())
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                result["closed"] = True
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    result["status"] = dict(event.headers)[b":status"]
                elif isinstance(event, h2.events.DataReceived):
                    result["body"] += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    result["ended"] = True
                elif isinstance(event, h2.events.StreamReset):
                    result["reset"] = event.error_code
                elif isinstance(event, h2.events.ConnectionTerminated):
                    result["goaway"] = event.last_stream_id
                    # h2 closes its side on any GOAWAY; RFC 9113 6.8 lets the streams up to
                    # last_stream_id finish, and real clients (curl below) read them on.
                    conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
            pending = conn.data_to_send()
            if pending:
                sock.sendall(pending)
        sock.close()
    except Exception as exc:  # noqa: BLE001
        result["error"] = repr(exc)


def curl_h2_stream(port: int, count: int, result: dict) -> None:
    """The same over HTTP/2 with curl (nghttp2), a client that honours GOAWAY as browsers do."""
    done = subprocess.run(
        [CURL, "-sS", "--http2", "-k", "--max-time", str(WAIT), "--resolve", f"app.test:{port}:127.0.0.1",
         "-w", "\n%{http_version} %{http_code}", f"https://app.test:{port}/stream?n={count}"],
        capture_output=True, timeout=WAIT + 5)
    result.update(code=done.returncode, out=done.stdout, err=done.stderr)


def log_has(proc: Ingressd, text: str) -> bool:
    return text in proc.log()


# -- the tests ----------------------------------------------------------------------------


def test_sigterm_drains_everything_in_flight_and_exits_0(world):
    manifests, web, streams, ws_backend = world
    proc = start(manifests, "--shutdown-delay", "2", "--shutdown-grace", "6")
    try:
        port = proc.http_port
        loops = [in_thread(keepalive_loop, port) for _ in range(6)]
        stream_thread, stream = in_thread(http1_stream, port, 20)  # 4 s: past the delay
        h2_thread, h2_result = in_thread(h2_stream, proc.https_port, 20)
        curl_thread, curl = in_thread(curl_h2_stream, proc.https_port, 20) if CURL else (None, None)
        ready, go = threading.Event(), threading.Event()
        slow_thread, slow = in_thread(slow_request_after_one, port, ready, go)
        socket_ = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", host="plain.test", timeout=WAIT)
        socket_.send("hello")
        assert socket_.recv() == "hello"
        assert ready.wait(WAIT)
        wait_for(lambda: streams.server.started == (3 if CURL else 2), "the streams to begin")

        proc.process.send_signal(signal.SIGTERM)
        wait_for(lambda: proc.admin("/readyz")[0] == 503, "/readyz to fail")
        go.set()  # a request whose answer comes after the listeners closed
        # Still accepting during --shutdown-delay: a new connection is served.
        assert not log_has(proc, "listeners closed")
        assert proc.get("/during-delay", host="plain.test").status == 200

        wait_for(lambda: log_has(proc, "listeners closed"), "the listeners to close")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()

        for thread, _ in loops:
            thread.join(WAIT)
        for _, result in loops:
            assert result["failures"] == [] and result["ok"] > 0, result
            assert result["ended"] in ("Connection: close", "closed while idle"), result

        slow_thread.join(WAIT)
        assert slow.get("first") == (200, None), slow
        assert slow.get("status") == 200 and slow.get("connection", "").lower() == "close", slow

        stream_thread.join(WAIT)
        assert stream.get("status") == 200 and stream.get("body") == expected_lines(20), stream

        h2_thread.join(WAIT)
        assert h2_result.get("status") == b"200", h2_result
        assert h2_result["goaway"] is not None and h2_result["goaway"] >= h2_result["stream_id"], h2_result
        assert h2_result["ended"] and h2_result["reset"] is None, str({k: v for k, v in h2_result.items() if k != "body"})
        assert bytes(h2_result["body"]) == expected_lines(20)
        assert h2_result["closed"], "the HTTP/2 connection closes once its streams are answered"
        if curl_thread is not None:
            curl_thread.join(WAIT)
            assert curl["code"] == 0 and curl["out"] == expected_lines(20) + b"\n2 200", curl

        # The WebSocket outlives everything else, until --shutdown-grace is over.
        opcode, payload = socket_.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert payload[:2] == struct.pack("!H", 1001)
        wait_for(lambda: b"\x03\xe9" in ws_backend.closes, "the backend's close frame")

        assert proc.process.wait(WAIT) == 0
        text = proc.log()
        for step in ("SIGTERM: shutting down gracefully", "/readyz fails from now on", "listeners closed",
                     "--shutdown-grace over: closing 1 connection", "drained; exiting"):
            assert text.count(step) == 1, (step, text[-3000:])
        socket_.close()
    finally:
        proc.stop()


def test_second_sigterm_exits_at_once(world):
    manifests, *_ = world
    proc = start(manifests, "--shutdown-delay", "60", "--shutdown-grace", "60")
    try:
        socket_ = websocket.create_connection(f"ws://127.0.0.1:{proc.http_port}/ws", host="plain.test",
                                              timeout=WAIT)
        proc.process.send_signal(signal.SIGTERM)
        wait_for(lambda: log_has(proc, "/readyz fails from now on"), "the drain to begin")
        proc.process.send_signal(signal.SIGTERM)
        assert proc.process.wait(WAIT) == 0  # far less than the 120 s the drain would take
        assert "SIGTERM again: exiting at once" in proc.log()
        socket_.close()
    finally:
        proc.stop()


def slow_request(port: int, result: dict) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.request("GET", "/slow?delay=3", headers={"Host": "plain.test"})
        response = conn.getresponse()
        result["status"] = response.status
        result["connection"] = response.getheader("connection")
        result["body"] = response.read()
    except Exception as exc:  # noqa: BLE001
        result["error"] = repr(exc)
    finally:
        conn.close()


def test_two_workers_drain_together(world):
    manifests, web, *_ = world
    proc = start(manifests, "--workers", "2", "--shutdown-delay", "1", "--shutdown-grace", "20")
    try:
        workers = worker_pids(proc.process.pid)
        assert len(workers) == 2
        slows = [in_thread(slow_request, proc.http_port) for _ in range(6)]  # spread over both workers
        wait_for(lambda: sum(1 for r in web.requests if r[1].startswith("/slow")) == 6, "the slow requests")
        proc.process.send_signal(signal.SIGTERM)
        wait_for(lambda: proc.admin("/readyz")[0] == 503, "the supervisor's /readyz to fail")
        for thread, result in slows:
            thread.join(WAIT)
            # Answered after the drain began: complete, and the connection is not kept.
            assert result.get("status") == 200 and result.get("connection", "").lower() == "close", result
        assert proc.process.wait(WAIT) == 0
        for pid in workers:
            assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid)
        text = proc.log()
        assert text.count("drained; exiting") == 2, text[-3000:]
        assert "every worker has stopped" in text
    finally:
        proc.stop()


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
