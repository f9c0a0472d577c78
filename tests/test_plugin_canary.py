"""Canary Ingresses as ingress-nginx's balancer routes them (rootfs/etc/nginx/lua/balancer.lua)."""

from __future__ import annotations

import json

import pytest

from ingressd.http.headers import Headers
from ingressd.testing import exchange
from ingressd_plugins.canary import CanaryRule

N = "nginx.ingress.kubernetes.io/"


def ask(rule, headers=(), cookie=None):
    pairs = list(headers) + ([("cookie", cookie)] if cookie else [])
    return rule.wants(exchange(pairs))


def rule(header="", value="", pattern="", cookie="", weight=0, total=100, fraction=0.999):
    return CanaryRule(header, value, pattern, cookie, weight, total, lambda: fraction)


@pytest.mark.parametrize("made, headers, cookie, expected", [
    (rule(header="X-Canary"), [("x-canary", "always")], None, True),
    (rule(header="X-Canary", weight=100), [("x-canary", "never")], None, False),  # never beats the weight
    (rule(header="X-Canary"), [("x-canary", "other")], None, False),  # falls through to weight 0
    (rule(header="X-Canary", weight=100), [("x-canary", "other")], None, True),  # … and to weight 100
    (rule(header="X-Canary", value="v2"), [("x-canary", "v2")], None, True),
    (rule(header="X-Canary", value="v2"), [("x-canary", "always")], None, False),  # a value replaces always
    (rule(header="X-Canary", pattern="^(beta|v2)$"), [("x-canary", "beta")], None, True),
    (rule(header="X-Canary", pattern="^(beta|v2)$"), [("x-canary", "never")], None, False),
    (rule(header="X-Canary", cookie="c"), [], "c=always", True),  # no header: the cookie
    (rule(cookie="c", weight=100), [], "a=1; c=never", False),
    (rule(cookie="c"), [], "c=maybe", False),
    (rule(header="X-Canary", cookie="c"), [("x-canary", "never")], "c=always", False),  # header first
])
def test_header_then_cookie_then_weight(made, headers, cookie, expected):
    assert ask(made, headers, cookie) is expected


def test_weights_as_math_random_total_at_most_weight():
    # math.random(100) <= 30: 1..30 of 100
    assert rule(weight=30, fraction=0.29).wants(exchange()) is True
    assert rule(weight=30, fraction=0.30).wants(exchange()) is False
    assert rule(weight=0, fraction=0.0).wants(exchange()) is False
    assert rule(weight=100, fraction=0.999).wants(exchange()) is True
    # a total over 100 counts; one under 100 is 100
    assert rule(weight=500, total=1000, fraction=0.49).wants(exchange()) is True
    assert rule(weight=500, total=1000, fraction=0.51).wants(exchange()) is False
    assert rule(weight=40, total=50, fraction=0.5).wants(exchange()) is False  # 40 of 100, not of 50


def test_canary_settings_without_canary_reject_the_ingress():
    from ingressd.testing import PluginHarness
    from ingressd_plugins import canary

    with PluginHarness([canary], {N + "canary-weight": "10"}) as h:
        assert h.rejection is not None and "not enabled" in h.rejection


def test_the_canary_attaches_to_the_main_route_and_a_lonely_one_is_not_served():
    from ingressd.config.entries import build_table
    from ingressd.config.model import Backend, Config, Endpoint, ObjectRef, Route
    from ingressd.features import BuildContext
    from ingressd_plugins.canary import Canary

    def route(name, host, service):
        return Route(host, "/", "Prefix", Backend("ns", service, "80", (Endpoint(service, 80),)),
                     ObjectRef("Ingress", "ns", name))

    main, canary, lonely = route("main", "a.test", "stable"), route("canary", "a.test", "next"), \
        route("lonely", "b.test", "next")

    class Plugins:
        def route_features(self, r, context):
            return [Canary(rule(weight=100))] if r.ingress.name in ("canary", "lonely") else []

    table, config = build_table(Config(routes=(main, canary, lonely)), Plugins(), BuildContext(settings={}, reactor=None))
    entry = table.match("a.test", "/")
    assert entry.route is main and entry.alternatives[0][1].route is canary
    assert table.match("b.test", "/") is None
    (rejection,) = config.rejections
    assert rejection.ref.name == "lonely" and "without a main Ingress" in rejection.reason


