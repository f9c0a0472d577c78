"""An HTTPRoute rule's ``timeouts`` → ``model.Timeouts``, validated as the CRD does.

A Gateway API Duration (GEP-2257) is one to four numbers of one to five digits, each with a unit
``h``, ``m``, ``s`` or ``ms`` (``1h30m``, ``500ms``, ``0s``); ``backendRequest`` longer than a
non-zero ``request`` is invalid (the CRD's rule). The API server refuses such an object; in file
mode nothing does, so the rule is left out here (``route_filters.Invalid``), never served with a
limit other than the one written.
"""

from __future__ import annotations

import re
from typing import Mapping

from ingressd.config.gateway.route_filters import Invalid
from ingressd.config.model import Timeouts

_DURATION = re.compile(r"(?:[0-9]{1,5}(?:h|ms|m|s)){1,4}")
_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: object) -> float:
    """A Gateway API Duration in seconds; ``Invalid`` if it is not one."""
    if not isinstance(value, str) or not _DURATION.fullmatch(value):
        raise Invalid(f"{value!r} is not a Gateway API duration (e.g. 10s, 500ms, 1m30s)")
    return sum(int(number) * _SECONDS[unit] for number, unit in _PART.findall(value))


def parse(raw: object) -> Timeouts | None:
    """A rule's ``timeouts`` stanza (None when it has none)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise Invalid("timeouts must be an object")
    request = parse_duration(raw["request"]) if raw.get("request") is not None else None
    backend = parse_duration(raw["backendRequest"]) if raw.get("backendRequest") is not None else None
    if request is None and backend is None:
        return None
    if request and backend is not None and backend > request:
        raise Invalid(f"timeouts: backendRequest {raw['backendRequest']} cannot be longer than request "
                      f"{raw['request']}")
    return Timeouts(request, backend)
