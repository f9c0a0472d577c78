"""Test a plugin the way ingressd's own plugins are tested: in memory, deterministic, no sockets.

Two levels, both public:

- **The whole build path** — ``PluginHarness(plugins=[my_module], annotations={...})`` loads
  the plugins with the real plugin manager (``check_pending`` included), writes one Ingress
  with those annotations (plus a Service and any Secrets you give), runs the real
  ``translate`` and ``build_table`` with a ``twisted.internet.task.Clock`` as the reactor,
  and lets you send requests through the route's prepared features in phase order::

      harness = PluginHarness(plugins=[my_plugin], annotations={"example-header": "hi"})
      outcome = harness.request("GET", "/", headers={"accept": "text/html"})
      assert outcome.proxied
      assert ("x-example", "hi") in outcome.response(200).header_items()

  A rejected Ingress is reported in ``harness.rejection`` (and ``harness.entry`` raises).
  ``harness.close()`` (or ``with PluginHarness(...) as harness:``) gives the plugins back the
  configuration they had before it (see "Plugin configuration" below).

- **One plugin's hooks by hand** — ``annotation_values``, ``features_for``, ``exchange``
  (a ``FakeExchange`` with the request-time interface the proxy gives features),
  ``run_request``, ``run_response``, ``make_route``, ``make_context``, ``secret``, ``header``.

Plugin configuration: ``ingressd_configure`` hands plugins the settings and the reactor, and
a plugin keeps them in its module (rate_limit's clock, error_pages' fetcher). A harness or an
in-memory server that went away without undoing that would hand its reactor to whatever is
built next, in the next test. So each configuration made here is undone with its owner
(``PluginHarness.close``, stopping ``serve_in_memory``'s service): a plugin gets back the
latest one made here that is still in force, or, if there is none, empty settings and no
reactor (what ingressd's own plugins hold before any configuration).
``restore_plugin_configuration()`` does the same after code that configures plugins itself.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from twisted.application.service import Service
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from ingressd.proxy.chain import (
    in_phase_order,
    request_methods,
    run_error_features,
    run_request_features,
    run_response_features,
    with_page_headers,
)
from ingressd.config.entries import RouteEntry
from ingressd.features import INGRESSD_PREFIX, BuildContext, LocalResponse, UpstreamSettings, check_plain_text
from ingressd.http.headers import Headers
from ingressd.tls.client_auth import NO_TLS
from ingressd.config.model import Backend, Endpoint, ObjectRef, Route, SecretData

__all__ = [
    "FakeExchange",
    "Outcome",
    "PluginHarness",
    "Response",
    "annotation_values",
    "exchange",
    "features_for",
    "header",
    "make_context",
    "make_route",
    "one_route_objects",
    "restore_plugin_configuration",
    "run_request",
    "run_response",
    "secret",
    "serve_in_memory",
    "write_manifest",
]


# -- one plugin's hooks by hand ---------------------------------------------------------


def make_route(
    namespace: str = "default",
    ingress: str = "web",
    service: str = "web",
    port: str = "80",
    host: str = "example.com",
    path: str = "/",
) -> Route:
    return Route(
        host=host,
        path=path,
        path_type="Prefix",
        backend=Backend(namespace, service, port, (Endpoint("10.0.0.1", 8080),)),
        ingress=ObjectRef("Ingress", namespace, ingress),
    )


@dataclass
class FakeExchange:
    """What the proxy's ``Exchange`` offers a route feature, in memory."""

    method: bytes = b"GET"
    target: bytes = b"/"
    path: str = "/"
    query: bytes = b""
    host: str = "example.com"
    headers: Headers = field(default_factory=Headers)
    peer_ip: str = "192.0.2.10"
    client_ip: str = "192.0.2.10"
    scheme: str = "http"
    https: bool = False  # the client's own connection is TLS
    server_port: int = 80
    request_id: str = "0123456789abcdef"
    request_uri: bytes = b"/"
    upstream_status: int = 0  # set when the backend's answer is played (Outcome.response)
    status: int = 0  # the answer's status, set with upstream_status (Outcome.response)
    started: float = 0.0  # clock.seconds() when the request came
    upstream_endpoint: Any = None  # the Endpoint of the last try (set it to play a balancer's learning)
    upstream_started: float = 0.0
    upstream_ended: float = 0.0
    route: Route = field(default_factory=make_route)
    version: bytes = b"HTTP/1.1"
    connect_timeout: float | None = None
    read_timeout: float | None = None
    send_timeout: float | None = None
    max_body_size: int | None = None
    protocol: str | None = None  # the upstream protocol (UpstreamSettings.protocol)
    tls: Any = None  # the backend TLS settings (UpstreamSettings.tls)
    http_version: str | None = None  # UpstreamSettings.http_version
    client_certificate: Any = NO_TLS  # tls.client_auth.ClientCertificate
    request_buffering: bool | None = None  # UpstreamSettings.request_buffering, and so on:
    body_buffer_size: int | None = None
    response_buffering: bool | None = None
    response_memory: int | None = None
    max_temp_file_size: int | None = None
    limit_rate: int | None = None
    limit_rate_after: int | None = None
    next_upstream: Any = None  # UpstreamSettings.next_upstream
    finish_callbacks: list[Callable[[], None]] = field(default_factory=list)
    finished: bool = False
    forward_callbacks: list = field(default_factory=list)  # on_forward's (callback, body_limit)

    def on_finish(self, callback: Callable[[], None]) -> None:
        self.finish_callbacks.append(callback)

    def on_forward(self, callback: Callable[[Any], None], body_limit: int = 0) -> None:
        self.forward_callbacks.append((callback, body_limit))

    def forward(self, forwarded: Any) -> None:
        """Send the request to its backend as the proxy does: each ``on_forward`` callback once,
        with ``forwarded`` (a ``ForwardedRequest``)."""
        callbacks, self.forward_callbacks = self.forward_callbacks, []
        for callback, _limit in callbacks:
            callback(forwarded)

    def finish(self) -> None:
        """End the exchange as the proxy does: each callback once."""
        assert not self.finished, "an exchange finishes once"
        self.finished = True
        for callback in self.finish_callbacks:
            callback()


