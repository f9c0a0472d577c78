"""ingress-nginx's controller ConfigMap read unchanged: its data → what the server applies.

``read_configmap`` judges every key against ``ingressd.compat.configmap_catalogue`` and returns a
``ConfigMapReading`` (immutable): the annotation defaults the translator uses for Ingresses that
do not set the annotation, the server settings that replace the options' values when routes are
built, the snippet policy, the warnings (a key ingressd ignores harmlessly, an unknown key, a
key needing a restart) and the refusals (a value that does not parse; a key ingressd does not
honour whose absence would widen access or send traffic elsewhere). A reading with refusals is
not applied: the reloader keeps the last good one (at start: it does not become ready).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

from ingressd.compat.assess import same_value
from ingressd.compat.configmap_catalogue import HARMLESS, NARROWS_ACCESS, lookup
from ingressd.features import parse_bool
from ingressd.l4.stream_settings import stream_settings_from
from ingressd.http.connection_limit import parse_limit
from ingressd.http.head_buffers import parse_header_buffers
from ingressd.logformat import log_settings_from
from ingressd.proxy.forwarding import ForwardingPolicy, parse_cidrs, parse_duration, parse_switch
from ingressd.tls.settings import parse_ciphers, parse_dh_param, parse_ecdh_curve, parse_protocols, parse_time
from ingressd.tracing.settings import check_settings as check_tracing

# Core server options (ingressd/tap.py) a ``setting:NAME`` key may replace, with how a ConfigMap value
# is read (plugins' options bring their own coerce). One line per option; its consumer reads the
# value from ``BuildContext.settings`` or ``Config.nginx_configmap`` (a reloader listener) to apply
# it live, e.g. ``"use-forwarded-headers": parse_bool``.
CORE_SETTINGS: Mapping[str, Callable[[str], Any]] = MappingProxyType({
    "use-forwarded-headers": parse_switch,
    "forwarded-for-header": str,
    "compute-full-forwarded-for": parse_switch,
    "proxy-real-ip-cidr": parse_cidrs,
    "enable-real-ip": parse_switch,
    "proxy-protocol": parse_switch,  # use-proxy-protocol
    "proxy-protocol-header-timeout": parse_duration,
    "proxy-add-original-uri-header": parse_switch,
    "generate-request-id": parse_switch,
    "log-format-upstream": str,  # compiled by log_settings_from (CORE_CHECKS), as nginx reads its quoted string
    "log-format-escape-json": parse_switch,
    "log-format-escape-none": parse_switch,
    "skip-access-log-urls": str,
    "disable-access-log": parse_switch,
    "access-log-path": str,  # access-log-path … syslog-port: checked by log_settings_from (CORE_CHECKS)
    "http-access-log-path": str,
    "stream-access-log-path": str,
    "access-log-params": str,
    "enable-access-log-for-default-backend": parse_switch,
    "enable-syslog": parse_switch,
    "syslog-host": str,
    "syslog-port": int,
    "log-format-stream": str,  # the stream keys: checked by stream_settings_from (CORE_CHECKS)
    "proxy-stream-timeout": parse_duration,
    "proxy-stream-responses": int,
    "proxy-stream-next-upstream": parse_switch,
    "proxy-stream-next-upstream-timeout": parse_duration,
    "proxy-stream-next-upstream-tries": int,
    "upstream-keepalive-connections": lambda text: _at_least(int(text), 0),  # HTTP1Upstream.use_limits
    "upstream-keepalive-timeout": lambda text: _at_least(parse_duration(text), 0),
    "upstream-keepalive-requests": lambda text: _at_least(int(text), 0),
    # the client side (ingressd.http.client_settings): the next connection and request read them
    "client-header-timeout": lambda text: _at_least(parse_duration(text), 1),
    "client-body-timeout": lambda text: _at_least(parse_duration(text), 1),
    "keepalive-timeout": lambda text: _at_least(parse_duration(text), 0),  # keep-alive
    "keepalive-requests": lambda text: _at_least(int(text), 0),  # keep-alive-requests
    "http2-max-concurrent-streams": lambda text: _at_least(int(text), 1),
    "server-tokens": parse_switch,
    "no-http2": lambda text: not parse_switch(text),  # use-http2: the inverse switch
    "large-client-header-buffers": parse_header_buffers,
    "enable-underscores-in-headers": parse_switch,
    "ignore-invalid-headers": parse_switch,
    "max-worker-connections": parse_limit,
    "allow-backend-server-header": parse_switch,
    "upstream-keepalive-time": parse_time,  # nginx time (1h): HTTP1Upstream.use_limits' max_age
    "ssl-protocols": parse_protocols,  # the TLS keys: CertificateStore.use_tls, new handshakes
    "ssl-ciphers": parse_ciphers,
    "ssl-session-cache": parse_bool,
    "ssl-session-timeout": parse_time,
    "ssl-session-tickets": parse_bool,
    "ssl-ecdh-curve": parse_ecdh_curve,
    "ssl-dh-param": parse_dh_param,  # the Secret's dhparam.pem (SECRET_KEYS)
    "ssl-reject-handshake": parse_bool,  # CertificateStore.reject_handshake
    "enable-ocsp": parse_bool,  # TLSSettings.ocsp: ingressd.tls.ocsp
})
def _at_least(value, low):
    if value < low:
        raise ValueError(f"{value} is below {low}")
    return value


# What a reading's settings must pass together with the options they are laid over (``overlay``):
# the same builders the server applies them with, so a value they refuse refuses the ConfigMap.
CORE_CHECKS: tuple[Callable[[Mapping[str, Any]], Any], ...] = (ForwardingPolicy.from_settings, log_settings_from,
                                                                 stream_settings_from, check_tracing)

# Keys whose value names another ConfigMap ("namespace/name") whose data is what the key's option
# reads (as pairs): read with the controller ConfigMap, so a change of either applies live.
REFERENCE_KEYS = ("add-headers", "proxy-set-headers")
# Keys whose value names a Secret ("namespace/name"): the key's option reads that data key of it (bytes);
# read with the controller ConfigMap, so a change of either applies live.
SECRET_KEYS: Mapping[str, str] = MappingProxyType({"ssl-dh-param": "dhparam.pem"})

# Keys whose empty value is a value, not the default (ingress-nginx reads "" as an empty list):
# no-auth-locations "" exempts nothing, where the default exempts ACME challenges.
EMPTY_IS_A_VALUE = frozenset(("no-auth-locations",))

# annotations-risk-level: ingress-nginx's levels, lowest first; snippets are Critical.
RISK_LEVELS = ("Low", "Medium", "High", "Critical")
_HONOURED_RISK_LEVELS = ("High", "Critical")


@dataclass(frozen=True, slots=True)
class ConfigMapReading:
    """What one version of the ConfigMap asks of the server."""

    name: str = ""  # "namespace/name"
    annotation_defaults: tuple[tuple[str, str], ...] = ()  # annotation name → the key's text
    settings: tuple[tuple[str, Any], ...] = ()  # option name (dashes) → value, as its option reads it
    allow_snippets: bool = True  # no ConfigMap: ingressd's own default (snippets read as data)
    risk_level: str = "Critical"
    warnings: tuple[str, ...] = ()
    refusals: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return not self.refusals


def read_configmap(name: str, data: Mapping[str, str] | None, annotations: Sequence[Any],
                   options: Mapping[str, Callable[[str], Any] | None],
                   running: Mapping[str, Any] | None = None,
                   configmaps: Callable[[str], Mapping[str, str] | None] | None = None,
                   secrets: Callable[[str], Mapping[str, bytes] | None] | None = None) -> ConfigMapReading:
    """Judge the ConfigMap ``name`` (``data``: its data; None when it does not exist).

    ``annotations``: the plugins' declared annotations (``features.Annotation``); ``options``: the
    server options by name (dashes) with their coerce functions (None: taken as text);
    ``running``: the option values the server started with (settings keys, underscores), for
    the keys that need a restart; ``configmaps``: "namespace/name" → another ConfigMap's data
    (None: it does not exist), for ``REFERENCE_KEYS``; ``secrets``: the same for a Secret's data,
    for ``SECRET_KEYS``.
    """
    if data is None:
        return ConfigMapReading(name, refusals=(f"ConfigMap {name} (--nginx-configmap) does not exist",))
    declared = {annotation.name: annotation for annotation in annotations}
    running = running or {}
    defaults: list[tuple[str, str]] = []
    settings: list[tuple[str, Any]] = []
    warnings: list[str] = []
    refusals: list[str] = []
    allow_snippets, risk_level = False, "High"  # ingress-nginx's defaults
    for key in sorted(data):
        text = str(data[key])
        value = text.strip()
        entry = lookup(key)
        where = f"ConfigMap {name} key {key}"
        if entry is None:
            warnings.append(f"{where} is not an ingress-nginx ConfigMap key; ignored")
            continue
        if (not value and key not in EMPTY_IS_A_VALUE) or (entry.default is not None and value
                                                             and same_value(entry, value, entry.default)):
            if key == "annotations-risk-level" and value:
                risk_level = _risk_level(value) or risk_level
            continue  # ingress-nginx's default asks for nothing
        if key == "allow-snippet-annotations":
            try:
                allow_snippets = parse_bool(value)
            except ValueError as exc:
                refusals.append(f"{where}: {exc}")
            continue
        if key == "annotations-risk-level":
            level = _risk_level(value)
            if level is None:
                refusals.append(f"{where}: {value!r} is not one of {', '.join(RISK_LEVELS)}")
            elif level not in _HONOURED_RISK_LEVELS:
                refusals.append(f"{where}: {level} is not supported yet (ingressd knows the risk of snippets "
                                "only: Critical); serving without it would accept annotations the level refuses")
            else:
                risk_level = level
            continue
        target = entry.target if entry.honoured else None
        if target is None:
            if entry.honoured:
                continue  # nothing to do: ingressd already behaves as it asks
            _unhonoured(where, entry, warnings, refusals)
            continue
        how, target_name = target
        if how == "annotation":
            annotation = declared.get(target_name)
            if annotation is None:  # its plugin is disabled
                _unhonoured(where, entry, warnings, refusals, f"the plugin owning {target_name} is not loaded")
                continue
            try:
                annotation.parse(value)
            except (ValueError, TypeError) as exc:
                refusals.append(f"{where}: {exc}")
                continue
            defaults.append((target_name, value))
        elif how == "setting":
            options = {**CORE_SETTINGS, **options}
            if target_name not in options:
                _unhonoured(where, entry, warnings, refusals, f"no plugin declares --{target_name}")
                continue
            coerce = options[target_name]
            if key in REFERENCE_KEYS:
                referenced = configmaps(value) if configmaps is not None and "/" in value else None
                if referenced is None:
                    refusals.append(f"{where}: ConfigMap {value} does not exist (expected namespace/name)")
                    continue
                value = tuple(sorted((str(k), str(v)) for k, v in referenced.items()))
            if key in SECRET_KEYS:
                secret = secrets(value) if secrets is not None and "/" in value else None
                if secret is None:
                    refusals.append(f"{where}: Secret {value} does not exist (expected namespace/name)")
                    continue
                if not secret.get(SECRET_KEYS[key]):
                    refusals.append(f"{where}: Secret {value} has no {SECRET_KEYS[key]}")
                    continue
                value = secret[SECRET_KEYS[key]]
            try:
                settings.append((target_name, coerce(value) if coerce is not None else value))
            except (ValueError, TypeError) as exc:
                refusals.append(f"{where}: {exc}")
        else:  # option: read at start only
            current = running.get(target_name.replace("-", "_"))
            if not _same_option(target_name, value, current):
                warnings.append(f"{where}: {value!r} needs a restart: ingressd reads it from --{target_name} "
                                f"(now {current!r}) at start")
    if settings:  # e.g. a log template that does not compile, --trusted-proxies beside another proxy-real-ip-cidr
        refusals += _check_together(name, overlay(running, ConfigMapReading(settings=tuple(settings))))
    return ConfigMapReading(name, tuple(defaults), tuple(settings), allow_snippets, risk_level,
                            tuple(warnings), tuple(refusals))


def references(data: Mapping[str, str] | None) -> tuple[str, ...]:
    """The other ConfigMaps ("namespace/name") the ConfigMap's ``REFERENCE_KEYS`` name."""
    return tuple(sorted({str(data[key]).strip() for key in REFERENCE_KEYS if data and str(data.get(key) or "").strip()}))


