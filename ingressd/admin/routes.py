"""The live view on the admin endpoint: ``/routes`` (JSON) and ``/`` (an HTML page), and ``/metrics``.

Both views are built from the served configuration (``State``) and the certificate store
at request time. The HTML page is rendered here, server-side, with every value escaped
(annotation values and rejection messages are user input) and no external assets.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from typing import Any

from twisted.web.resource import Resource

from ingressd.admin.metrics import problem_category


def routes_document(state, certificates=None, reloader=None) -> dict[str, Any]:
    """What ``/routes`` answers: the served routes, TLS hosts, rejections and warnings."""
    config = state.config
    served = {id(entry.route) for entry in state.table.entries()}
    expiries = {}
    if certificates is not None:
        expiries = {host: (source, not_after) for (source, host), not_after in certificates.expiries().items()}
    routes = [_route(route, id(route) in served) for route in config.routes]
    default = config.default_backend
    tls = []
    for tls_host in config.tls_hosts:
        source, not_after = expiries.get(tls_host.host, (None, None))
        problem = None
        if certificates is not None:
            problem = _cover_problem(certificates.certificate_for(tls_host.host), tls_host.host)
        tls.append({
            "host": tls_host.host,
            "secret": f"{tls_host.secret.namespace}/{tls_host.secret.name}",
            "ingress": _ref(tls_host.ingress),
            "served_certificate": source,
            "not_after": not_after.isoformat() if not_after is not None else None,
            "problem": problem,  # why the certificate served does not fit the host, or None
        })
    default_cert = expiries.get("")
    return {
        "generation": state.generation,
        "ready": state.ready,
        "last_success": _time(reloader.last_success) if reloader is not None else None,
        "rebuilds": reloader.rebuilds if reloader is not None else None,
        "rebuild_failures": reloader.failures if reloader is not None else None,
        "routes": routes,
        "default_backend": _route(default, True) if default is not None else None,
        "tls": tls,
        "default_certificate": ({"source": default_cert[0], "not_after": default_cert[1].isoformat()}
                                if default_cert else None),
        "rejections": [_problem(item) for item in config.rejections],
        "warnings": [_problem(item) for item in config.warnings],
        # The status the sources judged per object (Gateway API): written to the API in cluster
        # mode, shown here in both.
        "status": [_status(ref, value) for ref, value in config.status],
    }


def _status(ref, value) -> dict[str, Any]:
    body = getattr(value, "body", None)
    return {**_ref(ref), "generation": getattr(value, "generation", None),
            "status": json.loads(body) if isinstance(body, str) else value}


def _conditions(status: dict[str, Any]) -> str:
    """A status stanza's conditions in one line: ``Accepted=True (Accepted)``, per parent/listener."""
    def line(conditions) -> str:
        return ", ".join(f"{c.get('type')}={c.get('status')} ({c.get('reason')})" for c in conditions or [])
    parts = []
    if status.get("conditions"):
        parts.append(line(status["conditions"]))
    for listener in status.get("listeners") or []:
        parts.append(f"listener {listener.get('name')} ({listener.get('attachedRoutes')} routes): "
                     f"{line(listener.get('conditions'))}")
    for parent in status.get("parents") or []:
        parts.append(f"parent {(parent.get('parentRef') or {}).get('name')}: {line(parent.get('conditions'))}")
    return "; ".join(parts)


def _cover_problem(certificate, host: str) -> str | None:
    """Why the certificate served for ``host`` does not cover it (None when it does)."""
    if certificate.covers(host):
        return None
    names = ", ".join(certificate.names) or "no DNS names"
    return f"the certificate served ({certificate.source}: {names}) does not cover {host}"


def _ref(ref) -> dict[str, str]:
    return {"kind": ref.kind, "namespace": ref.namespace, "name": ref.name}


def _time(seconds: float) -> str | None:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat() if seconds else None


def _route(route, served: bool) -> dict[str, Any]:
    backend = route.backend
    return {
        "host": route.host,
        "path": route.path,
        "path_type": route.path_type,
        "ingress": _ref(route.ingress),
        "tls": route.tls,
        "served": served,  # False: another Ingress's route with the same host and path wins
        # The listener kinds it is served on ("http": the plain port, "https": TLS); empty: both.
        "schemes": list(route.schemes),
        "backend": {
            "namespace": backend.namespace,
            "service": backend.service,
            "port": backend.port,
            "external_name": backend.external_name,
            "endpoints": [f"{e.address}:{e.port}" for e in backend.endpoints],
        },
        "annotations": dict(route.annotations),
    }


def _problem(item) -> dict[str, Any]:
    return {**_ref(item.ref), "reason": item.reason, "category": problem_category(item),
            "annotations": list(item.annotations)}