def _pairs(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [
        (name.lower().encode("latin-1") if isinstance(name, str) else name.lower(),
         value.encode("latin-1") if isinstance(value, str) else value)
        for name, value in items
    ]


def exchange(headers: Mapping[str, str] | Iterable[tuple[str, str]] = (), **kwargs: Any) -> FakeExchange:
    """A FakeExchange with headers given as text, e.g. ``exchange({"origin": "https://a"})``."""
    return FakeExchange(headers=Headers(_pairs(headers)), **kwargs)


def annotation_values(plugin: Any, raw: Mapping[str, str], resolved: Mapping[str, Any] | None = None) -> dict:
    """Parse ``raw`` (annotation name without prefix → text) through ``plugin``'s declarations.

    Like the core: undeclared names are an error here (a typo in a test), every declared
    annotation gets its parsed value or its default, and ``resolved`` supplies what the
    core would resolve for ``resolve="secret"``/``"service"`` annotations.
    """
    declared = {annotation.name: annotation for annotation in plugin.ingressd_annotations()}
    unknown = set(raw) - set(declared)
    assert not unknown, f"not declared by {plugin.__name__}: {sorted(unknown)}"
    values = {}
    for name, annotation in declared.items():
        if name in raw:
            values[name] = annotation.parse(check_plain_text(raw[name], lines=annotation.lines))
        else:
            values[name] = annotation.default
    for name, value in (resolved or {}).items():
        assert declared[name].resolve, f"{name} is not a resolved annotation"
        values[name] = value
    return values


def make_context(settings: Mapping[str, Any] | None = None, reactor: Any = None, **extra: Any) -> BuildContext:
    context = BuildContext(settings=dict(settings or {}), reactor=reactor)
    for name, value in extra.items():
        setattr(context, name, value)
    return context


def features_for(plugin: Any, raw: Mapping[str, str], route: Route | None = None,
                 context: BuildContext | None = None, resolved=None) -> list:
    """What ``plugin.ingressd_route_features`` returns for a route with these annotations, as a list."""
    values = annotation_values(plugin, raw, resolved)
    result = plugin.ingressd_route_features(route=route or make_route(), values=values,
                                            context=context or make_context())
    if result is None:
        return []
    if isinstance(result, (list, tuple)):
        return list(result)
    return [result]


def run_request(features: Iterable[Any], ex: FakeExchange) -> LocalResponse | None:
    """Apply the features' ``upstream`` settings to ``ex`` as the proxy does when the route
    matches, then call each feature's ``request`` in phase order with the proxy's own chain
    runner (``ingressd.proxy.chain``); the first answer stops the chain. Deferreds must already have
    fired (unit tests run without a reactor); a feature that raises raises here."""
    ordered = in_phase_order(features)
    # Only what the features set (a fake exchange has no server defaults to start from).
    RouteEntry(make_route(), ordered, UpstreamSettings()).upstream.apply_to(ex)
    return _request_answer(request_methods(ordered), ex)



def run_response(features: Iterable[Any], ex: FakeExchange, status: int,
                 headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Call each feature's ``response`` in phase order (the proxy's chain runner)."""
    ordered = in_phase_order(features)
    return run_response_features([f.response for f in ordered if hasattr(f, "response")], ex, status, headers)


def _request_answer(requests, ex) -> LocalResponse | None:
    """Run the request chain and return its answer at once (every Deferred already fired)."""
    outcome: list = []

    def failed(feature, failure) -> None:
        outcome.append(failure)

    run_request_features(requests, ex, lambda answer, feature: outcome.append(answer), failed)
    assert outcome, "a request feature's Deferred has not fired (advance the Clock, or fire it first)"
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()  # the proxy logs it and answers 500; a test wants the error
    answer = outcome[0]
    assert answer is None or isinstance(answer, LocalResponse), answer
    return answer


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """Every value of response header ``name`` in a list of pairs."""
    return [value for key, value in headers if key == name]


def secret(namespace: str, name: str, type_: str = "Opaque", **data: bytes) -> SecretData:
    return SecretData(ObjectRef("Secret", namespace, name), type_, tuple(sorted(data.items())))


# -- plugin configuration, undone with its owner ---------------------------------------

# (owner, plugin, settings, reactor) per plugin configured here, oldest first
_configurations: list[tuple[Any, Any, Mapping[str, Any], Any]] = []


def _remember_configuration(owner: Any, plugins: Any, settings: Mapping[str, Any], reactor: Any) -> None:
    """Record that ``owner`` configured ``plugins`` (just now) with ``settings`` and ``reactor``."""
    for impl in plugins.manager.hook.ingressd_configure.get_hookimpls():
        _configurations.append((owner, impl.plugin, settings, reactor))


def _undo_configuration(owner: Any, plugins: Any) -> None:
    """Forget ``owner``'s configuration: each of its plugins gets the one still in force."""
    undone = [entry for entry in _configurations if entry[0] is owner]
    _configurations[:] = [entry for entry in _configurations if entry[0] is not owner]
    _configure_as_in_force(plugins, {id(entry[1]) for entry in undone})


def _configure_as_in_force(plugins: Any, only: set[int] | None = None) -> None:
    """Configure each plugin (or those whose id is in ``only``) with the latest configuration
    made here that is still in force, or, if none is, with empty settings and no reactor."""
    manager = plugins.manager
    for impl in manager.hook.ingressd_configure.get_hookimpls():
        plugin = impl.plugin
        if only is not None and id(plugin) not in only:
            continue
        in_force = [entry for entry in _configurations if entry[1] is plugin]
        settings, reactor = (in_force[-1][2], in_force[-1][3]) if in_force else ({}, None)
        others = [other for other in manager.get_plugins() if other is not plugin]
        manager.subset_hook_caller("ingressd_configure", others)(settings=settings, reactor=reactor)


def restore_plugin_configuration(plugins: Any = None) -> None:
    """After code that configures plugins itself (``build_server``, ``ingressd check``'s
    ``build_config``): give each plugin (default: the installed ones) the configuration this
    module has in force for it (an open harness's or in-memory server's), or none."""
    if plugins is None:
        from ingressd.plugin_manager import load_plugins

        plugins = load_plugins()
    _configure_as_in_force(plugins)


class _ConfigurationUndone(Service):
    """Part of an in-memory server: stopping it undoes the server's plugin configuration."""

    def __init__(self, plugins: Any):
        self.plugins = plugins

    def stopService(self):
        super().stopService()
        _undo_configuration(self, self.plugins)


# -- the whole build path ---------------------------------------------------------------


@dataclass
class Response:
    """What the client would get: status, header pairs (after response features), body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower().encode("latin-1")
        return [value.decode("latin-1") for key, value in self.headers if key == wanted]

    def header_items(self) -> list[tuple[str, str]]:
        return [(key.decode("latin-1"), value.decode("latin-1")) for key, value in self.headers]


@dataclass
class Outcome:
    """One request through a route's features: answered locally, or to be proxied."""

    harness: "PluginHarness"
    exchange: FakeExchange
    local: Response | None  # set when a feature answered (after error pages and response features)

    @property
    def proxied(self) -> bool:
        return self.local is None

    @property
    def status(self) -> int | None:
        return self.local.status if self.local is not None else None

    @property
    def upstream_headers(self) -> list[tuple[str, str]]:
        """The request headers as the backend would get them (before ingressd's X-Forwarded-*),
        after the route's ``upstream_request`` features."""
        assert self.proxied, f"answered locally with {self.status}, not proxied"
        lines = list(self.exchange.headers)
        for edit in self.harness.entry.upstream_request_features:
            edit(self.exchange, lines)
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in lines]

    def response(self, status: int = 200, headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                 body: bytes = b"") -> Response:
        """The backend answered: run error pages (for listed codes) and response features, finish."""
        assert self.proxied, f"answered locally with {self.status}, not proxied"
        self.exchange.upstream_status = self.exchange.status = status
        result = self.harness._finish_response(self.exchange, status, _pairs(headers), body)
        self.exchange.finish()
        return result


