"""The client's address under ingress-nginx's real-IP settings: use-forwarded-headers,
forwarded-for-header, compute-full-forwarded-for, proxy-real-ip-cidr, enable-real-ip,
use-proxy-protocol, proxy-add-original-uri-header, generate-request-id.

First the policy on its own (``ForwardingPolicy.decide``), then the real server in memory
(``serve_in_memory``) from its options, with and without a PROXY protocol header, and a
policy swapped in live. The expectations are nginx.tmpl's (the realip module's
``real_ip_header``/``set_real_ip_from``/``real_ip_recursive on``, ``$full_x_forwarded_for``,
``$req_id``) and lua_ingress.lua's, as ingress-nginx's e2e tests check them
(settings/forwarded_headers.go, enable_real_ip.go, proxy_protocol.go).
"""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from ingressd.http.headers import Headers
from ingressd.proxy.forwarding import ForwardingPolicy, is_spoofable, parse_cidrs, parse_duration, parse_switch
from ingressd.testing import one_route_objects, serve_in_memory

HOST = "real-ip"
RID = b"0123456789abcdef0123456789abcdef"


def decide(policy, pairs, peer="10.1.1.1", scheme="http", port=8080, uri=b"/x?y"):
    headers = Headers([(k.lower(), v) for k, v in pairs])
    names = [name for name, _ in headers.pairs]
    spoofed = any(is_spoofable(name) for name in names)
    forwarded = any(name.startswith(b"x-forwarded-") for name in names)
    rid = headers.get(b"x-request-id")
    request_id, client, scheme, upstream = policy.decide(
        headers, headers.get(b"host"), rid, spoofed, forwarded, peer, scheme, port, policy.is_trusted(peer), uri)
    return request_id, client, scheme, dict(upstream), headers


XFF = [(b"host", b"a.test"), (b"x-forwarded-for", b"203.0.113.7, 10.9.9.9"), (b"x-forwarded-proto", b"https"),
       (b"x-forwarded-host", b"shop.test"), (b"x-forwarded-port", b"8443")]


def test_defaults_believe_nobody():
    policy = ForwardingPolicy()
    assert not policy.real_ip and not policy.is_trusted("10.1.1.1")
    _, client, scheme, upstream, headers = decide(policy, XFF)
    assert (client, scheme) == ("10.1.1.1", "http")
    assert upstream[b"x-forwarded-for"] == b"10.1.1.1" and upstream[b"x-forwarded-host"] == b"a.test"
    assert upstream[b"x-original-forwarded-for"] == b"203.0.113.7, 10.9.9.9"
    assert b"x-original-uri" not in upstream and headers.get(b"host") == b"a.test"


def test_use_forwarded_headers_trusts_every_ipv4_peer_by_default():
    # proxy-real-ip-cidr's default is 0.0.0.0/0: behind a load balancer, ingress-nginx's documented use.
    policy = ForwardingPolicy(use_forwarded_headers=True)
    assert policy.is_trusted("198.51.100.1") and not policy.is_trusted("2001:db8::1")
    # real_ip_recursive with every hop trusted: the left-most
    _, client, scheme, upstream, headers = decide(policy, XFF, peer="198.51.100.1")
    assert (client, scheme) == ("203.0.113.7", "https")
    assert upstream[b"x-forwarded-port"] == b"8443" and headers.get(b"host") == b"shop.test"
    # an IPv6 peer is outside 0.0.0.0/0: nothing believed
    _, client, scheme, _, _ = decide(policy, XFF, peer="2001:db8::1")
    assert (client, scheme) == ("2001:db8::1", "http")


def test_use_forwarded_headers_from_a_peer_outside_the_cidrs():
    policy = ForwardingPolicy(use_forwarded_headers=True, real_ip_cidrs=["10.0.0.0/8"])
    _, client, scheme, upstream, _ = decide(policy, XFF, peer="198.51.100.1")
    assert (client, scheme) == ("198.51.100.1", "http")
    assert upstream[b"x-forwarded-host"] == b"a.test" and upstream[b"x-forwarded-port"] == b"8080"
    _, client, scheme, _, _ = decide(policy, XFF, peer="10.1.1.1")
    assert (client, scheme) == ("203.0.113.7", "https")  # 10.9.9.9 is trusted too: the next hop


