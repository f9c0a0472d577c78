"""Translate Kubernetes objects into the configuration model: a pure function.

``translate(objects, settings, annotations)`` applies the Ingress v1 rules (class
selection, validation, backends through Services and EndpointSlices, TLS hosts) and parses
every declared annotation. An invalid Ingress becomes a ``Rejection`` and contributes
nothing; every other Ingress is unaffected.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import sys
from bisect import bisect_left
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any, Mapping, NamedTuple, Sequence

from ingressd.compat.assess import assess
from ingressd.compat.configmap_catalogue import ANNOTATION_ALIASES
from ingressd.features import INGRESSD_PREFIX, NGINX_PREFIX, Annotation, check_plain_text
from ingressd.config.model import (
    IMPLEMENTATION_SPECIFIC,
    PATH_TYPES,
    PREFIX,
    Backend,
    Config,
    ConfigMapData,
    Endpoint,
    ObjectRef,
    Rejection,
    Route,
    SecretData,
    TLSHost,
)
from ingressd.config.kinds import INGRESS_KINDS
from ingressd.config.store import Packed, Snapshot, unpack

CONTROLLER = "ingressd.io/ingress-controller"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


@dataclass(frozen=True)
class TranslateSettings:
    ingress_class: str = "ingressd"
    watch_ingress_without_class: bool = False
    allow_cross_namespace_resources: bool = False
    default_backend_service: str | None = None  # "namespace/name"
    # Annotations the operator accepts ignoring (--ignore-annotation), names without prefix.
    ignore_annotations: frozenset[str] = frozenset()
    # IngressClasses whose spec.controller is one of these are ours (besides ``ingress_class``).
    controllers: tuple[str, ...] = (CONTROLLER,)
    # GatewayClasses whose spec.controllerName is this are ours (--gateway-controller-name).
    gateway_controller: str = "ingressd.io/gateway-controller"
    # From the ingress-nginx ConfigMap (--nginx-configmap): annotation name → the text that stands in
    # for the annotation on an Ingress without it; the snippet policy (allow-snippet-annotations,
    # annotations-risk-level: snippets are Critical).
    annotation_defaults: tuple[tuple[str, str], ...] = ()
    allow_snippets: bool = True
    risk_level: str = "Critical"


class _Invalid(Exception):
    """Raised inside the translation of one Ingress; becomes its Rejection."""

    def __init__(self, reason: str, annotations: tuple[str, ...] = ()):
        super().__init__(reason)
        self.annotations = annotations


def translate(
    objects: Snapshot,
    settings: TranslateSettings = TranslateSettings(),
    annotations: Sequence[Annotation] = (),
) -> Config:
    """Objects → Config, from scratch (``Translator`` does the same with a memory)."""
    return Translator()(objects, settings, annotations)


class _Translated:
    """One Ingress's translation and the (packed) objects it was made from."""

    __slots__ = ("ingress", "deps", "routes", "tls_hosts", "default", "warnings", "rejection", "marked_for")

    def __init__(self, ingress, deps, routes=(), tls_hosts=(), default=None, warnings=(), rejection=None):
        # The TLS hosts ``routes`` were last marked for (None: not yet served); once marked,
        # ``routes`` holds the routes served (the routes as translated are not kept beside their
        # marked copies, nor a (TLS hosts, routes) pair per Ingress: 0.5 MiB at 10,000 Ingresses).
        self.marked_for: frozenset[str] | None = None
        self.ingress = ingress
        self.deps = deps
        self.routes = routes
        self.tls_hosts = tls_hosts
        self.default = default
        self.warnings = warnings
        self.rejection = rejection

    @property
    def served(self) -> tuple[frozenset[str], tuple[Route, ...]] | None:
        """(TLS hosts, the routes served, marked for them), None until served."""
        return None if self.marked_for is None else (self.marked_for, self.routes)


def _deps(used: dict) -> tuple:
    """What one Ingress's translation used, kept compactly in one flat tuple: (table, key,
    object, table, key, object, …) (a tuple per dependency cost ~1 MiB at 10,000 Ingresses)."""
    return tuple(item for (table, key), value in used.items() for item in (table, key, value))


