"""The backend connection in memory: reuse, timeouts and flow control."""

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.upstream import UpstreamConnection, UpstreamPool


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
    pool = UpstreamPool(clock)
    conn = UpstreamConnection(pool, ("127.0.0.1", 80))
    transport = StringTransport()
    conn.makeConnection(transport)
    return clock, pool, conn, transport


def test_response_parsed_and_connection_reusable():
    clock, pool, conn, transport = connection()
    exchange = Exchange()
    conn.start(exchange, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", 60, 60, False)
    assert transport.value().startswith(b"GET / HTTP/1.1")
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert exchange.events == [("head", 200, 2), ("body", b"ok"), ("done", True)]


def test_a_paused_connection_reads_again_for_the_next_request():
    """A connection paused for a slow client as its response ended is resumed when reused
    (regression: the next request on it hung until the read timeout)."""
    clock, pool, conn, transport = connection()
    transport.pauseProducing()
    assert transport.producerState == "paused"
    conn.start(Exchange(), b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", 60, 60, False)
    assert transport.producerState == "producing"


def test_read_timeout_fails_the_exchange_as_a_timeout():
    clock, pool, conn, transport = connection()
    exchange = Exchange()
    conn.start(exchange, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", 5, 60, False)
    clock.advance(4)
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    clock.advance(4.9)  # the read timeout is per read, not per response
    assert not any(event[0] == "failed" for event in exchange.events)
    clock.advance(0.2)
    assert exchange.events[-1][0] == "failed" and exchange.events[-1][2] is True


def test_head_response_with_length_completes_without_body():
    clock, pool, conn, transport = connection()
    exchange = Exchange()
    conn.start(exchange, b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n", 60, 60, True)
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    assert exchange.events == [("head", 200, 1000), ("done", True)]


def test_read_timeout_stops_while_a_slow_client_pauses_the_backend():
    """nginx's proxy_read_timeout only runs while waiting for the backend: a client that
    is slow to read must not turn into a 504 or a cut response."""
    clock, pool, conn, transport = connection()
    exchange = Exchange()
    conn.start(exchange, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", 5, 60, False)
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
        conn.start(exchange, f"{method} / HTTP/1.1\r\nhost: x\r\n\r\n".encode(), 60, 60, method == "HEAD")
        conn.dataReceived(answer)
        assert exchange.events == expected, method
    assert not transport.disconnecting
