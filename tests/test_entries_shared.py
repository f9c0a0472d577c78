"""What a route entry shares with the one built before it (``RouteEntry``'s ``like``, which
build_table passes): the round-robin of the very same Backend, and what is derived from the
very same feature objects; nothing when either differs, and a feature's own balancer is never
taken for a round-robin to share."""

from ingressd import hookimpl
from ingressd.config.entries import RouteEntry, build_table
from ingressd.config.model import Backend, Config, Endpoint, ObjectRef, Route
from ingressd.features import BuildContext, RoundRobin
from ingressd.plugin_manager import load_plugins

BACKEND = Backend("ns", "svc", "80", (Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80)))
EQUAL = Backend("ns", "svc", "80", BACKEND.endpoints)  # equal, another object
OTHER = Backend("ns", "other", "80", (Endpoint("10.0.0.3", 80),))


class Feature:
    def response(self, exchange):
        return None

    def error(self, exchange):
        return None


class Balancing:
    def __init__(self, endpoints):
        self.balancer = RoundRobin(endpoints)


def route(path, backend=BACKEND, name="i", values=()):
    return Route("h.com", path, "Prefix", backend, ObjectRef("Ingress", "ns", name), features=values)


def test_the_same_backend_shares_the_round_robin_and_takes_turns():
    first = RouteEntry(route("/a"))
    second = RouteEntry(route("/b"), like=first)
    assert second.balancer is first.balancer
    # the routes take turns in one rotation, as nginx's locations of one upstream
    assert [first.pick(), second.pick(), first.pick()] == [*BACKEND.endpoints, BACKEND.endpoints[0]]


def test_an_equal_or_other_backend_gets_its_own_round_robin():
    first = RouteEntry(route("/a"))
    assert RouteEntry(route("/b", EQUAL), like=first).balancer is not first.balancer
    assert RouteEntry(route("/b", OTHER), like=first).balancer is not first.balancer
    assert RouteEntry(route("/b", OTHER), like=first).endpoints == OTHER.endpoints


def test_a_features_balancer_is_not_shared_as_a_round_robin():
    own = Balancing(OTHER.endpoints)
    first = RouteEntry(route("/a"), [own])
    assert first.balancer is own.balancer
    second = RouteEntry(route("/b"), like=first)
    assert second.balancer is not own.balancer and second.endpoints == BACKEND.endpoints
    assert RouteEntry(route("/c"), [own], like=second).balancer is own.balancer


def test_the_same_feature_objects_share_their_derived_tuples():
    feature = Feature()
    first = RouteEntry(route("/a"), [feature])
    second = RouteEntry(route("/b", OTHER), [feature], like=first)
    assert second.features is first.features and second.response_features is first.response_features
    assert second.error_features is first.error_features and second.request_features is first.request_features
    assert second.balancer is not first.balancer  # another Backend
    # equal features that are other objects (a feature may keep state): built anew
    third = RouteEntry(route("/c"), [Feature()], like=second)
    assert third.features is not second.features and third.features[0] is not feature
    assert third.response_features[0].__self__ is third.features[0]
    # fewer or more of them: built anew
    assert RouteEntry(route("/d"), [feature, Feature()], like=first).features[0] is feature
    assert len(RouteEntry(route("/d"), [feature, Feature()], like=first).response_features) == 2


def test_build_table_shares_along_an_ingresss_routes():
    class Same:
        def __init__(self):
            self.feature = Feature()

        @hookimpl
        def ingressd_route_features(self, route):
            return self.feature

    plugins = load_plugins(entry_points=False, extra=[Same()])
    routes = (route("/a", values=(("x", "1"),)), route("/b", values=(("x", "1"),)),
              route("/c", OTHER, values=(("x", "1"),)))
    table, served = build_table(Config(routes=routes), plugins, BuildContext(settings={}, reactor=None))
    a, b, c = (table.match("h.com", path) for path in ("/a", "/b", "/c"))
    assert a.balancer is b.balancer and c.balancer is not a.balancer
    assert a.features is b.features is c.features
    # a second build from the first reuses the entries as they are
    again, _ = build_table(Config(routes=routes), plugins, BuildContext(settings={}, reactor=None))
    assert [entry.endpoints for entry in again.given] == [BACKEND.endpoints, BACKEND.endpoints, OTHER.endpoints]
