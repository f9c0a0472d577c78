"""mirror-target end to end: the real ``twistd ingressd``, a real backend and real mirror servers.
The copy arrives (method, path, headers, body) while the real answer is unaffected; a mirror
that is down, answers 500 or holds its request never changes or holds up the real answer;
mirror-request-body off and mirror-host; the bound on copies outstanding; an invalid target
rejects only its Ingress."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, free_port, ingress, service, write_manifests

pytestmark = pytest.mark.slow

N = "nginx.ingress.kubernetes.io/"


class _MirrorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server = self.server
        with server.lock:
            server.received.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if server.hold:
            server.release.wait(30)  # bounded: the test releases it
        status = server.status
        self.send_response(status)
        self.send_header("Content-Length", "6")
        self.end_headers()
        self.wfile.write(b"mirror")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


class Mirror:
    """A mirror server on 127.0.0.1 recording what it receives; ``hold``: it answers only once
    released; ``status``: what it answers."""

    def __init__(self, hold: bool = False, status: int = 200):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _MirrorHandler)
        self.server.daemon_threads = True
        self.server.received = []
        self.server.lock = threading.Lock()
        self.server.hold = hold
        self.server.status = status
        self.server.release = threading.Event()
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    @property
    def received(self):
        with self.server.lock:
            return list(self.server.received)

    def wait_for(self, count: int, limit: float = 15.0):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if len(self.received) >= count:
                return self.received
            time.sleep(0.02)
        raise AssertionError(f"the mirror got {len(self.received)} copies, expected {count}")

    def stop(self) -> None:
        self.server.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_mirroring(tmp_path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    real = Backend("real")
    copies, slow, failing = Mirror(), Mirror(hold=True), Mirror(status=500)
    down = free_port()  # nothing listens there

    def mirrored(name, host, annotations):
        return ingress(name, [(host, [("/", "Prefix", "real", 80)])], annotations=annotations)

    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS, *service("real", [("http", 80, real.port)]),
        mirrored("copied", "copied.test", {N + "mirror-target": f"http://127.0.0.1:{copies.port}/copy$request_uri"}),
        mirrored("bodyless", "bodyless.test", {N + "mirror-target": f"http://127.0.0.1:{copies.port}/nobody",
                                               N + "mirror-request-body": "off",
                                               N + "mirror-host": "copies.example"}),
        mirrored("down", "down.test", {N + "mirror-target": f"http://127.0.0.1:{down}/"}),
        mirrored("slow", "slow.test", {N + "mirror-target": f"http://127.0.0.1:{slow.port}/"}),
        mirrored("failing", "failing.test", {N + "mirror-target": f"http://127.0.0.1:{failing.port}/"}),
        mirrored("invalid", "invalid.test", {N + "mirror-target": "ftp://127.0.0.1/copy"}),
        ingress("plain", [("plain.test", [("/", "Prefix", "real", 80)])]),
    ])
    proc = Ingressd(manifests, extra_args=["--mirror-max-in-flight", "2"])
    try:
        # The copy: method, path, the headers the backend gets, the body; the real answer as ever.
        answer = proc.get("/cart?id=7", host="copied.test", method="POST", body=b"hello mirror",
                          headers={"X-Custom": "1", "Content-Type": "text/plain"})
        assert answer.status == 200, answer
        echoed = answer.json()
        assert (echoed["backend"], echoed["path"], echoed["body"]) == ("real", "/cart?id=7", "hello mirror")
        (method, path, headers, body), = copies.wait_for(1)
        assert (method, path, body) == ("POST", "/copy/cart?id=7", b"hello mirror")
        assert headers["host"] == "127.0.0.1"  # the target's host name, without its port
        assert headers["x-custom"] == "1" and headers["content-type"] == "text/plain"
        assert headers["x-forwarded-for"] == "127.0.0.1" and headers["x-forwarded-host"] == "copied.test"
        real_headers = dict(echoed["headers"])
        assert headers["x-request-id"] == real_headers["x-request-id"]  # the same request, copied

        # mirror-request-body off, mirror-host
        answer = proc.get("/form", host="bodyless.test", method="PUT", body=b"secret body")
        assert answer.status == 200 and answer.json()["body"] == "secret body"
        (method, path, headers, body) = copies.wait_for(2)[1]
        assert (method, path, body, headers["host"]) == ("PUT", "/nobody", b"", "copies.example")
        assert "content-length" not in headers

        # A mirror that is down or answers 500 changes nothing of the real answer.
        for host in ("down.test", "failing.test"):
            answer = proc.get("/x?y=1", host=host)
            assert answer.status == 200 and answer.json()["path"] == "/x?y=1", answer
        assert failing.wait_for(1)[0][:2] == ("GET", "/?y=1")

        # A mirror holding its request: the real answers (two, on one keep-alive connection)
        # complete while the copies are still unanswered.
        connection = proc.connection()
        try:
            for index in range(2):
                connection.request("GET", f"/held/{index}", headers={"Host": "slow.test"})
                response = connection.getresponse()
                assert response.status == 200 and b"/held/%d" % index in response.read()
        finally:
            connection.close()
        held = slow.wait_for(2)
        assert not slow.server.release.is_set()  # neither copy has been answered yet
        assert [path for _, path, _, _ in held] == ["/", "/"]  # a target path without variables: no query
        # --mirror-max-in-flight 2: with two copies outstanding, the next is dropped, not queued.
        assert proc.get("/?n=dropped", host="slow.test").status == 200
        slow.server.release.set()
        for attempt in range(200):  # once the held copies are answered, copies flow again
            assert proc.get(f"/?n={attempt}", host="slow.test").status == 200
            if len(slow.received) > 2:
                break
            time.sleep(0.05)
        assert len(slow.received) >= 3 and all(path != "/?n=dropped" for _, path, _, _ in slow.received)

        # An invalid target rejects only its own Ingress, saying why.
        assert proc.get("/", host="invalid.test").status == 404
        assert proc.get("/", host="plain.test").status == 200
        log = proc.log()
        assert "mirror-target" in log and "http:// or https://" in log
        # No copy of a request to an Ingress without the annotation.
        assert len(copies.received) == 2
    finally:
        proc.stop()
        real.stop()
        for server in (copies, slow, failing):
            server.stop()
    assert "Traceback" not in proc.log_path.read_text(errors="replace")
