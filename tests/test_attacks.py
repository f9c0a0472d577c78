"""Attacks against the real ``twistd ingressd``: each must be refused or neutralised.

One ingressd process (and one set of echo backends) serves the whole module; a second
one, started with ``--trusted-proxies``, serves the forwarded-header tests that need it,
and a third, started under a low open-file limit, holds 10,000 idle connections. Every
test names the advisory it re-enacts and asserts on what the backends actually saw.
References: /work/shared/reference/ingress-nginx-annotations.md §3; docs/security.md.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import resource
import socket
import struct
import threading
import time
from urllib.parse import unquote

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests
from rawclient import exchange, open_fds, parse_responses, rss_kib

pytestmark = pytest.mark.slow

A = "nginx.ingress.kubernetes.io/"
PASSWORD = "s3cret-pass"
CREDENTIALS = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
HTPASSWD = "admin:{SHA}" + base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode() + "\n"


def secret(name: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default"},
            "type": "Opaque", "stringData": data}


class UpgradeAlways:
    """A broken backend: answers every request with 101 and then records raw bytes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.heads: list[bytes] = []
        self.after: list[bytes] = []
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        conn.settimeout(3)
        with conn:
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    piece = conn.recv(4096)
                    if not piece:
                        return
                    data += piece
                head, _, rest = data.partition(b"\r\n\r\n")
                self.heads.append(head)
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
                if rest:
                    self.after.append(rest)
                while True:
                    piece = conn.recv(4096)
                    if not piece:
                        return
                    self.after.append(piece)
            except OSError:
                return

    def stop(self):
        self._stop = True
        self.sock.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("attacks")
    manifests = root / "manifests"
    manifests.mkdir()
    backends = {name: Backend(name) for name in ("public", "admin", "admin2", "errpage", "smuggle", "rate")}
    upgrader = UpgradeAlways()
    auth = {A + "auth-type": "basic", A + "auth-secret": "htpasswd", A + "auth-realm": "admin"}
    objects = [
        INGRESS_CLASS,
        secret("htpasswd", auth=HTPASSWD),
        *[obj for name, b in backends.items() for obj in service(name, [("http", 80, b.port)])],
        *service("upgrader", [("http", 80, upgrader.port)]),
        ingress("open", [(host, [("/", "Prefix", "public", 80)])
                         for host in ("auth.test", "allow.test", "err.test")]),
        ingress("guarded-auth", [("auth.test", [("/admin", "Prefix", "admin", 80)])], annotations=auth),
        ingress("guarded-allow", [("allow.test", [("/admin", "Prefix", "admin2", 80)])],
                annotations={A + "whitelist-source-range": "10.0.0.0/8"}),
        ingress("guarded-err", [("err.test", [("/admin", "Prefix", "admin", 80)])],
                annotations={**auth, A + "custom-http-errors": "401,403", A + "default-backend": "errpage"}),
        ingress("missing-secret", [("missing.test", [("/", "Prefix", "admin", 80)])],
                annotations={**auth, A + "auth-secret": "no-such-secret"}),
        ingress("smuggle", [("smuggle.test", [("/", "Prefix", "smuggle", 80)])]),
        ingress("rate", [("rate.test", [("/", "Prefix", "rate", 80)])], annotations={A + "limit-rps": "1"}),
        ingress("upgrade", [("upgrade.test", [("/", "Prefix", "upgrader", 80)])]),
    ]
    write_manifests(manifests / "main.yaml", objects)
    proc = Ingressd(manifests, ["--client-header-timeout", "2", "--client-body-timeout", "2",
                                "--proxy-body-size", "64k", "--proxy-read-timeout", "5"])
    yield proc, backends, upgrader, manifests
    proc.stop()
    upgrader.stop()
    for backend in backends.values():
        backend.stop()
    text = proc.log_path.read_text(errors="replace")
    assert "Traceback" not in text, text


def request(host: str, target: str = "/", method: str = "GET", extra: str = "", body: bytes = b"") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{extra}"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"Connection: close\r\n\r\n" + body


# -- path normalisation: one view for the router, the plugins and the backend ---------------

ATTACK_PATHS = [
    "/admin", "/admin/", "/admin/x", "/public/../admin", "/public/%2e%2e/admin", "/public/%2E%2E/admin",
    "/public/..%2fadmin", "/public/.%2e/admin", "/%2e%2e/admin", "/public/%2e%2e/%2e%2e/admin",
    "/admin%2F", "/admin%2fx", "//admin", "///admin/", "/./admin", "/%2e/admin", "/admin;x", "/admin;/x",
    "/admin%3bx", "/admin%00", "/ad%00min", "/admin%23", "/admin%3F", "/admin#frag", "/admin?q=/../x",
    "/ADMIN", "/Admin/x", "/%41dmin", "/%61dmin", "\\admin", "/public\\..\\admin", "/public/..%5cadmin",
    "/admin%5c", "/%C0%AE%C0%AE/admin", "/public/%252e%252e/admin", "/admin%20", "/admin%09",
    "/admin/.", "/admin/x/..", "/public/./../admin", "/public/x/../../admin", "http://auth.test/admin",
    "/admin%ZZ", "/public/%2e%2e%2fadmin",
]


