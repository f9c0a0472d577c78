"""Which ingress-nginx annotations ingressd honours, ignores harmlessly, or will not serve without."""

from __future__ import annotations

import pytest

from ingressd.catalogue import CATALOGUE, CHANGES_TRAFFIC, HARMLESS, NARROWS_ACCESS
from ingressd.compat import assess, ignore_list, snippet_directives, snippet_effect
from ingressd.plugins import load_plugins

N = "nginx.ingress.kubernetes.io/"
OWNED = frozenset(load_plugins().annotation_owners)


def outcome(annotations, ignored=()):
    """"served" / "warned" / "blocked", and the problems' annotation names."""
    problems = assess({k if "/" in k else N + k: v for k, v in annotations.items()}, OWNED, frozenset(ignored))
    if any(p.blocking for p in problems):
        return "blocked", sorted(p.name for p in problems if p.blocking)
    if problems:
        return "warned", sorted(p.name for p in problems)
    return "served", []


CASES = [
    # (annotations, controller-wide ignores, outcome, the annotations named)
    ({}, (), "served", []),
    ({"kubernetes.io/ingress.class": "nginx"}, (), "served", []),
    # the hole: external auth and client certificates are not implemented yet
    ({"auth-url": "https://oauth2.example.com/oauth2/auth",
      "auth-signin": "https://oauth2.example.com/oauth2/start?rd=$escaped_request_uri",
      "auth-tls-verify-client": "on", "auth-tls-secret": "default/ca"}, (), "blocked",
     ["auth-tls-secret", "auth-url"]),
    ({"auth-url": "https://a/", "ingressd.io/ignore-annotations": "auth-url"}, (), "warned", ["auth-url"]),
    ({"auth-url": "https://a/", "ingressd.io/ignore-annotations": f"{N}auth-url, satisfy"}, (), "warned",
     ["auth-url"]),
    ({"auth-url": "https://a/"}, ("auth-url",), "warned", ["auth-url"]),
    ({"auth-url": "https://a/"}, ("satisfy",), "blocked", ["auth-url"]),
    # one annotation of each class
    ({"satisfy": "any"}, (), "blocked", ["satisfy"]),
    ({"enable-modsecurity": "true"}, (), "blocked", ["enable-modsecurity"]),
    ({"global-rate-limit": "100"}, (), "blocked", ["global-rate-limit"]),
    ({"limit-rate": "100"}, (), "blocked", ["limit-rate"]),
    ({"rewrite-target": "/$2"}, (), "blocked", ["rewrite-target"]),
    ({"use-regex": "true"}, (), "blocked", ["use-regex"]),
    ({"backend-protocol": "GRPC"}, (), "blocked", ["backend-protocol"]),
    ({"ssl-passthrough": "true"}, (), "blocked", ["ssl-passthrough"]),
    ({"app-root": "/app"}, (), "blocked", ["app-root"]),
    ({"upstream-vhost": "internal.example"}, (), "blocked", ["upstream-vhost"]),
    ({"affinity": "cookie", "session-cookie-name": "route"}, (), "blocked", ["affinity"]),
    ({"enable-opentelemetry": "true"}, (), "warned", ["enable-opentelemetry"]),
    ({"load-balance": "ewma"}, (), "warned", ["load-balance"]),
    # a canary is never served as an ordinary Ingress, whatever the operator says
    ({"canary": "true", "canary-weight": "10"}, (), "blocked", ["canary"]),
    ({"canary": "true", "ingressd.io/ignore-annotations": "canary"}, ("canary",), "blocked", ["canary"]),
    ({"canary": "false", "canary-weight": "10"}, (), "served", []),
    # ingress-nginx's own defaults ask for nothing, in every spelling it reads
    ({"backend-protocol": "HTTP"}, (), "served", []),
    ({"backend-protocol": " http "}, (), "served", []),
    ({"proxy-buffering": "off", "proxy-request-buffering": "on", "load-balance": "round_robin"}, (), "served", []),
    ({"proxy-http-version": "1.1", "proxy-buffer-size": "4K", "client-body-buffer-size": "8k"}, (), "served", []),
    ({"use-regex": "false"}, (), "served", []),
    ({"use-regex": "F"}, (), "served", []),
    ({"use-regex": "0"}, (), "served", []),
    ({"enable-modsecurity": "FALSE", "satisfy": "all", "limit-rate": "0"}, (), "served", []),
    ({"ssl-redirect": "True", "force-ssl-redirect": "t"}, (), "served", []),
    # an empty value is no value, to ingress-nginx
    ({"auth-url": "", "rewrite-target": "  "}, (), "served", []),
    # a dependent annotation without its switch asks for nothing
    ({"auth-signin": "https://a/start"}, (), "served", []),
    ({"session-cookie-name": "route", "canary-weight": "50"}, (), "served", []),
    ({"auth-snippet": "deny all;"}, (), "served", []),
    # nothing to do: ingressd already behaves so
    ({"proxy-buffer-size": "16k", "service-upstream": "true", "enable-global-auth": "false"}, (), "served", []),
    # snippets: never applied; served with a warning only when ignoring them is harmless
    ({"configuration-snippet": 'more_set_headers "X-Frame-Options: DENY";\nadd_header X-A b;'}, (), "warned",
     ["configuration-snippet"]),
    ({"configuration-snippet": "deny all;"}, (), "blocked", ["configuration-snippet"]),
    ({"configuration-snippet": "if ($host = a) { return 301 https://b; }"}, (), "blocked",
     ["configuration-snippet"]),
    ({"configuration-snippet": 'more_set_headers "X-A: b'}, (), "blocked", ["configuration-snippet"]),
    ({"server-snippet": "location /x { proxy_pass http://evil; }"}, (), "blocked", ["server-snippet"]),
    ({"modsecurity-snippet": "SecRuleEngine On"}, (), "blocked", ["modsecurity-snippet"]),
    ({"auth-url": "https://a/", "auth-snippet": "x"}, (), "blocked", ["auth-url"]),
    # implemented by a plugin: parsed there
    ({"limit-rps": "5", "enable-cors": "true"}, (), "served", []),
    ({"custom-http-errors": "404,503"}, (), "warned", ["custom-http-errors"]),
    # names ingress-nginx never had
    ({"made-up": "1"}, (), "warned", ["made-up"]),
    ({"ingressd.io/made-up": "1"}, (), "warned", ["made-up"]),
    # removed from ingress-nginx
    ({"secure-backends": "true"}, (), "blocked", ["secure-backends"]),
    ({"enable-influxdb": "true"}, (), "warned", ["enable-influxdb"]),
]


