"""Response compression end to end, through ``twistd ingressd --nginx-configmap`` in file mode and
real clients (curl ``--compressed``, Python's gzip and brotli decoders): the ConfigMap's
``use-gzip`` and ``enable-brotli`` switched on live (on a keep-alive connection opened before),
what is and is not compressed, a server-sent event stream arriving event by event, and a bad
value refused with the previous version kept."""

from __future__ import annotations

import gzip
import http.client
import subprocess
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import brotli
import pytest

from harness import INGRESS_CLASS, Ingressd, ingress, service, wait_for, write_manifests
from test_e2e_configmap import configmap

pytestmark = pytest.mark.slow
CM = "ingress-nginx/ingress-nginx-controller"
TEXT = b"".join(b"line %d of a text answer that compresses well\n" % i for i in range(60))
PRECOMPRESSED = gzip.compress(b"the backend's own gzip " * 40)


class Origin:
    """A backend on loopback: /text, /small, /png, /encoded, and /sse (one event, then a second
    once the test says so: ``next_event``)."""

    def __init__(self):
        self.next_event = threading.Event()
        next_event = self.next_event

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, body, content_type, *extra):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in extra:
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):  # noqa: N802 (http.server's name)
                self.do_GET()

            def do_GET(self):  # noqa: N802
                if self.path == "/text":
                    self._send(TEXT, "text/plain; charset=utf-8", ("ETag", '"v1"'), ("Accept-Ranges", "bytes"))
                elif self.path == "/small":
                    self._send(TEXT[:100], "text/plain")
                elif self.path == "/png":
                    self._send(TEXT, "image/png")
                elif self.path == "/encoded":
                    self._send(PRECOMPRESSED, "text/plain", ("Content-Encoding", "gzip"))
                elif self.path == "/sse":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for event in (b"data: one\n\n", b"data: two\n\n"):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                        self.wfile.flush()
                        if not next_event.wait(20):  # bounded: the test sets it
                            break
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                    next_event.clear()
                else:
                    self._send(b"no", "text/plain")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.next_event.set()
        self.server.shutdown()
        self.server.server_close()


def objects(origin, data):
    return [INGRESS_CLASS, *service("web", [("http", 80, origin.port)]), configmap(data),
            ingress("web", [("web.test", [("/", "Prefix", "web", 80)])])]


def get(conn, path, accept=None, method="GET"):
    headers = {"Host": "web.test"}
    if accept is not None:
        headers["Accept-Encoding"] = accept
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    return response, {name.lower(): value for name, value in response.getheaders()}, body


# Server-sent events are not in ingress-nginx's default gzip-types: an operator adds them.
ON = {"use-gzip": "true", "enable-brotli": "true", "gzip-types": "text/plain text/event-stream"}


