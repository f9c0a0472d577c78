"""The object store: the Kubernetes objects every provider has delivered, by kind.

Providers (manifest files, the Kubernetes API) push plain API-shaped dictionaries in here.
The store keeps each object packed (``pack``: marshal bytes deflated against a dictionary of
the API's common field names, about a twentieth of the memory of the dicts: at 10,000
Ingresses the difference is tens of megabytes), tells its listener
that something changed and hands out merged snapshots of packed objects; ``unpack`` gives
a consumer a fresh dict. An unchanged object keeps its very bytes object, so consumers
can tell what changed by identity. The store does not interpret the objects: translation
into the model happens in ``translate``.
"""

from __future__ import annotations

import json
import marshal
import sys
import zlib
from collections import deque
from typing import Callable, Iterable, Mapping

from twisted.python import log

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped kinds
Packed = bytes  # an object as ``pack`` stores it
Snapshot = Mapping[str, Mapping[Key, Packed]]
# Changes remembered per kind for ``StoreSnapshot.changed`` (older ones: the answer is None).
JOURNAL_LENGTH = 512


def object_key(obj: Mapping) -> Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def _skeletons() -> bytes:
    """The preset dictionary objects are deflated against: the marshal form of the field names
    and common values of the kinds a cluster has most of (Ingress, Service, EndpointSlice,
    Secret), so even a small object's names cost a back-reference each. Fixed: changing it
    changes every packed form (harmless within a process, which is the only place they live)."""
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {
        "name": "", "namespace": "", "generation": 1, "creationTimestamp": "", "annotations": {},
        "labels": {}, "uid": "", "resourceVersion": ""}, "spec": {
        "ingressClassName": "", "tls": [{"hosts": [], "secretName": ""}], "rules": [{"host": "", "http": {
            "paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {
                "name": "", "port": {"number": 80, "name": "http"}}}},
                {"path": "/", "pathType": "ImplementationSpecific"}, {"pathType": "Exact"}]}}]}}
    service = {"apiVersion": "v1", "kind": "Service", "spec": {"type": "ClusterIP", "clusterIP": "", "ports": [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}}
    endpoint_slice = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                      "metadata": {"labels": {"kubernetes.io/service-name": ""}},
                      "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                      "endpoints": [{"addresses": [""], "conditions": {"ready": True}}]}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "data": {
        "tls.crt": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t", "tls.key": "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t"}}
    return b"".join(marshal.dumps(obj, 0) for obj in (secret, service, endpoint_slice, ingress))


_PRESET = _skeletons()


def _deflate(data: bytes) -> bytes:
    # Deterministic (one zlib, one level, one preset): equal input gives equal output.
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS, zdict=_PRESET)
    return compressor.compress(data) + compressor.flush()


def _inflate(data: bytes) -> bytes:
    decompressor = zlib.decompressobj(-zlib.MAX_WBITS, zdict=_PRESET)
    return decompressor.decompress(data) + decompressor.flush()


def pack(obj: Mapping) -> Packed:
    """``obj`` in its stored form. Equal objects give equal bytes (marshal format 0 has
    no back-references and does not record interning; the deflate is deterministic); a
    value marshal cannot hold (a YAML timestamp) is stored as the text it would show in
    JSON. ValueError when ``obj`` cannot be stored at all (a YAML alias making it contain
    itself, nesting beyond marshal's limit)."""
    try:
        data = marshal.dumps(obj if type(obj) is dict else dict(obj), 0)
    except ValueError:
        try:
            data = marshal.dumps(json.loads(json.dumps(obj, default=str)), 0)
        except (RecursionError, TypeError, ValueError) as exc:
            raise ValueError(f"cannot be stored: {exc}") from None
    return _deflate(data)


def unpack(data: Packed) -> dict:
    """A packed object as a fresh dict (a new one on every call)."""
    return marshal.loads(_inflate(data))


