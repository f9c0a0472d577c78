"""The Exchange in memory: a fake client side and fake backend connections (the interfaces of
ingressd/interfaces.py), no sockets: routing, features, forwarding, errors, retries, keep-alive."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from ingressd.config.entries import RouteEntry
from ingressd.features import LocalResponse, Phase, UpstreamSettings
from ingressd.http.http1 import Request
from ingressd.config.model import Backend, Endpoint, ObjectRef, Route
from ingressd.proxy.exchange import Proxy, ProxySettings
from ingressd.config.routing import RouteTable
from ingressd.http.headers import serialize
from ingressd.proxy.upstream import UpstreamError

ONE, TWO = Endpoint("10.0.0.1", 8080), Endpoint("10.0.0.2", 8080)


class FakeClient:
    """interfaces.ClientSide, recording what the exchange writes."""

    def __init__(self, scheme="http", peer="192.0.2.7"):
        self.peer_ip, self.scheme, self.server_port = peer, scheme, 80
        self.closed = False
        self.trusted = None
        self.passes_backend_server = False
        self.head = None
        self.body = b""
        self.finished = self.aborted = self.keep_alive_off = self.continued = False
        self.paused = 0

    def tls(self):
        return ("", "")

    def write_head(self, status, headers, length, reason=None):
        self.head = (status, list(headers), length)

    def write_body(self, data):
        self.body += data

    def finish_response(self):
        self.finished = True

    def close_after_response(self):
        self.keep_alive_off = True

    def abort(self):
        self.aborted = True

    def send_continue(self):
        self.continued = True

    def pause_reading(self):
        self.paused += 1

    def resume_reading(self):
        self.paused -= 1

    def body_progress(self):
        pass

    def body_finished(self):
        pass

    def cork(self):
        pass

    def uncork(self):
        pass

    def divert(self, receiver):
        self.receiver = receiver

    raw = b""

    def write_raw(self, data):
        self.raw += data

    def own_headers(self):
        return b"server: ingressd\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"

    tunnel_accepted = True  # what accept_tunnel answers (False: an HTTP/2 side refusing the handshake)

    def accept_tunnel(self, headers):
        if not self.tunnel_accepted:
            return False
        self.raw += b"HTTP/1.1 101 Switching Protocols\r\n" + self.own_headers() + serialize(headers) + b"\r\n"
        return True

    def lose_connection(self):
        self.closed = True

    def header(self, name):
        return [value for key, value in self.head[1] if key == name]


class FakeConnection:
    """interfaces.UpstreamConnection: what the exchange sends, and the response we play."""

    def __init__(self, pool, endpoint, reused=False):
        self.pool, self.endpoint, self.reused = pool, endpoint, reused
        self.response_headers = []
        self.sent = b""  # the request as the exchange described it, in HTTP/1 form, and its body
        self.body_length = "not started"
        self.aborted = self.closed = self.ended = False
        self.exchange = None

    def start(self, exchange, method, target, headers, body_length, read_timeout, send_timeout, version=b"1.1"):
        self.exchange, self.timeouts, self.body_length = exchange, (read_timeout, send_timeout), body_length
        self.sent += b"%s %s HTTP/%s\r\n%s\r\n" % (method, target, version, serialize(headers))

    def send_body(self, data):
        self.sent += data

    def end_body(self):
        self.ended = True

    def write_raw(self, data):
        self.sent += data

    def release(self):
        self.pool.released.append(self)

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass

    def abort(self):
        self.aborted = True

    def close(self):
        self.closed = True

    def divert(self, tunnel):
        self.tunnel = tunnel

    def respond(self, status, headers=(), body=b"", reusable=True):
        self.response_headers = [(k.lower(), v) for k, v in headers]
        length = len(body)
        self.exchange.upstream_head(self, status, self.response_headers, length)
        if body:
            self.exchange.upstream_body(body)
        self.exchange.upstream_done(self, reusable)


class FakePool:
    """interfaces.UpstreamProtocol: connections are handed over when the test says."""

    def __init__(self, name="HTTP"):
        self.name = name
        self.asked, self.released = [], []

    def acquire(self, host, port, settings, on_ready, on_error):
        self.asked.append(((host, port), settings, on_ready, on_error))
        return lambda: None

    def close(self):
        pass

    def connect(self, index=-1, reused=False):
        (host, port), _, on_ready, _ = self.asked[index]
        connection = FakeConnection(self, Endpoint(host, port), reused)
        on_ready(connection)
        return connection

    def refuse(self, error, index=-1):
        self.asked[index][3](error)


class State:
    def __init__(self, table):
        self.table = table


def proxy_for(*entries, trusted=(), pool=None):
    pool = pool or FakePool()
    proxy = Proxy(State(RouteTable(entries)), {"HTTP": pool}, ProxySettings(trusted_proxies=trusted), Clock())
    finished = []
    proxy.observers.append(finished.append)
    return proxy, pool, finished


def entry(features=(), endpoints=(ONE, TWO), host="shop.test", path="/"):
    route = Route(host, path, "Prefix", Backend("default", "web", "80", tuple(endpoints)),
                  ObjectRef("Ingress", "default", "shop"))
    return RouteEntry(route, features)


def request(method=b"GET", target=b"/", host=b"shop.test", headers=(), content_length=None):
    r = Request()
    r.method, r.target, r.version = method, target, b"HTTP/1.1"
    r.headers = [(b"host", host), *headers]
    r.keep_alive, r.content_length = True, content_length
    r.complete = content_length is None
    return r


def send(proxy, req, client=None):
    """Dispatch ``req`` as the HTTP/1 client side does: the exchange, then its body's end."""
    client = client or FakeClient()
    exchange = proxy(client, req)
    if req.complete:
        exchange.body_done()
    return client, exchange


