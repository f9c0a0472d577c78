"""The webhook's verdict on one Ingress: the one ``ingressd check`` gives, against the objects served now.

The candidate Ingress takes its place among the server's current objects (an UPDATE replaces
the stored version), and the configuration is built as the server builds it: the same
translator, the same plugins (already configured), the server's own settings, the route
table and the certificate store. ``compat.check.verdict_for`` judges the candidate there: not
served (rejected, or an annotation that cannot be honoured) is refused with the reasons;
served with differences is allowed with the differences as warnings. A path another Ingress
already serves on the same host is refused, as ingress-nginx's webhook refuses it
(``checkOverlap``): ``compat.lint``'s duplicate-path finding, either way round; and a second
canary of one host and path.

Nothing is executed or rendered, and nothing here touches what is served: the judge keeps its
own translator, route-table entries, certificate store and plugin state (so one Ingress
costs one Ingress, as in the server's own rebuilds), on a clock that never runs.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Mapping

from twisted.internet.task import Clock

from ingressd.admission.review import Decision, Review
from ingressd.compat.check import NOT_SERVED, ConfigIndex, verdict_for
from ingressd.compat.lint import lint
from ingressd.config.entries import DEFAULT_UPSTREAM, SPOKEN, build_table
from ingressd.config.model import Config, ObjectRef
from ingressd.config.routing import RouteTable
from ingressd.config.store import Snapshot, object_key, own_key, pack, unpack
from ingressd.config.translate import TranslateSettings, Translator, ingress_selector
from ingressd.features import BuildContext, UpstreamSettings
from ingressd.tls.certificates import CertificateStore

DENIED = 400  # ingress-nginx's webhook answers every refusal with 400 BadRequest
NOT_YET = 503


class Judge:
    """Judges candidate Ingresses against snapshots of the server's store."""

    def __init__(self, plugins, translate_settings: TranslateSettings = TranslateSettings(),
                 settings: Mapping[str, Any] | None = None, upstream: UpstreamSettings = DEFAULT_UPSTREAM,
                 protocols: frozenset[str] = SPOKEN, now=time.time):
        self.plugins = plugins
        self.translate_settings = translate_settings
        self.settings = dict(settings or {})
        self.upstream = upstream
        self.protocols = protocols
        self.now = now
        self.owned = frozenset(plugins.annotation_owners) if plugins else frozenset()
        self._clock = Clock()  # never advanced: what plugins schedule never runs
        self._translator = Translator()
        self._entries: dict = {}
        self._table: RouteTable | None = None
        self._state: dict = {}  # the plugins' state for the judge's builds, not the server's
        self._certificates = CertificateStore()

    def decide(self, review: Review, objects: Snapshot, synced: bool = True) -> Decision:
        """Allowed or refused, with the reasons and warnings, for ``review`` given the server's
        current ``objects`` (``synced``: every source was read in full once)."""
        if review.operation not in ("CREATE", "UPDATE") or review.object is None:
            return Decision(True)  # DELETE, CONNECT: nothing to judge
        ingress = review.object
        metadata = ingress.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            return Decision(True)  # on its way out (a finalizer removed): as ingress-nginx
        if not ingress_selector(objects, self.translate_settings)(ingress):
            return Decision(True)  # another controller's Ingress: not ours to judge
        if not synced:
            return Decision(False, "ingressd has not read every object from the API yet; try again in a moment",
                            NOT_YET)
        try:
            packed = pack(ingress)
        except ValueError as exc:
            return Decision(False, f"the Ingress cannot be read: {exc}", DENIED)
        key = own_key(object_key(ingress))
        ref = ObjectRef("Ingress", key[0], key[1])
        trial = dict(objects)
        trial["Ingress"] = {**objects.get("Ingress", {}), key: packed}
        try:
            config = self._build(trial)
        finally:
            self._clock.calls.clear()  # nothing ever runs them: keep the list from growing
        verdict = verdict_for(ingress, ConfigIndex(config), self.translate_settings, self.owned)
        warnings = tuple(verdict.differences) + tuple(verdict.notes)
        if verdict.verdict == NOT_SERVED:
            reasons = "; ".join(dict.fromkeys(verdict.reasons)) or "it would not be served"
            return Decision(False, f"ingressd would not serve Ingress {ref.namespace}/{ref.name}: {reasons}",
                            DENIED, warnings)
        conflicts = self._conflicts(ingress, ref, trial, config)
        if conflicts:
            return Decision(False, " ".join(conflicts), DENIED, warnings)
        return Decision(True, warnings=warnings)

    def _build(self, objects: Snapshot) -> Config:
        """The configuration the server would serve with ``objects`` (as ``Reloader.rebuild``)."""
        plugins = self.plugins
        annotations = plugins.annotations if plugins else ()
        config = self._translator(objects, self.translate_settings, annotations)
        default = config.default_backend
        context = BuildContext(
            settings=self.settings, reactor=self._clock,
            secrets={(s.ref.namespace, s.ref.name): s for s in config.secrets},
            state=self._state, subrequests=None,
            default_backend=default.backend if default is not None and default.ingress.kind == "Service" else None)
        table, config = build_table(config, plugins, context, self._entries, self._table, self.upstream,
                                    self.protocols)
        self._table = table
        extra = self._certificates.update(config)
        if extra:
            config = dataclasses.replace(config, rejections=config.rejections + tuple(extra))
        if plugins:
            plugins.config_applied(config, context)  # the plugins drop the judge's state of routes gone
        return config

    def _conflicts(self, ingress: Mapping, ref: ObjectRef, objects: Snapshot, config: Config) -> list[str]:
        """Paths of ``ingress`` another Ingress serves on the same host, or the other way round."""
        hosts = {str(rule.get("host") or "").lower() for rule in (ingress.get("spec") or {}).get("rules") or ()
                 if isinstance(rule, dict)}
        others = {route.ingress for route in config.routes if route.host in hosts and route.ingress != ref}
        stored = objects.get("Ingress", {})
        near = [ingress] + [unpack(stored[key]) for key in sorted((o.namespace, o.name) for o in others)
                            if key in stored]
        selected = ingress_selector(objects, self.translate_settings)
        found = []
        for finding in lint(near, selected, self.now()):
            if finding.code != "duplicate-path" or ref not in (finding.ref, finding.other):
                continue
            found.append(finding.message)
        # Two canaries of one host and path: only the first is ever used (config.entries).
        canaries = {(route.host, route.path): route.ingress for route in config.routes
                    if route.ingress != ref and route.host in hosts and _is_canary(route)}
        for route in config.routes:
            if route.ingress == ref and _is_canary(route) and (route.host, route.path) in canaries:
                other = canaries[route.host, route.path]
                found.append(f"host {route.host or '*'} and path {route.path} already have a canary: Ingress "
                             f"{other.namespace}/{other.name} (a second canary would never be used)")
        return list(dict.fromkeys(found))


def _is_canary(route) -> bool:
    return any(name == "canary" and value is True for name, value in route.features)
