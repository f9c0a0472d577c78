"""Prometheus metrics: finished exchanges noted once a round; everything else read at scrape.

``Metrics.observe_round`` (a ``Proxy.round_observers`` callable: the server's) notes a round's
finished exchanges and the clock at each one's end, ``Metrics.observe`` (``Proxy.observers``) one;
``Metrics.fold`` counts the exchanges noted together: when 64 are held, 0.1 s after the first
(a timer), and before anything reads the series (any read of the registry, ``render``, a
configuration change, the service's stop), so that every read sees every exchange finished
before it, with the values it would have had counted at once. Counting them in a row costs
about a third of counting each between two requests, where the request path's own code and
data have pushed the counting's out of the CPU caches (``bench/metrics_ab.py``: 2.3-2.6 µs of
CPU per request before, 1.1-1.4 after, in memory). An exchange is finished when it is
observed: nothing it reports changes afterwards (the access log relies on that too).

Counting finds the route entry's prepared label children in a dict (built on the route's
first request, dropped when the configuration changes) and increments them: no ``labels()``
call, no string formatting. A run of plain exchanges of one route, method and status is
counted in one call of the C accelerator ``fold_run.count_run`` when it was built (fold's own
lines count the rest, and everything without it). Gauges and counters kept elsewhere (pool,
reloader, TLS listener, certificates, access log) are read by a collector only when
``/metrics`` is scraped.

Labels stay bounded: namespace/ingress/service/host/path come from the configuration,
never from the request; methods outside the standard set are ``OTHER``; rejection reasons
and plugin names are short fixed words.

``--metrics-compat nginx`` adds ingress-nginx's names and labels next to ours (see
docs/observability.md).

The seam for the Kubernetes provider is ``Metrics.kube`` (a ``KubeMetrics``): it calls
``watch_restarted(resource)``, ``relisted(resource)`` (after a 410 Gone),
``api_error(resource, status)`` and ``set_leader(bool)``.
"""

from __future__ import annotations

import hashlib
import os
import resource
import socket
from bisect import bisect_left
from itertools import islice
from typing import Any, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.application.service import Service
from twisted.python import log

from ingressd.admin.fold_run import count_run as _count_run

TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# ingress-nginx's defaults: LinearBuckets(10, 10, 10) for request/response sizes.
NGINX_LENGTH_BUCKETS = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)
NGINX_TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_HELD = 64  # finished exchanges held at most: then they are counted together (bench/metrics_ab.py)
_HOLD_SECONDS = 0.1  # an exchange is counted at most this long after it finished (unless read first)
_UNSEEN = object()  # fold's "no last route entry": its cells are looked up for the next exchange
_METHODS = {m: m.decode("ascii") for m in
            (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"CONNECT", b"TRACE")}
_CLASSES = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")
_RESOURCES = frozenset(("Ingress", "IngressClass", "Service", "EndpointSlice", "Endpoints", "Secret",
                        "ConfigMap", "Lease"))
_NGINX_CONST = ("controller_namespace", "controller_class", "controller_pod")
_NGINX_REQUEST = ("status", "method", "path", "namespace", "ingress", "service", "canary", "host")


def problem_category(item) -> str:
    """``rejection_category`` of a Rejection; ``unsupported`` when it is about annotations
    ingressd does not honour (``ingressd.compat.assess``)."""
    return "unsupported" if item.annotations else rejection_category(item.reason)


def rejection_category(reason: str) -> str:
    """A short fixed word for a rejection or warning message (the ``reason`` label)."""
    text = reason.lower()
    if text.startswith("annotation "):
        return "annotation"
    if "a plugin failed" in text:
        return "plugin"
    if "is not served by ingressd" in text:  # e.g. a backend protocol it does not speak yet
        return "unsupported"
    if text.startswith("canary ingress"):  # a canary without its main Ingress
        return "canary"
    if "secret" in text or "certificate" in text or "tls" in text:
        return "tls"
    if "already served" in text or "conflict" in text:
        return "conflict"
    if "service" in text or "backend" in text or "port" in text:
        return "backend"
    if ".path" in text or "pathtype" in text:
        return "path"
    if "host" in text:
        return "host"
    return "invalid"