class Translator:
    """``translate`` with a memory, so one changed Ingress costs one Ingress: the source of
    routes for Ingresses (``interfaces.RouteSource``, registered in ``ingressd.config.sources``).

    An Ingress is translated again only when its object, or an object it used (its
    Services, their EndpointSlices, Secrets and Services its annotations name), is no
    longer the same object in the store (the store keeps unchanged objects' identity).
    """

    name = "ingress"
    kinds = INGRESS_KINDS

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], _Translated] = {}
        self._inputs: tuple = ()
        self._resolver = _Resolver({})
        self._tls_names: frozenset[str] = frozenset()
        self._ages: dict[tuple[str, str], str] = {}  # key → its Ingress's creation time (``_age``)
        self._order: list[tuple[str, str]] | None = None  # Ingress keys, oldest first
        self._last: _Last | None = None  # the last configuration made, for ``_changes_only``
        # (namespace, name) of a Service (and its EndpointSlices), Secret or ConfigMap → the key of
        # the Ingress whose translation used it, or a list of keys: made from the translations'
        # dependencies when an object other than an Ingress first changes, then added to as
        # Ingresses are translated again (an entry gone stale costs a look, never a wrong answer),
        # dropped when every Ingress is walked (``_users_of``).
        self._users: dict | None = None

    def __call__(self, objects: Snapshot, settings: TranslateSettings = TranslateSettings(),
                 annotations: Sequence[Annotation] = ()) -> Config:
        our_classes, default_class = _our_classes(objects.get("IngressClass", {}), settings)
        inputs = (settings, tuple(annotations), frozenset(our_classes), default_class)
        if inputs != self._inputs:
            self._cache.clear()  # it holds only Ingresses found ours under these inputs
            self._inputs = inputs
        resolver = self._resolver
        used_may_differ = resolver.update(objects)
        last, self._last = self._last, None  # (kept again below only once this call succeeded)
        patched = None
        if last is not None and last.inputs is self._inputs:
            patched = self._changes_only(objects, last, settings, annotations, used_may_differ)
        resolver.touched = set()  # read: not kept (after a first update, every Service with a slice)
        if patched is not None:
            config, order, counts = patched
            self._last = last._replace(objects=objects, config=config, order=order, counts=counts)
            return config
        self._users = None  # (made again from the translations when next needed)
        rejections: list[Rejection] = []
        warnings: list[Rejection] = []
        routes: list[Route] = []
        tls_hosts: list[TLSHost] = []
        default_candidates: list[Route] = []

        ingresses = objects.get("Ingress", {})
        previous = self._cache
        cache: dict[tuple[str, str], _Translated] = {}
        for key, packed in ingresses.items():
            done = previous.get(key)
            if done is None or done.ingress is not packed or (
                    used_may_differ and not resolver.unchanged(done.deps)):
                ingress = unpack(packed)  # one at a time: 10,000 at once would be ~40 MB
                self._note_age(key, packed, ingress)
                if _is_ours(ingress, settings, our_classes, default_class):
                    done = self._translate(packed, ingress, key, resolver, settings, annotations)
                else:  # remembered too, so another class's Ingresses are not unpacked again
                    done = _Translated(packed, ())
            cache[key] = done
        self._cache = cache

        accepted: list[_Translated] = []
        order = self._oldest_first(ingresses)
        counts: list[int] = []  # the routes each Ingress in ``order`` gives (for ``_changes_only``)
        for key in order:  # the oldest wins conflicts
            done = cache[key]
            if done.warnings:
                warnings.extend(done.warnings)
            if done.rejection is not None:
                rejections.append(done.rejection)
                counts.append(0)
                continue
            counts.append(len(done.routes))
            accepted.append(done)
            if done.tls_hosts:
                tls_hosts.extend(done.tls_hosts)
            if done.default is not None:
                default_candidates.append(done.default)

        tls_names = frozenset(entry.host for entry in tls_hosts)
        if tls_names == self._tls_names:
            tls_names = self._tls_names  # the same object: what each Ingress marked still holds
        self._tls_names = tls_names
        for done in accepted:
            if done.marked_for is not tls_names:
                done.routes = _with_tls(done, tls_names)  # the unmarked routes are not kept beside marked copies
                done.marked_for = tls_names
            routes.extend(done.routes)
        default_backend = default_candidates[0] if default_candidates else None
        if default_backend is None and settings.default_backend_service:
            default_backend = _global_default(settings.default_backend_service, resolver, warnings)

        config = Config(
            routes=tuple(routes),
            default_backend=default_backend,
            tls_hosts=tuple(tls_hosts),
            secrets=resolver.all_secrets(),
            rejections=tuple(rejections),
            warnings=tuple(warnings),
        )
        if getattr(objects, "changed", None) is not None:  # a store's snapshot: the next may be patched
            self._last = _Last(objects, self._inputs, config, order, counts)
        return config

    def _changes_only(self, objects, last: "_Last", settings, annotations,
                      used_may_differ: bool) -> tuple[Config, list, list] | None:
        """The configuration (and its order and route counts) made from ``last``'s in proportion to
        what changed since: the Ingresses the store says changed (``StoreSnapshot.changed``) and
        those whose translation used a Service, EndpointSlice, Secret or ConfigMap that changed
        (``_users_of``) are translated again; an added one is put in its place in the order, a
        deleted one taken out, each one's routes replaced where they were. Only when each of those
        kept its age and, accepted before and after, its TLS hosts, default backend and warnings
        (an added or deleted one: has none of them), and no --default-backend-service is read
        anew: None otherwise (translate all). The route table sorts out which routes win (the
        oldest Ingress's, in this order), as it does for a configuration made from nothing."""
        keys = objects.changed("Ingress", last.objects)
        if keys is None or self._order is not last.order:
            return None
        if used_may_differ:
            if settings.default_backend_service:
                return None
            users = self._users_of(objects, last)
            if users is None:
                return None
            keys = keys | users
        if len(keys) > _FEW_CHANGES:
            return None
        ingresses = objects.get("Ingress", {})
        cache, resolver, ages = self._cache, self._resolver, self._ages
        our_classes, default_class = last.inputs[2], last.inputs[3]
        edits = []  # (place in the order, 0 to insert before it / 1 to replace or remove it, key, fresh or None)
        for key in keys:
            packed, done = ingresses.get(key), cache.get(key)
            if done is None and packed is None:
                continue  # came and went (or a stale user)
            if packed is None:  # deleted
                if done.rejection is not None or done.warnings or done.tls_hosts or done.default is not None:
                    return None
                edits.append((self._place(last.order, key), 1, key, None))
                continue
            if done is not None and done.ingress is packed and (
                    not used_may_differ or resolver.unchanged(done.deps)):
                continue
            ingress = unpack(packed)
            if done is not None:
                self._note_age(key, packed, ingress)
                if self._order is not last.order:
                    return None  # its age changed: sort again
            if _is_ours(ingress, settings, our_classes, default_class):
                fresh = self._translate(packed, ingress, key, resolver, settings, annotations)
            else:
                fresh = _Translated(packed, ())
            if done is None:  # added
                if fresh.rejection is not None or fresh.warnings or fresh.tls_hosts or fresh.default is not None:
                    return None
                age = _age(ingress)
                place = bisect_left(last.order, (age, key), key=lambda other: (ages[other], other))
                edits.append((place, 0, key, fresh, age))
                continue
            cache[key] = fresh  # (a walk of all, if this gives up, keeps it)
            self._add_users(key, fresh.deps)
            if done.rejection is not None or fresh.rejection is not None or (
                    fresh.warnings != done.warnings or fresh.tls_hosts != done.tls_hosts
                    or fresh.default != done.default):
                return None
            edits.append((self._place(last.order, key), 1, key, fresh))
        if any(place is None for place, *_ in edits):
            return None  # (every key is in the order: a walk of all if not)
        secrets = resolver.all_secrets() if used_may_differ else last.config.secrets
        if not edits:
            config = last.config if secrets is last.config.secrets else dataclasses.replace(
                last.config, secrets=secrets)
            return config, last.order, last.counts
        edits.sort(key=_first_three)
        return self._spliced(last, edits, secrets)

    def _spliced(self, last: "_Last", edits: list, secrets) -> tuple[Config, list, list]:
        """``last``'s configuration with ``edits`` (``_changes_only``'s, sorted by place) made: the
        routes, order and route counts copied by slices around them, the cache and ages kept."""
        order, counts, routes = last.order, last.counts, last.config.routes
        tls_names, cache, ages = self._tls_names, self._cache, self._ages
        # An Ingress added or deleted: a new order and new counts (copied by slices); else the
        # counts of the replaced ones are set in place.
        reshaped = any(edit[1] == 0 or edit[3] is None for edit in edits)
        new_order, new_counts = ([], []) if reshaped else (order, counts)
        pieces = []
        at = 0  # the next place in ``order`` not yet copied
        copied = 0  # ... and where its routes start
        for edit in edits:
            place, replaces, key, fresh = edit[:4]
            start = copied + sum(islice(counts, at, place))
            pieces.append(routes[copied:start])
            if reshaped:
                new_order.extend(islice(order, at, place))
                new_counts.extend(islice(counts, at, place))
            at, copied = place, start
            if fresh is not None:
                fresh.routes = _with_tls(fresh, tls_names)
                fresh.marked_for = tls_names
                pieces.append(fresh.routes)
            if not replaces:  # added before ``order[place]``
                cache[key] = fresh
                ages[key] = edit[4]
                self._add_users(key, fresh.deps)
                new_order.append(key)
                new_counts.append(len(fresh.routes))
                continue
            at, copied = place + 1, start + counts[place]
            if fresh is None:  # deleted
                del cache[key], ages[key]
            elif reshaped:
                new_order.append(key)
                new_counts.append(len(fresh.routes))
            else:
                counts[place] = len(fresh.routes)
        pieces.append(routes[copied:])
        if reshaped:
            new_order.extend(islice(order, at, None))
            new_counts.extend(islice(counts, at, None))
            self._order = new_order
        config = dataclasses.replace(last.config, routes=tuple(chain.from_iterable(pieces)), secrets=secrets)
        return config, new_order, new_counts

    def _place(self, order: list, key: tuple[str, str]) -> int | None:
        """``key``'s place in ``order``, sorted by (creation time, key): a binary search (a dict of
        the 10,000 places would keep ~0.6 MiB for a few microseconds a change); None if not there."""
        ages = self._ages
        place = bisect_left(order, (ages[key], key), key=lambda other: (ages[other], other))
        return place if place < len(order) and order[place] == key else None

    def _users_of(self, objects, last: "_Last") -> set | None:
        """The keys of the Ingresses whose translation used a Service, EndpointSlice, Secret or
        ConfigMap that changed since ``last`` (a few more at most: stale users), or None when the
        store does not know what changed."""
        names = set(self._resolver.touched)  # the Services whose EndpointSlices changed
        for kind in ("Service", "Secret", "ConfigMap"):
            changed = objects.changed(kind, last.objects)
            if changed is None:
                return None
            names.update(changed)
        users = self._users
        if users is None:
            users = self._users = {}
            for key, done in self._cache.items():
                self._add_users(key, done.deps)
        found = set()
        for name in names:
            user = users.get(name)
            if type(user) is list:
                found.update(user)
            elif user is not None:
                found.add(user)
        return found

    def _add_users(self, key: tuple[str, str], deps: tuple) -> None:
        """Note ``key`` as a user of each object in ``deps`` (``_deps``'s flat triples) in ``_users``."""
        users = self._users
        if users is None:
            return
        for name in islice(deps, 1, None, 3):
            user = users.get(name)
            if user is None:
                users[name] = key
            elif type(user) is list:
                if key not in user:
                    user.append(key)
            elif user != key:
                users[name] = [user, key]

    def translate(self, objects: Snapshot, settings: TranslateSettings = TranslateSettings(),
                  annotations: Sequence[Annotation] = ()) -> Config:
        """The Ingress fragment of the configuration (``interfaces.RouteSource``)."""
        return self(objects, settings, annotations)

    @staticmethod
    def _translate(packed, ingress, key, resolver, settings, annotations) -> _Translated:
        ref = ObjectRef("Ingress", key[0], key[1])  # the store key's strings, not more copies
        resolver.deps = used = {}
        warnings: list[Rejection] = []
        try:
            routes, tls_hosts, default = _translate_ingress(ingress, ref, resolver, settings, annotations, warnings)
        except _Invalid as exc:
            rejection = Rejection(ref, str(exc), exc.annotations)
            return _Translated(packed, _deps(used), warnings=tuple(warnings), rejection=rejection)
        finally:
            resolver.deps = None
        return _Translated(packed, _deps(used), tuple(routes), tuple(tls_hosts), default, tuple(warnings))

    def _note_age(self, key: tuple[str, str], packed: Packed, ingress: Mapping) -> None:
        # Only the creation time is kept (the store key is the dict's): no tuple per Ingress.
        age = _age(ingress)
        if self._ages.get(key) != age:
            self._order = None  # sort again
            self._ages[key] = age

    def _oldest_first(self, ingresses: Mapping[tuple[str, str], Packed]) -> list[tuple[str, str]]:
        """The store keys of ``ingresses`` by age (creation time, then namespace and name),
        sorted again only when an Ingress came, went or changed its creation time
        (``_note_age`` saw every new or changed one)."""
        ages = self._ages
        if len(ages) != len(ingresses):
            for key in [key for key in ages if key not in ingresses]:
                del ages[key]
            self._order = None
        if self._order is None:
            # By key, then (stable) by creation time: the order of (creation time, key),
            # without a tuple per Ingress.
            order = sorted(ages)
            order.sort(key=ages.__getitem__)
            self._order = order
        return self._order


