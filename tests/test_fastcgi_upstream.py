"""The FastCGI connection in memory (``ingressd.proxy.fastcgi_upstream``): what it sends, how it
reads the application's records and CGI head, timeouts and failures; the parameters
(``ingressd.proxy.fastcgi_params``) as nginx's ``fastcgi_params`` make them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd import FastCGI, FastCGIParamError
from ingressd.http.headers import Headers
from ingressd.proxy import fastcgi_records as records
from ingressd.proxy.fastcgi_params import DOCUMENT_ROOT, cgi_params, compile_value, header_params
from ingressd.proxy.fastcgi_upstream import HEAD_LIMIT, FastCGIConnection, FastCGIUpstream, parse_head
from ingressd.proxy.upstream import STREAMED


class Client:
    peer_port = 40000
    server_ip = "127.0.0.1"

    def __init__(self):
        self.corked = 0

    def cork(self):
        self.corked += 1

    def uncork(self):
        pass


class Exchange:
    """What the connection reads (a RequestView) and calls (ExchangeForUpstream)."""

    def __init__(self, method=b"GET", target=b"/index.php?a=1", headers=(), https=False, client_ip="192.0.2.7",
                 peer_ip="192.0.2.7", version=b"1.1", route_host="app.example.com"):
        self.method = method
        self.target = target
        self.request_uri = target
        self.query = target.partition(b"?")[2]
        self.headers = Headers([(b"host", b"app.example.com"), *headers])
        self.host = "app.example.com"
        self.https = https
        self.scheme = "https" if https else "http"
        self.client_ip = client_ip
        self.peer_ip = peer_ip
        self.request_id = "abc123"
        self.version = version
        self.server_port = 8080
        self.route = SimpleNamespace(host=route_host)
        self.protocol = Client()
        self.events = []

    def upstream_head(self, connection, status, headers, length):
        self.events.append(("head", status, list(headers), length))

    def upstream_body(self, data):
        self.events.append(("body", data))

    def upstream_done(self, connection, reusable):
        self.events.append(("done", reusable))

    def upstream_failed(self, connection, error):
        self.events.append(("failed", str(error), error.timeout, error.cause))

    def upstream_write_paused(self):
        self.events.append(("write_paused",))

    def upstream_write_resumed(self):
        self.events.append(("write_resumed",))


def connect(fastcgi=None):
    clock = Clock()
    connection = FastCGIConnection(clock, fastcgi)
    transport = StringTransport()
    connection.makeConnection(transport)
    return clock, connection, transport


def sent(transport):
    """The records written so far, as (type, content), streams joined."""
    reader = records.RecordReader(accepted=frozenset((records.BEGIN_REQUEST, records.PARAMS, records.STDIN)))
    return reader.feed(transport.value())


def params_of(transport):
    content = b"".join(content for kind, content in sent(transport) if kind == records.PARAMS)
    return dict(records.decode_params(content))


def stdout(data):
    return records.record(records.STDOUT, data)


END = records.record(records.END_REQUEST, records.end_request_body(0))


# -- what is sent ---------------------------------------------------------------------------

def test_a_request_without_body_is_begin_params_and_an_empty_stdin():
    clock, connection, transport = connect()
    connection.start(Exchange(), b"GET", b"/index.php?a=1", [(b"x-forwarded-for", b"1.2.3.4")], None, 60, 60)
    kinds = [(kind, len(content) > 0) for kind, content in sent(transport)]
    assert kinds == [(records.BEGIN_REQUEST, True), (records.PARAMS, True), (records.PARAMS, False),
                     (records.STDIN, False)]
    assert sent(transport)[0][1] == b"\x00\x01\x00" + b"\0" * 5  # responder, no FCGI_KEEP_CONN


def test_the_body_goes_as_stdin_records_then_an_empty_one():
    clock, connection, transport = connect()
    exchange = Exchange(method=b"POST", headers=[(b"content-type", b"text/plain"), (b"content-length", b"100000")])
    connection.start(exchange, b"POST", b"/upload.php", [], 100000, 60, 60)
    body = bytes(range(256)) * 390 + b"x" * 160
    connection.send_body(body[:70000])
    connection.send_body(body[70000:])
    connection.end_body()
    connection.end_body()  # once only
    stdin = [content for kind, content in sent(transport) if kind == records.STDIN]
    assert b"".join(stdin) == body and stdin[-1] == b"" and stdin.count(b"") == 1
    assert max(len(piece) for piece in stdin) <= records.MAX_CONTENT
    params = params_of(transport)
    assert params[b"CONTENT_LENGTH"] == b"100000" and params[b"CONTENT_TYPE"] == b"text/plain"


def test_nginx_fastcgi_params_for_a_request():
    clock, connection, transport = connect()
    exchange = Exchange(target=b"/shop/item%20one.php?id=7&x=%41",
                        headers=[(b"user-agent", b"curl/8"), (b"accept", b"a"), (b"accept", b"b"),
                                 (b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"x-my-header", b"v"),
                                 (b"proxy", b"http://evil:8080")])
    connection.start(exchange, b"GET", exchange.target, [(b"x-forwarded-for", b"192.0.2.7")], None, 60, 60)
    params = params_of(transport)
    assert params == {
        b"QUERY_STRING": b"id=7&x=%41",
        b"REQUEST_METHOD": b"GET",
        b"CONTENT_TYPE": b"",
        b"CONTENT_LENGTH": b"",
        b"SCRIPT_NAME": b"/shop/item one.php",
        b"REQUEST_URI": b"/shop/item%20one.php?id=7&x=%41",
        b"DOCUMENT_URI": b"/shop/item one.php",
        b"DOCUMENT_ROOT": DOCUMENT_ROOT.encode(),
        b"SERVER_PROTOCOL": b"HTTP/1.1",
        b"REQUEST_SCHEME": b"http",
        b"GATEWAY_INTERFACE": b"CGI/1.1",
        b"SERVER_SOFTWARE": b"ingressd",
        b"REMOTE_ADDR": b"192.0.2.7",
        b"REMOTE_PORT": b"40000",
        b"SERVER_ADDR": b"127.0.0.1",
        b"SERVER_PORT": b"8080",
        b"SERVER_NAME": b"app.example.com",
        b"REDIRECT_STATUS": b"200",
        # the client's headers, same names joined (nginx 1.23+); not what ingressd adds for HTTP
        # backends (X-Forwarded-For…), as fastcgi_pass ignores proxy_set_header; no HTTP_PROXY
        b"HTTP_HOST": b"app.example.com",
        b"HTTP_USER_AGENT": b"curl/8",
        b"HTTP_ACCEPT": b"a, b",
        b"HTTP_COOKIE": b"a=1; b=2",
        b"HTTP_X_MY_HEADER": b"v",
    }


def test_https_http2_and_a_client_address_from_a_trusted_proxy():
    clock, connection, transport = connect()
    exchange = Exchange(https=True, version=b"2", client_ip="203.0.113.9", peer_ip="10.0.0.1", route_host="")
    connection.start(exchange, b"GET", exchange.target, [], None, 60, 60)
    params = params_of(transport)
    assert params[b"HTTPS"] == b"on" and params[b"REQUEST_SCHEME"] == b"https"
    assert params[b"SERVER_PROTOCOL"] == b"HTTP/2.0"
    assert params[b"REMOTE_ADDR"] == b"203.0.113.9"
    assert params[b"REMOTE_PORT"] == b""  # the address came from a header: no port (nginx's realip)
    assert params[b"SERVER_NAME"] == b"_"  # a rule without host: ingress-nginx's catch-all server


def test_the_index_is_appended_to_a_uri_ending_in_a_slash():
    fastcgi = FastCGI.of("index.php")
    for target, script in ((b"/", b"/index.php"), (b"/app/?q=1", b"/app/index.php"), (b"/app/x.php", b"/app/x.php")):
        clock, connection, transport = connect(fastcgi)
        connection.start(Exchange(target=target), b"GET", target, [], None, 60, 60)
        params = params_of(transport)
        assert params[b"SCRIPT_NAME"] == script
        assert params[b"DOCUMENT_URI"] == target.partition(b"?")[0]


def test_the_routes_params_with_variables_replace_the_stock_ones():
    fastcgi = FastCGI.of("index.php", [
        ("SCRIPT_FILENAME", "/var/www/html$fastcgi_script_name"),
        ("SERVER_NAME", "fixed.example"),
        ("APP_ENV", "prod"),
        ("BRACES", "${request_method}-${arg_id}-$http_x_tenant-$is_args$args"),
        ("HTTP_X_TENANT", ""),  # a parameter of a header's name: the header is not passed
    ])
    clock, connection, transport = connect(fastcgi)
    exchange = Exchange(target=b"/shop/?id=7", headers=[(b"x-tenant", b"acme")])
    connection.start(exchange, b"GET", exchange.target, [], None, 60, 60)
    content = b"".join(content for kind, content in sent(transport) if kind == records.PARAMS)
    pairs = records.decode_params(content)
    names = [name for name, _ in pairs]
    assert names.count(b"SERVER_NAME") == 1 and names.count(b"HTTP_X_TENANT") == 1
    params = dict(pairs)
    assert params[b"SCRIPT_FILENAME"] == b"/var/www/html/shop/index.php"
    assert params[b"SERVER_NAME"] == b"fixed.example"
    assert params[b"APP_ENV"] == b"prod"
    assert params[b"BRACES"] == b"GET-7-acme-?id=7"
    assert params[b"HTTP_X_TENANT"] == b""


@pytest.mark.parametrize("value", ["$nosuchvariable", "$", "a$", "${uri", "${}", "$document_root$-x"])
def test_a_variable_nginx_does_not_know_is_refused(value):
    with pytest.raises(FastCGIParamError):
        compile_value(value)


def test_a_parameter_name_outside_ingress_nginx_characters_is_refused():
    with pytest.raises(FastCGIParamError):
        FastCGI.of("", [("BAD NAME", "x")])


def test_literal_values_and_known_variables_compile():
    assert compile_value("/var/www/index.php") == ((False, "/var/www/index.php"),)
    assert compile_value("$document_root$fastcgi_script_name") == ((True, "document_root"),
                                                                   (True, "fastcgi_script_name"))
    assert compile_value("") == ()


def test_header_params():
    assert header_params([(b"Content-Type", b"x"), (b"x-a-b", b"1"), (b"Proxy", b"p")]) == [
        (b"HTTP_CONTENT_TYPE", b"x"), (b"HTTP_X_A_B", b"1")]


def test_header_names_nginx_ignores_cannot_pass_for_another_header():
    # x_real_ip would become HTTP_X_REAL_IP, as X-Real-IP does: nginx ignores such names
    assert header_params([(b"x_real_ip", b"6.6.6.6"), (b"x.real.ip", b"6"), (b":authority", b"a"),
                          (b"x-real-ip", b"1.2.3.4")]) == [(b"HTTP_X_REAL_IP", b"1.2.3.4")]


def test_a_buffered_chunked_body_is_given_its_length_a_streamed_one_the_clients():
    exchange = Exchange(method=b"POST", headers=[(b"transfer-encoding", b"chunked")])
    assert dict(cgi_params(exchange, None, 12))[b"CONTENT_LENGTH"] == b"12"
    assert dict(cgi_params(exchange, None, STREAMED))[b"CONTENT_LENGTH"] == b""


# -- the response ---------------------------------------------------------------------------

def test_a_response_is_relayed_head_then_body_then_done():
    clock, connection, transport = connect()
    exchange = Exchange()
    connection.start(exchange, b"GET", b"/", [], None, 60, 60)
    connection.dataReceived(stdout(b"Status: 201 Created\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\nhel"))
    connection.dataReceived(records.record(records.STDERR, b"a warning") + stdout(b"lo") + stdout(b"") + END)
    assert exchange.events == [
        ("head", 201, [(b"content-type", b"text/plain"), (b"x-a", b"1")], None),
        ("body", b"hel"), ("body", b"lo"), ("done", False)]
    assert connection.response_headers == [(b"content-type", b"text/plain"), (b"x-a", b"1")]
    assert exchange.protocol.corked == 2


def test_the_head_may_span_records_and_end_with_bare_line_feeds():
    clock, connection, transport = connect()
    exchange = Exchange()
    connection.start(exchange, b"GET", b"/", [], None, 60, 60)
    data = stdout(b"Content-Type: text/html\nContent-") + stdout(b"Length: 2\n") + stdout(b"\nok") + END
    for at in range(0, len(data), 5):
        connection.dataReceived(data[at:at + 5])
    assert exchange.events == [("head", 200, [(b"content-type", b"text/html"), (b"content-length", b"2")], 2),
                               ("body", b"ok"), ("done", False)]


@pytest.mark.parametrize("head, status", [
    (b"Location: /elsewhere", 302),  # a Location without Status: nginx's 302
    (b"Status: 301\r\nLocation: /x", 301),
    (b"Status: 404 Not Found", 404),
    (b"X-Powered-By: PHP", 200),
])
def test_the_status_as_nginx_reads_a_cgi_head(head, status):
    assert parse_head(head)[0] == status


@pytest.mark.parametrize("head", [b"no colon here", b": empty name", b"Status: abc", b"Status: 99",
                                  b"Status: 2000", b"Bad Name: x", b"X: a\x00b"])
def test_a_malformed_head_is_a_bad_gateway(head):
    clock, connection, transport = connect()
    exchange = Exchange()
    connection.start(exchange, b"GET", b"/", [], None, 60, 60)
    connection.dataReceived(stdout(head + b"\r\n\r\nbody") + END)
    assert exchange.events[0][0] == "failed" and exchange.events[0][3] == "invalid_response", exchange.events
    assert transport.disconnecting or transport.disconnected


def test_a_head_larger_than_nginxs_buffer_is_a_bad_gateway():
    clock, connection, transport = connect()
    exchange = Exchange()
    connection.start(exchange, b"GET", b"/", [], None, 60, 60)
    connection.dataReceived(stdout(b"X-Big: " + b"a" * HEAD_LIMIT + b"\r\n"))
    assert exchange.events[0][0] == "failed" and "too big header" in exchange.events[0][1]


def test_hop_by_hop_and_status_are_not_relayed():
    assert parse_head(b"Status: 200\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nX: y") == (
        200, [(b"x", b"y")])


def test_a_head_request_gets_no_body():
    clock, connection, transport = connect()
    exchange = Exchange(method=b"HEAD")
    connection.start(exchange, b"HEAD", b"/", [], None, 60, 60)
    connection.dataReceived(stdout(b"Content-Length: 5\r\n\r\nhello") + END)
    assert exchange.events == [("head", 200, [(b"content-length", b"5")], 5), ("done", False)]


def test_a_body_that_disagrees_with_its_content_length_fails():
    for data in (b"Content-Length: 2\r\n\r\nabc", b"Content-Length: 5\r\n\r\nabc"):
        clock, connection, transport = connect()
        exchange = Exchange()
        connection.start(exchange, b"GET", b"/", [], None, 60, 60)
        connection.dataReceived(stdout(data) + END)
        assert exchange.events[-1][0] == "failed", exchange.events


@pytest.mark.parametrize("data, why", [
    (END, "before its head"),
    (stdout(b"X: 1\r\n") + END, "head has no end"),
    (stdout(b"\r\n") + records.record(records.END_REQUEST, records.end_request_body(0, records.OVERLOADED)),
     "overloaded"),
    (stdout(b"X: 1\r\n\r\n") + records.record(records.END_REQUEST, b"\0" * 4), "END_REQUEST of 4 bytes"),
    (records.record(records.STDOUT, b"x", request_id=2), "request 2"),
    (b"HTTP/1.1 200 OK\r\n\r\n", "version 72"),
])
def test_application_errors_are_a_bad_gateway(data, why):
    clock, connection, transport = connect()
    exchange = Exchange()
    connection.start(exchange, b"GET", b"/", [], None, 60, 60)
    connection.dataReceived(data)
    (event,) = [event for event in exchange.events if event[0] == "failed"]
    assert why in event[1] and event[2] is False and event[3] == "invalid_response"


def test_a_connection_closed_before_the_end_fails_the_request():
    clock, connection, transport = connect()
    exchange = Exchange()
    connection.start(exchange, b"GET", b"/", [], None, 60, 60)
    connection.dataReceived(stdout(b"X: 1\r\n\r\npart"))
    connection.connectionLost(None)
    assert exchange.events[-1][0] == "failed" and exchange.events[-1][3] == "backend_closed"


def test_closing_after_the_end_is_normal():
    clock, connection, transport = connect()
    exchange = Exchange()
    connection.start(exchange, b"GET", b"/", [], None, 60, 60)
    connection.dataReceived(stdout(b"\r\n") + END)
    connection.connectionLost(None)
    assert exchange.events[-1] == ("done", False)


def test_read_timeout_between_reads_is_a_gateway_timeout():
    clock, connection, transport = connect()
    exchange = Exchange()
    connection.start(exchange, b"GET", b"/", [], None, 5, 60)
    clock.advance(4)
    connection.dataReceived(stdout(b"X: 1\r\n\r\n"))
    clock.advance(4.9)
    assert not any(event[0] == "failed" for event in exchange.events)
    clock.advance(0.2)
    assert exchange.events[-1][:4] == ("failed", "backend read timeout", True, "read_timeout")


def test_reading_paused_for_a_slow_client_stops_the_read_timeout():
    clock, connection, transport = connect()
    exchange = Exchange()
    connection.start(exchange, b"GET", b"/", [], None, 5, 60)
    connection.pause_reading()
    assert transport.producerState == "paused"
    clock.advance(100)
    assert not exchange.events
    connection.resume_reading()
    assert transport.producerState == "producing"
    clock.advance(5.1)
    assert exchange.events[-1][3] == "read_timeout"


def test_send_timeout_while_the_application_does_not_read_the_body():
    clock, connection, transport = connect()
    exchange = Exchange(method=b"POST")
    connection.start(exchange, b"POST", b"/", [], 10, 600, 3)
    connection.pauseProducing()
    assert exchange.events == [("write_paused",)]
    clock.advance(3.1)
    assert exchange.events[-1][:4] == ("failed", "backend send timeout", True, "send_timeout")


def test_stderr_is_logged_bounded(monkeypatch):
    from ingressd.proxy import fastcgi_upstream
    logged = []
    monkeypatch.setattr(fastcgi_upstream.log, "msg", lambda text: logged.append(text))
    clock, connection, transport = connect()
    exchange = Exchange()
    connection.start(exchange, b"GET", b"/", [], None, 60, 60)
    connection.dataReceived(records.record(records.STDERR, b"PHP Warning: x") +
                            records.stream(records.STDERR, b"y" * 10000) + stdout(b"\r\n") + END)
    assert "PHP Warning: x" in logged[0]
    assert sum(len(text) for text in logged) < fastcgi_upstream.STDERR_LIMIT + 200
    assert exchange.events[-1] == ("done", False)


def test_release_closes_the_connection_nothing_is_pooled():
    clock, connection, transport = connect()
    connection.release()
    assert transport.disconnecting


def test_the_protocol_connects_a_new_connection_per_request():
    from twisted.internet.testing import MemoryReactorClock
    reactor = MemoryReactorClock()
    upstream = FastCGIUpstream(reactor)
    assert upstream.name == "FCGI" and not upstream.streams_request_body
    settings = SimpleNamespace(connect_timeout=5.0, fastcgi=FastCGI.of("index.php"))
    ready, errors = [], []
    upstream.acquire("127.0.0.1", 9000, settings, ready.append, errors.append)
    upstream.acquire("127.0.0.1", 9000, settings, ready.append, errors.append)
    assert [(host, port) for host, port, *_ in reactor.tcpClients] == [("127.0.0.1", 9000)] * 2
    factory = reactor.tcpClients[0][2]
    connection = factory.buildProtocol(None)
    assert connection.fastcgi == settings.fastcgi
    connection.makeConnection(StringTransport())
    assert ready == [connection]
    factory.clientConnectionFailed(None, SimpleNamespace(getErrorMessage=lambda: "Connection refused"))
    assert not errors  # that attempt had succeeded already
    other = reactor.tcpClients[1][2]
    other.clientConnectionFailed(None, SimpleNamespace(getErrorMessage=lambda: "Connection refused"))
    assert errors[0].retryable and errors[0].cause == "connect_failed"
