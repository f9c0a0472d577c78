"""build_table's memo of route features: routes with the same match of one object (Ingress,
HTTPRoute) share the features built once; another object's routes get their own; only the
object whose routes are being built is remembered, so the build keeps no per-route key."""

from ingressd import hookimpl
from ingressd.config.entries import build_table
from ingressd.config.model import Backend, Config, Endpoint, ObjectRef, Route
from ingressd.features import BuildContext
from ingressd.plugin_manager import load_plugins

BACKEND = Backend("ns", "svc", "80", (Endpoint("10.0.0.1", 80),))
OTHER = Backend("ns", "other", "80", (Endpoint("10.0.0.2", 80),))  # a second route of the same match
VALUES = (("x", "1"),)


class Feature:
    def request(self, exchange):
        return None


def recording_plugins(calls):
    class Counting:
        @hookimpl
        def ingressd_route_features(self, route):
            calls.append((route.ingress.name, route.host, route.path))
            return Feature()

    return load_plugins(entry_points=False, extra=[Counting()])


def route(name, path, host="h.com", values=VALUES, backend=OTHER):
    return Route(host, path, "Prefix", backend, ObjectRef("Ingress", "ns", name), features=values)


def test_same_match_of_one_object_shares_its_features():
    calls = []
    # one Ingress listing /a twice (its routes share their annotation values: one tuple)
    routes = (route("i", "/a"), route("i", "/a", backend=OTHER), route("i", "/b"))
    table, _ = build_table(Config(routes=routes), recording_plugins(calls), BuildContext(settings={}, reactor=None))
    assert calls == [("i", "h.com", "/a"), ("i", "h.com", "/b")]


def test_another_object_with_the_same_match_gets_its_own():
    calls = []
    routes = (route("i", "/a"), route("j", "/a"))
    table, _ = build_table(Config(routes=routes), recording_plugins(calls), BuildContext(settings={}, reactor=None))
    assert calls == [("i", "h.com", "/a"), ("j", "h.com", "/a")]


def test_the_memo_keeps_only_the_current_objects_routes():
    # Sources emit an object's routes together; were one's routes split by another's, the
    # later ones would be built anew (equal features, not shared): the memo is not kept for
    # objects already done, which is what keeps the build from holding a key per route.
    calls = []
    routes = (route("i", "/a"), route("j", "/a"), route("i", "/a", backend=OTHER))
    table, _ = build_table(Config(routes=routes), recording_plugins(calls), BuildContext(settings={}, reactor=None))
    assert calls == [("i", "h.com", "/a"), ("j", "h.com", "/a"), ("i", "h.com", "/a")]


def test_many_objects_each_built_once_per_match():
    calls = []
    routes = tuple(route(f"i{n}", f"/p{k}", values=(("n", str(n)),)) for n in range(50) for k in range(3))
    # (the same host and paths in every Ingress: each Ingress's features are its own all the same)
    table, _ = build_table(Config(routes=routes), recording_plugins(calls), BuildContext(settings={}, reactor=None))
    assert len(calls) == 150 and len(set(calls)) == 150
    assert len(list(table.entries())) == 150 // 50  # one host: the table keeps the three paths
