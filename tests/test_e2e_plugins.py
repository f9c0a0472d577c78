"""End to end: every built-in annotation through the real ``twistd ingressd``, real backends, real clients.

One ingressd process (``world``) serves many Ingresses, one per behaviour, distinguished by
host. It trusts 127.0.0.1 as a proxy (so tests choose the client address with
X-Forwarded-For) and has a global default backend. WebSocket tests use a raw RFC 6455 echo
backend (tests/wsbackend.py) and the ``websocket-client`` package as the client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import subprocess
import threading
import time

import bcrypt
import pytest
import websocket

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, free_port, ingress, service, write_manifests
from wsbackend import WebSocketEcho

pytestmark = pytest.mark.slow

NGINX = "nginx.ingress.kubernetes.io/"
PASSWORD = "correct horse"


# -- hashes, made here with the tools users use -------------------------------------------


def _openssl(flag: str, password: str) -> str:
    return subprocess.run(["openssl", "passwd", flag, password], check=True, capture_output=True,
                          text=True, timeout=10).stdout.strip()


def _hashes() -> dict[str, str]:
    salt = os.urandom(8)
    return {
        "bc": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode(),
        "apr": _openssl("-apr1", PASSWORD),
        "s5": _openssl("-5", PASSWORD),
        "s6": _openssl("-6", PASSWORD),
        "sha": "{SHA}" + base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode(),
        "ssha": "{SSHA}" + base64.b64encode(hashlib.sha1(PASSWORD.encode() + salt).digest() + salt).decode(),
    }


def _secret(name: str, data: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default"},
            "type": "Opaque", "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def basic(user: str, password: str = PASSWORD) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def one(name: str, host: str, svc: str = "web", port=80, annotations=None, paths=None) -> dict:
    rules = [(host, paths or [("/", "Prefix", svc, port)])]
    return ingress(name, rules, annotations={k if "/" in k else NGINX + k: v for k, v in (annotations or {}).items()})


AUTH = {"auth-type": "basic", "auth-secret": "htfile", "auth-realm": "Protected Area"}
ERRORS = {"custom-http-errors": "401,413,502,503,504", "default-backend": "errors"}


def objects(web, errors, fallback, ws, dead_port, hashes, extra=()):
    return [
        INGRESS_CLASS,
        *service("web", [("http", 80, web.port)]),
        *service("errors", [("http", 80, errors.port)]),
        *service("fallback", [("http", 80, fallback.port)]),
        *service("ws", [("http", 80, ws.port)]),
        *service("down", [("http", 80, web.port)], ready=False),
        *service("refused", [("http", 80, dead_port)]),
        *service("errdown", [("http", 80, dead_port)]),
        _secret("htfile", {"auth": "".join(f"{user}:{hashed}\n" for user, hashed in hashes.items())}),
        _secret("htmap", hashes),
        one("plain", "plain.test"),
        one("auth-file", "auth-file.test", annotations=AUTH),
        one("auth-map", "auth-map.test", annotations={**AUTH, "auth-secret": "htmap", "auth-secret-type": "auth-map"}),
        one("auth-missing", "auth-missing.test", annotations={**AUTH, "auth-secret": "nosuch"}),
        one("cors-auth", "cors-auth.test",
            annotations={**AUTH, "enable-cors": "true", "cors-allow-origin": "https://app.test"}),
        one("limit", "limit.test", annotations={"limit-rpm": "1", "limit-burst-multiplier": "3",
                                                "limit-allowlist": "198.51.100.0/24"}),
        one("conn", "conn.test", annotations={"limit-connections": "1"}),
        one("allow", "allow.test", annotations={"allowlist-source-range": "10.0.0.0/8, 192.0.2.7"}),
        one("deny", "deny.test", annotations={"denylist-source-range": "203.0.113.66/32"}),
        one("errs", "errs.test", annotations={**ERRORS, "proxy-read-timeout": "1", "proxy-body-size": "1k"},
            paths=[("/", "Prefix", "web", 80), ("/down", "Prefix", "down", 80), ("/refused", "Prefix", "refused", 80)]),
        one("errs-auth", "errs-auth.test", annotations={**AUTH, **ERRORS}),
        one("errs-limit", "errs-limit.test", annotations={**ERRORS, "limit-rpm": "1", "limit-burst-multiplier": "1"}),
        one("errs-down", "errs-down.test", annotations={**ERRORS, "default-backend": "errdown"},
            paths=[("/", "Prefix", "down", 80)]),
        one("timeouts", "timeouts.test", annotations={"proxy-read-timeout": "1", "proxy-body-size": "1k"}),
        one("bad", "bad.test", annotations={"limit-rps": "lots"}),
        one("odd", "odd.test", annotations={"enable-modsecurity": "true",
                                            "configuration-snippet": 'more_set_headers "X-Snip: yes";',
                                            "server-snippet": "return 418;\nlua_shared_dict x 1m;",
                                            "ingressd.io/ignore-annotations": "enable-modsecurity, server-snippet"}),
        one("ws", "ws.test", "ws"),
        one("ws-auth", "ws-auth.test", "ws", annotations=AUTH),
        one("ws-limit", "ws-limit.test", "ws", annotations={"limit-rpm": "1", "limit-burst-multiplier": "1"}),
        one("ws-idle", "ws-idle.test", "ws", annotations={"proxy-read-timeout": "1"}),
        *extra,
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-plugins")
    manifests = root / "manifests"
    manifests.mkdir()
    web, errors, fallback, ws = Backend("web"), Backend("errors"), Backend("fallback"), WebSocketEcho()
    dead_port = free_port()
    hashes = _hashes()
    parts = (web, errors, fallback, ws, dead_port, hashes)
    write_manifests(manifests / "all.yaml", objects(*parts))
    proc = Ingressd(manifests, ["--trusted-proxies", "127.0.0.1/32", "--default-backend-service", "default/fallback",
                                "--proxy-read-timeout", "5"])
    world = type("World", (), {})()
    world.proc, world.web, world.errors, world.fallback, world.ws = proc, web, errors, fallback, ws
    world.manifests, world.parts, world.hashes = manifests, parts, hashes
    yield world
    proc.stop()
    for backend in (web, errors, fallback, ws):
        backend.stop()


def echoed_headers(response) -> dict:
    return dict(response.json()["headers"])


# -- basic auth ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["auth-file.test", "auth-map.test"])
def test_basic_auth_every_hash_format(world, host):
    proc = world.proc
    for user in world.hashes:
        ok = proc.get("/who", host=host, headers=basic(user))
        assert ok.status == 200, (user, ok)
        assert "authorization" not in echoed_headers(ok)  # never reaches the backend
        wrong = proc.get("/who", host=host, headers=basic(user, "wrong"))
        assert wrong.status == 401, user


@pytest.mark.parametrize("headers", [{}, basic("nobody"), {"Authorization": "Bearer x"}])
def test_basic_auth_challenge(world, headers):
    response = world.proc.get("/", host="auth-file.test", headers=headers)
    assert response.status == 401
    assert response.headers["www-authenticate"] == 'Basic realm="Protected Area"'


def test_head_and_options_are_authenticated(world):
    proc = world.proc
    for method in ("HEAD", "OPTIONS"):
        assert proc.get("/", host="auth-file.test", method=method).status == 401
        assert proc.get("/", host="auth-file.test", method=method, headers=basic("bc")).status == 200


def test_missing_auth_secret_fails_closed(world):
    for headers in ({}, basic("bc")):
        assert world.proc.get("/", host="auth-missing.test", headers=headers).status == 503


def test_cors_preflight_on_auth_route_answered_and_never_proxied(world):
    before = len(world.web.requests)
    response = world.proc.get("/preflight", host="cors-auth.test", method="OPTIONS",
                              headers={"Origin": "https://app.test", "Access-Control-Request-Method": "PUT"})
    assert response.status == 204
    assert response.headers["access-control-allow-origin"] == "https://app.test"
    assert "PUT" in response.headers["access-control-allow-methods"]
    assert not [r for r in world.web.requests[before:] if r[1] == "/preflight"]
    # Not a preflight: authentication applies, and the CORS headers are on the 401 too.
    denied = world.proc.get("/x", host="cors-auth.test", headers={"Origin": "https://app.test"})
    assert denied.status == 401 and denied.headers["access-control-allow-origin"] == "https://app.test"
    other = world.proc.get("/preflight", host="cors-auth.test", method="OPTIONS",
                           headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "PUT"})
    assert other.status == 401 and "access-control-allow-origin" not in other.headers


# -- rate and connection limits -----------------------------------------------------------


def _burst(proc, host, client, count):
    return [proc.get("/", host=host, headers={"X-Forwarded-For": client}) for _ in range(count)]


def test_rate_limit_burst_then_default_503_with_retry_after(world):
    # limit-rpm 1 × multiplier 3: burst 3, so 4 pass at once; one more per minute.
    responses = _burst(world.proc, "limit.test", "203.0.113.1", 6)
    assert [r.status for r in responses] == [200, 200, 200, 200, 503, 503]
    assert int(responses[-1].headers["retry-after"]) >= 1


def test_rate_limit_keyed_on_the_real_client_behind_trusted_proxies(world):
    assert _burst(world.proc, "limit.test", "203.0.113.2", 5)[-1].status == 503
    # Another real client behind the same proxy (127.0.0.1) has its own budget.
    fresh = world.proc.get("/", host="limit.test", headers={"X-Forwarded-For": "203.0.113.3, 127.0.0.1"})
    assert fresh.status == 200
    assert echoed_headers(fresh)["x-real-ip"] == "203.0.113.3"


def test_rate_limit_allowlisted_clients_are_exempt(world):
    assert {r.status for r in _burst(world.proc, "limit.test", "198.51.100.7", 8)} == {200}


def test_limit_connections(world):
    proc = world.proc
    slow: dict = {}
    before = len(world.web.requests)  # another test may have sent /slow to this backend already
    thread = threading.Thread(target=lambda: slow.update(r=proc.get(
        "/slow?delay=1.5", host="conn.test", headers={"X-Forwarded-For": "203.0.113.20"})))
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not any(r[1] == "/slow?delay=1.5" for r in world.web.requests[before:]) and time.monotonic() < deadline:
            time.sleep(0.02)
        second = proc.get("/", host="conn.test", headers={"X-Forwarded-For": "203.0.113.20"})
        other = proc.get("/", host="conn.test", headers={"X-Forwarded-For": "203.0.113.21"})
    finally:
        thread.join(10)
    assert second.status == 503 and "retry-after" in second.headers
    assert other.status == 200
    assert slow["r"].status == 200
    assert proc.get("/", host="conn.test", headers={"X-Forwarded-For": "203.0.113.20"}).status == 200


# -- allow and deny lists -----------------------------------------------------------------


def test_allowlist(world):
    proc = world.proc
    assert proc.get("/", host="allow.test").status == 403  # 127.0.0.1 itself
    assert proc.get("/", host="allow.test", headers={"X-Forwarded-For": "10.9.8.7"}).status == 200
    assert proc.get("/", host="allow.test", headers={"X-Forwarded-For": "192.0.2.7"}).status == 200
    assert proc.get("/", host="allow.test", headers={"X-Forwarded-For": "192.0.2.8"}).status == 403


def test_denylist(world):
    proc = world.proc
    assert proc.get("/", host="deny.test", headers={"X-Forwarded-For": "203.0.113.66"}).status == 403
    assert proc.get("/", host="deny.test", headers={"X-Forwarded-For": "203.0.113.67"}).status == 200
    assert proc.get("/", host="deny.test").status == 200


# -- custom error pages -------------------------------------------------------------------


def _error_page(response) -> dict:
    """The error backend's (200, JSON) answer served as the body: the request it received."""
    page = response.json()
    assert page["backend"] == "errors", response
    return dict(page["headers"])


