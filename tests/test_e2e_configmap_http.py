"""The ingress-nginx ConfigMap's client-side HTTP keys end to end, live, through ``twistd ingressd``
in file mode: enable-underscores-in-headers (curl and a raw socket), server-tokens with
allow-backend-server-header, keep-alive-requests, large-client-header-buffers, use-http2 (ALPN)
and max-worker-connections changed in the ConfigMap while a keep-alive connection opened before the
change stays open and gets the new behaviour; a bad value refused with the previous one kept; and
in cluster mode, the ConfigMap changed through the (fake) API server."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, wait_for, write_manifests
from test_e2e_configmap import configmap

pytestmark = pytest.mark.slow
CM = "ingress-nginx/ingress-nginx-controller"


def objects(web, data):
    return [INGRESS_CLASS, *service("web", [("http", 80, web.port)]), configmap(data),
            ingress("app", [("app.test", [("/", "Prefix", "web", 80)])])]


def ask(conn, path, headers=()):
    """A request on ``conn`` (kept alive): (status, response headers as (lower name, value))."""
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", "app.test")
    for name, value in headers:
        conn.putheader(name, value)
    conn.endheaders()
    response = conn.getresponse()
    response.read()
    return response.status, [(name.lower(), value) for name, value in response.getheaders()]


def forwarded(web, path):
    """The header names the backend got with the request for ``path`` (lower case)."""
    for _, target, headers, _ in reversed(web.requests):
        if target == path:
            return {name.lower(): value for name, value in headers}
    raise AssertionError(f"{path} never reached the backend")


def curl(proc, path, *args):
    done = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                           "-H", "Host: app.test", *args, f"http://127.0.0.1:{proc.http_port}{path}"],
                          capture_output=True, text=True, timeout=30)
    return done.stdout


def alpn(proc) -> str | None:
    """The protocol a TLS client offering h2 and http/1.1 gets (use-http2)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", proc.https_port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname="app.test") as tls:
            return tls.selected_alpn_protocol()


def raw_close(proc, head: bytes) -> bytes:
    return proc.raw(head + b"Connection: close\r\n\r\n")


def test_the_client_side_keys_apply_live_on_a_connection_opened_before(tmp_path):
    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", objects(web, {}))
    proc = Ingressd(manifests, ["--nginx-configmap", CM, "--access-log", "off"])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=10)
        # ingress-nginx's defaults: an underscored name is dropped, no Server header at all
        status, headers = ask(conn, "/before", [("X_Tenant", "a"), ("X-Kept", "b")])
        assert status == 200 and "server" not in dict(headers)
        seen = forwarded(web, "/before")
        assert "x_tenant" not in seen and seen["x-kept"] == "b"
        assert curl(proc, "/curl-default", "-H", "X_Tenant: a") == "200" and "x_tenant" not in forwarded(web, "/curl-default")
        # a raw socket: Content_Length frames nothing (dropped), so the bytes after the head are the next request
        answer = proc.raw(b"POST /raw HTTP/1.1\r\nHost: app.test\r\nContent_Length: 44\r\nX_Raw: 1\r\n\r\n"
                          b"GET /raw-second HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        assert answer.count(b"HTTP/1.1 200 ") == 2
        assert "x_raw" not in forwarded(web, "/raw") and "content_length" not in forwarded(web, "/raw")
        local = conn.sock.getsockname()
        assert alpn(proc) == "h2"
        big_line = b"GET /h HTTP/1.1\r\nHost: app.test\r\nX-Big: " + b"b" * 1100 + b"\r\n"
        assert raw_close(proc, big_line).startswith(b"HTTP/1.1 200 ")  # within 4 8k

        write_manifests(manifests / "all.yaml", objects(web, {
            "enable-underscores-in-headers": "true", "server-tokens": "true", "allow-backend-server-header": "true",
            "keep-alive-requests": "3", "large-client-header-buffers": "2 1k", "use-http2": "false"}))
        wait_for(lambda: dict(ask(http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=10), "/poll")[1])
                 .get("server", "").startswith("echo"), "the ConfigMap applied")
        # the connection opened before the change: still open, its next request under the new keys
        status, headers = ask(conn, "/after", [("X_Tenant", "a")])
        assert status == 200 and conn.sock.getsockname() == local
        assert forwarded(web, "/after")["x_tenant"] == "a"
        assert dict(headers)["server"].startswith("echo")  # the backend's Server header, passed on
        assert curl(proc, "/curl-live", "-H", "X_Tenant: a") == "200" and forwarded(web, "/curl-live")["x_tenant"] == "a"
        assert raw_close(proc, b"GET /raw-live HTTP/1.1\r\nHost: app.test\r\nX_Raw: 1\r\n").startswith(b"HTTP/1.1 200 ")
        assert forwarded(web, "/raw-live")["x_raw"] == "1"
        # keep-alive-requests 3: that connection's third request is its last
        assert "connection" not in dict(headers)
        status, headers = ask(conn, "/third")
        assert status == 200 and dict(headers).get("connection") == "close"
        conn.close()
        # large-client-header-buffers 2 1k: a header line over 1k is nginx's 400, a request line 414
        answer = raw_close(proc, big_line)
        assert answer.startswith(b"HTTP/1.1 400 ") and b"Request Header Or Cookie Too Large" in answer
        assert raw_close(proc, b"GET /" + b"u" * 1100 + b" HTTP/1.1\r\nHost: app.test\r\n").startswith(b"HTTP/1.1 414 ")
        assert alpn(proc) == "http/1.1"  # use-http2 false: h2 no longer chosen for a new TLS connection

        # a value that does not parse refuses the change: the previous version keeps serving
        write_manifests(manifests / "all.yaml", objects(web, {
            "enable-underscores-in-headers": "true", "server-tokens": "true", "allow-backend-server-header": "true",
            "keep-alive-requests": "3", "large-client-header-buffers": "lots"}))
        wait_for(lambda: "ConfigMap refused" in proc.log() and "large-client-header-buffers" in proc.log(),
                 "the refusal")
        assert raw_close(proc, big_line).startswith(b"HTTP/1.1 400 ")
        assert dict(ask(http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=10), "/kept")[1])[
            "server"].startswith("echo")

        # the keys gone: ingress-nginx's defaults again
        write_manifests(manifests / "all.yaml", objects(web, {}))
        wait_for(lambda: raw_close(proc, big_line).startswith(b"HTTP/1.1 200 "), "the defaults back")
        assert alpn(proc) == "h2"
        assert "server" not in dict(ask(http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=10),
                                        "/defaults")[1])
    finally:
        proc.stop()
        web.stop()


