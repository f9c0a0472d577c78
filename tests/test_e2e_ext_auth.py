"""External authentication end to end: the real ``twistd ingressd``, a real backend and an auth
service of our own that behaves like oauth2-proxy (``/oauth2/auth``: 202 with
``X-Auth-Request-User``/``-Email`` when the session cookie is valid, 401 otherwise;
``/oauth2/start?rd=…``: sets the cookie and redirects back).

The browser-like flow with cookies followed; every auth answer mapped (2xx through, 401, 403,
anything else, a refused connection and a timeout → 500, never the backend); a slow auth
service holding only its own request; the cache by key; the copied headers; auth-method;
auth-signin with rd and its parameter; the attacks (a client's forged X-Original-URL and
X-Auth-Request-* headers, CRLF and spaces in substitutions, an auth answer's hop-by-hop
headers)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, free_port, ingress, service, write_manifests

pytestmark = pytest.mark.slow

N = "nginx.ingress.kubernetes.io/"
COOKIE = "_oauth2_proxy"
HTPASSWD = "user:{SHA}nU4eI71bcnBGqeO0t9tXvY1u5oQ=\n"  # user / pass
CREDENTIALS = {"Authorization": "Basic " + base64.b64encode(b"user:pass").decode()}


class _AuthHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status, headers=(), body=b""):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        server = self.server
        url = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        with server.lock:
            server.received.append((self.command, self.path, headers))
        cookies = dict(part.strip().split("=", 1) for part in headers.get("cookie", "").split(";") if "=" in part)
        if url.path == "/oauth2/auth":  # oauth2-proxy's auth endpoint
            session = cookies.get(COOKIE, "")
            if session.startswith("valid-"):
                user = session[len("valid-"):]
                return self._answer(202, [("X-Auth-Request-User", user),
                                          ("X-Auth-Request-Email", f"{user}@example.test"),
                                          ("Set-Cookie", f"{COOKIE}={session}; Path=/; HttpOnly")])
            return self._answer(401, [("WWW-Authenticate", 'Bearer realm="oauth2"')], b"unauthorized")
        if url.path == "/oauth2/start":  # sign in: the cookie, then back to rd
            rd = parse_qs(url.query).get("rd", ["/"])[0]
            return self._answer(302, [("Location", rd), ("Set-Cookie", f"{COOKIE}=valid-alice; Path=/")])
        if url.path.startswith("/status/"):
            status = int(url.path.split("/")[2])
            return self._answer(status, [("WWW-Authenticate", 'Basic realm="svc"'), ("Set-Cookie", "seen=1")])
        if url.path == "/slow":
            server.release.wait(30)  # bounded: the test releases it
            return self._answer(200)
        if url.path == "/token":  # a cacheable check: good tokens pass
            good = headers.get("authorization", "").startswith("Bearer good")
            return self._answer(200 if good else 401,
                                [("X-Auth-Request-User", headers.get("authorization", "")[7:])] if good else [])
        if url.path == "/hop":  # an answer trying to set hop-by-hop headers
            return self._answer(200, [("Connection", "X-Auth-Request-Email, Keep-Alive"), ("Keep-Alive", "timeout=1"),
                                      ("Upgrade", "h2c"), ("Proxy-Connection", "keep-alive"),
                                      ("X-Auth-Request-User", "hop"), ("X-Auth-Request-Email", "hidden@x")])
        if url.path == "/bare":  # 200 and no user headers at all
            return self._answer(200)
        return self._answer(200)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _handle


class AuthService:
    """An oauth2-proxy-like auth service on 127.0.0.1, recording what it receives."""

    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _AuthHandler)
        self.server.daemon_threads = True
        self.server.received = []
        self.server.lock = threading.Lock()
        self.server.release = threading.Event()
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    @property
    def received(self):
        with self.server.lock:
            return list(self.server.received)

    def calls(self, path: str) -> list:
        return [item for item in self.received if urlsplit(item[1]).path == path]

    def stop(self):
        self.server.release.set()
        self.server.shutdown()
        self.server.server_close()


class Browser:
    """A browser-like client: follows redirects (at most 10), keeps cookies; every host is
    reached at ingressd's port."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}

    def get(self, url: str):
        visited = []
        for _ in range(10):
            parts = urlsplit(url)
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                headers = {"Host": parts.hostname}
                if self.cookies:
                    headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
                conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), headers=headers)
                response = conn.getresponse()
                body = response.read()
                for value in response.headers.get_all("Set-Cookie") or []:
                    name, _, rest = value.partition("=")
                    self.cookies[name.strip()] = rest.split(";", 1)[0]
                visited.append((response.status, url))
                if response.status in (301, 302, 303, 307, 308):
                    url = response.headers["Location"]
                    continue
                return response.status, dict((k.lower(), v) for k, v in response.getheaders()), body, visited
            finally:
                conn.close()
        raise AssertionError(f"too many redirects: {visited}")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-ext-auth")
    manifests = root / "manifests"
    manifests.mkdir()
    web, auth = Backend("web"), AuthService()
    auth_url = f"http://127.0.0.1:{auth.port}"
    refused = free_port()  # nothing listens there

    def guarded(name, host, annotations, path="/"):
        return ingress(name, [(host, [(path, "Prefix", "web", 80)])], annotations=annotations)

    objects = [
        INGRESS_CLASS, *service("web", [("http", 80, web.port)]), *service("oauth2", [("http", 80, auth.port)]),
        # oauth2-proxy as its documentation deploys it: the app guarded, /oauth2 served by the proxy itself
        guarded("app", "app.test", {
            N + "auth-url": f"{auth_url}/oauth2/auth",
            N + "auth-signin": "http://$host/oauth2/start",
            N + "auth-response-headers": "X-Auth-Request-User, X-Auth-Request-Email"}),
        ingress("oauth2", [("app.test", [("/oauth2", "Prefix", "oauth2", 80)])]),
        guarded("param", "param.test", {N + "auth-url": f"{auth_url}/oauth2/auth",
                                        N + "auth-signin": "https://sso.test/start",
                                        N + "auth-signin-redirect-param": "orig"}),
        guarded("nosignin", "nosignin.test", {N + "auth-url": f"{auth_url}/oauth2/auth"}),
        guarded("refused", "refused.test", {N + "auth-url": f"http://127.0.0.1:{refused}/"}),
        guarded("slow", "slow.test", {N + "auth-url": f"{auth_url}/slow"}),
        guarded("cached", "cached.test", {N + "auth-url": f"{auth_url}/token",
                                          N + "auth-cache-key": "$http_authorization",
                                          N + "auth-response-headers": "X-Auth-Request-User"}),
        guarded("method", "method.test", {N + "auth-url": f"{auth_url}/bare", N + "auth-method": "POST",
                                          N + "auth-request-redirect": "http://method.test/back"}),
        guarded("vars", "vars.test", {N + "auth-url": f"{auth_url}/bare?u=$escaped_request_uri&h=$http_x_probe"}),
        guarded("bare", "bare.test", {N + "auth-url": f"{auth_url}/bare",
                                      N + "auth-response-headers": "X-Auth-Request-User"}),
        guarded("hop", "hop.test", {N + "auth-url": f"{auth_url}/hop",
                                    N + "auth-response-headers": "X-Auth-Request-User, X-Auth-Request-Email"}),
        guarded("invalid", "invalid.test", {N + "auth-url": "ftp://127.0.0.1/"}),
        # satisfy: any (test/e2e/annotations/satisfy.go): basic auth or external auth
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "users", "namespace": "default"},
         "type": "Opaque", "data": {"auth": base64.b64encode(HTPASSWD.encode()).decode()}},
        guarded("any", "any.test", {N + "auth-type": "basic", N + "auth-secret": "users",
                                    N + "auth-url": f"{auth_url}/oauth2/auth", N + "auth-signin": "http://$host/auth/start",
                                    N + "satisfy": "any"}),
        guarded("listed", "listed.test", {N + "allowlist-source-range": "127.0.0.1/32",
                                          N + "auth-url": f"{auth_url}/status/401", N + "satisfy": "any"}),
        guarded("all", "all.test", {N + "allowlist-source-range": "127.0.0.1/32",
                                    N + "auth-url": f"{auth_url}/status/401"}),
        ingress("plain", [("plain.test", [("/", "Prefix", "web", 80)])]),
    ]
    for status in (200, 204, 401, 403, 404, 302, 500, 503):
        objects.append(guarded(f"s{status}", f"s{status}.test", {N + "auth-url": f"{auth_url}/status/{status}"}))
    write_manifests(manifests / "all.yaml", objects)
    proc = Ingressd(manifests, extra_args=["--proxy-read-timeout", "2"])
    yield proc, web, auth
    proc.stop()
    web.stop()
    auth.stop()