def test_enable_real_ip_takes_the_address_only():
    # enable_real_ip.go: X-Forwarded-For decides the client; Proto, Host, Port are not believed.
    policy = ForwardingPolicy(enable_real_ip=True, real_ip_cidrs=["10.0.0.0/8"])
    _, client, scheme, upstream, headers = decide(policy, XFF)
    assert (client, scheme) == ("203.0.113.7", "http")
    assert upstream[b"x-forwarded-for"] == b"203.0.113.7" and upstream[b"x-forwarded-proto"] == b"http"
    assert upstream[b"x-forwarded-host"] == b"a.test" and headers.get(b"host") == b"a.test"
    _, client, _, _, _ = decide(policy, XFF, peer="198.51.100.1")
    assert client == "198.51.100.1"


def test_forwarded_for_header_names_another_header():
    policy = ForwardingPolicy(enable_real_ip=True, forwarded_for_header="CF-Connecting-IP",
                              real_ip_cidrs=["10.0.0.0/8"])
    pairs = [(b"host", b"a.test"), (b"cf-connecting-ip", b"203.0.113.50"), (b"x-forwarded-for", b"6.6.6.6")]
    _, client, _, upstream, _ = decide(policy, pairs)
    assert client == "203.0.113.50"
    # X-Original-Forwarded-For is that header's value (buildForwardedFor)
    assert upstream[b"x-original-forwarded-for"] == b"203.0.113.50"
    # without it, the peer; X-Forwarded-For alone is not read
    _, client, _, upstream, _ = decide(policy, [(b"host", b"a.test"), (b"x-forwarded-for", b"6.6.6.6")])
    assert client == "10.1.1.1" and b"x-original-forwarded-for" not in upstream


@pytest.mark.parametrize("peer, pairs, expected", [
    # the chain and the peer it came from ($full_x_forwarded_for with $realip_remote_addr)
    ("10.1.1.1", [(b"x-forwarded-for", b"203.0.113.7, 10.9.9.9")], b"203.0.113.7, 10.9.9.9, 10.1.1.1"),
    ("10.1.1.1", [], b"10.1.1.1"),
    # from an untrusted peer the chain starts at the peer (ingress-nginx takes anyone's)
    ("198.51.100.1", [(b"x-forwarded-for", b"6.6.6.6")], b"198.51.100.1"),
])
def test_compute_full_forwarded_for(peer, pairs, expected):
    policy = ForwardingPolicy(use_forwarded_headers=True, compute_full_forwarded_for=True,
                              real_ip_cidrs=["10.0.0.0/8"])
    _, _, _, upstream, _ = decide(policy, [(b"host", b"a.test"), *pairs], peer=peer)
    assert upstream[b"x-forwarded-for"] == expected


def test_compute_full_forwarded_for_is_x_forwarded_for_whatever_the_forwarded_for_header():
    # $full_x_forwarded_for is built from $http_x_forwarded_for; the client from the named header
    policy = ForwardingPolicy(use_forwarded_headers=True, compute_full_forwarded_for=True,
                              forwarded_for_header="X-Real-Client", real_ip_cidrs=["10.0.0.0/8"])
    pairs = [(b"host", b"a.test"), (b"x-real-client", b"198.51.100.9"), (b"x-forwarded-for", b"203.0.113.7")]
    _, client, _, upstream, _ = decide(policy, pairs)
    assert client == "198.51.100.9" and upstream[b"x-real-ip"] == b"198.51.100.9"
    assert upstream[b"x-forwarded-for"] == b"203.0.113.7, 10.1.1.1"
    assert upstream[b"x-original-forwarded-for"] == b"198.51.100.9"


