"""Rate-limit decisions taken in Redis, bounded in time, with a circuit breaker (``--redis``).

One decision is one atomic script (``SLIDING_WINDOW``) on the Redis server: a sliding window
counter, as ingress-nginx's ``global-rate-limit`` (lua-resty-global-throttle) counts. Per key,
a counter per fixed window of ``window`` milliseconds; a request is admitted when
``previous × (time left of the current window / window) + current < limit``, and then counts in
the current window. The time is the Redis server's (``TIME``), so replicas need no synchronised
clocks. Why a sliding window and not GCRA: it is what ingress-nginx's global limiter did (so a
migrated limit admits what it admitted), and it allows the full limit in a quiet window, where
GCRA spreads it evenly.

Accuracy at window edges: within one fixed window at most ``limit`` requests are ever admitted
(the current count alone must stay under the limit), so over ``k`` whole windows at most
``k × limit``, whatever the number of replicas. The weighting assumes the previous window's
requests were spread evenly: under steady traffic the limit holds over any window-long interval;
a burst at the very end of one window followed by traffic at the start of the next can let up to
about twice the limit through in an interval of one window's length.

``Decisions.check_buckets`` is the same decision for nginx's ``limit_req`` (``LEAKY_BUCKETS``:
``limit-rps``/``limit-rpm`` with ``ingressd.io/limit-scope: global``), exact as nginx's own.

``Decisions.check(key, limit, window)`` answers a Deferred of ``(allowed, retry_after_seconds)``
that always fires within ``timeout`` seconds: when Redis is down, slow or unreachable, or the
breaker is open, the answer is the failure mode's (``open``: allowed; ``closed``: refused, and
``failed`` counts it). The breaker opens after ``threshold`` consecutive failures; while open no
request asks Redis; after ``cool_down`` seconds one request probes, and its success closes it.
"""

from __future__ import annotations

import bisect
from typing import Any

from twisted.internet import defer

SLIDING_WINDOW = b"""
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = math.floor(now / window)
local elapsed = now - id * window
local current_key = KEYS[1] .. ':' .. id
local current = tonumber(redis.call('GET', current_key) or '0')
local previous = tonumber(redis.call('GET', KEYS[1] .. ':' .. (id - 1)) or '0')
local estimate = previous * (window - elapsed) / window + current
if estimate + 1 > limit then
  local wait = window - elapsed
  if current + 1 <= limit and previous > 0 then
    wait = math.ceil(window - elapsed - (limit - 1 - current) * window / previous)
    if wait < 1 then wait = 1 end
  end
  return {0, wait}
end
redis.call('INCR', current_key)
redis.call('PEXPIRE', current_key, window * 2 + 1000)
return {1, 0}
"""

# limit-rps / limit-rpm with ``ingressd.io/limit-scope: global``: nginx's limit_req (a leaky bucket
# with ``burst``, nodelay) per key, in nginx's units (milliseconds; thousandths of a request), every
# bucket of the request checked before any is charged: rejected by one, counted by none.
# ARGV: rate₁ burst₁ rate₂ burst₂ … (thousandths per second, thousandths); a key's value is
# "excess last_ms"; it expires once drained.
LEAKY_BUCKETS = b"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local new = {}
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local excess = 0
  local value = redis.call('GET', KEYS[i])
  if value then
    local stored, last = string.match(value, '^(%d+) (%d+)$')
    if stored then
      local elapsed = now - tonumber(last)
      if elapsed < 0 then elapsed = 0 end
      excess = tonumber(stored) - math.floor(rate * elapsed / 1000)
      if excess < 0 then excess = 0 end
      excess = excess + 1000
    end
  end
  if excess > burst then
    return {0, math.ceil((excess - burst) * 1000 / rate)}
  end
  new[i] = excess
