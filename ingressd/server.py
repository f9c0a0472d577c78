"""The composition root: providers → store → reloader → state → listeners, as one service."""

from __future__ import annotations

import ctypes
import gc
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.python import log

from ingressd.admin.endpoint import admin_site
from ingressd.drain import Drain
from ingressd.live_settings import ACCESS_LOG, FORWARDING, LIVE, UPSTREAM_KEEPALIVE, changed_options, option_names, read_settings
from ingressd.live_settings import STREAM
from ingressd.logformat import log_settings_from
from ingressd.signals import SignalHandlers
from ingressd.providers.files import ManifestProvider
from ingressd import __version__
from ingressd.http.client_settings import CLIENT_SIDE, server_values
from ingressd.http.connection_limit import DEFAULT as DEFAULT_CONNECTIONS, ConnectionLimit, parse_limit
from ingressd.http.http1 import HTTP1Factory, ServerSettings
from ingressd.http.http2 import HTTPSFactory, PriorKnowledge
from ingressd.config.model import ObjectRef
from ingressd.admin.observability import install as install_observability
from ingressd.proxy.exchange import Proxy, ProxySettings
from ingressd.proxy.forwarding import ForwardingPolicy, parse_duration
from ingressd.http.proxy_protocol import ProxyProtocolFactory
from ingressd.config.nginx_configmap import overlay
from ingressd.config.reloader import Reloader, State
from ingressd.config.store import ObjectStore
from ingressd.tls.certificates import CertificateStore
from ingressd.tls.ocsp import OCSPStapler
from ingressd.tls.settings import tls_settings
from ingressd.tls.facts import ObservedTLSFactory
from ingressd.tls.passthrough import PassthroughRouter
from ingressd.config.translate import CONTROLLER, TranslateSettings
from ingressd.proxy.transport import connect_tcp, listen
from ingressd.config.entries import AUTO_HTTP, DEFAULT_UPSTREAM
from ingressd.features import UpstreamSettings
from ingressd.proxy.http1_upstream import HTTP1Upstream
from ingressd.proxy.subrequest import SubrequestClient
from ingressd.proxy.h2_upstream import H2Upstream
from ingressd.proxy.fastcgi_upstream import FastCGIUpstream
from ingressd.l4.manager import l4_manager
from ingressd.proxy.transport import parse_tcp


