"""``twistd ingressd``: the options (command line and ``--config`` YAML) and the service tree."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

import yaml
from twisted.application.service import MultiService
from twisted.python import reflect, usage

from ingressd import startup
from ingressd.admission import setup as admission_options
from ingressd.features import parse_size
from ingressd.http.connection_limit import parse_limit
from ingressd.http.head_buffers import parse_header_buffers
from ingressd.logformat import log_settings_from
from ingressd.tracing.settings import TracingSettings
from ingressd.plugin_manager import PluginError, Plugins, load_plugins
from ingressd.replicas import parse_hint
from ingressd.tls.settings import DEFAULT_CIPHERS, parse_ciphers, parse_ecdh_curve, parse_protocols, parse_time

CORE_PARAMETERS = [
    ["config", None, None, "YAML settings file whose keys are the long option names"],
    ["http", None, "tcp:8080", "endpoint for plain HTTP (a Twisted server endpoint string; a bare port is tcp:PORT)"],
    ["https", None, "tcp:8443", "endpoint for HTTPS"],
    ["admin", None, "tcp:9180:interface=127.0.0.1",
     "endpoint for /healthz, /readyz, /metrics and /routes (loopback unless told otherwise)"],
    ["admin-routes", None, "on", "on/off: serve /routes and the page at / on the admin endpoint (off: health, metrics only)"],
    ["ingress-class", None, "ingressd", "the IngressClass name ingressd answers to"],
    ["trusted-proxies", None, "", "comma-separated CIDRs whose X-Forwarded-* headers are trusted "
     "(the same as --use-forwarded-headers --proxy-real-ip-cidr CIDRS)"],
    ["proxy-real-ip-cidr", None, None, "comma-separated CIDRs of the proxies and load balancers whose "
     "forwarded-for header or PROXY protocol header gives the client's address (default 0.0.0.0/0)"],
    ["forwarded-for-header", None, "X-Forwarded-For", "the header a trusted proxy names the client in"],
    ["proxy-protocol-header-timeout", None, "5s", "time a connection has to send its PROXY protocol header"],
    ["generate-request-id", None, "on", "on/off: give a request without X-Request-ID a random one"],
    ["proxy-connect-timeout", None, "5", "backend connect timeout, seconds"],
    ["proxy-read-timeout", None, "60", "backend read (idle) timeout, seconds"],
    ["proxy-send-timeout", None, "60", "backend send (idle) timeout, seconds"],
    ["proxy-body-size", None, "1m", "largest request body (nginx size; 0 = unlimited)"],
    ["temp-path", None, None, "directory of the temporary files of bodies beyond memory (default: the system's)"],
    ["client-header-timeout", None, "60", "seconds a client may take to send a request head"],
    ["client-body-timeout", None, "60", "seconds between two reads of a request body"],
    ["keepalive-timeout", None, "75", "seconds an idle client keep-alive connection stays open"],
    ["keepalive-requests", None, "1000", "requests an HTTP/1 client connection serves before it is closed (0: no limit)"],
    ["http2-max-concurrent-streams", None, "128", "streams an HTTP/2 client may have open at once on a connection"],
    ["large-client-header-buffers", None, "4 8k", "NUMBER SIZE: the buffers a request head must fit in, line by line "
     "(nginx's large_client_header_buffers): a longer request line gets 414, a longer header line or head 400"],
    ["max-worker-connections", None, "16384", "client connections this process serves at once; more are "
     "closed as they are accepted (nginx's worker_connections; 0: no limit)"],
    ["ignore-invalid-headers", None, "on", "on/off: drop header fields with invalid names (off: a name with an "
     "underscore is forwarded even without --enable-underscores-in-headers, as nginx)"],
    ["client-send-timeout", None, "60", "seconds a client may read nothing of a response before it is dropped"],
    ["upstream-keepalive-connections", None, "320", "idle backend connections kept per endpoint"],
    ["upstream-keepalive-timeout", None, "60", "seconds an idle backend connection is kept"],
    ["upstream-keepalive-requests", None, "10000", "requests a backend connection serves before it is closed (0: no limit)"],
    ["upstream-keepalive-time", None, "1h", "how long a backend connection is reused after it was opened (nginx time: 1h, 30m, 3600)"],
    ["default-backend-service", None, None, "NAMESPACE/NAME of the Service for unmatched requests"],
    ["default-certificate", None, None, "NAMESPACE/NAME of the TLS Secret for unknown SNI names"],
    ["kubeconfig", None, None, "kubeconfig file for --kubernetes outside a cluster"],
    ["namespace", None, None, "watch only this namespace (default: all)"],
    ["publish-service", None, None, "NAMESPACE/NAME of the Service whose address goes to Ingress status"],
    ["publish-status-address", None, None, "address(es) to write to Ingress status"],
    ["election-id", None, "ingressd-leader", "name of the Lease for leader election"],
    ["election-namespace", None, "default", "namespace of the Lease outside a pod (in a pod: $POD_NAMESPACE)"],
    ["validating-webhook", None, None, "address of the validating admission webhook (HTTPS), e.g. :8443 or "
     "tcp:8443 (default: off)"],
    ["validating-webhook-certificate", None, None, "PEM certificate file of the webhook (read again when it changes)"],
    ["validating-webhook-key", None, None, "PEM private key file of the webhook (read again when it changes)"],
    ["workers", None, "1", "worker processes serving the same ports (SO_REUSEPORT), supervised by this one; "
     "auto: one a usable CPU (the cgroup's CPU limit counts)"],
    ["shutdown-delay", None, "5", "seconds listeners keep accepting after SIGTERM while /readyz fails"],
    ["shutdown-grace", None, "60", "seconds open responses and streams then get before they are closed"],
    ["worker-id", None, None, "(internal) set by the supervisor for each worker process"],
    ["access-log", None, "-", "access log file, '-' for standard output, '' or 'off' to disable"],
    ["access-log-format", None, None, "access log line format: json, combined or nginx (--log-format-upstream); "
     "default json, nginx with --nginx-configmap (ingress-nginx's upstreaminfo line)"],
    ["log-format-upstream", None, None, "nginx log_format template of the access log ($remote_addr, $status…; "
     "implies --access-log-format nginx; default: ingress-nginx's upstreaminfo line)"],
    ["skip-access-log-urls", None, "", "comma-separated request URIs ($request_uri) never written to the access log"],
    ["metrics-compat", None, "", "also expose ingress-nginx's metric names: 'nginx' (default: none)"],
    ["ssl-protocols", None, "TLSv1.2 TLSv1.3", "TLS versions offered to clients (ingress-nginx's ssl-protocols; "
     "a contiguous range of TLSv1 TLSv1.1 TLSv1.2 TLSv1.3)"],
    ["ssl-ciphers", None, DEFAULT_CIPHERS, "OpenSSL cipher list for TLS 1.2 and below (ingress-nginx's ssl-ciphers; "
     "TLS 1.3 suites are OpenSSL's)"],
    ["ssl-prefer-server-ciphers", None, "on", "on/off: the server's cipher order decides (nginx's "
     "ssl_prefer_server_ciphers, on with ingress-nginx's ssl-ciphers)"],
    ["ssl-session-cache", None, "on", "on/off: TLS sessions resume from the server's cache (ingress-nginx's "
     "ssl-session-cache)"],
    ["ssl-session-timeout", None, "10m", "how long a TLS session may be resumed, an nginx time "
     "(ingress-nginx's ssl-session-timeout)"],
    ["ssl-session-tickets", None, "on", "on/off: TLS 1.2 session tickets (ingress-nginx's ssl-session-tickets, "
     "off there; off: sessions resume by id, only those whose connection ended with a TLS close)"],
    ["ssl-ecdh-curve", None, "auto", "key-exchange groups (ingress-nginx's ssl-ecdh-curve, nginx's ssl_ecdh_curve): "
     "auto, or one of prime256v1, secp384r1, secp521r1"],
    ["controller-class", None, None, "also serve IngressClasses whose spec.controller is this (ingress-nginx's "
     "flag: k8s.io/ingress-nginx)"],
    ["gateway-controller-name", None, "ingressd.io/gateway-controller", "serve the Gateway API GatewayClasses "
     "whose spec.controllerName is this (docs/gateway-api.md)"],
    ["nginx-configmap", None, None, "NAMESPACE/NAME of an ingress-nginx controller ConfigMap, read unchanged "
     "(watched; file mode: a ConfigMap of that name in the manifests); alias --configmap"],
    ["tcp-services-configmap", None, None, "NAMESPACE/NAME of ingress-nginx's TCP services ConfigMap "
     "(\"PORT\": \"namespace/service:port[:PROXY][:PROXY]\")"],
    ["udp-services-configmap", None, None, "NAMESPACE/NAME of ingress-nginx's UDP services ConfigMap"],
    ["proxy-stream-timeout", None, "600", "TCP/UDP services: seconds a connection or session may be idle"],
    ["proxy-stream-responses", None, "1", "UDP services: replies expected per datagram (0: until idle)"],
    ["l4-max-connections", None, "10000", "TCP/UDP services: open connections (UDP: sessions) per port"],
    ["redis", None, None, "Redis shared by the replicas for global rate limits: redis://[:PASSWORD@]HOST[:PORT][/DB], "
     "rediss:// (TLS), unix:///PATH[?db=N&password=P] or redis+sentinel://HOST:PORT,HOST:PORT/MASTER[/DB] "
     "(default: none)"],
    ["redis-failure", None, "open", "open/closed: a global limit's answer when Redis cannot decide (open: "
     "admitted, as ingress-nginx's global limiter)"],
    ["redis-timeout", None, "0.005", "seconds a request waits at most for a Redis decision"],
    ["redis-secret", None, None, "NAMESPACE/NAME of a Secret with the Redis password (key password; optional "
     "username: an ACL user), followed as it changes"],
    ["replicas-hint", None, None, "N or auto: local limits (limit-rps, limit-rpm, limit-connections) divided by N "
     "replicas, or by the ready endpoints of --publish-service (auto, --kubernetes) (default: off)"],
]
CORE_FLAGS = [
    ["log-format-escape-json", None, "escape the nginx access log format's values as JSON strings"],
    ["log-format-escape-none", None, "write the nginx access log format's values unescaped"],
    ["disable-access-log", None, "write no access log lines (the log can be turned on again live, by SIGHUP)"],
    ["watch-ingress-without-class", None, "serve Ingresses that name no class"],
    ["allow-cross-namespace-resources", None, "allow annotations to name Secrets/Services in other namespaces"],
    ["kubernetes", None, "read Ingresses and friends from the Kubernetes API"],
    ["no-http2", None, "do not offer HTTP/2 (over TLS by ALPN, nor in clear with prior knowledge on --http)"],
    ["no-http2-websocket", None, "do not offer WebSocket over HTTP/2 (RFC 8441; browsers then use HTTP/1.1)"],
    ["enable-ssl-passthrough", None, "pass TLS for hosts with the ssl-passthrough annotation to their backends "
     "unterminated, by SNI name (without it such Ingresses are not served)"],
    ["no-metrics", None, "do not count requests for /metrics (for benchmarks)"],
    ["server-tokens", None, "send Server: ingressd/<version> (default: no Server header, as ingress-nginx)"],
    ["allow-backend-server-header", None, "with --server-tokens: pass the backend's Server header instead of "
     "ingressd's (without --server-tokens no Server header is sent, as ingress-nginx)"],
    ["enable-underscores-in-headers", None, "forward request header fields whose names have underscores "
     "(default: dropped, as nginx)"],
    ["use-forwarded-headers", None, "believe X-Forwarded-For/-Proto/-Host/-Port from --proxy-real-ip-cidr peers"],
    ["compute-full-forwarded-for", None, "with --use-forwarded-headers: send the backend the whole "
     "X-Forwarded-For chain and the peer, not the client alone"],
    ["enable-real-ip", None, "take the client's address from --forwarded-for-header sent by "
     "--proxy-real-ip-cidr peers (without believing the other X-Forwarded-* headers)"],
    ["proxy-protocol", None, "every connection (HTTP and HTTPS) starts with a PROXY protocol v1 or v2 "
     "header (ingress-nginx's use-proxy-protocol); one without is closed"],
    ["proxy-add-original-uri-header", None, "send the backend X-Original-URI (the request target as received)"],
]


@functools.cache
def _loaded() -> tuple[Plugins | None, str | None]:
    try:
        return load_plugins(), None
    except PluginError as exc:  # reported by postOptions, as a usage error
        return None, str(exc)


def loaded_plugins() -> Plugins | None:
    """The installed plugins, loaded at the first call (the first ``Options()``), not at import;
    None when they cannot be loaded (``Options.postOptions`` says why)."""
    return _loaded()[0]


def _plugin_option_lists(plugins: Plugins | None):
    parameters, flags = [], []
    for option in plugins.options if plugins else ():
        if option.flag:
            flags.append([option.name, None, option.help])
        else:
            parameters.append([option.name, None, option.default, option.help, option.coerce])
    return parameters, flags


@functools.cache
def _with_plugin_options(cls: type) -> type:
    """``cls`` with the loaded plugins' options: Twisted reads a class's option lists."""
    parameters, flags = _plugin_option_lists(loaded_plugins())
    return type(cls.__name__, (cls,), {"optParameters": parameters, "optFlags": flags,
                                       "__module__": cls.__module__, "__doc__": cls.__doc__})


class Options(usage.Options):
    """``twistd ingressd``'s options: the core's and the plugins' (loaded at the first instance).

    A mistake raises UsageError; as twistd's subcommand (twistd sets ``parent``) it is one
    line on standard error and exit status 2 instead of twistd's help and a traceback-like dump.
    """

    synopsis = "[options]"
    longdesc = "Serve Kubernetes Ingresses (from manifest files or the API) as an HTTP(S) reverse proxy."
    optParameters = CORE_PARAMETERS
    optFlags = CORE_FLAGS

    def __new__(cls, *args, **kwargs):
        if cls is Options:
            cls = _with_plugin_options(cls)
        return super().__new__(cls)

    def __init__(self) -> None:
        super().__init__()
        self["manifests"] = []
        self["disable-plugin"] = []
        self["ignore-annotation"] = []

    def opt_manifests(self, path: str) -> None:
        """a manifest file or folder (may be given more than once)"""
        self["manifests"].append(path)

    def opt_disable_plugin(self, name: str) -> None:
        """disable a plugin by its entry-point name (may be given more than once)"""
        self["disable-plugin"].append(name)

    def opt_ignore_annotation(self, name: str) -> None:
        """serve Ingresses although ingressd ignores this ingress-nginx annotation, even where ignoring
        it widens access or changes where traffic goes (may be given more than once; comma lists too)"""
        self["ignore-annotation"].append(name)

    def opt_configmap(self, name: str) -> None:
        """ingress-nginx's name of --nginx-configmap"""
        self["nginx-configmap"] = name

    # -- ingress-nginx's controller flags, so that its Deployment's args work unchanged -------------

    def opt_watch_namespace(self, namespace: str) -> None:
        """ingress-nginx's name of --namespace"""
        self["namespace"] = namespace or None

    def opt_default_ssl_certificate(self, name: str) -> None:
        """ingress-nginx's name of --default-certificate"""
        self["default-certificate"] = name

    def opt_http_port(self, port: str) -> None:
        """ingress-nginx's flag: --http tcp:PORT"""
        self["http"] = f"tcp:{_port('http-port', port)}"

    def opt_https_port(self, port: str) -> None:
        """ingress-nginx's flag: --https tcp:PORT"""
        self["https"] = f"tcp:{_port('https-port', port)}"

    def opt_healthz_port(self, port: str) -> None:
        """ingress-nginx's flag: --admin tcp:PORT (all interfaces, for the kubelet's probes)"""
        self["admin"] = f"tcp:{_port('healthz-port', port)}"

    def opt_ingress_class_by_name(self) -> None:
        """ingress-nginx's flag; ingressd always matches IngressClasses by name too"""

    def opt_metrics_per_host(self) -> None:
        """ingress-nginx's flag (default true); accepted, no effect"""

    def opt_watch_namespace_selector(self, selector: str) -> None:
        """ingress-nginx's flag: not supported (refused, never widened to every namespace)"""
        raise usage.UsageError("--watch-namespace-selector is not supported; use --watch-namespace NAMESPACE "
                               "(watching every namespace instead would serve Ingresses it excludes)")

    def opt_version(self) -> None:
        """print the versions of ingressd, Twisted, pyOpenSSL/OpenSSL and Python, and exit"""
        print(startup.version_text())
        sys.exit(0)

    def parseOptions(self, options=None) -> None:
        try:
            self._parse(options)
        except usage.UsageError as exc:
            if getattr(self, "parent", None) is None:
                raise
            raise startup.fail(str(exc), startup.USAGE_ERROR) from None

    def _parse(self, options) -> None:
        argv = _go_booleans(list(sys.argv[1:] if options is None else options))
        config = _find_config(argv)
        if config:
            self._apply_config(config)
        self.argv = argv  # what the supervisor passes on to workers
        super().parseOptions(argv)

    def _apply_config(self, path: str) -> None:
        if not os.path.isfile(path):
            raise usage.UsageError(f"--config {path}: no such file")
        try:
            with open(path, encoding="utf-8") as handle:
                values = yaml.safe_load(handle) or {}
        except OSError as exc:
            raise usage.UsageError(f"--config {path}: {exc.strerror or exc}")
        except yaml.YAMLError as exc:
            raise usage.UsageError(f"--config {path}: not YAML: {' '.join(str(exc).split())}")
        if not isinstance(values, dict):
            raise usage.UsageError(f"--config {path}: expected a mapping of option names")
        flags = {flag[0] for flag in _declared(type(self), "optFlags")}
        parameters = {parameter[0]: parameter for parameter in _declared(type(self), "optParameters")}
        base = os.path.dirname(os.path.abspath(path))  # paths in the file are relative to it
        unknown = []
        for key, value in values.items():
            key = str(key)
            if key in ("manifests", "disable-plugin", "ignore-annotation"):
                items = value if isinstance(value, list) else [value]
                self[key].extend(str(startup.resolve(key, str(item), base)) for item in items)
            elif key in flags:
                self[key] = 1 if value else 0
            elif key in parameters:
                value = value if isinstance(value, str) or value is None else str(value)
                coerce = parameters[key][4] if len(parameters[key]) > 4 else None
                if coerce is not None and value is not None:  # as getopt would for the command line
                    try:
                        value = coerce(value)
                    except ValueError as exc:
                        raise usage.UsageError(f"--config {path}: {key}: {exc}")
                self[key] = startup.resolve(key, value, base) if key in startup.PATH_OPTIONS else value
            else:
                unknown.append(key)
        if unknown:
            raise usage.UsageError(f"--config {path}: unknown option{'s' if len(unknown) > 1 else ''} "
                                   f"{', '.join(map(repr, unknown))} (twistd ingressd --help lists them)")

    def postOptions(self) -> None:
        plugin_error = _loaded()[1]
        if plugin_error:
            raise usage.UsageError(f"plugins: {plugin_error}")
        if not self["manifests"] and not self["kubernetes"]:
            raise usage.UsageError("give --manifests PATH (repeatable) and/or --kubernetes")
        for name in startup.ENDPOINT_OPTIONS:
            self[name] = startup.endpoint(name, self[name])
        for name in startup.PATH_OPTIONS:
            values = self[name] if isinstance(self[name], list) else [self[name]]
            startup.check_paths(name, values)
        admission_options.check_options(self)
        self["admin-routes"] = _on_off("admin-routes", self["admin-routes"])
        for name in ("ssl-prefer-server-ciphers", "ssl-session-cache", "ssl-session-tickets", "ignore-invalid-headers"):
            self[name] = _on_off(name, self[name])
        for name, parse in (("ssl-ciphers", parse_ciphers), ("ssl-protocols", parse_protocols),
                            ("ssl-session-timeout", parse_time), ("upstream-keepalive-time", parse_time),
                            ("ssl-ecdh-curve", parse_ecdh_curve)):
            try:
                self[name] = parse(str(self[name]))
            except ValueError as exc:
                raise usage.UsageError(f"--{name}: {exc}")
        for name in ("proxy-connect-timeout", "proxy-read-timeout", "proxy-send-timeout",
                     "client-header-timeout", "client-body-timeout", "keepalive-timeout", "client-send-timeout",
                     "upstream-keepalive-timeout", "shutdown-delay", "shutdown-grace"):
            try:
                self[name] = float(self[name])
            except (TypeError, ValueError):
                raise usage.UsageError(f"--{name} must be a number of seconds")
        try:
            self["redis-timeout"] = float(self["redis-timeout"])
        except (TypeError, ValueError):
            raise usage.UsageError("--redis-timeout must be a number of seconds")
        if not 0 < self["redis-timeout"] <= 10:
            raise usage.UsageError("--redis-timeout must be more than 0 and at most 10 seconds")
        if self["redis-failure"] not in ("open", "closed"):
            raise usage.UsageError("--redis-failure must be open or closed")
        if self["redis"]:
            from ingressd.redis.client import RedisURL

            try:
                RedisURL.parse(str(self["redis"]))
            except ValueError as exc:
                raise usage.UsageError(f"--redis: {exc}")
        if self["redis-secret"]:
            from ingressd.redis.secret import parse_ref

            if not self["redis"]:
                raise usage.UsageError("--redis-secret gives the credentials of --redis: give --redis URL too")
            try:
                secret_namespace = parse_ref(self["redis-secret"])[0]
            except ValueError as exc:
                raise usage.UsageError(f"--redis-secret: {exc}")
            if self["kubernetes"] and self["namespace"] and secret_namespace != self["namespace"] \
                    and not self["manifests"]:
                raise usage.UsageError(f"--redis-secret {self['redis-secret']}: its namespace is not watched "
                                       f"(--namespace {self['namespace']}); ingressd would never see it")
        try:
            self["replicas-hint"] = parse_hint(self["replicas-hint"])
        except ValueError as exc:
            raise usage.UsageError(f"--replicas-hint: {exc}")
        if self["replicas-hint"] == "auto" and not (self["kubernetes"] and self["publish-service"]):
            raise usage.UsageError("--replicas-hint auto counts the ready endpoints of --publish-service: it needs "
                                   "--kubernetes and --publish-service (file mode: give the number, --replicas-hint N)")
        try:
            log_settings_from(settings_from(self))
            TracingSettings.from_settings(settings_from(self))  # otel-max-export-batch-size ≤ otel-max-queuesize
        except ValueError as exc:
            raise usage.UsageError(str(exc))
        if (self["metrics-compat"] or "") not in ("", "nginx"):
            raise usage.UsageError("--metrics-compat must be nginx (or empty)")
        self["ignore-annotation"] = _ignored_annotations(self["ignore-annotation"])
        if self["nginx-configmap"] is not None:
            namespace, _, name = str(self["nginx-configmap"]).partition("/")
            if not namespace or not name or "/" in name:
                raise usage.UsageError(f"--nginx-configmap {self['nginx-configmap']}: expected NAMESPACE/NAME")
            if self["kubernetes"] and self["namespace"] and namespace != self["namespace"] and not self["manifests"]:
                raise usage.UsageError(f"--nginx-configmap {self['nginx-configmap']}: its namespace is not watched "
                                       f"(--namespace {self['namespace']}); ingressd would never see it")
        from ingressd.proxy.forwarding import ForwardingPolicy

        try:
            ForwardingPolicy.from_settings(settings_from(self))
        except ValueError as exc:
            raise usage.UsageError(str(exc))
        from ingressd.workers import parse_workers

        try:
            self["workers"] = parse_workers(self["workers"])
        except ValueError as exc:
            message = str(exc) if str(exc).startswith("--workers") else "--workers must be a whole number or auto"
            raise usage.UsageError(message)
        if self["workers"] > 1 and self["worker-id"] is None:
            from ingressd.proxy.transport import parse_tcp

            for name in ("http", "https"):
                if self[name] and parse_tcp(str(self[name])) is None:
                    raise usage.UsageError(f"--workers needs a plain tcp: endpoint for --{name}")
        try:
            self["proxy-body-size"] = parse_size(str(self["proxy-body-size"]))
            self["upstream-keepalive-connections"] = int(self["upstream-keepalive-connections"])
            self["upstream-keepalive-requests"] = int(self["upstream-keepalive-requests"])
            self["keepalive-requests"] = int(self["keepalive-requests"])
            try:
                self["max-worker-connections"] = parse_limit(self["max-worker-connections"])
            except ValueError:
                raise ValueError("--max-worker-connections must be a whole number (0: no limit)") from None
            self["http2-max-concurrent-streams"] = int(self["http2-max-concurrent-streams"])
            if self["http2-max-concurrent-streams"] < 1:
                raise ValueError("--http2-max-concurrent-streams must be at least 1")
            try:
                self["large-client-header-buffers"] = parse_header_buffers(self["large-client-header-buffers"])
            except ValueError as exc:
                raise ValueError(f"--large-client-header-buffers: {exc}") from None
        except ValueError as exc:
            raise usage.UsageError(str(exc))
        _check_l4_options(self)