end
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  redis.call('SET', KEYS[i], string.format('%d %d', new[i], now), 'PX', math.ceil(new[i] * 1000 / rate) + 60000)
end
return {1, 0}
"""

# Decision latency buckets (seconds): Redis on the same host answers in well under a millisecond.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)

OPEN, CLOSED = "open", "closed"


class Breaker:
    """Consecutive failures → open for ``cool_down`` seconds → one probe → closed again."""

    def __init__(self, clock: Any, threshold: int = 5, cool_down: float = 2.0):
        self.clock = clock
        self.threshold = threshold
        self.cool_down = cool_down
        self.failures = 0
        self.opened_at: float | None = None
        self.probing = False
        self.trips = 0

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def allow(self) -> bool:
        """Whether this request may ask Redis."""
        if self.opened_at is None:
            return True
        if self.probing or self.clock.seconds() - self.opened_at < self.cool_down:
            return False
        self.probing = True
        return True

    def succeeded(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def failed(self) -> None:
        self.failures += 1
        if self.probing or (self.opened_at is None and self.failures >= self.threshold):
            if self.opened_at is None:
                self.trips += 1
            self.opened_at = self.clock.seconds()
        self.probing = False


class Decisions:
    """The server's rate-limit decisions in Redis (``BuildContext.redis``)."""

    def __init__(self, client: Any, clock: Any, timeout: float = 0.005, failure: str = OPEN,
                 breaker: Breaker | None = None, prefix: str = "ingressd:rl:"):
        self.client = client
        self.clock = clock
        self.timeout = timeout
        self.failure = failure
        self.breaker = breaker or Breaker(clock)
        self.prefix = prefix
        # Metrics (read at scrape time): errors by kind, decision latencies.
        self.errors: dict[str, int] = {}
        self.decisions = 0
        self.skipped = 0  # answered by the failure mode without asking Redis (breaker open)
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0

    def not_ready_reason(self) -> str | None:
        """Why /readyz fails: only when failing closed and no connection to Redis is up. (Not the
        breaker: a replica taken out of service gets no request to probe Redis with, and
        would never come back.)"""
        if self.failure != CLOSED or self.client.connected:
            return None
        return "no connection to Redis and --redis-failure is closed"

    def check(self, key: bytes, limit: int, window_ms: int) -> defer.Deferred:
        """Deferred ``(allowed, retry_after_seconds)``, fired within ``timeout``: the sliding window."""
        return self._decide(SLIDING_WINDOW, (self.prefix.encode() + key,), (limit, window_ms))

    def check_buckets(self, keys: tuple, buckets: tuple) -> defer.Deferred:
        """The same for nginx's leaky buckets: ``buckets`` is ((rate, burst), …) in thousandths,
        one per key, all checked before any is charged."""
        prefix = self.prefix.encode()
        return self._decide(LEAKY_BUCKETS, tuple(prefix + key for key in keys),
                            tuple(value for bucket in buckets for value in bucket))

    def _decide(self, script: bytes, keys: tuple, args: tuple) -> defer.Deferred:
        self.decisions += 1
        if not self.breaker.allow():
            self.skipped += 1
            return defer.succeed(self._failed())
        started = self.clock.seconds()
        answer = defer.Deferred()
        timer = self.clock.callLater(self.timeout, self._timed_out, answer)
        asked = self.client.evalsha(script, keys, args)
        asked.addCallbacks(self._answered, self._error, callbackArgs=(answer, timer, started),
                           errbackArgs=(answer, timer))
        return answer

    def _answered(self, reply, answer, timer, started) -> None:
        if answer.called:  # too late: the request went on without it
            return
        timer.cancel()
        try:
            allowed, wait_ms = int(reply[0]), int(reply[1])
        except (TypeError, ValueError, IndexError):
            self._count("bad_reply")
            self.breaker.failed()
            answer.callback(self._failed())
            return
        self.breaker.succeeded()
        self._observe(self.clock.seconds() - started)
        answer.callback((bool(allowed), -(-wait_ms // 1000) if not allowed else 0))

    def _error(self, failure, answer, timer) -> None:
        if answer.called:
            return
        timer.cancel()
        self._count(type(failure.value).__name__)
        self.breaker.failed()
        answer.callback(self._failed())

    def _timed_out(self, answer) -> None:
        if answer.called:
            return
        self._count("timeout")
        self.breaker.failed()
        answer.callback(self._failed())

    def _failed(self) -> tuple[bool, int]:
        return (self.failure != CLOSED, 1)

    def _count(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def _observe(self, seconds: float) -> None:
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds
