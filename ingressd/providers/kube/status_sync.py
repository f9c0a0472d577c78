"""When a status writer looks at its objects: the leader / dirty-set / scheduling machinery every
status writer shares (the Ingress one, ``providers.kube.status``, and the Gateway API ones,
``providers.kube.gateway_status``).

Only the leader writes. Becoming leader starts a periodic pass (``KubeTimings.status_resync``)
and looks at every object once; losing the lead stops it and forgets what was being written.
Between passes, changes mark the objects to look at (``_mark``: a set of refs, or None for all of
them), and a burst of marks is coalesced into one pass on the next reactor turn. A subclass
says what a pass does (``_sync``, which takes ``_take_dirty()``'s answer) and which writes are in
flight (``_pending``, keyed as it likes; cleared when the lead is lost).
"""

from __future__ import annotations

from typing import Any, Iterable

from twisted.internet import task

from ingressd.config.model import ObjectRef
from ingressd.providers.kube.reflector import KubeTimings


class LeaderSyncedWriter:
    """The scheduling half of a status writer (see the module's docstring)."""

    enabled = True  # a subclass with nothing to publish says False: it never writes

    def __init__(self, reactor: Any, timings: KubeTimings):
        self.reactor = reactor
        self.timings = timings
        self._dirty: set[ObjectRef] | None = None  # the objects to look at on the next pass; None: all
        self._leader = False
        self._pending: dict = {}  # writes in flight or done and not yet seen by the watch
        self._scheduled: Any = None
        self._loop: task.LoopingCall | None = None
        self._stopped = False
        self.writes = 0  # successful writes, for logs and tests

    # -- inputs (reactor thread) ------------------------------------------------------------

    def set_leader(self, leading: bool) -> None:
        self._leader = leading
        if leading and self.enabled and not self._stopped and self._loop is None:
            self._loop = task.LoopingCall(self._resync)
            self._loop.clock = self.reactor
            self._loop.start(self.timings.status_resync, now=False)
            self._mark()
        elif not leading and self._loop is not None:
            if self._loop.running:
                self._loop.stop()
            self._loop = None
            self._pending.clear()

    def stop(self) -> None:
        self._stopped = True
        self.set_leader(False)
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()

    # -- scheduling ---------------------------------------------------------------------------

    def _mark(self, refs: Iterable[ObjectRef] | None = None) -> None:
        """Look at ``refs`` (None: every object) on the next pass."""
        if refs is None:
            self._dirty = None
        elif self._dirty is not None:
            self._dirty.update(refs)
        self._schedule()

    def _retry(self, ref: ObjectRef) -> None:
        """A write of ``ref`` failed: look at it again on the next pass (the periodic one at the latest)."""
        if self._dirty is not None:
            self._dirty.add(ref)

    def _resync(self) -> None:
        self._dirty = None
        self._sync()

    def _schedule(self) -> None:
        """Coalesce bursts of changes into one pass on the next reactor turn."""
        if self._leader and self.enabled and not self._stopped and (
                self._scheduled is None or not self._scheduled.active()):
            self._scheduled = self.reactor.callLater(0, self._sync)

    def _syncing(self) -> bool:
        """Whether a pass may write now."""
        return self._leader and self.enabled and not self._stopped

    def _take_dirty(self, known: Iterable[ObjectRef]) -> set[ObjectRef]:
        """The objects of ``known`` this pass looks at; the next pass starts with none marked."""
        todo = set(known) if self._dirty is None else set(known) & self._dirty
        self._dirty = set()
        return todo

    def _sync(self) -> None:
        raise NotImplementedError
