"""ingressd.tracing.batch: a bounded span queue exported in batches from its own thread; a full
queue drops (and counts) new spans, a failing export is reported once, not per span."""

from __future__ import annotations

import threading
import time

from ingressd.tracing.batch import BoundedBatchProcessor


class _Flags:
    sampled = True


class _Context:
    trace_flags = _Flags()


class _Span:
    context = _Context()


class _Exporter:
    def __init__(self, ok=True, gate=None):
        self.batches = []
        self.ok = ok
        self.gate = gate
        self.shut = False

    def export(self, batch):
        if self.gate is not None:
            self.gate.wait(20)
        self.batches.append(len(batch))
        return 0 if self.ok else 1

    def shutdown(self):
        self.shut = True


def wait(condition):
    deadline = time.monotonic() + 20
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


def test_batches_of_at_most_the_batch_size():
    exporter = _Exporter()
    processor = BoundedBatchProcessor(exporter, 100, 0.02, 3)
    for _ in range(7):
        processor.on_end(_Span())
    wait(lambda: sum(exporter.batches) == 7)
    assert max(exporter.batches) <= 3 and processor.exported == 7 and processor.dropped == 0
    processor.shutdown()
    processor.join(20)
    assert exporter.shut


def test_a_full_queue_drops_new_spans_and_counts_them():
    gate = threading.Event()  # the exporter is stuck: nothing leaves the queue
    exporter = _Exporter(gate=gate)
    reports = []
    processor = BoundedBatchProcessor(exporter, 4, 0.01, 1, report=reports.append)
    processor.on_end(_Span())
    wait(lambda: not processor._queue)  # the first is being exported (stuck)
    for _ in range(10):
        processor.on_end(_Span())
    assert processor.dropped == 6 and len(processor._queue) == 4
    assert len(reports) == 3  # at 1, 2 and 4 drops: bounded
    gate.set()
    wait(lambda: processor.exported == 5)
    processor.shutdown()


def test_a_failing_collector_is_reported_once_and_its_recovery_once():
    exporter = _Exporter(ok=False)
    reports = []
    processor = BoundedBatchProcessor(exporter, 100, 0.01, 1, describe="127.0.0.1:4317", report=reports.append)
    for _ in range(5):
        processor.on_end(_Span())
    wait(lambda: processor.failed == 5)
    assert len(reports) == 1 and "could not be exported to 127.0.0.1:4317" in reports[0]
    exporter.ok = True
    processor.on_end(_Span())
    wait(lambda: processor.exported == 1)
    assert len(reports) == 2 and "again" in reports[1]
    processor.shutdown()


def test_unsampled_spans_are_not_queued():
    class Unsampled(_Span):
        class context:
            class trace_flags:
                sampled = False

    processor = BoundedBatchProcessor(_Exporter(), 10, 10, 5)
    processor.on_end(Unsampled())
    assert not processor._queue
    processor.shutdown()
