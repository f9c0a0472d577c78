"""How many ingressd replicas share the traffic (``--replicas-hint``), and a local limit's share of it.

Without Redis every replica enforces ``limit-rps``/``limit-rpm``/``limit-connections`` on its own,
so N replicas behind one load balancer admit N times the limit. ``--replicas-hint N`` (file mode,
or any mode) or ``--replicas-hint auto`` (cluster mode: the ready addresses of the EndpointSlices
of the ``--publish-service``, watched, so the count follows scaling and failures live) gives each
replica its share of a limit, ``ceil(limit / count)`` and never below 1 (``plugins/rate_limit.py``
``share``). Rounding up keeps an evenly balanced cluster from refusing traffic the limit admits;
the error is below one request per replica. ``ReplicaCount.count`` is read on the request path.
"""

from __future__ import annotations

from typing import Any, Iterable

AUTO = "auto"
MAX_HINT = 1000


def parse_hint(value: Any) -> int | str | None:
    """``--replicas-hint``: None/"" (off), ``auto``, or a whole number of replicas from 1."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if text == AUTO:
        return AUTO
    if not text.isdigit() or not 1 <= int(text) <= MAX_HINT:
        raise ValueError(f"expected auto or a number of replicas from 1 to {MAX_HINT}, got {value!r}")
    return int(text)


def ready_addresses(slices: Iterable[dict]) -> frozenset[str]:
    """The distinct addresses of the ready endpoints of some EndpointSlices (an endpoint without
    ``conditions.ready`` counts as ready, as Kubernetes documents; one in two slices, once)."""
    found = set()
    for piece in slices:
        for endpoint in piece.get("endpoints") or ():
            if not isinstance(endpoint, dict):
                continue
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            addresses = endpoint.get("addresses") or ()
            if addresses:
                found.add(str(addresses[0]))
    return frozenset(found)


class ReplicaCount:
    """The server's replica count: fixed (``--replicas-hint N``) or observed (``auto``)."""

    def __init__(self, hint: int | str):
        self.auto = hint == AUTO
        self.count = 1 if self.auto else int(hint)
        self.observed: int | None = None  # auto: the last count seen (0 before this replica is ready)

    def observe(self, ready: int) -> None:
        """auto: ``ready`` replicas are serving now (fewer than one counts as one: this one)."""
        self.observed = ready
        self.count = max(1, ready)
