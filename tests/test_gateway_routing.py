"""Gateway API wildcard hostnames in the route table: ``*.example.com`` of a route that says
``any_depth`` serves names any number of labels deep (the Gateway API's rule), the longest
suffix first; an Ingress wildcard keeps the one-label rule."""

from __future__ import annotations

from ingressd.config.model import Backend, ObjectRef, Route
from ingressd.config.routing import RouteTable


class Entry:
    def __init__(self, route):
        self.route = route


def route(host: str, service: str, any_depth: bool = True, path: str = "/") -> Entry:
    kind = "HTTPRoute" if any_depth else "Ingress"
    return Entry(Route(host, path, "Prefix", Backend("ns", service, "80"), ObjectRef(kind, "ns", service),
                       any_depth=any_depth))


def served(table: RouteTable, host: str, path: str = "/"):
    entry = table.match(host, path)
    return None if entry is None else entry.route.backend.service


def test_an_any_depth_wildcard_serves_deeper_names():
    table = RouteTable([route("*.bar.com", "deep")])
    assert served(table, "foo.bar.com") == "deep"
    assert served(table, "multiple.prefixes.bar.com") == "deep"
    assert served(table, "a.b.c.bar.com") == "deep"
    assert served(table, "bar.com") is None
    assert served(table, "foo.baz.com") is None
    assert served(table, "com") is None
    assert served(table, "xbar.com") is None


def test_an_ingress_wildcard_still_takes_one_label():
    table = RouteTable([route("*.bar.com", "one", any_depth=False)])
    assert served(table, "foo.bar.com") == "one"
    assert served(table, "multiple.prefixes.bar.com") is None
    assert table.deep_wildcard_hosts == {}


def test_the_longest_suffix_wins_and_exact_names_first():
    table = RouteTable([route("*.bar.com", "short"), route("*.x.bar.com", "long"), route("a.x.bar.com", "exact",
                                                                                          any_depth=False),
                        route("", "any", any_depth=False)])
    assert served(table, "a.x.bar.com") == "exact"
    assert served(table, "b.x.bar.com") == "long"
    assert served(table, "c.b.x.bar.com") == "long"
    assert served(table, "c.b.y.bar.com") == "short"
    assert served(table, "y.bar.com") == "short"
    assert served(table, "other.org") == "any"
    assert served(table, "a.b.other.org") == "any"


def test_a_one_label_ingress_wildcard_nearer_than_a_deep_one():
    table = RouteTable([route("*.x.bar.com", "ingress", any_depth=False), route("*.bar.com", "deep")])
    assert served(table, "a.x.bar.com") == "ingress"
    assert served(table, "a.b.x.bar.com") == "deep"  # the Ingress wildcard takes one label only


def test_a_host_with_no_matching_path_on_a_deep_wildcard():
    table = RouteTable([route("*.bar.com", "deep", path="/api")])
    assert served(table, "a.b.bar.com", "/api/x") == "deep"
    assert served(table, "a.b.bar.com", "/other") is None


def test_deeper_names_see_only_the_any_depth_routes_of_a_shared_wildcard():
    table = RouteTable([route("*.bar.com", "ingress", any_depth=False, path="/"),
                        route("*.bar.com", "gateway", path="/gw")])
    assert served(table, "a.bar.com", "/") == "ingress"
    assert served(table, "a.bar.com", "/gw") == "gateway"
    assert served(table, "a.b.bar.com", "/gw") == "gateway"
    assert served(table, "a.b.bar.com", "/") is None


def test_every_suffix_of_a_name_with_an_empty_label_is_tried():
    """The suffixes of a deeper name are tried at each of its dots, longest first, whatever
    the labels between them: ``a..bar.com`` and ``a.b..bar.com`` end in ``.bar.com`` as any
    deeper name of ``*.bar.com`` does."""
    table = RouteTable([route("*.bar.com", "deep"), route("*.com", "com"), route("", "any", any_depth=False)])
    assert served(table, "a..bar.com") == "deep"
    assert served(table, "a.b..bar.com") == "deep"
    assert served(table, "a...bar.com") == "deep"
    assert served(table, "a..b.com") == "com"
    assert served(table, "a..bar.org") == "any"