# -- routing and local answers ---------------------------------------------------------------


def test_no_route_is_404_and_the_connection_stays_open():
    proxy, pool, finished = proxy_for(entry())
    client, exchange = send(proxy, request(host=b"other.test"))
    assert client.head[0] == 404 and client.finished and not client.keep_alive_off
    assert not any(name == b"server" for name, _ in client.head[1])  # the client side adds Server and Date
    assert pool.asked == [] and finished == [exchange]


def test_a_bad_path_is_400_and_closes():
    proxy, pool, _ = proxy_for(entry())
    client, _ = send(proxy, request(target=b"/%zz"))
    assert client.head[0] == 400 and client.keep_alive_off and pool.asked == []


class Answer:
    phase = Phase.ACCESS

    def __init__(self, status):
        self.status = status

    def request(self, exchange):
        return LocalResponse(self.status, [(b"x-by", b"answer")])


class Stamp:
    phase = Phase.REWRITE

    def response(self, exchange, status, headers):
        headers.append((b"x-stamp", b"%d" % status))


def test_a_feature_answers_before_the_backend_and_response_features_still_run():
    proxy, pool, finished = proxy_for(entry([Answer(403), Stamp()]))
    client, exchange = send(proxy, request())
    assert client.head[0] == 403 and client.header(b"x-by") == [b"answer"] and client.header(b"x-stamp") == [b"403"]
    assert pool.asked == [] and exchange.answered_by == "test_exchange"
    assert b"403" in client.body  # the default error page


class Raises:
    phase = Phase.AUTH

    def request(self, exchange):
        raise RuntimeError("plugin bug")


def test_a_failing_feature_is_a_500_never_a_pass():
    proxy, pool, _ = proxy_for(entry([Raises()]))
    client, _ = send(proxy, request())
    assert client.head[0] == 500 and pool.asked == [] and client.keep_alive_off


# -- to the backend and back --------------------------------------------------------------------