def _backend_headers(response) -> dict:
    return dict(response.json()["headers"])


def test_the_oauth2_proxy_flow_with_a_browser(world):
    proc, web, auth = world
    browser = Browser(proc.http_port)
    status, headers, body, visited = browser.get("http://app.test/private?x=1&y=a%20b")
    assert status == 200, visited
    assert [code for code, _ in visited] == [302, 302, 200]
    # 1. no cookie: 401 from /oauth2/auth → 302 to the sign-in with rd = the original URL, escaped
    assert visited[1][1] == "http://app.test/oauth2/start?rd=http://app.test%2Fprivate%3Fx%3D1%26y%3Da%2520b"
    # 2. the sign-in set the session cookie and sent the browser back
    assert visited[2][1] == "http://app.test/private?x=1&y=a%20b"
    assert browser.cookies[COOKIE] == "valid-alice"
    # 3. the backend got the user from the auth answer; the auth answer's cookie reached the browser
    echoed = json.loads(body)
    sent = dict(echoed["headers"])
    assert sent["x-auth-request-user"] == "alice" and sent["x-auth-request-email"] == "alice@example.test"
    assert echoed["path"] == "/private?x=1&y=a%20b"
    assert f"{COOKIE}=valid-alice; Path=/; HttpOnly" in headers.get("set-cookie", "")
    # what the auth service was told, on the last check
    method, path, told = auth.calls("/oauth2/auth")[-1]
    assert (method, path) == ("GET", "/oauth2/auth")
    assert told["host"] == "127.0.0.1" and told["x-original-url"] == "http://app.test/private?x=1&y=a%20b"
    assert told["x-original-method"] == "GET" and told["x-sent-from"] == "nginx-ingress-controller"
    assert told["x-real-ip"] == told["x-forwarded-for"] == "127.0.0.1"
    assert told["x-auth-request-redirect"] == "/private?x=1&y=a%20b" and told["x-forwarded-host"] == "app.test"
    assert "content-length" not in told and "x-forwarded-proto" not in told
    assert told["x-request-id"] == sent["x-request-id"]  # the same request


