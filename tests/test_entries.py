"""Route entries: round-robin over ready endpoints, and features sorted by phase."""

from ingressd.config.entries import RouteEntry
from ingressd.config.model import Backend, Endpoint, ObjectRef, Route


def route(endpoints):
    backend = Backend("ns", "svc", "80", tuple(Endpoint("10.0.0.%d" % i, 80) for i in endpoints))
    return Route("h.com", "/", "Prefix", backend, ObjectRef("Ingress", "ns", "i"))


def test_round_robin_spreads_requests_evenly():
    entry = RouteEntry(route([1, 2, 3]))
    picks = [entry.pick().address for _ in range(9)]
    assert sorted(picks) == ["10.0.0.1"] * 3 + ["10.0.0.2"] * 3 + ["10.0.0.3"] * 3
    assert picks[:3] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def test_pick_avoids_endpoints_already_tried_while_others_remain():
    entry = RouteEntry(route([1, 2]))
    first = entry.pick()
    assert entry.pick((first,)) != first
    only = RouteEntry(route([1]))
    assert only.pick((only.endpoints[0],)) == only.endpoints[0]  # nothing else: the same again
    assert RouteEntry(route([])).pick() is None


class Feature:
    def __init__(self, phase, log):
        self.phase = phase
        self.log = log

    def request(self, exchange):
        self.log.append(self.phase)


def test_request_features_run_in_phase_order_whatever_the_plugin_order():
    log = []
    entry = RouteEntry(route([1]), [Feature(400, log), Feature(100, log), Feature(300, log), Feature(200, log)])
    for feature in entry.request_features:
        feature(None)
    assert log == [100, 200, 300, 400]


# -- upstream settings: the route's over the server's; protocols the server speaks ------------


class Settings:
    def __init__(self, phase, **fields):
        from ingressd.features import UpstreamSettings

        self.phase, self.upstream = phase, UpstreamSettings(**fields)


def test_an_entry_carries_complete_upstream_settings_the_routes_over_the_servers():
    from ingressd.config.entries import DEFAULT_UPSTREAM
    from ingressd.features import UpstreamSettings

    assert RouteEntry(route([1])).upstream is DEFAULT_UPSTREAM  # no feature: the server's, shared
    server = UpstreamSettings(connect_timeout=1.0, read_timeout=2.0, send_timeout=3.0, max_body_size=4,
                              protocol="HTTP")
    entry = RouteEntry(route([1]), [Settings(200, read_timeout=20.0), Settings(500, read_timeout=50.0,
                                                                                   max_body_size=0)], server)
    assert entry.upstream == UpstreamSettings(1.0, 50.0, 3.0, 0, "HTTP")  # later phase wins, field by field


def test_an_ingress_whose_route_needs_a_protocol_the_server_does_not_speak_is_rejected_alone():
    from ingressd.config.entries import build_table
    from ingressd.config.model import Config
    from ingressd.features import BuildContext

    plain = route([1])
    grpc = Route("g.com", "/", "Prefix", plain.backend, ObjectRef("Ingress", "ns", "grpc"))

    class Plugins:
        def route_features(self, r, context):
            return [Settings(500, protocol="GRPC")] if r.ingress.name == "grpc" else []

    table, config = build_table(Config(routes=(plain, grpc)), Plugins(), BuildContext(settings={}, reactor=None),
                                protocols=frozenset({"HTTP"}))
    assert [r.ingress.name for r in config.routes] == ["i"]
    (rejection,) = config.rejections
    assert rejection.ref.name == "grpc" and "backend protocol GRPC is not served" in rejection.reason
    assert table.match("g.com", "/") is None and table.match("h.com", "/") is not None
    table, config = build_table(Config(routes=(plain, grpc)), Plugins(), BuildContext(settings={}, reactor=None),
                                protocols=frozenset({"HTTP", "GRPC"}))
    assert len(config.routes) == 2 and not config.rejections


def test_the_routes_of_one_ingress_get_features_built_for_their_own_path():
    """One Ingress's routes share their annotation values, but a feature may depend on the path
    (rewrite-target's pattern, no-auth-locations): each path is asked for its own."""
    from ingressd.config.entries import build_table
    from ingressd.config.model import Config
    from ingressd.features import BuildContext

    values = (("auth-type", "basic"),)
    ref = ObjectRef("Ingress", "ns", "i")
    backend = route([1]).backend
    routes = tuple(Route("h.com", path, kind, backend, ref, features=values)
                   for path, kind in (("/", "Prefix"), ("/open", "Prefix"), ("/open", "Exact")))
    asked = []

    class Plugins:
        def route_features(self, r, context):
            asked.append((r.path, r.path_type))
            return [] if r.path == "/open" else [Feature(400, [])]

    table, _ = build_table(Config(routes=routes), Plugins(), BuildContext(settings={}, reactor=None))
    assert asked == [("/", "Prefix"), ("/open", "Prefix"), ("/open", "Exact")]
    assert table.match("h.com", "/x").request_features and not table.match("h.com", "/open/x").request_features
