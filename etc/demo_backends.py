"""Two tiny example backends for the demo configuration (127.0.0.1:9001 and :9002)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def handler_for(name: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = json.dumps({"backend": name, "path": self.path,
                               "x-forwarded-for": self.headers.get("X-Forwarded-For")}).encode() + b"\n"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


if __name__ == "__main__":
    servers = [ThreadingHTTPServer(("127.0.0.1", port), handler_for(name))
               for name, port in (("hello", 9001), ("api", 9002))]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("demo backends: hello on 127.0.0.1:9001, api on 127.0.0.1:9002", flush=True)
    servers[0].serve_forever()
