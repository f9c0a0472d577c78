"""server_alias's ``ingressd_host_routes`` on its own (no server): which host routes an alias adds,
with the oldest Ingress claiming an alias first, and nothing at all without aliases."""

from __future__ import annotations

from ingressd.config.model import Backend, Config, ObjectRef, Route
from ingressd_plugins import server_alias


def _route(host, path, name, created, aliases=()):
    features = (("server-alias", aliases),) if aliases else (("proxy-body-size", 1),)
    return Route(host, path, "Prefix", Backend("ns", "svc", "80"), ObjectRef("Ingress", "ns", name), created,
                 features=features)


def test_no_alias_adds_nothing():
    config = Config(routes=tuple(_route(f"h{i}.example", "/", f"i{i}", "2024-01-01T00:00:00Z") for i in range(50)))
    assert server_alias.ingressd_host_routes(config, None) == []


def test_the_oldest_ingress_claims_an_alias_for_every_path_of_its_host():
    newer = _route("b.example", "/", "newer", "2024-01-02T00:00:00Z", ("alias.example",))
    older = _route("a.example", "/", "older", "2024-01-01T00:00:00Z", ("alias.example",))
    other_path = _route("a.example", "/api", "plain", "2024-01-03T00:00:00Z")
    added = server_alias.ingressd_host_routes(Config(routes=(newer, other_path, older)), None)
    assert sorted((r.route.host, r.route.path, r.route.ingress.name) for r in added) == [
        ("alias.example", "/", "older"), ("alias.example", "/api", "plain")]


def test_an_alias_that_is_a_rules_host_is_skipped():
    aliased = _route("a.example", "/", "i1", "2024-01-01T00:00:00Z", ("b.example",))
    taken = _route("b.example", "/", "i2", "2024-01-02T00:00:00Z")
    assert server_alias.ingressd_host_routes(Config(routes=(aliased, taken)), None) == []
