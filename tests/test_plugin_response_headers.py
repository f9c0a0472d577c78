"""proxy-redirect-from/-to, proxy-cookie-domain/-path and ingressd.io/response-headers /
remove-response-headers: the response headers the client gets, and every way a value is refused."""

from __future__ import annotations

import pytest

from ingressd.testing import PluginHarness
from ingressd_plugins import response_headers

N = "nginx.ingress.kubernetes.io/"
I = "ingressd.io/"


def harness(annotations):
    return PluginHarness([response_headers], annotations, host="rs.test")


def answered(annotations, backend_headers, path="/"):
    """What the client gets when the backend answers with ``backend_headers``."""
    with harness(annotations) as h:
        assert h.rejection is None, h.rejection
        outcome = h.request(path=path, client_ip="198.51.100.7")
        return outcome.response(200, backend_headers)


def rejection(annotations):
    with harness(annotations) as h:
        return h.rejection


def test_defaults_are_off():
    with harness({N + "proxy-redirect-from": "off", N + "proxy-cookie-domain": "off",
                  N + "proxy-cookie-path": "off"}) as h:
        assert h.features == ()


# -- proxy-redirect-from / proxy-redirect-to ------------------------------------------------

REDIRECT = {N + "proxy-redirect-from": "http://backend.internal:8080/", N + "proxy-redirect-to": "https://rs.test/app/"}


@pytest.mark.parametrize("location, expected", [
    ("http://backend.internal:8080/login?next=/x", "https://rs.test/app/login?next=/x"),
    ("http://backend.internal:8080/", "https://rs.test/app/"),
    ("HTTP://backend.internal:8080/login", "HTTP://backend.internal:8080/login"),  # case-sensitive, as nginx
    ("http://other/", "http://other/"),
    ("/relative", "/relative"),
])
def test_location_prefix_is_replaced(location, expected):
    assert answered(REDIRECT, {"location": location}).get("location") == expected


def test_refresh_url_is_replaced():
    response = answered(REDIRECT, {"refresh": "5; URL=http://backend.internal:8080/next"})
    assert response.get("refresh") == "5; URL=https://rs.test/app/next"
    assert answered(REDIRECT, {"refresh": "5"}).get("refresh") == "5"


def test_a_relative_rule():
    response = answered({N + "proxy-redirect-from": "/", N + "proxy-redirect-to": "/app/"}, {"location": "/login"})
    assert response.get("location") == "/app/login"


@pytest.mark.parametrize("source, target", [("default", "off"), ("default", "/x/"), ("http://b/", "off")])
def test_default_is_nginx_s_rule_for_ingress_nginx_s_proxy_pass(source, target):
    annotations = {N + "proxy-redirect-from": source, N + "proxy-redirect-to": target}
    assert answered(annotations, {"location": "http://upstream_balancer/a"}).get("location") == "/a"
    assert answered(annotations, {"location": "http://b/a"}).get("location") == "http://b/a"


def test_only_the_backend_s_answers_are_rewritten():
    with harness({N + "proxy-redirect-from": "/", N + "proxy-redirect-to": "/app/"}) as h:
        feature = h.features[0]
        ex = h.request().exchange
        headers = [(b"location", b"/own")]
        feature.response(ex, 302, headers)  # ingressd's own answer: upstream_status is 0
        assert headers == [(b"location", b"/own")]


@pytest.mark.parametrize("annotation, value", [
    ("proxy-redirect-from", "http://a b/"),
    ("proxy-redirect-to", "/x;y"),
    ("proxy-redirect-to", "$scheme://x/"),
    ("proxy-redirect-from", "~^/a"),
])
def test_redirect_values_refused(annotation, value):
    reason = rejection({N + "proxy-redirect-from": "/", N + annotation: value} if annotation.endswith("to")
                       else {N + annotation: value})
    assert reason is not None and annotation in reason


# -- proxy-cookie-domain / proxy-cookie-path ---------------------------------------------