def _backend_view(path_and_query: str) -> str:
    """How a decoding backend reads a path: percent-decoded once, dot-segments and '//' resolved."""
    path = path_and_query.split("?", 1)[0]
    decoded = unquote(path, errors="replace").replace("\\", "/")
    resolved = posixpath.normpath("/" + decoded.lstrip("/")) if decoded else "/"
    return resolved.lower()


@pytest.mark.parametrize("host, denied", [("auth.test", 401), ("allow.test", 403)])
def test_path_normalisation_split_views_never_reach_the_protected_backend(world, host, denied):
    """Traefik CVE-2025-32431 / CVE-2025-66490, Envoy CVE-2019-9901 / CVE-2021-29492: a
    path written so that the router and the backend disagree must not reach /admin's
    backend without its protection (basic auth on auth.test, a 10.0.0.0/8 allowlist on
    allow.test). Expected: 400 (unroutable), the protection's own answer, or the open
    backend, which then receives a path that no decoding backend reads as /admin."""
    proc, backends, *_ = world
    protected = backends["admin" if host == "auth.test" else "admin2"]
    public = backends["public"]
    before = len(protected.requests)
    for path in ATTACK_PATHS:
        seen = len(public.requests)
        reply = exchange(proc.http_port, request(host, path))
        [response] = reply.responses
        assert reply.closed
        if response.status == 200:
            assert len(public.requests) == seen + 1, path
            forwarded = public.requests[-1][1]
            view = _backend_view(forwarded)
            assert view != "/admin" and not view.startswith("/admin/"), (path, forwarded)
        else:
            assert response.status in (400, 404, denied), (path, response)
        assert len(protected.requests) == before, (path, protected.requests[before:])


def test_the_authenticated_backend_gets_the_path_that_was_routed(world):
    """Split view, positive side: with valid credentials, a non-canonical spelling of /admin
    is forwarded in its normalised form, so the backend sees what the router and the auth
    check saw (Envoy CVE-2019-9901)."""
    proc, backends, *_ = world
    admin = backends["admin"]
    auth = "Authorization: " + CREDENTIALS["Authorization"] + "\r\n"
    for path, expected in [("/public/../admin", "/admin"), ("//admin//x", "/admin/x"),
                           ("/public/%2e%2e/admin/", "/admin/"), ("/./admin?a=%2F..", "/admin?a=%2F.."),
                           ("/admin%2Fx", "/admin%2Fx"), ("/admin/x/../y", "/admin/y")]:
        before = len(admin.requests)
        reply = exchange(proc.http_port, request("auth.test", path, extra=auth))
        assert reply.statuses == [200], (path, reply.data[:300])
        assert len(admin.requests) == before + 1
        assert admin.requests[-1][1] == expected, path


# -- request smuggling ------------------------------------------------------------------------

SMUGGLING = {
    "CL+TE": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    "TE+CL": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
    "two CLs": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc",
    "same CL twice": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "CL list": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 3, 3\r\n\r\nabc",
    "CL plus sign": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: +3\r\n\r\nabc",
    "CL underscore": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 1_0\r\n\r\nabc",
    "CL huge": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 99999999999999999999999\r\n\r\nabc",
    "TE chunked,": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n",
    "TE xchunked": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "TE chunked, identity": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "TE gzip, chunked": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "TE twice": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
    "TE vertical tab": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n",
    "TE space before colon": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "TE tab before colon": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n",
    "TE in HTTP/1.0": b"POST / HTTP/1.0\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "TE obs-fold": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: smuggle.test\r\nX-A: a\r\n b\r\n\r\n",
    "space before colon": b"GET / HTTP/1.1\r\nHost : smuggle.test\r\n\r\n",
    "bare LF": b"GET / HTTP/1.1\nHost: smuggle.test\n\n",
    "bare LF in head": b"GET / HTTP/1.1\r\nHost: smuggle.test\nX-A: b\r\n\r\n",
    "bare CR": b"GET / HTTP/1.1\r\nHost: smuggle.test\rX-A: b\r\n\r\n",
    "chunk size overflow": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nx\r\n0\r\n\r\n",
    "chunk size invalid": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nx\r\n0\r\n\r\n",
    "chunk size 0x": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
    "chunk size negative": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
    "chunk LF only": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
    "chunk too long": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
    "NUL in value": b"GET / HTTP/1.1\r\nHost: smuggle.test\r\nX-A: a\x00b\r\n\r\n",
    "CR in value": b"GET / HTTP/1.1\r\nHost: smuggle.test\r\nX-A: a\rb\r\n\r\n",
    "DEL in value": b"GET / HTTP/1.1\r\nHost: smuggle.test\r\nX-A: a\x7fb\r\n\r\n",
    "NUL in name": b"GET / HTTP/1.1\r\nHost: smuggle.test\r\nX\x00A: b\r\n\r\n",
    "two Hosts": b"GET / HTTP/1.1\r\nHost: smuggle.test\r\nHost: auth.test\r\n\r\n",
    "no Host": b"GET / HTTP/1.1\r\n\r\n",
    "HTTP/1.2": b"GET / HTTP/1.2\r\nHost: smuggle.test\r\n\r\n",
    "HTTP/2.0 on HTTP/1": b"GET / HTTP/2.0\r\nHost: smuggle.test\r\n\r\n",
    "HTTP/0.9": b"GET /\r\n\r\n",
    "h2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "lower-case method": b"get / HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
    "space in target": b"GET /a b HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
    "control char in target": b"GET /a\x01 HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
    "upgrade with body": b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 5\r\n\r\nhello",
}


