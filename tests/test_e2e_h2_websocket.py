"""End to end: WebSocket over HTTP/2 (RFC 8441 Extended CONNECT) through the real ``twistd ingressd``.

A real HTTP/2 client (the ``h2`` library over TLS with ALPN h2, written here) opens WebSockets
with ``:method CONNECT`` + ``:protocol websocket`` on one connection; the backend is the raw
RFC 6455 echo server of the HTTP/1.1 WebSocket tests (tests/wsbackend.py), which is asked
with an ordinary HTTP/1.1 upgrade. Frames are written and read by hand (client frames
masked, server frames not).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import bcrypt
import h2.config
import h2.connection
import h2.events
import pytest
from h2.errors import ErrorCodes

import certs
from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests
from wsbackend import WebSocketEcho, frame

pytestmark = pytest.mark.slow

NGINX = "nginx.ingress.kubernetes.io/"
WAIT = 20.0
PASSWORD = "correct horse"
TEXT, BINARY, CLOSE = 1, 2, 8


def _htpasswd_secret() -> dict:
    line = "alice:" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode() + "\n"
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "htfile", "namespace": "default"},
            "type": "Opaque", "data": {"auth": base64.b64encode(line.encode()).decode()}}


class WrongAccept:
    """A backend that switches protocols with a Sec-WebSocket-Accept for no key at all."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(WAIT)
                try:
                    head = b""
                    while b"\r\n\r\n" not in head and len(head) < 65536:
                        piece = conn.recv(4096)
                        if not piece:
                            break
                        head += piece
                    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: d3Jvbmc=\r\n\r\n")
                    conn.recv(1)  # until ingressd drops it
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()


def _objects(ws: WebSocketEcho, web: Backend, page_port: int, leaf, wrong_port: int) -> list:
    tls = [{"hosts": ["ws.test", "ws-auth.test"], "secretName": "ws-cert"}]
    return [
        INGRESS_CLASS,
        *service("ws", [("http", 80, ws.port)]),
        *service("web", [("http", 80, web.port)]),
        *service("page", [("http", 80, page_port)]),
        *service("wrong", [("http", 80, wrong_port)]),
        certs.secret_manifest("default", "ws-cert", leaf.cert_pem, leaf.key_pem()),
        _htpasswd_secret(),
        ingress("chat", [("ws.test", [("/", "Prefix", "ws", 80), ("/api", "Prefix", "web", 80),
                                      ("/page", "Prefix", "page", 80),
                                      ("/wrong-accept", "Prefix", "wrong", 80)])], tls=tls),
        ingress("chat-auth", [("ws-auth.test", [("/", "Prefix", "ws", 80)])], tls=tls,
                annotations={NGINX + "auth-type": "basic", NGINX + "auth-secret": "htfile",
                             NGINX + "auth-realm": "chat"}),
    ]