def test_error_page_for_backend_generated_code(world):
    response = world.proc.get("/status/503?q=1", host="errs.test", headers={"Accept": "text/html"})
    assert response.status == 503  # the original code, although the error backend said 200
    seen = _error_page(response)
    assert seen["x-code"] == "503"
    assert seen["x-format"] == "text/html"
    assert seen["x-original-uri"] == "/status/503?q=1"
    assert seen["x-namespace"] == "default" and seen["x-ingress-name"] == "errs"
    assert seen["x-service-name"] == "web" and seen["x-service-port"] == "80"
    assert re.fullmatch(r"[0-9a-f]{32}", seen["x-request-id"])
    assert response.headers["content-type"] == "application/json"


def test_backend_codes_not_listed_pass_through(world):
    response = world.proc.get("/status/404", host="errs.test")
    assert response.status == 404 and response.body == b"status 404 from web"


@pytest.mark.parametrize("path, method, body, code", [
    # (/down, no ready endpoints, is proxied to the default-backend Service: test_plugin_error_pages_e2e.py)
    ("/refused", "GET", None, 502),       # connection refused
    ("/slow?delay=1.5", "GET", None, 504),  # proxy-read-timeout 1
    ("/upload", "POST", b"x" * 2048, 413),  # proxy-body-size 1k
])
def test_error_page_for_ingressd_generated_codes(world, path, method, body, code):
    response = world.proc.get(path, host="errs.test", method=method, body=body)
    assert response.status == code, response
    assert _error_page(response)["x-code"] == str(code)