class PluginHarness:
    """The real plugin manager, ``translate`` and ``build_table`` for one Ingress, in memory.

    ``plugins``: modules (or objects) with ``@hookimpl`` functions, registered as extra
    plugins (``entry_points=True`` also loads every installed plugin). ``annotations``:
    name → text; a name without ``/`` gets the ``ingressd.io/`` prefix. ``secrets``: name →
    {key: bytes or str}, Secrets in the Ingress's namespace. ``objects``: more API-shaped
    objects. ``settings``: option values by long name with underscores (what
    ``ingressd_configure`` and ``context.settings`` get). ``clock``: the reactor the plugins
    get (a ``Clock`` by default; advance it to move time). ``close()`` (or leaving a
    ``with`` block) gives the plugins back the configuration they had before.
    """

    def __init__(
        self,
        plugins: Sequence[Any] = (),
        annotations: Mapping[str, str] | None = None,
        *,
        host: str = "example.com",
        path: str = "/",
        path_type: str = "Prefix",
        namespace: str = "default",
        name: str = "web",
        secrets: Mapping[str, Mapping[str, Any]] | None = None,
        objects: Sequence[Mapping] = (),
        settings: Mapping[str, Any] | None = None,
        clock: Any = None,
        entry_points: bool = False,
        disabled: Sequence[str] = (),
        endpoints: Sequence[tuple[str, int]] = (("10.0.0.1", 8080),),
    ):
        from ingressd.plugin_manager import load_plugins

        self.clock = clock if clock is not None else Clock()
        self.settings = dict(settings or {})
        self.namespace = namespace
        self.name = name
        self.host = host
        self.path = path
        self.plugins = load_plugins(disabled=disabled, extra=list(plugins), entry_points=entry_points)
        self.plugin_state: dict = {}  # the plugins' state for this harness's life, as a server's
        self.plugins.configure(self.settings, self.clock)
        _remember_configuration(self, self.plugins, self.settings, self.clock)
        self.annotations = {
            (key if "/" in key else INGRESSD_PREFIX + key): str(value)
            for key, value in (annotations or {}).items()
        }
        self.objects = [
            *one_route_objects(host, endpoints, path=path, path_type=path_type, namespace=namespace, name=name,
                               annotations=self.annotations),
            *(_secret_object(namespace, secret_name, data) for secret_name, data in (secrets or {}).items()),
            *objects,
        ]
        self.rebuild()

    def rebuild(self, objects: Sequence[Mapping] | None = None) -> None:
        """Translate and build again (e.g. after changing ``self.objects``), then config_applied."""
        from ingressd.config.entries import build_table
        from ingressd.config.store import object_key, pack
        from ingressd.config.translate import TranslateSettings, translate

        if objects is not None:
            self.objects = list(objects)
        snapshot: dict[str, dict] = {}
        for obj in self.objects:
            snapshot.setdefault(obj["kind"], {})[object_key(obj)] = pack(obj)
        translate_settings = TranslateSettings(
            allow_cross_namespace_resources=bool(self.settings.get("allow_cross_namespace_resources")),
            default_backend_service=self.settings.get("default_backend_service"),
        )
        config = translate(snapshot, translate_settings, self.plugins.annotations)
        context = BuildContext(
            settings=self.settings,
            reactor=self.clock,
            secrets={(s.ref.namespace, s.ref.name): s for s in config.secrets},
            state=self.plugin_state,
        )
        default = config.default_backend
        context.default_backend = (
            default.backend if default is not None and default.ingress.kind == "Service" else None
        )
        self.table, self.config = build_table(config, self.plugins, context)
        self.plugins.config_applied(self.config, context)

    def close(self) -> None:
        """Give the plugins back the configuration they had before this harness."""
        _undo_configuration(self, self.plugins)

    def __enter__(self) -> "PluginHarness":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- what was built -------------------------------------------------------------------

    @property
    def rejection(self) -> str | None:
        """Why the Ingress was rejected (the message the log and events show), or None."""
        for rejection in self.config.rejections:
            if rejection.ref.kind == "Ingress" and rejection.ref.name == self.name:
                return rejection.reason
        return None

    @property
    def warnings(self) -> list[str]:
        return [warning.reason for warning in self.config.warnings]

    @property
    def entry(self):
        """The route's ``RouteEntry`` (its prepared features in phase order)."""
        assert self.rejection is None, f"the Ingress was rejected: {self.rejection}"
        for found in self.table.entries():  # by identity: a regular-expression path need not match itself
            route = found.route
            if (route.ingress.namespace, route.ingress.name, route.host, route.path) == (
                    self.namespace, self.name, self.host, self.path):
                return found
        raise AssertionError("no route matched")

    @property
    def features(self) -> tuple:
        """The feature objects the plugins returned for the route, in phase order."""
        return self.entry.features

    # -- requests -------------------------------------------------------------------------

    def request(
        self,
        method: str = "GET",
        path: str = "/",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        client_ip: str = "192.0.2.10",
        scheme: str = "http",
        host: str | None = None,
    ) -> Outcome:
        """Run the route's request features in phase order as the proxy does.

        A local answer goes through the error-page features (for listed codes) and the
        response features, and the exchange finishes; otherwise the Outcome is ``proxied``
        and ``outcome.response(status, headers)`` plays the backend's answer.
        """
        entry = self.entry
        raw_path, _, query = path.partition("?")
        ex = FakeExchange(
            method=method.encode("ascii"),
            target=path.encode("latin-1"),
            request_uri=path.encode("latin-1"),
            path=raw_path,
            query=query.encode("latin-1"),
            host=host or self.host,
            headers=Headers([(b"host", (host or self.host).encode("ascii"))] + _pairs(headers)),
            peer_ip=client_ip,
            client_ip=client_ip,
            scheme=scheme,
            https=scheme == "https",
            server_port=443 if scheme == "https" else 80,
            route=entry.route,
        )
        entry.upstream.apply_to(ex)
        answer = _request_answer(entry.request_features, ex)
        if answer is not None:
            local = self._finish_response(ex, answer.status, list(answer.headers), answer.body, local=True)
            ex.finish()
            return Outcome(self, ex, local)
        return Outcome(self, ex, None)

    def _finish_response(self, ex: FakeExchange, status: int, headers: list, body: bytes,
                         local: bool = False) -> Response:
        """Error pages (for listed codes) and the response features, as the proxy applies them."""
        entry = self.entry
        if status >= 400 and status in entry.error_codes:
            pages: list = []
            run_error_features(entry.error_features, ex, status, not local, pages.append)
            assert pages, "an error feature's Deferred has not fired (advance the Clock, or fire it first)"
            if pages[0] is not None:
                headers, body = with_page_headers(headers if local else [], pages[0]), pages[0].body
        run_response_features(entry.response_features, ex, status, headers)
        return Response(status, headers, body)


