"""upstream-vhost, connection-proxy-header and ingressd.io/request-headers / remove-request-headers:
the request headers the backend is sent, and every way a value is refused."""

from __future__ import annotations

import pytest

from ingressd.http.headers import HOP_BY_HOP
from ingressd.proxy.forwarding import FORWARDED
from ingressd.testing import PluginHarness
from ingressd_plugins import _header_values, upstream_headers

N = "nginx.ingress.kubernetes.io/"
I = "ingressd.io/"


def harness(annotations, **settings):
    return PluginHarness([upstream_headers], annotations, host="up.test", settings=settings)


def sent(annotations, headers=(), path="/", **settings):
    """The request headers the backend would get, as (name, value) text pairs."""
    with harness(annotations, **settings) as h:
        assert h.rejection is None, h.rejection
        outcome = h.request(path=path, headers=headers, client_ip="198.51.100.7")
        return outcome.upstream_headers


def rejection(annotations, **settings):
    with harness(annotations, **settings) as h:
        return h.rejection


def values(pairs, name):
    return [value for key, value in pairs if key == name]


def test_the_owned_and_hop_by_hop_lists_follow_the_proxy():
    assert {name.decode() for name in HOP_BY_HOP} | {"expect"} == set(_header_values.HOP_BY_HOP)
    owned = {name.decode() for name in FORWARDED} - {"expect"}
    assert {name for name in owned if not name.startswith("x-forwarded-")} | {"host"} == set(
        _header_values.OWNED_REQUEST)


def test_no_annotation_no_feature():
    with harness({}) as h:
        assert h.features == ()


# -- upstream-vhost -----------------------------------------------------------------------

def test_upstream_vhost_sets_the_host_the_backend_gets_in_its_place():
    pairs = sent({N + "upstream-vhost": "app.internal.svc"}, headers={"accept": "*/*"})
    assert values(pairs, "host") == ["app.internal.svc"]
    assert pairs[0][0] == "host"  # where the client's Host was


@pytest.mark.parametrize("value, expected", [
    ("backend.example:8080", "backend.example:8080"),
    ("  spaced.example ", "spaced.example"),
    ("$host", "up.test"),
    ("${host}.proxy", "up.test.proxy"),
    ("id-$request_id", "id-0123456789abcdef"),
])
def test_upstream_vhost_values_and_variables(value, expected):
    assert values(sent({N + "upstream-vhost": value}), "host") == [expected]


@pytest.mark.parametrize("value, said", [
    ("$service_name.svc", "$service_name is not a variable"),
    ("bad host", "not a valid server name"),
    ("a\"b", "not a valid server name"),
])
def test_upstream_vhost_refused(value, said):
    reason = rejection({N + "upstream-vhost": value})
    assert reason is not None and said in reason and "upstream-vhost" in reason


def test_upstream_vhost_and_a_host_line_together_are_refused():
    reason = rejection({N + "upstream-vhost": "a.test", I + "request-headers": "Host: b.test"},
                       allow_owned_header_changes=True)
    assert "use one of them" in reason


# -- connection-proxy-header --------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [("keep-alive", "keep-alive"), ("close", "close"), (" close ", "close")])
def test_connection_proxy_header(value, expected):
    pairs = sent({N + "connection-proxy-header": value})
    assert values(pairs, "connection") == [expected]


def test_connection_proxy_header_leaves_a_websocket_upgrade_alone():
    with harness({N + "connection-proxy-header": "close"}) as h:
        feature = h.features[0]
        lines = [(b"host", b"up.test"), (b"upgrade", b"websocket"), (b"connection", b"upgrade")]
        feature.upstream_request(h.request().exchange, lines)
        assert (b"connection", b"upgrade") in lines and (b"connection", b"close") not in lines


@pytest.mark.parametrize("value", ["upgrade", "keepalive", "close, keep-alive"])
def test_connection_proxy_header_refused(value):
    assert "expected close or keep-alive" in rejection({N + "connection-proxy-header": value})


# -- ingressd.io/request-headers ----------------------------------------------------------

