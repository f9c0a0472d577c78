"""A route's weighted backend set, prepared for picking one member per request.

Gateway API backendRefs: each member takes ``weight / total`` of the requests; a weight of 0
is never chosen; when every weight is 0 (or the set is empty) no member is chosen and the
route answers 500. A member whose reference could not be used (``WeightedBackend.backend`` is
None: missing, not permitted) keeps its share, and the requests that fall to it are answered
500 too: ``pick`` returns None for both. Built once per route table; ``pick`` is a bisection. ``WeightedBalancers`` is the set as the
request path uses it: a balancer per member (``RouteEntry.weighted``), and for the members with
filters of their own (a backendRef's ``filters``) the entry their requests run through
(``entries``, set by ``build_table``): the member is then chosen before the route's features run.
"""

from __future__ import annotations

import bisect
import random
from typing import Sequence

from ingressd.config.model import Backend, WeightedBackend


class WeightedChoice:
    """Picks a member of a weighted backend set from a draw in [0, 1)."""

    __slots__ = ("members", "bounds", "total", "positions")

    def __init__(self, backends: Sequence[WeightedBackend]):
        members: list[Backend | None] = []
        bounds: list[int] = []
        positions: list[int] = []
        total = 0
        for position, member in enumerate(backends):
            if member.weight <= 0:
                continue  # never chosen
            total += member.weight
            members.append(member.backend)
            bounds.append(total)
            positions.append(position)
        self.members = tuple(members)
        self.bounds = tuple(bounds)  # cumulative weights: member i takes [bounds[i-1], bounds[i])
        self.total = total
        self.positions = tuple(positions)  # each member's place in ``backends``

    def pick(self, draw: float) -> Backend | None:
        """The member for ``draw`` (``random.random()``), or None: answer 500."""
        if not self.total:
            return None
        return self.members[min(bisect.bisect_right(self.bounds, draw * self.total), len(self.members) - 1)]

    def position(self, draw: float) -> int | None:
        """The place in ``backends`` of the member for ``draw``, or None when no member is chosen."""
        if not self.total:
            return None
        return self.positions[min(bisect.bisect_right(self.bounds, draw * self.total), len(self.members) - 1)]


class WeightedBalancers:
    """A route's weighted set on the request path (``RouteEntry.weighted``): a balancer per member
    (the round-robin over its endpoints, shared by the members naming one backend), one member
    drawn per request (``pick``; None: answer 500). ``draw`` is injected (``random.random``
    by default) so that tests decide."""

    __slots__ = ("choice", "draw", "balancers", "entries")

    def __init__(self, backends: Sequence[WeightedBackend], balancer_for, draw=None):
        balancers: dict = {}
        members = []
        for member in backends:
            if member.backend is None:
                members.append(member)
                continue
            balancer = balancers.get(id(member.backend))
            if balancer is None:
                balancer = balancers[id(member.backend)] = balancer_for(member.backend)
            members.append(WeightedBackend(balancer, member.weight))  # the balancer stands in for the backend
        self.choice = WeightedChoice(members)
        self.draw = draw if draw is not None else random.random
        self.balancers = tuple(member.backend for member in members)  # by place in ``backends``; None: unusable
        # By place in ``backends``: the RouteEntry of a member with filters of its own, else None
        # (``build_table`` sets it); None: no member has filters of its own.
        self.entries: tuple | None = None

    def pick(self):
        """The balancer of the member this request goes to, or None: answer 500."""
        return self.choice.pick(self.draw())

    def pick_with_entry(self) -> tuple:
        """(the member's balancer, the member's own entry or None); (None, None): answer 500."""
        position = self.choice.position(self.draw())
        if position is None:
            return None, None
        return self.balancers[position], self.entries[position] if self.entries is not None else None
