"""Every hook a plugin can implement, grouped by phase, with what each contributes.

Hooks run at start-up and when the route table is built, never per request: per request,
the proxy calls the prepared objects that ``ingressd_route_features`` returned (see
``ingressd.features``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pluggy

if TYPE_CHECKING:
    from ingressd.features import Annotation, BuildContext, HostRoute, Option, RouteFeature
    from ingressd.config.model import Config, Route
    from ingressd.config.filters import ExtensionRef

hookspec = pluggy.HookspecMarker("ingressd")


# -- start-up ---------------------------------------------------------------------------


@hookspec
def ingressd_options() -> Sequence["Option"]:
    """Command-line (and ``--config`` file) options this plugin adds to ``twistd ingressd``."""


@hookspec
def ingressd_configure(settings: Mapping[str, Any], reactor: Any) -> None:
    """Receive the parsed settings (every option, by long name) and the reactor, once at start."""


@hookspec
def ingressd_annotations() -> Sequence["Annotation"]:
    """Declare the annotations this plugin owns: name, parser, default; two owners is an error."""


# -- building routes --------------------------------------------------------------------


@hookspec
def ingressd_route_features(
    route: "Route", values: Mapping[str, Any], context: "BuildContext"
) -> "RouteFeature | Sequence[RouteFeature] | None":
    """Return the prepared per-route object(s) the request path calls for this route.

    ``values`` maps every declared annotation's name to its parsed value (or its default)
    for the route's Ingress. Raise ``AnnotationError`` to reject the route's Ingress.
    """


@hookspec
def ingressd_filters() -> "Sequence[type]":
    """Declare the Gateway API filter types (classes of ``ingressd.config.filters``) this plugin
    applies, as ``ingressd_annotations`` declares annotations: two owners is an error, and a route
    with a filter no plugin owns is not served (its object is rejected), never served without it."""


@hookspec(firstresult=True)
def ingressd_filter_extension(
    extension: "ExtensionRef", route: "Route", context: "BuildContext"
) -> "RouteFeature | Sequence[RouteFeature] | None":
    """Return the prepared feature(s) for a Gateway API ExtensionRef filter this plugin handles.

    ``extension`` names ``group``, ``kind`` and ``name`` (an object in the route's namespace);
    return None for one this plugin does not handle (the first answer wins). A route with an
    ExtensionRef no plugin handles is not served; raise ``AnnotationError`` to reject it with a
    reason of the plugin's.
    """


@hookspec
def ingressd_host_routes(config: "Config", context: "BuildContext") -> "Sequence[HostRoute] | None":
    """Return routes for host names no Ingress rule lists, each with the only features it runs.

    Called once per route table build with the configuration as served (rejected Ingresses
    left out); e.g. the ``www.`` name of a ``from-to-www-redirect`` host. The distinct
    annotation-value tuples of its routes: ``context.values_in_use(config.routes)``, followed from
    the server's last build (``ingressd.values_in_use(routes)`` walks them, remembering nothing).
    """


@hookspec
def ingressd_config_applied(config: "Config", context: "BuildContext") -> None:
    """Called after a new configuration was swapped in (e.g. to drop state of removed routes)."""
