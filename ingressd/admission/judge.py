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

The controller ConfigMap (``--nginx-configmap``) is judged by ``nginx_configmap.read_configmap``,
the reading the server itself applies: refusals deny the change with their reasons, warnings
(unknown keys, keys ignored, keys needing a restart) allow it with them as warnings. A ConfigMap
the controller ConfigMap's ``add-headers`` / ``proxy-set-headers`` name is judged as part of it
(the controller ConfigMap read with the candidate's data); any other ConfigMap is allowed.

``last`` holds the figures of the latest judgement (objects judged, the time to build and to
judge, the size of the objects built from), ingress-nginx's ``admission_*`` metrics.

Nothing is executed or rendered, and nothing here touches what is served: the judge keeps its
own translator, route-table entries, certificate store and plugin state (so one Ingress
costs one Ingress, as in the server's own rebuilds), on a clock that never runs.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Mapping

from twisted.internet.task import Clock

from ingressd.admission.review import Decision, Review
from ingressd.compat.check import NOT_SERVED, ConfigIndex, verdict_for
from ingressd.compat.lint import lint
from ingressd.config.nginx_configmap import read_configmap, references
from ingressd.config.entries import DEFAULT_UPSTREAM, SPOKEN, build_table
from ingressd.config.model import Config, ObjectRef
from ingressd.config.routing import RouteTable
from ingressd.config.store import Snapshot, object_key, own_key, pack, unpack
from ingressd.config.translate import TranslateSettings, Translator, ingress_selector
from ingressd.features import BuildContext, UpstreamSettings
from ingressd.tls.certificates import CertificateStore

DENIED = 400  # ingress-nginx's webhook answers every refusal with 400 BadRequest
NOT_YET = 503


@dataclass(frozen=True)
class Figures:
    """One judgement, as ingress-nginx's admission collector reports its last one."""

    kind: str = "Ingress"
    objects: int = 0  # Ingresses in the configuration built (admission_tested_ingresses)
    build_seconds: float = 0.0  # translating and building the route table (admission_render_duration)
    judge_seconds: float = 0.0  # building and judging (admission_tested_duration)
    size: int = 0  # bytes of the stored objects the configuration was built from (admission_config_size)


class Judge:
    """Judges candidate Ingresses against snapshots of the server's store."""

    def __init__(self, plugins, translate_settings: TranslateSettings = TranslateSettings(),
                 settings: Mapping[str, Any] | None = None, upstream: UpstreamSettings = DEFAULT_UPSTREAM,
                 protocols: frozenset[str] = SPOKEN, now=time.time, configmap_name: str | None = None,
                 timer=time.perf_counter):
        self.plugins = plugins
        self.translate_settings = translate_settings
        self.settings = dict(settings or {})
        self.upstream = upstream
        self.protocols = protocols
        self.now = now
        self.timer = timer
        self.configmap_name = str(configmap_name) if configmap_name else None
        self.last = Figures()
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
        if review.kind == "ConfigMap":
            return self._decide_configmap(review, objects, synced)
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
        started = self.timer()
        try:
            config = self._build(trial)
        finally:
            self._clock.calls.clear()  # nothing ever runs them: keep the list from growing
        built = self.timer()
        verdict = verdict_for(ingress, ConfigIndex(config), self.translate_settings, self.owned)
        ingresses = trial["Ingress"]
        self.last = Figures("Ingress", len(ingresses), built - started, self.timer() - started,
                            sum(len(packed) for packed in ingresses.values()))
        warnings = tuple(verdict.differences) + tuple(verdict.notes)
        if verdict.verdict == NOT_SERVED:
            reasons = "; ".join(dict.fromkeys(verdict.reasons)) or "it would not be served"
            return Decision(False, f"ingressd would not serve Ingress {ref.namespace}/{ref.name}: {reasons}",
                            DENIED, warnings)
        conflicts = self._conflicts(ingress, ref, trial, config)
        if conflicts:
            return Decision(False, " ".join(conflicts), DENIED, warnings)
        return Decision(True, warnings=warnings)

    def _decide_configmap(self, review: Review, objects: Snapshot, synced: bool) -> Decision:
        """The controller ConfigMap's change judged as the server reads it; other ConfigMaps allowed."""
        name = self.configmap_name
        key = f"{review.namespace}/{review.name}"
        if review.object is not None:
            metadata = review.object.get("metadata") or {}
            key = f"{metadata.get('namespace') or review.namespace}/{metadata.get('name') or review.name}"
        stored = objects.get("ConfigMap", {})

        def data_of(ref: str, candidate=None):
            if ref == key and review.operation in ("CREATE", "UPDATE"):
                return candidate
            namespace, _, other = ref.partition("/")
            packed = stored.get((namespace, other))
            if packed is None:
                return None
            raw = unpack(packed).get("data") or {}
            return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

        if name is None or (key != name and key not in references(data_of(name))):
            return Decision(True)  # not the controller's ConfigMap, nor one it names
        if review.operation not in ("CREATE", "UPDATE") or review.object is None:
            if review.operation == "DELETE":
                return Decision(True, warnings=(f"ingressd keeps serving with the last usable version of ConfigMap "
                                                f"{name}; without it, a restarted ingressd does not become ready",))
            return Decision(True)
        if not synced:
            return Decision(False, "ingressd has not read every object from the API yet; try again in a moment",
                            NOT_YET)
        raw = review.object.get("data") or {}
        candidate = {str(k): str(v) for k, v in raw.items()}
        plugins = self.plugins
        started = self.timer()
        options = {option.name: option.coerce for option in (plugins.options if plugins else ())}
        reading = read_configmap(name, data_of(name, candidate), plugins.annotations if plugins else (), options,
                                 self.settings, lambda ref: data_of(ref, candidate))
        elapsed = self.timer() - started
        self.last = Figures("ConfigMap", 0, elapsed, elapsed, sum(len(k) + len(v) for k, v in candidate.items()))
        if not reading.usable:
            return Decision(False, f"ingressd would refuse ConfigMap {name} (and keep its previous version): "
                                   + "; ".join(reading.refusals), DENIED, reading.warnings)
        return Decision(True, warnings=reading.warnings)

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