def test_reused_entries_lose_a_removed_canary_and_the_first_main_of_a_host_and_path_wins():
    # build_table reuses last build's entries: a main whose canary went must route alone again;
    # a canary's host with several mains for other paths attaches only to its own path's first.
    from ingressd.config.entries import build_table
    from ingressd.config.model import Backend, Config, Endpoint, ObjectRef, Route
    from ingressd.features import BuildContext
    from ingressd_plugins.canary import Canary

    def route(name, host, service, path="/"):
        return Route(host, path, "Prefix", Backend("ns", service, "80", (Endpoint(service, 80),)),
                     ObjectRef("Ingress", "ns", name))

    main, other_path, second_main = route("main", "a.test", "stable"), route("other", "a.test", "o", "/x"), \
        route("second", "a.test", "late")
    canary, elsewhere = route("canary", "a.test", "next"), route("elsewhere", "c.test", "c")

    class Plugins:
        def route_features(self, r, context):
            return [Canary(rule(weight=100))] if r.ingress.name == "canary" else []

    previous, context = {}, BuildContext(settings={}, reactor=None)
    table, config = build_table(Config(routes=(main, other_path, second_main, canary, elsewhere)), Plugins(),
                                context, previous)
    first = table.match("a.test", "/")
    assert first.route is main and [alt[1].route for alt in first.alternatives] == [canary]
    assert table.match("a.test", "/x").alternatives == () and table.match("c.test", "/").alternatives == ()
    assert config.rejections == ()
    table, config = build_table(Config(routes=(main, other_path, second_main, elsewhere)), Plugins(),
                                context, previous)
    again = table.match("a.test", "/")
    assert again is first and again.alternatives == ()  # the same entry, its canary gone


@pytest.mark.slow
def test_end_to_end_header_cookie_and_weight(tmp_path):
    from backends import Backend
    from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests

    stable, beta = Backend("stable"), Backend("beta")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS, *service("stable", [("http", 80, stable.port)]), *service("beta", [("http", 80, beta.port)]),
        ingress("main", [("app.test", [("/", "Prefix", "stable", 80)])],
                annotations={N + "x-forwarded-prefix": "/ignored"}),
        ingress("canary", [("app.test", [("/", "Prefix", "beta", 80)])],
                annotations={N + "canary": "true", N + "canary-by-header": "X-Canary",
                             N + "canary-by-cookie": "canary", N + "canary-weight": "30"}),
        ingress("header-only", [("h.test", [("/", "Prefix", "stable", 80)])]),
        ingress("h-canary", [("h.test", [("/", "Prefix", "beta", 80)])],
                annotations={N + "canary": "true", N + "canary-by-header": "X-Canary",
                             N + "canary-by-header-value": "v2"}),
    ])
    proc = Ingressd(manifests)
    try:
        def backend(host, headers=None):
            response = proc.get("/", host=host, headers=headers or {})
            assert response.status == 200
            return json.loads(response.body)["backend"]

        assert backend("app.test", {"X-Canary": "always"}) == "beta"
        assert backend("app.test", {"X-Canary": "never", "Cookie": "canary=always"}) == "stable"
        assert backend("app.test", {"Cookie": "canary=always"}) == "beta"
        assert backend("app.test", {"Cookie": "canary=never"}) == "stable"
        assert backend("h.test", {"X-Canary": "v2"}) == "beta"
        assert backend("h.test", {"X-Canary": "always"}) == "stable"
        assert backend("h.test") == "stable"
        # weight 30: 200 requests; a binomial(200, 0.3) outside 20..100 is over 6 standard deviations away
        to_beta = sum(backend("app.test") == "beta" for _ in range(200))
        assert 20 <= to_beta <= 100, to_beta
    finally:
        proc.stop()
        stable.stop()
        beta.stop()



@pytest.mark.parametrize("value, sticky", [(None, True), ("sticky", True), ("legacy", False), (" legacy ", False)])
def test_affinity_canary_behavior_is_read_on_the_canary_ingress(value, sticky):
    from fakes import features_for
    from ingressd_plugins import canary

    annotations = {"canary": "true", "canary-weight": "10"}
    if value is not None:
        annotations["affinity-canary-behavior"] = value
    [feature] = features_for(canary, annotations)
    assert feature.canary.sticky_affinity is sticky


@pytest.mark.parametrize("value", ["Sticky", "off", "true"])
def test_other_affinity_canary_behaviors_are_refused(value):
    from fakes import annotation_values
    from ingressd.features import AnnotationError
    from ingressd_plugins import canary

    with pytest.raises((AnnotationError, ValueError)):
        annotation_values(canary, {"affinity-canary-behavior": value})
