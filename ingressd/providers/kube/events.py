"""Warning Events (core/v1) for the Ingresses a configuration rejected, without spamming.

Each distinct (Ingress, message) is reported once while it stays rejected: route rebuilds
that reject it again say nothing. When it comes back after having been fixed, the Event
already created is PATCHed (``count`` + 1, ``lastTimestamp``) as client-go's recorder
does; a new one is created if that Event has expired meanwhile. Only Ingresses known from
the Kubernetes API are reported (ones from manifest files have no object to attach to).
"""

from __future__ import annotations

import datetime
import logging
import time
from collections import OrderedDict
from typing import Any, Callable, Iterable

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from twisted.internet import defer

from ingressd.providers.kube import rest
from ingressd.providers.kube.reflector import KubeTimings
from ingressd.config.model import ObjectRef, Rejection

log = logging.getLogger(__name__)

CONTROLLER = "ingressd.io/ingress-controller"
COMPONENT = "ingressd"
REASON = "Rejected"
_MAX_MESSAGE = 1024

Key = tuple[ObjectRef, str]
_INVOLVED = {"Ingress": "networking.k8s.io/v1", "ConfigMap": "v1"}  # kinds Events are about: apiVersion


def _timestamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    """Turns ``config.rejections`` into Events; ``record`` is called after every rebuild."""

    def __init__(self, api_client: client.ApiClient, reactor: Any,
                 run_in_thread: Callable[..., defer.Deferred],
                 lookup_ingress: Callable[[str, str], dict | None], identity: str, *,
                 timings: KubeTimings = KubeTimings(), max_known: int = 1000,
                 lookup_object: Callable[[str, str, str], dict | None] | None = None):
        self.rest = rest.KubeRest(api_client)
        # Other kinds Events are written about (the --nginx-configmap ConfigMap): kind, namespace, name
        self.lookup_object = lookup_object
        self.reactor = reactor
        self.run_in_thread = run_in_thread
        self.lookup_ingress = lookup_ingress
        self.identity = identity[:128]
        self.timings = timings
        self.max_known = max_known
        self.enabled = False
        self._current: frozenset[Key] = frozenset()  # rejected in the latest configuration
        self._reported: set[Key] = set()  # reported while still rejected
        self._known: OrderedDict[Key, tuple[str, str, int]] = OrderedDict()  # → (ns, name, count)
        self.sent = 0  # Events created or patched, for logs and tests

    def set_enabled(self, enabled: bool) -> None:
        """Only the leader reports; a new leader reports what is rejected now."""
        self.enabled = enabled
        if enabled:
            self._flush()
        else:
            self._reported.clear()

    def record(self, rejections: Iterable[Rejection]) -> None:
        self._current = frozenset(
            (r.ref, r.reason) for r in rejections if r.ref.kind in _INVOLVED)
        self._reported &= self._current  # fixed ones may be reported again if they come back
        if self.enabled:
            self._flush()

    def _flush(self) -> None:
        for key in sorted(self._current - self._reported):
            ref, _ = key
            if ref.kind == "Ingress":
                ingress = self.lookup_ingress(ref.namespace, ref.name)
            else:
                ingress = self.lookup_object(ref.kind, ref.namespace, ref.name) if self.lookup_object else None
            if ingress is None:
                continue
            self._reported.add(key)
            d = self.run_in_thread(self._send, key, ingress, self._known.get(key))
            d.addCallbacks(self._sent, self._failed, callbackArgs=(key,), errbackArgs=(key,))

    # -- pool thread ------------------------------------------------------------------------

    def _send(self, key: Key, ingress: dict, known: tuple[str, str, int] | None
              ) -> tuple[str, str, int]:
        ref, message = key
        now = _timestamp()
        timeout = (self.timings.connect_timeout, self.timings.request_timeout)
        if known is not None:
            namespace, name, count = known
            try:
                self.rest.patch("Event", namespace, name, {"count": count + 1, "lastTimestamp": now},
                                timeout=timeout)
                return namespace, name, count + 1
            except ApiException as error:
                if error.status != 404:  # expired (Events live about an hour): create anew
                    raise
        meta = ingress.get("metadata") or {}
        name = f"{ref.name}.{time.time_ns():x}"
        involved = {"kind": ref.kind, "apiVersion": _INVOLVED[ref.kind],
                    "namespace": ref.namespace, "name": ref.name}
        if meta.get("uid"):
            involved["uid"] = meta["uid"]
        if meta.get("resourceVersion"):
            involved["resourceVersion"] = meta["resourceVersion"]
        body = {
            "metadata": {"name": name, "namespace": ref.namespace},
            "involvedObject": involved,
            "reason": REASON,
            "message": message[:_MAX_MESSAGE],
            "type": "Warning",
            "source": {"component": COMPONENT},
            "reportingComponent": CONTROLLER,
            "reportingInstance": self.identity,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.rest.create("Event", ref.namespace, body, timeout=timeout)
        return ref.namespace, name, 1

    # -- reactor thread ---------------------------------------------------------------------

    def _sent(self, result: tuple[str, str, int], key: Key) -> None:
        self.sent += 1
        self._known[key] = result
        self._known.move_to_end(key)
        while len(self._known) > self.max_known:
            self._known.popitem(last=False)

    def _failed(self, failure: Any, key: Key) -> None:
        self._reported.discard(key)  # the next rebuild (or leadership change) tries again
        log.warning("could not record an Event for %s: %s", key[0], failure.getErrorMessage())
