"""Wires metrics, the access log and the live view into a running ``IngressdService``.

Called once by the composition root; returns the admin endpoint's extra pages.
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource

from ingressd.accesslog import make_access_log
from ingressd.admin.metrics import FoldAtStop, Metrics
from ingressd.admin.routes import MetricsResource, RoutesJSON, RoutesPage


def install(service, settings: dict[str, Any]) -> dict[bytes, Resource]:
    """Add the observers to ``service.proxy``; sets ``service.metrics`` (or None) and ``service.access_log``.
    ``--admin-routes off`` leaves out ``/routes`` and the page at ``/`` (every host, backend and
    certificate): health and metrics stay, for an admin endpoint others must reach."""
    pages: dict[bytes, Resource] = {}
    if settings.get("admin_routes", True) not in (False, "off"):
        pages.update({b"": RoutesPage(service), b"routes": RoutesJSON(service)})
    service.metrics = None
    if not settings.get("no_metrics"):
        metrics = Metrics(
            service.reactor,
            compat=str(settings.get("metrics_compat") or ""),
            controller_class=str(settings.get("ingress_class") or "ingressd"),
            election_id=str(settings.get("election_id") or ""),
        )
        # once a round (the proxy's clock is the reactor, the metrics' clock: the same readings)
        service.proxy.round_observers.append(metrics.observe_round)
        metrics.hand_over = service.proxy.end_round
        service.reloader.listeners.append(metrics.config_changed)
        metrics.attach(proxy=service.proxy, pool=service.pool, reloader=service.reloader, state=service.state,
                       certificates=getattr(service, "certificates", None),
                       http=getattr(service, "http_factory", None), https=getattr(service, "tls_listener", None),
                       connection_limit=getattr(service, "connection_limit", None))
        if getattr(service, "passthrough", None) is not None:
            metrics.attach(passthrough=service.passthrough)
        if getattr(service, "l4", None) is not None:
            metrics.attach(l4=service.l4)
        if getattr(service, "redis", None) is not None:
            metrics.attach(redis=service.redis)
        FoldAtStop(metrics).setServiceParent(service)  # nothing held is lost at a stop
        service.metrics = metrics
        pages[b"metrics"] = MetricsResource(metrics)
    service.access_log = make_access_log(settings, getattr(service, "reactor", None))
    if service.access_log is not None:
        service.proxy.round_observers.append(service.access_log.observe_round)
        service.proxy.tls_observers.append(service.access_log.observe_tls)
        service.proxy.want_rounds()  # its lines written at most a round late
        service.access_log.hand_over = service.proxy.end_round
        service.access_log.setServiceParent(service)
        if service.metrics is not None:
            service.metrics.attach(access_log=service.access_log)
        if getattr(service, "l4", None) is not None:
            service.l4.access_log = service.access_log
    return pages
