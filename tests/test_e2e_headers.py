"""End to end through the real ``twistd ingressd``: the headers the backend receives
(upstream-vhost, connection-proxy-header, ingressd.io/request-headers) and the headers the client
receives (proxy-redirect-*, proxy-cookie-*, ingressd.io/response-headers), as ingress-nginx's e2e
tests check them (test/e2e/annotations/upstreamvhost.go, connection.go, proxy.go)."""

from __future__ import annotations

import json
import threading

import pytest

from backends import EchoHandler, _Server
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"
I = "ingressd.io/"


class _RedirectingHandler(EchoHandler):
    """The echo backend, plus answers with the Location, Refresh and Set-Cookie to rewrite."""

    def _answer(self):
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://backend.internal:8080/login?next=/a")
            self.send_header("Refresh", "0; url=http://backend.internal:8080/refreshed")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/cookie"):
            self.send_response(200)
            self.send_header("Set-Cookie", "sid=1; Domain=.backend.local; Path=/; HttpOnly")
            self.send_header("Set-Cookie", "lang=en; domain=other.local; path=/api")
            self.send_header("X-Powered-By", "php")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._handle()

    do_GET = do_POST = _answer


class RedirectingBackend:
    def __init__(self):
        self.server = _Server(("127.0.0.1", 0), _RedirectingHandler)
        self.server.daemon_threads = True
        self.server.name = "redirecting"
        self.server.requests = []
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    manifests = tmp_path_factory.mktemp("headers")
    web = RedirectingBackend()
    objects = [
        INGRESS_CLASS,
        *service("web", [("http", 80, web.port)]),
        ingress("vhost", [("vhost.test", [("/", "Prefix", "web", 80)])],
                annotations={N + "upstream-vhost": "app.internal.svc:8080"}),
        ingress("close", [("close.test", [("/", "Prefix", "web", 80)])],
                annotations={N + "connection-proxy-header": "close"}),
        ingress("keepalive", [("keepalive.test", [("/", "Prefix", "web", 80)])],
                annotations={N + "connection-proxy-header": "keep-alive"}),
        ingress("typed", [("typed.test", [("/", "Prefix", "web", 80)])],
                annotations={I + "request-headers": "X-Team: payments\nX-Client: $remote_addr $request_uri\n"
                                                    "X-Forwarded-Proto: https",
                             I + "remove-request-headers": "Cookie, X-Debug",
                             I + "response-headers": "X-Frame-Options: DENY\nX-Id: $request_id",
                             I + "remove-response-headers": "X-Powered-By, X-Backend",
                             N + "proxy-body-size": "4"}),
        ingress("rewrites", [("rewrite.test", [("/", "Prefix", "web", 80)])],
                annotations={N + "proxy-redirect-from": "http://backend.internal:8080/",
                             N + "proxy-redirect-to": "https://rewrite.test/app/",
                             N + "proxy-cookie-domain": "backend.local rewrite.test",
                             N + "proxy-cookie-path": "/ /app/"}),
        ingress("plain", [("plain.test", [("/", "Prefix", "web", 80)])]),
        # refused values reject their own Ingress only
        ingress("bad", [("bad.test", [("/", "Prefix", "web", 80)])],
                annotations={I + "request-headers": "X-Ok: 1\nTransfer-Encoding: chunked"}),
    ]
    write_manifests(manifests / "all.yaml", objects)
    proc = Ingressd(manifests, extra_args=("--allow-owned-header-changes",))
    yield proc, web
    proc.stop()
    web.stop()


def backend_saw(response):
    assert response.status == 200, (response.status, response.body[:200])
    seen = json.loads(response.body)
    headers: dict[str, list[str]] = {}
    for name, value in seen["headers"]:
        headers.setdefault(name, []).append(value)
    return headers


def test_upstream_vhost_is_the_host_the_backend_gets(world):
    proc, _ = world
    seen = backend_saw(proc.get("/", host="vhost.test"))
    assert seen["host"] == ["app.internal.svc:8080"]
    assert seen["x-forwarded-host"] == ["vhost.test"]  # the client's, as ingress-nginx's $best_http_host
    assert backend_saw(proc.get("/", host="plain.test"))["host"] == ["plain.test"]


def test_connection_proxy_header(world):
    proc, _ = world
    assert backend_saw(proc.get("/", host="keepalive.test"))["connection"] == ["keep-alive"]
    assert "connection" not in backend_saw(proc.get("/", host="plain.test"))
    # close: the backend closes after answering; the next requests still get through
    for _ in range(3):
        assert backend_saw(proc.get("/", host="close.test"))["connection"] == ["close"]


def test_typed_request_headers(world):
    proc, _ = world
    seen = backend_saw(proc.get("/p?q=1", host="typed.test",
                                headers={"Cookie": "a=1", "X-Debug": "1", "X-Team": "forged", "Accept": "*/*"}))
    assert seen["x-team"] == ["payments"]
    assert seen["x-client"] == ["127.0.0.1 /p?q=1"]
    assert seen["x-forwarded-proto"] == ["https"]  # allowed by --allow-owned-header-changes
    assert "cookie" not in seen and "x-debug" not in seen
    assert seen["accept"] == ["*/*"]


def test_typed_response_headers_on_the_backend_s_and_ingressd_s_answers(world):
    proc, _ = world
    response = proc.get("/cookie", host="typed.test")
    assert response.status == 200
    assert response.all("x-frame-options") == ["DENY"]
    assert len(response.headers["x-id"]) == 32  # the request id
    assert "x-powered-by" not in response.headers
    # ingressd's own answer on the route (a body over proxy-body-size): the same headers
    refused = proc.get("/", host="typed.test", method="POST", body=b"0123456789")
    assert refused.status == 413
    assert refused.all("x-frame-options") == ["DENY"]


def test_location_and_refresh_are_rewritten(world):
    proc, _ = world
    response = proc.get("/redirect", host="rewrite.test")
    assert response.status == 302
    assert response.headers["location"] == "https://rewrite.test/app/login?next=/a"
    assert response.headers["refresh"] == "0; url=https://rewrite.test/app/refreshed"
    # without the annotations ingress-nginx's default is proxy_redirect off: as the backend said
    plain = proc.get("/redirect", host="plain.test")
    assert plain.headers["location"] == "http://backend.internal:8080/login?next=/a"


def test_set_cookie_domain_and_path_are_rewritten(world):
    proc, _ = world
    response = proc.get("/cookie", host="rewrite.test")
    assert response.all("set-cookie") == ["sid=1; Domain=.rewrite.test; Path=/app/; HttpOnly",
                                          "lang=en; domain=other.local; path=/app/api"]
    assert proc.get("/cookie", host="plain.test").all("set-cookie")[0] == \
        "sid=1; Domain=.backend.local; Path=/; HttpOnly"


def test_an_invalid_header_line_rejects_its_ingress_only(world):
    proc, _ = world
    assert proc.get("/", host="bad.test").status == 404
    log = proc.log()
    assert "Transfer-Encoding is a hop-by-hop or framing header" in log and "line 2" in log
