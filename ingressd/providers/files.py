"""The file provider: Kubernetes manifests from files and folders, re-read when they change.

Reads ``*.yaml``, ``*.yml`` and ``*.json`` (multi-document YAML streams, ``kind: List``),
polls modification times, and pushes every object into the store under the source
"files". A file that does not parse keeps its last good content and is logged; an object
without kind or name is skipped and logged; kinds no source of routes reads
(``ingressd.config.sources``) are ignored.

Ingresses written as ``extensions/v1beta1`` or ``networking.k8s.io/v1beta1`` are converted
to ``networking.k8s.io/v1`` here, as the API server converts them when it serves them as
v1, so the translator only ever sees v1 (in cluster mode the API server has done it).
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

from ingressd.config.sources import KINDS, SPECS
from ingressd.config.store import Key, ObjectStore, Packed, object_key, own_key, pack

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
        if kind == "Ingress":
            try:
                document = _ingress_v1(document)
            except ManifestError as exc:
                problems.append(f"document {index} (Ingress {meta.get('name')}): {exc}")
                continue
            meta = document["metadata"]
        if SPECS[kind].namespaced:
            meta.setdefault("namespace", "default")
        objects.append(document)
    return objects, problems


# -- Ingress: older API versions, converted as the API server converts them ----------------

_INGRESS_V1 = "networking.k8s.io/v1"
_INGRESS_V1BETA1 = ("networking.k8s.io/v1beta1", "extensions/v1beta1")
_INT32 = (-(2**31), 2**31 - 1)


def _ingress_v1(document: dict) -> dict:
    """``document`` (an Ingress) as ``networking.k8s.io/v1``; ManifestError when it is of
    another version, or not shaped as its version says.

    A v1 Ingress is returned as it is, and so is one without apiVersion (read as v1, as
    every object without one is read here). The two v1beta1 versions have the same fields
    and convert alike (kubernetes pkg/apis/networking/v1beta1 and extensions/v1beta1:
    conversion.go, Convert_v1beta1_IngressSpec_To_networking_IngressSpec and
    Convert_v1beta1_IngressBackend_To_networking_IngressBackend; defaults.go,
    SetDefaults_HTTPIngressPath): ``spec.backend`` becomes ``spec.defaultBackend``, each
    ``serviceName``/``servicePort`` becomes ``service: {name, port: {number | name}}``,
    ``resource`` is kept, and a path without ``pathType`` gets ``ImplementationSpecific``.
    Everything else (ingressClassName, tls, hosts, paths, the kubernetes.io/ingress.class
    annotation) is the same field in both versions and is kept. Returns a new dict; the
    parts it does not change are shared with ``document``.
    """
    version = document.get("apiVersion")
    if version is None or version == _INGRESS_V1:
        return document
    if version not in _INGRESS_V1BETA1:
        raise ManifestError(f"apiVersion {version!r} is not an Ingress version ingressd reads "
                            f"({_INGRESS_V1}, {', '.join(_INGRESS_V1BETA1)})")
    spec = _mapping(document.get("spec"), "spec")
    if "defaultBackend" in spec:  # kubectl's strict field validation refuses it too
        raise ManifestError(f"spec.defaultBackend is not a field of {version} (it is spec.backend there)")
    out_spec = {key: value for key, value in spec.items() if key not in ("backend", "rules")}
    if spec.get("backend") is not None:
        out_spec["defaultBackend"] = _backend_v1(spec["backend"], "spec.backend", version)
    if spec.get("rules") is not None:
        out_spec["rules"] = [
            _rule_v1(rule, f"spec.rules[{index}]", version)
            for index, rule in enumerate(_sequence(spec["rules"], "spec.rules"))
        ]
    converted = dict(document)
    converted["apiVersion"] = _INGRESS_V1
    converted["spec"] = out_spec
    return converted


def _rule_v1(rule: Any, where: str, version: str) -> dict:
    rule = _mapping(rule, where)
    http = rule.get("http")
    if http is None:
        return rule
    http = _mapping(http, f"{where}.http")
    paths = []
    for index, path in enumerate(_sequence(http.get("paths"), f"{where}.http.paths")):
        here = f"{where}.http.paths[{index}]"
        path = dict(_mapping(path, here))
        if path.get("pathType") is None:  # v1beta1's defaulting; v1 has none
            path["pathType"] = "ImplementationSpecific"
        # A null backend decodes to the empty backend (it is not a pointer in v1beta1).
        path["backend"] = _backend_v1(path.get("backend"), f"{here}.backend", version)
        paths.append(path)
    return {**rule, "http": {**http, "paths": paths}}


def _backend_v1(backend: Any, where: str, version: str) -> dict:
    backend = _mapping(backend, where)
    if "service" in backend:
        raise ManifestError(f"{where}.service is not a field of {version} (it is serviceName and servicePort there)")
    name = backend.get("serviceName")
    if name is None:
        name = ""
    if not isinstance(name, str):
        raise ManifestError(f"{where}.serviceName must be a string, got {name!r}")
    port = backend.get("servicePort")
    if port is None:
        port = 0
    # servicePort is an IntOrString: a JSON number is its int, a JSON string its string.
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        raise ManifestError(f"{where}.servicePort must be a port number or a port name, got {port!r}")
    if isinstance(port, int) and not _INT32[0] <= port <= _INT32[1]:
        raise ManifestError(f"{where}.servicePort {port} is out of range")
    out: dict = {}
    if backend.get("resource") is not None:
        out["resource"] = backend["resource"]
    # As the API server: a service when any of its fields is set, a string port counting as
    # set even when empty; port fields left empty are omitted (omitempty in v1).
    if name or isinstance(port, str) or port != 0:
        service_port: dict = {}
        if isinstance(port, str):
            if port:
                service_port["name"] = port
        elif port:
            service_port["number"] = port
        out["service"] = {"name": name, "port": service_port}
    return out


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ManifestError(f"{where} must be a mapping")
    return value


def _sequence(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ManifestError(f"{where} must be a list")
    return value


def _flatten(documents: Iterable[Any]) -> Iterable[Any]:
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "List":
            yield from document.get("items") or []
        else:
            yield document


def manifest_files(paths: Iterable[str]) -> list[str]:
    """The manifest files ``paths`` name: files as given, folders walked in name order for
    ``*.yaml``, ``*.yml`` and ``*.json``; paths that do not exist are left out."""
    found: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                found.extend(os.path.join(root, n) for n in sorted(names) if n.endswith(_SUFFIXES))
        elif os.path.exists(path):
            found.append(path)
    return found


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
        return manifest_files(self.paths)

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