# More changed Ingresses than this since the last configuration: translate them all (a walk).
_FEW_CHANGES = 64


def _first_three(edit: tuple):
    """``_changes_only``'s edits by place, an addition before the replacement or deletion at its
    place, additions at one place by (creation time, key)."""
    return (edit[0], edit[1], edit[4] if edit[1] == 0 else "", edit[2])


class _Last(NamedTuple):
    """The last configuration ``Translator`` made from a store's snapshot, and what
    ``_changes_only`` needs to make the next one from it."""

    objects: Any  # the snapshot (``StoreSnapshot``)
    inputs: tuple  # the settings, annotations and classes it was made under
    config: Config
    order: list  # the Ingress keys, oldest first (``Translator._order``)
    counts: list  # the routes each Ingress in ``order`` gave (0: rejected)


def _with_tls(done: _Translated, tls_names: frozenset[str]) -> tuple[Route, ...]:
    """``done``'s routes, those of TLS hosts marked as served over TLS; a route whose marking
    is the same as last time keeps its very object (unchanged routes stay identical and keep
    their route table entries). Worked out from the routes served last time alone: the
    translation makes every route unmarked, so a route that loses its mark is an unmarked
    copy, equal to the translated one (which ``Translator`` does not keep once marked copies
    are served: 6,000 routes at bench/scale.py's 10,000 Ingresses)."""
    before = done.routes  # the routes last served, once served (``Translator`` sets them)
    out = []
    changed = False
    for old in before:
        wanted = bool(old.host) and old.host in tls_names
        if old.tls is wanted:
            out.append(old)
        else:
            out.append(dataclasses.replace(old, tls=wanted))
            changed = True
    return tuple(out) if changed else before  # nothing to mark or unmark: not a copy of the tuple


