"""A run of finished exchanges of one route, method and status counted in one call (``Metrics.fold``).

``count_run(held, start, entry, method, status, counter, histogram, response_cell, request_cell,
upstream_histogram)`` counts ``held[start:]`` (``(exchange, clock at its end)`` pairs, or a round's
``(exchange, wall time, clock)`` notes: the clock is the last item) while each
exchange is of the run (``exchange.entry is entry``, its method and status those given) and
plain, and returns the index of the first one it did not count (``start`` when none). For
each exchange counted it does exactly what ``Metrics.fold``'s own lines do: the request
counter, the duration histogram (``bisect_left`` over its bounds and its sum), the response
and request byte cells and the upstream histogram when the backend was asked.

Plain means the lines every keep-alive request takes and nothing else: the status an ``int``
other than 101 and 502-504, the method ``bytes``, the clock readings (``now``, ``started``,
``upstream_started``, ``upstream_ended``) ``float``, the byte counts ``int`` within 64 bits
(and their run's totals too), ``retries`` 0, ``answered_by`` a ``str`` that is empty or with a
status below 400. Anything else (a missing attribute, another type, NaN is a float and is
plain) stops the run there: ``fold``'s own lines count that exchange (or log and skip it) as
they always did. The cells must be what ``Metrics`` builds (lists with an ``int`` first,
histograms with a tuple of floats, a list of ints one longer, a float sum, at most 31 bounds):
otherwise nothing is counted.

The C accelerator ``ingressd.admin._fold_run`` (``_fold_run.c``) is the same function;
``count_run_py`` below is its pure-Python twin, the reference the tests fuzz it against. When
the extension was not built (PyPy, no compiler, ``INGRESSD_NO_ACCEL=1``) ``count_run`` is
None and ``fold`` counts each exchange with its own lines, as it did before.
"""

from __future__ import annotations

from bisect import bisect_left

_MAX_BOUNDS = 31
_LOW, _HIGH = -(2 ** 63), 2 ** 63  # the C twin's long long


def _cell_ok(cell) -> bool:
    return type(cell) is list and len(cell) >= 1 and type(cell[0]) is int


def _histogram_ok(histogram) -> bool:
    bounds, counts = histogram.bounds, histogram.counts
    return (type(bounds) is tuple and len(bounds) <= _MAX_BOUNDS and all(type(b) is float for b in bounds)
            and type(counts) is list and len(counts) == len(bounds) + 1 and all(type(c) is int for c in counts)
            and type(histogram.sum) is float)


def count_run_py(held, start, entry, method, status, counter, histogram, response_cell, request_cell,
                 upstream_histogram) -> int:
    """The pure-Python twin of the C ``count_run`` (same arguments, same results)."""
    if type(held) is not list or type(start) is not int or not 0 <= start < _HIGH:
        raise TypeError("count_run: held must be a list and start an int >= 0")
    if (type(status) is not int or type(method) is not bytes or not _LOW <= status < _HIGH
            or status == 101 or 502 <= status <= 504
            or not (_cell_ok(counter) and _cell_ok(response_cell) and _cell_ok(request_cell))
            or histogram is upstream_histogram or not _histogram_ok(histogram)
            or not _histogram_ok(upstream_histogram) or histogram.counts is upstream_histogram.counts):
        return start
    counts, bounds = histogram.counts, histogram.bounds
    up_counts, up_bounds = upstream_histogram.counts, upstream_histogram.bounds
    total, up_total = histogram.sum, upstream_histogram.sum
    runs = sent_total = received_total = 0
    index = start
    while index < len(held):
        item = held[index]
        if type(item) is not tuple or not 2 <= len(item) <= 3:
            break
        exchange, now = item[0], item[-1]  # (exchange, clock) or a round's (exchange, wall time, clock)
        try:
            if exchange.entry is not entry:
                break
            this_status = exchange.status
            if type(this_status) is not int or this_status != status:
                break
            this_method = exchange.method
            if type(this_method) is not bytes or this_method != method:
                break
            started = exchange.started
            sent = exchange.bytes_sent
            received = exchange.request_bytes
            ended = exchange.upstream_ended
            upstream_started = exchange.upstream_started
            retries = exchange.retries
            answered = exchange.answered_by
        except Exception:
            break
        if (type(now) is not float or type(started) is not float or type(ended) is not float
                or type(upstream_started) is not float or type(sent) is not int or type(received) is not int
                or type(retries) is not int or retries != 0 or type(answered) is not str
                or (answered and status >= 400)):
            break
        if not (_LOW <= sent < _HIGH and _LOW <= received < _HIGH and _LOW <= sent_total + sent < _HIGH
                and _LOW <= received_total + received < _HIGH):
            break
        duration = now - started
        counts[bisect_left(bounds, duration)] += 1
        total += duration
        sent_total += sent
        received_total += received
        upstream = ended - upstream_started if ended else -1.0
        if upstream >= 0 and upstream_started:
            up_counts[bisect_left(up_bounds, upstream)] += 1
            up_total += upstream
        runs += 1
        index += 1
    if runs:
        counter[0] += runs
        histogram.sum = total
        upstream_histogram.sum = up_total
        response_cell[0] += sent_total
        request_cell[0] += received_total
    return index


try:
    from ingressd.admin._fold_run import count_run
except ImportError:  # not built: PyPy, no compiler, INGRESSD_NO_ACCEL=1
    count_run = None

ACCELERATED = count_run is not None