def test_a_request_goes_to_an_endpoint_with_forwarding_headers_and_the_answer_comes_back():
    proxy, pool, finished = proxy_for(entry([Stamp()]))
    client, exchange = send(proxy, request(headers=[(b"x-forwarded-for", b"1.2.3.4"), (b"x-keep", b"1")]))
    ((address, _, _, _),) = pool.asked
    assert address == (ONE.address, ONE.port)
    connection = pool.connect()
    head = connection.sent.decode()
    assert head.startswith("GET / HTTP/1.1\r\n")
    assert "x-keep: 1" in head and "x-real-ip: 192.0.2.7" in head and "x-forwarded-for: 192.0.2.7" in head
    assert "x-original-forwarded-for: 1.2.3.4" in head  # the client's own, as ingress-nginx passes it
    connection.respond(200, [(b"Content-Type", b"text/plain"), (b"Connection", b"keep-alive")], b"hi")
    assert client.head[0] == 200 and client.body == b"hi" and client.finished
    assert client.header(b"connection") == [] and client.header(b"x-stamp") == [b"200"]  # hop-by-hop dropped
    assert pool.released == [connection] and finished == [exchange]
    assert (exchange.status, exchange.upstream_address) == (200, "10.0.0.1:8080")


def test_endpoints_take_turns():
    proxy, pool, _ = proxy_for(entry())
    for _ in range(3):
        send(proxy, request())
    assert [asked[0][0] for asked in pool.asked] == ["10.0.0.1", "10.0.0.2", "10.0.0.1"]


def test_no_ready_endpoint_is_503():
    proxy, pool, finished = proxy_for(entry(endpoints=()))
    client, exchange = send(proxy, request())
    assert client.head[0] == 503 and exchange.error_cause == "no_endpoints" and pool.asked == []


def test_a_refused_connect_is_retried_on_the_other_endpoint_then_502():
    # proxy-next-upstream's default (error timeout, 3 tries): the other endpoint, then round-robin.
    proxy, pool, _ = proxy_for(entry())
    client, exchange = send(proxy, request())
    pool.refuse(UpstreamError("connect refused", retryable=True, cause="connect_failed"))
    assert [asked[0][0] for asked in pool.asked] == ["10.0.0.1", "10.0.0.2"] and exchange.retries == 1
    pool.refuse(UpstreamError("connect refused", retryable=True, cause="connect_failed"))
    pool.refuse(UpstreamError("connect refused", retryable=True, cause="connect_failed"))
    assert [asked[0][0] for asked in pool.asked] == ["10.0.0.1", "10.0.0.2", "10.0.0.1"]
    assert client.head[0] == 502 and exchange.error_cause == "connect_failed" and exchange.retries == 2


def test_a_post_sent_is_not_retried_and_a_timeout_is_504():
    proxy, pool, _ = proxy_for(entry())
    client, exchange = send(proxy, request(method=b"POST"))
    connection = pool.connect()
    exchange.upstream_failed(connection, UpstreamError("backend read timeout", timeout=True, cause="read_timeout"))
    assert client.head[0] == 504 and len(pool.asked) == 1


def test_a_failure_after_the_response_started_aborts_the_client():
    proxy, pool, finished = proxy_for(entry())
    client, exchange = send(proxy, request())
    connection = pool.connect()
    exchange.upstream_head(connection, 200, [], 10)
    exchange.upstream_body(b"12345")
    exchange.upstream_failed(connection, UpstreamError("backend closed", cause="backend_closed"))
    assert client.aborted and client.body == b"12345" and finished == [exchange]


def test_a_client_gone_abandons_the_backend():
    proxy, pool, finished = proxy_for(entry())
    client, exchange = send(proxy, request())
    connection = pool.connect()
    exchange.client_lost()
    assert connection.aborted and exchange.status == 499 and finished == [exchange]


# -- the upstream-protocol seam ------------------------------------------------------------------


class Grpc:
    phase = Phase.PROXY
    upstream = UpstreamSettings(protocol="GRPC")


def test_each_route_goes_through_the_upstream_protocol_its_settings_name():
    http, grpc = FakePool("HTTP"), FakePool("GRPC")
    plain, rpc = entry(path="/"), entry([Grpc()], path="/rpc")
    proxy = Proxy(State(RouteTable([plain, rpc])), {"HTTP": http, "GRPC": grpc}, ProxySettings(), Clock())
    send(proxy, request(target=b"/rpc/Call"))
    send(proxy, request(target=b"/page"))
    assert (len(http.asked), len(grpc.asked)) == (1, 1)
    grpc.connect().respond(200, body=b"rpc")
    assert grpc.released and not http.released


