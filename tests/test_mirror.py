"""Mirroring in memory: the annotations' parsing (ingress-nginx's validation, and a URL ingressd
can send to), what a copy carries (through the real Exchange, with a fake sub-request client),
and the bound on copies outstanding."""

from __future__ import annotations

import pytest
from twisted.internet import defer

from ingressd import AnnotationError
from ingressd.features import BuildContext, ForwardedRequest
from ingressd.testing import PluginHarness, exchange as fake_exchange, features_for, make_route
from ingressd_plugins import mirror

from test_exchange import FakeClient, entry, proxy_for, request, send


class FakeSubrequests:
    """interfaces.Subrequests: records what is sent; the test answers (or not)."""

    def __init__(self):
        self.sent = []  # (method, url, headers, body, kwargs, deferred)

    def fetch(self, method, url, headers=(), body=None, **kwargs):
        answer = defer.Deferred()
        self.sent.append((method, url, list(headers), body, kwargs, answer))
        return answer


def mirror_feature(annotations, client=None, settings=None):
    context = BuildContext(settings=dict(settings or {}), reactor=None, subrequests=client or FakeSubrequests())
    (feature,) = features_for(mirror, annotations, context=context)
    return feature, context.subrequests


# -- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, scheme, host, port", [
    ("http://localhost/mirror", "http", "localhost", 80),
    ("https://test.env.com/$request_uri", "https", "test.env.com", 443),
    (" http://10.0.0.9:8080/copy?from=shop ", "http", "10.0.0.9", 8080),
    ("http://mirror.ns.svc.cluster.local:81", "http", "mirror.ns.svc.cluster.local", 81),
])
def test_mirror_target_accepted(text, scheme, host, port):
    target = mirror.parse_target(text)
    assert (target.url.scheme, target.url.host, target.url.port) == (scheme, host, port)


@pytest.mark.parametrize("text, says", [
    ("ftp://mirror/", "http:// or https://"),
    ("mirror.example/copy", "http:// or https://"),
    ("http://", "no host"),
    ("http://user@mirror/", "not a valid mirror target"),  # '@' is outside ingress-nginx's characters
    ("http://mirror/a b", "not a valid mirror target"),
    ("http://mirror/%0d%0a", "not a valid mirror target"),
    ("http://mirror/\r\nx", "control character"),
    ("http://$host/copy", "variables may only be used in the path"),
    ("https://mirror:$server_port/", "variables may only be used in the path"),
    ("http://mirror/$document_root", "not a variable ingressd substitutes"),
    ("http://mirror:0/", "port 0"),
])
def test_mirror_target_refused(text, says):
    with pytest.raises((AnnotationError, ValueError)) as caught:
        mirror.parse_target(text)
    assert says in str(caught.value)


def test_mirror_request_body_is_on_or_off():
    assert mirror.parse_request_body("on") is True
    assert mirror.parse_request_body(" off ") is False  # spaces dropped, as ingress-nginx
    for bad in ("true", "ON", "0", ""):
        with pytest.raises(AnnotationError):
            mirror.parse_request_body(bad)


def test_an_invalid_target_rejects_only_its_ingress_with_the_reason():
    with PluginHarness(plugins=[mirror], annotations={"mirror-target": "gopher://m/"}) as harness:
        assert "mirror-target" in harness.rejection and "http:// or https://" in harness.rejection
    with PluginHarness(plugins=[mirror], annotations={"mirror-target": "http://m/", "mirror-host": "a b"}) as harness:
        assert "mirror-host" in harness.rejection


def test_no_target_no_feature_and_host_or_body_alone_do_nothing():
    assert features_for(mirror, {}) == []
    assert features_for(mirror, {"mirror-host": "x.example", "mirror-request-body": "off"}) == []


# -- what a copy is ---------------------------------------------------------------------------


def forward(feature, ex, forwarded):
    """Run the feature's request phase on ``ex``, then announce ``forwarded`` as the exchange does."""
    assert feature.request(ex) is None  # never answers: the real request goes on
    callbacks = list(ex.forward_callbacks)
    ex.forward(forwarded)
    return callbacks