def test_error_page_for_rate_limit_rejection(world):
    statuses = [world.proc.get("/", host="errs-limit.test", headers={"X-Forwarded-For": "203.0.113.40"})
                for _ in range(3)]
    assert [r.status for r in statuses] == [200, 200, 503]
    assert _error_page(statuses[-1])["x-code"] == "503"
    assert "retry-after" in statuses[-1].headers  # the original answer's headers are kept


def test_error_page_for_401_keeps_status_and_challenge(world):
    response = world.proc.get("/", host="errs-auth.test")
    assert response.status == 401
    assert response.headers["www-authenticate"] == 'Basic realm="Protected Area"'
    assert _error_page(response)["x-code"] == "401"
    assert world.proc.get("/", host="errs-auth.test", headers=basic("bc")).json()["backend"] == "web"


def test_error_backend_down_serves_the_plain_error(world):
    # The route's Service has no endpoints: the request goes to the default-backend Service,
    # which refuses (502), and so does its error page.
    response = world.proc.get("/", host="errs-down.test")
    assert response.status == 502
    assert response.headers["content-type"] == "text/html"
    assert b"502" in response.body


def test_default_backend_service_serves_unmatched_requests(world):
    response = world.proc.get("/anything", host="unknown.test")
    assert response.status == 200 and response.json()["backend"] == "fallback"


