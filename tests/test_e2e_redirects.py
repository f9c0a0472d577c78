"""End to end: app-root, permanent-redirect and temporal-redirect through the real ``twistd ingressd``,
over HTTP and HTTPS, the cases of ingress-nginx's own e2e tests (test/e2e/annotations/approot.go,
redirect.go): status, Location, body, and that the backend got no request."""

from __future__ import annotations

import http.client
import socket
import ssl

import pytest

import certs
from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"
TIMEOUT = 10.0
HOSTS = ("approot.bar.com", "redirect.bar.com", "temporal.bar.com", "both.bar.com",
         "fromtowww.bar.com", "www.fromtowww.bar.com")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    manifests = tmp_path_factory.mktemp("redirects")
    web = Backend("web")
    leaf = certs.make_leaf(*HOSTS)
    objects = [
        INGRESS_CLASS,
        *service("web", [("http", 80, web.port)]),
        certs.secret_manifest("default", "redirects", leaf.cert_pem, leaf.key_pem()),
        ingress("approot", [("approot.bar.com", [("/", "Prefix", "web", 80)])],
                annotations={N + "app-root": "/foo"},
                tls=[{"hosts": ["approot.bar.com"], "secretName": "redirects"}]),
        ingress("permanent", [("redirect.bar.com", [("/", "Prefix", "web", 80)])],
                annotations={N + "permanent-redirect": "http://redirect.example.com/landing?from=ingress",
                             N + "permanent-redirect-code": "308"},
                tls=[{"hosts": ["redirect.bar.com"], "secretName": "redirects"}]),
        ingress("temporal", [("temporal.bar.com", [("/", "Prefix", "web", 80)])],
                annotations={N + "temporal-redirect": "https://temporal.example.com"},
                tls=[{"hosts": ["temporal.bar.com"], "secretName": "redirects"}]),
        ingress("both", [("both.bar.com", [("/", "Prefix", "web", 80)])],
                annotations={N + "temporal-redirect": "https://t.example.com",
                             N + "permanent-redirect": "https://p.example.com"}),
        # fromtowwwredirect.go: the certificate names both; the TLS section only the host
        ingress("fromtowww", [("fromtowww.bar.com", [("/", "Prefix", "web", 80)])],
                annotations={N + "from-to-www-redirect": "true", N + "ssl-redirect": "false"},
                tls=[{"hosts": ["fromtowww.bar.com"], "secretName": "redirects"}]),
        # a URL ingress-nginx's validator refuses: this Ingress alone is rejected
        ingress("invalid", [("invalid.bar.com", [("/", "Prefix", "web", 80)])],
                annotations={N + "permanent-redirect": "http://x.example.com/a b"}),
    ]
    write_manifests(manifests / "all.yaml", objects)
    proc = Ingressd(manifests)
    proc.leaf = leaf
    yield proc, web
    proc.stop()
    web.stop()


def https_get(port: int, host: str, path: str, peer: list | None = None):
    """GET over TLS with ``host`` as the SNI name and the Host header (the certificate is not checked)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT),
                                    server_hostname=host)
    if peer is not None:
        peer.append(conn.sock.getpeercert(binary_form=True))
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def http_get(proc, host: str, path: str, host_header: str | None = None):
    response = proc.get(path, host=host_header or host)
    return response.status, response.headers, response.body


def test_app_root_http_and_https(world):
    proc, web = world
    before = len(web.requests)
    # approot.go: GET / → 302 Location http://approot.bar.com/foo (before the HTTPS redirect)
    status, headers, body = http_get(proc, "approot.bar.com", "/")
    assert (status, headers["location"]) == (302, "http://approot.bar.com/foo")
    assert body == b"302 Found\n"
    # $http_host as sent: the port stays
    status, headers, _ = http_get(proc, "approot.bar.com", "/?q=1", host_header=f"approot.bar.com:{proc.http_port}")
    assert (status, headers["location"]) == (302, f"http://approot.bar.com:{proc.http_port}/foo")
    status, headers, _ = https_get(proc.https_port, "approot.bar.com", "/")
    assert (status, headers["location"]) == (302, "https://approot.bar.com/foo")
    assert len(web.requests) == before
    # other paths are the route's as usual: HTTPS redirect over HTTP, proxied over HTTPS
    assert http_get(proc, "approot.bar.com", "/foo")[0] == 308
    assert https_get(proc.https_port, "approot.bar.com", "/foo")[0] == 200
    assert web.requests[-1][1] == "/foo"


def test_permanent_redirect_with_a_custom_code(world):
    proc, web = world
    before = len(web.requests)
    for get in (lambda path: http_get(proc, "redirect.bar.com", path),
                lambda path: https_get(proc.https_port, "redirect.bar.com", path)):
        for path in ("/", "/some/path?x=1"):
            status, headers, body = get(path)
            assert status == 308, (path, status)
            # nothing of the request is appended to the URL
            assert headers["location"] == "http://redirect.example.com/landing?from=ingress"
            assert body == b"308 Permanent Redirect\n"
    assert len(web.requests) == before


def test_temporal_redirect_and_precedence(world):
    proc, web = world
    before = len(web.requests)
    status, headers, body = http_get(proc, "temporal.bar.com", "/x?y=1")
    assert (status, headers["location"], body) == (302, "https://temporal.example.com", b"302 Found\n")
    status, headers, _ = https_get(proc.https_port, "temporal.bar.com", "/x")
    assert (status, headers["location"]) == (302, "https://temporal.example.com")
    status, headers, _ = http_get(proc, "both.bar.com", "/")
    assert (status, headers["location"]) == (302, "https://t.example.com")
    assert len(web.requests) == before


def test_an_invalid_url_rejects_its_ingress_alone(world):
    proc, _ = world
    assert proc.get("/", host="invalid.bar.com").status == 404
    assert "permanent-redirect" in proc.log() and "is not a URL ingress-nginx accepts" in proc.log()


def test_from_to_www_redirect_http_and_https(world):
    proc, web = world
    before = len(web.requests)
    # fromtowwwredirect.go: GET /foo for www.HOST → 308 http://HOST:80/foo (our port: the listener's)
    status, headers, body = http_get(proc, "www.fromtowww.bar.com", "/foo")
    assert (status, headers["location"]) == (308, f"http://fromtowww.bar.com:{proc.http_port}/foo")
    assert body == b"308 Permanent Redirect\n"
    # https: the Ingress's certificate (it names www.HOST too), "/" → no path, the port written
    peer: list = []
    status, headers, _ = https_get(proc.https_port, "www.fromtowww.bar.com", "/", peer)
    assert (status, headers["location"]) == (308, f"https://fromtowww.bar.com:{proc.https_port}")
    assert peer[0] == proc.leaf.der
    assert len(web.requests) == before
    # the host itself is proxied, and not redirected to www
    assert https_get(proc.https_port, "fromtowww.bar.com", "/bar")[0] == 200
    assert http_get(proc, "fromtowww.bar.com", "/bar")[0] == 200
    assert web.requests[-1][1] == "/bar"
