"""Forwarding headers: what the backend gets from an untrusted client and from a trusted proxy.

In memory: the real server (``serve_in_memory``: options, installed plugins, proxy) on a
``MemoryReactorClock``; the request head the backend would receive is read from the
backend connection's ``StringTransport``. The expectations are ingress-nginx's
test/e2e/settings/forwarded_headers.go and enable_real_ip.go, whose values come from
nginx.tmpl's location (``proxy_set_header X-Real-IP $remote_addr`` … ``X-Original-Forwarded-Host``)
and lua_ingress.lua's ``rewrite()`` ($pass_access_scheme, $pass_server_port, $best_http_host).
``--trusted-proxies`` stands for use-forwarded-headers with proxy-real-ip-cidr.
"""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from ingressd.testing import one_route_objects, serve_in_memory

HOST = "forwarded-headers"
PEER = "127.0.0.1"
# forwarded_headers.go sends these to a Service behind ingress-nginx listening on port 80.
SPOOFED = [("X-Forwarded-Port", "1234"), ("X-Forwarded-Proto", "myproto"), ("X-Forwarded-Scheme", "myproto"),
           ("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Host", "myhost")]
SET_BY_INGRESS = ("host", "x-request-id", "x-real-ip", "x-forwarded-for", "x-forwarded-host", "x-forwarded-port",
                  "x-forwarded-proto", "x-forwarded-scheme", "x-scheme", "x-original-forwarded-for",
                  "x-original-forwarded-host")