@pytest.mark.parametrize(("headers", "content_length", "upgrade", "expected"), [
    ((), None, False, None),  # no body: no framing at all
    ((), 0, False, 0),  # an empty body that says so keeps saying so
    ((), 5, False, 5),
    (((b"transfer-encoding", b"chunked"),), None, False, 5),  # read whole: sent with its length
    (((b"upgrade", b"websocket"), (b"connection", b"Upgrade")), None, True, None),
])
def test_the_exchange_describes_the_body_and_leaves_its_framing_to_the_protocol(headers, content_length,
                                                                                upgrade, expected):
    proxy, pool, _ = proxy_for(entry())
    req = request(method=b"POST", headers=list(headers), content_length=content_length)
    req.chunked = bool(headers) and not upgrade
    req.upgrade = upgrade
    client, exchange = send(proxy, req)
    if req.has_body:
        exchange.body_data(b"hello")
        exchange.body_done()
    connection = pool.connect()
    assert connection.body_length == expected
    head = connection.sent.decode().lower()
    assert "content-length" not in head and "transfer-encoding" not in head  # the protocol's to add


def test_the_body_is_read_whole_before_a_backend_is_asked():
    proxy, pool, _ = proxy_for(entry())
    req = request(method=b"POST", content_length=3)
    client, exchange = send(proxy, req)
    exchange.body_data(b"ab")
    assert pool.asked == []  # nginx's proxy_request_buffering on
    exchange.body_data(b"c")
    exchange.body_done()
    connection = pool.connect()
    assert connection.ended and connection.sent.endswith(b"\r\n\r\nabc")


def test_expect_100_continue_is_answered_when_the_body_is_awaited():
    proxy, pool, _ = proxy_for(entry())
    req = request(method=b"POST", content_length=3, headers=[(b"expect", b"100-continue")])
    req.expect_continue = True
    client, exchange = send(proxy, req)
    assert client.continued and pool.asked == []
    exchange.body_data(b"abc")
    exchange.body_done()
    assert pool.connect().sent.endswith(b"abc")


class Backpressure(FakeConnection):
    """A backend that stops taking the body after each piece until resumed."""

    def send_body(self, data):
        super().send_body(data)
        self.exchange.upstream_write_paused()


def test_a_held_body_goes_to_the_backend_as_fast_as_it_takes_it(monkeypatch):
    from ingressd.proxy import request_body

    monkeypatch.setattr(request_body, "MEMORY_BOUND", 4)
    monkeypatch.setattr(request_body, "PIECE", 4)
    proxy, pool, _ = proxy_for(entry())
    client, exchange = send(proxy, request(method=b"POST", content_length=12))
    for piece in (b"abc", b"defg", b"hijkl"):  # beyond 4 bytes: a temporary file
        exchange.body_data(piece)
    exchange.body_done()
    (host, port), _, on_ready, _ = pool.asked[-1]
    connection = Backpressure(pool, Endpoint(host, port), False)
    on_ready(connection)
    pieces = []
    for _ in range(10):  # bounded: one piece per resume
        pieces.append(connection.sent.rpartition(b"\r\n\r\n")[2])
        if connection.ended:
            break
        exchange.upstream_write_resumed()
    assert pieces[-1] == b"abcdefghijkl" and connection.ended
    assert len(pieces) > 2  # it waited for the backend between pieces


# -- route settings, body limits, error pages ----------------------------------------------------


class Limits:
    phase = Phase.PROXY
    upstream = UpstreamSettings(read_timeout=7.0, send_timeout=9.0, max_body_size=10)


def test_route_settings_apply_when_the_route_matches():
    proxy, pool, _ = proxy_for(entry([Limits()]))
    client, exchange = send(proxy, request())
    connection = pool.connect()
    assert connection.timeouts == (7.0, 9.0) and exchange.max_body_size == 10


def test_a_chunked_body_over_the_limit_is_413_before_any_backend():
    proxy, pool, _ = proxy_for(entry([Limits()]))
    req = request(method=b"POST")
    req.complete, req.chunked = False, True
    client, exchange = send(proxy, req)
    exchange.body_data(b"12345")
    exchange.body_data(b"678901")
    assert client.head[0] == 413 and pool.asked == [] and client.keep_alive_off