def __getattr__(name: str):
    # ``KINDS``: the kinds the registered sources of routes read (``ingressd.config.sources``),
    # looked up when first asked for (the sources import the translators, which import this).
    if name == "KINDS":
        from ingressd.config.sources import KINDS

        return KINDS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ObjectStore:
    """Objects by source and kind. Single-threaded: call it from the reactor thread only."""

    def __init__(self, on_change: Callable[[], None] | None = None):
        from ingressd.config.sources import KINDS

        self.kinds: tuple[str, ...] = KINDS  # what it holds; objects of other kinds are ignored
        self._sources: dict[str, dict[str, dict[Key, Packed]]] = {}
        self._synced: dict[str, bool] = {}
        self._merged: dict[str, dict[Key, Packed]] = {}  # per kind; dropped when the kind changes
        self.on_change = on_change
        self.observers: list[Callable[[], None]] = []  # told of every change too (the L4 services)
        self.generation = 0
        # Per kind: (generation, key) of its recent changes, and the last generation whose
        # changes are no longer all listed (``changed``).
        self._journal: dict[str, deque] = {}
        self._horizon: dict[str, int] = {}

    def register(self, source: str) -> None:
        """Declare a source; the store is not synced until every source has synced once."""
        self._sources.setdefault(source, {kind: {} for kind in self.kinds})
        self._synced.setdefault(source, False)

    def replace(self, source: str, kind: str, objects: Iterable[Mapping]) -> set[Key]:
        """Replace everything ``source`` holds of ``kind`` (a full LIST, a re-read file set).
        Returns the keys whose object came, went or changed."""
        return self.replace_packed(source, kind, pack_items(objects, f"{source}: {kind}"))

    def replace_packed(self, source: str, kind: str, items: Iterable[tuple[Key, Packed]]) -> set[Key]:
        """``replace`` with objects already packed, as ``(key, packed)`` pairs."""
        if kind not in self.kinds:
            return set()
        self.register(source)
        current = self._sources[source][kind]
        fresh: dict[Key, Packed] = {}
        for key, data in items:
            old = current.get(key)
            # Keep the stored bytes when the object is unchanged: identity is what the
            # translation cache checks, so a re-list of unchanged objects costs nothing.
            fresh[key] = old if old == data else data
        changed = {key for key in current.keys() | fresh.keys() if current.get(key) is not fresh.get(key)}
        if changed:
            self._sources[source][kind] = fresh
            self._note(kind, changed)
            self._changed(kind)
        return changed

    def apply(self, source: str, kind: str, event_type: str, obj: Mapping) -> bool:
        """Apply one watch event: ADDED, MODIFIED or DELETED. True when it changed something."""
        if kind not in self.kinds:
            return False
        self.register(source)
        bucket = self._sources[source][kind]
        if bucket is self._merged.get(kind):  # shared with a snapshot handed out: copy, never change it
            bucket = self._sources[source][kind] = dict(bucket)
        if event_type == "DELETED":
            if bucket.pop(object_key(obj), None) is None:
                return False
        else:
            items = pack_items((obj,), f"{source}: {kind}")
            if not items:
                return False
            key, data = items[0]
            if bucket.get(key) == data:
                return False
            bucket[key] = data
        self._note(kind, (object_key(obj),))
        self._changed(kind)
        return True

    def get(self, kind: str, key: Key, source: str | None = None) -> dict | None:
        """One object, unpacked: from ``source``, or as the merged snapshot has it."""
        if source is None:
            data = self.snapshot()[kind].get(key)
        else:
            data = self._sources.get(source, {}).get(kind, {}).get(key)
        return None if data is None else unpack(data)

    def set_synced(self, source: str, synced: bool = True) -> None:
        self.register(source)
        was = self.synced
        self._synced[source] = synced
        if self.synced != was:
            self._changed("")  # no objects changed: keep the merged snapshots

    @property
    def synced(self) -> bool:
        return bool(self._synced) and all(self._synced.values())

    def snapshot(self) -> "StoreSnapshot":
        """All objects by kind, packed; a later-registered source wins on a name clash.

        A kind's mapping is the same object between calls until that kind changes (treat
        it as read-only), so consumers can cache what they derive from it; the snapshot also
        says which keys changed since an earlier one (``StoreSnapshot.changed``).
        """
        result = StoreSnapshot(self, self.generation)
        for kind in self.kinds:
            merged = self._merged.get(kind)
            if merged is None:
                buckets = [kinds[kind] for kinds in self._sources.values()]
                if len(buckets) == 1:
                    # One source (the usual case): its own mapping, not a copy (at 10,000 Ingresses
                    # ~0.9 MiB of dicts); ``apply`` copies it before changing it.
                    merged = buckets[0]
                else:
                    merged = {}
                    for bucket in buckets:
                        merged.update(bucket)
                self._merged[kind] = merged
            result[kind] = merged
        return result

    def changed(self, kind: str, since: int) -> frozenset[Key] | None:
        """The keys of ``kind`` whose object came, went or changed after generation ``since``
        (some may have changed back), or None when the store no longer knows (too many changes
        since: a consumer then compares everything)."""
        if since < self._horizon.get(kind, 0) or since > self.generation:
            return None
        journal = self._journal.get(kind, ())
        found = []
        for generation, key in reversed(journal):
            if generation <= since:
                break
            found.append(key)
        return frozenset(found)

    def _note(self, kind: str, keys) -> None:
        """Write the change about to be made (generation + 1) of ``keys`` in ``kind``'s journal."""
        journal = self._journal.get(kind)
        if journal is None:
            journal = self._journal[kind] = deque()
        generation = self.generation + 1
        if len(keys) > JOURNAL_LENGTH:
            journal.clear()
            self._horizon[kind] = generation
            return
        for key in keys:
            if len(journal) >= JOURNAL_LENGTH:
                self._horizon[kind] = journal.popleft()[0]
            journal.append((generation, key))

    def _changed(self, kind: str | None = None) -> None:
        if kind is None:
            self._merged.clear()
        else:
            self._merged.pop(kind, None)
        self.generation += 1
        if self.on_change is not None:
            self.on_change()
        for observer in list(self.observers):
            observer()


