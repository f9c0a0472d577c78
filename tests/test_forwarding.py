"""The forwarding-header policy on its own: who the client is and what the backend is told."""

from __future__ import annotations

import binascii
import os
import random

import pytest

from ingressd.proxy.forwarding import ForwardingPolicy, _RequestIds, is_spoofable
from ingressd.http.headers import Headers

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
    # an untrusted client sets neither the client, the scheme, nor the forwarded host, port or proto
    ([(b"host", b"a.test"), (b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-host", b"evil.test"),
      (b"x-forwarded-port", b"1234"), (b"x-forwarded-proto", b"https"), (b"x-forwarded-scheme", b"https"),
      (b"x-real-ip", b"203.0.113.7")], False, "http", "10.1.1.1", "http",
     {b"x-real-ip": b"10.1.1.1", b"x-forwarded-for": b"10.1.1.1", b"x-forwarded-host": b"a.test",
      b"x-forwarded-port": b"8080", b"x-forwarded-proto": b"http", b"x-forwarded-scheme": b"http",
      b"x-scheme": b"http", b"x-original-forwarded-for": b"203.0.113.7"}, b"a.test"),
    # ... nor downgrades the HTTPS listener's scheme and port
    ([(b"host", b"a.test"), (b"x-forwarded-proto", b"http"), (b"x-forwarded-port", b"80")], False, "https",
     "10.1.1.1", "https", {b"x-forwarded-proto": b"https", b"x-forwarded-port": b"443"}, b"a.test"),
    # an untrusted client's repeated X-Forwarded-Host lines reach the backend joined, as X-Original-*
    ([(b"host", b"a.test"), (b"x-forwarded-host", b"one.test"), (b"x-forwarded-host", b"two.test")], False,
     "http", "10.1.1.1", "http",
     {b"x-forwarded-host": b"a.test", b"x-original-forwarded-host": b"one.test, two.test"}, b"a.test"),
    # no forwarding headers: no X-Original-*; no Host: an empty X-Forwarded-Host, none added
    ([(b"host", b"a.test")], True, "http", "10.1.1.1", "http",
     {b"x-original-forwarded-for": None, b"x-original-forwarded-host": None}, b"a.test"),
    ([(b"x-keep", b"yes")], False, "http", "10.1.1.1", "http", {b"x-forwarded-host": b""}, None),
    ([(b"x-forwarded-for", b"203.0.113.7")], True, "http", "203.0.113.7", "http", {b"x-forwarded-host": b""},
     None),
    # a trusted proxy: the right-most untrusted hop, not the left-most; repeated lines are one list
    ([(b"host", b"a.test"), (b"x-forwarded-for", b"198.51.100.1, 203.0.113.7"),
      (b"x-forwarded-for", b"10.9.9.9")], True, "http", "203.0.113.7", "http",
     {b"x-forwarded-for": b"203.0.113.7", b"x-original-forwarded-for": b"198.51.100.1, 203.0.113.7, 10.9.9.9"},
     b"a.test"),
    # ... empty hops and spaces are skipped
    ([(b"host", b"a.test"), (b"x-forwarded-for", b" 203.0.113.7 ,, 10.9.9.9,")], True, "http", "203.0.113.7",
     "http", {b"x-real-ip": b"203.0.113.7"}, b"a.test"),
    # ... a hop that is not an address (here not even ASCII) stops the walk: the hop that sent it
    ([(b"host", b"a.test"), (b"x-forwarded-for", b"203.0.113.7, \xff\xfe, 10.9.9.9")], True, "http",
     "10.9.9.9", "http", {b"x-real-ip": b"10.9.9.9", b"x-forwarded-for": b"10.9.9.9"}, b"a.test"),
    ([(b"host", b"a.test"), (b"x-forwarded-for", b"203.0.113.7, 198.51.100.1:8080")], True, "http",
     "10.1.1.1", "http", {b"x-real-ip": b"10.1.1.1"}, b"a.test"),
    # ... IPv6: trusted networks, and the client in its canonical form
    ([(b"host", b"a.test"), (b"x-forwarded-for", b"2001:DB8:0::7, fd00::9")], True, "http", "2001:db8::7",
     "http", {b"x-real-ip": b"2001:db8::7", b"x-forwarded-for": b"2001:db8::7"}, b"a.test"),
    ([(b"host", b"a.test"), (b"x-forwarded-for", b"fd12::1, fd00::9")], True, "http", "fd12::1", "http",
     {b"x-real-ip": b"fd12::1"}, b"a.test"),
    # ... its proto decides the scheme when it is http or https, in any case; HTTPS port 443 unless it says
    ([(b"host", b"a.test"), (b"x-forwarded-proto", b"http")], True, "https", "10.1.1.1", "http",
     {b"x-forwarded-proto": b"http", b"x-forwarded-port": b"443"}, b"a.test"),
    ([(b"host", b"a.test"), (b"x-forwarded-proto", b"HTTP")], True, "https", "10.1.1.1", "http",
     {b"x-forwarded-proto": b"HTTP", b"x-scheme": b"HTTP"}, b"a.test"),
    ([(b"host", b"a.test"), (b"x-forwarded-proto", b"https")], True, "http", "10.1.1.1", "https",
     {b"x-forwarded-proto": b"https", b"x-forwarded-port": b"8080"}, b"a.test"),
    # ... repeated proto or port lines reach the backend joined; a joined proto is no scheme
    ([(b"host", b"a.test"), (b"x-forwarded-proto", b"https"), (b"x-forwarded-proto", b"http")], True, "http",
     "10.1.1.1", "http", {b"x-forwarded-proto": b"https, http", b"x-scheme": b"https, http"}, b"a.test"),
    ([(b"host", b"a.test"), (b"x-forwarded-port", b"8443"), (b"x-forwarded-port", b"9443")], True, "https",
     "10.1.1.1", "https", {b"x-forwarded-port": b"8443, 9443"}, b"a.test"),
    # ... the first of its repeated X-Forwarded-Host lines is the Host; every other header is kept
    ([(b"host", b"lb.internal"), (b"x-forwarded-host", b" one.test "), (b"x-forwarded-host", b"two.test"),
      (b"x-keep", b"yes")], True, "http", "10.1.1.1", "http",
     {b"x-forwarded-host": b"one.test", b"x-original-forwarded-host": b" one.test , two.test"}, b"one.test"),
    # ... an empty first X-Forwarded-Host leaves the Host alone
    ([(b"host", b"a.test"), (b"x-forwarded-host", b", two.test")], True, "http", "10.1.1.1", "http",
     {b"x-forwarded-host": b"a.test"}, b"a.test"),
]