@pytest.mark.parametrize("name", list(SMUGGLING))
def test_smuggling_framing_is_refused_with_400_and_close(world, name):
    """Request smuggling (CL.TE/TE.CL desync; tinyproxy#609/#616 TE variants; sozu#726):
    every ambiguous framing, obs-fold, space before a colon, bare LF/CR, bad chunk size and
    control byte gets 400 (505 for an HTTP version other than 1.x) and the connection is
    closed; the backend sees nothing. A prefix of a valid chunked body may reach the backend
    before the bad chunk is seen, but that request is then aborted, never completed."""
    proc, backends, *_ = world
    backend = backends["smuggle"]
    before = len(backend.requests)
    reply = exchange(proc.http_port, SMUGGLING[name])
    assert reply.closed, reply
    statuses = reply.statuses
    assert statuses in ([400], [505], []), (name, reply.data[:300])
    if name != "h2 preface":
        assert statuses, (name, reply.data[:300])
    time.sleep(0.05)
    assert backend.requests[before:] == [], name


def test_only_the_legitimate_request_before_a_smuggled_one_is_served(world):
    """Desync after a valid request (CL.TE): the first request is answered, the malformed
    second one gets 400 and the close, and the bytes it hid never reach the backend."""
    proc, backends, *_ = world
    backend = backends["smuggle"]
    before = len(backend.requests)
    stream = (b"GET /first HTTP/1.1\r\nHost: smuggle.test\r\n\r\n"
              b"POST /second HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: smuggle.test\r\n\r\n")
    reply = exchange(proc.http_port, stream)
    assert reply.statuses == [200, 400] and reply.closed
    assert [r[1] for r in backend.requests[before:]] == ["/first"]


def test_chunked_trailers_never_become_request_headers(world):
    """Trailer injection: fields in a chunked body's trailer section arrive after the head was
    checked (auth, allowlists, forwarded headers). They must never be merged into the
    headers sent to the backend."""
    proc, backends, *_ = world
    reply = exchange(proc.http_port, b"POST /t HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer-Injected: 1\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n")
    assert reply.statuses == [200]
    seen = _seen_headers(reply.responses[0])
    assert "x-trailer-injected" not in seen and seen["x-forwarded-for"] == "127.0.0.1"


def test_pipelined_requests_are_answered_in_order(world):
    """Pipelining (RFC 9112 §9.3.2): five requests in one write, including a POST with a body
    and a slow one, come back in order, each from the backend that matches it."""
    proc, backends, *_ = world
    stream = b"".join([
        b"GET /slow?delay=0.3 HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
        b"POST /p HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /x HTTP/1.1\r\nHost: auth.test\r\n\r\n",
        b"HEAD /h HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
        b"GET /last HTTP/1.1\r\nHost: smuggle.test\r\nConnection: close\r\n\r\n",
    ])
    reply = exchange(proc.http_port, stream)
    import json
    responses, _ = parse_responses(reply.data, no_body={3})
    assert [r.status for r in responses] == [200] * 5
    paths = [json.loads(r.body)["path"] for i, r in enumerate(responses) if i != 3]
    assert paths == ["/slow?delay=0.3", "/p", "/x", "/last"]
    assert json.loads(responses[2].body)["backend"] == "public"


# -- upgrades ---------------------------------------------------------------------------------