# -- class selection --------------------------------------------------------------------


def _our_classes(classes: Mapping, settings: TranslateSettings) -> tuple[set[str], bool]:
    ours: set[str] = set()
    default = False
    for packed in classes.values():
        obj = unpack(packed)
        name = (obj.get("metadata") or {}).get("name", "")
        controller = (obj.get("spec") or {}).get("controller", "")
        if controller in settings.controllers or name == settings.ingress_class:
            ours.add(name)
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            if str(annotations.get(DEFAULT_CLASS_ANNOTATION, "")).lower() == "true":
                default = True
    return ours, default


def ingress_selector(objects: Snapshot, settings: TranslateSettings):
    """A predicate telling whether an Ingress (a dict) is ours, as the translator decides it."""
    ours, default = _our_classes(objects.get("IngressClass", {}), settings)
    return lambda ingress: _is_ours(ingress, settings, ours, default)


def _is_ours(ingress: Mapping, settings: TranslateSettings, ours: set[str], default: bool) -> bool:
    annotations = (ingress.get("metadata") or {}).get("annotations") or {}
    legacy = annotations.get(CLASS_ANNOTATION)
    if legacy is not None:  # the annotation wins over the field
        return legacy == settings.ingress_class
    class_name = (ingress.get("spec") or {}).get("ingressClassName")
    if class_name:
        return class_name in ours or class_name == settings.ingress_class
    return default or settings.watch_ingress_without_class


# -- one Ingress ------------------------------------------------------------------------


def _translate_ingress(ingress, ref, resolver, settings, annotations, warnings):
    meta = ingress.get("metadata") or {}
    spec = ingress.get("spec") or {}
    namespace = ref.namespace
    created = str(meta.get("creationTimestamp") or "")
    raw_annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    _check_snippets(raw_annotations, settings)
    _check_honoured(ref, raw_annotations, annotations, settings, warnings)
    values = _parse_annotations(raw_annotations, annotations, namespace, resolver, settings)
    annotation_pairs = tuple(sorted(raw_annotations.items()))
    rewrites = _backend_rewrites(raw_annotations, annotations, values)

    rules = spec.get("rules") or []
    default_spec = spec.get("defaultBackend")
    if not rules and not default_spec:
        raise _Invalid("either spec.defaultBackend or spec.rules must be specified")

    routes: list[Route] = []
    for index, rule in enumerate(rules):
        host = _valid_host(rule.get("host") or "", f"spec.rules[{index}].host")
        http = rule.get("http")
        if http is None:
            continue  # a host with no http rules: its requests go to the default backend
        paths = http.get("paths") or []
        if not paths:
            raise _Invalid(f"spec.rules[{index}].http.paths must not be empty")
        for p_index, path_spec in enumerate(paths):
            where = f"spec.rules[{index}].http.paths[{p_index}]"
            path, path_type = _valid_path(path_spec, where)
            backend = resolver.backend(namespace, path_spec.get("backend"), f"{where}.backend", warnings, ref)
            if rewrites:
                backend = _rewritten(backend, rewrites)
            routes.append(
                Route(host, path, path_type, backend, ref, created, annotation_pairs, values)
            )

    default = None
    if default_spec:
        backend = resolver.backend(namespace, default_spec, "spec.defaultBackend", warnings, ref)
        if rewrites:
            backend = _rewritten(backend, rewrites)
        default = Route("", "/", PREFIX, backend, ref, created, annotation_pairs, values)

    tls_hosts: list[TLSHost] = []
    for index, tls in enumerate(spec.get("tls") or []):
        secret_name = tls.get("secretName")
        for host in tls.get("hosts") or []:
            host = _valid_host(str(host), f"spec.tls[{index}].hosts")
            if secret_name:
                tls_hosts.append(TLSHost(host, ObjectRef("Secret", namespace, secret_name), ref))
    return routes, tls_hosts, default


def _valid_host(host: str, where: str) -> str:
    if not host:
        return ""
    lowered = host.lower()
    name = lowered[2:] if lowered.startswith("*.") else lowered
    if len(lowered) > 253 or not _DNS_SUBDOMAIN.match(name) or _IPV4.match(name):
        raise _Invalid(f"{where}: {host!r} is not a valid host name (a DNS name or *.name, not an IP)")
    return sys.intern(lowered)  # one copy per host, however many Ingresses and paths name it


