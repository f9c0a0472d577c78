"""The composition root: providers → store → reloader → state → listeners, as one service."""

from __future__ import annotations

import ctypes
import gc
from typing import Any

from twisted.application.service import MultiService
from twisted.python import log

from ingressd.admin.endpoint import admin_site
from ingressd.providers.files import ManifestProvider
from ingressd.http.http1 import HTTP1Factory, ServerSettings
from ingressd.http.http2 import HTTPSFactory
from ingressd.config.model import ObjectRef
from ingressd.admin.observability import install as install_observability
from ingressd.proxy.exchange import Proxy, ProxySettings
from ingressd.config.reloader import Reloader, State
from ingressd.config.store import ObjectStore
from ingressd.tls.certificates import CertificateStore
from ingressd.tls.facts import ObservedTLSFactory
from ingressd.config.translate import TranslateSettings
from ingressd.proxy.transport import listen
from ingressd.config.entries import DEFAULT_UPSTREAM
from ingressd.features import UpstreamSettings
from ingressd.proxy.http1_upstream import HTTP1Upstream


class IngressdService(MultiService):
    """The running server; its parts are attributes so tests and plugins can reach them."""

    def __init__(self, settings: dict[str, Any], plugins, reactor: Any):
        super().__init__()
        self.settings = settings
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
        )
        self.upstreams = {self.pool.name: self.pool}
        upstream = UpstreamSettings(
            connect_timeout=float(settings.get("proxy_connect_timeout", DEFAULT_UPSTREAM.connect_timeout)),
            read_timeout=float(settings.get("proxy_read_timeout", DEFAULT_UPSTREAM.read_timeout)),
            send_timeout=float(settings.get("proxy_send_timeout", DEFAULT_UPSTREAM.send_timeout)),
            max_body_size=int(settings.get("proxy_body_size", DEFAULT_UPSTREAM.max_body_size)),
            protocol=DEFAULT_UPSTREAM.protocol,
        )
        self.reloader = Reloader(
            self.store, self.state, reactor, plugins,
            translate_settings=TranslateSettings(
                ingress_class=settings.get("ingress_class") or "ingressd",
                watch_ingress_without_class=bool(settings.get("watch_ingress_without_class")),
                allow_cross_namespace_resources=bool(settings.get("allow_cross_namespace_resources")),
                default_backend_service=settings.get("default_backend_service"),
                ignore_annotations=frozenset(settings.get("ignore_annotation") or ()),
            ),
            settings=settings,
            upstream=upstream,
            protocols=frozenset(self.upstreams),
        )
        self.reloader.on_ready.append(freeze_heap)
        trusted = [c.strip() for c in str(settings.get("trusted_proxies") or "").split(",") if c.strip()]
        self.proxy = Proxy(self.state, self.upstreams, ProxySettings(trusted, upstream), reactor)
        self.server_settings = ServerSettings(
            header_timeout=float(settings.get("client_header_timeout") or 60),
            body_timeout=float(settings.get("client_body_timeout") or 60),
            keepalive_timeout=float(settings.get("keepalive_timeout") or 75),
            send_timeout=float(settings.get("client_send_timeout") or 60),
        )
        for path in settings.get("manifests") or ():
            ManifestProvider([path], self.store, reactor).setServiceParent(self)
        self.kubernetes = None
        if settings.get("kubernetes"):
            from ingressd.providers.kube.service import KubernetesService

            self.kubernetes = KubernetesService(settings, self.store, reactor)
            self.kubernetes.setServiceParent(self)
            self.reloader.listeners.append(self.kubernetes.config_applied)

        workers = settings.get("worker_id") is not None  # one of several processes on the same ports
        if settings.get("http"):
            factory = self.http_factory = HTTP1Factory(self.proxy, self.server_settings, reactor, scheme="http")
            listen(settings["http"], factory, reactor, reuse_port=workers, option="--http").setServiceParent(self)
        if settings.get("https"):
            default = settings.get("default_certificate")
            default_ref = None
            if default:
                namespace, _, name = str(default).rpartition("/")
                default_ref = ObjectRef("Secret", namespace or "default", name)
            self.certificates = CertificateStore(alpn=not settings.get("no_http2"), default_ref=default_ref)
            self.reloader.appliers.append(self.certificates.update)
            tls_factory = HTTPSFactory(HTTP1Factory(self.proxy, self.server_settings, reactor, scheme="https"),
                                       http2=not settings.get("no_http2"))
            wrapped = self.tls_listener = ObservedTLSFactory(self.certificates.server_options(), False, tls_factory)
            wrapped.noisy = False
            listen(settings["https"], wrapped, reactor, reuse_port=workers, option="--https").setServiceParent(self)
        pages = install_observability(self, settings)  # metrics, access log, /routes and / pages
        if settings.get("admin"):
            listen(settings["admin"], admin_site(self.state, pages), reactor, option="--admin").setServiceParent(self)

    def stopService(self):
        self.reloader.stop()
        for upstream in self.upstreams.values():
            upstream.close()
        return super().stopService()


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


def build_server(settings: dict[str, Any], plugins, reactor: Any) -> IngressdService:
    log.msg(f"ingressd: open-file limit {raise_open_file_limit()}")
    if plugins is not None:
        plugins.configure(settings, reactor)
    log.msg(f"ingressd: plugins: {', '.join(plugins.names()) if plugins else 'none'}")
    for name in sorted(settings.get("ignore_annotation") or ()):
        log.msg(f"ingressd: --ignore-annotation {name}: Ingresses with nginx.ingress.kubernetes.io/{name} are "
                "served without it, even where that widens access or changes where traffic goes")
    return IngressdService(settings, plugins, reactor)
