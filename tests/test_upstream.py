"""The backend connection in memory: reuse, timeouts and flow control."""

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.proxy.http1_upstream import HTTP1Connection, HTTP1Upstream
from ingressd.proxy.upstream import STREAMED


class Exchange:
    def __init__(self):
        self.events = []

    def upstream_head(self, connection, status, headers, length):
        self.events.append(("head", status, length))

    def upstream_body(self, data):
        self.events.append(("body", data))

    def upstream_done(self, connection, reusable):
        self.events.append(("done", reusable))

    def upstream_failed(self, connection, error):
        self.events.append(("failed", str(error), error.timeout))

    class protocol:  # the client side: batching calls only
        @staticmethod
        def cork():
            pass

        @staticmethod
        def uncork():
            pass


def connection():
    clock = Clock()
    pool = HTTP1Upstream(clock)
    conn = HTTP1Connection(pool, ("127.0.0.1", 80))
    transport = StringTransport()
    conn.makeConnection(transport)
    return clock, pool, conn, transport


def test_response_parsed_and_connection_reusable():
    clock, pool, conn, transport = connection()
    exchange = Exchange()
    conn.start(exchange, b"GET", b"/", [(b"host", b"x")], None, 60, 60)
    assert transport.value().startswith(b"GET / HTTP/1.1")
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert exchange.events == [("head", 200, 2), ("body", b"ok"), ("done", True)]


def test_a_paused_connection_reads_again_for_the_next_request():
    """A connection paused for a slow client as its response ended is resumed when reused
    (regression: the next request on it hung until the read timeout)."""
    clock, pool, conn, transport = connection()
    conn.pause_reading()  # how a slow client pauses it (the exchange's call)
    assert transport.producerState == "paused"
    conn.start(Exchange(), b"GET", b"/", [(b"host", b"x")], None, 60, 60)
    assert transport.producerState == "producing"


def test_a_connection_that_reads_is_not_resumed_for_every_request():
    """Resuming a transport that reads already is the reactor's registration check per request."""
    clock, pool, conn, transport = connection()
    resumed = []
    transport.resumeProducing = lambda: resumed.append(True)
    exchange = Exchange()
    for _ in range(3):
        conn.start(exchange, b"GET", b"/", [(b"host", b"x")], None, 60, 60)
        conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert resumed == [] and exchange.events.count(("done", True)) == 3
    conn.pause_reading()
    conn.resume_reading()
    conn.start(exchange, b"GET", b"/", [(b"host", b"x")], None, 60, 60)
    assert resumed == [True]  # resume_reading's own; start adds none


def test_read_timeout_fails_the_exchange_as_a_timeout():
    clock, pool, conn, transport = connection()
    exchange = Exchange()
    conn.start(exchange, b"GET", b"/", [(b"host", b"x")], None, 5, 60)
    clock.advance(4)
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    clock.advance(4.9)  # the read timeout is per read, not per response
    assert not any(event[0] == "failed" for event in exchange.events)
    clock.advance(0.2)
    assert exchange.events[-1][0] == "failed" and exchange.events[-1][2] is True


def test_head_response_with_length_completes_without_body():
    clock, pool, conn, transport = connection()
    exchange = Exchange()
    conn.start(exchange, b"HEAD", b"/", [(b"host", b"x")], None, 60, 60)
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    assert exchange.events == [("head", 200, 1000), ("done", True)]


def test_read_timeout_stops_while_a_slow_client_pauses_the_backend():
    """nginx's proxy_read_timeout only runs while waiting for the backend: a client that
    is slow to read must not turn into a 504 or a cut response."""
    clock, pool, conn, transport = connection()
    exchange = Exchange()
    conn.start(exchange, b"GET", b"/", [(b"host", b"x")], None, 5, 60)
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    conn.pause_reading()
    clock.advance(60)
    assert not any(event[0] == "failed" for event in exchange.events)
    conn.resume_reading()
    clock.advance(5.1)
    assert exchange.events[-1][0] == "failed"


def test_one_connection_carries_gets_and_heads_in_turn():
    """The response parser is kept from one response to the next, except after a HEAD
    (llhttp still expects the body the HEAD response announced)."""
    clock, pool, conn, transport = connection()
    for method, answer, expected in [
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", [("head", 200, 2), ("body", b"ok"), ("done", True)]),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", [("head", 200, 1000), ("done", True)]),
        ("GET", b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc", [("head", 201, 3), ("body", b"abc"), ("done", True)]),
        ("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
         [("head", 200, None), ("body", b"x"), ("done", True)]),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n", [("head", 204, None), ("done", True)]),
    ]:
        exchange = Exchange()
        conn.start(exchange, method.encode(), b"/", [(b"host", b"x")], None, 60, 60)
        conn.dataReceived(answer)
        assert exchange.events == expected, method
    assert not transport.disconnecting


def test_the_request_is_framed_by_its_body_length():
    for body_length, framing, body in ((None, b"", b"x"), (0, b"content-length: 0\r\n", b""),
                                       (3, b"content-length: 3\r\n", b"abc"),
                                       (STREAMED, b"transfer-encoding: chunked\r\n", b"3\r\nabc\r\n0\r\n\r\n")):
        _, _, conn, transport = connection()
        conn.start(Exchange(), b"POST", b"/up?x=1", [(b"host", b"x")], body_length, 60, 60)
        if body_length is not None:
            if body_length:
                conn.send_body(b"abc")
            conn.end_body()
        else:
            conn.write_raw(b"x")  # after an upgrade: bytes as they are
        assert transport.value() == b"POST /up?x=1 HTTP/1.1\r\nhost: x\r\n" + framing + b"\r\n" + body, body_length


def test_idle_connections_are_closed_after_the_idle_timeout_on_the_pools_clock():
    clock = Clock()
    pool = HTTP1Upstream(clock, idle_timeout=30)
    conn = HTTP1Connection(pool, ("127.0.0.1", 80))
    transport = StringTransport()
    conn.makeConnection(transport)
    pool.release(conn)
    clock.advance(25)
    assert pool.idle_count() == 1 and not transport.disconnecting
    clock.advance(10)
    assert pool.idle_count() == 0 and transport.disconnecting


def test_an_http_1_0_request_and_its_connection_not_reused():
    clock, pool, conn, transport = connection()
    exchange = Exchange()
    conn.start(exchange, b"GET", b"/", [(b"host", b"x")], None, 60, 60, b"1.0")
    assert transport.value().startswith(b"GET / HTTP/1.0\r\nhost: x\r\n")
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert ("done", False) in exchange.events  # not reusable, whatever the backend says
