"""PROXY protocol v1 and v2 (ingressd.http.proxy_protocol): the parser on its own, fuzzed,
then the listener wrapper in memory: the header split across packets, missing, late or
malformed; trusted and untrusted sources; TLS's ClientHello peek and TLS passthrough see
only the bytes after it.

Header bytes follow haproxy's doc/proxy-protocol.txt (the specification AWS NLB,
Hetzner's and DigitalOcean's load balancers and HAProxy implement).
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings, strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.http.proxy_protocol import (
    LOCAL, MAX_V1, MAX_V2, MORE, PROXY, V2_SIGNATURE, InvalidHeader, ProxyProtocolFactory, parse,
)
from ingressd.proxy.forwarding import ForwardingPolicy


def v2(command=1, family=0x11, addresses=None, tlvs=b"", version=2, length=None):
    """A v2 header; ``addresses`` the raw address block (default: 192.0.2.1:5000 → 10.0.0.1:443)."""
    if addresses is None:
        addresses = {0x1: ipaddress.IPv4Address("192.0.2.1").packed + ipaddress.IPv4Address("10.0.0.1").packed
                     + struct.pack("!HH", 5000, 443),
                     0x2: ipaddress.IPv6Address("2001:db8::1").packed + ipaddress.IPv6Address("fd00::1").packed
                     + struct.pack("!HH", 5000, 443),
                     0x3: b"/tmp/src".ljust(108, b"\0") + b"/tmp/dst".ljust(108, b"\0"),
                     0x0: b""}.get(family >> 4, b"")
    body = addresses + tlvs
    size = len(body) if length is None else length
    return V2_SIGNATURE + bytes([(version << 4) | command, family]) + struct.pack("!H", size) + body


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


# -- v1 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("line, source, destination", [
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", ("192.168.0.1", 56324), ("192.168.0.11", 443)),
    (b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n", ("2001:db8::1", 1), ("::1", 65535)),
    (b"PROXY TCP6 2001:DB8:0::1 ::1 0 80\r\n", ("2001:db8::1", 0), ("::1", 80)),
    (b"PROXY UNKNOWN\r\n", None, None),
    (b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", None, None),
])
def test_v1(line, source, destination):
    header = parse(line + b"GET / HTTP/1.1\r\n")
    assert (header.version, header.command, header.length) == (1, PROXY, len(line))
    assert (header.source, header.destination) == (source, destination)


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n",  # a port missing
    b"PROXY TCP4 192.168.0.1  192.168.0.11 56324 443\r\n",  # two spaces
    b"PROXY TCP4 2001:db8::1 192.168.0.11 56324 443\r\n",  # the family's address
    b"PROXY TCP6 192.168.0.1 ::1 56324 443\r\n",
    b"PROXY TCP4 192.168.000.1 192.168.0.11 56324 443\r\n",  # leading zeros
    b"PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n",
    b"PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n",
    b"PROXY TCP4 192.168.0.1 192.168.0.11 -1 443\r\n",
    b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 extra\r\n",
    b"PROXY UDP4 192.168.0.1 192.168.0.11 56324 443\r\n",
    b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
    b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n",  # LF alone
    b"PROXY UNKNOWN" + b"x" * 100 + b"\r\n",  # longer than 107 bytes
    b"proxy TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
    b"GET / HTTP/1.1\r\n",  # no header at all
    b"\x16\x03\x01\x02\x00",  # TLS without one
])
def test_v1_invalid(line):
    with pytest.raises(InvalidHeader):
        parse(line)


def test_v1_at_the_length_limit():
    line = b"PROXY UNKNOWN " + b"x" * (MAX_V1 - 16) + b"\r\n"
    assert len(line) == MAX_V1 and parse(line).length == MAX_V1
    with pytest.raises(InvalidHeader):
        parse(b"PROXY UNKNOWN " + b"x" * (MAX_V1 - 15) + b"\r\n")


def test_every_prefix_asks_for_more():
    for whole in (b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
                  v2(tlvs=tlv(0x02, b"example.com"))):
        for cut in range(len(whole)):
            assert parse(whole[:cut]) is MORE, cut
        assert parse(whole).length == len(whole)


# -- v2 ----------------------------------------------------------------------------------------------


def test_v2_inet_and_inet6():
    header = parse(v2() + b"rest")
    assert (header.version, header.command, header.length) == (2, PROXY, 16 + 12)
    assert (header.source, header.destination) == (("192.0.2.1", 5000), ("10.0.0.1", 443))
    header = parse(v2(family=0x21))
    assert (header.source, header.destination) == (("2001:db8::1", 5000), ("fd00::1", 443))


@pytest.mark.parametrize("data", [
    v2(command=0),  # LOCAL: the balancer's health check
    v2(command=0, family=0x00),
    v2(family=0x00),  # UNSPEC
    v2(family=0x31),  # UNIX: no IP address to use
    v2(family=0x12),  # UDP over INET: only the family is read, as nginx
])
def test_v2_without_usable_addresses_keeps_the_connections(data):
    header = parse(data)
    assert header.length == len(data)
    if data[12] & 0x0F == 0:
        assert header.command == LOCAL and header.source is None
    elif data[13] >> 4 in (0, 3):
        assert header.source is None and header.destination is None


def test_v2_tlvs():
    ssl = tlv(0x20, b"\x01" + b"\x00\x00\x00\x00" + tlv(0x21, b"TLSv1.3") + tlv(0x22, b"client.example")
              + tlv(0x25, b"RSA2048"))
    aws = tlv(0xEA, b"\x01vpce-0123456789abcdef0")
    tlvs = tlv(0x01, b"h2") + tlv(0x02, b"app.example") + tlv(0x05, b"id-1") + tlv(0x04, b"\0" * 5) + ssl + aws
    header = parse(v2(tlvs=tlvs))
    assert (header.alpn, header.authority, header.unique_id) == (b"h2", "app.example", b"id-1")
    assert (header.ssl_version, header.ssl_cn) == ("TLSv1.3", "client.example")
    assert [kind for kind, _ in header.tlvs] == [0x01, 0x02, 0x05, 0x04, 0x20, 0xEA]  # unknown ones kept, unread
    assert header.source == ("192.0.2.1", 5000)


@pytest.mark.parametrize("data", [
    v2(version=1), v2(version=3),
    v2(command=2), v2(command=0xF),
    v2(family=0x41), v2(family=0x13),
    v2(tlvs=b"\x02\x00"),  # a TLV head cut short
    v2(tlvs=b"\x02\x00\x10abc"),  # a TLV longer than what is left
    v2(tlvs=tlv(0x02, b"bad host\r\n")),  # authority that is not visible ASCII
    v2(tlvs=tlv(0x05, b"x" * 129)),  # unique id over 128 bytes
    v2(tlvs=tlv(0x20, b"\x01\x00")),  # an SSL TLV shorter than its fixed part
    v2(tlvs=tlv(0x20, b"\x01\x00\x00\x00\x00\x21\x00\x09TLS")),  # an SSL sub-TLV running past it
    v2(family=0x21, addresses=b"\0" * 20),  # shorter than its addresses
    v2(family=0x11, addresses=b"\0" * 11),
])
def test_v2_invalid(data):
    with pytest.raises(InvalidHeader):
        parse(data)


def test_v2_length_is_bounded():
    big = v2(tlvs=tlv(0x04, b"\0" * (MAX_V2 - 16 - 12 - 3)))
    assert parse(big).length == MAX_V2
    with pytest.raises(InvalidHeader):
        parse(v2(tlvs=tlv(0x04, b"\0" * (MAX_V2 - 16 - 12 - 2))))
    # announced too long: refused at once, not waited for
    with pytest.raises(InvalidHeader):
        parse(V2_SIGNATURE + b"\x21\x11\xff\xff")


addresses_v4 = st.tuples(st.ip_addresses(v=4), st.ip_addresses(v=4), st.integers(0, 65535), st.integers(0, 65535))
addresses_v6 = st.tuples(st.ip_addresses(v=6), st.ip_addresses(v=6), st.integers(0, 65535), st.integers(0, 65535))
tlv_lists = st.lists(st.tuples(st.integers(0x06, 0x1F) | st.integers(0x30, 0xFF), st.binary(max_size=40)),
                     max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.one_of(addresses_v4, addresses_v6), tlv_lists, st.binary(max_size=30), st.booleans())
def test_v1_and_v2_round_trip(addresses, tlvs, rest, text):
    source, destination, sport, dport = addresses
    if text:
        family = b"TCP4" if source.version == 4 else b"TCP6"
        data = b"PROXY %s %s %s %d %d\r\n" % (family, str(source).encode(), str(destination).encode(), sport, dport)
    else:
        block = source.packed + destination.packed + struct.pack("!HH", sport, dport)
        data = v2(family=0x11 if source.version == 4 else 0x21, addresses=block,
                  tlvs=b"".join(tlv(kind, value) for kind, value in tlvs))
    header = parse(data + rest)
    assert header.length == len(data)
    assert header.source == (str(source), sport) and header.destination == (str(destination), dport)
    if not text:
        assert list(header.tlvs) == tlvs
    for cut in range(0, len(data), 7):
        assert parse(data[:cut]) is MORE


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 400), st.integers(0, 255))
def test_any_bytes_and_any_damage_give_a_header_more_or_invalid_header(noise, position, value):
    for data in (noise, V2_SIGNATURE + noise, b"PROXY " + noise):
        try:
            result = parse(data)
        except InvalidHeader:
            continue
        assert result is MORE or 0 < result.length <= len(data)
    damaged = bytearray(v2(tlvs=tlv(0x02, b"app.example") + tlv(0x20, b"\x01\0\0\0\0" + tlv(0x21, b"TLSv1.2"))))
    if position < len(damaged):
        damaged[position] = value
    try:
        result = parse(bytes(damaged))
    except InvalidHeader:
        return
    assert result is MORE or 0 < result.length <= len(damaged)


# -- the listener wrapper -----------------------------------------------------------------------------


class Recorder(Protocol):
    def __init__(self, factory):
        self.factory = factory
        self.data = b""

    def connectionMade(self):
        self.factory.made.append(self)

    def dataReceived(self, data):
        self.data += data


class RecorderFactory(Factory):
    def __init__(self):
        self.made: list[Recorder] = []
        self.addrs = []

    def buildProtocol(self, addr):
        self.addrs.append(addr)
        return Recorder(self)


def connect(policy, peer="10.1.1.1", clock=None):
    clock = clock or Clock()
    inner = RecorderFactory()
    factory = ProxyProtocolFactory(inner, lambda: policy, clock)
    protocol = factory.buildProtocol(IPv4Address("TCP", peer, 40000))
    transport = StringTransport(hostAddress=IPv4Address("TCP", "10.0.0.1", 8080),
                                peerAddress=IPv4Address("TCP", peer, 40000))
    transport.protocol = protocol  # as a Twisted TCP transport holds its protocol
    protocol.makeConnection(transport)
    return factory, inner, transport, clock


def feed(transport, data):
    transport.protocol.dataReceived(data)


PP = ForwardingPolicy(proxy_protocol=True)


def test_without_proxy_protocol_the_wrapped_factory_builds_the_protocol():
    factory, inner, transport, clock = connect(ForwardingPolicy())
    assert isinstance(transport.protocol, Recorder) and not clock.getDelayedCalls()


def test_a_header_split_across_packets_then_the_rest_goes_to_the_protocol():
    line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 1234\r\n"
    factory, inner, transport, clock = connect(PP)
    for at in range(0, len(line) - 1, 5):
        feed(transport, line[at:min(at + 5, len(line) - 1)])
    assert inner.made == [] and clock.getDelayedCalls()
    feed(transport, line[-1:] + b"GET / HTTP/1.1\r\n")
    [protocol] = inner.made
    assert transport.protocol is protocol and not clock.getDelayedCalls()
    assert protocol.data == b"GET / HTTP/1.1\r\n"
    assert (protocol.transport.getPeer().host, protocol.transport.getPeer().port) == ("192.168.0.1", 56324)
    assert (protocol.transport.getHost().host, protocol.transport.getHost().port) == ("192.168.0.11", 1234)
    assert inner.addrs[0].host == "192.168.0.1" and factory.proxied == 1
    protocol.transport.write(b"answer")
    assert transport.value() == b"answer"  # the transport's own write, bound directly
    feed(transport, b"more")
    assert protocol.data.endswith(b"more")


def test_the_header_and_the_data_in_one_packet():
    factory, inner, transport, _ = connect(PP)
    feed(transport, v2(family=0x21) + b"\x16\x03\x01")
    [protocol] = inner.made
    assert protocol.data == b"\x16\x03\x01" and protocol.transport.getPeer().host == "2001:db8::1"


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",  # no header
    b"\x16\x03\x01\x00\x05hello",  # TLS without one
    v2(tlvs=b"\x02\x00\x10abc"),  # a malformed v2 TLV
    b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 1234\n",
])
def test_a_connection_without_a_valid_header_is_closed(data):
    factory, inner, transport, clock = connect(PP)
    feed(transport, data)
    assert inner.made == [] and transport.disconnecting and factory.refused == 1
    assert not clock.getDelayedCalls() and factory.last_refusal
    feed(transport, b"more")  # bytes arriving before the close completes are ignored
    assert inner.made == []


def test_a_header_after_the_timeout():
    factory, inner, transport, clock = connect(ForwardingPolicy(proxy_protocol=True, proxy_protocol_timeout=5))
    feed(transport, b"PROXY TCP4 ")
    clock.advance(4.9)
    assert not transport.disconnecting
    clock.advance(0.2)
    assert transport.disconnecting and factory.refused == 1
    feed(transport, b"192.168.0.1 192.168.0.11 56324 1234\r\n")
    assert inner.made == []


def test_a_header_from_an_untrusted_source_is_read_but_not_believed():
    policy = ForwardingPolicy(proxy_protocol=True, real_ip_cidrs=["10.0.0.0/8"])
    factory, inner, transport, _ = connect(policy, peer="198.51.100.7")
    feed(transport, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 1234\r\nGET")
    [protocol] = inner.made
    assert protocol.transport is transport and protocol.transport.getPeer().host == "198.51.100.7"
    assert protocol.data == b"GET" and factory.proxied == 0
    # ... and must still be there
    factory, inner, transport, _ = connect(policy, peer="198.51.100.7")
    feed(transport, b"GET / HTTP/1.1\r\n")
    assert inner.made == [] and transport.disconnecting


@pytest.mark.parametrize("data", [v2(command=0), b"PROXY UNKNOWN\r\n", v2(family=0x31)])
def test_local_and_unknown_keep_the_connections_addresses(data):
    factory, inner, transport, _ = connect(PP)
    feed(transport, data + b"x")
    [protocol] = inner.made
    assert protocol.transport is transport and protocol.data == b"x"


def test_a_connection_lost_while_reading_stops_the_timer():
    factory, inner, transport, clock = connect(PP)
    feed(transport, b"PRO")
    transport.protocol.connectionLost(None)
    assert not clock.getDelayedCalls() and inner.made == []


# -- TLS: the ClientHello peek and passthrough see the bytes after the header -------------------------


class Passthrough:
    def __init__(self, take: bool):
        self.take = take
        self.seen = []

    def divert(self, name, transport, held):
        self.seen.append((name, held, transport.getPeer().host))
        return self if self.take else None

    def client_data(self, data):
        self.seen.append(("data", data))

    def client_lost(self):
        pass


def tls_listener(passthrough, policy=PP):
    from ingressd.tls.certificates import CertificateStore
    from ingressd.tls.facts import ObservedTLSFactory

    clock = Clock()
    tls = ObservedTLSFactory(CertificateStore(alpn=False).server_options(), False, RecorderFactory(), clock=clock, hello_timeout=10, passthrough=passthrough)
    factory = ProxyProtocolFactory(tls, lambda: policy, clock)
    protocol = factory.buildProtocol(IPv4Address("TCP", "10.1.1.1", 40000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.1.1.1", 40000))
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return transport, client_hello("app.example")


def client_hello(name: str) -> bytes:
    """A real ClientHello, as Python's ssl (OpenSSL) sends it."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def test_passthrough_gets_the_client_hello_without_the_header():
    passthrough = Passthrough(take=True)
    transport, hello = tls_listener(passthrough)
    feed(transport, v2()[:10])
    feed(transport, v2()[10:] + hello[:20])
    assert passthrough.seen == []  # the hello is not complete yet
    feed(transport, hello[20:])
    assert passthrough.seen == [("app.example", hello, "192.0.2.1")]
    feed(transport, b"later")
    assert passthrough.seen[-1] == ("data", b"later")


def test_the_client_hello_peek_waits_behind_the_header():
    # Not taken over: the name read from the hello after the header is what the TLS
    # connection is created for (the hello timer only starts once the header is read).
    passthrough = Passthrough(take=False)
    transport, hello = tls_listener(passthrough)
    feed(transport, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n" + hello[:30])
    assert passthrough.seen == []
    feed(transport, hello[30:])
    assert passthrough.seen == [("app.example", hello, "192.168.0.1")]
