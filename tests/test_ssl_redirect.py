"""ssl_redirect: HTTP → HTTPS redirects (ingress-nginx semantics) and the HSTS header."""

from dataclasses import replace

import pytest

from fakes import annotation_values, exchange, features_for, header, make_context, make_route, run_request, run_response
from ingressd.features import AnnotationError, Phase
from ingressd_plugins import ssl_redirect

TLS_ROUTE = replace(make_route(host="example.com"), tls=True)
PLAIN_ROUTE = make_route(host="example.com")


def feature(raw=None, route=TLS_ROUTE, settings=None):
    return features_for(ssl_redirect, raw or {}, route=route, context=make_context(settings))


def location(answer) -> bytes:
    assert answer is not None
    [value] = header(answer.headers, b"location")
    return value


def test_declarations() -> None:
    declared = {a.name: a.default for a in ssl_redirect.ingressd_annotations()}
    assert declared == {"ssl-redirect": True, "force-ssl-redirect": False, "preserve-trailing-slash": False}
    options = {o.name: o.default for o in ssl_redirect.ingressd_options()}
    assert options["https-port-for-redirect"] == 443
    assert options["https-redirect-port"] is None  # no port in the Location unless configured
    assert options["http-redirect-code"] == 308
    assert options["hsts"] is True
    assert options["hsts-max-age"] == 31536000
    assert options["hsts-include-subdomains"] is True


def test_tls_host_redirects_with_308_keeping_the_query() -> None:
    [redirect] = feature()
    assert redirect.phase == Phase.REWRITE
    answer = run_request([redirect], exchange(target=b"/shop/cart?id=7&x=%20", path="/shop/cart", query=b"id=7&x=%20"))
    assert answer.status == 308
    assert location(answer) == b"https://example.com/shop/cart?id=7&x=%20"


@pytest.mark.parametrize(
    "target,path,query,preserve,expected",
    [
        (b"/", "/", b"", False, b"https://example.com"),  # ingress-nginx's Lua strips even this one
        (b"/docs/", "/docs/", b"", False, b"https://example.com/docs"),
        (b"/docs/", "/docs/", b"", True, b"https://example.com/docs/"),
        (b"/docs/?a=1", "/docs/", b"a=1", False, b"https://example.com/docs/?a=1"),  # the URI's last /
        (b"/docs/?a=1", "/docs/", b"a=1", True, b"https://example.com/docs/?a=1"),
        (b"/a%2Fb", "/a%2Fb", b"", False, b"https://example.com/a%2Fb"),  # as the client sent it
    ],
)
def test_trailing_slash(target, path, query, preserve, expected) -> None:
    raw = {"preserve-trailing-slash": "true"} if preserve else {}
    answer = run_request(feature(raw), exchange(target=target, path=path, query=query))
    assert location(answer) == expected


def test_port_only_when_not_443_and_code_configurable() -> None:
    features = feature(settings={"https-port-for-redirect": 8443, "http-redirect-code": 301})
    answer = run_request(features, exchange(target=b"/x", path="/x"))
    assert answer.status == 301
    assert location(answer) == b"https://example.com:8443/x"
    # options keyed with underscores work too
    features = feature(settings={"https_port_for_redirect": 443})
    assert location(run_request(features, exchange(target=b"/x", path="/x"))) == b"https://example.com/x"


def test_no_redirect_over_https_or_when_disabled_or_without_tls() -> None:
    assert run_request(feature(), exchange(scheme="https")) is None
    assert run_request(feature({"ssl-redirect": "false"}), exchange()) is None
    assert feature(route=PLAIN_ROUTE) == []  # no TLS, no force: nothing to do


def test_force_ssl_redirect_without_tls() -> None:
    features = feature({"force-ssl-redirect": "true"}, route=PLAIN_ROUTE)
    answer = run_request(features, exchange(target=b"/a/", path="/a/"))
    assert location(answer) == b"https://example.com/a"
    assert run_request(features, exchange(scheme="https")) is None
    # force wins over ssl-redirect: false
    features = feature({"force-ssl-redirect": "true", "ssl-redirect": "false"})
    assert run_request(features, exchange()).status == 308


def test_acme_challenge_is_not_redirected() -> None:
    target = b"/.well-known/acme-challenge/token"
    assert run_request(feature(), exchange(target=target, path=target.decode())) is None
    features = feature(settings={"no-tls-redirect-locations": "/plain"})
    assert run_request(features, exchange(target=b"/plain/x", path="/plain/x")) is None
    assert run_request(features, exchange(target=target, path=target.decode())) is not None


def test_host_is_the_requests_own_and_must_look_like_one() -> None:
    answer = run_request(feature(), exchange(host="shop.example.com", target=b"/"))
    assert location(answer) == b"https://shop.example.com"
    answer = run_request(feature(), exchange(host="::1", target=b"/"))
    assert location(answer) == b"https://[::1]"
    assert run_request(feature(), exchange(host="evil.example/x", target=b"/")).status == 400
    assert run_request(feature(), exchange(host="", target=b"/")) is None


def test_hsts_on_https_responses_for_tls_hosts() -> None:
    features = feature()
    headers = run_response(features, exchange(scheme="https"), 200, [(b"content-type", b"text/html")])
    assert header(headers, b"strict-transport-security") == [b"max-age=31536000; includeSubDomains"]
    # replaces an upstream's value
    headers = run_response(features, exchange(scheme="https"), 200, [(b"Strict-Transport-Security", b"max-age=1")])
    assert headers == [(b"strict-transport-security", b"max-age=31536000; includeSubDomains")]
    # not on plain HTTP
    assert run_response(features, exchange(scheme="http"), 308, []) == []


def test_hsts_settings() -> None:
    features = feature(settings={"hsts-max-age": 600, "hsts-include-subdomains": False, "hsts-preload": True})
    headers = run_response(features, exchange(scheme="https"), 200, [])
    assert header(headers, b"strict-transport-security") == [b"max-age=600; preload"]
    features = feature({"ssl-redirect": "false"}, settings={"hsts": False})
    assert features == []
    [only_redirect] = feature(settings={"hsts": "false"})
    assert run_response([only_redirect], exchange(scheme="https"), 200, []) == []


def test_no_hsts_for_force_redirect_without_tls() -> None:
    features = feature({"force-ssl-redirect": "true"}, route=PLAIN_ROUTE)
    assert run_response(features, exchange(scheme="https"), 200, []) == []


def test_bad_annotation_and_option_values() -> None:
    with pytest.raises(AnnotationError):
        annotation_values(ssl_redirect, {"ssl-redirect": "maybe"})
    options = {o.name: o for o in ssl_redirect.ingressd_options()}
    with pytest.raises(AnnotationError):
        options["http-redirect-code"].coerce("200")
    with pytest.raises(AnnotationError):
        options["no-tls-redirect-locations"].coerce("relative")
    assert options["no-tls-redirect-locations"].coerce("/a, /b") == ("/a", "/b")