def test_sign_in_redirect_parameter_and_401_without_sign_in(world):
    proc, web, _ = world
    before = len(web.requests)
    answer = proc.get("/?a=b&c=d", host="param.test")
    assert answer.status == 302
    assert answer.headers["location"] == "https://sso.test/start?orig=http://param.test%2F%3Fa%3Db%26c%3Dd"
    answer = proc.get("/", host="nosignin.test")
    assert answer.status == 401 and answer.headers["www-authenticate"] == 'Bearer realm="oauth2"'
    assert b"401 Authorization Required" in answer.body
    assert len(web.requests) == before


@pytest.mark.parametrize("status, expected", [(200, 200), (204, 200), (401, 401), (403, 403), (404, 500),
                                              (302, 500), (500, 500), (503, 500)])
def test_every_auth_answer_is_mapped(world, status, expected):
    proc, web, _ = world
    before = len(web.requests)
    answer = proc.get("/x", host=f"s{status}.test")
    assert answer.status == expected, answer
    assert len(web.requests) - before == (1 if expected == 200 else 0)  # never the backend otherwise
    if expected == 401:
        assert answer.all("www-authenticate") == ['Basic realm="svc"']
    if expected != 200:
        assert answer.all("set-cookie") == []  # only with auth-always-set-cookie