def test_compute_full_forwarded_for_joins_repeated_x_forwarded_for_lines():
    # $http_x_forwarded_for: repeated lines are one list, joined with ", ", whatever header names the client
    policy = ForwardingPolicy(use_forwarded_headers=True, compute_full_forwarded_for=True,
                              forwarded_for_header="X-Real-Client", real_ip_cidrs=["10.0.0.0/8"])
    pairs = [(b"host", b"a.test"), (b"x-real-client", b"198.51.100.9"), (b"x-forwarded-for", b"203.0.113.7"),
             (b"x-forwarded-for", b"10.9.9.9")]
    _, client, _, upstream, _ = decide(policy, pairs)
    assert client == "198.51.100.9"
    assert upstream[b"x-forwarded-for"] == b"203.0.113.7, 10.9.9.9, 10.1.1.1"


def test_forwarded_for_header_alone_names_the_client():
    # a CDN that sends only its own header (CF-Connecting-IP), no X-Forwarded-* at all
    for settings in ({"enable_real_ip": True}, {"use_forwarded_headers": True}):
        policy = ForwardingPolicy(forwarded_for_header="CF-Connecting-IP", real_ip_cidrs=["10.0.0.0/8"], **settings)
        _, client, _, upstream, _ = decide(policy, [(b"host", b"a.test"), (b"cf-connecting-ip", b"203.0.113.50")])
        assert client == "203.0.113.50" and upstream[b"x-real-ip"] == b"203.0.113.50"
        assert upstream[b"x-forwarded-for"] == b"203.0.113.50"
        assert upstream[b"x-original-forwarded-for"] == b"203.0.113.50"


def test_forwarded_proto_is_believed_on_port_443_without_proxy_protocol():
    # lua_ingress.lua forces https for a 443 destination only with use-proxy-protocol: a trusted
    # proxy that reached the HTTPS listener (443) for a client that came over http says so
    policy = ForwardingPolicy(use_forwarded_headers=True, real_ip_cidrs=["10.0.0.0/8"])
    pairs = [(b"host", b"a.test"), (b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"http")]
    _, client, scheme, upstream, _ = decide(policy, pairs, scheme="https", port=443)
    assert (client, scheme) == ("203.0.113.7", "http")
    assert upstream[b"x-forwarded-proto"] == b"http" and upstream[b"x-scheme"] == b"http"
    assert upstream[b"x-forwarded-port"] == b"443"


def test_proxy_protocol_on_the_https_listener_passes_the_destination_port():
    # proxy_protocol.go "should enable PROXY Protocol for HTTPS": x-forwarded-port=1234, https
    policy = ForwardingPolicy(proxy_protocol=True)
    _, _, scheme, upstream, _ = decide(policy, [(b"host", b"a.test")], scheme="https", port=1234)
    assert scheme == "https" and upstream[b"x-forwarded-port"] == b"1234" and upstream[b"x-scheme"] == b"https"


def test_compute_full_forwarded_for_needs_use_forwarded_headers():
    policy = ForwardingPolicy(enable_real_ip=True, compute_full_forwarded_for=True, real_ip_cidrs=["10.0.0.0/8"])
    _, _, _, upstream, _ = decide(policy, [(b"host", b"a.test"), (b"x-forwarded-for", b"203.0.113.7")])
    assert upstream[b"x-forwarded-for"] == b"203.0.113.7"


@pytest.mark.parametrize("settings, pairs, port, client, scheme, forwarded_port, proto", [
    # PROXY protocol alone: the header's source is the peer (the connection did that);
    # X-Forwarded-For is not read (real_ip_header proxy_protocol); its destination port is the port
    ({}, [(b"x-forwarded-for", b"6.6.6.6")], 1234, "192.168.0.1", "http", b"1234", b"http"),
    ({}, [], 443, "192.168.0.1", "https", b"443", b"https"),  # proxy_protocol.go: port 443 is https
    ({"enable_real_ip": True}, [(b"x-forwarded-for", b"6.6.6.6")], 80, "192.168.0.1", "http", b"80", b"http"),
    # with use-forwarded-headers: the header's source trusted, its X-Forwarded-For is read
    ({"use_forwarded_headers": True}, [(b"x-forwarded-for", b"192.168.0.111")], 1234, "192.168.0.111", "http",
     b"1234", b"http"),
    # ... and X-Forwarded-Proto, except that a 443 destination stays https (lua_ingress.lua's order)
    ({"use_forwarded_headers": True}, [(b"x-forwarded-proto", b"http")], 443, "192.168.0.1", "https", b"443",
     b"https"),
    ({"use_forwarded_headers": True, "real_ip_cidrs": ["10.0.0.0/8"]}, [(b"x-forwarded-for", b"192.168.0.111")],
     1234, "192.168.0.1", "http", b"1234", b"http"),
])
def test_proxy_protocol_settings(settings, pairs, port, client, scheme, forwarded_port, proto):
    policy = ForwardingPolicy(proxy_protocol=True, **settings)
    _, got_client, got_scheme, upstream, _ = decide(policy, [(b"host", b"a.test"), *pairs], peer="192.168.0.1",
                                                    port=port)
    assert (got_client, got_scheme) == (client, scheme)
    assert (upstream[b"x-forwarded-port"], upstream[b"x-forwarded-proto"]) == (forwarded_port, proto)


