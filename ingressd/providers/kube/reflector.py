"""Reflectors: keep a local copy of one kind of Kubernetes object current, by LIST then WATCH.

One ``Reflector`` per kind runs a blocking loop on a thread of ingressd's own pool (never the
reactor's): a paged LIST handed over whole (``sink.replace``), then a WATCH from the list's
resourceVersion whose events are handed over one by one (``sink.apply``), always through
``reactor.callFromThread`` so the sink only ever runs on the reactor thread.

It follows client-go's Reflector: a 410 Gone (as an HTTP status or as an ERROR event in the
stream) means the history is gone, so it re-lists; any other failure (dropped stream,
connection refused, 5xx, read timeout) re-watches from the last resourceVersion seen, after
an exponential backoff with jitter. BOOKMARK events move that resourceVersion forward. A full
re-list runs every ``resync_period`` as a safety net. We own the loop rather than use
``kubernetes.watch.Watch.stream``, which retries a stale version on 410 and has no backoff.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from ingressd.providers.kube import rest
from ingressd.config.sources import SPECS
from ingressd.config.store import Key, Packed, pack_items

log = logging.getLogger(__name__)


_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def slim(obj: dict, kind: str = "") -> dict:
    """Drop what ingressd never reads and that can dwarf the object: server-side apply's
    ``metadata.managedFields``, kubectl's last-applied copy of the whole manifest, and what
    the kind's declaration (``ingressd.config.sources.KindSpec``: ``keep_metadata``,
    ``keep_items``) does not keep (the dependencies, of which a cluster has many, keep little
    of their metadata; an EndpointSlice's endpoints lose their target reference, node and
    zone). In place; returns ``obj``."""
    spec = SPECS.get(kind)
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
        annotations = meta.get("annotations")
        if isinstance(annotations, dict) and _LAST_APPLIED in annotations:
            meta["annotations"] = {k: v for k, v in annotations.items() if k != _LAST_APPLIED}
        if spec is not None and spec.keep_metadata is not None:
            obj["metadata"] = {k: v for k, v in meta.items() if k in spec.keep_metadata}
    if spec is not None and spec.keep_items is not None:
        field, kept = spec.keep_items
        if isinstance(obj.get(field), list):
            obj[field] = [{k: v for k, v in item.items() if k in kept} if isinstance(item, dict) else item
                          for item in obj[field]]
    return obj


@dataclass(frozen=True)
class KubeTimings:
    """Every delay the Kubernetes provider uses, in seconds; tests shrink them."""

    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    watch_timeout: float = 300.0  # server-side timeoutSeconds: a random value in [t, 2t)
    watch_read_slack: float = 30.0  # client read timeout = timeoutSeconds + this
    resync_period: float = 1800.0  # full re-list, as a safety net
    connect_timeout: float = 10.0
    request_timeout: float = 15.0  # read timeout of every non-watch request
    page_size: int = 500
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    status_resync: float = 60.0  # the leader re-checks every served Ingress's status
    absent_retry: float = 60.0  # how often the LIST of a kind whose API is not installed is tried again
    stop_timeout: float = 5.0  # how long stopping may wait for the threads


class Sink(Protocol):
    """Where a reflector's results go; called on the reactor thread only."""

    def replace(self, kind: str, items: list[tuple[Key, Packed]]) -> None:
        """Everything of ``kind``, packed (``ingressd.config.store.pack_items``)."""

    def apply(self, kind: str, event_type: str, obj: dict) -> None: ...


class _Expired(Exception):
    """The resourceVersion we hold is too old: re-list."""


class _WatchError(Exception):
    """An ERROR event other than 410."""


_TRANSIENT = (urllib3.exceptions.HTTPError, OSError, ValueError, _WatchError)


