"""HTTP/2 with prior knowledge (h2c) on the cleartext listener, in memory: a connection whose
first bytes are the HTTP/2 preface becomes ``H2ServerProtocol``; anything else stays HTTP/1.1
(``http1.HTTP1ServerProtocol._read_preface``, ``http2.PriorKnowledge``)."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.drain import ConnectionSet
from ingressd.http.http1 import PREFACE, HTTP1Factory, ServerSettings
from ingressd.http.http2 import H2ServerProtocol, PriorKnowledge


class Handler:
    """Answers every request 200 with the protocol version it came over."""

    def __init__(self):
        self.requests = []

    def __call__(self, protocol, request):
        self.requests.append(request)
        body = b"version " + request.version
        protocol.write_head(200, [(b"content-type", b"text/plain")], len(body))
        protocol.write_body(body)
        protocol.finish_response()
        return None


class Listener:
    """One connection on the plain listener's factory, over a StringTransport."""

    def __init__(self, enabled=True, with_prior_knowledge=True, **settings):
        self.clock = Clock()
        self.handler = Handler()
        self.factory = HTTP1Factory(self.handler, ServerSettings(**settings), self.clock, scheme="http")
        self.prior = PriorKnowledge(self.factory, enabled=enabled) if with_prior_knowledge else None
        self.protocol = self.factory.buildProtocol(None)
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.9", 5555),
                                         hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def output(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data


def client():
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    connection.initiate_connection()
    return connection


def get(connection, path=b"/"):
    stream_id = connection.get_next_available_stream_id()
    connection.send_headers(stream_id, [(b":method", b"GET"), (b":scheme", b"http"),
                                        (b":authority", b"example.com"), (b":path", path)], end_stream=True)
    return stream_id


def responses(connection, data):
    events = connection.receive_data(data)
    return {event.stream_id: event for event in events if isinstance(event, h2.events.ResponseReceived)}, events


def test_the_preface_makes_the_connection_http2():
    listener = Listener()
    h2client = client()
    stream_id = get(h2client)
    listener.send(h2client.data_to_send())
    answered, events = responses(h2client, listener.output())
    assert dict(answered[stream_id].headers)[b":status"] == b"200"
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert body == b"version 2"
    (request,) = listener.handler.requests
    assert request.target == b"/"
    assert isinstance(listener.protocol._http2, H2ServerProtocol)
    assert listener.protocol._http2.scheme == "http"


@pytest.mark.parametrize("sizes", [(1,), (3,), (5, 7), (23,), (24,), (10, 10, 10)])
def test_a_preface_split_over_several_reads(sizes):
    listener = Listener()
    h2client = client()
    stream_id = get(h2client)
    data = h2client.data_to_send()
    at = 0
    for size in sizes:
        listener.send(data[at:at + size])
        assert listener.output() == b"" or at + size >= len(PREFACE)
        at += size
    listener.send(data[at:])
    answered, _ = responses(h2client, listener.output())
    assert dict(answered[stream_id].headers)[b":status"] == b"200"


def test_several_streams_on_the_h2c_connection():
    listener = Listener()
    h2client = client()
    ids = [get(h2client, b"/%d" % n) for n in range(3)]
    listener.send(h2client.data_to_send())
    answered, _ = responses(h2client, listener.output())
    assert sorted(answered) == ids
    assert [r.target for r in listener.handler.requests] == [b"/0", b"/1", b"/2"]


def test_http1_is_unchanged_with_prior_knowledge_offered():
    listener = Listener()
    listener.send(b"GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n")
    out = listener.output()
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert out.endswith(b"version 1.1")
    assert listener.protocol._http2 is None


@pytest.mark.parametrize("first", [b"P", b"PR", b"PRI * HTTP/2.0\r\n"])
def test_bytes_that_diverge_from_the_preface_are_http1(first):
    # a prefix of the preface is held; when the next bytes diverge, everything is HTTP/1.1
    listener = Listener()
    listener.send(first)
    assert listener.output() == b""
    rest = {b"P": b"OST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            b"PR": b"X / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"PRI * HTTP/2.0\r\n": b"Host: a\r\n\r\n"}[first]
    listener.send(rest)
    out = listener.output()
    if first == b"P":
        assert out.startswith(b"HTTP/1.1 200 OK\r\n")
        assert listener.handler.requests[0].method == b"POST"
    else:
        assert out.startswith(b"HTTP/1.1 400 ")
        assert listener.handler.requests == []


def test_off_the_preface_gets_http1s_400():
    listener = Listener(enabled=False)
    listener.send(PREFACE)
    assert listener.output().startswith(b"HTTP/1.1 400 ")
    assert listener.protocol._http2 is None


def test_without_prior_knowledge_the_preface_gets_http1s_400():
    listener = Listener(with_prior_knowledge=False)
    listener.send(PREFACE)
    assert listener.output().startswith(b"HTTP/1.1 400 ")


def test_enabled_is_read_as_each_connection_opens():
    listener = Listener(enabled=False)
    listener.prior.enabled = True
    second = listener.factory.buildProtocol(None)
    second.makeConnection(StringTransport())
    h2client = client()
    get(h2client)
    second.dataReceived(h2client.data_to_send())
    assert isinstance(second._http2, H2ServerProtocol)
    listener.send(PREFACE)  # opened while off: HTTP/1.1
    assert listener.output().startswith(b"HTTP/1.1 400 ")


def test_a_preface_that_stops_half_way_is_closed_at_the_header_timeout_without_an_answer():
    listener = Listener(header_timeout=7)
    listener.send(PREFACE[:10])
    listener.clock.advance(6.9)
    assert not listener.transport.disconnecting
    listener.clock.advance(0.2)
    assert listener.transport.disconnecting
    assert listener.output() == b""


def test_an_http1_request_after_a_held_p_still_gets_the_408():
    listener = Listener(header_timeout=7)
    listener.send(b"P")
    listener.send(b"OST / HTTP/1.1\r\n")  # the head never ends
    listener.clock.advance(7.1)
    assert listener.output().startswith(b"HTTP/1.1 408 ")


def test_the_connection_moves_from_the_http1_set_to_the_http2_set():
    listener = Listener()
    assert listener.protocol in listener.factory.live.live
    h2client = client()
    listener.send(h2client.data_to_send())
    assert listener.protocol not in listener.factory.live.live
    assert listener.protocol._http2 in listener.prior.live.live
    assert listener.transport.producer is listener.protocol._http2


def test_the_end_of_the_connection_reaches_the_http2_side():
    listener = Listener()
    h2client = client()
    listener.send(h2client.data_to_send())
    connections = listener.factory.connections
    listener.protocol.connectionLost(None)
    assert listener.protocol._http2.closed
    assert listener.prior.live.live == set()
    assert listener.factory.connections == connections - 1


def test_the_http2_side_uses_the_listeners_limits():
    listener = Listener(http2_max_concurrent_streams=7)
    h2client = client()
    listener.send(h2client.data_to_send())
    _, events = responses(h2client, listener.output())
    (changed,) = [e for e in events if isinstance(e, h2.events.RemoteSettingsChanged)]
    assert changed.changed_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS].new_value == 7


def test_prior_knowledge_attaches_itself_to_the_factory():
    factory = HTTP1Factory(Handler(), ServerSettings(), Clock())
    assert factory.prior_knowledge is None
    prior = PriorKnowledge(factory, enabled=True, websocket=False)
    assert factory.prior_knowledge is prior
    assert isinstance(prior.live, ConnectionSet)
    assert prior.build().websocket is False


def test_the_server_offers_h2c_on_the_plain_listener_under_use_http2_live():
    from test_configmap_http import _service

    service, put = _service()
    assert service.http_factory.prior_knowledge is service.prior_knowledge
    put({})
    assert service.prior_knowledge.enabled
    put({"use-http2": "false"})
    assert not service.prior_knowledge.enabled
    put({})
    assert service.prior_knowledge.enabled


def test_no_http2_turns_h2c_off_too():
    from test_configmap_http import _service

    service, put = _service("--no-http2")
    put({})
    assert not service.prior_knowledge.enabled