class _PageHandler(BaseHTTPRequestHandler):
    """The browser test's page (a WebSocket over the page's own h2 connection) and where it
    reports what it saw (``/page/result?…``)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.seen.append(self.path)
        body = PAGE.encode() if self.path == "/page" else b"ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if self.path == "/page" else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


PAGE = """<!doctype html><title>ws</title><script>
const ws = new WebSocket("wss://" + location.host + "/browser-chat");
ws.onopen = () => ws.send("from the browser");
ws.onmessage = (m) => { fetch("/page/result?echo=" + encodeURIComponent(m.data)); ws.close(); };
ws.onerror = () => fetch("/page/result?error=1");
</script>"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-h2-websocket")
    manifests = root / "manifests"
    manifests.mkdir()
    ws, web, wrong = WebSocketEcho(), Backend("web"), WrongAccept()
    page = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    page.daemon_threads = True
    page.seen = []
    threading.Thread(target=page.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    leaf = certs.make_leaf("ws.test", "ws-auth.test")
    write_manifests(manifests / "all.yaml", _objects(ws, web, page.server_address[1], leaf, wrong.port))
    log = root / "access.log"
    proc = Ingressd(manifests, ["--access-log", str(log), "--proxy-read-timeout", "30"])
    world = type("World", (), {})()
    world.proc, world.ws, world.web, world.page, world.access_log = proc, ws, web, page, log
    world.manifests = manifests
    yield world
    proc.stop()
    ws.stop()
    web.stop()
    wrong.stop()
    page.shutdown()
    page.server_close()


# -- a minimal HTTP/2 WebSocket client ---------------------------------------------------------


def _server_frame(buffer: bytearray):
    """(opcode, payload) of the first whole (unmasked, final) frame in ``buffer``, removed from it."""
    if len(buffer) < 2:
        return None
    length, at = buffer[1] & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length, at = struct.unpack("!H", bytes(buffer[2:4]))[0], 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length, at = struct.unpack("!Q", bytes(buffer[2:10]))[0], 10
    if len(buffer) < at + length:
        return None
    opcode, payload = buffer[0] & 0x0F, bytes(buffer[at:at + length])
    del buffer[:at + length]
    return opcode, payload


class H2WebSocketClient:
    def __init__(self, port: int, sni: str = "ws.test"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        self.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=WAIT),
                                        server_hostname=sni)
        assert self.sock.selected_alpn_protocol() == "h2"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.streams: dict[int, dict] = {}
        self.settings_seen = False
        self.goaway: int | None = None
        self.reading = True  # False: DATA is received but never acknowledged (a client that stops reading)
        self.pump(lambda: self.settings_seen)
        assert self.conn.remote_settings.enable_connect_protocol == 1

    def _open(self, block, end: bool) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.streams[stream_id] = {"headers": None, "data": bytearray(), "ended": False, "reset": None}
        self.conn.send_headers(stream_id, block, end_stream=end)
        self.sock.sendall(self.conn.data_to_send())
        return stream_id

    def connect(self, path: str = "/chat", host: str = "ws.test", headers=(), protocol: bytes = b"websocket") -> int:
        return self._open([(b":method", b"CONNECT"), (b":protocol", protocol), (b":scheme", b"https"),
                           (b":authority", host.encode()), (b":path", path.encode()),
                           (b"sec-websocket-version", b"13"), *headers], end=False)

    def get(self, path: str, host: str = "ws.test") -> int:
        return self._open([(b":method", b"GET"), (b":scheme", b"https"), (b":authority", host.encode()),
                           (b":path", path.encode())], end=True)

    def status(self, stream_id: int) -> int:
        self.pump(lambda: self.streams[stream_id]["headers"] is not None or self.streams[stream_id]["reset"])
        return int(self.headers(stream_id)[b":status"])

    def headers(self, stream_id: int) -> dict:
        return dict(self.streams[stream_id]["headers"])

    def send(self, stream_id: int, data: bytes, end: bool = False) -> None:
        """Send ``data`` as the windows allow, reading (and acknowledging) meanwhile."""
        view = memoryview(data)
        while view:
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            if window <= 0:
                before = self.conn.local_flow_control_window(stream_id)
                self.pump(lambda: self.conn.local_flow_control_window(stream_id) > before)
                continue
            self.conn.send_data(stream_id, bytes(view[:window]))
            view = view[window:]
            self.sock.sendall(self.conn.data_to_send())
        if end:
            self.conn.end_stream(stream_id)
            self.sock.sendall(self.conn.data_to_send())

    def send_message(self, stream_id: int, opcode: int, payload: bytes) -> None:
        self.send(stream_id, frame(opcode, payload, mask=os.urandom(4)))

    def receive_message(self, stream_id: int) -> tuple[int, bytes]:
        state = self.streams[stream_id]
        found = []

        def got() -> bool:
            if not found:
                message = _server_frame(state["data"])
                if message is not None:
                    found.append(message)
            return bool(found) or state["ended"] or state["reset"] is not None

        self.pump(got)
        assert found, f"no message on stream {stream_id}: {state}"
        return found[0]

    def reset(self, stream_id: int) -> None:
        self.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
        self.sock.sendall(self.conn.data_to_send())

    def pump(self, until, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting on the HTTP/2 connection")
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("the connection closed")
            for event in self.conn.receive_data(data):
                state = self.streams.get(getattr(event, "stream_id", 0))
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    self.settings_seen = True
                elif isinstance(event, h2.events.ResponseReceived):
                    state["headers"] = event.headers
                elif isinstance(event, h2.events.DataReceived):
                    state["data"] += event.data
                    if self.reading:
                        self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    else:
                        state["unacked"] = state.get("unacked", 0) + event.flow_controlled_length
                elif isinstance(event, h2.events.StreamEnded):
                    state["ended"] = True
                elif isinstance(event, h2.events.StreamReset):
                    state["reset"] = event.error_code
                elif isinstance(event, h2.events.ConnectionTerminated):
                    self.goaway = event.last_stream_id
                    # h2 closes its side on any GOAWAY; RFC 9113 6.8 lets the streams up to
                    # last_stream_id go on (as test_e2e_drain's client does).
                    self.conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
            pending = self.conn.data_to_send()
            if pending:
                self.sock.sendall(pending)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def client(world):
    c = H2WebSocketClient(world.proc.https_port)
    yield c
    c.close()


def _wait_for(condition, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _metric(proc, name: str) -> float | None:
    _, _, body = proc.admin("/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def _log_lines(world, path: str) -> list[dict]:
    lines = world.access_log.read_text().splitlines() if world.access_log.exists() else []
    return [entry for entry in map(json.loads, lines) if entry["uri"] == path]


# -- the tests ----------------------------------------------------------------------------------


def test_echo_of_text_and_binary_messages(world, client):
    before = len(world.ws.handshakes)
    stream_id = client.connect("/chat", headers=[(b"sec-websocket-protocol", b"chat, superchat")])
    assert client.status(stream_id) == 200
    assert b"sec-websocket-accept" not in client.headers(stream_id)  # about our key, not the client's
    client.send_message(stream_id, TEXT, "héllo".encode())
    assert client.receive_message(stream_id) == (TEXT, "héllo".encode())
    client.send_message(stream_id, BINARY, bytes(range(256)))
    assert client.receive_message(stream_id) == (BINARY, bytes(range(256)))
    path, headers = world.ws.handshakes[before]
    # The backend was asked the HTTP/1.1 way, with a key of ingressd's.
    assert path == "/chat" and headers["upgrade"].lower() == "websocket" and headers["connection"].lower() == "upgrade"
    assert len(base64.b64decode(headers["sec-websocket-key"])) == 16
    assert headers["sec-websocket-version"] == "13" and headers["sec-websocket-protocol"] == "chat, superchat"
    assert headers["host"] == "ws.test" and headers["x-forwarded-proto"] == "https"


def test_large_messages_both_ways_under_flow_control(client):
    stream_id = client.connect()
    assert client.status(stream_id) == 200
    message = os.urandom(3 * 1024 * 1024 + 17)  # far beyond every HTTP/2 window
    client.send_message(stream_id, BINARY, message)
    assert client.receive_message(stream_id) == (BINARY, message)


def test_two_tunnels_and_ordinary_requests_on_one_connection(world, client):
    first, second = client.connect("/one"), client.connect("/two")
    api = client.get("/api/plain")
    assert client.status(first) == 200 and client.status(second) == 200
    client.send_message(second, TEXT, b"to two")
    client.send_message(first, TEXT, b"to one")
    assert client.receive_message(first) == (TEXT, b"to one")
    assert client.receive_message(second) == (TEXT, b"to two")
    client.pump(lambda: client.streams[api]["ended"])
    assert client.status(api) == 200 and json.loads(bytes(client.streams[api]["data"]))["path"] == "/api/plain"
    again = client.get("/api/again")  # while both tunnels are open
    client.pump(lambda: client.streams[again]["ended"])
    assert client.status(again) == 200
    client.send_message(first, TEXT, b"still here")
    assert client.receive_message(first) == (TEXT, b"still here")


def test_a_client_that_stops_reading_stalls_the_tunnel_then_gets_everything(client):
    """Backpressure end to end: a client that acknowledges nothing fills its stream window;
    ingressd stops reading the backend, whose echoes then back up until it stops reading us,
    and ingressd stops acknowledging the client's DATA: the client's send window stays shut.
    Once the client reads again, every echo arrives, in order."""
    stream_id = client.connect("/backpressure")
    assert client.status(stream_id) == 200
    client.reading = False
    message = os.urandom(16000)  # a frame fits one DATA frame and the window
    wire = frame(BINARY, message, mask=os.urandom(4))
    sent = 0
    stalled_since = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and sent < 16384:  # at most 256 MB: it stalls long before
        window = client.conn.local_flow_control_window(stream_id)
        if window >= len(wire):
            client.conn.send_data(stream_id, wire)
            client.sock.sendall(client.conn.data_to_send())
            sent += 1
            stalled_since = None
            continue
        stalled_since = stalled_since or time.monotonic()
        if time.monotonic() - stalled_since > 2.0:
            break  # no window for 2 s: stalled
        try:
            client.pump(lambda: client.conn.local_flow_control_window(stream_id) >= len(wire), timeout=0.2)
        except (AssertionError, TimeoutError):
            pass  # no window yet
    assert stalled_since is not None and sent < 16384, "the client's window never closed"
    received_while_stalled = len(client.streams[stream_id]["data"])
    assert received_while_stalled <= 65535 + 16384  # the client's own stream window (and one frame)
    print(f"stalled after {sent} messages of 16000 bytes ({sent * len(wire)} bytes) sent; "
          f"{received_while_stalled} bytes received meanwhile")
    client.reading = True
    client.conn.acknowledge_received_data(client.streams[stream_id].pop("unacked", 0), stream_id)
    client.sock.sendall(client.conn.data_to_send())
    for _ in range(sent):
        assert client.receive_message(stream_id) == (BINARY, message)


def test_basic_auth_refuses_the_tunnel_without_credentials(world, client):
    before = len(world.ws.handshakes)
    refused = client.connect("/secret", host="ws-auth.test")
    assert client.status(refused) == 401
    assert client.headers(refused)[b"www-authenticate"] == b'Basic realm="chat"'
    client.pump(lambda: client.streams[refused]["ended"] or client.streams[refused]["reset"] is not None)
    assert len(world.ws.handshakes) == before  # never reached the backend
    token = base64.b64encode(f"alice:{PASSWORD}".encode())
    allowed = client.connect("/secret", host="ws-auth.test", headers=[(b"authorization", b"Basic " + token)])
    assert client.status(allowed) == 200
    client.send_message(allowed, TEXT, b"let in")
    assert client.receive_message(allowed) == (TEXT, b"let in")
    assert "authorization" not in world.ws.handshakes[-1][1]


def test_backend_refusing_the_upgrade_is_relayed(client):
    stream_id = client.connect("/refuse")
    assert client.status(stream_id) == 403
    client.pump(lambda: client.streams[stream_id]["ended"])
    assert bytes(client.streams[stream_id]["data"]) == b"refused by backend"
    assert client.headers(stream_id)[b"x-refused"] == b"yes"


def test_a_wrong_sec_websocket_accept_is_a_502(world, client):
    """ingressd is the WebSocket client the backend talks to: it checks the accept for its key."""
    stream_id = client.connect("/wrong-accept")
    assert client.status(stream_id) == 502
    client.pump(lambda: client.streams[stream_id]["ended"] or client.streams[stream_id]["reset"] is not None)
    (line,) = _wait_for(lambda: _log_lines(world, "/wrong-accept"), "the access log line")
    assert line["status"] == 502 and line["upstream_status"] == 101
    _, _, body = world.proc.admin("/metrics")
    assert 'cause="invalid_upgrade"' in body.decode()


def test_backend_closing_ends_the_stream(world, client):
    stream_id = client.connect("/bye")
    assert client.status(stream_id) == 200
    client.send_message(stream_id, CLOSE, struct.pack("!H", 1000))
    assert client.receive_message(stream_id) == (CLOSE, struct.pack("!H", 1000))  # then the backend closes
    client.pump(lambda: client.streams[stream_id]["ended"])
    assert client.streams[stream_id]["reset"] is None
    # The connection goes on.
    after = client.get("/api/after")
    client.pump(lambda: client.streams[after]["ended"])
    assert client.status(after) == 200


def test_client_reset_closes_the_tunnel_and_it_is_logged_as_one(world, client):
    stream_id = client.connect("/reset-me")
    assert client.status(stream_id) == 200
    client.send_message(stream_id, TEXT, b"before reset")
    assert client.receive_message(stream_id) == (TEXT, b"before reset")
    assert _metric(world.proc, "ingressd_websocket_tunnels") >= 1
    client.reset(stream_id)
    # The tunnel is over: the access log has its line, with the WebSocket's fields as an
    # HTTP/1.1 tunnel's (status 101, the bytes relayed each way).
    (line,) = _wait_for(lambda: _log_lines(world, "/reset-me"), "the tunnel's access log line")
    assert line["status"] == 101 and line["method"] == "GET" and line["protocol"] == "HTTP/2"
    assert line["host"] == "ws.test" and line["ingress"] == "chat" and line["service"] == "ws"
    assert line["bytes_sent"] >= len(b"before reset") + 2 and line["request_bytes"] >= len(b"before reset") + 6
    assert line["upstream_status"] == 101 and line["scheme"] == "https"
    after = client.get("/api/after-reset")
    client.pump(lambda: client.streams[after]["ended"])
    assert client.status(after) == 200


def test_tunnel_gauge_and_request_metrics(world, client):
    stream_id = client.connect("/gauge")
    assert client.status(stream_id) == 200
    client.send_message(stream_id, TEXT, b"x")
    assert client.receive_message(stream_id) == (TEXT, b"x")
    assert _metric(world.proc, "ingressd_websocket_tunnels") >= 1
    client.send(stream_id, b"", end=True)  # END_STREAM: the client's side is closed
    client.pump(lambda: client.streams[stream_id]["ended"] or client.streams[stream_id]["reset"] is not None)
    _wait_for(lambda: _log_lines(world, "/gauge"), "the tunnel's access log line")
    _, _, body = world.proc.admin("/metrics")
    assert 'ingressd_requests_total{' in body.decode() and 'status="101"' in body.decode()


@pytest.mark.parametrize("block", [
    [(b":method", b"CONNECT"), (b":authority", b"ws.test:443")],
    [(b":method", b"CONNECT"), (b":protocol", b"connect-udp"), (b":scheme", b"https"),
     (b":authority", b"ws.test"), (b":path", b"/udp")],
])
def test_other_connects_are_400_and_the_connection_goes_on(client, block):
    stream_id = client._open(block, end=False)
    assert client.status(stream_id) == 400
    after = client.get("/api/after-connect")
    client.pump(lambda: client.streams[after]["ended"])
    assert client.status(after) == 200


def test_drain_keeps_the_tunnel_until_the_grace_then_says_going_away(world, tmp_path):
    """SIGTERM: GOAWAY at once, the tunnel goes on through --shutdown-grace, then both sides get
    the WebSocket close code 1001 and the stream ends, as an HTTP/1.1 tunnel's."""
    proc = Ingressd(world.manifests, ["--access-log", "off", "--shutdown-delay", "0", "--shutdown-grace", "3"],
                    log_path=tmp_path / "drain.log")
    try:
        client = H2WebSocketClient(proc.https_port)
        stream_id = client.connect("/draining")
        assert client.status(stream_id) == 200
        closes_before = list(world.ws.closes)
        proc.process.send_signal(signal.SIGTERM)
        client.pump(lambda: client.goaway is not None)
        assert client.goaway >= stream_id
        client.send_message(stream_id, TEXT, b"during the grace")
        assert client.receive_message(stream_id) == (TEXT, b"during the grace")
        assert client.receive_message(stream_id) == (CLOSE, struct.pack("!H", 1001))
        client.pump(lambda: client.streams[stream_id]["ended"] or client.streams[stream_id]["reset"] is not None)
        assert client.streams[stream_id]["ended"]
        _wait_for(lambda: b"\x03\xe9" in world.ws.closes[len(closes_before):], "the backend's close frame")
        assert proc.process.wait(WAIT) == 0
        client.close()
    finally:
        proc.stop()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium on this machine")
def test_a_browser_opens_its_websocket_over_h2(world, tmp_path):
    """Headless Chromium loads a page over h2 from ingressd and opens a WebSocket to the same
    host: it goes over the page's HTTP/2 connection (Extended CONNECT), as the access log shows."""
    port = world.proc.https_port
    args = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
            f"--user-data-dir={tmp_path / 'profile'}", "--no-first-run", "--disable-extensions",
            "--host-resolver-rules=MAP ws.test 127.0.0.1", "--remote-debugging-port=0",
            f"https://ws.test:{port}/page"]
    # Its own process group: the browser's helper processes end with it.
    browser = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        seen = world.page.seen
        result = _wait_for(lambda: [p for p in seen if p.startswith("/page/result")], "the page's report", 90)
        assert result == ["/page/result?echo=from%20the%20browser"], result
    finally:
        os.killpg(browser.pid, signal.SIGTERM)
        try:
            browser.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(browser.pid, signal.SIGKILL)
            browser.wait(5)
    (line,) = _wait_for(lambda: _log_lines(world, "/browser-chat"), "the browser tunnel's log line")
    assert line["status"] == 101 and line["protocol"] == "HTTP/2"
