"""Real backends for end-to-end tests: threaded HTTP/1.1 servers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class EchoHandler(BaseHTTPRequestHandler):
    """Answers with JSON describing the request, plus a few special paths for faults."""

    protocol_version = "HTTP/1.1"
    server_version = "echo"

    def log_message(self, *args):
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self):
        body = self._read_body()
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = url.path[4:] if url.path.startswith("/api/") else url.path
        self.server.requests.append((self.command, self.path, list(self.headers.items()), len(body)))
        if path.startswith("/status/"):
            status = int(path.split("/")[2])
            payload = f"status {status} from {self.server.name}".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        if path == "/slow":
            time.sleep(float(query.get("delay", ["1"])[0]))
        if path == "/big":
            size = int(query.get("n", ["1000000"])[0])
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            block = b"x" * 65536
            sent = 0
            while sent < size:
                piece = block[: min(len(block), size - sent)]
                self.wfile.write(piece)
                sent += len(piece)
            return
        if path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        if path == "/close-mid":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"partial")
            self.wfile.flush()
            self.close_connection = True
            return
        payload = json.dumps(
            {
                "backend": self.server.name,
                "method": self.command,
                "version": self.request_version,
                "path": self.path,
                "headers": [[k.lower(), v] for k, v in self.headers.items()],
                "body_length": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "body": body[:200].decode("latin-1"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Set-Cookie", "a=1")
        self.send_header("Set-Cookie", "b=2")
        self.send_header("X-Backend", self.server.name)
        self.send_header("Keep-Alive", "timeout=5")
        self.send_header("Connection", "keep-alive, X-Secret-Hop")
        self.send_header("X-Secret-Hop", "must-not-pass")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _handle


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many concurrent proxied streams connect at once

    def handle_error(self, request, client_address):
        # Tests abort responses on purpose (slow clients, resets): not worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class Backend:
    def __init__(self, name: str = "echo", port: int = 0, handler=EchoHandler):
        self.server = _Server(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.server.name = name
        self.server.requests = []
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    @property
    def requests(self):
        return self.server.requests

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