def _valid_path(path_spec: Mapping, where: str) -> tuple[str, str]:
    path_type = _PATH_TYPES.get(path_spec.get("pathType"))  # the shared constant, not the object's copy
    if path_type is None:
        raise _Invalid(f"{where}.pathType must be one of {', '.join(PATH_TYPES)}, "
                       f"got {path_spec.get('pathType')!r}")
    path = path_spec.get("path")
    if path is None or path == "":
        if path_type != IMPLEMENTATION_SPECIFIC:
            raise _Invalid(f"{where}.path is required for pathType {path_type}")
        path = "/"
    path = str(path)
    if not path.startswith("/"):
        raise _Invalid(f"{where}.path {path!r} must start with '/'")
    check = path.lower()
    for bad in ("//", "/./", "/../", "%2f"):
        if bad in check:
            raise _Invalid(f"{where}.path {path!r} must not contain {bad!r}")
    if check.endswith("/..") or check.endswith("/."):
        raise _Invalid(f"{where}.path {path!r} must not end with '/..' or '/.'")
    try:
        check_plain_text(path, max_length=2048)
    except ValueError as exc:
        raise _Invalid(f"{where}.path: {exc}") from None
    if path_type != IMPLEMENTATION_SPECIFIC:
        found = _NOT_IN_PATHS.search(path)
        if found:
            raise _Invalid(f"{where}.path {path!r} contains {found.group()!r}")
    return path, path_type


_PATH_TYPES = {path_type: path_type for path_type in PATH_TYPES}
_NOT_IN_PATHS = re.compile(r"""[ \t{};"'\\`$]""")


# The declared annotations and their defaults, for the sequence last seen (by identity:
# hashing some sixty frozen dataclasses per Ingress cost ~8 µs, 80 ms at 10,000).
_DEFAULTS: list[tuple[Sequence[Annotation], tuple]] = []


_LINE_BREAKS = str.maketrans("\r\n\t", "   ")  # what a multi-line annotation may contain


def _parse_annotations(raw, annotations, namespace, resolver, settings) -> tuple[tuple[str, Any], ...]:
    if settings.annotation_defaults:
        return _parse_with_defaults(raw, annotations, namespace, resolver, settings)
    if not any(key.startswith((NGINX_PREFIX, INGRESSD_PREFIX)) for key in raw):
        # The common case: none of ours is set; every Ingress shares one tuple of defaults.
        if not _DEFAULTS or _DEFAULTS[0][0] is not annotations:
            _DEFAULTS[:] = [(annotations, tuple((a.name, a.default) for a in annotations))]
        return _DEFAULTS[0][1]
    values: list[tuple[str, Any]] = []
    for annotation in annotations:
        own_key = INGRESSD_PREFIX + annotation.name
        nginx_key = NGINX_PREFIX + annotation.name
        key = own_key if own_key in raw else nginx_key
        text = raw.get(key)
        if text is None or not text.strip():  # ingress-nginx reads an empty value as absent
            values.append((annotation.name, annotation.default))
            continue
        values.append((annotation.name, _parse_one(annotation, key, text, namespace, resolver, settings)))
    return tuple(values)


# The declared annotations with a ``route_backend`` (index, annotation), for the sequence last
# seen (by identity, as ``_DEFAULTS``).
_ROUTE_BACKENDS: list[tuple[Sequence[Annotation], tuple]] = []


def _backend_rewrites(raw, annotations, values) -> tuple:
    """(route_backend, value) of each declared annotation with a ``route_backend`` that the
    Ingress sets (service-upstream): they decide where its routes send requests."""
    if not _ROUTE_BACKENDS or _ROUTE_BACKENDS[0][0] is not annotations:
        _ROUTE_BACKENDS[:] = [(annotations, tuple((index, annotation) for index, annotation in enumerate(annotations)
                                                  if annotation.route_backend is not None))]
    declared = _ROUTE_BACKENDS[0][1]
    if not declared:
        return ()
    found = []
    for index, annotation in declared:
        own_key = INGRESSD_PREFIX + annotation.name
        text = raw.get(own_key if own_key in raw else NGINX_PREFIX + annotation.name)
        if text is not None and text.strip():  # as _parse_annotations: an empty value is absent
            found.append((annotation.name, annotation.route_backend, values[index][1]))
    return tuple(found)


def _rewritten(backend: Backend, rewrites) -> Backend:
    for name, route_backend, value in rewrites:
        try:
            backend = route_backend(value, backend)
        except (ValueError, TypeError) as exc:
            raise _Invalid(f"annotation {name}: {exc}", (name,)) from None
        if not isinstance(backend, Backend):
            raise _Invalid(f"annotation {name}: its plugin gave {type(backend).__name__}, not a Backend", (name,))
    return backend
def _parse_one(annotation, key, text, namespace, resolver, settings) -> Any:
    try:
        if annotation.multiline:
            check_plain_text(text.translate(_LINE_BREAKS), max_length=65536)
        else:
            check_plain_text(text, lines=annotation.lines)
        value = annotation.parse(text)
        if annotation.resolve:
            value = resolver.reference(annotation.resolve, value, namespace, settings)
    except (ValueError, TypeError, _Invalid) as exc:  # _Invalid: a refused reference
        raise _Invalid(f"annotation {key}: {exc}") from None
    return value


def _parse_with_defaults(raw, annotations, namespace, resolver, settings) -> tuple[tuple[str, Any], ...]:
    """``_parse_annotations`` with the ConfigMap's values standing in for the annotations an
    Ingress does not set (ingress-nginx: the annotation overrides the ConfigMap). A ConfigMap
    reference in a default is the operator's: it may name another namespace."""
    defaults = dict(settings.annotation_defaults)
    operator = dataclasses.replace(settings, allow_cross_namespace_resources=True)
    values: list[tuple[str, Any]] = []
    for annotation in annotations:
        own_key = INGRESSD_PREFIX + annotation.name
        key = own_key if own_key in raw else NGINX_PREFIX + annotation.name
        text = raw.get(key)
        if text is not None and text.strip():
            values.append((annotation.name, _parse_one(annotation, key, text, namespace, resolver, settings)))
        elif annotation.name in defaults and not _sets_alias(raw, annotation.name):
            where = f"(ConfigMap default) {annotation.name}"
            values.append((annotation.name, _parse_one(annotation, where, defaults[annotation.name], namespace,
                                                       resolver, operator)))
        else:
            values.append((annotation.name, annotation.default))
    return tuple(values)