# -- HTML -------------------------------------------------------------------------------

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;
vertical-align:top}th{background:#f0f0f0}code{font-size:.95em}.dim{color:#888}.bad{color:#a00}
ul{margin:0;padding-left:1.1em}
.tls{font-size:.75em;font-weight:600;border:1px solid #2a7;color:#2a7;border-radius:3px;padding:0 .25em}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def render_page(document: dict[str, Any]) -> bytes:
    """The ``/`` page: the same facts as ``/routes``, as tables."""
    out = ["<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>ingressd routes</title>",
           f"<style>{_STYLE}</style></head><body><h1>ingressd</h1>",
           f"<p>Configuration generation {_e(document['generation'])}, "
           f"{'ready' if document['ready'] else 'not ready'}; last change {_e(document['last_success'] or 'never')}."
           f" <a href=routes>JSON</a> · <a href=metrics>metrics</a></p>",
           f"<h2>Routes ({len(document['routes'])})</h2>"]
    if document["routes"]:
        out.append("<table id=routes><tr><th>Host</th><th>Path</th><th>Type</th><th>Ingress</th><th>Backend</th>"
                   "<th>Endpoints</th><th>Annotations</th></tr>")
        for route in document["routes"]:
            out.append(_route_row(route))
        out.append("</table>")
    else:
        out.append("<p class=dim>No routes.</p>")
    if document["default_backend"] is not None:
        out.append("<h2>Default backend</h2><table><tr><th>Host</th><th>Path</th><th>Type</th><th>Ingress</th>"
                   "<th>Backend</th><th>Endpoints</th><th>Annotations</th></tr>")
        out.append(_route_row(document["default_backend"]))
        out.append("</table>")
    out.append(f"<h2>TLS hosts ({len(document['tls'])})</h2>")
    if document["tls"]:
        out.append("<table id=tls><tr><th>Host</th><th>Secret</th><th>Ingress</th><th>Served certificate</th>"
                   "<th>Expires</th></tr>")
        for item in document["tls"]:
            ingress = item["ingress"]
            out.append(f"<tr><td>{_e(item['host'])}</td><td>{_e(item['secret'])}</td>"
                       f"<td>{_e(ingress['namespace'])}/{_e(ingress['name'])}</td>"
                       f"<td>{_e(item['served_certificate'] or '—')}{_cover_note(item['problem'])}</td>"
                       f"<td>{_e(item['not_after'] or '—')}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p class=dim>No TLS hosts.</p>")
    if document["default_certificate"]:
        cert = document["default_certificate"]
        out.append(f"<p>Default certificate: {_e(cert['source'])}, expires {_e(cert['not_after'])}.</p>")
    for key, title in (("rejections", "Rejected objects"), ("warnings", "Warnings")):
        items = document[key]
        out.append(f"<h2>{title} ({len(items)})</h2>")
        if not items:
            out.append("<p class=dim>None.</p>")
            continue
        out.append(f"<table id={key}><tr><th>Object</th><th>Category</th><th>Reason</th></tr>")
        for item in items:
            name = f"{item['namespace']}/{item['name']}" if item["namespace"] else item["name"]
            out.append(f"<tr><td>{_e(item['kind'])} {_e(name)}</td><td>{_e(item['category'])}</td>"
                       f"<td class=bad>{_e(item['reason'])}</td></tr>")
        out.append("</table>")
    if document.get("status"):
        out.append(f"<h2>Status ({len(document['status'])})</h2><table id=status><tr><th>Object</th>"
                   "<th>Generation</th><th>Conditions</th></tr>")
        for item in document["status"]:
            name = f"{item['namespace']}/{item['name']}" if item["namespace"] else item["name"]
            out.append(f"<tr><td>{_e(item['kind'])} {_e(name)}</td><td>{_e(item['generation'])}</td>"
                       f"<td>{_e(_conditions(item['status']) if isinstance(item['status'], dict) else '')}</td></tr>")
        out.append("</table>")
    if "l4" in document:
        out.append(_l4_section(document["l4"]))
    if "access_log" in document:
        out.append(_access_log_section(document["access_log"]))
    out.append("</body></html>\n")
    return "".join(out).encode("utf-8")


def _with_l4(document: dict[str, Any], service) -> None:
    """The TCP/UDP services (``ingressd.l4``), when the server has them."""
    l4 = getattr(service, "l4", None)
    if l4 is not None:
        document["l4"] = l4.describe()


def _with_access_log(document: dict[str, Any], service) -> None:
    """The access log's counts (``AccessLog.counts``), when the server writes one: lines the
    writer could not keep up with are dropped, never waited for, and shown here."""
    access_log = getattr(service, "access_log", None)
    if access_log is not None:
        document["access_log"] = access_log.counts()


def _access_log_section(counts: dict[str, int]) -> str:
    dropped = counts["dropped"] + counts["syslog_dropped"]
    note = (f" <strong class=bad>{_e(counts['dropped'])} dropped (the writer fell behind or could not write), "
            f"{_e(counts['syslog_dropped'])} not sent to syslog</strong>" if dropped else ", none dropped")
    return (f"<h2>Access log</h2><p id=access-log>{_e(counts['written'])} lines written, "
            f"{_e(counts['pending'])} waiting{note}.</p>")


def _l4_section(l4: dict[str, Any]) -> str:
    out = [f"<h2>TCP/UDP services ({len(l4['ports'])})</h2>"]
    if l4["ports"]:
        out.append("<table id=l4><tr><th>Port</th><th>Backend</th><th>PROXY protocol</th><th>Endpoints</th>"
                   "<th>Open</th></tr>")
        for port in l4["ports"]:
            proxy = ", ".join(name for name, on in (("from client", port["decode_proxy"]),
                                                     ("to backend", port["encode_proxy"])) if on) or "—"
            listening = "" if port["listening"] else " <strong class=bad>not listening</strong>"
            out.append(f"<tr><td>{_e(port['protocol'])} {_e(port['port'])}{listening}</td><td>{_e(port['backend'])}"
                       f"</td><td>{_e(proxy)}</td><td>{_e(', '.join(port['endpoints']) or 'none ready')}</td>"
                       f"<td>{_e(port['open'])}</td></tr>")
        out.append("</table>")
    for problem in l4["problems"]:
        out.append(f"<p class=bad>{_e(problem)}</p>")
    return "".join(out)


def _cover_note(problem: str | None) -> str:
    return f"<br><strong class=bad>{_e(problem)}</strong>" if problem else ""


# A text badge, not the lock emoji: it reads the same where no emoji font is installed.
_TLS_BADGE = " <span class=tls title=\"served over TLS\">TLS</span>"


def _schemes_note(route: dict[str, Any]) -> str:
    """Where a route served on one listener kind only is served (nothing when on both)."""
    schemes = route.get("schemes") or ()
    if not schemes:
        return ""
    return f" <span class=dim>({_e(' and '.join(scheme.upper() for scheme in schemes))} only)</span>"


def _route_row(route: dict[str, Any]) -> str:
    backend = route["backend"]
    ingress = route["ingress"]
    target = f"{backend['namespace']}/{backend['service']}:{backend['port']}"
    if backend["external_name"]:
        target += f" ({backend['external_name']})"
    endpoints = ", ".join(backend["endpoints"]) or "none ready"
    annotations = "".join(f"<li><code>{_e(k)}</code>: <code>{_e(v)}</code></li>"
                          for k, v in sorted(route["annotations"].items()))
    shadowed = "" if route["served"] else " <span class=dim>(shadowed by an older Ingress)</span>"
    return (f"<tr><td>{_e(route['host'] or '*')}{_TLS_BADGE if route['tls'] else ''}{_schemes_note(route)}</td>"
            f"<td>{_e(route['path'])}{shadowed}</td><td>{_e(route['path_type'])}</td><td>{_e(ingress['namespace'])}/{_e(ingress['name'])}</td>"
            f"<td>{_e(target)}</td><td>{_e(endpoints)}</td><td>{f'<ul>{annotations}</ul>' if annotations else ''}</td></tr>")


class RoutesJSON(Resource):
    isLeaf = True

    def __init__(self, service):
        super().__init__()
        self.service = service

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        document = routes_document(self.service.state, getattr(self.service, "certificates", None),
                                   self.service.reloader)
        _with_l4(document, self.service)
        _with_access_log(document, self.service)
        return json.dumps(document, indent=1).encode("utf-8") + b"\n"


class RoutesPage(Resource):
    isLeaf = True

    def __init__(self, service):
        super().__init__()
        self.service = service

    def render_GET(self, request):
        if request.postpath and request.postpath != [b""]:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain")
            return b"not found\n"
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'")
        request.setHeader(b"x-content-type-options", b"nosniff")
        document = routes_document(self.service.state, getattr(self.service, "certificates", None),
                                   self.service.reloader)
        _with_l4(document, self.service)
        _with_access_log(document, self.service)
        return render_page(document)


class MetricsResource(Resource):
    isLeaf = True

    def __init__(self, metrics):
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request):
        body, content_type = self.metrics.render()
        request.setHeader(b"content-type", content_type.encode("ascii"))
        return body
