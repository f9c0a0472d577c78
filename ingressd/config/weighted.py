"""A route's weighted backend set, prepared for picking one member per request.

Gateway API backendRefs: each member takes ``weight / total`` of the requests; a weight of 0
is never chosen; when every weight is 0 (or the set is empty) no member is chosen and the
route answers 500. A member whose reference could not be used (``WeightedBackend.backend`` is
None: missing, not permitted) keeps its share, and the requests that fall to it are answered
500 too: ``pick`` returns None for both. Built once per route table; ``pick`` is a bisection.
"""

from __future__ import annotations

import bisect
from typing import Sequence

from ingressd.config.model import Backend, WeightedBackend


class WeightedChoice:
    """Picks a member of a weighted backend set from a draw in [0, 1)."""

    __slots__ = ("members", "bounds", "total")

    def __init__(self, backends: Sequence[WeightedBackend]):
        members: list[Backend | None] = []
        bounds: list[int] = []
        total = 0
        for member in backends:
            if member.weight <= 0:
                continue  # never chosen
            total += member.weight
            members.append(member.backend)
            bounds.append(total)
        self.members = tuple(members)
        self.bounds = tuple(bounds)  # cumulative weights: member i takes [bounds[i-1], bounds[i])
        self.total = total

    def pick(self, draw: float) -> Backend | None:
        """The member for ``draw`` (``random.random()``), or None: answer 500."""
        if not self.total:
            return None
        return self.members[min(bisect.bisect_right(self.bounds, draw * self.total), len(self.members) - 1)]
