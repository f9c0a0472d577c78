"""The log line of a configuration change (``reloader.describe_change``): Ingresses added, removed
and changed, whether or not an Ingress's routes come one after another."""

from __future__ import annotations

from ingressd.config.model import Backend, Config, ObjectRef, Route
from ingressd.config.reloader import describe_change


def _route(name, path, ref=None):
    return Route("h.example", path, "Prefix", Backend("ns", "svc", "80"), ref or ObjectRef("Ingress", "ns", name))


def test_added_removed_changed_and_unchanged():
    a1, a2, b1, c1 = _route("a", "/1"), _route("a", "/2"), _route("b", "/"), _route("c", "/")
    old = Config(routes=(a1, b1, a2, c1))  # a's routes apart
    new = Config(routes=(a1, _route("d", "/"), b1, _route("c", "/moved"), a2))
    assert describe_change(old, new) == (
        "1 Ingress added (ns/d), 1 Ingress changed (ns/c), 5 route(s), 0 rejected")
    assert describe_change(new, old) == (
        "1 Ingress removed (ns/d), 1 Ingress changed (ns/c), 4 route(s), 0 rejected")


def test_equal_refs_that_are_other_objects_are_one_ingress():
    first = _route("a", "/1")
    second = _route("a", "/2", ObjectRef("Ingress", "ns", "a"))  # equal, not the same object
    old = Config(routes=(first, second))
    assert describe_change(old, Config(routes=(first, second))) == "no Ingress changed, 2 route(s), 0 rejected"
    assert describe_change(old, Config(routes=(second, first))).startswith("1 Ingress changed (ns/a)")


def test_nothing_changed():
    routes = tuple(_route(f"i{n}", "/") for n in range(3))
    assert describe_change(Config(routes=routes), Config(routes=routes)) == "no Ingress changed, 3 route(s), 0 rejected"


def test_names_are_sorted_and_past_five_counted():
    kept = _route("k", "/")
    old = Config(routes=(kept, *(_route(f"r{n}", "/") for n in (3, 1, 2)), _route("c2", "/"), _route("c1", "/")))
    new = Config(routes=(*(_route(f"a{n}", "/") for n in (7, 3, 1, 6, 2, 5, 4)), kept,
                         _route("c1", "/new"), _route("c2", "/new")))
    assert describe_change(old, new) == (
        "7 Ingresses added (ns/a1, ns/a2, ns/a3, ns/a4, ns/a5 and 2 more), "
        "3 Ingresses removed (ns/r1, ns/r2, ns/r3), 2 Ingresses changed (ns/c1, ns/c2), 10 route(s), 0 rejected")


def test_an_ingress_whose_routes_grow_or_shrink_changed():
    one, two = _route("a", "/1"), _route("a", "/2")
    assert describe_change(Config(routes=(one,)), Config(routes=(one, two))).startswith("1 Ingress changed (ns/a)")
    assert describe_change(Config(routes=(one, two)), Config(routes=(one,))).startswith("1 Ingress changed (ns/a)")


def test_groups_the_caller_kept_give_the_same_line():
    from ingressd.config.reloader import _routes_by_ingress

    old = Config(routes=(_route("a", "/"), _route("b", "/")))
    new = Config(routes=(_route("a", "/"), _route("c", "/")))
    line = describe_change(old, new)
    assert line == "1 Ingress added (ns/c), 1 Ingress removed (ns/b), 2 route(s), 0 rejected"
    assert describe_change(old, new, _routes_by_ingress(old), _routes_by_ingress(new)) == line
    assert describe_change(old, new, None, _routes_by_ingress(new)) == line
