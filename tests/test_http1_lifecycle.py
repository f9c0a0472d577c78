"""The HTTP/1.1 connection's own set-up: its state starts as class attributes (set on the
connection only when it changes; the few every request reads are slots, set at once) and llhttp's
parser is made only when a request needs it."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.http import http1
from ingressd.http.http1 import HTTP1Factory, HTTP1ServerProtocol, ServerSettings


class Answer:
    def __init__(self, protocol, request):
        self.protocol = protocol

    def body_data(self, data):
        pass

    def body_done(self):
        self.protocol.write_head(200, [], 2)
        self.protocol.write_body(b"ok")
        self.protocol.finish_response()

    def client_lost(self):
        pass


def connect(**settings):
    factory = HTTP1Factory(Answer, ServerSettings(**settings), clock=Clock())
    protocol = factory.buildProtocol(IPv4Address("TCP", "10.1.2.3", 5555))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.1.2.3", 5555),
                                hostAddress=IPv4Address("TCP", "10.0.0.1", 8080))
    protocol.makeConnection(transport)
    return protocol, transport


def test_a_new_connection_sets_few_attributes_of_its_own():
    protocol, _ = connect()
    assert len(vars(protocol)) <= 30  # CPython shares the names of up to 30 (no dict of its own)
    assert protocol.closed is False and protocol._requests == 0 and protocol._active is None


def test_state_set_on_one_connection_is_its_own():
    first, _ = connect()
    second, _ = connect()
    first._requests += 1
    first._draining = True
    assert (first._requests, first._draining) == (1, True)
    assert (second._requests, second._draining) == (0, False)
    assert HTTP1ServerProtocol._requests == 0 and second._draining is False


def test_plain_requests_never_make_llhttps_parser():
    if HTTP1ServerProtocol.parse_plain_head is None:  # (no one-call head: llhttp reads every request)
        return
    protocol, transport = connect()
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert transport.value().count(b"HTTP/1.1 200 ") == 2
    assert "parser" not in vars(protocol)


def test_a_request_llhttp_reads_makes_the_parser_once():
    protocol, transport = connect()
    protocol.dataReceived(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
    parser = vars(protocol)["parser"]
    assert parser is protocol.parser  # made once, kept on the connection
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert protocol.parser is parser and transport.value().count(b"HTTP/1.1 200 ") == 2


def test_a_partial_head_goes_to_llhttp_as_before():
    protocol, transport = connect()
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHo")
    protocol.dataReceived(b"st: a\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 200 ")


def test_the_closed_connection_lets_the_parser_go():
    protocol, _ = connect()
    protocol.dataReceived(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
    protocol.connectionLost(None)
    assert protocol.parser is None


def test_the_parser_descriptor_on_the_class():
    assert isinstance(HTTP1ServerProtocol.parser, http1._ParserWhenAsked)


def test_what_every_request_reads_is_in_slots_set_at_once():
    # (CPython 3.11 does not specialise a class attribute's read through an instance, which
    # costs ~200 instructions more each time; slots add no names to the connection's dict)
    protocol, _ = connect()
    values = {name: getattr(protocol, name) for name in HTTP1ServerProtocol.__slots__}
    assert values == {"closed": False, "_receiver": None, "_deferred_reject": None, "_plain_closed": False,
                      "_draining": False, "_reading_paused": False, "_corked": 0, "trusted": None}
    assert not set(HTTP1ServerProtocol.__slots__) & set(vars(protocol))