class Reflector:
    """LIST + WATCH of one kind into a sink. ``run`` blocks; call it on a pool thread."""

    def __init__(self, kind: str, api_client: client.ApiClient, sink: Sink, reactor: Any, *,
                 namespace: str | None = None, field_selector: str | None = None,
                 label_selector: str | None = None, timings: KubeTimings = KubeTimings(),
                 rng: Callable[[], float] = random.random):
        self.kind = kind
        # A kind whose API may not be installed (Gateway API CRDs): its 404 reads as "none".
        self.optional = SPECS[kind].optional if kind in SPECS else False
        self.absent = False  # its API was not found on the last LIST
        self.namespace = namespace if rest.namespaced(kind) else None
        self.api_version = rest.api_version(kind)
        self.rest = rest.KubeRest(api_client)
        self._selectors: dict[str, str] = {}
        if field_selector:
            self._selectors["fieldSelector"] = field_selector
        if label_selector:
            self._selectors["labelSelector"] = label_selector
        self.sink = sink
        self.reactor = reactor
        self.timings = timings
        self._rng = rng
        self._stopping = threading.Event()
        self._delivering = True  # reactor-thread flag: no delivery after stop()
        self._response_lock = threading.Lock()
        self._response: Any = None
        self.done = threading.Event()
        # counters, for logs and tests (written by the loop thread only)
        self.lists = 0
        self.watches = 0
        self.expired = 0
        self.failures = 0
        self.bookmarks = 0
        self.bad_lines = 0
        self.resource_version: str | None = None

    def __repr__(self) -> str:
        return f"<Reflector {self.kind}{' in ' + self.namespace if self.namespace else ''}>"

    # -- control --------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to end; unblocks a thread waiting on a watch stream. Reactor thread."""
        self._delivering = False
        self._stopping.set()
        with self._response_lock:
            response = self._response
        if response is not None:
            try:
                response.shutdown()  # shuts the socket down: recv() returns at once
            except Exception:  # noqa: BLE001 - best effort, the read timeout is the fallback
                pass

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- the loop (runs on a pool thread) ---------------------------------------------------

    def run(self) -> None:
        try:
            self._loop()
        finally:
            self.done.set()

    def _loop(self) -> None:
        # ``self.resource_version`` is the last version seen (list, event or bookmark); it
        # survives a watch that breaks, so the re-watch resumes there. None means re-list.
        timings = self.timings
        failures = 0
        next_resync = 0.0
        while not self.stopping:
            try:
                if self.resource_version is None or time.monotonic() >= next_resync:
                    self._list()
                    next_resync = time.monotonic() + timings.resync_period
                    failures = 0
                started = time.monotonic()
                events = self._watch(next_resync)
                if events:
                    failures = 0
                elif time.monotonic() - started < 1.0 and not self.stopping:
                    # an empty stream ended at once: back off instead of spinning
                    failures = self._backoff(failures, "watch ended at once")
                continue
            except _Expired as error:
                log.info("%r: %s; re-listing", self, error)
                self.expired += 1
                self.resource_version = None
                continue
            except ApiException as error:
                if error.status == 404 and self.optional:
                    self._absent()
                    continue
                if error.status == 410:
                    log.info("%r: 410 Gone; re-listing", self)
                    self.expired += 1
                    self.resource_version = None
                    continue
                reason = f"HTTP {error.status} {error.reason}"
            except _TRANSIENT as error:
                reason = f"{type(error).__name__}: {error}"
            except Exception as error:  # noqa: BLE001 - the loop must survive anything
                log.exception("%r: unexpected error", self)
                reason = repr(error)
            if self.stopping:
                break
            failures = self._backoff(failures, reason)

    def _absent(self) -> None:
        """The kind's API is not installed (no CRD): hand over an empty list, so the source
        counts as synced without it, and look again every ``absent_retry`` seconds."""
        if not self.absent:
            log.info("%r: the API is not installed (404); reading none, trying again every %.0fs",
                     self, self.timings.absent_retry)
            self.absent = True
            self.reactor.callFromThread(self._deliver_replace, [])
        self.resource_version = None
        self._stopping.wait(self.timings.absent_retry)

    def _backoff(self, failures: int, reason: str) -> int:
        failures += 1
        self.failures += 1
        delay = min(self.timings.backoff_max,
                    self.timings.backoff_initial * 2 ** min(failures - 1, 30))
        delay = delay / 2 + self._rng() * delay / 2  # equal jitter: replicas spread out
        log.warning("%r: %s; retrying in %.1fs", self, reason, delay)
        self._stopping.wait(delay)
        return failures

    def _request_timeout(self) -> tuple[float, float]:
        return (self.timings.connect_timeout, self.timings.request_timeout)

    def _list(self) -> None:
        """LIST every page; hands the items over whole (packed a page at a time, so only
        one page is ever held as dicts) and records the list's resourceVersion."""
        items: list[tuple[Key, Packed]] = []
        token: str | None = None
        rv = ""
        while True:
            query: dict[str, Any] = dict(self._selectors, limit=self.timings.page_size)
            if token:
                query["continue"] = token
            response = self.rest.list(self.kind, self.namespace, query=query,
                                      timeout=self._request_timeout())
            with self._tracking(response):
                body = json.loads(response.data)
            meta = body.get("metadata") or {}
            rv = meta.get("resourceVersion") or rv
            page = body.get("items") or []
            for item in page:
                self._prepare(item)
            items.extend(pack_items(page, f"kubernetes: {self.kind}"))
            del body, page
            token = meta.get("continue")
            if not token or self.stopping:
                break
        if self.stopping:
            return
        self.lists += 1
        self.absent = False
        self.resource_version = rv
        self.reactor.callFromThread(self._deliver_replace, items)

    def _watch(self, until: float) -> int:
        """One WATCH from the last resourceVersion until the stream ends; returns the events seen."""
        timeout = self.timings.watch_timeout * (1 + self._rng())
        timeout = int(max(1, min(timeout, until - time.monotonic())))
        response = self.rest.watch(
            self.kind, self.namespace,
            query=dict(self._selectors, resourceVersion=self.resource_version,
                       allowWatchBookmarks=True, timeoutSeconds=timeout),
            timeout=(self.timings.connect_timeout, timeout + self.timings.watch_read_slack))
        self.watches += 1
        events = 0
        with self._tracking(response):
            for line in iter_resp_lines(response):
                if self.stopping:
                    break
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                    event_type, obj = event["type"], event["object"]
                except (ValueError, KeyError, TypeError):
                    self.bad_lines += 1
                    log.warning("%r: skipping a watch line that is not an event: %.80r", self, line)
                    continue
                if event_type == "ERROR":
                    code = obj.get("code") if isinstance(obj, dict) else None
                    message = obj.get("message") if isinstance(obj, dict) else obj
                    if code == 410:
                        raise _Expired(f"watch: {message}")
                    raise _WatchError(f"ERROR event {code}: {message}")
                new_rv = ((obj.get("metadata") or {}).get("resourceVersion")
                          if isinstance(obj, dict) else None)
                if event_type in ("ADDED", "MODIFIED", "DELETED"):
                    self.reactor.callFromThread(self._deliver_apply, event_type, self._prepare(obj))
                    events += 1
                elif event_type == "BOOKMARK":
                    self.bookmarks += 1
                else:
                    self.bad_lines += 1
                    continue
                if new_rv:
                    self.resource_version = new_rv
        return events

    def _prepare(self, obj: dict) -> dict:
        """A listed or watched object as it is stored. List items carry no kind/apiVersion
        (kubernetes#3030) but watch objects do: add them, so a re-list of unchanged objects
        compares equal. Then ``slim``. In place; returns ``obj``."""
        obj.setdefault("kind", self.kind)
        obj.setdefault("apiVersion", self.api_version)
        return slim(obj, self.kind)

    def _tracking(self, response: Any) -> "_Tracked":
        return _Tracked(self, response)

    # -- delivery (reactor thread) ----------------------------------------------------------

    def _deliver_replace(self, items: list[tuple[Key, Packed]]) -> None:
        if self._delivering:
            self.sink.replace(self.kind, items)

    def _deliver_apply(self, event_type: str, obj: dict) -> None:
        if self._delivering:
            self.sink.apply(self.kind, event_type, obj)


class _Tracked:
    """Makes a response abortable by ``Reflector.stop`` while in use, and releases it after."""

    def __init__(self, reflector: Reflector, response: Any):
        self.reflector = reflector
        self.response = response

    def __enter__(self) -> Any:
        with self.reflector._response_lock:
            self.reflector._response = self.response
        if self.reflector.stopping:  # stop() ran just before we registered the response
            try:
                self.response.shutdown()
            except Exception:  # noqa: BLE001
                pass
        return self.response

    def __exit__(self, *exc: Any) -> None:
        with self.reflector._response_lock:
            self.reflector._response = None
        # Close rather than only release: a stream left half-read (an ERROR event, a stop)
        # must not go back to the pool with unread bytes on it.
        try:
            self.response.close()
            self.response.release_conn()
        except Exception:  # noqa: BLE001
            pass