def _sets_alias(raw, name: str) -> bool:
    for alias in ANNOTATION_ALIASES.get(name, ()):
        for prefix in (NGINX_PREFIX, INGRESSD_PREFIX):
            if (raw.get(prefix + alias) or "").strip():
                return True
    return False


def _check_snippets(raw, settings) -> None:
    """ingress-nginx's admission of snippets: refused when the ConfigMap's allow-snippet-annotations is
    false, and (being Critical) when annotations-risk-level is below Critical."""
    if settings.allow_snippets and settings.risk_level == "Critical":
        return
    for key in sorted(raw):
        if key.startswith((NGINX_PREFIX, INGRESSD_PREFIX)) and key.endswith("-snippet") and raw[key].strip():
            name = key.rpartition("/")[2]
            if not settings.allow_snippets:
                raise _Invalid(f"annotation {key} cannot be used: snippet directives are disabled by the Ingress "
                               "administrator (ConfigMap allow-snippet-annotations)", (name,))
            raise _Invalid(f"annotation {key} is Critical and the ConfigMap's annotations-risk-level is "
                           f"{settings.risk_level}: not served", (name,))


def _check_honoured(ref, raw, annotations, settings, warnings) -> None:
    """Warn of the annotations ingressd ignores harmlessly; refuse the Ingress (``_Invalid``)
    when one it cannot honour would widen access or send traffic elsewhere if ignored."""
    problems = assess(raw, _owned(annotations), settings.ignore_annotations)
    if not problems:
        return
    blocking = [problem for problem in problems if problem.blocking]
    warnings.extend(Rejection(ref, problem.reason, (problem.name,)) for problem in problems if not problem.blocking)
    if blocking:
        raise _Invalid("; ".join(problem.reason for problem in blocking),
                       tuple(problem.name for problem in blocking))


_OWNED: list[tuple[Sequence[Annotation], frozenset[str]]] = []


def _owned(annotations: Sequence[Annotation]) -> frozenset[str]:
    """The names plugins declare, for the sequence last seen (by identity, as ``_DEFAULTS``)."""
    if not _OWNED or _OWNED[0][0] is not annotations:
        _OWNED[:] = [(annotations, frozenset(a.name for a in annotations))]
    return _OWNED[0][1]


def _global_default(reference: str, resolver, warnings) -> Route | None:
    namespace, _, name = reference.partition("/")
    ref = ObjectRef("Service", namespace, name)
    backend = resolver.first_port_backend(namespace, name)
    if backend is None:
        warnings.append(Rejection(ref, "--default-backend-service names a Service that does not exist"))
        return None
    return Route("", "/", PREFIX, backend, ref)


# -- backends ---------------------------------------------------------------------------


