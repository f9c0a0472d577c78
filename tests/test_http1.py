"""The client-side HTTP/1.1 protocol, in memory: framing, limits, pipelining, timeouts."""

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.http.http1 import HTTP1ServerProtocol, ServerSettings


class Echo:
    """A handler that answers every request at once with its method and target."""

    def __init__(self, protocol, request, log):
        self.protocol = protocol
        self.request = request
        self.body = []
        log.append(self)

    def body_data(self, data):
        self.body.append(data)

    def body_done(self):
        body = b"%s %s %s" % (self.request.method, self.request.target, b"".join(self.body))
        self.protocol.write_head(200, [(b"x-test", b"1")], len(body))
        self.protocol.write_body(body)
        self.protocol.finish_response()

    def client_lost(self):
        pass

    def client_side_answered(self, status, bytes_sent):
        self.answered = status

    def wants_tunnel(self):
        return False


def connect(**settings):
    log = []
    clock = Clock()
    protocol = HTTP1ServerProtocol(ServerSettings(**settings), lambda p, r: Echo(p, r, log), clock)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5555),
                                hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
    protocol.makeConnection(transport)
    return protocol, transport, clock, log


def test_simple_request_keeps_alive():
    protocol, transport, _, _ = connect()
    protocol.dataReceived(b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n")
    value = transport.value()
    assert value.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 9\r\n" in value and value.endswith(b"GET /a?b ")
    assert not transport.disconnecting


def test_pipelined_requests_answered_in_order():
    protocol, transport, _, _ = connect()
    protocol.dataReceived(
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    value = transport.value()
    assert value.index(b"GET /1") < value.index(b"POST /2 abc") < value.index(b"GET /3")
    assert value.count(b"HTTP/1.1 200 OK") == 3


class AnswersAtOnce(Echo):
    """A handler that answers while it is being created, as a local response (a 404, a
    redirect, an auth challenge) does: before the parser has seen the end of the request."""

    def __init__(self, protocol, request, log):
        super().__init__(protocol, request, log)
        body = b"local " + request.target
        protocol.write_head(404, [], len(body))
        protocol.write_body(body)
        protocol.finish_response()

    def body_done(self):
        raise AssertionError("the exchange is over")


def connect_answering_at_once(**settings):
    log = []
    protocol = HTTP1ServerProtocol(ServerSettings(**settings), lambda p, r: AnswersAtOnce(p, r, log), Clock())
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5555),
                                hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
    protocol.makeConnection(transport)
    return protocol, transport


def test_an_answer_given_at_once_keeps_the_connection():
    protocol, transport = connect_answering_at_once()
    protocol.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value().endswith(b"local /a") and b"connection: close" not in transport.value()
    assert not transport.disconnecting
    protocol.dataReceived(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value().endswith(b"local /b") and not transport.disconnecting


def test_pipelined_requests_answered_at_once_are_all_answered_in_order():
    protocol, transport = connect_answering_at_once()
    protocol.dataReceived(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(5)))
    protocol.dataReceived(b"GET /last HTTP/1.1\r\nHost: x\r\n\r\n")
    value = transport.value()
    assert value.count(b"HTTP/1.1 404") == 6 and not transport.disconnecting
    assert [value.index(b"local /%d" % n) for n in range(5)] == sorted(value.index(b"local /%d" % n) for n in range(5))
    assert value.endswith(b"local /last")


def test_an_answer_given_before_the_request_body_closes_the_connection():
    protocol, transport = connect_answering_at_once()
    protocol.dataReceived(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")
    assert transport.value().endswith(b"local /a") and transport.disconnecting  # "cde" would be a request


def test_chunked_request_body_is_decoded():
    protocol, transport, _, _ = connect()
    protocol.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert transport.value().endswith(b"POST / abcde")


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked,\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n Folded: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"GET / HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n",
        b"GET \\admin HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 5\r\n\r\nhello",
        b"GARBAGE\r\n\r\n",
    ],
)
def test_malformed_requests_get_400_and_close(raw):
    protocol, transport, _, log = connect()
    protocol.dataReceived(raw)
    assert transport.value().startswith(b"HTTP/1.1 400 "), transport.value()
    assert transport.disconnecting
    assert not log or all(not e.body for e in log)


def test_long_request_line_is_414():
    protocol, transport, _, _ = connect()
    protocol.dataReceived(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 414 ")
    assert transport.disconnecting


def test_huge_header_block_is_nginx_s_400_request_header_too_large():
    protocol, transport, _, _ = connect()
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"a" * 40000 + b"\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 400 ")
    assert b"Request Header Or Cookie Too Large" in transport.value()


def test_too_many_headers_is_431():
    protocol, transport, _, _ = connect()
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n")
    assert transport.value().startswith(b"HTTP/1.1 431 ")


def test_unterminated_header_stream_is_bounded():
    protocol, transport, _, _ = connect()
    for _ in range(20):
        protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " if not transport.value() else b"a" * 4096)
        protocol.dataReceived(b"a" * 4096)
    assert transport.value().startswith(b"HTTP/1.1 400 ") or transport.value().startswith(b"HTTP/1.1 414 ")