def one_route_objects(host: str, endpoints: Sequence[tuple[str, int]] = (("127.0.0.1", 8080),), *,
                      path: str = "/", path_type: str = "Prefix", namespace: str = "default",
                      name: str = "web", annotations: Mapping[str, str] | None = None) -> list[dict]:
    """API objects for one Ingress routing ``host`` + ``path`` to Service ``web`` (port 80)
    with ``endpoints``: what a manifest for the real server needs."""
    return [*_service(namespace, "web", endpoints), _ingress(namespace, name, host, path, path_type, annotations or {})]


def write_manifest(directory: Path, objects: Sequence[Mapping], name: str = "objects.json") -> Path:
    """Write ``objects`` as one JSON ``List`` manifest into ``directory``."""
    target = directory / name
    target.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))
    return target


def serve_in_memory(directory: Path, objects: Sequence[Mapping], *options: str, reactor=None) -> tuple[Any, Any]:
    """The real server (``twistd ingressd``'s options, the installed plugins) on a
    ``MemoryReactorClock``, serving ``objects`` from a manifest in ``directory``, its HTTP
    port ``tcp:8080``. Returns (service, reactor); connect with
    ``service.http_factory.buildProtocol`` and ``StringTransport``s. Nothing listens for
    real: every port is one of the reactor's ``tcpServers``. ``service.stopService()``
    gives the plugins back the configuration they had before. ``reactor``: a
    ``MemoryReactorClock`` of the caller's (one that ends rounds of events, as
    ``bench/memcost.py``'s), else a new one."""
    from twisted.internet.testing import MemoryReactorClock

    from ingressd.server import build_server
    from ingressd.tap import Options, loaded_plugins, settings_from

    PLUGINS = loaded_plugins()

    write_manifest(directory, objects)
    parsed = Options()
    parsed.parseOptions(["--http", "tcp:8080", "--manifests", str(directory), *options])
    settings = settings_from(parsed)
    for name in ("http", "https", "admin"):
        settings[name] = _through_reactor(settings[name])
    if reactor is None:
        reactor = MemoryReactorClock()
    service = build_server(settings, PLUGINS, reactor)
    if PLUGINS is not None:
        undo = _ConfigurationUndone(PLUGINS)
        _remember_configuration(undo, PLUGINS, settings, reactor)
        undo.setServiceParent(service)
    service.startService()
    reactor.advance(1)  # the file provider's scan and the reloader's coalescing delay
    return service, reactor


