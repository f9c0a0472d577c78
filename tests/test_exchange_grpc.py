"""The Exchange with a gRPC route, in memory: the request body streamed when the upstream
protocol says so, trailers relayed, and ingressd's own errors answered the gRPC way."""

from __future__ import annotations

from twisted.internet.task import Clock

from ingressd.config.routing import RouteTable
from ingressd.proxy.exchange import Proxy, ProxySettings
from ingressd.proxy.upstream import STREAMED
from test_exchange import FakeClient, FakePool, Grpc, State, entry, request

GRPC_CALL = ((b"content-type", b"application/grpc"), (b"te", b"trailers"))


class Client(FakeClient):
    trailers = None

    def write_trailers(self, trailers):
        self.trailers = list(trailers)


class StreamingPool(FakePool):
    streams_request_body = True


def grpc_proxy(endpoints=None):
    pool = StreamingPool("GRPC")
    route = entry([Grpc()]) if endpoints is None else entry([Grpc()], endpoints=endpoints)
    proxy = Proxy(State(RouteTable([route])), {"GRPC": pool, "HTTP": FakePool()}, ProxySettings(), Clock())
    finished = []
    proxy.observers.append(finished.append)
    return proxy, pool, finished


def streamed_request(headers=GRPC_CALL):
    """A request whose body is still coming, of unknown length (HTTP/2 without content-length)."""
    r = request(method=b"POST", target=b"/pkg.Svc/Call", headers=headers)
    r.complete = False
    r.chunked = True
    return r


def test_the_body_goes_to_the_backend_as_it_arrives():
    proxy, pool, finished = grpc_proxy()
    client = Client()
    exchange = proxy(client, streamed_request())
    connection = pool.connect()  # asked before any byte of the body came
    assert connection.body_length == STREAMED
    exchange.body_data(b"one")
    assert connection.sent.endswith(b"one") and not connection.ended
    exchange.body_data(b"two")
    assert connection.sent.endswith(b"onetwo")
    exchange.body_done()
    assert connection.ended
    connection.exchange.upstream_head(connection, 200, [(b"content-type", b"application/grpc")], None)
    connection.exchange.upstream_body(b"\0\0\0\0\0")
    connection.exchange.upstream_trailers([(b"grpc-status", b"0"), (b"x-meta", b"t")])
    connection.exchange.upstream_done(connection, True)
    assert client.head[0] == 200 and client.body == b"\0\0\0\0\0"
    assert client.trailers == [(b"grpc-status", b"0"), (b"x-meta", b"t")] and client.finished
    assert finished == [exchange]


def test_a_slow_backend_pauses_reading_the_client_once_a_window_is_held(monkeypatch):
    from ingressd.proxy import exchange as exchange_module

    monkeypatch.setattr(exchange_module, "_STREAM_WINDOW", 8)
    proxy, pool, _ = grpc_proxy()
    client = Client()
    exchange = proxy(client, streamed_request())
    pool.connect()
    exchange.upstream_write_paused()
    exchange.body_data(b"abcd")
    assert client.paused == 0  # 4 held: within the window
    exchange.body_data(b"efghijkl")
    assert client.paused == 1  # 12 held: the client waits
    for _ in range(10):  # bounded: the backend takes a piece per round
        if client.paused == 0:
            break
        exchange.upstream_write_resumed()
    assert client.paused == 0


def test_a_grpc_call_with_no_backend_is_answered_the_grpc_way():
    proxy, pool, finished = grpc_proxy(endpoints=())
    client = Client()
    exchange = proxy(client, streamed_request())
    assert client.head == (200, [(b"content-type", b"application/grpc")], None) and client.body == b""
    assert client.trailers[0] == (b"grpc-status", b"14") and b"503" in client.trailers[1][1]
    assert exchange.status == 503 and finished == [exchange]  # what logs and metrics see


def test_a_dead_backend_is_unavailable_and_a_passed_deadline_is_deadline_exceeded():
    from ingressd.proxy.upstream import UpstreamError
    for error, code in ((UpstreamError("refused", retryable=False, cause="connect_failed"), b"14"),
                        (UpstreamError("grpc-timeout passed", timeout=True, cause="grpc_deadline"), b"4")):
        proxy, pool, _ = grpc_proxy()
        client = Client()
        exchange = proxy(client, streamed_request())
        for _ in range(5):  # a refused connection is tried again (proxy-next-upstream: error), bounded
            pool.refuse(error)
            if client.head is not None:
                break
        assert client.head[0] == 200 and client.trailers[0] == (b"grpc-status", code)
        assert exchange.status in (502, 504)


def test_a_browser_on_a_grpc_route_keeps_the_http_error_page():
    proxy, _, _ = grpc_proxy(endpoints=())
    client = Client()
    proxy(client, request(target=b"/"))
    assert client.head[0] == 503 and client.trailers is None and b"503" in client.body


def test_an_http_route_still_holds_the_body_until_it_is_complete():
    pool = FakePool()
    proxy = Proxy(State(RouteTable([entry()])), {"HTTP": pool}, ProxySettings(), Clock())
    exchange = proxy(Client(), streamed_request(headers=()))
    exchange.body_data(b"abc")
    assert pool.asked == []
    exchange.body_done()
    assert len(pool.asked) == 1
