"""Where two sequences differ, by identity: what a change to a configuration touches.

A change to one Ingress leaves every other Ingress's routes (and route table entries) the very
same objects in the same order, so the previous and the new sequence differ in one window. Its
edges are found by ``operator.is_`` over the two, from the front and from the back: pointers
compared at C speed, no element read (at 30,000 routes a walk reading each is several ms).
"""

from __future__ import annotations

import operator
from typing import Sequence


def window(old: Sequence, new: Sequence) -> tuple[int, int, int]:
    """(start, old_end, new_end): ``old[:start]`` is ``new[:start]`` and ``old[old_end:]`` is
    ``new[new_end:]``, element by element, by identity, each as long as can be (the beginning
    first); what differs is ``old[start:old_end]`` against ``new[start:new_end]``."""
    if old is new:
        return len(old), len(old), len(new)
    same = list(map(operator.is_, old, new))  # as long as the shorter
    start = same.index(False) if False in same else len(same)
    back = list(map(operator.is_, reversed(old), reversed(new)))
    tail = back.index(False) if False in back else len(back)
    tail = min(tail, len(same) - start)  # the window starts at ``start`` in both
    return start, len(old) - tail, len(new) - tail
