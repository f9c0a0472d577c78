"""Server spans for proxied requests and the W3C trace context sent to the backend.

``Tracing`` is one ``TracingSettings`` made real: an OpenTelemetry SDK TracerProvider (sampler,
``service.name``) whose spans go through a ``BoundedBatchProcessor`` to the OTLP gRPC exporter.
It is built at the first span, not before: ``ingressd check`` and a server whose routes never
trace start no thread and open no connection. The SDK is imported there too, so ingressd runs
without the ``otel`` extra until tracing is asked for (which is then refused at start).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from ingressd.tracing.batch import BoundedBatchProcessor
from ingressd.tracing.settings import MISSING_SDK, TracingSettings, sdk_available

# The exporter logs each failed export (and each retry); the processor reports a failure once.
_EXPORTER_LOGGERS = ("opentelemetry.exporter.otlp.proto.grpc.exporter",
                     "opentelemetry.exporter.otlp.proto.grpc.trace_exporter")


class Tracing:
    """Starts server spans under one ``TracingSettings``; ``close()`` when the settings change."""

    MISSING_SDK = MISSING_SDK  # why tracing cannot be had: the otel extra is not installed
    available = staticmethod(sdk_available)

    def __init__(self, settings: TracingSettings, exporter: Any = None):
        self.settings = settings
        self.exporter = exporter  # a test's in-memory exporter; None: OTLP to the collector
        self._tracer = None
        self._processor: BoundedBatchProcessor | None = None
        self._provider = None
        self._closed = False
        self._open = 0  # spans started and not yet ended

    @property
    def processor(self) -> BoundedBatchProcessor | None:
        return self._processor

    def start_span(self, name: str, headers: Mapping[str, str] | None, attributes: Mapping[str, Any],
                   start_ns: int) -> Any:
        """A SERVER span named ``name``; ``headers`` (``traceparent``, ``tracestate``) are the
        incoming context when trusted (None: a new trace)."""
        tracer = self._tracer or self._build()
        context = self._extract(headers) if headers else self._empty()
        span = tracer.start_span(name, context=context, kind=self._server, attributes=attributes,
                                 start_time=start_ns)
        self._open += 1
        return span

    def end_span(self, span: Any, status: int, end_ns: int) -> None:
        """End ``span`` with the answer's ``status`` (ERROR for a 5xx, as a server span)."""
        span.set_attribute("http.status_code", status)
        if status >= 500:
            span.set_status(self._error)
        span.end(end_ns)
        self._open -= 1
        if self._closed and not self._open and self._processor is not None:
            self._processor.shutdown()

    @staticmethod
    def propagation_headers(span: Any) -> list[tuple[bytes, bytes]]:
        """``traceparent`` (and ``tracestate`` when there is one) for the backend, from ``span``."""
        context = span.get_span_context()
        headers = [(b"traceparent", traceparent(context))]
        state = tracestate(context)
        if state:
            headers.append((b"tracestate", state))
        return headers

    def close(self) -> None:
        """Replaced (the settings changed): once the spans already started have ended, export
        what is queued from the export thread and stop it."""
        self._closed = True
        if not self._open and self._processor is not None:
            self._processor.shutdown()

    @property
    def closed(self) -> bool:
        return self._closed

    def _build(self) -> Any:
        from opentelemetry.context import Context
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import (
            ALWAYS_OFF, ALWAYS_ON, ParentBased, TraceIdRatioBased)
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        # looked up once here, not per request
        self._extract = TraceContextTextMapPropagator().extract
        self._empty = Context
        self._server = SpanKind.SERVER
        self._error = Status(StatusCode.ERROR)

        settings = self.settings
        root = {"AlwaysOn": ALWAYS_ON, "AlwaysOff": ALWAYS_OFF}.get(settings.sampler) \
            or TraceIdRatioBased(settings.sampler_ratio)
        sampler = ParentBased(root) if settings.sampler_parent_based else root
        # shutdown_on_exit=False: no atexit handler per settings change (close() stops the thread)
        provider = TracerProvider(sampler=sampler, resource=Resource.create({"service.name": settings.service_name}),
                                  shutdown_on_exit=False)
        exporter = self.exporter
        if exporter is None and settings.endpoint is not None and not self._closed:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            for name in _EXPORTER_LOGGERS:
                logging.getLogger(name).setLevel(logging.CRITICAL)
            exporter = OTLPSpanExporter(endpoint=f"http://{settings.endpoint}", insecure=True)
        if exporter is not None and not self._closed:
            self._processor = BoundedBatchProcessor(
                exporter, settings.max_queue_size, settings.schedule_delay_millis / 1000.0,
                settings.max_export_batch_size, describe=settings.endpoint or "the exporter")
            provider.add_span_processor(self._processor)
        self._provider = provider
        self._tracer = provider.get_tracer("ingressd")
        return self._tracer


def traceparent(span_context: Any) -> bytes:
    """W3C ``traceparent`` for ``span_context``: version 00, trace id, span id and the sampled flag
    only (01 or 00), as ingress-nginx's module sends it (the SDK also sets trace context level 2's
    "random" flag, which its level 1 parsers need not know)."""
    return b"00-%032x-%016x-%02x" % (span_context.trace_id, span_context.span_id, int(span_context.trace_flags) & 1)


def tracestate(span_context: Any) -> bytes:
    """W3C ``tracestate`` of ``span_context`` (empty when it has none)."""
    state = span_context.trace_state
    return state.to_header().encode("ascii", "replace") if state else b""
