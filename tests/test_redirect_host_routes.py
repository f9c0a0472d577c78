"""redirect's ``ingressd_host_routes`` on its own (no server): the from-to-www redirect hosts it
adds, once per host, for the Ingresses that ask, and nothing at all when none asks."""

from __future__ import annotations

from ingressd.config.model import Backend, Config, ObjectRef, Route, TLSHost
from ingressd_plugins import redirect

ASKS = (("from-to-www-redirect", True),)


def _route(host, path, name, features=(("proxy-body-size", 1),)):
    return Route(host, path, "Prefix", Backend("ns", "svc", "80"), ObjectRef("Ingress", "ns", name),
                 features=features)


def test_none_asking_adds_nothing():
    config = Config(routes=tuple(_route(f"h{i}.example", "/", f"i{i}") for i in range(20)))
    assert redirect.ingressd_host_routes(config, None) == []
    assert redirect.ingressd_host_routes(Config(), None) == []


def test_one_redirect_host_per_asking_host_and_none_for_a_name_already_served():
    asking = (_route("shop.test", "/", "shop", ASKS), _route("shop.test", "/api", "shop", ASKS))
    plain = _route("plain.test", "/", "plain")
    taken = (_route("www.taken.test", "/", "taken", ASKS), _route("taken.test", "/", "other"))
    tls = TLSHost("shop.test", ObjectRef("Secret", "ns", "s"), ObjectRef("Ingress", "ns", "shop"))
    added = redirect.ingressd_host_routes(Config(routes=(*asking, plain, *taken), tls_hosts=(tls,)), None)
    assert [(r.route.host, r.route.path, r.route.path_type, r.route.ingress.name) for r in added] == [
        ("www.shop.test", "/", "Prefix", "shop")]
    (only,) = added
    assert only.tls_host.host == "www.shop.test" and only.tls_host.covered_only
    (feature,) = only.features
    assert isinstance(feature, redirect.WWWRedirect)
