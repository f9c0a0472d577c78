"""The TCP/UDP services' settings a running server may change (a ConfigMap change, SIGHUP).

ingress-nginx's stream ``server`` directives, from its ConfigMap (``nginx.tmpl``):
``proxy_timeout`` (``proxy-stream-timeout``, 600s), ``proxy_responses``
(``proxy-stream-responses``, 1, UDP), ``proxy_next_upstream`` (``proxy-stream-next-upstream``,
on), ``proxy_next_upstream_tries`` (``proxy-stream-next-upstream-tries``, 3; 0: no limit but the
endpoints), ``proxy_next_upstream_timeout`` (``proxy-stream-next-upstream-timeout``, 600s; 0: no
limit) and the log line (``log-format-stream``). ``StreamSettings`` is immutable; the manager
swaps in a new one and the next connection, datagram, connect attempt or log line reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ingressd.l4.stream_log import DEFAULT_STREAM, StreamLogFormat, compile_stream_format
from ingressd.proxy.forwarding import parse_duration, parse_switch

DEFAULT_TIMEOUT = 600.0
DEFAULT_TRIES = 3


@dataclass(frozen=True)
class StreamSettings:
    idle_timeout: float = DEFAULT_TIMEOUT  # seconds a connection or session may be idle
    responses: int = 1  # UDP: replies expected per datagram (0: until idle)
    next_upstream: bool = True  # a connect failure tries another endpoint
    next_upstream_tries: int = DEFAULT_TRIES  # endpoints tried per connection (0: every one)
    next_upstream_timeout: float = DEFAULT_TIMEOUT  # seconds from the connection in which to try (0: no limit)
    log_format: StreamLogFormat | None = None  # None: ingress-nginx's default line (stream_log.stream_line)

    def may_try(self, tried: int, elapsed: float) -> bool:
        """Whether another endpoint may be tried after ``tried`` failed ones, ``elapsed`` seconds in."""
        if tried == 0:
            return True
        if not self.next_upstream:
            return False
        if self.next_upstream_tries and tried >= self.next_upstream_tries:
            return False
        return not (self.next_upstream_timeout and elapsed >= self.next_upstream_timeout)


def _number(settings: Mapping[str, Any], key: str, default: float, low: float, duration: bool) -> float:
    value = settings.get(key)
    if value is None or value == "":
        return default
    try:
        number = parse_duration(value) if duration else int(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{key.replace('_', '-')}: {exc}") from None
    if number < low:
        raise ValueError(f"{key.replace('_', '-')}: {value!r} is below {low:g}")
    return number


def stream_settings_from(settings: Mapping[str, Any]) -> StreamSettings:
    """The stream settings of the options (underscores) with the ConfigMap's laid over them;
    ``ValueError`` naming the key for a value nginx would refuse."""
    text = settings.get("log_format_stream")
    log_format = None
    if text and str(text).strip() != DEFAULT_STREAM:
        log_format = compile_stream_format(str(text).strip())
    switch = settings.get("proxy_stream_next_upstream")
    try:
        next_upstream = True if switch is None or switch == "" else parse_switch(switch)
    except ValueError as exc:
        raise ValueError(f"proxy-stream-next-upstream: {exc}") from None
    return StreamSettings(
        idle_timeout=_number(settings, "proxy_stream_timeout", DEFAULT_TIMEOUT, 0.001, True),
        responses=int(_number(settings, "proxy_stream_responses", 1, 0, False)),
        next_upstream=bool(next_upstream),
        next_upstream_tries=int(_number(settings, "proxy_stream_next_upstream_tries", DEFAULT_TRIES, 0, False)),
        next_upstream_timeout=_number(settings, "proxy_stream_next_upstream_timeout", DEFAULT_TIMEOUT, 0, True),
        log_format=log_format,
    )
