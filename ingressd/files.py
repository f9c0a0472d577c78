"""The file provider: Kubernetes manifests from files and folders, re-read when they change.

Reads ``*.yaml``, ``*.yml`` and ``*.json`` (multi-document YAML streams, ``kind: List``),
polls modification times, and pushes every object into the store under the source
"files". A file that does not parse keeps its last good content and is logged; an object
without kind or name is skipped and logged; unknown kinds are ignored.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Iterable

import yaml
from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.python import log

from ingressd.store import KINDS, Key, ObjectStore, Packed, object_key, own_key, pack

SOURCE = "files"
_SUFFIXES = (".yaml", ".yml", ".json")


class ManifestError(ValueError):
    pass


def parse_manifest(text: str, name: str = "") -> tuple[list[dict], list[str]]:
    """Objects in one file, and the problems with individual objects in it."""
    if name.endswith(".json"):
        documents: Iterable[Any] = [json.loads(text)]
    else:
        documents = list(yaml.safe_load_all(text))
    objects: list[dict] = []
    problems: list[str] = []
    for index, document in enumerate(_flatten(documents)):
        if document is None:
            continue
        if not isinstance(document, dict):
            problems.append(f"document {index}: not a mapping")
            continue
        kind = document.get("kind")
        meta = document.get("metadata")
        if not kind:
            problems.append(f"document {index}: no kind")
            continue
        if not isinstance(meta, dict) or not meta.get("name"):
            problems.append(f"document {index} ({kind}): no metadata.name")
            continue
        if kind not in KINDS:
            continue
        if kind not in ("IngressClass",):
            meta.setdefault("namespace", "default")
        objects.append(document)
    return objects, problems


def _flatten(documents: Iterable[Any]) -> Iterable[Any]:
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "List":
            yield from document.get("items") or []
        else:
            yield document


class ManifestProvider(Service):
    """Polls the given files and folders (folders recursively) every ``interval`` seconds."""

    def __init__(self, paths: Iterable[str], store: ObjectStore, clock: Any = None, interval: float = 0.5):
        if clock is None:
            from twisted.internet import reactor as clock
        self.paths = [os.path.abspath(p) for p in paths]
        self.store = store
        self.clock = clock
        self.interval = interval
        self._seen: dict[str, tuple[float, int]] = {}
        self._objects: dict[str, list[tuple[str, Key, Packed]]] = {}
        self._loop: LoopingCall | None = None
        store.register(SOURCE)

    def startService(self) -> None:
        super().startService()
        self.scan()
        self._loop = LoopingCall(self.scan)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False)

    def stopService(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return super().stopService()

    def files(self) -> list[str]:
        found: list[str] = []
        for path in self.paths:
            if os.path.isdir(path):
                for root, dirs, names in os.walk(path):
                    dirs.sort()
                    found.extend(os.path.join(root, n) for n in sorted(names) if n.endswith(_SUFFIXES))
            elif os.path.exists(path):
                found.append(path)
        return found

    def scan(self) -> None:
        changed = False
        files = self.files()
        for gone in set(self._seen) - set(files):
            del self._seen[gone]
            self._objects.pop(gone, None)
            changed = True
        for path in files:
            try:
                stat = os.stat(path)
            except OSError:
                continue
            signature = (stat.st_mtime, stat.st_size)
            if self._seen.get(path) == signature:
                continue
            self._seen[path] = signature
            if self._read(path):
                changed = True
        if changed or not self.store.synced:
            self._publish()
        self.store.set_synced(SOURCE)

    def _read(self, path: str) -> bool:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            objects, problems = parse_manifest(text, path)
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
            reason = str(exc).replace("\n", " ")
            log.msg(f"ingressd: manifest {path} cannot be read, keeping its last good content: {reason}")
            return False
        packed = []
        for obj in objects:  # kept packed, as the store keeps them (the very same bytes)
            try:
                packed.append((sys.intern(obj["kind"]), own_key(object_key(obj)), pack(obj)))
            except ValueError as exc:
                problems.append(f"{obj['kind']} {obj['metadata']['name']}: {exc}")
        for problem in problems:
            log.msg(f"ingressd: manifest {path}: {problem}; skipped")
        self._objects[path] = packed
        return True

    def _publish(self) -> None:
        by_kind: dict[str, list[tuple[Key, Packed]]] = {kind: [] for kind in KINDS}
        for path in sorted(self._objects):
            for kind, key, packed in self._objects[path]:
                by_kind[kind].append((key, packed))
        for kind, items in by_kind.items():
            self.store.replace_packed(SOURCE, kind, items)