def _closed_at_once(port: int) -> bool:
    """Whether a new connection is closed without an answer (max-worker-connections reached)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
            return sock.recv(100) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def _served(port: int, count: int, keep: list) -> bool:
    """Whether ``count`` new keep-alive connections are all served (then kept open in ``keep``)."""
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(count)]
    try:
        served = all(ask(conn, "/n")[0] == 200 for conn in conns)
    except (OSError, http.client.HTTPException):
        served = False
    if served:
        keep.extend(conns)
    else:
        for conn in conns:
            conn.close()
    return served


def test_max_worker_connections_closes_the_connections_beyond_it_live(tmp_path):
    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", objects(web, {"max-worker-connections": "2"}))
    proc = Ingressd(manifests, ["--nginx-configmap", CM, "--access-log", "off"])
    held: list = []
    try:
        assert _served(proc.http_port, 2, held)  # two idle keep-alive connections, each served once
        wait_for(lambda: _closed_at_once(proc.http_port), "a third connection closed as accepted")
        assert "worker_connections are not enough" in proc.log()
        assert all(ask(conn, "/still")[0] == 200 for conn in held)  # the open ones are served on
        held.pop().close()
        wait_for(lambda: not _closed_at_once(proc.http_port), "room for one again")
        write_manifests(manifests / "all.yaml", objects(web, {}))  # ingress-nginx's 16384
        wait_for(lambda: _served(proc.http_port, 3, held), "the bound lifted, live")
        assert all(ask(conn, "/still")[0] == 200 for conn in held)
    finally:
        for conn in held:
            conn.close()
        proc.stop()
        web.stop()


def test_cluster_mode_a_configmap_change_through_the_api_changes_the_client_side(tmp_path):
    import fakeapi

    web = Backend("web")
    (tmp_path / "manifests").mkdir()
    api = fakeapi.FakeAPIServer(bookmark_interval=0.5).start()
    c = api.cluster
    c.apply(fakeapi.ingress_class())
    c.apply(fakeapi.service("web"))
    c.apply(fakeapi.endpoint_slice("web-1", "web", addresses=("127.0.0.1",), port=web.port))
    c.apply(fakeapi.ingress("app", host="app.test", service="web"))
    c.apply(configmap({}))
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
    proc = Ingressd(tmp_path / "manifests", ["--kubernetes", "--kubeconfig", kubeconfig, f"--configmap={CM}",
                                             "--access-log", "off"])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=10)
        status, headers = ask(conn, "/before", [("X_Tenant", "a")])
        assert status == 200 and "server" not in dict(headers) and "x_tenant" not in forwarded(web, "/before")
        c.apply(configmap({"server-tokens": "true", "enable-underscores-in-headers": "true"}))
        wait_for(lambda: "server" in dict(ask(conn, "/poll")[1]), "the ConfigMap applied through the API")
        status, headers = ask(conn, "/after", [("X_Tenant", "a")])  # the same connection
        assert dict(headers)["server"].startswith("ingressd/") and forwarded(web, "/after")["x_tenant"] == "a"
        conn.close()
    finally:
        proc.stop()
        api.stop()
        web.stop()