def _status_class(status: int) -> str:
    return _CLASSES[status // 100] if 0 <= status < 600 else "other"


class _RouteSeries:
    """The label children of one route entry, resolved once."""

    __slots__ = ("labels", "nginx_labels", "by_status", "response_bytes", "request_bytes", "upstream",
                 "retries", "duration", "gateway_errors")

    def __init__(self, labels: tuple[str, str, str], nginx_labels: dict | None):
        self.labels = labels
        self.nginx_labels = nginx_labels
        self.by_status: dict[tuple[bytes, int], tuple] = {}
        self.duration: list = [None] * 7
        self.gateway_errors: dict[tuple[int, str], Any] = {}  # (status, cause) → the Counter's child


class KubeMetrics:
    """What the Kubernetes provider reports; each method is one counter or gauge update."""

    def __init__(self, registry: CollectorRegistry, election_id: str = "", nginx: "_NginxCompat | None" = None):
        self._restarts = Counter("ingressd_kube_watch_restarts", "Watches restarted (after a timeout, "
                                 "a closed stream or an error)", ["resource"], registry=registry)
        self._relists = Counter("ingressd_kube_relists", "Full re-lists after the API answered 410 Gone",
                                ["resource"], registry=registry)
        self._errors = Counter("ingressd_kube_api_errors", "Kubernetes API requests that failed",
                               ["resource", "code"], registry=registry)
        self._leader = Gauge("ingressd_kube_leader", "1 while this replica holds the leader Lease",
                             registry=registry)
        self._election_id = election_id
        self._nginx = nginx

    def watch_restarted(self, resource: str) -> None:
        self._restarts.labels(_resource(resource)).inc()

    def relisted(self, resource: str) -> None:
        self._relists.labels(_resource(resource)).inc()

    def api_error(self, resource: str, status: int | str = 0) -> None:
        """``status``: the HTTP status, or 0 when no answer came (connection failed)."""
        code = str(status) if str(status).isdigit() and len(str(status)) == 3 else "none"
        self._errors.labels(_resource(resource), code).inc()

    def set_leader(self, leading: bool) -> None:
        self._leader.set(1 if leading else 0)
        if self._nginx is not None:
            self._nginx.leader = (self._election_id, 1 if leading else 0)


def _resource(name: str) -> str:
    return name if name in _RESOURCES else "other"


class _NginxCompat:
    """ingress-nginx's metric names and labels (``--metrics-compat nginx``)."""

    def __init__(self, registry: CollectorRegistry, controller_class: str):
        const = (os.environ.get("POD_NAMESPACE", ""), controller_class,
                 os.environ.get("POD_NAME", "") or socket.gethostname())
        self.const = dict(zip(_NGINX_CONST, const))
        # The four histograms are plain cells like ours (no lock per observation: the reactor
        # thread is their only writer), made into families at scrape time (_NginxHistograms).
        self.duration: dict[tuple, _Histogram] = {}
        self.response_duration: dict[tuple, _Histogram] = {}
        self.request_size: dict[tuple, _Histogram] = {}
        self.response_size: dict[tuple, _Histogram] = {}
        registry.register(_NginxHistograms(self))
        # Go counters without the _total suffix, which prometheus-client would add: rendered by hand.
        self.requests: dict[tuple, list] = {}
        self.leader: tuple[str, int] | None = None
        self.config_hash = 0.0  # of the configuration served now (config_changed)

    def config_changed(self, config) -> None:
        """``config_hash``: a digest of what is served (hosts, paths, backends and endpoints), as
        ingress-nginx's hash of its rendered nginx.conf changes exactly when the configuration does."""
        digest = hashlib.sha256()
        for route in sorted(config.routes, key=lambda route: (route.host, route.path)):
            backend = route.backend
            endpoints = sorted(f"{endpoint.address}:{endpoint.port}" for endpoint in backend.endpoints)
            digest.update(repr((route.host, route.path, route.ingress.namespace, route.ingress.name,
                                backend.service, backend.port, endpoints)).encode("utf-8"))
        self.config_hash = float(int.from_bytes(digest.digest()[:8], "big"))

    def children(self, labels: dict, method: str, status: int) -> tuple:
        values = (*self.const.values(), str(status), method, labels["path"], labels["namespace"],
                  labels["ingress"], labels["service"], "", labels["host"])
        cell = self.requests.setdefault(values, [0])
        return (cell, _cell(self.duration, values, NGINX_TIME_BUCKETS),
                _cell(self.response_duration, values, NGINX_TIME_BUCKETS),
                _cell(self.request_size, values, NGINX_LENGTH_BUCKETS),
                _cell(self.response_size, values, NGINX_LENGTH_BUCKETS))

    def render(self, sources: dict, controller_class: str) -> bytes:
        """The Go-named counters and config gauges as Prometheus text."""
        reloader, certificates = sources.get("reloader"), sources.get("certificates")
        prefix = "nginx_ingress_controller_"
        const = self.const
        out: list[str] = []

        def family(name: str, kind: str, doc: str, samples: Iterable[tuple[dict, float]]) -> None:
            out.append(f"# HELP {prefix}{name} {doc}\n# TYPE {prefix}{name} {kind}\n")
            for labels, value in samples:
                text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                out.append(f"{prefix}{name}{{{text}}} {float(value)!r}\n")

        names = _NGINX_CONST + _NGINX_REQUEST
        family("requests", "counter", "The total number of client requests",
               [(dict(zip(names, values)), cell[0]) for values, cell in sorted(self.requests.items())])
        family("config_hash", "gauge", "Running configuration hash actually running", [(const, self.config_hash)])
        _process_families(family, const, sources, sum(cell[0] for cell in self.requests.values()))
        if reloader is not None:
            family("success", "counter", "Cumulative number of Ingress controller reload operations",
                   [(const, reloader.rebuilds)])
            family("errors", "counter", "Cumulative number of Ingress controller errors during reload operations",
                   [(const, reloader.failures)])
            ok = 1 if reloader.last_success and reloader.last_success >= reloader.last_failure else 0
            family("config_last_reload_successful", "gauge",
                   "Whether the last configuration reload attempt was successful", [(const, ok)])
            family("config_last_reload_successful_timestamp_seconds", "gauge",
                   "Timestamp of the last successful configuration reload.", [(const, int(reloader.last_success))])
        if certificates is not None:
            namespace = const["controller_namespace"]
            samples = [({"class": controller_class, "host": host, "namespace": namespace}, expiry.timestamp())
                       for (source, host), expiry in sorted(certificates.expiries().items()) if host]
            family("ssl_expire_time_seconds", "gauge", "Number of seconds since 1970 to the SSL Certificate "
                   "expire.", samples)
        admission = sources.get("admission")
        if admission is not None:  # ingress-nginx's AdmissionCollector: the last review's figures
            figures = admission.figures() if admission.figures is not None else None
            objects, build, judge, size = ((figures.objects, figures.build_seconds, figures.judge_seconds,
                                            figures.size) if figures is not None else (0, 0.0, 0.0, 0))
            family("admission_tested_ingresses", "gauge", "The length of ingresses processed by the admission "
                   "controller", [(const, objects)])
            family("admission_tested_duration", "gauge", "The processing duration of the admission controller "
                   "tests (float seconds)", [(const, judge)])
            family("admission_render_ingresses", "gauge", "The length of ingresses rendered by the admission "
                   "controller", [(const, objects)])
            family("admission_render_duration", "gauge", "The processing duration of ingresses rendering by the "
                   "admission controller (float seconds)", [(const, build)])
            family("admission_config_size", "gauge", "The size of the tested configuration", [(const, size)])
            family("admission_roundtrip_duration", "gauge", "The complete duration of the admission controller at "
                   "the time to process a new event (float seconds)", [(const, admission.last_roundtrip)])
        if self.leader is not None:
            family("leader_election_status", "gauge", "Gauge reporting status of the leader election, "
                   "0 indicates follower, 1 indicates leader.", [({**const, "name": self.leader[0]}, self.leader[1])])
        return "".join(out).encode("utf-8")


def _process_families(family, const: dict, sources: dict, requests: int) -> None:
    """ingress-nginx's ``nginx_process_*`` (its nginx's stub_status and process figures): this
    process's. ``reading`` is not tracked (a connection reading a request head counts as
    ``waiting``); ``writing`` is requests begun and not finished, as nginx counts them."""
    active = accepted = 0
    for listener in ("http", "https"):
        factory = sources.get(listener)
        if factory is not None:
            active += factory.connections
            accepted += factory.accepted
    proxy = sources.get("proxy")
    writing = getattr(proxy, "exchanges_open", 0) if proxy is not None else 0
    family("nginx_process_connections", "gauge", "current number of client connections with state {active, "
           "reading, writing, waiting}", [({**const, "state": "active"}, active), ({**const, "state": "reading"}, 0),
                                          ({**const, "state": "writing"}, writing),
                                          ({**const, "state": "waiting"}, max(0, active - writing))])
    family("nginx_process_connections_total", "counter", "total number of connections with state {accepted, "
           "handled}", [({**const, "state": "accepted"}, accepted), ({**const, "state": "handled"}, accepted)])
    family("nginx_process_requests_total", "counter", "total number of client requests", [(const, requests)])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    family("nginx_process_num_procs", "gauge", "number of processes", [(const, 1)])
    family("nginx_process_cpu_seconds_total", "counter", "Cpu usage in seconds",
           [(const, usage.ru_utime + usage.ru_stime)])
    family("nginx_process_resident_memory_bytes", "gauge", "number of bytes of memory in use",
           [(const, _resident_bytes(usage))])


def _cell(cells: dict, values: tuple, bounds: tuple) -> "_Histogram":
    cell = cells.get(values)
    if cell is None:
        cell = cells[values] = _Histogram(bounds)
    return cell


class _NginxHistograms:
    """ingress-nginx's four request histograms, from ``_NginxCompat``'s cells, at scrape time."""

    _PREFIX = "nginx_ingress_controller_"
    _FAMILIES = (
        ("duration", "request_duration_seconds", "The request processing time in seconds", NGINX_TIME_BUCKETS),
        ("response_duration", "response_duration_seconds",
         "The time spent on receiving the response from the upstream server", NGINX_TIME_BUCKETS),
        ("request_size", "request_size", "The request length (including request line, header, and request body)",
         NGINX_LENGTH_BUCKETS),
        ("response_size", "response_size", "The response length (including request line, header, and request "
         "body)", NGINX_LENGTH_BUCKETS),
    )

    def __init__(self, compat: "_NginxCompat"):
        self.compat = compat

    def collect(self):
        labels = list(_NGINX_CONST + _NGINX_REQUEST)
        for attribute, name, doc, bounds in self._FAMILIES:
            yield _histogram_family(self._PREFIX + name, doc, labels, getattr(self.compat, attribute), bounds)


def _resident_bytes(usage) -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return usage.ru_maxrss * 1024  # the peak, where /proc is not there (Linux's unit: KiB)


class _Histogram:
    """Bucket counts and a sum, updated in place (``TIME_BUCKETS`` bounds unless told): a value
    counts in the first bucket whose bound is not below it, as Prometheus's ``le``."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = TIME_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


def _histogram_family(name: str, doc: str, labels: list, cells: dict,
                      bounds: tuple[float, ...] = TIME_BUCKETS) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, histogram in sorted(cells.items()):
        cumulative, buckets = 0, []
        for bound, count in zip((*bounds, float("inf")), histogram.counts):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        family.add_metric(list(values), buckets, histogram.sum)
    return family


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """The registry and the per-request observer; ``attach`` names what is read at scrape time."""

    def __init__(self, clock: Any, compat: str = "", controller_class: str = "ingressd",
                 election_id: str = ""):
        self.clock = clock
        self.controller_class = controller_class
        self.registry = registry = CollectorRegistry(auto_describe=False)
        # First of the registry's collectors, so that any read of it (render, a test's
        # get_sample_value) sees every exchange finished before it.
        registry.register(_Fold(self))
        # The per-request instruments are plain Python cells (no lock per update; the
        # reactor thread is their only writer), turned into families at scrape time.
        self._requests: dict[tuple, list] = {}
        self._durations: dict[tuple, _Histogram] = {}
        self._upstream: dict[tuple, _Histogram] = {}
        self._request_bytes: dict[tuple, list] = {}
        self._response_bytes: dict[tuple, list] = {}
        self._retries: dict[tuple, list] = {}
        route = ("namespace", "ingress", "service")
        self.gateway_errors = Counter("ingressd_gateway_errors", "502, 503 and 504 answers by cause",
                                      [*route, "status", "cause"], registry=registry)
        self.plugin_rejections = Counter("ingressd_plugin_rejections", "Requests a plugin answered with an "
                                         "error (rate_limit, basic_auth, allowlist…)", ["plugin", "status"],
                                         registry=registry)
        # (plugin, status) → the Counter's child: a flood of 429s does not call labels() per request
        self._rejections: dict[tuple[str, int], Any] = {}
        self.nginx = _NginxCompat(registry, controller_class) if compat == "nginx" else None
        self.kube = KubeMetrics(registry, election_id, self.nginx)
        self._series: dict = {}
        self._seconds = clock.seconds
        # None (a clock without timers): the exchanges counted at the bound or a read.
        self._call_later = getattr(clock, "callLater", None)
        # the reactor thread's: (exchange, clock at its end), or a round's (exchange, wall time, clock), to count
        self._held: list[tuple] = []
        self._fold_call = None  # the timed fold, while one is due
        # The proxy's ``end_round`` when this observes its rounds (``observe_round``): a read of the
        # series hands the round's exchanges so far over first, so it sees every one finished before it.
        self.hand_over = None
        self._scrape = _ScrapeCollector(self)
        registry.register(self._scrape)

    def attach(self, **sources: Any) -> None:
        """What the scrape-time collector reads: proxy, pool, reloader, state, certificates,
        http (HTTP1Factory), https (ObservedTLSFactory), access_log, passthrough (PassthroughRouter)."""
        self._scrape.sources.update(sources)

    def config_changed(self, config) -> None:
        """A reloader listener: entries of the old table are no longer looked up."""
        self.fold()  # the held exchanges' entries counted in the series they were built for
        self._series = {}
        if self.nginx is not None:
            self.nginx.config_changed(config)

    # -- the request path ---------------------------------------------------------------

    def observe(self, exchange) -> None:
        """``Proxy.observers``: the finished exchange and the clock at its end noted, as a round of
        one (``observe_round``)."""
        self.observe_round(((exchange, self._seconds()),))

    def observe_round(self, batch) -> None:
        """``Proxy.round_observers``: a round's finished exchanges (``interfaces.FinishedNote``),
        each with the clock at its end (its last item), noted; counted (``fold``) at most
        ``_HOLD_SECONDS`` later, at the bound, or before the series are read."""
        held = self._held
        held.extend(batch)  # (exchange, wall time, clock): fold and count_run read the clock last
        if len(held) >= _HELD:
            self.fold()  # (its hand-over finds the proxy's round already handed over: this batch)
        elif self._fold_call is None and self._call_later is not None:
            self._fold_call = self._call_later(_HOLD_SECONDS, self._fold_later)

    @property
    def waiting(self) -> int:
        """Exchanges observed and not counted yet (fewer than ``_HELD``)."""
        return len(self._held)

    def stop(self) -> None:
        """Count what is held and cancel the timed fold (the server stops)."""
        call, self._fold_call = self._fold_call, None
        if call is not None and call.active():
            call.cancel()
        self.fold()

    def _fold_later(self) -> None:
        self._fold_call = None
        self.fold()

    def fold(self) -> None:
        """Count the exchanges held (see the module's docstring): ``_HOLD_SECONDS`` after the
        first, at the bound, and before anything reads the series (a scrape, a configuration
        change, a stop); the proxy's round so far handed over first (``hand_over``)."""
        if self.hand_over is not None:
            self.hand_over()
        held = self._held
        if not held:
            return
        self._held = []
        series_of = self._series
        search = bisect_left
        nginx_on = self.nginx is not None
        rejections_of = self._rejections
        # A round's exchanges are mostly of one route, method and status: the last one's series,
        # children and the cells they count in are taken again without a look-up (locals: no
        # attribute read for them per exchange).
        last_entry = _UNSEEN
        last_method = last_status = series = None
        # With the C accelerator, a run of plain exchanges of one route, method and status is
        # counted in one call (fold_run.count_run); the lines below count the others.
        count_run = _count_run if not nginx_on else None
        items = enumerate(held, 1)  # (the index of the next exchange, the exchange and its end)
        for index, note in items:
            exchange, now = note[0], note[-1]  # (exchange, clock), or a round's (exchange, wall time, clock)
            try:
                entry = exchange.entry
                status = exchange.status
                method = exchange.method
                if entry is not last_entry or status != last_status or method != last_method:
                    last_entry = _UNSEEN  # (until the look-ups below have succeeded)
                    series = series_of.get(entry)
                    if series is None:
                        series = series_of[entry] = self._new_series(exchange.route)
                    children = series.by_status.get((method, status))
                    if children is None:
                        children = series.by_status[(method, status)] = self._new_children(series, method, status)
                    counter, histogram, nginx = children
                    counts, bounds = histogram.counts, histogram.bounds
                    response_cell, request_cell = series.response_bytes, series.request_bytes
                    upstream_histogram = series.upstream
                    upstream_counts, upstream_bounds = upstream_histogram.counts, upstream_histogram.bounds
                    last_entry, last_method, last_status = entry, method, status
                if count_run is not None:
                    counted = count_run(held, index - 1, entry, method, status, counter, histogram,
                                        response_cell, request_cell, upstream_histogram)
                    if counted >= index:
                        if counted > index:  # the run's other exchanges are counted too: passed over
                            next(islice(items, counted - index - 1, None), None)
                        continue
                duration = now - exchange.started
                counter[0] += 1
                # The two histograms of every request bumped here (_Histogram.observe's two lines):
                # two Python calls fewer per request.
                counts[search(bounds, duration)] += 1
                histogram.sum += duration
                sent = exchange.bytes_sent
                received = exchange.request_bytes
                if status == 101:
                    up, down = exchange.tunnel_bytes
                    sent += down
                    received += up
                response_cell[0] += sent
                request_cell[0] += received
                ended = exchange.upstream_ended
                started = exchange.upstream_started
                upstream = ended - started if ended else -1.0
                if upstream >= 0 and started:
                    upstream_counts[search(upstream_bounds, upstream)] += 1
                    upstream_histogram.sum += upstream
                if exchange.retries:
                    series.retries[0] += exchange.retries
                if 502 <= status <= 504:
                    self._gateway_error(series, exchange, status)
                if exchange.answered_by and status >= 400:
                    key = (exchange.answered_by, status)
                    rejections = rejections_of.get(key)
                    if rejections is None:
                        rejections = rejections_of[key] = self.plugin_rejections.labels(key[0], str(status))
                    rejections.inc()
                if nginx_on:  # ingress-nginx's four histograms, _Histogram.observe's lines in place
                    requests, nginx_duration, response, request_size, response_size = nginx
                    requests[0] += 1
                    nginx_duration.counts[search(nginx_duration.bounds, duration)] += 1
                    nginx_duration.sum += duration
                    if upstream >= 0 and started:
                        response.counts[search(response.bounds, upstream)] += 1
                        response.sum += upstream
                    request_size.counts[search(request_size.bounds, received)] += 1
                    request_size.sum += received
                    response_size.counts[search(response_size.bounds, sent)] += 1
                    response_size.sum += sent
            except Exception:  # one odd exchange must not stop the others' counting, nor a scrape
                log.err(None, "ingressd: counting a finished exchange for the metrics failed")
                last_entry = _UNSEEN

    def _new_series(self, route) -> _RouteSeries:
        if route is None:
            labels = ("", "", "")
            nginx_labels = {"namespace": "", "ingress": "", "service": "", "host": "", "path": ""}
        else:
            labels = (route.ingress.namespace, route.ingress.name, route.backend.service)
            nginx_labels = {"namespace": labels[0], "ingress": labels[1], "service": labels[2],
                            "host": route.host, "path": route.path}
        series = _RouteSeries(labels, nginx_labels if self.nginx is not None else None)
        series.response_bytes = self._response_bytes.setdefault(labels, [0])
        series.request_bytes = self._request_bytes.setdefault(labels, [0])
        series.upstream = self._upstream.get(labels) or self._upstream.setdefault(labels, _Histogram())
        series.retries = self._retries.setdefault(labels, [0])
        return series

    def _new_children(self, series: _RouteSeries, method_bytes: bytes, status: int) -> tuple:
        method = _METHODS.get(method_bytes, "OTHER")
        status_class = _status_class(status)
        counter = self._requests.setdefault((*series.labels, method, str(status), status_class), [0])
        index = status // 100 if 0 <= status < 600 else 6
        duration = series.duration[index]
        if duration is None:
            key = (*series.labels, status_class)
            duration = series.duration[index] = self._durations.get(key) or self._durations.setdefault(
                key, _Histogram())
        nginx = self.nginx.children(series.nginx_labels, method, status) if self.nginx is not None else None
        return (counter, duration, nginx)

    def _request_families(self):
        """The per-request instruments as Prometheus families (at scrape time)."""
        route = ["namespace", "ingress", "service"]
        requests = CounterMetricFamily("ingressd_requests", "Requests answered, by route, method and status",
                                       labels=[*route, "method", "status", "status_class"])
        for labels, cell in sorted(self._requests.items()):
            requests.add_metric(list(labels), cell[0])
        yield requests
        yield _histogram_family("ingressd_request_duration_seconds", "Time from the request head to the end "
                                "of the response", [*route, "status_class"], self._durations)
        yield _histogram_family("ingressd_upstream_response_seconds", "Time from asking the backend to the end "
                                "of its response", route, self._upstream)
        for name, doc, cells in (
            ("ingressd_request_bytes", "Request bytes received (head and body)", self._request_bytes),
            ("ingressd_response_bytes", "Response body bytes sent (and WebSocket bytes to the client)",
             self._response_bytes),
            ("ingressd_upstream_retries", "Requests sent again to another endpoint", self._retries),
        ):
            family = CounterMetricFamily(name, doc, labels=route)
            for labels, cell in sorted(cells.items()):
                family.add_metric(list(labels), cell[0])
            yield family

    def _gateway_error(self, series: _RouteSeries, exchange, status: int) -> None:
        cause = exchange.error_cause
        if not cause:
            if exchange.answered_by:
                cause = "plugin"
            elif exchange.upstream_status == status:
                cause = "backend"  # the backend's own answer, passed on
            else:
                cause = "other"
        child = series.gateway_errors.get((status, cause))
        if child is None:  # the Counter's child looked up once per route, status and cause
            child = series.gateway_errors[(status, cause)] = self.gateway_errors.labels(
                *series.labels, str(status), cause)
        child.inc()

    # -- exposition ---------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        self.fold()
        text = generate_latest(self.registry)
        if self.nginx is not None:
            sources = self._scrape.sources
            text += self.nginx.render(sources, self.controller_class)
        return text, CONTENT_TYPE_LATEST


class FoldAtStop(Service):
    """Counts the exchanges still held when the server stops (a worker's drain ends with it)
    and cancels the timed fold."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def stopService(self):
        self.metrics.stop()
        return super().stopService()


class _Fold:
    """A collector with no families: it counts the held exchanges (``Metrics.fold``) when the
    registry is read."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self):
        self.metrics.fold()
        return iter(())


class _ScrapeCollector:
    """Values owned by other parts of ingressd, read when ``/metrics`` is scraped."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics
        self.sources: dict[str, Any] = {}

    def collect(self):
        yield from self.metrics._request_families()
        get = self.sources.get
        clock = self.metrics.clock
        connections = GaugeMetricFamily("ingressd_client_connections", "Client connections open now",
                                        labels=["listener"])
        accepted = CounterMetricFamily("ingressd_client_connections_accepted", "Client connections accepted",
                                       labels=["listener"])
        for listener in ("http", "https"):
            factory = get(listener)
            if factory is not None:
                connections.add_metric([listener], factory.connections)
                accepted.add_metric([listener], factory.accepted)
        yield connections
        yield accepted
        limit = get("connection_limit")
        if limit is not None:  # max-worker-connections
            yield CounterMetricFamily("ingressd_client_connections_refused", "Client connections closed as they "
                                      "were accepted: max-worker-connections were open", value=limit.refused)
        proxy = get("proxy")
        if proxy is not None:
            yield GaugeMetricFamily("ingressd_websocket_tunnels", "WebSocket tunnels open now",
                                    value=proxy.tunnels_open)
        passthrough = get("passthrough")
        if passthrough is not None:
            yield GaugeMetricFamily("ingressd_tls_passthrough_connections", "TLS connections passed through "
                                    "(ssl-passthrough) open now", value=passthrough.open_connections())
            yield CounterMetricFamily("ingressd_tls_passthrough_connections_accepted", "TLS connections passed "
                                      "through (ssl-passthrough)", value=passthrough.accepted)
            yield CounterMetricFamily("ingressd_tls_passthrough_connections_failed", "Passthrough connections "
                                      "closed without reaching an endpoint", value=passthrough.failed)
        l4 = get("l4")
        if l4 is not None:
            yield from _l4_families(l4)
        pool = get("pool")
        if pool is not None:
            yield GaugeMetricFamily("ingressd_upstream_connections_idle", "Idle keep-alive backend "
                                    "connections in the pool", value=pool.idle_count())
            yield CounterMetricFamily("ingressd_upstream_connections_opened", "Backend connections opened",
                                      value=pool.opened)
            yield CounterMetricFamily("ingressd_upstream_connections_reused", "Requests sent on a pooled "
                                      "backend connection", value=pool.reused)
        https = get("https")
        if https is not None:
            handshakes = CounterMetricFamily("ingressd_tls_handshakes", "Completed TLS handshakes",
                                             labels=["version"])
            for version, count in sorted(https.handshakes.items()):
                handshakes.add_metric([version], count)
            yield handshakes
            yield CounterMetricFamily("ingressd_tls_handshake_failures", "TLS connections closed before "
                                      "their handshake completed", value=https.handshake_failures)
        certificates = get("certificates")
        if certificates is not None:
            now = clock.seconds()
            expiry = GaugeMetricFamily("ingressd_tls_certificate_expiry_seconds", "Seconds until a served "
                                       "certificate expires (negative: expired)", labels=["secret", "host"])
            for (source, host), not_after in sorted(certificates.expiries().items()):
                expiry.add_metric([source, host], not_after.timestamp() - now)
            yield expiry
        reloader = get("reloader")
        if reloader is not None:
            yield CounterMetricFamily("ingressd_config_rebuilds", "Configurations built and swapped in",
                                      value=reloader.rebuilds)
            yield CounterMetricFamily("ingressd_config_rebuild_failures", "Configuration rebuilds that "
                                      "failed (the last good one kept serving)", value=reloader.failures)
            yield GaugeMetricFamily("ingressd_config_last_success_timestamp_seconds", "When the last "
                                    "configuration was swapped in (Unix time; 0: never)",
                                    value=reloader.last_success)
            ok = 1 if reloader.last_success and reloader.last_success >= reloader.last_failure else 0
            yield GaugeMetricFamily("ingressd_config_last_rebuild_successful", "1 when the last rebuild "
                                    "attempt succeeded", value=ok)
        state = get("state")
        if state is not None:
            yield from _config_families(state)
        redis = get("redis")
        if redis is not None:
            yield from _redis_families(redis)
        admission = get("admission")
        if admission is not None:
            yield from _admission_families(admission)
        access_log = get("access_log")
        if access_log is not None:
            yield CounterMetricFamily("ingressd_access_log_dropped_lines", "Access log lines dropped "
                                      "because the writer fell behind", value=access_log.dropped)
            yield CounterMetricFamily("ingressd_access_log_lines", "Access log lines written",
                                      value=access_log.written)
            yield CounterMetricFamily("ingressd_access_log_syslog_dropped_lines", "Access log lines not sent "
                                      "to the syslog server (enable-syslog)", value=access_log.syslog_dropped)


def _admission_families(admission):
    """The validating webhook (``admission.endpoint.AdmissionHandler``): reviews answered, and its
    last judgement's figures (as ingress-nginx's admission collector, under ingressd's names)."""
    reviews = CounterMetricFamily("ingressd_admission_reviews", "AdmissionReviews answered by the validating "
                                  "webhook, by kind and verdict", labels=["kind", "allowed"])
    for (kind, allowed), count in sorted(admission.counts.items()):
        reviews.add_metric([kind, "true" if allowed else "false"], count)
    yield reviews
    figures = admission.figures() if admission.figures is not None else None
    if figures is not None:
        yield GaugeMetricFamily("ingressd_admission_last_tested_ingresses", "Ingresses in the configuration the "
                                "last review built", value=figures.objects)
        yield GaugeMetricFamily("ingressd_admission_last_build_seconds", "Seconds the last review took to build "
                                "the configuration", value=figures.build_seconds)
        yield GaugeMetricFamily("ingressd_admission_last_judge_seconds", "Seconds the last review took to build "
                                "and judge", value=figures.judge_seconds)
        yield GaugeMetricFamily("ingressd_admission_last_config_bytes", "Bytes of the stored objects the last "
                                "review's configuration was built from", value=figures.size)
    yield GaugeMetricFamily("ingressd_admission_last_roundtrip_seconds", "Seconds from the last review's body "
                            "to its answer", value=admission.last_roundtrip)


def _redis_families(redis):
    """``--redis`` (``ingressd.redis.decisions.Decisions``): errors, decisions, their latency, the breaker."""
    from ingressd.redis.decisions import LATENCY_BUCKETS

    errors = CounterMetricFamily("ingressd_redis_errors", "Rate-limit decisions Redis did not answer in time "
                                 "or answered with an error (the failure mode answered)", labels=["kind"])
    for kind, count in sorted(redis.errors.items()):
        errors.add_metric([kind], count)
    yield errors
    yield CounterMetricFamily("ingressd_redis_decisions", "Rate-limit decisions asked of Redis or, with the "
                              "breaker open, answered by the failure mode", value=redis.decisions)
    yield CounterMetricFamily("ingressd_redis_skipped", "Decisions answered by the failure mode without asking "
                              "Redis (the circuit breaker open)", value=redis.skipped)
    yield GaugeMetricFamily("ingressd_redis_breaker_open", "1 while the circuit breaker keeps requests off Redis",
                            value=1 if redis.breaker.is_open else 0)
    yield GaugeMetricFamily("ingressd_redis_connections", "Connections to Redis up now",
                            value=redis.client.connected)
    cumulative, buckets = 0, []
    for bound, count in zip((*LATENCY_BUCKETS, float("inf")), redis.latency_counts):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    latency = HistogramMetricFamily("ingressd_redis_decision_duration_seconds", "Time Redis took to decide "
                                    "(answered decisions)", labels=[])
    latency.add_metric([], buckets, redis.latency_sum)
    yield latency


def _l4_families(l4):
    """The TCP/UDP service ports (``ingressd.l4``): per protocol and port."""
    labels = ["protocol", "port", "service"]
    open_now = GaugeMetricFamily("ingressd_l4_connections", "TCP connections (UDP sessions) open now on a "
                                 "TCP/UDP service port", labels=labels)
    families = {name: CounterMetricFamily(f"ingressd_l4_{name}", doc, labels=labels) for name, doc in (
        ("connections_accepted", "TCP connections (UDP sessions) accepted on a TCP/UDP service port"),
        ("connections_failed", "Connections (sessions) closed without reaching an endpoint, or without a "
                               "valid PROXY protocol header"),
        ("connections_refused", "Connections (sessions) refused over the port's --l4-max-connections"),
        ("received_bytes", "Bytes received from clients on a TCP/UDP service port"),
        ("sent_bytes", "Bytes sent to clients on a TCP/UDP service port"),
    )}
    for (protocol, number), port in sorted(l4.ports.items()):
        service = port.service
        values = [protocol, str(number), f"{service.namespace}/{service.service}:{service.service_port}"]
        counters = port.counters
        open_now.add_metric(values, counters.open)
        for name, value in (("connections_accepted", counters.accepted), ("connections_failed", counters.failed),
                            ("connections_refused", counters.refused), ("received_bytes", counters.bytes_received),
                            ("sent_bytes", counters.bytes_sent)):
            families[name].add_metric(values, value)
    yield open_now
    yield from families.values()


def _config_families(state):
    config = state.config
    routes = config.routes
    hosts = {route.host for route in routes}
    endpoints = {(endpoint.address, endpoint.port) for route in routes for endpoint in route.backend.endpoints}
    yield GaugeMetricFamily("ingressd_config_ready", "1 once the first configuration is served",
                            value=1 if state.ready else 0)
    yield GaugeMetricFamily("ingressd_config_routes", "Routes (host + path) in the configuration",
                            value=len(routes))
    yield GaugeMetricFamily("ingressd_config_hosts", "Distinct hosts in the configuration", value=len(hosts))
    yield GaugeMetricFamily("ingressd_config_endpoints", "Distinct backend endpoints in the configuration",
                            value=len(endpoints))
    for name, items, doc in (("ingressd_config_rejections", config.rejections, "Objects (or parts) rejected"),
                             ("ingressd_config_warnings", config.warnings, "Warnings about objects")):
        family = GaugeMetricFamily(name, doc + " in the current configuration, by kind and reason",
                                   labels=["kind", "reason"])
        counts: dict[tuple[str, str], int] = {}
        for item in items:
            key = (_resource(item.ref.kind) if item.ref.kind != "Config" else "Config",
                   problem_category(item))
            counts[key] = counts.get(key, 0) + 1
        for key, count in sorted(counts.items()):
            family.add_metric(list(key), count)
        yield family
