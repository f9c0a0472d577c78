"""``Metrics.observe`` notes each finished exchange and ``Metrics.fold`` counts them together
(64 at most held, 0.1 s after the first, before any read, at a configuration change, at a
stop): every read must be what counting each exchange at once gave (``tests/metrics_before.py``,
the module before), a flood must not grow what is held, and nothing may be lost at a stop."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

import metrics_before
from ingressd.admin import metrics as metrics_module
from ingressd.admin.metrics import FoldAtStop, Metrics
from ingressd.testing import one_route_objects, serve_in_memory

_ROUTES = [None] + [SimpleNamespace(host=f"h{i}.test", path=f"/p{i}",
                                    ingress=SimpleNamespace(namespace="ns", name=f"i{i}"),
                                    backend=SimpleNamespace(service=f"s{i}", port=80)) for i in range(3)]
_SECONDS = st.one_of(st.sampled_from(metrics_module.TIME_BUCKETS + (0.0, 61.0)),
                     st.floats(min_value=0, max_value=70, allow_nan=False))


def _exchange(route_index, method, status, took, upstream, sent, received, tunnel, retries, answered_by, cause,
              now):
    return SimpleNamespace(
        entry=route_index, route=_ROUTES[route_index], method=method, status=status, started=now - took,
        bytes_sent=sent, request_bytes=received, tunnel_bytes=tunnel, retries=retries, answered_by=answered_by,
        upstream_started=5.0 if upstream is not None else 0.0,
        upstream_ended=5.0 + upstream if upstream is not None else 0.0, error_cause=cause,
        upstream_status=status if cause == "" and answered_by is None else 0)


_REQUEST = st.tuples(
    st.integers(0, len(_ROUTES) - 1),
    st.sampled_from([b"GET", b"POST", b"HEAD", b"BREW", b"DELETE"]),
    st.sampled_from([101, 200, 204, 301, 404, 429, 499, 500, 502, 503, 504, 0, 600, 999]),
    _SECONDS,  # the exchange's duration
    st.one_of(st.none(), _SECONDS),  # the backend's
    st.integers(0, 10 ** 7), st.integers(0, 10 ** 7),  # bytes sent, received
    st.tuples(st.integers(0, 10 ** 5), st.integers(0, 10 ** 5)),  # a tunnel's bytes (101)
    st.integers(0, 3),  # retries
    st.one_of(st.none(), st.sampled_from(["rate_limit", "basic_auth"])),
    st.sampled_from(["", "connect", "timeout"]),
)
# Between requests: the clock moves (the timed fold may fire), /metrics is read, the
# configuration changes (the route entries are looked up afresh).
_STEP = st.one_of(
    st.tuples(st.just("request"), _REQUEST),
    st.tuples(st.just("advance"), st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.3])),
    st.tuples(st.just("scrape"), st.none()),
    st.tuples(st.just("config"), st.none()),
)


def _text(metrics) -> list[str]:
    """The exposition, less what depends on when it was made (``_created``, the process's CPU and
    memory)."""
    body = metrics.render()[0].decode()
    return [line for line in body.splitlines()
            if "_created" not in line and "nginx_process_cpu" not in line
            and "nginx_process_resident" not in line]


_CONFIG = SimpleNamespace(routes=())


@settings(max_examples=120, deadline=None)
@given(steps=st.lists(_STEP, max_size=150), compat=st.sampled_from(["", "nginx"]))
def test_the_folded_series_are_the_series_counted_at_once(steps, compat):
    clock = Clock()
    clock.advance(1000.0)
    before = metrics_before.Metrics(clock, compat=compat)
    after = Metrics(clock, compat=compat)
    for kind, value in steps:
        if kind == "request":
            for metrics in (before, after):
                metrics.observe(_exchange(*value, clock.seconds()))
        elif kind == "advance":
            clock.advance(value)
        elif kind == "scrape":
            assert _text(after) == _text(before)
        else:
            before.config_changed(_CONFIG)
            after.config_changed(_CONFIG)
    assert _text(after) == _text(before)


def _request(index: int, now: float, status: int = 200):
    return _exchange(1 + index % 3, b"GET", status, 0.02, 0.01, 10, 20, (0, 0), 0, None, "", now)


def _requests_total(metrics) -> float:
    return sum(value for (name, labels, value) in _requests_samples(metrics))


def _requests_samples(metrics):
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "ingressd_requests_total":
                yield sample.name, sample.labels, sample.value


def test_a_read_in_the_middle_of_a_round_sees_every_exchange_finished_before_it():
    clock = Clock()
    metrics = Metrics(clock)
    for count in range(1, 20):
        metrics.observe(_request(count, clock.seconds()))
        # The registry read directly (as prometheus_client's get_sample_value does), then /metrics:
        assert _requests_total(metrics) == count
        assert "ingressd_requests_total{" in metrics.render()[0].decode()
        assert (metrics.registry.get_sample_value(
            "ingressd_request_duration_seconds_count",
            {"namespace": "ns", "ingress": "i0", "service": "s0", "status_class": "2xx"}) or 0) == len(
            [n for n in range(1, count + 1) if n % 3 == 0])


def test_a_flood_is_counted_in_bounded_batches():
    clock = Clock()  # never advanced: only the bound folds
    metrics = Metrics(clock)
    folds = []
    fold = metrics.fold

    def counting_fold():
        folds.append(metrics.waiting)
        fold()

    metrics.fold = counting_fold
    for index in range(10 * metrics_module._HELD + 5):
        metrics.observe(_request(index, clock.seconds()))
        assert metrics.waiting < metrics_module._HELD
    assert folds == [metrics_module._HELD] * 10
    assert len(clock.getDelayedCalls()) == 1  # one timed fold due at a time
    metrics.fold = fold
    assert _requests_total(metrics) == 10 * metrics_module._HELD + 5
    assert metrics.waiting == 0


def test_the_timed_fold_counts_what_is_held_within_its_delay():
    clock = Clock()
    metrics = Metrics(clock)
    metrics.observe(_request(0, clock.seconds()))
    metrics.observe(_request(1, clock.seconds()))
    assert metrics.waiting == 2 and len(clock.getDelayedCalls()) == 1
    clock.advance(metrics_module._HOLD_SECONDS)
    assert metrics.waiting == 0 and clock.getDelayedCalls() == []
    metrics.observe(_request(2, clock.seconds()))
    assert len(clock.getDelayedCalls()) == 1  # due again for the next one
    clock.advance(metrics_module._HOLD_SECONDS)
    assert metrics.waiting == 0
    assert _requests_total(metrics) == 3


def test_the_duration_is_the_clock_at_the_exchanges_end_not_at_the_fold():
    clock = Clock()
    clock.advance(100.0)
    metrics = Metrics(clock)
    metrics.observe(_exchange(1, b"GET", 200, 0.003, None, 0, 0, (0, 0), 0, None, "", clock.seconds()))
    clock.advance(50.0)  # the timed fold runs 50 s later: the exchange still took 3 ms
    labels = {"namespace": "ns", "ingress": "i0", "service": "s0", "status_class": "2xx"}
    assert metrics.registry.get_sample_value("ingressd_request_duration_seconds_bucket", {**labels, "le": "0.005"}) == 1
    assert abs(metrics.registry.get_sample_value("ingressd_request_duration_seconds_sum", labels) - 0.003) < 1e-9


def test_a_configuration_change_counts_what_is_held_first():
    clock = Clock()
    metrics = Metrics(clock)
    metrics.observe(_request(0, clock.seconds()))
    metrics.config_changed(_CONFIG)
    assert metrics.waiting == 0
    assert _requests_total(metrics) == 1


def test_the_stop_counts_what_is_held_and_leaves_no_timer():
    clock = Clock()
    metrics = Metrics(clock)
    service = FoldAtStop(metrics)
    service.startService()
    for index in range(5):
        metrics.observe(_request(index, clock.seconds()))
    service.stopService()
    assert metrics.waiting == 0 and clock.getDelayedCalls() == []
    assert _requests_total(metrics) == 5


REQUEST = b"GET / HTTP/1.1\r\nHost: fold.test\r\nAccept: */*\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"


def test_the_real_server_counts_every_request_by_a_scrape_and_at_its_stop(tmp_path):
    """Through the real request path (keep-alive requests on one connection, in memory): a
    scrape after each request sees it, and requests finished just before the server stops (a
    worker's drain ends so) are counted by the stop."""
    service, reactor = serve_in_memory(tmp_path, one_route_objects("fold.test"), "--access-log", "off",
                                       "--shutdown-delay", "0", "--shutdown-grace", "0")
    client = service.http_factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    client_transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    client.makeConnection(client_transport)
    client.dataReceived(REQUEST)
    host, port, factory, _, _ = reactor.tcpClients[-1]
    upstream = factory.buildProtocol(IPv4Address("TCP", host, port))
    upstream.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", host, port)))
    upstream.dataReceived(RESPONSE)
    metrics = service.metrics

    def answered() -> float:
        return sum(value for _, labels, value in _requests_samples(metrics) if labels["status"] == "200")

    assert answered() == 1
    for count in range(2, 6):
        client.dataReceived(REQUEST)
        upstream.dataReceived(RESPONSE)
        assert service.proxy.noted + metrics.waiting == 1  # held, not counted yet...
        assert answered() == count  # ...and counted by the read
    for _ in range(3):
        client.dataReceived(REQUEST)
        upstream.dataReceived(RESPONSE)
    assert service.proxy.noted + metrics.waiting == 3
    assert client_transport.value().count(b"HTTP/1.1 200 OK") == 8
    client.connectionLost(Failure(ConnectionDone()))  # the client leaves; nothing is left to drain
    stopped = service.stopService()  # drains first (no delay here), then stops
    for _ in range(20):  # the drain's steps are timed calls due now: the 0.1 s fold is not
        if stopped.called:
            break
        reactor.advance(0)
    assert stopped.called
    assert service.proxy.noted == metrics.waiting == 0
    assert answered() == 8


def test_an_odd_exchange_is_logged_and_the_others_are_still_counted():
    from twisted.python import log

    errors = []

    def observer(event):
        if event.get("isError"):
            errors.append(event)

    clock = Clock()
    metrics = Metrics(clock)
    metrics.observe(_request(0, clock.seconds()))
    metrics.observe(SimpleNamespace(entry=9))  # no status, no method: cannot be counted
    metrics.observe(_request(1, clock.seconds()))
    log.addObserver(observer)
    try:
        body = metrics.render()[0].decode()  # the scrape still answers
    finally:
        log.removeObserver(observer)
    assert _requests_total(metrics) == 2
    assert "ingressd_requests_total" in body
    assert len(errors) == 1 and "counting a finished exchange" in str(errors[0].get("why"))
