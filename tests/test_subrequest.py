"""The sub-request client (ingressd.proxy.subrequest) against real local servers on 127.0.0.1:
status, headers and body, the body bound, discarding, timeouts, refusal, pooling, HTTPS and
name resolution; and its URL check."""

from __future__ import annotations

import pytest
from twisted.internet import defer, reactor, ssl
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest
from twisted.web import resource, server

from ingressd import SubrequestError, SubResponse, parse_url
from ingressd.proxy.http1_upstream import HTTP1Upstream
from ingressd.proxy.subrequest import SubrequestClient

from certs import make_leaf


# -- the URL check ----------------------------------------------------------------------------


@pytest.mark.parametrize("text, scheme, host, port, target, header", [
    ("http://localhost/mirror", "http", "localhost", 80, b"/mirror", b"localhost"),
    ("https://test.env.com", "https", "test.env.com", 443, b"/", b"test.env.com"),
    ("http://10.0.0.1:8080/a/b?x=1&y=2", "http", "10.0.0.1", 8080, b"/a/b?x=1&y=2", b"10.0.0.1:8080"),
    ("http://[::1]:81/", "http", "::1", 81, b"/", b"[::1]:81"),
    ("https://svc.ns.svc.cluster.local:8443/auth", "https", "svc.ns.svc.cluster.local", 8443, b"/auth",
     b"svc.ns.svc.cluster.local:8443"),
])
def test_parse_url_accepts(text, scheme, host, port, target, header):
    url = parse_url(text)
    assert (url.scheme, url.host, url.port, url.target, url.host_header) == (scheme, host, port, target, header)


@pytest.mark.parametrize("text, says", [
    ("", "empty"),
    ("ftp://host/", "http:// or https://"),
    ("localhost/mirror", "http:// or https://"),
    ("http:///path", "no host"),
    ("http://user:pw@host/", "user information"),
    ("http://host/a#frag", "fragment"),
    ("http://host/a\r\nX: y", "control"),
    ("http://host/a b", "space"),
    ("http://ho_st/", "invalid host"),
    ("http://host:99999/", "not valid"),
    ("http://host:0/", "port 0"),
])
def test_parse_url_refuses(text, says):
    with pytest.raises(SubrequestError) as caught:
        parse_url(text)
    assert says in str(caught.value)
    assert caught.value.cause == "invalid_url"


def test_sub_response_headers():
    answer = SubResponse(200, ((b"set-cookie", b"a=1"), (b"x-user", b"u"), (b"set-cookie", b"b=2")), b"")
    assert answer.header(b"x-user") == b"u"
    assert answer.header(b"missing") is None
    assert answer.header_values(b"set-cookie") == [b"a=1", b"b=2"]


# -- against real servers ---------------------------------------------------------------------


