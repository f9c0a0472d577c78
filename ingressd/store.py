"""The object store: the Kubernetes objects every provider has delivered, by kind.

Providers (manifest files, the Kubernetes API) push plain API-shaped dictionaries in here
and hand them over: the store keeps the very dicts it is given (a provider never changes
one afterwards; at 10,000 Ingresses a copy of each costs megabytes). The store tells its
listener that something changed and hands out merged snapshots. It does not interpret the
objects: translation into the model happens in ``translate``.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

KINDS = ("Ingress", "IngressClass", "Service", "EndpointSlice", "Secret")

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped kinds
Snapshot = Mapping[str, Mapping[Key, dict]]


def object_key(obj: Mapping) -> Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def _owned(obj: Mapping) -> dict:
    return obj if type(obj) is dict else dict(obj)


class ObjectStore:
    """Objects by source and kind. Single-threaded: call it from the reactor thread only."""

    def __init__(self, on_change: Callable[[], None] | None = None):
        self._sources: dict[str, dict[str, dict[Key, dict]]] = {}
        self._synced: dict[str, bool] = {}
        self._merged: dict[str, dict[Key, dict]] = {}  # per kind; dropped when the kind changes
        self.on_change = on_change
        self.generation = 0

    def register(self, source: str) -> None:
        """Declare a source; the store is not synced until every source has synced once."""
        self._sources.setdefault(source, {kind: {} for kind in KINDS})
        self._synced.setdefault(source, False)

    def replace(self, source: str, kind: str, objects: Iterable[Mapping]) -> None:
        """Replace everything ``source`` holds of ``kind`` (a full LIST, a re-read file set)."""
        if kind not in KINDS:
            return
        self.register(source)
        current = self._sources[source][kind]
        fresh: dict[Key, dict] = {}
        for obj in objects:
            key = object_key(obj)
            old = current.get(key)
            # Keep the stored dict when the object is unchanged: object identity is what
            # the translation cache checks, so a re-list of unchanged objects costs nothing.
            fresh[key] = old if old == obj else _owned(obj)
        if fresh != current:
            self._sources[source][kind] = fresh
            self._changed(kind)

    def apply(self, source: str, kind: str, event_type: str, obj: Mapping) -> None:
        """Apply one watch event: ADDED, MODIFIED or DELETED."""
        if kind not in KINDS:
            return
        self.register(source)
        bucket = self._sources[source][kind]
        key = object_key(obj)
        if event_type == "DELETED":
            if bucket.pop(key, None) is None:
                return
        elif bucket.get(key) == obj:
            return
        else:
            bucket[key] = _owned(obj)
        self._changed(kind)

    def set_synced(self, source: str, synced: bool = True) -> None:
        self.register(source)
        was = self.synced
        self._synced[source] = synced
        if self.synced != was:
            self._changed("")  # no objects changed: keep the merged snapshots

    @property
    def synced(self) -> bool:
        return bool(self._synced) and all(self._synced.values())

    def snapshot(self) -> dict[str, dict[Key, dict]]:
        """All objects by kind; a later-registered source wins on a name clash.

        A kind's mapping is the same object between calls until that kind changes (treat
        it as read-only), so consumers can cache what they derive from it.
        """
        result: dict[str, dict[Key, dict]] = {}
        for kind in KINDS:
            merged = self._merged.get(kind)
            if merged is None:
                merged = {}
                for kinds in self._sources.values():
                    merged.update(kinds[kind])
                self._merged[kind] = merged
            result[kind] = merged
        return result

    def _changed(self, kind: str | None = None) -> None:
        if kind is None:
            self._merged.clear()
        else:
            self._merged.pop(kind, None)
        self.generation += 1
        if self.on_change is not None:
            self.on_change()