def proxied(tmp_path, headers, *options, peer=PEER):
    """(the backend's request head as {name: [values]}, the finished exchange)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    service, reactor = serve_in_memory(tmp_path, one_route_objects(HOST), "--access-log", "off", *options)
    exchanges = []
    service.proxy.observers.append(exchanges.append)
    try:
        client = service.http_factory.buildProtocol(IPv4Address("TCP", peer, 40000))
        client_transport = StringTransport(hostAddress=IPv4Address("TCP", "10.0.0.1", 80),
                                           peerAddress=IPv4Address("TCP", peer, 40000))
        client.makeConnection(client_transport)
        lines = "".join(f"{name}: {value}\r\n" for name, value in [("Host", HOST), *headers])
        client.dataReceived(f"GET /x?y=1 HTTP/1.1\r\n{lines}\r\n".encode("latin-1"))
        host, port, factory, _, _ = reactor.tcpClients[-1]
        backend = factory.buildProtocol(IPv4Address("TCP", host, port))
        backend_transport = StringTransport()
        backend.makeConnection(backend_transport)
        head = backend_transport.value()
        backend.dataReceived(b"HTTP/1.1 204 No Content\r\n\r\n")
        assert client_transport.value().startswith(b"HTTP/1.1 204 ")
    finally:
        service.stopService()
    seen: dict[str, list[str]] = {}
    for line in head.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        seen.setdefault(name.lower(), []).append(value.strip())
    return seen, exchanges[0]


def sent(seen) -> dict[str, str]:
    """What ingress-nginx sets, one value each (each must be sent once)."""
    for name in SET_BY_INGRESS:
        assert len(seen.get(name, [])) <= 1, (name, seen[name])
    return {name: seen[name][0] for name in SET_BY_INGRESS if name in seen}


UNTRUSTED = {  # forwarded_headers.go "should not trust X-Forwarded headers when setting is false"
    "host": HOST, "x-real-ip": PEER, "x-forwarded-for": PEER, "x-forwarded-host": HOST, "x-forwarded-port": "80",
    "x-forwarded-proto": "http", "x-forwarded-scheme": "http", "x-scheme": "http",
    "x-original-forwarded-for": "1.2.3.4", "x-original-forwarded-host": "myhost",
}
TRUSTED = {  # forwarded_headers.go "should trust X-Forwarded headers when setting is true"
    "host": "myhost", "x-real-ip": "1.2.3.4", "x-forwarded-for": "1.2.3.4", "x-forwarded-host": "myhost",
    "x-forwarded-port": "1234", "x-forwarded-proto": "myproto", "x-forwarded-scheme": "myproto",
    "x-scheme": "myproto", "x-original-forwarded-for": "1.2.3.4", "x-original-forwarded-host": "myhost",
}


@pytest.mark.parametrize("options, headers, expected, scheme", [
    pytest.param((), SPOOFED, UNTRUSTED, "http", id="untrusted"),
    pytest.param(("--trusted-proxies", "10.9.0.0/16"), SPOOFED, UNTRUSTED, "http", id="untrusted-other-cidr"),
    pytest.param(("--trusted-proxies", "127.0.0.1/32"), SPOOFED, TRUSTED, "http", id="trusted"),
    # "ensuring that first entry in X-Forwarded-Host is used as the best host"
    pytest.param(("--trusted-proxies", "127.0.0.1/32"),
                 [("X-Forwarded-Host", "myhost.com, another.host,example.net"), ("X-Forwarded-Proto", "https")],
                 {"host": "myhost.com", "x-forwarded-host": "myhost.com", "x-forwarded-proto": "https",
                  "x-forwarded-scheme": "https", "x-scheme": "https", "x-forwarded-port": "80",
                  "x-original-forwarded-host": "myhost.com, another.host,example.net",
                  "x-real-ip": PEER, "x-forwarded-for": PEER}, "https", id="trusted-first-host"),
    # real_ip_recursive: the right-most address that is not a trusted proxy; repeated
    # lines are one list ($http_x_forwarded_for joins them).
    pytest.param(("--trusted-proxies", "127.0.0.1/32, 10.0.0.0/8"),
                 [("X-Forwarded-For", "6.6.6.6, 203.0.113.9"), ("X-Forwarded-For", "10.1.1.1")],
                 {"host": HOST, "x-real-ip": "203.0.113.9", "x-forwarded-for": "203.0.113.9",
                  "x-original-forwarded-for": "6.6.6.6, 203.0.113.9, 10.1.1.1", "x-forwarded-host": HOST,
                  "x-forwarded-proto": "http", "x-forwarded-scheme": "http", "x-scheme": "http",
                  "x-forwarded-port": "80"}, "http", id="trusted-chain"),
    # Nothing forwarded: no X-Original-* at all (proxy_set_header with an empty value sends
    # nothing), and a client's own X-Original-* never pass.
    pytest.param((), [("X-Original-Forwarded-For", "6.6.6.6"), ("X-Original-Forwarded-Host", "evil")],
                 {"host": HOST, "x-real-ip": PEER, "x-forwarded-for": PEER, "x-forwarded-host": HOST,
                  "x-forwarded-port": "80", "x-forwarded-proto": "http", "x-forwarded-scheme": "http",
                  "x-scheme": "http"}, "http", id="client-original-headers"),
    pytest.param(("--trusted-proxies", "127.0.0.1/32"),
                 [("X-Original-Forwarded-For", "6.6.6.6"), ("X-Forwarded-Scheme", "https")],
                 {"host": HOST, "x-real-ip": PEER, "x-forwarded-for": PEER, "x-forwarded-host": HOST,
                  "x-forwarded-port": "80", "x-forwarded-proto": "http", "x-forwarded-scheme": "http",
                  "x-scheme": "http"}, "http", id="trusted-client-original-headers"),
])
def test_what_the_backend_gets(tmp_path, options, headers, expected, scheme):
    seen, exchange = proxied(tmp_path, headers, *options)
    got = sent(seen)
    assert len(got.pop("x-request-id")) == 32
    assert got == expected
    # The scheme ingressd itself decides with (HTTPS redirects, HSTS) is http or https only.
    assert exchange.scheme == scheme
    assert exchange.client_ip == expected["x-real-ip"]


def test_other_forwarding_headers_pass_only_from_a_trusted_proxy(tmp_path):
    """ingressd's own hardening (ingress-nginx passes these on from anyone): headers a
    backend may read as the client's address, scheme or URL only come from trusted proxies."""
    headers = [("Forwarded", "for=6.6.6.6"), ("X-Forwarded-Prefix", "/p"), ("X-Original-URI", "/admin"),
               ("X-Original-URL", "/admin"), ("X-Rewrite-URL", "/admin")]
    untrusted, _ = proxied(tmp_path / "a", headers)
    trusted, _ = proxied(tmp_path / "b", headers, "--trusted-proxies", "127.0.0.1/32")
    for name, value in headers:
        assert name.lower() not in untrusted, name
        assert trusted[name.lower()] == [value], name


@pytest.mark.parametrize("given, kept", [
    ("something-unique", True),  # default_backend.go
    ("proxy_intercept_errors", True),  # disableproxyintercepterrors.go
    ("0af7651916cd43dd8448eb211c80319c", True),
    ("a b", False),  # written unescaped into the access log: a new ID instead
    ('a"b', False),
    ("a\\b", False),
    ("x" * 129, False),
    ("\xe9t\xe9", False),
])
def test_request_id_passed_on_or_replaced(tmp_path, given, kept):
    seen, exchange = proxied(tmp_path, [("X-Request-ID", given)])
    [sent_id] = seen["x-request-id"]
    assert sent_id == exchange.request_id
    if kept:
        assert sent_id == given
    else:
        assert len(sent_id) == 32 and sent_id != given
