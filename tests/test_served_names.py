"""The certificate store's names served (``certificates._served_names``): the exact hosts and the
parents of ``*.`` wildcards of the routes and TLS hosts, each name once however many routes share it."""

from __future__ import annotations

from ingressd.config.model import Backend, Config, ObjectRef, Route, TLSHost
from ingressd.tls.certificates import _served_names

ING = ObjectRef("Ingress", "ns", "a")


def _route(host, path="/"):
    return Route(host, path, "Prefix", Backend("ns", "svc", "80"), ING)


def test_exact_and_wildcard_names_of_routes_and_tls_hosts():
    config = Config(
        routes=(_route("a.example"), _route("a.example", "/2"), _route("*.w.example"), _route(""),
                _route("B.Example."), _route(" c.example ")),
        tls_hosts=(TLSHost("t.example", ObjectRef("Secret", "ns", "s"), ING),
                   TLSHost("*.tw.example", ObjectRef("Secret", "ns", "s"), ING),
                   TLSHost("a.example", ObjectRef("Secret", "ns", "s"), ING)))
    exact, wildcard = _served_names(config)
    assert exact == frozenset({"a.example", "b.example", "c.example", "t.example"})
    assert wildcard == frozenset({"w.example", "tw.example"})
    assert isinstance(exact, frozenset) and isinstance(wildcard, frozenset)


def test_a_rule_without_host_serves_no_name():
    assert _served_names(Config(routes=(_route(""), _route(".")))) == (frozenset(), frozenset())
    assert _served_names(Config()) == (frozenset(), frozenset())


def test_a_name_only_a_tls_host_has_is_served():
    config = Config(tls_hosts=(TLSHost("only.example", ObjectRef("Secret", "ns", "s"), ING),))
    assert _served_names(config) == (frozenset({"only.example"}), frozenset())