def secret_references(data: Mapping[str, str] | None) -> tuple[str, ...]:
    """The Secrets ("namespace/name") the ConfigMap's ``SECRET_KEYS`` name."""
    return tuple(sorted({str(data[key]).strip() for key in SECRET_KEYS if data and str(data.get(key) or "").strip()}))


def overlay(options: Mapping[str, Any], reading: ConfigMapReading | None) -> dict[str, Any]:
    """The server's settings (``options``: underscores) with the ConfigMap's ``setting:`` values laid
    over them: what routes are built with and what the forwarding policy and the access log are
    made from, at each ConfigMap change and on SIGHUP alike. A key the ConfigMap sets to a value
    other than ingress-nginx's default wins over the option; an absent key leaves the option."""
    settings = dict(options)
    if reading is not None:
        settings.update((name.replace("-", "_"), value) for name, value in reading.settings)
    return settings


def _check_together(name: str, settings: Mapping[str, Any]) -> list[str]:
    problems = []
    for check in CORE_CHECKS:
        try:
            check(settings)
        except (ValueError, TypeError) as exc:
            problems.append(f"ConfigMap {name}: {exc}")
    return problems


def _unhonoured(where: str, entry, warnings: list[str], refusals: list[str], why: str = "") -> None:
    what = why or ("never supported" if entry.status == "refused" else "not supported by ingressd")
    if entry.note:
        what += f" ({entry.note})"
    if entry.effect == HARMLESS:
        warnings.append(f"{where} is {what}; ignored (harmless)")
        return
    consequence = ("let in clients it keeps out" if entry.effect == NARROWS_ACCESS
                   else "send traffic elsewhere, or otherwise, than it asks")
    refusals.append(f"{where} is {what}, and applying the ConfigMap without it would {consequence}")


def _risk_level(value: str) -> str | None:
    for level in RISK_LEVELS:
        if value.strip().lower() == level.lower():
            return level
    return None


def _same_option(option: str, value: str, current: Any) -> bool:
    """Whether the ConfigMap's ``value`` is what the server runs with (``current``)."""
    if option == "no-http2":  # use-http2: the inverse switch
        try:
            return parse_bool(value) == (not current)
        except ValueError:
            return False
    if option in ("server-tokens", "allow-cross-namespace-resources"):
        try:
            return parse_bool(value) == bool(current)
        except ValueError:
            return False
    if option == "workers":
        if value.lower() == "auto":  # as --workers auto: one a usable CPU
            from ingressd.workers import usable_cpus

            return current == usable_cpus()
        return value.isdigit() and int(value) == current
    text = value[:-1] if value.endswith("s") else value  # nginx time: "240s"
    try:
        return float(text) == float(current)
    except (TypeError, ValueError):
        return False
