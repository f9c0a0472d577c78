"""The Ingress status writer: publish ingressd's address in ``status.loadBalancer.ingress``.

The address comes from ``--publish-status-address`` (IPs or host names, comma-separated) or
from the Service named by ``--publish-service NAMESPACE/NAME`` (its load-balancer
addresses and external IPs; its cluster IP when it is not a LoadBalancer). Only the leader
writes, only the Ingresses ingressd serves, and only when the value there differs: a JSON
merge patch of the status subresource, which replaces the atomic list whole. When it looks
(leader, changes, the periodic pass) is ``providers.kube.status_sync``'s, shared with the
Gateway API status writers.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, Callable, Iterable

from kubernetes import client
from twisted.internet import defer

from ingressd.providers.kube import rest
from ingressd.providers.kube.reflector import KubeTimings
from ingressd.providers.kube.status_sync import LeaderSyncedWriter
from ingressd.config.model import ObjectRef

log = logging.getLogger(__name__)

Address = tuple[str, str]  # ("ip", "192.0.2.1") or ("hostname", "lb.example.com")


def parse_addresses(values: Iterable[str]) -> tuple[Address, ...]:
    """IPs become ``ip`` entries, anything else a ``hostname``; sorted, without duplicates."""
    addresses = set()
    for value in values:
        value = value.strip()
        if not value:
            continue
        try:
            addresses.add(("ip", str(ipaddress.ip_address(value))))
        except ValueError:
            addresses.add(("hostname", value.lower()))
    return tuple(sorted(addresses))


def _load_balancer_values(obj: dict) -> list[str]:
    """The ip and hostname values of an object's ``status.loadBalancer.ingress``."""
    entries = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [entry[field] for entry in entries for field in ("ip", "hostname") if entry.get(field)]


def service_addresses(service: dict) -> tuple[Address, ...]:
    """What ingress-nginx publishes for a Service: LB ingress + externalIPs, else cluster IP."""
    spec = service.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    if kind == "ExternalName":
        return parse_addresses([spec.get("externalName") or ""])
    values = _load_balancer_values(service) if kind == "LoadBalancer" else []
    values += list(spec.get("externalIPs") or [])
    if not values and kind != "LoadBalancer" and spec.get("clusterIP") not in (None, "", "None"):
        values.append(spec["clusterIP"])
    return parse_addresses(values)


def current_addresses(ingress: dict) -> tuple[Address, ...]:
    return parse_addresses(_load_balancer_values(ingress))


class StatusWriter(LeaderSyncedWriter):
    """Keeps the served Ingresses' load-balancer status equal to the published addresses: the
    status writer of the kind Ingress (``providers.kube.service.STATUS_WRITERS``)."""

    kind = "Ingress"

    def __init__(self, api_client: client.ApiClient, reactor: Any,
                 run_in_thread: Callable[..., defer.Deferred],
                 lookup_ingress: Callable[[str, str], dict | None], *,
                 publish_service: tuple[str, str] | None = None,
                 publish_addresses: tuple[str, ...] = (),
                 timings: KubeTimings = KubeTimings()):
        super().__init__(reactor, timings)
        self.rest = rest.KubeRest(api_client)
        self.run_in_thread = run_in_thread
        self.lookup_ingress = lookup_ingress
        self.publish_service = publish_service
        # None until known: with --publish-service, nothing is written before the Service is seen.
        self._desired: tuple[Address, ...] | None = (
            parse_addresses(publish_addresses) if publish_addresses else None)
        self.enabled = bool(publish_addresses) or publish_service is not None
        self._served: frozenset[ObjectRef] = frozenset()
        # A change of one Ingress marks that one (at 10,000 Ingresses a pass over all is ~60 ms).
        self._pending: dict[tuple[str, str], tuple] = {}  # key → (addresses, rv) written

    # -- inputs (reactor thread) ------------------------------------------------------------

    def set_served(self, refs: Iterable[ObjectRef]) -> None:
        served = frozenset(ref for ref in refs if ref.kind == self.kind)
        if served != self._served:
            added = served - self._served
            self._served = served
            self._mark(added)

    def service_changed(self, service: dict | None) -> None:
        """The publish Service changed (``None``: it is gone, publish nothing)."""
        desired = service_addresses(service) if service is not None else ()
        if desired != self._desired:
            self._desired = desired
            self._mark()

    def ingress_changed(self, namespace: str, name: str) -> None:
        ref = ObjectRef(self.kind, namespace, name)
        if ref in self._served:
            self._mark({ref})

    object_changed = ingress_changed  # what every status writer offers the provider

    # -- syncing ----------------------------------------------------------------------------

    def _sync(self) -> None:
        if not self._syncing() or self._desired is None:
            return
        desired = self._desired
        todo = self._take_dirty(self._served)
        for ref in sorted(todo):
            ingress = self.lookup_ingress(ref.namespace, ref.name)
            if ingress is None:
                continue  # not (or no longer) in the cluster, e.g. from a manifest file
            if current_addresses(ingress) == desired:
                self._pending.pop((ref.namespace, ref.name), None)
                continue
            rv = (ingress.get("metadata") or {}).get("resourceVersion")
            key = (ref.namespace, ref.name)
            if self._pending.get(key) in ((desired, rv), (desired, None)):
                continue  # already written (or being written); waiting for the watch to show it
            self._pending[key] = (desired, None)
            d = self.run_in_thread(self._patch, ref.namespace, ref.name, desired)
            d.addCallbacks(self._written, self._failed, callbackArgs=(key, desired, rv),
                           errbackArgs=(key,))

    def _patch(self, namespace: str, name: str, desired: tuple[Address, ...]) -> None:
        body = {"status": {"loadBalancer": {"ingress": [{kind: value} for kind, value in desired]}}}
        self.rest.patch("Ingress", namespace, name, body, subresource="status",
                        timeout=(self.timings.connect_timeout, self.timings.request_timeout))

    def _written(self, _: Any, key: tuple[str, str], desired: tuple, rv: str | None) -> None:
        self.writes += 1
        log.info("status of Ingress %s/%s set to %s", key[0], key[1],
                 ", ".join(value for _, value in desired) or "nothing")
        if self._pending.get(key) == (desired, None):
            self._pending[key] = (desired, rv)

    def _failed(self, failure: Any, key: tuple[str, str]) -> None:
        # Forget it: the next pass (any change) or the periodic one tries again.
        self._pending.pop(key, None)
        self._retry(ObjectRef("Ingress", *key))
        log.warning("could not update the status of Ingress %s/%s: %s", key[0], key[1],
                    failure.getErrorMessage())