# -- proxy settings -----------------------------------------------------------------------


def test_proxy_read_timeout_and_body_size_annotations(world):
    proc = world.proc
    assert proc.get("/slow?delay=1.5", host="timeouts.test").status == 504
    assert proc.get("/slow?delay=1.5", host="plain.test").status == 200  # the global 5 s
    assert proc.get("/u", host="timeouts.test", method="POST", body=b"x" * 2000).status == 413
    assert proc.get("/u", host="timeouts.test", method="POST", body=b"x" * 900).json()["body_length"] == 900
    assert proc.get("/u", host="plain.test", method="POST", body=b"x" * 2000).json()["body_length"] == 2000


# -- invalid and unsupported annotations ---------------------------------------------------


def test_invalid_annotation_rejects_only_its_ingress(world):
    proc = world.proc
    # bad.test is not served by its Ingress: the request falls through to the default backend.
    assert proc.get("/", host="bad.test").json()["backend"] == "fallback"
    assert proc.get("/", host="plain.test").json()["backend"] == "web"
    line = next(line for line in proc.log().splitlines() if "Ingress default/bad" in line)
    assert "rejected" in line
    assert "nginx.ingress.kubernetes.io/limit-rps" in line
    assert "expected an integer" in line and "lots" in line


def test_unsupported_annotations_reported_once_and_snippets_read_as_data(world):
    proc = world.proc
    response = proc.get("/", host="odd.test")  # the server-snippet is outside the subset, ignored as asked
    assert response.status == 200 and response.headers.get("x-snip") == "yes"
    # A configuration change (a new Ingress) must not report the same warnings again.
    extra = [one("later", "later.test")]
    write_manifests(world.manifests / "all.yaml", objects(*world.parts, extra=extra))
    _wait_served(proc, "later.test")
    log = proc.log()
    ignored = [l for l in log.splitlines() if "nginx.ingress.kubernetes.io/enable-modsecurity" in l]
    assert len(ignored) == 1 and "Ingress default/odd" in ignored[0]
    assert "ignored as the operator asked" in ignored[0]
    for snippet, said in (("configuration-snippet", "served with a difference"),
                          ("server-snippet", "line 2: directive lua_shared_dict is not supported")):
        lines = [l for l in log.splitlines() if f"nginx.ingress.kubernetes.io/{snippet}" in l]
        assert len(lines) == 1 and said in lines[0]