def test_a_declared_body_over_the_limit_is_413_before_any_backend():
    proxy, pool, _ = proxy_for(entry([Limits()]))
    client, _ = send(proxy, request(method=b"POST", content_length=11))
    assert client.head[0] == 413 and pool.asked == [] and client.keep_alive_off


class Pages:
    phase = Phase.PROXY
    error_codes = frozenset({502, 503})

    def __init__(self, intercept_upstream=True):
        self.intercept_upstream = intercept_upstream

    def error(self, exchange, status):
        return LocalResponse(status, [(b"content-type", b"text/html")], b"<p>sorry %d</p>" % status)


def test_error_pages_keep_the_status_and_replace_the_body():
    proxy, pool, _ = proxy_for(entry([Pages()], endpoints=()))
    client, _ = send(proxy, request())
    assert client.head[0] == 503 and client.body == b"<p>sorry 503</p>"
    proxy, pool, _ = proxy_for(entry([Pages()]))
    client, _ = send(proxy, request())
    pool.connect().respond(502, [(b"content-type", b"text/plain")], b"backend's own")
    assert client.head[0] == 502 and client.body == b"<p>sorry 502</p>"


def test_a_feature_that_leaves_backend_errors_alone():
    proxy, pool, _ = proxy_for(entry([Pages(intercept_upstream=False)]))
    client, _ = send(proxy, request())
    pool.connect().respond(502, [(b"content-type", b"text/plain")], b"backend's own")
    assert client.head[0] == 502 and client.body == b"backend's own"


# -- WebSocket ------------------------------------------------------------------------------------


def test_a_websocket_upgrade_becomes_a_tunnel_after_the_backends_101():
    proxy, pool, finished = proxy_for(entry([Stamp()]))
    req = request(headers=[(b"upgrade", b"websocket"), (b"connection", b"Upgrade")])
    req.upgrade = True
    client, exchange = send(proxy, req)
    assert exchange.wants_tunnel() and client.receiver is exchange  # bytes wait for the backend
    exchange.client_data(b"early")
    connection = pool.connect()
    assert b"upgrade: websocket\r\nconnection: upgrade\r\n" in connection.sent
    connection.response_headers = [(b"upgrade", b"websocket"), (b"connection", b"Upgrade")]
    exchange.upstream_upgraded(connection, b"from-backend")
    assert client.raw.startswith(b"HTTP/1.1 101 Switching Protocols\r\nserver: ingressd\r\ndate: ")
    assert b"x-stamp: 101" in client.raw
    assert client.raw.endswith(b"\r\n\r\nfrom-backend") and connection.sent.endswith(b"early")
    assert proxy.tunnels_open == 1 and finished == []
    client.receiver.client_lost()  # the tunnel now takes the client's bytes and end
    assert connection.closed and client.closed and proxy.tunnels_open == 0 and finished == [exchange]


def test_a_websocket_request_answered_without_upgrade_closes_after_it():
    proxy, pool, _ = proxy_for(entry())
    req = request(headers=[(b"upgrade", b"websocket"), (b"connection", b"Upgrade")])
    req.upgrade = True
    client, exchange = send(proxy, req)
    pool.connect().respond(403, [], b"no")
    assert client.head[0] == 403 and client.keep_alive_off


# -- trust ----------------------------------------------------------------------------------------


def test_a_trusted_proxy_sets_the_client_and_the_scheme():
    proxy, pool, _ = proxy_for(entry(), trusted=["192.0.2.0/24"])
    client, exchange = send(proxy, request(headers=[(b"x-forwarded-for", b"203.0.113.9"),
                                                    (b"x-forwarded-proto", b"https")]))
    assert (exchange.client_ip, exchange.scheme) == ("203.0.113.9", "https") and client.trusted[1] is True
    untrusted_proxy, _, _ = proxy_for(entry())
    client, exchange = send(untrusted_proxy, request(headers=[(b"x-forwarded-for", b"203.0.113.9"),
                                                              (b"x-forwarded-proto", b"https")]))
    assert (exchange.client_ip, exchange.scheme) == ("192.0.2.7", "http") and client.trusted[1] is False


