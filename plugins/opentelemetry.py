"""OpenTelemetry tracing: a SERVER span per request of a traced route, exported over OTLP/gRPC, and
the W3C trace context sent to the backend, as ingress-nginx's OpenTelemetry module does.

Which routes are traced (ingress-nginx's ``buildOpentelemetryForLocation``): every route when
the ConfigMap says ``enable-opentelemetry: "true"`` (or ``--enable-opentelemetry true``), except
an Ingress's saying ``enable-opentelemetry: "false"``; only the Ingresses saying ``"true"``
otherwise. An Ingress's ``opentelemetry-trust-incoming-span`` and ``opentelemetry-operation-name``
count only beside its ``enable-opentelemetry: "true"`` (ingress-nginx's parser reads them only
then); the operation name is letters, digits, ``_`` and ``-`` (its validator), the ConfigMap's may
use nginx variables (``HTTP $request_method $uri``).

Per request: the span starts before any other feature runs (nginx's rewrite phase) as a child of
the client's ``traceparent`` when incoming spans are trusted, in a new trace otherwise; the
backend is sent ``traceparent`` (the same trace id, this span's id, the sampling decision) and
``tracestate``, replacing the client's (``opentelemetry_propagate``). The span is named by the
operation name or else the route's path (nginx's location), has the module's attributes
(``http.method``, ``http.flavor``, ``http.target``, ``http.host``, ``http.server_name``,
``http.scheme``, ``http.status_code``) and ends when the exchange is over, with status ERROR
for a 5xx answer. The sampler (``otel-sampler``, ``otel-sampler-ratio``,
``otel-sampler-parent-based``) decides what is exported; an unsampled span is still propagated.
Export happens off the reactor (``ingressd.tracing.batch``); a full queue drops spans and counts
them. A settings change (a ConfigMap edit) starts a new exporter and lets the old one finish.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ingressd import Annotation, AnnotationError, Option, Phase, Tracing, TracingSettings, hookimpl, parse_bool

from ._auth_variables import parse_template

STATE = "opentelemetry"  # this plugin's name in BuildContext.plugin_state
_OPERATION_NAME = re.compile(r"[A-Za-z0-9_\-]*")  # ingress-nginx's regexOperationName
_W3C = (b"traceparent", b"tracestate")
_SAMPLERS = ("AlwaysOn", "AlwaysOff", "TraceIdRatioBased")  # otel-sampler's values


def _flavor(version: bytes) -> str:
    """nginx's http.flavor: 1.0, 1.1 or 2.0."""
    version = version.removeprefix(b"HTTP/")
    return "2.0" if version == b"2" else version.decode("latin-1")


def _parse_enable_annotation(text: str) -> bool:
    value = parse_bool(text)
    if value and not Tracing.available():
        raise AnnotationError(Tracing.MISSING_SDK)
    return value


def _parse_operation_name(text: str) -> str:
    if not _OPERATION_NAME.fullmatch(text):
        raise AnnotationError(f"{text!r} is not a valid operation name (letters, digits, _ and -)")
    return text


def _parse_configmap_operation_name(text: Any) -> str:
    value = str(text)
    if len(value) > 256 or any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError(f"expected a name without control characters, at most 256 long, got {text!r}")
    parse_template(value, "opentelemetry-operation-name: ")  # an unknown variable refuses it now
    return value


# -- the options' coerce functions: one value each, as ingress-nginx's ConfigMap reads it ----------


def _parse_switch(text: Any) -> bool:
    return text if isinstance(text, bool) else parse_bool(str(text).strip())


def _parse_enable(text: Any) -> bool:
    """``enable-opentelemetry``: a switch; true is refused when the SDK is not installed."""
    value = _parse_switch(text)
    if value and not Tracing.available():
        raise ValueError(Tracing.MISSING_SDK)
    return value


def _parse_port(text: Any) -> int:
    value = str(text).strip()
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ValueError(f"expected a port number from 1 to 65535, got {text!r}")
    return int(value)


def _parse_count(text: Any) -> int:
    value = str(text).strip()
    if not value.isdigit() or int(value) < 1 or int(value) > 2**31 - 1:
        raise ValueError(f"expected a whole number of at least 1, got {text!r}")
    return int(value)


def _parse_sampler(text: Any) -> str:
    value = str(text).strip()
    if value not in _SAMPLERS:
        raise ValueError(f"expected one of {', '.join(_SAMPLERS)}, got {text!r}")
    return value


def _parse_ratio(text: Any) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValueError(f"expected a number from 0 to 1, got {text!r}") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"expected a number from 0 to 1, got {text!r}")
    return value


def _parse_host(text: Any) -> str:
    value = str(text).strip()
    if any(char.isspace() or char in "/?#@" for char in value) or len(value) > 253:
        raise ValueError(f"expected a host name or address (no scheme, port or path), got {text!r}")
    return value


def _parse_service_name(text: Any) -> str:
    value = str(text).strip()
    if len(value) > 255 or any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError(f"expected a name without control characters, at most 255 long, got {text!r}")
    return value


@hookimpl
def ingressd_annotations():
    return [
        Annotation("enable-opentelemetry", _parse_enable_annotation, None,
                   "traces the Ingress's requests (true) or not (false), whatever the ConfigMap says"),
        Annotation("opentelemetry-trust-incoming-span", parse_bool, None,
                   "with enable-opentelemetry true: the client's traceparent is the span's parent"),
        Annotation("opentelemetry-operation-name", _parse_operation_name, None,
                   "with enable-opentelemetry true: the span's name"),
    ]


