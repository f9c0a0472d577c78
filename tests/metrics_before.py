"""``ingressd.admin.metrics.Metrics`` counting as it did before the finished exchanges were
held (commit a588a0c): each exchange counted as it is observed, with the clock read then, and
every gateway error's and plugin rejection's child looked up by ``labels()`` each time.

Only that counting changed in the module, so this subclass keeps ``observe`` and
``_gateway_error`` as they were and inherits the rest (series, children, collectors,
exposition): nothing is held, so the current module's folds find nothing to count.
``tests/test_metrics_fold.py``'s differential test feeds the same random requests to this and
to the current ``Metrics`` and compares the exposition text; ``bench/metrics_ab.py`` measures
the two. Not used by ingressd.
"""

from __future__ import annotations

from bisect import bisect_left

from ingressd.admin import metrics


class Metrics(metrics.Metrics):
    """The current ``Metrics`` with the per-request counting of commit a588a0c."""

    def observe(self, exchange) -> None:
        entry = exchange.entry
        series = self._series.get(entry)
        if series is None:
            series = self._series[entry] = self._new_series(exchange.route)
        status = exchange.status
        key = (exchange.method, status)
        children = series.by_status.get(key)
        if children is None:
            children = series.by_status[key] = self._new_children(series, exchange.method, status)
        counter, histogram, nginx = children
        duration = self.clock.seconds() - exchange.started
        counter[0] += 1
        # The two histograms of every request bumped here (_Histogram.observe's two lines):
        # two Python calls fewer per request.
        histogram.counts[bisect_left(histogram.bounds, duration)] += 1
        histogram.sum += duration
        sent = exchange.bytes_sent
        received = exchange.request_bytes
        if status == 101:
            up, down = exchange.tunnel_bytes
            sent += down
            received += up
        series.response_bytes[0] += sent
        series.request_bytes[0] += received
        ended = exchange.upstream_ended
        started = exchange.upstream_started
        upstream = ended - started if ended else -1.0
        if upstream >= 0 and started:
            histogram = series.upstream
            histogram.counts[bisect_left(histogram.bounds, upstream)] += 1
            histogram.sum += upstream
        if exchange.retries:
            series.retries[0] += exchange.retries
        if 502 <= status <= 504:
            self._gateway_error(series, exchange, status)
        if exchange.answered_by and status >= 400:
            self.plugin_rejections.labels(exchange.answered_by, str(status)).inc()
        if nginx is not None:
            nginx[0][0] += 1
            nginx[1].observe(duration)
            if upstream >= 0 and exchange.upstream_started:
                nginx[2].observe(upstream)
            nginx[3].observe(received)
            nginx[4].observe(sent)

    def _gateway_error(self, series, exchange, status: int) -> None:
        cause = exchange.error_cause
        if not cause:
            if exchange.answered_by:
                cause = "plugin"
            elif exchange.upstream_status == status:
                cause = "backend"  # the backend's own answer, passed on
            else:
                cause = "other"
        self.gateway_errors.labels(*series.labels, str(status), cause).inc()