class IngressdService(MultiService):
    """The running server; its parts are attributes so tests and plugins can reach them."""

    def __init__(self, settings: dict[str, Any], plugins, reactor: Any, argv: list[str] | None = None):
        super().__init__()
        self.settings = settings
        self.argv = argv  # the subcommand's command line, read again on SIGHUP
        self.plugins = plugins
        self.reactor = reactor
        self.store = ObjectStore()
        self.state = State()
        # The upstream protocols this server speaks (a route's UpstreamSettings.protocol picks
        # one), and the upstream settings routes start from.
        self.pool = HTTP1Upstream(
            reactor,
            max_idle_per_endpoint=int(settings.get("upstream_keepalive_connections") or 320),
            idle_timeout=float(settings.get("upstream_keepalive_timeout") or 60),
            max_requests=int(settings.get("upstream_keepalive_requests", 10000) or 0),
            max_age=float(settings.get("upstream_keepalive_time") or 3600),
        )
        self.https_pool = HTTP1Upstream(
            reactor,
            max_idle_per_endpoint=int(settings.get("upstream_keepalive_connections") or 320),
            idle_timeout=float(settings.get("upstream_keepalive_timeout") or 60),
            max_requests=int(settings.get("upstream_keepalive_requests", 10000) or 0),
            max_age=float(settings.get("upstream_keepalive_time") or 3600),
            tls=True,
        )
        self.upstreams = {self.pool.name: self.pool, self.https_pool.name: self.https_pool}
        for grpc in (H2Upstream(reactor), H2Upstream(reactor, tls=True)):  # GRPC, GRPCS
            self.upstreams[grpc.name] = grpc
        self.upstreams["FCGI"] = FastCGIUpstream(reactor)  # backend-protocol: FCGI
        upstream = UpstreamSettings(
            connect_timeout=float(settings.get("proxy_connect_timeout", DEFAULT_UPSTREAM.connect_timeout)),
            read_timeout=float(settings.get("proxy_read_timeout", DEFAULT_UPSTREAM.read_timeout)),
            send_timeout=float(settings.get("proxy_send_timeout", DEFAULT_UPSTREAM.send_timeout)),
            max_body_size=int(settings.get("proxy_body_size", DEFAULT_UPSTREAM.max_body_size)),
            protocol=DEFAULT_UPSTREAM.protocol,
            http_version=DEFAULT_UPSTREAM.http_version,
        ).over(DEFAULT_UPSTREAM)  # the fields no option sets: the defaults
        self.reloader = Reloader(
            self.store, self.state, reactor, plugins,
            translate_settings=TranslateSettings(
                ingress_class=settings.get("ingress_class") or "ingressd",
                watch_ingress_without_class=bool(settings.get("watch_ingress_without_class")),
                allow_cross_namespace_resources=bool(settings.get("allow_cross_namespace_resources")),
                default_backend_service=settings.get("default_backend_service"),
                ignore_annotations=frozenset(settings.get("ignore_annotation") or ()),
                **({"controllers": (CONTROLLER, settings["controller_class"])}
                   if settings.get("controller_class") else {}),
                **({"gateway_controller": settings["gateway_controller_name"]}
                   if settings.get("gateway_controller_name") else {}),
            ),
            settings=settings,
            upstream=upstream,
            protocols=frozenset(self.upstreams) | {AUTO_HTTP},
        )
        self.reloader.on_ready.append(freeze_heap)
        # The HTTP requests plugins send themselves (mirrors, auth checks): the same pools.
        self.subrequests = self.reloader.subrequests = SubrequestClient(
            self.upstreams, reactor, connect_timeout=upstream.connect_timeout,
            read_timeout=upstream.read_timeout, send_timeout=upstream.send_timeout)
        self.redis = None  # --redis: the rate-limit decisions shared by the replicas (ingressd.redis)
        if settings.get("redis"):
            from ingressd.redis.client import RedisClient, RedisURL
            from ingressd.redis.decisions import Decisions

            self.redis = self.reloader.redis = Decisions(
                RedisClient(RedisURL.parse(str(settings["redis"])), reactor), reactor,
                timeout=float(settings.get("redis_timeout") or 0.005),
                failure=settings.get("redis_failure") or "open")
            self.state.readiness_checks.append(self.redis.not_ready_reason)
            self.redis_secret = None  # --redis-secret: the client's credentials, followed
            if settings.get("redis_secret"):
                from ingressd.redis.secret import SecretCredentials, parse_ref

                self.redis_secret = SecretCredentials(self.store, parse_ref(settings["redis_secret"]),
                                                      self.redis.client)
                self.state.readiness_checks.append(self.redis_secret.not_ready_reason)
        self.replicas = None  # --replicas-hint: local limits' share (ingressd.replicas)
        if settings.get("replicas_hint"):
            from ingressd.replicas import ReplicaCount, parse_hint

            self.replicas = self.reloader.replicas = ReplicaCount(parse_hint(settings["replicas_hint"]))
        self.proxy = Proxy(self.state, self.upstreams, ProxySettings(
            upstream=upstream, temp_dir=settings.get("temp_path") or None,
            forwarding=ForwardingPolicy.from_settings(settings)), reactor)
        # The client-address and access-log settings in place (options under the ConfigMap's values):
        # a ConfigMap change and SIGHUP both go through apply_live_settings.
        self._live_applied = (_values(settings, FORWARDING), _values(settings, ACCESS_LOG))
        self._pool_applied = _values(settings, UPSTREAM_KEEPALIVE)
        self.reloader.listeners.append(lambda config: self.apply_live_settings())
        # The client side's limits, shared by every listener and connection: changed in place
        # (apply_live_settings), so the next connection and request read the new values.
        self.server_settings = ServerSettings(send_timeout=float(settings.get("client_send_timeout") or 60),
                                              **server_values(settings, __version__))
        self._client_applied = _values(settings, CLIENT_SIDE)
        self.tls_factory = None
        # max-worker-connections: one bound over the client listeners of this process, live.
        self.connection_limit = ConnectionLimit(parse_limit(settings.get("max_worker_connections", DEFAULT_CONNECTIONS)))
        self.manifest_providers: list[ManifestProvider] = []
        self._add_manifest_providers(settings.get("manifests") or ())
        self.kubernetes = None
        if settings.get("kubernetes"):
            from ingressd.providers.kube.service import KubernetesService

            self.kubernetes = KubernetesService(settings, self.store, reactor, replicas=self.replicas)
            self.kubernetes.setServiceParent(self)
            self.reloader.listeners.append(self.kubernetes.config_applied)

        workers = settings.get("worker_id") is not None  # one of several processes on the same ports
        self.proxy_protocol_listeners: list = []  # each listener's PROXY protocol reader
        self.listeners: list = []  # the client listeners: closed first when draining
        groups = []  # their connections
        if settings.get("http"):
            factory = self.http_factory = HTTP1Factory(self.proxy, self.server_settings, reactor, scheme="http")
            # h2c with prior knowledge: a connection opening with the HTTP/2 preface (--no-http2, use-http2)
            self.prior_knowledge = PriorKnowledge(factory, enabled=not settings.get("no_http2"),
                                                  websocket=not settings.get("no_http2_websocket"))
            groups.append(self.prior_knowledge.live)
            self._listen(listen(settings["http"], self._proxy_protocol(factory), reactor, reuse_port=workers,
                                option="--http"))
            groups.append(factory.live)
        if settings.get("https"):
            default = settings.get("default_certificate")
            default_ref = None
            if default:
                namespace, _, name = str(default).rpartition("/")
                default_ref = ObjectRef("Secret", namespace or "default", name)
            # h2 always in the ALPN list: the listener's factory says live whether it is chosen
            # (HTTPSFactory.http2: --no-http2, use-http2).
            self.ocsp = OCSPStapler(reactor)  # enable-ocsp: responses fetched in the background
            self.certificates = CertificateStore(alpn=True, default_ref=default_ref, tls=tls_settings(settings),
                                                 ocsp=self.ocsp)
            self.reloader.appliers.append(self.certificates.update)
            tls_factory = self.tls_factory = HTTPSFactory(HTTP1Factory(self.proxy, self.server_settings, reactor, scheme="https"),
                                       http2=not settings.get("no_http2"),
                                       websocket=not settings.get("no_http2_websocket"))
            # TLS of passthrough hosts, unterminated: an Ingress's ssl-passthrough (which its plugin
            # serves only with --enable-ssl-passthrough) or a TLSRoute's (an explicit ask: no flag).
            # The SNI name is read before OpenSSL anyway; the decision is a dictionary look-up.
            self.passthrough = PassthroughRouter(
                self.state, lambda host, port, factory, timeout: connect_tcp(reactor, host, port, factory, timeout),
                connect_timeout=upstream.connect_timeout)
            groups.append(self.passthrough)
            wrapped = self.tls_listener = ObservedTLSFactory(
                self.certificates.server_options(), False, tls_factory,
                clock=reactor, hello_timeout=self.server_settings.header_timeout, passthrough=self.passthrough,
                reject_handshake=self.certificates.rejects)
            wrapped.noisy = False
            self._listen(listen(settings["https"], self._proxy_protocol(wrapped), reactor, reuse_port=workers,
                                option="--https"))
            groups += [tls_factory.http1.live, tls_factory.live]
        # --tcp-services-configmap, --udp-services-configmap: L4 ports beside the HTTP listeners.
        self.l4 = l4_manager(settings, self.store, reactor, interface=_interface(settings.get("http")),
                             reuse_port=workers, reserved=_own_ports(settings),
                             connect_timeout=upstream.connect_timeout)
        if self.l4 is not None:
            self._listen(self.l4)
            groups.append(self.l4)
        self.drain = Drain(
            reactor,
            delay=float(settings.get("shutdown_delay", 5) or 0),
            grace=float(settings.get("shutdown_grace", 60) or 0),
            not_ready=self._not_ready,
            stop_listening=self._stop_listening,
            groups=groups,
        )
        pages = install_observability(self, settings)  # metrics, access log, /routes and / pages
        if settings.get("admin"):
            listen(settings["admin"], admin_site(self.state, pages), reactor, option="--admin").setServiceParent(self)
        self.admission = None  # --validating-webhook: its handler (reviews judged, refused)
        if settings.get("validating_webhook"):
            from ingressd.admission.setup import install as install_webhook

            install_webhook(self, settings, reactor, reuse_port=workers).setServiceParent(self)

    # -- listeners and providers -----------------------------------------------------------

    def _proxy_protocol(self, factory):
        """``factory`` behind a PROXY protocol header when the forwarding policy in place says
        so (read at each connection: --proxy-protocol, use-proxy-protocol)."""
        wrapped = ProxyProtocolFactory(self.connection_limit.wrap(factory), lambda: self.proxy.settings.forwarding,
                                       self.reactor)
        self.proxy_protocol_listeners.append(wrapped)
        return wrapped

    def _listen(self, listener) -> None:
        self.listeners.append(listener)
        listener.setServiceParent(self)

    def _add_manifest_providers(self, paths) -> None:
        # One provider for every path: each publishes its whole source ("files"), so one per
        # path would have the last to publish hide the others' objects.
        if paths:
            provider = ManifestProvider(list(paths), self.store, self.reactor)
            self.manifest_providers.append(provider)
            provider.setServiceParent(self)

    # -- signals ---------------------------------------------------------------------------

    def startService(self):
        if self.redis is not None:
            if self.redis_secret is not None:
                self.redis_secret.start()  # starts the client once the Secret is read
            else:
                self.redis.client.start()
        super().startService()
        when_running = getattr(self.reactor, "callWhenRunning", None)  # not on a test Clock
        if when_running is not None:
            # After the reactor's own handlers (installed as it starts), so these win.
            handlers = SignalHandlers(self.reactor, on_force=self.drain.force,
                                      on_reload=self.reload_configuration, on_reopen=self.reopen_logs)
            when_running(handlers.install)

    def reload_configuration(self) -> None:
        """SIGHUP: read the options and --config again; apply --manifests, name the rest."""
        if self.argv is None:
            log.msg("ingressd: SIGHUP: the command line is not known here; re-reading the manifests only")
            new = self.settings
        else:
            try:
                new = read_settings(self.argv)
            except Exception as exc:  # noqa: BLE001 - a bad edit must not take the server down
                log.msg(f"ingressd: SIGHUP: the options are not valid now, nothing changed: {exc}")
                return
        live, restart = changed_options(self.settings, new)
        if "manifests" in live:
            for provider in self.manifest_providers:
                provider.disownServiceParent()
            self.manifest_providers = []
            self._add_manifest_providers(new.get("manifests") or ())
        self.settings = {**self.settings, **{key: new.get(key) for key in live if key in LIVE}}
        self.reloader.settings = self.settings  # what the next ConfigMap version is judged against
        self.apply_live_settings()
        for provider in self.manifest_providers:
            provider.scan()  # at once, not at the next poll
        paths = len(self.settings.get("manifests") or ())
        parts = [f"re-read {paths} manifest path(s)"]
        parts.append(f"applied: {option_names(live)}" if live else "no live option changed")
        if restart:
            parts.append(f"changed but only applied by a restart: {option_names(restart)}")
        log.msg(f"ingressd: SIGHUP: {'; '.join(parts)}")

    def live_settings(self) -> dict[str, Any]:
        """The options with the ingress-nginx ConfigMap's values in effect laid over them
        (``nginx_configmap.overlay``): what the forwarding policy and the access log are made from."""
        return overlay(self.settings, self.reloader.configmap)

    def apply_live_settings(self) -> None:
        """Swap in a new forwarding policy and access-log settings when their settings changed
        (a ConfigMap change, SIGHUP): the next request and connection read them, none is dropped."""
        settings = self.live_settings()
        forwarding, access_log = _values(settings, FORWARDING), _values(settings, ACCESS_LOG)
        try:
            if forwarding != self._live_applied[0]:
                self.proxy.use_forwarding(ForwardingPolicy.from_settings(settings))
            if access_log != self._live_applied[1] and getattr(self, "access_log", None) is not None:
                self.access_log.apply(log_settings_from(settings))
        except ValueError as exc:  # the ConfigMap was judged against other options (SIGHUP since)
            log.msg(f"ingressd: the client-address and access-log settings are not valid together, "
                    f"the previous ones stay in place: {exc}")
            return
        self._live_applied = (forwarding, access_log)
        client_side = _values(settings, CLIENT_SIDE)
        if client_side != self._client_applied:  # the client side's timeouts, limits, Server header, HTTP/2
            self.server_settings.apply(**server_values(settings, __version__))
            if self.tls_factory is not None:
                self.tls_factory.http2 = not settings.get("no_http2")
                self.tls_listener.hello_timeout = self.server_settings.header_timeout  # the ClientHello's too
            if getattr(self, "prior_knowledge", None) is not None:
                self.prior_knowledge.enabled = not settings.get("no_http2")
            self.connection_limit.limit = parse_limit(settings.get("max_worker_connections", DEFAULT_CONNECTIONS))
            self._client_applied = client_side
        keepalive = _values(settings, UPSTREAM_KEEPALIVE)
        if keepalive != self._pool_applied:  # upstream-keepalive-*: the pools' limits, from the next release
            for pool in (self.pool, self.https_pool):
                pool.use_limits(int(settings.get("upstream_keepalive_connections") or 320),
                                parse_duration(settings.get("upstream_keepalive_timeout") or 60),
                                int(settings.get("upstream_keepalive_requests", 10000) or 0),
                                float(settings.get("upstream_keepalive_time") or 3600))
            self._pool_applied = keepalive
        stream = _values(settings, STREAM)
        l4 = getattr(self, "l4", None)
        if l4 is not None and stream != getattr(self, "_stream_applied", None):  # TCP/UDP services, next connection
            try:
                l4.apply(settings)
                self._stream_applied = stream
            except ValueError as exc:
                log.msg(f"ingressd: the TCP/UDP services' settings are not valid, the previous ones stay: {exc}")
        certificates = getattr(self, "certificates", None)  # --https only
        if certificates is not None:  # ssl-protocols, ssl-ciphers, ssl-session-*: new handshakes
            certificates.reject_handshake = bool(settings.get("ssl_reject_handshake"))  # the next handshake
            try:
                certificates.use_tls(tls_settings(settings))
            except Exception as exc:  # noqa: BLE001 - OpenSSL refusing them keeps the previous ones
                log.msg(f"ingressd: the TLS settings cannot be applied, the previous ones stay in place: {exc}")

    def reopen_logs(self) -> None:
        """SIGUSR1: the access log's file is opened again (after logrotate moved it)."""
        access_log = getattr(self, "access_log", None)  # set by observability.install
        if access_log is None or not access_log.reopen():
            log.msg("ingressd: SIGUSR1: no access log file to reopen")

    # -- stopping ----------------------------------------------------------------------------

    def _not_ready(self) -> None:
        self.state.draining = True

    def _stop_listening(self):
        return defer.DeferredList([defer.maybeDeferred(listener.disownServiceParent)
                                   for listener in self.listeners if listener.parent is self])

    def stopService(self):
        """Drain first (``ingressd.drain``): the admin endpoint, providers and backends stay
        up until every client connection is finished or the grace is over."""
        if not self.running:
            return super().stopService()
        return self.drain.start().addCallback(lambda _: self._stop_everything())

    def _stop_everything(self):
        self.reloader.stop()
        if getattr(self, "ocsp", None) is not None:
            self.ocsp.stop()
        if self.redis is not None:
            if self.redis_secret is not None:
                self.redis_secret.stop()
            self.redis.client.stop()
        for upstream in self.upstreams.values():
            upstream.close()
        return super().stopService()


