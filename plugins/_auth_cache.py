"""The external-authentication answer cache (``auth-cache-key``, ``auth-cache-duration``).

As ingress-nginx's ``proxy_cache auth_cache`` in the auth location: an answer is kept per key
(the route's host, path and path type, and the expanded ``auth-cache-key``: nothing is shared
between users unless the key says so) for as long as ``proxy_cache_valid`` gives its status.
Like nginx's cache, answers that set a cookie, say ``Cache-Control: no-store``, ``no-cache`` or
``private``, or ``max-age=0`` are not kept, ``max-age=N`` wins over the configured time, and only
GET and HEAD sub-requests are cached (``proxy_cache_methods``). ingressd also keeps no answer
with a ``Vary`` header (nginx would keep one per variant).

The cache is bounded in entries and bytes (least recently used out first) and lives in the
server's plugin state, so it outlives route rebuilds and two servers share nothing.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

from ingressd import AnnotationError

DEFAULT_DURATION = "200 202 401 5m"  # ingress-nginx's DefaultCacheDuration
MAX_ENTRIES = 10000
MAX_BYTES = 16 * 1024 * 1024
_CODE = re.compile(r"[0-9]{3}")
_TIME = re.compile(r"([0-9]+)(ms|s|m|h|d|w|M|y)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400, "y": 365 * 86400}
_ALLOWED = re.compile(r"[/\-._~a-zA-Z0-9:, ]*")  # ingress-nginx's ExtendedCharsRegex
_MAX_AGE = re.compile(rb"(?:^|[\s,])max-age\s*=\s*\"?([0-9]+)", re.IGNORECASE)


def parse_durations(text: str) -> tuple[tuple[frozenset[int] | None, float], ...]:
    """``auth-cache-duration``: comma-separated ``[code …] time`` (``200 202 401 5m``, ``any 1m``,
    ``30s``: nginx's 200, 301 and 302) → ((codes or None for any, seconds), …)."""
    if not _ALLOWED.fullmatch(text):
        raise AnnotationError(f"{text!r} may only hold status codes and times such as 200 202 401 5m")
    result = []
    for item in text.split(","):
        words = item.split()
        if not words:
            continue
        *codes, time = words
        found = _TIME.fullmatch(time)
        if found is None:
            raise AnnotationError(f"invalid cache duration: {item.strip()!r} (expected status codes, then a time "
                                  "such as 5m)")
        seconds = int(found.group(1)) * _UNITS[found.group(2)]
        if codes == ["any"]:
            result.append((None, seconds))
            continue
        for code in codes:
            if not _CODE.fullmatch(code) or not 100 <= int(code) <= 599:
                raise AnnotationError(f"invalid cache duration: {item.strip()!r} ({code!r} is not a status code)")
        result.append((frozenset(int(code) for code in codes) or frozenset((200, 301, 302)), seconds))
    if not result:
        return parse_durations(DEFAULT_DURATION)
    return tuple(result)


def lifetime(durations, status: int, headers) -> float:
    """How long an answer may be kept (0: not at all), nginx's rules as above."""
    seconds = 0.0
    for codes, time in durations:
        if codes is None or status in codes:
            seconds = time
            break
    if not seconds:
        return 0.0
    for name, value in headers:
        if name in (b"set-cookie", b"vary"):
            return 0.0
        if name == b"cache-control":
            lowered = value.lower()
            if b"no-store" in lowered or b"no-cache" in lowered or b"private" in lowered:
                return 0.0
            found = _MAX_AGE.search(value)
            if found is not None:
                seconds = float(int(found.group(1)))
                if not seconds:
                    return 0.0
    return seconds


class AuthCache:
    """Answers by key, each until its time is up; at most ``max_entries`` and about
    ``max_bytes`` kept, the least recently used dropped first."""

    def __init__(self, clock: Any, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES):
        self.clock = clock
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[bytes, tuple[float, Any, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> Any:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        expires, answer, size = found
        if expires <= self.clock.seconds():
            del self._entries[key]
            self.size -= size
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return answer

    def put(self, key: bytes, answer: Any, seconds: float) -> None:
        size = len(key) + 64 + sum(len(name) + len(value) + 16 for name, value in answer.headers)
        if seconds <= 0 or size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= old[2]
        self._entries[key] = (self.clock.seconds() + seconds, answer, size)
        self.size += size
        while self._entries and (len(self._entries) > self.max_entries or self.size > self.max_bytes):
            _, (_, _, dropped) = self._entries.popitem(last=False)
            self.size -= dropped