@pytest.mark.parametrize("pairs, trusted, listener, client, scheme, upstream, host", CASES)
def test_decide(pairs, trusted, listener, client, scheme, upstream, host):
    _, got_client, got_scheme, got_upstream, headers = decide(pairs, trusted, listener)
    assert (got_client, got_scheme) == (client, scheme)
    assert {name: got_upstream.get(name) for name in upstream} == upstream
    assert headers.get(b"host") == host
    # Only the Host changes (behind a trusted proxy), and only forgeable headers are dropped.
    others = [(name.lower(), value) for name, value in pairs if name.lower() != b"host"]
    kept = [(name, value) for name, value in others if trusted or not is_spoofable(name)]
    assert [pair for pair in headers.pairs if pair[0] != b"host"] == kept


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
    (b"x", True), (b"!", True), (b"~", True), (b"!#$%&'()*+,/;<=>?@[]^`{|}~", True),
    (b"a b", False), (b'a"b', False), (b"a\\b", False), (b"\xff", False), (b"a\x7fb", False), (b"a\tb", False),
    (b"\x00", False), (None, False),
])
def test_request_id(rid, kept):
    request_id, _, _, upstream, _ = decide([(b"host", b"a.test")], rid=rid)
    if kept:
        assert request_id == rid.decode()
    else:
        assert len(request_id) == 32 and int(request_id, 16) >= 0
    assert upstream[b"x-request-id"] == request_id.encode()


def test_new_request_ids_are_the_os_random_bytes_in_hex_read_4_kib_at_a_time(monkeypatch):
    reads = []

    def urandom(size):
        reads.append(random.Random(len(reads)).randbytes(size))
        return reads[-1]

    monkeypatch.setattr(os, "urandom", urandom)
    new_request_id = _RequestIds()
    got = [new_request_id() for _ in range(257)]
    assert [len(read) for read in reads] == [4096, 4096]
    first, second = reads
    assert got == [binascii.b2a_hex(first[at:at + 16]) for at in range(0, 4096, 16)] + [binascii.b2a_hex(second[:16])]


@pytest.mark.parametrize("address, trusted", [
    ("10.0.0.1", True), ("10.255.255.255", True), ("11.0.0.1", False), ("fd00::1", True), ("fe80::1", False),
    ("", False), ("garbage", False),
])
def test_trusted_networks(address, trusted):
    assert POLICY.is_trusted(address) is trusted
    assert ForwardingPolicy().is_trusted(address) is False