@pytest.mark.parametrize("annotations, ignored, expected, names", CASES)
def test_assess(annotations, ignored, expected, names):
    assert outcome(annotations, ignored) == (expected, names)


def test_a_blocking_reason_names_the_annotation_and_how_to_accept_it():
    (problem,) = assess({N + "auth-url": "https://a/"}, OWNED)
    assert problem.blocking and problem.annotation == N + "auth-url"
    assert "let in clients it keeps out" in problem.reason
    assert "--ignore-annotation auth-url" in problem.reason and 'ingressd.io/ignore-annotations: "auth-url"' in problem.reason
    (problem,) = assess({N + "rewrite-target": "/"}, OWNED)
    assert "send traffic elsewhere" in problem.reason


def test_without_its_plugin_an_implemented_annotation_is_judged_like_any_other():
    without_auth = OWNED - {"auth-type", "auth-secret", "auth-secret-type", "auth-realm"}
    problems = assess({N + "auth-type": "basic", N + "auth-secret": "s"}, without_auth)
    assert [(p.name, p.blocking) for p in problems] == [("auth-type", True)]
    problems = assess({N + "enable-cors": "true", N + "cors-allow-origin": "https://a"}, OWNED - {"enable-cors"})
    assert [(p.name, p.blocking) for p in problems] == [("enable-cors", False)]


def test_ignore_list():
    assert ignore_list(f" {N}auth-url, satisfy,,ingressd.io/x ") == {"auth-url", "satisfy", "x"}


@pytest.mark.parametrize("text, directives", [
    ('more_set_headers "X: a;b";', ["more_set_headers"]),
    ("a 1; b { c 2; } d", ["a", "b", "c", "d"]),
    ("# deny all;\nadd_header X y;", ["add_header"]),
    ("if ($a ~ 'x{2}') { return 403; }", ["if", "return"]),
    ('set $x "\\";"; deny all;', ["set", "deny"]),
    ('add_header "X', None),
])
def test_snippet_directives(text, directives):
    assert snippet_directives(text) == directives


@pytest.mark.parametrize("text, effect", [
    ('more_set_headers "X-Frame-Options: DENY";', HARMLESS),
    ("gzip on; gzip_types text/css; proxy_read_timeout 300;", HARMLESS),
    ("allow 10.0.0.0/8; deny all;", NARROWS_ACCESS),
    ("add_header X y; auth_basic on;", NARROWS_ACCESS),
    ("rewrite ^/a /b break;", CHANGES_TRAFFIC),
    ("proxy_set_header X-User admin;", CHANGES_TRAFFIC),
    ("", HARMLESS),
])
def test_snippet_effect(text, effect):
    assert snippet_effect(text) == effect


def test_every_snippet_is_refused():
    assert all(CATALOGUE[name].status == "refused" for name in CATALOGUE if name.endswith("-snippet"))
