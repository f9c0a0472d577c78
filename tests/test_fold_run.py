"""``fold_run.count_run`` (C, ``ingressd.admin._fold_run``) and its pure-Python twin
``count_run_py``: the same index and the same cells on every case, fuzzed against each other over
random and odd exchanges (a missing attribute, a non-number, NaN, negative durations, ints where
floats are kept, oversize byte counts), ``Metrics.fold`` with it the same as without it (odd
exchanges logged and skipped exactly as before), the extension leaking nothing."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from ingressd.admin import fold_run as module
from ingressd.admin import metrics as metrics_module
from ingressd.admin.fold_run import count_run_py
from ingressd.admin.metrics import TIME_BUCKETS, Metrics, _Histogram
from memory_growth import traced_growth
from twins import twins

try:
    from ingressd.admin._fold_run import count_run as count_run_c
except ImportError:
    count_run_c = None

IMPLEMENTATIONS = twins(count_run_py, count_run_c)
ENTRY = object()
_MISSING = object()


def test_the_module_picks_the_extension_when_built():
    assert module.ACCELERATED == (count_run_c is not None)
    assert module.count_run is count_run_c
    assert metrics_module._count_run is count_run_c


def exchange(status=200, method=b"GET", started=9.5, sent=100, received=80, ended=9.9, upstream_started=9.6,
             retries=0, answered_by="", entry=ENTRY, **drop):
    fields = dict(entry=entry, status=status, method=method, started=started, bytes_sent=sent,
                  request_bytes=received, upstream_ended=ended, upstream_started=upstream_started,
                  retries=retries, answered_by=answered_by)
    return SimpleNamespace(**{k: v for k, v in fields.items() if v is not _MISSING})


def cells():
    return [0], _Histogram(), [0], [0], _Histogram()


def state(counter, histogram, response_cell, request_cell, upstream):
    """The cells as comparable text (NaN sums compare by repr)."""
    return repr((counter, histogram.counts, histogram.sum, response_cell, request_cell, upstream.counts,
                 upstream.sum))


def run(count, held, start=0, status=200, method=b"GET", entry=ENTRY):
    parts = cells()
    index = count(held, start, entry, method, status, *parts)
    return index, state(*parts)


@pytest.mark.parametrize("count", IMPLEMENTATIONS)
def test_a_run_of_plain_exchanges_is_counted_as_fold_counts_it(count):
    held = [(exchange(), 10.0), (exchange(started=9.0, ended=0.0, upstream_started=0.0), 10.0),
            (exchange(status=404), 10.0), (exchange(), 10.0)]
    counter, histogram, response_cell, request_cell, upstream = cells()
    assert count(held, 0, ENTRY, b"GET", 200, counter, histogram, response_cell, request_cell, upstream) == 2
    assert counter == [2] and response_cell == [200] and request_cell == [160]
    assert histogram.counts[TIME_BUCKETS.index(0.5)] == 1 and histogram.counts[TIME_BUCKETS.index(1.0)] == 1
    assert histogram.sum == 0.5 + 1.0
    assert sum(upstream.counts) == 1 and upstream.sum == pytest.approx(0.3)


@pytest.mark.parametrize("count", IMPLEMENTATIONS)
@pytest.mark.parametrize("odd", [
    dict(status=101), dict(status=502), dict(status=504), dict(retries=1), dict(answered_by="rate_limit", status=429),
    dict(started=9), dict(started="9.0"), dict(sent=1.0), dict(sent=2 ** 63), dict(received=-(2 ** 63) - 1),
    dict(ended=None), dict(upstream_started=0), dict(answered_by=None), dict(retries=False),
    dict(started=_MISSING), dict(answered_by=_MISSING), dict(entry=object()), dict(method=b"POST"),
    dict(method="GET"), dict(status=200.0),
])
def test_an_odd_exchange_ends_the_run_uncounted(count, odd):
    held = [(exchange(), 10.0), (exchange(**odd), 10.0), (exchange(), 10.0)]
    index, _ = run(count, held)
    assert index == 1


@pytest.mark.parametrize("count", IMPLEMENTATIONS)
def test_a_rounds_notes_are_counted_by_their_last_item_the_clock(count):
    """``Proxy.round_observers``' notes, (exchange, wall time, clock), count as (exchange, clock) pairs;
    a tuple of any other size ends the run."""
    exchanges = [exchange(), exchange(started=9.0), exchange(status=404)]
    pairs = run(count, [(one, 10.0) for one in exchanges])
    notes = run(count, [(one, 1_790_000_000.5, 10.0) for one in exchanges])
    assert notes == pairs and pairs[0] == 2
    assert run(count, [(exchanges[0], 10.0), (exchanges[1], 1.0, 2.0, 10.0)])[0] == 1
    assert run(count, [(exchanges[0],)])[0] == 0


@pytest.mark.parametrize("count", IMPLEMENTATIONS)
def test_nan_and_negative_durations_are_counted_as_bisect_counts_them(count):
    held = [(exchange(started=math.nan), 10.0), (exchange(started=11.0, ended=9.0), 10.0)]
    counter, histogram, response_cell, request_cell, upstream = cells()
    assert count(held, 0, ENTRY, b"GET", 200, counter, histogram, response_cell, request_cell, upstream) == 2
    assert histogram.counts[0] == 2 and math.isnan(histogram.sum) and sum(upstream.counts) == 1


@pytest.mark.parametrize("count", IMPLEMENTATIONS)
def test_runs_that_cannot_be_counted_here_count_nothing(count):
    held = [(exchange(status=101), 10.0)]
    assert run(count, held, status=101)[0] == 0
    assert run(count, [(exchange(), 10.0)], status=200.0)[0] == 0
    assert run(count, [(exchange(), 10.0), [exchange(), 10.0]], start=1)[0] == 1
    assert run(count, [(exchange(), 10.0)], start=5)[0] == 5
    shared = _Histogram()
    assert count([(exchange(), 10.0)], 0, ENTRY, b"GET", 200, [0], shared, [0], [0], shared) == 0
    odd = _Histogram((1, 2))
    assert count([(exchange(), 10.0)], 0, ENTRY, b"GET", 200, [0], odd, [0], [0], _Histogram()) == 0
    assert count([(exchange(), 10.0)], 0, ENTRY, b"GET", 200, [0.0], _Histogram(), [0], [0], _Histogram()) == 0
    with pytest.raises(TypeError):
        count((), 0, ENTRY, b"GET", 200, *cells())
    with pytest.raises(TypeError):
        count([], -1, ENTRY, b"GET", 200, *cells())


_ODD_FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5), st.just("1.0"),
                       st.just(None), st.just(_MISSING))
_ODD_INT = st.one_of(st.integers(-(2 ** 64), 2 ** 64), st.integers(0, 10 ** 7), st.floats(0, 10), st.just(_MISSING))
_EXCHANGE = st.builds(
    exchange,
    status=st.one_of(st.sampled_from([200, 200, 200, 101, 404, 429, 502, 503, 504, 0, 999, 2 ** 70]),
                     st.just(200.0), st.just(_MISSING)),
    method=st.one_of(st.sampled_from([b"GET", b"GET", b"POST", b"", "GET"]), st.just(_MISSING)),
    started=st.one_of(st.floats(0, 20), _ODD_FLOAT),
    sent=_ODD_INT, received=_ODD_INT,
    ended=st.one_of(st.just(0.0), st.floats(0, 20), _ODD_FLOAT),
    upstream_started=st.one_of(st.just(0.0), st.floats(0, 20), _ODD_FLOAT),
    retries=st.one_of(st.just(0), st.integers(-1, 3), st.just(False), st.just(_MISSING)),
    answered_by=st.one_of(st.just(""), st.just("rate_limit"), st.just(None), st.just(_MISSING)),
    entry=st.one_of(st.just(ENTRY), st.just(ENTRY), st.just(None)),
)
_CLOCK = st.one_of(st.floats(0, 30), _ODD_FLOAT)
# (exchange, clock) pairs and a round's (exchange, wall time, clock) notes, mixed
_HELD = st.lists(st.one_of(st.tuples(_EXCHANGE, _CLOCK), st.tuples(_EXCHANGE, st.floats(0, 2e9), _CLOCK)),
                 max_size=40)


@pytest.mark.skipif(count_run_c is None, reason="the extension is not built")
@settings(max_examples=400, deadline=None)
@given(held=_HELD, start=st.integers(0, 45), status=st.sampled_from([200, 404, 429, 101, 503, 2 ** 70]),
       method=st.sampled_from([b"GET", b"POST", "GET"]))
def test_c_and_python_agree_on_random_and_odd_exchanges(held, start, status, method):
    assert run(count_run_c, held, start, status, method) == run(count_run_py, held, start, status, method)


_ROUTES = [None, SimpleNamespace(host="h.test", path="/", ingress=SimpleNamespace(namespace="ns", name="i"),
                                 backend=SimpleNamespace(service="s", port=80))]


def _fold_exchange(route, base):
    base.route = _ROUTES[route]
    if hasattr(base, "entry"):
        base.entry = route
    base.tunnel_bytes = (3, 4)
    base.error_cause = ""
    base.upstream_status = 0
    return base


@settings(max_examples=150, deadline=None)
@given(items=st.lists(st.tuples(st.integers(0, 1), _EXCHANGE, st.one_of(st.floats(0, 30), _ODD_FLOAT)),
                      max_size=80))
def test_fold_counts_as_its_own_lines_do_with_or_without_it(items):
    """The exposition after folding the same stream with count_run and with fold's lines alone."""
    texts = []
    for count in (metrics_module._count_run, None):
        original = metrics_module._count_run
        metrics_module._count_run = count
        try:
            clock = Clock()
            metrics = Metrics(clock)
            # pairs as observe holds them, and notes as observe_round does, every other one
            metrics._held = [(_fold_exchange(route, base), now) if index % 2 else
                             (_fold_exchange(route, base), 1_790_000_000.5, now)
                             for index, (route, base, now) in enumerate(items)]
            metrics.fold()
            texts.append([line for line in metrics.render()[0].decode().splitlines() if "_created" not in line])
        finally:
            metrics_module._count_run = original
    assert texts[0] == texts[1]


