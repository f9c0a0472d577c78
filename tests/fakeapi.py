"""A fake kube-apiserver speaking the real REST protocol over loopback, for provider tests.

``FakeCluster`` holds the state (objects, a global resourceVersion, an event log, a
compaction floor) and the list/watch/write semantics, with no I/O. ``FakeAPIServer`` serves
it with ``http.server`` from a background thread (its own threads, never the reactor), adds a
fault queue and a request log, and writes a kubeconfig pointing at itself, so the code under
test goes through the official client exactly as in production.

Run standalone for kubectl: ``python -m tests.fakeapi --port 8001``.
"""

from __future__ import annotations

import base64
import bisect
import copy
import datetime
import ipaddress
import json
import re
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

# plural → (group, version, kind, namespaced, extra selectable fields)
RESOURCES: dict[str, tuple[str, str, str, bool, tuple[str, ...]]] = {
    "ingresses": ("networking.k8s.io", "v1", "Ingress", True, ()),
    "ingressclasses": ("networking.k8s.io", "v1", "IngressClass", False, ()),
    "services": ("", "v1", "Service", True, ("spec.clusterIP", "spec.type")),
    "secrets": ("", "v1", "Secret", True, ("type",)),
    "configmaps": ("", "v1", "ConfigMap", True, ()),
    "events": ("", "v1", "Event", True, (
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "reason", "type", "source",
    )),
    "endpointslices": ("discovery.k8s.io", "v1", "EndpointSlice", True, ()),
    "leases": ("coordination.k8s.io", "v1", "Lease", True, ()),
    # Namespaces, and the Gateway API as served with its standard-channel CRDs installed
    # (FakeAPIServer.absent_groups: as a server without them)
    "namespaces": ("", "v1", "Namespace", False, ()),
    "gatewayclasses": ("gateway.networking.k8s.io", "v1", "GatewayClass", False, ()),
    "gateways": ("gateway.networking.k8s.io", "v1", "Gateway", True, ()),
    "httproutes": ("gateway.networking.k8s.io", "v1", "HTTPRoute", True, ()),
    "grpcroutes": ("gateway.networking.k8s.io", "v1", "GRPCRoute", True, ()),
    "listenersets": ("gateway.networking.k8s.io", "v1", "ListenerSet", True, ()),
    "tlsroutes": ("gateway.networking.k8s.io", "v1", "TLSRoute", True, ()),
    "backendtlspolicies": ("gateway.networking.k8s.io", "v1", "BackendTLSPolicy", True, ()),
    "referencegrants": ("gateway.networking.k8s.io", "v1beta1", "ReferenceGrant", True, ()),
}
KIND_TO_PLURAL = {spec[2]: plural for plural, spec in RESOURCES.items()}
STATUS_SUBRESOURCE = {"ingresses", "services", "namespaces", "gatewayclasses", "gateways", "httproutes",
                      "grpcroutes", "listenersets", "tlsroutes", "backendtlspolicies"}

_MICROTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def api_version(plural: str) -> str:
    group, version = RESOURCES[plural][:2]
    return f"{group}/{version}" if group else version


