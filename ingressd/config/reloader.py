"""Turns store changes into a served configuration: coalesce, translate, compare, swap.

A burst of changes is coalesced into one rebuild after a short delay; a rebuild whose
configuration equals the current one changes nothing; otherwise the new route table is
swapped into ``State`` in one assignment and the listeners (TLS, status, events, metrics)
are told, and one line says what changed (``describe_change``). A failing rebuild keeps the
last good configuration serving.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from typing import Any, Callable

from twisted.python import log

from ingressd.config.entries import DEFAULT_UPSTREAM, SPOKEN, build_table
from ingressd.features import BuildContext, UpstreamSettings
from ingressd.config.model import Config
from ingressd.config.routing import RouteTable
from ingressd.config.store import ObjectStore
from ingressd.config.translate import TranslateSettings, Translator


class State:
    """What the request path reads: replaced, never mutated."""

    def __init__(self) -> None:
        self.table: RouteTable = RouteTable()
        self.config: Config = Config()
        self.ready = False
        self.draining = False  # shutting down (ingressd.drain): /readyz fails from then on
        self.generation = 0


class Reloader:
    def __init__(self, store: ObjectStore, state: State, clock: Any, plugins=None,
                 translate_settings: TranslateSettings = TranslateSettings(),
                 settings: dict | None = None, delay: float = 0.05,
                 upstream: UpstreamSettings = DEFAULT_UPSTREAM, protocols: frozenset[str] = SPOKEN):
        self.store = store
        self.state = state
        self.clock = clock
        self.plugins = plugins
        self.translate_settings = translate_settings
        self.settings = settings or {}
        self.delay = delay
        self.upstream = upstream  # the server's upstream settings, under each route's
        self.protocols = protocols  # the upstream protocols the server speaks
        # Run on each new configuration before it is swapped in; what they reject (e.g. a
        # broken TLS Secret) is added to the configuration's rejections.
        self.appliers: list[Callable[[Config], list]] = []
        self.listeners: list[Callable[[Config], None]] = []
        self.on_ready: list[Callable[[], None]] = []  # called once, when first ready
        self.rebuilds = 0
        self.failures = 0
        self.last_success = 0.0
        self.last_failure = 0.0
        self._pending = None
        self._reported: set = set()
        self._translator = Translator()
        self._entries: dict = {}  # route table entries of unchanged routes, kept across builds
        self._entries_context = None
        self.plugin_state: dict = {}  # BuildContext.state: the plugins' state for this server's life
        self.subrequests = None  # BuildContext.subrequests: the server's sub-request client
        store.on_change = self.schedule

    def schedule(self) -> None:
        if self._pending is None:
            self._pending = self.clock.callLater(self.delay, self.rebuild)

    def stop(self) -> None:
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None

    def rebuild(self) -> None:
        # A rebuild allocates many objects (tens of thousands at 10,000 Ingresses): the
        # cyclic garbage collector would run over and over in the middle of it. Nothing here
        # makes cycles that need it before the next collection.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._rebuild()
        finally:
            if collecting:
                gc.enable()

    def _rebuild(self) -> None:
        self._pending = None
        synced = self.store.synced
        if not synced and not self.state.generation:
            # The first configuration waits for every source's first full read: built from
            # half a LIST (Ingresses in, their Services not yet) it would log a warning per
            # path (30,000 at 10,000 Ingresses) and cost a whole rebuild for nothing.
            return
        began = time.perf_counter()  # for the log line only: how long the build took
        try:
            annotations = self.plugins.annotations if self.plugins else ()
            config = self._translator(self.store.snapshot(), self.translate_settings, annotations)
            if config == self.state.config and self.state.generation:
                self._set_ready(synced)
                return
            context = self.context(config)
            if context.default_backend != self._entries_context:
                self._entries.clear()  # features may depend on it: build them all again
                self._entries_context = context.default_backend
            table, config = build_table(config, self.plugins, context, self._entries, self.state.table,
                                        self.upstream, self.protocols)
            extra = [rejection for apply in self.appliers for rejection in apply(config)]
            if extra:
                config = dataclasses.replace(config, rejections=config.rejections + tuple(extra))
        except Exception:
            self.failures += 1
            self.last_failure = self.clock.seconds()
            log.err(None, "ingressd: rebuilding the configuration failed; the last good one keeps serving")
            return
        previous = self.state.config
        self.state.table = table
        self.state.config = config
        self.state.generation += 1
        self.rebuilds += 1
        self.last_success = self.clock.seconds()
        log.msg(f"ingressd: configuration {self.state.generation}: {describe_change(previous, config)}, "
                f"built in {(time.perf_counter() - began) * 1000:.1f} ms")
        self._report(config)
        if self.plugins:
            try:
                self.plugins.config_applied(config, context)
            except Exception:
                log.err(None, "ingressd: a plugin failed in ingressd_config_applied")
        for listener in self.listeners:
            try:
                listener(config)
            except Exception:
                log.err(None, "ingressd: a configuration listener failed")
        self._set_ready(synced)

    def context(self, config: Config) -> BuildContext:
        return BuildContext(
            settings=self.settings,
            reactor=self.clock,
            secrets={(s.ref.namespace, s.ref.name): s for s in config.secrets},
            state=self.plugin_state,
            subrequests=self.subrequests,
            default_backend=config.default_backend.backend if (
                config.default_backend is not None and config.default_backend.ingress.kind == "Service"
            ) else None,
        )

    def _set_ready(self, synced: bool) -> None:
        if synced and not self.state.ready:
            self.state.ready = True
            routes = len(self.state.config.routes)
            log.msg(f"ingressd: ready, serving {routes} route(s)")
            for callback in self.on_ready:
                try:
                    callback()
                except Exception:
                    log.err(None, "ingressd: a ready callback failed")

    def _report(self, config: Config) -> None:
        """Log each rejection and warning once (until it goes away and comes back)."""
        current = {("rejected", str(item)) for item in config.rejections}
        current |= {("warning", str(item)) for item in config.warnings}
        for kind, text in sorted(current - self._reported):
            log.msg(f"ingressd: {kind}: {text}")
        self._reported = current


def describe_change(old: Config, new: Config) -> str:
    """What changed from ``old`` to ``new``, for the log: Ingresses served added, removed,
    changed (their routes differ), the routes served and the objects rejected."""
    before, after = _routes_by_ingress(old), _routes_by_ingress(new)
    added = sorted(_name(ref) for ref in after.keys() - before.keys())
    removed = sorted(_name(ref) for ref in before.keys() - after.keys())
    changed = sorted(_name(ref) for ref in after.keys() & before.keys() if after[ref] != before[ref])
    parts = []
    for word, refs in (("added", added), ("removed", removed), ("changed", changed)):
        if refs:
            shown = ", ".join(refs[:5]) + (f" and {len(refs) - 5} more" if len(refs) > 5 else "")
            parts.append(f"{len(refs)} {'Ingress' if len(refs) == 1 else 'Ingresses'} {word} ({shown})")
    if not parts:
        parts.append("no Ingress changed")
    parts.append(f"{len(new.routes)} route(s)")
    parts.append(f"{len(new.rejections)} rejected")
    return ", ".join(parts)


def _routes_by_ingress(config: Config) -> dict:
    routes: dict = {}
    for route in config.routes:
        routes.setdefault(route.ingress, []).append(route)
    return routes


def _name(ref) -> str:
    return f"{ref.namespace}/{ref.name}"
