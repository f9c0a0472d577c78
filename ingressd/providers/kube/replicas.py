"""``--replicas-hint auto``: the ready replicas, counted from the publish Service's EndpointSlices.

A reflector watches the EndpointSlices labelled ``kubernetes.io/service-name=NAME`` in the
Service's namespace (the same endpoints the load balancer sends traffic to: a replica that is
not ready, or draining, is not counted); ``EndpointSliceCount`` keeps them by name and tells the
server's ``ReplicaCount`` the number of distinct ready addresses after every change.
"""

from __future__ import annotations

from twisted.python import log

from ingressd.config.store import Key, Packed, unpack
from ingressd.replicas import ReplicaCount, ready_addresses


class EndpointSliceCount:
    """A reflector sink (reactor thread): the publish Service's slices → ``replicas.observe``."""

    def __init__(self, replicas: ReplicaCount):
        self.replicas = replicas
        self.slices: dict[str, dict] = {}

    def replace(self, kind: str, items: list[tuple[Key, Packed]]) -> None:
        self.slices = {key[1]: unpack(packed) for key, packed in items}
        self._count()

    def apply(self, kind: str, event_type: str, obj: dict) -> None:
        name = (obj.get("metadata") or {}).get("name") or ""
        if event_type == "DELETED":
            self.slices.pop(name, None)
        else:
            self.slices[name] = obj
        self._count()

    def _count(self) -> None:
        ready = len(ready_addresses(self.slices.values()))
        if ready != self.replicas.observed:
            log.msg(f"ingressd: --replicas-hint auto: {ready} ready replica(s); local limits are divided "
                    f"by {max(1, ready)}")
        self.replicas.observe(ready)
