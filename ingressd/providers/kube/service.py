"""The Kubernetes provider as a Twisted service: reflectors, leader election, status, Events.

``KubernetesService(settings, store, reactor)`` owns a thread pool of its own (the watches
hold their threads for hours; the reactor's pool stays free), one ``Reflector`` per kind
feeding the ``ObjectStore`` under the source name ``"kubernetes"``, a ``LeaderElector``, and,
for the leader, the status writers (the Ingress ``StatusWriter``, a ``GatewayStatusWriter`` per
Gateway API kind) and the ``EventRecorder``. The lead's reloader calls
``config_applied(config)`` after every new configuration is swapped in.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import uuid
from typing import Any, Callable, Mapping

from kubernetes import client
from twisted.application.service import Service
from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool

from ingressd.providers.kube.config import load_configuration
from ingressd.providers.kube.events import EventRecorder
from ingressd.providers.kube.gateway_status import DEFAULT_CONTROLLER_NAME, STATUS_KINDS, GatewayStatusWriter
from ingressd.providers.kube.leader import LeaderElector
from ingressd.providers.kube.reflector import KubeTimings, Reflector
from ingressd.providers.kube.replicas import EndpointSliceCount
from ingressd.providers.kube.status import StatusWriter
from ingressd.config.model import Config, ObjectRef
from ingressd.config.sources import KIND_SPECS
from ingressd.config.store import Key, ObjectStore, Packed, object_key, unpack

log = logging.getLogger(__name__)

SOURCE = "kubernetes"
DEFAULT_ELECTION_ID = "ingressd-leader"

# The kinds LISTed and WATCHed: those the sources of routes read (ingressd.config.sources).
WATCHED = tuple(spec.kind for spec in KIND_SPECS if spec.watched)
# kind → its status writer's class, for every kind whose status ingressd writes (KindSpec.status).
# A writer offers ``set_served`` (the objects of its kind the configuration serves),
# ``object_changed`` (one of them changed in the cluster), ``set_leader`` and ``stop``.
STATUS_WRITERS: dict[str, type] = {"Ingress": StatusWriter, **{kind: GatewayStatusWriter for kind in STATUS_KINDS}}
_UNWRITTEN = sorted(spec.kind for spec in KIND_SPECS if spec.status and spec.kind not in STATUS_WRITERS)
if _UNWRITTEN:
    raise ImportError(f"kinds declared with a status but no status writer: {_UNWRITTEN}")


class _DaemonThreadPool(ThreadPool):
    """A ThreadPool whose threads never keep the process alive if one is stuck."""

    threadFactory = staticmethod(  # type: ignore[assignment]
        lambda *args, **kwargs: threading.Thread(*args, daemon=True, **kwargs))


class _StoreSink:
    """Feeds the store from the reflectors, tells each kind's status writer which of its
    objects changed, and marks the source synced once every kind's first LIST is in. Reactor
    thread only."""

    def __init__(self, store: ObjectStore, on_object: Mapping[str, Callable[[str, str], None]]):
        self.store = store
        self.on_object = dict(on_object)  # kind → told (namespace, name) of each changed object
        self.listed: set[str] = set()

    def ingress(self, namespace: str, name: str) -> dict | None:
        """The Ingress as the API server last delivered it."""
        return self.store.get("Ingress", (namespace, name), source=SOURCE)

    def replace(self, kind: str, items: list[tuple[Key, Packed]]) -> None:
        changed = self.store.replace_packed(SOURCE, kind, items)
        told = self.on_object.get(kind)
        if told is not None:
            for key in sorted(changed):
                told(*key)
        if kind not in self.listed:
            self.listed.add(kind)
            if self.listed >= set(WATCHED):
                self.store.set_synced(SOURCE)

    def apply(self, kind: str, event_type: str, obj: dict) -> None:
        self.store.apply(SOURCE, kind, event_type, obj)
        told = self.on_object.get(kind)
        if told is not None:
            told(*object_key(obj))


class _ServiceSink:
    """Feeds the one publish Service to the status writer."""

    def __init__(self, status: StatusWriter, name: str):
        self.status = status
        self.name = name

    def replace(self, kind: str, items: list[tuple[Key, Packed]]) -> None:
        found = [unpack(packed) for key, packed in items if key[1] == self.name]
        self.status.service_changed(found[0] if found else None)

    def apply(self, kind: str, event_type: str, obj: dict) -> None:
        if (obj.get("metadata") or {}).get("name") == self.name:
            self.status.service_changed(None if event_type == "DELETED" else obj)


def _split_list(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    return tuple(item.strip() for item in value if item and item.strip())


def default_identity(environ: Mapping[str, str] = os.environ) -> str:
    """The pod name; outside a pod the host name plus a random suffix (two local processes
    must not share an identity, or both would think they hold the Lease)."""
    return environ.get("POD_NAME") or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class KubernetesService(Service):
    """Runs the Kubernetes provider while the application runs.

    ``settings`` keys: ``kubernetes`` (bool; when false the service does nothing),
    ``kubeconfig``, ``namespace``, ``publish_service``, ``publish_status_address``,
    ``election_id``, ``election_namespace``. ``timings`` and ``identity`` are for tests.
    ``replicas``: with ``--replicas-hint auto``, the ``ReplicaCount`` fed from the publish
    Service's EndpointSlices.
    """

    name = "kubernetes"

    def __init__(self, settings: Mapping[str, Any], store: ObjectStore, reactor: Any, *,
                 timings: KubeTimings | None = None, identity: str | None = None,
                 environ: Mapping[str, str] = os.environ,
                 configuration: client.Configuration | None = None, replicas: Any = None):
        self.settings = settings
        self.replicas = replicas  # --replicas-hint auto: the ReplicaCount the publish Service's endpoints feed
        self.store = store
        self.reactor = reactor
        self.timings = timings or KubeTimings()
        self.environ = environ
        self.identity = identity or default_identity(environ)
        self._configuration = configuration
        self.namespace: str | None = settings.get("namespace") or None
        self.election_id = settings.get("election_id") or DEFAULT_ELECTION_ID
        self.election_namespace = (environ.get("POD_NAMESPACE")
                                   or settings.get("election_namespace") or "default")
        self.publish_service = self._parse_publish_service(settings.get("publish_service"))
        self.publish_addresses = _split_list(settings.get("publish_status_address"))
        self.reflectors: list[Reflector] = []
        self.pool: ThreadPool | None = None
        self.leader: LeaderElector | None = None
        self.status: StatusWriter | None = None  # the Ingress status writer
        self.status_writers: dict[str, Any] = {}  # kind → its status writer (STATUS_WRITERS), once started
        self.events: EventRecorder | None = None
        self.sink: _StoreSink | None = None
        self._clients: list[client.ApiClient] = []
        self._last_config: Config | None = None
        self._judged: dict[ObjectRef, Any] = {}  # the served configuration's Config.status

    def _parse_publish_service(self, value: str | None) -> tuple[str, str] | None:
        if not value:
            return None
        namespace, _, name = value.rpartition("/")
        if not name:
            raise ValueError(f"--publish-service must be NAMESPACE/NAME, got {value!r}")
        return (namespace or self.election_namespace, name)

    @property
    def enabled(self) -> bool:
        return bool(self.settings.get("kubernetes"))

    @property
    def is_leader(self) -> bool:
        return self.leader is not None and self.leader.is_leader

    # -- lifecycle ----------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if not self.enabled:
            return
        configuration = self._configuration or load_configuration(self.settings.get("kubeconfig"))
        self.store.register(SOURCE)
        kinds = list(WATCHED)
        self.pool = _DaemonThreadPool(minthreads=0, maxthreads=len(kinds) + 5,
                                      name="ingressd-kubernetes")
        self.pool.start()
        run = functools.partial(threads.deferToThreadPool, self.reactor, self.pool)
        shared = self._client(configuration)
        self.status = StatusWriter(
            shared, self.reactor, run, self._lookup_ingress,
            publish_service=self.publish_service, publish_addresses=self.publish_addresses,
            timings=self.timings)
        self.events = EventRecorder(shared, self.reactor, run, self._lookup_ingress,
                                    self.identity, timings=self.timings,
                                    lookup_object=lambda kind, ns, name: self.store.get(kind, (ns, name)))
        self.status_writers = {"Ingress": self.status}
        controller_name = self.settings.get("gateway_controller_name") or DEFAULT_CONTROLLER_NAME
        for kind in STATUS_KINDS:
            self.status_writers[kind] = GatewayStatusWriter(
                kind, shared, self.reactor, run, functools.partial(self._lookup_object, kind),
                lambda ref: self._judged.get(ref), controller_name=controller_name, timings=self.timings)
        self.sink = _StoreSink(self.store, {kind: writer.object_changed
                                            for kind, writer in self.status_writers.items()})
        for kind in kinds:
            # One ApiClient (one connection pool) per watch: a stream holds its connection.
            self.reflectors.append(Reflector(
                kind, self._client(configuration), self.sink, self.reactor,
                namespace=self.namespace, timings=self.timings))
        if self.publish_service is not None:
            namespace, name = self.publish_service
            self.reflectors.append(Reflector(
                "Service", self._client(configuration), _ServiceSink(self.status, name),
                self.reactor, namespace=namespace, field_selector=f"metadata.name={name}",
                timings=self.timings))
            if self.replicas is not None and self.replicas.auto:
                self.reflectors.append(Reflector(
                    "EndpointSlice", self._client(configuration), EndpointSliceCount(self.replicas),
                    self.reactor, namespace=namespace, label_selector=f"kubernetes.io/service-name={name}",
                    timings=self.timings))
        for reflector in self.reflectors:
            self.pool.callInThread(reflector.run)
        self.leader = LeaderElector(
            shared, self.election_namespace, self.election_id, self.identity, self.reactor, run,
            timings=self.timings, on_started_leading=self._started_leading,
            on_stopped_leading=self._stopped_leading)
        self.leader.start()
        log.info("kubernetes provider started (namespace %s, identity %s)",
                 self.namespace or "all", self.identity)

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        if self.pool is None:
            return
        for reflector in self.reflectors:
            reflector.stop()
        for writer in self.status_writers.values():
            writer.stop()
        if self.events is not None:
            self.events.set_enabled(False)
        if self.leader is not None:
            release = self.leader.stop()
            release.addTimeout(self.timings.stop_timeout, self.reactor)
            try:
                yield release
            except Exception as error:  # noqa: BLE001 - a lease not released just expires
                log.warning("kubernetes provider: leader release: %s", error)
        yield self._join_pool(self.pool)
        for api_client in self._clients:
            try:
                api_client.close()
            except Exception:  # noqa: BLE001
                pass
        self.pool = None
        self.reflectors = []
        self._clients = []

    def _join_pool(self, pool: ThreadPool) -> defer.Deferred:
        """Wait (off the reactor thread) for the pool's threads, at most ``stop_timeout``."""
        d: defer.Deferred = defer.Deferred()

        def join() -> None:
            pool.stop()
            self.reactor.callFromThread(lambda: d.called or d.callback(None))

        threading.Thread(target=join, name="ingressd-kubernetes-stop", daemon=True).start()
        d.addTimeout(self.timings.stop_timeout, self.reactor)
        d.addErrback(lambda failure: log.warning(
            "kubernetes provider: threads still busy after %ss; leaving them (daemon threads)",
            self.timings.stop_timeout))
        return d

    def _client(self, configuration: client.Configuration) -> client.ApiClient:
        api_client = client.ApiClient(configuration)
        self._clients.append(api_client)
        return api_client

    # -- what the core calls ------------------------------------------------------------------

    def config_applied(self, config: Config) -> None:
        """A new configuration is live: publish status for what it serves, report rejections."""
        self._last_config = config
        self._judged = dict(config.status)
        if self.status is None or self.events is None:
            return
        for kind, writer in self.status_writers.items():
            writer.set_served(served_objects(config, kind))
        self.events.record(config.rejections + tuple(w for w in config.warnings if w.ref.kind == "ConfigMap"))

    # -- internals ------------------------------------------------------------------------------

    def _lookup_ingress(self, namespace: str, name: str) -> dict | None:
        return self.sink.ingress(namespace, name) if self.sink is not None else None

    def _lookup_object(self, kind: str, namespace: str, name: str) -> dict | None:
        """An object as the API server last delivered it."""
        return self.store.get(kind, (namespace, name), source=SOURCE)

    def _started_leading(self) -> None:
        for writer in self.status_writers.values():
            writer.set_leader(True)
        if self.events is not None:
            self.events.set_enabled(True)

    def _stopped_leading(self) -> None:
        for writer in self.status_writers.values():
            writer.set_leader(False)
        if self.events is not None:
            self.events.set_enabled(False)


def served_objects(config: Config, kind: str) -> frozenset[ObjectRef]:
    """The distinct objects of ``kind`` a configuration serves: its routes' and the default
    backend's, and those its sources gave a status."""
    refs = {route.ingress for route in config.routes}
    if config.default_backend is not None:
        refs.add(config.default_backend.ingress)
    refs.update(ref for ref, _ in config.status)
    return frozenset(ref for ref in refs if ref.kind == kind)


def served_ingresses(config: Config) -> frozenset[ObjectRef]:
    """The distinct Ingresses a configuration serves: its routes' and the default backend's."""
    return served_objects(config, "Ingress")
