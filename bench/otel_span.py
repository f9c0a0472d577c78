"""Per-request cost of OpenTelemetry tracing on the reactor: the span started, the traceparent
written for the backend, the span ended and queued for the export thread (sampled), or not kept
(unsampled). The export itself runs on its own thread and is not counted here.

Prints microseconds per request; no assertions.
Run: python bench/otel_span.py [requests]
"""

from __future__ import annotations

import sys
import time

from opentelemetry.sdk.trace.export import SpanExportResult

from ingressd.http.headers import Headers
from ingressd.testing import FakeExchange
from ingressd_plugins.opentelemetry import TraceRequests
from ingressd import Tracing, TracingSettings


class _Discard:
    def export(self, batch):
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass


class _Clock:
    seconds = staticmethod(time.time)


def main(requests: int = 50_000) -> None:
    for label, sampler, incoming in (("sampled, new trace", "AlwaysOn", None),
                                     ("sampled, trusted traceparent", "AlwaysOn",
                                      b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                                     ("unsampled (AlwaysOff)", "AlwaysOff", None)):
        settings = TracingSettings(enabled=True, sampler=sampler, max_queue_size=requests + 1,
                                   max_export_batch_size=512, schedule_delay_millis=50)
        feature = TraceRequests(Tracing(settings, exporter=_Discard()), None, "/", "shop.example", True, _Clock())
        pairs = [(b"host", b"shop.example"), (b"user-agent", b"curl/8.5.0")]
        if incoming:
            pairs.append((b"traceparent", incoming))
        exchanges = [FakeExchange(headers=Headers(pairs), version=b"1.1", started=time.time(), status=200)
                     for _ in range(requests)]
        begin = time.perf_counter()
        for exchange in exchanges:
            feature.request(exchange)
            feature.upstream_request(exchange, [(b"host", b"shop.example")])
            exchange.finish()
        elapsed = time.perf_counter() - begin
        print(f"{label:30s} {elapsed / requests * 1e6:6.1f} µs per request")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
