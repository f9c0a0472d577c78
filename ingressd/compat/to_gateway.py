"""``ingressd check --to gateway-api``: Ingresses and their annotations as Gateway API objects.

A pure function from Kubernetes objects (the selected Ingresses, the Services their backends
name, the ConfigMaps ``custom-headers`` names) to Gateway API v1 objects (a GatewayClass, one
Gateway per IngressClass and namespace, HTTPRoutes per Ingress and host; for ``ssl-passthrough``
a TLSRoute per host on a TLS Passthrough listener) and notes, as ingress2gateway does for
the annotations ingressd knows. What cannot be expressed is never dropped silently: each such
annotation or part gives a note naming the Ingress, what and why; a converted route that is
wider open than its Ingress (an access control dropped) says so loudly.

Nothing here is served or read from the cluster; the output is YAML in a stable order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

import yaml

from ingressd.compat.assess import same_value
from ingressd.compat.catalogue import lookup
from ingressd.config.translate import CLASS_ANNOTATION, DEFAULT_CLASS_ANNOTATION
from ingressd.features import INGRESSD_PREFIX, NGINX_PREFIX

GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
GATEWAY_CLASS = "ingressd"
GATEWAY_CONTROLLER = "ingressd.io/gateway-controller"
HTTP_LISTENER = "http"

# Severity of a note: INFO (expressed, with a difference worth knowing), LOST (not expressed),
# WIDER (not expressed, and the converted route lets through what the Ingress refused).
INFO = "info"
LOST = "not-expressed"
WIDER = "wider-open"

# ingress-nginx's CORS defaults (internal/ingress/annotations/cors/main.go).
_CORS_METHODS = "GET, PUT, POST, DELETE, PATCH, OPTIONS"
_CORS_HEADERS = ("DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,"
                 "Authorization")
_CORS_MAX_AGE = 1728000

# Annotations whose loss lets through what the Ingress refused (authentication, source
# ranges, rate limits, a WAF): the note is loud.
_ACCESS = re.compile(r"^(auth-|enable-global-auth$|satisfy$|whitelist-source-range$|allowlist-source-range$|"
                     r"denylist-source-range$|limit-|global-rate-limit|enable-modsecurity$|modsecurity-|"
                     r"enable-owasp-core-rules$)")
# Annotations the conversion reads (mapped, or consumed by a mapped one).
_HANDLED = frozenset({
    "ssl-redirect", "force-ssl-redirect", "permanent-redirect", "permanent-redirect-code", "temporal-redirect",
    "temporal-redirect-code", "rewrite-target", "use-regex", "upstream-vhost", "x-forwarded-prefix",
    "canary", "canary-weight", "canary-weight-total", "canary-by-header", "canary-by-header-value",
    "canary-by-header-pattern", "custom-headers", "mirror-target", "enable-cors", "cors-allow-origin",
    "cors-allow-methods", "cors-allow-headers", "cors-expose-headers", "cors-allow-credentials", "cors-max-age",
    "proxy-read-timeout", "proxy-send-timeout", "app-root", "backend-protocol", "connection-proxy-header",
    "ssl-passthrough",
})
_PERMANENT_CODES = (301, 302, 303, 307, 308)
_TEMPORAL_CODES = (301, 302, 303, 307)
_REGEX_CHARS = re.compile(r"[\^$()\[\]{}*+?|\\]")
# The idiom ``/prefix(/|$)(.*)`` rewritten to ``/target/$2``: a prefix replacement.
_PREFIX_IDIOM = re.compile(r"^(?P<prefix>/[^\^$()\[\]{}*+?|\\]*?)/?\(/\|\$\)\(\.\*\)$")
_PREFIX_TARGET = re.compile(r"^(?P<target>/[^$]*?)/?\$2$")
# And ``/prefix/(.*)`` rewritten to ``/target/$1`` (the prefix itself then matches too).
_SLASH_IDIOM = re.compile(r"^(?P<prefix>/[^\^$()\[\]{}*+?|\\]*?)/?\(\.\*\)$")
_SLASH_TARGET = re.compile(r"^(?P<target>/[^$]*?)/?\$1$")
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PRECISE_HOST = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class Note:
    """Something about one Ingress's conversion: ``severity`` INFO, LOST or WIDER."""

    ingress: str  # namespace/name
    severity: str
    text: str

    def __str__(self) -> str:
        mark = {INFO: "note", LOST: "NOT CONVERTED", WIDER: "NOT CONVERTED, WIDER OPEN"}[self.severity]
        return f"{self.ingress}: {mark}: {self.text}"


@dataclass(frozen=True)
class Conversion:
    """The Gateway API objects (in output order) and the notes, per Ingress in order."""

    objects: tuple[dict, ...]
    notes: tuple[Note, ...]

    @property
    def exit_status(self) -> int:
        """0 when everything was expressed, 1 when something could not be (``ingressd check``'s convention)."""
        return 1 if any(n.severity != INFO for n in self.notes) else 0


