"""proxy_settings: per-location timeouts and body size, only when the annotation is present."""

import pytest

from fakes import annotation_values, exchange, features_for, run_request
from ingressd.features import AnnotationError, Phase, parse_size
from ingressd_plugins import proxy_settings


def test_no_annotations_no_feature_so_core_defaults_apply():
    assert features_for(proxy_settings, {}) == []


def test_sets_only_what_is_annotated():
    [feature] = features_for(proxy_settings, {"proxy-read-timeout": "3600", "proxy-body-size": "8m"})
    assert feature.phase == Phase.PROXY
    ex = exchange()
    assert run_request([feature], ex) is None
    assert ex.read_timeout == 3600.0 and isinstance(ex.read_timeout, float)
    assert ex.max_body_size == 8 * 1024 * 1024
    assert ex.connect_timeout is None and ex.send_timeout is None


def test_all_timeouts():
    [feature] = features_for(proxy_settings, {"proxy-connect-timeout": "2", "proxy-send-timeout": "120", "proxy-read-timeout": "7"})
    ex = exchange()
    run_request([feature], ex)
    assert (ex.connect_timeout, ex.read_timeout, ex.send_timeout) == (2.0, 7.0, 120.0)


@pytest.mark.parametrize("text,size", [("0", 0), ("1024", 1024), ("1k", 1024), ("8K", 8192), ("1m", 1 << 20),
                                       ("2g", 2 << 30), (" 1m ", 1 << 20)])
def test_sizes(text, size):
    assert parse_size(text) == size


def test_unlimited_body_is_applied():
    [feature] = features_for(proxy_settings, {"proxy-body-size": "0"})
    ex = exchange()
    run_request([feature], ex)
    assert ex.max_body_size == 0


@pytest.mark.parametrize("raw", [
    {"proxy-body-size": "8mb"}, {"proxy-body-size": "-1"}, {"proxy-body-size": "1.5m"}, {"proxy-body-size": "m"},
    {"proxy-body-size": "1b"},  # ingress-nginx's SizeRegex passes it, nginx refuses it
    {"proxy-read-timeout": "60s"},  # ingress-nginx reads whole seconds (strconv.Atoi), no unit
    {"proxy-read-timeout": "1.5"}, {"proxy-read-timeout": " 60"}, {"proxy-connect-timeout": "-5"},
    {"proxy-send-timeout": "9223372036854776"},  # beyond what nginx's ngx_parse_time takes in ms
])
def test_bad_values_reject_the_ingress(raw):
    with pytest.raises(AnnotationError):
        annotation_values(proxy_settings, raw)


# What ingress-nginx accepts for each, and what the exchange gets.
ACCEPTED = [
    ("proxy-connect-timeout", "0", "connect_timeout", 0.0),
    ("proxy-read-timeout", "0", "read_timeout", 0.0),
    ("proxy-send-timeout", "0", "send_timeout", 0.0),
    ("proxy-read-timeout", "+30", "read_timeout", 30.0),
    ("proxy-read-timeout", "86400", "read_timeout", 86400.0),
    ("proxy-send-timeout", "99999999", "send_timeout", 99999999.0),
    ("proxy-read-timeout", "9223372036854775", "read_timeout", 9223372036854775.0),
    ("proxy-body-size", "0", "max_body_size", 0),
    ("proxy-body-size", "8K", "max_body_size", 8192),
    ("proxy-body-size", "1M", "max_body_size", 1 << 20),
    ("proxy-body-size", "1G", "max_body_size", 1 << 30),
    ("proxy-body-size", "123", "max_body_size", 123),
]


@pytest.mark.parametrize("name,text,attribute,value", ACCEPTED)
def test_accepted_values_reach_the_exchange(name, text, attribute, value):
    [feature] = features_for(proxy_settings, {name: text})
    ex = exchange()
    run_request([feature], ex)
    assert getattr(ex, attribute) == value and type(getattr(ex, attribute)) is type(value)


@pytest.mark.parametrize("value, version", [("1.0", "1.0"), (" 1.0 ", "1.0"), ("1.1", "1.1"), ("2", None), ("", None)])
def test_proxy_http_version_as_ingress_nginx_reads_it(value, version):
    features = features_for(proxy_settings, {"proxy-http-version": value})
    got = features[0].upstream.http_version if features else None
    assert got == version


# -- proxy-next-upstream ----------------------------------------------------------------------


def _policy(values):
    [feature] = features_for(proxy_settings, values)
    return feature.upstream.next_upstream


def test_next_upstream_annotations_make_the_route_s_policy_over_ingress_nginx_s_defaults():
    from ingressd import NextUpstream
    assert _policy({"proxy-next-upstream": "error timeout http_503"}) == NextUpstream(
        frozenset({"error", "timeout"}), frozenset({503}), False, 3, 0.0)
    assert _policy({"proxy-next-upstream-tries": "5"}) == NextUpstream(tries=5)
    assert _policy({"proxy-next-upstream-timeout": "10"}) == NextUpstream(timeout=10.0)
    assert _policy({"proxy-next-upstream": "off", "proxy-next-upstream-tries": "0"}) == NextUpstream(
        frozenset(), frozenset(), False, 0, 0.0)
    assert _policy({"proxy-next-upstream": "http_502 non_idempotent"}).non_idempotent
    assert _policy({"proxy-read-timeout": "5"}) is None  # the server's (ingress-nginx's defaults)


@pytest.mark.parametrize("name, value", [
    ("proxy-next-upstream", "error,timeout"), ("proxy-next-upstream", "retry"), ("proxy-next-upstream", ""),
    ("proxy-next-upstream-tries", "-1"), ("proxy-next-upstream-tries", "three"),
    ("proxy-next-upstream-timeout", "-5"), ("proxy-next-upstream-timeout", "10s"),
])
def test_next_upstream_values_nginx_would_not_take_are_refused(name, value):
    with pytest.raises((AnnotationError, ValueError)):
        annotation_values(proxy_settings, {name: value})
