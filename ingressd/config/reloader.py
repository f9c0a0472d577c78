"""Turns store changes into a served configuration: coalesce, translate, compare, swap.

A burst of changes is coalesced into one rebuild after a short delay; every source of routes
(``config.sources``) translates the store's snapshot into its fragment and the fragments are
merged into one configuration; a rebuild whose
configuration equals the current one changes nothing; otherwise the new route table is
swapped into ``State`` in one assignment and the listeners (TLS, status, events, metrics)
are told, and one line says what changed (``describe_change``). A failing rebuild keeps the
last good configuration serving.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from typing import Any, Callable, Iterable

from twisted.python import log

from ingressd.config.entries import DEFAULT_UPSTREAM, SPOKEN, build_table
from ingressd.features import BuildContext, UpstreamSettings
from ingressd.config.model import Config, ObjectRef, Rejection
from ingressd.config.nginx_configmap import ConfigMapReading, overlay, read_configmap, references, secret_references
from ingressd.config.routing import RouteTable
from ingressd.config.sources import merge, new_translators
from ingressd.config.store import ObjectStore, unpack
from ingressd.config.window import window
from ingressd.config.translate import TranslateSettings, secret_data


class State:
    """What the request path reads: replaced, never mutated."""

    def __init__(self) -> None:
        self.table: RouteTable = RouteTable()
        self.config: Config = Config()
        self.ready = False
        self.draining = False  # shutting down (ingressd.drain): /readyz fails from then on
        self.readiness_checks: list = []  # callables: a reason /readyz fails, or None (--redis-failure closed)
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
        self._translators = new_translators()  # one per source of routes, in merge order
        self._entries: dict = {}  # route table entries of unchanged routes, kept across builds
        self._grouped: tuple = (None, None)  # (the config served, its routes by Ingress): for the log line
        self._entries_context = None
        self._secrets_by_key: tuple = ((), {})  # (Config.secrets, by (namespace, name)): context's
        self.plugin_state: dict = {}  # BuildContext.state: the plugins' state for this server's life
        self.subrequests = None  # BuildContext.subrequests: the server's sub-request client
        self.redis = None  # BuildContext.redis: the server's Redis decisions (--redis)
        self.replicas = None  # BuildContext.replicas: the server's replica count (--replicas-hint)
        # --nginx-configmap NAMESPACE/NAME: the ingress-nginx ConfigMap read unchanged
        self.configmap_name: str | None = self.settings.get("nginx_configmap") or None
        self.configmap: ConfigMapReading | None = None  # the last usable reading: the one applied
        self.configmap_refused: ConfigMapReading | None = None  # the current version, when refused
        self._configmap_seen: tuple = (object(), None)  # (packed object, its reading)
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
            snapshot = self.store.snapshot()
            translate_settings, settings = self.translate_settings, self.settings
            if self.configmap_name:
                reading = self._read_configmap(snapshot, annotations)
                if reading is None:  # refused, and none applied yet: not ready, nothing served
                    return
                translate_settings, settings = self._with_configmap(reading)
            config = merge([translator.translate(snapshot, translate_settings, annotations)
                            for translator in self._translators])
            if self.configmap_name:
                config = self._configmap_report(config)
            if config == self.state.config and self.state.generation:
                self._set_ready(synced)
                return
            context = self.context(config, settings)
            entries_context = (context.default_backend, config.nginx_configmap)
            if entries_context != self._entries_context:
                self._entries.clear()  # features may depend on them: build them all again
                self._entries_context = entries_context
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
        served, groups = self._grouped
        regrouped = _regrouped(groups, previous.routes, config.routes) if served is previous else None
        if regrouped is None:
            before, after, refs = (groups if served is previous else None), _routes_by_ingress(config), None
        else:
            before, (after, refs) = groups, regrouped
        self._grouped = (config, after)
        change = describe_change(previous, config, before, after, refs)
        log.msg(f"ingressd: configuration {self.state.generation}: {change}, "
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

    def context(self, config: Config, settings: dict | None = None) -> BuildContext:
        secrets, by_key = self._secrets_by_key
        if secrets is not config.secrets:  # the same Secrets (their tuple): the same mapping
            by_key = {(s.ref.namespace, s.ref.name): s for s in config.secrets}
            self._secrets_by_key = (config.secrets, by_key)
        return BuildContext(
            settings=self.settings if settings is None else settings,
            reactor=self.clock,
            secrets=by_key,
            state=self.plugin_state,
            subrequests=self.subrequests,
            redis=self.redis,
            replicas=self.replicas,
            default_backend=config.default_backend.backend if (
                config.default_backend is not None and config.default_backend.ingress.kind == "Service"
            ) else None,
        )

    # -- the ingress-nginx ConfigMap ------------------------------------------------------

    def _read_configmap(self, snapshot, annotations) -> ConfigMapReading | None:
        """The reading to apply: the current version's when usable, else the last usable one
        (the change is refused); None when no usable version was ever seen."""
        def packed_of(ref: str):
            namespace, _, name = ref.partition("/")
            return snapshot.get("ConfigMap", {}).get((namespace, name))

        def data_of(ref: str) -> dict | None:
            packed = packed_of(ref)
            if packed is None:
                return None
            raw = unpack(packed).get("data") or {}
            return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

        def secret_of(ref: str) -> dict | None:  # ssl-dh-param
            namespace, _, name = ref.partition("/")
            packed = snapshot.get("Secret", {}).get((namespace, name))
            return None if packed is None else dict(secret_data(unpack(packed)).data)

        data = data_of(str(self.configmap_name))
        # the ConfigMap and those its add-headers / proxy-set-headers name: a change of any is a new version
        packed = (packed_of(str(self.configmap_name)),) + tuple(packed_of(ref) for ref in references(data))
        packed += tuple(snapshot.get("Secret", {}).get(tuple(ref.partition("/")[::2])) for ref in secret_references(data))
        seen, reading = self._configmap_seen
        if packed != seen or reading is None:
            options = {option.name: option.coerce for option in (self.plugins.options if self.plugins else ())}
            reading = read_configmap(self.configmap_name, data, annotations, options, self.settings, data_of,
                                     secret_of)
            self._configmap_seen = (packed, reading)
            if reading.usable:
                self.configmap, self.configmap_refused = reading, None
            else:
                self.configmap_refused = reading
                keeps = "the previous version keeps serving" if self.configmap is not None else \
                    "ingressd is not ready until it is usable"
                for reason in reading.refusals:
                    log.msg(f"ingressd: ConfigMap refused ({keeps}): {reason}")
        if self.configmap is None:
            refused = self.configmap_refused
            if refused is not None and not self.state.generation:
                ref = self._configmap_ref()
                self.state.config = Config(rejections=tuple(Rejection(ref, reason) for reason in refused.refusals))
            return None
        return self.configmap

    def _configmap_ref(self) -> ObjectRef:
        namespace, _, name = str(self.configmap_name).partition("/")
        return ObjectRef("ConfigMap", namespace, name)

    def _with_configmap(self, reading: ConfigMapReading) -> tuple[TranslateSettings, dict]:
        translate_settings = dataclasses.replace(
            self.translate_settings, annotation_defaults=reading.annotation_defaults,
            allow_snippets=reading.allow_snippets, risk_level=reading.risk_level)
        return translate_settings, overlay(self.settings, reading)

    def _configmap_report(self, config: Config) -> Config:
        """``config`` with the ConfigMap in effect, its warnings and a refused change's reasons."""
        ref = self._configmap_ref()
        warnings = tuple(Rejection(ref, text) for text in self.configmap.warnings)
        rejections = ()
        if self.configmap_refused is not None:
            rejections = tuple(Rejection(ref, f"change refused, the previous version keeps serving: {reason}")
                               for reason in self.configmap_refused.refusals)
        return dataclasses.replace(config, warnings=config.warnings + warnings,
                                   rejections=config.rejections + rejections, nginx_configmap=self.configmap)

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