class _Resolver:
    """Looks up Services, EndpointSlices and Secrets, recording what each Ingress used.

    ``update`` takes a new snapshot and re-indexes only the EndpointSlices that changed.
    Objects stay packed; each is unpacked when something is derived from it anew.
    """

    def __init__(self, objects: Snapshot):
        self.services: Mapping[tuple[str, str], Packed] = {}
        self.secrets: Mapping[tuple[str, str], Packed] = {}
        self.configmaps: Mapping[tuple[str, str], Packed] = {}
        self._slice_objects: Mapping = {}
        # slice key → its Service's key (the packed slice is in ``_slice_objects``, the last
        # snapshot's mapping, which the store never changes once handed out)
        self._slice_owner: dict[tuple[str, str], tuple[str, str] | None] = {}
        # A Service's slices: most Services have one, kept bare (the key; the packed slice)
        # rather than in a tuple of one (two tuples per Service); several: a list of keys, a
        # tuple of packed slices (``_slices_of`` reads either).
        self._service_slices: dict[tuple[str, str], tuple[str, str] | list[tuple[str, str]]] = {}
        self.slices: dict[tuple[str, str], Packed | tuple[Packed, ...]] = {}
        self._service: tuple[Packed | None, dict] = (None, {})  # the last Service unpacked
        self._secret_data: dict[tuple[str, str], tuple[dict, SecretData]] = {}
        self._all_secrets: tuple[Mapping, tuple[SecretData, ...]] | None = None
        self._secret_keys: list[tuple[str, str]] = []  # ``_all_secrets``'s keys, in its order
        # The Secrets the store says came, went or changed since ``_all_secrets`` was made (None: not known).
        self._secrets_changed: set | None = None
        self.deps: dict | None = None  # while translating one Ingress: (table, key) → object used
        self._backends: dict[tuple[str, str], tuple] = {}  # Service → (packed, slices, port, Backend)
        # One int per endpoint port number (each unpacked slice has its own 8080: ints above
        # 256 are not shared); at most the 65,535 valid ports.
        self._ports: dict[int, int] = {}
        # The Services whose EndpointSlices came, went or changed in the last ``update``.
        self.touched: set[tuple[str, str]] = set()
        self._objects: Snapshot | None = None  # the last snapshot (its ``changed`` lists the Services changed)
        self.update(objects)

    def update(self, objects: Snapshot) -> bool:
        """Take a new snapshot; False when its Services, EndpointSlices and Secrets are the
        very mappings of the last one (then no translation's dependencies changed)."""
        services = objects.get("Service", {})
        secrets = objects.get("Secret", {})
        config_maps = objects.get("ConfigMap", {})
        slice_objects = objects.get("EndpointSlice", {})
        changed = services is not self.services or secrets is not self.secrets \
            or config_maps is not self.configmaps or slice_objects is not self._slice_objects
        self.configmaps = config_maps
        previous, self._objects = self._objects, None  # (set again once this update is made)
        # What changed, kind by kind, when the store says (else every object is looked at).
        changed_keys = getattr(objects, "changed", None)
        if services is not self.services and self._backends:
            gone = None if changed_keys is None else changed_keys("Service", previous)
            if gone is None:  # not known: every resolved Service looked at
                self._backends = {k: v for k, v in self._backends.items() if k in services}
            else:
                for key in gone:
                    if key not in services:
                        self._backends.pop(key, None)
        if secrets is not self.secrets:
            came = None if changed_keys is None else changed_keys("Secret", previous)
            if came is None:
                self._secrets_changed = None
            elif self._secrets_changed is not None:
                self._secrets_changed |= came
        self.services = services
        self.secrets = secrets
        self.touched = set()
        if slice_objects is self._slice_objects:
            self._objects = objects
            return changed
        owners, by_service = self._slice_owner, self._service_slices
        touched: set[tuple[str, str] | None] = set()

        def forget(key) -> None:
            service = owners.pop(key)
            touched.add(service)
            if service is not None:
                keys = by_service[service]
                rest = [other for other in keys if other != key] if type(keys) is list else []
                by_service[service] = rest[0] if len(rest) == 1 else rest  # [] when none is left

        before = self._slice_objects
        came = None if changed_keys is None else changed_keys("EndpointSlice", previous)
        if came is None:
            items = slice_objects.items()
        else:  # (a key that came and went again is in ``came``, not in either mapping)
            items = [(key, slice_objects[key]) for key in came if key in slice_objects]
        for key, packed in items:
            if before.get(key) is not packed:
                if key in owners:
                    forget(key)
                service = _slice_service(key[0], unpack(packed))
                owners[key] = service
                touched.add(service)
                if service is not None:
                    keys = by_service.get(service)
                    if not keys:
                        by_service[service] = key
                    elif type(keys) is list:
                        keys.append(key)
                    else:
                        by_service[service] = [keys, key]
        if came is not None:
            for key in came:
                if key in owners and key not in slice_objects:
                    forget(key)
        elif len(owners) != len(slice_objects):
            for key in [key for key in owners if key not in slice_objects]:
                forget(key)
        touched.discard(None)
        self.touched = touched
        for service in touched:
            keys = by_service.get(service)
            if keys:
                self.slices[service] = (tuple(slice_objects[key] for key in sorted(keys)) if type(keys) is list
                                        else slice_objects[keys])
            else:
                self.slices.pop(service, None)
                by_service.pop(service, None)
        self._slice_objects = slice_objects
        self._objects = objects
        return changed

    def unchanged(self, deps) -> bool:
        """True when every object in ``deps`` (``_deps``'s flat triples) is still the same object."""
        items = iter(deps)
        for table, key, value in zip(items, items, items):
            current = getattr(self, table).get(key)
            if current is not value:
                return False
        return True

    def _use(self, table: str, key) -> Any:
        value = getattr(self, table).get(key)
        if self.deps is not None:
            self.deps[table, key] = value  # paths sharing a Service record it once
        return value

    def backend(self, namespace, spec, where, warnings, ref) -> Backend:
        if not isinstance(spec, dict):  # unpacked objects are dicts (typing.Mapping's check is slow)
            raise _Invalid(f"{where} is missing")
        if spec.get("resource"):
            raise _Invalid(f"{where}.resource backends are not supported; use a service")
        service = spec.get("service") or {}
        name = service.get("name")
        if not name:
            raise _Invalid(f"{where}.service.name is required")
        port = service.get("port") or {}
        number, port_name = port.get("number"), port.get("name")
        if (number is None) == (not port_name):
            raise _Invalid(f"{where}.service.port needs exactly one of number and name")
        # One copy of each label ("80", "http"), not one per path: str(80) is a new string each time.
        port_label = sys.intern(str(number) if number is not None else str(port_name))
        key = (namespace, name)  # one tuple for both dependencies (its Service, its slices)
        packed = self._use("services", key)
        if packed is None:
            warnings.append(Rejection(ref, f"{where}: Service {namespace}/{name} not found (503 until it exists)"))
            return Backend(namespace, name, port_label)
        obj = self._unpack_service(packed)
        service_port = self._service_port(obj, number, port_name)
        if service_port is None:
            raise _Invalid(f"{where}: Service {namespace}/{name} has no port {port_label}")
        return self._resolve(namespace, name, port_label, packed, obj, service_port, key)

    def first_port_backend(self, namespace: str, name: str) -> Backend | None:
        key = (namespace, name)
        packed = self._use("services", key)
        if packed is None:
            return None
        obj = self._unpack_service(packed)
        ports = (obj.get("spec") or {}).get("ports") or []
        if not ports:
            return Backend(namespace, name, "")
        port = ports[0]
        return self._resolve(namespace, name, str(port.get("port")), packed, obj, port, key)

    def _unpack_service(self, packed: Packed) -> dict:
        # An Ingress's paths mostly name one Service: unpack it once for all of them.
        last, obj = self._service
        if last is not packed:
            obj = unpack(packed)
            self._service = (packed, obj)
        return obj

    @staticmethod
    def _service_port(obj, number, name) -> Mapping | None:
        for port in (obj.get("spec") or {}).get("ports") or []:
            if number is not None and port.get("port") == number:
                return port
            if name and port.get("name") == name:
                return port
        return None

    def _resolve(self, namespace, name, port_label, packed, obj, service_port, key) -> Backend:
        # Paths of one Ingress (and Ingresses) share Services: resolve each Service port
        # once for as long as the Service and its EndpointSlices are the same objects.
        # Keyed by the Service's (namespace, name) tuple, which the dependencies keep anyway, and
        # holding the port last resolved: a (namespace, name, port) key per Service was 0.6 MiB
        # at 10,000 Ingresses; a Service named with two ports is resolved again when they alternate.
        slices = self._use("slices", key)
        known = self._backends.get(key)
        if known is not None and known[0] is packed and known[1] is slices and known[2] == port_label:
            return known[3]
        backend = self._resolve_new(namespace, name, port_label, obj, service_port, _slices_of(slices))
        self._backends[key] = (packed, slices, port_label, backend)
        return backend

    def _resolve_new(self, namespace, name, port_label, obj, service_port, slices) -> Backend:
        spec = obj.get("spec") or {}
        if spec.get("type") == "ExternalName":
            external = str(spec.get("externalName") or "")
            endpoint = Endpoint(external, int(service_port.get("port") or 80))
            return Backend(namespace, name, port_label, (endpoint,), external_name=external)
        wanted = service_port.get("name") or ""
        found: dict[tuple[str, int], Endpoint] = {}
        for packed in slices:
            slice_obj = unpack(packed)
            port_number = None
            for slice_port in slice_obj.get("ports") or []:
                if (slice_port.get("name") or "") == wanted:
                    port_number = slice_port.get("port")
                    break
            if port_number is None:
                continue
            for endpoint in slice_obj.get("endpoints") or []:
                conditions = endpoint.get("conditions") or {}
                if conditions.get("ready") is False or conditions.get("terminating") is True:
                    continue
                for address in endpoint.get("addresses") or []:
                    number = int(port_number)
                    if 0 < number < 65536:
                        number = self._ports.setdefault(number, number)
                    found[(str(address), number)] = Endpoint(str(address), number)
        endpoints = tuple(found[key] for key in sorted(found))
        return Backend(namespace, name, port_label, endpoints, cluster_endpoint=_cluster_endpoint(spec, service_port))

    def reference(self, kind: str, value: Any, namespace: str, settings: TranslateSettings) -> Any:
        if value is None:
            return None
        text = str(value)
        ref_namespace, _, name = text.rpartition("/")
        ref_namespace = ref_namespace or namespace
        if ref_namespace != namespace and not settings.allow_cross_namespace_resources:
            raise _Invalid(
                f"{text!r} is in another namespace; start ingressd with "
                "--allow-cross-namespace-resources to allow that"
            )
        if kind == "secret":
            return self.secret(ref_namespace, name)
        if kind == "service":
            return self.first_port_backend(ref_namespace, name)
        if kind == "configmap":
            return self.config_map(ref_namespace, name)
        raise _Invalid(f"unknown reference kind {kind!r}")

    def config_map(self, namespace: str, name: str) -> ConfigMapData | None:
        obj = self._use("configmaps", (namespace, name))
        return None if obj is None else _config_map_data(unpack(obj))

    def secret(self, namespace: str, name: str) -> SecretData | None:
        obj = self._use("secrets", (namespace, name))
        return None if obj is None else self._data_of((namespace, name), obj)

    def all_secrets(self) -> tuple[SecretData, ...]:
        """Every Secret's data, by (namespace, name): sorted once, then kept in order as the store
        says Secrets came, went or changed (a change of one Secret: not 1,000 sorted again)."""
        cached, changed = self._all_secrets, self._secrets_changed
        if cached is not None and cached[0] is self.secrets:
            return cached[1]
        self._all_secrets, self._secrets_changed = None, None  # (set again once made)
        if cached is None or changed is None:
            items = sorted(self.secrets.items())
            result = tuple(self._data_of(key, obj) for key, obj in items)
            self._secret_keys = [key for key, _ in items]
            self._secret_data = {key: self._secret_data[key] for key in self.secrets if key in self._secret_data}
        else:
            result = self._secrets_patched(cached[1], changed)
        self._all_secrets, self._secrets_changed = (self.secrets, result), set()
        return result

    def _secrets_patched(self, last: tuple[SecretData, ...], changed: set) -> tuple[SecretData, ...]:
        """``last`` (in ``_secret_keys``'s order) with the Secrets of the keys ``changed`` as they are now."""
        keys, data, moved = self._secret_keys, list(last), False
        for key in changed:
            at = bisect_left(keys, key)
            known = at < len(keys) and keys[at] == key
            obj = self.secrets.get(key)
            if obj is None:
                if known:
                    del keys[at], data[at]
                    self._secret_data.pop(key, None)
                    moved = True
            elif known:
                fresh = self._data_of(key, obj)
                moved = moved or fresh is not data[at]
                data[at] = fresh
            else:
                keys.insert(at, key)
                data.insert(at, self._data_of(key, obj))
                moved = True
        return tuple(data) if moved else last

    def _data_of(self, key, obj) -> SecretData:
        known = self._secret_data.get(key)
        if known is not None and known[0] is obj:
            return known[1]
        data = _secret_data(unpack(obj))
        self._secret_data[key] = (obj, data)
        return data