def convert(objects: Sequence[Mapping], selected: Callable[[Mapping], bool] = lambda ingress: True) -> Conversion:
    """The Gateway API equivalent of the ``selected`` Ingresses among ``objects``."""
    ingresses = sorted((o for o in objects if o.get("kind") == "Ingress" and selected(o)), key=_key)
    services = {_key(o): o for o in objects if o.get("kind") == "Service"}
    config_maps = {_key(o): o for o in objects if o.get("kind") == "ConfigMap"}
    notes: list[Note] = []
    canaries = [i for i in ingresses if _truthy(_annotations(i).get("canary"))]
    mains = [i for i in ingresses if not _truthy(_annotations(i).get("canary"))]

    default_class = _default_class(objects)
    gateways: dict[tuple[str, str], _Gateway] = {}
    routes: list[dict] = []
    for ingress in mains:
        namespace = _key(ingress)[0]
        class_name = _class_of(ingress) or default_class
        gateway = gateways.setdefault((namespace, class_name), _Gateway(namespace, class_name))
        converter = _IngressConversion(ingress, services, config_maps, gateway, notes)
        routes.extend(converter.routes([c for c in canaries if _key(c)[0] == namespace]))
    for canary in canaries:
        if not _canary_used(canary, mains):
            notes.append(Note(_name(canary), LOST, "a canary Ingress with no main Ingress of the same host and path "
                                                   "in the input: nothing to split traffic with"))
    out: list[dict] = []
    if gateways:
        out.append({"apiVersion": GATEWAY_API_VERSION, "kind": "GatewayClass", "metadata": {"name": GATEWAY_CLASS},
                    "spec": {"controllerName": GATEWAY_CONTROLLER}})
    out.extend(g.document() for _, g in sorted(gateways.items()))
    out.extend(routes)
    return Conversion(tuple(out), tuple(dict.fromkeys(notes)))  # a note per path once


def to_yaml(conversion: Conversion) -> str:
    """The objects as a YAML stream; each Ingress's notes as comments before its first route."""
    by_ingress: dict[str, list[Note]] = {}
    for note in conversion.notes:
        by_ingress.setdefault(note.ingress, []).append(note)
    parts = []
    for obj in conversion.objects:
        comment = ""
        source = (obj.get("metadata") or {}).get("annotations", {}).get("ingressd.io/converted-from")
        if source in by_ingress:
            comment = "".join(f"# {note}\n" for note in by_ingress.pop(source))
        parts.append("---\n" + comment + yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))
    for remaining in by_ingress.values():
        parts.append("".join(f"# {note}\n" for note in remaining))
    return "".join(parts)


# -- helpers ------------------------------------------------------------------------------


def _key(obj: Mapping) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))


def _name(obj: Mapping) -> str:
    return "/".join(_key(obj))


def _annotations(ingress: Mapping) -> dict[str, str]:
    """The ingress-nginx annotations by short name (``ingressd.io/`` ones win, as in the server)."""
    raw = (ingress.get("metadata") or {}).get("annotations") or {}
    found: dict[str, str] = {}
    for prefix in (NGINX_PREFIX, INGRESSD_PREFIX):
        for key, value in raw.items():
            if str(key).startswith(prefix):
                found[str(key)[len(prefix):]] = "" if value is None else str(value)
    return found


def _truthy(value: str | None) -> bool:
    return str(value or "").strip().lower() == "true"


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower().replace("*", "wildcard")).strip("-")
    return slug[:200] or "all"


def _class_of(ingress: Mapping) -> str:
    """The Ingress's class name (the legacy annotation wins, as in the translator), or ''."""
    legacy = ((ingress.get("metadata") or {}).get("annotations") or {}).get(CLASS_ANNOTATION)
    return str(legacy or (ingress.get("spec") or {}).get("ingressClassName") or "")


def _default_class(objects: Iterable[Mapping]) -> str:
    """The name of the default IngressClass in the input (class-less Ingresses are its), else ``ingressd``."""
    for obj in sorted((o for o in objects if o.get("kind") == "IngressClass"), key=_key):
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if str(annotations.get(DEFAULT_CLASS_ANNOTATION, "")).lower() == "true":
            return _key(obj)[1]
    return GATEWAY_CLASS


def _rule_hosts(ingress: Mapping) -> list[str]:
    rules = (ingress.get("spec") or {}).get("rules") or []
    return list(dict.fromkeys(str(r.get("host") or "") for r in rules if isinstance(r, dict)))


def _canary_used(canary: Mapping, mains: Sequence[Mapping]) -> bool:
    wanted = {(h, p) for h, p, _ in _paths(canary)}
    namespace = _key(canary)[0]
    return any((h, p) in wanted for m in mains if _key(m)[0] == namespace for h, p, _ in _paths(m))


def _paths(ingress: Mapping) -> list[tuple[str, str, Mapping]]:
    """(host, path, the path entry) for every path of every rule."""
    found = []
    for rule in (ingress.get("spec") or {}).get("rules") or []:
        if not isinstance(rule, dict):
            continue
        for path in (rule.get("http") or {}).get("paths") or []:
            if isinstance(path, dict):
                found.append((str(rule.get("host") or ""), str(path.get("path") or "/"), path))
    return found


