"""End to end: the real ``twistd ingressd`` on loopback, real backends, real clients."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import ssl
import threading
import time

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, free_port, ingress, service, write_manifests
from rawclient import rss_kib

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    manifests = root / "manifests"
    manifests.mkdir()
    web, api = Backend("web"), Backend("api")
    dead_port = free_port()
    objects = [
        INGRESS_CLASS,
        *service("web", [("http", 80, web.port)]),
        *service("api", [("", 8000, api.port)]),
        *service("down", [("http", 80, web.port)], ready=False),
        *service("refused", [("http", 80, dead_port)]),
        *service("half", [("http", 80, dead_port)], endpoints=None),
        ingress("main", [
            ("example.com", [("/", "Prefix", "web", "http"), ("/api", "Prefix", "api", 8000),
                             ("/exact", "Exact", "api", 8000)]),
            ("*.wild.com", [("/", "Prefix", "api", 8000)]),
            ("down.com", [("/", "Prefix", "down", 80)]),
            ("refused.com", [("/", "Prefix", "refused", 80)]),
        ]),
    ]
    # A service with one dead and one live endpoint, for retries.
    objects.append({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "mixed", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80}]},
    })
    for index, port in enumerate((dead_port, web.port)):
        objects.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"mixed-{index}", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "mixed"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": port}],
            "endpoints": [{"addresses": ["127.0.0.1"]}],
        })
    objects.append(ingress("retry", [("retry.com", [("/", "Prefix", "mixed", "http")])]))
    objects.append({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "external", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "localhost", "ports": [{"name": "http", "port": api.port}]},
    })
    objects.append(ingress("external", [("ext.com", [("/", "Prefix", "external", "http")])]))
    objects.append(ingress("uploads", [("upload.com", [("/", "Prefix", "api", 8000)])],
                           annotations={"nginx.ingress.kubernetes.io/proxy-body-size": "20m"}))
    write_manifests(manifests / "main.yaml", objects)
    proc = Ingressd(manifests, ["--proxy-read-timeout", "2", "--proxy-body-size", "64k"])
    yield proc, web, api, manifests
    proc.stop()
    web.stop()
    api.stop()


def test_routes_by_host_and_path(world):
    proc, *_ = world
    assert proc.get("/").json()["backend"] == "web"
    answer = proc.get("/api/v1?x=1&y=%2F").json()
    assert (answer["backend"], answer["path"]) == ("api", "/api/v1?x=1&y=%2F")
    assert proc.get("/apix").json()["backend"] == "web"
    assert proc.get("/exact").json()["backend"] == "api"
    assert proc.get("/exact/").json()["backend"] == "web"
    assert proc.get("/", host="a.wild.com").json()["backend"] == "api"
    assert proc.get("/", host="EXAMPLE.com:8080").json()["backend"] == "web"


def test_unmatched_is_404_with_a_date_and_no_server_header(world):
    proc, *_ = world
    for host in ("nope.com", "a.b.wild.com", "wild.com"):
        response = proc.get("/", host=host)
        assert response.status == 404
        assert "server" not in response.headers and response.headers["date"]  # as ingress-nginx


# What ingress-nginx's test/e2e/settings/forwarded_headers.go sends.
FORWARDED = {"X-Forwarded-Port": "1234", "X-Forwarded-Proto": "myproto", "X-Forwarded-Scheme": "myproto",
             "X-Forwarded-For": "1.2.3.4", "X-Forwarded-Host": "myhost", "X-Real-IP": "6.6.6.6"}


@pytest.fixture(scope="module")
def trusting(world, tmp_path_factory):
    """A second ingressd on the same manifests that trusts 127.0.0.1 as a proxy."""
    manifests = world[3]
    proc = Ingressd(manifests, ["--trusted-proxies", "127.0.0.1/32"],
                    log_path=tmp_path_factory.mktemp("trusting") / "ingressd.log")
    yield proc
    proc.stop()


def test_forwarded_headers(world):
    """forwarded_headers.go, use-forwarded-headers false: ingressd's values, and the
    client's own X-Forwarded-For / -Host as X-Original-Forwarded-For / -Host."""
    proc, *_ = world
    response = proc.get("/api/h", headers=FORWARDED)
    names = [name for name, _ in response.json()["headers"]]
    assert len(names) == len(set(names))  # each set once, the client's own never passed on
    headers = dict(response.json()["headers"])
    assert headers["host"] == "example.com"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == headers["x-forwarded-scheme"] == headers["x-scheme"] == "http"
    assert headers["x-forwarded-host"] == "example.com"
    assert headers["x-forwarded-port"] == str(proc.http_port)
    assert headers["x-original-forwarded-for"] == "1.2.3.4"
    assert headers["x-original-forwarded-host"] == "myhost"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
    given = proc.get("/api/h", headers={"X-Request-ID": "abc-123"}).json()["headers"]
    assert dict(given)["x-request-id"] == "abc-123"
    plain = dict(proc.get("/api/h").json()["headers"])
    assert "x-original-forwarded-for" not in plain and "x-original-forwarded-host" not in plain