class Recorder(resource.Resource):
    """Answers by path: /hang never answers, /big?n= sends n bytes, /chunked streams; anything
    else echoes the method, path, Host and body. Records what it received."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.requests = []
        self.hanging = []

    def render(self, request):
        body = request.content.read()
        self.requests.append((request.method, request.uri, dict(request.requestHeaders.getAllRawHeaders()), body))
        if request.path == b"/hang":
            self.hanging.append(request)
            return server.NOT_DONE_YET
        if request.path == b"/big":
            size = int(request.args[b"n"][0])
            request.setHeader(b"content-length", b"%d" % size)
            return b"x" * size
        if request.path == b"/chunked":
            for _ in range(10):
                request.write(b"y" * 1000)
            request.finish()
            return server.NOT_DONE_YET
        request.setResponseCode(201 if request.path == b"/created" else 200)
        request.setHeader(b"x-seen-host", request.getHeader(b"host") or b"")
        request.responseHeaders.addRawHeader(b"set-cookie", b"a=1")
        request.responseHeaders.addRawHeader(b"set-cookie", b"b=2")
        return b"%s %s %s" % (request.method, request.uri, body)


class OneAnswerPerConnection(Protocol):
    """Answers the first request on a connection; closes it when a second one arrives."""

    def connectionMade(self):
        self.received = b""
        self.answered = False

    def dataReceived(self, data):
        self.received += data
        if b"\r\n\r\n" not in self.received:
            return
        if self.answered:
            self.transport.loseConnection()
            return
        self.answered = True
        self.received = b""
        self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")


class SubrequestTests(unittest.TestCase):
    def setUp(self):
        self.pools = {"HTTP": HTTP1Upstream(reactor), "HTTPS": HTTP1Upstream(reactor, tls=True)}
        self.client = SubrequestClient(self.pools, reactor, connect_timeout=5, read_timeout=10, send_timeout=10)
        self.recorder = Recorder()
        site = server.Site(self.recorder)
        site.displayTracebacks = False
        self.port = self.listen(reactor.listenTCP(0, site, interface="127.0.0.1"))

    def tearDown(self):
        for request in self.recorder.hanging:
            if request.channel is not None:
                request.channel.transport.abortConnection()
        connections = [c for pool in self.pools.values() for idle in pool.idle.values() for c in idle]
        for pool in self.pools.values():
            pool.close()
        for connection in connections:
            if connection.transport is not None:
                connection.transport.abortConnection()
        return wait_for(lambda: not any(c.connected for c in connections))

    def listen(self, listening) -> int:
        self.addCleanup(listening.stopListening)
        return listening.getHost().port

    def url(self, path: str, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.port}{path}"

    @defer.inlineCallbacks
    def test_status_headers_and_body(self):
        answer = yield self.client.fetch(b"POST", self.url("/created?x=1"), [(b"x-in", b"1")], b"hello")
        self.assertEqual(answer.status, 201)
        self.assertEqual(answer.body, b"POST /created?x=1 hello")
        self.assertEqual(answer.header_values(b"set-cookie"), [b"a=1", b"b=2"])
        self.assertEqual(answer.header(b"x-seen-host"), b"127.0.0.1:%d" % self.port)  # made from the URL
        method, uri, headers, body = self.recorder.requests[0]
        self.assertEqual((method, uri, body), (b"POST", b"/created?x=1", b"hello"))
        self.assertEqual(headers[b"X-In"], [b"1"])
        self.assertEqual(headers[b"Content-Length"], [b"5"])

    @defer.inlineCallbacks
    def test_the_callers_host_and_no_framing_headers_of_its_own(self):
        answer = yield self.client.fetch(
            b"GET", self.url("/"), [(b"Host", b"mirror.example"), (b"content-length", b"99"),
                                    (b"transfer-encoding", b"chunked"), (b"connection", b"close")])
        self.assertEqual(answer.header(b"x-seen-host"), b"mirror.example")
        headers = self.recorder.requests[0][2]
        self.assertNotIn(b"Content-Length", headers)  # no body: none sent, whatever the caller said
        self.assertNotIn(b"Transfer-Encoding", headers)

    @defer.inlineCallbacks
    def test_a_header_with_a_line_break_is_refused_before_sending(self):
        with self.assertRaises(SubrequestError) as caught:
            yield self.client.fetch(b"GET", self.url("/"), [(b"x-a", b"1\r\nx-b: 2")])
        self.assertEqual(caught.exception.cause, "invalid_header")
        self.assertEqual(self.recorder.requests, [])

    @defer.inlineCallbacks
    def test_body_up_to_the_bound(self):
        answer = yield self.client.fetch(b"GET", self.url("/big?n=1000"), max_body=1000)
        self.assertEqual(len(answer.body), 1000)
        with self.assertRaises(SubrequestError) as caught:  # announced too long
            yield self.client.fetch(b"GET", self.url("/big?n=1001"), max_body=1000)
        self.assertEqual(caught.exception.cause, "too_large")
        with self.assertRaises(SubrequestError) as caught:  # sent too long, no length announced
            yield self.client.fetch(b"GET", self.url("/chunked"), max_body=5000)
        self.assertEqual(caught.exception.cause, "too_large")
        self.assertEqual(self.client.in_flight, 0)

    @defer.inlineCallbacks
    def test_discard_reads_the_answer_and_keeps_nothing(self):
        answer = yield self.client.fetch(b"GET", self.url("/big?n=200000"), discard=True, max_body=10)
        self.assertEqual((answer.status, answer.body), (200, b""))
        # read to its end: the connection serves the next one
        yield self.client.fetch(b"GET", self.url("/"), discard=True)
        self.assertEqual(self.pools["HTTP"].opened, 1)

    @defer.inlineCallbacks
    def test_read_timeout(self):
        with self.assertRaises(SubrequestError) as caught:
            yield self.client.fetch(b"GET", self.url("/hang"), read_timeout=0.3)
        self.assertEqual(caught.exception.cause, "read_timeout")
        self.assertTrue(caught.exception.timeout)
        self.assertEqual(len(self.recorder.requests), 1)
        self.assertEqual(self.client.in_flight, 0)

    @defer.inlineCallbacks
    def test_connection_refused(self):
        listening = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        port = listening.getHost().port
        yield listening.stopListening()
        with self.assertRaises(SubrequestError) as caught:
            yield self.client.fetch(b"GET", self.url("/", port))
        self.assertEqual(caught.exception.cause, "connect_failed")
        self.assertFalse(caught.exception.timeout)
        self.assertEqual(self.client.in_flight, 0)

    @defer.inlineCallbacks
    def test_connections_are_pooled(self):
        for index in range(4):
            answer = yield self.client.fetch(b"GET", self.url(f"/{index}"))
            self.assertEqual(answer.status, 200)
        self.assertEqual(self.pools["HTTP"].opened, 1)
        self.assertEqual(self.pools["HTTP"].reused, 3)
        self.assertEqual(self.pools["HTTP"].idle_count(), 1)

    @defer.inlineCallbacks
    def test_a_stale_pooled_connection_is_retried_once_on_a_fresh_one(self):
        port = self.listen(reactor.listenTCP(0, Factory.forProtocol(OneAnswerPerConnection), interface="127.0.0.1"))
        first = yield self.client.fetch(b"GET", self.url("/1", port))
        # the pooled connection is closed by the server as the second request arrives, before
        # any answer: sent again on a fresh connection
        second = yield self.client.fetch(b"GET", self.url("/2", port))
        self.assertEqual((first.status, second.status), (200, 200))
        self.assertEqual(self.pools["HTTP"].opened, 2)
        self.assertEqual(self.pools["HTTP"].reused, 1)

    @defer.inlineCallbacks
    def test_cancel_drops_the_request(self):
        fetching = self.client.fetch(b"GET", self.url("/hang"))
        for _ in range(200):  # until the server has it
            if self.recorder.requests:
                break
            yield deferLater(0.02)
        fetching.cancel()
        with self.assertRaises(defer.CancelledError):
            yield fetching
        self.assertEqual(self.client.in_flight, 0)
        self.assertEqual(self.pools["HTTP"].idle_count(), 0)

    @defer.inlineCallbacks
    def test_https(self):
        leaf = make_leaf("mirror.test")
        context = ssl.PrivateCertificate.loadPEM(leaf.cert_pem + leaf.key_pem()).options()
        port = self.listen(reactor.listenSSL(0, server.Site(self.recorder), context, interface="127.0.0.1"))
        answer = yield self.client.fetch(b"PUT", f"https://127.0.0.1:{port}/tls", (), b"sealed")
        self.assertEqual((answer.status, answer.body), (200, b"PUT /tls sealed"))
        yield self.client.fetch(b"GET", f"https://127.0.0.1:{port}/tls")
        self.assertEqual(self.pools["HTTPS"].opened, 1)  # pooled too
        self.assertEqual(self.pools["HTTP"].opened, 0)

    @defer.inlineCallbacks
    def test_a_name_is_resolved_by_the_system_resolver(self):
        answer = yield self.client.fetch(b"GET", f"http://localhost:{self.port}/named")
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.header(b"x-seen-host"), b"localhost:%d" % self.port)

    @defer.inlineCallbacks
    def test_a_resolved_name_is_remembered(self):
        asked = []

        def resolve(name):
            asked.append(name)
            return defer.succeed(["127.0.0.1"])

        client = SubrequestClient(self.pools, reactor, resolver=resolve)
        for _ in range(3):
            yield client.fetch(b"GET", f"http://backend.test:{self.port}/")
        self.assertEqual(asked, ["backend.test"])

    @defer.inlineCallbacks
    def test_a_name_that_does_not_resolve(self):
        def resolve(name):
            return defer.succeed([])

        client = SubrequestClient(self.pools, reactor, resolver=resolve)
        with self.assertRaises(SubrequestError) as caught:
            yield client.fetch(b"GET", "http://nowhere.test/")
        self.assertEqual(caught.exception.cause, "resolve_failed")
        self.assertEqual(client.in_flight, 0)

    @defer.inlineCallbacks
    def test_a_resolver_that_hangs_times_out(self):
        client = SubrequestClient(self.pools, reactor, resolver=lambda name: defer.Deferred(), connect_timeout=0.2)
        with self.assertRaises(SubrequestError) as caught:
            yield client.fetch(b"GET", "http://slow-dns.test/")
        self.assertEqual(caught.exception.cause, "resolve_failed")
        self.assertTrue(caught.exception.timeout)

    @defer.inlineCallbacks
    def test_an_invalid_url_fails_the_deferred(self):
        with self.assertRaises(SubrequestError) as caught:
            yield self.client.fetch(b"GET", "gopher://x/")
        self.assertEqual(caught.exception.cause, "invalid_url")


@defer.inlineCallbacks
def wait_for(condition, limit: float = 10.0):
    """Poll ``condition`` every 10 ms, at most ``limit`` seconds."""
    for _ in range(int(limit / 0.01)):
        if condition():
            return
        yield deferLater(0.01)
    raise AssertionError("condition not reached in time")


def deferLater(seconds: float) -> defer.Deferred:
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)