class StoreSnapshot(dict):
    """``ObjectStore.snapshot``'s answer: the objects by kind (a dict, as before), and which keys
    changed since an earlier snapshot of the same store (``changed``), so a consumer that derived
    things from that one can redo only what changed."""

    def __init__(self, store: ObjectStore, generation: int) -> None:
        super().__init__()
        self.store = store
        self.generation = generation  # the store's generation this snapshot shows

    def changed(self, kind: str, earlier: "StoreSnapshot") -> frozenset[Key] | None:
        """The keys of ``kind`` that came, went or changed between ``earlier`` and this snapshot,
        or None when that is not known (another store's, or too long ago)."""
        if getattr(earlier, "store", None) is not self.store or earlier.generation > self.generation:
            return None
        # Changes made after this snapshot are not in it: the store's answer may list more keys
        # than this snapshot's changes (harmless: a consumer looks at them again).
        return self.store.changed(kind, earlier.generation)


def own_key(key: Key) -> Key:
    """``key`` in strings of its own, for a key kept beside a packed object: the object's
    own strings would pin the memory of the dicts they were parsed with (its allocator's
    arenas), which is freed once the object is packed. A cluster has few namespaces: one
    copy of each is shared by every key."""
    return (sys.intern(key[0].encode().decode()), key[1].encode().decode())


def pack_items(objects: Iterable[Mapping], where: str) -> list[tuple[Key, Packed]]:
    """``(key, packed)`` for each of ``objects``, as ``replace_packed`` takes them; an object
    that cannot be packed is logged (``where`` it came from) and left out. Thread-safe: a
    provider may pack on its own thread, a page at a time."""
    items = []
    for obj in objects:
        key = own_key(object_key(obj))
        try:
            items.append((key, pack(obj)))
        except ValueError as exc:
            log.msg(f"ingressd: {where} {key[0]}/{key[1]} skipped: {exc}")
    return items