def test_proxy_add_original_uri_header():
    policy = ForwardingPolicy(add_original_uri=True)
    _, _, _, upstream, headers = decide(policy, [(b"host", b"a.test"), (b"x-original-uri", b"/admin")], uri=b"/p?q")
    assert upstream[b"x-original-uri"] == b"/p?q" and headers.get(b"x-original-uri") is None
    # a trusted proxy's own X-Original-URI is replaced too, never sent twice
    policy = ForwardingPolicy(["10.0.0.0/8"], add_original_uri=True)
    _, _, _, upstream, headers = decide(policy, [(b"host", b"a.test"), (b"x-original-uri", b"/admin")], uri=b"/p")
    assert upstream[b"x-original-uri"] == b"/p" and headers.get(b"x-original-uri") is None


@pytest.mark.parametrize("generate, sent, expected", [
    (True, None, "new"), (True, RID, RID.decode()), (True, b"a b", "new"),
    (False, None, ""), (False, RID, RID.decode()), (False, b"a b", ""),
])
def test_generate_request_id(generate, sent, expected):
    policy = ForwardingPolicy(generate_request_id=generate)
    pairs = [(b"host", b"a.test")] + ([(b"x-request-id", sent)] if sent else [])
    request_id, _, _, upstream, _ = decide(policy, pairs)
    if expected == "new":
        assert len(request_id) == 32 and upstream[b"x-request-id"] == request_id.encode()
    else:
        assert request_id == expected
        assert upstream.get(b"x-request-id") == (expected.encode() if expected else None)


# -- settings as options and ConfigMap values ---------------------------------------------------


def test_from_settings_reads_configmap_spellings():
    policy = ForwardingPolicy.from_settings({
        "use_forwarded_headers": "true", "proxy_real_ip_cidr": "10.0.0.0/8, fd00::/8", "forwarded_for_header":
        "X-Real-IP", "compute_full_forwarded_for": "True", "enable_real_ip": "false", "proxy_protocol": "1",
        "proxy_protocol_header_timeout": "1m30s", "proxy_add_original_uri_header": "t",
        "generate_request_id": "false"})
    assert policy.use_forwarded_headers and policy.compute_full_forwarded_for and not policy.enable_real_ip
    assert policy.proxy_protocol and policy.proxy_protocol_timeout == 90.0 and policy.add_original_uri
    assert not policy.generate_request_id and policy.forwarded_for_header == b"x-real-ip"
    assert policy.is_trusted("fd00::1") and not policy.is_trusted("11.0.0.1")


def test_from_settings_defaults_are_ingress_nginx_defaults():
    policy = ForwardingPolicy.from_settings({})
    assert (policy.use_forwarded_headers, policy.enable_real_ip, policy.compute_full_forwarded_for,
            policy.proxy_protocol, policy.add_original_uri, policy.generate_request_id) == (
        False, False, False, False, False, True)
    assert policy.forwarded_for_header == b"x-forwarded-for" and policy.proxy_protocol_timeout == 5.0
    assert [str(net) for net in policy.trusted] == ["0.0.0.0/0"]