def test_slow_headers_get_408_after_header_timeout():
    protocol, transport, clock, _ = connect(header_timeout=10)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHo")
    clock.advance(9)
    assert transport.value() == b""
    clock.advance(2)
    assert transport.value().startswith(b"HTTP/1.1 408 ")
    assert transport.disconnecting


def test_idle_keepalive_connection_closes_silently():
    protocol, transport, clock, _ = connect(keepalive_timeout=5)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    transport.clear()
    clock.advance(6)
    assert transport.value() == b"" and transport.disconnecting


def test_http10_without_keepalive_closes():
    protocol, transport, _, _ = connect()
    protocol.dataReceived(b"GET / HTTP/1.0\r\n\r\n")
    assert b"connection: close" in transport.value()
    assert transport.disconnecting


def test_unsupported_expectation_is_417():
    protocol, transport, _, _ = connect()
    protocol.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nContent-Length: 1\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 417 ")


def test_a_client_that_reads_nothing_is_dropped_after_the_send_timeout():
    protocol, transport, clock, log = connect(send_timeout=30)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    protocol.pauseProducing()  # the transport's buffer is full
    clock.advance(29)
    assert not transport.disconnecting
    protocol.resumeProducing()
    protocol.pauseProducing()
    clock.advance(29)
    assert not transport.disconnecting
    clock.advance(2)
    assert transport.disconnecting or protocol.closed


class Later(Echo):
    """Answers only when told to, so requests can pile up behind it."""

    def body_done(self):
        pass

    def answer(self):
        Echo.body_done(self)


def test_malformed_pipelined_request_is_answered_in_its_turn():
    log = []
    clock = Clock()
    protocol = HTTP1ServerProtocol(ServerSettings(), lambda p, r: Later(p, r, log), clock)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5555),
                                hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
    protocol.makeConnection(transport)
    protocol.dataReceived(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost : bad\r\n\r\n")
    assert transport.value() == b""  # the first is still being answered: no 400 jumps ahead
    log[0].answer()
    value = transport.value()
    assert value.startswith(b"HTTP/1.1 200 OK") and value.index(b"GET /first") < value.index(b"HTTP/1.1 400 ")
    assert transport.disconnecting


# -- what the client side answers itself is reported (access log, metrics) --------------------


class Reporting:
    """A handler with ``rejected`` (interfaces.RequestHandler), answering like Echo."""

    def __init__(self):
        self.log, self.rejections = [], []

    def __call__(self, protocol, request):
        return Echo(protocol, request, self.log)

    def rejected(self, protocol, request, status, bytes_sent):
        self.rejections.append((status, getattr(request, "target", None), bytes_sent))


def connect_reporting(**settings):
    handler = Reporting()
    clock = Clock()
    protocol = HTTP1ServerProtocol(ServerSettings(**settings), handler, clock)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5555),
                                hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
    protocol.makeConnection(transport)
    return protocol, transport, clock, handler