@pytest.mark.parametrize("cidrs, address, trusted", [
    # a network written with host bits set is that network (nginx's set_real_ip_from)
    (["10.1.2.3/8"], "10.200.0.1", True), (["10.1.2.3/8"], "11.1.2.3", False),
    (["fd00::1/8"], "fdff::1", True), (["fd00::1/8"], "fc00::1", False),
    # a bare address is that one host
    (["192.0.2.1"], "192.0.2.1", True), (["192.0.2.1"], "192.0.2.2", False),
    (["2001:db8::1"], "2001:DB8:0::1", True), (["2001:db8::1"], "2001:db8::2", False),
    (["192.0.2.0/24", "2001:db8::/32"], "2001:db8:ffff::1", True), (["192.0.2.0/24", "2001:db8::/32"], "", False),
])
def test_trusted_proxies(cidrs, address, trusted):
    assert ForwardingPolicy(cidrs).is_trusted(address) is trusted


@pytest.mark.parametrize("chain, client", [
    ("203.0.113.7", "203.0.113.7"),  # the peer alone, untrusted
    ("10.1.1.1", "10.1.1.1"),  # the peer alone, trusted
    ("203.0.113.7, 10.1.1.1", "203.0.113.7"),
    ("198.51.100.1, 203.0.113.7, 10.2.2.2, 10.1.1.1", "203.0.113.7"),
    ("10.3.3.3, 10.2.2.2, 10.1.1.1", "10.3.3.3"),
    ("2001:DB8::7, fd00::9", "2001:db8::7"),
    (" 203.0.113.7 ,, 10.1.1.1 ,", "203.0.113.7"),
    ("203.0.113.7, not-an-ip, 10.2.2.2, 10.1.1.1", "10.2.2.2"),
    ("203.0.113.7, 198.51.100.1:80, 10.1.1.1", "10.1.1.1"),
    ("", ""), (" , ", ""),
])
def test_real_client(chain, client):
    assert POLICY.real_client(chain) == client


@pytest.mark.parametrize("chain", ["203.0.113.7, not-an-ip", "not-an-ip", "10.1.1.1, 198.51.100.1:80"])
def test_real_client_never_returns_a_hop_that_is_not_an_address(chain):
    # decide's chains end with a trusted peer; real_client holds the rule on its own too.
    assert POLICY.real_client(chain) == ""


@pytest.mark.parametrize("name, spoofable", [
    (b"forwarded", True), (b"x-forwarded-prefix", True), (b"x-forwarded-server", True),
    (b"x-forwarded-for", False), (b"x-forwarded-host", False), (b"x-original-forwarded-for", False),
    (b"x-original-uri", True), (b"x-rewrite-url", True), (b"x-request-id", False), (b"host", False),
    (b"x-original-url", True), (b"x-forwarded-port", False), (b"x-forwarded-proto", False),
    (b"x-forwarded-scheme", False), (b"x-forwarded-", True), (b"x-real-ip", False), (b"x-scheme", False),
    (b"x-original-forwarded-host", False), (b"expect", False), (b"x-original", False),
])
def test_is_spoofable(name, spoofable):
    assert is_spoofable(name) is spoofable


# -- the remembered lines of a request without forwarding headers (ForwardingPolicy._lines_for) --

_SETTINGS = [
    {}, {"use_forwarded_headers": True}, {"enable_real_ip": True}, {"compute_full_forwarded_for": True},
    {"compute_full_forwarded_for": True, "use_forwarded_headers": True}, {"generate_request_id": False},
    {"proxy_protocol": True}, {"proxy_protocol": True, "use_forwarded_headers": True},
    {"add_original_uri": True}, {"forwarded_for_header": "X-Client-IP"},
    {"forwarded_for_header": "X-Client-IP", "enable_real_ip": True},
    {"real_ip_cidrs": ("127.0.0.0/8",), "use_forwarded_headers": True},
]
_RIDS = [None, RID, b"", b"x" * 200, b'a"b', b"r" * 128]


def _without_rid(decision, generated: bool):
    request_id, client, scheme, upstream = decision
    if generated and upstream and upstream[0][0] == b"x-request-id":
        assert len(request_id) == 32 and upstream[0][1] == request_id.encode()
        upstream = [(b"x-request-id", b"*")] + upstream[1:]
        request_id = "*"
    return request_id, client, scheme, upstream