@pytest.mark.parametrize("cookie, expected", [
    ("sid=1; Domain=backend.local; Path=/", "sid=1; Domain=rs.test; Path=/"),
    ("sid=1; domain=.Backend.LOCAL; HttpOnly", "sid=1; domain=.rs.test; HttpOnly"),
    ("sid=1; Domain=other.local", "sid=1; Domain=other.local"),
    ("sid=1; Domain=sub.backend.local", "sid=1; Domain=sub.backend.local"),  # whole-value match
    ("domain=backend.local", "domain=backend.local"),  # the cookie's own name=value is not an attribute
])
def test_cookie_domain(cookie, expected):
    response = answered({N + "proxy-cookie-domain": ".backend.local rs.test"}, {"set-cookie": cookie})
    assert response.get("set-cookie") == expected


@pytest.mark.parametrize("cookie, expected", [
    ("sid=1; Path=/; Secure", "sid=1; Path=/app/; Secure"),
    ("sid=1; path=/api/v1", "sid=1; path=/app/api/v1"),
    ("sid=1; Path=other", "sid=1; Path=other"),
])
def test_cookie_path_prefix(cookie, expected):
    assert answered({N + "proxy-cookie-path": "/ /app/"}, {"set-cookie": cookie}).get("set-cookie") == expected


def test_every_set_cookie_is_rewritten():
    response = answered({N + "proxy-cookie-domain": "b.local rs.test", N + "proxy-cookie-path": "/ /x/"},
                        [("set-cookie", "a=1; Domain=b.local"), ("set-cookie", "b=2; Path=/p")])
    assert response.get_all("set-cookie") == ["a=1; Domain=rs.test", "b=2; Path=/x/p"]


@pytest.mark.parametrize("annotation, value", [
    ("proxy-cookie-domain", "only-one"),
    ("proxy-cookie-domain", "a b c"),
    ("proxy-cookie-path", "/"),
    ("proxy-cookie-path", "/ /a;b"),
])
def test_cookie_values_refused(annotation, value):
    reason = rejection({N + annotation: value})
    assert reason is not None and "expected off or 'FROM TO'" in reason and annotation in reason


# -- ingressd.io/response-headers ---------------------------------------------------------

def test_response_headers_on_the_backend_s_answers():
    response = answered({I + "response-headers": "X-Frame-Options: DENY\nX-Served-For: $host $request_uri",
                         I + "remove-response-headers": "X-Powered-By, X-Backend"},
                        [("x-frame-options", "SAMEORIGIN"), ("x-powered-by", "php"), ("x-backend", "b1"),
                         ("content-type", "text/plain")], path="/p?q=1")
    assert response.header_items() == [("x-frame-options", "DENY"), ("content-type", "text/plain"),
                                       ("x-served-for", "rs.test /p?q=1")]


def test_response_headers_on_ingressd_s_own_answers_too():
    # allowlist-style local answers: the harness plays an answer from another plugin's feature
    with harness({I + "response-headers": "X-Id: $request_id"}) as h:
        feature = h.features[0]
        headers = [(b"content-type", b"text/html")]
        feature.response(h.request().exchange, 503, headers)
        assert headers == [(b"content-type", b"text/html"), (b"x-id", b"0123456789abcdef")]


@pytest.mark.parametrize("annotation, value, said", [
    ("response-headers", "Server: mine", "line 1: Server is written by ingressd"),
    ("response-headers", "X-A: 1\nDate: today", "line 2: Date is written by ingressd"),
    ("response-headers", "Transfer-Encoding: chunked", "hop-by-hop or framing"),
    ("response-headers", "X-A 1", "expected 'Name: value'"),
    ("response-headers", "X-A: $cookie_x", "$cookie_x is not a variable"),
    ("remove-response-headers", "Content-Length", "hop-by-hop or framing"),
    ("remove-response-headers", "X-A,\n(bad)", "line 2: '(bad)' is not a valid header name"),
])
def test_response_header_values_refused(annotation, value, said):
    reason = rejection({I + annotation: value})
    assert reason is not None and said in reason and annotation in reason, reason


def test_forwarding_names_are_fine_in_responses():
    response = answered({I + "response-headers": "X-Request-ID: $request_id"}, {})
    assert response.get("x-request-id") == "0123456789abcdef"


@pytest.mark.parametrize("annotations", [
    {N + "proxy-cookie-domain": "~back.local rs.test"},
    {N + "proxy-cookie-path": "~/a /b"},
    {N + "proxy-redirect-from": "~/a", N + "proxy-redirect-to": "/b"},
])
def test_nginx_regular_expressions_are_refused(annotations):
    assert "regular expression" in rejection(annotations)