class APIError(Exception):
    """An API failure, rendered as a ``Status`` object with this code and reason."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict:
        body = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- selectors ------------------------------------------------------------------------------


def _split_terms(text: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        terms.append(current.strip())
    return terms


def parse_label_selector(text: str | None) -> Callable[[dict], bool]:
    """The full label selector grammar: =, ==, !=, in, notin, exists, !exists."""
    if not text:
        return lambda labels: True
    checks: list[Callable[[dict], bool]] = []
    for term in _split_terms(text):
        match = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term)
        if match:
            key, op, values = match.group(1), match.group(2), {
                v.strip() for v in match.group(3).split(",") if v.strip()
            }
            if op == "in":
                checks.append(lambda l, k=key, vs=values: l.get(k) in vs)
            else:
                checks.append(lambda l, k=key, vs=values: l.get(k) not in vs)
            continue
        match = re.fullmatch(r"([\w./-]+)\s*(==|!=|=)\s*([\w./-]*)", term)
        if match:
            key, op, value = match.groups()
            if op == "!=":
                checks.append(lambda l, k=key, v=value: l.get(k) != v)
            else:
                checks.append(lambda l, k=key, v=value: l.get(k) == v)
            continue
        match = re.fullmatch(r"(!?)([\w./-]+)", term)
        if match:
            negate, key = match.groups()
            checks.append(lambda l, k=key, n=bool(negate): (k in l) != n)
            continue
        raise APIError(400, "BadRequest", f"unable to parse requirement: {term!r}")
    return lambda labels: all(check(labels) for check in checks)


def _field_value(obj: dict, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def parse_field_selector(plural: str, text: str | None) -> Callable[[dict], bool]:
    """Equality-based field selectors over the fields the resource supports (else 400)."""
    if not text:
        return lambda obj: True
    allowed = {"metadata.name", "metadata.namespace"} | set(RESOURCES[plural][4])
    checks = []
    for term in text.split(","):
        match = re.fullmatch(r"\s*([\w.]+)\s*(==|!=|=)\s*(.*?)\s*", term)
        if not match:
            raise APIError(400, "BadRequest", f"invalid field selector: {term!r}")
        path, op, value = match.groups()
        if path not in allowed:
            raise APIError(
                400, "BadRequest",
                f'"{path}" is not a known field selector: only "metadata.name", "metadata.namespace"',
            )
        if op == "!=":
            checks.append(lambda o, p=path, v=value: _field_value(o, p) != v)
        else:
            checks.append(lambda o, p=path, v=value: _field_value(o, p) == v)
    return lambda obj: all(check(obj) for check in checks)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- the cluster ----------------------------------------------------------------------------


@dataclass
class LogEntry:
    rv: int
    plural: str
    type: str  # ADDED | MODIFIED | DELETED
    obj: dict  # the new state (for DELETED: the last state, with the deletion's rv)
    prev: dict | None


@dataclass
class WatchSpec:
    plural: str
    namespace: str | None
    labels: Callable[[dict], bool]
    fields: Callable[[dict], bool]

    def matches(self, obj: dict | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.labels(meta.get("labels") or {}) and self.fields(obj)


class FakeCluster:
    """Objects, one global resourceVersion, an event log and a compaction floor. Thread-safe."""

    def __init__(self, start_rv: int = 100):
        self.cond = threading.Condition()
        self.rv = start_rv
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.log: list[LogEntry] = []
        self._log_rvs: list[int] = []
        self.compacted_rv = 0
        self.watch_epoch = 0  # bumped by kill_all_watches
        self.paused_at: int | None = None  # watchers see nothing after this rv while set

    # -- writes ---------------------------------------------------------------------------

    def _record(self, plural: str, event: str, obj: dict, prev: dict | None) -> dict:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = (plural, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if event == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        self.log.append(LogEntry(self.rv, plural, event, copy.deepcopy(obj), prev))
        self._log_rvs.append(self.rv)
        self.cond.notify_all()
        return copy.deepcopy(obj)

    def create(self, plural: str, obj: dict, namespace: str | None = None, admit: Callable | None = None) -> dict:
        obj = copy.deepcopy(obj)
        obj["kind"], obj["apiVersion"] = RESOURCES[plural][2], api_version(plural)
        meta = obj.setdefault("metadata", {})
        if RESOURCES[plural][3]:
            namespace = namespace or meta.get("namespace") or "default"
            if meta.get("namespace") not in (None, "", namespace):
                raise APIError(400, "BadRequest", "the namespace of the provided object does "
                               "not match the namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise APIError(422, "Invalid", "name or generateName is required")
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        _validate(plural, obj)
        with self.cond:
            key = (plural, meta.get("namespace", ""), meta["name"])
            if key in self.objects:
                raise APIError(409, "AlreadyExists",
                               f'{plural} "{meta["name"]}" already exists',
                               {"name": meta["name"], "kind": plural})
            meta.pop("resourceVersion", None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            meta["generation"] = 1
            if admit is not None:  # validating admission: after defaulting and validation
                admit("CREATE", plural, copy.deepcopy(obj), None)
            return self._record(plural, "ADDED", obj, None)

    def update(self, plural: str, obj: dict, subresource: str | None = None,
               raw: bool = False, admit: Callable | None = None) -> dict:
        """PUT: 409 on a stale resourceVersion; keeps status (main) or spec (``/status``).

        ``raw`` (the Python test API) replaces the object whole, status included.
        """
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        namespace = meta.get("namespace", "") if RESOURCES[plural][3] else ""
        with self.cond:
            key = (plural, namespace, meta.get("name", ""))
            old = self.objects.get(key)
            if old is None:
                raise APIError(404, "NotFound", f'{plural} "{meta.get("name")}" not found',
                               {"name": meta.get("name"), "kind": plural})
            given = meta.get("resourceVersion")
            if given and given != old["metadata"]["resourceVersion"]:
                raise APIError(
                    409, "Conflict",
                    f'Operation cannot be fulfilled on {plural} "{meta["name"]}": the object '
                    "has been modified; please apply your changes to the latest version and "
                    "try again", {"name": meta["name"], "kind": plural})
            new = copy.deepcopy(old) if not raw else {}
            if raw:
                new = obj
            elif subresource == "status":
                new["status"] = obj.get("status")
            else:
                for name, value in obj.items():
                    if name not in ("status", "metadata", "kind", "apiVersion"):
                        new[name] = value
                for name in ("labels", "annotations"):
                    new["metadata"][name] = meta.get(name)
                    if new["metadata"][name] is None:
                        del new["metadata"][name]
                if plural not in STATUS_SUBRESOURCE and "status" in obj:
                    new["status"] = obj["status"]
            new["kind"], new["apiVersion"] = RESOURCES[plural][2], api_version(plural)
            for name in ("uid", "creationTimestamp", "namespace", "name"):
                if name in old["metadata"]:
                    new["metadata"][name] = old["metadata"][name]
            generation = old["metadata"].get("generation", 1)
            if new.get("spec") != old.get("spec"):
                generation += 1
            new["metadata"]["generation"] = generation
            _validate(plural, new)
            if admit is not None and subresource is None:
                admit("UPDATE", plural, copy.deepcopy(new), copy.deepcopy(old))
            if new == old:  # a no-op write does not bump the resourceVersion
                return copy.deepcopy(old)
            return self._record(plural, "MODIFIED", new, copy.deepcopy(old))

    def patch(self, plural: str, namespace: str, name: str, patch: dict,
              subresource: str | None = None, admit: Callable | None = None) -> dict:
        with self.cond:
            old = self.get(plural, namespace, name)
            merged = merge_patch(old, patch)
            # a resourceVersion in the patch is a precondition (409 Conflict when stale), as
            # on the real server; without one the patch applies to whatever is there
            given = (patch.get("metadata") or {}).get("resourceVersion")
            merged.setdefault("metadata", {})["resourceVersion"] = given or old["metadata"]["resourceVersion"]
            return self.update(plural, merged, subresource, admit=admit)

    def delete(self, plural: str, namespace: str, name: str) -> dict:
        with self.cond:
            old = self.objects.get((plural, namespace, name))
            if old is None:
                raise APIError(404, "NotFound", f'{plural} "{name}" not found',
                               {"name": name, "kind": plural})
            return self._record(plural, "DELETED", copy.deepcopy(old), copy.deepcopy(old))

    def get(self, plural: str, namespace: str, name: str) -> dict:
        with self.cond:
            obj = self.objects.get((plural, namespace, name))
            if obj is None:
                raise APIError(404, "NotFound", f'{plural} "{name}" not found',
                               {"name": name, "kind": plural})
            return copy.deepcopy(obj)

    # -- the Python API for tests -------------------------------------------------------------

    def apply(self, obj: dict) -> dict:
        """Create or replace (status included) an object given in full, by its ``kind``."""
        plural = KIND_TO_PLURAL[obj["kind"]]
        meta = obj.get("metadata", {})
        key = (plural, meta.get("namespace", "default") if RESOURCES[plural][3] else "",
               meta["name"])
        with self.cond:
            if key not in self.objects:
                return self.create(plural, obj)
            obj = copy.deepcopy(obj)
            if key[1]:
                obj["metadata"].setdefault("namespace", key[1])
            obj["metadata"].pop("resourceVersion", None)
            return self.update(plural, obj, raw=True)

    def remove(self, kind: str, namespace: str, name: str) -> dict:
        return self.delete(KIND_TO_PLURAL[kind], namespace, name)

    def compact(self, upto: int | None = None) -> int:
        """Forget history up to ``upto`` (default: now): older versions get 410 Expired."""
        with self.cond:
            upto = self.rv if upto is None else upto
            self.compacted_rv = max(self.compacted_rv, upto)
            cut = bisect.bisect_right(self._log_rvs, self.compacted_rv)
            del self.log[:cut]
            del self._log_rvs[:cut]
            return self.compacted_rv

    def kill_all_watches(self) -> None:
        """Drop every open watch connection (an apiserver restart)."""
        with self.cond:
            self.watch_epoch += 1
            self.cond.notify_all()

    def pause_events(self) -> None:
        with self.cond:
            self.paused_at = self.rv

    def resume_events(self) -> None:
        with self.cond:
            self.paused_at = None
            self.cond.notify_all()

    def objects_of(self, kind: str, namespace: str | None = None) -> list[dict]:
        plural = KIND_TO_PLURAL[kind]
        with self.cond:
            return [copy.deepcopy(o) for (p, ns, _), o in sorted(self.objects.items())
                    if p == plural and (namespace is None or ns == namespace)]

    # -- reads ------------------------------------------------------------------------------

    def state_at(self, plural: str, rv: int) -> dict[tuple[str, str], dict]:
        """The objects of ``plural`` as they were at ``rv`` (410 if compacted)."""
        with self.cond:
            if rv < self.compacted_rv:
                raise _expired(rv, self.compacted_rv)
            state = {(ns, name): obj for (p, ns, name), obj in self.objects.items() if p == plural}
            start = bisect.bisect_right(self._log_rvs, rv)
            for entry in reversed(self.log[start:]):
                if entry.plural != plural:
                    continue
                meta = entry.obj["metadata"]
                key = (meta.get("namespace", ""), meta["name"])
                if entry.type == "ADDED":
                    state.pop(key, None)
                else:
                    state[key] = entry.prev
            return {k: copy.deepcopy(v) for k, v in state.items()}

    def list(self, plural: str, spec: WatchSpec, query: dict[str, str]) -> dict:
        limit = int(query.get("limit") or 0)
        token = query.get("continue")
        start_after = ""
        with self.cond:
            if token:
                try:
                    decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
                    at, start_after = int(decoded["rv"]), decoded["start"]
                except (ValueError, KeyError, TypeError):
                    raise APIError(400, "BadRequest", "invalid continue token")
                if at < self.compacted_rv:
                    raise APIError(
                        410, "Expired", "The provided continue parameter is too old to display "
                        "a consistent list result. You can start a new list without the "
                        "continue parameter.")
            else:
                at = self.rv
                requested = query.get("resourceVersion")
                match = query.get("resourceVersionMatch")
                if requested not in (None, "", "0"):
                    try:
                        wanted = int(requested)
                    except ValueError:
                        raise APIError(400, "BadRequest", f"invalid resourceVersion {requested!r}")
                    if match == "Exact":
                        at = wanted
                    elif wanted > self.rv:
                        raise APIError(504, "Timeout", f"Too large resource version: {wanted}, "
                                       f"current: {self.rv}")
            state = self.state_at(plural, at)
        keys = sorted(k for k, o in state.items() if spec.matches(o))
        keys = [k for k in keys if "/".join(k) > start_after] if start_after else keys
        items = []
        for key in keys:
            obj = state[key]
            obj.pop("kind", None)  # list items carry no kind/apiVersion (kubernetes#3030)
            obj.pop("apiVersion", None)
            items.append(obj)
        meta: dict[str, Any] = {"resourceVersion": str(at)}
        if limit and len(items) > limit:
            last = "/".join(keys[limit - 1])
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps({"rv": at, "start": last}).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        kind = RESOURCES[plural][2]
        return {"kind": f"{kind}List", "apiVersion": api_version(plural), "metadata": meta,
                "items": items}

    def watch_events(self, spec: WatchSpec, after: int) -> tuple[list[dict], int]:
        """Events for ``spec`` after ``after`` (call with ``cond`` held): (events, new position)."""
        if after < self.compacted_rv:
            raise _expired(after, self.compacted_rv)
        limit = self.rv if self.paused_at is None else self.paused_at
        start = bisect.bisect_right(self._log_rvs, after)
        events = []
        for entry in self.log[start:]:
            if entry.rv > limit:
                break
            if entry.plural != spec.plural:
                continue
            now, before = spec.matches(entry.obj), spec.matches(entry.prev)
            if entry.type == "ADDED" and now:
                events.append({"type": "ADDED", "object": entry.obj})
            elif entry.type == "MODIFIED" and now:
                events.append({"type": "MODIFIED" if before else "ADDED", "object": entry.obj})
            elif entry.type == "MODIFIED" and before:
                gone = copy.deepcopy(entry.prev)
                gone["metadata"]["resourceVersion"] = str(entry.rv)
                events.append({"type": "DELETED", "object": gone})
            elif entry.type == "DELETED" and before:
                events.append({"type": "DELETED", "object": entry.obj})
        return copy.deepcopy(events), max(after, limit)


def _expired(rv: int, floor: int) -> APIError:
    return APIError(410, "Expired", f"too old resource version: {rv} ({floor})")


def _validate(plural: str, obj: dict) -> None:
    """Light validation that catches real client bugs."""
    name = obj["metadata"]["name"]
    if plural != "events" and not _DNS1123_SUBDOMAIN.match(name):
        raise APIError(422, "Invalid", f'metadata.name: Invalid value: "{name}"')
    if plural == "ingresses":
        for entry in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            if "ip" in entry:
                try:
                    ipaddress.ip_address(entry["ip"])
                except ValueError:
                    raise APIError(422, "Invalid", f"status.loadBalancer.ingress.ip: Invalid "
                                   f"value: {entry['ip']!r}: must be a valid IP address")
            if "hostname" in entry:
                try:
                    ipaddress.ip_address(entry["hostname"])
                except ValueError:
                    pass
                else:
                    raise APIError(422, "Invalid", "status.loadBalancer.ingress.hostname: "
                                   "must be a DNS name, not an IP address")
        for rule in (obj.get("spec") or {}).get("rules") or []:
            for path in ((rule.get("http") or {}).get("paths")) or []:
                if "pathType" not in path:
                    raise APIError(422, "Invalid", "spec.rules.http.paths.pathType: Required value")
    if plural == "leases":
        for field_name in ("acquireTime", "renewTime"):
            value = (obj.get("spec") or {}).get(field_name)
            if value is not None and not _MICROTIME.match(value):
                raise APIError(400, "BadRequest", f"spec.{field_name}: parsing time {value!r} "
                               'as "2006-01-02T15:04:05.000000Z07:00": cannot parse')
    if plural == "events":
        involved = obj.get("involvedObject") or {}
        if involved.get("namespace") != obj["metadata"].get("namespace"):
            raise APIError(422, "Invalid", "involvedObject.namespace: Invalid value: does not "
                           "match event.namespace")
        for field_name in ("kind", "name"):
            if not involved.get(field_name):
                raise APIError(422, "Invalid", f"involvedObject.{field_name}: Required value")
    if plural == "secrets" and obj.get("type") == "kubernetes.io/tls":
        data = obj.get("data") or {}
        if "tls.crt" not in data or "tls.key" not in data:
            raise APIError(422, "Invalid", "data[tls.crt]/data[tls.key]: Required value")
    if plural == "endpointslices" and "addressType" not in obj:
        raise APIError(422, "Invalid", "addressType: Required value")
    if plural in GATEWAY_STATUS and obj.get("status") is not None:
        _validate_gateway_status(plural, obj["status"])


# The Gateway API kinds with a status, as their CRDs' schemas check it (standard channel).
GATEWAY_STATUS = ("gatewayclasses", "gateways", "httproutes", "grpcroutes", "tlsroutes")
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_REASON = re.compile(r"^([A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?)$")


def _validate_conditions(where: str, conditions: Any) -> None:
    """metav1.Condition as the CRD schema has it: every field but observedGeneration required."""
    if not isinstance(conditions, list) or len(conditions) > 8:
        raise APIError(422, "Invalid", f"{where}.conditions: Invalid value: a list of at most 8 items")
    for condition in conditions:
        for field_name in ("type", "status", "reason", "message", "lastTransitionTime"):
            if not isinstance(condition, dict) or field_name not in condition:
                raise APIError(422, "Invalid", f"{where}.conditions.{field_name}: Required value")
        if condition["status"] not in ("True", "False", "Unknown"):
            raise APIError(422, "Invalid", f'{where}.conditions.status: Unsupported value: "{condition["status"]}"')
        if not _RFC3339.match(str(condition["lastTransitionTime"])):
            raise APIError(422, "Invalid", f"{where}.conditions.lastTransitionTime: Invalid value: "
                           f'"{condition["lastTransitionTime"]}": must be an RFC 3339 date-time')
        if not _REASON.match(str(condition["reason"])):
            raise APIError(422, "Invalid", f'{where}.conditions.reason: Invalid value: "{condition["reason"]}"')
        generation = condition.get("observedGeneration")
        if generation is not None and (not isinstance(generation, int) or generation < 0):
            raise APIError(422, "Invalid", f"{where}.conditions.observedGeneration: Invalid value")


def _validate_gateway_status(plural: str, status: Any) -> None:
    if not isinstance(status, dict):
        raise APIError(422, "Invalid", "status: Invalid value: must be an object")
    if "conditions" in status:
        _validate_conditions("status", status["conditions"])
    for listener in status.get("listeners") or ():
        for field_name in ("name", "attachedRoutes", "conditions"):
            if field_name not in listener:
                raise APIError(422, "Invalid", f"status.listeners.{field_name}: Required value")
        _validate_conditions("status.listeners", listener["conditions"])
    parents = status.get("parents")
    if parents is not None:
        if not isinstance(parents, list) or len(parents) > 32:
            raise APIError(422, "Invalid", "status.parents: Too many: must have at most 32 items")
        for parent in parents:
            for field_name in ("parentRef", "controllerName", "conditions"):
                if field_name not in parent:
                    raise APIError(422, "Invalid", f"status.parents.{field_name}: Required value")
            if not (parent["parentRef"] or {}).get("name"):
                raise APIError(422, "Invalid", "status.parents.parentRef.name: Required value")
            _validate_conditions("status.parents", parent["conditions"])


# -- faults ---------------------------------------------------------------------------------


@dataclass
class Fault:
    """One scripted misbehaviour, used by the first matching request(s).

    ``action``: "status" (answer ``code``), "delay" (sleep ``seconds`` then answer normally),
    "reset" (RST before any response), "hang" (watch headers, then ``seconds`` of silence,
    then RST), "drop_after" (a watch: ``events`` events, half a chunk, RST), "close_after"
    (a watch: ``events`` events, then a clean end), "garbage" (a watch: a non-JSON line
    first), "error_event" (a watch: a 200 stream carrying one ERROR event with ``code``).
    """

    action: str
    code: int = 500
    seconds: float = 0.0
    events: int = 0
    method: str | None = None  # match: HTTP method
    path: str | None = None  # match: a regular expression searched in the path
    watch: bool | None = None  # match: watch requests only (True) or never (False)
    times: int = 1
    retry_after: int | None = None

    def matches(self, method: str, path: str, watch: bool) -> bool:
        if self.method and self.method != method:
            return False
        if self.path and not re.search(self.path, path):
            return False
        return self.watch is None or self.watch == watch


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    watch: bool = False
    status: int = 0


# -- the HTTP server ------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (BaseHTTPRequestHandler's name)
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        watch = query.get("watch") in ("true", "1")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        record = Request(method, parts.path, query, {k.lower(): v for k, v in self.headers.items()},
                         None, watch)
        try:
            record.body = json.loads(raw) if raw else None
        except ValueError:
            record.body = raw
        fault = fake._take_fault(method, parts.path, watch)
        fake._log(record)
        try:
            if fault is not None and fault.action == "delay":
                time.sleep(fault.seconds)
                fault = None
            if fault is not None and fault.action == "reset":
                self._reset()
                return
            if fault is not None and fault.action == "status":
                raise APIError(fault.code, _REASONS.get(fault.code, "InternalError"),
                               f"injected fault {fault.code}")
            if fake.token and (self.headers.get("Authorization") or "").lower() != (
                    f"bearer {fake.token}".lower()):
                raise APIError(401, "Unauthorized", "Unauthorized")
            if method == "GET" and parts.path == "/version":
                self._json(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-fake"})
                return
            route = _route(parts.path)
            if RESOURCES[route[0]][0] in fake.absent_groups:
                raise APIError(404, "NotFound", "the server could not find the requested resource")
            self._dispatch(method, route, query, raw, watch, fault, record)
        except APIError as error:
            record.status = error.code
            self._json(error.code, error.status(),
                       {"Retry-After": str(fault.retry_after)}
                       if fault is not None and fault.retry_after else None)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _dispatch(self, method: str, route: tuple, query: dict, raw: bytes, watch: bool,
                  fault: Fault | None, record: Request) -> None:
        cluster = self.server.fake.cluster
        plural, namespace, name, sub = route
        if method == "GET" and name is None:
            spec = WatchSpec(plural, namespace, parse_label_selector(query.get("labelSelector")),
                             parse_field_selector(plural, query.get("fieldSelector")))
            if watch:
                record.status = 200
                self._watch(spec, query, fault)
            else:
                record.status = 200
                self._json(200, cluster.list(plural, spec, query))
            return
        if sub is not None and (sub != "status" or plural not in STATUS_SUBRESOURCE
                                or method not in ("GET", "PUT", "PATCH")):
            raise APIError(405, "MethodNotAllowed", f"{method} is not supported on {sub}")
        content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0]
        body = None
        if method in ("POST", "PUT", "PATCH"):
            if method == "PATCH" and content_type not in (
                    "application/merge-patch+json", "application/strategic-merge-patch+json"):
                raise APIError(415, "UnsupportedMediaType",
                               f"the body of the request was in an unknown format: {content_type}")
            if method != "PATCH" and content_type != "application/json":
                raise APIError(415, "UnsupportedMediaType", f"unsupported: {content_type}")
            try:
                body = json.loads(raw)
            except ValueError:
                raise APIError(400, "BadRequest", "invalid JSON body")
            if not isinstance(body, dict):
                raise APIError(400, "BadRequest", "the body must be an object")
        if method == "GET":
            result, code = cluster.get(plural, namespace or "", name), 200
        elif method == "POST" and name is None:
            if RESOURCES[plural][3] and namespace is None:
                raise APIError(405, "MethodNotAllowed", "POST needs a namespace")
            result, code = cluster.create(plural, body, namespace, admit=self.server.fake.admit), 201
        elif method == "PUT" and name is not None:
            meta = body.setdefault("metadata", {})
            if meta.get("name") not in (None, name):
                raise APIError(400, "BadRequest", "the name of the object does not match the URL")
            meta["name"] = name
            if namespace:
                meta["namespace"] = namespace
            result, code = cluster.update(plural, body, sub, admit=self.server.fake.admit), 200
        elif method == "PATCH" and name is not None:
            result, code = cluster.patch(plural, namespace or "", name, body, sub, admit=self.server.fake.admit), 200
        elif method == "DELETE" and name is not None:
            result, code = cluster.delete(plural, namespace or "", name), 200
        else:
            raise APIError(405, "MethodNotAllowed", f"{method} is not allowed here")
        record.status = code
        self._json(code, result)

    # -- watch --------------------------------------------------------------------------

    def _watch(self, spec: WatchSpec, query: dict, fault: Fault | None) -> None:
        fake, cluster = self.server.fake, self.server.fake.cluster
        requested = query.get("resourceVersion")
        if requested not in (None, "", "0"):
            try:
                int(requested)
            except ValueError:
                raise APIError(400, "BadRequest", f"invalid resourceVersion {requested!r}")
        timeout = float(query.get("timeoutSeconds") or fake.default_watch_timeout)
        deadline = time.monotonic() + timeout
        bookmarks = query.get("allowWatchBookmarks") == "true"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        if fault is not None and fault.action == "hang":
            time.sleep(fault.seconds)
            self._reset()
            return
        if fault is not None and fault.action == "garbage":
            self._chunk(b"this is not json\n")
        if fault is not None and fault.action == "error_event":
            self._send_event({"type": "ERROR", "object": APIError(
                fault.code, _REASONS.get(fault.code, "InternalError"),
                f"injected error event {fault.code}").status()})
            self._end()
            return
        sent = 0
        kind = RESOURCES[spec.plural][2]
        with cluster.cond:
            epoch = cluster.watch_epoch
            initial: list[dict] = []
            if requested in (None, "", "0"):
                position = cluster.rv if cluster.paused_at is None else cluster.paused_at
                state = cluster.state_at(spec.plural, position)
                initial = [{"type": "ADDED", "object": state[k]}
                           for k in sorted(state) if spec.matches(state[k])]
            else:
                position = int(requested)
                if position < cluster.compacted_rv:
                    initial = [{"type": "ERROR", "object": _expired(
                        position, cluster.compacted_rv).status()}]
                    position = -1
        if position < 0:  # too old: a 200 stream with one ERROR 410, then the end
            self._send_event(initial[0])
            self._end()
            return
        for event in initial:
            if not self._deliver(event, fault, sent):
                return
            sent += 1
        next_bookmark = time.monotonic() + fake.bookmark_interval
        while True:
            if not self._deliver(None, fault, sent):  # a fault ending the stream here
                return
            with cluster.cond:
                while True:
                    now = time.monotonic()
                    if fake.stopping or cluster.watch_epoch != epoch:
                        break
                    try:
                        events, new_position = cluster.watch_events(spec, position)
                    except APIError as error:  # compacted under an open watch
                        events, new_position = [{"type": "ERROR", "object": error.status()}], -1
                    if events or new_position < 0 or now >= deadline or (
                            bookmarks and now >= next_bookmark):
                        break
                    wake = deadline if not bookmarks else min(deadline, next_bookmark)
                    cluster.cond.wait(max(0.0, min(wake - now, 0.5)))
                killed = fake.stopping or cluster.watch_epoch != epoch
            if killed:
                self._reset()
                return
            if new_position < 0:
                self._send_event(events[0])
                self._end()
                return
            position = new_position
            for event in events:
                if not self._deliver(event, fault, sent):
                    return
                sent += 1
            now = time.monotonic()
            if bookmarks and (now >= next_bookmark or now >= deadline):
                self._send_event({"type": "BOOKMARK", "object": {
                    "kind": kind, "apiVersion": api_version(spec.plural),
                    "metadata": {"resourceVersion": str(position)}}})
                fake.bookmarks_sent += 1
                next_bookmark = now + fake.bookmark_interval
            if now >= deadline:
                self._end()
                return

    def _deliver(self, event: dict | None, fault: Fault | None, sent: int) -> bool:
        """Send one event unless the fault says the stream ends first; False when it ended."""
        if fault is not None and fault.action == "drop_after" and sent >= fault.events:
            self._chunk_raw(b"40\r\n{\"type\":\"MODIFIED\",\"obj")
            self._reset()
            return False
        if fault is not None and fault.action == "close_after" and sent >= fault.events:
            self._end()
            return False
        if event is not None:
            self._send_event(event)
        return True

    def _send_event(self, event: dict) -> None:
        self._chunk(json.dumps(event, separators=(",", ":")).encode() + b"\n")

    def _chunk(self, data: bytes) -> None:
        self._chunk_raw(b"%x\r\n%s\r\n" % (len(data), data))

    def _chunk_raw(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            pass

    def _end(self) -> None:
        """A clean end of the stream; the connection stays open for the next request."""
        self._chunk_raw(b"0\r\n\r\n")

    def _reset(self) -> None:
        """Abort the connection with an RST (SO_LINGER 0), as a crashed server would."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def _json(self, code: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            409: "Conflict", 410: "Expired", 429: "TooManyRequests", 500: "InternalError",
            503: "ServiceUnavailable", 504: "Timeout"}