def test_forwarded_headers_over_https(world):
    """lua_ingress.lua: the HTTPS listener's port is passed on as 443, whatever it is."""
    proc, *_ = world
    conn = http.client.HTTPSConnection("127.0.0.1", proc.https_port, timeout=10,
                                       context=ssl._create_unverified_context())
    try:
        conn.request("GET", "/api/h", headers={"Host": "example.com"})
        headers = dict(json.loads(conn.getresponse().read())["headers"])
    finally:
        conn.close()
    assert headers["x-forwarded-port"] == "443"
    assert headers["x-forwarded-proto"] == headers["x-forwarded-scheme"] == headers["x-scheme"] == "https"


def test_forwarded_headers_from_a_trusted_proxy(trusting):
    """forwarded_headers.go, use-forwarded-headers true: the proxy's values are passed on,
    whatever they are (``myproto``); the first X-Forwarded-Host is the Host."""
    headers = dict(trusting.get("/api/h", headers=FORWARDED).json()["headers"])
    assert headers["host"] == "myhost" and headers["x-forwarded-host"] == "myhost"
    assert headers["x-forwarded-proto"] == headers["x-forwarded-scheme"] == headers["x-scheme"] == "myproto"
    assert headers["x-forwarded-port"] == "1234"
    assert headers["x-forwarded-for"] == headers["x-real-ip"] == "1.2.3.4"
    assert headers["x-original-forwarded-for"] == "1.2.3.4"
    assert headers["x-original-forwarded-host"] == "myhost"
    first = dict(trusting.get("/api/h", headers={
        "X-Forwarded-Host": "myhost.com, another.host,example.net"}).json()["headers"])
    assert first["host"] == "myhost.com" and first["x-forwarded-host"] == "myhost.com"
    assert first["x-original-forwarded-host"] == "myhost.com, another.host,example.net"
    # Routing is by the request's own Host, as nginx's server_name.
    assert trusting.get("/api/h", host="nope.com", headers={"X-Forwarded-Host": "example.com"}).status == 404


def test_connection_listed_headers_cannot_strip_ours(world):
    proc, *_ = world
    response = proc.get("/api/h", headers={"Connection": "X-Forwarded-For, X-Real-IP, X-Custom", "X-Custom": "1"})
    headers = dict(response.json()["headers"])
    assert headers["x-forwarded-for"] == "127.0.0.1" and headers["x-real-ip"] == "127.0.0.1"
    assert "x-custom" not in headers and "connection" not in headers


