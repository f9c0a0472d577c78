"""The forwarding-header policy on its own: who the client is and what the backend is told."""

from __future__ import annotations

import pytest

from ingressd.forwarding import ForwardingPolicy, is_spoofable
from ingressd.headers import Headers

POLICY = ForwardingPolicy(["10.0.0.0/8", "fd00::/8"])
RID = b"0123456789abcdef0123456789abcdef"


def decide(pairs, trusted=False, scheme="http", port=8080, peer="10.1.1.1", rid=RID):
    headers = Headers([(k.lower(), v) for k, v in pairs])
    host = headers.get(b"host")
    names = [name for name, _ in headers.pairs]
    spoofed = any(is_spoofable(name) for name in names)
    forwarded = any(name.startswith(b"x-forwarded-") for name in names)
    request_id, client, scheme, upstream = POLICY.decide(headers, host, rid, spoofed, forwarded, peer, scheme,
                                                         port, trusted)
    return request_id, client, scheme, dict(upstream), headers


CASES = [
    # (request headers, trusted peer?, listener scheme, expected client, scheme, upstream subset, request's Host after)
    ([(b"host", b"a.test")], False, "http", "10.1.1.1", "http",
     {b"x-real-ip": b"10.1.1.1", b"x-forwarded-for": b"10.1.1.1", b"x-forwarded-host": b"a.test",
      b"x-forwarded-port": b"8080", b"x-forwarded-proto": b"http", b"x-forwarded-scheme": b"http",
      b"x-scheme": b"http"}, b"a.test"),
    ([(b"host", b"a.test")], False, "https", "10.1.1.1", "https",
     {b"x-forwarded-port": b"443", b"x-forwarded-proto": b"https"}, b"a.test"),
    # an untrusted client's values are passed on only as X-Original-*
    ([(b"host", b"a.test"), (b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-for", b"5.6.7.8"),
      (b"x-forwarded-host", b"evil.test"), (b"x-forwarded-proto", b"https")], False, "http", "10.1.1.1", "http",
     {b"x-forwarded-for": b"10.1.1.1", b"x-original-forwarded-for": b"1.2.3.4, 5.6.7.8",
      b"x-original-forwarded-host": b"evil.test", b"x-forwarded-host": b"a.test", b"x-forwarded-proto": b"http"},
     b"a.test"),
    # a trusted proxy: the right-most untrusted hop is the client; proto, port and host as sent
    ([(b"host", b"lb.internal"), (b"x-forwarded-for", b"203.0.113.7, 10.9.9.9"),
      (b"x-forwarded-host", b"shop.example, other"), (b"x-forwarded-proto", b"HTTPS"),
      (b"x-forwarded-port", b"8443")], True, "http", "203.0.113.7", "https",
     {b"x-real-ip": b"203.0.113.7", b"x-forwarded-for": b"203.0.113.7", b"x-forwarded-host": b"shop.example",
      b"x-forwarded-port": b"8443", b"x-forwarded-proto": b"HTTPS",
      b"x-original-forwarded-for": b"203.0.113.7, 10.9.9.9"}, b"shop.example"),
    ([(b"host", b"a.test"), (b"x-forwarded-proto", b"myproto")], True, "http", "10.1.1.1", "http",
     {b"x-forwarded-proto": b"myproto", b"x-scheme": b"myproto", b"x-forwarded-scheme": b"myproto"}, b"a.test"),
    # a trusted proxy's X-Forwarded-Host gives a request without Host one
    ([(b"x-forwarded-host", b"b.test")], True, "http", "10.1.1.1", "http", {b"x-forwarded-host": b"b.test"},
     b"b.test"),
    # a hop that is not an address is never the client: the trusted hop that sent it is
    ([(b"host", b"a.test"), (b"x-forwarded-for", b"not-an-ip, 10.2.2.2")], True, "http", "10.2.2.2", "http",
     {b"x-real-ip": b"10.2.2.2"}, b"a.test"),
    # every hop trusted: the left-most one
    ([(b"host", b"a.test"), (b"x-forwarded-for", b"10.3.3.3, 10.2.2.2")], True, "http", "10.3.3.3", "http",
     {}, b"a.test"),
]


@pytest.mark.parametrize("pairs, trusted, listener, client, scheme, upstream, host", CASES)
def test_decide(pairs, trusted, listener, client, scheme, upstream, host):
    _, got_client, got_scheme, got_upstream, headers = decide(pairs, trusted, listener)
    assert (got_client, got_scheme) == (client, scheme)
    assert {name: got_upstream.get(name) for name in upstream} == upstream
    assert headers.get(b"host") == host


@pytest.mark.parametrize("trusted", [False, True])
def test_forgeable_headers_are_dropped_unless_the_peer_is_trusted(trusted):
    pairs = [(b"host", b"a.test"), (b"forwarded", b"for=1.2.3.4"), (b"x-original-uri", b"/admin"),
             (b"x-original-url", b"/admin"), (b"x-rewrite-url", b"/admin"), (b"x-forwarded-prefix", b"/p"),
             (b"x-keep", b"yes")]
    *_, headers = decide(pairs, trusted)
    names = {name for name, _ in headers.pairs}
    forged = {b"forwarded", b"x-original-uri", b"x-original-url", b"x-rewrite-url", b"x-forwarded-prefix"}
    assert (forged <= names) is trusted and not (forged & names and not trusted)
    assert b"x-keep" in names


@pytest.mark.parametrize("rid, kept", [
    (RID, True), (b"abc-DEF_1.2:3", True), (b"x" * 128, True), (b"x" * 129, False), (b"", False),
    (b"a b", False), (b'a"b', False), (b"a\\b", False), (b"\xff", False), (None, False),
])
def test_request_id(rid, kept):
    request_id, *_ = decide([(b"host", b"a.test")], rid=rid)
    if kept:
        assert request_id == rid.decode()
    else:
        assert len(request_id) == 32 and int(request_id, 16) >= 0


@pytest.mark.parametrize("address, trusted", [
    ("10.0.0.1", True), ("10.255.255.255", True), ("11.0.0.1", False), ("fd00::1", True), ("fe80::1", False),
    ("", False), ("garbage", False),
])
def test_trusted_networks(address, trusted):
    assert POLICY.is_trusted(address) is trusted
    assert ForwardingPolicy().is_trusted(address) is False


@pytest.mark.parametrize("name, spoofable", [
    (b"forwarded", True), (b"x-forwarded-prefix", True), (b"x-forwarded-server", True),
    (b"x-forwarded-for", False), (b"x-forwarded-host", False), (b"x-original-forwarded-for", False),
    (b"x-original-uri", True), (b"x-rewrite-url", True), (b"x-request-id", False), (b"host", False),
])
def test_is_spoofable(name, spoofable):
    assert is_spoofable(name) is spoofable