@pytest.mark.parametrize("target, request_uri, query, sent", [
    ("http://m.example/mirror", b"/shop?a=1", b"a=1", b"/mirror?a=1"),  # a path: query appended
    ("http://m.example/mirror", b"/shop", b"", b"/mirror"),
    ("http://m.example/m?x=1", b"/shop?a=1", b"a=1", b"/m?x=1&a=1"),
    ("https://m.example/$request_uri", b"/shop?a=1", b"a=1", b"//shop?a=1"),  # as nginx: nothing appended
    ("http://m.example/copy$request_uri", b"/shop?a=1", b"a=1", b"/copy/shop?a=1"),
    ("http://m.example:8080", b"/shop?a=1", b"a=1", b"/shop?a=1"),  # no path: the request's URI
    ("http://m.example?from=$host", b"/shop", b"", b"/?from=example.com"),
])
def test_the_target_asked_of_the_mirror(target, request_uri, query, sent):
    feature, client = mirror_feature({"mirror-target": target})
    ex = fake_exchange(request_uri=request_uri, query=query)
    forward(feature, ex, ForwardedRequest(b"GET", request_uri, ((b"host", b"shop.test"),)))
    (method, url, _headers, _body, kwargs, _answer) = client.sent[0]
    assert url.target == sent
    assert kwargs == {"discard": True}


def test_the_copy_carries_method_headers_and_body_with_the_targets_host():
    feature, client = mirror_feature({"mirror-target": "http://mirror.example:8080/copy"})
    headers = ((b"host", b"shop.test"), (b"x-forwarded-for", b"192.0.2.7"), (b"x-request-id", b"abc"))
    callbacks = forward(feature, fake_exchange(), ForwardedRequest(b"POST", b"/x", headers, 4, b"data"))
    assert callbacks[0][1] == mirror.MAX_BODY  # the body asked for, up to the bound
    (method, url, sent_headers, body, _kwargs, _answer) = client.sent[0]
    assert (method, body) == (b"POST", b"data")
    assert (url.scheme, url.host, url.port) == ("http", "mirror.example", 8080)
    # Host: the target's host name without its port (Go's url.Hostname()), as ingress-nginx
    assert sent_headers == [(b"host", b"mirror.example"), (b"x-forwarded-for", b"192.0.2.7"),
                            (b"x-request-id", b"abc")]


def test_mirror_host_and_request_body_off():
    feature, client = mirror_feature({"mirror-target": "http://10.0.0.9/copy", "mirror-host": "copy.$host",
                                      "mirror-request-body": "off"})
    callbacks = forward(feature, fake_exchange(host="shop.test"),
                        ForwardedRequest(b"PUT", b"/x", ((b"host", b"shop.test"),), 4, None))
    assert callbacks[0][1] == 0  # no body asked for
    (_method, _url, sent_headers, body, _kwargs, _answer) = client.sent[0]
    assert body is None
    assert sent_headers[0] == (b"host", b"copy.shop.test")


def test_a_body_over_the_bound_is_not_mirrored():
    feature, client = mirror_feature({"mirror-target": "http://m/"}, settings={"mirror_max_body_size": "10"})
    callbacks = forward(feature, fake_exchange(), ForwardedRequest(b"POST", b"/", (), 11, None))
    assert callbacks[0][1] == 10
    assert client.sent == []  # never a copy without its body


def test_copies_outstanding_are_bounded_per_target_and_the_slots_come_back():
    client = FakeSubrequests()
    settings = {"mirror_max_in_flight": 2}
    context = BuildContext(settings=settings, reactor=None, subrequests=client)
    context.state = {}
    one = features_for(mirror, {"mirror-target": "http://m.example/a"}, context=context)[0]
    other = features_for(mirror, {"mirror-target": "http://m.example/b", }, make_route(ingress="other"),
                         context=context)[0]
    for _ in range(3):
        forward(one, fake_exchange(), ForwardedRequest(b"GET", b"/", ()))
    assert len(client.sent) == 2  # the third dropped: two outstanding to http://m.example:80
    forward(other, fake_exchange(), ForwardedRequest(b"GET", b"/", ()))  # the same target: shares the bound
    assert len(client.sent) == 2
    client.sent[0][5].callback(None)  # an answer frees a slot …
    client.sent[1][5].errback(mirror.SubrequestError("refused", "connect_failed"))  # … and so does a failure
    forward(other, fake_exchange(), ForwardedRequest(b"GET", b"/", ()))
    forward(one, fake_exchange(), ForwardedRequest(b"GET", b"/", ()))
    assert len(client.sent) == 4
    limit = context.state["mirror"]["limits"][("http", "m.example", 80)]
    assert (limit.sent, limit.dropped, limit.failed, limit.in_flight) == (4, 2, 1, 2)


