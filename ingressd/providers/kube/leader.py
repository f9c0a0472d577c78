"""Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it.

Every ``retry_period`` each replica reads the Lease. It takes it when it is free (no holder)
or expired, and the holder renews it. Expiry is judged by how long *this* replica has seen
the Lease record unchanged (its own monotonic clock), never by comparing timestamps across
machines. A leader that has not renewed within ``renew_deadline`` steps down; one that sees
another holder steps down at once. A 409 Conflict on the write means another replica won the
race. On a clean stop the leader releases the Lease (empty holder), so another replica takes
over within one retry period instead of waiting for the lease to expire.

The loop runs on the reactor (a ``LoopingCall``); each API round trip runs in ingressd's
Kubernetes thread pool through ``run_in_thread``.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from typing import Any, Callable

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from twisted.internet import defer, task

from ingressd.providers.kube import rest
from ingressd.providers.kube.reflector import KubeTimings

log = logging.getLogger(__name__)

_LEADER, _FOLLOWER, _FAILED = "leader", "follower", "failed"


def micro_time(now: datetime.datetime | None = None) -> datetime.datetime:
    """Now, for a MicroTime field. The client serializes datetimes with ``isoformat()``, which
    drops the fraction when the microsecond is 0, and the apiserver insists on six digits."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now if now.microsecond else now.replace(microsecond=1)


class LeaderElector:
    """Holds or waits for the Lease ``namespace/name``; calls back on gaining and losing it."""

    def __init__(self, api_client: client.ApiClient, namespace: str, name: str, identity: str,
                 reactor: Any, run_in_thread: Callable[..., defer.Deferred], *,
                 timings: KubeTimings = KubeTimings(),
                 on_started_leading: Callable[[], None] | None = None,
                 on_stopped_leading: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.rest = rest.KubeRest(api_client)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.reactor = reactor
        self.run_in_thread = run_in_thread
        self.timings = timings
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.clock = clock
        self.is_leader = False
        self.transitions = 0  # times this replica became leader
        self._last_renew = 0.0
        self._observed_record: tuple | None = None
        self._observed_time = 0.0
        self._loop: task.LoopingCall | None = None
        self._inflight: defer.Deferred | None = None
        self._stopping = False

    def __repr__(self) -> str:
        return f"<LeaderElector {self.namespace}/{self.name} as {self.identity}>"

    def start(self) -> None:
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self.reactor
        self._loop.start(self.timings.retry_period, now=True)

    @defer.inlineCallbacks
    def stop(self):
        """Stop trying; if leading, release the Lease. Fires when done (bounded by timeouts)."""
        self._stopping = True
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._inflight is not None:
            yield self._inflight
        if self.is_leader:
            self._set_leader(False)
            try:
                yield self.run_in_thread(self._release)
            except Exception as error:  # noqa: BLE001 - the lease will simply expire
                log.warning("%r: could not release the lease: %s", self, error)

    # -- the loop (reactor thread) ------------------------------------------------------------

    def _tick(self) -> None:
        if self._inflight is not None or self._stopping:
            return
        d = self.run_in_thread(self._try_acquire_or_renew)
        d.addErrback(self._failed)
        d.addCallback(self._result)
        self._inflight = d

        def done(result: Any) -> Any:
            self._inflight = None
            return result

        d.addBoth(done)

    def _failed(self, failure: Any) -> str:
        log.warning("%r: lease round trip failed: %s", self, failure.getErrorMessage())
        return _FAILED

    def _result(self, outcome: str) -> None:
        if self._stopping:
            return
        now = self.clock()
        if outcome == _LEADER:
            self._last_renew = now
            if not self.is_leader:
                self._set_leader(True)
        elif self.is_leader and (outcome == _FOLLOWER
                                 or now - self._last_renew > self.timings.renew_deadline):
            self._set_leader(False)

    def _set_leader(self, leading: bool) -> None:
        self.is_leader = leading
        if leading:
            self.transitions += 1
            log.info("%r: became the leader", self)
            callback = self.on_started_leading
        else:
            log.info("%r: is no longer the leader", self)
            callback = self.on_stopped_leading
        if callback is not None:
            try:
                callback()
            except Exception:  # noqa: BLE001
                log.exception("%r: leadership callback failed", self)

    # -- API round trips (pool thread) ----------------------------------------------------------

    def _timeout(self) -> tuple[float, float]:
        return (self.timings.connect_timeout, self.timings.request_timeout)

    def _read(self) -> dict | None:
        try:
            response = self.rest.get("Lease", self.namespace, self.name, timeout=self._timeout())
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return json.loads(response.data)

    def _spec(self, old: dict, now: datetime.datetime) -> dict:
        holder = old.get("holderIdentity") or ""
        mine = holder == self.identity
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, int(round(self.timings.lease_duration))),
            "acquireTime": old.get("acquireTime") if mine and old.get("acquireTime") else now,
            "renewTime": now,
            "leaseTransitions": (old.get("leaseTransitions") or 0) + (0 if mine else 1),
        }

    def _try_acquire_or_renew(self) -> str:
        now = micro_time()
        lease = self._read()
        if lease is None:
            body = {"metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": dict(self._spec({}, now), leaseTransitions=0)}
            try:
                self.rest.create("Lease", self.namespace, body, timeout=self._timeout())
            except ApiException as error:
                if error.status == 409:  # another replica created it first
                    return _FOLLOWER
                raise
            self._observe(body["spec"])
            return _LEADER
        spec = lease.get("spec") or {}
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        duration = spec.get("leaseDurationSeconds") or self.timings.lease_duration
        if holder and holder != self.identity and (
                self.clock() < self._observed_time + duration):
            return _FOLLOWER  # held by someone else, and not expired as far as we have seen
        new = {"metadata": {"name": self.name, "namespace": self.namespace,
                            "resourceVersion": lease["metadata"]["resourceVersion"]},
               "spec": self._spec(spec, now)}
        try:
            self.rest.update("Lease", self.namespace, self.name, new, timeout=self._timeout())
        except ApiException as error:
            if error.status == 409:  # it changed under us: someone else wrote it
                return _FOLLOWER
            raise
        self._observe(new["spec"])
        return _LEADER

    def _observe(self, spec: dict) -> None:
        record = tuple(str(spec.get(name)) for name in (
            "holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime",
            "leaseTransitions"))
        if record != self._observed_record:
            self._observed_record = record
            self._observed_time = self.clock()

    def _release(self) -> None:
        lease = self._read()
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        now = micro_time()
        spec = {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": now,
                "renewTime": now, "leaseTransitions": lease["spec"].get("leaseTransitions") or 0}
        body = {"metadata": {"name": self.name, "namespace": self.namespace,
                             "resourceVersion": lease["metadata"]["resourceVersion"]},
                "spec": spec}
        self.rest.update("Lease", self.namespace, self.name, body, timeout=self._timeout())
        log.info("%r: released the lease", self)
