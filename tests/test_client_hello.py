"""The SNI name read from a ClientHello before OpenSSL sees it (ingressd.tls.client_hello)."""

from __future__ import annotations

import ssl

from hypothesis import given, settings, strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.tls.client_hello import MAX_HELLO, MORE, ClientHelloFirst, server_name


def hello(name: str | None, version=ssl.TLSVersion.TLSv1_3) -> bytes:
    """A real ClientHello, as Python's ssl (OpenSSL) sends it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = version
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def split_into_records(record: bytes, at: int) -> bytes:
    """The same handshake message carried by two TLS records (a legal fragmentation)."""
    body = record[5:]
    first, second = body[:at], body[at:]
    head = record[:3]
    return (head + len(first).to_bytes(2, "big") + first) + (head + len(second).to_bytes(2, "big") + second)


def test_the_name_of_real_hellos_lower_case():
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        assert server_name(hello("App.Example", version)) == "app.example"
        assert server_name(hello("a.b.example.", version)) == "a.b.example"
        assert server_name(hello(None, version)) is None  # no SNI
        assert server_name(hello("192.0.2.1", version)) is None  # an IP literal sends no SNI


def test_more_is_asked_for_until_the_hello_is_complete():
    data = hello("app.example")
    for cut in (0, 1, 4, 5, 9, len(data) // 2, len(data) - 1):
        assert server_name(data[:cut]) is MORE, cut
    assert server_name(data) == "app.example"


def test_a_hello_over_two_records():
    data = hello("app.example")
    for at in (1, 3, 4, 40, len(data) - 10):
        joined = split_into_records(data, at)
        assert server_name(joined) == "app.example", at
        assert server_name(joined[:-1]) is MORE


def test_what_is_not_a_client_hello_has_no_name():
    assert server_name(b"GET / HTTP/1.1\r\n") is None  # plain HTTP on the TLS port
    assert server_name(b"\x16\x03\x01\x00\x00") is None  # an empty record
    assert server_name(b"\x16\x03\x01\x00\x04\x02\x00\x00\x00") is None  # a ServerHello
    assert server_name(b"\x16\x03\x01\xff\xff") is None  # a record larger than is waited for
    huge = b"\x16\x03\x01\x00\x04\x01" + (MAX_HELLO + 1).to_bytes(3, "big")
    assert server_name(huge) is None  # a hello announced larger than is waited for


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(min_value=0, max_value=2000))
def test_any_bytes_and_any_damage_never_raise(noise, position):
    assert server_name(noise) in (None, MORE) or isinstance(server_name(noise), str)
    data = bytearray(hello("app.example"))
    if position < len(data):
        data[position] ^= 0xFF
    result = server_name(bytes(data))
    assert result is MORE or result is None or isinstance(result, str)


class Factory:
    def __init__(self, clock):
        self.clock, self.hello_timeout = clock, 10.0
        self.created = []

    def _creatorCallable(self, protocol):  # what TLSMemoryBIOProtocol.makeConnection asks
        self.created.append(protocol.server_name_hint)
        raise _Stop


class _Stop(Exception):
    pass


def protocol(clock):
    factory = Factory(clock)
    proto = ClientHelloFirst.__new__(ClientHelloFirst)
    proto.factory = factory
    return proto, factory


def test_the_connection_is_created_once_the_hello_is_there_with_its_name():
    clock = Clock()
    proto, factory = protocol(clock)
    transport = StringTransport()
    proto.makeConnection(transport)
    data = hello("app.example")
    proto.dataReceived(data[:7])
    assert factory.created == []  # still waiting
    try:
        proto.dataReceived(data[7:])
    except _Stop:
        pass
    assert factory.created == ["app.example"]
    assert not clock.getDelayedCalls()  # the hello timer is gone


def test_a_client_that_sends_no_hello_is_dropped_after_the_timeout():
    clock = Clock()
    proto, factory = protocol(clock)
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"\x16\x03")
    clock.advance(9.9)
    assert not transport.disconnecting
    clock.advance(0.2)
    assert transport.disconnected or transport.disconnecting
