"""error_pages: which codes, which backend, and real fetches from a tiny twisted.web error backend."""

import pytest
from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest
from twisted.web import resource, server

from fakes import annotation_values, exchange, features_for, make_context, make_route
from ingressd.features import AnnotationError, LocalResponse
from ingressd.model import Backend, Endpoint
from ingressd_plugins import error_pages


class FakeFetcher:
    def __init__(self):
        self.calls = []

    def fetch(self, address, port, headers):
        self.calls.append((address, port, dict(headers)))
        return defer.succeed((b"text/html", b"<h1>oops</h1>"))


ERRORS = Backend("default", "errors", "80", (Endpoint("10.9.0.1", 8080), Endpoint("10.9.0.2", 8080)))
GLOBAL = Backend("ingress", "global-errors", "80", (Endpoint("10.8.0.1", 80),))


@pytest.fixture
def fake_fetcher(monkeypatch):
    fetcher = FakeFetcher()
    monkeypatch.setitem(error_pages._state, "fetcher", fetcher)
    return fetcher


def test_codes_and_service_parsing():
    assert error_pages.parse_codes("503, 404,404 ,") == (404, 503)
    for bad in ("200", "600", "40x", "4041", "404;500"):
        with pytest.raises(AnnotationError):
            error_pages.parse_codes(bad)
    for bad in ("other-ns/errors", "Errors", "-x"):
        with pytest.raises(AnnotationError):
            annotation_values(error_pages, {"default-backend": bad})


def test_no_feature_without_codes_or_backend(fake_fetcher):
    assert features_for(error_pages, {"default-backend": "errors"}, resolved={"default-backend": ERRORS}) == []
    assert features_for(error_pages, {"custom-http-errors": "503"}) == []  # no backend anywhere
    empty = Backend("default", "errors", "80", ())
    assert features_for(error_pages, {"custom-http-errors": "503"}, resolved={"default-backend": empty}) == []


def test_annotation_backend_wins_over_the_global_one_and_endpoints_rotate(fake_fetcher):
    context = make_context(default_backend=GLOBAL)
    [feature] = features_for(error_pages, {"custom-http-errors": "503,404"}, context=context,
                             resolved={"default-backend": ERRORS})
    assert feature.error_codes == frozenset({404, 503})
    assert feature.error(exchange(), 502) is None
    ex = exchange({"accept": "application/json"}, target=b"/a?b=1", request_id="rid-1", client_ip="192.0.2.4",
                  route=make_route(namespace="shop", ingress="front", service="cart", port="http"))
    answer = feature.error(ex, 503).result
    assert answer == LocalResponse(503, [(b"content-type", b"text/html")], b"<h1>oops</h1>")
    feature.error(ex, 404)
    (first_addr, _, headers), (second_addr, _, _) = fake_fetcher.calls
    assert {first_addr, second_addr} == {"10.9.0.1", "10.9.0.2"}
    assert headers == {
        b"X-Code": b"503", b"X-Format": b"application/json", b"X-Original-URI": b"/a?b=1", b"X-Namespace": b"shop",
        b"X-Ingress-Name": b"front", b"X-Service-Name": b"cart", b"X-Service-Port": b"http",
        b"X-Request-ID": b"rid-1", b"X-Forwarded-For": b"192.0.2.4",
    }


def test_global_backend_and_global_codes(fake_fetcher):
    context = make_context({"custom_http_errors": (429,)}, default_backend=GLOBAL)
    [feature] = features_for(error_pages, {}, context=context)
    assert feature.error_codes == frozenset({429})
    feature.error(exchange(), 429)
    assert fake_fetcher.calls[0][0] == "10.8.0.1"
    assert b"X-Format" not in fake_fetcher.calls[0][2]  # no Accept, no header (as nginx)
    # An Ingress's own list replaces the global one.
    [feature] = features_for(error_pages, {"custom-http-errors": "404"}, context=context)
    assert feature.error_codes == frozenset({404})


# -- real fetches over loopback --------------------------------------------------------------


class ErrorBackend(resource.Resource):
    isLeaf = True

    def __init__(self, status_from_code=True, body=b"<p>custom error</p>", hang=False):
        super().__init__()
        self.requests = []
        self.status_from_code = status_from_code
        self.body = body
        self.hang = hang

    def render_GET(self, request):
        self.requests.append((request.uri, {k.lower(): v[0] for k, v in request.requestHeaders.getAllRawHeaders()}))
        if self.hang:
            return server.NOT_DONE_YET
        # A badly behaved backend ignores X-Code and answers 200.
        request.setResponseCode(int(request.getHeader(b"x-code")) if self.status_from_code else 200)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return self.body


class FetchTests(unittest.TestCase):
    def start(self, backend):
        site = server.Site(backend)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def make_feature(self, port, codes=(401, 503), **fetcher_kwargs):
        fetcher = error_pages.ErrorPageFetcher(reactor, **fetcher_kwargs)
        self.addCleanup(fetcher.pool.closeCachedConnections)
        backend = Backend("default", "errors", "80", (Endpoint("127.0.0.1", port),))
        return error_pages.ErrorPages(codes, backend, fetcher)

    @defer.inlineCallbacks
    def test_page_is_fetched_and_the_original_status_kept(self):
        backend = ErrorBackend(status_from_code=False)
        feature = self.make_feature(self.start(backend))
        ex = exchange({"accept": "text/html"}, target=b"/private?x=1", request_id="abc")
        answer = yield feature.error(ex, 401)
        self.assertEqual(answer.status, 401)  # the backend said 200: never a 200 for a 401
        self.assertEqual(answer.body, b"<p>custom error</p>")
        self.assertEqual(answer.headers, [(b"content-type", b"text/html; charset=utf-8")])
        uri, headers = backend.requests[0]
        self.assertEqual(uri, b"/")
        self.assertEqual(headers[b"x-code"], b"401")
        self.assertEqual(headers[b"x-format"], b"text/html")
        self.assertEqual(headers[b"x-original-uri"], b"/private?x=1")
        self.assertEqual(headers[b"x-request-id"], b"abc")
        self.assertEqual(headers[b"x-namespace"], b"default")

    @defer.inlineCallbacks
    def test_connections_are_reused(self):
        backend = ErrorBackend()
        port = self.start(backend)
        feature = self.make_feature(port)
        for _ in range(3):
            answer = yield feature.error(exchange(), 503)
            self.assertEqual(answer.status, 503)
        pool = feature._fetcher.pool
        connections = pool._connections.get((b"http", b"127.0.0.1", port), [])
        self.assertEqual(len(connections), 1)
        self.assertEqual(len(backend.requests), 3)

    @defer.inlineCallbacks
    def test_backend_down_serves_the_plain_error(self):
        listening = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        port = listening.getHost().port
        yield listening.stopListening()
        answer = yield self.make_feature(port).error(exchange(), 503)
        self.assertIsNone(answer)

    @defer.inlineCallbacks
    def test_slow_backend_times_out(self):
        backend = ErrorBackend(hang=True)
        feature = self.make_feature(self.start(backend), timeout=0.2)
        answer = yield feature.error(exchange(), 503)
        self.assertIsNone(answer)
        self.assertEqual(len(backend.requests), 1)

    @defer.inlineCallbacks
    def test_oversized_page_is_refused(self):
        backend = ErrorBackend(body=b"x" * 5000)
        feature = self.make_feature(self.start(backend), max_body=1000)
        answer = yield feature.error(exchange(), 503)
        self.assertIsNone(answer)
