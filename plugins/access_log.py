"""``enable-access-log``: no access-log line for a route's requests, as ingress-nginx's
``access_log off;`` in the location.

Only the access log: the route's requests are still counted in ``/metrics``, as ingress-nginx's
Prometheus metrics (collected by its Lua monitor, not by ``access_log``) still count them.
Requests ingressd answers before routing (a malformed request, an unknown host) are logged as
before: no route said otherwise.
"""

from __future__ import annotations

from ingressd import Annotation, Phase, hookimpl, parse_bool
from ingressd import same_for_every_path


class NoAccessLog:
    """The route's requests leave no access-log line (read when the route's entry is built)."""

    phase = Phase.PROXY
    access_log = False


@hookimpl
def ingressd_annotations():
    return [Annotation("enable-access-log", parse_bool, True, "write the route's requests to the access log")]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    return None if values.get("enable-access-log", True) else NoAccessLog()