def test_request_headers_set_replace_and_expand():
    annotations = {I + "request-headers": "X-Team: payments\nX-Client: $remote_addr via $scheme\n\n"
                                          "X-Asked: $request_uri\nAccept: text/plain"}
    pairs = sent(annotations, headers=[("accept", "*/*"), ("x-team", "forged")], path="/a/b?c=1")
    assert values(pairs, "x-team") == ["payments"]
    assert values(pairs, "x-client") == ["198.51.100.7 via http"]
    assert values(pairs, "x-asked") == ["/a/b?c=1"]
    assert values(pairs, "accept") == ["text/plain"]


def test_repeated_names_are_all_sent():
    pairs = sent({I + "request-headers": "X-Tag: a\nX-Tag: b"}, headers={"x-tag": "client"})
    assert values(pairs, "x-tag") == ["a", "b"]


def test_remove_request_headers_commas_and_lines():
    pairs = sent({I + "remove-request-headers": "Cookie, X-Debug\nAuthorization"},
                 headers={"cookie": "a=1", "x-debug": "1", "authorization": "Basic x", "accept": "*/*"})
    assert [name for name, _ in pairs] == ["host", "accept"]


def test_owned_headers_with_the_operator_s_permission():
    annotations = {I + "request-headers": "X-Forwarded-Proto: https\nX-Real-IP: 10.0.0.1",
                   I + "remove-request-headers": "X-Request-ID"}
    assert "--allow-owned-header-changes" in rejection(annotations)
    with harness(annotations, allow_owned_header_changes=True) as h:
        assert h.rejection is None
        lines = [(b"host", b"up.test"), (b"x-request-id", b"r1"), (b"x-real-ip", b"198.51.100.7"),
                 (b"x-forwarded-proto", b"http")]
        h.features[0].upstream_request(h.request().exchange, lines)
        assert lines == [(b"host", b"up.test"), (b"x-real-ip", b"10.0.0.1"), (b"x-forwarded-proto", b"https")]


@pytest.mark.parametrize("annotation, value, said", [
    ("request-headers", "X-Ok: 1\nno colon here", "line 2: expected 'Name: value'"),
    ("request-headers", "X-Ok: 1\n\nBad Name: 1", "line 3: 'Bad Name' is not a valid header name"),
    ("request-headers", "X-Empty:", "line 1: X-Empty has no value"),
    ("request-headers", "X-Var: $http_cookie", "line 1: $http_cookie is not a variable"),
    ("request-headers", "X-Var: 5$", "line 1: $ is not a variable"),
    ("request-headers", "X-Tab: a\x01b", "control character"),
    ("request-headers", "X-Ok: 1\nConnection: close", "line 2: Connection is a hop-by-hop"),
    ("request-headers", "Transfer-Encoding: chunked", "hop-by-hop or framing"),
    ("request-headers", "Content-Length: 5", "hop-by-hop or framing"),
    ("request-headers", "Host: other.test", "line 1: Host is set by ingressd"),
    ("request-headers", "X-Forwarded-For: 1.2.3.4", "X-Forwarded-For is set by ingressd"),
    ("request-headers", "X-Forwarded-Anything: 1", "is set by ingressd"),
    ("remove-request-headers", "Accept, Upgrade", "line 1: Upgrade is a hop-by-hop"),
    ("remove-request-headers", "Accept\nBad/Name", "line 2: 'Bad/Name' is not a valid header name"),
    ("remove-request-headers", "X-Real-IP", "X-Real-IP is set by ingressd"),
])
def test_request_header_values_refused_naming_the_line(annotation, value, said):
    reason = rejection({I + annotation: value})
    assert reason is not None and said in reason and annotation in reason, reason


def test_carriage_returns_never_reach_a_header():
    reason = rejection({I + "request-headers": "X-A: 1\r\nX-B: 2\r"})
    assert reason is not None and "control character" in reason


def test_host_is_never_removed():
    reason = rejection({I + "remove-request-headers": "Host"}, allow_owned_header_changes=True)
    assert "Host cannot be removed" in reason


def test_the_nginx_prefix_reads_the_same_annotation():
    pairs = sent({N + "request-headers": "X-A: 1"})
    assert values(pairs, "x-a") == ["1"]