# -- answers the client side gave itself reach the observers ------------------------------------


def test_a_request_refused_while_parsing_reaches_the_observers():
    proxy, pool, finished = proxy_for(entry())
    partial = Request()  # the head was not complete: no method yet
    partial.target, partial.headers, partial.head_bytes = b"/x", [(b"host", b"Shop.Test:8080")], 40
    proxy.rejected(FakeClient(), partial, 400, 153)
    (exchange,) = finished
    assert (exchange.status, exchange.bytes_sent, exchange.host, exchange.method) == (400, 153, "shop.test", b"")
    assert exchange.request.target == b"/x" and exchange.request_bytes == 40 and exchange.route is None
    proxy.rejected(FakeClient(), None, 408, 10)
    assert finished[1].status == 408 and finished[1].request.target == b"" and pool.asked == []


def test_a_body_timeout_ends_the_exchange_with_its_status():
    proxy, pool, finished = proxy_for(entry())
    client, exchange = send(proxy, request(method=b"POST", content_length=5))
    exchange.body_data(b"ab")
    exchange.client_side_answered(408, 150)
    assert finished == [exchange] and exchange.status == 408 and exchange.bytes_sent == 150
    exchange.body_data(b"cde")
    exchange.body_done()
    assert pool.asked == []


def test_a_backends_server_and_date_are_hidden():
    proxy, pool, _ = proxy_for(entry())
    client, _ = send(proxy, request())
    pool.connect().respond(200, [(b"Server", b"gunicorn"), (b"Date", b"x"), (b"X-Pad", b"p"), (b"X-A", b"1")],
                           b"ok")
    assert client.head[1] == [(b"x-a", b"1")]


def test_a_held_body_leaves_a_bounded_amount_per_reactor_round(monkeypatch):
    from ingressd.proxy import exchange as exchange_module

    monkeypatch.setattr(exchange_module, "_BODY_ROUND", 4)
    proxy, pool, _ = proxy_for(entry())
    client, exchange = send(proxy, request(method=b"POST", content_length=9))
    for piece in (b"abc", b"def", b"ghi"):
        exchange.body_data(piece)
    exchange.body_done()
    connection = pool.connect()
    assert connection.sent.endswith(b"\r\n\r\nabcdef") and not connection.ended  # 6 ≥ 4: the rest waits
    proxy.clock.advance(0)
    assert connection.sent.endswith(b"\r\n\r\nabcdefghi") and connection.ended


@pytest.mark.parametrize("connected_first", [True, False])
def test_a_request_without_a_body_is_ended_once_and_its_connection_released(connected_first):
    """A GET's end reaches the backend connection once, whether the connection came before
    the request's end (the usual order over HTTP/1.1) or after it; then the connection goes
    back to the pool."""
    proxy, pool, finished = proxy_for(entry())
    req = request()
    req.complete = False
    client = FakeClient()
    exchange = proxy(client, req)
    ends = []
    if connected_first:
        connection = pool.connect()
        connection.end_body = lambda: ends.append(True)
        assert not ends  # nothing to end before the request's end is read
        req.complete = True
        exchange.body_done()
    else:
        req.complete = True
        exchange.body_done()
        connection = FakeConnection(pool, ONE)
        connection.end_body = lambda: ends.append(True)
        pool.asked[-1][2](connection)
    assert ends == [True]
    exchange.body_done()  # told again (it is not): still once
    assert ends == [True]
    connection.respond(200, body=b"ok")
    assert pool.released == [connection] and finished == [exchange]


def test_an_exchange_keeps_what_features_set_on_it_and_may_be_weakly_referenced():
    """Exchange's __slots__ (what __init__ sets) keep a dict for the rest: a feature may set any
    attribute (its class defaults overridden, or its own), and an exchange may be weakly referenced."""
    import weakref

    proxy, pool, finished = proxy_for(entry([Stamp()]))
    client, exchange = send(proxy, request())
    exchange.target, exchange.balancer, exchange.plugin_note = b"/rewritten", None, "mine"
    assert (exchange.target, exchange.plugin_note) == (b"/rewritten", "mine")
    assert weakref.ref(exchange)() is exchange
    assert {"proxy", "request", "headers", "started"} <= set(type(exchange).__slots__)
    assert "proxy" not in vars(exchange) and vars(exchange)["plugin_note"] == "mine"


