"""``Metrics.observe``'s own request histograms (``ingressd_request_duration_seconds``,
``ingressd_upstream_response_seconds``), bumped in place per request: what /metrics shows
must be what prometheus_client's Histograms, fed the same observations, show (values on the
bucket bounds included: a value counts in the first bucket whose bound is not below it)."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from twisted.internet.task import Clock

from ingressd.admin.metrics import TIME_BUCKETS, Metrics
from test_metrics_nginx_cells import _ROUTES, _samples

_SECONDS = st.one_of(st.sampled_from(TIME_BUCKETS + (0.0, 61.0)), st.floats(min_value=0, max_value=70,
                                                                             allow_nan=False))
requests = st.lists(st.tuples(st.integers(0, 1), st.sampled_from([200, 301, 404, 502]), _SECONDS,
                              st.one_of(st.none(), _SECONDS)), max_size=30)


@settings(max_examples=80, deadline=None)
@given(requests)
def test_the_request_histograms_are_prometheus_clients(observations):
    clock = Clock()
    clock.advance(1000.0)
    metrics = Metrics(clock)
    registry = CollectorRegistry()
    duration = Histogram("ingressd_request_duration_seconds", "d", ["namespace", "ingress", "service", "status_class"],
                         buckets=TIME_BUCKETS, registry=registry)
    upstream_seconds = Histogram("ingressd_upstream_response_seconds", "d", ["namespace", "ingress", "service"],
                                 buckets=TIME_BUCKETS, registry=registry)
    for route_index, status, took, upstream in observations:
        route = _ROUTES[route_index]
        exchange = SimpleNamespace(
            entry=route_index, route=route, method=b"GET", status=status, started=1000.0 - took,
            bytes_sent=0, request_bytes=0, tunnel_bytes=(0, 0), retries=0, answered_by=None,
            upstream_started=5.0 if upstream is not None else 0.0,
            upstream_ended=5.0 + upstream if upstream is not None else 0.0, error_cause="connect")
        metrics.observe(exchange)
        labels = ("ns", route.ingress.name, route.backend.service)
        duration.labels(*labels, f"{status // 100}xx").observe(clock.seconds() - exchange.started)
        if upstream is not None:
            upstream_seconds.labels(*labels).observe(exchange.upstream_ended - exchange.upstream_started)
        else:
            upstream_seconds.labels(*labels)  # the route's child exists, empty, as ours does
    wanted = ("ingressd_request_duration_seconds", "ingressd_upstream_response_seconds")
    ours = {key: value for key, value in _samples(metrics.render()[0].decode(), "ingressd_").items()
            if key[0].startswith(wanted)}
    theirs = {key: value for key, value in _samples(generate_latest(registry).decode(), "ingressd_").items()
              if key[0].startswith(wanted)}
    assert ours == theirs