def test_without_a_client_nothing_is_sent():
    context = BuildContext(settings={}, reactor=None)  # ingressd check: no sub-request client
    (feature,) = features_for(mirror, {"mirror-target": "http://m/"}, context=context)
    ex = fake_exchange()
    ex.on_forward = lambda *args: pytest.fail("nothing to send with")
    assert feature.request(ex) is None


# -- through the real Exchange ----------------------------------------------------------------


def test_the_exchange_announces_the_forwarded_request_once_with_its_body():
    client = FakeSubrequests()
    feature, _ = mirror_feature({"mirror-target": "http://mirror.test/copy"}, client)
    proxy, pool, _ = proxy_for(entry([feature]))
    req = request(method=b"POST", target=b"/cart?id=7", content_length=5,
                  headers=[(b"content-length", b"5"), (b"x-custom", b"1")])
    _client_side, ex = send(proxy, req)
    ex.body_data(b"he")
    assert client.sent == []  # not before the body is whole
    ex.body_data(b"llo")
    ex.body_done()
    (method, url, headers, body, _kwargs, _answer) = client.sent[0]
    assert (method, url.target, body) == (b"POST", b"/copy?id=7", b"hello")
    names = [name for name, _ in headers]
    assert (b"x-custom", b"1") in headers and b"x-forwarded-for" in names and b"x-request-id" in names
    assert b"content-length" not in names  # framing is the sub-request's own
    assert headers[0] == (b"host", b"mirror.test")
    # the real request goes on, untouched by the copy
    connection = pool.connect()
    assert connection.sent.startswith(b"POST /cart?id=7 HTTP/1.1\r\n")
    assert connection.sent.endswith(b"\r\n\r\nhello")
    assert b"host: shop.test" in connection.sent


def test_a_request_answered_before_its_backend_is_not_mirrored():
    client = FakeSubrequests()
    feature, _ = mirror_feature({"mirror-target": "http://mirror.test/"}, client)
    proxy, pool, _ = proxy_for(entry([feature], endpoints=()))  # no endpoint: 503, still forwarded
    send(proxy, request())
    assert len(client.sent) == 1  # nginx's mirror runs before the content handler

    class Deny:
        phase = 300

        def request(self, exchange):
            from ingressd import LocalResponse

            return LocalResponse(403)

    client2 = FakeSubrequests()
    feature2, _ = mirror_feature({"mirror-target": "http://mirror.test/"}, client2)
    proxy, pool, _ = proxy_for(entry([Deny(), feature2]))
    client_side, _ = send(proxy, request())
    assert client_side.head[0] == 403 and client2.sent == []


def test_a_retried_request_is_mirrored_once():
    from ingressd.proxy.upstream import UpstreamError

    client = FakeSubrequests()
    feature, _ = mirror_feature({"mirror-target": "http://mirror.test/"}, client)
    proxy, pool, _ = proxy_for(entry([feature]))
    send(proxy, request())
    pool.refuse(UpstreamError("refused", retryable=True))
    pool.connect()
    assert len(pool.asked) == 2 and len(client.sent) == 1


def test_a_failing_on_forward_callback_never_fails_the_request():
    proxy, pool, _ = proxy_for(entry([Exploding()]))
    client_side, _ = send(proxy, request())
    connection = pool.connect()
    assert connection.sent.startswith(b"GET / HTTP/1.1")


class Exploding:
    phase = 500

    def request(self, exchange):
        exchange.on_forward(self.boom)

    def boom(self, forwarded):
        raise RuntimeError("a plugin bug")


def test_a_large_held_body_is_copied_from_its_file():
    from ingressd.proxy.request_body import MEMORY_BOUND, BufferedBody

    body = BufferedBody()
    data = bytes(range(256)) * ((MEMORY_BOUND * 3) // 256)
    for at in range(0, len(data), 10000):
        body.add(data[at:at + 10000])
    assert body.spilled
    assert body.copy(len(data) - 1) is None
    assert body.copy(len(data)) == data
    replayed = b"".join(iter(body.next_piece, b""))  # the backend still gets all of it
    assert replayed == data