@pytest.mark.skipif(count_run_c is None, reason="the extension is not built")
def test_the_extension_does_not_leak():
    """A bounded loop over counted runs, odd exchanges and the error paths: the memory held for
    Python objects does not grow with the number of calls."""
    class Raising:
        entry = ENTRY

        @property
        def status(self):
            raise KeyError("status")

    held = [(exchange(), 10.0), (exchange(sent=2 ** 40), 10.0), (exchange(started=math.nan), 10.0),
            (exchange(started=_MISSING), 10.0), (exchange(), 10.0), (Raising(), 10.0), (exchange(), 10.0)]
    parts = cells()

    def rounds(n):
        for _ in range(n):
            for start in range(len(held)):
                count_run_c(held, start, ENTRY, b"GET", 200, *parts)
            count_run_c(held, 0, ENTRY, b"GET", 101, *parts)
            for bad in (((), 0), ([], -1), ([], 2 ** 80)):
                try:
                    count_run_c(*bad, ENTRY, b"GET", 200, *parts)
                except TypeError:
                    pass
            try:
                count_run_c(held)
            except TypeError:
                pass

    grown = traced_growth(rounds)
    assert grown < 64 * 1024, grown


@pytest.mark.parametrize("count", IMPLEMENTATIONS)
def test_a_histogram_list_replaced_during_the_run_is_not_read_freed(count):
    """An attribute read that runs code (a property) may replace the cells' lists: the run
    counts in the lists it started with, as the twin does, and never reads freed memory."""
    counter, histogram, response_cell, request_cell, upstream = cells()
    first = histogram.counts

    class Replacing:
        entry, status, method, bytes_sent, request_bytes = ENTRY, 200, b"GET", 1, 1
        upstream_ended = upstream_started = 0.0
        retries, answered_by = 0, ""

        @property
        def started(self):
            histogram.counts = [0] * (len(TIME_BUCKETS) + 1)
            return 9.5

    held = [(Replacing(), 10.0) for _ in range(3)]
    assert count(held, 0, ENTRY, b"GET", 200, counter, histogram, response_cell, request_cell, upstream) == 3
    assert sum(first) == 3 and sum(histogram.counts) == 0 and counter == [3]
