"""cors: preflight answered at the edge, origin matching, header rules, the *+credentials rule."""

import pytest

from fakes import annotation_values, exchange, features_for, header, run_request, run_response
from ingressd.features import AnnotationError, Phase
from ingressd_plugins import cors

LIST = {"enable-cors": "true", "cors-allow-origin": "https://app.example.com, https://*.example.org:8443, null"}


def cors_feature(raw):
    [feature] = features_for(cors, raw)
    assert feature.phase == Phase.REWRITE
    return feature


def preflight(origin="https://app.example.com", **kwargs):
    headers = {"origin": origin, "access-control-request-method": "PUT"} if origin else {"access-control-request-method": "PUT"}
    return exchange(headers, method=b"OPTIONS", **kwargs)


def respond(feature, ex, status=200, headers=None):
    return run_response([feature], ex, status, list(headers or [(b"content-type", b"text/html")]))


def test_off_unless_enabled():
    assert features_for(cors, {}) == []
    assert features_for(cors, {"cors-allow-origin": "https://a.com", "enable-cors": "false"}) == []


def test_defaults_match_ingress_nginx():
    values = annotation_values(cors, {"enable-cors": "true"})
    assert values["cors-allow-origin"] == ("*",)
    assert values["cors-allow-methods"] == "GET, PUT, POST, DELETE, PATCH, OPTIONS"
    assert values["cors-allow-credentials"] is True
    assert values["cors-max-age"] == 1728000
    assert values["cors-expose-headers"] == ""


def test_preflight_from_allowed_origin_is_answered_204_with_cors_headers():
    feature = cors_feature(LIST)
    ex = preflight()
    answer = run_request([feature], ex)
    assert answer.status == 204 and answer.body == b""
    headers = respond(feature, ex, 204, answer.headers)
    assert header(headers, b"access-control-allow-origin") == [b"https://app.example.com"]
    assert header(headers, b"access-control-allow-credentials") == [b"true"]
    assert header(headers, b"access-control-allow-methods") == [b"GET, PUT, POST, DELETE, PATCH, OPTIONS"]
    assert header(headers, b"access-control-allow-headers") == [
        b"DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization"
    ]
    assert header(headers, b"access-control-max-age") == [b"1728000"]
    assert header(headers, b"access-control-expose-headers") == []
    assert header(headers, b"vary") == [b"Origin"]


@pytest.mark.parametrize("ex", [
    exchange({"origin": "https://app.example.com"}, method=b"OPTIONS"),  # no Access-Control-Request-Method
    exchange({"access-control-request-method": "GET"}, method=b"OPTIONS"),  # no Origin
    exchange({"origin": "https://app.example.com", "access-control-request-method": "GET"}, method=b"GET"),
])
def test_not_a_preflight_is_proxied(ex):
    assert run_request([cors_feature(LIST)], ex) is None


@pytest.mark.parametrize("origin", [
    "https://evil.com", "https://app.example.com.evil.com", "xhttps://app.example.com", "http://app.example.com",
    "https://app.example.com:444", "https://a.b.example.org:8443", "https://x.example.org", "https://.example.org:8443",
])
def test_other_origins_get_no_cors_headers_and_their_preflight_is_proxied(origin):
    feature = cors_feature(LIST)
    assert run_request([feature], preflight(origin)) is None
    headers = respond(feature, exchange({"origin": origin}))
    assert not [name for name, _ in headers if name.startswith(b"access-control-")]
    assert header(headers, b"vary") == [b"Origin"]  # the answer depends on Origin


@pytest.mark.parametrize("origin", ["https://APP.example.com", "https://api.example.org:8443", "https://x-1.EXAMPLE.org:8443", "null"])
def test_allowed_origins_are_echoed(origin):
    feature = cors_feature(LIST)
    assert run_request([feature], preflight(origin)).status == 204
    headers = respond(feature, exchange({"origin": origin}), headers=[(b"vary", b"Accept-Encoding")])
    assert header(headers, b"access-control-allow-origin") == [origin.encode()]
    assert header(headers, b"vary") == [b"Accept-Encoding", b"Origin"]


def test_backend_cors_headers_are_replaced_for_allowed_origins():
    feature = cors_feature({**LIST, "cors-allow-credentials": "false"})
    upstream = [(b"access-control-allow-origin", b"*"), (b"access-control-allow-credentials", b"true"), (b"vary", b"origin")]
    headers = respond(feature, exchange({"origin": "https://app.example.com"}), headers=upstream)
    assert header(headers, b"access-control-allow-origin") == [b"https://app.example.com"]
    assert header(headers, b"access-control-allow-credentials") == []
    assert header(headers, b"vary") == [b"origin"]


def test_star_with_credentials_echoes_the_origin_never_star():
    feature = cors_feature({"enable-cors": "true"})
    headers = respond(feature, exchange({"origin": "https://any.where"}))
    assert header(headers, b"access-control-allow-origin") == [b"https://any.where"]
    assert header(headers, b"access-control-allow-credentials") == [b"true"]
    assert header(headers, b"vary") == [b"Origin"]
    # No Origin (not a CORS request): "*" as in ingress-nginx, but without credentials.
    headers = respond(feature, exchange())
    assert header(headers, b"access-control-allow-origin") == [b"*"]
    assert header(headers, b"access-control-allow-credentials") == []
    # Something that is not an origin is not echoed.
    headers = respond(feature, exchange({"origin": "https://a.com/path?x"}))
    assert header(headers, b"access-control-allow-origin") == [b"*"]
    assert header(headers, b"access-control-allow-credentials") == []


def test_star_without_credentials_is_a_literal_star_and_no_vary():
    feature = cors_feature({"enable-cors": "true", "cors-allow-credentials": "false", "cors-allow-origin": "https://a.com, *"})
    headers = respond(feature, exchange({"origin": "https://b.com"}))
    assert header(headers, b"access-control-allow-origin") == [b"*"]
    assert header(headers, b"access-control-allow-credentials") == []
    assert header(headers, b"vary") == []
    assert run_request([feature], preflight("https://b.com")).status == 204


def test_custom_values():
    feature = cors_feature({**LIST, "cors-allow-methods": "GET,POST", "cors-allow-headers": "X-Custom, Content-Type",
                            "cors-expose-headers": "X-Total, *", "cors-max-age": "60"})
    headers = respond(feature, exchange({"origin": "https://app.example.com"}), status=401)
    assert header(headers, b"access-control-allow-methods") == [b"GET, POST"]
    assert header(headers, b"access-control-allow-headers") == [b"X-Custom, Content-Type"]
    assert header(headers, b"access-control-expose-headers") == [b"X-Total, *"]
    assert header(headers, b"access-control-max-age") == [b"60"]


@pytest.mark.parametrize("raw", [
    {"cors-allow-origin": "example.com"}, {"cors-allow-origin": "https://*.*.example.com"},
    {"cors-allow-origin": "https://a.com/path"}, {"cors-allow-origin": "https://a.com:99999999"},
    {"cors-allow-origin": ""}, {"cors-allow-methods": "GET;rm"}, {"cors-allow-headers": "X-A: b"},
    {"cors-allow-headers": "*"}, {"cors-max-age": "-1"}, {"cors-allow-credentials": "maybe"}, {"enable-cors": "yes please"},
])
def test_bad_values_reject_the_ingress(raw):
    with pytest.raises(AnnotationError):
        annotation_values(cors, raw)