def _check_l4_options(options) -> None:
    """The TCP/UDP services' options (``ingressd.l4``): one line per mistake."""
    from ingressd.l4.table import parse_ref

    for name in ("tcp-services-configmap", "udp-services-configmap"):
        try:
            parse_ref(options[name])
        except ValueError as exc:
            raise usage.UsageError(f"--{name}: {exc}")
    for name, low in (("proxy-stream-timeout", 0.001), ("proxy-stream-responses", 0), ("l4-max-connections", 1)):
        try:
            value = float(options[name]) if name == "proxy-stream-timeout" else int(options[name])
        except (TypeError, ValueError):
            value = None
        if value is None or value < low:
            raise usage.UsageError(f"--{name} must be a number, at least {low:g}")
        options[name] = value


# Boolean flags an ingress-nginx Deployment may pass as Go writes them: --name=true or --name=false.
_GO_BOOLEANS = ("enable-ssl-passthrough", "ingress-class-by-name", "metrics-per-host", "watch-ingress-without-class")


def _go_booleans(argv: list[str]) -> list[str]:
    """``argv`` with ``--flag=true`` as ``--flag`` and ``--flag=false`` left out, for those flags."""
    out = []
    for arg in argv:
        name, equals, value = arg.partition("=")
        if equals and name[2:] in _GO_BOOLEANS and name.startswith("--"):
            if value.lower() in ("true", "1", "t"):
                out.append(name)
            elif value.lower() not in ("false", "0", "f"):
                raise usage.UsageError(f"{name}: {value!r} is not true or false")
            continue
        out.append(arg)
    return out