def test_from_settings_empty_values_are_the_defaults():
    # a ConfigMap key left empty (or an option not given, "" in twistd) keeps ingress-nginx's default
    policy = ForwardingPolicy.from_settings({
        "use_forwarded_headers": "true", "trusted_proxies": "", "proxy_real_ip_cidr": "", "forwarded_for_header": "",
        "compute_full_forwarded_for": "", "enable_real_ip": "", "proxy_protocol": "",
        "proxy_protocol_header_timeout": "", "proxy_add_original_uri_header": "", "generate_request_id": ""})
    assert policy.forwarded_for_header == b"x-forwarded-for" and policy.proxy_protocol_timeout == 5.0
    assert policy.generate_request_id and not policy.proxy_protocol
    # proxy-real-ip-cidr is still 0.0.0.0/0: any IPv4 load balancer's X-Forwarded-For is read
    _, client, scheme, _, _ = decide(policy, XFF, peer="198.51.100.1")
    assert (client, scheme) == ("203.0.113.7", "https")


@pytest.mark.parametrize("value, seconds", [("500ms", 0.5), ("1s", 1.0), ("1h", 3600.0), ("3600", 3600.0)])
def test_proxy_protocol_header_timeout_bounds(value, seconds):
    # more than 0 and at most 1h, both ends included where they can be
    policy = ForwardingPolicy.from_settings({"proxy_protocol_header_timeout": value})
    assert policy.proxy_protocol_timeout == seconds
    assert ForwardingPolicy(proxy_protocol_timeout=seconds).proxy_protocol_timeout == seconds


@pytest.mark.parametrize("value", ["1h1s", "3600.5", "0", 0])
def test_proxy_protocol_header_timeout_out_of_bounds(value):
    with pytest.raises(ValueError, match="more than 0 and at most 1h"):
        ForwardingPolicy.from_settings({"proxy_protocol_header_timeout": value})


def test_a_switch_is_not_a_duration():
    with pytest.raises(ValueError, match="--proxy-protocol-header-timeout"):
        ForwardingPolicy.from_settings({"proxy_protocol_header_timeout": True})


def test_proxy_real_ip_cidr_may_have_host_bits():
    # as nginx's set_real_ip_from: 10.1.2.3/8 is 10.0.0.0/8
    policy = ForwardingPolicy.from_settings({"use_forwarded_headers": "true", "proxy_real_ip_cidr": "10.1.2.3/8"})
    assert policy.is_trusted("10.200.0.1") and not policy.is_trusted("11.0.0.1")
    _, client, _, _, _ = decide(policy, XFF, peer="10.200.0.1")
    assert client == "203.0.113.7"
    assert ForwardingPolicy.from_settings({"trusted_proxies": "192.0.2.1/24"}).is_trusted("192.0.2.200")


def test_trusted_proxies_is_use_forwarded_headers_with_those_cidrs():
    policy = ForwardingPolicy.from_settings({"trusted_proxies": "127.0.0.1/32"})
    assert policy.use_forwarded_headers and policy.is_trusted("127.0.0.1") and not policy.is_trusted("10.0.0.1")
    same = ForwardingPolicy.from_settings({"trusted_proxies": "127.0.0.1/32", "proxy_real_ip_cidr": "127.0.0.1/32"})
    assert same.is_trusted("127.0.0.1")
    with pytest.raises(ValueError, match="give one of them"):
        ForwardingPolicy.from_settings({"trusted_proxies": "127.0.0.1/32", "proxy_real_ip_cidr": "10.0.0.0/8"})