def _seconds(value: str) -> int | None:
    text = value.strip().lower().removesuffix("s")
    return int(text) if text.isdigit() else None


def _port(parts) -> int | None:
    """The URL's port, None when it has none, -1 when it is not a number."""
    try:
        return parts.port
    except ValueError:
        return -1


_GRPC_FILTERS = ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "ExtensionRef")
_GRPC_NAME = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*$")


def _grpc_method(path: Mapping) -> dict | None:
    """The GRPCMethodMatch a path match means: {} for every method (a prefix of /), None when it is
    no service or method."""
    value, kind = str(path.get("value") or "/"), path.get("type")
    if kind == "PathPrefix" and value == "/":
        return {}
    if kind == "RegularExpression":
        return None
    parts = value.strip("/").split("/")
    if len(parts) == 1 and kind == "PathPrefix" and _GRPC_NAME.match(parts[0]):
        return {"type": "Exact", "service": parts[0]}
    if len(parts) == 2 and _GRPC_NAME.match(parts[0]) and re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", parts[1]):
        return {"type": "Exact", "service": parts[0], "method": parts[1]}
    return None


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class _Gateway:
    """One Gateway per IngressClass and namespace (named after the class; in the Ingresses'
    namespace, so that its certificates need no ReferenceGrant): the HTTP listener, and an
    HTTPS listener per TLS host."""

    def __init__(self, namespace: str, name: str):
        self.namespace = namespace
        self.name = name
        self.https: dict[str, tuple[str, str]] = {}  # host ("" = any) -> (listener name, Secret)
        self.passthrough: dict[str, str] = {}  # host -> TLS Passthrough listener name

    def tls_listener(self, host: str, ingress: str, notes: list[Note]) -> str:
        """The TLS listener passing ``host``'s connections through (``ssl-passthrough``)."""
        if host in self.https:
            notes.append(Note(ingress, LOST, f"TLS host {host}: another Ingress terminates its TLS on the HTTPS "
                                             f"listener {self.https[host][0]}; a TLS listener with the same hostname "
                                             "and port conflicts with it (HostnameConflict): pick one"))
        return self.passthrough.setdefault(host, f"tls-{_slug(host)}")

    def https_listener(self, host: str, secret: str, ingress: str, notes: list[Note]) -> str:
        if host in self.passthrough:
            notes.append(Note(ingress, LOST, f"TLS host {host}: another Ingress passes its TLS through on the TLS "
                                             f"listener {self.passthrough[host]}; an HTTPS listener with the same "
                                             "hostname and port conflicts with it (HostnameConflict): pick one"))
        if host in self.https:
            name, existing = self.https[host]
            if existing != secret:
                notes.append(Note(ingress, INFO, f"TLS host {host or '*'}: the Secret {secret} is not used; the "
                                                 f"HTTPS listener {name} already presents {existing} (one "
                                                 "certificate per listener; ingress-nginx also uses one)"))
            return name
        name = "https" if not host else f"https-{_slug(host)}"
        self.https[host] = (name, secret)
        return name

    def document(self) -> dict:
        listeners: list[dict] = [{"name": HTTP_LISTENER, "port": 80, "protocol": "HTTP"}]
        for host, (name, secret) in sorted(self.https.items()):
            listener: dict[str, Any] = {"name": name}
            if host:
                listener["hostname"] = host
            listener.update({"port": 443, "protocol": "HTTPS",
                             "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": secret}]}})
            listeners.append(listener)
        for host, name in sorted(self.passthrough.items()):
            listeners.append({"name": name, "hostname": host, "port": 443, "protocol": "TLS",
                              "tls": {"mode": "Passthrough"}})
        return {"apiVersion": GATEWAY_API_VERSION, "kind": "Gateway",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {"gatewayClassName": GATEWAY_CLASS, "listeners": listeners}}


@dataclass
class _Rule:
    matches: list[dict]
    backends: list[dict]
    filters: list[dict] = field(default_factory=list)
    timeouts: dict | None = None

    def document(self) -> dict:
        rule: dict[str, Any] = {"matches": self.matches}
        if self.filters:
            rule["filters"] = self.filters
        if self.backends:
            rule["backendRefs"] = self.backends
        if self.timeouts:
            rule["timeouts"] = self.timeouts
        return rule