@hookimpl
def ingressd_options():
    return [
        Option("enable-opentelemetry", False, "trace every route with OpenTelemetry (true/false; ConfigMap key "
               "enable-opentelemetry)", _parse_enable),
        Option("opentelemetry-trust-incoming-span", True, "a client's traceparent is the parent of ingressd's span "
               "(true/false)", _parse_switch),
        Option("opentelemetry-operation-name", "", "the span name (nginx variables allowed); empty: the route's "
               "path", _parse_configmap_operation_name),
        Option("otlp-collector-host", "", "the OTLP/gRPC collector's host (empty: spans are not exported)",
               _parse_host),
        Option("otlp-collector-port", 4317, "the OTLP/gRPC collector's port", _parse_port),
        Option("otel-service-name", "nginx", "the service.name of ingressd's spans", _parse_service_name),
        Option("otel-sampler", "AlwaysOn", "AlwaysOn, AlwaysOff or TraceIdRatioBased", _parse_sampler),
        Option("otel-sampler-ratio", 0.01, "the share of traces TraceIdRatioBased samples (0 to 1)", _parse_ratio),
        Option("otel-sampler-parent-based", True, "a sampled (unsampled) parent span decides (true/false)",
               _parse_switch),
        Option("otel-max-queuesize", 2048, "spans waiting for export; more are dropped", _parse_count),
        Option("otel-schedule-delay-millis", 5000, "milliseconds between two exports", _parse_count),
        Option("otel-max-export-batch-size", 512, "spans per export (at most otel-max-queuesize)", _parse_count),
    ]


class TraceRequests:
    """Starts the request's span, sends its context to the backend, ends it with the answer."""

    phase = Phase.REWRITE - 50  # before any feature may answer: nginx starts the span in its rewrite phase

    def __init__(self, tracing: Any, operation: Any, location: str, server_name: str, trust: bool, clock: Any):
        self._tracing = tracing
        self._operation = operation  # a Template (nginx variables) or None: ``location``
        self._location = location
        self._server_name = server_name
        self._trust = trust
        self._clock = clock
        self._spans: dict[int, Any] = {}  # id(exchange) → its span, until the exchange is over

    def request(self, exchange: Any) -> None:
        incoming = None
        if self._trust:
            incoming = {name.decode("latin-1"): value.decode("latin-1") for name in _W3C
                        if (value := exchange.headers.get(name)) is not None}
        attributes = {
            "http.method": exchange.method.decode("latin-1"),
            "http.flavor": _flavor(exchange.version),
            "http.target": exchange.request_uri.decode("latin-1"),
            "http.host": (exchange.headers.get(b"host") or b"").decode("latin-1"),
            "http.server_name": self._server_name,
            "http.scheme": "https" if exchange.https else "http",
        }
        span = self._tracing.start_span(self._name(exchange), incoming, attributes, int(exchange.started * 1e9))
        key = id(exchange)
        self._spans[key] = span
        exchange.on_finish(lambda: self._end(key, exchange))
        return None

    def upstream_request(self, exchange: Any, headers: list) -> None:
        span = self._spans.get(id(exchange))
        if span is None:
            return
        headers[:] = [pair for pair in headers if pair[0] not in _W3C]
        headers.extend(Tracing.propagation_headers(span))

    def _name(self, exchange: Any) -> str:
        if self._operation is None:
            return self._location
        return self._operation.expand(exchange).decode("latin-1")

    def _end(self, key: int, exchange: Any) -> None:
        span = self._spans.pop(key, None)
        if span is None:
            return
        status = exchange.status or 499  # the client left before an answer: nginx logs 499
        self._tracing.end_span(span, status, int(self._clock.seconds() * 1e9))


def _tracing(context: Any, settings: TracingSettings) -> Any:
    """The server's ``Tracing`` for ``settings``: the same object while they do not change."""
    state = context.plugin_state(STATE)
    current = state.get("tracing")
    if current is None or current.settings != settings or current.exporter is not state.get("exporter"):
        if current is not None:
            current.close()
        current = state["tracing"] = Tracing(settings, exporter=state.get("exporter"))
    return current


def _operation(context: Any, text: str) -> Any:
    if not text:
        return None
    templates = context.plugin_state(STATE).setdefault("templates", {})
    if text not in templates:
        templates.clear()  # one ConfigMap value at a time
        templates[text] = parse_template(text, "opentelemetry-operation-name: ")
    return templates[text]


@hookimpl
def ingressd_route_features(route, values, context):
    if context is None:
        return None
    settings = TracingSettings.from_settings(context.settings)
    enabled = values.get("enable-opentelemetry")  # None: the Ingress does not say
    if not (enabled is True or (settings.enabled and enabled is None)):
        return None
    trust, operation = settings.trust_incoming_span, _operation(context, settings.operation_name)
    if enabled is True:  # its other annotations count only beside enable-opentelemetry: "true"
        if values.get("opentelemetry-trust-incoming-span") is not None:
            trust = values["opentelemetry-trust-incoming-span"]
        if values.get("opentelemetry-operation-name"):
            operation = parse_template(values["opentelemetry-operation-name"])
    if not Tracing.available():
        raise AnnotationError(Tracing.MISSING_SDK)
    return TraceRequests(_tracing(context, settings), operation, route.path or "/", route.host or "_", trust,
                         context.reactor)