def test_compression_switched_on_live_as_nginx_compresses_and_streams_events(tmp_path):
    origin = Origin()
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", objects(origin, {}))
    proc = Ingressd(manifests, ["--nginx-configmap", CM])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=10)
        response, headers, body = get(conn, "/text", "gzip, br")
        assert body == TEXT and "content-encoding" not in headers and headers["content-length"] == str(len(TEXT))
        local = conn.sock.getsockname()

        write_manifests(manifests / "all.yaml", objects(origin, ON))
        wait_for(lambda: get(conn, "/text", "gzip")[1].get("content-encoding") == "gzip", "gzip applied")
        assert conn.sock.getsockname() == local  # the connection opened before the change
        response, headers, body = get(conn, "/text", "gzip")
        assert gzip.decompress(body) == TEXT and len(body) < len(TEXT)
        assert "content-length" not in headers and headers["transfer-encoding"] == "chunked"
        assert headers["vary"] == "Accept-Encoding" and headers["etag"] == 'W/"v1"' and "accept-ranges" not in headers
        response, headers, body = get(conn, "/text", "gzip, deflate, br")
        assert headers["content-encoding"] == "br" and brotli.decompress(body) == TEXT  # brotli first
        response, headers, body = get(conn, "/text")  # no Accept-Encoding: as it is, with Vary
        assert body == TEXT and headers["content-length"] == str(len(TEXT)) and headers["vary"] == "Accept-Encoding"
        response, headers, body = get(conn, "/text", "gzip;q=0")
        assert body == TEXT and "content-encoding" not in headers
        response, headers, body = get(conn, "/small", "gzip")  # 100 bytes: under gzip-min-length 256
        assert body == TEXT[:100] and "content-encoding" not in headers
        response, headers, body = get(conn, "/small", "br")  # over brotli-min-length 20
        assert headers["content-encoding"] == "br" and brotli.decompress(body) == TEXT[:100]
        response, headers, body = get(conn, "/png", "gzip, br")
        assert body == TEXT and "content-encoding" not in headers and "vary" not in headers
        response, headers, body = get(conn, "/encoded", "gzip, br")
        assert body == PRECOMPRESSED and headers["content-encoding"] == "gzip"
        response, headers, body = get(conn, "/text", "gzip", method="HEAD")
        assert body == b"" and "content-encoding" not in headers and headers["content-length"] == str(len(TEXT))
        response, headers, body = get(conn, "/nowhere-else", "gzip")  # text/plain "no": 2 bytes
        assert body == b"no"

        # curl --compressed, a real client that decodes what it asked for
        for flags in (["--compressed"], ["-H", "Accept-Encoding: gzip"]):
            out = subprocess.run(["curl", "-sS", "--max-time", "10", "-H", "Host: web.test", *flags, "-D", "-",
                                  f"http://127.0.0.1:{proc.http_port}/text"], capture_output=True, timeout=30)
            head, _, content = out.stdout.partition(b"\r\n\r\n")
            if flags == ["--compressed"]:
                assert content == TEXT and b"content-encoding: br" in head.lower()
            else:
                assert gzip.decompress(content) == TEXT

        # server-sent events: the first event arrives, decodable, before the backend sends the next
        stream = http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=10)
        stream.request("GET", "/sse", headers={"Host": "web.test", "Accept-Encoding": "gzip"})
        events = stream.getresponse()
        assert events.getheader("content-encoding") == "gzip"
        decoder = zlib.decompressobj(16 + 15)
        received = b""
        for _ in range(50):  # bounded: each read1 waits for the next chunk
            received += decoder.decompress(events.read1(65536))
            if b"data: one\n\n" in received:
                break
        assert received == b"data: one\n\n"
        origin.next_event.set()
        received += decoder.decompress(events.read())
        assert received == b"data: one\n\ndata: two\n\n" and decoder.eof
        stream.close()

        # a bad value refuses the change; the previous version serves on
        write_manifests(manifests / "all.yaml", objects(origin, {**ON, "gzip-level": "10"}))
        wait_for(lambda: "ConfigMap refused" in proc.log(), "the refusal")
        assert "gzip-level" in proc.log()
        assert get(conn, "/text", "gzip")[1]["content-encoding"] == "gzip"

        write_manifests(manifests / "all.yaml", objects(origin, {}))  # off again, live
        wait_for(lambda: "content-encoding" not in get(conn, "/text", "gzip")[1], "compression off")
        conn.close()
    finally:
        proc.stop()
        origin.stop()


def test_compression_over_http2_with_curl(tmp_path):
    """The same answers over HTTP/2 (TLS, ALPN h2): DATA frames without a content-length."""
    import certs

    origin = Origin()
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    leaf = certs.make_leaf("h2.test", issuer=certs.make_ca())
    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS, *service("web", [("http", 80, origin.port)]), configmap(ON),
        certs.secret_manifest("default", "h2", leaf.cert_pem, leaf.key_pem()),
        ingress("h2", [("h2.test", [("/", "Prefix", "web", 80)])], tls=[{"hosts": ["h2.test"], "secretName": "h2"}]),
    ])
    proc = Ingressd(manifests, ["--nginx-configmap", CM])
    try:
        def curl(*flags):
            return subprocess.run(["curl", "-sS", "-k", "--http2", "--max-time", "10", "--resolve",
                                   f"h2.test:{proc.https_port}:127.0.0.1", "-D", "-", *flags,
                                   f"https://h2.test:{proc.https_port}/text"], capture_output=True, timeout=30)

        out = curl("--compressed")
        head, _, content = out.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/2 200") and b"content-encoding: br" in head and content == TEXT
        out = curl("-H", "Accept-Encoding: gzip")
        head, _, content = out.stdout.partition(b"\r\n\r\n")
        assert b"content-encoding: gzip" in head and b"content-length" not in head.lower()
        assert gzip.decompress(content) == TEXT
    finally:
        proc.stop()
        origin.stop()