@pytest.mark.parametrize("settings", _SETTINGS)
@pytest.mark.parametrize("rid", _RIDS)
@pytest.mark.parametrize("peer, scheme, port, trusted", [
    ("10.1.1.1", "http", 8080, False), ("127.0.0.1", "https", 8443, True), ("fd00::1", "http", 443, True),
    ("", "https", 443, False),
])
def test_a_request_without_forwarding_headers_gets_what_the_general_steps_give(settings, rid, peer, scheme, port,
                                                                               trusted):
    remembered = ForwardingPolicy(**settings)
    general = ForwardingPolicy(**settings)
    general._same_lines = False  # every request through the general steps
    for pairs, host in (([(b"host", b"a.test"), (b"accept", b"*/*")], b"a.test"), ([], None),
                        ([(b"host", b"a.test"), (b"x-client-ip", b"1.2.3.4")], b"a.test")):
        for _ in range(2):  # the first time made, then remembered
            got = remembered.decide(Headers(list(pairs)), host, rid, False, False, peer, scheme, port, trusted, b"/u")
            expected = general.decide(Headers(list(pairs)), host, rid, False, False, peer, scheme, port, trusted,
                                      b"/u")
            generated = rid is None or rid in (b"x" * 200, b'a"b', b"")
            assert _without_rid(got, generated) == _without_rid(expected, generated)


@pytest.mark.parametrize("settings, remembered", [
    ({}, True), ({"use_forwarded_headers": True, "compute_full_forwarded_for": True}, True),
    ({"generate_request_id": False}, True), ({"proxy_protocol": True}, False), ({"add_original_uri": True}, False),
    ({"forwarded_for_header": "X-Client-IP"}, False),
])
def test_the_lines_are_remembered_per_peer_scheme_and_port_unless_a_setting_reads_more(settings, remembered):
    policy = ForwardingPolicy(**settings)
    headers = Headers([(b"host", b"a.test")])
    policy.decide(headers, b"a.test", RID, False, False, "10.1.1.1", "http", 80, False)
    policy.decide(headers, b"a.test", RID, False, False, "10.1.1.1", "http", 80, False)
    assert list(policy._lines) == ([("10.1.1.1", "http", 80)] if remembered else [])
    # a request with a forwarding or spoofable header is decided by the general steps
    policy.decide(headers, b"a.test", RID, True, False, "10.1.1.2", "http", 80, False)
    policy.decide(headers, b"a.test", RID, False, True, "10.1.1.3", "http", 80, False)
    assert len(policy._lines) == (1 if remembered else 0)
    if remembered:
        lines = policy._lines[("10.1.1.1", "http", 80)]
        assert policy.decide(headers, b"a.test", RID, False, False, "10.1.1.1", "http", 80, False)[3][1:] == \
            [lines[0], lines[1], (b"x-forwarded-host", b"a.test"), *lines[2:]]


def test_the_remembered_lines_are_bounded():
    from ingressd.proxy.forwarding import _MEMO_LIMIT

    policy = ForwardingPolicy()
    headers = Headers([(b"host", b"a.test")])
    for n in range(_MEMO_LIMIT):
        policy.decide(headers, b"a.test", RID, False, False, "10.0.%d.%d" % divmod(n, 256), "http", 80, False)
    assert len(policy._lines) == _MEMO_LIMIT
    policy.decide(headers, b"a.test", RID, False, False, "10.0.0.0", "http", 80, False)  # remembered already
    assert len(policy._lines) == _MEMO_LIMIT
    policy.decide(headers, b"a.test", RID, False, False, "10.99.0.1", "http", 80, False)  # one more: start again
    assert list(policy._lines) == [("10.99.0.1", "http", 80)]


def test_new_request_ids_are_hex_slices_of_each_4_kib_read_to_its_end(monkeypatch):
    """Each 4 KiB read is turned into hex once and cut into 256 IDs of 32 digits, in order, none
    overlapping and none left out; the 257th starts the next read. The module's generator is a
    bound method of one such generator."""
    from ingressd.proxy import forwarding

    reads = []

    def urandom(size):
        reads.append(bytes((len(reads) * 7 + i) % 256 for i in range(size)))
        return reads[-1]

    monkeypatch.setattr(os, "urandom", urandom)
    ids = _RequestIds()
    got = [ids() for _ in range(513)]
    assert len(reads) == 3 and all(len(read) == 4096 for read in reads)
    assert all(type(one) is bytes and len(one) == 32 for one in got)
    assert b"".join(got[:256]) == binascii.b2a_hex(reads[0]) and b"".join(got[256:512]) == binascii.b2a_hex(reads[1])
    assert got[512] == binascii.b2a_hex(reads[2][:16])
    assert isinstance(forwarding.new_request_id.__self__, _RequestIds)
    assert forwarding.new_request_id.__func__ is _RequestIds.__call__