def _route(path: str) -> tuple[str, str | None, str | None, str | None]:
    """(plural, namespace, name, subresource) for an API path, or a 404 APIError."""
    segments = [s for s in path.split("/") if s]
    if segments[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", segments[2:]
    elif len(segments) >= 3 and segments[0] == "apis":
        group, version, rest = segments[1], segments[2], segments[3:]
    else:
        raise APIError(404, "NotFound", "the server could not find the requested resource")
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise APIError(404, "NotFound", "the server could not find the requested resource")
    plural = rest[0]
    spec = RESOURCES.get(plural)
    if spec is None or spec[0] != group or spec[1] != version or (
            namespace is not None and not spec[3]):
        raise APIError(404, "NotFound", "the server could not find the requested resource")
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if name is not None and spec[3] and namespace is None:
        raise APIError(404, "NotFound", "the server could not find the requested resource")
    return plural, namespace, name, sub


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # a deep accept queue like the real API server's: every reflector (re)lists at once after a compaction,
    # and with socketserver's 5 a loaded machine dropped connections (a 1 s connect timeout in the tests)
    request_queue_size = 128
    fake: "FakeAPIServer"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        with self.sockets_lock:
            self.open_sockets.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients dropping idle keep-alive connections is normal, not worth a traceback

    def drop_connections(self) -> None:
        """Abort every open connection, idle keep-alive ones included."""
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@dataclass
class Webhook:
    """A ValidatingWebhookConfiguration's webhook: HTTPS on 127.0.0.1:``port``, verified with
    ``ca_pem`` for ``server_name`` (the Service's DNS name), as the API server calls it."""

    name: str
    port: int
    ca_pem: bytes
    server_name: str
    path: str = "/"
    resources: tuple[str, ...] = ("ingresses",)
    operations: tuple[str, ...] = ("CREATE", "UPDATE")
    failure_policy: str = "Fail"
    timeout: float = 10.0

    def call(self, operation: str, plural: str, obj: dict, old: dict | None) -> list[str]:
        import http.client
        import ssl

        group, version, kind = RESOURCES[plural][0], RESOURCES[plural][1], RESOURCES[plural][2]
        gvk = {"group": group, "version": version, "kind": kind}
        gvr = {"group": group, "version": version, "resource": plural}
        meta = obj.get("metadata") or {}
        uid = str(uuid.uuid4())
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": meta.get("name", ""), "namespace": meta.get("namespace", ""), "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": obj, "oldObject": old, "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1",
                        "kind": "CreateOptions" if operation == "CREATE" else "UpdateOptions"}}}
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
            connection = http.client.HTTPSConnection(self.server_name, self.port, timeout=self.timeout)
            connection.sock = context.wrap_socket(sock, server_hostname=self.server_name)
            try:
                connection.request("POST", f"{self.path}?timeout={int(self.timeout)}s", body=json.dumps(review),
                                   headers={"Content-Type": "application/json", "Accept": "application/json"})
                answer = connection.getresponse()
                data = answer.read()
            finally:
                connection.close()
            if answer.status != 200:
                raise ValueError(f"the server responded with status {answer.status}")
            response = json.loads(data)["response"]
            if response.get("uid") != uid:
                raise ValueError(f"expected response.uid={uid!r}, got {response.get('uid')!r}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if self.failure_policy == "Ignore":
                return []
            raise APIError(500, "InternalError",
                           f'Internal error occurred: failed calling webhook "{self.name}": {exc}') from None
        if not response.get("allowed"):
            status = response.get("status") or {}
            raise APIError(int(status.get("code") or 400), status.get("reason") or "BadRequest",
                           f'admission webhook "{self.name}" denied the request: {status.get("message", "")}')
        return list(response.get("warnings") or ())


class FakeAPIServer:
    """The fake apiserver on 127.0.0.1 (a random port unless given), in background threads.

    ``cluster`` is the state and its Python API (apply, remove, compact, …); ``add_fault``
    scripts misbehaviour; ``requests`` logs every request; ``stop``/``start`` simulate an
    outage on the same port.
    """

    def __init__(self, port: int = 0, token: str | None = None, bookmark_interval: float = 0.5,
                 default_watch_timeout: float = 1800.0):
        self.cluster = FakeCluster()
        self.port = port
        self.token = token
        self.bookmark_interval = bookmark_interval
        self.default_watch_timeout = default_watch_timeout
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.bookmarks_sent = 0
        self.stopping = False
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.webhooks: list[Webhook] = []  # validating admission webhooks, called as the API server calls them
        self.admission_warnings: list[str] = []  # what they answered in response.warnings
        # API groups answered 404 as by a server without their CRDs ("gateway.networking.k8s.io")
        self.absent_groups: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeAPIServer":
        self.stopping = False
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name=f"fakeapi:{self.port}")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering (connections refused) and drop every open watch."""
        if self._server is None:
            return
        self.stopping = True
        with self.cluster.cond:
            self.cluster.cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._server.drop_connections()
        self._thread.join(5)
        self._server = None

    def __enter__(self) -> "FakeAPIServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- validating admission webhooks ------------------------------------------------------

    def admit(self, operation: str, plural: str, obj: dict, old: dict | None) -> None:
        """Call each registered webhook whose rules match, as the API server does for a write
        through the API (not for the Python API's ``apply``); APIError when one refuses, or
        when a call fails and its failurePolicy is Fail."""
        for webhook in self.webhooks:
            if plural in webhook.resources and operation in webhook.operations:
                self.admission_warnings.extend(webhook.call(operation, plural, obj, old))

    # -- faults and the request log ---------------------------------------------------------

    def add_fault(self, action: str, **kwargs: Any) -> Fault:
        fault = Fault(action, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take_fault(self, method: str, path: str, watch: bool) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path, watch):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def calls(self, method: str | None = None, path: str | None = None,
              watch: bool | None = None) -> list[Request]:
        """Logged requests matching a method, a path regular expression and watch-ness."""
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method)
                    and (path is None or re.search(path, r.path))
                    and (watch is None or r.watch == watch)]

    # -- kubeconfig -------------------------------------------------------------------------

    def write_kubeconfig(self, path: str, namespace: str = "default") -> str:
        """Write a kubeconfig whose current context points at this server; returns ``path``."""
        user: dict[str, Any] = {"token": self.token} if self.token else {}
        config = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": user}],
            "contexts": [{"name": "fake", "context": {
                "cluster": "fake", "user": "fake", "namespace": namespace}}],
            "current-context": "fake",
        }
        with open(path, "w") as out:
            json.dump(config, out)  # JSON is YAML
        return path


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--kubeconfig", help="also write a kubeconfig pointing here")
    args = parser.parse_args(argv)
    server = FakeAPIServer(port=args.port).start()
    if args.kubeconfig:
        server.write_kubeconfig(args.kubeconfig)
    print(f"fake apiserver on {server.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()


# -- object builders for tests (schema-valid: the client's models reject missing fields) ----


def ingress(name: str, namespace: str = "default", host: str = "app.example.com",
            service: str = "web", port: int = 80, ingress_class: str | None = "ingressd",
            **metadata: Any) -> dict:
    spec: dict[str, Any] = {"rules": [{"host": host, "http": {"paths": [{
        "path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": service, "port": {"number": port}}}}]}}]}
    if ingress_class:
        spec["ingressClassName"] = ingress_class
    return {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1",
            "metadata": dict(metadata, name=name, namespace=namespace), "spec": spec}


def ingress_class(name: str = "ingressd",
                  controller: str = "ingressd.io/ingress-controller") -> dict:
    return {"kind": "IngressClass", "apiVersion": "networking.k8s.io/v1",
            "metadata": {"name": name}, "spec": {"controller": controller}}


def service(name: str, namespace: str = "default", port: int = 80, type: str = "ClusterIP",
            cluster_ip: str = "10.96.0.10", lb: list[dict] | None = None) -> dict:
    obj = {"kind": "Service", "apiVersion": "v1",
           "metadata": {"name": name, "namespace": namespace},
           "spec": {"type": type, "clusterIP": cluster_ip,
                    "ports": [{"name": "http", "port": port, "protocol": "TCP",
                               "targetPort": 8080}]},
           "status": {"loadBalancer": {"ingress": lb} if lb else {}}}
    return obj


def endpoint_slice(name: str, service_name: str, namespace: str = "default",
                   addresses: tuple[str, ...] = ("10.0.0.5",), port: int = 8080) -> dict:
    return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}
                          for address in addresses],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}


def secret(name: str, namespace: str = "default", type: str = "kubernetes.io/tls",
           data: dict[str, bytes] | None = None) -> dict:
    if data is None:
        data = ({"tls.crt": b"-----BEGIN CERTIFICATE-----\n", "tls.key": b"-----BEGIN KEY-----\n"}
                if type == "kubernetes.io/tls" else {"auth": b"user:hash"})
    return {"kind": "Secret", "apiVersion": "v1", "type": type,
            "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


# -- for Twisted tests ------------------------------------------------------------------------


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
               what: str = ""):
    """A Deferred that fires once ``predicate()`` is true, or fails after ``timeout`` seconds.

    Polls on the global reactor, so reactor-thread work (deliveries) keeps running meanwhile.
    """
    from twisted.internet import reactor, task

    deadline = time.monotonic() + timeout

    def poll(_: Any = None) -> Any:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        return task.deferLater(reactor, interval, lambda: None).addCallback(poll)

    return task.deferLater(reactor, 0, poll)


def sleep(seconds: float):
    from twisted.internet import reactor, task

    return task.deferLater(reactor, seconds, lambda: None)


# KubeTimings(**FAST_TIMINGS): every provider delay shrunk so that tests stay short.
FAST_TIMINGS = dict(backoff_initial=0.05, backoff_max=0.3, watch_timeout=5, watch_read_slack=2,
                    resync_period=600, connect_timeout=1, request_timeout=2, lease_duration=1.5,
                    renew_deadline=1.0, retry_period=0.2, status_resync=1.0, stop_timeout=3)


def namespace(name: str, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(labels or {})}}


def gateway_class(name: str = "ingressd", controller: str = "ingressd.io/gateway-controller") -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": name}, "spec": {"controllerName": controller}}


def gateway(name: str, namespace: str = "default", class_name: str = "ingressd") -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"gatewayClassName": class_name,
                     "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}}


def http_route(name: str, namespace: str = "default", gateway: str = "gw", host: str = "app.example.com",
               service: str = "web", port: int = 80) -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"parentRefs": [{"name": gateway}], "hostnames": [host],
                     "rules": [{"backendRefs": [{"name": service, "port": port}]}]}}
