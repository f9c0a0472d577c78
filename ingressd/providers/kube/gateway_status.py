"""The Gateway API status writers: put the status the Gateway API source judged
(``Config.status``: a ``config.model.StatusDocument`` per object) on the GatewayClasses,
Gateways, HTTPRoutes, GRPCRoutes, TLSRoutes, ListenerSets and BackendTLSPolicies in the cluster.

One writer per kind (``providers.kube.service.STATUS_WRITERS``). Only the leader writes, only
when what the object has differs from the judged status (``lastTransitionTime`` aside): a JSON
merge patch of the status subresource carrying the object's ``resourceVersion``, so that the
API server refuses it with 409 Conflict when the object changed since it was read (another
controller wrote its parents meanwhile); the writer then reads the object again, merges again
and retries, at most ``MAX_ATTEMPTS`` times. A condition keeps its ``lastTransitionTime``
while its status stays the same and gets the time of the write (RFC 3339, UTC) when it changes.
A GatewayClass's, Gateway's or ListenerSet's status is ingressd's whole; on a route (HTTPRoute, GRPCRoute, TLSRoute) only the
``status.parents`` entries whose ``controllerName`` is ingressd's (on a BackendTLSPolicy, its
``status.ancestors`` entries) are touched and the other
controllers' entries are kept; a route the configuration no longer judges (it names no Gateway
of ingressd's any more) has ingressd's entries removed, then is forgotten. A failure is logged, never fatal: the next change of the object
or of its judged status, or the periodic pass, tries again. When a writer looks (leader,
changes, the periodic pass) is ``providers.kube.status_sync``'s, shared with the Ingress one.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any, Callable, Iterable

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from twisted.internet import defer

from ingressd.config.kinds import GATEWAY_GROUP
from ingressd.config.model import ObjectRef, StatusDocument
from ingressd.providers.kube import rest
from ingressd.providers.kube.reflector import KubeTimings
from ingressd.providers.kube.status_sync import LeaderSyncedWriter

log = logging.getLogger(__name__)

# The kinds whose status these writers write, and so the kinds their requests name
# (tests/test_k8s_manifests.py reads this name to check the RBAC rules).
REQUEST_KINDS = ("GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "ListenerSet", "TLSRoute", "BackendTLSPolicy")
STATUS_KINDS = REQUEST_KINDS
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TLSRoute")
POLICY_KINDS = ("BackendTLSPolicy",)  # status.ancestors, merged as a route's status.parents
DEFAULT_CONTROLLER_NAME = "ingressd.io/gateway-controller"
MAX_ATTEMPTS = 5  # writes of one object in a row refused with 409 Conflict before giving up
_NO_PARENTS = json.dumps({"parents": []})  # a route no longer judged: none of its parents is ours
_NO_ANCESTORS = json.dumps({"ancestors": []})  # a policy no longer judged


def rfc3339(seconds: float) -> str:
    """A condition's ``lastTransitionTime``: whole seconds, UTC."""
    moment = datetime.datetime.fromtimestamp(int(seconds), datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def without_times(value: Any) -> Any:
    """``value`` with every ``lastTransitionTime`` left out: what decides whether to write."""
    if isinstance(value, dict):
        return {key: without_times(item) for key, item in value.items() if key != "lastTransitionTime"}
    if isinstance(value, list):
        return [without_times(item) for item in value]
    return value


def timed_conditions(judged: Iterable[dict], current: Any, now: str) -> list[dict]:
    """The judged conditions with their ``lastTransitionTime``: the current one's while the
    condition of that type keeps its status, ``now`` when it is new or its status changed."""
    previous = {item.get("type"): item for item in current or () if isinstance(item, dict)}
    timed = []
    for condition in judged:
        old = previous.get(condition.get("type"))
        kept = (old is not None and old.get("status") == condition.get("status")
                and old.get("lastTransitionTime"))
        timed.append({**condition, "lastTransitionTime": kept or now})
    return timed


def parent_key(parent: dict, namespace: str, ref_field: str = "parentRef") -> tuple:
    """What identifies a route's parent entry: its parentRef, defaults filled in (a policy's
    ancestor entry: its ancestorRef)."""
    ref = parent.get(ref_field) or {}
    return (ref.get("group", GATEWAY_GROUP), ref.get("kind") or "Gateway", ref.get("namespace") or namespace,
            ref.get("name"), ref.get("sectionName"), ref.get("port"))


def desired_status(kind: str, current: dict, judged: dict, controller_name: str, namespace: str,
                   now: str) -> dict | None:
    """The status an object whose status is ``current`` should have, given the ``judged``
    status (``StatusDocument.body``, parsed); None when it already has it."""
    if kind in ROUTE_KINDS:
        return _route_status(current, judged, controller_name, namespace, now)
    if kind in POLICY_KINDS:
        return _route_status(current, judged, controller_name, namespace, now, "ancestors", "ancestorRef")
    wanted = dict(judged)
    if "conditions" in judged:
        wanted["conditions"] = timed_conditions(judged["conditions"], current.get("conditions"), now)
    if "listeners" in judged:
        listeners = {item.get("name"): item for item in current.get("listeners") or () if isinstance(item, dict)}
        wanted["listeners"] = [
            {**listener, "conditions": timed_conditions(
                listener.get("conditions") or (), (listeners.get(listener.get("name")) or {}).get("conditions"), now)}
            for listener in judged["listeners"]]
    return None if without_times(current) == without_times(wanted) else wanted


def _route_status(current: dict, judged: dict, controller_name: str, namespace: str, now: str,
                  field: str = "parents", ref_field: str = "parentRef") -> dict | None:
    parents = [item for item in current.get(field) or () if isinstance(item, dict)]
    mine = [item for item in parents if item.get("controllerName") == controller_name]
    previous = {parent_key(item, namespace, ref_field): item for item in mine}
    ours = [{**item, "controllerName": controller_name,
             "conditions": timed_conditions(item.get("conditions") or (),
                                            (previous.get(parent_key(item, namespace, ref_field)) or {}).get(
                                                "conditions"), now)}
            for item in judged.get(field) or ()]
    if without_times(mine) == without_times(ours):
        return None
    others = [item for item in parents if item.get("controllerName") != controller_name]
    return {**current, field: others + ours}


def status_patch(current: dict, wanted: dict) -> dict:
    """The merge patch's ``status``: ``wanted``, and null for a field it no longer has (lists
    are replaced whole by a merge patch)."""
    return {**{key: None for key in current if key not in wanted}, **wanted}


class GatewayStatusWriter(LeaderSyncedWriter):
    """Keeps the status of the objects of one Gateway API kind equal to the judged one.

    ``lookup_object(namespace, name)``: the object as the API server last delivered it;
    ``judged(ref)``: its ``StatusDocument`` in the configuration now served (None: none)."""

    def __init__(self, kind: str, api_client: client.ApiClient, reactor: Any,
                 run_in_thread: Callable[..., defer.Deferred],
                 lookup_object: Callable[[str, str], dict | None],
                 judged: Callable[[ObjectRef], StatusDocument | None], *,
                 controller_name: str = DEFAULT_CONTROLLER_NAME, timings: KubeTimings = KubeTimings()):
        if kind not in STATUS_KINDS:
            raise ValueError(f"no Gateway API status writer for {kind}")
        super().__init__(reactor, timings)
        self.kind = kind
        self.rest = rest.KubeRest(api_client)
        self.run_in_thread = run_in_thread
        self.lookup_object = lookup_object
        self.judged = judged
        self.controller_name = controller_name
        self._documents: dict[ObjectRef, StatusDocument] = {}
        self._parsed: dict[ObjectRef, dict] = {}  # each document's body, parsed
        # Routes the configuration no longer judges (no parentRef to a Gateway of ours any more):
        # their entries of ours are removed, then they are forgotten.
        self._retiring: set[ObjectRef] = set()
        # ref → (document, the resourceVersions it was written over; None while being written):
        # until the watch shows a later one, the store's copy is older than what was written
        self._pending: dict[ObjectRef, tuple] = {}
        # ref → (document, resourceVersion) found already as judged: any change of the object
        # changes its resourceVersion, so the periodic pass skips these without comparing
        self._verified: dict[ObjectRef, tuple] = {}
        self.conflicts = 0  # writes refused with 409 Conflict (then retried), for tests

    # -- inputs (reactor thread) ------------------------------------------------------------

    def set_served(self, refs: Iterable[ObjectRef]) -> None:
        """A new configuration is served: look at the objects whose judged status changed."""
        documents = {}
        for ref in refs:
            if ref.kind == self.kind:
                document = self.judged(ref)
                if document is not None:
                    documents[ref] = document
        self._retiring -= set(documents)
        if self.kind in ROUTE_KINDS or self.kind in POLICY_KINDS:
            for ref, old in self._documents.items():
                # (a deleted route has nothing left to clean: forgotten at once)
                if ref not in documents and self.lookup_object(ref.namespace, ref.name) is not None:
                    documents[ref] = StatusDocument(old.generation, _NO_PARENTS if self.kind in ROUTE_KINDS
                                                    else _NO_ANCESTORS)
                    self._retiring.add(ref)
        changed = {ref for ref, document in documents.items() if self._documents.get(ref) != document}
        self._documents = documents
        self._verified = {ref: value for ref, value in self._verified.items() if ref in documents}
        self._parsed = {ref: self._parsed[ref] if ref not in changed and ref in self._parsed
                        else json.loads(document.body) for ref, document in documents.items()}
        if changed:
            self._mark(changed)

    def object_changed(self, namespace: str, name: str) -> None:
        ref = ObjectRef(self.kind, namespace, name)
        if ref in self._documents:
            self._mark({ref})

    # -- syncing ----------------------------------------------------------------------------

    def _sync(self) -> None:
        if not self._syncing():
            return
        todo = self._take_dirty(self._documents)
        now = rfc3339(self.reactor.seconds())
        for ref in sorted(todo, key=lambda r: (r.namespace, r.name)):
            document, judged = self._documents[ref], self._parsed[ref]
            obj = self.lookup_object(ref.namespace, ref.name)
            if obj is None:  # not (or no longer) in the cluster
                self._forget_retired(ref)
                continue
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv is not None and self._verified.get(ref) == (document, rv):
                if ref not in self._pending:
                    self._forget_retired(ref)
                continue
            if desired_status(self.kind, obj.get("status") or {}, judged, self.controller_name,
                              ref.namespace, now) is None:
                self._verified[ref] = (document, rv)
                pending = self._pending.pop(ref, None)
                if pending is None or (pending[1] is not None and rv not in pending[1]):
                    self._forget_retired(ref)  # else the store has not shown our last write yet
                continue
            pending = self._pending.get(ref)
            if pending is not None and pending[0] == document and (pending[1] is None or rv in pending[1]):
                continue  # already written (or being written); waiting for the watch to show it
            self._pending[ref] = (document, None)
            d = self.run_in_thread(self._write, ref, obj, judged, now)
            d.addCallbacks(self._written, self._failed, callbackArgs=(ref, document), errbackArgs=(ref,))

    def _forget_retired(self, ref: ObjectRef) -> None:
        if ref in self._retiring:
            self._retiring.discard(ref)
            self._documents.pop(ref, None)
            self._parsed.pop(ref, None)
            self._verified.pop(ref, None)
            self._pending.pop(ref, None)

    # -- API round trips (pool thread) --------------------------------------------------------

    def _timeout(self) -> tuple[float, float]:
        return (self.timings.connect_timeout, self.timings.request_timeout)

    def _write(self, ref: ObjectRef, obj: dict, judged: dict, now: str) -> frozenset | None:
        """Patch the status over ``obj``'s resourceVersion; on a conflict read it again and
        merge again. Returns the resourceVersions written over (the watch may still deliver
        them: no need to write again then); None: nothing (left) to write, or the object is gone."""
        seen = set()
        for attempt in range(MAX_ATTEMPTS):
            current = obj.get("status") or {}
            wanted = desired_status(self.kind, current, judged, self.controller_name, ref.namespace, now)
            if wanted is None:
                return None
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            seen.add(rv)
            body = {"metadata": {"resourceVersion": rv}, "status": status_patch(current, wanted)}
            try:
                self.rest.patch(self.kind, ref.namespace, ref.name, body, subresource="status",
                                timeout=self._timeout())
                return frozenset(seen)
            except ApiException as error:
                if error.status != 409 or attempt == MAX_ATTEMPTS - 1:
                    raise
            self.conflicts += 1
            try:
                obj = json.loads(self.rest.get(self.kind, ref.namespace, ref.name, timeout=self._timeout()).data)
            except ApiException as error:
                if error.status == 404:
                    return None
                raise
        raise AssertionError("unreachable")  # the last attempt returns or raises

    # -- results (reactor thread) -------------------------------------------------------------

    def _written(self, seen: frozenset | None, ref: ObjectRef, document: StatusDocument) -> None:
        if seen is None:
            self._pending.pop(ref, None)
            return
        self.writes += 1
        log.info("status of %s written (generation %s)", ref, document.generation)
        if self._pending.get(ref) == (document, None):
            self._pending[ref] = (document, seen)

    def _failed(self, failure: Any, ref: ObjectRef) -> None:
        # Forget it: the next pass (any change) or the periodic one tries again.
        self._pending.pop(ref, None)
        self._retry(ref)
        log.warning("could not update the status of %s: %s", ref, failure.getErrorMessage())
