"""Where two sequences differ, by identity: what a change to a configuration touches.

A change to one Ingress leaves every other Ingress's routes (and route table entries) the very
same objects in the same order, so the previous and the new sequence differ in one window. Its
edges are found by ``operator.is_not`` over the two, from the front and from the back, each
stopping at the first difference: pointers compared at C speed, no element read (at 30,000
routes a walk reading each is several ms).

The C accelerator ``ingressd.config._window`` (``_window.c``) is the same function for lists and
tuples, a pointer comparison an element where ``window_py`` calls ``operator.is_not`` (~60 ns an
element: ~2 ms a walk of 30,000 routes, a few walks a change); ``window`` is it when built.
"""

from __future__ import annotations

import operator
from itertools import compress, count
from typing import Sequence


def window_py(old: Sequence, new: Sequence) -> tuple[int, int, int]:
    """(start, old_end, new_end): ``old[:start]`` is ``new[:start]`` and ``old[old_end:]`` is
    ``new[new_end:]``, element by element, by identity, each as long as can be (the beginning
    first); what differs is ``old[start:old_end]`` against ``new[start:new_end]``."""
    if old is new:
        return len(old), len(old), len(new)
    shorter = min(len(old), len(new))
    # The first index where they differ: C iterators only, stopping there (no list of results).
    start = next(compress(count(), map(operator.is_not, old, new)), shorter)
    tail = next(compress(count(), map(operator.is_not, reversed(old), reversed(new))), shorter)
    tail = min(tail, shorter - start)  # the window starts at ``start`` in both
    return start, len(old) - tail, len(new) - tail


try:
    from ingressd.config._window import window as _window_c
except ImportError:  # not built: PyPy, no compiler, INGRESSD_NO_ACCEL=1
    _window_c = None

ACCELERATED = _window_c is not None


def window(old: Sequence, new: Sequence) -> tuple[int, int, int]:
    """``window_py``'s answer; by the C twin for lists and tuples when it is built."""
    if _window_c is not None and type(old) in _FAST and type(new) in _FAST:
        return _window_c(old, new)
    return window_py(old, new)


_FAST = (tuple, list)