@pytest.mark.parametrize(
    "raw, status",
    [
        (b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /h HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"a" * 40000 + b"\r\n\r\n", 400),
        (b"GET /v HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ],
)
def test_a_refused_request_is_reported_once(raw, status):
    protocol, transport, _, handler = connect_reporting()
    protocol.dataReceived(raw)
    assert transport.value().startswith(b"HTTP/1.1 %d " % status)
    assert [r[0] for r in handler.rejections] == [status] and handler.rejections[0][2] > 0
    assert not handler.log


def test_a_header_timeout_is_reported_with_what_was_read():
    protocol, transport, clock, handler = connect_reporting(header_timeout=10)
    protocol.dataReceived(b"GET /slow HTTP/1.1\r\nHo")
    clock.advance(11)
    assert transport.value().startswith(b"HTTP/1.1 408 ")
    assert handler.rejections == [(408, b"/slow", len(transport.value().split(b"\r\n\r\n", 1)[1]))]


def test_a_body_timeout_is_the_exchanges_answer():
    protocol, transport, clock, handler = connect_reporting(body_timeout=10)
    protocol.dataReceived(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")
    clock.advance(11)
    assert transport.value().startswith(b"HTTP/1.1 408 ")
    assert handler.rejections == [] and handler.log[0].answered == 408


def test_every_response_has_one_date_and_no_server_by_default():
    protocol, transport, clock, _ = connect()
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    first, second = transport.value().split(b"HTTP/1.1 ")[1:3]
    for head in (first, second):
        assert b"server:" not in head.lower()
        assert head.count(b"date: Thu, 01 Jan 1970 00:00:00 GMT\r\n") == 1
    assert second.startswith(b"400 ")


def test_a_connection_closes_after_keepalive_requests_as_nginx():
    protocol, transport, _, _ = connect(keepalive_requests=2)
    protocol.dataReceived(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"connection: close" not in transport.value() and not transport.disconnecting
    transport.clear()
    protocol.dataReceived(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")  # the second: answered, then closed
    assert transport.value().startswith(b"HTTP/1.1 200 ") and b"connection: close" in transport.value()
    assert transport.disconnecting

    unlimited, transport, _, _ = connect(keepalive_requests=0)
    for number in range(5):
        unlimited.dataReceived(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % number)
    assert b"connection: close" not in transport.value() and not transport.disconnecting


class AnswersWith(Echo):
    """A handler answering the status (and reason) the test chose, with no body."""

    status, reason, length = 200, None, 0

    def body_done(self):
        self.protocol.write_head(self.status, [(b"x-test", b"1")], self.length, self.reason)
        self.protocol.finish_response()


@pytest.mark.parametrize("status, reason, line", [
    (200, None, b"HTTP/1.1 200 OK\r\n"),
    (503, None, b"HTTP/1.1 503 Service Temporarily Unavailable\r\n"),
    (200, b"Fine", b"HTTP/1.1 200 Fine\r\n"),  # a reason given replaces the usual one
    (200, b"", b"HTTP/1.1 200 OK\r\n"),  # an empty one does not
    (299, None, b"HTTP/1.1 299 Unknown\r\n"),  # a status without a reason of ours
    (299, b"Odd", b"HTTP/1.1 299 Odd\r\n"),
])
def test_the_status_line_says_the_status_and_its_reason(status, reason, line):
    answers = type("Answers", (AnswersWith,), {"status": status, "reason": reason})
    protocol = HTTP1ServerProtocol(ServerSettings(), lambda p, r: answers(p, r, []), Clock())
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = transport.value()
    assert head.startswith(line)
    assert head.endswith(b"x-test: 1\r\n\r\n") and b"content-length: 0\r\n" in head


def test_a_head_written_whole_for_http10_keep_alive_and_for_close():
    protocol, transport, _, _ = connect()
    protocol.dataReceived(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    first = transport.value()
    assert first.startswith(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: keep-alive\r\ndate: ")
    assert first.endswith(b"\r\nx-test: 1\r\n\r\nGET /a ")
    transport.clear()
    protocol.dataReceived(b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    second = transport.value()
    assert second.startswith(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\ndate: ")
    assert second.endswith(b"\r\nx-test: 1\r\n\r\nGET /b ")


@pytest.mark.parametrize("seed", range(60))
def test_a_head_is_packed_into_the_buffers_as_nginx_packs_it(seed):
    """The client side sums a head's lines while they fit in one buffer and makes the buffers
    only when they outgrow it: its verdicts agree with ``HeadBuffers`` fed line by line."""
    import random

    from ingressd.http.head_buffers import HeadBuffers

    rng = random.Random(seed)
    number, size = rng.choice([(1, 64), (2, 64), (4, 100), (3, 256), (2, 40)])
    target = b"/" + b"t" * rng.randint(0, size - 1)
    lines = []
    for index in range(rng.randint(0, 10)):
        name = b"x-h%d" % index
        lines.append((name, b"v" * rng.randint(1, size)))  # its line: name, ": ", value, CRLF
    model = HeadBuffers(number, size)
    if not model.fits(len(b"GET") + len(target) + 12):  # "GET", two spaces, "HTTP/1.1", CRLF
        expected = 414
    elif not all(model.fits(len(name) + len(value) + 4) for name, value in [(b"host", b"x"), *lines]):
        expected = 400
    else:
        expected = 200 if model.fits(2) else 400  # the blank line
    protocol, transport, _, _ = connect(header_buffers=(number, size))
    head = b"GET %s HTTP/1.1\r\nhost: x\r\n%s\r\n" % (target, b"".join(b"%s: %s\r\n" % line for line in lines))
    protocol.dataReceived(head)
    assert transport.value().startswith(b"HTTP/1.1 %d " % expected)


def test_write_response_joins_the_corked_output_and_writes_at_once_uncorked():
    """``write_response`` queues its bytes while the connection is corked (they leave joined with
    the read's other writes at the last uncork) and writes them at once when it is not."""
    protocol = HTTP1ServerProtocol(ServerSettings(), lambda *a: None, Clock())
    transport = StringTransport()
    protocol.makeConnection(transport)
    writes = []
    transport.write = lambda data, write=transport.write: (writes.append(data), write(data))[1]
    protocol.write_response(200, [(b"x-a", b"1")], b"x-a: 1\r\n", 2, b"ok")
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n")
    assert writes[0].endswith(b"x-a: 1\r\n\r\nok")
    protocol.cork()
    protocol.cork()
    protocol.write_response(204, [], b"", None, b"")
    protocol.write_body(b"ignored")  # (no body for a 204)
    protocol.uncork()
    assert len(writes) == 1  # still corked once
    protocol.uncork()
    assert len(writes) == 2 and writes[1].startswith(b"HTTP/1.1 204 No Content\r\n") and writes[1].endswith(b"\r\n\r\n")
