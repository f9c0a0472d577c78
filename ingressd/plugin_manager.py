"""The plugin manager: loads built-in and third-party plugins through one entry-point group.

Built-ins are ordinary plugins registered by the ``ingressd`` entry-point group of our own
distribution, exactly as a third party's. ``INGRESSD_TRACE_HOOKS=1`` prints every hook
call; ``--disable-plugin NAME`` blocks one by its entry-point name.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Iterable, Mapping, Sequence

import pluggy

from ingressd import hookspecs
from ingressd.config.filters import ExtensionRef
from ingressd.features import Annotation, AnnotationError, BuildContext, Option

hookimpl = pluggy.HookimplMarker("ingressd")


class PluginError(Exception):
    """A plugin set that cannot start (two owners of one annotation, a misspelled hook…)."""


class Plugins:
    """The loaded plugins and what they declared, collected once at start."""

    def __init__(self, manager: pluggy.PluginManager):
        self.manager = manager
        try:
            manager.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc)) from None
        self.options: tuple[Option, ...] = tuple(
            option for options in manager.hook.ingressd_options() for option in (options or ())
        )
        owners: dict[str, str] = {}
        annotations: list[Annotation] = []
        hook = manager.hook.ingressd_annotations
        trace = manager.trace.root.get("hook")  # called per plugin (to know owners), so traced by hand
        for impl in hook.get_hookimpls():
            trace("ingressd_annotations", {"plugin": impl.plugin_name})
            declared = impl.function() or ()
            trace("finish", "ingressd_annotations", "-->", [a.name for a in declared])
            for annotation in declared:
                owner = manager.get_name(impl.plugin) or repr(impl.plugin)
                if annotation.name in owners:
                    raise PluginError(
                        f"annotation {annotation.name!r} is claimed by two plugins: "
                        f"{owners[annotation.name]} and {owner}"
                    )
                owners[annotation.name] = owner
                annotations.append(annotation)
        self.annotations: tuple[Annotation, ...] = tuple(annotations)
        self.annotation_owners = owners
        self.filter_owners: dict[type, str] = {}  # Gateway API filter type → the plugin applying it
        for impl in manager.hook.ingressd_filters.get_hookimpls():
            owner = manager.get_name(impl.plugin) or repr(impl.plugin)
            for kind in impl.function() or ():
                if kind in self.filter_owners:
                    raise PluginError(f"filter {kind.__name__} is claimed by two plugins: "
                                      f"{self.filter_owners[kind]} and {owner}")
                self.filter_owners[kind] = owner

    def names(self) -> list[str]:
        return sorted(name for name, plugin in self.manager.list_name_plugin() if name and plugin is not None)

    def configure(self, settings: Mapping[str, Any], reactor: Any) -> None:
        self.manager.hook.ingressd_configure(settings=settings, reactor=reactor)

    def route_features(self, route, context: BuildContext) -> list:
        """The prepared features for one route; AnnotationError rejects its Ingress."""
        values = dict(route.features)
        self._check_filters(route)
        features: list = []
        for result in self.manager.hook.ingressd_route_features(route=route, values=values, context=context):
            if result is None:
                continue
            if isinstance(result, (list, tuple)):
                features.extend(item for item in result if item is not None)
            else:
                features.append(result)
        features.extend(self._filter_extensions(route, context))
        return features

    def _check_filters(self, route) -> None:
        """A route is never served without a filter it carries: one no loaded plugin owns rejects it."""
        for item in route.filters:
            if not isinstance(item, ExtensionRef) and type(item) not in self.filter_owners:
                raise AnnotationError(f"filter {type(item).__name__}: no loaded ingressd plugin applies it, "
                                      "so the rule is not served")

    def _filter_extensions(self, route, context: BuildContext) -> list:
        """The features of the route's ExtensionRef filters, in order."""
        features: list = []
        for extension in route.filters:
            if isinstance(extension, ExtensionRef):
                features.extend(self._extension_features(extension, route, context))
        return features

    def _extension_features(self, extension: ExtensionRef, route, context: BuildContext) -> list:
        """The features a plugin gives a Gateway API ExtensionRef; none handling it: not served."""
        result = self.manager.hook.ingressd_filter_extension(extension=extension, route=route, context=context)
        if result is None:
            raise AnnotationError(f"filter ExtensionRef {extension.group or 'core'}/{extension.kind} {extension.name}: "
                                  "no ingressd plugin handles it, so the rule is not served")
        return [item for item in result if item is not None] if isinstance(result, (list, tuple)) else [result]
    def route_features_for_build(self) -> Callable[[Any, BuildContext], list]:
        """``route_features`` for one route table build: the answers of implementations marked
        ``same_for_every_path`` are kept by (Ingress, annotation values, TLS, host) and given to
        that host's other paths instead of asking again; the others are asked for every route.
        The implementations are called in pluggy's order (the answers keep their order); with
        hook wrappers or ``INGRESSD_TRACE_HOOKS``, pluggy calls (and traces) them all, every time."""
        impls = list(reversed(self.manager.hook.ingressd_route_features.get_hookimpls()))  # call order
        if os.environ.get("INGRESSD_TRACE_HOOKS") or any(
                impl.hookwrapper or getattr(impl, "wrapper", False) for impl in impls):
            return self.route_features
        if not any(getattr(impl.function, "ingressd_same_for_every_path", False) for impl in impls):
            return self.route_features
        marked = [getattr(impl.function, "ingressd_same_for_every_path", False) for impl in impls]
        shared: dict = {}  # (Ingress, id(values), tls, host) → the marked implementations' answers
        # The values dict of the last key only: one per Ingress and host for the whole build was
        # ~3 KiB each (every declared annotation), ~32 MiB of peak at 10,000 Ingresses.
        last: list = [None, None]

        def route_features(route, context: BuildContext) -> list:
            self._check_filters(route)
            key = (route.ingress, id(route.features), route.tls, route.host)
            known = shared.get(key)
            # The same values for the host's other paths (as pluggy gives one dict to every
            # implementation); a fresh equal dict when other routes came in between.
            values = last[1] if known is not None and last[0] == key else dict(route.features)
            last[0], last[1] = key, values
            answers = [] if known is None else known[1]
            arguments = {"route": route, "values": values, "context": context}
            features: list = []
            for index, impl in enumerate(impls):
                if known is not None and marked[index]:
                    result = answers[index]
                else:
                    result = impl.function(*[arguments[name] for name in impl.argnames])
                    if known is None:
                        answers.append(result)
                if result is None:
                    continue
                if isinstance(result, (list, tuple)):
                    features.extend(item for item in result if item is not None)
                else:
                    features.append(result)
            if known is None:
                # route.features (the key's id) is kept alive by the entry: the id is not reused.
                shared[key] = (route.features, answers)
            features.extend(self._filter_extensions(route, context))
            return features

        return route_features

    def host_routes(self, config, context: BuildContext) -> list:
        """The routes plugins add for hosts no Ingress rule lists (``HostRoute``s)."""
        added: list = []
        for result in self.manager.hook.ingressd_host_routes(config=config, context=context):
            added.extend(item for item in result or () if item is not None)
        return added

    def config_applied(self, config, context: BuildContext) -> None:
        self.manager.hook.ingressd_config_applied(config=config, context=context)


def load_plugins(disabled: Iterable[str] = (), extra: Sequence[Any] = (), entry_points: bool = True) -> Plugins:
    """Load every plugin of the ``ingressd`` entry-point group (minus ``disabled``) and ``extra``."""
    manager = pluggy.PluginManager("ingressd")
    manager.add_hookspecs(hookspecs)
    for name in disabled:
        manager.set_blocked(name)
    try:  # register validates each hookimpl's arguments against its spec
        if entry_points:
            manager.load_setuptools_entrypoints("ingressd")
        for plugin in extra:
            manager.register(plugin)
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc)) from None
    if os.environ.get("INGRESSD_TRACE_HOOKS"):
        manager.trace.root.setwriter(lambda message: sys.stderr.write(message))
        manager.enable_tracing()
    return Plugins(manager)


__all__ = ["AnnotationError", "PluginError", "Plugins", "hookimpl", "load_plugins"]