def describe_change(old: Config, new: Config, before: dict | None = None, after: dict | None = None,
                    refs: Iterable | None = None) -> str:
    """What changed from ``old`` to ``new``, for the log: Ingresses served added, removed,
    changed (their routes differ), the routes served and the objects rejected. ``before`` and
    ``after`` are their routes by Ingress if the caller has them (the reloader keeps the
    served configuration's: a change groups only the new one's routes); ``refs``, the only
    Ingresses whose routes may differ (``_regrouped``'s), if the caller knows them."""
    before = _routes_by_ingress(old) if before is None else before
    after = _routes_by_ingress(new) if after is None else after
    # One lookup per Ingress each way (set operations on the keys would hash them five times).
    added, changed, removed = [], [], []
    for ref in (after if refs is None else refs):
        routes = after.get(ref)
        if routes is None:  # (only among ``refs``: an Ingress whose routes all went)
            if ref in before:
                removed.append(_name(ref))
            continue
        was = before.get(ref)
        if was is None:
            added.append(_name(ref))
        elif was != routes:
            changed.append(_name(ref))
    if refs is None:
        removed = [_name(ref) for ref in before if ref not in after]
    removed.sort()
    added.sort()
    changed.sort()
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


def _regrouped(before: dict, old: tuple, new: tuple) -> tuple[dict, set] | None:
    """``new``'s routes by Ingress (as ``_routes_by_ingress``) worked out from ``before``, the
    grouping of ``old``, and the Ingresses whose routes may differ; or None (group anew).

    Proportional to what changed, not to the configuration: unchanged Ingresses keep their
    Route objects and their order, so ``old`` and ``new`` differ in one window (``config.window``,
    by identity alone). The window is widened to whole runs of its
    Ingresses; only its Ingresses are grouped again, and only if none of them has a route
    outside it (else None)."""
    if old is new:
        return before, set()
    start, old_end, new_end = window(old, new)
    refs = {route.ingress for route in old[start:old_end]}
    refs.update(route.ingress for route in new[start:new_end])
    # The routes around the window are the same in both: take in those of its Ingresses.
    while start > 0 and old[start - 1].ingress in refs:
        start -= 1
    while old_end < len(old) and old[old_end].ingress in refs:
        old_end += 1
        new_end += 1
    inside: dict = {}  # ref → its routes in the old window
    for route in old[start:old_end]:
        inside[route.ingress] = inside.get(route.ingress, 0) + 1
    if any(len(before.get(ref, ())) != inside.get(ref, 0) for ref in refs):
        return None  # an Ingress of the window has routes elsewhere too (or ``before`` is not ``old``'s)
    grown: dict = {}
    for route in new[start:new_end]:
        group = grown.get(route.ingress)
        if group is None:
            grown[route.ingress] = [route]
        else:
            group.append(route)
    # The copy of a dict that never lost a key is a copy of its table (~50 us at 10,000
    # Ingresses), of one that did an insertion a key (~400 us, hashing each ObjectRef in
    # Python): a key is deleted only when its Ingress has no route left, else overwritten.
    after = dict(before)
    for ref in inside:
        if ref not in grown:
            del after[ref]
    for ref, group in grown.items():
        after[ref] = tuple(group)
    return after, refs


def _routes_by_ingress(config: Config) -> dict:
    # An Ingress's routes come one after another, sharing one ObjectRef: it is looked up (hashed)
    # once a run, not once a route (30,000 routes at 10,000 Ingresses, on every change).
    routes: dict = {}
    last = group = None
    for route in config.routes:
        ref = route.ingress
        if ref is not last:
            group = routes.get(ref)
            if group is None:
                group = routes[ref] = []
            last = ref
        group.append(route)
    return {ref: tuple(group) for ref, group in routes.items()}


def _name(ref) -> str:
    return f"{ref.namespace}/{ref.name}"