def test_hop_by_hop_removed_and_repeated_headers_kept(world):
    proc, *_ = world
    conn = proc.connection()
    conn.putrequest("GET", "/api/hop", skip_host=True)
    for name, value in [("Host", "example.com"), ("X-Multi", "one"), ("X-Multi", "two"), ("TE", "trailers"),
                        ("Keep-Alive", "timeout=3"), ("Proxy-Connection", "keep-alive"), ("Upgrade", "h2c"),
                        ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"), ("Connection", "keep-alive")]:
        conn.putheader(name, value)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    import json
    sent = json.loads(body)["headers"]
    names = [k for k, _ in sent]
    assert [v for k, v in sent if k == "x-multi"] == ["one", "two"]
    for hop in ("te", "keep-alive", "proxy-connection", "upgrade", "http2-settings"):
        assert hop not in names, hop
    received = [(k.lower(), v) for k, v in response.getheaders()]
    assert [v for k, v in received if k == "set-cookie"] == ["a=1", "b=2"]
    received_names = [k for k, _ in received]
    assert "keep-alive" not in received_names and "x-secret-hop" not in received_names
    assert ("content-length", str(len(body))) in received
    assert "transfer-encoding" not in received_names
    conn.close()


def test_chunked_backend_response_and_head(world):
    proc, *_ = world
    assert proc.get("/chunked").body == b"hello chunked world"
    head = proc.get("/", method="HEAD")
    assert head.status == 200 and head.body == b"" and int(head.headers["content-length"]) > 0


def test_keepalive_reuses_client_connection(world):
    proc, web, *_ = world
    conn = proc.connection()
    sockets = set()
    for index in range(20):
        conn.request("GET", f"/k{index}", headers={"Host": "example.com"})
        response = conn.getresponse()
        assert response.status == 200
        response.read()
        sockets.add(id(conn.sock))
    assert len(sockets) == 1
    conn.close()


def test_keepalive_survives_answers_ingressd_gives_itself(world):
    """A 404 (no route) is answered while the request is being parsed; the connection stays
    open for the next request, as nginx keeps it."""
    proc, *_ = world
    conn = proc.connection()
    statuses = []
    for host in ("no-such-host.test", "example.com", "no-such-host.test", "example.com"):
        conn.request("GET", "/k", headers={"Host": host})
        response = conn.getresponse()
        response.read()
        statuses.append((response.status, response.getheader("connection"), id(conn.sock)))
    assert [status for status, _, _ in statuses] == [404, 200, 404, 200]
    assert {close for _, close, _ in statuses} == {None} and len({sock for _, _, sock in statuses}) == 1
    conn.request("GET", "/%zz", headers={"Host": "example.com"})  # bad percent-encoding: 400
    response = conn.getresponse()
    response.read()
    assert response.status == 400 and response.getheader("connection") == "close"  # as nginx closes it
    conn.close()


def test_request_bodies_streamed_plain_and_chunked(world):
    proc, *_ = world
    body = os.urandom(40000)
    response = proc.get("/api/upload", method="POST", body=body, headers={"Content-Type": "application/octet-stream"})
    assert response.json()["body_length"] == 40000
    conn = proc.connection()
    conn.putrequest("POST", "/api/chunked-upload", skip_host=True)
    conn.putheader("Host", "example.com")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for piece in (b"abc", b"defgh", b""):
        conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    result = conn.getresponse()
    import json
    assert json.loads(result.read())["body"] == "abcdefgh"
    conn.close()


def test_body_over_limit_is_413(world):
    proc, *_ = world
    response = proc.get("/api/upload", method="POST", body=b"x" * 70000)
    assert response.status == 413


def test_expect_continue(world):
    proc, *_ = world
    with socket.create_connection(("127.0.0.1", proc.http_port), timeout=5) as sock:
        sock.sendall(b"POST /api/e HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"hello")
        data = b""
        while b'"body_length": 5' not in data:
            piece = sock.recv(65536)
            assert piece
            data += piece
    big = proc.raw(b"POST /api/e HTTP/1.1\r\nHost: example.com\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n")
    assert big.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in big


def test_backend_errors_map_to_502_503_504(world):
    proc, *_ = world
    assert proc.get("/", host="down.com").status == 503
    assert proc.get("/", host="refused.com").status == 502
    proc_api = world[2]
    asked = sum(1 for _, path, _, _ in list(proc_api.requests) if path == "/api/slow?delay=3")
    assert proc.get("/api/slow?delay=3", timeout=30).status == 504
    # a read timeout is retried (proxy-next-upstream's default "error timeout", 3 tries): the
    # Service's one endpoint is asked three times, as nginx's round-robin does
    assert sum(1 for _, path, _, _ in list(proc_api.requests) if path == "/api/slow?delay=3") - asked == 3
    assert proc.get("/api/ok").status == 200


def test_idempotent_request_retried_on_another_endpoint(world):
    proc, *_ = world
    for _ in range(6):
        response = proc.get("/x", host="retry.com")
        assert response.status == 200, response
    assert proc.get("/x", host="retry.com", method="POST", body=b"1").status in (200, 502)


def test_backend_reset_mid_response_closes_client(world):
    proc, *_ = world
    conn = proc.connection()
    conn.request("GET", "/close-mid", headers={"Host": "example.com"})
    response = conn.getresponse()
    assert response.status == 200
    with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
        response.read()
    conn.close()
    assert proc.get("/").status == 200


def test_normalised_path_routes_and_reaches_backend(world):
    proc, *_ = world
    response = proc.get("/public/../api/x?q=1")
    assert response.json()["backend"] == "api"
    assert response.json()["path"] == "/api/x?q=1"
    assert proc.get("/%2e%2e/api").status == 400
    assert proc.get("/a%00b").status == 400


def test_malformed_requests_4xx_and_close(world):
    proc, *_ = world
    smuggle = proc.raw(b"POST /api HTTP/1.1\r\nHost: example.com\r\nContent-Length: 6\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert smuggle.startswith(b"HTTP/1.1 400 ") and smuggle.count(b"HTTP/1.1") == 1
    assert proc.raw(b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 414 ")
    assert proc.raw(b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 40000 + b"\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert proc.get("/").status == 200


def test_pipelined_requests_answered_in_order(world):
    proc, *_ = world
    data = proc.raw(b"".join(b"GET /api/p%d HTTP/1.1\r\nHost: example.com\r\n\r\n" % i for i in range(5))
                    + b"GET /api/last HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
    order = [int(m) for m in re.findall(rb'"path": "/api/p(\d)"', data)]
    assert order == [0, 1, 2, 3, 4] and data.rstrip().endswith(b"}")


def test_slow_client_does_not_make_ingressd_buffer(world):
    proc, *_ = world
    before = rss_kib(proc.process.pid)
    size = 200 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", proc.http_port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /big?n=%d HTTP/1.1\r\nHost: example.com\r\n\r\n" % size)
        time.sleep(3)  # do not read (longer than --proxy-read-timeout): backpressure stops the backend
        peak = rss_kib(proc.process.pid)
        received = 0
        while received < size:
            piece = sock.recv(1 << 20)
            assert piece
            received += len(piece)
    assert peak - before < 32 * 1024, (before, peak)


def test_reload_under_load_fails_nothing(world):
    proc, web, api, manifests = world
    errors: list = []
    done = threading.Event()
    counts = [0]

    def hammer():
        conn = proc.connection()
        conn.request("GET", "/api/warm", headers={"Host": "example.com"})
        conn.getresponse().read()
        first = conn.sock
        while not done.is_set():
            try:
                conn.request("GET", "/api/x", headers={"Host": "example.com"})
                response = conn.getresponse()
                response.read()
                if response.status != 200 or conn.sock is not first:
                    errors.append((response.status, conn.sock is first))
                counts[0] += 1
            except Exception as exc:  # noqa: BLE001 - every failure counts
                errors.append(repr(exc))
                return
        conn.close()

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    extra = manifests / "extra.yaml"
    for index in range(8):
        write_manifests(extra, [ingress(f"extra{index}", [(f"extra{index}.com", [("/", "Prefix", "web", "http")])])])
        deadline = time.monotonic() + 5
        while proc.get("/", host=f"extra{index}.com").status != 200:
            assert time.monotonic() < deadline, "a change was not live within 5 s"
            time.sleep(0.05)
    done.set()
    for thread in threads:
        thread.join(10)
    extra.unlink()
    assert not errors, errors[:5]
    assert counts[0] > 50


def test_change_is_live_within_two_seconds_and_bad_files_keep_last_good(world):
    proc, web, api, manifests = world
    path = manifests / "late.yaml"
    write_manifests(path, [ingress("late", [("late.com", [("/", "Prefix", "api", 8000)])])])
    started = time.monotonic()
    while proc.get("/", host="late.com").status != 200:
        assert time.monotonic() - started < 2.0
        time.sleep(0.05)
    path.write_text("this: is: not: yaml: [")
    time.sleep(1.5)
    assert proc.get("/", host="late.com").status == 200  # last good content kept
    assert "cannot be read, keeping its last good content" in proc.log()
    write_manifests(path, [
        ingress("late", [("late.com", [("/", "Prefix", "api", 8000)])]),
        ingress("broken", [("broken.com", [("/", "Prefix", "api", 9999)])]),
    ])
    time.sleep(1.5)
    assert proc.get("/", host="late.com").status == 200
    assert proc.get("/", host="broken.com").status == 404
    assert "Ingress default/broken" in proc.log() and "has no port 9999" in proc.log()
    path.unlink()
    deadline = time.monotonic() + 3
    while proc.get("/", host="late.com").status != 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_large_upload_is_streamed_whole(world):
    """A 5 MB upload (far more than is held while the backend connection opens) arrives
    whole, three times on one route."""
    proc, *_ = world
    body = os.urandom(5 * 1024 * 1024)
    for _ in range(3):
        response = proc.get("/up", host="upload.com", method="POST", body=body, timeout=20)
        assert response.status == 200 and response.json()["body_length"] == len(body)


def test_external_name_service_is_proxied_to_the_external_name(world):
    proc, *_ = world
    response = proc.get("/via-dns", host="ext.com")
    assert response.status == 200 and response.json()["backend"] == "api"
    assert dict(response.json()["headers"])["host"] == "ext.com"


def test_runs_on_ingressds_reactor(world):
    """twistd ingressd installs ingressd.reactor (Twisted's epoll reactor dispatching
    without a log context per event) when no --reactor was given."""
    proc = world[0]
    assert "reactor class: ingressd.reactor.DirectDispatchEPollReactor" in proc.log()