class _IngressConversion:
    """One main Ingress (and the canaries on its paths) as HTTPRoutes."""

    def __init__(self, ingress: Mapping, services: Mapping, config_maps: Mapping, gateway: _Gateway,
                 notes: list[Note]):
        self.ingress = ingress
        self.namespace, self.name = _key(ingress)
        self.ref = _name(ingress)
        self.annotations = _annotations(ingress)
        self.services = services
        self.config_maps = config_maps
        self.gateway = gateway
        self.notes = notes

    def note(self, severity: str, text: str) -> None:
        self.notes.append(Note(self.ref, severity, text))

    # -- the routes --

    def routes(self, canaries: Sequence[Mapping]) -> list[dict]:
        self._unmapped()
        a = self.annotations
        spec = self.ingress.get("spec") or {}
        tls_hosts: dict[str, str] = {}
        for tls in spec.get("tls") or []:
            if not isinstance(tls, dict):
                continue
            secret = str(tls.get("secretName") or "")
            if not secret:
                self.note(LOST, "a tls entry without secretName (ingress-nginx's default certificate): a Gateway "
                                "listener needs a certificateRef; add one")
                continue
            for host in tls.get("hosts") or [""]:
                tls_hosts.setdefault(str(host), secret)
        force = _truthy(a.get("force-ssl-redirect"))
        redirect = force or (bool(tls_hosts) and a.get("ssl-redirect", "true").strip().lower() != "false")
        passthrough = _truthy(a.get("ssl-passthrough"))
        if passthrough:
            return self._passthrough_routes(tls_hosts, force, redirect, canaries)
        if force and not tls_hosts:
            self.note(LOST, "force-ssl-redirect without a tls entry: ingress-nginx answers HTTPS with its default "
                            "certificate, a Gateway listener needs a certificateRef; the route is attached to the "
                            "HTTP listener without the redirect")
            redirect = False
        rules_by_host: dict[str, list[_Rule]] = {}
        for host, path, entry in _paths(self.ingress):
            rules_by_host.setdefault(host, []).extend(self._rules_for(host, path, entry, canaries))
        documents: list[dict] = []
        default = spec.get("defaultBackend")
        if default:
            backend = self._backend_ref(default)
            rule = _Rule([{"path": {"type": "PathPrefix", "value": "/"}}], [backend] if backend else [])
            if rules_by_host:
                self.note(INFO, "spec.defaultBackend is a separate HTTPRoute without hostnames (the requests no "
                                "other route matches)")
                documents.append(self._served(f"{self.name}-default-backend", None, [rule],
                                                self._parents("", tls_hosts, redirect)))
            else:
                rules_by_host[""] = [rule]
        single = len(rules_by_host) == 1
        for host, rules in rules_by_host.items():
            if host and not _HOSTNAME.match(host):
                self.note(LOST, f"host {host!r} is not a Gateway API hostname (lower-case DNS name, optionally "
                                "starting with *.); fix it before applying the route")
            name = self.name if single else f"{self.name}-{_slug(host)}"
            hosts = self._covered(host, tls_hosts)
            documents.append(self._served(name, host, rules, self._parents(host, tls_hosts, redirect)))
            if redirect and hosts:  # the Ingress's own paths only, as ingress-nginx redirects per location
                matches = list({repr(m): m for rule in rules for m in rule.matches
                                if "headers" not in m}.values())
                documents.append(self._route(f"{name}-ssl-redirect", host, [_Rule(
                    matches, [], [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 308}}])],
                    [{"name": self.gateway.name, "sectionName": HTTP_LISTENER}]))
        return documents

    def _passthrough_routes(self, tls_hosts: Mapping[str, str], force: bool, redirect: bool,
                           canaries: Sequence[Mapping]) -> list[dict]:
        """``ssl-passthrough``: per host a TLSRoute on a TLS Passthrough listener to the backend of
        the host's ``/`` path (ingress-nginx passes the host's TLS to that Service), and the
        Ingress's paths over plain HTTP on the HTTP listener (or their HTTPS redirect)."""
        self.note(INFO, "ssl-passthrough: TLS connections are passed through unterminated by a TLSRoute (the "
                        "backend presents its own certificate; no HTTP annotation applies to them, as in "
                        "ingress-nginx)")
        if tls_hosts:
            self.note(INFO, "the tls entries are not used: the passed-through host's backend terminates TLS")
        spec = self.ingress.get("spec") or {}
        if spec.get("defaultBackend"):
            self.note(LOST, "spec.defaultBackend: a passed-through host needs a name (SNI); not converted")
        rules_by_host: dict[str, list[_Rule]] = {}
        roots: dict[str, Mapping] = {}
        for host, path, entry in _paths(self.ingress):
            rules_by_host.setdefault(host, []).extend(self._rules_for(host, path, entry, canaries))
            if path == "/":
                roots.setdefault(host, entry)
        single = len(rules_by_host) == 1
        http = [{"name": self.gateway.name, "sectionName": HTTP_LISTENER}]
        documents: list[dict] = []
        for host, rules in rules_by_host.items():
            name = self.name if single else f"{self.name}-{_slug(host)}"
            if not host or not _PRECISE_HOST.match(host):
                self.note(LOST, f"host {host or '(none)'!r}: TLS passthrough chooses by the SNI name, which a rule "
                                "needs as a precise DNS name; its TLS is not passed through")
            elif host not in roots:
                self.note(LOST, f"host {host}: no / path, whose backend ingress-nginx passes the TLS connections "
                                "to; no TLSRoute")
            else:
                backend = self._backend_ref(roots[host].get("backend") or {})
                if backend is not None:
                    listener = self.gateway.tls_listener(host, self.ref, self.notes)
                    documents.append(self._tls_route(name, host, backend, listener))
            if force or (redirect and self._covered(host, tls_hosts)):
                matches = list({repr(m): m for rule in rules for m in rule.matches if "headers" not in m}.values())
                documents.append(self._route(f"{name}-ssl-redirect", host or None, [_Rule(
                    matches, [], [{"type": "RequestRedirect",
                                   "requestRedirect": {"scheme": "https", "statusCode": 308}}])], http))
            else:
                documents.append(self._served(name, host or None, rules, http))
        return documents

    def _tls_route(self, name: str, host: str, backend: dict, listener: str) -> dict:
        return {"apiVersion": GATEWAY_API_VERSION, "kind": "TLSRoute",
                "metadata": {"name": name, "namespace": self.namespace,
                             "annotations": {"ingressd.io/converted-from": self.ref}},
                "spec": {"parentRefs": [{"name": self.gateway.name, "sectionName": listener}],
                         "hostnames": [host], "rules": [{"backendRefs": [backend]}]}}

    def _covered(self, host: str, tls_hosts: Mapping[str, str]) -> list[str]:
        """The TLS entries (hosts) whose listener serves ``host``."""
        if host in tls_hosts:
            return [host]
        wildcard = "*." + host.split(".", 1)[1] if "." in host else None
        if wildcard in tls_hosts:
            return [wildcard]
        return [""] if "" in tls_hosts else []

    def _parents(self, host: str, tls_hosts: Mapping[str, str], redirect: bool) -> list[dict]:
        covered = self._covered(host, tls_hosts)
        parents = [] if redirect and covered else [{"name": self.gateway.name, "sectionName": HTTP_LISTENER}]
        for tls_host in covered:
            listener = self.gateway.https_listener(tls_host, tls_hosts[tls_host], self.ref, self.notes)
            parents.append({"name": self.gateway.name, "sectionName": listener})
        if tls_hosts and not covered and host:
            self.note(INFO, f"host {host} is in no tls entry: served over HTTP only")
        return parents

    def _served(self, name: str, host: str | None, rules: list[_Rule], parents: list[dict]) -> dict:
        """The route that serves the Ingress's paths: a GRPCRoute for a gRPC backend-protocol."""
        route = self._route(name, host, rules, parents)
        if self.annotations.get("backend-protocol", "").upper() in ("GRPC", "GRPCS"):
            return self._as_grpc(route)
        return route

    def _as_grpc(self, route: dict) -> dict:
        """``route`` as a GRPCRoute: paths as service/method matches, the filters gRPC has."""
        rules = [grpc for grpc in map(self._grpc_rule, route["spec"]["rules"]) if grpc is not None]
        return dict(route, kind="GRPCRoute", spec=dict(route["spec"], rules=rules))

    def _grpc_rule(self, rule: dict) -> dict | None:
        """One HTTPRoute rule as a GRPCRoute rule; None (said) when a path is no service or method."""
        matches = []
        for match in rule["matches"]:
            method = _grpc_method(match["path"])
            if method is None:
                self.note(LOST, f"path {match['path']['value']!r} ({match['path']['type']}) is not a gRPC "
                                "service or method (/package.Service/Method); its rule is left out")
                return None
            matches.append(({"method": method} if method else {}) |
                           ({"headers": match["headers"]} if "headers" in match else {}))
        grpc: dict[str, Any] = {"matches": matches} if matches and {} not in matches else {}
        filters = [f for f in rule.get("filters", ()) if f["type"] in _GRPC_FILTERS]
        for dropped in (f for f in rule.get("filters", ()) if f["type"] not in _GRPC_FILTERS):
            self.note(LOST, f"a {dropped['type']} filter has no GRPCRoute equivalent")
        if "timeouts" in rule:
            self.note(LOST, "a GRPCRoute has no timeouts (the proxy-*-timeout annotations)")
        if filters:
            grpc["filters"] = filters
        if "backendRefs" in rule:
            grpc["backendRefs"] = rule["backendRefs"]
        return grpc

    def _route(self, name: str, host: str | None, rules: list[_Rule], parents: list[dict]) -> dict:
        spec: dict[str, Any] = {"parentRefs": parents}
        if host:
            spec["hostnames"] = [host]
        spec["rules"] = [rule.document() for rule in rules]
        return {"apiVersion": GATEWAY_API_VERSION, "kind": "HTTPRoute",
                "metadata": {"name": name, "namespace": self.namespace,
                             "annotations": {"ingressd.io/converted-from": self.ref}},
                "spec": spec}

    # -- one path --

    def _rules_for(self, host: str, path: str, entry: Mapping, canaries: Sequence[Mapping]) -> list[_Rule]:
        a = self.annotations
        match, rewrite = self._path_match(path, str(entry.get("pathType") or "ImplementationSpecific"))
        backend = self._backend_ref(entry.get("backend") or {})
        backends = [backend] if backend else []
        filters: list[dict] = []
        redirect = self._redirect()
        if redirect is not None:
            return [_Rule([match], [], [redirect])]
        request_headers = self._request_headers(rewrite)
        if request_headers:
            filters.append({"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": request_headers}})
        response_headers = self._response_headers()
        if response_headers:
            filters.append({"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": response_headers}})
        url_rewrite: dict[str, Any] = {}
        vhost = a.get("upstream-vhost")
        if vhost:
            if _PRECISE_HOST.match(vhost):
                url_rewrite["hostname"] = vhost
            else:
                self.note(LOST, f"upstream-vhost {vhost!r}: URLRewrite hostname takes a plain host name (no "
                                "port, no variables)")
        if rewrite is not None:
            url_rewrite["path"] = rewrite
        if url_rewrite:
            filters.append({"type": "URLRewrite", "urlRewrite": url_rewrite})
        mirror = self._mirror()
        if mirror is not None:
            filters.append(mirror)
        cors = self._cors()
        if cors is not None:
            filters.append(cors)
        timeouts = self._timeouts()
        rules = []
        main = _Rule([match], backends, filters, timeouts)
        for canary in canaries:
            for c_host, c_path, c_entry in _paths(canary):
                if (c_host, c_path) == (host, path):
                    rules.extend(self._canary(canary, c_entry, main))
        rules.append(main)
        app_root = a.get("app-root")
        if app_root:
            if app_root.startswith("/") and path in ("/", ""):
                rules.insert(0, _Rule([{"path": {"type": "Exact", "value": "/"}}], [], [
                    {"type": "RequestRedirect", "requestRedirect": {
                        "path": {"type": "ReplaceFullPath", "replaceFullPath": app_root}, "statusCode": 302}}]))
            elif not app_root.startswith("/"):
                self.note(LOST, f"app-root {app_root!r}: not a path")
        return rules

    def _path_match(self, path: str, path_type: str) -> tuple[dict, dict | None]:
        """The path match and the URLRewrite path (rewrite-target) for one Ingress path."""
        a = self.annotations
        target = a.get("rewrite-target")
        regex = _truthy(a.get("use-regex")) or target is not None
        if target is not None:
            idiom = _PREFIX_IDIOM.match(path)
            target_idiom = _PREFIX_TARGET.match(target)
            if idiom and target_idiom:
                prefix = idiom.group("prefix") or "/"
                return ({"path": {"type": "PathPrefix", "value": prefix}},
                        {"type": "ReplacePrefixMatch", "replacePrefixMatch": target_idiom.group("target") or "/"})
            idiom, target_idiom = _SLASH_IDIOM.match(path), _SLASH_TARGET.match(target)
            if idiom and target_idiom and (target.endswith("/$1") or target == "/$1"):
                prefix = idiom.group("prefix") or "/"
                if prefix != "/":
                    self.note(INFO, f"path {path!r} rewritten to {target!r}: a PathPrefix {prefix} with "
                                    f"ReplacePrefixMatch, which also matches {prefix} itself (ingress-nginx needs the "
                                    "slash after it)")
                rewrite = {"type": "ReplacePrefixMatch", "replacePrefixMatch": target_idiom.group("target") or "/"}
                return ({"path": {"type": "PathPrefix", "value": prefix}},
                        None if prefix == "/" and rewrite["replacePrefixMatch"] == "/" else rewrite)
            if "$" in target:
                self.note(LOST, f"rewrite-target {target!r} with path {path!r}: a capture group reference cannot be "
                                "expressed (URLRewrite replaces the whole path or the matched prefix); the route "
                                "forwards the path unchanged")
                rewrite = None
            else:
                rewrite = {"type": "ReplaceFullPath", "replaceFullPath": target}
            if not _REGEX_CHARS.search(path):
                kind = "Exact" if path_type == "Exact" else "PathPrefix"
                return {"path": {"type": kind, "value": path}}, rewrite
            return self._regex(path), rewrite
        if regex and _REGEX_CHARS.search(path):
            return self._regex(path), None
        kind = "Exact" if path_type == "Exact" else "PathPrefix"
        if path_type == "ImplementationSpecific":
            self.note(INFO, f"path {path} (ImplementationSpecific) is a PathPrefix match, as ingress-nginx treats it")
        return {"path": {"type": kind, "value": path}}, None

    def _regex(self, path: str) -> dict:
        self.note(INFO, f"path {path!r} is a RegularExpression match: ingress-nginx matches it case-insensitively "
                        "from the start of the path (a prefix); RegularExpression's exact semantics are "
                        "implementation-specific (ingressd: RE2 over the whole path, case-sensitive: "
                        f"'(?i){path}.*' matches as ingress-nginx does)")
        return {"path": {"type": "RegularExpression", "value": path}}

    def _backend_ref(self, backend: Mapping) -> dict | None:
        service = backend.get("service") if isinstance(backend, Mapping) else None
        if not isinstance(service, Mapping):
            self.note(LOST, "a resource backend (not a Service) cannot be a backendRef of an HTTPRoute here")
            return None
        name = str(service.get("name") or "")
        port = service.get("port") or {}
        ref: dict[str, Any] = {"name": name}
        if "number" in port:
            ref["port"] = int(port["number"])
        elif port.get("name"):
            number = self._port_by_name(name, str(port["name"]))
            if number is None:
                self.note(LOST, f"Service {self.namespace}/{name} port {port['name']!r}: a backendRef needs the "
                                "port number, and the Service is not in the input; fill in the port")
            else:
                ref["port"] = number
        return ref

    def _port_by_name(self, service: str, port: str) -> int | None:
        found = self.services.get((self.namespace, service))
        for item in ((found or {}).get("spec") or {}).get("ports") or []:
            if isinstance(item, Mapping) and item.get("name") == port and item.get("port") is not None:
                return int(item["port"])
        return None

    # -- annotations --

    def _unmapped(self) -> None:
        for name, value in sorted(self.annotations.items()):
            if name in _HANDLED or name.startswith("canary"):
                continue
            entry = lookup(name)
            if entry is not None and entry.default is not None and same_value(entry, value, entry.default):
                continue  # ingress-nginx's own default: asks for nothing, loses nothing
            if _ACCESS.match(name):
                self.note(WIDER, f"{name}: an access control with no Gateway API equivalent; the converted route "
                                 "lets through every request this annotation refuses; put the control in front "
                                 "(an ExtensionRef filter to an ingressd plugin) before switching")
            else:
                self.note(LOST, f"{name}: no Gateway API equivalent; dropped from the converted route")
        protocol = self.annotations.get("backend-protocol", "HTTP").upper()
        if protocol == "GRPCS":
            self.note(LOST, "backend-protocol GRPCS: the route is a GRPCRoute; TLS to the backend needs a "
                            "BackendTLSPolicy (or the Service port's appProtocol), which is not generated")
        elif protocol not in ("HTTP", "GRPC"):
            self.note(LOST, f"backend-protocol {protocol}: set the Service port's appProtocol (https, "
                            "kubernetes.io/h2c) or a BackendTLSPolicy; the HTTPRoute speaks HTTP/1.1 to the "
                            "backend")

    def _redirect(self) -> dict | None:
        a = self.annotations
        if "temporal-redirect" in a:
            url, code, codes, which = a["temporal-redirect"], 302, _TEMPORAL_CODES, "temporal-redirect"
        elif "permanent-redirect" in a:
            url, code, codes, which = a["permanent-redirect"], 301, _PERMANENT_CODES, "permanent-redirect"
        else:
            return None
        if a.get(f"{which}-code"):
            given = a[f"{which}-code"].strip()
            if given.isdigit() and int(given) in codes:
                code = int(given)
            else:
                self.note(LOST, f"{which}-code {given!r}: not a redirect status Gateway API allows; {code} is used")
        parts = urlsplit(url)
        port = _port(parts)
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
            self.note(LOST, f"{which} {url!r}: not an absolute http(s) URL")
            return None
        redirect: dict[str, Any] = {"scheme": parts.scheme, "hostname": parts.hostname}
        if port is not None:
            redirect["port"] = port
        redirect["path"] = {"type": "ReplaceFullPath", "replaceFullPath": parts.path or "/"}
        redirect["statusCode"] = code
        if parts.query or "$" in url:
            self.note(LOST, f"{which} {url!r}: a query string or nginx variable in the target cannot be expressed "
                            "(RequestRedirect keeps the request's query)")
        return {"type": "RequestRedirect", "requestRedirect": redirect}

    def _request_headers(self, rewrite: dict | None) -> list[dict]:
        headers = []
        connection = self.annotations.get("connection-proxy-header")
        if connection:
            headers.append({"name": "Connection", "value": connection})
            self.note(INFO, "connection-proxy-header: Connection is a hop-by-hop header; a Gateway API "
                            "implementation may not forward it as set")
        prefix = self.annotations.get("x-forwarded-prefix")
        if prefix:
            headers.append({"name": "X-Forwarded-Prefix", "value": prefix})
        return headers

    def _response_headers(self) -> list[dict]:
        name = self.annotations.get("custom-headers")
        if not name:
            return []
        namespace, _, short = name.rpartition("/")
        found = self.config_maps.get((namespace or self.namespace, short))
        if found is None:
            self.note(LOST, f"custom-headers {name!r}: the ConfigMap is not in the input; its headers are not "
                            "converted")
            return []
        data = found.get("data") or {}
        return [{"name": str(k), "value": str(v)} for k, v in sorted(data.items())]

    def _mirror(self) -> dict | None:
        target = self.annotations.get("mirror-target")
        if not target:
            return None
        parts = urlsplit(target.removesuffix("$request_uri"))  # the usual target: the request's own URI
        host = parts.hostname or ""
        labels = host.split(".")
        port = _port(parts)
        if not host or port == -1 or (len(labels) > 2 and labels[2] != "svc") or (len(labels) == 2):
            self.note(LOST, f"mirror-target {target!r}: RequestMirror sends to a Service (a backendRef); the target "
                            "is not a Service's cluster name (name, or name.namespace.svc…)")
            return None
        ref: dict[str, Any] = {"name": labels[0]}
        if len(labels) > 2 and labels[1] != self.namespace:
            ref["namespace"] = labels[1]
            self.note(INFO, f"mirror-target: the Service is in namespace {labels[1]}; a ReferenceGrant there must "
                            f"allow HTTPRoutes from {self.namespace}")
        ref["port"] = port or (443 if parts.scheme == "https" else 80)
        if parts.path not in ("", "/"):
            self.note(LOST, f"mirror-target {target!r}: the mirrored request keeps its own path; a fixed path "
                            "cannot be expressed")
        if parts.scheme == "https":
            self.note(INFO, "mirror-target over https: TLS to the mirror is the Service's (appProtocol or "
                            "BackendTLSPolicy)")
        return {"type": "RequestMirror", "requestMirror": {"backendRef": ref}}

    def _cors(self) -> dict | None:
        a = self.annotations
        if not _truthy(a.get("enable-cors")):
            return None
        origins = _split(a.get("cors-allow-origin") or "*")
        cors: dict[str, Any] = {
            "allowOrigins": origins,
            "allowCredentials": a.get("cors-allow-credentials", "true").strip().lower() != "false",
            "allowMethods": [m.upper() for m in _split(a.get("cors-allow-methods") or _CORS_METHODS)],
            "allowHeaders": _split(a.get("cors-allow-headers") or _CORS_HEADERS),
        }
        if a.get("cors-expose-headers"):
            cors["exposeHeaders"] = _split(a["cors-expose-headers"])
        age = _seconds(a.get("cors-max-age") or str(_CORS_MAX_AGE))
        cors["maxAge"] = age if age is not None else _CORS_MAX_AGE
        return {"type": "CORS", "cors": cors}

    def _timeouts(self) -> dict | None:
        values = []
        for name in ("proxy-read-timeout", "proxy-send-timeout"):
            if name in self.annotations:
                seconds = _seconds(self.annotations[name])
                if seconds is None:
                    self.note(LOST, f"{name} {self.annotations[name]!r}: not a number of seconds")
                else:
                    values.append(seconds)
        if not values:
            return None
        self.note(INFO, "proxy-read-timeout / proxy-send-timeout bound the wait between two reads or writes; "
                        "timeouts.backendRequest bounds the whole backend request (the larger value is used)")
        return {"backendRequest": f"{max(values)}s"}

    def _canary(self, canary: Mapping, entry: Mapping, main: _Rule) -> list[_Rule]:
        """The rules a canary Ingress adds before the main rule (header matches), and its weight
        on the main rule."""
        a = _annotations(canary)
        ref = _name(canary)
        backend = self._backend_ref(entry.get("backend") or {})
        if backend is None:
            return []
        for name in sorted(a):
            if name.startswith("canary") and name not in _HANDLED or name in ("canary-by-cookie",):
                self.notes.append(Note(ref, LOST, f"{name}: a cookie or other canary selector has no Gateway API "
                                                  "equivalent"))
            elif not name.startswith("canary") and name not in ("backend-protocol",):
                self.notes.append(Note(ref, INFO, f"{name}: a canary Ingress's other annotations are not "
                                                  "used (ingress-nginx uses the main Ingress's)"))
        rules = []
        header = a.get("canary-by-header")
        if header:
            if a.get("canary-by-header-value"):
                match = {"type": "Exact", "name": header, "value": a["canary-by-header-value"]}
            elif a.get("canary-by-header-pattern"):
                match = {"type": "RegularExpression", "name": header, "value": a["canary-by-header-pattern"]}
            else:
                match = {"type": "Exact", "name": header, "value": "always"}
                never = [dict(m, headers=[{"type": "Exact", "name": header, "value": "never"}]) for m in main.matches]
                rules.append(_Rule(never, [dict(b) for b in main.backends], list(main.filters), main.timeouts))
            matches = [dict(m, headers=[match]) for m in main.matches]
            rules.append(_Rule(matches, [dict(backend)], list(main.filters), main.timeouts))
        weight = a.get("canary-weight")
        if weight:
            total = _seconds(a.get("canary-weight-total") or "100") or 100
            share = _seconds(weight)
            if share is None or share > total:
                self.notes.append(Note(ref, LOST, f"canary-weight {weight!r}: not a weight within {total}"))
            elif share > 0:
                for b in main.backends:
                    b["weight"] = total - share
                main.backends.append(dict(backend, weight=share))
        return rules


__all__ = ["Conversion", "GATEWAY_CLASS", "GATEWAY_CONTROLLER", "INFO", "LOST", "Note", "WIDER", "convert", "to_yaml"]