def _through_reactor(description: str | None) -> str | None:
    """A plain ``tcp:PORT`` endpoint in Twisted's keyword form, which ``ingressd.proxy.transport.listen``
    hands to Twisted's endpoints and so to the given reactor (a MemoryReactorClock records
    the port); the plain form gets ingressd's own ``Port``, which binds a real socket."""
    from ingressd.proxy.transport import parse_tcp

    parsed = parse_tcp(description) if description else None
    if parsed is None:
        return description
    port, interface, backlog = parsed
    return f"tcp:port={port}:backlog={backlog}" + (f":interface={interface}" if interface else "")


def _service(namespace: str, name: str, endpoints) -> list[dict]:
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
         "spec": {"ports": [{"name": "http", "port": 80}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-1", "namespace": namespace,
                      "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": port} for _, port in endpoints[:1]],
         "endpoints": [{"addresses": [address], "conditions": {"ready": True}} for address, _ in endpoints]},
    ]


def _ingress(namespace, name, host, path, path_type, annotations) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace, "annotations": dict(annotations)},
        "spec": {"ingressClassName": "ingressd", "rules": [{"host": host, "http": {"paths": [
            {"path": path, "pathType": path_type,
             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
    }


def _secret_object(namespace: str, name: str, data: Mapping[str, Any]) -> dict:
    encoded = {
        key: base64.b64encode(value if isinstance(value, bytes) else str(value).encode("utf-8")).decode("ascii")
        for key, value in data.items()
    }
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque", "data": encoded}