def _values(settings: dict[str, Any], keys: frozenset[str]) -> tuple:
    return tuple((key, settings.get(key)) for key in sorted(keys))


def _interface(description: str | None) -> str:
    """The address the HTTP listener binds (``tcp:PORT:interface=ADDR``; "" for all)."""
    parsed = parse_tcp(str(description)) if description else None
    return parsed[1] if parsed else ""


def _own_ports(settings: dict[str, Any]) -> tuple[int, ...]:
    """The ports of ingressd's own listeners: a TCP/UDP service may not take them."""
    ports = []
    for name in ("http", "https", "admin"):
        parsed = parse_tcp(str(settings.get(name))) if settings.get(name) else None
        if parsed:
            ports.append(parsed[0])
    return tuple(ports)


def freeze_heap() -> None:
    """Exempt what start-up built (modules, the first configuration) from garbage collection.

    A full collection walks every tracked object: at 10,000 Ingresses well over a million,
    and even with one Ingress a full collection took 20-30 ms in the middle of serving
    (bench.py new-connection: p99 32 ms against a p50 of 6). Frozen objects are not walked;
    whatever they hold that later becomes garbage is still freed by reference counting.
    """
    if not hasattr(gc, "freeze"):  # PyPy: its collector is incremental and has no freeze
        return
    gc.collect()
    gc.freeze()
    log.msg(f"ingressd: {gc.get_freeze_count()} start-up objects exempted from garbage collection")
    release_free_memory()