def test_a_refused_or_slow_auth_service_is_500_and_holds_up_nobody_else(world):
    proc, web, auth = world
    before = len(web.requests)
    assert proc.get("/", host="refused.test").status == 500
    outcome = []
    slow = threading.Thread(target=lambda: outcome.append(proc.get("/", host="slow.test", timeout=30)))
    slow.start()
    try:
        deadline = time.monotonic() + 15
        while not auth.calls("/slow") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert auth.calls("/slow")
        assert proc.get("/", host="plain.test").status == 200  # served while the slow check is held
    finally:
        slow.join(30)
    assert outcome and outcome[0].status == 500  # --proxy-read-timeout 2: a timeout, never the backend
    assert len(web.requests) - before == 1  # only plain.test's
    auth.server.release.set()


def test_answers_are_cached_per_key(world):
    proc, web, auth = world
    calls = lambda: len(auth.calls("/token"))  # noqa: E731
    start = calls()
    for _ in range(3):
        answer = proc.get("/", host="cached.test", headers={"Authorization": "Bearer good-1"})
        assert answer.status == 200 and _backend_headers(answer)["x-auth-request-user"] == "good-1"
    assert calls() == start + 1  # asked once for this key
    answer = proc.get("/", host="cached.test", headers={"Authorization": "Bearer good-2"})
    assert answer.status == 200 and _backend_headers(answer)["x-auth-request-user"] == "good-2"
    assert calls() == start + 2  # another key: asked, never the other user's answer
    for _ in range(2):
        assert proc.get("/", host="cached.test", headers={"Authorization": "Bearer bad"}).status == 401
    assert calls() == start + 3  # 401 cached too (200 202 401 5m)


def test_auth_method_and_request_redirect(world):
    proc, _, auth = world
    assert proc.get("/p?q=1", host="method.test", method="POST", body=b"secret").status == 200
    method, path, told = auth.calls("/bare")[-1]
    assert method == "POST" and told["x-original-method"] == "POST" and told["x-original-uri"] == "/p?q=1"
    assert told["x-auth-request-redirect"] == "http://method.test/back"
    assert told.get("content-length") in (None, "0")  # never the request's body


def test_a_client_cannot_fool_the_auth_service_or_the_backend(world):
    proc, _, auth = world
    forged = {"X-Original-URL": "http://admin.test/", "X-Original-Method": "GET", "X-Sent-From": "me",
              "X-Auth-Request-User": "root", "X-Auth-Request-Email": "root@x", "X-Forwarded-Host": "evil.test",
              "X-Auth-Request-Redirect": "http://evil.test/", "Cookie": f"{COOKIE}=valid-bob"}
    answer = proc.get("/mine", host="app.test", headers=forged)
    assert answer.status == 200
    sent = _backend_headers(answer)
    assert sent["x-auth-request-user"] == "bob" and sent["x-auth-request-email"] == "bob@example.test"
    _, _, told = auth.calls("/oauth2/auth")[-1]
    assert told["x-original-url"] == "http://app.test/mine" and told["x-sent-from"] == "nginx-ingress-controller"
    assert told["x-forwarded-host"] == "app.test" and told["x-auth-request-redirect"] == "/mine"
    # an auth answer without the listed header: the client's copy never reaches the backend
    answer = proc.get("/", host="bare.test", headers={"X-Auth-Request-User": "root"})
    assert answer.status == 200 and "x-auth-request-user" not in _backend_headers(answer)


def test_variables_are_substituted_as_data(world):
    proc, _, auth = world
    assert proc.get("/a%20b?c=d", host="vars.test", headers={"X-Probe": "x y\tz"}).status == 200
    _, path, _ = auth.calls("/bare")[-1]
    assert path == "/bare?u=%2Fa%2520b%3Fc%3Dd&h=x%20y%09z"


def test_an_auth_answers_hop_by_hop_headers_go_nowhere(world):
    proc, _, _ = world
    answer = proc.get("/", host="hop.test")
    assert answer.status == 200
    sent = _backend_headers(answer)
    assert sent["x-auth-request-user"] == "hop"
    for name in ("keep-alive", "upgrade", "proxy-connection"):
        assert name not in sent and name not in answer.headers
    assert "h2c" not in str(answer.header_list)


def test_an_invalid_auth_url_rejects_only_its_ingress(world):
    proc, _, _ = world
    assert proc.get("/", host="invalid.test").status == 404
    assert any("invalid" in line and "auth-url" in line and "http:// or https://" in line
               for line in proc.log().splitlines())
    assert proc.get("/", host="plain.test").status == 200