def _port(name: str, value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise usage.UsageError(f"--{name} {value}: expected a port number")
    return int(value)


def _declared(cls: type, name: str) -> list:
    """An option list of ``cls`` and its bases (the core's and the plugins'), as Twisted gathers it."""
    declared: list = []
    reflect.accumulateClassList(cls, name, declared)
    return declared


def _on_off(name: str, value: object) -> bool:
    text = str(value).strip().lower()
    if text in ("on", "true", "yes", "1"):
        return True
    if text in ("off", "false", "no", "0"):
        return False
    raise usage.UsageError(f"--{name} {value}: expected on or off")


def _ignored_annotations(values: list[str]) -> frozenset[str]:
    """``--ignore-annotation`` values as catalogue names; a name ingress-nginx never had, or one
    that can never be ignored (canary), is a usage error."""
    from ingressd.compat.catalogue import lookup
    from ingressd.compat.assess import ignore_list

    names: set[str] = set()
    for value in values:
        names |= ignore_list(str(value))
    for name in sorted(names):
        entry = lookup(name)
        if entry is None:
            raise usage.UsageError(f"--ignore-annotation {name}: not an ingress-nginx annotation")
        if not entry.ignorable:
            raise usage.UsageError(f"--ignore-annotation {name}: cannot be ignored ({entry.note})")
    return frozenset(names)


def _find_config(argv: list[str]) -> str | None:
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def settings_from(options) -> dict[str, Any]:
    """Option values by long name with dashes turned into underscores (what plugins receive)."""
    return {str(key).replace("-", "_"): value for key, value in dict(options).items()}


def install_reactor() -> None:
    """ingressd's reactor (``ingressd.reactor``), unless one was chosen with ``twistd
    --reactor``; Twisted's default where there is no epoll (not Linux)."""
    try:
        from ingressd.reactor import install
    except ImportError:
        return
    install()


class _ExitOnListenError(MultiService):
    """The top of ingressd's service tree: a listener that cannot start (a port in use) is one
    line on standard error naming the option and the address, and exit status 1, not a traceback."""

    def startService(self) -> None:
        from twisted.internet.error import CannotListenError

        from ingressd.proxy.transport import cannot_listen

        try:
            super().startService()
        except startup.ListenError as exc:
            raise startup.fail(str(exc), startup.RUNTIME_ERROR) from None
        except CannotListenError as exc:  # a listener not made by transport.listen
            raise startup.fail(cannot_listen("", f"tcp:{exc.port}", exc), startup.RUNTIME_ERROR) from None


def makeService(options) -> MultiService:
    top = _ExitOnListenError()
    _make_service(options).setServiceParent(top)
    return top


def _make_service(options) -> MultiService:
    install_reactor()
    from twisted.internet import reactor

    from ingressd.server import build_server

    settings = settings_from(options)
    if settings["workers"] > 1 and settings.get("worker_id") is None:
        from ingressd.workers import supervisor_services

        top = MultiService()
        _, services = supervisor_services(settings, getattr(options, "argv", []), reactor)
        for service in services:
            service.setServiceParent(top)
        return top
    plugins = loaded_plugins()
    if options["disable-plugin"]:
        plugins = load_plugins(disabled=options["disable-plugin"])
    return build_server(settings, plugins, reactor, getattr(options, "argv", None))
