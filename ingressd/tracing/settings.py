"""ingress-nginx's tracing keys (``enable-opentelemetry``, ``otlp-collector-*``, ``otel-*``) as one
immutable ``TracingSettings``: parsed and checked once, when the options or a ConfigMap are read.

The keys and their defaults are ingress-nginx's (internal/ingress/controller/config/config.go);
ingress-nginx writes them into the OpenTelemetry module's TOML file, ingressd reads them directly.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Mapping

MISSING_SDK = ("OpenTelemetry tracing needs the opentelemetry-sdk and opentelemetry-exporter-otlp-proto-grpc "
               "packages: install ingressd[otel]")


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """The server-wide tracing configuration (ConfigMap keys, or the options of the same names)."""

    enabled: bool = False  # enable-opentelemetry: every route, unless its Ingress says false
    trust_incoming_span: bool = True  # opentelemetry-trust-incoming-span
    operation_name: str = ""  # opentelemetry-operation-name; "" = the route's path (nginx's location name)
    collector_host: str = ""  # otlp-collector-host; "" = nothing is exported
    collector_port: int = 4317  # otlp-collector-port: OTLP over gRPC, in clear
    service_name: str = "nginx"  # otel-service-name: the resource's service.name
    sampler: str = "AlwaysOn"  # otel-sampler
    sampler_ratio: float = 0.01  # otel-sampler-ratio (TraceIdRatioBased)
    sampler_parent_based: bool = True  # otel-sampler-parent-based: a sampled parent is followed
    max_queue_size: int = 2048  # otel-max-queuesize: spans waiting; more are dropped (counted)
    schedule_delay_millis: int = 5000  # otel-schedule-delay-millis: between two exports
    max_export_batch_size: int = 512  # otel-max-export-batch-size: spans per export

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "TracingSettings":
        """The settings the server runs with (options by name, dashes or underscores), checked
        together; ValueError says what is wrong (a ConfigMap with it is refused)."""
        def get(name: str, default: Any) -> Any:
            value = settings.get(name.replace("-", "_"), settings.get(name))
            return default if value is None else value

        result = cls(
            enabled=bool(get("enable-opentelemetry", False)),
            trust_incoming_span=bool(get("opentelemetry-trust-incoming-span", True)),
            operation_name=str(get("opentelemetry-operation-name", "")),
            collector_host=str(get("otlp-collector-host", "")),
            collector_port=int(get("otlp-collector-port", 4317)),
            service_name=str(get("otel-service-name", "nginx")),
            sampler=str(get("otel-sampler", "AlwaysOn")),
            sampler_ratio=float(get("otel-sampler-ratio", 0.01)),
            sampler_parent_based=bool(get("otel-sampler-parent-based", True)),
            max_queue_size=int(get("otel-max-queuesize", 2048)),
            schedule_delay_millis=int(get("otel-schedule-delay-millis", 5000)),
            max_export_batch_size=int(get("otel-max-export-batch-size", 512)),
        )
        if result.max_export_batch_size > result.max_queue_size:
            raise ValueError(f"otel-max-export-batch-size ({result.max_export_batch_size}) must be at most "
                             f"otel-max-queuesize ({result.max_queue_size})")
        return result

    @property
    def endpoint(self) -> str | None:
        """The collector's gRPC address (``host:port``), or None when no host is set."""
        if not self.collector_host:
            return None
        host = self.collector_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 address
        return f"{host}:{self.collector_port}"


def check_settings(settings: Mapping[str, Any]) -> TracingSettings:
    """``TracingSettings.from_settings``: a check the ConfigMap reader runs with the other settings."""
    return TracingSettings.from_settings(settings)


def sdk_available() -> bool:
    """Whether the OpenTelemetry SDK and its OTLP gRPC exporter are installed."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in (
            "opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"))
    except (ImportError, ValueError):
        return False
