"""Route entries: round-robin over ready endpoints, and features sorted by phase."""

from ingressd.entries import RouteEntry
from ingressd.model import Backend, Endpoint, ObjectRef, Route


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
