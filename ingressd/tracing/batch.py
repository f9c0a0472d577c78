"""A bounded queue of finished spans, exported in batches from one thread of its own.

The request path only appends to a deque (``on_end``); a full queue drops the new span and
counts it (``dropped``), never blocks. The worker thread wakes every ``delay`` seconds, or
as soon as a batch is full, and hands at most ``batch_size`` spans per call to the exporter,
whose gRPC call blocks that thread only. This stands in for the SDK's BatchSpanProcessor,
which drops the oldest span silently (one warning line per span) and counts nothing
ingressd can report.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable

from twisted.python import log

_EXPORT_SUCCESS = 0  # opentelemetry.sdk.trace.export.SpanExportResult.SUCCESS's value


class BoundedBatchProcessor:
    """An OpenTelemetry ``SpanProcessor``: sampled spans go to ``exporter`` in batches."""

    def __init__(self, exporter: Any, max_queue_size: int, delay: float, batch_size: int,
                 describe: str = "", report: Callable[[str], None] | None = None):
        self._exporter = exporter
        self._max = max_queue_size
        self._delay = delay
        self._batch = max(1, min(batch_size, max_queue_size))
        self._describe = describe
        self._report = report or (lambda text: log.msg(text))
        self._queue: collections.deque = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._failing = False
        self.dropped = 0  # spans not queued: the queue was full
        self.exported = 0  # spans the collector took
        self.failed = 0  # spans an export failed for
        self._thread = threading.Thread(target=self._run, name="ingressd-otel-export", daemon=True)
        self._thread.start()

    # -- SpanProcessor ---------------------------------------------------------------------

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def _on_ending(self, span: Any) -> None:  # the SDK calls it on processors that have it
        pass

    def on_end(self, span: Any) -> None:
        if self._stopping or not span.context.trace_flags.sampled:
            return
        if len(self._queue) >= self._max:
            self.dropped += 1
            if self.dropped == 1 or (self.dropped & (self.dropped - 1)) == 0:  # 1, 2, 4, 8…: bounded log
                self._report(f"ingressd: OpenTelemetry span queue full ({self._max}); {self.dropped} span(s) "
                             f"dropped so far")
            return
        self._queue.append(span)
        if len(self._queue) >= self._batch:
            self._wake.set()

    def shutdown(self) -> None:
        """Stop taking spans, export what is queued (bounded by the exporter's timeout), stop."""
        self._stopping = True
        self._wake.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._wake.set()
        return True

    # -- the export thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self._delay)
            self._wake.clear()
            while self._queue:
                self._export_batch()
                if not self._stopping and len(self._queue) < self._batch:
                    break  # the rest waits for the next round, as the SDK's schedule
            if self._stopping:
                while self._queue:
                    self._export_batch()
                try:
                    self._exporter.shutdown()
                except Exception:
                    pass
                return

    def _export_batch(self) -> None:
        batch = []
        while self._queue and len(batch) < self._batch:
            batch.append(self._queue.popleft())
        try:
            result = self._exporter.export(batch)
            ok = getattr(result, "value", result) == _EXPORT_SUCCESS
        except Exception:
            ok = False
        if ok:
            self.exported += len(batch)
            if self._failing:
                self._failing = False
                self._report(f"ingressd: OpenTelemetry spans are exported to {self._describe} again")
            return
        self.failed += len(batch)
        if not self._failing:  # one line when exporting starts failing, one when it works again
            self._failing = True
            self._report(f"ingressd: OpenTelemetry spans could not be exported to {self._describe}; "
                         f"{len(batch)} span(s) lost")