H2C = (b"GET /h2c HTTP/1.1\r\nHost: smuggle.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
       b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")


def test_h2c_upgrade_is_never_forwarded(world):
    """Traefik GHSA-w4v4-9rw7-5326: forwarding ``Upgrade: h2c`` + ``HTTP2-Settings`` let a
    client open a raw HTTP/2 tunnel to the backend past every middleware. Expected: the
    request is proxied as plain HTTP/1.1 without Upgrade, HTTP2-Settings or the Connection
    tokens, and the bytes after it are parsed as HTTP/1.1, never tunnelled."""
    import json

    proc, backends, *_ = world
    backend = backends["smuggle"]
    before = len(backend.requests)
    reply = exchange(proc.http_port, H2C + b"GET /second HTTP/1.1\r\nHost: smuggle.test\r\nConnection: close\r\n\r\n")
    assert reply.statuses == [200, 200]
    seen = json.loads(reply.responses[0].body)
    names = {name for name, _ in seen["headers"]}
    assert not names & {"upgrade", "http2-settings", "connection"} - {"connection"}
    assert dict(seen["headers"]).get("connection", "").lower() in ("", "keep-alive")
    assert [r[1] for r in backend.requests[before:]] == ["/h2c", "/second"]


def test_h2c_prior_knowledge_preface_is_refused(world):
    """HTTP/2 prior knowledge on the HTTP/1.1 port (the h2c smuggling variant): the
    connection preface is not an HTTP/1.1 request, so it is refused and nothing is proxied."""
    proc, backends, *_ = world
    before = len(backends["smuggle"].requests)
    reply = exchange(proc.http_port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    assert reply.closed and reply.statuses in ([], [400], [505])
    assert backends["smuggle"].requests[before:] == []


def test_a_backend_101_to_a_non_websocket_upgrade_is_not_tunnelled(world):
    """Traefik GHSA-w4v4-9rw7-5326, backend side: even if a backend answers 101 to an h2c
    (or any non-WebSocket) upgrade, ingressd answers 502 and never splices the connections;
    the client's following bytes never reach the backend raw."""
    proc, _, upgrader, _ = world
    before_after = len(upgrader.after)
    reply = exchange(proc.http_port, [H2C.replace(b"smuggle.test", b"upgrade.test"),
                                      b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nRAW-BYTES"], pause=0.3)
    assert reply.statuses[0] == 502 and reply.statuses[1:] in ([], [400], [505]), reply.data[:300]
    assert not any(b"RAW-BYTES" in piece for piece in upgrader.after[before_after:])
    assert upgrader.heads and b"upgrade:" not in upgrader.heads[-1].lower()


def test_websocket_upgrade_refused_by_backend_does_not_smuggle_the_next_request(world):
    """WebSocket smuggling (0ang3el's websocket-smuggling): a client sends an upgrade the
    backend refuses (200, no 101), followed by a request for a protected path. ingressd
    must not keep a raw tunnel nor parse the following bytes as a new request on its own
    authority: the protected backend sees nothing and the connection closes."""
    proc, backends, *_ = world
    admin = backends["admin"]
    before = len(admin.requests)
    reply = exchange(proc.http_port, [
        b"GET /ws HTTP/1.1\r\nHost: smuggle.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        b"GET /admin HTTP/1.1\r\nHost: auth.test\r\n\r\n"], pause=0.2)
    assert reply.closed
    assert reply.statuses == [200]
    assert admin.requests[before:] == []


# -- header spoofing --------------------------------------------------------------------------


def _seen_headers(response) -> dict:
    import json

    return {name: value for name, value in json.loads(response.body)["headers"]}


def test_connection_header_cannot_strip_headers_ingressd_sets(world):
    """Traefik CVE-2024-45410 / CVE-2021-32813: a client lists X-Forwarded-For, X-Real-IP,
    X-Request-ID, X-Forwarded-Proto and Host in ``Connection`` to have them stripped after
    the proxy sets them. Expected: every one reaches the backend with ingressd's value."""
    proc, *_ = world
    response = proc.get("/", host="smuggle.test", headers={
        "Connection": "keep-alive, X-Forwarded-For, X-Real-IP, X-Request-ID, X-Forwarded-Proto, "
                      "X-Forwarded-Host, X-Forwarded-Port, Host"})
    assert response.status == 200
    seen = _seen_headers(response)
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-real-ip"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == "smuggle.test"
    assert seen["host"] == "smuggle.test"
    assert len(seen["x-request-id"]) == 32


def test_forwarding_headers_from_an_untrusted_client_are_replaced(world):
    """XFF spoofing (ingress-nginx#1000, #9502; traefik#3646): without --trusted-proxies,
    client-sent X-Forwarded-*, X-Real-IP, Forwarded and X-Original-* never reach the
    backend; ingressd's own values replace them."""
    proc, *_ = world
    response = proc.get("/", host="smuggle.test", headers={
        "X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3", "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.test", "X-Forwarded-Port": "1", "X-Forwarded-Prefix": "/evil",
        "X-Forwarded-Server": "evil", "Forwarded": "for=10.1.2.3;proto=https", "X-Original-URL": "/admin",
        "X-Original-URI": "/admin", "X-Original-Forwarded-For": "10.1.2.3", "X-Rewrite-URL": "/admin"})
    seen = _seen_headers(response)
    assert seen["x-forwarded-for"] == "127.0.0.1" and seen["x-real-ip"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http" and seen["x-forwarded-host"] == "smuggle.test"
    assert seen["x-forwarded-port"] == str(proc.http_port)
    # As ingress-nginx: the client's X-Forwarded-For/-Host, under a name that says so.
    assert seen["x-original-forwarded-for"] == "10.1.2.3" and seen["x-original-forwarded-host"] == "evil.test"
    for name in ("x-forwarded-prefix", "x-forwarded-server", "forwarded", "x-original-url", "x-original-uri",
                 "x-rewrite-url"):
        assert name not in seen, name


def test_allowlist_and_rate_limit_key_on_the_real_peer(world):
    """XFF spoofing against access control (ingress-nginx#1309): a spoofed X-Forwarded-For in
    the allowlisted range does not pass a 10.0.0.0/8 allowlist, and rotating it does not
    escape a per-client rate limit (limit-rps 1, burst 5: at most 6 of 20 at once pass)."""
    proc, backends, *_ = world
    before = len(backends["admin2"].requests)  # the world is shared: other tests reach admin2 too
    for spoof in ("10.1.2.3", "10.0.0.1, 10.0.0.2"):
        response = proc.get("/admin", host="allow.test", headers={"X-Forwarded-For": spoof, "X-Real-IP": "10.1.2.3"})
        assert response.status == 403
    assert backends["admin2"].requests[before:] == []
    statuses = [proc.get("/", host="rate.test", headers={"X-Forwarded-For": f"10.9.{i}.1"}).status for i in range(20)]
    assert statuses.count(200) <= 6 and statuses.count(503) >= 14, statuses


def test_authorization_never_reaches_the_backend_after_basic_auth(world):
    """After basic auth succeeds, the credentials are removed before proxying (reference §3.3,
    header spoofing row): the backend never sees ``Authorization``. Two Authorization
    headers are refused (401), so a second one cannot ride along."""
    proc, backends, *_ = world
    response = proc.get("/admin", host="auth.test", headers={**CREDENTIALS, "Connection": "keep-alive"})
    assert response.status == 200
    assert "authorization" not in _seen_headers(response)
    before = len(backends["admin"].requests)
    doubled = exchange(proc.http_port, request("auth.test", "/admin", extra=(
        "Authorization: " + CREDENTIALS["Authorization"] + "\r\nAuthorization: Basic Zm9vOmJhcg==\r\n")))
    assert doubled.statuses == [401]
    assert len(backends["admin"].requests) == before


@pytest.fixture(scope="module")
def trusted(world, tmp_path_factory):
    _, _, _, manifests = world
    proc = Ingressd(manifests, ["--trusted-proxies", "127.0.0.1/32", "--client-header-timeout", "5"],
                    log_path=tmp_path_factory.mktemp("trusted") / "ingressd.log")
    yield proc
    proc.stop()
    text = proc.log_path.read_text(errors="replace")
    assert "Traceback" not in text, text


def test_with_trusted_proxies_the_rightmost_untrusted_hop_is_the_client(world, trusted):
    """XFF behind a trusted load balancer (ingress-nginx#9502): the client is the rightmost
    X-Forwarded-For entry that is not a trusted proxy. Addresses a client prepends cannot
    pass the allowlist; an unparsable hop never becomes the client address (nor crashes
    the request); the allowlist and the backend agree on who the client is."""
    _, backends, *_ = world
    ok = trusted.get("/admin", host="allow.test", headers={"X-Forwarded-For": "10.1.2.3"})
    assert ok.status == 200 and _seen_headers(ok)["x-real-ip"] == "10.1.2.3"
    for chain in ("10.1.2.3, 203.0.113.7", "10.1.2.3, not-an-ip", "10.1.2.3, 10.0.0.9:80"):
        assert trusted.get("/admin", host="allow.test", headers={"X-Forwarded-For": chain}).status == 403, chain
    reply = exchange(trusted.http_port, b"GET / HTTP/1.1\r\nHost: smuggle.test\r\nX-Forwarded-For: \xe9t\xe9\r\n"
                                        b"Connection: close\r\n\r\n")
    assert reply.statuses == [200]
    seen = {name: value for name, value in __import__("json").loads(reply.responses[0].body)["headers"]}
    assert seen["x-real-ip"] == "127.0.0.1"
    # rate limit: the leftmost entries rotate, the real client does not
    statuses = [trusted.get("/", host="rate.test", headers={"X-Forwarded-For": f"10.9.{i}.1, 198.51.100.4"}).status
                for i in range(20)]
    assert statuses.count(200) <= 6, statuses


# -- auth bypass ------------------------------------------------------------------------------


def test_error_backend_answering_200_cannot_turn_a_401_into_content(world):
    """ingress-nginx CVE-2026-24513: with custom-http-errors 401 and an error backend that
    answers 200 to everything, a request without credentials must still get 401, with the
    error page's body, and the protected backend is never asked."""
    proc, backends, *_ = world
    before = len(backends["admin"].requests)
    for path in ("/admin", "/admin/secret", "//admin"):
        response = proc.get(path, host="err.test")
        assert response.status == 401, (path, response)
        assert b'"backend": "errpage"' in response.body  # the error page, served as a 401
        assert response.headers.get("www-authenticate") == 'Basic realm="admin"'
    assert len(backends["admin"].requests) == before
    assert len(backends["errpage"].requests) >= 3


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH", "TRACE",
                                    "PROPFIND", "FOO", "get", "CONNECT"])
def test_every_method_is_authenticated(world, method):
    """Auth bypass by method (reference §3.3 auth row): HEAD, OPTIONS (including a CORS-looking
    preflight), WebDAV and unknown or lower-case methods never reach the protected backend
    without credentials: 401, or 400 for what the parser refuses."""
    proc, backends, *_ = world
    before = len(backends["admin"].requests)
    extra = "Origin: https://evil.test\r\nAccess-Control-Request-Method: GET\r\n" if method == "OPTIONS" else ""
    target = "auth.test:80" if method == "CONNECT" else "/admin"
    reply = exchange(proc.http_port, request("auth.test", target, method=method, extra=extra,
                                             body=b"x" if method in ("POST", "PUT", "PATCH") else b""))
    status = int(reply.data.split(b" ")[1])
    assert status in (400, 401, 405), reply.data[:200]
    assert len(backends["admin"].requests) == before


def test_missing_auth_secret_fails_closed(world):
    """Fail closed (CVE-2020-8553 class: auth config that silently disappears): an Ingress
    whose auth-secret does not exist answers 503 to every request and method, with or
    without credentials; its backend is never asked."""
    proc, backends, *_ = world
    before = len(backends["admin"].requests)
    for method in ("GET", "HEAD", "POST", "OPTIONS"):
        response = proc.get("/", host="missing.test", method=method, headers=CREDENTIALS)
        assert response.status == 503, (method, response)
    assert len(backends["admin"].requests) == before


# -- annotation injection (IngressNightmare-style) --------------------------------------------

INJECTIONS = {
    "auth-realm": ['x"\r\nX-Injected: 1', 'admin"; return 200 "pwned"; #', "admin${IFS}", "{admin}",
                   "a" * (1024 * 1024)],
    "cors-allow-origin": ["https://(a+)+$", "https://" + "a" * 5000 + "!", "https://a.test\nhttps://b.test",
                          "https://a.test; return 200 \"x\"; #"],
    "cors-allow-methods": ['GET; return 200 "x"; #', "GET\r\nX-A: b"],
    "cors-allow-headers": ["X-A\r\nX-B: c", "X-A; more_set_headers"],
    "cors-expose-headers": ["${jndi:ldap://x}"],
    "whitelist-source-range": ["10.0.0.0/8; allow all", "10.0.0.0/8\r\n0.0.0.0/0", "((((((((((1"],
    "limit-rps": ['1; return 200 "x"', "1e9", "9" * 5000],
    "proxy-body-size": ['1m; return 200 "x"', "-1"],
    "proxy-read-timeout": ["60s;", "-1"],
    "custom-http-errors": ["401${x}", "401,200"],
    "auth-secret": ["../../etc/passwd", "kube-system/admin-token", "/proc/self/fd/3", "a b"],
    "default-backend": ["svc;#", "../x"],
    "auth-type": ['basic"; #'],
    "enable-cors": ["true\nadd_header X 1"],
}


def _injection_ingresses():
    objects = []
    for name, values in INJECTIONS.items():
        for index, value in enumerate(values):
            annotations = {A + name: value}
            if name.startswith("cors-"):
                annotations[A + "enable-cors"] = "true"
            if name.startswith("auth-") and name != "auth-type":
                annotations.setdefault(A + "auth-type", "basic")
                annotations.setdefault(A + "auth-secret", "htpasswd")
            host = f"inj-{name}-{index}.test"
            objects.append(ingress(f"inj-{name}-{index}", [(host, [("/", "Prefix", "smuggle", 80)])],
                                   annotations=annotations))
    # nginx snippets: read as data; one outside the subset keeps the whole Ingress unserved
    objects.append(ingress("snippet", [("snippet.test", [("/", "Prefix", "smuggle", 80)])],
                           annotations={A + "configuration-snippet": 'return 200 "pwned";',
                                        A + "server-snippet": "ssl_engine /proc/self/fd/3;"}))
    # injection through the path and host fields (CVE-2021-25745, CVE-2026-24512)
    for index, path in enumerate(["/x;return 200", "/x\nreturn 200", "/x{y}", "/x/../admin", "/x//y"]):
        objects.append(ingress(f"inj-path-{index}", [(f"inj-path-{index}.test", [(path, "Prefix", "smuggle", 80)])]))
    return objects


def test_annotation_injection_rejects_only_the_offending_ingress(world):
    """IngressNightmare (CVE-2025-1974 and its companions CVE-2025-24514, -1097, -1098), the
    ingress-nginx injection history (CVE-2021-25745, CVE-2023-5043, CVE-2025-15566,
    CVE-2026-24512, CVE-2026-1580, CVE-2026-3288): values with CR/LF, quotes, braces, nginx
    directives, ``${}``, 1 MB, path traversal, cross-namespace references and catastrophic
    regex patterns. ingressd renders no configuration language, but every such value must
    reject its own Ingress only, with a log line naming the annotation; a snippet outside the
    subset ingressd reads as data rejects its Ingress, naming the directive and its line;
    every other Ingress keeps serving throughout."""
    proc, backends, _, manifests = world
    write_manifests(manifests / "inject.yaml", _injection_ingresses())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "inj-path-4" not in proc.log():
        assert proc.get("/admin", host="auth.test", headers=CREDENTIALS).status == 200
        time.sleep(0.2)
    time.sleep(0.5)
    log = proc.log()
    for name, values in INJECTIONS.items():
        for index in range(len(values)):
            host = f"inj-{name}-{index}.test"
            lines = [line for line in log.splitlines() if f"default/inj-{name}-{index}:" in line]
            assert any("rejected" in line and f"annotation {A}{name}:" in line for line in lines), (name, index, lines)
            assert proc.get("/", host=host).status == 404, host
    for index in range(5):
        assert proc.get("/", host=f"inj-path-{index}.test").status == 404
        assert f"inj-path-{index}" in log
    snippet = proc.get("/", host="snippet.test")  # snippets that could decide the answer: not served
    assert snippet.status == 404 and b"pwned" not in snippet.body
    line = next(line for line in log.splitlines() if "default/snippet:" in line)
    assert "rejected" in line and "configuration-snippet" not in line  # return 200 "…" is in the subset
    assert "server-snippet is not honoured: line 1: directive ssl_engine is not supported" in line
    assert len(max(log.splitlines(), key=len)) < 20000  # the 1 MB value is not echoed into the log
    assert proc.get("/", host="smuggle.test").status == 200
    assert proc.get("/admin", host="auth.test").status == 401


HOSTILE_VALUES = [
    "(a+)+$", "(a|a)*b", "^(([a-z])+.)+[A-Z]([a-z])+$", "(x+x+)+y", "(.*a){20}", "a" * 4096, "a" * 4000 + "!",
    "-" * 4000 + "!", "." * 4000, "," * 4000, "1" * 4000, "a." * 2000 + "!", "https://" + "a-" * 1990 + "!",
    "https://*." + "a." * 1990 + "!", "10." * 1300, "${jndi:ldap://127.0.0.1/a}", '"; return 200 "x"; #',
    "\u202e\u0000", "\ud7ff" * 100, "x" * 5000,
]


def test_every_annotation_parser_is_total_and_bounded():
    """ReDoS and parser crashes (reference §3.3 ReDoS row): every annotation any installed
    plugin declares is fed values built to backtrack catastrophically or to break parsers.
    Each must return a value or raise AnnotationError/ValueError (rejecting its Ingress),
    and the whole run must finish (a hang guard, not a speed assertion)."""
    from ingressd.features import check_plain_text
    from ingressd.plugin_manager import load_plugins

    annotations = load_plugins().annotations
    assert annotations
    outcomes: list = []

    def run():
        for annotation in annotations:
            for value in HOSTILE_VALUES:
                try:
                    check_plain_text(value)
                    annotation.parse(value)
                    outcomes.append((annotation.name, "accepted"))
                except (ValueError, TypeError):
                    outcomes.append((annotation.name, "rejected"))
                except Exception as exc:  # pragma: no cover - the failure we look for
                    outcomes.append((annotation.name, f"crashed: {exc!r}"))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), f"an annotation parser hangs (last: {outcomes[-1:]})"
    crashed = [o for o in outcomes if o[1].startswith("crashed")]
    assert not crashed, crashed
    assert len(outcomes) == len(annotations) * len(HOSTILE_VALUES)


# -- resource exhaustion ----------------------------------------------------------------------


def test_slowloris_headers_get_408_at_the_header_timeout(world):
    """Slowloris: a head trickled one byte at a time (every 0.5 s, against a 2 s
    --client-header-timeout) gets 408 and the close once the timeout passes, even though
    bytes keep arriving: the header timeout is for the whole head, not between reads."""
    proc, *_ = world
    with socket.create_connection(("127.0.0.1", proc.http_port), timeout=10) as sock:
        head = b"GET / HTTP/1.1\r\nHost: smuggle.test\r\nX-Slow: " + b"a" * 40
        got = b""
        sock.settimeout(0.5)
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                piece = sock.recv(4096)
                got += piece
                if not piece or got:
                    break
            except socket.timeout:
                continue
        sock.settimeout(5)
        try:
            while True:
                piece = sock.recv(4096)
                if not piece:
                    break
                got += piece
        except (socket.timeout, ConnectionResetError):
            pass
    assert got.startswith(b"HTTP/1.1 408 "), got[:100]


def test_slow_body_gets_408_at_the_body_timeout(world):
    """Slow body (R.U.D.Y.): a body that stops arriving gets 408 after
    --client-body-timeout (2 s, measured between reads as nginx's client_body_timeout is),
    the backend request is abandoned, and the connection closes."""
    proc, backends, *_ = world
    before = len(backends["smuggle"].requests)
    reply = exchange(proc.http_port, [b"POST /upload HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 1000\r\n\r\n",
                                      b"a", b"b", b"c"], pause=0.5, timeout=8)
    assert reply.statuses == [408] and reply.closed
    time.sleep(0.2)
    assert backends["smuggle"].requests[before:] == []


def test_too_many_headers_get_431(world):
    """Header flooding: more than 100 header fields gets 431, a header line longer than one of
    large-client-header-buffers' buffers (8k) nginx's 400 (Request Header Or Cookie Too Large),
    and the close; nothing is proxied."""
    proc, backends, *_ = world
    before = len(backends["smuggle"].requests)
    many = "".join(f"X-{i}: {i}\r\n" for i in range(500))
    assert exchange(proc.http_port, request("smuggle.test", extra=many)).statuses == [431]
    big = "X-Big: " + "a" * 70000 + "\r\n"
    reply = exchange(proc.http_port, request("smuggle.test", extra=big))
    assert reply.statuses == [400] and reply.closed
    assert backends["smuggle"].requests[before:] == []


def test_body_over_the_limit_gets_413_without_reading_it_all(world):
    """Body size cap enforced before buffering: with --proxy-body-size 64k, a Content-Length of
    10 MB is answered 413 from the head alone; a chunked body of unknown length gets 413 as
    soon as it passes the cap, long before the 10 MB the client means to send."""
    proc, backends, *_ = world
    before = len(backends["smuggle"].requests)
    reply = exchange(proc.http_port, b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 10485760\r\n\r\n"
                     + b"a" * 1000)
    assert reply.statuses == [413] and reply.closed
    with socket.create_connection(("127.0.0.1", proc.http_port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (16384, b"b" * 16384)
        sent = 0
        got = b""
        sock.settimeout(0.05)
        while sent < 10 * 1024 * 1024:
            try:
                sock.sendall(chunk)
                sent += 16384
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                got += sock.recv(65536)
                if got:
                    break
            except socket.timeout:
                pass
        sock.settimeout(5)
        try:
            while not got.endswith(b"</html>\r\n"):
                piece = sock.recv(65536)
                if not piece:
                    break
                got += piece
        except (socket.timeout, ConnectionResetError):
            pass
    assert got.startswith(b"HTTP/1.1 413 "), got[:100]
    assert sent < 10 * 1024 * 1024
    time.sleep(0.2)
    assert backends["smuggle"].requests[before:] == []


def test_a_client_that_never_reads_cannot_grow_ingressd_memory(world):
    """Slow read (the response-side slowloris): four clients ask for 200 MB each and never
    read. Backpressure must stop ingressd reading from the backend, so its resident memory
    stays bounded (well under the 800 MB asked for) while it keeps serving others."""
    proc, *_ = world
    pid = proc.process.pid
    start = rss_kib(pid)
    socks = []
    try:
        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", proc.http_port), timeout=5)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /big?n=200000000 HTTP/1.1\r\nHost: smuggle.test\r\n\r\n")
            socks.append(sock)
        peak = start
        for _ in range(20):
            time.sleep(0.25)
            peak = max(peak, rss_kib(pid))
        assert proc.get("/", host="smuggle.test").status == 200
    finally:
        for sock in socks:
            sock.close()
    assert peak - start < 64 * 1024, (start, peak)


@pytest.fixture
def low_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield soft, hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_ten_thousand_idle_connections_do_not_stop_service(world, tmp_path_factory, low_nofile):
    """Connection exhaustion (reference §3.3 resource row): ingressd started with the common
    default soft limit of 1024 open files must raise its own limit, hold 10,000 idle client
    connections (each has sent one byte of a request line) and still answer a normal
    request while they are open; its memory per idle connection stays small."""
    _, _, _, manifests = world
    soft, hard = low_nofile
    if hard != resource.RLIM_INFINITY and hard < 10_500:
        pytest.skip(f"the hard open-file limit ({hard}) is below what the test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, soft), hard))
    try:
        proc = Ingressd(manifests, ["--client-header-timeout", "120"],
                        log_path=tmp_path_factory.mktemp("idle") / "ingressd.log")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
    socks = []
    try:
        pid = proc.process.pid
        time.sleep(0.5)  # the readiness probe's connection is closed by now
        base_fds = open_fds(pid)
        rss_before = rss_kib(pid)
        linger = struct.pack("ii", 1, 0)  # close with RST: 10,000 TIME_WAITs would outlive the test
        overall = time.monotonic() + 120
        for batch in range(100):
            # 100 at a time, each batch accepted before the next: never more than the
            # listen backlog (511) waits in the kernel, whatever else loads the machine.
            assert time.monotonic() < overall, f"only {open_fds(pid) - base_fds} connections accepted"
            for _ in range(100):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                sock.settimeout(10)
                sock.connect(("127.0.0.1", proc.http_port))
                # One byte of a request line: if a burst overflowed the kernel's accept queue
                # and the handshake completed by SYN cookie, this makes the server side exist.
                sock.send(b"G")
                socks.append(sock)
            deadline = time.monotonic() + 10  # let ingressd accept the batch (the kernel queue is finite)
            while time.monotonic() < deadline and open_fds(pid) < base_fds + len(socks) - 5:
                time.sleep(0.05)
        assert open_fds(pid) >= base_fds + 10_000 - 5, (base_fds, open_fds(pid))  # 5: fds ingressd may close
        response = proc.get("/", host="smuggle.test", timeout=20)
        assert response.status == 200
        rss_growth = rss_kib(pid) - rss_before
        assert rss_growth < 512 * 1024, rss_growth  # about 10 KiB per idle connection is the budget
    finally:
        for sock in socks:
            sock.close()
        proc.stop()
    assert "Traceback" not in proc.log_path.read_text(errors="replace")