def _wait_served(proc, host, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = proc.get("/", host=host)
        if response.status == 200 and response.json()["backend"] == "web":
            return
        time.sleep(0.1)
    raise AssertionError(f"{host} not served after {timeout}s")


# -- WebSocket passthrough ----------------------------------------------------------------


def ws_connect(world, host="ws.test", path="/chat", headers=None, timeout=10):
    return websocket.create_connection(f"ws://127.0.0.1:{world.proc.http_port}{path}", host=host,
                                       header=[f"{k}: {v}" for k, v in (headers or {}).items()], timeout=timeout)


def test_websocket_echoes_text_and_binary(world):
    conn = ws_connect(world)
    try:
        conn.send("hello")
        assert conn.recv() == "hello"
        conn.send_binary(b"\x00\x01\xfe\xff")
        assert conn.recv() == b"\x00\x01\xfe\xff"
        conn.ping(b"p")
    finally:
        conn.close()
    path, headers = world.ws.handshakes[-1]
    assert path == "/chat" and headers["upgrade"].lower() == "websocket"
    assert headers["x-forwarded-for"] == "127.0.0.1"


def test_websocket_large_message(world):
    payload = os.urandom(1024 * 1024)
    conn = ws_connect(world, timeout=20)
    try:
        conn.send_binary(payload)
        assert conn.recv() == payload
    finally:
        conn.close()


def test_websocket_idle_closed_after_proxy_read_timeout(world):
    conn = ws_connect(world, host="ws-idle.test", timeout=10)
    try:
        conn.send("still here")
        assert conn.recv() == "still here"
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            conn.recv()  # nothing comes back for 1 s: ingressd closes the tunnel
    finally:
        conn.close()


def test_websocket_handshake_is_authenticated(world):
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        ws_connect(world, host="ws-auth.test")
    assert caught.value.status_code == 401
    conn = ws_connect(world, host="ws-auth.test", headers=basic("apr"))
    try:
        conn.send("authed")
        assert conn.recv() == "authed"
    finally:
        conn.close()
    assert "authorization" not in world.ws.handshakes[-1][1]


def test_websocket_handshake_is_rate_limited(world):
    statuses = []
    for _ in range(3):
        try:
            ws_connect(world, host="ws-limit.test", headers={"X-Forwarded-For": "203.0.113.50"}).close()
            statuses.append(101)
        except websocket.WebSocketBadStatusException as exc:
            statuses.append(exc.status_code)
    assert statuses == [101, 101, 503]


def test_websocket_tunnel_survives_a_configuration_change(world):
    conn = ws_connect(world)
    try:
        conn.send("before")
        assert conn.recv() == "before"
        extra = [one("later", "later.test"), one("later2", "later2.test")]
        write_manifests(world.manifests / "all.yaml", objects(*world.parts, extra=extra))
        _wait_served(world.proc, "later2.test")
        for index in range(3):
            conn.send(f"after {index}")
            assert conn.recv() == f"after {index}"
    finally:
        conn.close()


def test_websocket_refused_upgrade_is_relayed(world):
    key = base64.b64encode(os.urandom(16))
    request = (b"GET /refuse HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key)
    answer = world.proc.raw(request, timeout=5)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403")
    assert b"x-refused: yes" in head.lower()
    assert body == b"refused by backend"
