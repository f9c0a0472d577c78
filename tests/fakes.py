"""In-memory stand-ins for what the core hands plugins: an exchange, routes, annotation values.

``FakeExchange`` offers the request-time interface the proxy gives route features (with
the core's real ``Headers``);
``annotation_values`` parses raw annotation strings through a plugin's own ``Annotation``
declarations the way the core does when it builds routes; ``run_request`` and
``run_response`` call a route's features in phase order, as the proxy does.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))


def _import_builtin_plugins() -> None:
    """Make every module of the source tree's ``plugins/`` importable as ``ingressd_plugins``.

    Not installed: load the package from the source tree. Installed in editable "strict"
    mode (a link tree made at install time): also search the source directory, so plugin
    modules added since the install are found too.
    """
    source = _ROOT / "plugins"
    try:
        import ingressd_plugins
    except ImportError:
        spec = importlib.util.spec_from_file_location(
            "ingressd_plugins", source / "__init__.py", submodule_search_locations=[str(source)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["ingressd_plugins"] = module
        spec.loader.exec_module(module)
        return
    if str(source) not in ingressd_plugins.__path__:
        ingressd_plugins.__path__.append(str(source))


_import_builtin_plugins()

from ingressd.features import BuildContext, LocalResponse, check_plain_text  # noqa: E402
from ingressd.headers import Headers  # noqa: E402
from ingressd.model import Backend, Endpoint, ObjectRef, Route, SecretData  # noqa: E402


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
    method: bytes = b"GET"
    target: bytes = b"/"
    path: str = "/"
    query: bytes = b""
    host: str = "example.com"
    headers: Headers = field(default_factory=Headers)
    peer_ip: str = "192.0.2.10"
    client_ip: str = "192.0.2.10"
    scheme: str = "http"
    server_port: int = 80
    request_id: str = "0123456789abcdef"
    route: Route = field(default_factory=make_route)
    version: bytes = b"HTTP/1.1"
    connect_timeout: float | None = None
    read_timeout: float | None = None
    send_timeout: float | None = None
    max_body_size: int | None = None
    finish_callbacks: list[Callable[[], None]] = field(default_factory=list)
    finished: bool = False

    def on_finish(self, callback: Callable[[], None]) -> None:
        self.finish_callbacks.append(callback)

    def finish(self) -> None:
        """End the exchange as the proxy does: each callback once."""
        assert not self.finished, "an exchange finishes once"
        self.finished = True
        for callback in self.finish_callbacks:
            callback()


def exchange(headers: Mapping[str, str] | Iterable[tuple[str, str]] = (), **kwargs: Any) -> FakeExchange:
    """A FakeExchange with headers given as text, e.g. ``exchange({"origin": "https://a"})``."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in items]
    return FakeExchange(headers=Headers(pairs), **kwargs)


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
            values[name] = annotation.parse(check_plain_text(raw[name]))
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


def features_for(plugin: Any, raw: Mapping[str, str], route: Route | None = None, context: BuildContext | None = None, resolved=None) -> list:
    """What ``plugin.ingressd_route_features`` returns for a route with these annotations, as a list."""
    values = annotation_values(plugin, raw, resolved)
    result = plugin.ingressd_route_features(route=route or make_route(), values=values, context=context or make_context())
    if result is None:
        return []
    if isinstance(result, (list, tuple)):
        return list(result)
    return [result]


def run_request(features: Iterable[Any], ex: FakeExchange) -> LocalResponse | None:
    """Call each feature's ``request`` in phase order; the first answer stops the chain.

    Deferreds must already have fired (unit tests run without a reactor).
    """
    from twisted.internet.defer import Deferred

    for feature in sorted(features, key=lambda f: f.phase):
        request = getattr(feature, "request", None)
        if request is None:
            continue
        answer = request(ex)
        if isinstance(answer, Deferred):
            results: list = []
            answer.addBoth(results.append)
            assert results, "the feature's Deferred has not fired"
            answer = results[0]
        if answer is not None:
            assert isinstance(answer, LocalResponse), answer
            return answer
    return None


def run_response(features: Iterable[Any], ex: FakeExchange, status: int, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    for feature in sorted(features, key=lambda f: f.phase):
        response = getattr(feature, "response", None)
        if response is not None:
            response(ex, status, headers)
    return headers


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """Every value of response header ``name`` in a list of pairs."""
    return [value for key, value in headers if key == name]


def secret(namespace: str, name: str, type_: str = "Opaque", **data: bytes) -> SecretData:
    return SecretData(ObjectRef("Secret", namespace, name), type_, tuple(sorted(data.items())))
