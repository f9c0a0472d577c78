"""Per-location upstream timeouts and request body limit, set on the exchange before proxying.

Annotations: ``proxy-connect-timeout``, ``proxy-read-timeout``, ``proxy-send-timeout``
(whole seconds) and ``proxy-body-size`` (nginx size: ``1024``, ``8k``, ``8m``, ``1g``;
``0`` = unlimited). Only annotations that are present are applied: the defaults are the
core's options (``--proxy-connect-timeout`` 5, ``--proxy-read-timeout`` 60,
``--proxy-send-timeout`` 60, ``--proxy-body-size`` 1m).
"""

from __future__ import annotations

from ingressd import Annotation, Phase, hookimpl, parse_int, parse_size


_TIMEOUTS = (
    ("proxy-connect-timeout", "connect_timeout"),
    ("proxy-read-timeout", "read_timeout"),
    ("proxy-send-timeout", "send_timeout"),
)


class ProxySettings:
    """Phase PROXY: copy the location's settings onto each exchange."""

    phase = Phase.PROXY

    def __init__(self, settings: tuple[tuple[str, float | int], ...]):
        self._settings = settings  # (exchange attribute, value)

    def request(self, exchange) -> None:
        for attribute, value in self._settings:
            setattr(exchange, attribute, value)
        return None


@hookimpl
def ingressd_annotations():
    # nginx's proxy timeouts go up to days in practice (WebSockets: "3600 or more").
    seconds = parse_int(1, 7 * 24 * 3600)
    return [
        Annotation("proxy-connect-timeout", seconds, None, "seconds to connect to the upstream (default 5)"),
        Annotation("proxy-read-timeout", seconds, None, "seconds between two reads from the upstream (default 60)"),
        Annotation("proxy-send-timeout", seconds, None, "seconds between two writes to the upstream (default 60)"),
        Annotation("proxy-body-size", parse_size, None, "largest request body, nginx size; 0 = unlimited (default 1m)"),
    ]


@hookimpl
def ingressd_route_features(route, values, context):
    settings = [(attribute, float(values[name])) for name, attribute in _TIMEOUTS if values.get(name) is not None]
    if values.get("proxy-body-size") is not None:
        settings.append(("max_body_size", values["proxy-body-size"]))
    return ProxySettings(tuple(settings)) if settings else None
