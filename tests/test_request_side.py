"""The keep-alive request side's shortcuts (issue 24, branch kreq): what each one replaces
gives the same result.

- ``Proxy.__call__`` makes the exchange with ``Exchange.__init__``'s lines inline: the same
  slots and attributes as ``Exchange(proxy, protocol, request)``.
- The plain lane names the endpoint with the pooled connection's ``address`` (its key as
  "host:port") instead of formatting it a request, and its upstream times are the exchange's
  start (the backend is asked in the call that made it).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock

from ingressd.proxy.exchange import Exchange, Proxy, ProxySettings
from ingressd.proxy.http1_upstream import HTTP1Connection, HTTP1Upstream


def _made(monkeypatch, make):
    monkeypatch.setattr(Exchange, "begin", lambda self: None)
    return make()


def _state(exchange) -> dict:
    state = {name: getattr(exchange, name) for name in Exchange.__slots__ if name not in ("__dict__", "__weakref__")}
    state.update(vars(exchange))
    state["headers"] = (type(exchange.headers), exchange.headers.pairs)
    return state


@pytest.mark.parametrize("headers", [[(b"host", b"a.example")], [], None])
def test_proxy_call_makes_the_exchange_init_makes(monkeypatch, headers):
    clock = Clock()
    clock.advance(12.5)
    proxy = Proxy(SimpleNamespace(table=None), {}, ProxySettings(), clock)
    protocol = SimpleNamespace(peer_ip="10.1.2.3", scheme="https", server_port=8443, trusted=None)
    request = SimpleNamespace(method=b"GET", version=b"1.1", headers=headers, target=b"/")
    inline = _made(monkeypatch, lambda: proxy(protocol, request))
    assert proxy.exchanges_open == 1
    made = Exchange(proxy, protocol, request)
    assert proxy.exchanges_open == 2
    assert type(inline) is Exchange
    assert _state(inline) == _state(made)
    assert inline.headers.pairs is not None
    if headers is not None:
        assert inline.headers.pairs is headers  # the request's own list, as Headers(pairs)
    assert inline.started == 12.5


@pytest.mark.parametrize("key, address", [
    (("127.0.0.1", 8080), "127.0.0.1:8080"),
    (("fd00::1", 80), "fd00::1:80"),  # as the exchange's f"{endpoint.address}:{endpoint.port}"
    (("10.0.0.1", 443, object()), "10.0.0.1:443"),  # an HTTPS pool's key: TLS settings third
])
def test_connection_address_is_the_endpoint_as_upstream_addr(key, address):
    connection = HTTP1Connection(HTTP1Upstream(Clock()), key)
    assert connection.address == address == f"{key[0]}:{key[1]}"


def test_the_plain_lane_names_the_endpoint_and_times_from_the_start(tmp_path):
    from ingressd.testing import one_route_objects, serve_in_memory
    from twisted.internet.testing import StringTransport

    service, reactor = serve_in_memory(tmp_path, one_route_objects("side.local"), "--access-log", "off")
    reactor.advance(100.25)
    pool = service.upstreams["HTTP"]
    connection = HTTP1Connection(pool, ("127.0.0.1", 8080))
    connection.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 8080)))
    connection.served = -1
    pool.release(connection)
    seen = []
    service.proxy.observers.append(seen.append)
    client = service.http_factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    client.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
                                          hostAddress=IPv4Address("TCP", "127.0.0.1", 8080)))
    client.dataReceived(b"GET /x HTTP/1.1\r\nHost: side.local\r\n\r\n")
    reactor.advance(0.5)
    connection.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    (exchange,) = seen
    assert exchange._plain
    assert exchange.upstream_address == "127.0.0.1:8080"
    assert exchange.upstream_started == exchange.upstream_connected == exchange._first_try == exchange.started
    assert exchange.started == pytest.approx(reactor.seconds() - 0.5)
    assert exchange.upstream_ended - exchange.upstream_started == pytest.approx(0.5)


# -- the plain head dispatched inside dataReceived's loop ----------------------------------------------
# What _dispatch does with a handler that raises, or that answers the request itself (returns
# None, perhaps after the next request began), is done alike inline: the same bytes, events and
# timeouts as llhttp's path (test_http1_plain_head's rig, with two more handlers).

from test_http1_plain_head import PARSERS, STREAMS, Rig as _PlainRig  # noqa: E402


class _Rig(_PlainRig):
    def __call__(self, protocol, request):
        if self.mode == "raises":
            self.events.append(("dispatch", request.target))
            raise RuntimeError("a handler's bug")
        if self.mode == "answers":  # a local response while being made: no exchange returned
            exchange = super().__call__(protocol, request)
            exchange._answer(b"local")
            return None
        return super().__call__(protocol, request)


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize("mode", ["raises", "answers"])
@pytest.mark.parametrize("stream", range(len(STREAMS)))
def test_a_handler_that_raises_or_answers_itself_alike(parse, mode, stream):
    data = STREAMS[stream]
    step = 1 if len(data) < 600 else 97
    for chunks in [[data]] + [[data[:cut], data[cut:]] for cut in range(1, len(data), step)]:
        fast = _Rig(parse, mode).feed(chunks)
        slow = _Rig(None, mode).feed(chunks)
        assert fast == slow


# -- host_of's memo read first (begin) ----------------------------------------------------------------

def test_remembered_host_reads_host_ofs_memo_only():
    from ingressd.config import routing

    header = b"Remembered.Example:8080"
    routing._HOSTS.pop(header, None)
    assert routing.remembered_host(header) is None  # not seen: begin asks host_of
    assert routing.host_of(header) == "remembered.example"
    assert routing.remembered_host(header) == "remembered.example"
    assert routing.remembered_host.__self__ is routing._HOSTS  # the memo itself, cleared in place
    routing._HOSTS.clear()
    assert routing.remembered_host(header) is None


@pytest.mark.parametrize("header", [None, b"", b":80", b"A.b.", b"[::1]:443", b"x" * 300])
def test_begins_host_is_host_ofs(header):
    from ingressd.config import routing

    routing.host_of(header)  # remembered, where host_of remembers it
    expected = routing._host_of(header) if header else ""
    assert (routing.remembered_host(header) or routing.host_of(header)) == expected


# -- the handler's call bound once a connection -------------------------------------------------------

def test_the_handler_is_called_as_given_whatever_kind_of_callable():
    from ingressd.http.http1 import HTTP1ServerProtocol, ServerSettings

    seen = []

    def function(protocol, request):
        seen.append(("function", request.target))

    class Callable_:
        def __call__(self, protocol, request):
            seen.append(("object", request.target))

    class Builtin(dict):  # a __call__ that is no Python function: called as the object
        pass

    kinds = [(function, function), (Callable_(), None), (Builtin(), None)]
    for handler, expected in kinds:
        protocol = HTTP1ServerProtocol(ServerSettings(), handler, Clock())
        assert protocol.handler is handler
        if expected is not None:
            assert protocol._handle is expected
    obj = kinds[1][0]
    bound = HTTP1ServerProtocol(ServerSettings(), obj, Clock())._handle
    assert bound.__self__ is obj and bound.__func__ is type(obj).__call__
    assert HTTP1ServerProtocol(ServerSettings(), kinds[2][0], Clock())._handle is kinds[2][0]
    for handler, _ in kinds[:2]:
        rig = _Rig(None)
        rig.protocol = HTTP1ServerProtocol(ServerSettings(), handler, rig.clock)
        from twisted.internet.testing import StringTransport
        rig.protocol.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5555),
                                                    hostAddress=IPv4Address("TCP", "127.0.0.1", 8080)))
        rig.protocol.dataReceived(b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n")
    assert seen == [("function", b"/k"), ("object", b"/k")]


# -- RoundRobin.pick's first try without the loop -----------------------------------------------------

def _pick_by_the_loop(balancer, exclude=()):
    """RoundRobin.pick as it was: the loop for every pick."""
    endpoints = balancer.endpoints
    count = len(endpoints)
    if not count:
        return None
    start = balancer._next
    for _ in range(count):
        endpoint = endpoints[balancer._next % count]
        balancer._next += 1
        if endpoint not in exclude:
            return endpoint
    balancer._next = start + 1
    return endpoints[start % count]


@given(st.integers(0, 5), st.lists(st.tuples(st.booleans(), st.sets(st.integers(0, 5))), max_size=30))
def test_round_robin_picks_as_the_loop_did(count, picks):
    from ingressd.features import RoundRobin

    endpoints = [f"10.0.0.{n}" for n in range(count)]
    fast, slow = RoundRobin(endpoints), RoundRobin(endpoints)
    for empty, excluded in picks:
        exclude = () if empty else tuple(endpoints[n] for n in excluded if n < count)
        assert fast.pick(exclude) == _pick_by_the_loop(slow, exclude)
        assert fast._next == slow._next
    assert fast.pick() == _pick_by_the_loop(slow)
