"""How much the interpreter's traced memory grows over many calls of a C accelerator: the shared
measure of the accelerators' reference-counting tests (a leaked object a call shows as
megabytes over the measured rounds)."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Callable


def traced_growth(rounds: Callable[[int], None], warm: int = 50, settle: int = 50, measured: int = 1000,
                  attempts: int = 3) -> int:
    """Bytes traced memory grew over ``rounds(measured)``, after ``rounds(warm)`` untraced (caches,
    interned objects) and ``rounds(settle)`` traced: the least of ``attempts`` measures.

    tracemalloc counts every thread's allocations, so a thread another test left running (a
    log writer, a reactor's thread pool) can add its own bytes to one measure; a leak in the
    calls measured grows every measure, so the least of a few is the calls' own growth."""
    rounds(warm)
    return min(_traced_once(rounds, settle, measured) for _ in range(attempts))


def _traced_once(rounds: Callable[[int], None], settle: int, measured: int) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        rounds(settle)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        rounds(measured)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before