@pytest.mark.parametrize("settings, message", [
    ({"proxy_real_ip_cidr": "10.0.0.0/33"}, "--proxy-real-ip-cidr: '10.0.0.0/33' is not"),
    ({"trusted_proxies": "nope"}, "--trusted-proxies"),
    ({"use_forwarded_headers": "maybe"}, "--use-forwarded-headers: expected true or false"),
    ({"proxy_protocol_header_timeout": "5 s"}, "--proxy-protocol-header-timeout"),
    ({"proxy_protocol_header_timeout": "0s"}, "more than 0"),
    ({"proxy_protocol_header_timeout": "2h"}, "at most 1h"),
    ({"forwarded_for_header": "X Forwarded"}, "not a header name"),
])
def test_from_settings_refuses_bad_values(settings, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ForwardingPolicy.from_settings(settings)


@pytest.mark.parametrize("value, seconds", [
    ("5s", 5.0), ("500ms", 0.5), ("1m30s", 90.0), ("1.5s", 1.5), ("7", 7.0), (3, 3.0), ("2h", 7200.0),
    ("10us", 1e-5), ("10µs", 1e-5), ("1ns", 1e-9),
])
def test_parse_duration(value, seconds):
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "s", "5 s", "5x", "-5s", "five"])
def test_parse_duration_refuses(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize("value, result", [
    (True, True), (0, False), (1, True), ("TRUE", True), ("on", True), ("off", False), ("F", False), (" no ", False),
])
def test_parse_switch(value, result):
    assert parse_switch(value) is result


def test_parse_cidrs():
    assert parse_cidrs("10.0.0.0/8, ,192.0.2.1") == ("10.0.0.0/8", "192.0.2.1")
    assert parse_cidrs(["fd00::/8"]) == ("fd00::/8",)
    with pytest.raises(ValueError):
        parse_cidrs("10.0.0.0/8,bad")


def test_trust_is_remembered_per_policy_and_bounded():
    policy = ForwardingPolicy(["10.0.0.0/8"])
    for index in range(5000):
        assert policy.is_trusted(f"10.{index // 256}.{index % 256}.1")
        assert len(policy._memo) <= 4096  # at any time: a client spraying addresses cannot grow it
    assert policy.is_trusted("10.0.0.1") and not policy.is_trusted("11.0.0.1") and not policy.is_trusted("junk")


# -- the real server in memory ---------------------------------------------------------------------


def serve(tmp_path, *options):
    tmp_path.mkdir(parents=True, exist_ok=True)
    service, reactor = serve_in_memory(tmp_path, one_route_objects(HOST), "--access-log", "off", *options)
    exchanges = []
    service.proxy.observers.append(exchanges.append)
    return service, reactor, exchanges


def ask(service, reactor, first: bytes, headers=(), peer="127.0.0.1"):
    """Send ``first`` (a PROXY header, or b"") and a GET through the HTTP listener's factory as
    the reactor would; (the backend's request head as {name: [values]}, the client's bytes)."""
    factory = service.proxy_protocol_listeners[0]
    protocol = factory.buildProtocol(IPv4Address("TCP", peer, 40000))
    transport = StringTransport(hostAddress=IPv4Address("TCP", "10.0.0.1", 80),
                                peerAddress=IPv4Address("TCP", peer, 40000))
    transport.protocol = protocol
    protocol.makeConnection(transport)
    lines = "".join(f"{name}: {value}\r\n" for name, value in [("Host", HOST), *headers])
    transport.protocol.dataReceived(first + f"GET /x?y=1 HTTP/1.1\r\n{lines}\r\n".encode("latin-1"))
    if transport.disconnecting or getattr(transport, "disconnected", False):
        return None, transport
    host, port, backend_factory, _, _ = reactor.tcpClients[-1]
    backend = backend_factory.buildProtocol(IPv4Address("TCP", host, port))
    backend_transport = StringTransport()
    backend.makeConnection(backend_transport)
    head = backend_transport.value()
    backend.dataReceived(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")  # not pooled
    assert transport.value().startswith(b"HTTP/1.1 204 ")
    seen: dict[str, list[str]] = {}
    for line in head.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        seen.setdefault(name.lower(), []).append(value.strip())
    return seen, transport


V1 = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 1234\r\n"


def test_server_proxy_protocol_v1(tmp_path):
    service, reactor, exchanges = serve(tmp_path, "--proxy-protocol")
    try:
        seen, _ = ask(service, reactor, V1, [("X-Forwarded-For", "6.6.6.6")])
        assert seen["x-forwarded-for"] == ["192.168.0.1"] and seen["x-real-ip"] == ["192.168.0.1"]
        assert seen["x-forwarded-port"] == ["1234"] and seen["x-forwarded-proto"] == ["http"]
        assert (exchanges[-1].client_ip, exchanges[-1].peer_ip) == ("192.168.0.1", "192.168.0.1")
        # no header: closed, nothing proxied
        seen, transport = ask(service, reactor, b"")
        assert seen is None and transport.value() == b""
    finally:
        service.stopService()


def test_server_proxy_protocol_from_an_untrusted_peer_keeps_the_tcp_peer(tmp_path):
    service, reactor, exchanges = serve(tmp_path, "--proxy-protocol", "--proxy-real-ip-cidr", "10.0.0.0/8")
    try:
        seen, _ = ask(service, reactor, V1)
        assert seen["x-forwarded-for"] == ["127.0.0.1"] and exchanges[-1].client_ip == "127.0.0.1"
        seen, _ = ask(service, reactor, V1, peer="10.2.3.4")
        assert seen["x-forwarded-for"] == ["192.168.0.1"]
    finally:
        service.stopService()


def test_server_proxy_protocol_with_use_forwarded_headers(tmp_path):
    # proxy_protocol.go "should trust X-Forwarded headers when the client IP address is trusted"
    service, reactor, _ = serve(tmp_path, "--proxy-protocol", "--use-forwarded-headers",
                                "--proxy-real-ip-cidr", "127.0.0.1/32,192.168.0.1/32")
    try:
        seen, _ = ask(service, reactor, V1, [("X-Forwarded-For", "192.168.0.111")])
        assert seen["x-forwarded-for"] == ["192.168.0.111"] and seen["x-forwarded-port"] == ["1234"]
        seen, _ = ask(service, reactor, b"PROXY TCP4 192.168.0.2 192.168.0.11 56324 1234\r\n",
                      [("X-Forwarded-For", "192.168.0.111")])
        assert seen["x-forwarded-for"] == ["192.168.0.2"]  # its source is not trusted: the header is not read
    finally:
        service.stopService()


def test_server_policy_swapped_live(tmp_path):
    service, reactor, exchanges = serve(tmp_path)
    try:
        seen, _ = ask(service, reactor, b"", [("X-Forwarded-For", "203.0.113.7")])
        assert seen["x-forwarded-for"] == ["127.0.0.1"]
        service.proxy.use_forwarding(ForwardingPolicy.from_settings({"use_forwarded_headers": "true"}))
        seen, _ = ask(service, reactor, b"", [("X-Forwarded-For", "203.0.113.7")])
        assert seen["x-forwarded-for"] == ["203.0.113.7"] and exchanges[-1].client_ip == "203.0.113.7"
        # the listener follows: new connections must start with a header
        service.proxy.use_forwarding(ForwardingPolicy.from_settings({"proxy_protocol": "true"}))
        seen, _ = ask(service, reactor, b"")
        assert seen is None
        seen, _ = ask(service, reactor, V1)
        assert seen["x-forwarded-for"] == ["192.168.0.1"]
    finally:
        service.stopService()


def test_server_compute_full_forwarded_for_and_original_uri(tmp_path):
    service, reactor, _ = serve(tmp_path, "--use-forwarded-headers", "--compute-full-forwarded-for",
                                "--proxy-add-original-uri-header", "--generate-request-id", "off")
    try:
        seen, _ = ask(service, reactor, b"", [("X-Forwarded-For", "203.0.113.7")])
        assert seen["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"] and seen["x-real-ip"] == ["203.0.113.7"]
        assert seen["x-original-uri"] == ["/x?y=1"] and "x-request-id" not in seen
    finally:
        service.stopService()


@pytest.mark.parametrize("options, message", [
    (["--proxy-real-ip-cidr", "10.0.0.0/40"], "--proxy-real-ip-cidr"),
    (["--proxy-protocol-header-timeout", "soon"], "--proxy-protocol-header-timeout"),
    (["--generate-request-id", "maybe"], "--generate-request-id"),
])
def test_options_are_checked_at_start(tmp_path, options, message):
    from twisted.python import usage

    from ingressd.tap import Options

    with pytest.raises(usage.UsageError, match=message):
        Options().parseOptions(["--manifests", str(tmp_path), *options])
