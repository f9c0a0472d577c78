"""The migration checker's rules: the classic production mistakes in a set of Kubernetes objects.

``lint(objects, selected)`` reads plain object dicts (as found in manifests or read from the
API server) and returns ``Finding``s about the Ingresses ``selected`` picks: backends that do
not exist, TLS Secrets that cannot be served or do not cover their hosts, authentication
over plain HTTP, paths two Ingresses claim, catch-alls that let requests slip past another
Ingress's access control, and Ingresses no controller serves. A pure function: it reads
nothing but its arguments and never raises on odd input (such parts are skipped).
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

from cryptography import x509

from ingressd.features import INGRESSD_PREFIX, NGINX_PREFIX, parse_bool
from ingressd.config.model import EXACT, IMPLEMENTATION_SPECIFIC, PATH_TYPES, PREFIX, ObjectRef
from ingressd.tls.certificates import Certificate, CertificateError, parse_key_pair
from ingressd.config.translate import CLASS_ANNOTATION, DEFAULT_CLASS_ANNOTATION

CODES = (
    "auth-without-tls",
    "catch-all-shadows",
    "certificate-expiring",
    "duplicate-path",
    "missing-service",
    "missing-service-port",
    "missing-tls-secret",
    "no-class",
    "tls-host-not-covered",
    "tls-secret-invalid",
)

EXPIRY_WARNING = timedelta(days=14)
INGRESS_API_VERSION = "networking.k8s.io/v1"


@dataclass(frozen=True)
class Finding:
    """One mistake in one Ingress."""

    ref: ObjectRef  # the Ingress the finding is about (kind "Ingress")
    code: str  # one of CODES
    message: str  # one sentence: which host/path/object, what is wrong, what happens
    other: ObjectRef | None = None  # duplicate-path: the Ingress that keeps the path


def lint(objects: Sequence[Mapping], selected: Callable[[Mapping], bool], now: float | None = None) -> list[Finding]:
    """The classic production mistakes in ``objects``: Ingresses (networking.k8s.io/v1),
    IngressClasses, Services, EndpointSlices and Secrets as plain dicts; other kinds are
    ignored. Only Ingresses for which ``selected(ingress)`` is true are linted, and only they
    take part in conflicts and in deciding which hosts have TLS. ``now`` is a Unix time
    (default ``time.time()``). Findings are sorted by (namespace, name, code, message)."""
    when = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc)
    world = _World(objects if isinstance(objects, (list, tuple)) else list(objects or ()), selected)
    findings: list[Finding] = []
    for ingress in world.ingresses:
        findings.extend(_no_class(ingress, world))
        findings.extend(_backends(ingress, world))
        findings.extend(_tls(ingress, world, when))
        findings.extend(_auth_without_tls(ingress, world))
    findings.extend(_duplicate_paths(world.ingresses))
    findings.extend(_catch_all_shadows(world.ingresses))
    unique = {(f.ref, f.code, f.message): f for f in findings}
    return sorted(unique.values(), key=lambda f: (f.ref.namespace, f.ref.name, f.code, f.message))


# -- the objects, read defensively once ----------------------------------------------------


@dataclass(frozen=True)
class _Path:
    ingress: "_Ingress"
    host: str  # lower-case; "" for a rule without host
    path: str
    path_type: str
    backend: tuple[str, int | None, str | None] | None  # (Service, port number, port name)


@dataclass(eq=False)
class _Ingress:
    ref: ObjectRef
    created: str  # creationTimestamp, "" when absent (manifests not yet applied)
    annotations: Mapping[str, str]
    class_field: str
    class_annotation: str | None
    default_backend: tuple[str, int | None, str | None] | None
    tls: tuple[tuple[tuple[str, ...], str], ...]  # (hosts, secretName)
    paths: tuple[_Path, ...] = ()  # set once read: each _Path names its _Ingress

    @property
    def age_key(self) -> tuple[str, str, str]:
        """The conflict order ingress-nginx and ingressd share (``Route.age_key``)."""
        return (self.created or "9999", self.ref.namespace, self.ref.name)

    def annotation(self, name: str) -> str | None:
        """``name`` under the ingressd.io/ prefix, else the nginx one (as translate reads them)."""
        value = self.annotations.get(INGRESSD_PREFIX + name)
        return value if value is not None else self.annotations.get(NGINX_PREFIX + name)

    def names_with(self, start: str) -> set[str]:
        return {key[len(prefix):] for key in self.annotations for prefix in (INGRESSD_PREFIX, NGINX_PREFIX)
                if key.startswith(prefix + start)}


class _World:
    def __init__(self, objects: Sequence[Any], selected: Callable[[Mapping], bool]):
        self.services: dict[tuple[str, str], list[tuple[Any, Any]]] = {}  # → [(port, name)]
        self.secrets: dict[tuple[str, str], dict[str, bytes]] = {}  # → decoded data
        self.default_class = False
        self.ingresses: list[_Ingress] = []
        for obj in objects:
            if not isinstance(obj, Mapping):
                continue
            meta = obj.get("metadata")
            if not isinstance(meta, Mapping):
                continue
            kind = obj.get("kind")
            namespace = _text(meta.get("namespace")) or "default"
            name = _text(meta.get("name"))
            if kind == "IngressClass":
                annotations = meta.get("annotations")
                if isinstance(annotations, Mapping) and \
                        str(annotations.get(DEFAULT_CLASS_ANNOTATION, "")).lower() == "true":
                    self.default_class = True
            elif kind == "Service" and name:
                self.services[(namespace, name)] = _service_ports(obj)
            elif kind == "Secret" and name:
                self.secrets[(namespace, name)] = _secret_data(obj)
            elif kind == "Ingress" and obj.get("apiVersion") == INGRESS_API_VERSION and name:
                if _selected(selected, obj):
                    self.ingresses.append(_read_ingress(obj, ObjectRef("Ingress", namespace, name)))
        # Selected TLS hosts (as written in any TLS section), for auth-without-tls.
        self.tls_hosts = {host for ingress in self.ingresses for hosts, _ in ingress.tls for host in hosts}


def _selected(selected: Callable[[Mapping], bool], obj: Mapping) -> bool:
    try:
        return bool(selected(obj))
    except (AttributeError, TypeError, ValueError, KeyError):  # a selector tripping on odd fields
        return False


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _items(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else []


def _read_ingress(obj: Mapping, ref: ObjectRef) -> _Ingress:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
    raw = meta.get("annotations")
    annotations = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}
    legacy = annotations.get(CLASS_ANNOTATION)
    created = meta.get("creationTimestamp")
    paths: list[_Path] = []
    ingress = _Ingress(ref, str(created) if created else "", annotations, _text(spec.get("ingressClassName")),
                       legacy, _backend(spec.get("defaultBackend")), _tls_entries(spec))
    for rule in _items(spec.get("rules")):
        if not isinstance(rule, Mapping):
            continue
        host = rule.get("host") or ""
        if not isinstance(host, str):
            continue
        host = host.lower()
        http = rule.get("http")
        for item in _items(http.get("paths")) if isinstance(http, Mapping) else []:
            if not isinstance(item, Mapping) or item.get("pathType") not in PATH_TYPES:
                continue
            path = item.get("path")
            if path in (None, "") and item.get("pathType") == IMPLEMENTATION_SPECIFIC:
                path = "/"  # as translate does
            if not isinstance(path, str) or not path.startswith("/"):
                continue
            paths.append(_Path(ingress, host, path, item["pathType"], _backend(item.get("backend"))))
    ingress.paths = tuple(paths)
    return ingress


def _backend(spec: Any) -> tuple[str, int | None, str | None] | None:
    """(Service, port number, port name) of a service backend translate would accept as
    written; None for anything else (translate rejects those; not this module's job)."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("service"), Mapping):
        return None
    service = spec["service"]
    name = service.get("name")
    port = service.get("port") if isinstance(service.get("port"), Mapping) else {}
    number, port_name = port.get("number"), port.get("name")
    if not name or not isinstance(name, str) or (number is None) == (not port_name):
        return None
    return (name, number, str(port_name) if port_name else None)


def _tls_entries(spec: Mapping) -> tuple[tuple[tuple[str, ...], str], ...]:
    entries = []
    for entry in _items(spec.get("tls")):
        if isinstance(entry, Mapping):
            hosts = tuple(dict.fromkeys(h.lower() for h in _items(entry.get("hosts")) if isinstance(h, str) and h))
            entries.append((hosts, _text(entry.get("secretName"))))
    return tuple(entries)


def _service_ports(obj: Mapping) -> list[tuple[Any, Any]]:
    spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
    return [(port.get("port"), port.get("name")) for port in _items(spec.get("ports")) if isinstance(port, Mapping)]


def _secret_data(obj: Mapping) -> dict[str, bytes]:
    """Decoded data, as translate decodes it: an undecodable value counts as absent."""
    items: dict[str, bytes] = {}
    data = obj.get("data")
    for key, value in (data.items() if isinstance(data, Mapping) else ()):
        try:
            items[str(key)] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            continue
    string_data = obj.get("stringData")
    for key, value in (string_data.items() if isinstance(string_data, Mapping) else ()):
        items[str(key)] = str(value).encode("utf-8", "replace")
    return items


def _where(path: _Path) -> str:
    if path.host:
        return f"host {path.host} path {path.path} ({path.path_type})"
    return f"path {path.path} ({path.path_type}) of a rule without host"


def _host_label(host: str) -> str:
    return f"host {host}" if host else "the rules without host"


def _listing(items: Iterable[str], last: str = "and") -> str:
    """'a', 'a and b', 'a, b and c' (without repeats)."""
    items = list(dict.fromkeys(items))
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


# -- no-class -------------------------------------------------------------------------------


def _no_class(ingress: _Ingress, world: _World) -> list[Finding]:
    if ingress.class_field or ingress.class_annotation is not None or world.default_class:
        return []
    return [Finding(ingress.ref, "no-class",
                    f"Ingress {ingress.ref.namespace}/{ingress.ref.name} has neither spec.ingressClassName nor the "
                    f"{CLASS_ANNOTATION} annotation and no IngressClass is marked default "
                    f"({DEFAULT_CLASS_ANNOTATION}: \"true\"): the API server assigns it no class, so no controller "
                    "serves it (ingressd only with --watch-ingress-without-class).")]


# -- backends ----------------------------------------------------------------------------------


def _backends(ingress: _Ingress, world: _World) -> list[Finding]:
    namespace = ingress.ref.namespace
    missing: dict[str, list[str]] = {}
    no_port: dict[tuple[str, str], list[str]] = {}
    uses = [(_where(path), path.backend) for path in ingress.paths]
    uses.append(("spec.defaultBackend", ingress.default_backend))
    for where, backend in uses:
        if backend is None:
            continue
        name, number, port_name = backend
        ports = world.services.get((namespace, name))
        if ports is None:
            missing.setdefault(name, []).append(where)
        elif not any((number is not None and port == number) or (port_name and pname == port_name)
                     for port, pname in ports):  # as translate matches a Service port
            no_port.setdefault((name, str(number) if number is not None else str(port_name)), []).append(where)
    findings = []
    for name, wheres in missing.items():
        findings.append(Finding(ingress.ref, "missing-service",
                                f"Service {namespace}/{name}, the backend of {_listing(wheres)} in Ingress "
                                f"{namespace}/{ingress.ref.name}, does not exist: ingressd answers those requests "
                                "with 503 until it does."))
    for (name, port), wheres in no_port.items():
        findings.append(Finding(ingress.ref, "missing-service-port",
                                f"Service {namespace}/{name} has no port {port}, which {_listing(wheres)} in Ingress "
                                f"{namespace}/{ingress.ref.name} names: ingressd rejects the whole Ingress, so none "
                                "of its paths are served."))
    return findings


# -- TLS Secrets ---------------------------------------------------------------------------------


def _tls(ingress: _Ingress, world: _World, now: datetime) -> list[Finding]:
    namespace, ingress_name = ingress.ref.namespace, ingress.ref.name
    by_secret: dict[str, list[str]] = {}
    for hosts, secret_name in ingress.tls:
        if secret_name:  # no secretName: SNI-only, the default certificate; nothing to check
            by_secret.setdefault(secret_name, []).extend(hosts)
    findings = []
    for secret_name, hosts in by_secret.items():
        hosts = list(dict.fromkeys(hosts))
        label = f"Secret {namespace}/{secret_name}"
        for_hosts = f" for {_listing(hosts)}" if hosts else ""
        found = world.secrets.get((namespace, secret_name))
        if found is None:
            findings.append(Finding(ingress.ref, "missing-tls-secret",
                                    f"Ingress {namespace}/{ingress_name} names TLS {label}{for_hosts}, which does not "
                                    "exist: ingressd serves its default certificate instead, which clients reject."))
            continue
        leaf, problem = _read_tls_secret(found)
        if leaf is None:
            findings.append(Finding(ingress.ref, "tls-secret-invalid",
                                    f"TLS {label} of Ingress {namespace}/{ingress_name}{for_hosts} is not a usable "
                                    f"kubernetes.io/tls certificate and key ({problem}): ingressd serves its default "
                                    "certificate instead, which clients reject."))
            continue
        certificate = _covering(leaf)
        for host in hosts:
            if not certificate.covers(host):
                names = (f"it names {', '.join(certificate.names)}" if certificate.names
                         else "it has no DNS name in subjectAltName, and clients ignore the CN")
                findings.append(Finding(ingress.ref, "tls-host-not-covered",
                                        f"The certificate in TLS {label} of Ingress {namespace}/{ingress_name} does "
                                        f"not cover host {host} ({names}): clients connecting to {host} "
                                        "reject it as a name mismatch."))
        not_after = certificate.not_after
        if not_after <= now:
            findings.append(Finding(ingress.ref, "certificate-expiring",
                                    f"The certificate in TLS {label} of Ingress {namespace}/{ingress_name}{for_hosts} "
                                    f"expired on {not_after:%Y-%m-%d %H:%M:%S} UTC: ingressd serves its default "
                                    "certificate instead, and clients reject both."))
        elif not_after - now <= EXPIRY_WARNING:
            days = (not_after - now).days
            left = "less than a day" if days < 1 else f"{days} day{'' if days == 1 else 's'}"
            findings.append(Finding(ingress.ref, "certificate-expiring",
                                    f"The certificate in TLS {label} of Ingress {namespace}/{ingress_name}{for_hosts} "
                                    f"expires on {not_after:%Y-%m-%d %H:%M:%S} UTC, in {left}: renew it before "
                                    "clients start rejecting it."))
    return findings


def _read_tls_secret(data: Mapping[str, bytes]) -> tuple[x509.Certificate | None, str]:
    """The leaf certificate of a Secret ingressd could serve, or None and why not (the checks
    of ``ingressd.tls.certificates``, except expiry, which is reported as ``certificate-expiring``)."""
    crt, key = data.get("tls.crt"), data.get("tls.key")
    if not crt:
        return None, "it has no tls.crt"
    if not key:
        return None, "it has no tls.key"
    try:
        leaf, _, _, _ = parse_key_pair(crt, key)
    except CertificateError as exc:
        return None, str(exc)
    except Exception as exc:  # cryptography's surprises on odd input: lint never raises
        return None, f"tls.crt or tls.key cannot be read ({exc.__class__.__name__})"
    return leaf, ""


def _covering(leaf: x509.Certificate) -> Certificate:
    """A ``tls.Certificate`` standing for ``leaf``, for its ``covers`` (ingressd's own SNI
    matching). Its names are the DNS subjectAltNames only: clients ignore the CN."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(name.lower().rstrip(".") for name in san.value.get_values_for_type(x509.DNSName))
    except Exception:  # no (or an unreadable) subjectAltName
        names = ()
    return Certificate(source="lint", secret=None, subject="", names=names, not_before=leaf.not_valid_before_utc,
                       not_after=leaf.not_valid_after_utc, fingerprint="")


# -- authentication over HTTP --------------------------------------------------------------------------


def _auth_kinds(ingress: _Ingress) -> list[str]:
    kinds = []
    if (ingress.annotation("auth-type") or "").strip().lower() == "basic":
        kinds.append("basic authentication")
    if (ingress.annotation("auth-url") or "").strip():
        kinds.append("external authentication (auth-url)")
    return kinds


def _auth_without_tls(ingress: _Ingress, world: _World) -> list[Finding]:
    kinds = _auth_kinds(ingress)
    if not kinds:
        return []
    findings = []
    what = f"Ingress {ingress.ref.namespace}/{ingress.ref.name} requires {_listing(kinds)}"
    # Hosts with paths only: a rule without paths sends its host to the default backend.
    for host in dict.fromkeys(path.host for path in ingress.paths):
        if not host:
            message = (f"{what} on a rule without host, which cannot have TLS: passwords and session cookies "
                       "travel in clear text over HTTP.")
        elif host not in world.tls_hosts:
            message = (f"{what} on host {host}, but no checked Ingress has a TLS section for {host}: passwords and "
                       "session cookies travel in clear text over HTTP.")
        else:
            continue
        findings.append(Finding(ingress.ref, "auth-without-tls", message))
    return findings


# -- conflicts between Ingresses ------------------------------------------------------------------------


def _slot(path: _Path) -> tuple[str, str, str]:
    """Where ingressd's route table keeps a path (``routing.PathTable``): Exact paths as
    written; Prefix and ImplementationSpecific ones share one slot, without trailing '/'."""
    if path.path_type == EXACT:
        return (path.host, EXACT, path.path)
    return (path.host, PREFIX, path.path.rstrip("/"))


def _rank(path: _Path) -> tuple:
    """The order ``routing.PathTable`` keeps the first of: for prefixes '/foo/' before
    '/foo', Prefix before ImplementationSpecific; then the oldest Ingress."""
    if path.path_type == EXACT:
        return (path.ingress.age_key,)
    return (not path.path.endswith("/") or path.path == "/", path.path_type != PREFIX, path.ingress.age_key)


def _why(winner: _Path, loser: _Path) -> str:
    if winner.path_type != EXACT:
        if winner.path.endswith("/") and not loser.path.endswith("/"):
            return f"{winner.path} has priority over {loser.path} (the longer path wins, as the Ingress spec says)"
        if winner.path_type == PREFIX and loser.path_type != PREFIX:
            return "Prefix has priority over ImplementationSpecific on the same path"
    w, l = winner.ingress, loser.ingress
    if w.created and l.created and w.created != l.created:
        return f"it is the older Ingress (created {w.created}, this one {l.created})"
    if w.created and not l.created:
        return "it is the older Ingress (this one has no creationTimestamp yet, so it is created later)"
    if w.created:
        return f"both were created at {w.created}, and {w.ref.namespace}/{w.ref.name} comes first by namespace/name"
    return ("neither has a creationTimestamp, so namespace/name order decides here (once applied, the older "
            "Ingress wins)")


def _is_canary(ingress: _Ingress) -> bool:
    """A canary Ingress (``canary: "true"``) is the main Ingress's alternative backend: it
    claims no path of its own (ingressd does not serve it at all until canaries land)."""
    try:
        return parse_bool((ingress.annotation("canary") or "").strip())
    except ValueError:
        return False


def _duplicate_paths(ingresses: Sequence[_Ingress]) -> list[Finding]:
    slots: dict[tuple[str, str, str], list[_Path]] = {}
    for ingress in ingresses:
        if _is_canary(ingress):
            continue
        for path in ingress.paths:
            slots.setdefault(_slot(path), []).append(path)
    findings = []
    for claims in slots.values():
        if len({id(path.ingress) for path in claims}) < 2:
            continue
        winner = min(claims, key=_rank)
        for loser in claims:
            if loser.ingress is winner.ingress:
                continue
            ref, where = winner.ingress.ref, _where(loser)
            findings.append(Finding(loser.ingress.ref, "duplicate-path",
                                    f"{where[0].upper()}{where[1:]} of Ingress "
                                    f"{loser.ingress.ref.namespace}/{loser.ingress.ref.name} is also claimed by "
                                    f"Ingress {ref.namespace}/{ref.name} ({winner.path}, {winner.path_type}), which "
                                    f"wins because {_why(winner, loser)}: this path is never served.",
                                    other=ref))
    return findings


# Access control a catch-all can let requests slip past, by the annotations that set it.
_LIMIT_MODIFIERS = {"limit-burst-multiplier", "limit-allowlist", "limit-whitelist", "limit-rate-after"}


def _access_control(ingress: _Ingress) -> dict[str, list[str]]:
    """What access control ``ingress`` sets: kind → the annotations (without prefix)."""
    kinds: dict[str, list[str]] = {}

    def add(kind: str, names: Iterable[str]) -> None:
        names = sorted(name for name in names if (ingress.annotation(name) or "").strip() not in ("", "0"))
        if names:
            kinds[kind] = names

    add("basic authentication", ["auth-type"])
    add("external authentication", ["auth-url"])
    add("client-certificate authentication", ingress.names_with("auth-tls-"))
    add("source-address allowlist", ["allowlist-source-range", "whitelist-source-range"])
    add("source-address denylist", ["denylist-source-range"])
    add("rate limits", ingress.names_with("limit-") - _LIMIT_MODIFIERS)
    return kinds


def _is_catch_all(path: _Path) -> bool:
    return path.path_type != EXACT and path.path.rstrip("/") == ""


def _slips(path: _Path) -> list[str]:
    """Requests near ``path`` that it does not match (paths are case-sensitive)."""
    examples = []
    if path.path_type == EXACT:
        examples.append(path.path[:-1] if path.path.endswith("/") else path.path + "/x")
    for index, char in enumerate(path.path):
        if char.isalpha():
            examples.append(path.path[:index] + char.swapcase() + path.path[index + 1:])
            break
    return examples


def _catch_all_shadows(ingresses: Sequence[_Ingress]) -> list[Finding]:
    by_host: dict[str, list[_Path]] = {}
    for ingress in ingresses:
        if _is_canary(ingress):
            continue
        for path in ingress.paths:
            by_host.setdefault(path.host, []).append(path)
    controls = {id(ingress): _access_control(ingress) for ingress in ingresses}
    findings = []
    for host, paths in by_host.items():
        catch_alls = [path for path in paths if _is_catch_all(path)]
        if not catch_alls:
            continue
        catch_all = min(catch_alls, key=_rank)  # the one the route table keeps
        a = catch_all.ingress
        shadowed: dict[int, list[_Path]] = {}
        for path in paths:
            if path.ingress is not a and not _is_catch_all(path):
                shadowed.setdefault(id(path.ingress), []).append(path)
        for b_paths in shadowed.values():
            b = b_paths[0].ingress
            lacking = [kind for kind in controls[id(b)] if kind not in controls[id(a)]]
            if not lacking:
                continue
            annotations = sorted({name for kind in lacking for name in controls[id(b)][kind]})
            listed = _listing(f"{p.path} ({p.path_type})" for p in b_paths)
            examples = [e for p in b_paths for e in _slips(p)]
            examples_text = f" (e.g. {_listing(examples, 'or')})" if examples else ""
            findings.append(Finding(b.ref, "catch-all-shadows",
                                    f"On {_host_label(host)}, Ingress {a.ref.namespace}/{a.ref.name} has a catch-all "
                                    f"({catch_all.path_type} {catch_all.path}) without the {_listing(lacking)} "
                                    f"({', '.join(annotations)}) of Ingress {b.ref.namespace}/{b.ref.name}: requests "
                                    f"that its paths {listed} do not match{examples_text} reach "
                                    f"{a.ref.namespace}/{a.ref.name} without that protection."))
    return findings