# -- request_bytes: a slot kept as the request grows -------------------------------------------


def _as_the_property_computed(exchange) -> int:
    """``Exchange.request_bytes`` as the property before it said: head and body as received."""
    return getattr(exchange.request, "head_bytes", 0) + exchange._body_bytes


def _h2_request(head_bytes, content_length=None, complete=True):
    from ingressd.http.http2 import H2Request
    req = H2Request(b"POST" if not complete else b"GET", b"/", [(b"host", b"shop.test")], content_length,
                    complete, False)
    req.head_bytes = head_bytes
    return req


def test_request_bytes_is_what_the_property_computed_for_every_kind_of_exchange():
    seen = []

    def check(exchange):
        seen.append(exchange)
        assert exchange.request_bytes == _as_the_property_computed(exchange)

    # plain: no body, Proxy.__call__'s inline construction and Exchange.__init__'s
    proxy, pool, finished = proxy_for(entry())
    req = request()
    req.head_bytes = 61
    client, exchange = send(proxy, req)
    check(exchange)
    pool.connect().respond(200, [], b"ok")
    check(exchange)
    assert exchange.request_bytes == 61
    from ingressd.proxy.exchange import Exchange
    check(Exchange(proxy, FakeClient(), req))
    # a body in pieces, then retried on the other endpoint
    proxy, pool, finished = proxy_for(entry())
    req = request(method=b"POST", content_length=7)
    req.head_bytes = 80
    client, exchange = send(proxy, req)
    for piece in (b"abc", b"defg"):
        exchange.body_data(piece)
        check(exchange)
    req.complete = True
    exchange.body_done()
    pool.refuse(UpstreamError("connect refused", retryable=True, cause="connect_failed"))
    pool.connect().respond(200, [], b"ok")
    check(exchange)
    assert exchange.retries == 1 and exchange.request_bytes == 87 and finished == [exchange]
    # aborted: the body's bytes after the end are not counted
    proxy, pool, finished = proxy_for(entry())
    req = request(method=b"POST", content_length=5)
    req.head_bytes = 70
    client, exchange = send(proxy, req)
    exchange.body_data(b"ab")
    exchange.client_lost()
    exchange.body_data(b"cde")
    check(exchange)
    assert exchange.request_bytes == 72 and exchange.status == 499
    # upgraded to a tunnel (its bytes are counted by the tunnel, not here)
    proxy, pool, finished = proxy_for(entry())
    req = request(headers=[(b"upgrade", b"websocket"), (b"connection", b"Upgrade")])
    req.upgrade, req.head_bytes = True, 90
    client, exchange = send(proxy, req)
    exchange.client_data(b"early")
    connection = pool.connect()
    connection.response_headers = [(b"upgrade", b"websocket"), (b"connection", b"Upgrade")]
    exchange.upstream_upgraded(connection, b"")
    client.receiver.client_lost()
    check(exchange)
    assert exchange.request_bytes == 90 and finished == [exchange]
    # HTTP/2: the header block's size, a body in DATA frames
    proxy, pool, finished = proxy_for(entry())
    req = _h2_request(33, content_length=4, complete=False)
    client, exchange = send(proxy, req)
    exchange.body_data(b"wxyz")
    req.complete = True
    exchange.body_done()
    pool.connect().respond(200, [], b"ok")
    check(exchange)
    assert exchange.request_bytes == 37
    # refused while parsing, and a request object without head_bytes
    proxy, pool, finished = proxy_for(entry())
    partial = Request()
    partial.target, partial.headers, partial.head_bytes = b"/x", [(b"host", b"shop.test")], 40
    proxy.rejected(FakeClient(), partial, 400, 153)
    proxy.rejected(FakeClient(), None, 408, 10)
    for exchange in finished:
        check(exchange)
    assert [exchange.request_bytes for exchange in finished] == [40, 0]
    assert len(seen) == 11