def test_satisfy_any_with_basic_external_auth_and_an_allow_list(world):
    proc, web, auth = world
    answer = proc.get("/", host="any.test", headers=CREDENTIALS)
    assert answer.status == 200 and "authorization" not in _backend_headers(answer)  # basic auth's pass
    answer = proc.get("/?a=b&c=d", host="any.test")
    assert answer.status == 302  # both refuse: the sign-in redirect, as ingress-nginx's e2e test
    assert answer.headers["location"] == "http://any.test/auth/start?rd=http://any.test%2F%3Fa%3Db%26c%3Dd"
    assert proc.get("/", host="listed.test").status == 200  # 127.0.0.1 is listed: enough with any
    assert proc.get("/", host="all.test").status == 401  # satisfy all (the default): both needed


def test_global_auth_url_guards_every_route_that_does_not_opt_out(tmp_path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    web, auth = Backend("web"), AuthService()
    try:
        write_manifests(manifests / "all.yaml", [
            INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
            ingress("guarded", [("guarded.test", [("/", "Prefix", "web", 80)])]),
            ingress("out", [("out.test", [("/", "Prefix", "web", 80)])], annotations={N + "enable-global-auth": "false"}),
            ingress("own", [("own.test", [("/", "Prefix", "web", 80)])],
                    annotations={N + "auth-url": f"http://127.0.0.1:{auth.port}/status/403"}),
            ingress("acme", [("guarded.test", [("/.well-known/acme-challenge/t", "Prefix", "web", 80)])]),
        ])
        proc = Ingressd(manifests, extra_args=[
            "--global-auth-url", f"http://127.0.0.1:{auth.port}/oauth2/auth",
            "--global-auth-signin", "https://sso.test/start",
            "--global-auth-response-headers", "X-Auth-Request-User"])
        try:
            answer = proc.get("/x", host="guarded.test")
            assert answer.status == 302 and answer.headers["location"] == "https://sso.test/start?rd=http://guarded.test%2Fx"
            answer = proc.get("/x", host="guarded.test", headers={"Cookie": f"{COOKIE}=valid-carol"})
            assert answer.status == 200 and _backend_headers(answer)["x-auth-request-user"] == "carol"
            assert proc.get("/", host="out.test").status == 200  # opted out
            assert proc.get("/", host="own.test").status == 403  # its own auth-url, not the global one
            assert proc.get("/.well-known/acme-challenge/t", host="guarded.test").status == 200
        finally:
            proc.stop()
        bad = Ingressd(manifests, extra_args=["--global-auth-url", "gopher://x/"], wait=False)
        try:
            deadline = time.monotonic() + 20
            while bad.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert bad.process.poll() not in (None, 0)  # a bad value stops the server at start
        finally:
            bad.stop()
    finally:
        web.stop()
        auth.stop()


def test_external_auth_over_http2(world):
    """An HTTP/2 client (curl over TLS, ALPN h2) goes through the same check: the sign-in
    redirect without the session cookie, the backend with the user once signed in."""
    import shutil
    import subprocess

    proc, _, _ = world
    curl = shutil.which("curl")
    if curl is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("curl is missing: .ci/run installs it")
        pytest.skip("curl is not installed")
    port = proc.https_port

    def get(*extra):
        result = subprocess.run(
            [curl, "-sS", "-k", "--http2", "--max-time", "30", "--resolve", f"app.test:{port}:127.0.0.1",
             "-D", "-", *extra, f"https://app.test:{port}/h2?x=1"], capture_output=True, timeout=40)
        assert result.returncode == 0, result.stderr
        return result.stdout.decode("latin-1")

    redirect = get()
    assert redirect.startswith("HTTP/2 302")
    # rd: $pass_access_scheme://$http_host$escaped_request_uri (the :authority, with its port)
    assert f"location: http://app.test/oauth2/start?rd=https://app.test:{port}%2Fh2%3Fx%3D1\r\n" in redirect
    signed_in = get("-H", f"Cookie: {COOKIE}=valid-dave")
    assert signed_in.startswith("HTTP/2 200")
    assert '["x-auth-request-user", "dave"]' in signed_in
