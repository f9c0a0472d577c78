"""``--metrics-compat nginx``'s four request histograms are plain cells (no prometheus_client
lock per observation) turned into families at scrape time: what /metrics shows must be what
prometheus_client's own Histograms, fed the same observations, show (``_created`` aside: Go's
client, whose output ingress-nginx's dashboards read, writes none)."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock

from ingressd.admin.metrics import NGINX_LENGTH_BUCKETS, NGINX_TIME_BUCKETS, Metrics

_NAMES = ("controller_namespace", "controller_class", "controller_pod", "status", "method", "path", "namespace",
          "ingress", "service", "canary", "host")
_ROUTES = [SimpleNamespace(host=f"h{i}.test", path=f"/p{i}", ingress=SimpleNamespace(namespace="ns", name=f"i{i}"),
                           backend=SimpleNamespace(service=f"s{i}", port=80)) for i in range(2)]


def _samples(text: str, prefix: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(prefix):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


requests = st.lists(st.tuples(
    st.integers(0, 1), st.sampled_from([200, 404, 502]),
    st.floats(min_value=0, max_value=20, allow_nan=False),  # duration
    st.one_of(st.none(), st.floats(min_value=0, max_value=20, allow_nan=False)),  # upstream
    st.integers(0, 200), st.integers(0, 200)), max_size=30)


@settings(max_examples=60, deadline=None)
@given(requests)
def test_the_nginx_histograms_are_prometheus_clients(observations):
    clock = Clock()
    clock.advance(1000.0)
    metrics = Metrics(clock, compat="nginx", controller_class="nginx")
    registry = CollectorRegistry()
    prefix = "nginx_ingress_controller_"
    reference = {
        "duration": Histogram(prefix + "request_duration_seconds", "d", _NAMES, buckets=NGINX_TIME_BUCKETS,
                              registry=registry),
        "response": Histogram(prefix + "response_duration_seconds", "d", _NAMES, buckets=NGINX_TIME_BUCKETS,
                              registry=registry),
        "request_size": Histogram(prefix + "request_size", "d", _NAMES, buckets=NGINX_LENGTH_BUCKETS,
                                  registry=registry),
        "response_size": Histogram(prefix + "response_size", "d", _NAMES, buckets=NGINX_LENGTH_BUCKETS,
                                   registry=registry),
    }
    const = tuple(metrics.nginx.const.values())
    for route_index, status, duration, upstream, received, sent in observations:
        route = _ROUTES[route_index]
        exchange = SimpleNamespace(
            entry=route_index, route=route, method=b"GET", status=status, started=1000.0 - duration,
            bytes_sent=sent, request_bytes=received, tunnel_bytes=(0, 0), retries=0, answered_by=None,
            upstream_started=5.0 if upstream is not None else 0.0,
            upstream_ended=5.0 + upstream if upstream is not None else 0.0, error_cause="connect")
        metrics.observe(exchange)
        labels = (*const, str(status), "GET", route.path, "ns", route.ingress.name, route.backend.service, "",
                  route.host)
        reference["duration"].labels(*labels).observe(clock.seconds() - exchange.started)
        if upstream is not None:
            reference["response"].labels(*labels).observe(exchange.upstream_ended - exchange.upstream_started)
        else:
            reference["response"].labels(*labels)  # the child exists, empty, as ours does
        reference["request_size"].labels(*labels).observe(received)
        reference["response_size"].labels(*labels).observe(sent)
    ours = _samples(metrics.render()[0].decode(), prefix)
    theirs = _samples(generate_latest(registry).decode(), prefix)
    ours = {key: value for key, value in ours.items() if not key[0].startswith(prefix + "requests")
            and key[0].split(prefix)[1].startswith(("request_duration", "response_duration", "request_size",
                                                    "response_size"))}
    assert ours == theirs