def _cluster_endpoint(spec: Mapping, service_port: Mapping) -> Endpoint | None:
    """The Service's cluster IP with the port's number (ingress-nginx's getServiceClusterEndpoint),
    or None when it has none (``None``: headless; absent)."""
    address = spec.get("clusterIP")
    port = service_port.get("port")
    if not address or address == "None" or not isinstance(port, int):
        return None
    return Endpoint(str(address), port)


def _slices_of(slices: Packed | tuple[Packed, ...] | None) -> tuple[Packed, ...]:
    """A Service's packed slices as ``_Resolver.slices`` keeps them (one bare, several in a
    tuple, None for none), as a tuple."""
    if slices is None:
        return ()
    return (slices,) if type(slices) is bytes else slices


def _slice_service(namespace: str, obj: Mapping) -> tuple[str, str] | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    service = labels.get("kubernetes.io/service-name")
    return (namespace, service) if service else None


def secret_data(obj: Mapping) -> SecretData:
    """A Secret object's data, decoded (base64 ``data`` and ``stringData``)."""
    return _secret_data(obj)


def _secret_data(obj: Mapping) -> SecretData:
    items: dict[str, bytes] = {}
    for key, value in ((obj.get("data") or {}).items()):
        try:
            items[str(key)] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            continue  # an undecodable value is treated as absent; users report it
    for key, value in ((obj.get("stringData") or {}).items()):
        items[str(key)] = str(value).encode("utf-8")
    return SecretData(_ref("Secret", obj), str(obj.get("type") or "Opaque"), tuple(sorted(items.items())))


def _config_map_data(obj: Mapping) -> ConfigMapData:
    data = obj.get("data") or {}
    items = tuple(sorted((str(key), str(value)) for key, value in data.items())) if isinstance(data, dict) else ()
    return ConfigMapData(_ref("ConfigMap", obj), items)


def _ref(kind: str, obj: Mapping) -> ObjectRef:
    meta = obj.get("metadata") or {}
    return ObjectRef(kind, meta.get("namespace") or "", meta.get("name") or "")


def _age(obj: Mapping) -> str:
    """An Ingress's creation time, as it sorts ("9999" when it has none)."""
    return str((obj.get("metadata") or {}).get("creationTimestamp") or "9999")