def release_free_memory() -> None:
    """Give the heap's free pages back to the system (glibc's ``malloc_trim``), once the
    first configuration is built: reading it (every LIST page, parsed on the reflector
    threads, each with its own malloc arena) leaves megabytes free but resident, which
    nothing of the same size will reuse. Measured at 10,000 Ingresses: 3 MiB less resident.
    Nothing happens where the C library has no such call (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return
    trim(0)


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard limit: a proxy holds two descriptors
    per proxied request and one per idle client, and 1024 (a common default) is too few."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            log.msg(f"ingressd: cannot raise the open-file limit from {soft}: {exc}")
    return soft


def build_server(settings: dict[str, Any], plugins, reactor: Any, argv: list[str] | None = None) -> IngressdService:
    log.msg(f"ingressd: open-file limit {raise_open_file_limit()}")
    if plugins is not None:
        plugins.configure(settings, reactor)
    log.msg(f"ingressd: plugins: {', '.join(plugins.names()) if plugins else 'none'}")
    for name in sorted(settings.get("ignore_annotation") or ()):
        log.msg(f"ingressd: --ignore-annotation {name}: Ingresses with nginx.ingress.kubernetes.io/{name} are "
                "served without it, even where that widens access or changes where traffic goes")
    return IngressdService(settings, plugins, reactor, argv)
